//! Edge types: a keyword, a platform and a sampling frequency are parsed once, at the edge, and the
//! rest of the code takes these newtypes and never re-checks them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Longest keyword accepted, in characters (after normalisation).
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
}

impl Frequency {
    /// Days between two consecutive periods.
    pub fn days(self) -> i64 {
        match self {
            Frequency::Daily => 1,
            Frequency::Weekly => 7,
        }
    }

    /// Seasonal period in observations (a year).
    pub fn season(self) -> usize {
        match self {
            Frequency::Daily => 365,
            Frequency::Weekly => 52,
        }
    }
}

impl FromStr for Frequency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "daily" | "day" | "d" => Ok(Frequency::Daily),
            "weekly" | "week" | "w" => Ok(Frequency::Weekly),
            other => Err(format!(
                "unknown frequency `{other}`; expected daily or weekly"
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
        check(&"x".repeat(200), Ok(&"x".repeat(200)));
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
