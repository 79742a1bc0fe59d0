//! Storage behind one trait, with a PostgreSQL implementation (the real one) and an SQLite one (the
//! embedded default). Both are sqlx pools with their own migrations folder; the store is written
//! once in `sql.rs`, generic over the database, and each backend supplies only what differs.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use kwi_features::ingest::Observation;
use kwi_features::{Keyword, Platform};
pub use kwi_models::artifact::ModelKind;
use serde::Serialize;

mod accounts;
mod collect;
mod lease;
mod postgres;
mod sql;
mod sqlite;

pub use accounts::{
    Account, Accounts, ApiKeyRecord, AuditRecord, KeyOwner, NewApiKey, NewRefreshToken, NewUser,
    Plan, PlanName, RefreshOutcome, Role, SearchRecord, TopSearch, UsageDelta, UserPatch,
    month_bounds,
};
pub use collect::{
    Cadence, DeadLetter, Job, JobState, Jobs, MAX_RUN_NAME, NewJob, RawResponse, ReforecastChunk,
    ReforecastQueued, ReforecastStatus, Source, SourceStatus, StoredRaw, Watch, idem_key,
    reforecast_key, report_key,
};
pub use lease::{INSIGHTS_LEASE, Leases, PURGE_LEASE, SCHEDULER_LEASE, host_name, instance_id};
pub use postgres::PgStore;
pub use sqlite::{SqliteStore, check_sqlite_file, checkpoint_sqlite_file};

/// Rows written per INSERT statement (16 binds each: below both backends' bind-parameter limits).
pub const IMPORT_BATCH: usize = 1000;

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a query.
    #[error("database: {0}")]
    Sqlx(sqlx::Error),
    /// The disk holding the database is full: the write was refused and rolled back (SQLite's
    /// `SQLITE_FULL`, PostgreSQL's `53100 disk_full`). Reads keep working.
    #[error(
        "the disk holding the database is full: the write was refused and none of it was kept; free space and retry"
    )]
    Full,
    /// The database cannot be reached or has no free connection in time (down, restarting,
    /// overloaded): the operation did not run.
    #[error("the database cannot be reached: {0}")]
    Unreachable(String),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no backend we have.
    #[error("unsupported database URL `{0}`: expected postgres://... or sqlite:PATH")]
    UnsupportedUrl(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A unique value (named) is already taken.
    #[error("{0} already taken")]
    Conflict(String),
    /// The backend cannot do this (what to do instead is in the message).
    #[error("{0}")]
    Unsupported(String),
    /// The caller asked for something out of range (what and why in the message).
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("13" | "53100")) => {
                StoreError::Full
            }
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => StoreError::Full,
            sqlx::Error::PoolTimedOut => StoreError::Unreachable(
                "no connection became free in time (the database is down or overloaded)".into(),
            ),
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unreachable(e.to_string())
            }
            _ => StoreError::Sqlx(e),
        }
    }
}

impl StoreError {
    /// Whether the operation may succeed if retried later without change (the database was
    /// unreachable or its disk full), as opposed to a refusal of the request itself.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Full | StoreError::Unreachable(_))
    }
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// PostgreSQL server.
    Postgres,
    /// Embedded SQLite file.
    Sqlite,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    /// New rows.
    pub inserted: u64,
    /// Existing rows whose values changed.
    pub updated: u64,
    /// Rows already stored with the same values.
    pub unchanged: u64,
}

/// One stored observation, as read back for a keyword's history.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPoint {
    /// First day of the period.
    pub period_start: NaiveDate,
    /// Search volume (platform units; relative interest for `google`).
    pub search_volume: Option<f64>,
    /// Number of listings competing for the keyword.
    pub listing_count: Option<i64>,
    /// Median listing price.
    pub price_median: Option<f64>,
    /// Cost per click, where the platform sells ads.
    pub cpc: Option<f64>,
    /// Where the observation came from.
    pub source: String,
}

