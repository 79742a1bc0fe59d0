//! Accounts: users and their plans, API keys, refresh tokens, OpenID Connect identities, usage
//! counters, search history and the audit trail. One trait, [`Accounts`], implemented once for
//! [`SqlStore`] over both backends (the SQL below is accepted by PostgreSQL and SQLite alike).
//!
//! Secrets never reach the store: API keys and refresh tokens are kept as SHA-256 hashes, passwords
//! as argon2id hashes made by the caller.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};
use uuid::Uuid;

use crate::sql::{Dialect, SqlStore};
use crate::{Result, StoreError};

/// What a user may do; ordered: each role may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Keyword data, forecasts, trends, search and batches within the plan; its own account.
    Customer,
    /// Also exports, the model registry and search analytics.
    Analyst,
    /// Also model activation, users, plans and the audit trail.
    Admin,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 3] = [Role::Customer, Role::Analyst, Role::Admin];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`: expected customer, analyst or admin"))
    }
}

/// The plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PlanName {
    /// The default for new sign-ups.
    Free,
    /// Paid.
    Pro,
    /// Paid, large.
    Business,
    /// Admins and the load benchmark: no quota, a rate limit too high to refuse (the limiter and
    /// the usage counting still run).
    Internal,
}

impl PlanName {
    /// Every plan.
    pub const ALL: [PlanName; 4] = [
        PlanName::Free,
        PlanName::Pro,
        PlanName::Business,
        PlanName::Internal,
    ];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanName::Free => "free",
            PlanName::Pro => "pro",
            PlanName::Business => "business",
            PlanName::Internal => "internal",
        }
    }
}

impl fmt::Display for PlanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PlanName {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        PlanName::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown plan `{s}`: expected free, pro, business or internal"))
    }
}

/// A plan's limits (table `plans`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    /// Plan name.
    pub name: PlanName,
    /// Keyword lookups per calendar month (UTC); `null`: unlimited. A batch of n keywords is n.
    pub monthly_lookups: Option<i64>,
    /// Sustained request rate.
    pub requests_per_minute: i64,
    /// Requests that may arrive at once before the rate applies.
    pub burst: i64,
    /// Most keywords in one batch request.
    pub max_batch: i64,
    /// Days the search history is kept.
    pub history_days: i64,
}

/// A user with the plan of its active subscription (`free` when it has none).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// User id.
    pub id: Uuid,
    /// Email, lower case.
    pub email: String,
    /// Role.
    pub role: Role,
    /// A disabled user's credentials are refused.
    pub disabled: bool,
    /// The plan in force.
    pub plan: Plan,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// argon2id PHC string; `None` for users who sign in only through OpenID Connect. Never
    /// serialized.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub password_hash: Option<String>,
    /// Bumped on every password change; access tokens carry it. Never serialized.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub session_epoch: i32,
}

/// A user to create (with an active subscription to `plan`).
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Email, already normalised (trimmed, lower case).
    pub email: String,
    /// argon2id hash, or `None` (OpenID Connect only).
    pub password_hash: Option<String>,
    /// Role.
    pub role: Role,
    /// Plan.
    pub plan: PlanName,
}

/// Fields an admin may change; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New role.
    pub role: Option<Role>,
    /// New plan.
    pub plan: Option<PlanName>,
    /// Disable or enable.
    pub disabled: Option<bool>,
}

/// An API key to store (its hash; the key is shown to its owner once and never stored).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// The owner's label.
    pub name: String,
    /// The visible start of the key (`kwi_live_` and 4 characters), for listings.
    pub prefix: String,
    /// Hex SHA-256 of the key.
    pub secret_hash: String,
}

/// An API key as listed to its owner.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyRecord {
    /// Key id.
    pub id: Uuid,
    /// The owner's label.
    pub name: String,
    /// The visible start of the key.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last authenticated a request (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When a rotated key stops working (the end of its grace period).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What an API key's hash resolves to.
#[derive(Debug, Clone)]
pub struct KeyOwner {
    /// The key's id.
    pub key_id: Uuid,
    /// The stored hash (compared in constant time by the caller).
    pub secret_hash: String,
    /// Grace period's end, for rotated keys.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set once revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The owner.
    pub account: Account,
}

/// A refresh token to store (its hash).
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// The login it descends from: reuse of any used token revokes the whole family.
    pub family_id: Uuid,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Used up and replaced by the given one; the owner.
    Rotated(Uuid),
    /// No such token.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Revoked (logout, password change) or already used: the family is revoked now.
    Reused,
}

/// One search-history row (table `keyword_searches`).
#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchRecord {
    /// Row id (UUID v7: time-ordered).
    pub id: Uuid,
    /// Who searched (`None` when the server runs without authentication).
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub user_id: Option<Uuid>,
    /// Platform.
    pub platform: String,
    /// Keyword (or search text).
    pub keyword: String,
    /// What was answered, in brief (route, status, values).
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::HashMap<String, serde_json::Value>))]
    pub results: Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// One audit-trail row (table `audit_log`).
#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Row id (UUID v7: time-ordered).
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Who acted (`None`: anonymous, e.g. a failed login, or the CLI).
    pub actor: Option<Uuid>,
    /// What happened, e.g. `login.failed`, `api_key.revoked`, `model.activated`.
    pub action: String,
    /// What it happened to (a user id, key id, model version, email).
    pub target: Option<String>,
    /// Details (never a secret).
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::HashMap<String, serde_json::Value>))]
    pub detail: Value,
    /// Client address, where known.
    pub ip: Option<String>,
}

/// One row of the search analytics: a keyword and how often it was looked up.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopSearch {
    /// Platform.
    pub platform: String,
    /// Keyword.
    pub keyword: String,
    /// Lookups in the period.
    pub searches: i64,
    /// Distinct users who looked it up.
    pub users: i64,
}

/// Usage added for one user and month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// User.
    pub user_id: Uuid,
    /// `YYYY-MM` (UTC).
    pub period: String,
    /// Keyword lookups.
    pub lookups: i64,
    /// Requests.
    pub requests: i64,
}

/// The accounts half of the store.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Number of users.
    async fn user_count(&self) -> Result<i64>;
    /// Creates a user, its subscription and (optionally) its first API key, all or nothing. A
    /// taken email is [`StoreError::Conflict`].
    async fn create_user(&self, user: &NewUser, key: Option<&NewApiKey>) -> Result<Account>;
    /// A user by id.
    async fn account(&self, id: Uuid) -> Result<Option<Account>>;
    /// A user by (normalised) email.
    async fn account_by_email(&self, email: &str) -> Result<Option<Account>>;
    /// Users in id order after `after`, at most `limit`.
    async fn accounts(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<Account>>;
    /// Changes role, plan or disabled flag in one transaction; `None` when there is no such user.
    async fn update_account(&self, id: Uuid, patch: &UserPatch) -> Result<Option<Account>>;
    /// Sets a password hash, bumps the session epoch (older access tokens are refused) and revokes
    /// every refresh token of the user, in one transaction.
    async fn set_password(&self, id: Uuid, hash: &str) -> Result<()>;
    /// Every plan.
    async fn plans(&self) -> Result<Vec<Plan>>;
    /// Replaces a plan's limits; false when there is no such plan.
    async fn update_plan(&self, plan: &Plan) -> Result<bool>;

    /// Stores an API key.
    async fn insert_api_key(&self, key: &NewApiKey) -> Result<()>;
    /// The key with this hash and its owner.
    async fn key_owner(&self, secret_hash: &str) -> Result<Option<KeyOwner>>;
    /// A user's keys, newest first.
    async fn api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKeyRecord>>;
    /// Rotates a user's live key: the old one expires at `old_expires_at` (or earlier if it already
    /// did), the new one is stored; all or nothing. `None` when the user has no such live key; else
    /// the old key's hash (for cache eviction).
    async fn rotate_api_key(
        &self,
        user_id: Uuid,
        id: Uuid,
        new: &NewApiKey,
        old_expires_at: DateTime<Utc>,
    ) -> Result<Option<String>>;
    /// Revokes a key (only `user_id`'s when given); the revoked key's owner and hash, or `None`
    /// when there is no such live key.
    async fn revoke_api_key(
        &self,
        user_id: Option<Uuid>,
        id: Uuid,
    ) -> Result<Option<(Uuid, String)>>;
    /// Records when keys were last used.
    async fn touch_api_keys(&self, used: &[(Uuid, DateTime<Utc>)]) -> Result<()>;

    /// Stores a refresh token.
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<()>;
    /// Uses a refresh token up and stores its replacement (same family), all or nothing; reuse of
    /// a used or revoked token revokes the family.
    async fn use_refresh_token(
        &self,
        token_hash: &str,
        replacement: &NewRefreshToken,
    ) -> Result<RefreshOutcome>;
    /// Revokes the family of this token (logout); false when there is no such token.
    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<bool>;

    /// The user linked to an OpenID Connect identity.
    async fn identity_user(&self, issuer: &str, subject: &str) -> Result<Option<Uuid>>;
    /// Links an identity to a user (no-op if already linked).
    async fn link_identity(
        &self,
        user_id: Uuid,
        issuer: &str,
        subject: &str,
        email: &str,
    ) -> Result<()>;

    /// Adds usage (one transaction).
    async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<()>;
    /// A user's lookups and requests in a month.
    async fn usage(&self, user_id: Uuid, period: &str) -> Result<(i64, i64)>;

    /// Appends history and audit rows (one transaction).
    async fn insert_events(&self, searches: &[SearchRecord], audit: &[AuditRecord]) -> Result<()>;
    /// A user's history, newest first, older than `before` (an id).
    async fn search_history(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<SearchRecord>>;
    /// Deletes one history row (`Some(id)`) or all of them; rows deleted.
    async fn delete_history(&self, user_id: Uuid, id: Option<Uuid>) -> Result<u64>;
    /// Deletes history older than each user's plan keeps it; rows deleted.
    async fn purge_history(&self, now: DateTime<Utc>) -> Result<u64>;
    /// Audit rows, newest first, older than `before`, of one action when given.
    async fn audit(
        &self,
        before: Option<Uuid>,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>>;
    /// Most looked-up keywords since `from`.
    async fn top_searches(
        &self,
        platform: Option<&str>,
        from: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<TopSearch>>;

    /// The shared secret `name`: `candidate` is stored when there is none yet; the stored one is
    /// returned either way (so every instance signs with the same key).
    async fn server_secret(&self, name: &str, candidate: &str) -> Result<String>;
}

/// The columns of [`StoredAccount`], joined with the plan in force. A macro so the statements
/// below stay `&'static str` (sqlx takes no other).
macro_rules! account_select {
    ($tail:literal) => {
        concat!(
            "SELECT u.id, u.email, u.password_hash, u.role, u.disabled, u.session_epoch, u.created_at, \
             p.name AS plan, p.monthly_lookups, p.requests_per_minute, p.burst, p.max_batch, p.history_days \
             FROM users u LEFT JOIN subscriptions s ON s.user_id = u.id AND s.status = 'active' \
             JOIN plans p ON p.name = COALESCE(s.plan, 'free') ",
            $tail
        )
    };
}

