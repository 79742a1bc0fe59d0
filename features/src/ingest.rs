//! Reading observation files into validated rows.
//!
//! Five layouts are understood (auto-detected from the header unless forced):
//! - **long**: one row per (platform, keyword, period): columns `platform` (or `--platform`), `keyword`,
//!   `period_start` (alias `date`, `week`), then any of [`VALUE_COLUMNS`] and optionally `source`;
//! - **gtrends**: a Google Trends export, first column the period (`week`, `date`, `day`, `month`), one
//!   column per keyword (the `": (Portugal)"`-style suffix of raw exports is dropped; `<1` reads as 0.5);
//! - **m4**: the M4 competition's wide layout, first column the series id, then `V2, V3, ...` values,
//!   trailing empty cells as padding; the file carries no dates, so `--start` (first value) or `--end`
//!   (last value) anchors each series on the frequency grid;
//! - **keyword-planner** and **brand-analytics**: the Google Ads Keyword Planner export and Amazon's
//!   Brand Analytics Search Terms report, read by [`crate::sellers`].
//!
//! CSV text may be UTF-8 (with or without a BOM) or UTF-16, separated by commas, tabs or semicolons,
//! with title lines above the header ([`crate::text`]).
//!
//! Polars reads the file (CSV, Parquet or Arrow IPC, by extension); every cell is then parsed here so
//! each bad one is reported as `file:line: column: reason`. Nothing is dropped silently: a row is either
//! returned or reported.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::Path;
use std::str::FromStr;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::error::{FeatureError, Result};
use crate::keyword::{Frequency, Keyword, Platform};

/// Number of [`VALUE_COLUMNS`].
pub const VALUE_COUNT: usize = 14;

/// Numeric observation columns of the long layout, in storage order.
pub const VALUE_COLUMNS: [&str; VALUE_COUNT] = [
    "search_volume",
    "listing_count",
    "price_median",
    "price_p25",
    "price_p75",
    "review_count_median",
    "rating_mean",
    "top10_review_share",
    "sponsored_share",
    "cpc",
    "competition_index",
    "search_frequency_rank",
    "click_share",
    "conversion_share",
];

/// Position of a [`VALUE_COLUMNS`] name (panics on an unknown name: a programming error).
pub fn value_index(name: &str) -> usize {
    VALUE_COLUMNS
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("`{name}` is not a value column"))
}

/// File layout of an observation file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// Detect from the header.
    #[default]
    Auto,
    /// One row per observation.
    Long,
    /// Google Trends export: a period column, one column per keyword.
    Gtrends,
    /// M4 competition layout: one row per series, no dates.
    M4,
    /// Google Ads Keyword Planner "Keyword Stats" export (monthly volumes).
    KeywordPlanner,
    /// Amazon Brand Analytics Search Terms report (weekly search frequency rank).
    BrandAnalytics,
}

impl FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "long" => Ok(Self::Long),
            "gtrends" | "wide" => Ok(Self::Gtrends),
            "m4" => Ok(Self::M4),
            "keyword-planner" | "keyword_planner" | "kwp" => Ok(Self::KeywordPlanner),
            "brand-analytics" | "brand_analytics" | "ba" => Ok(Self::BrandAnalytics),
            other => Err(format!(
                "unknown format `{other}`; expected auto, long, gtrends, m4, keyword-planner or brand-analytics"
            )),
        }
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Long => "long",
            Self::Gtrends => "gtrends",
            Self::M4 => "m4",
            Self::KeywordPlanner => "keyword-planner",
            Self::BrandAnalytics => "brand-analytics",
        })
    }
}

/// How to read a file; the flags of `kwi import` and `kwi-train`.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Layout, or [`InputFormat::Auto`].
    pub format: InputFormat,
    /// Platform for files that do not carry one (gtrends defaults to `google`, m4 to `benchmark`).
    pub platform: Option<Platform>,
    /// For m4 files: date of each series' first value.
    pub start: Option<NaiveDate>,
    /// For m4 files: date of each series' last value (alternative to `start`).
    pub end: Option<NaiveDate>,
    /// Period length for m4 files.
    pub freq: Frequency,
    /// Source label stored with each row when the file has no `source` column.
    pub source: Option<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            format: InputFormat::Auto,
            platform: None,
            start: None,
            end: None,
            freq: Frequency::Weekly,
            source: None,
        }
    }
}

