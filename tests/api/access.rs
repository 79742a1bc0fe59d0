//! Access control (OWASP API Security Top 10, 2023): every route of the router against every kind
//! of caller, credentials that must be refused and why, access tokens that were tampered with, and
//! objects of another user.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use kwi::http::{Access, route_table};
use serde_json::{Value, json};

use crate::helpers::{PlanName, Role, TestApp, anonymous, backend_tests, get, with_token};

/// A concrete path for a route pattern.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{platform}", "google")
        .replace("{keyword}", "coffee")
        .replace("{version}", "no-such-version")
        .replace("{id}", &uuid::Uuid::now_v7().to_string())
        .replace(
            "{name}",
            if pattern.starts_with("/assets") {
                "app.js"
            } else {
                "pro"
            },
        )
}

fn request(method: &Method, uri: &str) -> Request<Body> {
    let b = Request::builder().method(method.clone()).uri(uri);
    if *method == Method::POST || *method == Method::PATCH {
        b.header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap()
    } else {
        b.body(Body::empty()).unwrap()
    }
}

/// An HS256 token signed with `secret` over `claims`.
fn sign(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn signing_secret(app: &TestApp) -> String {
    app.store
        .server_secret("access_token_hs256", "unused")
        .await
        .unwrap()
}

fn claims(sub: uuid::Uuid, exp_in: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "iss": "kwi", "aud": "kwi-api", "iat": now, "exp": now + exp_in, "ep": 0})
}

