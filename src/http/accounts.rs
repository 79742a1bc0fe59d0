//! Sign-in, the caller's own account (`/v1/me…`), administration (`/v1/admin…`) and search
//! analytics. Handlers parse and answer; the work is in [`crate::auth::Auth`].
//!
//! Another user's key or history row answers 404, exactly as one that does not exist: ids are
//! always looked up together with the caller's user id.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, Utc};
use kwi_store::{
    Account, ApiKeyRecord, AuditRecord, Plan, PlanName, Role, SearchRecord, TopSearch, UserPatch,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ApiError;
use super::error::ErrorResponse;
use super::extract::{self, Path, Query};
use crate::app::AppState;
use crate::auth::{DEFAULT_GRACE_SECS, Issued, Principal, oidc};

/// Most rows per page of history, users and audit.
pub const MAX_PAGE: i64 = 100;
/// Default rows per page.
pub const DEFAULT_PAGE: i64 = 20;

/// Tokens from a sign-in or refresh.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokensBody {
    /// JWT access token: `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds the access token is valid.
    expires_in: i64,
    /// Single-use refresh token for `POST /v1/auth/refresh`.
    refresh_token: String,
    /// Who signed in.
    user: Account,
}

impl From<Issued> for TokensBody {
    fn from(i: Issued) -> Self {
        Self {
            access_token: i.access_token,
            token_type: "Bearer",
            expires_in: i.expires_in,
            refresh_token: i.refresh_token,
            user: i.account,
        }
    }
}

/// Body of `POST /v1/auth/login`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email.
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f]+(\.[^@\s.\x00-\x1f\x7f-\x9f]+)+$"
    )]
    email: String,
    /// Password.
    #[schema(max_length = 256)]
    password: String,
}

fn client_ip(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().chars().take(64).collect())
}

/// `POST /v1/auth/login`: email and password for tokens.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, description = "Signed in", body = TokensBody),
              (status = 400, description = "Unreadable body or a malformed email", body = ErrorResponse),
              (status = 401, description = "Wrong email or password (the same answer for both)", body = ErrorResponse),
              (status = 413, description = "Body too large", body = ErrorResponse),
              (status = 415, description = "Not JSON", body = ErrorResponse),
              (status = 429, description = "Too many attempts for this email", body = super::access::Problem,
               content_type = "application/problem+json")))]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    extract::Json(req): extract::Json<LoginRequest>,
) -> Result<Json<TokensBody>, ApiError> {
    let issued = state
        .auth
        .login(&req.email, &req.password, client_ip(&headers))
        .await?;
    Ok(Json(issued.into()))
}

/// Body of `POST /v1/auth/refresh` and `/v1/auth/logout`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from a sign-in or the last refresh.
    #[schema(max_length = 128)]
    refresh_token: String,
}

/// `POST /v1/auth/refresh`: a refresh token for new tokens (it is used up; using it again revokes
/// every token of that sign-in).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, description = "New tokens", body = TokensBody),
              (status = 400, description = "Unreadable body", body = ErrorResponse),
              (status = 401, description = "Unknown, expired, used or revoked refresh token", body = ErrorResponse),
              (status = 413, description = "Body too large", body = ErrorResponse),
              (status = 415, description = "Not JSON", body = ErrorResponse)))]
pub async fn refresh(
    State(state): State<AppState>,
    extract::Json(req): extract::Json<RefreshRequest>,
) -> Result<Json<TokensBody>, ApiError> {
    Ok(Json(state.auth.refresh(&req.refresh_token).await?.into()))
}

/// `POST /v1/auth/logout`: revokes the sign-in the refresh token belongs to.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Signed out (also when the token was unknown)"),
              (status = 400, description = "Unreadable body", body = ErrorResponse),
              (status = 413, description = "Body too large", body = ErrorResponse),
              (status = 415, description = "Not JSON", body = ErrorResponse)))]
