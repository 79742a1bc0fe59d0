//! Accounts and access: who a request is from ([`Auth::authenticate`]: an API key or an access
//! token), what it may do (roles, in `http::access`), how much (rate limits in [`limit`], monthly
//! quotas in [`meter`]), and the account operations the HTTP handlers and the CLI share (sign-in,
//! token refresh, keys, users, plans). History and audit rows go through [`events`], off the
//! request path.
//!
//! Hot path: an API key is checked for shape and checksum, hashed (SHA-256) and looked up in an
//! in-process cache (30 s; a revocation on this instance clears it at once, on another instance
//! the Redis marker refuses it at the next limiter call); the owner's account comes from a 5 s
//! cache, so a disabled user or changed role applies within 5 s everywhere.

pub mod events;
pub mod limit;
pub mod meter;
pub mod oidc;
pub mod secret;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use chrono::{DateTime, Utc};
use kwi_store::{
    Account, ApiKeyRecord, NewApiKey, NewRefreshToken, NewUser, Plan, PlanName, RefreshOutcome,
    Role, Store, StoreError, UserPatch,
};
use redis::aio::ConnectionManager;
use serde_json::json;
use uuid::Uuid;

use self::events::Recorder;
use self::limit::{Decision, Limiter, Policy};
use self::meter::{Meter, OverQuota};
use self::oidc::{Identity, Oidc, OidcConfig};
use self::secret::{KEY_PREFIX, Passwords, REFRESH_PREFIX};
use self::token::Tokens;

/// Longest `Authorization` header read.
pub const MAX_CREDENTIAL_BYTES: usize = 4096;
/// Refresh-token lifetime.
pub const REFRESH_TTL_DAYS: i64 = 30;
/// Default grace period of a rotated API key.
pub const DEFAULT_GRACE_SECS: i64 = 24 * 3600;
/// Longest grace period.
pub const MAX_GRACE_SECS: i64 = 30 * 24 * 3600;
/// Sign-in attempts per email: 5 at once, then one every 12 s.
pub const LOGIN_POLICY: Policy = Policy {
    name: "login",
    per_minute: 5,
    burst: 5,
};
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
const ACCOUNT_CACHE_TTL: Duration = Duration::from_secs(5);
/// How long a key or account read from the store is still used when the store cannot be reached
/// (see [`Remembered`]).
const LAST_KNOWN_TTL: Duration = Duration::from_secs(600);
/// After the store was found unreachable, how long known callers are answered from the
/// last-known caches without asking it again (one lookup then tries it again).
const STORE_DOWN_GRACE: Duration = Duration::from_secs(10);
/// The 401 message when the store cannot be reached and nothing is remembered; answered as 503.
const STORE_DOWN: &str =
    "credentials cannot be checked right now (the store is unreachable); retry";
/// How long a revocation marker lives in Redis (longer than any cache here).
const REVOKED_MARKER_SECS: u64 = 120;
/// How often history past its plan's retention is deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// How the server authenticates (from the configuration).
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `false` turns authentication off: every request acts as an unmetered admin (benchmarks of
    /// the auth cost only; the server warns loudly).
    pub enabled: bool,
    /// Access-token signing secret; `None`: generated once and kept in the database.
    pub jwt_secret: Option<String>,
    /// argon2id memory (KiB) and passes.
    pub argon2_kib: u32,
    /// argon2id passes.
    pub argon2_passes: u32,
    /// OpenID Connect provider, when one is configured.
    pub oidc: Option<OidcConfig>,
    /// Whether `/metrics` answers without credentials.
    pub metrics_public: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            jwt_secret: None,
            argon2_kib: 19 * 1024,
            argon2_passes: 2,
            oidc: None,
            metrics_public: true,
        }
    }
}

/// Who is calling: resolved once per request by the access layer.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user_id: Uuid,
    /// The user's email.
    pub email: String,
    /// The user's role.
    pub role: Role,
    /// The plan in force.
    pub plan: Plan,
    /// The API key used, if one was.
    pub key_id: Option<Uuid>,
    /// Authentication is off: nothing is metered or recorded.
    pub anonymous: bool,
}

