//! The export files sellers already have, read into observations.
//!
//! - **Google Ads Keyword Planner** "Keyword Stats" export (UTF-16LE, tab-separated, two title lines;
//!   [`crate::text`] handles that): one row per keyword, monthly volumes in `Searches: Mon YYYY`
//!   columns → one monthly observation per month (`period_start` the 1st) with `search_volume`;
//!   `Competition (indexed value)` (0–100) → `competition_index` and the midpoint of the two
//!   `Top of page bid` columns → `cpc`, both on the latest month's observation (they describe the
//!   keyword as of the export). Accounts without ad spend see ranges (`1K – 10K`): a range reads
//!   as its midpoint and every such cell is reported in the warnings (count and first lines).
//!   Platform `google` unless `--platform` says otherwise.
//! - **Amazon Brand Analytics "Search Terms" report** (weekly): `Search Term`, `Search Frequency
//!   Rank` → `search_frequency_rank` (a demand signal of its own, never a volume), the top clicked
//!   products' click and conversion shares summed → `click_share`, `conversion_share` (`24.6%` or
//!   `0.246`). The week comes from a `Reporting Date`/`Week`/`Date` column, else the report's
//!   `Select week=["Week 1 | 2021-01-03 - 2021-01-09 2021"]` line (its first date), else `--start`.
//!   Platform `amazon` unless `--platform` says otherwise.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::error::{FeatureError, Result};
use crate::ingest::{
    Bound, Ctx, IngestOptions, Ingested, Observation, parse_value, str_column, value_index,
};
use crate::keyword::Platform;

/// True when the header is a Keyword Planner export's.
pub(crate) fn is_keyword_planner(lower: &[String]) -> bool {
    lower.iter().any(|n| n == "keyword")
        && lower
            .iter()
            .any(|n| n.starts_with("searches:") || n == "avg. monthly searches")
}

/// True when the header is a Brand Analytics Search Terms report's.
pub(crate) fn is_brand_analytics(lower: &[String]) -> bool {
    lower.iter().any(|n| n == "search term") && lower.iter().any(|n| n == "search frequency rank")
}

/// `Searches: Dec 2016` → 2016-12-01.
fn month_column(name: &str) -> Option<NaiveDate> {
    let rest = name.trim().strip_prefix("Searches:")?.trim();
    NaiveDate::parse_from_str(&format!("1 {rest}"), "%d %b %Y").ok()
}

/// A Keyword Planner volume cell: a number (`1,300`), or a range (`1K – 10K`, `100-1K`) read as
/// its midpoint (`Ok((value, true))`).
fn planner_volume(cell: &str) -> std::result::Result<Option<(f64, bool)>, String> {
    let t = cell.trim();
    let number = |s: &str| -> std::result::Result<f64, String> {
        let s = s.trim();
        let (digits, scale) = match s.chars().last() {
            Some('K' | 'k') => (&s[..s.len() - 1], 1e3),
            Some('M' | 'm') => (&s[..s.len() - 1], 1e6),
            _ => (s, 1.0),
        };
        let cleaned: String = digits.chars().filter(|c| *c != ',').collect();
        cleaned
            .parse::<f64>()
            .map(|v| v * scale)
            .map_err(|_| format!("`{t}` is not a number or a range like `1K – 10K`"))
    };
    if let Some((a, b)) = t.split_once(['–', '—']).or_else(|| {
        // An ASCII hyphen separates a range only between two numbers (not a leading minus).
        t.get(1..)
            .and_then(|r| r.find('-'))
            .map(|i| (&t[..=i], &t[i + 2..]))
    }) {
        let (lo, hi) = (number(a)?, number(b)?);
        if lo < 0.0 || hi < lo {
            return Err(format!(
                "`{t}` is not a range of volumes (low – high, both ≥ 0)"
            ));
        }
        return Ok(Some(((lo + hi) / 2.0, true)));
    }
    Ok(parse_value(t, Bound::NonNegative)?.map(|v| (v, false)))
}

