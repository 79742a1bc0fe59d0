//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the feature layer, each variant naming what, where and why.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// The file could not be opened or parsed at all (not a row-level problem).
    #[error("{path}: cannot read file: {reason}")]
    Read {
        /// File that failed.
        path: PathBuf,
        /// Underlying cause.
        reason: String,
    },
    /// The file's layout is not one we understand (missing column, unknown format, ...).
    #[error("{path}: {reason}")]
    Layout {
        /// File that failed.
        path: PathBuf,
        /// What is wrong with its layout.
        reason: String,
    },
    /// An option needed for this file is missing or contradicts another.
    #[error("{0}")]
    Options(String),
    /// A data frame handed to a pipeline lacks a column or has the wrong type.
    #[error("column `{column}`: {reason}")]
    Column {
        /// The offending column.
        column: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Polars failed inside a pipeline.
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
}

/// Result alias for this crate.
pub type Result<T, E = FeatureError> = std::result::Result<T, E>;
