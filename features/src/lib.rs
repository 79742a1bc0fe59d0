//! # kwi-features: the one place raw keyword data becomes model input
//!
//! Reading order:
//! - [`keyword`]: the edge types ([`Keyword`], [`Platform`], [`Frequency`]) that every other crate takes
//!   instead of raw strings;
//! - [`ingest`]: reading observation files (long CSV/Parquet/Arrow IPC, Google Trends wide exports,
//!   M4-style wide files) with Polars into validated [`ingest::Observation`] rows, every bad row reported
//!   as `file:line: column: reason`; [`text`] (encodings, separators, title lines) and [`sellers`]
//!   (Keyword Planner and Brand Analytics exports) under it;
//! - [`series`]: row-wise regular series (grid, gaps interpolated and flagged), used by the models;
//! - [`frame`]: the same data as Polars frames, and the input checks every pipeline runs first
//!   (missing column, wrong type, negative volume → an error naming the column);
//! - [`regular`]: the Polars twin of [`series::regularise`] (same semantics, tested against it);
//! - [`demand`]: demand features per series and period (lags, rolling statistics, growth, trend,
//!   volatility, zeros, seasonality, calendar, scaling), using only data up to the period;
//! - [`competition`]: competition features per (platform, keyword, period) from listing-level data,
//!   and parsers for the reference Etsy and Amazon.in files;
//! - [`windows`] and [`tabular`]: model inputs (fixed-length windows; a tabular frame and matrix for
//!   Linfa);
//! - [`export`]: Arrow IPC and Parquet for notebooks;
//! - [`schema`]: the named, versioned schemas of every output, whose hashes go into model manifests;
//! - [`resample`]: large benchmark panels resampled from the real reference series.
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
pub mod params;
pub mod regular;
pub mod resample;
pub mod schema;
pub mod sellers;
pub mod series;
pub mod tabular;
pub mod text;
pub mod windows;

pub use error::{FeatureError, Result};
pub use keyword::{Frequency, Keyword, Platform};
pub use params::{Horizon, Levels, ParamError};
