//! `kwi collect` (one collection now, or `replay`), `kwi worker` (queue and scheduler until
//! stopped; also started by `kwi serve --worker`) and `kwi watch`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use kwi_features::Keyword;
use kwi_store::{JobState, NewJob, Source, Store, idem_key};

use crate::collect::amazon::{SpApi, SpApiConfig};
use crate::collect::ebay::{Ebay, EbayConfig};
use crate::collect::etsy::{Etsy, EtsyConfig, MAX_LIMIT};
use crate::collect::search_terms::{self, last_complete_week, report_week};
use crate::collect::{
    DailyLimits, ReforecastSnapshot, Reforecaster, RetryPolicy, SourceClient, Stats, Worker,
    WorkerOptions, run_scheduler, weekly_period,
};
use crate::config::{
    CollectArgs, CollectCommand, GlobalOpts, SourceOpts, WatchArgs, WatchCommand, WorkerArgs,
};

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

/// A base URL that paths join under (a trailing `/` added).
fn base_url(raw: &str, setting: &str) -> anyhow::Result<reqwest::Url> {
    let mut base = raw.to_string();
    if !base.ends_with('/') {
        base.push('/');
    }
    base.parse()
        .with_context(|| format!("{setting} `{raw}` is not a URL"))
}

/// What to set for `source` to be collected.
fn missing(source: Source) -> &'static str {
    match source {
        Source::Etsy => "no Etsy credentials: set KWI_ETSY_API_KEY to `keystring:shared_secret`",
        Source::Ebay => "no eBay credentials: set KWI_EBAY_CLIENT_ID and KWI_EBAY_CLIENT_SECRET",
        Source::Amazon => {
            "no SP-API credentials: set KWI_SPAPI_CLIENT_ID, KWI_SPAPI_CLIENT_SECRET and KWI_SPAPI_REFRESH_TOKEN"
        }
    }
}

/// The client of `source`, from its settings; the error names what is missing.
fn client(
    source: Source,
    o: &SourceOpts,
    store: &Arc<dyn Store>,
    stats: &Arc<Stats>,
) -> anyhow::Result<Arc<dyn SourceClient>> {
    configured_client(source, o, store, stats)?.ok_or_else(|| anyhow::anyhow!(missing(source)))
}

/// The client of `source`, `None` when its credentials are not set; an error when they are set
/// wrongly.
fn configured_client(
    source: Source,
    o: &SourceOpts,
    store: &Arc<dyn Store>,
    stats: &Arc<Stats>,
) -> anyhow::Result<Option<Arc<dyn SourceClient>>> {
    let client: Arc<dyn SourceClient> = match source {
        Source::Etsy => {
            let Some(api_key) = o.etsy_api_key.clone() else {
                return Ok(None);
            };
            let config = EtsyConfig {
                base_url: base_url(&o.etsy_base_url, "KWI_ETSY_BASE_URL")?,
                api_key,
                per_second: o.etsy_per_second,
                per_day: o.etsy_per_day,
                pages: o.etsy_pages,
                limit: MAX_LIMIT,
            };
            Arc::new(Etsy::new(config, store.clone(), policy(o), stats.clone())?)
        }
        Source::Ebay => {
            let (Some(client_id), Some(client_secret)) =
                (o.ebay_client_id.clone(), o.ebay_client_secret.clone())
            else {
                return Ok(None);
            };
            let config = EbayConfig {
                base_url: base_url(&o.ebay_base_url, "KWI_EBAY_BASE_URL")?,
                client_id,
                client_secret,
                marketplace: o.ebay_marketplace.clone(),
                buying_options: o.ebay_buying_options.clone(),
                per_second: o.ebay_per_second,
                per_day: o.ebay_per_day,
                pages: o.ebay_pages,
                limit: crate::collect::ebay::MAX_LIMIT,
            };
            Arc::new(Ebay::new(config, store.clone(), policy(o), stats.clone())?)
        }
        Source::Amazon => {
            let (Some(client_id), Some(client_secret), Some(refresh_token)) = (
                o.spapi_client_id.clone(),
                o.spapi_client_secret.clone(),
                o.spapi_refresh_token.clone(),
            ) else {
                return Ok(None);
            };
            let token_url = o.spapi_token_url.parse().with_context(|| {
                format!("KWI_SPAPI_TOKEN_URL `{}` is not a URL", o.spapi_token_url)
            })?;
            let config = SpApiConfig {
                base_url: base_url(&o.spapi_base_url, "KWI_SPAPI_BASE_URL")?,
                token_url,
                client_id,
                client_secret,
                refresh_token,
                marketplace: o.spapi_marketplace.clone(),
                per_second: o.spapi_per_second,
                per_day: o.spapi_per_day,
                reports: search_terms::ReportOptions {
                    poll: Duration::from_millis(o.spapi_report_poll_secs.max(1) * 1000),
                    timeout: Duration::from_secs(o.spapi_report_timeout_secs),
                    max_bytes: o.spapi_report_max_mb.max(1) << 20,
                },
            };
            Arc::new(SpApi::new(config, store.clone(), policy(o), stats.clone())?)
        }
    };
    Ok(Some(client))
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
    parse_keywords(&raw)
}

