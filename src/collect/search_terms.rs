//! Amazon Brand Analytics "Search Terms" report through the SP-API Reports API (2021-06-30):
//! `createReport` (`POST /reports/2021-06-30/reports`, report type
//! `GET_BRAND_ANALYTICS_SEARCH_TERMS_REPORT`, `reportPeriod` `WEEK`) → `getReport` polled until its
//! `processingStatus` is `DONE` → `getReportDocument` (a pre-signed URL, maybe `GZIP`) → the JSON
//! document, `dataByDepartmentAndSearchTerm`: per search term its weekly `searchFrequencyRank`
//! (1 = the most searched) and its top clicked products' `clickShare` and `conversionShare`.
//!
//! One observation per term and week (period = the report week's Sunday, as the import of the same
//! report's CSV gives): `search_frequency_rank` (the best rank the term has in any department; a
//! demand signal of its own, never a volume) and the click and conversion shares summed over its
//! rows (capped at 1), exactly what `kwi import` makes of the CSV download
//! ([`kwi_features::sellers`]).
//!
//! It runs as a queue job of source `amazon` whose idempotency key is
//! [`kwi_store::report_key`]`(amazon, "search-terms", week)`: a report per week, written once, in one
//! transaction with the responses kept for `kwi collect replay`. `CANCELLED` (Amazon has no data for
//! the week, or the seller has no Brand Analytics access) is a dead letter; `FATAL` and a report
//! still not done after `KWI_SPAPI_REPORT_TIMEOUT_SECS` are transient (the next attempt asks for a
//! new report). The document is read as a stream (a term is folded in as it is read, so memory
//! grows with the distinct terms, not the rows) up to `KWI_SPAPI_REPORT_MAX_MB` decompressed.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use kwi_features::ingest::{Observation, VALUE_COUNT, value_index};
use kwi_features::{Keyword, Platform};
use kwi_store::Job;
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

use super::amazon::SpApi;
use super::observe::parse_json;
use super::{Collected, JobError, SourceClient, body_sample};

/// The report's name in the queue (`kwi collect --report search-terms`).
pub const REPORT: &str = "search-terms";
/// The SP-API report type.
pub const REPORT_TYPE: &str = "GET_BRAND_ANALYTICS_SEARCH_TERMS_REPORT";
/// The `source` of the observations written.
pub const OBSERVATION_SOURCE: &str = "amazon-brand-analytics";

/// The Brand Analytics week (Sunday to Saturday) a day is in: its Sunday.
pub fn report_week(day: NaiveDate) -> NaiveDate {
    day - chrono::Days::new(u64::from(day.weekday().num_days_from_sunday()))
}

/// The latest week that has ended by `today` (UTC): the default week to collect.
pub fn last_complete_week(today: NaiveDate) -> NaiveDate {
    report_week(today) - chrono::Days::new(7)
}