/// One validated observation of a keyword in one period.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Where it was observed.
    pub platform: Platform,
    /// Normalised keyword.
    pub keyword: Keyword,
    /// First day of the period.
    pub period_start: NaiveDate,
    /// Values in [`VALUE_COLUMNS`] order; `None` where the file had no value.
    pub values: [Option<f64>; VALUE_COUNT],
    /// Where the data came from (file stem, collector name, ...).
    pub source: String,
    /// 1-based line (CSV, header = line 1) or row (Parquet/IPC) the observation came from.
    pub line: usize,
}

impl Observation {
    /// Search volume, if present.
    pub fn search_volume(&self) -> Option<f64> {
        self.values[0]
    }
}

/// One rejected cell or row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// File as given.
    pub file: String,
    /// 1-based line (CSV, header = line 1) or row number (Parquet/IPC).
    pub line: usize,
    /// Column name.
    pub column: String,
    /// Why it was rejected.
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.column, self.reason
        )
    }
}

/// What reading one file produced.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Valid observations, in file order.
    pub rows: Vec<Observation>,
    /// Every rejected cell or row.
    pub errors: Vec<RowError>,
    /// Data rows (lines after the header) read from the file.
    pub rows_read: usize,
    /// Non-fatal notes (ignored columns, ...).
    pub warnings: Vec<String>,
    /// Layout actually used.
    pub format: Option<InputFormat>,
    /// For wide layouts, the spelling each series had in the file (M4 id `W17`, Google Trends
    /// column `mobile phone`), so outputs can use the caller's ids.
    pub labels: BTreeMap<(Platform, Keyword), String>,
    /// The frequency the layout itself implies (Keyword Planner: monthly; Brand Analytics:
    /// weekly), when it does.
    pub freq: Option<Frequency>,
}

/// How a text file was read (for messages about it).
#[derive(Debug, Clone)]
struct TextInfo {
    encoding: crate::text::Encoding,
    shape: crate::text::Shape,
}

impl TextInfo {
    fn describe(&self) -> String {
        format!(
            "{}, {}-separated{}",
            self.encoding,
            self.shape.delimiter_name(),
            match self.shape.preamble.len() {
                0 => String::new(),
                n => format!(", {n} line(s) above the header"),
            }
        )
    }
}

/// How every observation CSV is read: a header, `delimiter`-separated, every column a string.
fn csv_options(delimiter: u8) -> CsvReadOptions {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .map_parse_options(|p| p.with_separator(delimiter))
}

/// Reads CSV text (any encoding [`crate::text::to_utf8`] knows) into string columns: the frame, the
/// file line of its first data row, and how the text was read.
fn read_csv_bytes(path: &Path, bytes: &[u8]) -> Result<(DataFrame, usize, TextInfo)> {
    let read_err = |reason: String| FeatureError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let (text, encoding) = crate::text::to_utf8(bytes).map_err(read_err)?;
    let shape = crate::text::shape(&text);
    // The preamble is cut off here rather than skipped by the reader: report-parameter lines hold
    // quotes and delimiters a CSV reader would try to parse.
    let mut body: &[u8] = &text;
    for _ in 0..shape.preamble.len() {
        body = body
            .iter()
            .position(|b| *b == b'\n')
            .map_or(&[][..], |i| &body[i + 1..]);
    }
    let df = csv_options(shape.delimiter)
        .into_reader_with_file_handle(std::io::Cursor::new(body))
        .finish()
        .map_err(|e| read_err(e.to_string()))?;
    let first_line = shape.preamble.len() + 2;
    Ok((df, first_line, TextInfo { encoding, shape }))
}

/// Reads a CSV, Parquet or Arrow IPC file into a frame of string columns, and the file line of its
/// first row (CSV: after the header and any preamble lines; other formats: 1).
///
/// All columns come back as `String` so every cell is parsed by one code path with one error format.
pub fn read_frame(path: &Path) -> Result<(DataFrame, usize)> {
    read_table(path).map(|(df, first, _)| (df, first))
}

/// [`read_frame`], with how a text file was read.
fn read_table(path: &Path) -> Result<(DataFrame, usize, Option<TextInfo>)> {
    read_table_from(path, None)
}

