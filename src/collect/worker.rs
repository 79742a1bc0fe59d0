//! The queue worker: claims a job, keeps its lease alive while a source collects it, and settles
//! it: done (observations and raw pages written in one transaction), back in the queue
//! (transient failure, daily quota) or dead (malformed body, refusal, attempts used up).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kwi_store::{Job, JobState, Source, Store};
use tokio::sync::watch;

use super::{JobError, SourceClient, Stats};

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This worker's name in the queue (host and process id by default).
    pub name: String,
    /// How long a claim holds before another worker may take the job.
    pub lease: Duration,
    /// Jobs worked on at once.
    pub concurrency: usize,
    /// How long an idle worker waits before looking at the queue again.
    pub idle_poll: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            name: format!("{}-{}", kwi_store::host_name(), std::process::id()),
            lease: super::DEFAULT_LEASE,
            concurrency: 4,
            idle_poll: Duration::from_secs(1),
        }
    }
}

/// Runs jobs of the sources it has clients for.
pub struct Worker {
    store: Arc<dyn Store>,
    clients: HashMap<Source, Arc<dyn SourceClient>>,
    /// The sources it has clients for: the only jobs it claims.
    sources: Vec<Source>,
    options: WorkerOptions,
    stats: Arc<Stats>,
}

/// How one claimed job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Written.
    Done,
    /// Back in the queue.
    Rescheduled,
    /// In the dead letters.
    Dead,
    /// The lease was lost to another worker; nothing written by this one.
    LeaseLost,
}

impl Settled {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Settled::Done => "done",
            Settled::Rescheduled => "rescheduled",
            Settled::Dead => "dead",
            Settled::LeaseLost => "lease_lost",
        }
    }
}

