//! Errors of the benchmark suite.

use std::path::{Path, PathBuf};

/// What can go wrong while setting up or reporting a benchmark (a failing optimizer is
/// not an error: it is a result row).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A problem could not be read or compiled.
    #[error(transparent)]
    Atlas(#[from] atlas_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A file had the wrong content.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A bad command-line value.
    #[error("{option}: {reason}")]
    Usage {
        /// The option, e.g. `--runs`.
        option: String,
        /// What is wrong.
        reason: String,
    },
    /// The chart could not be drawn.
    #[error("chart {path}: {reason}")]
    Chart {
        /// The SVG file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

impl BenchError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, e: std::io::Error) -> BenchError {
        BenchError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    /// A usage error naming the option.
    pub fn usage(option: &str, reason: impl Into<String>) -> BenchError {
        BenchError::Usage {
            option: option.to_string(),
            reason: reason.into(),
        }
    }
}

/// The command line reports bench errors through the core's error type: a usage error is
/// bad input (exit status 2), as is an unreadable file; a failure to write output is an
/// I/O error.
impl From<BenchError> for atlas_core::Error {
    fn from(e: BenchError) -> atlas_core::Error {
        match e {
            BenchError::Atlas(e) => e,
            BenchError::Io { path, message } => atlas_core::Error::Io { path, message },
            BenchError::Format { path, reason } => atlas_core::Error::Io {
                path,
                message: reason,
            },
            BenchError::Usage { option, reason } => {
                atlas_core::InputError::new(option, reason).into()
            }
            BenchError::Chart { path, reason } => atlas_core::Error::Io {
                path,
                message: format!("cannot draw the chart: {reason}"),
            },
        }
    }
}
