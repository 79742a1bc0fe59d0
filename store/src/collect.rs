//! The collectors' durable queue (table `collect_jobs`), its dead letters, the raw responses kept
//! for replay and the daily request budgets every worker shares. One trait, [`Jobs`], implemented
//! once for [`SqlStore`] over both backends.
//!
//! Why a table of our own rather than apalis: finishing a job, writing its observations and
//! keeping its raw pages must be ONE transaction of the store the service already has (so a worker
//! killed at any point leaves all or nothing), the idempotency key `source:keyword:period` is a
//! unique column, and a lease that runs out makes the job claimable again. apalis' SQL storages
//! keep their jobs in their own schema and commit a job's state apart from what the job writes.
//!
//! Claiming: PostgreSQL takes the oldest ready row `FOR UPDATE SKIP LOCKED`, so concurrent workers
//! never wait on each other; SQLite has one writer at a time, so the same statement without the
//! locking clause is already exclusive.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use kwi_features::ingest::Observation;
use kwi_features::{Keyword, Platform};
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};
use uuid::Uuid;

use crate::sql::{Dialect, SqlStore, write_observations};
use crate::{ImportCounts, PredictionRecord, Result, StoreError};

/// Where a job collects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Etsy Open API v3.
    Etsy,
    /// eBay Browse API.
    Ebay,
    /// Amazon Selling Partner API.
    Amazon,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 3] = [Source::Etsy, Source::Ebay, Source::Amazon];

    /// The stored name (also the CLI's).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Etsy => "etsy",
            Source::Ebay => "ebay",
            Source::Amazon => "amazon",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Source::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown source `{s}`: expected etsy, ebay or amazon"))
    }
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its `run_at`.
    Queued,
    /// Leased by a worker.
    Running,
    /// Collected and written.
    Done,
    /// Failed for good (see the dead letters).
    Dead,
}

impl JobState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Dead,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| format!("unknown job state `{s}`"))
    }
}

/// The idempotency key of a collection: `source:keyword:period`.
pub fn idem_key(source: Source, keyword: &Keyword, period: NaiveDate) -> String {
    format!("{source}:{}:{period}", keyword.as_str())
}

/// The idempotency key of a source's report for a period (`amazon-report:search-terms:2026-11-22`):
/// the job of a report that is not one keyword's (its `keyword` is the report's name). It cannot be
/// a keyword job's key: those start with the bare source name.
pub fn report_key(source: Source, report: &str, period: NaiveDate) -> String {
    format!("{source}-report:{report}:{period}")
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Where to collect from.
    pub source: Source,
    /// What to collect.
    pub keyword: Keyword,
    /// The period the observation is for (part of the idempotency key).
    pub period: NaiveDate,
    /// Not claimed before.
    pub run_at: DateTime<Utc>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Id.
    pub id: Uuid,
    /// `source:keyword:period`.
    pub idem_key: String,
    /// Where to collect from.
    pub source: Source,
    /// What to collect.
    pub keyword: Keyword,
    /// The observation's period.
    pub period: NaiveDate,
    /// State.
    pub state: JobState,
    /// Claims so far (this one included, for a claimed job).
    pub attempts: i32,
    /// Not claimed before.
    pub run_at: DateTime<Utc>,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    idem_key: String,
    source: String,
    keyword: String,
    period: NaiveDate,
    state: String,
    attempts: i32,
    run_at: DateTime<Utc>,
    last_error: Option<String>,
}

/// The source and keyword of a stored row; `what` and `id` name the row in the error.
fn stored_target(what: &str, id: Uuid, source: &str, keyword: &str) -> Result<(Source, Keyword)> {
    let corrupt =
        |field: &str, e: String| StoreError::Corrupt(format!("{what} {id}: {field}: {e}"));
    Ok((
        source.parse().map_err(|e| corrupt("source", e))?,
        Keyword::parse(keyword).map_err(|e| corrupt("keyword", e.to_string()))?,
    ))
}

impl JobRow {
    fn into_job(self) -> Result<Job> {
        let (source, keyword) = stored_target("job", self.id, &self.source, &self.keyword)?;
        Ok(Job {
            source,
            keyword,
            state: self
                .state
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("job {}: state: {e}", self.id)))?,
            id: self.id,
            idem_key: self.idem_key,
            period: self.period,
            attempts: self.attempts,
            run_at: self.run_at,
            last_error: self.last_error,
        })
    }
}