const ACCOUNT_BY_ID: &str = account_select!("WHERE u.id = $1");
const ACCOUNT_BY_EMAIL: &str = account_select!("WHERE u.email = $1");
const ACCOUNTS_PAGE: &str =
    account_select!("WHERE ($1 IS NULL OR u.id > $1) ORDER BY u.id LIMIT $2");
const PLANS: &str = "SELECT name AS plan, monthly_lookups, requests_per_minute, burst, max_batch, history_days \
    FROM plans ORDER BY requests_per_minute, name";

/// An account row as stored; role and plan are text, checked by [`StoredAccount::into_account`].
#[derive(sqlx::FromRow)]
struct StoredAccount {
    id: Uuid,
    email: String,
    password_hash: Option<String>,
    role: String,
    disabled: bool,
    session_epoch: i32,
    created_at: DateTime<Utc>,
    #[sqlx(flatten)]
    plan: StoredPlan,
}

#[derive(sqlx::FromRow)]
struct StoredPlan {
    #[sqlx(rename = "plan")]
    name: String,
    monthly_lookups: Option<i64>,
    requests_per_minute: i64,
    burst: i64,
    max_batch: i64,
    history_days: i64,
}

impl StoredPlan {
    fn into_plan(self) -> Result<Plan> {
        Ok(Plan {
            name: self.name.parse().map_err(StoreError::Corrupt)?,
            monthly_lookups: self.monthly_lookups,
            requests_per_minute: self.requests_per_minute,
            burst: self.burst,
            max_batch: self.max_batch,
            history_days: self.history_days,
        })
    }
}