impl Principal {
    /// What rate limits are kept per: the API key, or the user for access tokens (written into
    /// `buf`: no allocation on the request path).
    pub fn subject<'a>(&self, buf: &'a mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &'a str {
        self.key_id
            .unwrap_or(self.user_id)
            .hyphenated()
            .encode_lower(buf)
    }

    /// The plan's rate limit.
    pub fn policy(&self) -> Policy {
        Policy {
            name: self.plan.name.as_str(),
            per_minute: self.plan.requests_per_minute,
            burst: self.plan.burst,
        }
    }

    fn of(account: &Account, key_id: Option<Uuid>) -> Self {
        Self {
            user_id: account.id,
            email: account.email.clone(),
            role: account.role,
            plan: account.plan.clone(),
            key_id,
            anonymous: false,
        }
    }

    /// The caller when authentication is off.
    pub fn anonymous() -> Self {
        Self {
            user_id: Uuid::nil(),
            email: "anonymous".into(),
            role: Role::Admin,
            plan: Plan {
                name: PlanName::Internal,
                monthly_lookups: None,
                requests_per_minute: 100_000_000,
                burst: 100_000_000,
                max_batch: 1000,
                history_days: 1,
            },
            key_id: None,
            anonymous: true,
        }
    }
}

/// Why credentials were refused (the 401's message: never the credential itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unauthorized(pub String);

fn unauthorized(m: impl Into<String>) -> Unauthorized {
    Unauthorized(m.into())
}

impl Unauthorized {
    /// Whether the credential could not be checked at all (the store is unreachable and this
    /// instance remembers nothing of it): the caller is not at fault, so it is answered 503.
    pub fn is_store_down(&self) -> bool {
        self.0 == STORE_DOWN
    }
}

/// A cache of what the store said, with a longer memory for when it cannot say: `fresh` entries
/// answer for their short TTL (so a disabled account or a role change applies within seconds),
/// `known` ones only when a store read fails. While the store is down, a credential seen in the
/// last [`LAST_KNOWN_TTL`] keeps working on this instance, so cached forecasts keep being served;
/// a revocation made on another instance meanwhile still applies through Redis.
struct Remembered<K, V> {
    fresh: moka::sync::Cache<K, V>,
    known: moka::sync::Cache<K, V>,
}

