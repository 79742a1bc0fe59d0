//! PostgreSQL backend: the reference store.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Postgres;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::sql::{Dialect, SqlStore};
use super::{Backend, PredictionRecord, Result};

/// Store on a PostgreSQL server.
pub type PgStore = SqlStore<Postgres>;

impl PgStore {
    /// Connects a pool (fails within 5 s if the server is unreachable).
    ///
    /// The sessions run with `jit = off` unless the URL sets `jit` itself: every statement here is
    /// short, and PostgreSQL's cost estimate for some (a keyword-filtered export: ~0.3 ms of work)
    /// crosses `jit_above_cost`, so JIT compilation took 10-30 ms of each such request
    /// (benches/sql/run.sh).
    pub async fn connect(url: &str) -> Result<Self> {
        let mut opts = PgConnectOptions::from_str(url)?;
        if !url.contains("jit") {
            opts = opts.options([("jit", "off")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .after_release(crate::sql::discard_if_in_transaction::<Postgres>)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }
}

/// Latest volume and CPC, the last 52 volumes as `[[date, volume], ...]`, and every volume with its
/// period as arrays (what the forecast path reads, [`VOLUMES_MANY`]; migration 0008).
/// How long a query waits for a connection before failing with [`crate::StoreError::Unreachable`]:
/// short enough that a request answers 503 within 2 s while PostgreSQL is down (benches/faults/
/// pg_restart.sh), long enough that a burst queues rather than fails.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

const REFRESH: &str = "INSERT INTO keyword_data (id, platform, keyword, search_volume, cpc, trend_data, \
      volume_periods, volume_values, last_updated) \
    SELECT $1, $2, $3, \
      (SELECT search_volume FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND search_volume IS NOT NULL ORDER BY period_start DESC, source LIMIT 1), \
      (SELECT cpc FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND cpc IS NOT NULL ORDER BY period_start DESC, source LIMIT 1), \
      COALESCE((SELECT jsonb_agg(jsonb_build_array(t.period_start, t.search_volume) ORDER BY t.period_start) FROM \
        (SELECT period_start, search_volume FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND search_volume IS NOT NULL \
         ORDER BY period_start DESC, source LIMIT 52) t), '[]'::jsonb), \
      COALESCE(v.periods, '{}'), COALESCE(v.vals, '{}'), $4 \
    FROM (SELECT array_agg(period_start ORDER BY period_start, source) AS periods, \
      array_agg(search_volume ORDER BY period_start, source) AS vals FROM keyword_observations \
      WHERE platform = $2 AND keyword = $3 AND search_volume IS NOT NULL) v \
    ON CONFLICT (platform, keyword) DO UPDATE SET search_volume = excluded.search_volume, cpc = excluded.cpc, \
      trend_data = excluded.trend_data, volume_periods = excluded.volume_periods, \
      volume_values = excluded.volume_values, last_updated = excluded.last_updated";

/// Prefix matches first, then trigram-similar keywords (pg_trgm `%` operator, GIN index), by
/// similarity and volume.
const SEARCH: &str = "SELECT platform, keyword, search_volume, keyword LIKE $2 ESCAPE '\\' AS prefix \
    FROM keyword_data WHERE ($3::text IS NULL OR platform = $3) AND (keyword LIKE $2 ESCAPE '\\' OR keyword % $1) \
    ORDER BY prefix DESC, similarity(keyword, $1) DESC, search_volume DESC NULLS LAST, keyword LIMIT $4";

/// Rows of `table` an export selects, filters bound as (platform, keywords as a JSON array, from,
/// to) with the dates on `date_col`. Two branches so that a keyword list is looked up through the
/// `(platform, keyword, …)` index: a single `($2 IS NULL OR keyword IN (…))` condition made
/// PostgreSQL scan the whole table for one keyword (130 ms on a 10,000-keyword store, growing with
/// it; this form: 0.36 ms, with JIT off as [`PgStore::connect`] sets; benches/sql/run.sh).
/// `OFFSET 0` keeps the planner from turning the per-keyword lookup back into a join over the
/// whole table.
macro_rules! export_rows {
    ($table:literal, $date_col:literal) => {
        concat!(
            "(SELECT o.* FROM ", $table, " o WHERE $2::text IS NULL AND ($1::text IS NULL OR o.platform = $1) \
             UNION ALL \
             SELECT o.* FROM (SELECT DISTINCT keyword FROM jsonb_array_elements_text($2::jsonb) AS k(keyword)) k \
             JOIN platforms p ON ($1::text IS NULL OR p.name = $1) \
             CROSS JOIN LATERAL (SELECT * FROM ", $table, " o WHERE o.platform = p.name AND o.keyword = k.keyword OFFSET 0) o) o \
             WHERE ($3::date IS NULL OR o.", $date_col, " >= $3) AND ($4::date IS NULL OR o.", $date_col, " <= $4)"
        )
    };
}

/// Observations export (see [`export_rows!`] for the binds).
const EXPORT_OBSERVATIONS: &str = concat!(
    "SELECT platform, keyword, period_start, search_volume, listing_count, price_median, price_p25, price_p75, \
    review_count_median, rating_mean, top10_review_share, sponsored_share, cpc, competition_index, \
    search_frequency_rank, click_share, conversion_share, source, collected_at FROM ",
    export_rows!("keyword_observations", "period_start"),
    " ORDER BY platform, keyword, period_start, source"
);

/// Predictions export, same binds (dates bound `data_as_of`); the interval JSON is rebuilt from the
/// stored arrays.
const EXPORT_PREDICTIONS: &str = concat!(
    "SELECT platform, keyword, model_version, data_as_of, created_at, horizon, \
    to_jsonb(mean) AS mean, COALESCE((SELECT jsonb_object_agg(levels[j]::text, jsonb_build_object(\
    'lo', to_jsonb(lo[(j - 1) * horizon + 1 : j * horizon]), 'hi', to_jsonb(hi[(j - 1) * horizon + 1 : j * horizon]))) \
    FROM generate_subscripts(levels, 1) AS j), '{}'::jsonb) AS quantiles FROM ",
    export_rows!("predictions", "data_as_of"),
    " ORDER BY platform, keyword, created_at, model_version"
);

/// Data versions of a JSON list of `[platform, keyword]` pairs.
const VERSIONS_MANY: &str = "SELECT d.platform, d.keyword, d.last_updated FROM keyword_data d \
    JOIN (SELECT j->>0 AS platform, j->>1 AS keyword FROM jsonb_array_elements($1::jsonb) j) k ON d.platform = k.platform AND d.keyword = k.keyword";

/// Search volumes of a JSON list of `[platform, keyword]` pairs: one row per pair that has any, its
/// 0-based position in the list and its periods and volumes as arrays, read from the snapshot row
/// where the import keeps them (migration 0008) rather than aggregated from the observations per
/// request (64 keywords of 104 weeks: 0.62 ms against 5.62 ms; benches/sql/run.sh). A LATERAL lookup
/// per pair with `OFFSET 0`: the planner cannot know how many pairs the JSON holds (it assumes
/// 100), and a join let it choose a scan of the whole table.
const VOLUMES_MANY: &str = "SELECT (k.ord - 1)::int8 AS pos, d.volume_periods, d.volume_values \
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS k(j, ord) CROSS JOIN LATERAL (\
    SELECT volume_periods, volume_values FROM keyword_data d \
    WHERE d.platform = k.j->>0 AND d.keyword = k.j->>1 OFFSET 0) d \
    WHERE cardinality(d.volume_values) > 0";

/// A row of [`VOLUMES_MANY`].
#[derive(sqlx::FromRow)]
struct Volumes {
    pos: i64,
    volume_periods: Vec<NaiveDate>,
    volume_values: Vec<f64>,
}

/// Fills `out[i]` with the volumes of the `i`-th pair of `keys_json` ([`VOLUMES_MANY`]).
async fn volumes_many(
    pool: &PgPool,
    keys_json: &str,
    out: &mut [Vec<(NaiveDate, f64)>],
) -> Result<()> {
    let rows: Vec<Volumes> = sqlx::query_as(VOLUMES_MANY)
        .bind(keys_json)
        .fetch_all(pool)
        .await?;
    for r in rows {
        if let Some(v) = usize::try_from(r.pos).ok().and_then(|i| out.get_mut(i)) {
            *v = r.volume_periods.into_iter().zip(r.volume_values).collect();
        }
    }
    Ok(())
}

/// Prediction insert: one statement for any number of rows. The scalar columns are bound as arrays
/// and unnested; the forecast values of all rows travel as four flat `float8[]` (binary floats, no
/// text or JSON to parse) and each row takes its slice by offset. Unlike a multi-row `VALUES` list
/// (a new statement text per batch size) it is parsed and planned once per connection.
const PREDICTION_INSERT: &str = "INSERT INTO predictions (id, platform, keyword, model_version, data_as_of, \
    created_at, horizon, mean, levels, lo, hi) \
    SELECT r.id, r.platform, r.keyword, r.model_version, r.data_as_of, $6, r.horizon, \
    ($12::float8[])[r.m + 1 : r.m + r.horizon], ($13::float8[])[r.l + 1 : r.l + r.nl], \
    ($14::float8[])[r.b + 1 : r.b + r.nl * r.horizon], ($15::float8[])[r.b + 1 : r.b + r.nl * r.horizon] \
    FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::date[], $7::int4[], $8::int4[], \
    $9::int4[], $10::int4[], $11::int4[]) \
    AS r (id, platform, keyword, model_version, data_as_of, horizon, nl, m, l, b)";

/// Persists forecasts inside the caller's transaction with [`PREDICTION_INSERT`].
async fn insert_predictions(
    conn: &mut sqlx::PgConnection,
    rows: &[PredictionRecord],
    now: DateTime<Utc>,
) -> Result<()> {
    let n = rows.len();
    let (mut ids, mut platforms, mut keywords, mut versions) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut as_of, mut horizons, mut level_counts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut mean_at, mut level_at, mut band_at) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut mean, mut levels, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        ids.push(uuid::Uuid::now_v7());
        platforms.push(r.platform.as_str());
        keywords.push(r.keyword.as_str());
        versions.push(r.model_version.as_str());
        as_of.push(r.data_as_of);
        horizons.push(r.horizon);
        level_counts.push(r.levels.len() as i32);
        mean_at.push(mean.len() as i32);
        level_at.push(levels.len() as i32);
        band_at.push(lo.len() as i32);
        mean.extend_from_slice(&r.mean);
        levels.extend_from_slice(&r.levels);
        lo.extend_from_slice(&r.lo);
        hi.extend_from_slice(&r.hi);
    }
    sqlx::query(PREDICTION_INSERT)
        .bind(ids)
        .bind(platforms)
        .bind(keywords)
        .bind(versions)
        .bind(as_of)
        .bind(now)
        .bind(horizons)
        .bind(level_counts)
        .bind(mean_at)
        .bind(level_at)
        .bind(band_at)
        .bind(mean)
        .bind(levels)
        .bind(lo)
        .bind(hi)
        .execute(conn)
        .await?;
    Ok(())
}

/// Movers of one direction ($1 `rising`/`falling`), optionally one platform ($2), at most $3.
const TRENDS: &str = "SELECT platform, keyword, growth_pct, current, forecast_end, horizon FROM keyword_insights \
    WHERE direction = $1 AND ($2::text IS NULL OR platform = $2) \
    ORDER BY CASE WHEN direction = 'falling' THEN growth_pct ELSE -growth_pct END, platform, keyword LIMIT $3";

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";

    fn rows_affected(r: &sqlx::postgres::PgQueryResult) -> u64 {
        r.rows_affected()
    }

    const BACKEND: Backend = Backend::Postgres;
    const MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");
    const REFRESH: &'static str = REFRESH;
    const SEARCH: &'static str = SEARCH;
    const EXPORT_OBSERVATIONS: &'static str = EXPORT_OBSERVATIONS;
    const EXPORT_PREDICTIONS: &'static str = EXPORT_PREDICTIONS;
    const VERSIONS_MANY: &'static str = VERSIONS_MANY;
    const TRENDS: &'static str = TRENDS;
    const SKIP_LOCKED: &'static str = "FOR UPDATE SKIP LOCKED";

    fn volumes_many(
        pool: &PgPool,
        keys_json: &str,
        out: &mut [Vec<(NaiveDate, f64)>],
    ) -> impl Future<Output = Result<()>> + Send {
        volumes_many(pool, keys_json, out)
    }

    fn insert_predictions(
        conn: &mut sqlx::PgConnection,
        rows: &[PredictionRecord],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send {
        insert_predictions(conn, rows, now)
    }
}
