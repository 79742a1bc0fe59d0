//! Application state, start-up and serving (the `kwi serve` runner is in [`crate::cli`]).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use kwi_store::Store;
use tokio::net::TcpListener;

use crate::auth::{Auth, AuthConfig};
use crate::cache::{Cache, DEFAULT_TTL};
use crate::serving::Forecaster;

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    /// Observations, snapshots, predictions, models.
    pub store: Arc<dyn Store>,
    /// Prediction cache.
    pub cache: Cache,
    /// Forecasts: active model, data versions, single flight, batcher, prediction writer.
    pub forecaster: Forecaster,
    /// Accounts and access: credentials, rate limits, quotas, history, audit.
    pub auth: Auth,
    /// The collectors' daily limits, for `/v1/collector/status`.
    pub daily_limits: Arc<crate::collect::DailyLimits>,
}

impl AppState {
    /// Builds the state with the default authentication settings (see [`AppState::build_with`]).
    pub async fn build(
        store: Arc<dyn Store>,
        cache: Cache,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        Self::build_with(store, cache, AuthConfig::default()).await
    }

    /// Builds the state: loads the active model (or the baseline), starts the prediction writer
    /// and the accounts' background work (usage counters, history and audit writer). Await the
    /// returned handle after the server stops (and every state clone is dropped) to make sure
    /// every computed forecast, usage count and queued history row is written.
    pub async fn build_with(
        store: Arc<dyn Store>,
        cache: Cache,
        auth: AuthConfig,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        crate::http::install_metrics();
        let (forecaster, writer) = Forecaster::start(store.clone(), cache.clone())
            .await
            .context("cannot load the active model")?;
        let (auth, auth_tasks) = Auth::start(store.clone(), cache.redis_connection(), auth)
            .await
            .context("cannot start accounts")?;
        let done = tokio::spawn(async move {
            let _ = writer.await;
            let _ = auth_tasks.await;
        });
        Ok((
            Self {
                store,
                cache,
                forecaster,
                auth,
                daily_limits: Arc::default(),
            },
            done,
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

/// Connects the cache: Redis at `redis_url` when given, with `local_bytes` cached in process in
/// front of it (the near cache), else the in-process cache alone of that size. An unreachable Redis
/// falls back to the in-process cache with a warning rather than refusing to start.
pub async fn open_cache(redis_url: Option<&str>, local_bytes: u64) -> Cache {
    match redis_url.filter(|u| !u.trim().is_empty()) {
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

/// Serves the router behind `edge` on `listener` until `shutdown` resolves, then finishes
/// in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    edge: crate::http::Edge,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    edge.validate()?;
    crate::http::edge::serve(
        listener,
        crate::http::router_with(state, &edge),
        &edge,
        shutdown,
    )
    .await;
    Ok(())
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