/// The current snapshot of a keyword (table `keyword_data`).
#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    /// Latest search volume.
    pub search_volume: Option<f64>,
    /// Competition score 0–100, once scored.
    pub competition: Option<f64>,
    /// Latest cost per click.
    pub cpc: Option<f64>,
    /// Last 52 `[period_start, search_volume]` pairs, oldest first.
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<(NaiveDate, f64)>))]
    pub trend_data: serde_json::Value,
    /// When the snapshot was last refreshed.
    pub last_updated: DateTime<Utc>,
}

/// A row of the model registry (table `models`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelRecord {
    /// Model family name.
    pub name: String,
    /// Unique version.
    pub version: String,
    /// What the model does.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, pattern = "^(forecaster|competition)$", example = "forecaster")
    )]
    pub kind: ModelKind,
    /// Hash of the feature schema it consumes.
    pub feature_schema_hash: String,
    /// Evaluation metrics, as the training run recorded them (free-form, by name).
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = std::collections::HashMap<String, serde_json::Value>)
    )]
    pub metrics: serde_json::Value,
    /// Artifact location (folder path).
    pub artifact: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Whether it is the active model of its kind.
    pub active: bool,
}

/// One computed forecast, as persisted in `predictions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionRecord {
    /// Platform.
    pub platform: Platform,
    /// Keyword.
    pub keyword: Keyword,
    /// Model version that produced it.
    pub model_version: String,
    /// Last period of the data it was computed from.
    pub data_as_of: NaiveDate,
    /// Steps.
    pub horizon: i32,
    /// Mean per step.
    pub mean: Vec<f64>,
    /// Interval levels in percent, in the order the forecast lists them.
    pub levels: Vec<f64>,
    /// Lower bounds, level-major: `lo[j * horizon + k]` is level `j`'s bound at step `k + 1`.
    pub lo: Vec<f64>,
    /// Upper bounds, laid out as `lo`.
    pub hi: Vec<f64>,
}

impl PredictionRecord {
    /// The intervals as the JSON document SQLite stores (it has no arrays):
    /// `{"80": {"lo": [...], "hi": [...]}, ...}`. PostgreSQL stores the arrays and its export
    /// rebuilds this same document in SQL.
    pub fn quantiles_json(&self) -> serde_json::Value {
        let h = self.mean.len();
        let band = |v: &[f64], j: usize| v.get(j * h..(j + 1) * h).unwrap_or_default().to_vec();
        serde_json::Value::Object(
            self.levels
                .iter()
                .enumerate()
                .map(|(j, l)| {
                    (
                        format!("{l}"),
                        serde_json::json!({ "lo": band(&self.lo, j), "hi": band(&self.hi, j) }),
                    )
                })
                .collect(),
        )
    }
}

/// A keyword found by search.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    /// Platform.
    pub platform: String,
    /// Keyword.
    pub keyword: String,
    /// Latest search volume.
    pub search_volume: Option<f64>,
    /// True when the keyword starts with the query (ranked first).
    pub prefix: bool,
}

/// Which rows an export returns. Dates bound `period_start` for observations and `data_as_of` for
/// predictions (both inclusive).
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Only this platform.
    pub platform: Option<Platform>,
    /// Only these keywords (any platform unless `platform` is set).
    pub keywords: Option<Vec<Keyword>>,
    /// From this date.
    pub from: Option<NaiveDate>,
    /// Up to this date.
    pub to: Option<NaiveDate>,
}

/// A list of `(platform, keyword)` as the JSON array both backends take as one parameter.
pub fn keys_json(keys: &[(Platform, Keyword)]) -> String {
    serde_json::to_string(
        &keys
            .iter()
            .map(|(p, k)| [p.as_str(), k.as_str()])
            .collect::<Vec<_>>(),
    )
    .expect("strings serialise")
}

