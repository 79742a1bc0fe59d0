//! What both backends share: the SQL both accept (SQLite takes `$1` placeholders,
//! `ON CONFLICT ... DO UPDATE ... WHERE`, `IS DISTINCT FROM` and `RETURNING`), the rows it reads
//! (each decoded by column name through `sqlx::FromRow`), and [`SqlStore`], the one [`Store`]
//! implementation, generic over a [`Dialect`]: a backend supplies only its migrations, the
//! statements whose SQL differs and its two hot-path functions. It is plain generic code over
//! sqlx's `Database` (no macro): the price is the list of bounds on the impl.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use kwi_features::ingest::Observation;
use kwi_features::{Keyword, Platform};
use serde_json::Value;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::types::Json;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Type,
};

use crate::{
    Backend, CompetitionRow, ExportFilter, ExportObservation, ExportPrediction, HistoryPoint,
    IMPORT_BATCH, ImportCounts, InsightRow, ModelRecord, PredictionRecord, Result, SearchHit,
    Snapshot, Store, StoreError, TrendItem, keys_json,
};

/// Column list of `keyword_observations` in bind order.
pub const OBS_INSERT_HEAD: &str = "INSERT INTO keyword_observations (id, platform, keyword, period_start, \
    search_volume, listing_count, price_median, price_p25, price_p75, review_count_median, rating_mean, \
    top10_review_share, sponsored_share, cpc, competition_index, search_frequency_rank, click_share, \
    conversion_share, source, collected_at) ";

/// Upsert tail: only rows whose values differ are updated (and returned), so a re-import changes nothing.
pub const OBS_UPSERT_TAIL: &str = " ON CONFLICT (platform, keyword, period_start, source) DO UPDATE SET \
    search_volume = excluded.search_volume, listing_count = excluded.listing_count, \
    price_median = excluded.price_median, price_p25 = excluded.price_p25, price_p75 = excluded.price_p75, \
    review_count_median = excluded.review_count_median, rating_mean = excluded.rating_mean, \
    top10_review_share = excluded.top10_review_share, sponsored_share = excluded.sponsored_share, \
    cpc = excluded.cpc, competition_index = excluded.competition_index, \
    search_frequency_rank = excluded.search_frequency_rank, click_share = excluded.click_share, \
    conversion_share = excluded.conversion_share, collected_at = excluded.collected_at \
    WHERE keyword_observations.search_volume IS DISTINCT FROM excluded.search_volume \
    OR keyword_observations.listing_count IS DISTINCT FROM excluded.listing_count \
    OR keyword_observations.price_median IS DISTINCT FROM excluded.price_median \
    OR keyword_observations.price_p25 IS DISTINCT FROM excluded.price_p25 \
    OR keyword_observations.price_p75 IS DISTINCT FROM excluded.price_p75 \
    OR keyword_observations.review_count_median IS DISTINCT FROM excluded.review_count_median \
    OR keyword_observations.rating_mean IS DISTINCT FROM excluded.rating_mean \
    OR keyword_observations.top10_review_share IS DISTINCT FROM excluded.top10_review_share \
    OR keyword_observations.sponsored_share IS DISTINCT FROM excluded.sponsored_share \
    OR keyword_observations.cpc IS DISTINCT FROM excluded.cpc \
    OR keyword_observations.competition_index IS DISTINCT FROM excluded.competition_index \
    OR keyword_observations.search_frequency_rank IS DISTINCT FROM excluded.search_frequency_rank \
    OR keyword_observations.click_share IS DISTINCT FROM excluded.click_share \
    OR keyword_observations.conversion_share IS DISTINCT FROM excluded.conversion_share \
    RETURNING id";

/// History of one keyword, oldest first.
pub const HISTORY: &str = "SELECT period_start, search_volume, listing_count, price_median, cpc, source \
    FROM keyword_observations WHERE platform = $1 AND keyword = $2 ORDER BY period_start, source";

/// Snapshot of one keyword.
pub const SNAPSHOT: &str = "SELECT search_volume, competition, cpc, trend_data, last_updated \
    FROM keyword_data WHERE platform = $1 AND keyword = $2";

/// Observations with a search volume for training.
pub const OBSERVATIONS: &str = "SELECT platform, keyword, period_start, search_volume, source \
    FROM keyword_observations WHERE search_volume IS NOT NULL AND ($1 IS NULL OR platform = $1) \
    ORDER BY platform, keyword, period_start, source LIMIT $2";

