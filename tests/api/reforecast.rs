//! Sharded re-forecasting on the collectors' queue: chunks worked by several workers at once, a
//! worker whose lease ran out writes nothing, each keyword's prediction of a run is written once,
//! and `kwi worker` without marketplace credentials still works the chunks.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kwi::collect::{Reforecaster, Settled, WorkerOptions};
use kwi_features::{Keyword, Platform};
use kwi_store::{ReforecastStatus, Store, StoreError};

use crate::helpers::{TestApp, TestDb, backend_tests};

fn options(name: &str) -> WorkerOptions {
    WorkerOptions {
        name: name.into(),
        lease: Duration::from_secs(30),
        concurrency: 1,
        idle_poll: Duration::from_millis(50),
    }
}

/// Works chunks until none is ready; returns the keywords of the chunks this worker finished.
async fn drain(worker: &Reforecaster) -> Vec<(Platform, Keyword)> {
    let mut done = Vec::new();
    while let Some((chunk, settled)) = worker.run_one().await.unwrap() {
        assert_eq!(settled, Settled::Done, "chunk {}", chunk.index);
        done.extend(chunk.keys);
    }
    done
}

async fn two_workers_write_each_keywords_prediction_once(app: TestApp) {
    app.load_sample().await;
    let store = app.store.clone();
    let stored = store.keyword_count().await.unwrap() as usize;
    let now = Utc::now();
    let q = store.enqueue_reforecast("t1", 7, now).await.unwrap();
    assert_eq!(q.keywords, stored, "{}", app.name);
    assert_eq!(q.chunks, stored.div_ceil(7));
    assert_eq!(q.queued, q.chunks as u64);
    // A worker that claimed the first chunk and died: its lease ran out a second ago.
    let ghost = store
        .claim_reforecast("ghost", now, now - chrono::Duration::seconds(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ghost.index, ghost.of, ghost.run.as_str()),
        (0, q.chunks, "t1")
    );

    let (a, b) = (
        Reforecaster::new(store.clone(), options("w1")),
        Reforecaster::new(store.clone(), options("w2")),
    );
    let (got_a, got_b) = tokio::join!(drain(&a), drain(&b));
    let all: Vec<_> = got_a.iter().chain(&got_b).cloned().collect();
    let distinct: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), stored, "every keyword in exactly one chunk done");
    assert_eq!(distinct.len(), stored);
    assert!(
        all.contains(&ghost.keys[0]),
        "the ghost's chunk was taken over"
    );

    // The ghost comes back and tries to finish: refused, nothing written.
    assert!(
        !store
            .finish_reforecast(ghost.id, "ghost", &[], Utc::now())
            .await
            .unwrap()
    );
    let volumes = store.volumes_many(&all).await.unwrap();
    let mut with_volume = 0;
    for ((platform, keyword), v) in all.iter().zip(&volumes) {
        let n = store.prediction_count(*platform, keyword).await.unwrap();
        let expected = i64::from(!v.is_empty());
        assert_eq!(
            n,
            expected,
            "{platform}/{}: {n} predictions",
            keyword.as_str()
        );
        with_volume += expected as u64;
    }
    let (sa, sb) = (a.snapshot(), b.snapshot());
    assert_eq!(sa.predictions + sb.predictions, with_volume);
    assert_eq!(
        sa.without_volume + sb.without_volume,
        stored as u64 - with_volume
    );
    assert!(
        with_volume > 0 && with_volume < stored as u64,
        "{with_volume}"
    );
    assert_eq!(
        store.reforecast_status(Some("t1")).await.unwrap(),
        ReforecastStatus {
            done: q.chunks as i64,
            ..ReforecastStatus::default()
        }
    );

    // The same run again: its chunks stay as they are, nothing is queued or forecast twice.
    let again = store
        .enqueue_reforecast("t1", 1000, Utc::now())
        .await
        .unwrap();
    assert!(again.existing);
    assert_eq!(
        (again.chunks, again.queued, again.keywords),
        (q.chunks, 0, stored)
    );
    assert!(a.run_one().await.unwrap().is_none());
    // The queue status counts the chunks apart from the marketplaces' jobs.
    let sources = store.queue_status(Utc::now().date_naive()).await.unwrap();
    assert!(sources.iter().all(|(_, s)| s.done == 0), "{sources:?}");
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    two_workers_write_each_keywords_prediction_once
);

async fn bad_runs_are_refused_with_the_reason(app: TestApp) {
    let now = Utc::now();
    for (run, chunk, needle) in [
        ("", 10, "name of 1 to 200 bytes"),
        (&"r".repeat(201)[..], 10, "name of 1 to 200 bytes"),
        ("ok", 0, "outside 1..=100000"),
        ("ok", 100_001, "outside 1..=100000"),
    ] {
        match app.store.enqueue_reforecast(run, chunk, now).await {
            Err(StoreError::Invalid(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{run:?}/{chunk}: {other:?}"),
        }
    }
    // An empty store: a run of nothing.
    let q = app
        .store
        .enqueue_reforecast("empty", 10, now)
        .await
        .unwrap();
    assert_eq!((q.keywords, q.chunks, q.queued), (0, 0, 0));
}
backend_tests!(bad_runs_are_refused_with_the_reason);

/// `kwi worker` without any marketplace credentials starts (saying collections wait for a worker
/// that has them) and works the re-forecast chunks.
async fn kwi_worker_without_credentials_works_reforecast_chunks(db: TestDb) {
    let store: Arc<dyn Store> = kwi_store::open(&db.url).await.unwrap();
    kwi::import::load_sample(store.as_ref()).await.unwrap();
    let q = store
        .enqueue_reforecast("cli", 50, Utc::now())
        .await
        .unwrap();
    assert!(q.chunks > 1, "{q:?}");
    let worker = Command::new(env!("CARGO_BIN_EXE_kwi"))
        .args(["worker"])
        .env("KWI_DATABASE_URL", &db.url)
        .env_remove("KWI_REDIS_URL")
        .env_remove("KWI_ETSY_API_KEY")
        .env_remove("KWI_EBAY_CLIENT_ID")
        .env_remove("KWI_SPAPI_CLIENT_ID")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let chunks = q.chunks as i64;
    // A process start, migrations and the baseline's calibration: allow a loaded CI machine 60 s.
    let mut st = ReforecastStatus::default();
    for _ in 0..600 {
        st = store.reforecast_status(Some("cli")).await.unwrap();
        if st.done == chunks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(st.done, chunks, "{st:?}");
    // SIGTERM: it finishes what it holds and reports.
    let pid = worker.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = worker.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{chunks} re-forecast chunk(s) done, 0 failed")),
        "{stdout}"
    );
    assert!(
        stderr.contains("no source has credentials") && stderr.contains("KWI_ETSY_API_KEY"),
        "{stderr}"
    );
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    kwi_worker_without_credentials_works_reforecast_chunks
);
