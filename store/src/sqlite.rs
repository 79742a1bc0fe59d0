//! SQLite backend: the embedded default (one file, no server).

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Sqlite;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::{Dialect, SqlStore};
use super::{Backend, PredictionRecord, Result, StoreError};

/// Store in an SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

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
            .after_release(crate::sql::discard_if_in_transaction::<Sqlite>)
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }
}

/// Checks an SQLite database file without writing to it (read-only, no journal files made):
/// `PRAGMA integrity_check` must answer `ok`. Returns its (observations, keywords).
pub async fn check_sqlite_file(path: &Path) -> Result<(i64, i64)> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await?;
    if verdict != "ok" {
        pool.close().await;
        return Err(StoreError::Corrupt(format!(
            "{}: integrity check: {verdict}",
            path.display()
        )));
    }
    let observations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM keyword_observations")
        .fetch_one(&pool)
        .await?;
    let keywords: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM keyword_data")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok((observations, keywords))
}

/// Folds an SQLite file's write-ahead log into it (`PRAGMA wal_checkpoint(TRUNCATE)`), so the
/// file alone holds every committed transaction. `false` when another connection kept it from
/// completing (the database is in use).
pub async fn checkpoint_sqlite_file(path: &Path) -> Result<bool> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(2));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?;
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(busy == 0)
}

/// Same statement as the PostgreSQL one, with SQLite's JSON functions, and the volumes as
/// comma-separated lists (values printed with 17 significant digits: they read back exactly;
/// migration 0006). `WHERE true` resolves SQLite's parsing ambiguity between a join's ON and the
/// upsert's ON CONFLICT.
const REFRESH: &str = "INSERT INTO keyword_data (id, platform, keyword, search_volume, cpc, trend_data, \
      volume_periods, volume_values, last_updated) \
    SELECT $1, $2, $3, \
      (SELECT search_volume FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND search_volume IS NOT NULL ORDER BY period_start DESC, source LIMIT 1), \
      (SELECT cpc FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND cpc IS NOT NULL ORDER BY period_start DESC, source LIMIT 1), \
      COALESCE((SELECT json_group_array(json_array(t.period_start, t.search_volume)) FROM \
        (SELECT * FROM (SELECT period_start, search_volume FROM keyword_observations WHERE platform = $2 AND keyword = $3 \
         AND search_volume IS NOT NULL ORDER BY period_start DESC, source LIMIT 52) ORDER BY period_start) t), '[]'), \
      COALESCE(v.periods, ''), COALESCE(v.vals, ''), $4 \
    FROM (SELECT group_concat(period_start, ',' ORDER BY period_start, source) AS periods, \
      group_concat(printf('%!.17g', search_volume), ',' ORDER BY period_start, source) AS vals \
      FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND search_volume IS NOT NULL) v \
    WHERE true \
    ON CONFLICT (platform, keyword) DO UPDATE SET search_volume = excluded.search_volume, cpc = excluded.cpc, \
      trend_data = excluded.trend_data, volume_periods = excluded.volume_periods, \
      volume_values = excluded.volume_values, last_updated = excluded.last_updated";

/// Prefix matches first, then keywords containing the query, by volume (no trigram index here).
const SEARCH: &str = "SELECT platform, keyword, search_volume, keyword LIKE $2 ESCAPE '\\' AS prefix \
    FROM keyword_data WHERE ($3 IS NULL OR platform = $3) AND (keyword LIKE $2 ESCAPE '\\' OR instr(keyword, $1) > 0) \
    ORDER BY prefix DESC, search_volume DESC, keyword LIMIT $4";

/// Observations export: filters bound as (platform, keywords as a JSON array, from, to).
const EXPORT_OBSERVATIONS: &str = "SELECT platform, keyword, period_start, search_volume, listing_count, price_median, price_p25, price_p75, \
    review_count_median, rating_mean, top10_review_share, sponsored_share, cpc, competition_index, \
    search_frequency_rank, click_share, conversion_share, source, collected_at \
    FROM keyword_observations WHERE ($1 IS NULL OR platform = $1) AND ($2 IS NULL OR keyword IN (SELECT value FROM json_each($2))) \
    AND ($3 IS NULL OR period_start >= $3) AND ($4 IS NULL OR period_start <= $4) \
    ORDER BY platform, keyword, period_start, source";

