//! Model inputs: a tabular frame for Linfa (one row per series and origin, a target `horizon`
//! periods ahead) and its dense row-major matrix, plus model windows cut from a regular frame.
//!
//! The target is the only place future values enter: `target` is `value` at `t + horizon` of the
//! same series, `target_scaled` the same divided by the row's `scale` (a model fits scaled targets
//! and multiplies its output by `scale`). Rows without a target (the last `horizon` periods of a
//! series) or with a null in a selected feature (the start of a series, before the longest window
//! fills) are dropped.

use polars::prelude::*;

use crate::demand::{DemandConfig, demand_features, feature_names};
use crate::error::{FeatureError, Result};
use crate::frame::{SERIES, T, VALUE, frame_series};
use crate::keyword::Frequency;
use crate::schema::{FeatureSchema, TABULAR_SCHEMA_NAME, TABULAR_SCHEMA_VERSION, from_polars};
use crate::windows::{WindowSpec, Windows, training_windows};

/// Target column: value `horizon` periods after the row's origin.
pub const TARGET: &str = "target";
/// Target divided by the row's `scale`.
pub const TARGET_SCALED: &str = "target_scaled";

/// Adds `target`/`target_scaled` to demand features (sorted by `series, t`) and keeps the rows
/// where the target and every column of `features` are present. Output: `series`, `t`, the
/// selected features (except `scale`), `scale`, `target`, `target_scaled`.
pub fn tabular_frame(demand: LazyFrame, features: &[String], horizon: usize) -> Result<LazyFrame> {
    if horizon == 0 {
        return Err(FeatureError::Options("horizon must be ≥ 1".into()));
    }
    let h = -(horizon as i64);
    let same_series = col(SERIES).shift(lit(h)).eq(col(SERIES));
    let target = when(same_series)
        .then(col(VALUE).shift(lit(h)))
        .otherwise(lit(NULL).cast(DataType::Float64));
    let mut select = vec![col(SERIES), col(T)];
    // `scale` is always carried (after the features); do not select it twice.
    select.extend(
        features
            .iter()
            .filter(|f| f.as_str() != "scale")
            .map(|f| col(f.as_str())),
    );
    select.extend([col("scale"), col(TARGET), col(TARGET_SCALED)]);
    let mut keep = col(TARGET).is_not_null();
    for f in features {
        keep = keep.and(col(f.as_str()).is_not_null());
    }
    Ok(demand
        .with_column(target.alias(TARGET))
        .with_column((col(TARGET) / col("scale")).alias(TARGET_SCALED))
        .filter(keep)
        .select(select))
}

/// A dense design matrix for Linfa: `x` is `n × columns.len()` row-major, `y` the scaled target.
#[derive(Debug, Clone, PartialEq)]
pub struct Tabular {
    /// Feature names, the columns of `x`.
    pub columns: Vec<String>,
    /// Row-major features.
    pub x: Vec<f64>,
    /// Scaled targets.
    pub y: Vec<f64>,
    /// Per-row scale (multiply predictions by it).
    pub scale: Vec<f64>,
    /// `(series, t)` of each row.
    pub origin: Vec<(u32, i32)>,
}