/// Every route × {anonymous, customer, analyst, admin, revoked key, expired token}: the role table
/// is the router's own list, so a route added without an access level cannot exist.
async fn every_route_checks_the_role_table(app: TestApp) {
    let name = app.name;
    let (_, customer) = app
        .user("c@kwi.test", Role::Customer, PlanName::Business)
        .await;
    let (_, analyst) = app
        .user("an@kwi.test", Role::Analyst, PlanName::Business)
        .await;
    let (revoked_id, revoked) = app
        .user("r@kwi.test", Role::Admin, PlanName::Business)
        .await;
    let keys = app.store.api_keys(revoked_id).await.unwrap();
    app.state
        .auth
        .revoke_key(None, None, keys[0].id)
        .await
        .unwrap();
    let expired = sign(&signing_secret(&app).await, &claims(revoked_id, -5));
    let table = route_table();
    assert!(table.len() >= 37, "{name}: {} routes", table.len());
    let mut checked = 0;
    for (pattern, access) in &table {
        let uri = concrete(pattern);
        for method in [Method::GET, Method::POST, Method::PATCH, Method::DELETE] {
            let as_admin = app.send(request(&method, &uri)).await;
            if as_admin.status == StatusCode::METHOD_NOT_ALLOWED {
                continue;
            }
            checked += 1;
            let callers: [(&str, Option<&str>, Option<Role>); 6] = [
                ("anonymous", None, None),
                ("customer", Some(&customer), Some(Role::Customer)),
                ("analyst", Some(&analyst), Some(Role::Analyst)),
                ("admin", Some(&app.key), Some(Role::Admin)),
                ("revoked key", Some(&revoked), None),
                ("expired token", Some(&expired), None),
            ];
            for (who, token, role) in callers {
                let req = request(&method, &uri);
                let res = match token {
                    Some(t) => app.send(with_token(req, t)).await,
                    None => app.send(anonymous(req)).await,
                };
                let refused =
                    matches!(res.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
                let expected = match access {
                    Access::Public | Access::Metrics => "allowed",
                    Access::Role(needed) => match role {
                        None => "401",
                        Some(r) if r < *needed => "403",
                        Some(_) => "allowed",
                    },
                };
                let ok = match expected {
                    "401" => res.status == StatusCode::UNAUTHORIZED,
                    "403" => res.status == StatusCode::FORBIDDEN,
                    _ => !refused,
                };
                assert!(
                    ok,
                    "{name}: {method} {pattern} as {who}: expected {expected}, got {res}"
                );
                if refused {
                    assert_eq!(
                        res.content_type(),
                        "application/json",
                        "{name}: {method} {pattern}"
                    );
                    let body = res.text();
                    for secret in [&customer, &analyst, &revoked, &expired, &app.key] {
                        assert!(
                            !body.contains(secret.as_str()),
                            "{name}: a credential echoed in {body}"
                        );
                    }
                }
            }
        }
    }
    assert!(checked >= 40, "{name}: only {checked} route/method pairs");
}

/// Why a credential is refused, in words that leak nothing; all 401 JSON with `WWW-Authenticate`.
async fn bad_credentials_are_refused_with_a_reason(app: TestApp) {
    let name = app.name;
    let mut typo = app.key.clone().into_bytes();
    let i = typo.len() - 10;
    typo[i] = if typo[i] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    let unknown = {
        // Well formed (checksum right), never issued.
        let k = kwi::auth::secret::new_api_key();
        k.key
    };
    let long = "a".repeat(5000);
    let cases: [(&str, String, &str); 8] = [
        ("no header", String::new(), "credentials required"),
        (
            "basic",
            "Basic dXNlcjpwYXNz".into(),
            "unsupported authorization scheme `Basic`",
        ),
        ("empty bearer", "Bearer ".into(), "empty"),
        ("typo", format!("Bearer {typo}"), "checksum"),
        (
            "unknown key",
            format!("Bearer {unknown}"),
            "unknown or revoked API key",
        ),
        ("garbage", "Bearer not-a-token".into(), "neither an API key"),
        (
            "oversized",
            format!("Bearer {long}"),
            "longer than 4096 bytes",
        ),
        (
            "refresh token",
            "Bearer kwi_rt_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into(),
            "exchange it at POST /v1/auth/refresh",
        ),
    ];
    for (what, value, reason) in cases {
        let mut req = anonymous(get("/v1/me"));
        if !value.is_empty() {
            req.headers_mut()
                .insert(header::AUTHORIZATION, value.parse().unwrap());
        }
        let res = app.send(req).await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {what}: {res}"
        );
        assert_eq!(
            res.header(header::WWW_AUTHENTICATE),
            Some("Bearer realm=\"kwi\"")
        );
        let body = res.json();
        assert_eq!(body["error"]["code"], "unauthorized", "{name}: {what}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{name}: {what}: {message}");
        assert!(
            !message.contains(&typo) && !message.contains(&unknown) && !message.contains(&long)
        );
    }
}

/// Expired, `alg: none`, wrong key, wrong audience, tampered claims, after a password change.
async fn forged_or_stale_access_tokens_are_refused(app: TestApp) {
    let name = app.name;
    let (id, _) = app.user("t@kwi.test", Role::Customer, PlanName::Pro).await;
    let secret = signing_secret(&app).await;
    let good = sign(&secret, &claims(id, 600));
    assert_eq!(
        app.get_as("/v1/me", &good).await.status,
        StatusCode::OK,
        "{name}"
    );

    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(id, 600))
    );
    let mut admin_claims = claims(id, 600);
    admin_claims["sub"] = json!(uuid::Uuid::now_v7());
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&admin_claims), parts[2]);
    let mut wrong_aud = claims(id, 600);
    wrong_aud["aud"] = json!("another-api");
    let cases = [
        ("expired", sign(&secret, &claims(id, -1)), "expired"),
        ("alg none", none, "malformed"),
        (
            "wrong key",
            sign("another-secret-of-enough-length-0123", &claims(id, 600)),
            "signature",
        ),
        (
            "wrong audience",
            sign(&secret, &wrong_aud),
            "not for this API",
        ),
        ("tampered claims", tampered, "signature"),
    ];
    for (what, token, reason) in cases {
        let res = app.get_as("/v1/me", &token).await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {what}: {res}"
        );
        let m = res.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(m.contains(reason), "{name}: {what}: {m}");
    }
}

