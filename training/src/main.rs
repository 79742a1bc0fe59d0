//! `kwi-train`: thin entry point; see `kwi_training::cli`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kwi::app::init_tracing();
    kwi_training::cli::run(kwi_training::cli::Cli::parse()).await
}
