//! Both caches: values round-trip; the near cache in front of Redis answers without Redis and is
//! bounded in bytes; an unreachable Redis degrades to misses, never errors.

use std::time::Duration;

use bytes::Bytes;

use kwi::cache::{Cache, CacheKind, DEFAULT_LOCAL_BYTES};

use crate::helpers::{redis_cache, redis_url};

const TTL: Duration = Duration::from_secs(60);

async fn round_trip(cache: &Cache) {
    let key = format!("kwi:test:{}", uuid::Uuid::new_v4());
    assert!(cache.get(&key).await.is_none());
    cache.set(&key, Bytes::from_static(b"forecast bytes")).await;
    assert_eq!(
        cache.get(&key).await.as_deref(),
        Some(&b"forecast bytes"[..])
    );
    cache.ping().await.unwrap();
}

/// Deletes keys in Redis behind the caches' backs.
async fn redis_del(keys: &[&str]) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DEL")
        .arg(keys)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn in_process_cache_round_trips() {
    let cache = Cache::in_process(1 << 20, TTL);
    assert_eq!(cache.kind(), CacheKind::InProcess);
    round_trip(&cache).await;
}

#[tokio::test]
async fn redis_cache_round_trips_with_ttl() {
    for near in [0, DEFAULT_LOCAL_BYTES] {
        let cache = redis_cache(TTL, near).await;
        assert_eq!(cache.kind(), CacheKind::Redis);
        round_trip(&cache).await;
        assert_eq!(cache.error_count(), 0);
    }
}

#[tokio::test]
async fn near_cache_answers_without_redis_and_fills_from_it() {
    let (a, b, bare) = (
        redis_cache(TTL, 1 << 20).await,
        redis_cache(TTL, 1 << 20).await,
        redis_cache(TTL, 0).await,
    );
    let (k1, k2) = (
        format!("kwi:test:near:{}", uuid::Uuid::new_v4()),
        format!("kwi:test:near:{}", uuid::Uuid::new_v4()),
    );
    a.set(&k1, Bytes::from_static(b"one")).await;
    a.set_many(&[(k2.clone(), Bytes::from_static(b"two"))])
        .await;
    // Writes go to Redis only: the writer's near cache admits a value when it is read back.
    assert!(a.get_near(&k1).is_none() && a.get_near(&k2).is_none());
    // Another instance finds both in Redis (one through GET, one through MGET) and keeps copies.
    assert_eq!(b.get(&k1).await.as_deref(), Some(&b"one"[..]));
    assert_eq!(
        b.get_many(&[k2.as_str(), "kwi:test:near:absent"])
            .await
            .iter()
            .map(|v| v.as_deref().map(<[u8]>::to_vec))
            .collect::<Vec<_>>(),
        vec![Some(b"two".to_vec()), None]
    );
    assert_eq!(b.get_near(&k1).as_deref(), Some(&b"one"[..]));
    redis_del(&[&k1, &k2]).await;
    // Gone from Redis: a cache without a near part misses, and so does the writer, which never
    // read them; the reader's near cache still answers, through GET and MGET alike.
    assert!(bare.get(&k1).await.is_none());
    assert!(bare.get_many(std::slice::from_ref(&k2)).await[0].is_none());
    assert!(a.get(&k1).await.is_none());
    assert_eq!(b.get(&k1).await.as_deref(), Some(&b"one"[..]));
    assert_eq!(
        b.get_many(std::slice::from_ref(&k2)).await[0].as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(b.local_status()["entries"], 2);
    assert_eq!(bare.local_status()["role"], "off");
}

#[tokio::test]
async fn in_process_cache_is_bounded_in_bytes() {
    // 64 KiB: a 100 KiB value is never kept, and 200 values of 1 KiB cannot all stay.
    let cache = Cache::in_process(64 << 10, TTL);
    cache.set("big", Bytes::from(vec![7u8; 100 << 10])).await;
    for i in 0..200 {
        cache
            .set(&format!("small:{i}"), Bytes::from(vec![1u8; 1024]))
            .await;
    }
    let status = cache.local_status();
    assert!(cache.get("big").await.is_none(), "{status}");
    let held = status["bytes"].as_u64().unwrap();
    assert!(held <= 64 << 10, "{status}");
    let entries = status["entries"].as_u64().unwrap();
    assert!(entries > 0 && entries < 200, "{status}");
}

#[tokio::test]
async fn unreachable_redis_is_refused_at_connect_and_the_server_falls_back() {
    // Port 1 on loopback: nothing listens there.
    let err = Cache::redis("redis://127.0.0.1:1", TTL, DEFAULT_LOCAL_BYTES)
        .await
        .err();
    assert!(err.is_some(), "connecting to a closed port must fail");
    let cache = kwi::app::open_cache(Some("redis://127.0.0.1:1"), DEFAULT_LOCAL_BYTES).await;
    assert_eq!(cache.kind(), CacheKind::InProcess);
    assert_eq!(cache.local_status()["max_bytes"], DEFAULT_LOCAL_BYTES);
}