pub async fn logout(
    State(state): State<AppState>,
    extract::Json(req): extract::Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    if req.refresh_token.len() > 128 {
        return Err(ApiError::BadRequest {
            field: "refresh_token",
            message: "a refresh token has at most 128 characters".into(),
        });
    }
    state.auth.logout(&req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which sign-in methods the server offers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Providers {
    /// Whether the data routes need credentials (`false` when the server runs with `--auth off`:
    /// the dashboard then skips its sign-in view).
    required: bool,
    /// Email and password (`POST /v1/auth/login`).
    password: bool,
    /// OpenID Connect.
    oidc: OidcProvider,
}

/// The OpenID Connect provider, if configured.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OidcProvider {
    /// Whether one is configured.
    enabled: bool,
    /// Where a browser starts the login.
    login_url: &'static str,
}

/// `GET /v1/auth/providers`.
#[utoipa::path(get, path = "/v1/auth/providers", tag = "auth",
    responses((status = 200, body = Providers)))]
pub async fn providers(State(state): State<AppState>) -> Json<Providers> {
    Json(Providers {
        required: state.auth.enabled(),
        password: true,
        oidc: OidcProvider {
            enabled: state.auth.oidc().is_some(),
            login_url: "/v1/auth/oidc/login",
        },
    })
}

/// Query of `GET /v1/auth/oidc/login`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OidcLoginQuery {
    /// Path on this site to return to after signing in (default `/`).
    #[param(max_length = 512)]
    return_to: Option<String>,
}

/// A return path: on this site only (no scheme, no `//host`), else `/`.
fn safe_return(p: Option<&str>) -> String {
    match p {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 512
                && !p.chars().any(char::is_control) =>
        {
            p.to_string()
        }
        _ => "/".into(),
    }
}

fn oidc_error(e: oidc::OidcError) -> ApiError {
    match e {
        oidc::OidcError::Provider(m) => {
            tracing::warn!(error = %m, "OpenID Connect provider failed");
            ApiError::Unavailable("the identity provider is unavailable; retry later".into())
        }
        oidc::OidcError::State(m) => ApiError::BadRequest {
            field: "state",
            message: m.into(),
        },
        oidc::OidcError::Token(m) => ApiError::Unauthorized(m),
    }
}

/// `GET /v1/auth/oidc/login`: sends the browser to the identity provider.
#[utoipa::path(get, path = "/v1/auth/oidc/login", tag = "auth",
    params(OidcLoginQuery),
    responses((status = 303, description = "To the provider's authorization endpoint; sets the `kwi_oidc` cookie",
                 headers(("location" = String), ("set-cookie" = String))),
              (status = 400, description = "Unreadable query", body = ErrorResponse),
              (status = 404, description = "No provider is configured", body = ErrorResponse),
              (status = 503, description = "The provider cannot be reached", body = ErrorResponse)))]
pub async fn oidc_login(
    State(state): State<AppState>,
    Query(q): Query<OidcLoginQuery>,
) -> Result<Response, ApiError> {
    let oidc = state
        .auth
        .oidc()
        .ok_or_else(|| ApiError::NotFound("no OpenID Connect provider is configured".into()))?;
    let (url, cookie) = oidc
        .start(&safe_return(q.return_to.as_deref()))
        .await
        .map_err(oidc_error)?;
    let cookie = format!(
        "{}={cookie}; HttpOnly; SameSite=Lax; Path=/v1/auth/oidc; Max-Age={}",
        oidc::COOKIE,
        oidc::LOGIN_TTL_SECS
    );
    let mut res = Redirect::to(&url).into_response();
    if let Ok(v) = cookie.parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Query of the provider's redirect back.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OidcCallbackQuery {
    /// Authorization code.
    #[param(max_length = 2048)]
    code: Option<String>,
    /// The state sent with the login.
    #[param(max_length = 512)]
    state: Option<String>,
    /// Set by the provider when the login failed.
    #[param(max_length = 256)]
    error: Option<String>,
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `GET /v1/auth/oidc/callback`: the provider's redirect back; signs in and returns to the
/// dashboard with the tokens in the URL fragment (never sent to a server, never logged).
#[utoipa::path(get, path = "/v1/auth/oidc/callback", tag = "auth",
    params(OidcCallbackQuery),
    responses((status = 303, description = "Signed in: to `<return_to>#access_token=…&refresh_token=…&expires_in=900&token_type=Bearer`",
                 headers(("location" = String))),
              (status = 400, description = "Missing code or state, or a state that does not match the login cookie", body = ErrorResponse),
              (status = 401, description = "The provider refused, or did not verify the email (a browser, sending `Accept: text/html`, is redirected to `/#login_error=<why>` instead of every error here)", body = ErrorResponse),
              (status = 404, description = "No provider is configured", body = ErrorResponse),
              (status = 503, description = "The provider cannot be reached", body = ErrorResponse)))]
