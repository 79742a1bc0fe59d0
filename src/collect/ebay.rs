//! eBay Browse API: `GET /buy/browse/v1/item_summary/search?q=&limit=&offset=&filter=` with an
//! application access token from `POST /identity/v1/oauth2/token` (client credentials grant,
//! HTTP Basic auth with the client id and secret).
//!
//! One observation per (keyword, period): `listing_count` = the answer's `total` (items competing
//! for the keyword, of the buying options asked for: eBay counts fixed-price items only unless
//! `buyingOptions` is set, so the filter is always sent); price quartiles from the returned items'
//! prices (strings such as `"12.99"`) in their most common currency, through the feature layer.
//!
//! The token is cached until a minute before its `expires_in` and shared by the client's jobs
//! (one refresh at a time); a 401 on a search refreshes it once and asks again. eBay's Browse
//! limit is 5,000 calls a day; the daily 429 carries `errorId` 2001 and reschedules the job (it is
//! never retried before the reset). eBay publishes no per-second limit for Browse, so the pacer
//! runs at the configured rate and no response header adjusts it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use kwi_features::ingest::Observation;
use kwi_features::{Keyword, Platform};
use kwi_store::{Job, Source, Store};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;

use super::fetch::{Fetched, PaceHint, SourceRules};
use super::observe::{Paging, Priced, market_observation, parse_json};
use super::token::{TokenCache, request_token, secret_header, with_token};
use super::{Collected, Fetcher, JobError, RetryPolicy, SourceClient, Stats, credential_id};

/// Largest `offset` eBay accepts.
pub const MAX_OFFSET: u32 = 10_000;
/// Largest `limit`.
pub const MAX_LIMIT: u32 = 200;
/// The `source` of the observations written.
pub const OBSERVATION_SOURCE: &str = "ebay-api";
/// eBay Browse's default daily limit (`KWI_EBAY_PER_DAY`).
pub const DEFAULT_PER_DAY: i64 = 5_000;
/// The scope of an application token for the Browse API.
pub const SCOPE: &str = "https://api.ebay.com/oauth/api_scope";

/// eBay settings (`KWI_EBAY_*`).
#[derive(Debug, Clone)]
pub struct EbayConfig {
    /// Base URL (`https://api.ebay.com`); the token endpoint is under it too.
    pub base_url: reqwest::Url,
    /// OAuth client id (App ID).
    pub client_id: String,
    /// OAuth client secret (Cert ID).
    pub client_secret: String,
    /// Marketplace searched (`X-EBAY-C-MARKETPLACE-ID`), e.g. `EBAY_US`.
    pub marketplace: String,
    /// Buying options counted (`FIXED_PRICE|AUCTION`, …).
    pub buying_options: String,
    /// Requests per second.
    pub per_second: f64,
    /// Requests per day (eBay's Browse default 5,000).
    pub per_day: i64,
    /// Pages read per keyword (each `limit` items).
    pub pages: u32,
    /// Items per page, 1..=200.
    pub limit: u32,
}

impl EbayConfig {
    /// Checks the settings; the error names the setting, never its secret value.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.client_id.trim().is_empty(),
            "KWI_EBAY_CLIENT_ID is empty"
        );
        anyhow::ensure!(
            !self.client_secret.trim().is_empty(),
            "KWI_EBAY_CLIENT_SECRET is empty"
        );
        anyhow::ensure!(
            (1..=MAX_LIMIT).contains(&self.limit),
            "the eBay page size must be in 1..={MAX_LIMIT}; got {}",
            self.limit
        );
        anyhow::ensure!(self.pages >= 1, "at least one page per keyword");
        anyhow::ensure!(
            self.per_second > 0.0 && self.per_day > 0,
            "eBay rate limits must be positive"
        );
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c == '|')
        };
        anyhow::ensure!(
            ok(&self.buying_options),
            "KWI_EBAY_BUYING_OPTIONS must be options such as FIXED_PRICE|AUCTION; got `{}`",
            self.buying_options
        );
        anyhow::ensure!(
            ok(&self.marketplace),
            "KWI_EBAY_MARKETPLACE must be a marketplace id such as EBAY_US; got `{}`",
            self.marketplace
        );
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    total: u64,
    #[serde(default)]
    item_summaries: Vec<Item>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    #[allow(dead_code)] // read so an item without an id is refused as malformed
    item_id: String,
    #[serde(default)]
    price: Option<Amount>,
    #[serde(default)]
    seller: Option<Seller>,
}

#[derive(Debug, Deserialize)]
struct Amount {
    value: String,
    currency: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seller {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    feedback_percentage: Option<String>,
}

/// eBay's error body (`{"errors": [{"errorId": 2001, "message": …}]}`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Errors {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorItem {
    error_id: i64,
}

/// The daily call limit's error id.
const DAILY_LIMIT: i64 = 2001;

