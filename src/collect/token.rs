//! OAuth access tokens of the sources that need one (eBay's client-credentials grant, Amazon's
//! Login with Amazon refresh-token grant): fetched through the source's [`Fetcher`] (paced and
//! retried, outside the daily budget), cached until a minute before they expire, one refresh at a
//! time. (oauth2's client would add a second HTTP stack beside the fetcher's pacing and retries for
//! one POST; the grant itself is a form and two JSON fields.)

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use tokio::time::Instant;

use super::observe::parse_json;
use super::{Fetcher, JobError, body_sample};

/// A token is renewed this long before the source says it expires.
const MARGIN: Duration = Duration::from_secs(60);

struct Token {
    value: HeaderValue,
    renew_at: Instant,
}

/// One source's cached token.
#[derive(Default)]
pub struct TokenCache {
    slot: tokio::sync::Mutex<Option<Token>>,
}

impl TokenCache {
    /// The cached header value, or a new one from `fetch` (value and lifetime) when there is none,
    /// it is near expiry, or it is `stale` (the one a request was refused with). Callers waiting
    /// while another fetches reuse its token.
    pub async fn get<F, Fut>(
        &self,
        stale: Option<&HeaderValue>,
        fetch: F,
    ) -> Result<HeaderValue, JobError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(HeaderValue, Duration), JobError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.renew_at
            && stale != Some(&t.value)
        {
            return Ok(t.value.clone());
        }
        let (value, life) = fetch().await?;
        *slot = Some(Token {
            value: value.clone(),
            renew_at: Instant::now() + life.saturating_sub(MARGIN),
        });
        Ok(value)
    }
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// POSTs an OAuth token request and reads `access_token` and `expires_in`. A refusal names
/// `settings` (the variables to check), never their values; the provider's OAuth error
/// (`invalid_client`, …) is quoted.
pub async fn request_token(
    fetcher: &Fetcher,
    url: reqwest::Url,
    headers: HeaderMap,
    form: String,
    source: &str,
    settings: &str,
) -> Result<(String, Duration), JobError> {
    let f = fetcher.post_form(url, headers, form).await?;
    if f.status != StatusCode::OK {
        return Err(JobError::Refused(format!(
            "{source} refused the token request ({}): {}; check {settings}",
            f.status,
            body_sample(&f.body, 300)
        )));
    }
    let answer: TokenAnswer = parse_json(&f.body).map_err(|e| {
        JobError::Refused(format!("{source}: the token answer is not readable {e}"))
    })?;
    Ok((answer.access_token, Duration::from_secs(answer.expires_in)))
}

/// A sensitive header value (never printed by `Debug`) from a token.
pub fn secret_header(source: &str, value: String) -> Result<HeaderValue, JobError> {
    let mut v = HeaderValue::from_str(&value).map_err(|_| {
        JobError::Refused(format!(
            "{source}: the token holds characters a header cannot"
        ))
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Sends with a token, at most twice: with `token(None)` (the cached one), then, when the answer
/// is `refused` (an expired or revoked token), with `token(Some(that one))` (a fresh one).
/// `Ok(None)` when the fresh token is refused too.
pub async fn with_token<G, GF, S, SF>(
    token: G,
    send: S,
    refused: fn(StatusCode) -> bool,
) -> Result<Option<super::Fetched>, JobError>
where
    G: Fn(Option<HeaderValue>) -> GF,
    GF: Future<Output = Result<HeaderValue, JobError>>,
    S: Fn(HeaderValue) -> SF,
    SF: Future<Output = Result<super::Fetched, JobError>>,
{
    let mut stale = None;
    for _ in 0..2 {
        let t = token(stale.take()).await?;
        let f = send(t.clone()).await?;
        if !refused(f.status) {
            return Ok(Some(f));
        }
        tracing::debug!(status = %f.status, "access token refused; asking for a fresh one");
        stale = Some(t);
    }
    Ok(None)
}