/// How a report is followed (`KWI_SPAPI_REPORT_*`).
#[derive(Debug, Clone, Copy)]
pub struct ReportOptions {
    /// Wait between two looks at the report's status.
    pub poll: Duration,
    /// Longest wait for `DONE` before the attempt counts as a transient failure.
    pub timeout: Duration,
    /// Largest decompressed document read, in bytes.
    pub max_bytes: u64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(30),
            timeout: Duration::from_secs(3600),
            max_bytes: 4 << 30,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    report_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    processing_status: String,
    report_document_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocumentRef {
    url: String,
    compression_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Specification {
    report_type: String,
    data_start_time: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    report_specification: Specification,
    data_by_department_and_search_term: Terms,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TermRow {
    search_term: String,
    search_frequency_rank: u64,
    click_share: f64,
    conversion_share: f64,
}

/// One term's rows folded: the best rank, the summed shares.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Term {
    rank: u64,
    click: f64,
    conversion: f64,
}

/// The document's rows folded per keyword as they are read (never held as a list): terms that
/// normalise alike ("Mug", "mug ") are one keyword; a term our keyword rules refuse (blank, too
/// long) is counted and left out, not the whole report.
#[derive(Debug, Default)]
struct Terms {
    by_keyword: HashMap<Keyword, Term>,
    rows: usize,
    skipped: usize,
}

impl<'de> Deserialize<'de> for Terms {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fold;
        impl<'de> Visitor<'de> for Fold {
            type Value = Terms;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of search-term rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Terms, A::Error> {
                use serde::de::Error;
                let mut out = Terms::default();
                while let Some(r) = seq.next_element::<TermRow>()? {
                    let at = out.rows;
                    if r.search_frequency_rank < 1 {
                        return Err(A::Error::custom(format!(
                            "row {at}: searchFrequencyRank {} (ranks start at 1)",
                            r.search_frequency_rank
                        )));
                    }
                    for (name, v) in [
                        ("clickShare", r.click_share),
                        ("conversionShare", r.conversion_share),
                    ] {
                        if !(0.0..=1.0).contains(&v) {
                            return Err(A::Error::custom(format!(
                                "row {at}: {name} {v} is not a share between 0 and 1"
                            )));
                        }
                    }
                    out.rows += 1;
                    let Ok(keyword) = Keyword::parse(&r.search_term) else {
                        out.skipped += 1;
                        continue;
                    };
                    let t = out.by_keyword.entry(keyword).or_insert(Term {
                        rank: r.search_frequency_rank,
                        click: 0.0,
                        conversion: 0.0,
                    });
                    t.rank = t.rank.min(r.search_frequency_rank);
                    t.click += r.click_share;
                    t.conversion += r.conversion_share;
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Fold)
    }
}

/// A reader that counts what passes through it.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads a report document (gzip or plain JSON, told apart by its first bytes) into the
/// observations of `week`; the error says where the document is wrong.
pub fn parse_document(
    body: &[u8],
    week: NaiveDate,
    max_bytes: u64,
) -> Result<Vec<Observation>, String> {
    let gzip = body.starts_with(&[0x1f, 0x8b]);
    let inner: Box<dyn Read + '_> = if gzip {
        Box::new(flate2::read::GzDecoder::new(body))
    } else {
        Box::new(body)
    };
    let mut reader = Counted {
        inner: inner.take(max_bytes + 1),
        read: 0,
    };
    let mut de = serde_json::Deserializer::from_reader(&mut reader);
    let doc: Result<Document, String> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        format!("at `{path}`: {}", e.into_inner())
    });
    if reader.read > max_bytes {
        return Err(format!(
            "the document is larger than {} MB decompressed (KWI_SPAPI_REPORT_MAX_MB)",
            max_bytes >> 20
        ));
    }
    let doc = doc?;
    let spec = &doc.report_specification;
    if spec.report_type != REPORT_TYPE {
        return Err(format!(
            "the document is a {} report, not {REPORT_TYPE}",
            spec.report_type
        ));
    }
    let start = spec.data_start_time.get(..10).unwrap_or_default();
    let start = NaiveDate::parse_from_str(start, "%Y-%m-%d").map_err(|_| {
        format!(
            "reportSpecification.dataStartTime `{}` is not a date",
            spec.data_start_time
        )
    })?;
    if start != week {
        return Err(format!(
            "the document is for the week of {start}, the job asked for the week of {week}"
        ));
    }
    let folded = doc.data_by_department_and_search_term;
    if folded.skipped > 0 {
        tracing::warn!(
            skipped = folded.skipped,
            "search terms report: terms that are not valid keywords left out"
        );
    }
    let mut rows: Vec<Observation> = folded
        .by_keyword
        .into_iter()
        .map(|(keyword, t)| {
            let mut values = [None; VALUE_COUNT];
            values[value_index("search_frequency_rank")] = Some(t.rank as f64);
            values[value_index("click_share")] = Some(t.click.min(1.0));
            values[value_index("conversion_share")] = Some(t.conversion.min(1.0));
            Observation {
                platform: Platform::Amazon,
                keyword,
                period_start: week,
                values,
                source: OBSERVATION_SOURCE.into(),
                line: 0,
            }
        })
        .collect();
    rows.sort_by_key(|o| {
        (
            o.values[value_index("search_frequency_rank")].map(|r| r as u64),
            o.keyword.clone(),
        )
    });
    for (i, o) in rows.iter_mut().enumerate() {
        o.line = i + 1;
    }
    Ok(rows)
}

