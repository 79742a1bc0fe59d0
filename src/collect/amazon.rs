//! Amazon Selling Partner API: Catalog Items `searchCatalogItems` (and the Brand Analytics Search
//! Terms report: [`super::search_terms`])
//! (`GET /catalog/2022-04-01/items?keywords=&marketplaceIds=&includedData=summaries&pageSize=`),
//! with a Login with Amazon access token (`POST https://api.amazon.com/auth/o2/token`, refresh-token
//! grant) in `x-amz-access-token`.
//!
//! One observation per (keyword, period): `listing_count` = the answer's `numberOfResults`
//! (catalog items matching the keyword in the marketplace). The catalog gives no prices (they are
//! in the Product Pricing API), so no price quartiles are written.
//!
//! Limits: 2 requests per second, burst 2; the applied rate comes back in
//! `x-amzn-RateLimit-Limit` and the pacer follows it. A 429 (`QuotaExceeded`) is the per-second
//! bucket: retried with backoff. SP-API has no daily cap for this operation, so the daily budget is
//! only our own (`KWI_SPAPI_PER_DAY`). The token lasts an hour and is cached; a 401 or 403 on a
//! search (an expired or revoked token) refreshes it once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kwi_features::ingest::Observation;
use kwi_features::{Keyword, Platform};
use kwi_store::{Job, Source, Store, report_key};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;

use super::fetch::{Fetched, PaceHint, SourceRules};
use super::observe::{market_observation, parse_json};
use super::search_terms::{REPORT, ReportOptions, parse_document};
use super::token::{TokenCache, request_token, secret_header, with_token};
use super::{
    Collected, Fetcher, JobError, RetryPolicy, SourceClient, Stats, body_sample, credential_id,
};

/// The `source` of the observations written.
pub const OBSERVATION_SOURCE: &str = "amazon-spapi";
/// Our own daily cap (`KWI_SPAPI_PER_DAY`): searchCatalogItems has no daily quota.
pub const DEFAULT_PER_DAY: i64 = 100_000;

/// SP-API settings (`KWI_SPAPI_*`).
#[derive(Debug, Clone)]
pub struct SpApiConfig {
    /// Regional endpoint (`https://sellingpartnerapi-na.amazon.com`).
    pub base_url: reqwest::Url,
    /// Login with Amazon token endpoint (`https://api.amazon.com/auth/o2/token`).
    pub token_url: reqwest::Url,
    /// LWA client id of the app.
    pub client_id: String,
    /// LWA client secret.
    pub client_secret: String,
    /// The seller's refresh token (from authorising the app).
    pub refresh_token: String,
    /// Marketplace id (`ATVPDKIKX0DER` is amazon.com).
    pub marketplace: String,
    /// Requests per second (searchCatalogItems: 2).
    pub per_second: f64,
    /// Our own cap of requests per UTC day.
    pub per_day: i64,
    /// How the Brand Analytics Search Terms report is followed ([`super::search_terms`]).
    pub reports: ReportOptions,
}

impl SpApiConfig {
    /// Checks the settings; the error names the setting, never its value.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (value, name) in [
            (&self.client_id, "KWI_SPAPI_CLIENT_ID"),
            (&self.client_secret, "KWI_SPAPI_CLIENT_SECRET"),
            (&self.refresh_token, "KWI_SPAPI_REFRESH_TOKEN"),
        ] {
            anyhow::ensure!(!value.trim().is_empty(), "{name} is empty");
        }
        anyhow::ensure!(
            !self.marketplace.is_empty()
                && self.marketplace.chars().all(|c| c.is_ascii_alphanumeric()),
            "KWI_SPAPI_MARKETPLACE must be a marketplace id such as ATVPDKIKX0DER; got `{}`",
            self.marketplace
        );
        anyhow::ensure!(
            self.per_second > 0.0 && self.per_day > 0,
            "SP-API rate limits must be positive"
        );
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchAnswer {
    number_of_results: u64,
    #[allow(dead_code)] // read so a malformed item list is refused, not stored
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    #[allow(dead_code)] // read so an item without an ASIN is refused as malformed
    asin: String,
}

/// The SP-API client.
pub struct SpApi {
    config: SpApiConfig,
    fetcher: Fetcher,
    token: TokenCache,
}

fn hint(h: &HeaderMap) -> PaceHint {
    PaceHint {
        per_second: h
            .get("x-amzn-ratelimit-limit")
            .and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok()),
        remaining_this_second: None,
    }
}

/// Catalog searches have no daily quota: every 429 is the per-second bucket.
fn no_daily_quota(_: &HeaderMap, _: &[u8]) -> Option<Duration> {
    None
}