impl ExportFilter {
    /// The keyword list as a JSON array (how both backends take a list parameter).
    pub fn keywords_json(&self) -> Option<String> {
        self.keywords.as_ref().map(|k| {
            serde_json::to_string(&k.iter().map(Keyword::as_str).collect::<Vec<_>>())
                .expect("strings serialise")
        })
    }
}

/// One stored observation, every column (the observations export).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ExportObservation {
    /// Platform.
    pub platform: String,
    /// Keyword.
    pub keyword: String,
    /// First day of the period.
    pub period_start: NaiveDate,
    /// Search volume.
    pub search_volume: Option<f64>,
    /// Listings competing for the keyword.
    pub listing_count: Option<i64>,
    /// Median price.
    pub price_median: Option<f64>,
    /// 25th percentile price.
    pub price_p25: Option<f64>,
    /// 75th percentile price.
    pub price_p75: Option<f64>,
    /// Median review count.
    pub review_count_median: Option<f64>,
    /// Mean rating 0..=5.
    pub rating_mean: Option<f64>,
    /// Reviews held by the top 10 results.
    pub top10_review_share: Option<f64>,
    /// Share of sponsored results.
    pub sponsored_share: Option<f64>,
    /// Cost per click.
    pub cpc: Option<f64>,
    /// Keyword Planner's competition index, 0..=100.
    pub competition_index: Option<f64>,
    /// Brand Analytics' search frequency rank (1 = most searched).
    pub search_frequency_rank: Option<i64>,
    /// Summed click share of the top clicked products, 0..=1.
    pub click_share: Option<f64>,
    /// Summed conversion share of the top clicked products, 0..=1.
    pub conversion_share: Option<f64>,
    /// Where it came from.
    pub source: String,
    /// When it was stored.
    pub collected_at: DateTime<Utc>,
}

/// One persisted forecast (the predictions export; one row per forecast, expanded per step by the
/// encoder).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ExportPrediction {
    /// Platform.
    pub platform: String,
    /// Keyword.
    pub keyword: String,
    /// Model version.
    pub model_version: String,
    /// Last period of the data used.
    pub data_as_of: NaiveDate,
    /// When it was computed.
    pub created_at: DateTime<Utc>,
    /// Steps.
    pub horizon: i32,
    /// Mean per step.
    pub mean: sqlx::types::Json<Vec<f64>>,
    /// `{"80": {"lo": [...], "hi": [...]}, ...}`.
    pub quantiles: sqlx::types::Json<serde_json::Value>,
}

/// A keyword's competition score as stored (table `competition_scores`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompetitionRow {
    /// Platform.
    pub platform: Platform,
    /// Keyword.
    pub keyword: Keyword,
    /// 0..=100.
    pub score: f64,
    /// `low`, `medium`, `high` or `very high`.
    pub band: String,
    /// `[{factor, label, points}]`.
    pub contributions: serde_json::Value,
    /// Competition model version.
    pub model_version: String,
    /// Whether the model was trained on generated (synthetic) data.
    pub synthetic: bool,
}

/// A keyword's trend insights and opportunity as stored (table `keyword_insights`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InsightRow {
    /// Platform.
    pub platform: Platform,
    /// Keyword.
    pub keyword: Keyword,
    /// `rising`, `falling` or `flat`.
    pub direction: String,
    /// Forecast growth over the horizon, percent.
    pub growth_pct: f64,
    /// Current level (mean of the last 4 periods).
    pub current: f64,
    /// Forecast level at the end of the horizon (mean of the last 4 forecast steps).
    pub forecast_end: f64,
    /// Horizon in periods.
    pub horizon: i32,
    /// `{in_weeks, value, date}` or null.
    pub peak: Option<serde_json::Value>,
    /// `{date, actual, lower, upper}` or null.
    pub anomaly: Option<serde_json::Value>,
    /// Opportunity 0..=100.
    pub opportunity: Option<f64>,
    /// One line explaining the opportunity.
    pub opportunity_explanation: Option<String>,
    /// Forecaster version.
    pub model_version: String,
}

