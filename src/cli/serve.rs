//! `kwi serve` and `kwi migrate`.

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use kwi_store::{PlanName, Role};

use crate::app::{self, AppState};
use crate::auth::AuthConfig;
use crate::auth::oidc::OidcConfig;
use crate::config::{GlobalOpts, ServeArgs};

/// Horizon of the server's insights job (weeks).
pub const INSIGHTS_HORIZON: usize = 13;

/// The accounts settings of `kwi serve`.
fn auth_config(args: &ServeArgs, public_url: &str) -> anyhow::Result<AuthConfig> {
    let oidc = match (
        &args.oidc_issuer,
        &args.oidc_client_id,
        &args.oidc_client_secret,
    ) {
        (Some(issuer), Some(id), Some(secret)) => Some(OidcConfig {
            issuer: issuer.clone(),
            client_id: id.clone(),
            client_secret: secret.clone(),
            redirect_url: format!("{public_url}/v1/auth/oidc/callback"),
        }),
        (None, _, _) => None,
        _ => anyhow::bail!("--oidc-issuer needs --oidc-client-id and --oidc-client-secret"),
    };
    Ok(AuthConfig {
        enabled: args.auth == "on",
        jwt_secret: args.jwt_secret.clone(),
        oidc,
        metrics_public: !args.private_metrics,
        ..AuthConfig::default()
    })
}

/// The first start of a server with no users: creates `admin@localhost` (admin, plan `internal`)
/// and prints its API key and the dashboard link to stdout, once (as Jupyter prints its token).
/// Nothing secret goes to the log.
async fn first_admin(state: &AppState, public_url: &str) -> anyhow::Result<()> {
    let (user, key) = state
        .auth
        .create_user(
            None,
            "admin@localhost",
            None,
            Role::Admin,
            PlanName::Internal,
            Some("first start"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the first admin: {e}"))?;
    let key = key.unwrap_or_default();
    tracing::info!(user = %user.id, "no users yet: created admin@localhost (its API key is on stdout)");
    println!();
    println!(
        "    No users yet: created {} (role admin, plan internal).",
        user.email
    );
    println!("    Its API key, shown only now:");
    println!();
    println!("        {key}");
    println!();
    println!("    Dashboard (signs you in): {public_url}/#key={key}");
    println!("    API:  curl -H 'Authorization: Bearer {key}' {public_url}/v1/me");
    println!();
    Ok(())
}

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

/// The edge's settings from `kwi serve`'s options.
fn edge_settings(args: &ServeArgs) -> crate::http::Edge {
    crate::http::Edge {
        cors_origins: args.cors_origins.clone(),
        header_timeout: Duration::from_secs(args.header_timeout_secs),
        body_timeout: Duration::from_secs(args.body_timeout_secs),
        max_header_bytes: usize::try_from(args.max_header_kb.saturating_mul(1024))
            .unwrap_or(usize::MAX),
    }
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
    let edge = edge_settings(args);
    edge.validate().context("invalid edge settings")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", listener.local_addr().unwrap_or(args.listen)))
        .trim_end_matches('/')
        .to_string();
    let (mut state, writer) =
        AppState::build_with(store, cache, auth_config(args, &public_url)?).await?;
    state.daily_limits = std::sync::Arc::new(super::collect::daily_limits(&args.sources));
    // The collection queue and scheduler in process (`--worker`), as `kwi worker` runs them.
    let collector = if args.worker {
        Some(super::collect::start_worker(&state.store, &args.sources))
    } else {
        None
    };
    if !state.auth.enabled() {
        tracing::warn!(
            "AUTHENTICATION IS OFF (--auth off): every request acts as an admin; never expose this server"
        );
    } else if state.store.user_count().await? == 0 {
        first_admin(&state, &public_url).await?;
    }
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
        kwi_store::instance_id().to_string(),
    );
    tracing::info!(
        addr = %listener.local_addr()?,
        backend = ?state.store.backend(),
        cache = ?state.cache.kind(),
        "kwi listening"
    );
    app::serve(listener, state, edge, app::shutdown_signal()).await?;
    if let Some(c) = collector {
        tracing::info!("stopping the collection worker: finishing the jobs in hand");
        let (s, r) = c.stop().await;
        tracing::info!(
            requests = s.requests,
            jobs_done = s.jobs_done,
            observations = s.observations_written,
            reforecast_chunks = r.chunks_done,
            predictions = r.predictions,
            "collection worker stopped"
        );
    }
    insights.abort();
    for w in watchers {
        w.abort();
        let _ = w.await;
    }
    tracing::info!("flushing computed forecasts");
    writer.await.context("prediction writer failed")?;
    Ok(())
}