/// Another user's keys and history answer 404, the same as ones that do not exist.
async fn other_users_objects_are_not_found(app: TestApp) {
    let name = app.name;
    app.load_sample().await;
    let (a, key_a) = app.user("a@kwi.test", Role::Customer, PlanName::Pro).await;
    let (_, key_b) = app.user("b@kwi.test", Role::Customer, PlanName::Pro).await;
    let a_key = app.store.api_keys(a).await.unwrap()[0].id;
    assert_eq!(
        app.get_as("/v1/keywords/google/coffee", &key_a)
            .await
            .status,
        StatusCode::OK
    );
    let row = crate::helpers::eventually(|| async {
        let h = app.get_as("/v1/me/history", &key_a).await.json();
        h["items"][0]["id"].as_str().map(str::to_string)
    })
    .await;
    for (method, uri) in [
        (Method::DELETE, format!("/v1/me/api-keys/{a_key}")),
        (Method::POST, format!("/v1/me/api-keys/{a_key}/rotate")),
        (Method::DELETE, format!("/v1/me/history/{row}")),
    ] {
        let res = app.send(with_token(request(&method, &uri), &key_b)).await;
        assert_eq!(
            res.status,
            StatusCode::NOT_FOUND,
            "{name}: {method} {uri}: {res}"
        );
    }
    // B sees only its own (empty) history and keys; A's are untouched.
    assert_eq!(
        app.get_as("/v1/me/history", &key_b).await.json()["items"],
        json!([])
    );
    let b_keys = app.get_as("/v1/me/api-keys", &key_b).await.json();
    assert_eq!(b_keys.as_array().unwrap().len(), 1, "{name}");
    assert_eq!(app.get_as("/v1/me", &key_a).await.status, StatusCode::OK);
    let h = app.get_as("/v1/me/history", &key_a).await.json();
    assert_eq!(h["items"][0]["id"], row.as_str(), "{name}");
}

