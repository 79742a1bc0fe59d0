//! OpenID Connect login (authorization code flow with PKCE S256, state and nonce) against any
//! provider given by issuer URL, client id and secret. The provider is discovered on first use
//! (and again after a failure), so a provider that is down at start-up does not stop the server.
//! What the callback needs (state, nonce, PKCE verifier, where to return) travels in a short-lived
//! cookie signed with the server's key, so any instance behind a load balancer can finish a login
//! another one started.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// The cookie holding a login in progress.
pub const COOKIE: &str = "kwi_oidc";
/// How long a login may take at the provider.
pub const LOGIN_TTL_SECS: i64 = 600;
const STATE_AUDIENCE: &str = "kwi-oidc-state";

/// The provider settings (from the configuration).
#[derive(Clone)]
pub struct OidcConfig {
    /// Issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// Client id registered at the provider.
    pub client_id: String,
    /// Client secret (never logged).
    pub client_secret: String,
    /// This service's callback URL as the browser reaches it.
    pub redirect_url: String,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_url", &self.redirect_url)
            .finish()
    }
}

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What the provider said about who signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The issuer.
    pub issuer: String,
    /// The provider's user id.
    pub subject: String,
    /// The email claim.
    pub email: Option<String>,
    /// Whether the provider verified it.
    pub email_verified: bool,
}

/// A login in progress, in the signed cookie.
#[derive(Serialize, Deserialize)]
struct Pending {
    aud: String,
    exp: i64,
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
}

/// The OpenID Connect relying party.
pub struct Oidc {
    config: OidcConfig,
    http: openidconnect::reqwest::Client,
    client: Mutex<Option<Client>>,
    sign: EncodingKey,
    check: DecodingKey,
}

/// Why a login failed (said to the user; nothing secret in it).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or discovered.
    #[error("the identity provider is unavailable: {0}")]
    Provider(String),
    /// The callback's state or cookie is missing, expired or does not match.
    #[error("{0}")]
    State(&'static str),
    /// The code exchange or the ID token failed.
    #[error("the identity provider's answer was refused: {0}")]
    Token(String),
}

impl Oidc {
    /// A relying party for `config`, signing its state cookie with `key`.
    pub fn new(config: OidcConfig, key: &[u8]) -> Result<Self, String> {
        RedirectUrl::new(config.redirect_url.clone())
            .map_err(|e| format!("bad OIDC redirect URL `{}`: {e}", config.redirect_url))?;
        IssuerUrl::new(config.issuer.clone())
            .map_err(|e| format!("bad OIDC issuer URL `{}`: {e}", config.issuer))?;
        // No redirects: a provider answering with one could make us fetch any URL (SSRF).
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the OIDC HTTP client: {e}"))?;
        Ok(Self {
            config,
            http,
            client: Mutex::new(None),
            sign: EncodingKey::from_secret(key),
            check: DecodingKey::from_secret(key),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    async fn client(&self) -> Result<Client, OidcError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        let meta = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Provider(format!("discovery failed: {e}")))?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.config.redirect_url.clone())
                .map_err(|e| OidcError::Provider(e.to_string()))?,
        );
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Starts a login: the provider URL to send the browser to and the cookie value to set.
    pub async fn start(&self, return_to: &str) -> Result<(String, String), OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let pending = Pending {
            aud: STATE_AUDIENCE.into(),
            exp: chrono::Utc::now().timestamp() + LOGIN_TTL_SECS,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            return_to: return_to.to_string(),
        };
        let cookie = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &pending, &self.sign)
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        Ok((url.to_string(), cookie))
    }

    /// Finishes a login: checks `state` against the cookie, exchanges `code` (with the PKCE
    /// verifier), verifies the ID token (signature, issuer, audience, expiry, nonce). Returns who
    /// signed in and where to send them.
    pub async fn finish(
        &self,
        cookie: Option<&str>,
        state: &str,
        code: &str,
    ) -> Result<(Identity, String), OidcError> {
        let cookie = cookie.ok_or(OidcError::State(
            "the login cookie is missing: start again from /v1/auth/oidc/login (cookies must be enabled)",
        ))?;
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&[STATE_AUDIENCE]);
        v.set_required_spec_claims(&["exp", "aud"]);
        v.leeway = 0;
        let pending = jsonwebtoken::decode::<Pending>(cookie, &self.check, &v)
            .map_err(|_| {
                OidcError::State("the login expired or its cookie is invalid; start again")
            })?
            .claims;
        if !crate::auth::secret::hashes_equal(&pending.state, state) {
            return Err(OidcError::State(
                "the state does not match this browser's login; start again",
            ));
        }
        let client = self.client().await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Provider(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Token(format!("code exchange failed: {e}")))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| OidcError::Token("no ID token in the answer".into()))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(pending.nonce))
            .map_err(|e| OidcError::Token(format!("ID token: {e}")))?;
        Ok((
            Identity {
                issuer: claims.issuer().to_string(),
                subject: claims.subject().to_string(),
                email: claims.email().map(|e| e.to_string()),
                email_verified: claims.email_verified().unwrap_or(false),
            },
            pending.return_to,
        ))
    }
}