/// The eBay client.
pub struct Ebay {
    config: EbayConfig,
    basic: HeaderValue,
    fetcher: Fetcher,
    token: TokenCache,
}

/// A daily 429 says `errorId` 2001; eBay gives no reset time, so the job waits `Retry-After` if
/// sent, else a day (after the reset whether eBay counts a calendar or a rolling day).
fn daily_quota(h: &HeaderMap, body: &[u8]) -> Option<Duration> {
    let errors: Errors = serde_json::from_slice(body).ok()?;
    errors
        .errors
        .iter()
        .any(|e| e.error_id == DAILY_LIMIT)
        .then(|| {
            h.get("retry-after")
                .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(86_400))
        })
}

fn no_hint(_: &HeaderMap) -> PaceHint {
    PaceHint::default()
}

impl Ebay {
    /// A client; the configuration is checked first.
    pub fn new(
        config: EbayConfig,
        store: Arc<dyn Store>,
        policy: RetryPolicy,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let pair = format!("{}:{}", config.client_id, config.client_secret);
        let mut basic = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
        ))
        .map_err(|_| {
            anyhow::anyhow!("the eBay client id or secret holds characters a header cannot")
        })?;
        basic.set_sensitive(true);
        let rules = SourceRules {
            source: Source::Ebay,
            per_day: config.per_day,
            hint: no_hint,
            daily_quota,
        };
        let fetcher = Fetcher::new(
            rules,
            credential_id(&config.client_id),
            config.per_second,
            store,
            policy,
            stats,
        )?;
        Ok(Self {
            config,
            basic,
            fetcher,
            token: TokenCache::default(),
        })
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, JobError> {
        self.config
            .base_url
            .join(path)
            .map_err(|e| JobError::Refused(format!("KWI_EBAY_BASE_URL: {e}")))
    }

    /// The application token (cached; a new one when missing, near expiry or `stale`).
    async fn bearer(&self, stale: Option<&HeaderValue>) -> Result<HeaderValue, JobError> {
        self.token
            .get(stale, || async {
                let url = self.url("identity/v1/oauth2/token")?;
                let mut headers = HeaderMap::new();
                headers.insert(AUTHORIZATION, self.basic.clone());
                let form = serde_urlencoded::to_string([
                    ("grant_type", "client_credentials"),
                    ("scope", SCOPE),
                ])
                .expect("a form of strings");
                let (token, life) = request_token(
                    &self.fetcher,
                    url,
                    headers,
                    form,
                    "ebay",
                    "KWI_EBAY_CLIENT_ID and KWI_EBAY_CLIENT_SECRET",
                )
                .await?;
                Ok::<_, JobError>((secret_header("ebay", format!("Bearer {token}"))?, life))
            })
            .await
    }

    fn paging(&self) -> Paging<Item> {
        Paging {
            source: Source::Ebay,
            pages: self.config.pages,
            limit: self.config.limit,
            max_offset: MAX_OFFSET,
            parse: |b| parse_page(b).map(|p| (p.total, p.item_summaries)),
            observe: observation,
        }
    }

    fn page_url(&self, keyword: &Keyword, offset: u32) -> Result<reqwest::Url, JobError> {
        let mut url = self.url("buy/browse/v1/item_summary/search")?;
        url.query_pairs_mut()
            .append_pair("q", keyword.as_str())
            .append_pair("limit", &self.config.limit.to_string())
            .append_pair("offset", &offset.to_string())
            .append_pair(
                "filter",
                &format!("buyingOptions:{{{}}}", self.config.buying_options),
            );
        Ok(url)
    }

    /// One search page; a 401 refreshes the token once.
    async fn search(&self, url: reqwest::Url) -> Result<Fetched, JobError> {
        let marketplace = HeaderValue::from_str(&self.config.marketplace)
            .map_err(|_| JobError::Refused("KWI_EBAY_MARKETPLACE is not a header value".into()))?;
        let send = |bearer: HeaderValue| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, bearer);
            headers.insert("x-ebay-c-marketplace-id", marketplace.clone());
            self.fetcher.get(url.clone(), headers)
        };
        with_token(
            |stale| async move { self.bearer(stale.as_ref()).await },
            send,
            |s| s == StatusCode::UNAUTHORIZED,
        )
        .await?
        .ok_or_else(|| {
            JobError::Refused(
                "ebay answered 401 to a freshly issued token; check the keyset's Browse API access"
                    .into(),
            )
        })
    }
}

