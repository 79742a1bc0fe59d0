//! The crate's one error type.

/// Model errors.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A hyperparameter is outside its range; names the parameter and the range.
    #[error("invalid hyperparameter `{name}`: {reason}")]
    Param {
        /// Parameter name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Input arrays have the wrong shape or content.
    #[error("invalid input: {0}")]
    Input(String),
    /// Candle failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Linfa failed.
    #[error("linfa: {0}")]
    Linfa(String),
    /// Reading or writing an artifact failed.
    #[error("artifact {path}: {reason}")]
    Artifact {
        /// File involved.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