/// One mover of `GET /v1/trends`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrendItem {
    /// Platform.
    pub platform: String,
    /// Keyword.
    pub keyword: String,
    /// Forecast growth over the horizon, percent.
    pub growth_pct: f64,
    /// Current level (mean of the last 4 periods).
    pub current: f64,
    /// Forecast level at the end of the horizon.
    pub forecast_end: f64,
    /// Horizon in periods.
    pub horizon: i32,
}

/// The storage interface the rest of the service talks to.
#[async_trait]
pub trait Store: Accounts + Jobs + Leases + Send + Sync + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Cheap liveness check.
    async fn ping(&self) -> Result<()>;
    /// Writes a consistent copy of the whole database to the new file `dest`, while the store
    /// stays in use (SQLite: `VACUUM INTO`). PostgreSQL answers [`StoreError::Unsupported`]:
    /// `pg_dump` is its tool.
    async fn backup_into(&self, dest: &std::path::Path) -> Result<()>;
    /// Upserts observations in ONE transaction (all or nothing) and refreshes the snapshots of the
    /// keywords that changed. `progress` is called with the number of rows written so far.
    async fn import(
        &self,
        rows: &[Observation],
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<ImportCounts>;
    /// Number of stored observations.
    async fn observation_count(&self) -> Result<i64>;
    /// Number of distinct (platform, keyword) pairs observed.
    async fn keyword_count(&self) -> Result<i64>;
    /// A keyword's observations, oldest first.
    async fn history(&self, platform: Platform, keyword: &Keyword) -> Result<Vec<HistoryPoint>>;
    /// When the keyword's data last changed (`keyword_data.last_updated`), the data version in
    /// forecast cache keys: one indexed lookup, cheap enough for every request.
    async fn data_version(
        &self,
        platform: Platform,
        keyword: &Keyword,
    ) -> Result<Option<DateTime<Utc>>>;
    /// When any keyword's data last changed (the newest `keyword_data.last_updated`): the server
    /// polls it to know when its in-process copy of per-keyword data versions must be dropped.
    async fn latest_data_change(&self) -> Result<Option<DateTime<Utc>>>;
    /// A keyword's snapshot, if it has been observed.
    async fn snapshot(&self, platform: Platform, keyword: &Keyword) -> Result<Option<Snapshot>>;
    /// Observations with a search volume, optionally of one platform and at most `max_rows` of
    /// them, ordered by platform, keyword, period (the training binary's input; a capped read
    /// calibrates the built-in baseline at start-up).
    async fn observations(
        &self,
        platform: Option<Platform>,
        max_rows: Option<i64>,
    ) -> Result<Vec<Observation>>;
    /// Registers a model; with `activate`, makes it the active one of its kind, in one transaction.
    async fn register_model(&self, record: &ModelRecord, activate: bool) -> Result<()>;
    /// Makes `version` the active model of its kind; `Ok(false)` if no such version.
    async fn activate_model(&self, version: &str) -> Result<bool>;
    /// Registered models, newest first.
    async fn models(&self) -> Result<Vec<ModelRecord>>;
    /// Keywords starting with `q` (first) or resembling it (trigram similarity on PostgreSQL,
    /// substring on SQLite), by volume; optionally one platform.
    async fn search(
        &self,
        q: &str,
        platform: Option<Platform>,
        limit: i64,
    ) -> Result<Vec<SearchHit>>;
    /// The keyword's snapshot on every platform that has it.
    async fn markets(&self, keyword: &Keyword) -> Result<Vec<(String, Snapshot)>>;
    /// Persists computed forecasts in one transaction.
    async fn insert_predictions(&self, rows: &[PredictionRecord]) -> Result<()>;
    /// Number of persisted predictions for a keyword (all models).
    async fn prediction_count(&self, platform: Platform, keyword: &Keyword) -> Result<i64>;
    /// Data versions (`keyword_data.last_updated`) of many keywords in one query; keywords the
    /// store does not have are absent from the answer.
    async fn data_versions_many(
        &self,
        keys: &[(Platform, Keyword)],
    ) -> Result<Vec<((Platform, Keyword), DateTime<Utc>)>>;
    /// The search volumes `(period, volume)` of each keyword, oldest first (rows without a volume
    /// left out), in one query, in `keys` order (an unknown keyword gets an empty list): what a
    /// forecast reads, without the listing columns of [`Store::history`]. Read from the copy each
    /// keyword's snapshot row keeps (refreshed by the import, one row per keyword), not aggregated
    /// from the observations per call.
    async fn volumes_many(
        &self,
        keys: &[(Platform, Keyword)],
    ) -> Result<Vec<Vec<(chrono::NaiveDate, f64)>>>;
    /// Streams stored observations matching `filter`, by platform, keyword, period (never all in
    /// memory: rows arrive as the database sends them).
    fn export_observations<'a>(
        &'a self,
        filter: &'a ExportFilter,
    ) -> futures::stream::BoxStream<'a, Result<ExportObservation>>;
    /// Streams persisted predictions matching `filter`, by platform, keyword, creation time.
    fn export_predictions<'a>(
        &'a self,
        filter: &'a ExportFilter,
    ) -> futures::stream::BoxStream<'a, Result<ExportPrediction>>;
    /// Replaces every stored competition score and insight (and `keyword_data.competition`) in ONE
    /// transaction: readers see the old set or the new one, never a mix.
    async fn replace_insights(
        &self,
        scores: &[CompetitionRow],
        insights: &[InsightRow],
    ) -> Result<()>;
    /// Movers of one direction (`rising`: largest growth first; `falling`: largest fall first).
    async fn trends(
        &self,
        platform: Option<Platform>,
        direction: &str,
        limit: i64,
    ) -> Result<Vec<TrendItem>>;
    /// A keyword's stored competition score and insights (each absent until computed).
    async fn keyword_insight(
        &self,
        platform: Platform,
        keyword: &Keyword,
    ) -> Result<(Option<CompetitionRow>, Option<InsightRow>)>;
}

