//! Application state, start-up and serving.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::cache::{Cache, DEFAULT_TTL};
use crate::config::{GlobalOpts, ServeArgs};
use crate::serving::{Forecasting, load_active_model, spawn_model_watcher, spawn_persister};
use crate::store::{self, Store};

/// Horizon of the start-up insights job (weeks).
pub const INSIGHTS_HORIZON: usize = 13;

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    /// Observations, snapshots, predictions, models.
    pub store: Arc<dyn Store>,
    /// Prediction cache.
    pub cache: Cache,
    /// Active model, single flight, prediction writer.
    pub forecasting: Forecasting,
}

impl AppState {
    /// Builds the state: loads the active model (or the baseline) and starts the prediction writer.
    /// Await the returned handle after the server stops (and every state clone is dropped) to make
    /// sure every computed forecast is persisted.
    pub async fn build(
        store: Arc<dyn Store>,
        cache: Cache,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        crate::http::install_metrics();
        let model = load_active_model(store.as_ref())
            .await
            .context("cannot load the active model")?;
        tracing::info!(version = %model.manifest.version, members = ?model.manifest.ensemble.members, "serving model");
        let (tx, writer) = spawn_persister(store.clone());
        Ok((
            Self {
                forecasting: Forecasting::new(model, store.clone(), cache.clone(), tx),
                store,
                cache,
            },
            writer,
        ))
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Opens the configured store and applies migrations.
pub async fn open_store(global: &GlobalOpts) -> anyhow::Result<Arc<dyn Store>> {
    let url = global.database_url();
    let store = store::connect(&url)
        .await
        .with_context(|| format!("cannot open database {}", redact(&url)))?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate database {}", redact(&url)))?;
    Ok(store)
}

/// Connects the configured cache, with `local_bytes` cached in process (the whole cache, or the near
/// cache in front of Redis); an unreachable Redis falls back to the in-process cache with a warning
/// rather than refusing to start.
pub async fn open_cache(global: &GlobalOpts, local_bytes: u64) -> Cache {
    match global.redis_url.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(url) => match Cache::redis(url, DEFAULT_TTL, local_bytes).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "Redis unavailable; using the in-process cache");
                Cache::in_process(local_bytes, DEFAULT_TTL)
            }
        },
        None => Cache::in_process(local_bytes, DEFAULT_TTL),
    }
}

/// Hides a password in a URL for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `kwi migrate`.
pub async fn run_migrate(global: &GlobalOpts) -> anyhow::Result<()> {
    let store = open_store(global).await?;
    println!(
        "migrations applied ({:?} at {})",
        store.backend(),
        redact(&global.database_url())
    );
    Ok(())
}

/// `kwi serve`: open store and cache, load sample data into an empty store, serve until Ctrl-C/SIGTERM.
pub async fn run_server(global: &GlobalOpts, args: &ServeArgs) -> anyhow::Result<()> {
    let store = open_store(global).await?;
    if !args.no_sample && store.observation_count().await? == 0 {
        let summary = crate::import::load_sample(store.as_ref()).await?;
        tracing::info!(%summary, "store was empty: loaded the built-in sample data");
    }
    let cache = open_cache(global, args.cache_mb.saturating_mul(1 << 20)).await;
    let (state, writer) = AppState::build(store, cache).await?;
    let watcher = spawn_model_watcher(
        state.store.clone(),
        state.forecasting.model.clone(),
        std::time::Duration::from_secs(args.model_poll_secs.max(1)),
    );
    // Insights (trends, opportunity, competition) for the stored data, off the request path: a fresh
    // embedded server has trends once the first run finishes; they are recomputed when data or models
    // change.
    let insights = crate::insights::spawn_scheduler(
        state.store.clone(),
        state.forecasting.model.clone(),
        INSIGHTS_HORIZON,
        std::time::Duration::from_secs(args.insights_check_secs.max(1)),
    );
    let data_watcher = state.forecasting.data_versions.spawn_watcher(
        state.store.clone(),
        std::time::Duration::from_millis(args.data_poll_ms.max(10)),
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
    serve(listener, state, shutdown_signal()).await?;
    watcher.abort();
    data_watcher.abort();
    insights.abort();
    let _ = watcher.await;
    let _ = data_watcher.await;
    tracing::info!("flushing computed forecasts");
    writer.await.context("prediction writer failed")?;
    Ok(())
}

/// Serves the router on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, crate::http::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("server failed")
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
