//! One error type for every handler: 4xx carry a JSON body naming the field and the reason; 5xx are
//! logged and return no internals.

use axum::Json;
use axum::http::StatusCode;
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
    /// The thing asked for does not exist.
    NotFound(String),
    /// The request conflicts with the current state (e.g. a model that cannot be loaded).
    Conflict(String),
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

/// The body of every 4xx/5xx answer (documentation type for the OpenAPI description).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorResponse {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// `bad_request`, `not_found`, `conflict`, `unsupported_media_type` or `internal`.
    code: String,
    /// The offending field (path segment, query parameter or body field), for `bad_request`.
    field: Option<String>,
    /// Why.
    message: String,
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
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", None, m.as_str()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", None, m.as_str()),
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
        ApiError::Internal(Box::new(e))
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
            ServeError::Store(_) | ServeError::Model(_) | ServeError::Internal(_) => {
                ApiError::Internal(Box::new(e))
            }
        }
    }
}

/// Fallback for unknown routes.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}