pub async fn oidc_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<OidcCallbackQuery>,
) -> Result<Response, ApiError> {
    // A browser (it asks for HTML) goes back to the dashboard, which shows why on its sign-in view;
    // an API client gets the JSON error.
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    match finish_oidc(&state, &headers, q).await {
        Err(e) if browser => {
            let why: String = percent_encoding::utf8_percent_encode(
                &e.public_message(),
                percent_encoding::NON_ALPHANUMERIC,
            )
            .collect();
            Ok(Redirect::to(&format!("/#login_error={why}")).into_response())
        }
        other => other,
    }
}

async fn finish_oidc(
    state: &AppState,
    headers: &HeaderMap,
    q: OidcCallbackQuery,
) -> Result<Response, ApiError> {
    let oidc = state
        .auth
        .oidc()
        .ok_or_else(|| ApiError::NotFound("no OpenID Connect provider is configured".into()))?;
    if let Some(e) = q.error {
        let shown: String = e
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(ApiError::Unauthorized(format!(
            "the identity provider refused the login: {shown}"
        )));
    }
    let (Some(code), Some(st)) = (q.code.as_deref(), q.state.as_deref()) else {
        return Err(ApiError::BadRequest {
            field: "code",
            message: "the callback needs `code` and `state`".into(),
        });
    };
    let (identity, return_to) = oidc
        .finish(cookie_value(headers, oidc::COOKIE), st, code)
        .await
        .map_err(oidc_error)?;
    let issued = state.auth.login_identity(&identity).await?;
    let location = format!(
        "{return_to}#access_token={}&refresh_token={}&expires_in={}&token_type=Bearer",
        issued.access_token, issued.refresh_token, issued.expires_in
    );
    let mut res = Redirect::to(&location).into_response();
    // The login is over: the cookie is cleared.
    if let Ok(v) = format!(
        "{}=; HttpOnly; SameSite=Lax; Path=/v1/auth/oidc; Max-Age=0",
        oidc::COOKIE
    )
    .parse()
    {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// `GET /v1/me`: the caller's account and plan.
#[utoipa::path(get, path = "/v1/me", tag = "account",
    responses((status = 200, body = Account)))]
pub async fn me(State(state): State<AppState>, p: Principal) -> Result<Json<Account>, ApiError> {
    let account = state
        .store
        .account(p.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such user".into()))?;
    Ok(Json(account))
}

/// Body of `POST /v1/me/password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now (ignored for users who have none: OpenID Connect sign-ups).
    #[schema(max_length = 256)]
    current_password: String,
    /// The new one: 10–256 characters, at least 5 different, not a well-known one.
    #[schema(min_length = 10, max_length = 256)]
    new_password: String,
}

/// `POST /v1/me/password`: every access and refresh token issued before stops working.
#[utoipa::path(post, path = "/v1/me/password", tag = "account",
    request_body = PasswordChange,
    responses((status = 204, description = "Changed"),
              (status = 400, description = "Wrong current password, or a weak new one (the field is named)", body = ErrorResponse),
              (status = 413, description = "Body too large", body = ErrorResponse),
              (status = 415, description = "Not JSON", body = ErrorResponse)))]
pub async fn change_password(
    State(state): State<AppState>,
    p: Principal,
    extract::Json(req): extract::Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    // Checked even where it is ignored (a user with no password), as the description says.
    let max = crate::auth::secret::MAX_PASSWORD;
    if req.current_password.chars().count() > max {
        return Err(ApiError::BadRequest {
            field: "current_password",
            message: format!("a password has at most {max} characters"),
        });
    }
    state
        .auth
        .change_password(&p, &req.current_password, &req.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `GET /v1/me/usage`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// Calendar month (UTC), `YYYY-MM`.
    period: String,
    /// Its first day.
    period_start: NaiveDate,
    /// The first day of the next (when the quota renews).
    period_end: NaiveDate,
    /// Keyword lookups this month (a batch of n keywords is n).
    lookups: i64,
    /// Requests this month.
    requests: i64,
    /// The plan's monthly lookups (`null`: unlimited).
    monthly_lookups: Option<i64>,
    /// Lookups left (`null`: unlimited).
    remaining: Option<i64>,
    /// The plan's rate limit.
    requests_per_minute: i64,
    /// The plan.
    plan: PlanName,
}

/// `GET /v1/me/usage`: this month's lookups against the plan's quota.
#[utoipa::path(get, path = "/v1/me/usage", tag = "account",
    responses((status = 200, body = Usage)))]
