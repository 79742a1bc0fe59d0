//! `kwi collect` (one collection now, or `replay`) and `kwi worker` (the queue until stopped).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use kwi_features::Keyword;
use kwi_store::{JobState, NewJob, Source, Store, idem_key};

use crate::collect::etsy::{Etsy, EtsyConfig, MAX_LIMIT};
use crate::collect::{RetryPolicy, SourceClient, Stats, Worker, WorkerOptions, weekly_period};
use crate::config::{CollectArgs, CollectCommand, GlobalOpts, SourceOpts, WorkerArgs};

fn policy(o: &SourceOpts) -> RetryPolicy {
    RetryPolicy {
        retries: o.retries,
        min_delay: Duration::from_millis(o.retry_min_ms),
        retry_after_cap: Duration::from_secs(o.retry_after_cap_secs),
        timeout: Duration::from_secs(o.request_timeout_secs),
        job_attempts: o.job_attempts,
        ..RetryPolicy::default()
    }
}

/// The client of `source`, from its settings; the error names what is missing.
fn client(
    source: Source,
    o: &SourceOpts,
    store: &Arc<dyn Store>,
    stats: &Arc<Stats>,
) -> anyhow::Result<Arc<dyn SourceClient>> {
    match source {
        Source::Etsy => {
            let Some(api_key) = o.etsy_api_key.clone() else {
                bail!("no Etsy credentials: set KWI_ETSY_API_KEY to `keystring:shared_secret`");
            };
            let mut base = o.etsy_base_url.clone();
            if !base.ends_with('/') {
                base.push('/');
            }
            let config = EtsyConfig {
                base_url: base.parse().with_context(|| {
                    format!("KWI_ETSY_BASE_URL `{}` is not a URL", o.etsy_base_url)
                })?,
                api_key,
                per_second: o.etsy_per_second,
                per_day: o.etsy_per_day,
                pages: o.etsy_pages,
                limit: MAX_LIMIT,
            };
            Ok(Arc::new(Etsy::new(
                config,
                store.clone(),
                policy(o),
                stats.clone(),
            )?))
        }
        Source::Ebay | Source::Amazon => bail!(
            "collecting from {source} is not built yet; its data can come in through `kwi import`"
        ),
    }
}

fn worker_options(o: &SourceOpts) -> WorkerOptions {
    WorkerOptions {
        lease: Duration::from_secs(o.lease_secs.max(3)),
        concurrency: o.concurrency.max(1),
        ..WorkerOptions::default()
    }
}

fn keywords(args: &CollectArgs) -> anyhow::Result<Vec<Keyword>> {
    let mut raw: Vec<String> = args.keywords.clone();
    if let Some(path) = &args.keywords_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        raw.extend(text.lines().map(str::to_string));
    }
    let mut out: Vec<Keyword> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        if r.trim().is_empty() {
            continue;
        }
        let k = Keyword::parse(r).map_err(|e| anyhow::anyhow!("keyword {} `{r}`: {e}", i + 1))?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    if out.is_empty() {
        bail!("no keywords: pass --keywords \"a,b\" or --keywords-file FILE");
    }
    Ok(out)
}

