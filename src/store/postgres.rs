//! PostgreSQL backend: the reference store.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::sql::sql_store;
use super::{Backend, Result};

/// Store on a PostgreSQL server.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects a pool (fails within 5 s if the server is unreachable).
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// The underlying pool (for tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Latest volume and CPC, and the last 52 volumes as `[[date, volume], ...]`.
const REFRESH: &str = "INSERT INTO keyword_data (id, platform, keyword, search_volume, cpc, trend_data, last_updated) \
    SELECT $1, $2, $3, \
      (SELECT search_volume FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND search_volume IS NOT NULL ORDER BY period_start DESC, source LIMIT 1), \
      (SELECT cpc FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND cpc IS NOT NULL ORDER BY period_start DESC, source LIMIT 1), \
      COALESCE((SELECT jsonb_agg(jsonb_build_array(t.period_start, t.search_volume) ORDER BY t.period_start) FROM \
        (SELECT period_start, search_volume FROM keyword_observations WHERE platform = $2 AND keyword = $3 AND search_volume IS NOT NULL \
         ORDER BY period_start DESC, source LIMIT 52) t), '[]'::jsonb), \
      $4 WHERE true \
    ON CONFLICT (platform, keyword) DO UPDATE SET search_volume = excluded.search_volume, cpc = excluded.cpc, \
      trend_data = excluded.trend_data, last_updated = excluded.last_updated";

/// Prefix matches first, then trigram-similar keywords (pg_trgm `%` operator, GIN index), by
/// similarity and volume.
const SEARCH: &str = "SELECT platform, keyword, search_volume, keyword LIKE $2 ESCAPE '\\' AS prefix \
    FROM keyword_data WHERE ($3::text IS NULL OR platform = $3) AND (keyword LIKE $2 ESCAPE '\\' OR keyword % $1) \
    ORDER BY prefix DESC, similarity(keyword, $1) DESC, search_volume DESC NULLS LAST, keyword LIMIT $4";

sql_store!(
    PgStore,
    sqlx::Postgres,
    Backend::Postgres,
    sqlx::migrate!("migrations/postgres"),
    REFRESH,
    SEARCH
);
