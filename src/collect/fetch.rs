//! The one request path of every source: daily budget, pacing, sending, keeping, retrying.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use arc_swap::ArcSwap;
use backon::BackoffBuilder;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kwi_store::{RawResponse, Source, Store};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::{JobError, Stats, body_sample, next_utc_midnight};

/// How hard to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries of one request after its first attempt.
    pub retries: usize,
    /// First backoff delay (doubling, with jitter, up to `max_delay`).
    pub min_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured (a longer one is cut to this).
    pub retry_after_cap: Duration,
    /// Timeout of one request, body included.
    pub timeout: Duration,
    /// Claims of one job before it goes to the dead letters.
    pub job_attempts: i32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 4,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            job_attempts: 5,
        }
    }
}

/// What a response says about pacing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PaceHint {
    /// The rate the API applies now, requests per second.
    pub per_second: Option<f64>,
    /// Requests left in the current second.
    pub remaining_this_second: Option<u64>,
}

/// Spaces requests of one (source, credential) at the published rate, adjusted by the rate the
/// responses report. governor's GCRA with a burst of one: requests leave evenly spaced, so a
/// server counting per second never sees more than its limit.
pub struct Pacer {
    limiter: ArcSwap<DefaultDirectRateLimiter>,
    per_second: Mutex<f64>,
    not_before: Mutex<Option<tokio::time::Instant>>,
}

fn limiter(per_second: f64) -> DefaultDirectRateLimiter {
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
    let quota = Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(NonZeroU32::MIN);
    RateLimiter::direct(quota)
}

impl Pacer {
    /// A pacer at `per_second` requests per second.
    pub fn new(per_second: f64) -> Self {
        Self {
            limiter: ArcSwap::from_pointee(limiter(per_second)),
            per_second: Mutex::new(per_second),
            not_before: Mutex::new(None),
        }
    }

    /// The rate in force.
    pub fn per_second(&self) -> f64 {
        *self.per_second.lock().expect("pacer lock")
    }

    /// Waits for the next request's slot.
    pub async fn wait(&self) {
        let not_before = *self.not_before.lock().expect("pacer lock");
        if let Some(t) = not_before {
            tokio::time::sleep_until(t).await;
        }
        self.limiter.load_full().until_ready().await;
    }

    /// Adjusts to what a response reported.
    pub fn observe(&self, hint: PaceHint) {
        if let Some(rate) = hint.per_second.filter(|r| r.is_finite() && *r > 0.0) {
            let mut current = self.per_second.lock().expect("pacer lock");
            if (*current - rate).abs() > 1e-9 {
                *current = rate;
                self.limiter.store(Arc::new(limiter(rate)));
            }
        }
        if hint.remaining_this_second == Some(0) {
            // The server's second is used up: wait for the next wall-clock second.
            let ms_left = 1000 - u64::from(Utc::now().timestamp_subsec_millis().min(999));
            *self.not_before.lock().expect("pacer lock") =
                Some(tokio::time::Instant::now() + Duration::from_millis(ms_left));
        }
    }
}

/// A source's rules for the shared request path.
pub struct SourceRules {
    /// Which source.
    pub source: Source,
    /// Requests per day the credential may make.
    pub per_day: i64,
    /// Reads the pacing headers of a response.
    pub hint: fn(&HeaderMap) -> PaceHint,
    /// Whether a 429 is the daily quota (and how long until it resets), rather than the
    /// per-second limit.
    pub daily_quota: fn(&HeaderMap, &[u8]) -> Option<Duration>,
}

/// A response with its body read whole.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL asked (no credentials in it).
    pub url: String,
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When it arrived.
    pub fetched_at: DateTime<Utc>,
}

impl Fetched {
    /// The response as kept for replay (zstd-compressed body).
    pub fn to_raw(&self) -> RawResponse {
        RawResponse {
            url: self.url.clone(),
            status: self.status.as_u16(),
            body_zstd: zstd::encode_all(&self.body[..], 3).unwrap_or_default(),
            fetched_at: self.fetched_at,
        }
    }

    /// The refusal this (4xx) answer is, with the start of its body.
    pub fn refused(&self, source: Source) -> JobError {
        JobError::Refused(format!(
            "{source} answered {} to {}: {}",
            self.status,
            self.url,
            body_sample(&self.body, 300)
        ))
    }
}

/// A request body.
enum Payload {
    /// A form to a token endpoint (outside the daily budget).
    Form(String),
    /// A JSON document to the API.
    Json(String),
}

/// Budget, pacer, HTTP client and retry policy of one (source, credential).
pub struct Fetcher {
    rules: SourceRules,
    credential: String,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    pacer: Pacer,
    policy: RetryPolicy,
    stats: Arc<Stats>,
}

impl Fetcher {
    /// A fetcher for `credential_id` (see [`super::credential_id`]), paced at `per_second`.
    pub fn new(
        rules: SourceRules,
        credential_id: String,
        per_second: f64,
        store: Arc<dyn Store>,
        policy: RetryPolicy,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("kwi/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            rules,
            credential: credential_id,
            store,
            http,
            pacer: Pacer::new(per_second),
            policy,
            stats,
        })
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The pacer.
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// The credential's requests left today by our own count.
    pub async fn budget_left(&self) -> Result<i64, JobError> {
        let used = self
            .store
            .budget_used(self.rules.source, &self.credential, Utc::now().date_naive())
            .await?;
        Ok((self.rules.per_day - used).max(0))
    }