impl StoredAccount {
    fn into_account(self) -> Result<Account> {
        Ok(Account {
            id: self.id,
            email: self.email,
            role: self.role.parse().map_err(StoreError::Corrupt)?,
            disabled: self.disabled,
            plan: self.plan.into_plan()?,
            created_at: self.created_at,
            password_hash: self.password_hash,
            session_epoch: self.session_epoch,
        })
    }
}

#[derive(sqlx::FromRow)]
struct StoredKey {
    id: Uuid,
    user_id: Uuid,
    secret_hash: String,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct StoredRefresh {
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
}

/// Rows a statement changed (sqlx's generic `QueryResult` has no accessor; each backend's has).
trait Affected {
    fn affected<DB: Dialect<QueryResult = Self>>(&self) -> u64;
}

impl<T> Affected for T {
    fn affected<DB: Dialect<QueryResult = Self>>(&self) -> u64 {
        DB::rows_affected(self)
    }
}

/// A unique-constraint violation becomes [`StoreError::Conflict`] naming `what`.
fn conflict(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(what.to_string())
        }
        _ => e.into(),
    }
}

/// First instant of the calendar month holding `t` and of the next one (subscriptions' periods,
/// usage counters' months, quota renewal).
pub fn month_bounds(t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    use chrono::{Datelike, NaiveDate, TimeZone};
    let start = NaiveDate::from_ymd_opt(t.year(), t.month(), 1).expect("valid month");
    let next = start
        .checked_add_months(chrono::Months::new(1))
        .expect("in range");
    let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"));
    (at(start), at(next))
}

