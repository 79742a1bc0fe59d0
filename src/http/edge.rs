//! What every connection and response gets at the edge, before any route: security headers, the
//! CORS policy, the slow-client timeouts and the header-size limit (the body-size, batch-size and
//! keyword-length limits are the routes' own: [`super::MAX_BODY_BYTES`], [`super::MAX_BATCH`],
//! `kwi_features::keyword::MAX_KEYWORD_CHARS`).

use std::time::Duration;

use axum::Router;
use axum::http::Method;
use axum::http::header::{self, HeaderName, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::map_request_body::MapRequestBodyLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// The smallest header limit hyper takes (its read buffer cannot be smaller).
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

/// The edge's settings (`kwi serve --cors-origin`, `--header-timeout-secs`, `--body-timeout-secs`,
/// `--max-header-kb`).
#[derive(Debug, Clone)]
pub struct Edge {
    /// Origins a browser may call the API from (`Access-Control-Allow-Origin`); empty: none (the
    /// dashboard is same-origin and needs none); `*`: any (credentials are bearer tokens a
    /// browser never attaches by itself, so no cookie rides along).
    pub cors_origins: Vec<String>,
    /// A client must send a request's whole header within this time, or the connection is closed.
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long is abandoned with 408.
    pub body_timeout: Duration,
    /// Longest request header (all lines together); a longer one is answered 431. At least
    /// [`MIN_HEADER_BYTES`].
    pub max_header_bytes: usize,
}

impl Default for Edge {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
        }
    }
}

/// Why an edge setting is refused.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A CORS origin that is not `scheme://host[:port]`.
    #[error(
        "CORS origin {0:?} is not an origin: expected scheme://host[:port] (no path, no trailing slash) or *"
    )]
    Origin(String),
    /// A header limit hyper cannot keep.
    #[error("the header limit is {0} bytes; it must be at least {MIN_HEADER_BYTES}")]
    HeaderLimit(usize),
    /// A zero timeout.
    #[error("{0} must be at least one second")]
    ZeroTimeout(&'static str),
}

impl Edge {
    /// Checks the settings once, at start-up, so a typo is refused with its reason rather than
    /// silently allowing nothing.
    pub fn validate(&self) -> Result<(), EdgeError> {
        for origin in &self.cors_origins {
            if origin == "*" {
                continue;
            }
            let ok = origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', ' '])
            }) && HeaderValue::from_str(origin).is_ok();
            if !ok {
                return Err(EdgeError::Origin(origin.clone()));
            }
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(EdgeError::HeaderLimit(self.max_header_bytes));
        }
        if self.header_timeout.is_zero() {
            return Err(EdgeError::ZeroTimeout("the header timeout"));
        }
        if self.body_timeout.is_zero() {
            return Err(EdgeError::ZeroTimeout("the body timeout"));
        }
        Ok(())
    }

    /// Wraps the router: the body timeout, the CORS policy (when origins are set) and the security
    /// headers on every answer, errors and preflights included.
    pub fn wrap(&self, router: Router) -> Router {
        let router = router.layer(
            ServiceBuilder::new()
                .layer(RequestBodyTimeoutLayer::new(self.body_timeout))
                // The timeout changes the body's type; the routes take axum's.
                .layer(MapRequestBodyLayer::new(axum::body::Body::new)),
        );
        let router = match self.cors() {
            Some(cors) => router.layer(cors),
            None => router,
        };
        security_headers()
            .into_iter()
            .fold(router, |router, (name, value)| {
                router.layer(SetResponseHeaderLayer::if_not_present(name, value))
            })
    }

    fn cors(&self) -> Option<CorsLayer> {
        if self.cors_origins.is_empty() {
            return None;
        }
        let origin = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::CONTENT_ENCODING,
                    header::ACCEPT,
                ])
                // What a browser script may read of an answer beyond the safelisted headers: the
                // rate-limit state, when to retry, whether it came from the cache, which model.
                .expose_headers([
                    header::RETRY_AFTER,
                    HeaderName::from_static("ratelimit"),
                    HeaderName::from_static("ratelimit-policy"),
                    HeaderName::from_static("x-ratelimit-limit"),
                    HeaderName::from_static("x-ratelimit-remaining"),
                    HeaderName::from_static("x-ratelimit-reset"),
                    HeaderName::from_static("x-cache"),
                    HeaderName::from_static("x-kwi-model"),
                ])
                .max_age(Duration::from_secs(3600)),
        )
    }
}

/// The headers every answer carries. The dashboard's page loads only its own bundled script and
/// styles (no inline script), so the content policy allows `'self'` alone; inline styles stay
/// allowed because the chart library sets them. `Strict-Transport-Security` belongs to the TLS
/// proxy in front (docs/operations.md), not to a plain-HTTP listener.
fn security_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                 frame-ancestors 'none'; form-action 'self'",
            ),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections finish.
///
/// Written here rather than with `axum::serve` because that offers no setting for the header
/// limit or the header-read timeout (a slow client could hold a connection open forever), and
/// hyper-util's connection builder, which axum itself uses, does. The loop is axum's: an accept
/// error other than a peer's reset is logged and retried after a second (e.g. out of file
/// descriptors), connections get `TCP_NODELAY`, and shutdown stops accepting, then waits for the
/// connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    edge: &Edge,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(edge.header_timeout)
        .max_buf_size(edge.max_header_bytes.max(MIN_HEADER_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(edge.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                    ) {
                        tracing::error!(error = %e, "cannot accept a connection; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Whether `e` (a body read's error) is the body timeout's.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}
