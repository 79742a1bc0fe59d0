//! Access tokens: HS256 JWTs, 15 minutes, with issuer and audience checked, no leeway, and the
//! user's session epoch (bumped on a password change, so every token issued before it is refused).
//! The signing key is shared by every instance through the store (see
//! [`kwi_store::Accounts::server_secret`]) unless configured.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The `iss` claim.
pub const ISSUER: &str = "kwi";
/// The `aud` claim.
pub const AUDIENCE: &str = "kwi-api";
/// Access-token lifetime in seconds.
pub const ACCESS_TTL_SECS: i64 = 15 * 60;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires at (seconds).
    pub exp: i64,
    /// The user's session epoch when issued.
    pub ep: i32,
}

/// Signs and checks access tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Tokens {
    /// From the shared secret (at least 32 bytes).
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // The default 60 s would accept a token for a minute after it expired.
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A new access token for `user` at session epoch `epoch`.
    pub fn issue(&self, user: Uuid, epoch: i32) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ACCESS_TTL_SECS,
            ep: epoch,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The claims of a valid token; why not otherwise (in words that reveal nothing of the key).
    pub fn verify(&self, token: &str) -> Result<Claims, &'static str> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => "the access token has expired; refresh it",
                ErrorKind::InvalidAudience => "the access token is not for this API",
                ErrorKind::InvalidIssuer => "the access token was not issued by this service",
                ErrorKind::InvalidAlgorithm => "the access token's algorithm is not accepted",
                ErrorKind::InvalidSignature => "the access token's signature does not verify",
                _ => "the access token is malformed",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_with_their_key_only() {
        let t = Tokens::new(&[7u8; 32]);
        let user = Uuid::now_v7();
        let tok = t.issue(user, 3);
        let c = t.verify(&tok).unwrap();
        assert_eq!((c.sub, c.ep), (user, 3));
        let other = Tokens::new(&[8u8; 32]);
        assert!(other.verify(&tok).unwrap_err().contains("signature"));
        assert!(t.verify("a.b.c").is_err());
    }
}