/// Reads a table from `bytes` when given, else from the file at `path`; `path`'s extension picks
/// the format either way, and it names the table in errors. Parquet and Arrow files are read from
/// the open file (polars maps it) rather than copied into memory first.
fn read_table_from(
    path: &Path,
    bytes: Option<&[u8]>,
) -> Result<(DataFrame, usize, Option<TextInfo>)> {
    let read_err = |e: &dyn fmt::Display| FeatureError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut text = None;
    let (df, first_line) = match ext.as_str() {
        "csv" | "txt" | "tsv" => {
            let owned;
            let bytes = match bytes {
                Some(b) => b,
                None => {
                    owned = std::fs::read(path).map_err(|e| read_err(&e))?;
                    &owned
                }
            };
            let (df, first, info) = read_csv_bytes(path, bytes)?;
            text = Some(info);
            (df, first)
        }
        "parquet" | "pq" | "arrow" | "ipc" | "feather" | "arrows" => {
            let df = match bytes {
                Some(b) => read_binary(&ext, std::io::Cursor::new(b)),
                None => read_binary(&ext, File::open(path).map_err(|e| read_err(&e))?),
            }
            .map_err(|e| read_err(&e))?;
            (df, 1)
        }
        other => {
            return Err(FeatureError::Layout {
                path: path.to_path_buf(),
                reason: format!(
                    "unsupported file extension `.{other}`; expected .csv/.tsv/.txt, .parquet, .arrow/.ipc/.feather (Arrow IPC file) or .arrows (Arrow IPC stream)"
                ),
            });
        }
    };
    let columns = df
        .columns()
        .iter()
        .map(|c| c.cast(&DataType::String))
        .collect::<PolarsResult<Vec<_>>>()
        .map_err(|e| read_err(&e))?;
    let df = DataFrame::new_infer_height(columns).map_err(|e| read_err(&e))?;
    Ok((df, first_line, text))
}

/// Reads a Parquet (`parquet`, `pq`), Arrow IPC file (`arrow`, `ipc`, `feather`) or Arrow IPC
/// stream (`arrows`) table.
///
/// A corrupt file must be an error, never a crash: polars' Parquet reader panics on some corrupt
/// footers (`thrift bool field`, found by the `import_mutated` fuzz target; the input is in its
/// corpus), so a panic inside the readers is caught and reported as the file being corrupt.
fn read_binary<R: polars::io::mmap::MmapBytesReader>(
    ext: &str,
    reader: R,
) -> PolarsResult<DataFrame> {
    // The reader is consumed inside and nothing outside it is touched, so an unwind leaves no
    // state behind that could be observed half-changed.
    let read = std::panic::AssertUnwindSafe(move || match ext {
        "parquet" | "pq" => ParquetReader::new(reader).finish(),
        "arrows" => IpcStreamReader::new(reader).finish(),
        _ => IpcReader::new(reader).finish(),
    });
    std::panic::catch_unwind(read).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(PolarsError::ComputeError(
            format!("the file is corrupt: its structure cannot be decoded ({what})").into(),
        ))
    })
}

/// Reads one observation file and validates every row.
///
/// File-level problems (unreadable file, unknown layout, missing column, missing option) are an `Err`;
/// row-level problems are collected in [`Ingested::errors`] so a user sees all of them at once.
pub fn read_observations(path: &Path, opts: &IngestOptions) -> Result<Ingested> {
    let (df, first_line, text) = read_table(path)?;
    observations_from_frame(df, first_line, path, opts, text.as_ref())
}

/// Like [`read_observations`] for a file's content already in memory (an upload, a fuzz input):
/// `name`'s extension picks the format as a file's would, and `name` stands in for the file name in
/// messages and as the default source.
pub fn read_observations_bytes(name: &str, bytes: &[u8], opts: &IngestOptions) -> Result<Ingested> {
    let path = Path::new(name);
    let (df, first_line, text) = read_table_from(path, Some(bytes))?;
    observations_from_frame(df, first_line, path, opts, text.as_ref())
}

/// Like [`read_observations`] for CSV content already in memory (e.g. sample data built into the
/// binary); `name` stands in for the file name in messages and as the default source.
pub fn read_observations_csv_bytes(
    name: &str,
    bytes: &[u8],
    opts: &IngestOptions,
) -> Result<Ingested> {
    let path = Path::new(name);
    let (df, first_line, text) = read_csv_bytes(path, bytes)?;
    observations_from_frame(df, first_line, path, opts, Some(&text))
}

