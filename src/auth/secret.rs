//! The secrets users hold: API keys, refresh tokens and passwords. Keys and tokens are random,
//! shown once and stored only as SHA-256 hashes (they carry 190+ bits of entropy, so a fast hash is
//! the right one: a slow password hash would only slow every request). Passwords are hashed with
//! argon2id.
//!
//! An API key is `kwi_live_` + 32 random base62 characters + a 6-character base62 CRC-32 of what
//! precedes it, so a mistyped or truncated key is refused before any database lookup (as GitHub's
//! tokens do). The checksum is not a secret and proves nothing about the key's validity.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every API key starts with.
pub const KEY_PREFIX: &str = "kwi_live_";
/// Random characters in a key.
const KEY_RANDOM: usize = 32;
/// Checksum characters at its end.
const KEY_CHECKSUM: usize = 6;
/// Length of a whole key.
pub const KEY_LEN: usize = KEY_PREFIX.len() + KEY_RANDOM + KEY_CHECKSUM;
/// What every refresh token starts with.
pub const REFRESH_PREFIX: &str = "kwi_rt_";
/// Random characters in a refresh token.
const REFRESH_RANDOM: usize = 43;
/// Characters of a key shown in listings (`kwi_live_` and 4 more).
const SHOWN: usize = KEY_PREFIX.len() + 4;

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted (argon2 takes any length; this bounds the work per login).
pub const MAX_PASSWORD: usize = 256;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` base62 digits of `v` (most significant first). Six digits hold any `u32`.
fn base62(mut v: u64, n: usize) -> String {
    let mut out = vec![b'0'; n];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(out).expect("ASCII")
}

fn random_alnum(n: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Hex SHA-256: how keys and tokens are stored and looked up.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Constant-time equality of two stored hashes (the lookup already matched them by index; this
/// is the check that does not leak, byte by byte, how much of a guess was right).
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new API key: the key (shown once), its listing prefix and its hash.
pub struct NewKey {
    /// The whole key.
    pub key: String,
    /// Its first characters, for listings.
    pub prefix: String,
    /// Hex SHA-256 of the key.
    pub hash: String,
}

/// Makes a new API key.
pub fn new_api_key() -> NewKey {
    let body = format!("{KEY_PREFIX}{}", random_alnum(KEY_RANDOM));
    let key = format!(
        "{body}{}",
        base62(u64::from(crc32fast::hash(body.as_bytes())), KEY_CHECKSUM)
    );
    NewKey {
        prefix: key[..SHOWN].to_string(),
        hash: hash_secret(&key),
        key,
    }
}

/// Why a string is not an API key (said without echoing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Wrong length.
    #[error("an API key is {KEY_LEN} characters long")]
    Length,
    /// A character outside `[A-Za-z0-9]` after the prefix.
    #[error("an API key holds only letters and digits after `kwi_live_`")]
    Characters,
    /// The checksum does not match: a typo or a truncated copy.
    #[error("the API key's checksum does not match (mistyped or incompletely copied)")]
    Checksum,
}

/// Checks a string that starts with [`KEY_PREFIX`] is a well-formed key (length, alphabet,
/// checksum), without any lookup.
pub fn check_api_key(key: &str) -> Result<(), KeyFormatError> {
    if key.len() != KEY_LEN || !key.starts_with(KEY_PREFIX) {
        return Err(KeyFormatError::Length);
    }
    let rest = &key.as_bytes()[KEY_PREFIX.len()..];
    if !rest.iter().all(u8::is_ascii_alphanumeric) {
        return Err(KeyFormatError::Characters);
    }
    let (body, sum) = key.split_at(KEY_LEN - KEY_CHECKSUM);
    let expected = base62(u64::from(crc32fast::hash(body.as_bytes())), KEY_CHECKSUM);
    if !hashes_equal(sum, &expected) {
        return Err(KeyFormatError::Checksum);
    }
    Ok(())
}

/// A new refresh token and its hash.
pub fn new_refresh_token() -> (String, String) {
    let token = format!("{REFRESH_PREFIX}{}", random_alnum(REFRESH_RANDOM));
    let hash = hash_secret(&token);
    (token, hash)
}

/// Random bytes as URL-safe base64 (signing keys, OIDC state).
pub fn random_b64(bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short, too long, too repetitive or too common.
    #[error("{0}")]
    Weak(String),
    /// The hasher failed (never the password's fault).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Passwords seen in every breach list; refused outright.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "1234567890",
    "123456789",
    "qwertyuiop",
    "1q2w3e4r5t",
    "iloveyou12",
    "letmein123",
    "welcome123",
    "admin12345",
    "qwerty1234",
    "passw0rd12",
    "0123456789",
    "abcdefghij",
    "abc1234567",
    "changeme12",
    "football12",
    "baseball12",
];

/// Checks a new password: 10–256 characters, at least 5 different ones, not a well-known one and
/// not the email.
pub fn check_password(password: &str, email: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(PasswordError::Weak(format!(
            "a password needs at least {MIN_PASSWORD} characters; got {n}"
        )));
    }
    if n > MAX_PASSWORD {
        return Err(PasswordError::Weak(format!(
            "a password has at most {MAX_PASSWORD} characters; got {n}"
        )));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Err(PasswordError::Weak(
            "a password needs at least 5 different characters".into(),
        ));
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Err(PasswordError::Weak(
            "this password is on every list of breached passwords; choose another".into(),
        ));
    }
    if !email.is_empty() && lower.contains(&email.to_lowercase()) {
        return Err(PasswordError::Weak(
            "a password must not contain the email".into(),
        ));
    }
    Ok(())
}

/// argon2id with the cost the server runs with: OWASP's minimum (19 MiB, 2 passes, 1 lane) by
/// default; tests pass a cheaper one. Hashes record their own parameters, so verification works
/// whatever cost they were made with.
#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    /// A hash of nothing, verified against when the user does not exist, so a login for an
    /// unknown email costs the same time as one with a wrong password.
    dummy: String,
}

impl Passwords {
    /// argon2id with `memory_kib`, `passes`, one lane.
    pub fn new(memory_kib: u32, passes: u32) -> Self {
        let params = Params::new(memory_kib, passes, 1, None).expect("valid argon2 parameters");
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let dummy = argon
            .hash_password(b"kwi-no-such-user", &salt)
            .expect("hash")
            .to_string();
        Self { argon, dummy }
    }

    /// Hashes a password (blocking work: call it on a blocking thread).
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    /// Whether `password` matches `hash` (`None`: no such user; the dummy is checked so the time
    /// taken is the same). Blocking work.
    pub fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let stored = hash.unwrap_or(&self.dummy);
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let ok = self
            .argon
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && hash.is_some()
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new(19 * 1024, 2)
    }
}

/// Normalises an email for storage and lookup (trimmed, lower case) and checks its shape: one
/// `@` with text on both sides, a dot in the domain, at most 254 characters, no spaces.
pub fn normalise_email(email: &str) -> Result<String, String> {
    // Counted before lower-casing, which may lengthen some characters.
    if email.trim().chars().count() > 254 {
        return Err("an email has at most 254 characters".into());
    }
    let e = email.trim().to_lowercase();
    let Some((local, domain)) = e.split_once('@') else {
        return Err("an email needs an `@`".into());
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err("an email is `name@domain`".into());
    }
    if !domain.contains('.') && domain != "localhost" {
        return Err(format!("`{domain}` is not a mail domain"));
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an email has no spaces".into());
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_pass_their_own_check_and_typos_fail_it() {
        let k = new_api_key();
        assert_eq!(k.key.len(), KEY_LEN);
        assert!(k.key.starts_with(KEY_PREFIX) && k.prefix.len() == 13);
        check_api_key(&k.key).unwrap();
        assert_eq!(k.hash, hash_secret(&k.key));
        // One character changed anywhere after the prefix: the checksum catches it.
        for i in KEY_PREFIX.len()..KEY_LEN {
            let mut b = k.key.clone().into_bytes();
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(b).unwrap();
            assert_eq!(check_api_key(&typo), Err(KeyFormatError::Checksum), "{i}");
        }
        assert_eq!(
            check_api_key(&k.key[..KEY_LEN - 1]),
            Err(KeyFormatError::Length)
        );
        let bad = format!("{}-{}", &k.key[..20], &k.key[21..]);
        assert_eq!(check_api_key(&bad), Err(KeyFormatError::Characters));
    }

    #[test]
    fn passwords_hash_and_verify_and_weak_ones_are_refused() {
        let p = Passwords::new(64, 1);
        let h = p.hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify("correct horse battery", Some(&h)));
        assert!(!p.verify("correct horse batterx", Some(&h)));
        assert!(!p.verify("correct horse battery", None));
        assert!(check_password("short", "a@b.co").is_err());
        assert!(check_password("aaaaaaaaaaaa", "a@b.co").is_err());
        assert!(check_password("Password123", "a@b.co").is_err());
        assert!(check_password("xx-me@kwi.test-xx", "me@kwi.test").is_err());
        check_password("correct horse battery", "me@kwi.test").unwrap();
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email(" Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        assert_eq!(
            normalise_email("admin@localhost").unwrap(),
            "admin@localhost"
        );
        for bad in [
            "",
            "ann",
            "@x.com",
            "ann@",
            "ann@x",
            "a b@x.com",
            "a@b@c.com",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
    }
}
