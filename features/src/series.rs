//! Regular series: each (platform, keyword) put on its frequency grid.
//!
//! The grid starts at the keyword's first observed period and steps by the frequency. Periods with
//! no observation are gaps: they are filled by linear interpolation between the observed neighbours
//! (so models get dense input) AND flagged in `observed`, and counted in `gaps`, never silently
//! dropped or zero-filled. Several observations in one period (several sources, or dates inside the
//! same week) are averaged, so the result does not depend on input order. Observations without a
//! search volume are ignored here.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::ingest::Observation;
use crate::keyword::{Frequency, Keyword, Platform};

/// One keyword's search volume on a regular grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Platform.
    pub platform: Platform,
    /// Normalised keyword.
    pub keyword: Keyword,
    /// Label as the input spelled it (M4 id, Google Trends column), or `platform/keyword`.
    pub label: String,
    /// First period.
    pub start: NaiveDate,
    /// Grid step.
    pub freq: Frequency,
    /// Volume per period, gaps interpolated.
    pub values: Vec<f64>,
    /// False where the period was a gap.
    pub observed: Vec<bool>,
    /// Number of gap periods.
    pub gaps: usize,
}

impl Series {
    /// Date of period `i`.
    pub fn period(&self, i: usize) -> NaiveDate {
        self.freq.advance(self.start, i as i64)
    }

    /// The period after the last one.
    pub fn next_period(&self) -> NaiveDate {
        self.period(self.values.len())
    }
}

/// The frequency observations' dates show, or `None` when no keyword has two dated volumes: each
/// keyword votes by the smallest gap between its consecutive dates (1 day: daily; dates all on
/// the 1st and at least 28 days apart: monthly; otherwise weekly), and the most common vote wins
/// (ties go to the finer frequency).
pub fn infer_frequency(rows: &[Observation]) -> Option<Frequency> {
    let mut votes = [0usize; 3];
    for points in volumes_by_keyword(rows).into_values() {
        let Some(f) = Frequency::of_dates(points.iter().map(|p| p.0)) else {
            continue;
        };
        votes[Frequency::ALL.iter().position(|x| *x == f).expect("listed")] += 1;
    }
    let best = (0..3).rev().max_by_key(|i| votes[*i])?;
    (votes[best] > 0).then_some(Frequency::ALL[best])
}

/// Each keyword's (period, volume) points, in (platform, keyword) order; rows without a volume
/// are left out.
fn volumes_by_keyword(
    rows: &[Observation],
) -> BTreeMap<(Platform, &Keyword), Vec<(NaiveDate, f64)>> {
    let mut groups: BTreeMap<(Platform, &Keyword), Vec<(NaiveDate, f64)>> = BTreeMap::new();
    for o in rows {
        if let Some(v) = o.search_volume() {
            groups
                .entry((o.platform, &o.keyword))
                .or_default()
                .push((o.period_start, v));
        }
    }
    groups
}

/// Like [`regularise`], each keyword on the grid of its own dates ([`Frequency::of_dates`];
/// weekly for a keyword with a single date): a store may hold weekly and monthly keywords side by
/// side. The server builds every stored keyword's series so ([`regular_series_of`]).
pub fn regularise_each(rows: &[Observation]) -> Vec<Series> {
    volumes_by_keyword(rows)
        .into_iter()
        .filter_map(|((platform, keyword), points)| regular_series_of(platform, keyword, &points))
        .collect()
}

/// One keyword's series on the grid its dates show (see [`regularise_each`]), labelled
/// `platform/keyword`.
pub fn regular_series_of(
    platform: Platform,
    keyword: &Keyword,
    points: &[(NaiveDate, f64)],
) -> Option<Series> {
    let freq = Frequency::of_dates(points.iter().map(|p| p.0)).unwrap_or_default();
    regular_series(
        platform,
        keyword.clone(),
        format!("{platform}/{keyword}"),
        points,
        freq,
    )
}

/// Groups observations into regular series, ordered by (platform, keyword). `labels` maps a
/// keyword to the spelling its input used (see [`crate::ingest::Ingested::labels`]).
pub fn regularise(
    rows: &[Observation],
    freq: Frequency,
    labels: &BTreeMap<(Platform, Keyword), String>,
) -> Vec<Series> {
    volumes_by_keyword(rows)
        .into_iter()
        .map(|((platform, keyword), points)| {
            let label = labels
                .get(&(platform, keyword.clone()))
                .cloned()
                .unwrap_or_else(|| format!("{platform}/{keyword}"));
            regular_series(platform, keyword.clone(), label, &points, freq)
                .expect("non-empty group")
        })
        .collect()
}