/// Registry insert.
pub const MODEL_INSERT: &str = "INSERT INTO models (id, name, version, kind, feature_schema_hash, metrics, \
    artifact, created_at, active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Clears the active flag of a kind's models (binds: false, kind, true).
pub const MODEL_DEACTIVATE_KIND: &str =
    "UPDATE models SET active = $1 WHERE kind = $2 AND active = $3";

/// Registry listing.
pub const MODELS: &str = "SELECT name, version, kind, feature_schema_hash, metrics, artifact, created_at, active \
    FROM models ORDER BY created_at DESC, version DESC";

/// Snapshots of one keyword on every platform.
pub const MARKETS: &str = "SELECT platform, search_volume, competition, cpc, trend_data, last_updated \
    FROM keyword_data WHERE keyword = $1 ORDER BY platform";

/// Competition score insert (rows of [`CompetitionRow`]).
pub const COMPETITION_INSERT_HEAD: &str = "INSERT INTO competition_scores (platform, keyword, score, band, \
    contributions, model_version, synthetic, computed_at) ";

/// Insight insert (rows of [`InsightRow`]).
pub const INSIGHT_INSERT_HEAD: &str = "INSERT INTO keyword_insights (platform, keyword, direction, growth_pct, \
    current, forecast_end, horizon, peak, anomaly, opportunity, opportunity_explanation, model_version, computed_at) ";

/// Stored competition score of one keyword.
pub const COMPETITION_ONE: &str = "SELECT score, band, contributions, model_version, synthetic \
    FROM competition_scores WHERE platform = $1 AND keyword = $2";

/// Stored insights of one keyword.
pub const INSIGHT_ONE: &str = "SELECT direction, growth_pct, current, forecast_end, horizon, peak, anomaly, \
    opportunity, opportunity_explanation, model_version FROM keyword_insights WHERE platform = $1 AND keyword = $2";

/// Rows per multi-row insert of scores and insights (13 binds each: below both backends' limits).
pub const INSIGHT_BATCH: usize = 500;

/// Escapes `%`, `_` and `\` for a LIKE pattern (used with `ESCAPE '\'`).
pub fn like_prefix(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 1);
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// What differs between the backends: which one it is, its migrations, the statements whose SQL
/// differs, and the two hot-path functions that use the backend's own column types (PostgreSQL
/// arrays, SQLite text lists). Implemented for [`sqlx::Postgres`] in `postgres.rs` and for
/// [`sqlx::Sqlite`] in `sqlite.rs`; everything else is [`SqlStore`]'s, written once.
pub trait Dialect: Database<Arguments: IntoArguments<Self>, Connection: Migrate> {
    /// Which backend this is.
    const BACKEND: Backend;
    /// How a transaction that will write begins. SQLite: `BEGIN IMMEDIATE`, which takes the write
    /// lock at once and waits for it (busy timeout); a plain `BEGIN` reads first and, when another
    /// connection is writing by the time it writes, fails at once with `database is locked`
    /// (SQLite cannot wait there without risking a deadlock). PostgreSQL: `BEGIN`.
    const BEGIN_WRITE: &'static str;
    /// The backend's migrations folder.
    const MIGRATOR: Migrator;
    /// Refreshes one keyword's snapshot row from its observations (binds: id, platform, keyword,
    /// now); JSON aggregation and the volume copy differ between the backends.
    const REFRESH: &'static str;
    /// Keyword search (binds: query, LIKE prefix, platform or NULL, limit); the columns of
    /// [`SearchHit`].
    const SEARCH: &'static str;
    /// Observations export (binds: platform, keywords as a JSON array, from, to); the columns of
    /// [`ExportObservation`].
    const EXPORT_OBSERVATIONS: &'static str;
    /// Predictions export, same binds (dates bound `data_as_of`); the columns of
    /// [`ExportPrediction`].
    const EXPORT_PREDICTIONS: &'static str;
    /// Data versions of a JSON list of `[platform, keyword]` pairs (columns `platform`, `keyword`,
    /// `last_updated`).
    const VERSIONS_MANY: &'static str;
    /// Movers of one direction (binds: direction, platform or NULL, limit); the columns of
    /// [`TrendItem`].
    const TRENDS: &'static str;
    /// The clause that makes a queue claim skip rows other workers hold (PostgreSQL's
    /// `FOR UPDATE SKIP LOCKED`; empty on SQLite, whose single writer is already exclusive).
    const SKIP_LOCKED: &'static str;

