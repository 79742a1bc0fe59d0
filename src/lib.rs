//! # kwi: the Digitallz Keywords service
//!
//! Reading order: [`config`] (one typed configuration) → [`cache`] (Redis or in-process) →
//! [`import`] (files → store, all or nothing) → [`export`] (store → Arrow/Parquet, streamed) →
//! [`serving`] (the [`serving::Forecaster`]: model slot, data versions, single flight, batcher,
//! prediction writer) → [`auth`] (credentials, roles, rate limits, quotas, history and audit) →
//! [`http`] (the axum router, its access layer and its error type) → [`app`] (state, start-up,
//! serve with graceful shutdown) → [`collect`] (marketplace API clients, the queue worker) → [`cli`] (the `kwi` subcommands). The store is the
//! `kwi-store` crate, the prediction path (`Predictor`, insights) the `kwi-predict` crate.
//! `main.rs` only parses the command line and calls into these.

pub mod app;
pub mod auth;
pub mod backoff;
pub mod cache;
pub mod cli;
pub mod collect;
pub mod config;
pub mod export;
pub mod http;
pub mod import;
pub mod serving;
