//! `GET /v1/export/observations` and `GET /v1/export/predictions`: Arrow IPC stream or Parquet,
//! streamed as the database returns rows (see [`crate::export`]).

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use kwi_features::Keyword;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::ApiError;
use crate::app::AppState;
use crate::export::{ExportFormat, ExportKind, encode_kind};
use kwi_store::ExportFilter;

/// Most keywords one export filter may name.
pub const MAX_EXPORT_KEYWORDS: usize = 1000;

/// Query of the export endpoints.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    platform: Option<String>,
    keywords: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

fn date(field: &'static str, raw: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    raw.filter(|s| !s.trim().is_empty())
        .map(|s| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| ApiError::BadRequest {
                field,
                message: format!("`{s}` is not a date (YYYY-MM-DD)"),
            })
        })
        .transpose()
}

/// Parses the filter and the format (query `format=arrow|parquet`, else the `Accept` header, else
/// Arrow).
pub fn parse(
    q: &ExportQuery,
    headers: &HeaderMap,
) -> Result<(ExportFilter, ExportFormat), ApiError> {
    let platform = super::keywords::optional_platform(q.platform.as_deref())?;
    let keywords = q
        .keywords
        .as_deref()
        .filter(|k| !k.trim().is_empty())
        .map(|list| {
            let parsed = list
                .split(',')
                .filter(|k| !k.trim().is_empty())
                .map(|k| {
                    Keyword::parse(k).map_err(|e| ApiError::BadRequest {
                        field: "keywords",
                        message: format!("`{k}`: {e}"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if parsed.len() > MAX_EXPORT_KEYWORDS {
                return Err(ApiError::BadRequest {
                    field: "keywords",
                    message: format!(
                        "at most {MAX_EXPORT_KEYWORDS} keywords per export; got {}",
                        parsed.len()
                    ),
                });
            }
            Ok(parsed)
        })
        .transpose()?;
    let from = date("from", q.from.as_deref())?;
    let to = date("to", q.to.as_deref())?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::BadRequest {
            field: "from",
            message: format!("from {f} is after to {t}"),
        });
    }
    let format = match q.format.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => ExportFormat::parse(f).ok_or_else(|| ApiError::BadRequest {
            field: "format",
            message: format!("`{f}` is not a format: use arrow or parquet"),
        })?,
        None => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.contains(ExportFormat::Parquet.content_type()) {
                ExportFormat::Parquet
            } else {
                ExportFormat::Arrow
            }
        }
    };
    Ok((
        ExportFilter {
            platform,
            keywords,
            from,
            to,
        },
        format,
    ))
}

fn stream(
    state: AppState,
    kind: ExportKind,
    filter: ExportFilter,
    format: ExportFormat,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let send = |b: bytes::Bytes| {
            let tx = tx.clone();
            async move { tx.send(Ok(b)).await.is_ok() }
        };
        let store = state.store.clone();
        let result = encode_kind(store.as_ref(), kind, &filter, format, send).await;
        match result {
            Ok(rows) => {
                metrics::counter!("kwi_export_rows_total").increment(rows);
            }
            Err(e) => {
                // Headers are gone already: abort the body so the client sees a failed transfer,
                // never a silently truncated file.
                tracing::error!(error = %e, ?kind, "export failed");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        }
    });
    let name = match kind {
        ExportKind::Observations => "observations",
        ExportKind::Predictions => "predictions",
    };
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{}\"", format.extension()),
            ),
        ],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

/// `GET /v1/export/observations?platform=&keywords=a,b&from=&to=&format=arrow|parquet`.
#[utoipa::path(get, path = "/v1/export/observations", tag = "export",
    params(("platform" = Option<String>, Query, description = "Only this platform"),
           ("keywords" = Option<String>, Query, description = "Comma-separated keywords (at most 1000)"),
           ("from" = Option<String>, Query, description = "First period_start, YYYY-MM-DD (inclusive)"),
           ("to" = Option<String>, Query, description = "Last period_start, YYYY-MM-DD (inclusive)"),
           ("format" = Option<String>, Query, description = "arrow (default; or Accept: application/vnd.apache.arrow.stream) or parquet (or Accept: application/vnd.apache.parquet)")),
    responses((status = 200, description = "Arrow IPC stream or Parquet file, streamed: platform, keyword, period_start, search_volume, listing_count, price_median, price_p25, price_p75, review_count_median, rating_mean, top10_review_share, sponsored_share, cpc, source, collected_at", content_type = "application/vnd.apache.arrow.stream"),
              (status = 400, body = crate::http::error::ErrorResponse)))]
pub async fn observations(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let (filter, format) = parse(&q, &headers)?;
    Ok(stream(state, ExportKind::Observations, filter, format))
}

/// `GET /v1/export/predictions?platform=&keywords=&from=&to=&format=`: one row per forecast step.
#[utoipa::path(get, path = "/v1/export/predictions", tag = "export",
    params(("platform" = Option<String>, Query, description = "Only this platform"),
           ("keywords" = Option<String>, Query, description = "Comma-separated keywords (at most 1000)"),
           ("from" = Option<String>, Query, description = "First data_as_of, YYYY-MM-DD (inclusive)"),
           ("to" = Option<String>, Query, description = "Last data_as_of, YYYY-MM-DD (inclusive)"),
           ("format" = Option<String>, Query, description = "arrow (default) or parquet")),
    responses((status = 200, description = "Arrow IPC stream or Parquet: platform, keyword, model_version, data_as_of, created_at, horizon, step, mean, lo_80, hi_80, lo_95, hi_95, intervals (JSON of every level)", content_type = "application/vnd.apache.arrow.stream"),
              (status = 400, body = crate::http::error::ErrorResponse)))]
pub async fn predictions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let (filter, format) = parse(&q, &headers)?;
    Ok(stream(state, ExportKind::Predictions, filter, format))
}
