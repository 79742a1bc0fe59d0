//! Minimal reference server for the load benchmark (`benches/load/run.sh`): the ceiling we measure
//! `kwi serve` against in the same run. It does the least a cached forecast GET can do:
//!
//! - `GET /redis/{*key}`: one Redis GET (connection manager, like `kwi`) and the stored bytes back;
//! - `GET /local/{*key}`: one in-process (moka) cache read and the bytes back.
//!
//! At start it stores `--payload` (a real forecast JSON taken from `kwi`) under every line of
//! `--keys` (Redis key `kwiref:<line>`), so both servers answer the same keys with the same bytes.
//!
//! `cargo run --release --example refserver -- --keys KEYS.txt --payload BODY.json --listen 127.0.0.1:18282`

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

#[derive(Clone)]
struct Ref {
    redis: ConnectionManager,
    local: moka::future::Cache<String, axum::body::Bytes>,
}

fn json(bytes: axum::body::Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(bytes),
    )
        .into_response()
}

async fn from_redis(State(s): State<Ref>, Path(key): Path<String>) -> Response {
    let mut c = s.redis.clone();
    match c.get::<_, Option<Vec<u8>>>(format!("kwiref:{key}")).await {
        Ok(Some(b)) => json(b.into()),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn from_local(State(s): State<Ref>, Path(key): Path<String>) -> Response {
    match s.local.get(&key).await {
        Some(b) => json(b),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let keys = std::fs::read_to_string(arg("--keys", "benches/load/keywords.txt"))?;
    let payload = std::fs::read(arg("--payload", "benches/load/payload.json"))?;
    let redis_url = arg("--redis", "redis://127.0.0.1:6379");
    let listen = arg("--listen", "127.0.0.1:18282");
    let redis = redis::Client::open(redis_url)?
        .get_connection_manager()
        .await?;
    let local = moka::future::Cache::new(1_000_000);
    let payload = axum::body::Bytes::from(payload);
    let mut pipe = redis::pipe();
    let mut n = 0;
    for key in keys.lines().filter(|l| !l.is_empty()) {
        // The wrk script requests the URL-encoded line; axum hands the handler the decoded path.
        let decoded = percent_encoding::percent_decode_str(key)
            .decode_utf8_lossy()
            .into_owned();
        pipe.set(format!("kwiref:{decoded}"), payload.as_ref())
            .ignore();
        local.insert(decoded, payload.clone()).await;
        n += 1;
    }
    pipe.query_async::<()>(&mut redis.clone()).await?;
    let app = Router::new()
        .route("/redis/{*key}", get(from_redis))
        .route("/local/{*key}", get(from_local))
        .with_state(Ref { redis, local });
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "refserver: {n} keys, {} byte payload, on {listen}",
        payload.len()
    );
    axum::serve(listener, app).await?;
    Ok(())
}