impl<K, V> Remembered<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(fresh_ttl: Duration) -> Self {
        let cache = |ttl| {
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build()
        };
        Self {
            fresh: cache(fresh_ttl),
            known: cache(LAST_KNOWN_TTL),
        }
    }

    fn get(&self, k: &K) -> Option<V> {
        self.fresh.get(k)
    }

    /// What the store last said, for when it cannot be asked.
    fn last_known(&self, k: &K) -> Option<V> {
        self.known.get(k)
    }

    fn insert(&self, k: K, v: V)
    where
        K: Clone,
    {
        self.known.insert(k.clone(), v.clone());
        self.fresh.insert(k, v);
    }

    fn invalidate(&self, k: &K) {
        self.fresh.invalidate(k);
        self.known.invalidate(k);
    }

    fn invalidate_all(&self) {
        self.fresh.invalidate_all();
        self.known.invalidate_all();
    }
}

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A field is invalid (400).
    #[error("{message}")]
    Field {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// A unique field is taken (409).
    #[error("{message}")]
    Taken {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// Credentials refused (401).
    #[error(transparent)]
    Unauthorized(#[from] Unauthorized),
    /// Too many attempts (429) with seconds to wait.
    #[error("too many sign-in attempts for this email; retry in {0} s")]
    Throttled(u64),
    /// No such thing, or not the caller's (404; the same answer either way).
    #[error("{0}")]
    NotFound(String),
    /// The operation is not allowed in this state (409).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something else failed (hashing, a task).
    #[error("{0}")]
    Internal(String),
}

fn field(field: &'static str, message: impl Into<String>) -> AccountError {
    AccountError::Field {
        field,
        message: message.into(),
    }
}

/// Tokens handed out by a sign-in or refresh.
#[derive(Debug, Clone)]
pub struct Issued {
    /// JWT access token.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// Refresh token (single use).
    pub refresh_token: String,
    /// Who signed in.
    pub account: Account,
}

/// A new API key: its record and the key (shown once).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    /// As listed.
    pub record: ApiKeyRecord,
    /// The key.
    pub key: String,
}

impl CreatedKey {
    /// A key just stored, as its owner sees it once.
    fn new(stored: NewApiKey, key: String) -> Self {
        Self {
            record: ApiKeyRecord {
                id: stored.id,
                name: stored.name,
                prefix: stored.prefix,
                created_at: Utc::now(),
                last_used_at: None,
                expires_at: None,
                revoked_at: None,
            },
            key,
        }
    }
}

#[derive(Debug)]
struct KeyEntry {
    key_id: Uuid,
    user_id: Uuid,
    stored_hash: String,
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
}

struct Inner {
    config: AuthConfig,
    store: Arc<dyn Store>,
    tokens: Tokens,
    passwords: Passwords,
    /// Key hash → key (`None`: no such key, remembered briefly so guesses cost no query).
    keys: Remembered<String, Option<Arc<KeyEntry>>>,
    accounts: Remembered<Uuid, Arc<Account>>,
    /// Tripped when the store was found unreachable: lookups the last-known caches can answer
    /// then skip it, or each known caller's request would wait the pool's acquire timeout first.
    store_backoff: crate::backoff::Backoff,
    limiter: Limiter,
    meter: Meter,
    recorder: Recorder,
    oidc: Option<Oidc>,
}

/// Accounts and access; cheap to clone.
#[derive(Clone)]
pub struct Auth(Arc<Inner>);

impl Auth {
    /// Starts the usage meter, the history/audit writer and the history purge. Await the handle
    /// once every clone is dropped: the last usage counts and queued rows are written.
    pub async fn start(
        store: Arc<dyn Store>,
        redis: Option<ConnectionManager>,
        config: AuthConfig,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let secret = match &config.jwt_secret {
            Some(s) if s.len() >= 32 => s.clone(),
            Some(_) => anyhow::bail!("KWI_JWT_SECRET must be at least 32 characters"),
            None => store
                .server_secret("access_token_hs256", &secret::random_b64(48))
                .await
                .context("cannot read or create the token signing key")?,
        };
        let tokens = Tokens::new(secret.as_bytes());
        let oidc = match &config.oidc {
            Some(c) => Some(Oidc::new(c.clone(), secret.as_bytes()).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let passwords = {
            let (kib, passes) = (config.argon2_kib, config.argon2_passes);
            tokio::task::spawn_blocking(move || Passwords::new(kib, passes)).await?
        };
        let (meter, meter_task) = Meter::start(store.clone());
        let (recorder, recorder_task) = Recorder::start(store.clone());
        let purge_store = store.clone();
        let purge = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_EVERY);
            let holder = kwi_store::instance_id();
            loop {
                tick.tick().await;
                // Once across instances: the holder of the purge's lease (three periods long).
                let now = Utc::now();
                let until = now + chrono::Duration::from_std(PURGE_EVERY * 3).unwrap_or_default();
                match purge_store
                    .lead(kwi_store::PURGE_LEASE, holder, now, until)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the history purge's lease");
                        continue;
                    }
                }
                match purge_store.purge_history(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "search history past its retention deleted"),
                    Err(e) => tracing::warn!(error = %e, "cannot purge search history"),
                }
            }
        });
        let inner = Inner {
            config,
            store,
            tokens,
            passwords,
            keys: Remembered::new(KEY_CACHE_TTL),
            accounts: Remembered::new(ACCOUNT_CACHE_TTL),
            store_backoff: crate::backoff::Backoff::new(STORE_DOWN_GRACE),
            limiter: Limiter::new(redis),
            meter,
            recorder,
            oidc,
        };
        let done = tokio::spawn(async move {
            let _ = meter_task.await;
            let _ = recorder_task.await;
            purge.abort();
        });
        Ok((Self(Arc::new(inner)), done))
    }

    /// Whether requests must authenticate.
    pub fn enabled(&self) -> bool {
        self.0.config.enabled
    }

    /// Whether `/metrics` is public.
    pub fn metrics_public(&self) -> bool {
        self.0.config.metrics_public
    }

    /// The OpenID Connect relying party, when configured.
    pub fn oidc(&self) -> Option<&Oidc> {
        self.0.oidc.as_ref()
    }

    /// History and audit rows.
    pub fn recorder(&self) -> &Recorder {
        &self.0.recorder
    }

    /// The usage meter.
    pub fn meter(&self) -> &Meter {
        &self.0.meter
    }

    /// Whether rate limits are shared through Redis.
    pub fn limits_shared(&self) -> bool {
        self.0.limiter.shared()
    }

    /// Who the request's `Authorization` header says is calling.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Unauthorized> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(unauthorized(
                "credentials required: send `Authorization: Bearer <API key or access token>`",
            ));
        };
        if value.len() > MAX_CREDENTIAL_BYTES {
            return Err(unauthorized(format!(
                "the Authorization header is longer than {MAX_CREDENTIAL_BYTES} bytes"
            )));
        }
        let value = value
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not visible ASCII"))?;
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            let shown: String = scheme
                .chars()
                .take(16)
                .filter(char::is_ascii_alphanumeric)
                .collect();
            return Err(unauthorized(format!(
                "unsupported authorization scheme `{shown}`: use `Bearer <API key or access token>`"
            )));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(unauthorized("the Bearer credential is empty"));
        }
        if token.starts_with(KEY_PREFIX) {
            self.by_key(token).await
        } else if token.starts_with(REFRESH_PREFIX) {
            Err(unauthorized(
                "a refresh token is not a credential: exchange it at POST /v1/auth/refresh",
            ))
        } else if token.bytes().filter(|&b| b == b'.').count() == 2 {
            self.by_access_token(token).await
        } else {
            Err(unauthorized(
                "the Bearer credential is neither an API key (kwi_live_…) nor an access token",
            ))
        }
    }

    async fn by_key(&self, key: &str) -> Result<Principal, Unauthorized> {
        secret::check_api_key(key).map_err(|e| unauthorized(e.to_string()))?;
        let hash = secret::hash_secret(key);
        let entry = match self.0.keys.get(&hash) {
            Some(e) => e,
            None => {
                if self.store_seems_down()
                    && let Some(known) = self.0.keys.last_known(&hash)
                {
                    return self.admit_key(&hash, known).await;
                }
                let owner = match self.0.store.key_owner(&hash).await {
                    Ok(owner) => owner,
                    Err(e) => {
                        tracing::error!(error = %e, "API key lookup failed");
                        self.note_store_error(&e);
                        return match self.0.keys.last_known(&hash) {
                            Some(known) if e.is_transient() => self.admit_key(&hash, known).await,
                            _ => Err(unauthorized(STORE_DOWN)),
                        };
                    }
                };
                let entry = owner.map(|o| {
                    self.0
                        .accounts
                        .insert(o.account.id, Arc::new(o.account.clone()));
                    Arc::new(KeyEntry {
                        key_id: o.key_id,
                        user_id: o.account.id,
                        stored_hash: o.secret_hash,
                        expires_at: o.expires_at,
                        revoked: o.revoked_at.is_some(),
                    })
                });
                self.0.keys.insert(hash.clone(), entry.clone());
                entry
            }
        };
        self.admit_key(&hash, entry).await
    }

    /// Whether the store was found unreachable in the last [`STORE_DOWN_GRACE`].
    fn store_seems_down(&self) -> bool {
        self.0.store_backoff.skipping()
    }

    fn note_store_error(&self, e: &StoreError) {
        if e.is_transient() {
            self.0.store_backoff.trip();
        }
    }

    /// The checks on a key the store (or the last-known cache) returned.
    async fn admit_key(
        &self,
        hash: &str,
        entry: Option<Arc<KeyEntry>>,
    ) -> Result<Principal, Unauthorized> {
        let Some(entry) = entry.filter(|e| secret::hashes_equal(&e.stored_hash, hash)) else {
            return Err(unauthorized("unknown or revoked API key"));
        };
        if entry.revoked {
            return Err(unauthorized("unknown or revoked API key"));
        }
        if entry.expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(unauthorized(
                "this API key was rotated and its grace period has ended; use the new key",
            ));
        }
        let account = self.cached_account(entry.user_id).await?;
        if account.disabled {
            return Err(unauthorized("this account is disabled"));
        }
        self.0.meter.touch_key(entry.key_id);
        Ok(Principal::of(&account, Some(entry.key_id)))
    }

    async fn by_access_token(&self, token: &str) -> Result<Principal, Unauthorized> {
        let claims = self.0.tokens.verify(token).map_err(unauthorized)?;
        let account = self.cached_account(claims.sub).await?;
        if account.session_epoch != claims.ep {
            return Err(unauthorized(
                "the access token predates a password change; sign in again",
            ));
        }
        if account.disabled {
            return Err(unauthorized("this account is disabled"));
        }
        Ok(Principal::of(&account, None))
    }

    async fn cached_account(&self, id: Uuid) -> Result<Arc<Account>, Unauthorized> {
        if let Some(a) = self.0.accounts.get(&id) {
            return Ok(a);
        }
        if self.store_seems_down()
            && let Some(known) = self.0.accounts.last_known(&id)
        {
            return Ok(known);
        }
        let account = match self.0.store.account(id).await {
            Ok(account) => account,
            Err(e) => {
                tracing::error!(error = %e, "account lookup failed");
                self.note_store_error(&e);
                return match self.0.accounts.last_known(&id) {
                    Some(known) if e.is_transient() => Ok(known),
                    _ => Err(unauthorized(STORE_DOWN)),
                };
            }
        };
        let account = Arc::new(account.ok_or_else(|| unauthorized("the user no longer exists"))?);
        self.0.accounts.insert(id, account.clone());
        Ok(account)
    }

    /// The rate limiter's decision on one request of `p` (and counts the request).
    pub async fn admit(&self, p: &Principal) -> Decision {
        let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
        let d = self.0.limiter.check(p.subject(&mut buf), p.policy()).await;
        if d.allowed && !p.anonymous {
            self.0.meter.request(p.user_id);
        }
        d
    }

    /// Charges `n` keyword lookups to `p`'s monthly quota.
    pub async fn charge(&self, p: &Principal, n: usize) -> Result<(), OverQuota> {
        if p.anonymous {
            return Ok(());
        }
        self.0
            .meter
            .charge(p.user_id, n as i64, p.plan.monthly_lookups)
            .await
    }

    /// Records a lookup in `p`'s history (off the request path; `results`, the summary stored
    /// with it, is built only when the row is recorded: a repeat within a minute is not).
    pub fn record(
        &self,
        p: &Principal,
        platform: &str,
        keyword: &str,
        results: impl FnOnce() -> serde_json::Value,
    ) {
        if !p.anonymous {
            self.0
                .recorder
                .search(p.user_id, platform, keyword, results);
        }
    }

    /// Appends to the audit trail (off the request path).
    pub fn audit(
        &self,
        actor: Option<Uuid>,
        action: &str,
        target: Option<String>,
        detail: serde_json::Value,
    ) {
        self.0.recorder.audit(actor, action, target, detail, None);
    }

    fn issue(&self, account: Account, refresh_token: String) -> Issued {
        Issued {
            access_token: self.0.tokens.issue(account.id, account.session_epoch),
            expires_in: token::ACCESS_TTL_SECS,
            refresh_token,
            account,
        }
    }

    async fn new_family(&self, user: Uuid) -> Result<String, AccountError> {
        let (token, hash) = secret::new_refresh_token();
        self.0
            .store
            .insert_refresh_token(&NewRefreshToken {
                id: Uuid::now_v7(),
                user_id: user,
                family_id: Uuid::now_v7(),
                token_hash: hash,
                expires_at: Utc::now() + chrono::Duration::days(REFRESH_TTL_DAYS),
            })
            .await?;
        Ok(token)
    }

    async fn verify_password(
        &self,
        password: &str,
        hash: Option<String>,
    ) -> Result<bool, AccountError> {
        let passwords = self.0.passwords.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || passwords.verify(&password, hash.as_deref()))
            .await
            .map_err(|e| AccountError::Internal(e.to_string()))
    }

    async fn hash_password(&self, password: &str) -> Result<String, AccountError> {
        let passwords = self.0.passwords.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || passwords.hash(&password))
            .await
            .map_err(|e| AccountError::Internal(e.to_string()))?
            .map_err(|e| AccountError::Internal(e.to_string()))
    }

    /// Password sign-in: throttled per email (5 at once, then one every 12 s), every failure
    /// audited, the same answer and time for an unknown email as for a wrong password.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        ip: Option<String>,
    ) -> Result<Issued, AccountError> {
        let email = secret::normalise_email(email).map_err(|m| field("email", m))?;
        let gate = self
            .0
            .limiter
            .check(&format!("login:{email}"), LOGIN_POLICY)
            .await;
        if !gate.allowed {
            self.0
                .recorder
                .audit(None, "login.throttled", Some(email.clone()), json!({}), ip);
            return Err(AccountError::Throttled(gate.retry_after_secs));
        }
        let account = self.0.store.account_by_email(&email).await?;
        let hash = account.as_ref().and_then(|a| a.password_hash.clone());
        let ok = self.verify_password(password, hash).await?;
        let account = match account {
            Some(a) if ok && !a.disabled => a,
            other => {
                let reason = match &other {
                    Some(a) if a.disabled && ok => "disabled",
                    Some(_) => "wrong password",
                    None => "unknown email",
                };
                self.0.recorder.audit(
                    other.as_ref().map(|a| a.id),
                    "login.failed",
                    Some(email),
                    json!({ "reason": reason }),
                    ip,
                );
                return Err(unauthorized("wrong email or password").into());
            }
        };
        let refresh = self.new_family(account.id).await?;
        self.0.recorder.audit(
            Some(account.id),
            "login.succeeded",
            Some(account.email.clone()),
            json!({ "method": "password" }),
            ip,
        );
        Ok(self.issue(account, refresh))
    }

    /// Exchanges a refresh token for new tokens; reuse revokes every token of that sign-in.
    pub async fn refresh(&self, token: &str) -> Result<Issued, AccountError> {
        if !token.starts_with(REFRESH_PREFIX) || token.len() > 128 {
            return Err(unauthorized("not a refresh token").into());
        }
        let (next, next_hash) = secret::new_refresh_token();
        let replacement = NewRefreshToken {
            id: Uuid::now_v7(),
            user_id: Uuid::nil(),
            family_id: Uuid::nil(),
            token_hash: next_hash,
            expires_at: Utc::now() + chrono::Duration::days(REFRESH_TTL_DAYS),
        };
        match self
            .0
            .store
            .use_refresh_token(&secret::hash_secret(token), &replacement)
            .await?
        {
            RefreshOutcome::Rotated(user) => {
                let account = self
                    .0
                    .store
                    .account(user)
                    .await?
                    .filter(|a| !a.disabled)
                    .ok_or_else(|| unauthorized("this account is disabled"))?;
                Ok(self.issue(account, next))
            }
            RefreshOutcome::Unknown => Err(unauthorized("unknown refresh token").into()),
            RefreshOutcome::Expired => {
                Err(unauthorized("the refresh token has expired; sign in again").into())
            }
            RefreshOutcome::Reused => {
                self.0.recorder.audit(
                    None,
                    "refresh.reused",
                    None,
                    json!({ "effect": "family revoked" }),
                    None,
                );
                Err(unauthorized(
                    "this refresh token was already used or revoked; every session of that sign-in is now revoked",
                )
                .into())
            }
        }
    }

    /// Revokes the sign-in a refresh token belongs to.
    pub async fn logout(&self, token: &str) -> Result<(), AccountError> {
        if token.starts_with(REFRESH_PREFIX) {
            self.0
                .store
                .revoke_refresh_family(&secret::hash_secret(token))
                .await?;
        }
        Ok(())
    }

    /// Signs in someone the OpenID Connect provider vouched for: by a linked identity, else by a
    /// verified email (linking it), else as a new `customer` on `free`.
    pub async fn login_identity(&self, id: &Identity) -> Result<Issued, AccountError> {
        let user = match self.0.store.identity_user(&id.issuer, &id.subject).await? {
            Some(user) => user,
            None => {
                let email = id
                    .email
                    .as_deref()
                    .ok_or_else(|| unauthorized("the identity provider sent no email"))?;
                if !id.email_verified {
                    return Err(unauthorized(
                        "the identity provider has not verified this email; verify it there first",
                    )
                    .into());
                }
                let email = secret::normalise_email(email).map_err(|m| field("email", m))?;
                let user = match self.0.store.account_by_email(&email).await? {
                    Some(a) => a.id,
                    None => {
                        let (a, _) = self
                            .create_user(None, &email, None, Role::Customer, PlanName::Free, None)
                            .await?;
                        a.id
                    }
                };
                self.0
                    .store
                    .link_identity(user, &id.issuer, &id.subject, &email)
                    .await?;
                self.audit(
                    Some(user),
                    "oidc.linked",
                    Some(email),
                    json!({ "issuer": id.issuer }),
                );
                user
            }
        };
        let account = self
            .0
            .store
            .account(user)
            .await?
            .filter(|a| !a.disabled)
            .ok_or_else(|| unauthorized("this account is disabled"))?;
        let refresh = self.new_family(account.id).await?;
        self.audit(
            Some(account.id),
            "login.succeeded",
            Some(account.email.clone()),
            json!({ "method": "oidc", "issuer": id.issuer }),
        );
        Ok(self.issue(account, refresh))
    }

    /// Creates a user (and, with `key_name`, its first API key, returned once). `actor`: the admin
    /// doing it (`None`: the CLI or a first start).
    pub async fn create_user(
        &self,
        actor: Option<Uuid>,
        email: &str,
        password: Option<&str>,
        role: Role,
        plan: PlanName,
        key_name: Option<&str>,
    ) -> Result<(Account, Option<String>), AccountError> {
        let email = secret::normalise_email(email).map_err(|m| field("email", m))?;
        let password_hash = match password {
            Some(p) => {
                secret::check_password(p, &email).map_err(|e| field("password", e.to_string()))?;
                Some(self.hash_password(p).await?)
            }
            None => None,
        };
        let id = Uuid::now_v7();
        let key = key_name.map(|name| (name.to_string(), secret::new_api_key()));
        let new_key = key.as_ref().map(|(name, k)| NewApiKey {
            id: Uuid::now_v7(),
            user_id: id,
            name: name.clone(),
            prefix: k.prefix.clone(),
            secret_hash: k.hash.clone(),
        });
        let account = self
            .0
            .store
            .create_user(
                &NewUser {
                    id,
                    email: email.clone(),
                    password_hash,
                    role,
                    plan,
                },
                new_key.as_ref(),
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AccountError::Taken {
                    field: "email",
                    message: format!("a user with email {email} already exists"),
                },
                e => e.into(),
            })?;
        self.audit(
            actor,
            "user.created",
            Some(account.id.to_string()),
            json!({ "email": account.email, "role": role, "plan": plan }),
        );
        Ok((account, key.map(|(_, k)| k.key)))
    }

    /// Changes a user's role, plan or disabled flag (admin). An admin cannot demote or disable
    /// itself (so the service always keeps one).
    pub async fn update_user(
        &self,
        actor: &Principal,
        id: Uuid,
        patch: &UserPatch,
    ) -> Result<Account, AccountError> {
        if id == actor.user_id
            && (patch.disabled == Some(true) || patch.role.is_some_and(|r| r != Role::Admin))
        {
            return Err(AccountError::Conflict(
                "an admin cannot disable or demote itself; ask another admin".into(),
            ));
        }
        let account = self
            .0
            .store
            .update_account(id, patch)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("no user {id}")))?;
        self.0.accounts.invalidate(&id);
        self.audit(
            Some(actor.user_id),
            "user.updated",
            Some(id.to_string()),
            json!({ "role": patch.role, "plan": patch.plan, "disabled": patch.disabled }),
        );
        Ok(account)
    }

    /// Changes the caller's password: every earlier access token and refresh token stops working.
    pub async fn change_password(
        &self,
        p: &Principal,
        current: &str,
        new: &str,
    ) -> Result<(), AccountError> {
        let account = self
            .0
            .store
            .account(p.user_id)
            .await?
            .ok_or_else(|| AccountError::NotFound("no such user".into()))?;
        if account.password_hash.is_some()
            && !self
                .verify_password(current, account.password_hash.clone())
                .await?
        {
            return Err(field("current_password", "the current password is wrong"));
        }
        secret::check_password(new, &account.email)
            .map_err(|e| field("new_password", e.to_string()))?;
        let hash = self.hash_password(new).await?;
        self.0.store.set_password(p.user_id, &hash).await?;
        self.0.accounts.invalidate(&p.user_id);
        self.audit(Some(p.user_id), "password.changed", None, json!({}));
        Ok(())
    }

    /// A new API key for `user`.
    pub async fn create_key(&self, user: Uuid, name: &str) -> Result<CreatedKey, AccountError> {
        let name = check_key_name(name)?;
        let k = secret::new_api_key();
        let new = NewApiKey {
            id: Uuid::now_v7(),
            user_id: user,
            name,
            prefix: k.prefix,
            secret_hash: k.hash,
        };
        self.0.store.insert_api_key(&new).await?;
        self.audit(
            Some(user),
            "api_key.created",
            Some(new.id.to_string()),
            json!({ "name": new.name }),
        );
        Ok(CreatedKey::new(new, k.key))
    }

    /// Rotates `user`'s key `id`: a new key now, the old one valid for `grace_secs` more.
    pub async fn rotate_key(
        &self,
        user: Uuid,
        id: Uuid,
        grace_secs: i64,
    ) -> Result<CreatedKey, AccountError> {
        if !(0..=MAX_GRACE_SECS).contains(&grace_secs) {
            return Err(field(
                "grace_seconds",
                format!("a grace period is 0..={MAX_GRACE_SECS} seconds; got {grace_secs}"),
            ));
        }
        let old = self
            .0
            .store
            .api_keys(user)
            .await?
            .into_iter()
            .find(|k| k.id == id && k.revoked_at.is_none())
            .ok_or_else(|| AccountError::NotFound(format!("no live API key {id}")))?;
        let k = secret::new_api_key();
        let new = NewApiKey {
            id: Uuid::now_v7(),
            user_id: user,
            name: old.name,
            prefix: k.prefix,
            secret_hash: k.hash,
        };
        let until = Utc::now() + chrono::Duration::seconds(grace_secs);
        let old_hash = self
            .0
            .store
            .rotate_api_key(user, id, &new, until)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("no live API key {id}")))?;
        self.0.keys.invalidate(&old_hash);
        self.audit(
            Some(user),
            "api_key.rotated",
            Some(id.to_string()),
            json!({ "new_key": new.id, "grace_seconds": grace_secs }),
        );
        Ok(CreatedKey::new(new, k.key))
    }

    /// Revokes key `id` (only `user`'s when given; `None`: any, for the CLI), at once on this
    /// instance and, through Redis, on the others.
    pub async fn revoke_key(
        &self,
        actor: Option<Uuid>,
        user: Option<Uuid>,
        id: Uuid,
    ) -> Result<(), AccountError> {
        let (_, hash) = self
            .0
            .store
            .revoke_api_key(user, id)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("no live API key {id}")))?;
        self.0.keys.invalidate(&hash);
        self.0
            .limiter
            .mark_revoked(&id.to_string(), REVOKED_MARKER_SECS)
            .await;
        self.audit(actor, "api_key.revoked", Some(id.to_string()), json!({}));
        Ok(())
    }

    /// Replaces a plan's limits (admin). The `internal` plan is fixed.
    pub async fn update_plan(&self, actor: &Principal, plan: &Plan) -> Result<(), AccountError> {
        if plan.name == PlanName::Internal {
            return Err(AccountError::Conflict(
                "the internal plan is fixed (no quota, no practical rate limit)".into(),
            ));
        }
        self.0.store.update_plan(plan).await?;
        self.0.accounts.invalidate_all();
        self.audit(
            Some(actor.user_id),
            "plan.updated",
            Some(plan.name.to_string()),
            serde_json::to_value(plan).unwrap_or_default(),
        );
        Ok(())
    }

    /// Forgets cached keys and accounts (tests, after writing to the store directly).
    pub fn clear_caches(&self) {
        self.0.keys.invalidate_all();
        self.0.accounts.invalidate_all();
    }
}

/// A key's label: 1–100 characters, no control characters.
fn check_key_name(name: &str) -> Result<String, AccountError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(field(
            "name",
            "a key's name is 1–100 characters without control characters",
        ));
    }
    Ok(n.to_string())
}
