//! Etsy Open API v3: `GET /v3/application/listings/active?keywords=&limit=&offset=`
//! (findAllListingsActive), header `x-api-key: keystring:shared_secret`.
//!
//! One observation per (keyword, period): `listing_count` = the answer's `count` (listings
//! competing for the keyword); `price_median`/`price_p25`/`price_p75` from the returned listings'
//! prices (`amount / divisor`) in their most common currency, computed by the feature layer's
//! competition pipeline ([`kwi_features::competition::competition_features`]). `views` is not
//! used (0 there means "not tabulated yet", not zero views).
//!
//! Limits (Etsy's defaults): 10 requests/s and 10,000 per rolling day; answers carry
//! `x-limit-per-second`, `x-remaining-this-second`, `x-limit-per-day`, `x-remaining-today`. A
//! per-second 429 (`{"error":"Exceeded per second rate limit"}`, headers may be absent) is retried;
//! the daily 429 (`retry-after: 86400`) reschedules the job.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kwi_features::ingest::Observation;
use kwi_features::{Keyword, Platform};
use kwi_store::{Job, Source, Store};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;

use super::fetch::{PaceHint, SourceRules};
use super::observe::{Paging, Priced, market_observation, parse_json};
use super::{
    Collected, Fetcher, JobError, RetryPolicy, SourceClient, Stats, body_sample, credential_id,
};

/// Largest `offset` Etsy accepts.
pub const MAX_OFFSET: u32 = 12_000;
/// Largest `limit`.
pub const MAX_LIMIT: u32 = 100;
/// The `source` of the observations written.
pub const OBSERVATION_SOURCE: &str = "etsy-api";
/// Etsy's default daily limit (`KWI_ETSY_PER_DAY`).
pub const DEFAULT_PER_DAY: i64 = 10_000;

/// Etsy settings (`KWI_ETSY_*`).
#[derive(Debug, Clone)]
pub struct EtsyConfig {
    /// Base URL (`https://openapi.etsy.com`).
    pub base_url: reqwest::Url,
    /// `keystring:shared_secret`.
    pub api_key: String,
    /// Requests per second (Etsy's default 10).
    pub per_second: f64,
    /// Requests per day (Etsy's default 10,000).
    pub per_day: i64,
    /// Pages read per keyword (each `limit` listings).
    pub pages: u32,
    /// Listings per page, 1..=100.
    pub limit: u32,
}

impl EtsyConfig {
    /// Checks the settings; the error names the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        match self.api_key.split_once(':') {
            Some((k, s)) if !k.trim().is_empty() && !s.trim().is_empty() => {}
            _ => anyhow::bail!(
                "KWI_ETSY_API_KEY must be `keystring:shared_secret` (Etsy answers 403 \"Shared secret is required\" to a keystring alone)"
            ),
        }
        anyhow::ensure!(
            (1..=MAX_LIMIT).contains(&self.limit),
            "the Etsy page size must be in 1..={MAX_LIMIT}; got {}",
            self.limit
        );
        anyhow::ensure!(self.pages >= 1, "at least one page per keyword");
        anyhow::ensure!(
            self.per_second > 0.0 && self.per_day > 0,
            "Etsy rate limits must be positive"
        );
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct Page {
    count: u64,
    results: Vec<EtsyListing>,
}

#[derive(Debug, Deserialize)]
struct EtsyListing {
    #[allow(dead_code)] // read so a listing without an id is refused as malformed
    listing_id: u64,
    #[serde(default)]
    shop_id: Option<u64>,
    #[serde(default)]
    price: Option<Money>,
}

#[derive(Debug, Deserialize)]
struct Money {
    amount: i64,
    divisor: i64,
    currency_code: String,
}

/// The Etsy client.
pub struct Etsy {
    config: EtsyConfig,
    api_key: HeaderValue,
    fetcher: Fetcher,
}

fn hint(h: &HeaderMap) -> PaceHint {
    let num = |name: &str| h.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    PaceHint {
        per_second: num("x-limit-per-second"),
        remaining_this_second: num("x-remaining-this-second").map(|v| v.max(0.0) as u64),
    }
}

/// Etsy's daily 429 says when the day resets (`retry-after: 86400`); the per-second one at most
/// a second or two.
fn daily_quota(h: &HeaderMap, _body: &[u8]) -> Option<Duration> {
    let after: u64 = h.get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    (after > 60).then(|| Duration::from_secs(after))
}

impl Etsy {
    /// A client; the configuration is checked first.
    pub fn new(
        config: EtsyConfig,
        store: Arc<dyn Store>,
        policy: RetryPolicy,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let mut api_key = HeaderValue::from_str(&config.api_key)
            .map_err(|_| anyhow::anyhow!("KWI_ETSY_API_KEY holds characters a header cannot"))?;
        api_key.set_sensitive(true);
        let rules = SourceRules {
            source: Source::Etsy,
            per_day: config.per_day,
            hint,
            daily_quota,
        };
        let fetcher = Fetcher::new(
            rules,
            credential_id(&config.api_key),
            config.per_second,
            store,
            policy,
            stats,
        )?;
        Ok(Self {
            config,
            api_key,
            fetcher,
        })
    }

    fn paging(&self) -> Paging<EtsyListing> {
        Paging {
            source: Source::Etsy,
            pages: self.config.pages,
            limit: self.config.limit,
            max_offset: MAX_OFFSET,
            parse: |b| parse_page(b).map(|p| (p.count, p.results)),
            observe: observation,
        }
    }