/// Predictions export, same binds as [`EXPORT_OBSERVATIONS`] (dates bound `data_as_of`).
const EXPORT_PREDICTIONS: &str = "SELECT platform, keyword, model_version, data_as_of, created_at, horizon, mean, quantiles \
    FROM predictions WHERE ($1 IS NULL OR platform = $1) AND ($2 IS NULL OR keyword IN (SELECT value FROM json_each($2))) \
    AND ($3 IS NULL OR data_as_of >= $3) AND ($4 IS NULL OR data_as_of <= $4) \
    ORDER BY platform, keyword, created_at, model_version";

/// Data versions of a JSON list of `[platform, keyword]` pairs.
const VERSIONS_MANY: &str = "SELECT d.platform AS platform, d.keyword AS keyword, d.last_updated AS last_updated FROM keyword_data d \
    JOIN (SELECT json_extract(value, '$[0]') AS platform, json_extract(value, '$[1]') AS keyword FROM json_each($1)) k ON d.platform = k.platform AND d.keyword = k.keyword";

/// Search volumes of a JSON list of `[platform, keyword]` pairs, tagged with the pair's 0-based
/// position in the list (`json_each.key`): the lists the import keeps on each snapshot row
/// (migration 0006), one row per keyword instead of one per observation.
const VOLUMES_MANY: &str = "SELECT CAST(k.key AS INTEGER) AS pos, d.volume_periods AS volume_periods, \
    d.volume_values AS volume_values FROM json_each($1) k \
    JOIN keyword_data d ON d.platform = json_extract(k.value, '$[0]') AND d.keyword = json_extract(k.value, '$[1]') \
    WHERE d.volume_values <> ''";

/// Rows per multi-row prediction INSERT (9 binds each: well under SQLite's 32,766 bind limit).
const PREDICTION_CHUNK: usize = 500;

