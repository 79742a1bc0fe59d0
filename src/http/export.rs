//! `GET /v1/export/observations` and `GET /v1/export/predictions`: Arrow IPC stream or Parquet,
//! streamed as the database returns rows (see [`crate::export`]).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use kwi_features::Keyword;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::ApiError;
use super::error::ErrorResponse;
use super::extract::Query;
use super::openapi::{Binary, KeywordList, PlatformName};
use crate::app::AppState;
use crate::export::{ExportFormat, ExportKind, encode_kind};
use kwi_store::ExportFilter;

/// Most keywords one export filter may name.
pub const MAX_EXPORT_KEYWORDS: usize = 1000;

/// Query of the export endpoints (strings, so a bad value is a 400 naming the field).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only this platform (empty: every platform).
    #[param(value_type = Option<PlatformName>)]
    platform: Option<String>,
    /// Only these keywords, comma-separated (at most 1000; empty entries are skipped).
    #[param(value_type = Option<KeywordList>)]
    keywords: Option<String>,
    /// First period, inclusive: `period_start` of observations, `data_as_of` of predictions. A
    /// `from` after `to` selects nothing.
    #[param(value_type = Option<chrono::NaiveDate>)]
    from: Option<String>,
    /// Last period, inclusive (as `from`).
    #[param(value_type = Option<chrono::NaiveDate>)]
    to: Option<String>,
    /// `arrow` (Arrow IPC stream) or `parquet`; when absent, `Accept:
    /// application/vnd.apache.parquet` asks for Parquet, anything else gets Arrow.
    #[param(value_type = Option<ExportFormatName>)]
    format: Option<String>,
}

// Documentation type; `ExportFormat::parse` reads the parameter.
/// An export format (also taken in any case, and `arrows` or `ipc` for `arrow`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ExportFormatName {
    /// Arrow IPC stream (`application/vnd.apache.arrow.stream`).
    Arrow,
    /// Parquet (`application/vnd.apache.parquet`).
    Parquet,
}

/// An optional `YYYY-MM-DD` date (an RFC 3339 full date; empty means absent).
fn date(field: &'static str, raw: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                // chrono also takes `2018-1-5` and `+2018-01-05`; the description promises the
                // canonical form only.
                .filter(|d| d.format("%Y-%m-%d").to_string() == s)
                .ok_or_else(|| ApiError::BadRequest {
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
        .filter(|k| !k.is_empty())
        .map(|list| {
            // Empty entries (`a,,b`, a trailing comma) are skipped; a blank one is a bad keyword.
            let parsed = list
                .split(',')
                .filter(|k| !k.is_empty())
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
    // A `from` after `to` is an empty range, not an error: OpenAPI cannot state a constraint
    // between two parameters, and the description is the contract.
    let from = date("from", q.from.as_deref())?;
    let to = date("to", q.to.as_deref())?;
    let format = match q.format.as_deref().filter(|f| !f.is_empty()) {
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
    params(ExportQuery),
    responses((status = 200, description = "Arrow IPC stream or Parquet file, streamed (a failure mid-stream aborts the transfer): platform, keyword, period_start, search_volume, listing_count, price_median, price_p25, price_p75, review_count_median, rating_mean, top10_review_share, sponsored_share, cpc, competition_index, click_share, conversion_share, search_frequency_rank, source, collected_at",
                 content((Binary = "application/vnd.apache.arrow.stream"), (Binary = "application/vnd.apache.parquet")),
                 headers(("content-disposition" = String, description = "`attachment; filename=\"observations.arrows\"` or `observations.parquet`"))),
              (status = 400, description = "Bad platform, keyword, date or format", body = ErrorResponse)))]
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
    params(ExportQuery),
    responses((status = 200, description = "Arrow IPC stream or Parquet file, streamed (a failure mid-stream aborts the transfer): platform, keyword, model_version, data_as_of, created_at, horizon, step, mean, lo_80, hi_80, lo_95, hi_95, intervals (JSON of every level)",
                 content((Binary = "application/vnd.apache.arrow.stream"), (Binary = "application/vnd.apache.parquet")),
                 headers(("content-disposition" = String, description = "`attachment; filename=\"predictions.arrows\"` or `predictions.parquet`"))),
              (status = 400, description = "Bad platform, keyword, date or format", body = ErrorResponse)))]
pub async fn predictions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let (filter, format) = parse(&q, &headers)?;
    Ok(stream(state, ExportKind::Predictions, filter, format))
}