fn observations_from_frame(
    df: DataFrame,
    first_line: usize,
    path: &Path,
    opts: &IngestOptions,
    text: Option<&TextInfo>,
) -> Result<Ingested> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let format = match opts.format {
        InputFormat::Auto => detect_format(path, &names, text)?,
        f => f,
    };
    let ctx = Ctx {
        file: path.display().to_string(),
        line_offset: first_line,
        source: opts.source.clone().unwrap_or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("import")
                .to_string()
        }),
    };
    let mut out = Ingested {
        rows_read: df.height(),
        format: Some(format),
        ..Default::default()
    };
    match format {
        InputFormat::Long => read_long(&df, &names, opts, &ctx, &mut out, path)?,
        InputFormat::Gtrends => read_gtrends(&df, &names, opts, &ctx, &mut out, path)?,
        InputFormat::M4 => read_m4(&df, &names, opts, &ctx, &mut out, path)?,
        InputFormat::KeywordPlanner => {
            crate::sellers::read_keyword_planner(&df, &names, opts, &ctx, &mut out)?
        }
        InputFormat::BrandAnalytics => {
            let preamble = text.map(|t| t.shape.preamble.as_slice()).unwrap_or(&[]);
            crate::sellers::read_brand_analytics(&df, &names, opts, &ctx, &mut out, preamble)?
        }
        InputFormat::Auto => unreachable!("resolved above"),
    }
    reject_duplicates(&ctx, &mut out);
    Ok(out)
}

pub(crate) struct Ctx {
    pub(crate) file: String,
    pub(crate) line_offset: usize,
    pub(crate) source: String,
}

impl Ctx {
    pub(crate) fn err(&self, row: usize, column: &str, reason: impl Into<String>) -> RowError {
        RowError {
            file: self.file.clone(),
            line: row + self.line_offset,
            column: column.to_string(),
            reason: reason.into(),
        }
    }

    /// The keyword in `raw`, or its error (at `row`, `column`) added to `errors`.
    pub(crate) fn keyword(
        &self,
        errors: &mut Vec<RowError>,
        row: usize,
        column: &str,
        raw: &str,
    ) -> Option<Keyword> {
        Keyword::parse(raw)
            .map_err(|e| errors.push(self.err(row, column, e.to_string())))
            .ok()
    }
}

const DATE_COLUMNS: [&str; 6] = ["period_start", "date", "week", "day", "month", "time"];

