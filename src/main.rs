//! `kwi`: thin entry point; everything lives in the library so tests can drive it.

use clap::Parser;
use kwi::config::{Cli, Command};

/// mimalloc instead of glibc malloc: the request path allocates many small, short-lived buffers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    kwi::app::init_tracing();
    match cli.command {
        Command::Serve(args) => kwi::app::run_server(&cli.global, &args).await,
        Command::Migrate => kwi::app::run_migrate(&cli.global).await,
        Command::Import(args) => kwi::import::run(&cli.global, &args).await,
        Command::Export(args) => kwi::export::run(&cli.global, &args).await,
    }
}