pub async fn usage(State(state): State<AppState>, p: Principal) -> Result<Json<Usage>, ApiError> {
    let now = Utc::now();
    let (lookups, requests) = state.auth.meter().used(p.user_id).await?;
    let (start, end) = kwi_store::month_bounds(now);
    Ok(Json(Usage {
        period: crate::auth::meter::period_of(now),
        period_start: start.date_naive(),
        period_end: end.date_naive(),
        lookups,
        requests,
        monthly_lookups: p.plan.monthly_lookups,
        remaining: p.plan.monthly_lookups.map(|l| (l - lookups).max(0)),
        requests_per_minute: p.plan.requests_per_minute,
        plan: p.plan.name,
    }))
}

/// A page query: `limit` and the `cursor` of the previous page.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

/// A UUID in its hyphenated form only (the form the description's `format: uuid` names; `uuid`
/// would also take braces, URNs and 32 bare digits).
fn strict_uuid(s: &str) -> Option<Uuid> {
    (s.len() == 36).then(|| Uuid::try_parse(s).ok()).flatten()
}

fn page(q: &PageQuery) -> Result<(i64, Option<Uuid>), ApiError> {
    let limit = whole("limit", q.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let cursor = match q.cursor.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(strict_uuid(c).ok_or_else(|| ApiError::BadRequest {
            field: "cursor",
            message: "not a cursor from a previous page".into(),
        })?),
    };
    Ok((limit, cursor))
}

/// A page of the caller's history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    /// Newest first.
    items: Vec<SearchRecord>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

fn next_cursor<T>(items: &[T], limit: i64, id: impl Fn(&T) -> Uuid) -> Option<String> {
    (items.len() as i64 == limit)
        .then(|| items.last().map(|t| id(t).to_string()))
        .flatten()
}

/// `GET /v1/me/history`: the caller's lookups, newest first (kept for the plan's `history_days`;
/// repeats of one lookup within a minute are one row).
#[utoipa::path(get, path = "/v1/me/history", tag = "account",
    params(PageQuery),
    responses((status = 200, body = HistoryPage),
              (status = 400, description = "Bad limit or cursor", body = ErrorResponse)))]
pub async fn history(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<PageQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let (limit, cursor) = page(&q)?;
    let items = state.store.search_history(p.user_id, cursor, limit).await?;
    Ok(Json(HistoryPage {
        next_cursor: next_cursor(&items, limit, |s| s.id),
        items,
    }))
}

/// `DELETE /v1/me/history`: deletes the caller's whole history.
#[utoipa::path(delete, path = "/v1/me/history", tag = "account",
    responses((status = 204, description = "Deleted")))]
pub async fn delete_history(
    State(state): State<AppState>,
    p: Principal,
) -> Result<StatusCode, ApiError> {
    state.store.delete_history(p.user_id, None).await?;
    state.auth.recorder().forget(p.user_id);
    state.auth.audit(
        Some(p.user_id),
        "history.deleted",
        None,
        serde_json::json!({}),
    );
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn parse_id(field: &'static str, s: &str) -> Result<Uuid, ApiError> {
    strict_uuid(s).ok_or_else(|| ApiError::BadRequest {
        field,
        message: format!("`{s}` is not an id (a UUID)"),
    })
}

/// `DELETE /v1/me/history/{id}`: deletes one row of the caller's history.
#[utoipa::path(delete, path = "/v1/me/history/{id}", tag = "account",
    params(("id" = uuid::Uuid, Path, description = "A history row's id")),
    responses((status = 204, description = "Deleted"),
              (status = 400, description = "Not an id", body = ErrorResponse),
              (status = 404, description = "No such row in the caller's history", body = ErrorResponse)))]