impl SpApi {
    /// A client; the configuration is checked first.
    pub fn new(
        config: SpApiConfig,
        store: Arc<dyn Store>,
        policy: RetryPolicy,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let rules = SourceRules {
            source: Source::Amazon,
            per_day: config.per_day,
            hint,
            daily_quota: no_daily_quota,
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
            fetcher,
            token: TokenCache::default(),
        })
    }

    async fn access_token(&self, stale: Option<&HeaderValue>) -> Result<HeaderValue, JobError> {
        self.token
            .get(stale, || async {
                let form = serde_urlencoded::to_string([
                    ("grant_type", "refresh_token"),
                    ("refresh_token", self.config.refresh_token.as_str()),
                    ("client_id", self.config.client_id.as_str()),
                    ("client_secret", self.config.client_secret.as_str()),
                ])
                .expect("a form of strings");
                let (token, life) = request_token(
                    &self.fetcher,
                    self.config.token_url.clone(),
                    HeaderMap::new(),
                    form,
                    "amazon",
                    "KWI_SPAPI_CLIENT_ID, KWI_SPAPI_CLIENT_SECRET and KWI_SPAPI_REFRESH_TOKEN",
                )
                .await?;
                Ok::<_, JobError>((secret_header("amazon", token)?, life))
            })
            .await
    }

    /// The settings of the report flow.
    pub(super) fn report_options(&self) -> ReportOptions {
        self.config.reports
    }

    /// The marketplace asked about.
    pub(super) fn marketplace(&self) -> &str {
        &self.config.marketplace
    }

    /// An operation's URL under the regional endpoint.
    pub(super) fn api_url(&self, path: &str) -> Result<reqwest::Url, JobError> {
        self.config
            .base_url
            .join(path)
            .map_err(|e| JobError::Refused(format!("KWI_SPAPI_BASE_URL: {e}")))
    }

    fn search_url(&self, keyword: &Keyword) -> Result<reqwest::Url, JobError> {
        let mut url = self.api_url("catalog/2022-04-01/items")?;
        url.query_pairs_mut()
            .append_pair("keywords", keyword.as_str())
            .append_pair("marketplaceIds", &self.config.marketplace)
            .append_pair("includedData", "summaries")
            .append_pair("pageSize", "20");
        Ok(url)
    }

    /// One call of `api` (named in the error): a GET, or a POST of `json`; a 401/403 refreshes
    /// the token once.
    pub(super) async fn call(
        &self,
        url: reqwest::Url,
        json: Option<String>,
        api: &str,
    ) -> Result<Fetched, JobError> {
        let send = |token: HeaderValue| {
            let mut headers = HeaderMap::new();
            headers.insert("x-amz-access-token", token);
            let (url, json) = (url.clone(), json.clone());
            async move {
                match json {
                    Some(j) => self.fetcher.post_json(url, headers, j).await,
                    None => self.fetcher.get(url, headers).await,
                }
            }
        };
        with_token(
            |stale| async move { self.access_token(stale.as_ref()).await },
            send,
            |s| matches!(s, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
        )
        .await?
        .ok_or_else(|| {
            JobError::Refused(format!(
                "amazon refused a freshly issued access token (401/403): check that the app's role allows the {api} API for KWI_SPAPI_MARKETPLACE"
            ))
        })
    }
}

/// Whether a job is the weekly Search Terms report rather than a keyword's catalog search.
fn is_search_terms(job: &Job) -> bool {
    job.idem_key == report_key(Source::Amazon, REPORT, job.period)
}

fn parse_answer(body: &[u8]) -> Result<SearchAnswer, String> {
    parse_json(body)
}

fn observation(
    keyword: &Keyword,
    period: chrono::NaiveDate,
    answer: &SearchAnswer,
) -> Result<Observation, String> {
    market_observation(
        Platform::Amazon,
        OBSERVATION_SOURCE,
        keyword,
        period,
        answer.number_of_results,
        &[],
    )
}

#[async_trait]
impl SourceClient for SpApi {
    fn source(&self) -> Source {
        Source::Amazon
    }

    fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    async fn collect(&self, job: &Job) -> Result<Collected, JobError> {
        if is_search_terms(job) {
            return self.search_terms(job).await;
        }
        let f = self
            .call(self.search_url(&job.keyword)?, None, "Catalog Items")
            .await?;
        let raw = vec![f.to_raw()];
        if f.status != StatusCode::OK {
            return Err(f.refused(Source::Amazon));
        }
        let invalid = |message: String| JobError::Invalid {
            message: format!("amazon: `{}` {message}", job.keyword.as_str()),
            sample: body_sample(&f.body, 500),
            raw: raw.clone(),
        };
        let answer = parse_answer(&f.body).map_err(invalid)?;
        // No listings to run through Polars: the observation is the count alone.
        let row = observation(&job.keyword, job.period, &answer).map_err(invalid)?;
        Ok(Collected {
            rows: vec![row],
            raw,
        })
    }

    fn reparse(&self, job: &Job, bodies: &[Vec<u8>]) -> Result<Vec<Observation>, String> {
        let body = bodies.last().ok_or("no kept page")?;
        if is_search_terms(job) {
            return parse_document(body, job.period, self.config.reports.max_bytes);
        }
        Ok(vec![observation(
            &job.keyword,
            job.period,
            &parse_answer(body)?,
        )?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_checked() {
        let ok = br#"{"numberOfResults": 5000, "pagination": {"nextToken": "x"},
            "refinements": {"brands": [], "classifications": []},
            "items": [{"asin": "B07N4M94X4", "summaries": [{"marketplaceId": "ATVPDKIKX0DER", "itemName": "Tarot"}]}]}"#;
        let a = parse_answer(ok).unwrap();
        let kw = Keyword::parse("tarot cards").unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let o = observation(&kw, day, &a).unwrap();
        assert_eq!(
            o.values[kwi_features::ingest::value_index("listing_count")],
            Some(5000.0)
        );
        assert_eq!(o.platform, Platform::Amazon);
        let e = parse_answer(br#"{"items": []}"#).unwrap_err();
        assert!(e.contains("numberOfResults"), "{e}");
        let e = parse_answer(br#"{"numberOfResults": 1, "items": [{"title": "no asin"}]}"#)
            .unwrap_err();
        assert!(e.contains("items[0]"), "{e}");
    }

    #[test]
    fn the_applied_rate_is_read() {
        let mut h = HeaderMap::new();
        assert_eq!(hint(&h).per_second, None);
        h.insert("x-amzn-ratelimit-limit", "0.5".parse().unwrap());
        assert_eq!(hint(&h).per_second, Some(0.5));
    }
}
