//! Run-once background work across instances: a named lease in the store has one holder until it
//! runs out, and only the holder of the insights lease computes insights.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use kwi_store::INSIGHTS_LEASE;

use crate::helpers::{TestApp, TestDb, backend_tests};

async fn a_lease_has_one_holder_until_it_runs_out(db: TestDb) {
    let store = kwi_store::open(&db.url).await.unwrap();
    let t0 = Utc::now();
    let later = |s: i64| t0 + chrono::Duration::seconds(s);
    assert!(store.lead("job", "a", t0, later(30)).await.unwrap());
    assert!(
        !store.lead("job", "b", later(1), later(31)).await.unwrap(),
        "a holds it"
    );
    // The holder renews; another lease name is independent.
    assert!(store.lead("job", "a", later(20), later(50)).await.unwrap());
    assert!(
        store
            .lead("other", "b", later(20), later(50))
            .await
            .unwrap()
    );
    assert!(
        !store.lead("job", "b", later(40), later(70)).await.unwrap(),
        "renewed to 50"
    );
    // a stops renewing: once its lease has run out, b takes over, and a's late renewal fails.
    assert!(store.lead("job", "b", later(51), later(81)).await.unwrap());
    assert!(!store.lead("job", "a", later(52), later(82)).await.unwrap());
    // Given up: free at once.
    store.release("job", "a").await.unwrap(); // not a's: nothing happens
    assert!(!store.lead("job", "a", later(53), later(83)).await.unwrap());
    store.release("job", "b").await.unwrap();
    assert!(store.lead("job", "a", later(54), later(84)).await.unwrap());
}
backend_tests!(a_lease_has_one_holder_until_it_runs_out);

async fn only_the_lease_holder_computes_insights(app: TestApp) {
    app.load_sample().await;
    let now = Utc::now();
    // Another instance holds the insights lease for an hour.
    assert!(
        app.store
            .lead(
                INSIGHTS_LEASE,
                "other-instance",
                now,
                now + chrono::Duration::hours(1)
            )
            .await
            .unwrap()
    );
    let schedule = kwi_predict::insights::spawn_scheduler(
        app.store.clone(),
        app.state.forecaster.served_models(),
        kwi_features::Horizon::new(13).unwrap(),
        Duration::from_millis(50),
        "this-instance".into(),
    );
    let insights = async || {
        let res = app.get("/v1/keywords/google/coffee").await;
        assert_eq!(res.status, StatusCode::OK);
        !res.json()["insights"].is_null()
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !insights().await,
        "{}: computed without the lease",
        app.name
    );
    // The other instance stops and gives the lease up: this one takes over and computes them.
    app.store
        .release(INSIGHTS_LEASE, "other-instance")
        .await
        .unwrap();
    let mut seen = false;
    for _ in 0..400 {
        if insights().await {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen,
        "{}: no insights after taking the lease over",
        app.name
    );
    assert!(
        !app.store
            .lead(INSIGHTS_LEASE, "other-instance", Utc::now(), Utc::now())
            .await
            .unwrap(),
        "this instance holds it now"
    );
    schedule.abort();
}
backend_tests!(only_the_lease_holder_computes_insights);