pub(crate) fn read_keyword_planner<'a>(
    df: &'a DataFrame,
    names: &'a [String],
    opts: &IngestOptions,
    ctx: &Ctx,
    out: &mut Ingested,
) -> Result<()> {
    let layout = |reason: String| FeatureError::Layout {
        path: ctx.file.clone().into(),
        reason,
    };
    let find = |wanted: &str| names.iter().find(|n| n.trim().eq_ignore_ascii_case(wanted));
    let keyword_col = find("keyword").ok_or_else(|| layout("missing column `Keyword`".into()))?;
    let mut months: Vec<(&String, NaiveDate)> = names
        .iter()
        .filter_map(|n| month_column(n).map(|d| (n, d)))
        .collect();
    if months.is_empty() {
        return Err(layout(
            "a Keyword Planner export without `Searches: Mon YYYY` columns has no monthly history; export the keyword stats with the monthly breakdown".into(),
        ));
    }
    months.sort_by_key(|(_, d)| *d);
    if let Some(w) = months.windows(2).find(|w| w[0].1 == w[1].1) {
        return Err(layout(format!(
            "columns `{}` and `{}` are the same month",
            w[0].0, w[1].0
        )));
    }
    if let Some(w) = months
        .windows(2)
        .find(|w| crate::Frequency::Monthly.index(w[0].1, w[1].1) != 1)
    {
        out.warnings.push(format!(
            "{}: no `Searches:` column between `{}` and `{}`: those months are gaps",
            ctx.file, w[0].0, w[1].0
        ));
    }
    let platform = opts.platform.unwrap_or(Platform::Google);
    let competition = find("competition (indexed value)");
    let bids = (
        find("top of page bid (low range)"),
        find("top of page bid (high range)"),
    );
    let keywords = str_column(df, keyword_col)?;
    let month_cols: Vec<(&String, NaiveDate, &StringChunked)> = months
        .iter()
        .map(|(n, d)| Ok((*n, *d, str_column(df, n)?)))
        .collect::<Result<_>>()?;
    let optional = |c: Option<&'a String>| -> Result<Option<(&'a String, &'a StringChunked)>> {
        c.map(|c| Ok((c, str_column(df, c)?))).transpose()
    };
    let competition = optional(competition)?;
    let (low, high) = (optional(bids.0)?, optional(bids.1)?);
    let mut ranged: Vec<usize> = Vec::new();
    for row in 0..df.height() {
        let raw = keywords.get(row).unwrap_or("");
        if raw.trim().is_empty() {
            // Keyword Planner separates sections with blank lines.
            continue;
        }
        let Some(keyword) = ctx.keyword(&mut out.errors, row, keyword_col, raw) else {
            continue;
        };
        let mut bad = false;
        let mut points = Vec::with_capacity(month_cols.len());
        for (name, month, col) in &month_cols {
            match planner_volume(col.get(row).unwrap_or("")) {
                Ok(Some((v, was_range))) => {
                    if was_range {
                        ranged.push(row + ctx.line_offset);
                    }
                    points.push((*month, v));
                }
                Ok(None) => {}
                Err(e) => {
                    out.errors.push(ctx.err(row, name, e));
                    bad = true;
                }
            }
        }
        let mut cell = |c: &Option<(&String, &StringChunked)>, bound| match c {
            Some((name, col)) => match parse_value(col.get(row).unwrap_or(""), bound) {
                Ok(v) => v,
                Err(e) => {
                    out.errors.push(ctx.err(row, name, e));
                    bad = true;
                    None
                }
            },
            None => None,
        };
        let index = cell(&competition, Bound::Index);
        let (lo, hi) = (
            cell(&low, Bound::NonNegative),
            cell(&high, Bound::NonNegative),
        );
        if bad {
            continue;
        }
        if points.is_empty() {
            out.errors.push(ctx.err(
                row,
                month_cols[0].0,
                "no monthly search volume in any `Searches:` column",
            ));
            continue;
        }
        let cpc = match (lo, hi) {
            (Some(a), Some(b)) => Some((a + b) / 2.0),
            (a, b) => a.or(b),
        };
        out.labels
            .insert((platform, keyword.clone()), raw.trim().to_string());
        let last = points.len() - 1;
        for (i, (month, v)) in points.into_iter().enumerate() {
            let mut values = [None; crate::ingest::VALUE_COLUMNS.len()];
            values[0] = Some(v);
            if i == last {
                values[value_index("competition_index")] = index;
                values[value_index("cpc")] = cpc;
            }
            out.rows.push(Observation {
                platform,
                keyword: keyword.clone(),
                period_start: month,
                values,
                source: ctx.source.clone(),
                line: row + ctx.line_offset,
            });
        }
    }
    if !ranged.is_empty() {
        ranged.dedup();
        let first: Vec<String> = ranged.iter().take(5).map(|l| l.to_string()).collect();
        out.warnings.push(format!(
            "{}: volumes given as ranges (`1K – 10K`, as Keyword Planner shows accounts without ad spend) on {} line(s) (first: {}) were read as each range's midpoint: estimates, not counts",
            ctx.file,
            ranged.len(),
            first.join(", ")
        ));
    }
    out.freq = Some(crate::Frequency::Monthly);
    Ok(())
}