/// Copies a [`tabular_frame`] result into a [`Tabular`] matrix (nulls are impossible there: those
/// rows were dropped).
pub fn to_matrix(df: &DataFrame, columns: &[String]) -> Result<Tabular> {
    let n = df.height();
    let p = columns.len();
    let mut x = vec![0.0; n * p];
    for (j, c) in columns.iter().enumerate() {
        let s = df.column(c)?.cast(&DataType::Float64)?;
        for (i, v) in s.f64()?.iter().enumerate() {
            x[i * p + j] = v.ok_or_else(|| FeatureError::Column {
                column: c.clone(),
                reason: format!("row {i} is null"),
            })?;
        }
    }
    let f64s = |c: &str| -> Result<Vec<f64>> {
        let s = df.column(c)?.cast(&DataType::Float64)?;
        Ok(s.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    };
    let series = df.column(SERIES)?.cast(&DataType::UInt32)?;
    let ts = df.column(T)?.cast(&DataType::Int32)?;
    let origin = series
        .u32()?
        .iter()
        .zip(ts.i32()?.iter())
        .map(|(s, t)| (s.unwrap_or(0), t.unwrap_or(0)))
        .collect();
    Ok(Tabular {
        columns: columns.to_vec(),
        x,
        y: f64s(TARGET_SCALED)?,
        scale: f64s("scale")?,
        origin,
    })
}

/// The versioned schema of [`tabular_frame`] for the demand features of `cfg` (all of them).
pub fn tabular_schema(cfg: &DemandConfig, horizon: usize) -> Result<FeatureSchema> {
    let empty = crate::frame::series_frame(&[])?;
    let lf = tabular_frame(
        demand_features(empty.lazy(), cfg)?,
        &feature_names(cfg),
        horizon,
    )?;
    let mut schema = lf.clone().collect_schema()?.as_ref().clone();
    // The horizon is part of the meaning of `target`; record it in the schema text.
    schema.rename(TARGET, format!("{TARGET}_h{horizon}").into());
    Ok(from_polars(
        TABULAR_SCHEMA_NAME,
        TABULAR_SCHEMA_VERSION,
        &schema,
    ))
}

/// Training windows ([`crate::windows::training_windows`]) straight from a regular frame.
pub fn frame_windows(
    regular: &DataFrame,
    freq: Frequency,
    spec: WindowSpec,
    max_per_series: usize,
    min_input: usize,
) -> Result<Windows> {
    let series = frame_series(regular, freq)?;
    let values: Vec<&[f64]> = series.iter().map(|s| s.values.as_slice()).collect();
    Ok(training_windows(&values, spec, max_per_series, min_input))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::observations_frame;
    use crate::ingest::{IngestOptions, read_observations};
    use crate::regular::regular_frame;

    fn gtrends_regular() -> DataFrame {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/samples/gtrends_pt_weekly_topics.csv"
        );
        let rows = read_observations(path.as_ref(), &IngestOptions::default())
            .unwrap()
            .rows;
        regular_frame(&observations_frame(&rows).unwrap(), Frequency::Weekly)
            .unwrap()
            .collect()
            .unwrap()
    }

    #[test]
    fn tabular_target_is_the_value_h_periods_ahead() {
        let regular = gtrends_regular();
        let cfg = DemandConfig::weekly();
        let cols = vec!["lag_1".to_string(), "roll_mean_13".into(), "acf_52".into()];
        let demand = demand_features(regular.clone().lazy(), &cfg).unwrap();
        let df = tabular_frame(demand, &cols, 13).unwrap().collect().unwrap();
        // acf_52 starts at t = 103, targets end 13 before each series' end: 679 − 103 − 13 rows.
        assert_eq!(df.height(), 32 * (679 - 103 - 13));
        let m = to_matrix(&df, &cols).unwrap();
        assert_eq!(m.x.len(), df.height() * 3);
        let values = regular.column(VALUE).unwrap().f64().unwrap();
        for k in [0, 1000, df.height() - 1] {
            let (s, t) = m.origin[k];
            let row = s as usize * 679 + t as usize;
            let expected = values.get(row + 13).unwrap() / m.scale[k];
            assert!((m.y[k] - expected).abs() < 1e-12);
            // lag_1 column (Float32) is the previous value.
            assert!((m.x[k * 3] - values.get(row - 1).unwrap()).abs() < 1e-3 * m.scale[k]);
        }
        assert!(
            tabular_schema(&cfg, 13)
                .unwrap()
                .canonical()
                .contains("target_h13:f64")
        );
        assert_ne!(
            tabular_schema(&cfg, 13).unwrap().hash(),
            tabular_schema(&cfg, 4).unwrap().hash()
        );
    }

    #[test]
    fn windows_from_real_frames_round_trip() {
        let regular = gtrends_regular();
        let spec = WindowSpec {
            lookback: 52,
            horizon: 13,
        };
        let w = frame_windows(&regular, Frequency::Weekly, spec, 20, 52).unwrap();
        assert_eq!(w.len(), 32 * 20);
        let values = regular.column(VALUE).unwrap().f64().unwrap();
        for k in (0..w.len()).step_by(37) {
            let (s, o) = w.origin[k];
            for j in 0..52 {
                let v = values.get(s * 679 + o - 52 + j).unwrap();
                assert!((f64::from(w.x[k * 52 + j]) * w.scale[k] - v).abs() < 1e-4 * v.max(1.0));
            }
            for j in 0..13 {
                let v = values.get(s * 679 + o + j).unwrap();
                assert!((f64::from(w.y[k * 13 + j]) * w.scale[k] - v).abs() < 1e-4 * v.max(1.0));
            }
        }
    }
}
