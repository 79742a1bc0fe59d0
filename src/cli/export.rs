//! `kwi export`: the store's observations or persisted forecasts to an Arrow IPC stream or Parquet
//! file.

use std::io::Write;

use anyhow::Context;
use bytes::Bytes;

use crate::config::{ExportArgs, GlobalOpts};
use crate::export::{ExportFormat, ExportKind, encode_kind};

/// `kwi export`: writes the export to a temporary file beside `--out` and renames it into place, so
/// a failed or interrupted export never leaves a half-written file under the requested name.
pub async fn run(global: &GlobalOpts, args: &ExportArgs) -> anyhow::Result<()> {
    if args.out.exists() && !args.force {
        anyhow::bail!(
            "{} exists: pass --force to overwrite it",
            args.out.display()
        );
    }
    if let (Some(f), Some(t)) = (args.from, args.to) {
        anyhow::ensure!(f <= t, "--from {f} is after --to {t}");
    }
    let keywords = if args.keywords.is_empty() {
        None
    } else {
        Some(
            args.keywords
                .iter()
                .map(|k| {
                    kwi_features::Keyword::parse(k)
                        .with_context(|| format!("--keywords: `{k}` is not a keyword"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        )
    };
    let format =
        args.format
            .unwrap_or_else(|| match args.out.extension().and_then(|e| e.to_str()) {
                Some("parquet") => ExportFormat::Parquet,
                _ => ExportFormat::Arrow,
            });
    let filter = kwi_store::ExportFilter {
        platform: args.platform,
        keywords,
        from: args.from,
        to: args.to,
    };
    let store = super::open_store(global).await?;
    let dir = args
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let mut file = std::io::BufWriter::new(tmp.reopen()?);
    let mut bytes = 0u64;
    let mut failed: Option<std::io::Error> = None;
    let sink = |b: Bytes| {
        bytes += b.len() as u64;
        if let Err(e) = file.write_all(&b) {
            failed.get_or_insert(e);
        }
        let ok = failed.is_none();
        async move { ok }
    };
    let rows = encode_kind(store.as_ref(), args.what, &filter, format, sink).await;
    if let Some(e) = failed {
        return Err(e).with_context(|| format!("cannot write {}", args.out.display()));
    }
    let rows = rows?;
    file.flush()?;
    drop(file);
    tmp.persist(&args.out)
        .with_context(|| format!("cannot move the export into {}", args.out.display()))?;
    eprintln!(
        "exported {rows} {} to {} ({:.1} MB, {})",
        match args.what {
            ExportKind::Observations => "observation rows",
            ExportKind::Predictions => "forecasts (one row per step)",
        },
        args.out.display(),
        bytes as f64 / 1e6,
        match format {
            ExportFormat::Arrow => "Arrow IPC stream",
            ExportFormat::Parquet => "Parquet",
        }
    );
    Ok(())
}