    /// GETs `url` with `headers` (credentials go in the headers, never in the URL). Answers 2xx
    /// and 4xx other than 429 are returned for the source to read; 429, 5xx and transport
    /// failures are retried; a daily-quota answer or a spent budget ends in
    /// [`JobError::DailyQuota`].
    pub async fn get(&self, url: reqwest::Url, headers: HeaderMap) -> Result<Fetched, JobError> {
        self.send(reqwest::Method::GET, url, headers, None).await
    }

    /// POSTs a JSON document (an API call: taken from the daily budget), paced and retried like
    /// [`Fetcher::get`].
    pub async fn post_json(
        &self,
        url: reqwest::Url,
        headers: HeaderMap,
        json: String,
    ) -> Result<Fetched, JobError> {
        self.send(
            reqwest::Method::POST,
            url,
            headers,
            Some(Payload::Json(json)),
        )
        .await
    }

    /// POSTs a form to an endpoint outside the daily budget (an OAuth token endpoint), paced and
    /// retried like [`Fetcher::get`].
    pub async fn post_form(
        &self,
        url: reqwest::Url,
        headers: HeaderMap,
        form: String,
    ) -> Result<Fetched, JobError> {
        self.send(
            reqwest::Method::POST,
            url,
            headers,
            Some(Payload::Form(form)),
        )
        .await
    }

    /// The one request loop; a form is a POST outside the budget.
    async fn send(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        headers: HeaderMap,
        payload: Option<Payload>,
    ) -> Result<Fetched, JobError> {
        let source = self.rules.source;
        let p = &self.policy;
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(p.min_delay)
            .with_max_delay(p.max_delay)
            .with_max_times(p.retries)
            .with_jitter()
            .build();
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            let now = Utc::now();
            if !matches!(payload, Some(Payload::Form(_)))
                && self
                    .store
                    .spend_budget(
                        source,
                        &self.credential,
                        now.date_naive(),
                        self.rules.per_day,
                    )
                    .await?
                    .is_none()
            {
                return Err(JobError::DailyQuota {
                    api: source,
                    until: next_utc_midnight(now),
                });
            }
            self.pacer.wait().await;
            Stats::add(&self.stats.requests, 1);
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .timeout(p.timeout);
            if let Some(payload) = &payload {
                let (kind, body) = match payload {
                    Payload::Form(b) => ("application/x-www-form-urlencoded", b),
                    Payload::Json(b) => ("application/json", b),
                };
                request = request
                    .header(reqwest::header::CONTENT_TYPE, kind)
                    .body(body.clone());
            }
            let sent = request.send().await;
            let failure: (String, Option<Duration>) = match sent {
                Err(e) => (transport_error(source, &e), None),
                Ok(res) => {
                    let status = res.status();
                    let res_headers = res.headers().clone();
                    self.pacer.observe((self.rules.hint)(&res_headers));
                    metrics::counter!("kwi_collect_requests_total", "source" => source.as_str(), "status" => status.as_str().to_owned()).increment(1);
                    match res.bytes().await {
                        Err(e) => (
                            format!(
                                "{source}: the body of a {status} answer broke off: {}",
                                e.without_url()
                            ),
                            None,
                        ),
                        Ok(body) => {
                            let retry_after = retry_after(&res_headers);
                            if status == StatusCode::TOO_MANY_REQUESTS {
                                Stats::add(&self.stats.rate_limited, 1);
                                if let Some(wait) = (self.rules.daily_quota)(&res_headers, &body) {
                                    return Err(JobError::DailyQuota {
                                        api: source,
                                        until: Utc::now()
                                            + chrono::Duration::from_std(wait)
                                                .unwrap_or(chrono::Duration::days(1)),
                                    });
                                }
                                (
                                    format!("{source}: 429 {}", body_sample(&body, 200)),
                                    retry_after,
                                )
                            } else if status.is_server_error() {
                                (
                                    format!("{source}: {status} {}", body_sample(&body, 200)),
                                    retry_after,
                                )
                            } else {
                                return Ok(Fetched {
                                    url: url.to_string(),
                                    status,
                                    headers: res_headers,
                                    body,
                                    fetched_at: Utc::now(),
                                });
                            }
                        }
                    }
                }
            };
            let (message, retry_after) = failure;
            let Some(delay) = backoff.next() else {
                return Err(JobError::Transient(format!(
                    "{message} (gave up after {attempt} attempts)"
                )));
            };
            let delay = match retry_after {
                Some(ra) => ra.min(p.retry_after_cap).max(delay),
                None => delay,
            };
            Stats::add(&self.stats.retries, 1);
            metrics::counter!("kwi_collect_retries_total", "source" => source.as_str())
                .increment(1);
            tracing::debug!(%source, attempt, ?delay, %message, "retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// A transport failure in words (timeout, refused, reset), without the URL's query.
fn transport_error(source: Source, e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the body broke off"
    } else {
        "the request failed"
    };
    let mut detail = String::new();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cause {
        detail = c.to_string();
        cause = c.source();
    }
    format!("{source}: {what} ({detail})")
}

/// `Retry-After` in seconds (the HTTP-date form is read as "unknown").
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[tokio::test]
    async fn pacer_spaces_requests_and_follows_the_reported_rate() {
        let p = Pacer::new(50.0);
        let t = std::time::Instant::now();
        for _ in 0..6 {
            p.wait().await;
        }
        // Five gaps of 20 ms.
        assert!(
            t.elapsed() >= Duration::from_millis(95),
            "{:?}",
            t.elapsed()
        );
        p.observe(PaceHint {
            per_second: Some(5.0),
            remaining_this_second: None,
        });
        assert_eq!(p.per_second(), 5.0);
        p.wait().await;
        let t = std::time::Instant::now();
        p.wait().await;
        assert!(
            t.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t.elapsed()
        );
    }
}
