//! Who may call what. Every route is registered through [`Routes::add`] with its [`Access`], so the
//! router and the role table cannot disagree, and a new route cannot skip the check (the tests walk
//! [`route_table`], i.e. the router's own list). The [`guard`] layer authenticates, checks the
//! role, applies the rate limit and writes the rate-limit headers on every authenticated answer.
//!
//! Headers, per draft-ietf-httpapi-ratelimit-headers (structured fields) and the older
//! `X-RateLimit-*` convention: `RateLimit-Policy: "pro";q=120;w=60`, `RateLimit: "pro";r=59;t=1`,
//! `X-RateLimit-Limit: 120`, `X-RateLimit-Remaining: 59`, `X-RateLimit-Reset: 1` (seconds until the
//! bucket is full again). A refusal is 429 with `Retry-After` and an `application/problem+json`
//! body (RFC 9457) naming the policy.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use kwi_store::Role;
use serde::Serialize;

use super::ApiError;
use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::limit::{Decision, Policy};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// `/metrics`: public unless configured otherwise, then admins only.
    Metrics,
    /// Signed-in callers with at least this role.
    Role(Role),
}

/// The router under construction and its role table.
pub struct Routes {
    router: Router<AppState>,
    table: Vec<(&'static str, Access)>,
}

impl Routes {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Registers `path` (every method of `methods`) for `access`.
    pub fn add(
        mut self,
        path: &'static str,
        access: Access,
        methods: MethodRouter<AppState>,
    ) -> Self {
        self.router = self.router.route(path, methods);
        self.table.push((path, access));
        self
    }

    /// The table (path, access) in registration order.
    pub fn table(&self) -> &[(&'static str, Access)] {
        &self.table
    }

    /// The router with the guard in front of every route registered here.
    pub fn finish(self, state: &AppState) -> Router<AppState> {
        let table: Arc<HashMap<&'static str, Access>> = Arc::new(self.table.into_iter().collect());
        self.router
            .route_layer(axum::middleware::from_fn_with_state(
                Guard {
                    state: state.clone(),
                    table,
                },
                guard,
            ))
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

/// Every route of the API with its access, as the router registers them (plus the public
/// description routes merged from `openapi.rs`).
pub fn route_table() -> Vec<(&'static str, Access)> {
    let mut t = super::api_routes().table().to_vec();
    t.extend(
        super::openapi::PUBLIC_PATHS
            .iter()
            .map(|p| (*p, Access::Public)),
    );
    t
}

#[derive(Clone)]
struct Guard {
    state: AppState,
    table: Arc<HashMap<&'static str, Access>>,
}

/// The access layer (see the module docs).
async fn guard(
    State(g): State<Guard>,
    matched: MatchedPath,
    mut req: Request,
    next: Next,
) -> Response {
    // A path missing from the table is refused (fail closed); `Routes::add` makes it impossible.
    let access = g
        .table
        .get(matched.as_str())
        .copied()
        .unwrap_or(Access::Role(Role::Admin));
    let auth = &g.state.auth;
    let needed = match access {
        Access::Public => return next.run(req).await,
        Access::Metrics if auth.metrics_public() => return next.run(req).await,
        Access::Metrics => Role::Admin,
        Access::Role(r) => r,
    };
    if !auth.enabled() {
        req.extensions_mut().insert(Principal::anonymous());
        return next.run(req).await;
    }
    let principal = match auth.authenticate(req.headers()).await {
        Ok(p) => p,
        Err(e) if e.is_store_down() => return ApiError::Unavailable(e.0).into_response(),
        Err(e) => return ApiError::Unauthorized(e.0).into_response(),
    };
    if principal.role < needed {
        return ApiError::Forbidden(format!(
            "{} needs the {needed} role; this caller is {}",
            matched.as_str(),
            principal.role
        ))
        .into_response();
    }
    let policy = principal.policy();
    let decision = auth.admit(&principal).await;
    if decision.revoked {
        return ApiError::Unauthorized("unknown or revoked API key".into()).into_response();
    }
    if !decision.allowed {
        let mut res = too_many(
            policy.name,
            format!(
                "the {} plan allows {} requests a minute ({} at once); retry in {} s",
                policy.name, policy.per_minute, policy.burst, decision.retry_after_secs
            ),
            decision.retry_after_secs,
        );
        rate_headers(res.headers_mut(), policy, &decision);
        return res;
    }
    req.extensions_mut().insert(principal);
    let mut res = next.run(req).await;
    rate_headers(res.headers_mut(), policy, &decision);
    res
}

/// Writes the rate-limit fields for `decision` under `policy`.
fn rate_headers(h: &mut axum::http::HeaderMap, policy: Policy, d: &Decision) {
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put(
        "ratelimit-policy",
        format!("\"{}\";q={};w=60", policy.name, policy.per_minute),
    );
    put(
        "ratelimit",
        format!("\"{}\";r={};t={}", policy.name, d.remaining, d.reset_secs),
    );
    // Integers straight into header values (no intermediate String).
    h.insert(
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderValue::from(policy.per_minute),
    );
    h.insert(
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderValue::from(d.remaining),
    );
    h.insert(
        HeaderName::from_static("x-ratelimit-reset"),
        HeaderValue::from(d.reset_secs),
    );
}

/// An RFC 9457 problem.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `https://kwi.dev/problems/rate-limited` or `.../quota-exceeded`.
    #[serde(rename = "type")]
    kind: String,
    /// `Too Many Requests`.
    title: &'static str,
    /// 429.
    status: u16,
    /// What was refused and when to retry.
    detail: String,
    /// The policy that refused: the plan's name for the rate limit, `monthly-lookups` for the
    /// quota, `login` for sign-in attempts.
    policy: String,
}

/// 429 with `Retry-After` and a problem body.
pub fn too_many(policy: &str, detail: String, retry_after_secs: u64) -> Response {
    let kind = if policy == "monthly-lookups" {
        "quota-exceeded"
    } else {
        "rate-limited"
    };
    let body = Problem {
        kind: format!("https://kwi.dev/problems/{kind}"),
        title: "Too Many Requests",
        status: 429,
        detail,
        policy: policy.to_string(),
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::CONTENT_TYPE, "application/problem+json".to_string()),
            (header::RETRY_AFTER, retry_after_secs.max(1).to_string()),
        ],
        json,
    )
        .into_response()
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("credentials required".into()))
    }
}
