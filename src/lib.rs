//! # kwi: the Digitallz Keywords service
//!
//! Reading order: [`config`] (one typed configuration) → [`store`] (PostgreSQL or embedded SQLite
//! behind one trait) → [`cache`] (Redis or in-process) → [`import`] (files → store, all or nothing) → [`export`] (store → Arrow/Parquet, streamed) → [`insights`] (competition scores, opportunity,
//! trend insights; computed in batch, stored) →
//! [`http`] (the axum router and its error type) → [`app`] (state, start-up, serve with graceful
//! shutdown). `main.rs` only parses the command line and calls into these.

pub mod app;
pub mod cache;
pub mod config;
pub mod export;
pub mod forecast;
pub mod http;
pub mod import;
pub mod insights;
pub mod serving;
pub mod store;
