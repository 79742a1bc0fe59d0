//! Arrow IPC stream and Parquet exports of stored observations and predictions, for data
//! scientists (`GET /v1/export/{observations,predictions}` and `kwi export`).
//!
//! Rows stream from the database ([`kwi_store::Store::export_observations`]) in chunks of
//! [`CHUNK_ROWS`]; each chunk becomes one Arrow record batch and is encoded at once, so an export of
//! any size holds one chunk (Arrow) or one row group of [`PARQUET_ROW_GROUP`] rows (Parquet) in
//! memory, never the whole result.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use chrono::NaiveDate;
use futures::{Stream, StreamExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use kwi_store::{ExportObservation, ExportPrediction, StoreError};

/// Rows per record batch.
pub const CHUNK_ROWS: usize = 8192;
/// Rows per Parquet row group (the most a Parquet export holds in memory).
pub const PARQUET_ROW_GROUP: usize = 65_536;

/// Export errors.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading from the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Encoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The receiver went away (client disconnected).
    #[error("export cancelled: the receiver went away")]
    Cancelled,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Arrow IPC stream (`application/vnd.apache.arrow.stream`).
    Arrow,
    /// Parquet (zstd-compressed).
    Parquet,
}

impl ExportFormat {
    /// HTTP media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Arrow => "arrows",
            Self::Parquet => "parquet",
        }
    }
    /// Parses `arrow` / `parquet` (the `format` query parameter).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "arrow" | "arrows" | "ipc" => Some(Self::Arrow),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }
}

/// What is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportKind {
    /// Stored observations, one row each.
    Observations,
    /// Persisted forecasts, one row per forecast step.
    Predictions,
}

fn date32(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32
}

fn utc_ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The float columns after `listing_count`, then `search_volume` (written first).
const OBS_F64: [&str; 12] = [
    "price_median",
    "price_p25",
    "price_p75",
    "review_count_median",
    "rating_mean",
    "top10_review_share",
    "sponsored_share",
    "cpc",
    "competition_index",
    "click_share",
    "conversion_share",
    "search_volume",
];

/// Schema of the observations export.
pub fn observations_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("platform", DataType::Utf8, false),
        Field::new("keyword", DataType::Utf8, false),
        Field::new("period_start", DataType::Date32, false),
        Field::new("search_volume", DataType::Float64, true),
        Field::new("listing_count", DataType::Int64, true),
    ];
    fields.extend(
        OBS_F64[..OBS_F64.len() - 1]
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, true)),
    );
    fields.push(Field::new("search_frequency_rank", DataType::Int64, true));
    fields.push(Field::new("source", DataType::Utf8, false));
    fields.push(Field::new("collected_at", utc_ts(), false));
    Arc::new(Schema::new(fields))
}

/// One record batch of observations.
pub fn observations_batch(rows: &[ExportObservation]) -> Result<RecordBatch, ExportError> {
    let n = rows.len();
    let mut platform = StringBuilder::with_capacity(n, n * 8);
    let mut keyword = StringBuilder::with_capacity(n, n * 16);
    let mut period = Date32Builder::with_capacity(n);
    let mut listing = Int64Builder::with_capacity(n);
    let mut rank = Int64Builder::with_capacity(n);
    let mut source = StringBuilder::with_capacity(n, n * 8);
    let mut collected = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut f: Vec<Float64Builder> = (0..OBS_F64.len())
        .map(|_| Float64Builder::with_capacity(n))
        .collect();
    for r in rows {
        platform.append_value(&r.platform);
        keyword.append_value(&r.keyword);
        period.append_value(date32(r.period_start));
        listing.append_option(r.listing_count);
        rank.append_option(r.search_frequency_rank);
        source.append_value(&r.source);
        collected.append_value(r.collected_at.timestamp_micros());
        for (b, v) in f.iter_mut().zip([
            r.price_median,
            r.price_p25,
            r.price_p75,
            r.review_count_median,
            r.rating_mean,
            r.top10_review_share,
            r.sponsored_share,
            r.cpc,
            r.competition_index,
            r.click_share,
            r.conversion_share,
            r.search_volume,
        ]) {
            b.append_option(v);
        }
    }
    let mut floats: Vec<ArrayRef> = f.iter_mut().map(|b| Arc::new(b.finish()) as _).collect();
    let volume = floats
        .pop()
        .expect("search_volume is the last float column");
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(platform.finish()),
        Arc::new(keyword.finish()),
        Arc::new(period.finish()),
        volume,
        Arc::new(listing.finish()),
    ];
    cols.extend(floats);
    cols.push(Arc::new(rank.finish()));
    cols.push(Arc::new(source.finish()));
    cols.push(Arc::new(collected.finish()));
    Ok(RecordBatch::try_new(observations_schema(), cols)?)
}

