//! Edge types: a keyword, a platform and a sampling frequency are parsed once, at the edge, and the
//! rest of the code takes these newtypes and never re-checks them.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Longest keyword accepted, in characters (Unicode code points), both as given and once
/// normalised: the raw limit is the one a client can check against the API schema's `maxLength`,
/// the normalised one holds because NFKC can lengthen a text (`"ﷺ"` becomes 18 characters).
pub const MAX_KEYWORD_CHARS: usize = 200;

/// A normalised keyword: Unicode NFKC, trimmed, lowercased, inner whitespace collapsed to one space.
///
/// Two spellings that a shopper would consider the same search (`"  Tarot  Cards"`, `"tarot cards"`,
/// full-width `"ｔａｒｏｔ cards"`) become the same `Keyword`, so they share one history.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Keyword(String);

/// Why a keyword was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    /// Nothing left after trimming.
    #[error("keyword is empty")]
    Empty,
    /// Longer than [`MAX_KEYWORD_CHARS`].
    #[error("keyword is {0} characters long; the limit is {MAX_KEYWORD_CHARS}")]
    TooLong(usize),
    /// Contains a control character (tab, newline, NUL, ...).
    #[error("keyword contains a control character")]
    Control,
}

impl Keyword {
    /// Normalises and validates a raw keyword.
    ///
    /// ```
    /// use kwi_features::Keyword;
    /// assert_eq!(Keyword::parse("  Tarot\u{3000}CARDS ").unwrap().as_str(), "tarot cards");
    /// assert!(Keyword::parse("   ").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, KeywordError> {
        let raw_chars = raw.chars().count();
        if raw_chars > MAX_KEYWORD_CHARS {
            return Err(KeywordError::TooLong(raw_chars));
        }
        let nfkc: String = raw.nfkc().collect();
        let lowered = nfkc.to_lowercase();
        let mut out = String::with_capacity(lowered.len());
        for word in lowered.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
        if out.is_empty() {
            return Err(KeywordError::Empty);
        }
        if out.chars().any(char::is_control) {
            return Err(KeywordError::Control);
        }
        let chars = out.chars().count();
        if chars > MAX_KEYWORD_CHARS {
            return Err(KeywordError::TooLong(chars));
        }
        Ok(Self(out))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Keyword {
    type Error = KeywordError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Keyword> for String {
    fn from(value: Keyword) -> Self {
        value.0
    }
}

/// Where a keyword's demand is observed. Adding a platform means a variant here and a row in the
/// `platforms` table (a migration); the database refuses platforms it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Amazon marketplace search.
    Amazon,
    /// Etsy marketplace search.
    Etsy,
    /// eBay marketplace search.
    Ebay,
    /// Web-search interest (Google Trends-like relative volume).
    Google,
    /// Reference forecasting series that are not marketplace keywords (e.g. M4 Weekly), kept apart so
    /// they never mix with real keywords.
    Benchmark,
}

impl Platform {
    /// Every platform, in a stable order.
    pub const ALL: [Platform; 5] = [
        Platform::Amazon,
        Platform::Etsy,
        Platform::Ebay,
        Platform::Google,
        Platform::Benchmark,
    ];

    /// The lowercase name used in URLs, files and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Amazon => "amazon",
            Platform::Etsy => "etsy",
            Platform::Ebay => "ebay",
            Platform::Google => "google",
            Platform::Benchmark => "benchmark",
        }
    }
}

/// Why a platform name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform `{0}`; expected one of amazon, etsy, ebay, google, benchmark")]
pub struct PlatformError(pub String);

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| PlatformError(s.to_string()))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sampling frequency of a keyword's series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// One observation per day.
    Daily,
    /// One observation per week (the default: marketplaces and Google Trends report weekly).
    #[default]
    Weekly,
    /// One observation per calendar month, dated the 1st (Keyword Planner, Jungle Scout and
    /// Helium 10 report monthly search volume).
    Monthly,
}

/// Month number counted from year 0 (`year·12 + month − 1`): consecutive months differ by one.
fn month_number(d: NaiveDate) -> i64 {
    i64::from(d.year()) * 12 + i64::from(d.month0())
}

impl Frequency {
    /// Every frequency, finest first.
    pub const ALL: [Frequency; 3] = [Frequency::Daily, Frequency::Weekly, Frequency::Monthly];