/// A share cell: `24.6%` is 0.246; a bare number must already be a fraction in 0..=1.
fn share(cell: &str) -> std::result::Result<Option<f64>, String> {
    let t = cell.trim();
    match t.strip_suffix('%') {
        Some(p) => match parse_value(p, Bound::NonNegative)? {
            Some(v) if v <= 100.0 => Ok(Some(v / 100.0)),
            Some(v) => Err(format!("{v}% is over 100%")),
            None => Ok(None),
        },
        None => parse_value(t, Bound::Share),
    }
}

/// A report date as Amazon writes it: `2021-01-03`, `01/03/2021` or `1/3/21` (month first).
fn report_date(cell: &str) -> std::result::Result<NaiveDate, String> {
    let t = cell.trim();
    crate::ingest::parse_date(t)
        .or_else(|_| NaiveDate::parse_from_str(t, "%m/%d/%Y"))
        .or_else(|_| NaiveDate::parse_from_str(t, "%m/%d/%y"))
        .map_err(|_| format!("`{t}` is not a date (expected YYYY-MM-DD or MM/DD/YYYY)"))
}

/// The first `YYYY-MM-DD` in the report's parameter lines (`Select week=["Week 1 | 2021-01-03 - …"]`).
fn preamble_week(preamble: &[String]) -> Option<NaiveDate> {
    preamble.iter().find_map(|line| {
        let b = line.as_bytes();
        // Exactly `dddd-dd-dd` (chrono alone would also read ` 2021-01-1` as 2021-01-01).
        let shaped = |w: &[u8]| {
            w.iter().enumerate().all(|(k, c)| {
                if k == 4 || k == 7 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            })
        };
        b.windows(10).enumerate().find_map(|(i, w)| {
            if !shaped(w) {
                return None;
            }
            NaiveDate::parse_from_str(&line[i..i + 10], "%Y-%m-%d").ok()
        })
    })
}

