//! Regular series as a Polars pipeline: the frame twin of [`crate::series::regularise`], with the
//! same semantics, so the columnar feature code and the row-wise code cannot disagree.
//!
//! For each (platform, keyword): the grid starts at the first observed period and steps by the
//! frequency; an observation belongs to period `floor((date − start) / step)` (monthly: calendar
//! months, the grid starting on the 1st of the first observed month); several observations
//! in one period (duplicates across sources, or several dates inside one week) are **averaged**
//! (deterministic: independent of input order); periods without an observation are **gaps**,
//! filled by linear interpolation between the observed neighbours, flagged `observed = false` and
//! counted in `gaps` — never dropped, never zero-filled. Rows without a search volume are ignored.
//!
//! Output layout (sorted by `series, t`): `series` (UInt32, dense id in (platform, keyword) order),
//! `platform`, `keyword`, `t` (Int32, 0-based period index), `period_start` (Date), `value` (Float64),
//! `observed` (Boolean), `gaps` (UInt32, gap periods in the whole series).

use polars::prelude::*;

use crate::error::Result;
use crate::frame::{
    GAPS, KEYWORD, OBSERVED, PERIOD_START, PLATFORM, SEARCH_VOLUME, SERIES, T, VALUE,
    check_observations,
};
use crate::keyword::Frequency;
use crate::schema::{FeatureSchema, REGULAR_SCHEMA_NAME, REGULAR_SCHEMA_VERSION, from_polars};

fn fill(e: Expr, forward: bool) -> Expr {
    e.fill_null_with_strategy(if forward {
        FillNullStrategy::Forward(None)
    } else {
        FillNullStrategy::Backward(None)
    })
}

