//! Atlas errors as the package's Python exceptions (defined in `atlas_mmm/errors.py`, so
//! that they are ordinary Python classes with documented attributes).

use atlas_core::Error;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Builds `atlas_mmm.errors.<class>(message, **attributes)`; falls back to a built-in
/// exception when the Python side cannot be imported (the message is kept).
fn raise(
    py: Python<'_>,
    class: &str,
    message: String,
    fill: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = py.import("atlas_mmm.errors")?;
        let kwargs = PyDict::new(py);
        fill(&kwargs)?;
        let exc = module
            .getattr(class)?
            .call((message.clone(),), Some(&kwargs))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|_| {
        if class == "SolverError" {
            PyRuntimeError::new_err(message.clone())
        } else {
            PyValueError::new_err(message.clone())
        }
    })
}

fn path_string(path: Option<&std::path::Path>) -> Option<String> {
    path.map(|p| p.display().to_string())
}

/// The Python exception for an Atlas error:
/// input → `InputError` (`.field`, `.path`, `.reason`), setting or optimizer name →
/// `ConfigError` (an `InputError`), unsupported feature → `UnsupportedError`
/// (`.features`, `.alternatives`), infeasible rules → `InfeasibleError` (an `InputError`,
/// `.rules`), anything else → `SolverError` (a `RuntimeError`).
pub fn to_py_err(py: Python<'_>, error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        Error::Input(e) => raise(py, "InputError", message, |k| {
            k.set_item("field", &e.field)?;
            k.set_item("path", path_string(e.file.as_deref()))?;
            k.set_item("reason", &e.reason)
        }),
        Error::Io { path, message: why } => raise(py, "InputError", message, |k| {
            k.set_item("field", "")?;
            k.set_item("path", path.display().to_string())?;
            k.set_item("reason", why)
        }),
        Error::Config(e) => raise(py, "ConfigError", message, |k| {
            k.set_item("optimizer", &e.optimizer)?;
            k.set_item("field", &e.field)?;
            k.set_item("reason", &e.reason)
        }),
        Error::UnknownOptimizer { name, available } => raise(py, "ConfigError", message, |k| {
            k.set_item("optimizer", name)?;
            k.set_item("field", "optimizer")?;
            k.set_item(
                "reason",
                format!("unknown optimizer; available: {}", available.join(", ")),
            )
        }),
        Error::Unsupported {
            optimizer,
            features,
            alternatives,
        } => raise(py, "UnsupportedError", message, |k| {
            k.set_item("optimizer", optimizer)?;
            k.set_item("features", features)?;
            k.set_item("alternatives", alternatives)
        }),
        Error::Infeasible(e) => raise(py, "InfeasibleError", message, |k| {
            k.set_item("rules", &e.constraints)?;
            k.set_item("path", path_string(e.file.as_deref()))?;
            k.set_item("reason", &e.reason)
        }),
        // (hard, issue 12: an output that cannot be written is not bad input.)
        Error::DuplicateOptimizer(_)
        | Error::Solver { .. }
        | Error::Model { .. }
        | Error::Write { .. } => raise(py, "SolverError", message, |_| Ok(())),
    }
}

/// An `InputError` about `field` of something given from Python (no file).
pub fn input_error(py: Python<'_>, field: &str, reason: impl Into<String>) -> PyErr {
    to_py_err(py, atlas_core::InputError::new(field, reason).into())
}