impl SpApi {
    /// The report flow of one job (see the module doc).
    pub(super) async fn search_terms(&self, job: &Job) -> Result<Collected, JobError> {
        let week = job.period;
        if report_week(week) != week {
            return Err(JobError::Refused(format!(
                "a Brand Analytics week starts on a Sunday; {week} is a {}",
                week.weekday()
            )));
        }
        let opts = self.report_options();
        let mut raw = Vec::new();
        let invalid = |message: String, f: &super::Fetched, raw: &Vec<kwi_store::RawResponse>| {
            JobError::Invalid {
                message: format!("amazon search terms report, week of {week}: {message}"),
                sample: body_sample(&f.body, 500),
                raw: raw.clone(),
            }
        };
        let create = serde_json::json!({
            "reportType": REPORT_TYPE,
            "marketplaceIds": [self.marketplace()],
            "reportOptions": {"reportPeriod": "WEEK"},
            "dataStartTime": format!("{week}T00:00:00Z"),
            "dataEndTime": format!("{}T23:59:59Z", week + chrono::Days::new(6)),
        });
        let f = self
            .call(
                self.api_url("reports/2021-06-30/reports")?,
                Some(create.to_string()),
                "Reports",
            )
            .await?;
        raw.push(f.to_raw());
        if !f.status.is_success() {
            return Err(f.refused(kwi_store::Source::Amazon));
        }
        let created: Created = parse_json(&f.body).map_err(|e| invalid(e, &f, &raw))?;
        let id = created.report_id;
        let deadline = tokio::time::Instant::now() + opts.timeout;
        let document_id = loop {
            let f = self
                .call(
                    self.api_url(&format!("reports/2021-06-30/reports/{id}"))?,
                    None,
                    "Reports",
                )
                .await?;
            if f.status != StatusCode::OK {
                raw.push(f.to_raw());
                return Err(f.refused(kwi_store::Source::Amazon));
            }
            let st: Status = parse_json(&f.body).map_err(|e| {
                raw.push(f.to_raw());
                invalid(e, &f, &raw)
            })?;
            match st.processing_status.as_str() {
                "DONE" => {
                    raw.push(f.to_raw());
                    break st.report_document_id.ok_or_else(|| {
                        invalid("a DONE report without reportDocumentId".into(), &f, &raw)
                    })?;
                }
                "IN_QUEUE" | "IN_PROGRESS" => {
                    if tokio::time::Instant::now() + opts.poll > deadline {
                        return Err(JobError::Transient(format!(
                            "amazon report {id} still {} after {} s",
                            st.processing_status,
                            opts.timeout.as_secs()
                        )));
                    }
                    tokio::time::sleep(opts.poll).await;
                }
                "CANCELLED" => {
                    raw.push(f.to_raw());
                    return Err(JobError::Refused(format!(
                        "amazon cancelled report {id}: no Brand Analytics data for the week of {week} (the week has not ended, or the selling account has no Brand Analytics access)"
                    )));
                }
                "FATAL" => {
                    raw.push(f.to_raw());
                    return Err(JobError::Transient(format!(
                        "amazon report {id} ended FATAL (the next attempt asks for a new report)"
                    )));
                }
                other => {
                    raw.push(f.to_raw());
                    return Err(invalid(
                        format!("unknown processingStatus `{other}`"),
                        &f,
                        &raw,
                    ));
                }
            }
        };
        let f = self
            .call(
                self.api_url(&format!("reports/2021-06-30/documents/{document_id}"))?,
                None,
                "Reports",
            )
            .await?;
        raw.push(f.to_raw());
        if f.status != StatusCode::OK {
            return Err(f.refused(kwi_store::Source::Amazon));
        }
        let doc: DocumentRef = parse_json(&f.body).map_err(|e| invalid(e, &f, &raw))?;
        let url: reqwest::Url = doc
            .url
            .parse()
            .map_err(|_| invalid("the document url is not a URL".into(), &f, &raw))?;
        if let Some(c) = doc.compression_algorithm.as_deref()
            && c != "GZIP"
        {
            return Err(invalid(
                format!("unknown compressionAlgorithm `{c}`"),
                &f,
                &raw,
            ));
        }
        // A pre-signed URL: no token (it would be sent to the storage host).
        let f = self
            .fetcher()
            .get(url, reqwest::header::HeaderMap::new())
            .await?;
        let mut kept = f.to_raw();
        // Kept without its query (the pre-signature).
        kept.url = kept.url.split('?').next().unwrap_or_default().to_string();
        raw.push(kept);
        if f.status != StatusCode::OK {
            return Err(JobError::Transient(format!(
                "amazon report document download answered {}",
                f.status
            )));
        }
        let body = f.body.clone();
        let max = opts.max_bytes;
        let rows = tokio::task::spawn_blocking(move || parse_document(&body, week, max))
            .await
            .map_err(|e| JobError::Transient(format!("report parsing task failed: {e}")))?
            .map_err(|e| invalid(e, &f, &raw))?;
        Ok(Collected { rows, raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(week: &str, rows: &str) -> String {
        format!(
            r#"{{"reportSpecification": {{"reportType": "{REPORT_TYPE}", "reportOptions": {{"reportPeriod": "WEEK"}},
               "dataStartTime": "{week}", "dataEndTime": "2026-11-28", "marketplaceIds": ["ATVPDKIKX0DER"]}},
               "dataByDepartmentAndSearchTerm": [{rows}]}}"#
        )
    }

    fn row(term: &str, rank: u64, click: f64, conv: f64) -> String {
        format!(
            r#"{{"departmentName": "Amazon.com", "searchTerm": "{term}", "searchFrequencyRank": {rank},
               "clickedAsin": "B000000001", "clickedItemName": "x", "clickShareRank": 1,
               "clickShare": {click}, "conversionShare": {conv}}}"#
        )
    }

    fn week() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    #[test]
    fn a_document_folds_each_terms_rows() {
        let rows = [
            row("tarot cards", 12, 0.2, 0.1),
            row("tarot cards", 12, 0.15, 0.05),
            row("Tarot Cards ", 12, 0.05, 0.0),
            row("mug", 3, 0.5, 0.4),
        ]
        .join(",");
        let text = doc("2026-11-22", &rows);
        for body in [text.clone().into_bytes(), gzip(text.as_bytes())] {
            let obs = parse_document(&body, week(), 1 << 20).unwrap();
            assert_eq!(obs.len(), 2);
            let (first, second) = (&obs[0], &obs[1]);
            assert_eq!(first.keyword.as_str(), "mug");
            let rank = value_index("search_frequency_rank");
            assert_eq!(first.values[rank], Some(3.0));
            assert_eq!(second.keyword.as_str(), "tarot cards");
            assert_eq!(second.values[rank], Some(12.0));
            let click = second.values[value_index("click_share")].unwrap();
            assert!((click - 0.4).abs() < 1e-12, "{click}");
            assert_eq!(second.values[value_index("search_volume")], None);
            assert_eq!(second.period_start, week());
        }
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        let e = parse_document(doc("2026-11-15", "").as_bytes(), week(), 1 << 20).unwrap_err();
        assert!(
            e.contains("week of 2026-11-15") && e.contains("2026-11-22"),
            "{e}"
        );
        let e = parse_document(
            doc("2026-11-22", &row("mug", 0, 0.1, 0.1)).as_bytes(),
            week(),
            1 << 20,
        )
        .unwrap_err();
        assert!(e.contains("searchFrequencyRank 0"), "{e}");
        let e = parse_document(
            doc("2026-11-22", &row("mug", 1, 1.5, 0.1)).as_bytes(),
            week(),
            1 << 20,
        )
        .unwrap_err();
        assert!(e.contains("clickShare 1.5"), "{e}");
        let bad = doc(
            "2026-11-22",
            r#"{"searchTerm": "mug", "searchFrequencyRank": "one", "clickShare": 0, "conversionShare": 0}"#,
        );
        let e = parse_document(bad.as_bytes(), week(), 1 << 20).unwrap_err();
        assert!(e.contains("dataByDepartmentAndSearchTerm"), "{e}");
        let big = doc("2026-11-22", &vec![row("mug", 1, 0.1, 0.1); 50].join(","));
        let e = parse_document(big.as_bytes(), week(), 1024).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        let e = parse_document(b"<html>busy</html>", week(), 1 << 20).unwrap_err();
        assert!(e.contains("expected value"), "{e}");
    }

    #[test]
    fn weeks_start_on_sunday() {
        let thu = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        assert_eq!(
            report_week(thu),
            NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
        );
        assert_eq!(last_complete_week(thu), week());
        let sun = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        assert_eq!(last_complete_week(sun), week());
    }
}
