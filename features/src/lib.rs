//! # kwi-features: the one place raw keyword data becomes model input
//!
//! Reading order:
//! - [`keyword`]: the edge types ([`Keyword`], [`Platform`], [`Frequency`]) that every other crate takes
//!   instead of raw strings;
//! - [`ingest`]: reading observation files (long CSV/Parquet/Arrow IPC, Google Trends wide exports,
//!   M4-style wide files) with Polars into validated [`ingest::Observation`] rows, every bad row reported
//!   as `file:line: column: reason`.
//!
//! This crate knows nothing of models, HTTP, SQL or Redis: the training binary and the server call the
//! same code, so they cannot drift apart.

pub mod competition;
pub mod demand;
pub mod error;
pub mod export;
pub mod frame;
pub mod ingest;
pub mod keyword;
pub mod regular;
pub mod resample;
pub mod schema;
pub mod series;
pub mod tabular;
pub mod windows;

pub use error::{FeatureError, Result};
pub use keyword::{Frequency, Keyword, Platform};