pub async fn delete_history_row(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id("id", &id)?;
    match state.store.delete_history(p.user_id, Some(id)).await? {
        0 => Err(ApiError::NotFound(format!("no history row {id}"))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// `GET /v1/me/api-keys`: the caller's keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/me/api-keys", tag = "account",
    responses((status = 200, body = Vec<ApiKeyRecord>)))]
pub async fn api_keys(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<ApiKeyRecord>>, ApiError> {
    Ok(Json(state.store.api_keys(p.user_id).await?))
}

/// Body of `POST /v1/me/api-keys`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// A label, e.g. where the key is used: not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
}

/// A new key: shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKeyBody {
    #[serde(flatten)]
    record: ApiKeyRecord,
    /// The key. It is not stored and cannot be shown again.
    key: String,
}

impl From<crate::auth::CreatedKey> for CreatedKeyBody {
    fn from(k: crate::auth::CreatedKey) -> Self {
        Self {
            record: k.record,
            key: k.key,
        }
    }
}

/// `POST /v1/me/api-keys`: a new key, shown once.
#[utoipa::path(post, path = "/v1/me/api-keys", tag = "account",
    request_body = NewKeyRequest,
    responses((status = 201, body = CreatedKeyBody),
              (status = 400, description = "Bad name or unreadable body", body = ErrorResponse),
              (status = 413, description = "Body too large", body = ErrorResponse),
              (status = 415, description = "Not JSON", body = ErrorResponse)))]
pub async fn create_key(
    State(state): State<AppState>,
    p: Principal,
    extract::Json(req): extract::Json<NewKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKeyBody>), ApiError> {
    let k = state.auth.create_key(p.user_id, &req.name).await?;
    Ok((StatusCode::CREATED, Json(k.into())))
}

/// Body of `POST /v1/me/api-keys/{id}/rotate`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Seconds the old key keeps working (default 86,400).
    #[schema(minimum = 0, maximum = 2592000)]
    #[serde(default, deserialize_with = "extract::body_whole")]
    grace_seconds: Option<i64>,
}

/// `POST /v1/me/api-keys/{id}/rotate`: a new key; the old one works for the grace period.
#[utoipa::path(post, path = "/v1/me/api-keys/{id}/rotate", tag = "account",
    params(("id" = uuid::Uuid, Path, description = "A live key's id")),
    request_body = RotateRequest,
    responses((status = 201, body = CreatedKeyBody),
              (status = 400, description = "Not an id, bad grace period or unreadable body", body = ErrorResponse),
              (status = 404, description = "No such live key of the caller", body = ErrorResponse),
              (status = 413, description = "Body too large", body = ErrorResponse),
              (status = 415, description = "Not JSON", body = ErrorResponse)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    extract::Json(req): extract::Json<RotateRequest>,
) -> Result<(StatusCode, Json<CreatedKeyBody>), ApiError> {
    let id = parse_id("id", &id)?;
    let k = state
        .auth
        .rotate_key(
            p.user_id,
            id,
            req.grace_seconds.unwrap_or(DEFAULT_GRACE_SECS),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(k.into())))
}

/// `DELETE /v1/me/api-keys/{id}`: revokes a key at once.
#[utoipa::path(delete, path = "/v1/me/api-keys/{id}", tag = "account",
    params(("id" = uuid::Uuid, Path, description = "A live key's id")),
    responses((status = 204, description = "Revoked"),
              (status = 400, description = "Not an id", body = ErrorResponse),
              (status = 404, description = "No such live key of the caller", body = ErrorResponse)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id("id", &id)?;
    state
        .auth
        .revoke_key(Some(p.user_id), Some(p.user_id), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of users.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsersPage {
    /// In id (creation) order.
    items: Vec<Account>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// `GET /v1/admin/users`.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin",
    params(PageQuery),
    responses((status = 200, body = UsersPage),
              (status = 400, description = "Bad limit or cursor", body = ErrorResponse)))]
pub async fn users(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<UsersPage>, ApiError> {
    let (limit, cursor) = page(&q)?;
    let items = state.store.accounts(cursor, limit).await?;
    Ok(Json(UsersPage {
        next_cursor: next_cursor(&items, limit, |a| a.id),
        items,
    }))
}

/// Body of `POST /v1/admin/users`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    /// Email (unique, case-insensitive).
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f]+(\.[^@\s.\x00-\x1f\x7f-\x9f]+)+$"
    )]
    email: String,
    /// Password (omit for API-key-only or OpenID Connect users).
    #[schema(min_length = 10, max_length = 256)]
    password: Option<String>,
    /// Role (default `customer`).
    role: Option<Role>,
    /// Plan (default `free`).
    plan: Option<PlanName>,
}