/// One keyword's regular series from its (period, volume) points in any order: the grid starts
/// at the earliest period, duplicates of a period are averaged, gaps are interpolated and counted.
/// `None` when there are no points. [`regularise`] builds every series with it, so the server's
/// single-keyword path and training agree.
pub fn regular_series(
    platform: Platform,
    keyword: Keyword,
    label: String,
    points: &[(NaiveDate, f64)],
    freq: Frequency,
) -> Option<Series> {
    let start = freq.grid_start(points.iter().map(|p| p.0).min()?);
    let idx = |d: NaiveDate| freq.index(start, d) as usize;
    let len = points.iter().map(|p| idx(p.0)).max().unwrap_or(0) + 1;
    let mut sum = vec![0.0; len];
    let mut cnt = vec![0u32; len];
    for (d, v) in points {
        let i = idx(*d);
        sum[i] += v;
        cnt[i] += 1;
    }
    let observed: Vec<bool> = cnt.iter().map(|c| *c > 0).collect();
    let mut values: Vec<f64> = sum
        .iter()
        .zip(&cnt)
        .map(|(s, c)| if *c > 0 { s / f64::from(*c) } else { f64::NAN })
        .collect();
    interpolate(&mut values);
    let gaps = observed.iter().filter(|o| !**o).count();
    Some(Series {
        platform,
        keyword,
        label,
        start,
        freq,
        values,
        observed,
        gaps,
    })
}

/// Fills NaN runs by linear interpolation between the finite neighbours (the first and last values
/// are always observed by construction).
fn interpolate(v: &mut [f64]) {
    let mut last: Option<usize> = None;
    for i in 0..v.len() {
        if v[i].is_finite() {
            if let Some(p) = last
                && i > p + 1
            {
                let (a, b) = (v[p], v[i]);
                for (k, slot) in v.iter_mut().enumerate().take(i).skip(p + 1) {
                    *slot = a + (b - a) * (k - p) as f64 / (i - p) as f64;
                }
            }
            last = Some(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(kw: &str, date: &str, v: f64, source: &str) -> Observation {
        let mut values = [None; crate::ingest::VALUE_COUNT];
        values[0] = Some(v);
        Observation {
            platform: Platform::Etsy,
            keyword: Keyword::parse(kw).unwrap(),
            period_start: date.parse().unwrap(),
            values,
            source: source.into(),
            line: 0,
        }
    }

    #[test]
    fn frequency_is_read_from_the_dates() {
        let monthly = vec![
            o("a", "2024-01-01", 1.0, "x"),
            o("a", "2024-03-01", 2.0, "x"),
            o("a", "2024-04-01", 3.0, "x"),
        ];
        assert_eq!(infer_frequency(&monthly), Some(Frequency::Monthly));
        let weekly = vec![
            o("b", "2024-01-07", 1.0, "x"),
            o("b", "2024-01-21", 1.0, "x"),
        ];
        assert_eq!(infer_frequency(&weekly), Some(Frequency::Weekly));
        // A 7-day gap is weekly even from the 1st; a tie between keywords goes to the finer grid.
        let first = vec![
            o("c", "2024-02-01", 1.0, "x"),
            o("c", "2024-02-08", 1.0, "x"),
        ];
        assert_eq!(infer_frequency(&first), Some(Frequency::Weekly));
        let daily = vec![
            o("d", "2024-01-01", 1.0, "x"),
            o("d", "2024-01-02", 1.0, "x"),
        ];
        let mixed: Vec<Observation> = monthly.iter().chain(&daily).cloned().collect();
        assert_eq!(infer_frequency(&mixed), Some(Frequency::Daily));
        assert_eq!(
            infer_frequency(&monthly[..1]),
            None,
            "one date says nothing"
        );
        // On the monthly grid a mid-month date belongs to its month.
        let s = regularise(
            &[
                o("e", "2024-01-15", 4.0, "x"),
                o("e", "2024-03-31", 8.0, "x"),
            ],
            Frequency::Monthly,
            &BTreeMap::new(),
        );
        assert_eq!(s[0].start.to_string(), "2024-01-01");
        assert_eq!((s[0].values.clone(), s[0].gaps), (vec![4.0, 6.0, 8.0], 1));
        assert_eq!(s[0].next_period().to_string(), "2024-04-01");
    }

    #[test]
    fn gaps_are_flagged_interpolated_and_counted() {
        let rows = vec![
            o("b", "2024-01-21", 30.0, "x"),
            o("a", "2024-01-07", 10.0, "x"),
            o("a", "2024-01-28", 40.0, "x"),
            o("a", "2024-01-07", 20.0, "y"),
        ];
        let s = regularise(&rows, Frequency::Weekly, &BTreeMap::new());
        assert_eq!(s.len(), 2);
        let a = &s[0];
        assert_eq!(a.label, "etsy/a");
        // 15 + 25·1/3 and 15 + 25·2/3, compared with a tolerance: the last bit depends on the
        // order of the floating-point operations, which is not part of the contract.
        let expected = [15.0, 15.0 + 25.0 / 3.0, 15.0 + 50.0 / 3.0, 40.0];
        assert_eq!(a.values.len(), expected.len());
        for (got, want) in a.values.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert_eq!(a.observed, vec![true, false, false, true]);
        assert_eq!(a.gaps, 2);
        assert_eq!(a.next_period().to_string(), "2024-02-04");
        assert_eq!(s[1].values, vec![30.0]);
    }
}
