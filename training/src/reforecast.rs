//! `kwi-train reforecast`: queues every stored keyword, in chunks, for the workers (`kwi worker`,
//! `kwi serve --worker`) to forecast with the active model; with `--wait`, follows the run until
//! every chunk is done or dead.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use kwi_predict::registry::active_forecaster;
use kwi_store::{ReforecastStatus, Store};

use crate::pipeline::bar;

/// `kwi-train reforecast`.
#[derive(Debug, Clone, Args)]
pub struct ReforecastArgs {
    /// Keywords per chunk (one worker forecasts a chunk in one model call and writes it in one
    /// transaction)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub chunk: u32,
    /// Name of the run (its chunks' idempotency keys). Default: the active model's version and the
    /// store's newest data change, so queueing again before either moves queues nothing
    #[arg(long)]
    pub run: Option<String>,
    /// Follow the run until every chunk is done or dead; exit 1 if any is dead
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (the chunks stay queued)
    #[arg(long, default_value_t = 86_400)]
    pub timeout_secs: u64,
    /// Database holding the keywords and the queue (default: the embedded SQLite file)
    #[arg(long, env = "KWI_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory of the embedded database
    #[arg(long, env = "KWI_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

/// The default run name: `<active model version>@<newest data change>`.
async fn default_run(store: &dyn Store) -> anyhow::Result<String> {
    let model = active_forecaster(store)
        .await?
        .map_or_else(|| "builtin-baseline".to_string(), |m| m.version);
    let data = store.latest_data_change().await?.context(
        "the store holds no keywords: import data first (kwi import FILE) or collect some (kwi collect)",
    )?;
    Ok(format!("{model}@{}", data.format("%Y%m%dT%H%M%S%.6fZ")))
}

/// Runs `kwi-train reforecast`.
pub async fn cmd_reforecast(a: ReforecastArgs) -> anyhow::Result<()> {
    let url = kwi_store::url_or_embedded(a.database_url.as_deref(), &a.data_dir);
    let store = kwi_store::open(&url).await?;
    let run = match &a.run {
        Some(r) => r.clone(),
        None => default_run(store.as_ref()).await?,
    };
    let q = store
        .enqueue_reforecast(&run, a.chunk as usize, chrono::Utc::now())
        .await?;
    if q.existing {
        println!(
            "run {run} was already queued: {} keyword(s) in {} chunk(s); {} dead chunk(s) queued again",
            q.keywords, q.chunks, q.queued
        );
        if a.run.is_none() {
            eprintln!(
                "nothing new: neither the model nor the data changed since this run was queued (pass --run NAME for another run)"
            );
        }
    } else if q.keywords == 0 {
        anyhow::bail!(
            "the store holds no keywords: import data first (kwi import FILE) or collect some (kwi collect)"
        );
    } else {
        println!(
            "run {run}: {} keyword(s) in {} chunk(s) of up to {}; {} chunk(s) queued",
            q.keywords, q.chunks, a.chunk, q.queued
        );
    }
    if !a.wait {
        eprintln!("workers (kwi worker, kwi serve --worker) forecast the chunks");
        return Ok(());
    }
    let started = Instant::now();
    let progress = bar(q.chunks as u64, "re-forecast chunks");
    let status = loop {
        let st = store.reforecast_status(Some(&run)).await?;
        progress.set_position((st.done + st.dead) as u64);
        progress.set_message(format!("{} running, {} dead", st.running, st.dead));
        if st.queued + st.running == 0 {
            break st;
        }
        if started.elapsed() > Duration::from_secs(a.timeout_secs) {
            progress.abandon();
            anyhow::bail!(
                "gave up after {} s: {} chunk(s) queued, {} running (is a worker running? kwi worker)",
                a.timeout_secs,
                st.queued,
                st.running
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    progress.finish_and_clear();
    report(&run, &status, started.elapsed());
    if status.dead > 0 {
        anyhow::bail!(
            "{} chunk(s) of run {run} failed for good: GET /v1/collector/status lists the dead letters",
            status.dead
        );
    }
    Ok(())
}

fn report(run: &str, st: &ReforecastStatus, took: Duration) {
    println!(
        "run {run}: {} of {} chunk(s) done, {} dead, in {:.1} s",
        st.done,
        st.total(),
        st.dead,
        took.as_secs_f64()
    );
}