/// Reads one page; prices and feedback percentages arrive as strings and are checked here.
fn parse_page(body: &[u8]) -> Result<Page, String> {
    let page: Page = parse_json(body)?;
    for (i, item) in page.item_summaries.iter().enumerate() {
        if let Some(p) = &item.price {
            match p.value.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => {}
                _ => {
                    return Err(format!(
                        "at `itemSummaries[{i}].price.value`: `{}` is not a price",
                        p.value
                    ));
                }
            }
        }
        if let Some(f) = item
            .seller
            .as_ref()
            .and_then(|s| s.feedback_percentage.as_ref())
        {
            match f.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => {}
                _ => {
                    return Err(format!(
                        "at `itemSummaries[{i}].seller.feedbackPercentage`: `{f}` is not a percentage"
                    ));
                }
            }
        }
    }
    Ok(page)
}

fn observation(
    keyword: &Keyword,
    period: chrono::NaiveDate,
    total: u64,
    items: &[Item],
) -> Result<Observation, String> {
    let priced: Vec<Priced> = items
        .iter()
        .map(|i| Priced {
            seller: i.seller.as_ref().and_then(|s| s.username.clone()),
            price: i.price.as_ref().and_then(|p| {
                let v = p.value.trim().parse::<f64>().ok()?;
                Some((v, p.currency.clone()))
            }),
        })
        .collect();
    market_observation(
        Platform::Ebay,
        OBSERVATION_SOURCE,
        keyword,
        period,
        total,
        &priced,
    )
}

#[async_trait]
impl SourceClient for Ebay {
    fn source(&self) -> Source {
        Source::Ebay
    }

    fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    async fn collect(&self, job: &Job) -> Result<Collected, JobError> {
        self.paging()
            .collect(job, |offset| async move {
                let f = self.search(self.page_url(&job.keyword, offset)?).await?;
                if f.status == StatusCode::OK {
                    Ok(f)
                } else {
                    Err(f.refused(Source::Ebay))
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
    fn string_prices_are_read_and_checked() {
        let ok = br#"{"total": 1520, "limit": 3, "offset": 0, "itemSummaries": [
            {"itemId": "v1|1|0", "price": {"value": "10.00", "currency": "USD"}, "seller": {"username": "a", "feedbackPercentage": "99.1", "feedbackScore": 10}, "buyingOptions": ["FIXED_PRICE"]},
            {"itemId": "v1|2|0", "price": {"value": "20.00", "currency": "USD"}, "seller": {"username": "b"}},
            {"itemId": "v1|3|0", "price": {"value": "9.50", "currency": "GBP"}}]}"#;
        let page = parse_page(ok).unwrap();
        let kw = Keyword::parse("drone").unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let o = observation(&kw, day, page.total, &page.item_summaries).unwrap();
        let v = |n| o.values[kwi_features::ingest::value_index(n)];
        assert_eq!(v("listing_count"), Some(1520.0));
        assert_eq!(v("price_median"), Some(15.0));
        assert_eq!(o.platform, Platform::Ebay);

        // No results: eBay leaves `itemSummaries` out.
        assert_eq!(
            parse_page(br#"{"total": 0}"#).unwrap().item_summaries.len(),
            0
        );
        let e = parse_page(br#"{"total": 1, "itemSummaries": [{"itemId": "x", "price": {"value": "ten", "currency": "USD"}}]}"#).unwrap_err();
        assert!(e.contains("itemSummaries[0].price.value"), "{e}");
        let e = parse_page(br#"{"total": 1, "itemSummaries": [{"itemId": "x", "seller": {"feedbackPercentage": "140"}}]}"#).unwrap_err();
        assert!(e.contains("feedbackPercentage"), "{e}");
        let e = parse_page(br#"{"total": "1"}"#).unwrap_err();
        assert!(e.contains("`total`"), "{e}");
    }

    #[test]
    fn only_error_2001_is_the_daily_limit() {
        let h = HeaderMap::new();
        let daily = br#"{"errors":[{"errorId":2001,"domain":"ACCESS","category":"REQUEST","message":"Too many requests. The request limit has been reached for the resource."}]}"#;
        assert_eq!(daily_quota(&h, daily), Some(Duration::from_secs(86_400)));
        assert_eq!(daily_quota(&h, br#"{"errors":[{"errorId":2002}]}"#), None);
        assert_eq!(daily_quota(&h, b"<html>busy</html>"), None);
    }

    #[test]
    fn settings_are_checked_without_echoing_the_secret() {
        let mut c = EbayConfig {
            base_url: "http://127.0.0.1:1/".parse().unwrap(),
            client_id: "app-id".into(),
            client_secret: String::new(),
            marketplace: "EBAY_US".into(),
            buying_options: "FIXED_PRICE|AUCTION".into(),
            per_second: 2.0,
            per_day: 5000,
            pages: 1,
            limit: 200,
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("KWI_EBAY_CLIENT_SECRET")
        );
        c.client_secret = "s3cret".into();
        c.validate().unwrap();
        c.buying_options = "fixed price".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("KWI_EBAY_BUYING_OPTIONS") && !e.contains("s3cret"),
            "{e}"
        );
    }
}