fn detect_format(path: &Path, names: &[String], text: Option<&TextInfo>) -> Result<InputFormat> {
    let lower: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    if crate::sellers::is_keyword_planner(&lower) {
        return Ok(InputFormat::KeywordPlanner);
    }
    if crate::sellers::is_brand_analytics(&lower) {
        return Ok(InputFormat::BrandAnalytics);
    }
    if lower.iter().any(|n| n == "keyword") {
        return Ok(InputFormat::Long);
    }
    if lower.len() >= 2 && lower[0] == "v1" && lower[1] == "v2" {
        return Ok(InputFormat::M4);
    }
    if lower.len() >= 2 && DATE_COLUMNS.contains(&lower[0].as_str()) {
        return Ok(InputFormat::Gtrends);
    }
    Err(FeatureError::Layout {
        path: path.to_path_buf(),
        reason: format!(
            "cannot tell the layout from the header{} (first columns: {}): a long file has a `keyword` column, a Google Trends export starts with a `week`/`date` column, an M4 file starts with `V1,V2`, a Keyword Planner export has `Keyword` and `Searches: Mon YYYY` columns, a Brand Analytics report has `Search Term` and `Search Frequency Rank`; pass --format long|gtrends|m4|keyword-planner|brand-analytics",
            text.map(|t| format!(" (read as {})", t.describe()))
                .unwrap_or_default(),
            names
                .iter()
                .take(5)
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

pub(crate) fn str_column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a StringChunked> {
    df.column(name)
        .and_then(|c| c.str())
        .map_err(|e| FeatureError::Column {
            column: name.to_string(),
            reason: e.to_string(),
        })
}

/// Parses a date cell: `YYYY-MM-DD`, optionally followed by a time (`2020-01-05T00:00:00`, `2020-01-05 00:00`).
pub fn parse_date(cell: &str) -> std::result::Result<NaiveDate, String> {
    let t = cell.trim();
    let head = t.get(..10).unwrap_or(t);
    NaiveDate::parse_from_str(head, "%Y-%m-%d")
        .map_err(|_| format!("`{t}` is not a date (expected YYYY-MM-DD)"))
}

/// Which constraint a numeric column obeys.
#[derive(Clone, Copy)]
pub(crate) enum Bound {
    NonNegative,
    Count,
    Share,
    Rating,
    /// 0..=100 (Keyword Planner's competition index).
    Index,
    /// A whole rank ≥ 1 (Brand Analytics' search frequency rank).
    Rank,
}

fn bound_of(column: &str) -> Bound {
    match column {
        "listing_count" => Bound::Count,
        "top10_review_share" | "sponsored_share" => Bound::Share,
        "rating_mean" => Bound::Rating,
        "competition_index" => Bound::Index,
        "search_frequency_rank" => Bound::Rank,
        "click_share" | "conversion_share" => Bound::Share,
        _ => Bound::NonNegative,
    }
}

/// Parses a numeric cell. Empty and `NA`-style cells are `Ok(None)`; `<1` (Google Trends) is 0.5;
/// thousands separators (`24,269`) are accepted.
pub(crate) fn parse_value(cell: &str, bound: Bound) -> std::result::Result<Option<f64>, String> {
    let t = cell.trim();
    if t.is_empty() || matches!(t, "NA" | "NaN" | "nan" | "null" | "NULL" | "-" | "--" | "—") {
        return Ok(None);
    }
    let v = if t == "<1" {
        0.5
    } else {
        let cleaned: String = t.chars().filter(|c| *c != ',' && *c != '_').collect();
        cleaned
            .parse::<f64>()
            .map_err(|_| format!("`{t}` is not a number"))?
    };
    if !v.is_finite() {
        return Err(format!("`{t}` is not a finite number"));
    }
    match bound {
        Bound::NonNegative if v < 0.0 => {
            Err(format!("{v} is negative; volumes and prices must be ≥ 0"))
        }
        Bound::Count if v < 0.0 || v.fract() != 0.0 => {
            Err(format!("{v} is not a non-negative whole count"))
        }
        Bound::Share if !(0.0..=1.0).contains(&v) => Err(format!("{v} is outside 0..=1")),
        Bound::Rating if !(0.0..=5.0).contains(&v) => Err(format!("{v} is outside 0..=5")),
        Bound::Index if !(0.0..=100.0).contains(&v) => Err(format!("{v} is outside 0..=100")),
        Bound::Rank if v < 1.0 || v.fract() != 0.0 => Err(format!("{v} is not a whole rank ≥ 1")),
        _ => Ok(Some(v)),
    }
}

fn read_long(
    df: &DataFrame,
    names: &[String],
    opts: &IngestOptions,
    ctx: &Ctx,
    out: &mut Ingested,
    path: &Path,
) -> Result<()> {
    let find = |wanted: &[&str]| {
        names
            .iter()
            .find(|n| wanted.contains(&n.trim().to_ascii_lowercase().as_str()))
            .cloned()
    };
    let layout = |reason: String| FeatureError::Layout {
        path: path.to_path_buf(),
        reason,
    };
    let keyword_col =
        find(&["keyword"]).ok_or_else(|| layout("missing column `keyword`".into()))?;
    let date_col = find(&["period_start", "date", "week", "day"])
        .ok_or_else(|| layout("missing column `period_start` (or `date`/`week`/`day`)".into()))?;
    let platform_col = find(&["platform"]);
    if platform_col.is_none() && opts.platform.is_none() {
        return Err(layout(
            "no `platform` column and no --platform given: say which platform these keywords belong to".into(),
        ));
    }
    let source_col = find(&["source"]);
    let value_cols: Vec<(usize, String)> = VALUE_COLUMNS
        .iter()
        .enumerate()
        .filter_map(|(i, c)| find(&[c]).map(|n| (i, n)))
        .collect();
    if value_cols.is_empty() {
        return Err(layout(format!(
            "no value column: expected at least one of {}",
            VALUE_COLUMNS.join(", ")
        )));
    }
    let known: Vec<&String> = [&keyword_col, &date_col]
        .into_iter()
        .chain(platform_col.iter())
        .chain(source_col.iter())
        .chain(value_cols.iter().map(|(_, n)| n))
        .collect();
    let ignored: Vec<&str> = names
        .iter()
        .filter(|n| !known.contains(n) && !n.trim().eq_ignore_ascii_case("collected_at"))
        .map(String::as_str)
        .collect();
    if !ignored.is_empty() {
        out.warnings.push(format!(
            "{}: ignored unknown columns: {}",
            ctx.file,
            ignored.join(", ")
        ));
    }

    let keywords = str_column(df, &keyword_col)?;
    let dates = str_column(df, &date_col)?;
    let platforms = platform_col
        .as_deref()
        .map(|c| str_column(df, c))
        .transpose()?;
    let sources = source_col
        .as_deref()
        .map(|c| str_column(df, c))
        .transpose()?;
    let values: Vec<(usize, &str, &StringChunked)> = value_cols
        .iter()
        .map(|(i, n)| Ok((*i, n.as_str(), str_column(df, n)?)))
        .collect::<Result<_>>()?;

    for row in 0..df.height() {
        let mut bad = false;
        let platform = match platforms.map(|p| p.get(row)) {
            Some(Some(p)) if !p.trim().is_empty() => match p.parse::<Platform>() {
                Ok(p) => Some(p),
                Err(e) => {
                    out.errors.push(ctx.err(row, "platform", e.to_string()));
                    None
                }
            },
            _ => match opts.platform {
                Some(p) => Some(p),
                None => {
                    out.errors.push(ctx.err(row, "platform", "missing"));
                    None
                }
            },
        };
        bad |= platform.is_none();
        let keyword = ctx.keyword(
            &mut out.errors,
            row,
            &keyword_col,
            keywords.get(row).unwrap_or(""),
        );
        bad |= keyword.is_none();
        let date = match dates.get(row).map(parse_date) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                out.errors.push(ctx.err(row, &date_col, e));
                None
            }
            None => {
                out.errors.push(ctx.err(row, &date_col, "missing"));
                None
            }
        };
        bad |= date.is_none();
        let mut vals = [None; VALUE_COUNT];
        for (i, name, col) in &values {
            match parse_value(col.get(row).unwrap_or(""), bound_of(VALUE_COLUMNS[*i])) {
                Ok(v) => vals[*i] = v,
                Err(e) => {
                    out.errors.push(ctx.err(row, name, e));
                    bad = true;
                }
            }
        }
        if !bad && vals.iter().all(Option::is_none) {
            out.errors
                .push(ctx.err(row, values[0].1, "row has no value in any value column"));
            bad = true;
        }
        if bad {
            continue;
        }
        let source = sources
            .and_then(|s| s.get(row))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| ctx.source.clone());
        if let (Some(platform), Some(keyword), Some(period_start)) = (platform, keyword, date) {
            out.rows.push(Observation {
                platform,
                keyword,
                period_start,
                values: vals,
                source,
                line: row + ctx.line_offset,
            });
        }
    }
    Ok(())
}

/// Strips the `": (Portugal)"`-style geography suffix Google Trends adds to column names.
fn gtrends_topic(column: &str) -> &str {
    match column.find(": (") {
        Some(i) if column.trim_end().ends_with(')') => &column[..i],
        _ => column,
    }
}

fn read_gtrends(
    df: &DataFrame,
    names: &[String],
    opts: &IngestOptions,
    ctx: &Ctx,
    out: &mut Ingested,
    path: &Path,
) -> Result<()> {
    if names.len() < 2 {
        return Err(FeatureError::Layout {
            path: path.to_path_buf(),
            reason: "a Google Trends file needs a period column and at least one keyword column"
                .into(),
        });
    }
    let platform = opts.platform.unwrap_or(Platform::Google);
    let dates = str_column(df, &names[0])?;
    let parsed_dates: Vec<Option<NaiveDate>> = (0..df.height())
        .map(|row| match dates.get(row).map(parse_date) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                out.errors.push(ctx.err(row, &names[0], e));
                None
            }
            None => {
                out.errors.push(ctx.err(row, &names[0], "missing"));
                None
            }
        })
        .collect();
    let mut topics = Vec::new();
    for name in &names[1..] {
        match Keyword::parse(gtrends_topic(name)) {
            Ok(k) => {
                out.labels
                    .insert((platform, k.clone()), gtrends_topic(name).to_string());
                topics.push((name, k));
            }
            Err(e) => {
                out.errors
                    .push(ctx.err(0, name, format!("column name is not a keyword: {e}")));
            }
        }
    }
    for (name, keyword) in topics {
        let col = str_column(df, name)?;
        for (row, date) in parsed_dates.iter().enumerate() {
            match parse_value(col.get(row).unwrap_or(""), Bound::NonNegative) {
                Ok(Some(v)) => {
                    if let Some(d) = date {
                        let mut values = [None; VALUE_COUNT];
                        values[0] = Some(v);
                        out.rows.push(Observation {
                            platform,
                            keyword: keyword.clone(),
                            period_start: *d,
                            values,
                            source: ctx.source.clone(),
                            line: row + ctx.line_offset,
                        });
                    }
                }
                Ok(None) => {}
                Err(e) => out.errors.push(ctx.err(row, name, e)),
            }
        }
    }
    // Header errors were recorded against data line 1; point them at the header line instead.
    for e in &mut out.errors {
        if e.reason.starts_with("column name") {
            e.line = 1;
        }
    }
    Ok(())
}