pub(crate) fn read_brand_analytics(
    df: &DataFrame,
    names: &[String],
    opts: &IngestOptions,
    ctx: &Ctx,
    out: &mut Ingested,
    preamble: &[String],
) -> Result<()> {
    let layout = |reason: String| FeatureError::Layout {
        path: ctx.file.clone().into(),
        reason,
    };
    let find = |wanted: &[&str]| {
        names
            .iter()
            .find(|n| wanted.iter().any(|w| n.trim().eq_ignore_ascii_case(w)))
    };
    let term_col = find(&["search term"]).ok_or_else(|| layout("missing `Search Term`".into()))?;
    let rank_col = find(&["search frequency rank"])
        .ok_or_else(|| layout("missing `Search Frequency Rank`".into()))?;
    let with = |what: &str| -> Vec<&String> {
        names
            .iter()
            .filter(|n| n.to_ascii_lowercase().contains(what))
            .collect()
    };
    let (clicks, conversions) = (with("click share"), with("conversion share"));
    let date_col = find(&["reporting date", "week", "date", "week start"]);
    let fixed = match date_col {
        Some(_) => None,
        None => Some(preamble_week(preamble).or(opts.start).ok_or_else(|| {
            layout(
                "no week: the report has no `Reporting Date` column and no `Select week=[…]` line; pass --start DATE (the week's first day)".into(),
            )
        })?),
    };
    let platform = opts.platform.unwrap_or(Platform::Amazon);
    let terms = str_column(df, term_col)?;
    let ranks = str_column(df, rank_col)?;
    let dates = date_col.map(|c| str_column(df, c)).transpose()?;
    let share_cols = |cols: &[&String]| -> Result<Vec<(String, StringChunked)>> {
        cols.iter()
            .map(|c| Ok(((*c).clone(), str_column(df, c)?.clone())))
            .collect()
    };
    let (clicks, conversions) = (share_cols(&clicks)?, share_cols(&conversions)?);
    for row in 0..df.height() {
        let raw = terms.get(row).unwrap_or("");
        let Some(keyword) = ctx.keyword(&mut out.errors, row, term_col, raw) else {
            continue;
        };
        let mut bad = false;
        let rank = match parse_value(ranks.get(row).unwrap_or(""), Bound::Rank) {
            Ok(Some(r)) => Some(r),
            Ok(None) => {
                out.errors.push(ctx.err(row, rank_col, "missing"));
                bad = true;
                None
            }
            Err(e) => {
                out.errors.push(ctx.err(row, rank_col, e));
                bad = true;
                None
            }
        };
        let week = match (&dates, fixed) {
            (_, Some(d)) => Some(d),
            (Some(col), None) => match report_date(col.get(row).unwrap_or("")) {
                Ok(d) => Some(d),
                Err(e) => {
                    out.errors
                        .push(ctx.err(row, date_col.expect("dates come from it"), e));
                    bad = true;
                    None
                }
            },
            (None, None) => unreachable!("fixed is set when there is no date column"),
        };
        let mut sum = |cols: &[(String, StringChunked)]| -> Option<f64> {
            let mut total: Option<f64> = None;
            for (name, col) in cols {
                match share(col.get(row).unwrap_or("")) {
                    Ok(Some(v)) => *total.get_or_insert(0.0) += v,
                    Ok(None) => {}
                    Err(e) => {
                        out.errors.push(ctx.err(row, name, e));
                        bad = true;
                    }
                }
            }
            total.map(|t| t.min(1.0))
        };
        let (click, conversion) = (sum(&clicks), sum(&conversions));
        if bad {
            continue;
        }
        let (Some(rank), Some(week)) = (rank, week) else {
            continue;
        };
        let mut values = [None; crate::ingest::VALUE_COLUMNS.len()];
        values[value_index("search_frequency_rank")] = Some(rank);
        values[value_index("click_share")] = click;
        values[value_index("conversion_share")] = conversion;
        out.labels
            .insert((platform, keyword.clone()), raw.trim().to_string());
        out.rows.push(Observation {
            platform,
            keyword,
            period_start: week,
            values,
            source: ctx.source.clone(),
            line: row + ctx.line_offset,
        });
    }
    out.freq = Some(crate::Frequency::Weekly);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ingest::{InputFormat, read_observations, read_observations_csv_bytes};

    const MONTHLY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/samples/gtrends_pt_monthly_topics.csv"
    );

    /// A Keyword Planner export as Google Ads writes it (UTF-16LE with BOM, tabs, two title lines),
    /// filled with the real monthly Google Trends values of three topics for 2017–2018: the
    /// container is synthetic (no real export is public), the numbers are real.
    fn planner_export() -> (Vec<u8>, Vec<(String, Vec<f64>)>) {
        let text = std::fs::read_to_string(MONTHLY).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        let last24 = &rows[rows.len() - 24..];
        let months: Vec<String> = last24
            .iter()
            .map(|r| {
                let d = NaiveDate::parse_from_str(r[0], "%Y-%m-%d").unwrap();
                format!("Searches: {}", d.format("%b %Y"))
            })
            .collect();
        let mut out = String::from(
            "Keyword Stats 2019-01-04 at 10_11_32\nJanuary 1, 2017 - December 31, 2018\n",
        );
        out += &format!(
            "Keyword\tCurrency\tAvg. monthly searches\tThree month change\tYoY change\tCompetition\tCompetition (indexed value)\tTop of page bid (low range)\tTop of page bid (high range)\tAd impression share\t{}\n",
            months.join("\t")
        );
        let mut expected = Vec::new();
        for (j, topic) in [(1usize, "Clothing"), (2, "Furniture"), (3, "Coffee")] {
            let col = header
                .iter()
                .position(|h| h.eq_ignore_ascii_case(topic))
                .unwrap_or(j);
            // Volumes: the interest × 100, whole (Keyword Planner reports whole searches).
            let v: Vec<f64> = last24
                .iter()
                .map(|r| (r[col].parse::<f64>().unwrap() * 100.0).round())
                .collect();
            let cells: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
            out += &format!(
                "{topic}\tEUR\t{}\t0%\t-10%\tMedium\t{}\t0.{j}5\t1.{j}0\t--\t{}\n",
                v.iter().sum::<f64>() / 24.0,
                30 + j,
                cells.join("\t")
            );
            expected.push((topic.to_lowercase(), v));
        }
        // An account without ad spend sees ranges.
        out += &format!(
            "tarot cards\tEUR\t1K – 10K\t\t\tLow\t12\t\t\t\t{}\n",
            vec!["1K – 10K"; 24].join("\t")
        );
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(out.encode_utf16().flat_map(u16::to_le_bytes));
        (bytes, expected)
    }

    #[test]
    fn keyword_planner_export_in_utf16_becomes_monthly_observations() {
        let (bytes, expected) = planner_export();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Keyword Stats 2019-01-04 at 10_11_32.csv");
        std::fs::write(&path, &bytes).unwrap();
        let got = read_observations(&path, &IngestOptions::default()).unwrap();
        assert!(got.errors.is_empty(), "{:?}", got.errors);
        assert_eq!(got.format, Some(InputFormat::KeywordPlanner));
        assert_eq!(got.freq, Some(crate::Frequency::Monthly));
        assert_eq!(got.rows.len(), 4 * 24);
        for (name, values) in &expected {
            let rows: Vec<&Observation> = got
                .rows
                .iter()
                .filter(|o| o.keyword.as_str() == name)
                .collect();
            assert_eq!(rows.len(), 24, "{name}");
            assert_eq!(rows[0].platform, Platform::Google);
            assert_eq!(
                rows[0].period_start,
                NaiveDate::from_ymd_opt(2017, 1, 1).unwrap()
            );
            assert_eq!(
                rows[23].period_start,
                NaiveDate::from_ymd_opt(2018, 12, 1).unwrap()
            );
            let vols: Vec<f64> = rows.iter().map(|o| o.values[0].unwrap()).collect();
            assert_eq!(&vols, values, "{name}");
            // Competition index and bid midpoint on the latest month only.
            assert_eq!(rows[22].values[value_index("cpc")], None);
            assert!(rows[23].values[value_index("competition_index")].unwrap() > 30.0);
        }
        let clothing = got
            .rows
            .iter()
            .rfind(|o| o.keyword.as_str() == "clothing")
            .unwrap();
        assert_eq!(
            clothing.values[value_index("cpc")],
            Some((0.15 + 1.10) / 2.0)
        );
        assert_eq!(
            clothing.line, 4,
            "header on line 3, first keyword on line 4"
        );
        let tarot: Vec<&Observation> = got
            .rows
            .iter()
            .filter(|o| o.keyword.as_str() == "tarot cards")
            .collect();
        assert!(tarot.iter().all(|o| o.values[0] == Some(5500.0)));
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("midpoint") && w.contains("first: 7")),
            "{:?}",
            got.warnings
        );
        // The same bytes from memory.
        let mem = read_observations_csv_bytes("kp.csv", &bytes, &IngestOptions::default()).unwrap();
        let key = |o: &Observation| (o.keyword.clone(), o.period_start, o.values, o.line);
        assert_eq!(
            mem.rows.iter().map(key).collect::<Vec<_>>(),
            got.rows.iter().map(key).collect::<Vec<_>>()
        );
    }

    #[test]
    fn keyword_planner_bad_cells_name_the_line_and_month() {
        let (bytes, _) = planner_export();
        let text = String::from_utf16(
            &bytes[2..]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        // Line 5 (Furniture): its third month non-numeric; line 6 (Coffee): a negative month.
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut cells: Vec<String> = lines[4].split('\t').map(str::to_string).collect();
        cells[12] = "lots".into();
        lines[4] = cells.join("\t");
        let mut cells: Vec<String> = lines[5].split('\t').map(str::to_string).collect();
        cells[10] = "-4".into();
        lines[5] = cells.join("\t");
        let got = read_observations_csv_bytes(
            "kp.tsv",
            lines.join("\n").as_bytes(),
            &IngestOptions::default(),
        )
        .unwrap();
        let errs: Vec<String> = got.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("kp.tsv:5: Searches: Mar 2017: `lots` is not a number"),
            "{}",
            errs[0]
        );
        assert!(
            errs[1].starts_with("kp.tsv:6: Searches: Jan 2017: -4 is negative"),
            "{}",
            errs[1]
        );
        // Two columns for one month.
        let dup = "Keyword\tSearches: Jan 2017\tSearches: Jan 2017 \nx\t1\t2\n";
        let e = read_observations_csv_bytes("d.tsv", dup.as_bytes(), &IngestOptions::default())
            .unwrap_err();
        assert!(e.to_string().contains("are the same month"), "{e}");
        // A skipped month is reported as gaps.
        let gap = "Keyword\tSearches: Jan 2017\tSearches: Mar 2017\nx\t1\t2\n";
        let got = read_observations_csv_bytes("g.tsv", gap.as_bytes(), &IngestOptions::default())
            .unwrap();
        assert!(got.warnings[0].contains("gaps"), "{:?}", got.warnings);
        let s =
            crate::series::regularise(&got.rows, crate::Frequency::Monthly, &Default::default());
        assert_eq!((s[0].values.clone(), s[0].gaps), (vec![1.0, 1.5, 2.0], 1));
    }

    #[test]
    fn brand_analytics_report_gives_ranks_and_shares_not_volumes() {
        let csv = "Reporting Range=[\"Weekly\"],Select week=[\"Week 1 | 2021-01-03 - 2021-01-09 2021\"],Department=[\"Amazon.com\"]\r\n\
Department,Search Term,Search Frequency Rank,#1 Clicked ASIN,#1 Product Title,#1 Click Share,#1 Conversion Share,#2 Clicked ASIN,#2 Product Title,#2 Click Share,#2 Conversion Share\r\n\
Amazon.com,tarot cards,\"1,204\",B000000001,\"Tarot Deck, 78 cards\",24.61%,10.5%,B000000002,Another deck,10.00%,5.00%\r\n\
Amazon.com,tarot journal,88213,B000000003,Journal,8%,,B000000004,Other,2%,1%\r\n\
Amazon.com,tarot mat,0,B000000005,Mat,3%,1%,,,,\r\n";
        let got = read_observations_csv_bytes(
            "US_Search_Terms.csv",
            csv.as_bytes(),
            &IngestOptions::default(),
        )
        .unwrap();
        assert_eq!(got.format, Some(InputFormat::BrandAnalytics));
        assert_eq!(got.freq, Some(crate::Frequency::Weekly));
        assert_eq!(got.rows.len(), 2);
        let cards = &got.rows[0];
        assert_eq!(
            (cards.platform, cards.keyword.as_str()),
            (Platform::Amazon, "tarot cards")
        );
        assert_eq!(
            cards.period_start,
            NaiveDate::from_ymd_opt(2021, 1, 3).unwrap()
        );
        assert_eq!(cards.values[0], None, "a rank is not a volume");
        assert_eq!(
            cards.values[value_index("search_frequency_rank")],
            Some(1204.0)
        );
        let click = cards.values[value_index("click_share")].unwrap();
        assert!((click - 0.3461).abs() < 1e-12, "{click}");
        assert!((cards.values[value_index("conversion_share")].unwrap() - 0.155).abs() < 1e-12);
        assert_eq!(
            got.rows[1].values[value_index("conversion_share")],
            Some(0.01)
        );
        assert_eq!(got.errors.len(), 1);
        assert_eq!(
            got.errors[0].to_string(),
            "US_Search_Terms.csv:5: Search Frequency Rank: 0 is not a whole rank ≥ 1"
        );
        // Without a week anywhere: a clear error; with --start: that week.
        let bare = "Search Term,Search Frequency Rank\ntarot,3\n";
        let e = read_observations_csv_bytes("ba.csv", bare.as_bytes(), &IngestOptions::default())
            .unwrap_err();
        assert!(e.to_string().contains("pass --start"), "{e}");
        let opts = IngestOptions {
            start: NaiveDate::from_ymd_opt(2024, 3, 3),
            ..Default::default()
        };
        let got = read_observations_csv_bytes("ba.csv", bare.as_bytes(), &opts).unwrap();
        assert_eq!(got.rows[0].period_start.to_string(), "2024-03-03");
    }

    #[test]
    fn an_unknown_file_is_described() {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(
            "Term\tVolume\nx\t1\n"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        let e =
            read_observations_csv_bytes("what.csv", &bytes, &IngestOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("UTF-16LE, tab-separated"), "{msg}");
        assert!(msg.contains("`Term`, `Volume`"), "{msg}");
        assert!(msg.contains("keyword-planner"), "{msg}");
    }

    #[test]
    fn planner_cells() {
        assert_eq!(planner_volume("1,300"), Ok(Some((1300.0, false))));
        assert_eq!(planner_volume("1K – 10K"), Ok(Some((5500.0, true))));
        assert_eq!(planner_volume("100-1K"), Ok(Some((550.0, true))));
        assert_eq!(planner_volume("10K—100K"), Ok(Some((55_000.0, true))));
        assert_eq!(planner_volume(""), Ok(None));
        assert!(planner_volume("-5").unwrap_err().contains("negative"));
        assert!(
            planner_volume("10K – 1K")
                .unwrap_err()
                .contains("low – high")
        );
        assert!(planner_volume("lots").unwrap_err().contains("not a number"));
        assert!(
            planner_volume("1K – lots")
                .unwrap_err()
                .contains("range like")
        );
        assert_eq!(
            month_column("Searches: Dec 2016"),
            NaiveDate::from_ymd_opt(2016, 12, 1)
        );
        assert_eq!(month_column("Searches: Foo 2016"), None);
    }

    #[test]
    fn shares_and_dates() {
        assert_eq!(share("24.5%"), Ok(Some(0.245)));
        assert_eq!(share("0.245"), Ok(Some(0.245)));
        assert!(share("24.5").unwrap_err().contains("0..=1"));
        assert!(share("140%").unwrap_err().contains("over 100%"));
        assert_eq!(
            report_date("01/09/2021"),
            Ok(NaiveDate::from_ymd_opt(2021, 1, 9).unwrap())
        );
        assert_eq!(
            preamble_week(&["Reporting Range=[\"Weekly\"],Select week=[\"Week 2 | 2021-01-10 - 2021-01-16 2021\"]".into()]),
            NaiveDate::from_ymd_opt(2021, 1, 10)
        );
    }
}
