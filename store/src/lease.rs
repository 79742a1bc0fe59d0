//! Background work that must run once across instances (the insights job, the collectors'
//! scheduler, the history purge), whatever the number of `kwi serve` processes on one store: a
//! named lease in table `leader_leases`. An instance takes the lease when it is free or has run
//! out, keeps it by renewing it before it runs out, and works only while it holds it; a holder
//! that dies stops renewing and another instance takes over once the lease has run out. Works the
//! same on both backends (one upsert), so the embedded default needs nothing else.

use std::sync::OnceLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Encode, Executor, Type};

use crate::Result;
use crate::sql::{Dialect, SqlStore};

/// The lease of the insights job.
pub const INSIGHTS_LEASE: &str = "insights";
/// The lease of the collectors' scheduler (watched keywords → jobs).
pub const SCHEDULER_LEASE: &str = "collect-scheduler";
/// The lease of the search-history purge.
pub const PURGE_LEASE: &str = "history-purge";

/// This process's name as a lease holder: host, process id and a random suffix (two processes
/// never share one, even in one container after a restart that reuses the pid).
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        format!("{}-{}-{}", host_name(), std::process::id(), &tag[..8])
    })
}

/// This machine's name (`/etc/hostname`; `kwi` when there is none): part of the names workers and
/// lease holders go by.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "kwi".into())
}

/// Named leases over the store.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes or renews lease `name` for `holder` until `until`: `true` when `holder` holds it now
    /// (it was free, had run out by `now`, or was already `holder`'s), `false` when another
    /// holder's lease is still running.
    async fn lead(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    /// Gives lease `name` up if `holder` holds it (a stopping instance hands over at once).
    async fn release(&self, name: &str, holder: &str) -> Result<()>;
}

#[async_trait]
impl<DB: Dialect> Leases for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
{
    async fn lead(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO leader_leases (name, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE leader_leases.holder = excluded.holder OR leader_leases.until < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leader_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