/// Schema of the predictions export (one row per forecast step).
pub fn predictions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("platform", DataType::Utf8, false),
        Field::new("keyword", DataType::Utf8, false),
        Field::new("model_version", DataType::Utf8, false),
        Field::new("data_as_of", DataType::Date32, false),
        Field::new("created_at", utc_ts(), false),
        Field::new("horizon", DataType::Int32, false),
        Field::new("step", DataType::Int32, false),
        Field::new("mean", DataType::Float64, false),
        Field::new("lo_80", DataType::Float64, true),
        Field::new("hi_80", DataType::Float64, true),
        Field::new("lo_95", DataType::Float64, true),
        Field::new("hi_95", DataType::Float64, true),
        // Every level of the forecast at this step: {"50": [lo, hi], ...}.
        Field::new("intervals", DataType::Utf8, false),
    ]))
}

fn band(q: &serde_json::Value, level: &str, side: &str, step: usize) -> Option<f64> {
    q.get(level)?.get(side)?.get(step)?.as_f64()
}

/// One record batch of predictions, expanded to one row per step.
pub fn predictions_batch(rows: &[ExportPrediction]) -> Result<RecordBatch, ExportError> {
    let n: usize = rows.iter().map(|r| r.mean.0.len()).sum();
    let mut platform = StringBuilder::with_capacity(n, n * 8);
    let mut keyword = StringBuilder::with_capacity(n, n * 16);
    let mut version = StringBuilder::with_capacity(n, n * 16);
    let mut as_of = Date32Builder::with_capacity(n);
    let mut created = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut horizon = Int32Builder::with_capacity(n);
    let mut step = Int32Builder::with_capacity(n);
    let mut mean = Float64Builder::with_capacity(n);
    let mut b: Vec<Float64Builder> = (0..4).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut intervals = StringBuilder::with_capacity(n, n * 48);
    for r in rows {
        let q = &r.quantiles.0;
        for (i, m) in r.mean.0.iter().enumerate() {
            platform.append_value(&r.platform);
            keyword.append_value(&r.keyword);
            version.append_value(&r.model_version);
            as_of.append_value(date32(r.data_as_of));
            created.append_value(r.created_at.timestamp_micros());
            horizon.append_value(r.horizon);
            step.append_value(i as i32 + 1);
            mean.append_value(*m);
            for (builder, (level, side)) in
                b.iter_mut()
                    .zip([("80", "lo"), ("80", "hi"), ("95", "lo"), ("95", "hi")])
            {
                builder.append_option(band(q, level, side, i));
            }
            let all: serde_json::Map<String, serde_json::Value> = q
                .as_object()
                .map(|levels| {
                    levels
                        .iter()
                        .map(|(l, v)| {
                            let lo = v.get("lo").and_then(|a| a.get(i)).cloned();
                            let hi = v.get("hi").and_then(|a| a.get(i)).cloned();
                            (l.clone(), serde_json::json!([lo, hi]))
                        })
                        .collect()
                })
                .unwrap_or_default();
            intervals.append_value(serde_json::Value::Object(all).to_string());
        }
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(platform.finish()),
        Arc::new(keyword.finish()),
        Arc::new(version.finish()),
        Arc::new(as_of.finish()),
        Arc::new(created.finish()),
        Arc::new(horizon.finish()),
        Arc::new(step.finish()),
        Arc::new(mean.finish()),
    ];
    cols.extend(b.iter_mut().map(|x| Arc::new(x.finish()) as ArrayRef));
    cols.push(Arc::new(intervals.finish()));
    Ok(RecordBatch::try_new(predictions_schema(), cols)?)
}