    /// Rows a statement changed.
    fn rows_affected(r: &Self::QueryResult) -> u64;

    /// Fills `out[i]` with the volumes of the `i`-th pair of `keys_json` (one query).
    fn volumes_many(
        pool: &Pool<Self>,
        keys_json: &str,
        out: &mut [Vec<(NaiveDate, f64)>],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Persists forecasts inside the caller's transaction.
    fn insert_predictions(
        conn: &mut Self::Connection,
        rows: &[PredictionRecord],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// A [`Store`] on a pool of database `DB`: [`crate::PgStore`] and [`crate::SqliteStore`].
#[derive(Debug)]
pub struct SqlStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
}

/// The pools' `after_release` hook: a connection handed back while sqlx still counts it inside a
/// transaction is closed rather than reused. sqlx keeps that count when a `ROLLBACK` fails, which
/// it does after the database already rolled the transaction back itself (SQLite does on a full
/// disk); reused, the connection would refuse every later transaction ("begin_with at non-zero
/// transaction depth") or nest it in a savepoint that never commits on its own. Found by
/// benches/faults/disk_full.sh. A transaction dropped on an error path may also still be rolling
/// back when this runs; closing that connection costs one reconnect.
pub(crate) fn discard_if_in_transaction<DB: Database>(
    conn: &mut DB::Connection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, sqlx::Result<bool>> {
    use sqlx::Connection;
    let in_transaction = conn.is_in_transaction();
    if in_transaction {
        tracing::warn!("a connection came back inside a transaction; closing it");
    }
    Box::pin(std::future::ready(Ok(!in_transaction)))
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<DB: Database> SqlStore<DB> {
    /// The underlying pool (for tests and tools).
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

impl<DB: Dialect> SqlStore<DB> {
    /// Begins a transaction that writes ([`Dialect::BEGIN_WRITE`]): every write transaction of the
    /// store begins here.
    pub(crate) async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
        self.pool.begin_with(DB::BEGIN_WRITE).await
    }

    /// Streams the rows of an export statement (`$1` platform, `$2` keyword list as JSON, `$3`
    /// from, `$4` to: the parameters every export statement takes).
    fn export_rows<'a, T>(
        &'a self,
        sql: &'static str,
        filter: &'a ExportFilter,
    ) -> BoxStream<'a, Result<T>>
    where
        T: for<'r> sqlx::FromRow<'r, DB::Row> + Send + Unpin + 'a,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
        for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
        for<'q> Option<NaiveDate>: Encode<'q, DB> + Type<DB>,
    {
        sqlx::query_as(sql)
            .bind(filter.platform.map(|p| p.as_str()))
            .bind(filter.keywords_json())
            .bind(filter.from)
            .bind(filter.to)
            .fetch(&self.pool)
            .map(|r| r.map_err(Into::into))
            .boxed()
    }
}

/// Upserts observations inside the caller's transaction (the path of every write of observations:
/// imports and collected pages) and refreshes the snapshots of the keywords that changed, which
/// moves their data versions.
pub(crate) async fn write_observations<DB: Dialect>(
    tx: &mut DB::Connection,
    rows: &[Observation],
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<ImportCounts>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDate: Encode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q, 'r> uuid::Uuid: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
{
    let mut counts = ImportCounts::default();
    let mut changed: BTreeSet<(Platform, &str)> = BTreeSet::new();
    let now = Utc::now();
    let mut done = 0u64;
    for batch in rows.chunks(IMPORT_BATCH) {
        let ids: Vec<uuid::Uuid> = batch.iter().map(|_| uuid::Uuid::now_v7()).collect();
        let mut qb = QueryBuilder::<DB>::new(OBS_INSERT_HEAD);
        qb.push_values(batch.iter().zip(&ids), |mut b, (o, id)| {
            let v = &o.values;
            b.push_bind(*id)
                .push_bind(o.platform.as_str())
                .push_bind(o.keyword.as_str())
                .push_bind(o.period_start)
                .push_bind(v[0])
                .push_bind(v[1].map(|c| c as i64))
                .push_bind(v[2])
                .push_bind(v[3])
                .push_bind(v[4])
                .push_bind(v[5])
                .push_bind(v[6])
                .push_bind(v[7])
                .push_bind(v[8])
                .push_bind(v[9])
                .push_bind(v[10])
                .push_bind(v[11].map(|r| r as i64))
                .push_bind(v[12])
                .push_bind(v[13])
                .push_bind(o.source.as_str())
                .push_bind(now);
        });
        qb.push(OBS_UPSERT_TAIL);
        let returned: Vec<uuid::Uuid> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
        let ours: HashMap<uuid::Uuid, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut inserted_here = 0u64;
        for id in &returned {
            if let Some(i) = ours.get(id) {
                inserted_here += 1;
                changed.insert((batch[*i].platform, batch[*i].keyword.as_str()));
            }
        }
        let updated_here = returned.len() as u64 - inserted_here;
        if updated_here > 0 {
            // An update returns the stored row's id, not ours: find which keywords those were.
            for o in batch {
                changed.insert((o.platform, o.keyword.as_str()));
            }
        }
        counts.inserted += inserted_here;
        counts.updated += updated_here;
        counts.unchanged += batch.len() as u64 - returned.len() as u64;
        done += batch.len() as u64;
        progress(done);
    }
    for (platform, keyword) in &changed {
        sqlx::query(DB::REFRESH)
            .bind(uuid::Uuid::now_v7())
            .bind(platform.as_str())
            .bind(*keyword)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    Ok(counts)
}

/// A registry row as stored ([`MODELS`]): `kind` is text, checked by
/// [`StoredModel::into_record`].
#[derive(sqlx::FromRow)]
struct StoredModel {
    name: String,
    version: String,
    kind: String,
    feature_schema_hash: String,
    #[sqlx(json)]
    metrics: Value,
    artifact: String,
    created_at: DateTime<Utc>,
    active: bool,
}

impl StoredModel {
    /// The record; an unknown kind is corrupt data, named in the error.
    fn into_record(self) -> Result<ModelRecord> {
        Ok(ModelRecord {
            kind: self.kind.parse().map_err(StoreError::Corrupt)?,
            name: self.name,
            version: self.version,
            feature_schema_hash: self.feature_schema_hash,
            metrics: self.metrics,
            artifact: self.artifact,
            created_at: self.created_at,
            active: self.active,
        })
    }
}

/// A keyword's snapshot with its platform ([`MARKETS`]).
#[derive(sqlx::FromRow)]
struct StoredMarket {
    platform: String,
    #[sqlx(flatten)]
    snapshot: Snapshot,
}

/// An observation with a volume as stored ([`OBSERVATIONS`]); platform and keyword are checked
/// into their types by [`StoredObservation::into_observation`].
#[derive(sqlx::FromRow)]
struct StoredObservation {
    platform: String,
    keyword: String,
    period_start: NaiveDate,
    search_volume: Option<f64>,
    source: String,
}

impl StoredObservation {
    /// The observation, as the `line`-th row read; a platform or keyword the edge types refuse is
    /// corrupt data.
    fn into_observation(self, line: usize) -> Result<Observation> {
        let corrupt = |e: String| StoreError::Corrupt(e);
        let mut values = [None; kwi_features::ingest::VALUE_COUNT];
        values[0] = self.search_volume;
        Ok(Observation {
            platform: self
                .platform
                .parse()
                .map_err(|e: kwi_features::keyword::PlatformError| corrupt(e.to_string()))?,
            keyword: Keyword::parse(&self.keyword).map_err(|e| corrupt(e.to_string()))?,
            period_start: self.period_start,
            values,
            source: self.source,
            line,
        })
    }
}

/// One keyword's data version ([`Dialect::VERSIONS_MANY`]).
#[derive(sqlx::FromRow)]
struct StoredVersion {
    platform: String,
    keyword: String,
    last_updated: DateTime<Utc>,
}

/// A stored competition score ([`COMPETITION_ONE`]); the keyword is the one asked for.
#[derive(sqlx::FromRow)]
struct StoredScore {
    score: f64,
    band: String,
    #[sqlx(json)]
    contributions: Value,
    model_version: String,
    synthetic: bool,
}

impl StoredScore {
    fn into_row(self, platform: Platform, keyword: Keyword) -> CompetitionRow {
        CompetitionRow {
            platform,
            keyword,
            score: self.score,
            band: self.band,
            contributions: self.contributions,
            model_version: self.model_version,
            synthetic: self.synthetic,
        }
    }
}

/// Stored insights ([`INSIGHT_ONE`]); the keyword is the one asked for. `peak` and `anomaly` are
/// nullable JSON columns (SQL NULL reads as `None`, a stored JSON `null` as `Some(Null)`).
#[derive(sqlx::FromRow)]
struct StoredInsight {
    direction: String,
    growth_pct: f64,
    current: f64,
    forecast_end: f64,
    horizon: i32,
    peak: Option<Json<Value>>,
    anomaly: Option<Json<Value>>,
    opportunity: Option<f64>,
    opportunity_explanation: Option<String>,
    model_version: String,
}

impl StoredInsight {
    fn into_row(self, platform: Platform, keyword: Keyword) -> InsightRow {
        InsightRow {
            platform,
            keyword,
            direction: self.direction,
            growth_pct: self.growth_pct,
            current: self.current,
            forecast_end: self.forecast_end,
            horizon: self.horizon,
            peak: self.peak.map(|j| j.0),
            anomaly: self.anomaly.map(|j| j.0),
            opportunity: self.opportunity,
            opportunity_explanation: self.opportunity_explanation,
            model_version: self.model_version,
        }
    }
}

/// The store, once for both backends. The bounds say what `DB` must do: run statements on a
/// connection (a pool's or a transaction's), read columns by name (and column 0, for the
/// single-value reads of `query_scalar`), and bind and decode the column types the shared
/// statements use. sqlx implements each of these per driver, not for every `Database`, so a
/// generic impl spells them out; PostgreSQL and SQLite meet them all (checked where `PgStore` and
/// `SqliteStore` become a `dyn Store`).
#[async_trait]
impl<DB: Dialect> Store for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q, 'r> String: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q, 'r> bool: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> i32: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> i64: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q, 'r> f64: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB>,
    for<'q, 'r> NaiveDate: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<NaiveDate>: Encode<'q, DB>,
    for<'q, 'r> DateTime<Utc>: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> uuid::Uuid: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<uuid::Uuid>: Encode<'q, DB>,
    for<'q> Option<bool>: Encode<'q, DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB>,
    for<'q> Json<&'q Value>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Json<&'q Value>>: Encode<'q, DB>,
    for<'r> Json<Value>: Decode<'r, DB> + Type<DB>,
    for<'r> Json<Vec<f64>>: Decode<'r, DB> + Type<DB>,
    for<'q, 'r> Vec<u8>: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
{
    fn backend(&self) -> Backend {
        DB::BACKEND
    }

    async fn migrate(&self) -> Result<()> {
        DB::MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn backup_into(&self, dest: &std::path::Path) -> Result<()> {
        if DB::BACKEND != Backend::Sqlite {
            return Err(StoreError::Unsupported(
                "PostgreSQL is backed up with its own tools: pg_dump --format=custom --file FILE \"$KWI_DATABASE_URL\" (restore: pg_restore --clean --if-exists --dbname \"$KWI_DATABASE_URL\" FILE)".into(),
            ));
        }
        // VACUUM INTO reads one snapshot (a read transaction), so writers may go on meanwhile;
        // the copy is compacted and has no WAL of its own.
        let dest = dest.to_string_lossy().into_owned();
        sqlx::query("VACUUM INTO $1")
            .bind(dest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn import(
        &self,
        rows: &[Observation],
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<ImportCounts> {
        let mut tx = self.begin_write().await?;
        let counts = write_observations::<DB>(&mut tx, rows, progress).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn observation_count(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM keyword_observations")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn keyword_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM keyword_data")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn history(&self, platform: Platform, keyword: &Keyword) -> Result<Vec<HistoryPoint>> {
        Ok(sqlx::query_as(HISTORY)
            .bind(platform.as_str())
            .bind(keyword.as_str())
            .fetch_all(&self.pool)
            .await?)
    }

    async fn data_version(
        &self,
        platform: Platform,
        keyword: &Keyword,
    ) -> Result<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar(
            "SELECT last_updated FROM keyword_data WHERE platform = $1 AND keyword = $2",
        )
        .bind(platform.as_str())
        .bind(keyword.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn latest_data_change(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(
            sqlx::query_scalar("SELECT MAX(last_updated) FROM keyword_data")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn snapshot(&self, platform: Platform, keyword: &Keyword) -> Result<Option<Snapshot>> {
        Ok(sqlx::query_as(SNAPSHOT)
            .bind(platform.as_str())
            .bind(keyword.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn observations(
        &self,
        platform: Option<Platform>,
        max_rows: Option<i64>,
    ) -> Result<Vec<Observation>> {
        let rows: Vec<StoredObservation> = sqlx::query_as(OBSERVATIONS)
            .bind(platform.map(|p| p.as_str()))
            .bind(max_rows.unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .enumerate()
            .map(|(i, r)| r.into_observation(i + 1))
            .collect()
    }

    async fn register_model(&self, record: &ModelRecord, activate: bool) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if activate {
            sqlx::query(MODEL_DEACTIVATE_KIND)
                .bind(false)
                .bind(record.kind.as_str())
                .bind(true)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(MODEL_INSERT)
            .bind(uuid::Uuid::now_v7())
            .bind(record.name.as_str())
            .bind(record.version.as_str())
            .bind(record.kind.as_str())
            .bind(record.feature_schema_hash.as_str())
            .bind(Json(&record.metrics))
            .bind(record.artifact.as_str())
            .bind(record.created_at)
            .bind(activate)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn activate_model(&self, version: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // Write first: an SQLite transaction that reads before it writes cannot wait for another
        // writer (the prediction writer) and fails at once with SQLITE_BUSY; one that starts
        // with a write waits for the lock within the busy timeout.
        sqlx::query(
            "UPDATE models SET active = $1 WHERE active = $2 \
             AND kind = (SELECT kind FROM models WHERE version = $3)",
        )
        .bind(false)
        .bind(true)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("UPDATE models SET active = $1 WHERE version = $2")
            .bind(true)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&r) == 0 {
            // No such model: nothing was deactivated either (the kind's subquery was empty).
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn models(&self) -> Result<Vec<ModelRecord>> {
        let rows: Vec<StoredModel> = sqlx::query_as(MODELS).fetch_all(&self.pool).await?;
        rows.into_iter().map(StoredModel::into_record).collect()
    }

    async fn search(
        &self,
        q: &str,
        platform: Option<Platform>,
        limit: i64,
    ) -> Result<Vec<SearchHit>> {
        Ok(sqlx::query_as(DB::SEARCH)
            .bind(q)
            .bind(like_prefix(q))
            .bind(platform.map(|p| p.as_str()))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn markets(&self, keyword: &Keyword) -> Result<Vec<(String, Snapshot)>> {
        let rows: Vec<StoredMarket> = sqlx::query_as(MARKETS)
            .bind(keyword.as_str())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| (r.platform, r.snapshot)).collect())
    }

    async fn insert_predictions(&self, rows: &[PredictionRecord]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        DB::insert_predictions(&mut *tx, rows, Utc::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn prediction_count(&self, platform: Platform, keyword: &Keyword) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM predictions WHERE platform = $1 AND keyword = $2",
        )
        .bind(platform.as_str())
        .bind(keyword.as_str())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn data_versions_many(
        &self,
        keys: &[(Platform, Keyword)],
    ) -> Result<Vec<((Platform, Keyword), DateTime<Utc>)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<StoredVersion> = sqlx::query_as(DB::VERSIONS_MANY)
            .bind(keys_json(keys))
            .fetch_all(&self.pool)
            .await?;
        let index: HashMap<(&str, &str), usize> = keys
            .iter()
            .enumerate()
            .map(|(i, (p, k))| ((p.as_str(), k.as_str()), i))
            .collect();
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let i = *index.get(&(r.platform.as_str(), r.keyword.as_str()))?;
                Some((keys[i].clone(), r.last_updated))
            })
            .collect())
    }

    async fn volumes_many(
        &self,
        keys: &[(Platform, Keyword)],
    ) -> Result<Vec<Vec<(NaiveDate, f64)>>> {
        let mut out = vec![Vec::new(); keys.len()];
        if keys.is_empty() {
            return Ok(out);
        }
        let json = keys_json(keys);
        DB::volumes_many(&self.pool, json.as_str(), &mut out).await?;
        Ok(out)
    }

    fn export_observations<'a>(
        &'a self,
        filter: &'a ExportFilter,
    ) -> BoxStream<'a, Result<ExportObservation>> {
        self.export_rows(DB::EXPORT_OBSERVATIONS, filter)
    }

    fn export_predictions<'a>(
        &'a self,
        filter: &'a ExportFilter,
    ) -> BoxStream<'a, Result<ExportPrediction>> {
        self.export_rows(DB::EXPORT_PREDICTIONS, filter)
    }

    async fn replace_insights(
        &self,
        scores: &[CompetitionRow],
        insights: &[InsightRow],
    ) -> Result<()> {
        let now = Utc::now();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM competition_scores")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM keyword_insights")
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE keyword_data SET competition = NULL WHERE competition IS NOT NULL")
            .execute(&mut *tx)
            .await?;
        for batch in scores.chunks(INSIGHT_BATCH) {
            let mut qb = QueryBuilder::<DB>::new(COMPETITION_INSERT_HEAD);
            qb.push_values(batch, |mut b, r| {
                b.push_bind(r.platform.as_str())
                    .push_bind(r.keyword.as_str())
                    .push_bind(r.score)
                    .push_bind(r.band.as_str())
                    .push_bind(Json(&r.contributions))
                    .push_bind(r.model_version.as_str())
                    .push_bind(r.synthetic)
                    .push_bind(now);
            });
            qb.build().execute(&mut *tx).await?;
        }
        for r in scores {
            sqlx::query(
                "UPDATE keyword_data SET competition = $1 WHERE platform = $2 AND keyword = $3",
            )
            .bind(r.score)
            .bind(r.platform.as_str())
            .bind(r.keyword.as_str())
            .execute(&mut *tx)
            .await?;
        }
        for batch in insights.chunks(INSIGHT_BATCH) {
            let mut qb = QueryBuilder::<DB>::new(INSIGHT_INSERT_HEAD);
            qb.push_values(batch, |mut b, r| {
                b.push_bind(r.platform.as_str())
                    .push_bind(r.keyword.as_str())
                    .push_bind(r.direction.as_str())
                    .push_bind(r.growth_pct)
                    .push_bind(r.current)
                    .push_bind(r.forecast_end)
                    .push_bind(r.horizon)
                    .push_bind(r.peak.as_ref().map(Json))
                    .push_bind(r.anomaly.as_ref().map(Json))
                    .push_bind(r.opportunity)
                    .push_bind(r.opportunity_explanation.as_deref())
                    .push_bind(r.model_version.as_str())
                    .push_bind(now);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn trends(
        &self,
        platform: Option<Platform>,
        direction: &str,
        limit: i64,
    ) -> Result<Vec<TrendItem>> {
        Ok(sqlx::query_as(DB::TRENDS)
            .bind(direction)
            .bind(platform.map(|p| p.as_str()))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn keyword_insight(
        &self,
        platform: Platform,
        keyword: &Keyword,
    ) -> Result<(Option<CompetitionRow>, Option<InsightRow>)> {
        let score: Option<StoredScore> = sqlx::query_as(COMPETITION_ONE)
            .bind(platform.as_str())
            .bind(keyword.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let insight: Option<StoredInsight> = sqlx::query_as(INSIGHT_ONE)
            .bind(platform.as_str())
            .bind(keyword.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok((
            score.map(|r| r.into_row(platform, keyword.clone())),
            insight.map(|r| r.into_row(platform, keyword.clone())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::{SqliteStore, Store, StoreError};

    /// A kind the registry does not know (written past the CHECK constraint) reads as corrupt data
    /// naming the value: not a panic, not an opaque decode error.
    #[tokio::test]
    async fn an_unknown_model_kind_is_corrupt_data_naming_it() {
        let store = SqliteStore::open(":memory:").await.unwrap();
        store.migrate().await.unwrap();
        // One connection (`:memory:`), so the pragma holds for the insert.
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO models (id, name, version, kind, feature_schema_hash, artifact) \
             VALUES (x'01', 'm', 'v1', 'oracle', 'h', 'artifacts/v1')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let err = store.models().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("`oracle`")),
            "{err}"
        );
    }
}