#[async_trait]
impl<DB: Dialect> Accounts for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q, 'r> String: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q, 'r> bool: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<bool>: Encode<'q, DB>,
    for<'q, 'r> i32: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> i64: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q, 'r> DateTime<Utc>: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB>,
    for<'q, 'r> Uuid: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Json<&'q Value>: Encode<'q, DB> + Type<DB>,
    for<'r> Json<Value>: Decode<'r, DB> + Type<DB>,
{
    async fn user_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn create_user(&self, user: &NewUser, key: Option<&NewApiKey>) -> Result<Account> {
        let now = Utc::now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, disabled, session_epoch, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(user.id)
        .bind(user.email.as_str())
        .bind(user.password_hash.clone())
        .bind(user.role.as_str())
        .bind(false)
        .bind(0_i32)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, "email"))?;
        insert_subscription(&mut *tx, user.id, user.plan, now).await?;
        if let Some(k) = key {
            insert_key(&mut *tx, k, now).await?;
        }
        tx.commit().await?;
        self.account(user.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a created user cannot be read back".into()))
    }

    async fn account(&self, id: Uuid) -> Result<Option<Account>> {
        sqlx::query_as::<_, StoredAccount>(ACCOUNT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(StoredAccount::into_account)
            .transpose()
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<Account>> {
        sqlx::query_as::<_, StoredAccount>(ACCOUNT_BY_EMAIL)
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
            .map(StoredAccount::into_account)
            .transpose()
    }

    async fn accounts(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<Account>> {
        sqlx::query_as::<_, StoredAccount>(ACCOUNTS_PAGE)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(StoredAccount::into_account)
            .collect()
    }

    async fn update_account(&self, id: Uuid, patch: &UserPatch) -> Result<Option<Account>> {
        let now = Utc::now();
        let mut tx = self.begin_write().await?;
        let found = sqlx::query(
            "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), updated_at = $4 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(patch.role.map(Role::as_str))
        .bind(patch.disabled)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .affected::<DB>();
        if found == 0 {
            return Ok(None);
        }
        if let Some(plan) = patch.plan {
            let changed = sqlx::query(
                "UPDATE subscriptions SET plan = $2 WHERE user_id = $1 AND status = 'active'",
            )
            .bind(id)
            .bind(plan.as_str())
            .execute(&mut *tx)
            .await?
            .affected::<DB>();
            if changed == 0 {
                insert_subscription(&mut *tx, id, plan, now).await?;
            }
        }
        tx.commit().await?;
        self.account(id).await
    }

    async fn set_password(&self, id: Uuid, hash: &str) -> Result<()> {
        let now = Utc::now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE users SET password_hash = $2, session_epoch = session_epoch + 1, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn plans(&self) -> Result<Vec<Plan>> {
        sqlx::query_as::<_, StoredPlan>(PLANS)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(StoredPlan::into_plan)
            .collect()
    }

    async fn update_plan(&self, plan: &Plan) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE plans SET monthly_lookups = $2, requests_per_minute = $3, burst = $4, max_batch = $5, \
             history_days = $6, updated_at = $7 WHERE name = $1",
        )
        .bind(plan.name.as_str())
        .bind(plan.monthly_lookups)
        .bind(plan.requests_per_minute)
        .bind(plan.burst)
        .bind(plan.max_batch)
        .bind(plan.history_days)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?
        .affected::<DB>();
        Ok(n == 1)
    }

    async fn insert_api_key(&self, key: &NewApiKey) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_key(&mut *conn, key, Utc::now()).await
    }

    async fn key_owner(&self, secret_hash: &str) -> Result<Option<KeyOwner>> {
        let Some(k) = sqlx::query_as::<_, StoredKey>(
            "SELECT id, user_id, secret_hash, expires_at, revoked_at FROM api_keys WHERE secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let Some(account) = self.account(k.user_id).await? else {
            return Ok(None);
        };
        Ok(Some(KeyOwner {
            key_id: k.id,
            secret_hash: k.secret_hash,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            account,
        }))
    }

    async fn api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKeyRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, name, prefix, created_at, last_used_at, expires_at, revoked_at FROM api_keys \
             WHERE user_id = $1 ORDER BY id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn rotate_api_key(
        &self,
        user_id: Uuid,
        id: Uuid,
        new: &NewApiKey,
        old_expires_at: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let now = Utc::now();
        let mut tx = self.begin_write().await?;
        let old: Option<String> = sqlx::query_scalar(
            "UPDATE api_keys SET expires_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $3) RETURNING secret_hash",
        )
        .bind(id)
        .bind(user_id)
        .bind(old_expires_at.max(now))
        .fetch_optional(&mut *tx)
        .await?;
        if old.is_none() {
            return Ok(None);
        }
        insert_key(&mut *tx, new, now).await?;
        tx.commit().await?;
        Ok(old)
    }

    async fn revoke_api_key(
        &self,
        user_id: Option<Uuid>,
        id: Uuid,
    ) -> Result<Option<(Uuid, String)>> {
        Ok(sqlx::query_as(
            "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND ($2 IS NULL OR user_id = $2) \
             AND revoked_at IS NULL RETURNING user_id, secret_hash",
        )
        .bind(id)
        .bind(user_id)
        .bind(Utc::now())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn touch_api_keys(&self, used: &[(Uuid, DateTime<Utc>)]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (id, at) in used {
            sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                .bind(*id)
                .bind(*at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_refresh(&mut *conn, token, Utc::now()).await
    }

    async fn use_refresh_token(
        &self,
        token_hash: &str,
        replacement: &NewRefreshToken,
    ) -> Result<RefreshOutcome> {
        let now = Utc::now();
        let mut tx = self.begin_write().await?;
        // The claim is the transaction's first statement, a write: on SQLite it takes the write
        // lock at once (a read first could not upgrade while another writer commits), and of two
        // concurrent uses only one can set `used_at`.
        let claimed = sqlx::query_as::<_, StoredRefresh>(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL \
             RETURNING user_id, family_id, expires_at",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(old) = claimed else {
            let family: Option<Uuid> =
                sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(family) = family else {
                return Ok(RefreshOutcome::Unknown);
            };
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
            )
            .bind(family)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Reused);
        };
        if old.expires_at <= now {
            tx.commit().await?;
            return Ok(RefreshOutcome::Expired);
        }
        let next = NewRefreshToken {
            user_id: old.user_id,
            family_id: old.family_id,
            ..replacement.clone()
        };
        insert_refresh(&mut *tx, &next, now).await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated(old.user_id))
    }

    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<bool> {
        let family: Option<Uuid> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        let Some(family) = family else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    async fn identity_user(&self, issuer: &str, subject: &str) -> Result<Option<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM oauth_identities WHERE issuer = $1 AND subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn link_identity(
        &self,
        user_id: Uuid,
        issuer: &str,
        subject: &str,
        email: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_identities (id, user_id, issuer, subject, email, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (issuer, subject) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(issuer)
        .bind(subject)
        .bind(email)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<()> {
        let now = Utc::now();
        let mut tx = self.begin_write().await?;
        for d in deltas {
            sqlx::query(
                "INSERT INTO usage_counters (user_id, period, lookups, requests, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (user_id, period) DO UPDATE SET lookups = usage_counters.lookups + excluded.lookups, \
                 requests = usage_counters.requests + excluded.requests, updated_at = excluded.updated_at",
            )
            .bind(d.user_id)
            .bind(d.period.as_str())
            .bind(d.lookups)
            .bind(d.requests)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn usage(&self, user_id: Uuid, period: &str) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT lookups, requests FROM usage_counters WHERE user_id = $1 AND period = $2",
        )
        .bind(user_id)
        .bind(period)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or((0, 0)))
    }

    async fn insert_events(&self, searches: &[SearchRecord], audit: &[AuditRecord]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for s in searches {
            sqlx::query(
                "INSERT INTO keyword_searches (id, user_id, platform, keyword, results, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(s.id)
            .bind(s.user_id)
            .bind(s.platform.as_str())
            .bind(s.keyword.as_str())
            .bind(Json(&s.results))
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        }
        for a in audit {
            sqlx::query(
                "INSERT INTO audit_log (id, at, actor, action, target, detail, ip) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(a.id)
            .bind(a.at)
            .bind(a.actor)
            .bind(a.action.as_str())
            .bind(a.target.clone())
            .bind(Json(&a.detail))
            .bind(a.ip.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn search_history(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<SearchRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, platform, keyword, results, created_at FROM keyword_searches \
             WHERE user_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(user_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn delete_history(&self, user_id: Uuid, id: Option<Uuid>) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM keyword_searches WHERE user_id = $1 AND ($2 IS NULL OR id = $2)",
        )
        .bind(user_id)
        .bind(id)
        .execute(&self.pool)
        .await?
        .affected::<DB>())
    }

    async fn purge_history(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut deleted = 0;
        for plan in self.plans().await? {
            let cutoff = now - chrono::Duration::days(plan.history_days);
            deleted += sqlx::query(
                "DELETE FROM keyword_searches WHERE created_at < $1 AND user_id IN (SELECT u.id FROM users u \
                 LEFT JOIN subscriptions s ON s.user_id = u.id AND s.status = 'active' WHERE COALESCE(s.plan, 'free') = $2)",
            )
            .bind(cutoff)
            .bind(plan.name.as_str())
            .execute(&self.pool)
            .await?
            .affected::<DB>();
        }
        Ok(deleted)
    }

    async fn audit(
        &self,
        before: Option<Uuid>,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, at, actor, action, target, detail, ip FROM audit_log \
             WHERE ($1 IS NULL OR id < $1) AND ($2 IS NULL OR action = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(before)
        .bind(action)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn top_searches(
        &self,
        platform: Option<&str>,
        from: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<TopSearch>> {
        Ok(sqlx::query_as(
            "SELECT platform, keyword, COUNT(*) AS searches, COUNT(DISTINCT user_id) AS users FROM keyword_searches \
             WHERE created_at >= $1 AND ($2 IS NULL OR platform = $2) GROUP BY platform, keyword \
             ORDER BY searches DESC, platform, keyword LIMIT $3",
        )
        .bind(from)
        .bind(platform)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn server_secret(&self, name: &str, candidate: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// Inserts an API key on `conn` (inside the caller's transaction where there is one).
async fn insert_key<DB: Dialect>(
    conn: &mut DB::Connection,
    k: &NewApiKey,
    now: DateTime<Utc>,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, prefix, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(k.id)
    .bind(k.user_id)
    .bind(k.name.as_str())
    .bind(k.prefix.as_str())
    .bind(k.secret_hash.as_str())
    .bind(now)
    .execute(conn)
    .await
    .map_err(|e| conflict(e, "api key"))?;
    Ok(())
}

/// Inserts an active subscription of `user` to `plan` for the calendar month holding `now`.
async fn insert_subscription<DB: Dialect>(
    conn: &mut DB::Connection,
    user: Uuid,
    plan: PlanName,
    now: DateTime<Utc>,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
{
    let (start, end) = month_bounds(now);
    sqlx::query(
        "INSERT INTO subscriptions (id, user_id, plan, status, current_period_start, current_period_end, created_at) \
         VALUES ($1, $2, $3, 'active', $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(plan.as_str())
    .bind(start)
    .bind(end)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts a refresh token on `conn`.
async fn insert_refresh<DB: Dialect>(
    conn: &mut DB::Connection,
    t: &NewRefreshToken,
    now: DateTime<Utc>,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(t.id)
    .bind(t.user_id)
    .bind(t.family_id)
    .bind(t.token_hash.as_str())
    .bind(now)
    .bind(t.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_privilege_and_round_trip() {
        assert!(Role::Customer < Role::Analyst && Role::Analyst < Role::Admin);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().unwrap_err().contains("customer"));
        for p in PlanName::ALL {
            assert_eq!(p.as_str().parse::<PlanName>().unwrap(), p);
        }
    }

    #[test]
    fn month_bounds_cover_the_calendar_month() {
        let t = "2026-12-31T23:59:59Z".parse::<DateTime<Utc>>().unwrap();
        let (s, e) = month_bounds(t);
        assert_eq!(s.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(e.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
