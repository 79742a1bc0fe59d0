//! One error type for every handler and every rejection: 4xx carry a JSON body naming the field
//! and the reason; 5xx are logged and return no internals. Requests the router or an extractor
//! refuses before any handler runs (unknown route, wrong method, unreadable query string, path or
//! body, body too large, wrong media type) answer in the same shape (see [`super::extract`]).

use axum::Json;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::serving::ServeError;

/// An API error.
#[derive(Debug)]
pub enum ApiError {
    /// The request is wrong: which field, and why.
    BadRequest {
        /// Offending field (path segment, query parameter or body field).
        field: &'static str,
        /// Why it is rejected.
        message: String,
    },
    /// The request could not be read into the operation's parameters or body (an extractor
    /// refused it before the handler ran): the field as the request named it (e.g.
    /// `keywords[3].platform`), or `query`, `path`, `body` when no single field is at fault.
    Unreadable {
        /// Offending field, or the part of the request.
        field: String,
        /// Why it is rejected.
        message: String,
    },
    /// No credentials, or credentials refused (the reason never repeats the credential).
    Unauthorized(String),
    /// The caller's role may not do this.
    Forbidden(String),
    /// Refused by a rate limit or quota: the policy, what, seconds until a retry may pass.
    TooMany {
        /// Policy name (`monthly-lookups`, `login`, a plan).
        policy: String,
        /// What was refused.
        detail: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A unique value is taken (e.g. a user's email): which field.
    Taken {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The thing asked for does not exist.
    NotFound(String),
    /// The path exists, the method does not (the router adds the `Allow` header).
    MethodNotAllowed(String),
    /// The request conflicts with the current state (e.g. a model that cannot be loaded).
    Conflict(String),
    /// The body is larger than the endpoint takes.
    PayloadTooLarge(String),
    /// The body stopped arriving (the edge's body timeout).
    RequestTimeout(String),
    /// A dependency the request needs is down (e.g. the identity provider).
    Unavailable(String),
    /// The body is not in a media type the endpoint takes.
    UnsupportedMediaType(String),
    /// The service failed (store, model, a task); the error is logged, never returned.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Serialize)]
struct Body<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    message: &'a str,
}

// Documentation types for the OpenAPI description: `Body` is what is serialised.

/// The body of every 4xx/5xx answer.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "bad_request", "field": "horizon",
    "message": "`0` is not a whole number of periods in 1..=104"}}))]
#[allow(dead_code)]
pub struct ErrorResponse {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// What kind of error; the HTTP status says the same.
    code: ErrorCode,
    /// The offending field: a path segment, query parameter or body field (`keywords[3].platform`),
    /// `content-type` for 415, or `query`, `path`, `body` when no single field is at fault. Present
    /// for `bad_request` and `unsupported_media_type` only.
    field: Option<String>,
    /// Why, in words.
    message: String,
}

/// The error codes, one per status.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ErrorCode {
    /// 400: a parameter or the body is invalid.
    BadRequest,
    /// 401: credentials missing or refused.
    Unauthorized,
    /// 403: the caller's role may not do this.
    Forbidden,
    /// 404: no such route, keyword, model version or asset.
    NotFound,
    /// 405: the path exists but not with this method (`Allow` lists the methods it has).
    MethodNotAllowed,
    /// 409: the request conflicts with the current state (an artifact that cannot be loaded).
    Conflict,
    /// 408: the body stopped arriving before it was complete.
    RequestTimeout,
    /// 413: the body is larger than the endpoint takes.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 429: a rate limit or quota (answered as `application/problem+json`, see `Problem`).
    TooManyRequests,
    /// 500: a dependency failed (details are logged, not returned).
    Internal,
    /// 503: a dependency the request needs is down.
    Unavailable,
}

