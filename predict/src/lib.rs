//! # kwi-predict: the prediction path shared by the server and `kwi-train`
//!
//! Reading order: [`predictor`] (a loaded model: ensemble members, combination, conformal
//! intervals; the built-in baseline) → [`registry`] (which model the registry says to serve, loaded
//! from its artifact) → [`insights`] (competition scores, opportunity and trend insights for every
//! stored keyword, computed in one pass and stored in one transaction).
//!
//! The server and `kwi-train` both forecast through [`Predictor`], so what training measures is
//! what is served. Nothing here knows HTTP or the cache: store rows and arrays in, plain structs out.

pub mod insights;
pub mod predictor;
pub mod registry;

pub use kwi_models::ensemble::Member;
pub use predictor::{ForecastError, Predictor};