/// `url` when set and non-blank, else the embedded SQLite file `kwi.db` in `data_dir` (the rule
/// every binary of the project follows).
pub fn url_or_embedded(url: Option<&str>, data_dir: &std::path::Path) -> String {
    match url {
        Some(url) if !url.trim().is_empty() => url.to_string(),
        _ => format!("sqlite:{}", data_dir.join("kwi.db").display()),
    }
}

/// Hides a password in a URL for messages and logs (`postgres://kwi:***@db/kwi`).
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

/// Why [`open`] failed, naming the database with its password hidden.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database could not be reached or opened.
    #[error("cannot open database {url}: {source}")]
    Connect {
        /// The URL, redacted.
        url: String,
        /// Why.
        source: StoreError,
    },
    /// The migrations could not be applied.
    #[error("cannot migrate database {url}: {source}")]
    Migrate {
        /// The URL, redacted.
        url: String,
        /// Why.
        source: StoreError,
    },
}

/// Opens the store `url` names and applies its migrations: what every binary does before using a
/// store. Errors name the database with its password hidden ([`redact`]).
pub async fn open(url: &str) -> std::result::Result<Arc<dyn Store>, OpenError> {
    let store = connect(url).await.map_err(|source| OpenError::Connect {
        url: redact(url),
        source,
    })?;
    store.migrate().await.map_err(|source| OpenError::Migrate {
        url: redact(url),
        source,
    })?;
    Ok(store)
}

/// Opens the store a URL names (`postgres://`, `postgresql://` or `sqlite:`), creating an SQLite
/// file (and its directory) if needed. Does not migrate.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        Ok(Arc::new(
            SqliteStore::open(path.trim_start_matches("//")).await?,
        ))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
