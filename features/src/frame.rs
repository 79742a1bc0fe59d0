//! Observations and series as Polars frames, and the input checks every pipeline runs first.
//!
//! Pipelines take frames, not `Vec<Observation>`, so the training binary (which reads files) and
//! the server (which reads the store) hand the same layout to the same code. Every check names the
//! offending column in a [`FeatureError::Column`]: a missing column, a wrong type, or a negative
//! volume (with its row number) is reported before any work is done.

use chrono::{Duration, NaiveDate};
use polars::prelude::*;

use crate::error::{FeatureError, Result};
use crate::ingest::{Observation, VALUE_COLUMNS};
use crate::keyword::{Frequency, Keyword, Platform};
use crate::series::Series;

/// Platform column (String, lowercase platform name).
pub const PLATFORM: &str = "platform";
/// Keyword column (String, normalised keyword).
pub const KEYWORD: &str = "keyword";
/// First day of the period (Date).
pub const PERIOD_START: &str = "period_start";
/// Search volume of the observation layout (Float64 or any integer type; never negative).
pub const SEARCH_VOLUME: &str = "search_volume";
/// Dense series id of the regular layout (UInt32), in (platform, keyword) order.
pub const SERIES: &str = "series";
/// Period index within a series (Int32, 0 at the series' first period, consecutive).
pub const T: &str = "t";
/// Regularised search volume (Float64, gaps interpolated).
pub const VALUE: &str = "value";
/// Whether the period was observed (Boolean; false = gap filled by interpolation).
pub const OBSERVED: &str = "observed";
/// Number of gap periods in the whole series (UInt32; a report, not a feature).
pub const GAPS: &str = "gaps";

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// Days since 1970-01-01, the physical value of a Polars `Date`.
pub fn date_to_days(d: NaiveDate) -> i32 {
    (d - epoch()).num_days() as i32
}

/// Inverse of [`date_to_days`].
pub fn days_to_date(days: i32) -> NaiveDate {
    epoch() + Duration::days(i64::from(days))
}

fn column_err(column: &str, reason: impl Into<String>) -> FeatureError {
    FeatureError::Column {
        column: column.to_string(),
        reason: reason.into(),
    }
}

