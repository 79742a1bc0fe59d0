//! `kwi-train`: thin entry point; see `kwi_training::cli`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs to stderr; `RUST_LOG` filters (default `info`).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    kwi_training::cli::run(kwi_training::cli::Cli::parse()).await
}