fn read_m4(
    df: &DataFrame,
    names: &[String],
    opts: &IngestOptions,
    ctx: &Ctx,
    out: &mut Ingested,
    path: &Path,
) -> Result<()> {
    let freq = opts.freq;
    let anchor = match (opts.start, opts.end) {
        (Some(s), None) => Anchor::Start(s),
        (None, Some(e)) => Anchor::End(e),
        (Some(_), Some(_)) => {
            return Err(FeatureError::Options(
                "give either --start or --end for an m4 file, not both".into(),
            ));
        }
        (None, None) => {
            return Err(FeatureError::Options(format!(
                "{}: an m4-layout file has no dates: pass --start DATE (date of each series' first value) or --end DATE (date of its last value)",
                path.display()
            )));
        }
    };
    let platform = opts.platform.unwrap_or(Platform::Benchmark);
    let ids = str_column(df, &names[0])?;
    let value_cols: Vec<&StringChunked> = names[1..]
        .iter()
        .map(|n| str_column(df, n))
        .collect::<Result<_>>()?;
    for row in 0..df.height() {
        let keyword = match Keyword::parse(ids.get(row).unwrap_or("")) {
            Ok(k) => {
                let raw = ids.get(row).unwrap_or("").trim().to_string();
                out.labels.insert((platform, k.clone()), raw);
                k
            }
            Err(e) => {
                out.errors.push(ctx.err(row, &names[0], e.to_string()));
                continue;
            }
        };
        let cells: Vec<&str> = value_cols
            .iter()
            .map(|c| c.get(row).unwrap_or(""))
            .collect();
        let len = cells
            .iter()
            .rposition(|c| !c.trim().is_empty())
            .map_or(0, |i| i + 1);
        if len == 0 {
            out.errors
                .push(ctx.err(row, &names[0], "series has no values"));
            continue;
        }
        let first = match anchor {
            Anchor::Start(s) => freq.grid_start(s),
            Anchor::End(e) => freq.advance(freq.grid_start(e), -(len as i64 - 1)),
        };
        let mut parsed = Vec::with_capacity(len);
        let mut bad = false;
        for (j, cell) in cells[..len].iter().enumerate() {
            match parse_value(cell, Bound::NonNegative) {
                Ok(v) => parsed.push(v),
                Err(e) => {
                    out.errors.push(ctx.err(row, &names[j + 1], e));
                    bad = true;
                }
            }
        }
        if bad {
            continue;
        }
        for (j, v) in parsed.into_iter().enumerate() {
            if let Some(v) = v {
                let mut values = [None; VALUE_COUNT];
                values[0] = Some(v);
                out.rows.push(Observation {
                    platform,
                    keyword: keyword.clone(),
                    period_start: freq.advance(first, j as i64),
                    values,
                    source: ctx.source.clone(),
                    line: row + ctx.line_offset,
                });
            }
        }
    }
    Ok(())
}