/// A customer cannot make itself an admin or change its plan.
async fn customers_cannot_raise_their_own_role_or_plan(app: TestApp) {
    let name = app.name;
    let (id, key) = app.user("c@kwi.test", Role::Customer, PlanName::Free).await;
    let res = app
        .send(with_token(
            Request::patch(format!("/v1/admin/users/{id}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"role":"admin","plan":"business"}"#))
                .unwrap(),
            &key,
        ))
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{name}: {res}");
    let res = app
        .post_as(
            "/v1/me/api-keys",
            &key,
            json!({"name": "x", "role": "admin"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{name}: {res}");
    let me = app.get_as("/v1/me", &key).await.json();
    assert_eq!(
        (me["role"].as_str(), me["plan"]["name"].as_str()),
        (Some("customer"), Some("free"))
    );
}

/// The rate limit (GCRA, in process here): the plan's burst, then 429 with `Retry-After` and a
/// problem body naming the policy; every answer carries the rate-limit fields.
async fn rate_limit_refuses_past_the_burst(app: TestApp) {
    let name = app.name;
    let (_, key) = app.user("f@kwi.test", Role::Customer, PlanName::Free).await;
    for i in 0..10 {
        let res = app.get_as("/v1/me", &key).await;
        assert_eq!(res.status, StatusCode::OK, "{name}: request {i}: {res}");
        assert_eq!(res.header("ratelimit-policy"), Some("\"free\";q=10;w=60"));
        assert_eq!(res.header("x-ratelimit-limit"), Some("10"));
        assert_eq!(
            res.header("x-ratelimit-remaining"),
            Some((9 - i).to_string().as_str()),
            "{name}"
        );
        assert!(res.header("ratelimit").unwrap().starts_with("\"free\";r="));
    }
    let res = app.get_as("/v1/me", &key).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{name}: {res}");
    assert_eq!(res.content_type(), "application/problem+json");
    let retry: u64 = res.header(header::RETRY_AFTER).unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry), "{name}: Retry-After {retry}");
    let body = res.json();
    assert_eq!(body["status"], 429);
    assert_eq!(body["policy"], "free");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("10 requests a minute")
    );
    assert_eq!(res.header("x-ratelimit-remaining"), Some("0"));
    // Another caller has its own limit.
    let (_, other) = app.user("g@kwi.test", Role::Customer, PlanName::Free).await;
    assert_eq!(app.get_as("/v1/me", &other).await.status, StatusCode::OK);
}

/// Lookups count against the monthly quota (a batch of n is n) and are refused past it.
async fn monthly_quota_counts_lookups(app: TestApp) {
    let name = app.name;
    let patch = Request::patch("/v1/admin/plans/pro")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"monthly_lookups": 5}"#))
        .unwrap();
    let res = app.send(patch).await;
    assert_eq!(res.status, StatusCode::OK, "{name}: {res}");
    assert_eq!(res.json()["monthly_lookups"], 5);
    let (_, key) = app.user("p@kwi.test", Role::Customer, PlanName::Pro).await;
    let series = |n: usize| {
        let s: Vec<Value> = (0..n)
            .map(|i| json!({"id": format!("s{i}"), "values": (0..40).map(|v| 10.0 + (v % 7) as f64).collect::<Vec<_>>()}))
            .collect();
        json!({"series": s, "horizon": 4})
    };
    let res = app.post_as("/v1/forecasts", &key, series(4)).await;
    assert_eq!(res.status, StatusCode::OK, "{name}: {res}");
    let usage = app.get_as("/v1/me/usage", &key).await.json();
    assert_eq!(
        (usage["lookups"].as_i64(), usage["remaining"].as_i64()),
        (Some(4), Some(1)),
        "{usage}"
    );
    let res = app.post_as("/v1/forecasts", &key, series(2)).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{name}: {res}");
    let body = res.json();
    assert_eq!(body["policy"], "monthly-lookups", "{name}");
    assert!(res.header(header::RETRY_AFTER).is_some());
    assert_eq!(
        app.post_as("/v1/forecasts", &key, series(1)).await.status,
        StatusCode::OK
    );
    // The counters reach the store.
    app.state.auth.meter().flush().await;
    let stored = crate::helpers::eventually(|| async {
        let (l, _) = app
            .store
            .usage(
                app.store
                    .account_by_email("p@kwi.test")
                    .await
                    .unwrap()
                    .unwrap()
                    .id,
                &kwi::auth::meter::period_of(chrono::Utc::now()),
            )
            .await
            .unwrap();
        (l == 5).then_some(l)
    })
    .await;
    assert_eq!(stored, 5, "{name}");
    // The internal plan is fixed.
    let res = app
        .send(
            Request::patch("/v1/admin/plans/internal")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"burst": 1}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{name}: {res}");
}

/// A batch is bounded by the plan (free: 10 entries).
async fn batch_size_is_bounded_by_the_plan(app: TestApp) {
    let name = app.name;
    let (_, key) = app.user("f@kwi.test", Role::Customer, PlanName::Free).await;
    let keywords: Vec<Value> = (0..11)
        .map(|i| json!({"platform": "google", "keyword": format!("k{i}")}))
        .collect();
    let res = app
        .post_as("/v1/forecasts", &key, json!({"keywords": keywords}))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{name}: {res}");
    let e = res.json();
    assert_eq!(e["error"]["field"], "keywords");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("free plan takes at most 10 keywords")
    );
}

backend_tests!(
    every_route_checks_the_role_table,
    bad_credentials_are_refused_with_a_reason,
    forged_or_stale_access_tokens_are_refused,
    other_users_objects_are_not_found,
    customers_cannot_raise_their_own_role_or_plan,
    rate_limit_refuses_past_the_burst,
    monthly_quota_counts_lookups,
    batch_size_is_bounded_by_the_plan,
);
