//! SQLite backend: the embedded default (one file, no server).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::sql_store;
use super::{Backend, Result};

/// Store in an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file; `:memory:` gives a private in-memory database.
    pub async fn open(path: &str) -> Result<Self> {
        let memory = path == ":memory:" || path.is_empty();
        let opts = if memory {
            SqliteConnectOptions::from_str("sqlite::memory:")?
        } else {
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
            }
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        }
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
        // One connection for :memory: (each connection would otherwise see its own empty database).
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { 8 })
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }

    /// The underlying pool (for tests and tools).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Same statement as the PostgreSQL one, with SQLite's JSON functions (`WHERE true` resolves SQLite's
/// parsing ambiguity between a join's ON and the upsert's ON CONFLICT).
const REFRESH: &str = "INSERT INTO keyword_data (id, platform, keyword, search_volume, cpc, trend_data, last_updated) \
    SELECT $1, $2, $3, \
      (SELECT search_volume FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND search_volume IS NOT NULL ORDER BY period_start DESC, source LIMIT 1), \
      (SELECT cpc FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND cpc IS NOT NULL ORDER BY period_start DESC, source LIMIT 1), \
      COALESCE((SELECT json_group_array(json_array(t.period_start, t.search_volume)) FROM \
        (SELECT * FROM (SELECT period_start, search_volume FROM keyword_observations WHERE platform = $2 AND keyword = $3 \
         AND search_volume IS NOT NULL ORDER BY period_start DESC, source LIMIT 52) ORDER BY period_start) t), '[]'), \
      $4 WHERE true \
    ON CONFLICT (platform, keyword) DO UPDATE SET search_volume = excluded.search_volume, cpc = excluded.cpc, \
      trend_data = excluded.trend_data, last_updated = excluded.last_updated";

/// Prefix matches first, then keywords containing the query, by volume (no trigram index here).
const SEARCH: &str = "SELECT platform, keyword, search_volume, keyword LIKE $2 ESCAPE '\\' AS prefix \
    FROM keyword_data WHERE ($3 IS NULL OR platform = $3) AND (keyword LIKE $2 ESCAPE '\\' OR instr(keyword, $1) > 0) \
    ORDER BY prefix DESC, search_volume DESC, keyword LIMIT $4";

/// Observations export: filters bound as (platform, keywords as a JSON array, from, to).
const EXPORT_OBSERVATIONS: &str = "SELECT platform, keyword, period_start, search_volume, listing_count, price_median, price_p25, price_p75, \
    review_count_median, rating_mean, top10_review_share, sponsored_share, cpc, source, collected_at \
    FROM keyword_observations WHERE ($1 IS NULL OR platform = $1) AND ($2 IS NULL OR keyword IN (SELECT value FROM json_each($2))) \
    AND ($3 IS NULL OR period_start >= $3) AND ($4 IS NULL OR period_start <= $4) \
    ORDER BY platform, keyword, period_start, source";

/// Predictions export, same binds as [`EXPORT_OBSERVATIONS`] (dates bound `data_as_of`).
const EXPORT_PREDICTIONS: &str = "SELECT platform, keyword, model_version, data_as_of, created_at, horizon, mean, quantiles \
    FROM predictions WHERE ($1 IS NULL OR platform = $1) AND ($2 IS NULL OR keyword IN (SELECT value FROM json_each($2))) \
    AND ($3 IS NULL OR data_as_of >= $3) AND ($4 IS NULL OR data_as_of <= $4) \
    ORDER BY platform, keyword, created_at, model_version";

/// Data versions of a JSON list of `[platform, keyword]` pairs.
const VERSIONS_MANY: &str = "SELECT d.platform, d.keyword, d.last_updated FROM keyword_data d \
    JOIN (SELECT json_extract(value, '$[0]') AS platform, json_extract(value, '$[1]') AS keyword FROM json_each($1)) k ON d.platform = k.platform AND d.keyword = k.keyword";

/// Search volumes of a JSON list of `[platform, keyword]` pairs, tagged with the pair's 0-based
/// position in the list (`json_each.key`).
const VOLUMES_MANY: &str = "SELECT CAST(k.key AS INTEGER), o.period_start, o.search_volume FROM json_each($1) k \
    JOIN keyword_observations o ON o.platform = json_extract(k.value, '$[0]') AND o.keyword = json_extract(k.value, '$[1]') \
    WHERE o.search_volume IS NOT NULL ORDER BY k.key, o.period_start, o.source";

/// Rows per multi-row prediction INSERT (9 binds each: well under SQLite's 32,766 bind limit).
const PREDICTION_CHUNK: usize = 500;

/// Persists forecasts inside the caller's transaction: one multi-row INSERT per
/// [`PREDICTION_CHUNK`] rows, not a round trip per row.
async fn insert_predictions(
    conn: &mut sqlx::SqliteConnection,
    rows: &[super::PredictionRecord],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    for chunk in rows.chunks(PREDICTION_CHUNK) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO predictions (id, platform, keyword, model_version, data_as_of, \
             created_at, horizon, mean, quantiles) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(uuid::Uuid::now_v7())
                .push_bind(r.platform.as_str())
                .push_bind(r.keyword.as_str())
                .push_bind(r.model_version.as_str())
                .push_bind(r.data_as_of)
                .push_bind(now)
                .push_bind(r.horizon)
                .push_bind(sqlx::types::Json(&r.mean))
                .push_bind(sqlx::types::Json(r.quantiles_json()));
        });
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Fills `out[i]` with the volumes of the `i`-th pair of `keys_json` ([`VOLUMES_MANY`], one row per
/// observation: SQLite has no arrays).
async fn volumes_many(
    pool: &SqlitePool,
    keys_json: &str,
    out: &mut [Vec<(chrono::NaiveDate, f64)>],
) -> Result<()> {
    use futures::TryStreamExt;
    let mut rows = sqlx::query_as::<_, (i64, chrono::NaiveDate, f64)>(VOLUMES_MANY)
        .bind(keys_json)
        .fetch(pool);
    while let Some((i, period, volume)) = rows.try_next().await? {
        if let Some(v) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            v.push((period, volume));
        }
    }
    Ok(())
}

/// Movers of one direction ($1 `rising`/`falling`), optionally one platform ($2), at most $3.
const TRENDS: &str = "SELECT platform, keyword, growth_pct, current, forecast_end, horizon FROM keyword_insights \
    WHERE direction = $1 AND ($2 IS NULL OR platform = $2) \
    ORDER BY CASE WHEN direction = 'falling' THEN growth_pct ELSE -growth_pct END, platform, keyword LIMIT $3";

sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    Backend::Sqlite,
    sqlx::migrate!("migrations/sqlite"),
    REFRESH,
    SEARCH,
    EXPORT_OBSERVATIONS,
    EXPORT_PREDICTIONS,
    VERSIONS_MANY,
    volumes_many,
    insert_predictions,
    TRENDS
);