/// An incremental encoder: batches in, bytes out as soon as they exist.
enum Encoder {
    Arrow(StreamWriter<Vec<u8>>),
    Parquet(ArrowWriter<Vec<u8>>),
}

impl Encoder {
    fn new(format: ExportFormat, schema: &SchemaRef) -> Result<Self, ExportError> {
        Ok(match format {
            ExportFormat::Arrow => Self::Arrow(StreamWriter::try_new(Vec::new(), schema)?),
            ExportFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP))
                    .build();
                Self::Parquet(ArrowWriter::try_new(
                    Vec::new(),
                    schema.clone(),
                    Some(props),
                )?)
            }
        })
    }

    /// Encodes a batch; returns the bytes completed so far (Parquet completes a row group at a time).
    fn write(&mut self, batch: &RecordBatch) -> Result<Bytes, ExportError> {
        Ok(match self {
            Self::Arrow(w) => {
                w.write(batch)?;
                Bytes::from(std::mem::take(w.get_mut()))
            }
            Self::Parquet(w) => {
                w.write(batch)?;
                Bytes::from(std::mem::take(w.inner_mut()))
            }
        })
    }

    /// Ends the stream (Arrow end-of-stream marker; Parquet last row group and footer).
    fn finish(self) -> Result<Bytes, ExportError> {
        Ok(match self {
            Self::Arrow(mut w) => {
                w.finish()?;
                Bytes::from(w.into_inner()?)
            }
            Self::Parquet(w) => Bytes::from(w.into_inner()?),
        })
    }
}

/// Streams one kind of export from the store through [`encode`] into `sink` (the CLI and the HTTP
/// handler both call this).
pub async fn encode_kind<F, Fut>(
    store: &dyn kwi_store::Store,
    kind: ExportKind,
    filter: &kwi_store::ExportFilter,
    format: ExportFormat,
    sink: F,
) -> Result<u64, ExportError>
where
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    match kind {
        ExportKind::Observations => {
            encode(
                store.export_observations(filter),
                format,
                observations_schema(),
                observations_batch,
                sink,
            )
            .await
        }
        ExportKind::Predictions => {
            encode(
                store.export_predictions(filter),
                format,
                predictions_schema(),
                predictions_batch,
                sink,
            )
            .await
        }
    }
}

/// Encodes a row stream chunk by chunk, handing each encoded piece to `sink` (which returns
/// `false` when the receiver is gone). Returns the number of rows read.
pub async fn encode<T, S, F, Fut>(
    rows: S,
    format: ExportFormat,
    schema: SchemaRef,
    to_batch: fn(&[T]) -> Result<RecordBatch, ExportError>,
    mut sink: F,
) -> Result<u64, ExportError>
where
    S: Stream<Item = Result<T, StoreError>>,
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut enc = Encoder::new(format, &schema)?;
    let mut chunks = std::pin::pin!(rows.chunks(CHUNK_ROWS));
    let mut total = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.into_iter().collect::<Result<Vec<T>, _>>()?;
        total += chunk.len() as u64;
        let bytes = enc.write(&to_batch(&chunk)?)?;
        if !bytes.is_empty() && !sink(bytes).await {
            return Err(ExportError::Cancelled);
        }
    }
    let tail = enc.finish()?;
    if !sink(tail).await {
        return Err(ExportError::Cancelled);
    }
    Ok(total)
}
