//! Observation files → store, all or nothing (what `kwi import` runs, [`crate::cli`]).
//!
//! Files are read and validated by the feature layer (Polars); every rejected row is reported as
//! `file:line: column: reason`. Unless `--skip-invalid` is given, one rejected row means nothing is
//! written. The write is one transaction across all files, an upsert, so a re-import changes nothing.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use kwi_features::ingest::{self, IngestOptions, Ingested, Observation, RowError};
use kwi_features::{Keyword, Platform};

use kwi_store::{ImportCounts, Store};

/// The Google Trends sample built into the binary (data/samples, origin in data/README.md).
const SAMPLE_GTRENDS: &[u8] = include_bytes!("../data/samples/gtrends_pt_weekly_topics.csv");
/// Listing features of real marketplace keywords built into the binary (Amazon.in categories and
/// Etsy "tarot"; written by `kwi-train fit-competition`, origin in data/README.md): no search
/// volume, so they are scored for competition but have no forecast.
const SAMPLE_LISTINGS: &[u8] = include_bytes!("../data/samples/marketplace_listing_features.csv");

/// What an import did, printed at the end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Files read.
    pub files: usize,
    /// Data rows read from the files.
    pub rows_read: usize,
    /// Observations that passed validation.
    pub valid: usize,
    /// Rejected rows (cells) reported.
    pub rejected: usize,
    /// What the store did with the valid observations.
    pub counts: ImportCounts,
    /// Distinct (platform, keyword) pairs among the valid observations.
    pub keywords: usize,
    /// First and last period among the valid observations.
    pub range: Option<(NaiveDate, NaiveDate)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} file(s), {} rows read, {} observations valid, {} rejected; inserted {}, updated {}, unchanged {}; {} keyword(s)",
            self.files,
            self.rows_read,
            self.valid,
            self.rejected,
            self.counts.inserted,
            self.counts.updated,
            self.counts.unchanged,
            self.keywords
        )?;
        if let Some((a, b)) = self.range {
            write!(f, "; periods {a} .. {b}")?;
        }
        Ok(())
    }
}

/// All files read, checked across files for duplicate keys.
#[derive(Default)]
pub struct Parsed {
    rows: Vec<Observation>,
    /// Index into `files` of each row's file.
    origin: Vec<usize>,
    files: Vec<String>,
    errors: Vec<RowError>,
    warnings: Vec<String>,
    rows_read: usize,
}

impl Parsed {
    /// Every rejected row, as `file:line: column: reason`.
    pub fn errors(&self) -> &[RowError] {
        &self.errors
    }

    /// What was read but deserves a look (e.g. skipped preamble lines).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn add(&mut self, got: Ingested, file: String) {
        let idx = self.files.len();
        self.files.push(file);
        self.rows_read += got.rows_read;
        self.errors.extend(got.errors);
        self.warnings.extend(got.warnings);
        self.origin.extend(std::iter::repeat_n(idx, got.rows.len()));
        self.rows.extend(got.rows);
    }

    /// Rejects a key that two files both give (same platform, keyword, period and source): which
    /// value should win is ambiguous.
    fn reject_cross_file_duplicates(&mut self) {
        let mut seen: HashMap<(Platform, &Keyword, NaiveDate, &str), usize> = HashMap::new();
        let mut drop = BTreeSet::new();
        for (i, o) in self.rows.iter().enumerate() {
            if let Some(first) = seen.insert((o.platform, &o.keyword, o.period_start, &o.source), i)
            {
                drop.insert(i);
                self.errors.push(RowError {
                    file: self.files[self.origin[i]].clone(),
                    line: o.line,
                    column: "keyword".into(),
                    reason: format!(
                        "({}, {}, {}, source {}) is also given by {}:{}",
                        o.platform,
                        o.keyword,
                        o.period_start,
                        o.source,
                        self.files[self.origin[first]],
                        self.rows[first].line
                    ),
                });
            }
        }
        if !drop.is_empty() {
            let mut i = 0;
            self.rows.retain(|_| {
                let keep = !drop.contains(&i);
                i += 1;
                keep
            });
        }
    }
}

/// Reads and validates every file (CPU-bound: call from a blocking thread).
pub fn read_all(files: &[PathBuf], opts: &IngestOptions) -> anyhow::Result<Parsed> {
    let mut parsed = Parsed::default();
    for path in files {
        let got = ingest::read_observations(path, opts)?;
        parsed.add(got, path.display().to_string());
    }
    parsed.reject_cross_file_duplicates();
    Ok(parsed)
}

/// Writes validated observations in one transaction, with a progress bar.
pub async fn write(store: &dyn Store, parsed: Parsed, quiet: bool) -> anyhow::Result<Summary> {
    let rows = parsed.rows;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(rows.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let counts = store
        .import(&rows, &|done| bar.set_position(done))
        .await
        .context("import failed; the transaction was rolled back and nothing was written")?;
    bar.finish_and_clear();
    let keywords: BTreeSet<(Platform, &Keyword)> =
        rows.iter().map(|o| (o.platform, &o.keyword)).collect();
    let range = rows
        .iter()
        .map(|o| o.period_start)
        .min()
        .zip(rows.iter().map(|o| o.period_start).max());
    Ok(Summary {
        files: parsed.files.len(),
        rows_read: parsed.rows_read,
        valid: rows.len(),
        rejected: parsed.errors.len(),
        counts,
        keywords: keywords.len(),
        range,
    })
}

/// Loads the built-in sample: 32 Google Trends topics (platform `google`) and the listing
/// features of the marketplace keywords (platforms `amazon` and `etsy`).
pub async fn load_sample(store: &dyn Store) -> anyhow::Result<Summary> {
    let mut parsed = Parsed::default();
    for (file, bytes, platform, source) in [
        (
            "gtrends_pt_weekly_topics.csv",
            SAMPLE_GTRENDS,
            Some(Platform::Google),
            "sample:gtrends_pt",
        ),
        (
            "marketplace_listing_features.csv",
            SAMPLE_LISTINGS,
            None,
            "sample:marketplace",
        ),
    ] {
        let got = ingest::read_observations_csv_bytes(
            file,
            bytes,
            &IngestOptions {
                platform,
                source: Some(source.into()),
                ..IngestOptions::default()
            },
        )?;
        anyhow::ensure!(
            got.errors.is_empty(),
            "built-in sample {file} has invalid rows: {}",
            got.errors[0]
        );
        parsed.add(got, format!("sample {file}"));
    }
    write(store, parsed, true).await
}