/// Puts every (platform, keyword) of an observation frame (see [`crate::frame::check_observations`])
/// on its regular grid. The input is checked eagerly (missing column, wrong type, negative volume →
/// [`crate::FeatureError::Column`]); the returned pipeline is lazy.
pub fn regular_frame(observations: &DataFrame, freq: Frequency) -> Result<LazyFrame> {
    check_observations(observations)?;
    // `day` counts days (daily, weekly: step 1 or 7) or months from year 0 (monthly: step 1), the
    // same numbering as `Frequency::index`.
    let (day, step) = match freq {
        Frequency::Daily | Frequency::Weekly => (
            col(PERIOD_START).cast(DataType::Int32),
            freq.mean_days() as i32,
        ),
        Frequency::Monthly => (
            col(PERIOD_START).dt().year() * lit(12)
                + col(PERIOD_START).dt().month().cast(DataType::Int32)
                - lit(1),
            1,
        ),
    };
    let obs = observations
        .clone()
        .lazy()
        .select([
            col(PLATFORM),
            col(KEYWORD),
            day.cast(DataType::Int32).alias("day"),
            col(SEARCH_VOLUME).cast(DataType::Float64).alias("v"),
        ])
        .filter(col("v").is_not_null());
    // One row per series: its id (dense, in (platform, keyword) order) and first day.
    let starts = obs
        .clone()
        .group_by([col(PLATFORM), col(KEYWORD)])
        .agg([col("day").min().alias("start")])
        .sort(
            [PLATFORM, KEYWORD],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .with_row_index(SERIES, None)
        .with_column(col(SERIES).cast(DataType::UInt32));
    let keys = [col(PLATFORM), col(KEYWORD)];
    // Observed periods: mean of every observation falling into the period.
    let binned = obs
        .join(
            starts.clone(),
            keys.clone(),
            keys,
            JoinArgs::new(JoinType::Inner),
        )
        .with_column(
            (col("day") - col("start"))
                .floor_div(lit(step))
                .cast(DataType::Int32)
                .alias(T),
        )
        .group_by([col(SERIES), col(T)])
        .agg([col("v").mean().alias(VALUE)]);
    // The full grid 0..=last period of every series.
    let grid = binned
        .clone()
        .group_by([col(SERIES)])
        .agg([col(T).max().alias("last")])
        .select([
            col(SERIES),
            int_ranges(lit(0), col("last") + lit(1), lit(1), DataType::Int32).alias(T),
        ])
        .explode(
            cols([T]),
            ExplodeOptions {
                empty_as_null: false,
                keep_nulls: false,
            },
        );
    let gaps = col(OBSERVED)
        .not()
        .cast(DataType::UInt32)
        .sum()
        .over([col(SERIES)])?
        .alias(GAPS);
    let on = [col(SERIES), col(T)];
    let lf = grid
        .join(binned, on.clone(), on, JoinArgs::new(JoinType::Left))
        .join(
            starts,
            [col(SERIES)],
            [col(SERIES)],
            JoinArgs::new(JoinType::Left),
        )
        .sort([SERIES, T], SortMultipleOptions::default())
        .with_columns([
            col(VALUE).is_not_null().alias(OBSERVED),
            fill(col(VALUE), true).alias("prev_v"),
            fill(col(VALUE), false).alias("next_v"),
            fill(
                when(col(VALUE).is_not_null())
                    .then(col(T))
                    .otherwise(lit(NULL).cast(DataType::Int32)),
                true,
            )
            .alias("prev_t"),
            fill(
                when(col(VALUE).is_not_null())
                    .then(col(T))
                    .otherwise(lit(NULL).cast(DataType::Int32)),
                false,
            )
            .alias("next_t"),
        ])
        // Same arithmetic, in the same order, as `series::interpolate`: a + (b − a)·(k − p)/(i − p).
        // The first and last period of a series are observed, so the fills never cross series.
        .select([
            col(SERIES),
            col(PLATFORM),
            col(KEYWORD),
            col(T),
            period_date(freq, col("start") + col(T) * lit(step)).alias(PERIOD_START),
            when(col(OBSERVED))
                .then(col(VALUE))
                .otherwise(
                    col("prev_v")
                        + (col("next_v") - col("prev_v"))
                            * (col(T) - col("prev_t")).cast(DataType::Float64)
                            / (col("next_t") - col("prev_t")).cast(DataType::Float64),
                )
                .alias(VALUE),
            col(OBSERVED),
            gaps,
        ]);
    Ok(lf)
}

/// The `Date` of a `day` number as `regular_frame` counts them.
fn period_date(freq: Frequency, day: Expr) -> Expr {
    match freq {
        Frequency::Daily | Frequency::Weekly => day.cast(DataType::Date),
        Frequency::Monthly => datetime(DatetimeArgs::new(
            day.clone().floor_div(lit(12)),
            day % lit(12) + lit(1),
            lit(1),
        ))
        .cast(DataType::Date),
    }
}

/// The versioned schema of [`regular_frame`]'s output.
pub fn regular_schema() -> Result<FeatureSchema> {
    let empty = df![
        PLATFORM => Vec::<String>::new(),
        KEYWORD => Vec::<String>::new(),
        SEARCH_VOLUME => Vec::<f64>::new(),
    ]?
    .lazy()
    .with_column(lit(NULL).cast(DataType::Date).alias(PERIOD_START))
    .collect()?;
    let mut lf = regular_frame(&empty, Frequency::Weekly)?;
    let schema = lf.collect_schema()?;
    Ok(from_polars(
        REGULAR_SCHEMA_NAME,
        REGULAR_SCHEMA_VERSION,
        &schema,
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::frame::{frame_series, observations_frame};
    use crate::ingest::{IngestOptions, Observation, read_observations};
    use crate::series::regularise;

    const GTRENDS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/samples/gtrends_pt_weekly_topics.csv"
    );

    /// Real Google Trends topics with holes punched in (every 5th week of every 3rd topic dropped,
    /// plus a duplicate source for some weeks): the frame pipeline must agree with `regularise`.
    fn holed_gtrends() -> Vec<Observation> {
        let ing = read_observations(GTRENDS.as_ref(), &IngestOptions::default()).unwrap();
        let mut rows = Vec::new();
        for (i, o) in ing.rows.into_iter().enumerate() {
            let topic = o.keyword.as_str().len() % 3;
            if topic == 0 && i % 5 == 2 {
                continue;
            }
            if i % 11 == 0 {
                let mut dup = o.clone();
                dup.source = "second".into();
                dup.values[0] = dup.values[0].map(|v| v + 1.0);
                rows.push(dup);
            }
            rows.push(o);
        }
        rows
    }

    #[test]
    fn polars_regularisation_matches_series_regularise_on_real_data() {
        agrees_with_regularise(Frequency::Weekly, 100);
    }

    /// Weekly Google Trends put on the calendar-month grid: each month the mean of its weeks,
    /// dated the 1st, in both implementations.
    #[test]
    fn monthly_regularisation_matches_series_regularise_on_real_data() {
        let (df, got) = agrees_with_regularise(Frequency::Monthly, 0);
        // 2006-01-01 … 2018-12-30: 156 calendar months, each dated the 1st.
        assert_eq!(got[0].values.len(), 156);
        assert_eq!(
            got[0].start,
            chrono::NaiveDate::from_ymd_opt(2006, 1, 1).unwrap()
        );
        let dates = df
            .column(PERIOD_START)
            .unwrap()
            .cast(&DataType::String)
            .unwrap();
        let dates = dates.str().unwrap();
        let dates: Vec<&str> = (0..dates.len()).filter_map(|i| dates.get(i)).collect();
        assert_eq!(&dates[..3], ["2006-01-01", "2006-02-01", "2006-03-01"]);
        assert!(dates.iter().all(|d| d.ends_with("-01")));
    }

    fn agrees_with_regularise(
        freq: Frequency,
        min_gaps: usize,
    ) -> (DataFrame, Vec<crate::series::Series>) {
        let rows = holed_gtrends();
        let expected = regularise(&rows, freq, &BTreeMap::new());
        let df = regular_frame(&observations_frame(&rows).unwrap(), freq)
            .unwrap()
            .collect()
            .unwrap();
        let got = frame_series(&df, freq).unwrap();
        assert_eq!(got.len(), 32);
        assert_eq!(got.len(), expected.len());
        let mut total_gaps = 0;
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!((g.platform, &g.keyword), (e.platform, &e.keyword));
            assert_eq!(g.start, e.start);
            assert_eq!(g.observed, e.observed, "{}", e.keyword);
            assert_eq!(g.gaps, e.gaps);
            assert_eq!(g.values.len(), e.values.len());
            for (a, b) in g.values.iter().zip(&e.values) {
                assert!((a - b).abs() < 1e-9, "{}: {a} vs {b}", e.keyword);
            }
            total_gaps += e.gaps;
        }
        assert!(
            total_gaps >= min_gaps,
            "the test must exercise gaps, got {total_gaps}"
        );
        // The per-row gap column repeats the series' total.
        let gaps = df.column(GAPS).unwrap().u32().unwrap();
        assert_eq!(gaps.get(0), Some(got[0].gaps as u32));
        (df, got)
    }

    #[test]
    fn dates_inside_one_week_are_averaged_and_weeks_counted_from_the_first() {
        let df = df![
            PLATFORM => ["etsy"; 4],
            KEYWORD => ["tarot"; 4],
            "d" => [0, 3, 21, 9],
            SEARCH_VOLUME => [Some(10.0), Some(20.0), Some(40.0), None],
        ]
        .unwrap()
        .lazy()
        .with_column(col("d").cast(DataType::Date).alias(PERIOD_START))
        .collect()
        .unwrap();
        let out = regular_frame(&df, Frequency::Weekly)
            .unwrap()
            .collect()
            .unwrap();
        let v: Vec<f64> = out
            .column(VALUE)
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0], 15.0);
        assert!((v[1] - (15.0 + 25.0 / 3.0)).abs() < 1e-12);
        assert_eq!(v[3], 40.0);
        let obs: Vec<bool> = out
            .column(OBSERVED)
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(obs, [true, false, false, true]);
        assert_eq!(out.column(GAPS).unwrap().u32().unwrap().get(0), Some(2));
    }

    #[test]
    fn regular_schema_is_named_and_typed() {
        let s = regular_schema().unwrap();
        assert_eq!(
            s.canonical(),
            "kwi.regular.v1: series:u32, platform:str, keyword:str, t:i32, period_start:date, \
             value:f64, observed:bool, gaps:u32"
        );
    }
}