/// Keywords parsed and de-duplicated, blank ones skipped; the error names the bad one.
fn parse_keywords(raw: &[String]) -> anyhow::Result<Vec<Keyword>> {
    let mut out: Vec<Keyword> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, r) in raw.iter().enumerate() {
        if r.trim().is_empty() {
            continue;
        }
        let k = Keyword::parse(r).map_err(|e| anyhow::anyhow!("keyword {} `{r}`: {e}", i + 1))?;
        if seen.insert(k.as_str().to_string()) {
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
        bail!("which source? pass --source etsy, ebay or amazon");
    };
    if args.report.is_some() && source != Source::Amazon {
        bail!("--report search-terms is Amazon's (Brand Analytics): pass --source amazon");
    }
    // Checked before the store is opened: a bad argument changes nothing.
    let keywords = match args.report {
        Some(_) => Vec::new(),
        None => keywords(args)?,
    };
    let report_of = match (args.report, args.period) {
        (None, _) => None,
        (Some(_), None) => Some(last_complete_week(Utc::now().date_naive())),
        (Some(_), Some(p)) if report_week(p) == p => Some(p),
        (Some(_), Some(p)) => bail!(
            "--period {p} is a {}: Brand Analytics weeks start on a Sunday (that week's is {})",
            p.format("%A"),
            report_week(p)
        ),
    };
    let store = super::open_store(global).await?;
    let stats = Arc::new(Stats::default());
    let client = client(source, &args.sources, &store, &stats)?;
    let now = Utc::now();
    let keys: Vec<String> = if let Some(week) = report_of {
        let key = store
            .enqueue_report(source, search_terms::REPORT, week, now)
            .await?;
        eprintln!(
            "{source}: the Brand Analytics search terms report of the week of {week} ({key})"
        );
        vec![key]
    } else {
        let period = args
            .period
            .unwrap_or_else(|| weekly_period(Utc::now().date_naive()));
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
        keys
    };
    let worker = Arc::new(Worker::new(
        store.clone(),
        vec![client.clone()],
        worker_options(&args.sources),
        stats.clone(),
    ));
    let started = std::time::Instant::now();
    // Drawn on stderr when it is a terminal only (indicatif's default).
    let bar = indicatif::ProgressBar::new(keys.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:40}] {pos}/{len} keywords ({per_sec}, eta {eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix(source.as_str());
    let jobs = worker
        .drain(&keys, Duration::from_secs(args.patience_secs), &|n| {
            bar.set_position(n)
        })
        .await?;
    bar.finish_and_clear();
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

/// The daily limits quota is counted against (`/v1/collector/status`, the gauges).
pub(crate) fn daily_limits(o: &SourceOpts) -> DailyLimits {
    DailyLimits {
        per_day: vec![
            (Source::Etsy, o.etsy_per_day),
            (Source::Ebay, o.ebay_per_day),
            (Source::Amazon, o.spapi_per_day),
        ],
    }
}

/// A running queue worker and scheduler (`kwi worker`, `kwi serve --worker`).
pub(crate) struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stats: Arc<Stats>,
    reforecaster: Arc<Reforecaster>,
}

impl Running {
    /// Stops claiming, finishes the jobs in hand, stops the scheduler; returns the counters.
    pub(crate) async fn stop(self) -> (crate::collect::StatsSnapshot, ReforecastSnapshot) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        (self.stats.snapshot(), self.reforecaster.snapshot())
    }
}

