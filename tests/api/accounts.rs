//! Accounts: sign-in and token rotation, password changes, API keys (create, rotate with a grace
//! period, revoke), users (admin), history, usage, audit and analytics; the shared rate limit on
//! Redis and its in-process fallback; the `kwi users`/`kwi keys` commands and the first start.

use std::process::{Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{
    PlanName, Role, TestApp, anonymous, backend_tests, eventually, post, test_auth,
};

const PASSWORD: &str = "correct horse battery staple";

async fn signup(app: &TestApp, email: &str, role: Role, plan: PlanName) -> Value {
    let res = app
        .post_json(
            "/v1/admin/users",
            json!({"email": email, "password": PASSWORD, "role": role, "plan": plan}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}: {res}", app.name);
    res.json()
}

async fn login(app: &TestApp, email: &str, password: &str) -> crate::helpers::TestResponse {
    app.send(anonymous(post(
        "/v1/auth/login",
        "application/json",
        json!({"email": email, "password": password}).to_string(),
    )))
    .await
}

async fn refresh(app: &TestApp, token: &str) -> crate::helpers::TestResponse {
    app.send(anonymous(post(
        "/v1/auth/refresh",
        "application/json",
        json!({"refresh_token": token}).to_string(),
    )))
    .await
}

/// Sign-in, refresh with rotation, reuse of a used refresh token revoking the whole family.
async fn refresh_tokens_rotate_and_reuse_revokes_the_family(app: TestApp) {
    let name = app.name;
    signup(&app, "Ann@Example.com", Role::Customer, PlanName::Pro).await;
    // Emails are case-insensitive.
    let res = login(&app, "ann@EXAMPLE.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{name}: {res}");
    let t = res.json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 900);
    assert_eq!(t["user"]["email"], "ann@example.com");
    assert!(t["user"].get("password_hash").is_none());
    let access = t["access_token"].as_str().unwrap();
    let me = app.get_as("/v1/me", access).await;
    assert_eq!(me.status, StatusCode::OK, "{name}: {me}");
    assert_eq!(me.json()["plan"]["name"], "pro");

    let first = t["refresh_token"].as_str().unwrap().to_string();
    let r1 = refresh(&app, &first).await;
    assert_eq!(r1.status, StatusCode::OK, "{name}: {r1}");
    let second = r1.json()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    // The used one again: refused, and the family (the second one too) is revoked.
    let reuse = refresh(&app, &first).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED, "{name}: {reuse}");
    assert!(reuse.text().contains("already used or revoked"));
    assert_eq!(
        refresh(&app, &second).await.status,
        StatusCode::UNAUTHORIZED,
        "{name}"
    );
    // Logout revokes a fresh sign-in's family.
    let t2 = login(&app, "ann@example.com", PASSWORD).await.json();
    let rt = t2["refresh_token"].as_str().unwrap();
    let out = app
        .send(anonymous(post(
            "/v1/auth/logout",
            "application/json",
            json!({"refresh_token": rt}).to_string(),
        )))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{name}: {out}");
    assert_eq!(refresh(&app, rt).await.status, StatusCode::UNAUTHORIZED);
}

