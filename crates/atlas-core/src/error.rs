//! Error types. Every error that comes from the user's input names where it comes from
//! (file, field path, optimizer setting) and why it was rejected.

use std::fmt;
use std::path::PathBuf;

/// A problem in a problem file (or a problem built in code): the file, the field path
/// (`channels[2].response.k`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The file the problem was read from, when it came from a file.
    pub file: Option<PathBuf>,
    /// Path of the offending field, e.g. `channels[2].response.k`; empty when the error
    /// concerns the document as a whole (a syntax error, say).
    pub field: String,
    /// Why the value was rejected.
    pub reason: String,
}

impl InputError {
    /// An error about `field`, not yet tied to a file.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: None,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, tied to `file` (kept when one is already set).
    pub fn in_file(mut self, file: Option<&std::path::Path>) -> Self {
        if self.file.is_none() {
            self.file = file.map(|f| f.to_path_buf());
        }
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for InputError {}

/// An invalid optimizer setting: the optimizer, the field and the valid range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Registered name of the optimizer (`lbfgs`).
    pub optimizer: String,
    /// The setting (`memory`); empty when the configuration as a whole is malformed.
    pub field: String,
    /// Why it was rejected, with the valid range.
    pub reason: String,
}

impl ConfigError {
    /// An error about `field` of `optimizer`'s configuration.
    pub fn new(
        optimizer: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            optimizer: optimizer.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// `Ok` when the whole-number setting `value` lies in `range`, else an error naming
    /// the setting and the range (`must be in 1..=1024 (got 0)`).
    pub fn check_range<T: PartialOrd + fmt::Display>(
        optimizer: &str,
        field: &str,
        value: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<(), Self> {
        if range.contains(&value) {
            Ok(())
        } else {
            let reason = format!(
                "must be in {}..={} (got {value})",
                range.start(),
                range.end()
            );
            Err(Self::new(optimizer, field, reason))
        }
    }

    /// `Ok` when an optional time limit in seconds is absent, or finite, positive and at
    /// most [`MAX_TIME_LIMIT_S`](crate::limits::MAX_TIME_LIMIT_S) (one year).
    pub fn check_seconds(optimizer: &str, field: &str, value: Option<f64>) -> Result<(), Self> {
        match value {
            Some(t) => crate::limits::check_time_limit(field, t)
                .map(|_| ())
                .map_err(|e| Self::new(optimizer, field, e.reason)),
            None => Ok(()),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "optimizer `{}`", self.optimizer)?;
        if !self.field.is_empty() {
            write!(f, ", setting `{}`", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Everything that can go wrong in Atlas.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Bad problem input.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Bad optimizer configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No optimizer of that name is registered.
    #[error("unknown optimizer `{name}`{}; available: {}", suggestion_suffix(.name, .available), .available.join(", "))]
    UnknownOptimizer {
        /// The name asked for.
        name: String,
        /// The registered names.
        available: Vec<String>,
    },
    /// The optimizer cannot honour some feature of the problem, so it refuses it rather
    /// than ignoring the feature.
    #[error("optimizer `{optimizer}` cannot honour {} of this problem{}", .features.join(", "), alternatives_suffix(.alternatives))]
    Unsupported {
        /// The optimizer that refused.
        optimizer: String,
        /// The features it cannot honour, each described with where it occurs.
        features: Vec<String>,
        /// Registered optimizers that can solve the problem.
        alternatives: Vec<String>,
    },
    /// The business rules admit no allocation.
    #[error(transparent)]
    Infeasible(#[from] InfeasibleError),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// An output (a result file, stdout) could not be written: a full disk, a folder that
    /// cannot be written. Not the input's fault: exit status 1.
    #[error("{path}: cannot write: {message}")]
    Write {
        /// The file, or `<stdout>`.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Two optimizers registered under the same name.
    #[error("optimizer `{0}` is registered twice")]
    DuplicateOptimizer(String),
    /// An external response model failed during a solve (a service that does not answer,
    /// a bad answer); no result is returned.
    #[error("{model}: the response model failed: {reason}")]
    Model {
        /// The model (`http://127.0.0.1:9000/predict`, `mmm.onnx`).
        model: String,
        /// What went wrong.
        reason: String,
    },
    /// The solver failed for a reason that is not the user's input.
    #[error("optimizer `{optimizer}` failed: {reason}")]
    Solver {
        /// The optimizer.
        optimizer: String,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// The process exit status for this error: 2 for bad input (problem, configuration,
    /// unknown optimizer, unsupported feature, infeasible rules, unreadable file), 1 for
    /// anything else (an output that cannot be written, a solver failure, a plan that
    /// breaks the rules without a proof that none meets them).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_)
            | Error::Config(_)
            | Error::UnknownOptimizer { .. }
            | Error::Unsupported { .. }
            | Error::Infeasible(_)
            | Error::Io { .. } => 2,
            Error::DuplicateOptimizer(_)
            | Error::Solver { .. }
            | Error::Write { .. }
            | Error::Model { .. } => 1,
        }
    }

    /// Ties an input or infeasibility error to the file it came from.
    pub fn in_file(self, file: Option<&std::path::Path>) -> Self {
        match self {
            Error::Input(e) => Error::Input(e.in_file(file)),
            Error::Infeasible(mut e) => {
                if e.file.is_none() {
                    e.file = file.map(|f| f.to_path_buf());
                }
                Error::Infeasible(e)
            }
            other => other,
        }
    }
}

/// The rules of a problem admit no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfeasibleError {
    /// The problem file, when known.
    pub file: Option<PathBuf>,
    /// The constraints involved, each as `field (description)`, most implicated first.
    pub constraints: Vec<String>,
    /// What is known about the conflict.
    pub reason: String,
}

impl fmt::Display for InfeasibleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        write!(f, "infeasible rules: {}", self.reason)?;
        if !self.constraints.is_empty() {
            write!(f, "; constraints involved: {}", self.constraints.join("; "))?;
        }
        Ok(())
    }
}

impl std::error::Error for InfeasibleError {}

#[cfg(test)]
mod tests {
    use super::fmt_number;

    #[test]
    fn numbers_in_messages() {
        assert_eq!(fmt_number(1_333_333.333_333_3), "1333333");
        assert_eq!(fmt_number(0.123_456_789), "0.123457");
        assert_eq!(fmt_number(700.0), "700");
        assert_eq!(fmt_number(-12.5), "-12.5");
        assert_eq!(fmt_number(2.5e-7), "2.5e-7");
        assert_eq!(fmt_number(4.295e20), "4.295e20");
        assert_eq!(fmt_number(f64::INFINITY), "infinity");
    }
}

/// A computed amount for a message: six significant digits, plain between `1e-3` and
/// `1e15` (`1333333`, `0.123457`, `700`), scientific outside (`2.5e-7`); no trailing
/// zeros. Values the user wrote are echoed as written instead.
pub fn fmt_number(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".to_string()
        } else if v > 0.0 {
            "infinity".to_string()
        } else {
            "-infinity".to_string()
        };
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".to_string();
    }
    let trim = |t: String| -> String {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    };
    if !(1e-3..1e15).contains(&a) {
        let text = format!("{v:.5e}");
        return match text.split_once('e') {
            Some((m, e)) => format!("{}e{e}", trim(m.to_string())),
            None => text,
        };
    }
    let digits = a.log10().floor() as i32 + 1;
    let decimals = (6 - digits).max(0) as usize;
    trim(format!("{v:.decimals$}"))
}

fn alternatives_suffix(alternatives: &[String]) -> String {
    if alternatives.is_empty() {
        "; no registered optimizer can".to_string()
    } else {
        format!("; optimizers that can: {}", alternatives.join(", "))
    }
}

fn suggestion_suffix(name: &str, available: &[String]) -> String {
    match crate::suggest::nearest(name, available.iter().map(String::as_str)) {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}