/// Starts the scheduler, the re-forecasting worker and the collection worker of every source
/// that has credentials. Without any, collections wait in the queue for a worker that has them
/// (a warning says which settings are missing); re-forecast chunks are worked all the same.
pub(crate) fn start_worker(store: &Arc<dyn Store>, o: &SourceOpts) -> Running {
    let stats = Arc::new(Stats::default());
    let mut clients = Vec::new();
    for source in Source::ALL {
        match configured_client(source, o, store, &stats) {
            Ok(Some(c)) => clients.push(c),
            // Not configured is normal; configured wrongly is worth a warning.
            Ok(None) => tracing::info!("{source}: not collected ({})", missing(source)),
            Err(e) => tracing::warn!("{source}: not collected: {e:#}"),
        }
    }
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut tasks = vec![tokio::spawn(run_scheduler(
        store.clone(),
        daily_limits(o),
        Duration::from_secs(o.schedule_secs.max(1)),
        rx.clone(),
    ))];
    let options = worker_options(o);
    if clients.is_empty() {
        tracing::warn!(
            "no source has credentials (set KWI_ETSY_API_KEY; KWI_EBAY_CLIENT_ID and KWI_EBAY_CLIENT_SECRET; or KWI_SPAPI_CLIENT_ID, KWI_SPAPI_CLIENT_SECRET and KWI_SPAPI_REFRESH_TOKEN): queued collections wait for a worker that has them; this one works re-forecast chunks and the scheduler"
        );
    } else {
        tracing::info!(
            worker = %options.name,
            concurrency = options.concurrency,
            sources = ?clients.iter().map(|c| c.source()).collect::<Vec<_>>(),
            "collection worker running"
        );
        let worker = Arc::new(Worker::new(
            store.clone(),
            clients,
            options.clone(),
            stats.clone(),
        ));
        tasks.push(tokio::spawn(worker.run(rx.clone())));
    }
    let reforecaster = Arc::new(Reforecaster::new(store.clone(), options));
    tasks.push(tokio::spawn(reforecaster.clone().run(rx)));
    Running {
        stop,
        tasks,
        stats,
        reforecaster,
    }
}

/// `kwi worker`.
pub async fn worker(global: &GlobalOpts, args: &WorkerArgs) -> anyhow::Result<()> {
    let store = super::open_store(global).await?;
    let running = start_worker(&store, &args.sources);
    crate::app::shutdown_signal().await;
    eprintln!("stopping: finishing the jobs in hand");
    let (s, r) = running.stop().await;
    println!(
        "{} request(s), {} retries, {} jobs done, {} rescheduled, {} dead, {} observation(s) written; \
         {} re-forecast chunk(s) done, {} failed, {} prediction(s) written",
        s.requests,
        s.retries,
        s.jobs_done,
        s.jobs_rescheduled,
        s.jobs_dead,
        s.observations_written,
        r.chunks_done,
        r.chunks_failed,
        r.predictions
    );
    Ok(())
}

/// The account of `email`; the error says how to make one.
async fn owner(store: &Arc<dyn Store>, email: &str) -> anyhow::Result<kwi_store::Account> {
    store.account_by_email(email).await?.with_context(|| {
        format!(
            "no user {email}: pass --user EMAIL of an existing user (kwi users create makes one)"
        )
    })
}

/// `kwi watch`.
pub async fn watch(global: &GlobalOpts, args: &WatchArgs) -> anyhow::Result<()> {
    let store = super::open_store(global).await?;
    match &args.command {
        WatchCommand::Add {
            source,
            keywords,
            cadence,
            user,
        } => {
            let owner = owner(&store, user).await?;
            let keywords = parse_keywords(keywords)?;
            let watched = store
                .watch(owner.id, *source, &keywords, *cadence, Utc::now())
                .await?;
            let added = watched.iter().filter(|(_, new)| *new).count();
            let changed = watched.len() - added;
            println!(
                "{source}: {added} keyword(s) watched {cadence} for {}, {changed} already watched (now {cadence})",
                owner.email
            );
        }
        WatchCommand::List { user } => {
            let owner_id = match user {
                Some(u) => Some(owner(&store, u).await?.id),
                None => None,
            };
            let watches = store.watches(owner_id).await?;
            println!("id\tsource\tkeyword\tcadence\tlast_period\tuser_id");
            for w in &watches {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    w.id,
                    w.source,
                    w.keyword.as_str(),
                    w.cadence,
                    w.last_period
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "-".into()),
                    w.user_id
                );
            }
            eprintln!("{} watched keyword(s)", watches.len());
        }
        WatchCommand::Remove {
            source,
            keywords,
            user,
        } => {
            let owner = owner(&store, user).await?;
            let keywords = parse_keywords(keywords)?;
            let mine = store.watches(Some(owner.id)).await?;
            let mut removed = 0;
            for k in &keywords {
                match mine.iter().find(|w| w.source == *source && &w.keyword == k) {
                    Some(w) => {
                        store.unwatch(Some(owner.id), w.id).await?;
                        removed += 1;
                    }
                    None => eprintln!(
                        "{source}: `{}` was not watched by {}",
                        k.as_str(),
                        owner.email
                    ),
                }
            }
            println!(
                "{source}: {removed} keyword(s) no longer watched for {}",
                owner.email
            );
        }
    }
    Ok(())
}