/// A password change refuses every earlier access token and refresh token.
async fn password_change_ends_every_session(app: TestApp) {
    let name = app.name;
    signup(&app, "pw@kwi.test", Role::Customer, PlanName::Pro).await;
    let t = login(&app, "pw@kwi.test", PASSWORD).await.json();
    let access = t["access_token"].as_str().unwrap();
    let wrong = app
        .post_as(
            "/v1/me/password",
            access,
            json!({"current_password": "nope nope nope", "new_password": "a new long passphrase"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{name}: {wrong}");
    assert_eq!(wrong.json()["error"]["field"], "current_password");
    // Over the described 256 characters: refused even for a user who has no password (the test
    // admin), whose current password is otherwise ignored.
    let long = app
        .post_json(
            "/v1/me/password",
            json!({"current_password": "x".repeat(257), "new_password": "a new long passphrase"}),
        )
        .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST, "{name}: {long}");
    assert_eq!(long.json()["error"]["field"], "current_password");
    let weak = app
        .post_as(
            "/v1/me/password",
            access,
            json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(
        weak.json()["error"]["field"],
        "new_password",
        "{name}: {weak}"
    );
    let ok = app
        .post_as(
            "/v1/me/password",
            access,
            json!({"current_password": PASSWORD, "new_password": "a new long passphrase"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{name}: {ok}");
    let stale = app.get_as("/v1/me", access).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED, "{name}: {stale}");
    assert!(stale.text().contains("predates a password change"));
    assert_eq!(
        refresh(&app, t["refresh_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "pw@kwi.test", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "pw@kwi.test", "a new long passphrase")
            .await
            .status,
        StatusCode::OK
    );
}

/// Keys: created and shown once, listed without the key, rotated with a grace period, revoked at
/// once.
async fn api_keys_rotate_with_grace_and_revoke_at_once(app: TestApp) {
    let name = app.name;
    let (_, key) = app.user("k@kwi.test", Role::Customer, PlanName::Pro).await;
    let created = app
        .post_as("/v1/me/api-keys", &key, json!({"name": "ci"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{name}: {created}");
    let c = created.json();
    let second = c["key"].as_str().unwrap().to_string();
    assert!(second.starts_with("kwi_live_") && second.starts_with(c["prefix"].as_str().unwrap()));
    assert_eq!(app.get_as("/v1/me", &second).await.status, StatusCode::OK);
    let list = app.get_as("/v1/me/api-keys", &key).await;
    assert!(
        !list.text().contains(&second),
        "{name}: a listing shows a key"
    );
    assert_eq!(list.json().as_array().unwrap().len(), 2);

    // Rotation with a grace period: both work; with none the old one stops at once.
    let id = c["id"].as_str().unwrap();
    let rot = app
        .post_as(
            &format!("/v1/me/api-keys/{id}/rotate"),
            &key,
            json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(rot.status, StatusCode::CREATED, "{name}: {rot}");
    let third = rot.json()["key"].as_str().unwrap().to_string();
    assert_eq!(
        app.get_as("/v1/me", &second).await.status,
        StatusCode::OK,
        "{name}: in grace"
    );
    assert_eq!(app.get_as("/v1/me", &third).await.status, StatusCode::OK);
    let listed = app.get_as("/v1/me/api-keys", &key).await.json();
    let old = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap();
    assert!(old["expires_at"].is_string(), "{name}: {old}");

    let third_id = rot.json()["id"].as_str().unwrap().to_string();
    let rot0 = app
        .post_as(
            &format!("/v1/me/api-keys/{third_id}/rotate"),
            &key,
            json!({"grace_seconds": 0}),
        )
        .await;
    assert_eq!(rot0.status, StatusCode::CREATED, "{name}: {rot0}");
    let res = app.get_as("/v1/me", &third).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{name}: {res}");
    assert!(res.text().contains("grace period has ended"));

    let revoke = app
        .send(crate::helpers::with_token(
            Request::delete(format!("/v1/me/api-keys/{id}"))
                .body(Body::empty())
                .unwrap(),
            &key,
        ))
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{name}: {revoke}");
    let res = app.get_as("/v1/me", &second).await;
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "{name}: revoked key still works: {res}"
    );
}

/// Admin user management: bad input names the field, a taken email is 409, a disabled user is
/// refused, an admin cannot disable itself.
async fn admins_manage_users_with_clear_errors(app: TestApp) {
    let name = app.name;
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            StatusCode::BAD_REQUEST,
            "email",
        ),
        (
            json!({"email": "w@kwi.test", "password": "short"}),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            json!({"email": "w@kwi.test", "password": "password123"}),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            json!({"email": "w@kwi.test", "password": ""}),
            StatusCode::BAD_REQUEST,
            "password",
        ),
    ];
    for (body, status, field) in cases {
        let res = app.post_json("/v1/admin/users", &body).await;
        assert_eq!(res.status, status, "{name}: {body}: {res}");
        assert_eq!(res.json()["error"]["field"], field, "{name}: {body}");
    }
    let created = signup(&app, "dup@kwi.test", Role::Customer, PlanName::Free).await;
    let res = app
        .post_json(
            "/v1/admin/users",
            json!({"email": "DUP@kwi.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{name}: {res}");
    assert_eq!(res.json()["error"]["field"], "email");

    let id = created["user"]["id"].as_str().unwrap();
    let key = created["api_key"].as_str().unwrap();
    assert_eq!(app.get_as("/v1/me", key).await.status, StatusCode::OK);
    let patch = |body: &str, id: &str| {
        Request::patch(format!("/v1/admin/users/{id}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let res = app
        .send(patch(r#"{"disabled": true, "plan": "business"}"#, id))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{name}: {res}");
    assert_eq!(res.json()["plan"]["name"], "business");
    let refused = app.get_as("/v1/me", key).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{name}: disabled: {refused}"
    );
    assert!(refused.text().contains("disabled"));
    let me = app.get("/v1/me").await.json();
    let own = me["id"].as_str().unwrap();
    let res = app.send(patch(r#"{"disabled": true}"#, own)).await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{name}: {res}");
    let users = app.get("/v1/admin/users?limit=1").await.json();
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
    let next = users["next_cursor"].as_str().unwrap();
    let page2 = app
        .get(&format!("/v1/admin/users?limit=10&cursor={next}"))
        .await
        .json();
    assert_eq!(
        page2["items"].as_array().unwrap().len(),
        1,
        "{name}: {page2}"
    );
    assert!(page2["next_cursor"].is_null());
}

/// Lookups land in the caller's history (cursor-paginated, deletable), the analysts' search
/// analytics and, with the usage, in `/v1/me/usage`; sign-in failures in the audit trail.
async fn history_usage_audit_and_analytics(app: TestApp) {
    let name = app.name;
    app.load_sample().await;
    let (_, key) = app
        .user("h@kwi.test", Role::Analyst, PlanName::Business)
        .await;
    for kw in ["coffee", "jam", "wifi", "coffee"] {
        let res = app
            .get_as(
                &format!("/v1/keywords/google/{kw}/forecast?horizon=4"),
                &key,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{name}: {res}");
    }
    let usage = app.get_as("/v1/me/usage", &key).await.json();
    assert_eq!(usage["lookups"], 4, "{name}: {usage}");
    assert_eq!(usage["monthly_lookups"], 500000);
    // Repeats within a minute are one row: 3 rows, newest first.
    eventually(|| async {
        let h = app.get_as("/v1/me/history", &key).await.json();
        (h["items"].as_array().unwrap().len() == 3).then_some(())
    })
    .await;
    let page = app.get_as("/v1/me/history?limit=2", &key).await.json();
    assert_eq!(page["items"][0]["keyword"], "wifi", "{name}: {page}");
    assert_eq!(page["items"][0]["results"]["route"], "forecast");
    let next = page["next_cursor"].as_str().unwrap();
    let rest = app
        .get_as(&format!("/v1/me/history?cursor={next}"), &key)
        .await
        .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1, "{name}: {rest}");
    assert_eq!(rest["items"][0]["keyword"], "coffee");
    assert!(rest["next_cursor"].is_null());
    let bad = app.get_as("/v1/me/history?cursor=zzz", &key).await;
    assert_eq!(bad.json()["error"]["field"], "cursor", "{name}");

    let top = app
        .get_as("/v1/analytics/searches?platform=google&days=7", &key)
        .await;
    assert_eq!(top.status, StatusCode::OK, "{name}: {top}");
    let items = top.json()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 3, "{name}: {items}");
    assert_eq!(items[0]["users"], 1);

    let row = page["items"][1]["id"].as_str().unwrap();
    let del = app
        .send(crate::helpers::with_token(
            Request::delete(format!("/v1/me/history/{row}"))
                .body(Body::empty())
                .unwrap(),
            &key,
        ))
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{name}: {del}");
    let all = app
        .send(crate::helpers::with_token(
            Request::delete("/v1/me/history")
                .body(Body::empty())
                .unwrap(),
            &key,
        ))
        .await;
    assert_eq!(all.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as("/v1/me/history", &key).await.json()["items"],
        json!([])
    );

    // Sign-in attempts: 5 wrong ones are 401 (and audited), the 6th is slowed down.
    signup(&app, "victim@kwi.test", Role::Customer, PlanName::Free).await;
    for _ in 0..5 {
        assert_eq!(
            login(&app, "victim@kwi.test", "wrong guess 123")
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let slowed = login(&app, "victim@kwi.test", PASSWORD).await;
    assert_eq!(
        slowed.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{name}: {slowed}"
    );
    assert_eq!(slowed.json()["policy"], "login");
    let unknown = login(&app, "nobody@kwi.test", PASSWORD).await;
    assert_eq!(
        unknown.json()["error"]["message"],
        "wrong email or password"
    );
    let audit = eventually(|| async {
        let a = app
            .get("/v1/admin/audit?action=login.failed&limit=100")
            .await
            .json();
        (a["items"].as_array().unwrap().len() == 6).then_some(a)
    })
    .await;
    assert_eq!(audit["items"][0]["target"], "nobody@kwi.test", "{name}");
    assert_eq!(audit["items"][0]["detail"]["reason"], "unknown email");
    let throttled = app
        .get("/v1/admin/audit?action=login.throttled")
        .await
        .json();
    assert_eq!(
        throttled["items"].as_array().unwrap().len(),
        1,
        "{name}: {throttled}"
    );
    let created = app.get("/v1/admin/audit?action=user.created").await.json();
    assert!(!created["items"].as_array().unwrap().is_empty(), "{name}");
    assert!(!created.to_string().contains(PASSWORD));
}

backend_tests!(
    refresh_tokens_rotate_and_reuse_revokes_the_family,
    password_change_ends_every_session,
    api_keys_rotate_with_grace_and_revoke_at_once,
    admins_manage_users_with_clear_errors,
    history_usage_audit_and_analytics,
);

/// Two instances on one Redis share one limit (GCRA in one script round trip); with Redis gone
/// the same limit is kept in process and requests are still answered.
#[tokio::test]
async fn instances_share_the_rate_limit_through_redis_and_survive_its_loss() {
    let app = TestApp::postgres().await;
    let (_, key) = app
        .user("shared@kwi.test", Role::Customer, PlanName::Free)
        .await;
    let other = |cache| kwi::app::AppState::build_with(app.store.clone(), cache, test_auth());
    let (a, _wa) = other(crate::helpers::redis_cache(Duration::from_secs(60), 0).await)
        .await
        .unwrap();
    let (b, _wb) = other(crate::helpers::redis_cache(Duration::from_secs(60), 0).await)
        .await
        .unwrap();
    assert!(a.auth.limits_shared() && b.auth.limits_shared());
    let mut allowed = 0;
    for i in 0..12 {
        let st = if i % 2 == 0 { &a } else { &b };
        let req = crate::helpers::with_token(crate::helpers::get("/v1/me"), &key);
        let res = crate::helpers::send_to(st, req).await;
        match res.status {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            s => panic!("unexpected {s}: {res}"),
        }
    }
    assert_eq!(
        allowed, 10,
        "the free plan's burst of 10, across both instances"
    );

    // A private Redis that goes away: the limiter falls back to the in-process arithmetic.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (.ci/run makes sure)");
    let url = format!("redis://127.0.0.1:{port}");
    let cache = eventually(|| async {
        kwi::cache::Cache::redis(&url, Duration::from_secs(60), 0)
            .await
            .ok()
    })
    .await;
    let (c, _wc) = other(cache).await.unwrap();
    let (_, key2) = app
        .user("fallback@kwi.test", Role::Customer, PlanName::Free)
        .await;
    let send = |k: &str| {
        crate::helpers::send_to(
            &c,
            crate::helpers::with_token(crate::helpers::get("/v1/me"), k),
        )
    };
    assert_eq!(send(&key2).await.status, StatusCode::OK);
    redis.kill().unwrap();
    redis.wait().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(send(&key2).await.status);
    }
    assert!(
        statuses[..9].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(statuses[11], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    drop((a, b, c));
    app.cleanup().await;
}

/// Runs `kwi` with `args` on the SQLite database in `dir`.
fn kwi(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kwi"))
        .env_remove("KWI_DATABASE_URL")
        .env_remove("KWI_REDIS_URL")
        .env("KWI_DATA_DIR", dir)
        .env("KWI_TEST_PASSWORD", PASSWORD)
        .args(args)
        .output()
        .unwrap()
}

/// `kwi users create` prints the key last; `users list`, `keys list`, `keys revoke` work without a
/// server; a bad role is refused naming the values.
#[test]
fn cli_manages_users_and_keys_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = kwi(
        dir.path(),
        &[
            "users",
            "create",
            "--email",
            "cli@kwi.test",
            "--role",
            "analyst",
            "--plan",
            "pro",
            "--password-env",
            "KWI_TEST_PASSWORD",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("kwi_live_") && key.len() == 47, "{stdout}");
    kwi::auth::secret::check_api_key(&key).unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&key));

    let list = kwi(dir.path(), &["users", "list"]);
    let text = String::from_utf8(list.stdout).unwrap();
    assert!(
        text.contains("cli@kwi.test") && text.contains("analyst") && text.contains("pro"),
        "{text}"
    );
    let keys = kwi(dir.path(), &["keys", "list", "--email", "cli@kwi.test"]);
    let text = String::from_utf8(keys.stdout).unwrap();
    let id = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(text.contains("live") && !text.contains(&key), "{text}");
    let revoked = kwi(dir.path(), &["keys", "revoke", &id]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let again = kwi(dir.path(), &["keys", "revoke", &id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no live API key"));

    let dup = kwi(dir.path(), &["users", "create", "--email", "CLI@kwi.test"]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let bad = kwi(
        dir.path(),
        &["users", "create", "--email", "x@kwi.test", "--role", "root"],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("customer, analyst or admin"));
}

/// The first `kwi serve` with no users creates an admin and prints its key and the dashboard link
/// to stdout; nothing secret (keys, passwords, tokens) ever reaches the log, even at debug level.
#[tokio::test(flavor = "multi_thread")]
async fn first_start_prints_a_key_and_the_log_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut server = Command::new(env!("CARGO_BIN_EXE_kwi"))
        .env_remove("KWI_DATABASE_URL")
        .env_remove("KWI_REDIS_URL")
        .env("KWI_DATA_DIR", dir.path())
        .env("RUST_LOG", "debug")
        .args([
            "serve",
            "--no-sample",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually(|| async {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    let stdout = std::fs::read_to_string(&out).unwrap();
    let key = stdout
        .split_whitespace()
        .find(|w| w.starts_with("kwi_live_"))
        .unwrap_or_else(|| panic!("no key on stdout: {stdout}"))
        .to_string();
    assert!(stdout.contains(&format!("{base}/#key={key}")), "{stdout}");

    let auth = format!("Bearer {key}");
    let me: Value = http
        .get(format!("{base}/v1/me"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["email"].as_str(), me["role"].as_str()),
        (Some("admin@localhost"), Some("admin"))
    );
    let created: Value = http
        .post(format!("{base}/v1/admin/users"))
        .header("authorization", &auth)
        .json(&json!({"email": "log@kwi.test", "password": PASSWORD, "plan": "pro"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_key = created["api_key"].as_str().unwrap().to_string();
    let tokens: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "log@kwi.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    let again: Value = http
        .post(format!("{base}/v1/auth/refresh"))
        .json(&json!({"refresh_token": rt}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rt2 = again["refresh_token"].as_str().unwrap().to_string();
    // Failures too: a wrong password, a reused refresh token, a mistyped key.
    let _ = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "log@kwi.test", "password": "Wrong-Passw0rd-here"}))
        .send()
        .await
        .unwrap();
    let _ = http
        .post(format!("{base}/v1/auth/refresh"))
        .json(&json!({"refresh_token": rt}))
        .send()
        .await
        .unwrap();
    // The last character changed (to `x`, or `y` when it already is one: a mistype for certain).
    let last = if user_key.ends_with('x') { 'y' } else { 'x' };
    let typo = format!("{}{last}", &user_key[..user_key.len() - 1]);
    let r = http
        .get(format!("{base}/v1/me"))
        .header("authorization", format!("Bearer {typo}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.text().await.unwrap().contains(&typo));
    let r = http
        .get(format!("{base}/v1/me"))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    server.wait().unwrap();
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(
        log.contains("DEBUG") || log.contains("INFO"),
        "the log is empty: {log}"
    );
    for (what, secret) in [
        ("first key", key.as_str()),
        ("user key", &user_key),
        ("password", PASSWORD),
        ("access token", &access),
        ("refresh token", &rt),
        ("second refresh token", &rt2),
        ("mistyped key", &typo),
        ("wrong password", "Wrong-Passw0rd-here"),
    ] {
        assert!(!log.contains(secret), "the log holds the {what}");
    }
    // A second start with users present creates no other admin and prints no key.
    let again = kwi(dir.path(), &["users", "list"]);
    let text = String::from_utf8(again.stdout).unwrap();
    assert_eq!(text.matches("admin@localhost").count(), 1, "{text}");
}