/// Persists forecasts inside the caller's transaction: one multi-row INSERT per
/// [`PREDICTION_CHUNK`] rows, not a round trip per row.
async fn insert_predictions(
    conn: &mut sqlx::SqliteConnection,
    rows: &[PredictionRecord],
    now: DateTime<Utc>,
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

/// A row of [`VOLUMES_MANY`]: the lists as stored.
#[derive(sqlx::FromRow)]
struct Volumes {
    pos: i64,
    volume_periods: String,
    volume_values: String,
}

/// Fills `out[i]` with the volumes of the `i`-th pair of `keys_json` ([`VOLUMES_MANY`]).
async fn volumes_many(
    pool: &SqlitePool,
    keys_json: &str,
    out: &mut [Vec<(NaiveDate, f64)>],
) -> Result<()> {
    let rows: Vec<Volumes> = sqlx::query_as(VOLUMES_MANY)
        .bind(keys_json)
        .fetch_all(pool)
        .await?;
    for r in rows {
        if let Some(v) = usize::try_from(r.pos).ok().and_then(|i| out.get_mut(i)) {
            *v = parse_volume_lists(&r.volume_periods, &r.volume_values)?;
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` read directly (chrono's general parser took ~2 % of the embedded server's CPU on
/// the uncached forecast path); `None` for anything else, which the caller hands to chrono.
fn iso_date(p: &str) -> Option<chrono::NaiveDate> {
    let b = p.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)
}

/// Pairs the comma-separated `volume_periods` and `volume_values` of a snapshot row; malformed or
/// mismatched lists are an error, never a silently shorter history.
fn parse_volume_lists(periods: &str, values: &str) -> Result<Vec<(chrono::NaiveDate, f64)>> {
    let corrupt = |what: String| StoreError::Corrupt(format!("keyword_data volume lists: {what}"));
    if periods.is_empty() && values.is_empty() {
        return Ok(Vec::new());
    }
    let (n, m) = (periods.split(',').count(), values.split(',').count());
    if n != m {
        return Err(corrupt(format!("{n} periods but {m} values")));
    }
    periods
        .split(',')
        .zip(values.split(','))
        .map(|(p, v)| {
            let day = match iso_date(p) {
                Some(d) => d,
                None => p
                    .parse::<chrono::NaiveDate>()
                    .map_err(|e| corrupt(format!("period {p:?}: {e}")))?,
            };
            let volume = v
                .parse::<f64>()
                .map_err(|e| corrupt(format!("value {v:?}: {e}")))?;
            Ok((day, volume))
        })
        .collect()
}

/// Movers of one direction ($1 `rising`/`falling`), optionally one platform ($2), at most $3.
const TRENDS: &str = "SELECT platform, keyword, growth_pct, current, forecast_end, horizon FROM keyword_insights \
    WHERE direction = $1 AND ($2 IS NULL OR platform = $2) \
    ORDER BY CASE WHEN direction = 'falling' THEN growth_pct ELSE -growth_pct END, platform, keyword LIMIT $3";

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    fn rows_affected(r: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        r.rows_affected()
    }

    const BACKEND: Backend = Backend::Sqlite;
    const MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");
    const REFRESH: &'static str = REFRESH;
    const SEARCH: &'static str = SEARCH;
    const EXPORT_OBSERVATIONS: &'static str = EXPORT_OBSERVATIONS;
    const EXPORT_PREDICTIONS: &'static str = EXPORT_PREDICTIONS;
    const VERSIONS_MANY: &'static str = VERSIONS_MANY;
    const TRENDS: &'static str = TRENDS;
    const SKIP_LOCKED: &'static str = "";

    fn volumes_many(
        pool: &SqlitePool,
        keys_json: &str,
        out: &mut [Vec<(NaiveDate, f64)>],
    ) -> impl Future<Output = Result<()>> + Send {
        volumes_many(pool, keys_json, out)
    }

    fn insert_predictions(
        conn: &mut sqlx::SqliteConnection,
        rows: &[PredictionRecord],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send {
        insert_predictions(conn, rows, now)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;

    use super::{iso_date, parse_volume_lists};

    #[test]
    fn volume_lists_pair_up_or_fail_loudly() {
        let d = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        assert_eq!(
            parse_volume_lists("2024-01-07,2024-01-14", "0.30000000000000004,1.0e+20").unwrap(),
            vec![(d("2024-01-07"), 0.1 + 0.2), (d("2024-01-14"), 1e20)]
        );
        assert!(parse_volume_lists("", "").unwrap().is_empty());
        for (p, v, why) in [
            ("2024-01-07", "1,2", "1 periods but 2 values"),
            ("2024-01-07,2024-01-14", "1", "2 periods but 1 values"),
            ("2024-13-07", "1", "period \"2024-13-07\""),
            ("2024-01-07", "x", "value \"x\""),
        ] {
            let e = parse_volume_lists(p, v).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn iso_dates_read_as_chrono_reads_them() {
        let mut day = chrono::NaiveDate::from_ymd_opt(1899, 12, 25).unwrap();
        while day.year() < 2101 {
            assert_eq!(iso_date(&day.to_string()), Some(day), "{day}");
            day += chrono::Duration::days(3);
        }
        // Anything else goes to chrono, so lists read exactly as before (chrono also takes
        // `2024-1-07`).
        for other in [
            "2024-02-30",
            "2024-13-01",
            "2024-1-07",
            "2024/01/07",
            "20x4-01-07",
            "",
        ] {
            assert_eq!(iso_date(other), None, "{other}");
            assert_eq!(
                parse_volume_lists(other, "1").ok(),
                other
                    .parse::<chrono::NaiveDate>()
                    .ok()
                    .map(|d| vec![(d, 1.0)]),
                "{other}"
            );
        }
    }
}
