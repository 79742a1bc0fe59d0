//! Large, realistic panels for benchmarks and load tests, built by resampling real series.
//!
//! There is no public dataset of 100,000 keyword histories, so the benchmark panel is made from the
//! real reference series: each synthetic series is a random contiguous slice of `len` periods of one
//! pool series (Google Trends topics and M4 Weekly series long enough for the slice), multiplied by
//! a random factor drawn log-uniformly from `[e⁻², e²]` (≈ 0.14× … 7.4×), so levels, zeros, trends
//! and seasonality are real while the series differ. The generator is a seeded SplitMix64, so the
//! same seed gives the same panel on every machine (no `rand` dependency in the library).

use polars::prelude::*;

use crate::error::{FeatureError, Result};
use crate::frame::{KEYWORD, OBSERVED, PERIOD_START, PLATFORM, SERIES, T, VALUE, date_to_days};

/// SplitMix64: tiny, seedable, good enough for sampling.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }
}

/// One pool series: where it came from and its values.
#[derive(Debug, Clone)]
pub struct PoolSeries {
    /// Platform of the synthetic series made from it (`google` for Trends, `benchmark` for M4).
    pub platform: &'static str,
    /// Values (no gaps).
    pub values: Vec<f64>,
}

/// Builds a regular frame (layout of [`crate::regular::regular_frame`], no gaps) of `n_series`
/// series × `len` periods resampled from `pool` (see the module docs). Keywords are `s000000`…;
/// the first period is `first_period` for every series, step 7 days. Pool series shorter than `len`
/// are skipped; an error if none is long enough.
pub fn resample_panel(
    pool: &[PoolSeries],
    n_series: usize,
    len: usize,
    seed: u64,
    first_period: chrono::NaiveDate,
) -> Result<DataFrame> {
    let usable: Vec<&PoolSeries> = pool.iter().filter(|p| p.values.len() >= len).collect();
    if usable.is_empty() {
        return Err(FeatureError::Options(format!(
            "no pool series has {len} values"
        )));
    }
    let mut rng = SplitMix64::new(seed);
    let n = n_series * len;
    let mut series = Vec::with_capacity(n);
    let mut platform = Vec::with_capacity(n);
    let mut keyword = Vec::with_capacity(n);
    let mut t = Vec::with_capacity(n);
    let mut day = Vec::with_capacity(n);
    let mut value = Vec::with_capacity(n);
    let d0 = date_to_days(first_period);
    let days: Vec<i32> = (0..len as i32).map(|i| d0 + 7 * i).collect();
    let ts: Vec<i32> = (0..len as i32).collect();
    for s in 0..n_series {
        let src = usable[rng.below(usable.len())];
        let offset = rng.below(src.values.len() - len + 1);
        let factor = (rng.next_f64() * 4.0 - 2.0).exp();
        let kw = format!("s{s:06}");
        series.extend(std::iter::repeat_n(s as u32, len));
        platform.extend(std::iter::repeat_n(src.platform, len));
        keyword.extend(std::iter::repeat_n(kw, len));
        t.extend_from_slice(&ts);
        day.extend_from_slice(&days);
        value.extend(src.values[offset..offset + len].iter().map(|v| v * factor));
    }
    Ok(DataFrame::new_infer_height(vec![
        Column::new(SERIES.into(), series),
        Column::new(PLATFORM.into(), platform),
        Column::new(KEYWORD.into(), keyword),
        Column::new(T.into(), t),
        Column::new(PERIOD_START.into(), day).cast(&DataType::Date)?,
        Column::new(VALUE.into(), value),
        Column::new(OBSERVED.into(), vec![true; n]),
    ])?)
}

/// The reference pool: the 32 Google Trends topics and every M4 Weekly training series, read from
/// `data_dir` (the repository's `data/` folder: `samples/gtrends_pt_weekly_topics.csv` and
/// `m4/Weekly-train.csv`).
pub fn reference_pool(data_dir: &std::path::Path) -> Result<Vec<PoolSeries>> {
    use crate::ingest::{IngestOptions, read_observations};
    let mut pool = Vec::new();
    let gtrends = read_observations(
        &data_dir.join("samples/gtrends_pt_weekly_topics.csv"),
        &IngestOptions::default(),
    )?;
    let m4 = read_observations(
        &data_dir.join("m4/Weekly-train.csv"),
        &IngestOptions {
            start: Some(chrono::NaiveDate::from_ymd_opt(2000, 1, 2).expect("valid date")),
            ..Default::default()
        },
    )?;
    for (rows, platform) in [(gtrends.rows, "google"), (m4.rows, "benchmark")] {
        let mut current: Option<String> = None;
        for o in rows {
            if current.as_deref() != Some(o.keyword.as_str()) {
                current = Some(o.keyword.as_str().to_string());
                pool.push(PoolSeries {
                    platform,
                    values: Vec::new(),
                });
            }
            if let (Some(p), Some(v)) = (pool.last_mut(), o.search_volume()) {
                p.values.push(v);
            }
        }
    }
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_is_seeded_and_sliced_from_the_pool() {
        let pool = vec![
            PoolSeries {
                platform: "google",
                values: (0..10).map(f64::from).collect(),
            },
            PoolSeries {
                platform: "benchmark",
                values: vec![1.0; 3],
            },
        ];
        let d = chrono::NaiveDate::from_ymd_opt(2020, 1, 5).unwrap();
        let a = resample_panel(&pool, 4, 5, 7, d).unwrap();
        let b = resample_panel(&pool, 4, 5, 7, d).unwrap();
        assert!(a.equals(&b));
        assert_eq!(a.height(), 20);
        // Only the long pool series qualifies: every slice is consecutive integers times a factor.
        let v = a.column(VALUE).unwrap().f64().unwrap();
        for s in 0..4 {
            let x: Vec<f64> = (0..5).map(|i| v.get(s * 5 + i).unwrap()).collect();
            let step = x[1] - x[0];
            assert!(step > 0.13 && step < 7.4, "{step}");
            for w in x.windows(2) {
                assert!((w[1] - w[0] - step).abs() < 1e-9);
            }
        }
        assert!(resample_panel(&pool, 1, 11, 7, d).is_err());
    }

    #[test]
    fn reference_pool_holds_every_real_series() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../data"));
        let pool = reference_pool(dir).unwrap();
        assert_eq!(pool.len(), 32 + 359);
        assert_eq!(pool[0].values.len(), 679);
        assert!(pool.iter().filter(|p| p.values.len() >= 156).count() > 300);
    }
}
