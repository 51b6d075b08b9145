//! Response models written in Python: any object with `value(x)`, optionally
//! `gradient(x)` and `value_batch(X)`, optimized by the Rust optimizers.
//!
//! The solve runs without the GIL; each call into the model takes it for the call only.
//! The first exception the model raises is kept, cancels the solve, and is raised again
//! (with its traceback) in place of a result.

use std::sync::Mutex;

use atlas_core::{CancelToken, Derivatives, Model};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// A Python object seen as an Atlas [`Model`] over the flat, channel-major spend vector.
pub struct PyModel {
    object: Py<PyAny>,
    dim: usize,
    has_gradient: bool,
    has_value_and_gradient: bool,
    has_batch: bool,
    has_hessian_diagonal: bool,
    concave: Option<bool>,
    /// The first exception raised by the model.
    error: Mutex<Option<PyErr>>,
    /// Cancelled when the model raises, so that the solve stops at its next check.
    cancel: CancelToken,
}

impl PyModel {
    /// Wraps `object` for a problem of `dim` variables. It needs a callable `value`;
    /// `gradient` (or `value_and_gradient`, one call for both), `value_batch` and
    /// `hessian_diagonal` (the diagonal of the Hessian, which gradient methods use to
    /// precondition their steps) are used when present, and a true `concave` attribute
    /// declares the model concave.
    pub fn new(object: &Bound<'_, PyAny>, dim: usize, cancel: CancelToken) -> PyResult<PyModel> {
        let callable = |name: &str| -> PyResult<bool> {
            Ok(object.hasattr(name)? && object.getattr(name)?.is_callable())
        };
        if !callable("value")? {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "model: {} has no callable `value(x)`; a model needs `value(x) -> float` and may add `gradient(x)` and `value_batch(X)`",
                object.get_type().name()?
            )));
        }
        let concave = if object.hasattr("concave")? {
            Some(object.getattr("concave")?.is_truthy()?)
        } else {
            None
        };
        Ok(PyModel {
            object: object.clone().unbind(),
            dim,
            has_gradient: callable("gradient")? || callable("value_and_gradient")?,
            has_value_and_gradient: callable("value_and_gradient")?,
            has_batch: callable("value_batch")?,
            has_hessian_diagonal: callable("hessian_diagonal")?,
            concave,
            error: Mutex::new(None),
            cancel,
        })
    }

    /// The exception the model raised, if any (taken: a second call returns `None`).
    pub fn take_error(&self) -> Option<PyErr> {
        self.error.lock().map(|mut e| e.take()).unwrap_or(None)
    }

    fn fail(&self, err: PyErr) {
        if let Ok(mut slot) = self.error.lock() {
            if slot.is_none() {
                *slot = Some(err);
            }
        }
        self.cancel.cancel();
    }

    fn failed(&self) -> bool {
        self.cancel.is_cancelled() && self.error.lock().map(|e| e.is_some()).unwrap_or(true)
    }

    fn call_value(&self, py: Python<'_>, x: &[f64]) -> PyResult<f64> {
        let arr = PyArray1::from_slice(py, x);
        let v: f64 = self
            .object
            .bind(py)
            .call_method1("value", (arr,))?
            .extract()?;
        Ok(v)
    }

    fn call_gradient(&self, py: Python<'_>, x: &[f64], grad: &mut [f64]) -> PyResult<()> {
        let arr = PyArray1::from_slice(py, x);
        let g = self.object.bind(py).call_method1("gradient", (arr,))?;
        copy_vector(py, &g, grad, "gradient")
    }

    /// `value_and_gradient(x) -> (value, gradient)`: one call where the model shares work
    /// between the two.
    fn call_value_and_gradient(
        &self,
        py: Python<'_>,
        x: &[f64],
        grad: &mut [f64],
    ) -> PyResult<f64> {
        let arr = PyArray1::from_slice(py, x);
        let out = self
            .object
            .bind(py)
            .call_method1("value_and_gradient", (arr,))?;
        let (v, g): (f64, Bound<'_, PyAny>) = out.extract()?;
        copy_vector(py, &g, grad, "value_and_gradient")?;
        Ok(v)
    }

    fn call_batch(&self, py: Python<'_>, xs: &[Vec<f64>], out: &mut [f64]) -> PyResult<()> {
        let mut flat = Vec::with_capacity(xs.len() * self.dim);
        for x in xs {
            flat.extend_from_slice(x);
        }
        let arr = PyArray1::from_vec(py, flat).reshape([xs.len(), self.dim])?;
        let v = self.object.bind(py).call_method1("value_batch", (arr,))?;
        copy_vector(py, &v, out, "value_batch")
    }
}