/// `kwi collect`.
pub async fn run(global: &GlobalOpts, args: &CollectArgs) -> anyhow::Result<()> {
    if let Some(CollectCommand::Replay { source, sources }) = &args.command {
        return replay(global, *source, sources).await;
    }
    let Some(source) = args.source else {
        bail!("which source? pass --source etsy");
    };
    let keywords = keywords(args)?;
    let store = super::open_store(global).await?;
    let stats = Arc::new(Stats::default());
    let client = client(source, &args.sources, &store, &stats)?;
    let period = args
        .period
        .unwrap_or_else(|| weekly_period(Utc::now().date_naive()));
    let now = Utc::now();
    let jobs: Vec<NewJob> = keywords
        .iter()
        .map(|k| NewJob {
            source,
            keyword: k.clone(),
            period,
            run_at: now,
        })
        .collect();
    let queued = store.enqueue_jobs(&jobs, now).await?;
    let keys: Vec<String> = keywords
        .iter()
        .map(|k| idem_key(source, k, period))
        .collect();
    eprintln!(
        "{source}: {} keyword(s) for the period of {period}; {queued} queued, {} already collected or queued",
        keys.len(),
        keys.len() as u64 - queued
    );
    let worker = Arc::new(Worker::new(
        store.clone(),
        vec![client.clone()],
        worker_options(&args.sources),
        stats.clone(),
    ));
    let started = std::time::Instant::now();
    let jobs = worker
        .drain(&keys, Duration::from_secs(args.patience_secs))
        .await?;
    let s = stats.snapshot();
    let count = |st: JobState| jobs.iter().filter(|j| j.state == st).count();
    println!(
        "{source}: {} request(s), {} retr{}, {} rate-limited; {} observation(s) written; jobs: {} done, {} dead, {} waiting; {:.1} s",
        s.requests,
        s.retries,
        if s.retries == 1 { "y" } else { "ies" },
        s.rate_limited,
        s.observations_written,
        count(JobState::Done),
        count(JobState::Dead),
        count(JobState::Queued) + count(JobState::Running),
        started.elapsed().as_secs_f64()
    );
    for j in jobs.iter().filter(|j| j.state != JobState::Done) {
        println!(
            "  {} {}: {}{}",
            j.keyword.as_str(),
            j.state.as_str(),
            j.last_error.as_deref().unwrap_or(""),
            if j.state == JobState::Queued {
                format!(" (next attempt {})", j.run_at)
            } else {
                String::new()
            }
        );
    }
    println!(
        "{source}: {} request(s) left today",
        client.fetcher().budget_left().await?
    );
    if count(JobState::Dead) > 0 {
        bail!(
            "{} job(s) failed for good (see above; kept in collect_dead_letters)",
            count(JobState::Dead)
        );
    }
    Ok(())
}

async fn replay(global: &GlobalOpts, source: Source, o: &SourceOpts) -> anyhow::Result<()> {
    let store = super::open_store(global).await?;
    let stats = Arc::new(Stats::default());
    let client = client(source, o, &store, &stats)?;
    let kept = store.raw_responses(source).await?;
    // Group the 200 pages by job, in the order they were fetched.
    let mut by_job: Vec<(kwi_store::Job, Vec<Vec<u8>>)> = Vec::new();
    for k in kept.into_iter().filter(|k| k.raw.status == 200) {
        let body = zstd::decode_all(&k.raw.body_zstd[..])
            .with_context(|| format!("kept page of {} is not valid zstd", k.job.idem_key))?;
        match by_job.iter_mut().find(|(j, _)| j.id == k.job.id) {
            Some((_, bodies)) => bodies.push(body),
            None => by_job.push((k.job, vec![body])),
        }
    }
    let (mut written, mut failed) = (0u64, 0usize);
    for (job, bodies) in &by_job {
        match client.reparse(job, bodies) {
            Ok(rows) => {
                let c = store.import(&rows, &|_| {}).await?;
                written += c.inserted + c.updated;
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", job.idem_key);
            }
        }
    }
    println!(
        "{source}: replayed {} job(s); {written} observation(s) written; {failed} still unreadable",
        by_job.len()
    );
    Ok(())
}

/// `kwi worker`.
pub async fn worker(global: &GlobalOpts, args: &WorkerArgs) -> anyhow::Result<()> {
    let store = super::open_store(global).await?;
    let stats = Arc::new(Stats::default());
    let mut clients = Vec::new();
    for source in Source::ALL {
        match client(source, &args.sources, &store, &stats) {
            Ok(c) => clients.push(c),
            Err(e) => eprintln!("{source}: not collected ({e})"),
        }
    }
    if clients.is_empty() {
        bail!("no source has credentials (set KWI_ETSY_API_KEY)");
    }
    let options = worker_options(&args.sources);
    eprintln!(
        "worker {} running ({} at once)",
        options.name, options.concurrency
    );
    let worker = Arc::new(Worker::new(store, clients, options, stats.clone()));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(worker.run(rx));
    crate::app::shutdown_signal().await;
    eprintln!("stopping: finishing the jobs in hand");
    let _ = tx.send(true);
    run.await.context("worker task failed")?;
    let s = stats.snapshot();
    println!(
        "{} request(s), {} retries, {} jobs done, {} rescheduled, {} dead, {} observation(s) written",
        s.requests, s.retries, s.jobs_done, s.jobs_rescheduled, s.jobs_dead, s.observations_written
    );
    Ok(())
}