/// One HTTP response kept for replay.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The URL asked, without credentials.
    pub url: String,
    /// HTTP status.
    pub status: u16,
    /// The body, zstd-compressed by the caller.
    pub body_zstd: Vec<u8>,
    /// When it arrived.
    pub fetched_at: DateTime<Utc>,
}

/// A kept response with the job it answered (for `kwi collect replay`).
#[derive(Debug, Clone)]
pub struct StoredRaw {
    /// The job.
    pub job: Job,
    /// The response.
    pub raw: RawResponse,
}

#[derive(sqlx::FromRow)]
struct RawRow {
    #[sqlx(flatten)]
    job: JobRow,
    url: String,
    status: i32,
    body_zstd: Vec<u8>,
    fetched_at: DateTime<Utc>,
}

/// A failure kept in `collect_dead_letters`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    /// The job.
    pub job_id: Uuid,
    /// Its source (`reforecast` for a re-forecast chunk).
    pub source: String,
    /// Its keyword (a re-forecast chunk's run).
    pub keyword: String,
    /// Why it failed.
    pub error: String,
    /// The first bytes of the body at fault, if a body was at fault.
    pub body_sample: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// The queue at a glance, per source.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceStatus {
    /// Jobs waiting (queued, due or not).
    pub queued: i64,
    /// Jobs leased by a worker now.
    pub running: i64,
    /// Jobs done.
    pub done: i64,
    /// Jobs dead (see the dead letters).
    pub dead: i64,
    /// When a job of this source last finished.
    pub last_success: Option<DateTime<Utc>>,
    /// The most recent failure recorded on a job, if any.
    pub last_error: Option<String>,
    /// Requests taken from today's budgets (UTC day, every credential).
    pub requests_today: i64,
}

/// How often a watched keyword is collected (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    /// Every UTC day; the observation is for the day.
    Daily,
    /// Every ISO week; the observation is for its Monday.
    Weekly,
}

impl Cadence {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Cadence::Daily => "daily",
            Cadence::Weekly => "weekly",
        }
    }

    /// The period a collection made on `day` is for.
    pub fn period(self, day: NaiveDate) -> NaiveDate {
        use chrono::Datelike;
        match self {
            Cadence::Daily => day,
            Cadence::Weekly => {
                day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday()))
            }
        }
    }
}

impl fmt::Display for Cadence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cadence {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [Cadence::Daily, Cadence::Weekly]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown cadence `{s}`: expected daily or weekly"))
    }
}

/// A watched keyword: collected from `source` every `cadence` for its owner.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Watch {
    /// Id.
    pub id: Uuid,
    /// The owner.
    pub user_id: Uuid,
    /// Where it is collected from.
    pub source: Source,
    /// The keyword (normalised).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub keyword: Keyword,
    /// How often.
    pub cadence: Cadence,
    /// The latest period a collection was queued for (`null` until the scheduler first runs).
    pub last_period: Option<NaiveDate>,
    /// When the watch was added.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct WatchRow {
    id: Uuid,
    user_id: Uuid,
    source: String,
    keyword: String,
    cadence: String,
    last_period: Option<NaiveDate>,
    created_at: DateTime<Utc>,
}

impl WatchRow {
    fn into_watch(self) -> Result<Watch> {
        let (source, keyword) = stored_target("watch", self.id, &self.source, &self.keyword)?;
        Ok(Watch {
            source,
            keyword,
            cadence: self
                .cadence
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("watch {}: cadence: {e}", self.id)))?,
            id: self.id,
            user_id: self.user_id,
            last_period: self.last_period,
            created_at: self.created_at,
        })
    }
}

const WATCH_COLUMNS: &str = "id, user_id, source, keyword, cadence, last_period, created_at";

/// The `source` of re-forecast chunks in `collect_jobs`.
const REFORECAST: &str = "reforecast";
/// The collection sources, as a SQL list (constants, never input).
const COLLECT_SOURCES: &str = "('etsy', 'ebay', 'amazon')";

/// The longest re-forecast run name.
pub const MAX_RUN_NAME: usize = 200;

/// One chunk of a re-forecast run: keywords forecast together by one worker, their predictions
/// written in the transaction that finishes the chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct ReforecastChunk {
    /// Job id.
    pub id: Uuid,
    /// The run it belongs to.
    pub run: String,
    /// Its place in the run (0-based).
    pub index: usize,
    /// Chunks in the run.
    pub of: usize,
    /// The keywords.
    pub keys: Vec<(Platform, Keyword)>,
    /// Claims so far (this one included).
    pub attempts: i32,
}

