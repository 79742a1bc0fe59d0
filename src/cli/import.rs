//! `kwi import FILE...`: read and validate on a blocking thread, report every rejected row, write
//! everything in one transaction with a progress bar, print a summary.

use anyhow::{Context, bail};
use kwi_features::ingest::IngestOptions;

use crate::config::{GlobalOpts, ImportArgs};
use crate::import::{read_all, write};

/// `kwi import FILE...`.
pub async fn run(global: &GlobalOpts, args: &ImportArgs) -> anyhow::Result<()> {
    let opts = IngestOptions {
        format: args.format,
        platform: args.platform,
        start: args.start,
        end: args.end,
        freq: args.freq,
        source: args.source.clone(),
    };
    let files = args.files.clone();
    let parsed = tokio::task::spawn_blocking(move || read_all(&files, &opts))
        .await
        .context("reader task failed")??;
    for w in parsed.warnings() {
        eprintln!("warning: {w}");
    }
    for e in parsed.errors() {
        eprintln!("{e}");
    }
    if !parsed.errors().is_empty() && !args.skip_invalid {
        bail!(
            "{} row(s) rejected (listed above); nothing was imported (fix the rows, or pass --skip-invalid to import the valid ones)",
            parsed.errors().len()
        );
    }
    let store = super::open_store(global).await?;
    let summary = write(store.as_ref(), parsed, args.quiet).await?;
    println!("{summary}");
    Ok(())
}
