//! Both caches: values round-trip; an unreachable Redis degrades to misses, never errors.

use std::sync::Arc;
use std::time::Duration;

use kwi::cache::{Cache, CacheKind};

use crate::helpers::redis_url;

async fn round_trip(cache: &Cache) {
    let key = format!("kwi:test:{}", uuid::Uuid::new_v4());
    assert!(cache.get(&key).await.is_none());
    cache.set(&key, Arc::from(&b"forecast bytes"[..])).await;
    assert_eq!(cache.get(&key).await.as_deref(), Some(&b"forecast bytes"[..]));
    cache.ping().await.unwrap();
}

#[tokio::test]
async fn in_process_cache_round_trips() {
    let cache = Cache::in_process(10, Duration::from_secs(60));
    assert_eq!(cache.kind(), CacheKind::InProcess);
    round_trip(&cache).await;
}

#[tokio::test]
async fn redis_cache_round_trips_with_ttl() {
    let cache = Cache::redis(&redis_url(), Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("Redis is required for these tests: {e}"));
    assert_eq!(cache.kind(), CacheKind::Redis);
    round_trip(&cache).await;
    assert_eq!(cache.error_count(), 0);
}

#[tokio::test]
async fn unreachable_redis_is_refused_at_connect_and_the_server_falls_back() {
    // Port 1 on loopback: nothing listens there.
    let err = Cache::redis("redis://127.0.0.1:1", Duration::from_secs(60)).await.err();
    assert!(err.is_some(), "connecting to a closed port must fail");
    let opts = kwi::config::GlobalOpts {
        database_url: None,
        redis_url: Some("redis://127.0.0.1:1".into()),
        data_dir: std::env::temp_dir(),
    };
    assert_eq!(kwi::app::open_cache(&opts).await.kind(), CacheKind::InProcess);
}
