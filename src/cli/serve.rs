//! `kwi serve` and `kwi migrate`.

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::{self, AppState};
use crate::config::{GlobalOpts, ServeArgs};

/// Horizon of the server's insights job (weeks).
pub const INSIGHTS_HORIZON: usize = 13;

/// `kwi migrate`.
pub async fn migrate(global: &GlobalOpts) -> anyhow::Result<()> {
    let store = super::open_store(global).await?;
    println!(
        "migrations applied ({:?} at {})",
        store.backend(),
        kwi_store::redact(&global.database_url())
    );
    Ok(())
}

/// `kwi serve`: open store and cache, load sample data into an empty store, serve until
/// Ctrl-C/SIGTERM, then drain the prediction writer.
pub async fn run(global: &GlobalOpts, args: &ServeArgs) -> anyhow::Result<()> {
    let store = super::open_store(global).await?;
    if !args.no_sample && store.observation_count().await? == 0 {
        let summary = crate::import::load_sample(store.as_ref()).await?;
        tracing::info!(%summary, "store was empty: loaded the built-in sample data");
    }
    let cache = app::open_cache(
        global.redis_url.as_deref(),
        args.cache_mb.saturating_mul(1 << 20),
    )
    .await;
    let (state, writer) = AppState::build(store, cache).await?;
    let watchers = state.forecaster.spawn_watchers(
        Duration::from_secs(args.model_poll_secs.max(1)),
        Duration::from_millis(args.data_poll_ms.max(10)),
    );
    // Insights (trends, opportunity, competition) for the stored data, off the request path: a
    // fresh embedded server has trends once the first run finishes; they are recomputed when data
    // or models change.
    let insights = kwi_predict::insights::spawn_scheduler(
        state.store.clone(),
        state.forecaster.served_models(),
        kwi_features::Horizon::new(INSIGHTS_HORIZON).expect("a valid horizon"),
        Duration::from_secs(args.insights_check_secs.max(1)),
    );
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        backend = ?state.store.backend(),
        cache = ?state.cache.kind(),
        "kwi listening"
    );
    app::serve(listener, state, app::shutdown_signal()).await?;
    insights.abort();
    for w in watchers {
        w.abort();
        let _ = w.await;
    }
    tracing::info!("flushing computed forecasts");
    writer.await.context("prediction writer failed")?;
    Ok(())
}