/// A chunk's `payload` column.
#[derive(Serialize, serde::Deserialize)]
struct ChunkPayload {
    index: usize,
    of: usize,
    keys: Vec<(String, String)>,
}

#[derive(sqlx::FromRow)]
struct ChunkRow {
    id: Uuid,
    keyword: String,
    payload: Option<String>,
    attempts: i32,
}

impl ChunkRow {
    fn into_chunk(self) -> Result<ReforecastChunk> {
        let corrupt =
            |e: String| StoreError::Corrupt(format!("re-forecast chunk {}: {e}", self.id));
        let p: ChunkPayload = serde_json::from_str(self.payload.as_deref().unwrap_or_default())
            .map_err(|e| corrupt(format!("payload: {e}")))?;
        let keys = p
            .keys
            .iter()
            .map(|(platform, keyword)| {
                Ok((
                    platform
                        .parse::<Platform>()
                        .map_err(|e| corrupt(e.to_string()))?,
                    Keyword::parse(keyword).map_err(|e| corrupt(e.to_string()))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ReforecastChunk {
            id: self.id,
            run: self.keyword,
            index: p.index,
            of: p.of,
            keys,
            attempts: self.attempts,
        })
    }
}

/// What [`Jobs::enqueue_reforecast`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReforecastQueued {
    /// Stored keywords split into chunks.
    pub keywords: usize,
    /// Chunks in the run.
    pub chunks: usize,
    /// Chunks queued now: every chunk of a new run; the dead ones of an existing run.
    pub queued: u64,
    /// The run existed: its chunks are those of its first enqueue.
    pub existing: bool,
}

/// A re-forecast run's chunks by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReforecastStatus {
    /// Waiting.
    pub queued: i64,
    /// Leased by a worker now.
    pub running: i64,
    /// Forecast and written.
    pub done: i64,
    /// Failed for good (see the dead letters).
    pub dead: i64,
}

impl ReforecastStatus {
    /// Every chunk.
    pub fn total(&self) -> i64 {
        self.queued + self.running + self.done + self.dead
    }
}

/// The idempotency key of a re-forecast chunk.
pub fn reforecast_key(run: &str, index: usize) -> String {
    format!("{REFORECAST}:{run}:{index}")
}

#[derive(sqlx::FromRow)]
struct CountRow {
    source: String,
    state: String,
    n: i64,
    last_at: Option<DateTime<Utc>>,
}

/// The guard of every write a worker makes to a job it claimed: it still holds the lease (binds
/// `$1` = job id, `$2` = worker name). A worker whose lease was taken over changes nothing.
macro_rules! held_by {
    () => {
        "id = $1 AND worker = $2 AND state = 'running'"
    };
}

const JOB_COLUMNS: &str =
    "id, idem_key, source, keyword, period, state, attempts, run_at, last_error";

/// The queue half of the store.
#[async_trait]
pub trait Jobs: Send + Sync {
    /// Enqueues jobs; a key already queued, running or done is left as it is (idempotent), a dead
    /// one is queued again with its attempts reset. Returns how many were (re)queued.
    async fn enqueue_jobs(&self, jobs: &[NewJob], now: DateTime<Utc>) -> Result<u64>;
    /// Enqueues the job of `source`'s report `report` for `period` (see [`report_key`]), due
    /// `now`, idempotently as [`Jobs::enqueue_jobs`]; returns its key.
    async fn enqueue_report(
        &self,
        source: Source,
        report: &str,
        period: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<String>;
    /// Leases the oldest ready job of `sources` (queued and due, or running with its lease run
    /// out) to `worker` until `lease_until`; a worker never takes a job it has no client for.
    async fn claim_job(
        &self,
        worker: &str,
        sources: &[Source],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Job>>;
    /// Extends a lease; `false` when the job is no longer this worker's.
    async fn renew_lease(
        &self,
        job: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool>;
    /// In ONE transaction: marks the job done, writes its observations through the import path
    /// and keeps its raw responses. `None` (and nothing written) when the lease was lost.
    async fn finish_job(
        &self,
        job: Uuid,
        worker: &str,
        rows: &[Observation],
        raw: &[RawResponse],
        now: DateTime<Utc>,
    ) -> Result<Option<ImportCounts>>;
    /// Puts the job back in the queue until `run_at`, recording why; `false` when the lease was lost.
    async fn retry_job(
        &self,
        job: Uuid,
        worker: &str,
        run_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// In ONE transaction: the job dead, a dead letter with `body_sample`, the raw responses kept
    /// (so a fixed parser can replay them). `false` when the lease was lost.
    async fn bury_job(
        &self,
        job: Uuid,
        worker: &str,
        error: &str,
        body_sample: Option<&str>,
        raw: &[RawResponse],
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// A job by idempotency key.
    async fn job(&self, idem_key: &str) -> Result<Option<Job>>;
    /// The jobs of these idempotency keys (those that exist), in no particular order.
    async fn jobs(&self, idem_keys: &[String]) -> Result<Vec<Job>>;
    /// Takes one request from the day's budget of (source, credential); `None` when `limit` is
    /// already spent (nothing taken). Every worker shares the counter.
    async fn spend_budget(
        &self,
        source: Source,
        credential: &str,
        day: NaiveDate,
        limit: i64,
    ) -> Result<Option<i64>>;
    /// Requests taken from the day's budget.
    async fn budget_used(&self, source: Source, credential: &str, day: NaiveDate) -> Result<i64>;
    /// Per source: jobs by state, last success, last error, requests taken on `today`.
    async fn queue_status(&self, today: NaiveDate) -> Result<Vec<(Source, SourceStatus)>>;
    /// Watches `keywords` on `source` for `user` at `cadence`, in one transaction; a keyword
    /// already watched on that source takes the new cadence. Returns each watch and whether it is
    /// new, in the order given.
    async fn watch(
        &self,
        user: Uuid,
        source: Source,
        keywords: &[Keyword],
        cadence: Cadence,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Watch, bool)>>;
    /// The watches of `user` (of every user with `None`), by source, keyword, owner.
    async fn watches(&self, user: Option<Uuid>) -> Result<Vec<Watch>>;
    /// How many keywords `user` watches.
    async fn watch_count(&self, user: Uuid) -> Result<i64>;
    /// Stops a watch of `user` (of anyone with `None`); `false` when there is none.
    async fn unwatch(&self, user: Option<Uuid>, id: Uuid) -> Result<bool>;
    /// The scheduler's step, in ONE transaction: queues the job of the current period (the day
    /// for daily watches, the ISO week's Monday for weekly ones, both from `today`) of every watch
    /// not queued for it yet, due `now`. A watch missed while no scheduler ran is queued for the
    /// current period (the marketplaces answer only for now). Returns jobs newly queued.
    async fn schedule_watches(&self, today: NaiveDate, now: DateTime<Utc>) -> Result<u64>;
    /// Splits every stored keyword (by platform, then keyword) into chunks of `chunk` and queues
    /// them as the new re-forecast run `run`, in one transaction. A run that exists keeps the
    /// chunks of its first enqueue: its dead chunks are queued again, nothing else changes.
    async fn enqueue_reforecast(
        &self,
        run: &str,
        chunk: usize,
        now: DateTime<Utc>,
    ) -> Result<ReforecastQueued>;
    /// Leases the oldest ready re-forecast chunk to `worker` until `lease_until`.
    async fn claim_reforecast(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ReforecastChunk>>;
    /// In ONE transaction: marks the chunk done and writes its predictions. `false` (and nothing
    /// written) when the lease was lost, so a chunk's predictions are written once.
    async fn finish_reforecast(
        &self,
        job: Uuid,
        worker: &str,
        rows: &[PredictionRecord],
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// The chunks of run `run` (of every run with `None`) by state.
    async fn reforecast_status(&self, run: Option<&str>) -> Result<ReforecastStatus>;
    /// Dead letters, newest first.
    async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>>;
    /// Kept responses of a source's finished or dead jobs, oldest first.
    async fn raw_responses(&self, source: Source) -> Result<Vec<StoredRaw>>;
}

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDate: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
{
    /// Queues one job under `key`; a no-op unless the key is new or dead (then it is queued afresh).
    async fn enqueue(
        tx: &mut DB::Connection,
        key: &str,
        j: &NewJob,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let r = sqlx::query(
            "INSERT INTO collect_jobs (id, idem_key, source, keyword, period, state, attempts, \
             run_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $7) \
             ON CONFLICT (idem_key) DO UPDATE SET state = 'queued', attempts = 0, \
             run_at = excluded.run_at, lease_until = NULL, worker = NULL, updated_at = excluded.updated_at \
             WHERE collect_jobs.state = 'dead'",
        )
        .bind(Uuid::now_v7())
        .bind(key)
        .bind(j.source.as_str())
        .bind(j.keyword.as_str())
        .bind(j.period)
        .bind(j.run_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(DB::rows_affected(&r))
    }

    /// The claim statement: leases the oldest ready job whose source satisfies `source_test`
    /// (`IN (...)`, `= '...'`: constants, never input) to `$1` until `$2` at `$3`, returning
    /// `columns`.
    fn claim_sql(source_test: &str, columns: &str) -> String {
        format!(
            "UPDATE collect_jobs SET state = 'running', attempts = attempts + 1, worker = $1, \
             lease_until = $2, updated_at = $3 WHERE id = (SELECT id FROM collect_jobs \
             WHERE ((state = 'queued' AND run_at <= $3) OR (state = 'running' AND lease_until < $3)) \
             AND source {source_test} ORDER BY run_at, id LIMIT 1 {}) RETURNING {columns}",
            DB::SKIP_LOCKED
        )
    }

    async fn keep_raw(
        tx: &mut DB::Connection,
        job: Uuid,
        source: &str,
        raw: &[RawResponse],
    ) -> Result<()> {
        for r in raw {
            sqlx::query(
                "INSERT INTO collect_raw (id, job_id, source, url, status, body_zstd, fetched_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(Uuid::now_v7())
            .bind(job)
            .bind(source)
            .bind(r.url.as_str())
            .bind(i32::from(r.status))
            .bind(r.body_zstd.clone())
            .bind(r.fetched_at)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<DB: Dialect> Jobs for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q, 'r> String: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB>,
    for<'q, 'r> i32: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> i64: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB> + Type<DB>,
    for<'q, 'r> Vec<u8>: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> NaiveDate: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> DateTime<Utc>: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<DateTime<Utc>>: Decode<'r, DB>,
    for<'q, 'r> Uuid: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
{
    async fn enqueue_jobs(&self, jobs: &[NewJob], now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for j in jobs {
            n += Self::enqueue(&mut tx, &idem_key(j.source, &j.keyword, j.period), j, now).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn enqueue_report(
        &self,
        source: Source,
        report: &str,
        period: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let keyword = Keyword::parse(report).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let key = report_key(source, keyword.as_str(), period);
        let job = NewJob {
            source,
            keyword,
            period,
            run_at: now,
        };
        let mut conn = self.pool.acquire().await?;
        Self::enqueue(&mut *conn, &key, &job, now).await?;
        Ok(key)
    }

    async fn claim_job(
        &self,
        worker: &str,
        sources: &[Source],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Job>> {
        if sources.is_empty() {
            return Ok(None);
        }
        // The names are the enum's own constants, never input: safe to write into the statement.
        let names = sources
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = Self::claim_sql(&format!("IN ({names})"), JOB_COLUMNS);
        let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(JobRow::into_job).transpose()
    }

    async fn renew_lease(
        &self,
        job: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(concat!(
            "UPDATE collect_jobs SET lease_until = $3 WHERE ",
            held_by!()
        ))
        .bind(job)
        .bind(worker)
        .bind(lease_until)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    async fn finish_job(
        &self,
        job: Uuid,
        worker: &str,
        rows: &[Observation],
        raw: &[RawResponse],
        now: DateTime<Utc>,
    ) -> Result<Option<ImportCounts>> {
        let mut tx = self.begin_write().await?;
        let source: Option<String> = sqlx::query_scalar(concat!(
            "UPDATE collect_jobs SET state = 'done', lease_until = NULL, last_error = NULL, \
             updated_at = $3 WHERE ",
            held_by!(),
            " RETURNING source"
        ))
        .bind(job)
        .bind(worker)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(source) = source else {
            return Ok(None);
        };
        let counts = write_observations::<DB>(&mut tx, rows, &|_| {}).await?;
        Self::keep_raw(&mut tx, job, &source, raw).await?;
        tx.commit().await?;
        Ok(Some(counts))
    }

    async fn retry_job(
        &self,
        job: Uuid,
        worker: &str,
        run_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(concat!(
            "UPDATE collect_jobs SET state = 'queued', run_at = $3, last_error = $4, lease_until = NULL, \
             worker = NULL, updated_at = $5 WHERE ",
            held_by!()
        ))
        .bind(job)
        .bind(worker)
        .bind(run_at)
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    async fn bury_job(
        &self,
        job: Uuid,
        worker: &str,
        error: &str,
        body_sample: Option<&str>,
        raw: &[RawResponse],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let row: Option<(String, String)> = sqlx::query_as(concat!(
            "UPDATE collect_jobs SET state = 'dead', last_error = $3, lease_until = NULL, updated_at = $4 \
             WHERE ",
            held_by!(),
            " RETURNING source, keyword"
        ))
        .bind(job)
        .bind(worker)
        .bind(error)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((source, keyword)) = row else {
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO collect_dead_letters (id, job_id, source, keyword, error, body_sample, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind(job)
        .bind(source.as_str())
        .bind(keyword.as_str())
        .bind(error)
        .bind(body_sample)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::keep_raw(&mut tx, job, &source, raw).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn job(&self, idem_key: &str) -> Result<Option<Job>> {
        let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM collect_jobs WHERE idem_key = $1"
        )))
        .bind(idem_key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(JobRow::into_job).transpose()
    }

    async fn jobs(&self, idem_keys: &[String]) -> Result<Vec<Job>> {
        let mut out = Vec::with_capacity(idem_keys.len());
        for chunk in idem_keys.chunks(500) {
            let mut qb = sqlx::QueryBuilder::<DB>::new(format!(
                "SELECT {JOB_COLUMNS} FROM collect_jobs WHERE idem_key IN ("
            ));
            let mut list = qb.separated(", ");
            for k in chunk {
                list.push_bind(k.as_str());
            }
            qb.push(")");
            let rows: Vec<JobRow> = qb.build_query_as().fetch_all(&self.pool).await?;
            for r in rows {
                out.push(r.into_job()?);
            }
        }
        Ok(out)
    }

    async fn spend_budget(
        &self,
        source: Source,
        credential: &str,
        day: NaiveDate,
        limit: i64,
    ) -> Result<Option<i64>> {
        if limit < 1 {
            return Ok(None);
        }
        Ok(sqlx::query_scalar(
            "INSERT INTO collect_budgets (source, credential, day, used) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (source, credential, day) DO UPDATE SET used = collect_budgets.used + 1 \
             WHERE collect_budgets.used < $4 RETURNING CAST(used AS BIGINT)",
        )
        .bind(source.as_str())
        .bind(credential)
        .bind(day)
        .bind(limit)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn budget_used(&self, source: Source, credential: &str, day: NaiveDate) -> Result<i64> {
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(used AS BIGINT) FROM collect_budgets WHERE source = $1 AND credential = $2 AND day = $3",
        )
        .bind(source.as_str())
        .bind(credential)
        .bind(day)
        .fetch_optional(&self.pool)
        .await?;
        Ok(used.unwrap_or(0))
    }

    async fn queue_status(&self, today: NaiveDate) -> Result<Vec<(Source, SourceStatus)>> {
        let rows: Vec<CountRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT source, state, COUNT(*) AS n, MAX(updated_at) AS last_at FROM collect_jobs \
                 WHERE source IN {COLLECT_SOURCES} GROUP BY source, state"
        )))
        .fetch_all(&self.pool)
        .await?;
        let errors: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT j.source, j.last_error FROM collect_jobs j WHERE j.last_error IS NOT NULL \
                 AND j.source IN {COLLECT_SOURCES} AND j.updated_at = (SELECT MAX(k.updated_at) \
                 FROM collect_jobs k WHERE k.source = j.source AND k.last_error IS NOT NULL)"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(Source, SourceStatus)> = Source::ALL
            .into_iter()
            .map(|s| (s, SourceStatus::default()))
            .collect();
        let status_of = |out: &[(Source, SourceStatus)], source: &str| -> Result<usize> {
            let s: Source = source.parse().map_err(StoreError::Corrupt)?;
            Ok(out
                .iter()
                .position(|(x, _)| *x == s)
                .expect("every source listed"))
        };
        for r in rows {
            let i = status_of(&out, &r.source)?;
            let st = &mut out[i].1;
            match r.state.parse().map_err(StoreError::Corrupt)? {
                JobState::Queued => st.queued = r.n,
                JobState::Running => st.running = r.n,
                JobState::Done => {
                    st.done = r.n;
                    st.last_success = r.last_at;
                }
                JobState::Dead => st.dead = r.n,
            }
        }
        for (source, error) in errors {
            let i = status_of(&out, &source)?;
            out[i].1.last_error = Some(error);
        }
        let spent: Vec<(String, i64)> = sqlx::query_as(
            "SELECT source, CAST(SUM(used) AS BIGINT) FROM collect_budgets WHERE day = $1 GROUP BY source",
        )
        .bind(today)
        .fetch_all(&self.pool)
        .await?;
        for (source, used) in spent {
            let i = status_of(&out, &source)?;
            out[i].1.requests_today = used;
        }
        Ok(out)
    }

    async fn watch(
        &self,
        user: Uuid,
        source: Source,
        keywords: &[Keyword],
        cadence: Cadence,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Watch, bool)>> {
        let sql = format!(
            "INSERT INTO watchlist (id, user_id, source, keyword, cadence, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, source, keyword) \
             DO UPDATE SET cadence = excluded.cadence RETURNING {WATCH_COLUMNS}"
        );
        let mut tx = self.begin_write().await?;
        let mut out = Vec::with_capacity(keywords.len());
        for keyword in keywords {
            let id = Uuid::now_v7();
            let row: WatchRow = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .bind(user)
                .bind(source.as_str())
                .bind(keyword.as_str())
                .bind(cadence.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            let created = row.id == id;
            out.push((row.into_watch()?, created));
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn watches(&self, user: Option<Uuid>) -> Result<Vec<Watch>> {
        let order = "ORDER BY source, keyword, user_id";
        let rows: Vec<WatchRow> = match user {
            Some(u) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WATCH_COLUMNS} FROM watchlist WHERE user_id = $1 {order}"
                )))
                .bind(u)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WATCH_COLUMNS} FROM watchlist {order}"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(WatchRow::into_watch).collect()
    }

    async fn watch_count(&self, user: Uuid) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM watchlist WHERE user_id = $1")
                .bind(user)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn unwatch(&self, user: Option<Uuid>, id: Uuid) -> Result<bool> {
        let r = match user {
            Some(u) => {
                sqlx::query("DELETE FROM watchlist WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(u)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM watchlist WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(DB::rows_affected(&r) == 1)
    }

    async fn schedule_watches(&self, today: NaiveDate, now: DateTime<Utc>) -> Result<u64> {
        let (day, week) = (Cadence::Daily.period(today), Cadence::Weekly.period(today));
        let mut tx = self.begin_write().await?;
        // Take the write lock first (a statement that writes, matching nothing): an SQLite
        // transaction that reads before it writes fails at once with SQLITE_BUSY when another
        // writer (a worker finishing a job) got in between, instead of waiting its turn.
        sqlx::query("UPDATE watchlist SET last_period = last_period WHERE id IS NULL")
            .execute(&mut *tx)
            .await?;
        let due: Vec<WatchRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {WATCH_COLUMNS} FROM watchlist WHERE last_period IS NULL \
             OR (cadence = 'daily' AND last_period < $1) OR (cadence = 'weekly' AND last_period < $2) \
             ORDER BY id"
        )))
        .bind(day)
        .bind(week)
        .fetch_all(&mut *tx)
        .await?;
        let mut queued = 0;
        for row in due {
            let w = row.into_watch()?;
            let period = w.cadence.period(today);
            let job = NewJob {
                source: w.source,
                keyword: w.keyword,
                period,
                run_at: now,
            };
            queued += Self::enqueue(
                &mut tx,
                &idem_key(job.source, &job.keyword, job.period),
                &job,
                now,
            )
            .await?;
            sqlx::query("UPDATE watchlist SET last_period = $1 WHERE id = $2")
                .bind(period)
                .bind(w.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(queued)
    }

    async fn enqueue_reforecast(
        &self,
        run: &str,
        chunk: usize,
        now: DateTime<Utc>,
    ) -> Result<ReforecastQueued> {
        if run.trim().is_empty() || run.len() > MAX_RUN_NAME {
            return Err(StoreError::Invalid(format!(
                "a re-forecast run needs a name of 1 to {MAX_RUN_NAME} bytes (got {})",
                run.len()
            )));
        }
        if !(1..=100_000).contains(&chunk) {
            return Err(StoreError::Invalid(format!(
                "chunk size {chunk} is outside 1..=100000 keywords"
            )));
        }
        // A run is what its first enqueue made: queueing it again only revives its dead chunks
        // (re-chunking a run would forecast some keywords twice).
        let existing: Vec<(Option<String>,)> = sqlx::query_as(
            "SELECT payload FROM collect_jobs WHERE source = 'reforecast' AND keyword = $1",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        if !existing.is_empty() {
            let mut keywords = 0;
            for (payload,) in &existing {
                let p: ChunkPayload = serde_json::from_str(payload.as_deref().unwrap_or_default())
                    .map_err(|e| {
                        StoreError::Corrupt(format!("re-forecast run {run}: payload: {e}"))
                    })?;
                keywords += p.keys.len();
            }
            let r = sqlx::query(
                "UPDATE collect_jobs SET state = 'queued', attempts = 0, run_at = $2, \
                 lease_until = NULL, worker = NULL, updated_at = $2 \
                 WHERE source = 'reforecast' AND keyword = $1 AND state = 'dead'",
            )
            .bind(run)
            .bind(now)
            .execute(&self.pool)
            .await?;
            return Ok(ReforecastQueued {
                keywords,
                chunks: existing.len(),
                queued: DB::rows_affected(&r),
                existing: true,
            });
        }
        // Read before the transaction: a SQLite transaction that writes must begin with its write.
        // Keywords stored after this read belong to the next run.
        let keys: Vec<(String, String)> =
            sqlx::query_as("SELECT platform, keyword FROM keyword_data ORDER BY platform, keyword")
                .fetch_all(&self.pool)
                .await?;
        let of = keys.len().div_ceil(chunk);
        let mut tx = self.begin_write().await?;
        let mut queued = 0;
        for (index, part) in keys.chunks(chunk).enumerate() {
            let payload = serde_json::to_string(&ChunkPayload {
                index,
                of,
                keys: part.to_vec(),
            })
            .map_err(|e| StoreError::Invalid(format!("cannot encode a chunk: {e}")))?;
            // Two enqueues of one new run at once: the second one's rows conflict and do nothing.
            let r = sqlx::query(
                "INSERT INTO collect_jobs (id, idem_key, source, keyword, period, state, attempts, \
                 run_at, created_at, updated_at, payload) \
                 VALUES ($1, $2, 'reforecast', $3, $4, 'queued', 0, $5, $5, $5, $6) \
                 ON CONFLICT (idem_key) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(reforecast_key(run, index))
            .bind(run)
            .bind(now.date_naive())
            .bind(now)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
            queued += DB::rows_affected(&r);
        }
        tx.commit().await?;
        Ok(ReforecastQueued {
            keywords: keys.len(),
            chunks: of,
            queued,
            existing: false,
        })
    }

    async fn claim_reforecast(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ReforecastChunk>> {
        let sql = Self::claim_sql(
            &format!("= '{REFORECAST}'"),
            "id, keyword, payload, attempts",
        );
        let row: Option<ChunkRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(ChunkRow::into_chunk).transpose()
    }

    async fn finish_reforecast(
        &self,
        job: Uuid,
        worker: &str,
        rows: &[PredictionRecord],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(concat!(
            "UPDATE collect_jobs SET state = 'done', lease_until = NULL, last_error = NULL, \
             updated_at = $3 WHERE ",
            held_by!()
        ))
        .bind(job)
        .bind(worker)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Ok(false);
        }
        if !rows.is_empty() {
            DB::insert_predictions(&mut *tx, rows, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn reforecast_status(&self, run: Option<&str>) -> Result<ReforecastStatus> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM collect_jobs WHERE source = 'reforecast' \
             AND (CAST($1 AS TEXT) IS NULL OR keyword = $1) GROUP BY state",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        let mut st = ReforecastStatus::default();
        for (state, n) in rows {
            match state.parse().map_err(StoreError::Corrupt)? {
                JobState::Queued => st.queued = n,
                JobState::Running => st.running = n,
                JobState::Done => st.done = n,
                JobState::Dead => st.dead = n,
            }
        }
        Ok(st)
    }

    async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>> {
        Ok(sqlx::query_as(
            "SELECT job_id, source, keyword, error, body_sample, created_at FROM collect_dead_letters \
             ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn raw_responses(&self, source: Source) -> Result<Vec<StoredRaw>> {
        let rows: Vec<RawRow> = sqlx::query_as(
            "SELECT j.id, j.idem_key, j.source, j.keyword, j.period, j.state, j.attempts, j.run_at, \
             j.last_error, r.url, r.status, r.body_zstd, r.fetched_at FROM collect_raw r \
             JOIN collect_jobs j ON j.id = r.job_id WHERE r.source = $1 ORDER BY r.fetched_at, r.id",
        )
        .bind(source.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredRaw {
                    raw: RawResponse {
                        url: r.url,
                        status: u16::try_from(r.status).unwrap_or(0),
                        body_zstd: r.body_zstd,
                        fetched_at: r.fetched_at,
                    },
                    job: r.job.into_job()?,
                })
            })
            .collect()
    }
}
