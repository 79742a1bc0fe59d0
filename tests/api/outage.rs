//! The store going away under a running service: PostgreSQL reached through a TCP proxy this test
//! controls, the proxy stopped (every connection cut, new ones refused, as a stopped server) and
//! started again. While it is down, a request that needs the store answers 503 quickly, a caller
//! seen before keeps being recognised (credentials remembered from the store, see
//! `auth::Remembered`), and cached forecasts are served; once it is back everything works again
//! without a restart. (benches/faults/pg_restart.sh does the same to a real server under load.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use kwi::app::AppState;
use kwi::cache::{Cache, DEFAULT_LOCAL_BYTES, DEFAULT_TTL};
use kwi_store::{PlanName, Role};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::helpers::{TestDb, get, send_to, test_auth, with_token};

/// A TCP proxy to `upstream` on a fixed local port, which can be stopped and started again.
struct Proxy {
    port: u16,
    upstream: SocketAddr,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let mut p = Self {
            port: 0,
            upstream,
            running: None,
        };
        p.resume().await;
        p
    }

    /// Listens again (on the same port after a stop).
    async fn resume(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.port = listener.local_addr().unwrap().port();
        let upstream = self.upstream;
        self.running = Some(tokio::spawn(async move {
            // Aborting this task drops the listener and every connection task with the set.
            let mut conns = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Cuts every connection and refuses new ones.
    async fn stop(&mut self) {
        if let Some(t) = self.running.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

/// A new customer's API key.
async fn customer_key(state: &AppState, email: &str) -> String {
    let (_, key) = state
        .auth
        .create_user(
            None,
            email,
            None,
            Role::Customer,
            PlanName::Pro,
            Some("outage"),
        )
        .await
        .unwrap();
    key.unwrap()
}

#[tokio::test]
async fn postgres_going_away_answers_503_fast_keeps_known_callers_and_recovers() {
    let db = TestDb::postgres().await;
    // postgres://user@host:port/name → the server's address, and the same URL through the proxy.
    let (user, rest) = db.url.split_once('@').expect("a URL with user@host");
    let (host_port, name) = rest.split_once('/').expect("a URL with a database name");
    let upstream: SocketAddr = tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap();
    let mut proxy = Proxy::start(upstream).await;
    let proxied = format!("{user}@127.0.0.1:{}/{name}", proxy.port);
    let store = kwi_store::open(&proxied).await.unwrap();
    kwi::import::load_sample(store.as_ref()).await.unwrap();
    let (state, _writer) = AppState::build_with(
        store,
        Cache::in_process(DEFAULT_LOCAL_BYTES, DEFAULT_TTL),
        test_auth(),
    )
    .await
    .unwrap();
    let key = customer_key(&state, "known@kwi.test").await;
    let stranger = customer_key(&state, "unseen@kwi.test").await;
    let cached = "/v1/keywords/google/coffee/forecast?horizon=8";
    for uri in ["/v1/me", cached] {
        let res = send_to(&state, with_token(get(uri), &key)).await;
        assert_eq!(res.status, StatusCode::OK, "{uri} before: {}", res.text());
    }

    proxy.stop().await;
    // Past the fresh caches' lifetimes (accounts: 5 s), so only what is remembered can answer.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let started = Instant::now();
    let res = send_to(&state, with_token(get(cached), &key)).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "a cached forecast for a known caller while the store is down: {}",
        res.text()
    );
    let uncached = "/v1/keywords/google/coffee/forecast?horizon=21";
    let started_uncached = Instant::now();
    let res = send_to(&state, with_token(get(uncached), &key)).await;
    let took = started_uncached.elapsed();
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
    assert_eq!(res.json()["error"]["code"], "unavailable");
    assert!(
        took < Duration::from_millis(2500),
        "a request that needs the store fails fast: {took:?}"
    );
    // A caller this instance never saw cannot be checked: 503 (not the caller's fault), not 401.
    let res = send_to(&state, with_token(get("/v1/me"), &stranger)).await;
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
    assert!(
        res.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be checked right now"),
        "{}",
        res.text()
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    proxy.resume().await;
    // Recovery without a restart: the pool reconnects on the next request.
    let back = Instant::now();
    loop {
        let res = send_to(&state, with_token(get(uncached), &key)).await;
        if res.status == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not recovered 5 s after the store came back: {} {}",
            res.status,
            res.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = send_to(&state, with_token(get("/v1/me"), &stranger)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    drop(state);
    db.cleanup().await;
}