/// A created user and its first API key (shown once).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedUser {
    /// The user.
    user: Account,
    /// Its first API key.
    api_key: String,
}

/// `POST /v1/admin/users`: creates a user with a first API key.
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin",
    request_body = NewUserRequest,
    responses((status = 201, body = CreatedUser),
              (status = 400, description = "Bad email, weak password or unreadable body (the field is named)", body = ErrorResponse),
              (status = 409, description = "The email is taken", body = ErrorResponse),
              (status = 413, description = "Body too large", body = ErrorResponse),
              (status = 415, description = "Not JSON", body = ErrorResponse)))]
pub async fn create_user(
    State(state): State<AppState>,
    p: Principal,
    extract::Json(req): extract::Json<NewUserRequest>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let (user, key) = state
        .auth
        .create_user(
            Some(p.user_id),
            &req.email,
            req.password.as_deref(),
            req.role.unwrap_or(Role::Customer),
            req.plan.unwrap_or(PlanName::Free),
            Some("default"),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user,
            api_key: key.unwrap_or_default(),
        }),
    ))
}

/// Body of `PATCH /v1/admin/users/{id}`: what to change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// New role.
    role: Option<Role>,
    /// New plan.
    plan: Option<PlanName>,
    /// Disable (`true`) or enable.
    disabled: Option<bool>,
}

/// `PATCH /v1/admin/users/{id}`.
#[utoipa::path(patch, path = "/v1/admin/users/{id}", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    request_body = UserUpdate,
    responses((status = 200, body = Account),
              (status = 400, description = "Not an id, or an unreadable body", body = ErrorResponse),
              (status = 404, description = "No such user", body = ErrorResponse),
              (status = 409, description = "An admin disabling or demoting itself", body = ErrorResponse),
              (status = 413, description = "Body too large", body = ErrorResponse),
              (status = 415, description = "Not JSON", body = ErrorResponse)))]
pub async fn update_user(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    extract::Json(req): extract::Json<UserUpdate>,
) -> Result<Json<Account>, ApiError> {
    let id = parse_id("id", &id)?;
    let patch = UserPatch {
        role: req.role,
        plan: req.plan,
        disabled: req.disabled,
    };
    Ok(Json(state.auth.update_user(&p, id, &patch).await?))
}

/// `GET /v1/admin/plans`.
#[utoipa::path(get, path = "/v1/admin/plans", tag = "admin",
    responses((status = 200, body = Vec<Plan>)))]
pub async fn plans(State(state): State<AppState>) -> Result<Json<Vec<Plan>>, ApiError> {
    Ok(Json(state.store.plans().await?))
}

/// Body of `PATCH /v1/admin/plans/{name}`: the limits to change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanUpdate {
    /// Lookups a month; `null` for unlimited.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1000000000000_i64)]
    monthly_lookups: Option<Option<i64>>,
    /// Requests a minute.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default, deserialize_with = "extract::body_whole")]
    requests_per_minute: Option<i64>,
    /// Requests at once.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default, deserialize_with = "extract::body_whole")]
    burst: Option<i64>,
    /// Keywords per batch.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "extract::body_whole")]
    max_batch: Option<i64>,
    /// Days of history kept.
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(default, deserialize_with = "extract::body_whole")]
    history_days: Option<i64>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    extract::body_whole(d).map(Some)
}

fn bounded(field: &'static str, v: i64, lo: i64, hi: i64) -> Result<i64, ApiError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::BadRequest {
            field,
            message: format!("{field} is {lo}..={hi}; got {v}"),
        })
    }
}

/// `PATCH /v1/admin/plans/{name}`: changes a plan's limits (not `internal`'s).
#[utoipa::path(patch, path = "/v1/admin/plans/{name}", tag = "admin",
    params(("name" = PlanName, Path)),
    request_body = PlanUpdate,
    responses((status = 200, body = Plan),
              (status = 400, description = "Unknown plan, a limit out of range or an unreadable body", body = ErrorResponse),
              (status = 409, description = "The internal plan is fixed", body = ErrorResponse),
              (status = 413, description = "Body too large", body = ErrorResponse),
              (status = 415, description = "Not JSON", body = ErrorResponse)))]
