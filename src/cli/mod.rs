//! The `kwi` subcommands: each runner turns the typed configuration ([`crate::config`]) into calls
//! on the library. Only this module (and `main.rs`) reads the configuration; library modules take
//! plain values.

mod backup;
mod collect;
mod export;
mod import;
mod serve;
mod users;

use std::sync::Arc;

use anyhow::Context;
use kwi_store::Store;

use crate::config::{Cli, Command, GlobalOpts};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, &args).await,
        Command::Migrate => serve::migrate(&cli.global).await,
        Command::Import(args) => import::run(&cli.global, &args).await,
        Command::Export(args) => export::run(&cli.global, &args).await,
        Command::Users(args) => users::users(&cli.global, &args).await,
        Command::Keys(args) => users::keys(&cli.global, &args).await,
        Command::Collect(args) => collect::run(&cli.global, &args).await,
        Command::Worker(args) => collect::worker(&cli.global, &args).await,
        Command::Watch(args) => collect::watch(&cli.global, &args).await,
        Command::Backup(args) => backup::backup(&cli.global, &args).await,
        Command::Restore(args) => backup::restore(&cli.global, &args).await,
    }
}

/// Opens the configured store and applies migrations.
async fn open_store(global: &GlobalOpts) -> anyhow::Result<Arc<dyn Store>> {
    kwi_store::open(&global.database_url())
        .await
        .context("cannot start")
}
