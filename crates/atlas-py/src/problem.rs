//! `atlas_mmm.Problem`: a problem of the file contract, read from a file or a dict.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use atlas_core::{Compiled, Error, InputError, Problem, Scaled};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::to_py_err;

/// Deserializes `T` from a Python object (dicts, lists, numbers, strings), with errors
/// naming the field path (`channels[0].response.k`) as a problem file's errors do.
pub fn from_python<T: serde::de::DeserializeOwned>(
    obj: &Bound<'_, PyAny>,
) -> Result<T, InputError> {
    let mut de = pythonize::Depythonizer::from_object(obj);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        InputError::new(
            path,
            atlas_core::suggest::improve_serde_message(&e.inner().to_string()),
        )
    })
}

/// A budget-allocation problem: channels with their response curves and carry-over, the
/// budget, the objective and the business rules (the schema of
/// `docs/problem-format.md`).
///
/// Build one with `Problem.from_file(path)` (TOML, JSON or YAML, by extension) or
/// `Problem.from_dict(d)`. Problems are immutable: `with_budget` returns a new one.
#[pyclass(name = "Problem", module = "atlas_mmm", frozen)]
pub struct PyProblem {
    pub(crate) problem: Problem,
    pub(crate) source: Option<PathBuf>,
    compiled: OnceLock<Arc<Compiled>>,
}

impl PyProblem {
    pub(crate) fn new(problem: Problem, source: Option<PathBuf>) -> Self {
        Self {
            problem,
            source,
            compiled: OnceLock::new(),
        }
    }

    /// The checked, compiled problem with the built-in model (compiled once, kept).
    pub(crate) fn compiled(&self) -> Result<Arc<Compiled>, Error> {
        if let Some(c) = self.compiled.get() {
            return Ok(c.clone());
        }
        let compiled = Arc::new(self.compile_with(None)?);
        Ok(self.compiled.get_or_init(|| compiled).clone())
    }

    /// Compiles the rules around `model`, or with the built-in model when `None`; errors
    /// name the file the problem came from.
    pub(crate) fn compile_with(
        &self,
        model: Option<Arc<dyn atlas_core::Model>>,
    ) -> Result<Compiled, Error> {
        let source = self.source.as_deref();
        let compiled = match model {
            None => Compiled::new(&self.problem),
            Some(m) => Compiled::with_model(&self.problem, m),
        }
        .map_err(|e| e.in_file(source))?;
        Ok(match source {
            Some(s) => compiled.with_source(s),
            None => compiled,
        })
    }
}

#[pymethods]
impl PyProblem {
    /// Reads a problem file (`.toml`, `.json`, `.yaml`/`.yml`). Raises `InputError`
    /// naming the file, the field and the reason when it does not follow the schema.
    /// Values and rules are checked by `validate()` and by every solve.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let problem = Problem::from_path(&path).map_err(|e| to_py_err(py, e))?;
        Ok(Self::new(problem, Some(path)))
    }

    /// A problem from a dict of the file schema (as `to_dict()` returns it, or as
    /// `json.load` reads a problem file). Raises `InputError` naming the field.
    #[staticmethod]
    fn from_dict(py: Python<'_>, d: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !d.is_instance_of::<PyDict>() {
            return Err(crate::errors::input_error(
                py,
                "",
                format!(
                    "a problem is a dict of the file schema (got {})",
                    d.get_type().name()?
                ),
            ));
        }
        let problem: Problem = from_python(d).map_err(|e| to_py_err(py, e.into()))?;
        Ok(Self::new(problem, None))
    }

    /// The problem as a dict of the file schema (fields left at their defaults are
    /// omitted); `Problem.from_dict(p.to_dict())` is the same problem.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize::pythonize(py, &self.problem)?)
    }

    /// The same problem with another total budget.
    fn with_budget(&self, budget: f64) -> Self {
        let mut problem = self.problem.clone();
        problem.budget = budget;
        Self::new(problem, self.source.clone())
    }

    /// Checks the problem as `atlas validate` does: the schema, every value, and whether
    /// the rules admit an allocation. Raises `InputError` (or `InfeasibleError`, an
    /// `InputError` naming the rules involved) on the first problem found; else returns
    /// a dict with `variables`, `channels`, `periods`, `features` (those some optimizers
    /// cannot honour) and `optimizers` (the registered optimizers that can solve it).
    fn validate<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let compiled = self.compiled().map_err(|e| to_py_err(py, e))?;
        Scaled::new(&compiled).map_err(|e| to_py_err(py, e.in_file(self.source.as_deref())))?;
        let out = PyDict::new(py);
        out.set_item("name", compiled.name())?;
        out.set_item("variables", compiled.layout().len())?;
        out.set_item("channels", compiled.layout().channels().to_vec())?;
        out.set_item("periods", compiled.layout().periods())?;
        let features: Vec<String> = compiled.features().iter().map(|f| f.describe()).collect();
        out.set_item("features", features)?;
        out.set_item("optimizers", crate::registry().capable_of(&compiled))?;
        Ok(out)
    }

    /// The problem's name.
    #[getter]
    fn name(&self) -> &str {
        &self.problem.name
    }

    /// The total budget.
    #[getter]
    fn budget(&self) -> f64 {
        self.problem.budget
    }

    /// Number of periods.
    #[getter]
    fn periods(&self) -> usize {
        self.problem.periods
    }

    /// The channels' names, in the problem's order (the order of a model's variables:
    /// channel-major, `x[c * periods + t]`).
    #[getter]
    fn channels(&self) -> Vec<String> {
        self.problem
            .channels
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The file the problem was read from, if any.
    #[getter]
    fn path(&self) -> Option<String> {
        self.source.as_ref().map(|p| p.display().to_string())
    }

    fn __repr__(&self) -> String {
        format!(
            "Problem(name={:?}, channels={}, periods={}, budget={})",
            self.problem.name,
            self.problem.channels.len(),
            self.problem.periods,
            self.problem.budget
        )
    }
}