/// Checks that `schema` has `column` with a type `accept` allows; `expected` names it in the error.
pub fn require(
    schema: &Schema,
    column: &str,
    accept: fn(&DataType) -> bool,
    expected: &str,
) -> Result<()> {
    match schema.get(column) {
        None => Err(column_err(
            column,
            format!(
                "missing (the frame has: {})",
                schema
                    .iter_names()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        Some(dt) if !accept(dt) => Err(column_err(
            column,
            format!("has type {dt}, expected {expected}"),
        )),
        Some(_) => Ok(()),
    }
}

/// Accepts any numeric type.
pub fn is_numeric(dt: &DataType) -> bool {
    dt.is_primitive_numeric()
}

/// Accepts String.
pub fn is_string(dt: &DataType) -> bool {
    matches!(dt, DataType::String)
}

/// Accepts Date.
pub fn is_date(dt: &DataType) -> bool {
    matches!(dt, DataType::Date)
}

/// Fails naming `column` if any value is negative (nulls are allowed), with the first bad row.
pub fn check_non_negative(df: &DataFrame, column: &str) -> Result<()> {
    let values = df
        .column(column)
        .and_then(|c| c.cast(&DataType::Float64))
        .map_err(|e| column_err(column, e.to_string()))?;
    let values = values
        .f64()
        .map_err(|e| column_err(column, e.to_string()))?;
    let mut negatives = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_some_and(|v| v < 0.0 || v.is_nan()));
    if let Some((row, v)) = negatives.next() {
        let more = negatives.count();
        return Err(column_err(
            column,
            format!(
                "row {row} has {}{}; volumes must be ≥ 0",
                v.unwrap_or_default(),
                if more > 0 {
                    format!(" ({more} more rows are negative or NaN)")
                } else {
                    String::new()
                }
            ),
        ));
    }
    Ok(())
}

/// Checks an observation frame: `platform`, `keyword` (String), `period_start` (Date) and
/// `search_volume` (numeric, never negative) must be present; other [`VALUE_COLUMNS`] are optional.
pub fn check_observations(df: &DataFrame) -> Result<()> {
    let schema = df.schema();
    require(schema, PLATFORM, is_string, "String")?;
    require(schema, KEYWORD, is_string, "String")?;
    require(schema, PERIOD_START, is_date, "Date")?;
    require(schema, SEARCH_VOLUME, is_numeric, "a number")?;
    check_non_negative(df, SEARCH_VOLUME)
}

/// Observations as a frame: `platform`, `keyword`, `period_start`, then every [`VALUE_COLUMNS`]
/// column (Float64, null where the observation had no value).
pub fn observations_frame(rows: &[Observation]) -> Result<DataFrame> {
    let platform: Vec<&str> = rows.iter().map(|o| o.platform.as_str()).collect();
    let keyword: Vec<&str> = rows.iter().map(|o| o.keyword.as_str()).collect();
    let days: Vec<i32> = rows.iter().map(|o| date_to_days(o.period_start)).collect();
    let mut columns = vec![
        Column::new(PLATFORM.into(), platform),
        Column::new(KEYWORD.into(), keyword),
        Column::new(PERIOD_START.into(), days).cast(&DataType::Date)?,
    ];
    for (i, name) in VALUE_COLUMNS.iter().enumerate() {
        let v: Vec<Option<f64>> = rows.iter().map(|o| o.values[i]).collect();
        columns.push(Column::new((*name).into(), v));
    }
    Ok(DataFrame::new_infer_height(columns)?)
}

/// Regular series as a frame in the layout of [`crate::regular::regular_frame`]
/// (`series, platform, keyword, t, period_start, value, observed, gaps`), series in input order.
pub fn series_frame(series: &[Series]) -> Result<DataFrame> {
    let n: usize = series.iter().map(|s| s.values.len()).sum();
    let mut id = Vec::with_capacity(n);
    let mut platform = Vec::with_capacity(n);
    let mut keyword = Vec::with_capacity(n);
    let mut t = Vec::with_capacity(n);
    let mut day = Vec::with_capacity(n);
    let mut value = Vec::with_capacity(n);
    let mut observed = Vec::with_capacity(n);
    let mut gaps = Vec::with_capacity(n);
    for (i, s) in series.iter().enumerate() {
        for (j, v) in s.values.iter().enumerate() {
            id.push(i as u32);
            platform.push(s.platform.as_str());
            keyword.push(s.keyword.as_str());
            t.push(j as i32);
            day.push(date_to_days(s.period(j)));
            value.push(*v);
            observed.push(s.observed[j]);
            gaps.push(s.gaps as u32);
        }
    }
    Ok(DataFrame::new_infer_height(vec![
        Column::new(SERIES.into(), id),
        Column::new(PLATFORM.into(), platform),
        Column::new(KEYWORD.into(), keyword),
        Column::new(T.into(), t),
        Column::new(PERIOD_START.into(), day).cast(&DataType::Date)?,
        Column::new(VALUE.into(), value),
        Column::new(OBSERVED.into(), observed),
        Column::new(GAPS.into(), gaps),
    ])?)
}

/// Inverse of [`series_frame`]: a regular frame (sorted by `series, t`) back to [`Series`]
/// (labels are `platform/keyword`), e.g. to cut model windows ([`crate::windows`]).
pub fn frame_series(df: &DataFrame, freq: Frequency) -> Result<Vec<Series>> {
    let schema = df.schema();
    require(schema, SERIES, |d| d.is_integer(), "an integer")?;
    require(schema, PLATFORM, is_string, "String")?;
    require(schema, KEYWORD, is_string, "String")?;
    require(schema, PERIOD_START, is_date, "Date")?;
    require(schema, VALUE, is_numeric, "a number")?;
    require(
        schema,
        OBSERVED,
        |d| matches!(d, DataType::Boolean),
        "Boolean",
    )?;
    let df = df.sort([SERIES, T], SortMultipleOptions::default())?;
    let ids = df.column(SERIES)?.cast(&DataType::UInt32)?;
    let ids = ids.u32()?;
    let platforms = df.column(PLATFORM)?.str()?;
    let keywords = df.column(KEYWORD)?.str()?;
    let days = df.column(PERIOD_START)?.cast(&DataType::Int32)?;
    let days = days.i32()?;
    let values = df.column(VALUE)?.cast(&DataType::Float64)?;
    let values = values.f64()?;
    let observed = df.column(OBSERVED)?.bool()?;
    let mut out: Vec<Series> = Vec::new();
    let mut current: Option<u32> = None;
    for row in 0..df.height() {
        let id = ids.get(row).ok_or_else(|| column_err(SERIES, "null id"))?;
        if current != Some(id) {
            current = Some(id);
            let p = platforms.get(row).unwrap_or_default();
            let platform: Platform = p.parse().map_err(|e: crate::keyword::PlatformError| {
                column_err(PLATFORM, format!("row {row}: {e}"))
            })?;
            let keyword = Keyword::parse(keywords.get(row).unwrap_or_default())
                .map_err(|e| column_err(KEYWORD, format!("row {row}: {e}")))?;
            let start = days
                .get(row)
                .map(days_to_date)
                .ok_or_else(|| column_err(PERIOD_START, format!("row {row}: null")))?;
            out.push(Series {
                label: format!("{platform}/{keyword}"),
                platform,
                keyword,
                start,
                freq,
                values: Vec::new(),
                observed: Vec::new(),
                gaps: 0,
            });
        }
        let s = out.last_mut().expect("pushed above");
        let v = values
            .get(row)
            .ok_or_else(|| column_err(VALUE, format!("row {row}: null")))?;
        let o = observed.get(row).unwrap_or(false);
        s.values.push(v);
        s.observed.push(o);
        s.gaps += usize::from(!o);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs_frame() -> DataFrame {
        df![
            PLATFORM => ["etsy", "etsy"],
            KEYWORD => ["tarot", "tarot"],
            SEARCH_VOLUME => [10.0, 12.0],
        ]
        .unwrap()
        .lazy()
        .with_column(lit(19_000).cast(DataType::Date).alias(PERIOD_START))
        .collect()
        .unwrap()
    }

    fn expect_column_error(r: Result<()>, column: &str, needle: &str) {
        match r {
            Err(FeatureError::Column { column: c, reason }) => {
                assert_eq!(c, column);
                assert!(reason.contains(needle), "{reason}");
            }
            other => panic!("expected a column error on {column}, got {other:?}"),
        }
    }

    #[test]
    fn input_checks_name_the_column() {
        assert!(check_observations(&obs_frame()).is_ok());

        let missing = obs_frame().drop(SEARCH_VOLUME).unwrap();
        expect_column_error(check_observations(&missing), SEARCH_VOLUME, "missing");

        let mut wrong = obs_frame();
        wrong
            .with_column(Column::new(SEARCH_VOLUME.into(), ["10", "x"]))
            .unwrap();
        expect_column_error(check_observations(&wrong), SEARCH_VOLUME, "type str");

        let mut wrong_date = obs_frame();
        wrong_date
            .with_column(Column::new(
                PERIOD_START.into(),
                ["2024-01-01", "2024-01-08"],
            ))
            .unwrap();
        expect_column_error(
            check_observations(&wrong_date),
            PERIOD_START,
            "expected Date",
        );

        let mut negative = obs_frame();
        negative
            .with_column(Column::new(SEARCH_VOLUME.into(), [3.0, -1.0]))
            .unwrap();
        expect_column_error(check_observations(&negative), SEARCH_VOLUME, "row 1 has -1");
    }

    #[test]
    fn dates_round_trip() {
        let d = NaiveDate::from_ymd_opt(2018, 12, 30).unwrap();
        assert_eq!(days_to_date(date_to_days(d)), d);
        assert_eq!(date_to_days(epoch()), 0);
    }
}