impl Worker {
    /// A worker over `clients`.
    pub fn new(
        store: Arc<dyn Store>,
        clients: Vec<Arc<dyn SourceClient>>,
        options: WorkerOptions,
        stats: Arc<Stats>,
    ) -> Self {
        let clients: HashMap<Source, Arc<dyn SourceClient>> =
            clients.into_iter().map(|c| (c.source(), c)).collect();
        let mut sources: Vec<Source> = clients.keys().copied().collect();
        sources.sort();
        Self {
            store,
            clients,
            sources,
            options,
            stats,
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Claims and runs one ready job; `None` when none is ready.
    pub async fn run_one(&self) -> anyhow::Result<Option<(Job, Settled)>> {
        let now = Utc::now();
        let lease = chrono::Duration::from_std(self.options.lease)?;
        let Some(job) = self
            .store
            .claim_job(&self.options.name, &self.sources, now, now + lease)
            .await?
        else {
            return Ok(None);
        };
        let client = self.clients[&job.source].clone();
        let started = std::time::Instant::now();
        let result = hold_lease(
            self.store.as_ref(),
            job.id,
            &job.idem_key,
            &self.options.name,
            self.options.lease,
            client.collect(&job),
        )
        .await?;
        let settled = self.settle(&job, client.as_ref(), result).await?;
        metrics::histogram!("kwi_collect_job_seconds", "source" => job.source.as_str())
            .record(started.elapsed().as_secs_f64());
        Ok(Some((job, settled)))
    }

    async fn settle(
        &self,
        job: &Job,
        client: &dyn SourceClient,
        result: Result<super::Collected, JobError>,
    ) -> anyhow::Result<Settled> {
        let me = &self.options.name;
        let now = Utc::now();
        let policy = client.fetcher().policy();
        let outcome = |s: &str| {
            metrics::counter!("kwi_collect_jobs_total", "source" => job.source.as_str(), "outcome" => s.to_owned())
                .increment(1);
        };
        let settled = match result {
            Ok(c) => match self
                .store
                .finish_job(job.id, me, &c.rows, &c.raw, now)
                .await?
            {
                Some(counts) => {
                    Stats::add(&self.stats.jobs_done, 1);
                    Stats::add(
                        &self.stats.observations_written,
                        counts.inserted + counts.updated,
                    );
                    Settled::Done
                }
                None => Settled::LeaseLost,
            },
            Err(JobError::DailyQuota { until, .. }) => {
                let why = format!(
                    "daily quota of {} spent; rescheduled for {until}",
                    job.source
                );
                tracing::warn!(job = %job.idem_key, "{why}");
                self.reschedule(job, until, &why).await?
            }
            Err(JobError::Transient(why)) if job.attempts < policy.job_attempts => {
                let wait = policy
                    .min_delay
                    .saturating_mul(1u32 << job.attempts.clamp(0, 10))
                    .min(policy.max_delay);
                tracing::warn!(job = %job.idem_key, attempts = job.attempts, "{why}");
                self.reschedule(job, now + chrono::Duration::from_std(wait)?, &why)
                    .await?
            }
            Err(JobError::Transient(why)) => {
                let why = format!("{why}; {} attempts used", job.attempts);
                self.bury(job, &why, None, &[]).await?
            }
            Err(JobError::Invalid {
                message,
                sample,
                raw,
            }) => {
                let sample = (!sample.is_empty()).then_some(sample);
                self.bury(job, &message, sample.as_deref(), &raw).await?
            }
            Err(JobError::Refused(why)) => self.bury(job, &why, None, &[]).await?,
            Err(JobError::Store(e)) => return Err(e.into()),
        };
        outcome(settled.as_str());
        Ok(settled)
    }

    async fn reschedule(
        &self,
        job: &Job,
        at: chrono::DateTime<Utc>,
        why: &str,
    ) -> anyhow::Result<Settled> {
        if self
            .store
            .retry_job(job.id, &self.options.name, at, why, Utc::now())
            .await?
        {
            Stats::add(&self.stats.jobs_rescheduled, 1);
            Ok(Settled::Rescheduled)
        } else {
            Ok(Settled::LeaseLost)
        }
    }

    async fn bury(
        &self,
        job: &Job,
        why: &str,
        sample: Option<&str>,
        raw: &[kwi_store::RawResponse],
    ) -> anyhow::Result<Settled> {
        tracing::error!(job = %job.idem_key, "dead letter: {why}");
        if self
            .store
            .bury_job(job.id, &self.options.name, why, sample, raw, Utc::now())
            .await?
        {
            Stats::add(&self.stats.jobs_dead, 1);
            Ok(Settled::Dead)
        } else {
            Ok(Settled::LeaseLost)
        }
    }

    /// Works until `stop` turns true: `concurrency` loops, each claiming the next ready job or
    /// sleeping `idle_poll` when none is. A job in hand is finished before stopping.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut tasks = Vec::new();
        for _ in 0..self.options.concurrency.max(1) {
            let me = self.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let idle = me.options.idle_poll;
                poll_until_stopped("collector worker", idle, idle, stop, || async {
                    Ok(me.run_one().await?.is_some())
                })
                .await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Works until every job of `keys` is done or dead, or waits in the queue beyond `patience`
    /// (a daily quota, a long backoff). `progress` hears the number of jobs settled at each look
    /// at the queue. Returns the jobs as they stand.
    pub async fn drain(
        self: Arc<Self>,
        keys: &[String],
        patience: Duration,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> anyhow::Result<Vec<Job>> {
        let (tx, rx) = watch::channel(false);
        let runner = tokio::spawn(self.clone().run(rx));
        let result = async {
            loop {
                let jobs = self.store.jobs(keys).await?;
                let horizon = Utc::now() + chrono::Duration::from_std(patience)?;
                let is_settled = |j: &Job| match j.state {
                    JobState::Done | JobState::Dead => true,
                    JobState::Queued => j.run_at > horizon,
                    JobState::Running => false,
                };
                let settled = jobs.iter().filter(|j| is_settled(j)).count();
                progress(settled as u64);
                if settled == jobs.len() {
                    return anyhow::Ok(jobs);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        .await;
        let _ = tx.send(true);
        let _ = runner.await;
        result
    }
}

/// Runs `work` while renewing the lease of job `id` (named `label` in the error) for `worker`
/// every third of `lease`; an error, and `work` dropped, if the lease is lost.
pub(super) async fn hold_lease<T>(
    store: &dyn Store,
    id: uuid::Uuid,
    label: &str,
    worker: &str,
    lease: Duration,
    work: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    let every = lease / 3;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Ok(out),
            _ = tick.tick() => {
                let until = Utc::now() + chrono::Duration::from_std(lease)?;
                if !store.renew_lease(id, worker, until).await? {
                    anyhow::bail!("lease of job {label} lost to another worker");
                }
            }
        }
    }
}

/// Runs `step` until `stop` turns true: again at once after a step that worked (`Ok(true)`),
/// after `idle` (or the stop) when it found nothing to do, after `error_wait` when it failed
/// (logged, prefixed with `what`).
pub(super) async fn poll_until_stopped<F, Fut>(
    what: &str,
    idle: Duration,
    error_wait: Duration,
    mut stop: watch::Receiver<bool>,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    while !*stop.borrow() {
        match step().await {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!("{what}: {e:#}");
                tokio::time::sleep(error_wait).await;
            }
        }
    }
}
