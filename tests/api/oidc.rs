//! OpenID Connect login end to end against a real provider: npm `oidc-provider` (pinned in
//! tests/oidc/package.json) started by the test on the machine's Node.js, driven without a browser
//! through its own login and consent forms. Requires `node` and `npm` (`.ci/run` and `.ci/e2e`
//! install them); `npm ci` runs here when tests/oidc/node_modules is missing.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use kwi::app::AppState;
use kwi::auth::oidc::OidcConfig;
use kwi::cache::{Cache, DEFAULT_LOCAL_BYTES, DEFAULT_TTL};
use kwi_store::{PlanName, Role};
use reqwest::redirect::Policy;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::helpers::{TestDb, test_auth};

const CLIENT_ID: &str = "kwi-test";
const CLIENT_SECRET: &str = "kwi-test-secret-0123456789";

/// The provider process, killed when dropped.
struct Provider(Child);

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Starts the provider for `redirect_uri`; returns it and its issuer URL.
fn start_provider(redirect_uri: &str) -> (Provider, String) {
    let dir = fixture_dir();
    if !dir.join("node_modules/oidc-provider").exists() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is required for the OpenID Connect tests (apt-get install npm)");
        assert!(st.success(), "npm ci in tests/oidc failed");
    }
    let mut child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .env("PORT", "0")
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URI", redirect_uri)
        .env("EXIT_ON_STDIN_EOF", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node is required for the OpenID Connect tests (apt-get install nodejs)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let issuer = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("the provider did not start: {line:?}"))
        .trim()
        .to_string();
    (Provider(child), issuer)
}

/// A browser: its own cookie jar, redirects not followed.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("{} without Location", res.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// Follows a 303 (Location may be relative).
async fn follow(
    b: &reqwest::Client,
    from: &str,
    res: reqwest::Response,
) -> (String, reqwest::Response) {
    assert_eq!(res.status(), 303, "from {from}");
    let to = reqwest::Url::parse(from)
        .unwrap()
        .join(&location(&res))
        .unwrap()
        .to_string();
    let next = b.get(&to).send().await.unwrap();
    (to, next)
}

/// Signs `login` in through kwi: returns kwi's final redirect (to the dashboard, with the tokens
/// in the fragment) or the callback's error answer.
async fn sign_in(base: &str, login: &str) -> reqwest::Response {
    let b = browser();
    let start = format!("{base}/v1/auth/oidc/login?return_to=/");
    let res = b.get(&start).send().await.unwrap();
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let auth_url = location(&res);
    assert!(
        auth_url.contains("code_challenge_method=S256") && auth_url.contains("nonce="),
        "{auth_url}"
    );
    // Provider: authorization → login form → consent form → back to kwi with a code.
    let res = b.get(&auth_url).send().await.unwrap();
    let (login_url, page) = follow(&b, &auth_url, res).await;
    assert_eq!(page.status(), 200);
    let res = b
        .post(&login_url)
        .form(&[("prompt", "login"), ("login", login), ("password", "any")])
        .send()
        .await
        .unwrap();
    let (resume, res) = follow(&b, &login_url, res).await;
    let (consent_url, page) = follow(&b, &resume, res).await;
    assert_eq!(page.status(), 200);
    let res = b
        .post(&consent_url)
        .form(&[("prompt", "consent")])
        .send()
        .await
        .unwrap();
    let (resume, res) = follow(&b, &consent_url, res).await;
    assert_eq!(res.status(), 303, "from {resume}");
    let callback = location(&res);
    assert!(
        callback.starts_with(&format!("{base}/v1/auth/oidc/callback?code=")),
        "{callback}"
    );
    b.get(&callback).send().await.unwrap()
}

fn fragment_tokens(res: &reqwest::Response) -> (String, String) {
    let loc = location(res);
    let (path, frag) = loc
        .split_once('#')
        .unwrap_or_else(|| panic!("no fragment: {loc}"));
    assert_eq!(path, "/");
    let get = |k: &str| {
        frag.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {frag}"))
            .to_string()
    };
    assert_eq!(get("token_type"), "Bearer");
    (get("access_token"), get("refresh_token"))
}

async fn me(base: &str, token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// New identities become customers, later logins find them by (issuer, subject), a verified
/// email links to the existing user, an unverified one is refused, and a forged state is refused.
#[tokio::test(flavor = "multi_thread")]
async fn oidc_login_against_a_real_provider() {
    let db = TestDb::sqlite();
    let store = kwi_store::open(&db.url).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let redirect = format!("{base}/v1/auth/oidc/callback");
    let (_provider, issuer) = start_provider(&redirect);
    let config = kwi::auth::AuthConfig {
        oidc: Some(OidcConfig {
            issuer: issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_url: redirect,
        }),
        ..test_auth()
    };
    let (state, _writer) = AppState::build_with(
        store.clone(),
        Cache::in_process(DEFAULT_LOCAL_BYTES, DEFAULT_TTL),
        config,
    )
    .await
    .unwrap();
    let (existing, _) = state
        .auth
        .create_user(
            None,
            "bob@example.test",
            None,
            Role::Analyst,
            PlanName::Pro,
            None,
        )
        .await
        .unwrap();
    let server = tokio::spawn(kwi::app::serve(
        listener,
        state.clone(),
        kwi::http::Edge::default(),
        std::future::pending(),
    ));

    let providers: Value = reqwest::get(format!("{base}/v1/auth/providers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(providers["oidc"]["enabled"], true);

    // A new identity: a new customer on the free plan.
    let res = sign_in(&base, "alice@example.test").await;
    let (access, refresh) = fragment_tokens(&res);
    assert!(refresh.starts_with("kwi_rt_"));
    let alice = me(&base, &access).await;
    assert_eq!(alice["email"], "alice@example.test", "{alice}");
    assert_eq!(
        (alice["role"].as_str(), alice["plan"]["name"].as_str()),
        (Some("customer"), Some("free"))
    );
    // Again: the same user (found by issuer and subject).
    let (access2, _) = fragment_tokens(&sign_in(&base, "alice@example.test").await);
    assert_eq!(me(&base, &access2).await["id"], alice["id"]);

    // A verified email of an existing user links to it (role and plan kept).
    let (access3, _) = fragment_tokens(&sign_in(&base, "bob@example.test").await);
    let bob = me(&base, &access3).await;
    assert_eq!(bob["id"], existing.id.to_string(), "{bob}");
    assert_eq!(bob["role"], "analyst");

    // An unverified email is refused, naming why.
    let res = sign_in(&base, "unverified-carl").await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not verified"),
        "{body}"
    );

    // A callback whose state is not this browser's: refused before any code exchange.
    let b = browser();
    let _ = b
        .get(format!("{base}/v1/auth/oidc/login"))
        .send()
        .await
        .unwrap();
    let res = b
        .get(format!(
            "{base}/v1/auth/oidc/callback?code=abc&state=forged"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // No cookie at all (another browser).
    let res = browser()
        .get(format!(
            "{base}/v1/auth/oidc/callback?code=abc&state=forged"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let text = res.text().await.unwrap();
    assert!(text.contains("cookie"), "{text}");
    // The audit trail has the links and sign-ins.
    let audit = store.audit(None, Some("oidc.linked"), 10).await.unwrap();
    assert_eq!(audit.len(), 2, "alice (new) and bob (linked): {audit:?}");
    server.abort();
}