    /// Lower-case name (`daily`, `weekly`, `monthly`), as the API and CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
        }
    }

    /// Typical days between two consecutive periods (a month counts 30.44), for scales such as
    /// "in how many weeks"; dates are computed with [`Frequency::advance`], never with this.
    pub fn mean_days(self) -> f64 {
        match self {
            Frequency::Daily => 1.0,
            Frequency::Weekly => 7.0,
            Frequency::Monthly => 365.25 / 12.0,
        }
    }

    /// Seasonal period in observations (a year).
    pub fn season(self) -> usize {
        match self {
            Frequency::Daily => 365,
            Frequency::Weekly => 52,
            Frequency::Monthly => 12,
        }
    }

    /// The frequency a keyword's dates show, `None` with fewer than two distinct dates: the
    /// smallest gap between consecutive dates of 1 day is daily; dates all on the 1st at least 28
    /// days apart are monthly; anything else is weekly.
    pub fn of_dates(dates: impl IntoIterator<Item = NaiveDate>) -> Option<Frequency> {
        let mut d: Vec<NaiveDate> = dates.into_iter().collect();
        d.sort_unstable();
        d.dedup();
        let gap = d.windows(2).map(|w| (w[1] - w[0]).num_days()).min()?;
        Some(if gap <= 1 {
            Frequency::Daily
        } else if gap >= 28 && d.iter().all(|x| x.day() == 1) {
            Frequency::Monthly
        } else {
            Frequency::Weekly
        })
    }

    /// The first period of a grid whose first observation falls on `d`: `d` itself for daily and
    /// weekly grids (they start at the first observation), the 1st of `d`'s month for monthly.
    pub fn grid_start(self, d: NaiveDate) -> NaiveDate {
        match self {
            Frequency::Daily | Frequency::Weekly => d,
            Frequency::Monthly => d.with_day(1).expect("day 1 exists"),
        }
    }

    /// Index of the period holding `d` on the grid starting at `start` (negative before it).
    pub fn index(self, start: NaiveDate, d: NaiveDate) -> i64 {
        match self {
            Frequency::Daily => (d - start).num_days(),
            Frequency::Weekly => (d - start).num_days().div_euclid(7),
            Frequency::Monthly => month_number(d) - month_number(start),
        }
    }

    /// Start of period `n` of the grid starting at `start` (calendar months for monthly).
    pub fn advance(self, start: NaiveDate, n: i64) -> NaiveDate {
        match self {
            Frequency::Daily => start + Duration::days(n),
            Frequency::Weekly => start + Duration::days(7 * n),
            Frequency::Monthly => {
                let m = month_number(start) + n;
                NaiveDate::from_ymd_opt(m.div_euclid(12) as i32, m.rem_euclid(12) as u32 + 1, 1)
                    .expect("a month in chrono's range")
            }
        }
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Frequency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "daily" | "day" | "d" => Ok(Frequency::Daily),
            "weekly" | "week" | "w" => Ok(Frequency::Weekly),
            "monthly" | "month" | "m" | "ms" => Ok(Frequency::Monthly),
            other => Err(format!(
                "unknown frequency `{other}`; expected daily, weekly or monthly"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Result<&str, KeywordError>) {
        assert_eq!(
            Keyword::parse(raw).map(|k| k.0),
            expected.map(str::to_string),
            "input {raw:?}"
        );
    }

    #[test]
    fn keyword_normalisation() {
        check("Tarot Cards", Ok("tarot cards"));
        check("  tarot\t\tcards \n", Ok("tarot cards"));
        check("ｔａｒｏｔ", Ok("tarot"));
        check("Ⅻ", Ok("xii"));
        check("CAFÉ", Ok("café"));
        check("cafe\u{301}", Ok("café"));
        check("", Err(KeywordError::Empty));
        check(" \u{3000} ", Err(KeywordError::Empty));
        check("a\u{0}b", Err(KeywordError::Control));
        check(&"x".repeat(201), Err(KeywordError::TooLong(201)));
        // Over the limit as given, under it once whitespace is collapsed: still refused, as the
        // API schema's maxLength (which counts the text as sent) says.
        let padded = format!("tarot{}cards", " ".repeat(200));
        check(&padded, Err(KeywordError::TooLong(210)));
        // Under the limit as given, over it once NFKC expands a ligature (18 characters each).
        check(&"\u{FDFA}".repeat(12), Err(KeywordError::TooLong(12 * 18)));
        check(&"x".repeat(200), Ok(&"x".repeat(200)));
    }

    #[test]
    fn monthly_grid_is_calendar_months() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let f = Frequency::Monthly;
        assert_eq!(f.grid_start(d(2018, 2, 17)), d(2018, 2, 1));
        assert_eq!(f.index(d(2017, 11, 1), d(2018, 2, 28)), 3);
        assert_eq!(f.index(d(2018, 2, 1), d(2017, 12, 31)), -2);
        assert_eq!(f.advance(d(2017, 11, 1), 3), d(2018, 2, 1));
        assert_eq!(f.advance(d(2018, 1, 1), -1), d(2017, 12, 1));
        for n in -30..30 {
            assert_eq!(f.index(d(2016, 12, 1), f.advance(d(2016, 12, 1), n)), n);
        }
        assert_eq!(Frequency::Weekly.index(d(2020, 1, 5), d(2020, 1, 11)), 0);
        assert_eq!(Frequency::Weekly.index(d(2020, 1, 5), d(2020, 1, 12)), 1);
        assert_eq!(Frequency::Weekly.advance(d(2020, 1, 5), 2), d(2020, 1, 19));
        assert_eq!("MS".parse::<Frequency>(), Ok(Frequency::Monthly));
        assert_eq!(Frequency::Monthly.season(), 12);
        for f in Frequency::ALL {
            assert_eq!(f.as_str().parse::<Frequency>(), Ok(f));
        }
        assert!(
            "yearly"
                .parse::<Frequency>()
                .unwrap_err()
                .contains("monthly")
        );
    }

    #[test]
    fn platform_parsing() {
        assert_eq!("Etsy".parse::<Platform>(), Ok(Platform::Etsy));
        assert_eq!(" google ".parse::<Platform>(), Ok(Platform::Google));
        assert!("walmart".parse::<Platform>().is_err());
        for p in Platform::ALL {
            assert_eq!(p.as_str().parse::<Platform>(), Ok(p));
        }
    }
}
