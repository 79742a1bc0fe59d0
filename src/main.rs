//! `kwi`: thin entry point; everything lives in the library so tests can drive it.

use clap::Parser;
use kwi::config::Cli;

/// mimalloc instead of glibc malloc: the request path allocates many small, short-lived buffers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    kwi::app::init_tracing();
    kwi::cli::run(cli).await
}