impl ApiError {
    /// What the error tells the caller (the body's `message`; never internals).
    pub fn public_message(&self) -> String {
        match self {
            ApiError::BadRequest { message, .. }
            | ApiError::Unreadable { message, .. }
            | ApiError::Taken { message, .. } => message.clone(),
            ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::Conflict(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::RequestTimeout(m)
            | ApiError::Unavailable(m)
            | ApiError::UnsupportedMediaType(m) => m.clone(),
            ApiError::TooMany { detail, .. } => detail.to_string(),
            ApiError::Internal(_) => "internal server error".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field, message) = match &self {
            ApiError::BadRequest { field, message } => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                Some(*field),
                message.as_str(),
            ),
            ApiError::Unreadable { field, message } => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                Some(field.as_str()),
                message.as_str(),
            ),
            ApiError::Unauthorized(m) => {
                let mut res = (
                    StatusCode::UNAUTHORIZED,
                    Json(Body {
                        error: ErrorBody {
                            code: "unauthorized",
                            field: None,
                            message: m,
                        },
                    }),
                )
                    .into_response();
                res.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer realm=\"kwi\""),
                );
                return res;
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", None, m.as_str()),
            ApiError::TooMany {
                policy,
                detail,
                retry_after,
            } => return super::access::too_many(policy, detail.clone(), *retry_after),
            ApiError::Taken { field, message } => (
                StatusCode::CONFLICT,
                "conflict",
                Some(*field),
                message.as_str(),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", None, m.as_str()),
            ApiError::MethodNotAllowed(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                None,
                m.as_str(),
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", None, m.as_str()),
            ApiError::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
                m.as_str(),
            ),
            ApiError::PayloadTooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                None,
                m.as_str(),
            ),
            ApiError::RequestTimeout(m) => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                None,
                m.as_str(),
            ),
            ApiError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Some("content-type"),
                m.as_str(),
            ),
            ApiError::Internal(error) => {
                tracing::error!(error = %error, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    None,
                    "internal server error",
                )
            }
        };
        (
            status,
            Json(Body {
                error: ErrorBody {
                    code,
                    field,
                    message,
                },
            }),
        )
            .into_response()
    }
}

impl From<kwi_store::StoreError> for ApiError {
    fn from(e: kwi_store::StoreError) -> Self {
        use kwi_store::StoreError as E;
        match e {
            // Both say what is wrong without internals: no address, no query.
            E::Full => {
                tracing::error!("write refused: the disk holding the database is full");
                ApiError::Unavailable(
                    "the store's disk is full: writes are refused until space is freed; reads keep working"
                        .into(),
                )
            }
            E::Unreachable(detail) => {
                tracing::error!(%detail, "the store is unreachable");
                ApiError::Unavailable("the store is unreachable; retry shortly".into())
            }
            e => ApiError::Internal(Box::new(e)),
        }
    }
}

impl From<crate::auth::AccountError> for ApiError {
    fn from(e: crate::auth::AccountError) -> Self {
        use crate::auth::AccountError as E;
        match e {
            E::Field { field, message } => ApiError::BadRequest { field, message },
            E::Taken { field, message } => ApiError::Taken { field, message },
            E::Unauthorized(u) if u.is_store_down() => ApiError::Unavailable(u.0),
            E::Unauthorized(u) => ApiError::Unauthorized(u.0),
            E::Throttled(secs) => ApiError::TooMany {
                policy: "login".into(),
                detail: format!("too many sign-in attempts for this email; retry in {secs} s"),
                retry_after: secs,
            },
            E::NotFound(m) => ApiError::NotFound(m),
            E::Conflict(m) => ApiError::Conflict(m),
            E::Store(e) => e.into(),
            E::Internal(m) => ApiError::Internal(m.into()),
        }
    }
}

impl From<crate::auth::meter::OverQuota> for ApiError {
    fn from(q: crate::auth::meter::OverQuota) -> Self {
        let now = chrono::Utc::now();
        let next = crate::auth::meter::next_period_start(now);
        ApiError::TooMany {
            policy: "monthly-lookups".into(),
            detail: format!(
                "the plan's {} keyword lookups this month are used ({} so far); the quota renews on {}",
                q.limit,
                q.used,
                next.format("%Y-%m-%d")
            ),
            retry_after: (next - now).num_seconds().max(1) as u64,
        }
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

impl From<ServeError> for ApiError {
    fn from(e: ServeError) -> Self {
        match e {
            ServeError::UnknownKeyword { .. }
            | ServeError::NoVolume { .. }
            | ServeError::UnknownModel(_) => ApiError::NotFound(e.to_string()),
            ServeError::LevelNotCalibrated { .. } => ApiError::BadRequest {
                field: "levels",
                message: e.to_string(),
            },
            ServeError::Unloadable { .. } => ApiError::Conflict(e.to_string()),
            ServeError::Store(s) if s.is_transient() => {
                // Shared with the other waiters of a single flight: the error is rebuilt.
                match s.as_ref() {
                    kwi_store::StoreError::Unreachable(d) => {
                        kwi_store::StoreError::Unreachable(d.clone())
                    }
                    _ => kwi_store::StoreError::Full,
                }
                .into()
            }
            ServeError::Store(_) | ServeError::Model(_) | ServeError::Internal(_) => {
                ApiError::Internal(Box::new(e))
            }
        }
    }
}

/// Fallback for unknown routes.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

/// Fallback for a known path asked with a method it does not have (the router sets `Allow`).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
