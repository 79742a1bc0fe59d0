//! SQLite backend: the embedded default (one file, no server).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

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
            if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| sqlx::Error::Io(e))?;
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

sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    Backend::Sqlite,
    sqlx::migrate!("migrations/sqlite"),
    REFRESH
);