/// Copies a 1-d array-like of `out.len()` numbers into `out`.
fn copy_vector(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    out: &mut [f64],
    what: &str,
) -> PyResult<()> {
    let array: PyReadonlyArray1<'_, f64> = match obj.extract() {
        Ok(a) => a,
        Err(_) => {
            let np = py.import("numpy")?;
            let args = PyTuple::new(py, [obj.clone()])?;
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("dtype", "float64")?;
            np.call_method("ascontiguousarray", args, Some(&kwargs))?
                .call_method1("reshape", (-1,))?
                .extract()?
        }
    };
    if array.len() != out.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "model.{what} returned {} values, expected {}",
            array.len(),
            out.len()
        )));
    }
    match array.as_slice() {
        Ok(s) => out.copy_from_slice(s),
        Err(_) => {
            for (o, v) in out.iter_mut().zip(array.as_array().iter()) {
                *o = *v;
            }
        }
    }
    Ok(())
}

impl Model for PyModel {
    fn dim(&self) -> usize {
        self.dim
    }

    fn value(&self, x: &[f64]) -> f64 {
        if self.failed() {
            return f64::NAN;
        }
        Python::with_gil(|py| match self.call_value(py, x) {
            Ok(v) => v,
            Err(e) => {
                self.fail(e);
                f64::NAN
            }
        })
    }

    fn derivatives(&self) -> Derivatives {
        if self.has_gradient {
            Derivatives::Gradient
        } else {
            Derivatives::ValueOnly
        }
    }

    fn gradient(&self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        if !self.has_gradient {
            return None;
        }
        if self.failed() {
            grad.fill(f64::NAN);
            return Some(f64::NAN);
        }
        Python::with_gil(|py| {
            let result = if self.has_value_and_gradient {
                self.call_value_and_gradient(py, x, grad)
            } else {
                self.call_value(py, x)
                    .and_then(|v| self.call_gradient(py, x, grad).map(|()| v))
            };
            match result {
                Ok(v) => Some(v),
                Err(e) => {
                    self.fail(e);
                    grad.fill(f64::NAN);
                    Some(f64::NAN)
                }
            }
        })
    }

    fn value_batch(&self, xs: &[Vec<f64>], out: &mut [f64]) {
        if self.failed() {
            out.fill(f64::NAN);
            return;
        }
        Python::with_gil(|py| {
            let result = if self.has_batch {
                self.call_batch(py, xs, out)
            } else {
                xs.iter().zip(out.iter_mut()).try_for_each(|(x, o)| {
                    *o = self.call_value(py, x)?;
                    Ok(())
                })
            };
            if let Err(e) = result {
                self.fail(e);
                out.fill(f64::NAN);
            }
        })
    }

    fn hessian_diagonal(&self, x: &[f64], out: &mut [f64]) -> Option<()> {
        if !self.has_hessian_diagonal {
            return None;
        }
        if self.failed() {
            out.fill(f64::NAN);
            return Some(());
        }
        Python::with_gil(|py| {
            let arr = PyArray1::from_slice(py, x);
            let result = self
                .object
                .bind(py)
                .call_method1("hessian_diagonal", (arr,))
                .and_then(|d| copy_vector(py, &d, out, "hessian_diagonal"));
            if let Err(e) = result {
                self.fail(e);
                out.fill(f64::NAN);
            }
        });
        Some(())
    }

    fn is_concave(&self) -> Option<bool> {
        self.concave
    }
}
