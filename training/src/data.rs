//! Training input: series from files (M4, Google Trends, long) or from the store, through the
//! feature layer's readers and regulariser (the same code the server uses).

use std::path::Path;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use kwi_features::ingest::{IngestOptions, InputFormat, read_observations};
use kwi_features::series::{Series, infer_frequency, regularise};
use kwi_features::{Frequency, Platform};

/// Anchor for M4 files, which carry no dates (the values' positions are what matter).
pub const M4_EPOCH: &str = "2000-01-02";

/// Reads a file's series. M4 files are anchored at [`M4_EPOCH`] unless `start` is given. Any
/// rejected row is an error (training on silently dropped data would mislead).
pub fn load_file(
    path: &Path,
    format: InputFormat,
    platform: Option<Platform>,
    start: Option<NaiveDate>,
    freq: Option<Frequency>,
) -> anyhow::Result<(Vec<Series>, Frequency)> {
    let is_m4 = format == InputFormat::M4;
    let opts = IngestOptions {
        format,
        platform,
        start: if is_m4 {
            Some(start.unwrap_or_else(|| M4_EPOCH.parse().expect("valid date")))
        } else {
            start
        },
        freq: freq.unwrap_or_default(),
        ..IngestOptions::default()
    };
    let got = read_observations(path, &opts)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let freq = resolve_freq(&path.display().to_string(), freq, got.freq, &got.rows);
    if !got.errors.is_empty() {
        for e in got.errors.iter().take(20) {
            eprintln!("{e}");
        }
        bail!(
            "{} row(s) of {} rejected{}",
            got.errors.len(),
            path.display(),
            if got.errors.len() > 20 {
                " (first 20 listed)"
            } else {
                ""
            }
        );
    }
    let series = regularise(&got.rows, freq, &got.labels);
    if series.is_empty() {
        bail!("{} holds no series with a search volume", path.display());
    }
    // Several observations in one period are averaged (e.g. a daily file on the weekly grid): say so.
    let with_volume = got.rows.iter().filter(|r| r.values[0].is_some()).count();
    let periods: usize = series
        .iter()
        .map(|s| s.observed.iter().filter(|o| **o).count())
        .sum();
    if with_volume > periods {
        let (grid, hint) = match freq {
            Frequency::Weekly => ("weekly", " (a daily file? pass --freq daily to keep days)"),
            Frequency::Daily => ("daily", ""),
            Frequency::Monthly => ("monthly", ""),
        };
        eprintln!(
            "note: {} holds {with_volume} observations for {periods} {grid} periods; observations in the same period are averaged{hint}",
            path.display()
        );
    }
    Ok((series, freq))
}

/// The grid to put data on: `--freq` when given (a note when the layout implies another), else the
/// layout's own frequency, else the one the dates show ([`infer_frequency`]), else weekly.
fn resolve_freq(
    what: &str,
    given: Option<Frequency>,
    layout: Option<Frequency>,
    rows: &[kwi_features::ingest::Observation],
) -> Frequency {
    match (given, layout) {
        (Some(g), Some(l)) if g != l => {
            eprintln!("note: {what} holds {l} data; putting it on the {g} grid as --freq says");
            g
        }
        (Some(g), _) => g,
        (None, Some(l)) => l,
        (None, None) => match infer_frequency(rows) {
            Some(f) => {
                if f != Frequency::Weekly {
                    eprintln!(
                        "note: {what} holds {f} dates; reading it as {f} data (--freq overrides)"
                    );
                }
                f
            }
            None => Frequency::Weekly,
        },
    }
}

/// Reads every keyword's series from the store (optionally one platform).
pub async fn load_store(
    url: &str,
    platform: Option<Platform>,
    freq: Option<Frequency>,
) -> anyhow::Result<(Vec<Series>, Frequency)> {
    let store = kwi_store::open(url).await?;
    let rows = store.observations(platform, None).await?;
    let freq = resolve_freq("the store", freq, None, &rows);
    let series = regularise(&rows, freq, &Default::default());
    if series.is_empty() {
        bail!(
            "the store holds no observations with a search volume{}",
            platform.map(|p| format!(" on {p}")).unwrap_or_default()
        );
    }
    Ok((series, freq))
}

/// Splits off the last `n` values of every series: `(kept series, held-out tails)`. Series too
/// short to keep at least `min_keep` values are an error naming them.
pub fn holdout(
    series: &[Series],
    n: usize,
    min_keep: usize,
) -> anyhow::Result<(Vec<Series>, Vec<Vec<f64>>)> {
    let short: Vec<&str> = series
        .iter()
        .filter(|s| s.values.len() < n + min_keep)
        .map(|s| s.label.as_str())
        .collect();
    if !short.is_empty() {
        bail!(
            "{} series are too short to hold out {n} periods and keep {min_keep}: {}",
            short.len(),
            short
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut kept = Vec::with_capacity(series.len());
    let mut tails = Vec::with_capacity(series.len());
    for s in series {
        let cut = s.values.len() - n;
        let mut k = s.clone();
        k.values.truncate(cut);
        k.observed.truncate(cut);
        k.gaps = k.observed.iter().filter(|o| !**o).count();
        tails.push(s.values[cut..].to_vec());
        kept.push(k);
    }
    Ok((kept, tails))
}

/// Reads an M4 test file (values only), matched to `train` by label. Every training series must
/// have its test values.
pub fn load_m4_test(path: &Path, train: &[Series]) -> anyhow::Result<Vec<Vec<f64>>> {
    let test = load_file(
        path,
        InputFormat::M4,
        train.first().map(|s| s.platform),
        None,
        Some(train.first().map_or(Frequency::Weekly, |s| s.freq)),
    )?
    .0;
    let by_label: std::collections::HashMap<&str, &Series> =
        test.iter().map(|s| (s.label.as_str(), s)).collect();
    train
        .iter()
        .map(|s| {
            by_label
                .get(s.label.as_str())
                .map(|t| t.values.clone())
                .with_context(|| {
                    format!("{}: no test values for series {}", path.display(), s.label)
                })
        })
        .collect()
}
