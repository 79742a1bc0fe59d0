//! Forecast request parameters, parsed once at the edge (HTTP query or body, `kwi-train` flags and
//! TOML, the insights job) so inner code takes [`Horizon`] and [`Levels`] and never re-checks them.

use std::fmt;

/// Longest horizon served or trained, in periods (two years of weeks).
pub const MAX_HORIZON: usize = 104;
/// Horizon when none is given (a quarter of weeks; the M4 Weekly horizon).
pub const DEFAULT_HORIZON: usize = 13;
/// Most interval levels in one request.
pub const MAX_LEVELS: usize = 10;
/// Interval levels when none are given (percent).
pub const DEFAULT_LEVELS: [f64; 2] = [80.0, 95.0];

/// Why a horizon or a level list was rejected (the message names the value and the rule).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// Not a whole number in `1..=MAX_HORIZON`.
    #[error("`{0}` is not a whole number of periods in 1..={MAX_HORIZON}")]
    Horizon(String),
    /// A level is not a number.
    #[error("`{0}` is not a number")]
    LevelNotANumber(String),
    /// A level outside (0, 100).
    #[error("{0} is outside (0, 100): levels are coverage percentages")]
    LevelRange(f64),
    /// None, or more than [`MAX_LEVELS`].
    #[error("give 1 to {MAX_LEVELS} levels, e.g. 80,95; got {0}")]
    LevelCount(usize),
}

/// Steps to forecast, in `1..=MAX_HORIZON`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Horizon(usize);

impl Horizon {
    /// A horizon of `h` periods, if `h` is in `1..=MAX_HORIZON`.
    ///
    /// ```
    /// use kwi_features::Horizon;
    /// assert_eq!(Horizon::new(13).unwrap().get(), 13);
    /// assert!(Horizon::new(0).is_err() && Horizon::new(105).is_err());
    /// ```
    pub fn new(h: usize) -> Result<Self, ParamError> {
        if (1..=MAX_HORIZON).contains(&h) {
            Ok(Self(h))
        } else {
            Err(ParamError::Horizon(h.to_string()))
        }
    }

    /// Parses a whole number of periods (surrounding spaces allowed).
    pub fn parse(raw: &str) -> Result<Self, ParamError> {
        raw.trim()
            .parse::<usize>()
            .ok()
            .filter(|h| (1..=MAX_HORIZON).contains(h))
            .map(Self)
            .ok_or_else(|| ParamError::Horizon(raw.to_string()))
    }

    /// The number of periods.
    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for Horizon {
    fn default() -> Self {
        Self(DEFAULT_HORIZON)
    }
}

impl fmt::Display for Horizon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Interval coverages in percent: 1 to [`MAX_LEVELS`] values in (0, 100), sorted, without
/// duplicates. Whether a model is calibrated for them is the model's question, not this type's.
#[derive(Debug, Clone, PartialEq)]
pub struct Levels(Vec<f64>);

impl Levels {
    /// Checks, sorts and de-duplicates `values`.
    ///
    /// ```
    /// use kwi_features::Levels;
    /// assert_eq!(Levels::new(vec![95.0, 80.0, 95.0]).unwrap().as_slice(), &[80.0, 95.0]);
    /// assert!(Levels::new(vec![100.0]).is_err() && Levels::new(vec![]).is_err());
    /// ```
    pub fn new(values: Vec<f64>) -> Result<Self, ParamError> {
        if let Some(v) = values.iter().find(|v| !(**v > 0.0 && **v < 100.0)) {
            return Err(ParamError::LevelRange(*v));
        }
        if values.is_empty() || values.len() > MAX_LEVELS {
            return Err(ParamError::LevelCount(values.len()));
        }
        let mut out = values;
        out.sort_by(f64::total_cmp);
        out.dedup();
        Ok(Self(out))
    }

    /// Parses comma-separated percentages (`80,95`; spaces and empty parts ignored).
    pub fn parse(raw: &str) -> Result<Self, ParamError> {
        let values = raw
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<f64>()
                    .map_err(|_| ParamError::LevelNotANumber(p.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(values)
    }

    /// The levels, ascending.
    pub fn as_slice(&self) -> &[f64] {
        &self.0
    }
}

impl Default for Levels {
    fn default() -> Self {
        Self(DEFAULT_LEVELS.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn horizon(raw: &str, expected: Result<usize, ParamError>) {
        assert_eq!(Horizon::parse(raw).map(Horizon::get), expected, "{raw:?}");
    }

    fn levels(raw: &str, expected: Result<&[f64], ParamError>) {
        let got = Levels::parse(raw);
        assert_eq!(
            got.as_ref().map(Levels::as_slice),
            expected.as_ref().copied(),
            "{raw:?}"
        );
    }

    #[test]
    fn horizons_are_whole_periods_in_range() {
        horizon("13", Ok(13));
        horizon(" 1 ", Ok(1));
        horizon("104", Ok(104));
        horizon("0", Err(ParamError::Horizon("0".into())));
        horizon("105", Err(ParamError::Horizon("105".into())));
        horizon("-1", Err(ParamError::Horizon("-1".into())));
        horizon("1.5", Err(ParamError::Horizon("1.5".into())));
        horizon("", Err(ParamError::Horizon("".into())));
        assert_eq!(Horizon::default().get(), DEFAULT_HORIZON);
    }

    #[test]
    fn levels_are_sorted_distinct_percentages() {
        levels("80,95", Ok(&[80.0, 95.0]));
        levels(" 95 , 80,,95 ", Ok(&[80.0, 95.0]));
        levels("50.5", Ok(&[50.5]));
        levels("x", Err(ParamError::LevelNotANumber("x".into())));
        levels("0", Err(ParamError::LevelRange(0.0)));
        levels("100", Err(ParamError::LevelRange(100.0)));
        assert!(matches!(Levels::parse("NaN"), Err(ParamError::LevelRange(v)) if v.is_nan()));
        levels("", Err(ParamError::LevelCount(0)));
        levels("1,2,3,4,5,6,7,8,9,10,11", Err(ParamError::LevelCount(11)));
        assert_eq!(Levels::default().as_slice(), &DEFAULT_LEVELS);
    }
}