enum Anchor {
    Start(NaiveDate),
    End(NaiveDate),
}

/// A key may appear once per file: a second row for the same (platform, keyword, period, source) is
/// ambiguous (which value wins?), so it is reported rather than resolved silently.
fn reject_duplicates(ctx: &Ctx, out: &mut Ingested) {
    let mut seen: HashMap<(Platform, &str, NaiveDate, &str), usize> = HashMap::new();
    let mut dup_lines = Vec::new();
    for (i, o) in out.rows.iter().enumerate() {
        let key = (
            o.platform,
            o.keyword.as_str(),
            o.period_start,
            o.source.as_str(),
        );
        if let Some(first) = seen.insert(key, o.line) {
            dup_lines.push((i, first));
        }
    }
    if dup_lines.is_empty() {
        return;
    }
    let drop: HashSet<usize> = dup_lines.iter().map(|(i, _)| *i).collect();
    for (i, first) in &dup_lines {
        let o = &out.rows[*i];
        out.errors.push(RowError {
            file: ctx.file.clone(),
            line: o.line,
            column: "keyword".into(),
            reason: format!(
                "duplicate of line {first}: ({}, {}, {}) appears twice",
                o.platform, o.keyword, o.period_start
            ),
        });
    }
    let mut idx = 0;
    out.rows.retain(|_| {
        let keep = !drop.contains(&idx);
        idx += 1;
        keep
    });
    out.errors.sort_by_key(|e| e.line);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(column: &str, cell: &str, expected: std::result::Result<Option<f64>, &str>) {
        let got = parse_value(cell, bound_of(column));
        match expected {
            Ok(v) => assert_eq!(got, Ok(v), "{column} {cell:?}"),
            Err(fragment) => {
                let e = got.expect_err(cell);
                assert!(e.contains(fragment), "{column} {cell:?}: {e}");
            }
        }
    }

    #[test]
    fn cells_parse_by_column_rules() {
        check("search_volume", "1,204", Ok(Some(1204.0)));
        check("search_volume", "<1", Ok(Some(0.5)));
        check("search_volume", " NA ", Ok(None));
        check("search_volume", "", Ok(None));
        check("search_volume", "-3", Err("negative"));
        check("search_volume", "inf", Err("finite"));
        check("search_volume", "12abc", Err("not a number"));
        check("listing_count", "24,269", Ok(Some(24269.0)));
        check("listing_count", "2.5", Err("whole count"));
        // A median of counts can fall between two counts.
        check("review_count_median", "1.5", Ok(Some(1.5)));
        check("sponsored_share", "0.25", Ok(Some(0.25)));
        check("sponsored_share", "1.5", Err("outside 0..=1"));
        check("rating_mean", "4.8", Ok(Some(4.8)));
        check("rating_mean", "5.1", Err("outside 0..=5"));
        check("cpc", "0.35", Ok(Some(0.35)));
    }

    #[test]
    fn dates_accept_a_time_suffix_and_reject_garbage() {
        assert_eq!(parse_date("2024-01-07").unwrap().to_string(), "2024-01-07");
        assert_eq!(
            parse_date("2024-01-07T00:00:00").unwrap().to_string(),
            "2024-01-07"
        );
        assert!(parse_date("07/01/2024").unwrap_err().contains("not a date"));
    }

    /// A raw Google Trends download: `Category:` preamble and a blank line before the header,
    /// `: (Portugal)` suffixes, `<1` cells. Built from the first weeks of the reference file (its
    /// real values, two of them replaced by `<1` and one by garbage to check the line number).
    #[test]
    fn raw_google_trends_export_with_preamble() {
        let real = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/samples/gtrends_pt_weekly_topics.csv"
        ))
        .unwrap();
        let mut lines = real.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').take(3).collect();
        let mut raw = String::from("Category: All categories\n\n");
        raw += &format!(
            "{},{}: (Portugal),{}: (Portugal)\n",
            header[0], header[1], header[2]
        );
        let rows: Vec<Vec<&str>> = lines
            .take(5)
            .map(|l| l.split(',').take(3).collect())
            .collect();
        for (i, r) in rows.iter().enumerate() {
            let (a, b) = match i {
                1 => ("<1", r[2]),
                3 => (r[1], "n/a?"),
                _ => (r[1], r[2]),
            };
            raw += &format!("{},{a},{b}\n", r[0]);
        }
        let opts = IngestOptions::default();
        let got = read_observations_csv_bytes("trends.csv", raw.as_bytes(), &opts).unwrap();
        assert_eq!(got.format, Some(InputFormat::Gtrends));
        assert_eq!(got.rows_read, 5);
        assert_eq!(got.rows.len(), 9, "{:?}", got.errors);
        let first = &got.rows[0];
        assert_eq!(first.keyword.as_str(), header[1]);
        assert_eq!(first.period_start.to_string(), rows[0][0]);
        assert_eq!(first.values[0], Some(rows[0][1].parse().unwrap()));
        assert!(
            got.rows
                .iter()
                .any(|o| o.keyword.as_str() == header[1] && o.values[0] == Some(0.5))
        );
        // The bad cell is on file line 7: two preamble lines, the header, then data row 4.
        assert_eq!(got.errors.len(), 1);
        assert_eq!(got.errors[0].line, 7, "{:?}", got.errors[0]);
        assert_eq!(got.errors[0].column, format!("{}: (Portugal)", header[2]));
        // The same from a file (the path reader skips the preamble the same way).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trends.csv");
        std::fs::write(&path, &raw).unwrap();
        let from_file = read_observations(&path, &opts).unwrap();
        assert_eq!(from_file.rows.len(), 9);
        assert_eq!(from_file.errors[0].line, 7);
    }
}