    fn page_url(&self, keyword: &Keyword, offset: u32) -> Result<reqwest::Url, JobError> {
        let mut url = self
            .config
            .base_url
            .join("v3/application/listings/active")
            .map_err(|e| JobError::Refused(format!("KWI_ETSY_BASE_URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("keywords", keyword.as_str())
            .append_pair("limit", &self.config.limit.to_string())
            .append_pair("offset", &offset.to_string());
        Ok(url)
    }
}

/// Reads one page; the error says where in the body it went wrong.
fn parse_page(body: &[u8]) -> Result<Page, String> {
    let page: Page = parse_json(body)?;
    for (i, l) in page.results.iter().enumerate() {
        if let Some(m) = &l.price
            && (m.divisor <= 0 || m.amount < 0)
        {
            return Err(format!(
                "at `results[{i}].price`: amount {} / divisor {} is not a price",
                m.amount, m.divisor
            ));
        }
    }
    Ok(page)
}

/// The observation of a keyword's pages.
fn observation(
    keyword: &Keyword,
    period: chrono::NaiveDate,
    count: u64,
    listings: &[EtsyListing],
) -> Result<Observation, String> {
    let priced: Vec<Priced> = listings
        .iter()
        .map(|l| Priced {
            seller: l.shop_id.map(|s| s.to_string()),
            price: l
                .price
                .as_ref()
                .map(|m| (m.amount as f64 / m.divisor as f64, m.currency_code.clone())),
        })
        .collect();
    market_observation(
        Platform::Etsy,
        OBSERVATION_SOURCE,
        keyword,
        period,
        count,
        &priced,
    )
}

#[async_trait]
impl SourceClient for Etsy {
    fn source(&self) -> Source {
        Source::Etsy
    }

    fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    async fn collect(&self, job: &Job) -> Result<Collected, JobError> {
        self.paging()
            .collect(job, |offset| async move {
                let mut headers = HeaderMap::new();
                headers.insert("x-api-key", self.api_key.clone());
                let f = self
                    .fetcher
                    .get(self.page_url(&job.keyword, offset)?, headers)
                    .await?;
                match f.status {
                    StatusCode::OK => Ok(f),
                    StatusCode::FORBIDDEN
                        if body_sample(&f.body, 500).contains("Shared secret") =>
                    {
                        Err(JobError::Refused(
                            "etsy answered 403 \"Shared secret is required\": set KWI_ETSY_API_KEY to `keystring:shared_secret`".into(),
                        ))
                    }
                    _ => Err(f.refused(Source::Etsy)),
                }
            })
            .await
    }

    fn reparse(&self, job: &Job, bodies: &[Vec<u8>]) -> Result<Vec<Observation>, String> {
        self.paging().reparse(job, bodies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_and_checked() {
        let ok = br#"{"count": 3, "results": [
            {"listing_id": 1, "shop_id": 7, "price": {"amount": 1000, "divisor": 100, "currency_code": "USD"}},
            {"listing_id": 2, "shop_id": 7, "price": {"amount": 2000, "divisor": 100, "currency_code": "USD"}},
            {"listing_id": 3, "shop_id": 8, "price": {"amount": 900, "divisor": 100, "currency_code": "EUR"}}]}"#;
        let page = parse_page(ok).unwrap();
        let kw = Keyword::parse("tarot cards").unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let o = observation(&kw, day, page.count, &page.results).unwrap();
        let v = |n| o.values[kwi_features::ingest::value_index(n)];
        assert_eq!(v("listing_count"), Some(3.0));
        // USD only (two of three): median 15, quartiles 12.5 and 17.5.
        assert_eq!(v("price_median"), Some(15.0));
        assert_eq!(v("price_p75"), Some(17.5));
        assert_eq!(o.source, "etsy-api");

        let e = parse_page(br#"{"count": "many", "results": []}"#).unwrap_err();
        assert!(e.contains("`count`"), "{e}");
        let e = parse_page(br#"{"count": 1, "results": [{"listing_id": 1, "price": {"amount": 5, "divisor": 0, "currency_code": "USD"}}]}"#).unwrap_err();
        assert!(e.contains("results[0].price"), "{e}");
        assert!(parse_page(b"<html>maintenance</html>").is_err());
        assert!(parse_page(br#"{"count": 1, "results": [{"listing_"#).is_err());
    }

    #[test]
    fn a_bare_keystring_is_refused_before_any_request() {
        let c = EtsyConfig {
            base_url: "http://127.0.0.1:1/".parse().unwrap(),
            api_key: "keystring".into(),
            per_second: 10.0,
            per_day: 10_000,
            pages: 1,
            limit: 100,
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("keystring:shared_secret"), "{e}");
        assert!(
            !e.contains("keystring\""),
            "the key itself is not echoed: {e}"
        );
    }

    #[test]
    fn daily_and_per_second_429s_differ() {
        let mut h = HeaderMap::new();
        assert_eq!(
            daily_quota(&h, b"{\"error\":\"Exceeded per second rate limit\"}"),
            None
        );
        h.insert("retry-after", "1".parse().unwrap());
        assert_eq!(daily_quota(&h, b""), None);
        h.insert("retry-after", "86400".parse().unwrap());
        assert_eq!(daily_quota(&h, b""), Some(Duration::from_secs(86400)));
    }
}