pub async fn update_plan(
    State(state): State<AppState>,
    p: Principal,
    Path(name): Path<String>,
    extract::Json(req): extract::Json<PlanUpdate>,
) -> Result<Json<Plan>, ApiError> {
    let name: PlanName = name.parse().map_err(|m| ApiError::BadRequest {
        field: "name",
        message: m,
    })?;
    let mut plan = state
        .store
        .plans()
        .await?
        .into_iter()
        .find(|pl| pl.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no plan {name}")))?;
    if let Some(m) = req.monthly_lookups {
        plan.monthly_lookups = m
            .map(|v| bounded("monthly_lookups", v, 0, 1_000_000_000_000))
            .transpose()?;
    }
    if let Some(v) = req.requests_per_minute {
        plan.requests_per_minute = bounded("requests_per_minute", v, 1, 1_000_000)?;
    }
    if let Some(v) = req.burst {
        plan.burst = bounded("burst", v, 1, 1_000_000)?;
    }
    if let Some(v) = req.max_batch {
        plan.max_batch = bounded("max_batch", v, 1, 1000)?;
    }
    if let Some(v) = req.history_days {
        plan.history_days = bounded("history_days", v, 1, 3650)?;
    }
    state.auth.update_plan(&p, &plan).await?;
    Ok(Json(plan))
}

/// Query of `GET /v1/admin/audit`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Rows per page.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
    /// Only this action (e.g. `login.failed`).
    #[param(max_length = 64, pattern = "^[a-z_]+(\\.[a-z_]+)*$")]
    action: Option<String>,
}

/// A page of the audit trail.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    items: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// `GET /v1/admin/audit`: sign-ins, key and user changes, model activations, newest first.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin",
    params(AuditQuery),
    responses((status = 200, body = AuditPage),
              (status = 400, description = "Bad limit, cursor or action", body = ErrorResponse)))]
pub async fn audit(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let (limit, cursor) = page(&PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    })?;
    let action = q.action.as_deref().map(str::trim).filter(|a| !a.is_empty());
    if let Some(a) = action
        && (a.len() > 64
            || !a
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'))
    {
        return Err(ApiError::BadRequest {
            field: "action",
            message: "an action is lower-case words joined by `.` or `_` (e.g. login.failed)"
                .into(),
        });
    }
    let items = state.store.audit(cursor, action, limit).await?;
    Ok(Json(AuditPage {
        next_cursor: next_cursor(&items, limit, |a| a.id),
        items,
    }))
}

/// Query of `GET /v1/analytics/searches`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchesQuery {
    /// Only this platform.
    #[param(value_type = Option<super::openapi::PlatformName>)]
    platform: Option<String>,
    /// The last this many days (default 30).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 3650, default = 30)]
    days: Option<String>,
    /// Most keywords (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
}

/// Body of `GET /v1/analytics/searches`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SearchesBody {
    /// Start of the period.
    from: DateTime<Utc>,
    /// End of the period (now).
    to: DateTime<Utc>,
    /// Most looked-up first.
    items: Vec<TopSearch>,
}

fn whole(field: &'static str, v: Option<&str>, default: i64, hi: i64) -> Result<i64, ApiError> {
    match v.map(str::trim) {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=hi).contains(n))
            .ok_or_else(|| ApiError::BadRequest {
                field,
                message: format!("`{s}` is not a whole number in 1..={hi}"),
            }),
    }
}

/// `GET /v1/analytics/searches`: the most looked-up keywords per platform in a period (analysts).
#[utoipa::path(get, path = "/v1/analytics/searches", tag = "admin",
    params(SearchesQuery),
    responses((status = 200, body = SearchesBody),
              (status = 400, description = "Bad platform, days or limit", body = ErrorResponse)))]
pub async fn searches(
    State(state): State<AppState>,
    Query(q): Query<SearchesQuery>,
) -> Result<Json<SearchesBody>, ApiError> {
    let platform = super::keywords::optional_platform(q.platform.as_deref())?;
    let days = whole("days", q.days.as_deref(), 30, 3650)?;
    let limit = whole("limit", q.limit.as_deref(), 20, 100)?;
    let to = Utc::now();
    let from = to - chrono::Duration::days(days);
    let items = state
        .store
        .top_searches(platform.map(|p| p.as_str()), from, limit)
        .await?;
    Ok(Json(SearchesBody { from, to, items }))
}
