//! # atlas-py
//!
//! The native module `atlas_mmm._native` of the Python package `atlas-mmm` (built by
//! maturin from `python/pyproject.toml`; abi3, one wheel for CPython 3.9+). The Python
//! layer (`python/atlas_mmm`) wraps it with the documented API: `Problem`, `optimize`,
//! `Result`, `evaluate`, `sweep`, `optimizers` and the exceptions.
//!
//! Every solve runs without the GIL on a worker thread while the calling thread watches
//! for signals: Ctrl-C cancels the solve through its [`CancelToken`] and raises
//! `KeyboardInterrupt`, returning nothing half-done.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use atlas_core::{Allocation, CancelToken, Error, Evaluation, Registry, SolveOptions};
use atlas_sweep::{BudgetGrid, BudgetValue, ScenarioSpec, Sweep};
use indexmap::IndexMap;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Map, Value};

mod errors;
mod model;
mod problem;

use errors::{input_error, to_py_err};
use model::PyModel;
use problem::{from_python, PyProblem};

/// The optimizers of this build (every default backend of the `atlas` facade).
pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    // Each backend registers one distinct name: a clash is a build defect.
    REGISTRY.get_or_init(|| atlas::registry().expect("the enabled optimizers register"))
}

/// How often the waiting thread looks for a pending signal (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(20);

/// Runs `work` on a worker thread without the GIL. Every [`SIGNAL_POLL`] the calling
/// thread runs Python's signal handlers; when one raises (`KeyboardInterrupt`), `token`
/// is cancelled, the worker is waited for (solvers check the token every iteration) and
/// the exception is returned instead of the work's result. A panic becomes an error.
fn run_interruptible<T: Send>(
    py: Python<'_>,
    token: &CancelToken,
    work: impl FnOnce() -> Result<T, Error> + Send,
) -> PyResult<Result<T, Error>> {
    py.allow_threads(|| {
        std::thread::scope(|scope| {
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let handle = std::thread::Builder::new()
                .name("atlas-solve".into())
                .stack_size(16 << 20)
                .spawn_scoped(scope, move || {
                    let out = std::panic::catch_unwind(AssertUnwindSafe(work));
                    let _ = done_tx.send(());
                    out
                })
                .map_err(|e| {
                    pyo3::exceptions::PyRuntimeError::new_err(format!(
                        "cannot start the solve thread: {e}"
                    ))
                })?;
            let joined = loop {
                match done_rx.recv_timeout(SIGNAL_POLL) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Err(interrupt) = Python::with_gil(|py| py.check_signals()) {
                            token.cancel();
                            let _ = handle.join();
                            return Err(interrupt);
                        }
                    }
                    _ => break handle.join(),
                }
            };
            match joined {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(panic)) | Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".to_string());
                    Ok(Err(Error::Solver {
                        optimizer: String::new(),
                        reason: format!("panicked: {what}"),
                    }))
                }
            }
        })
    })
}

/// The optimizer to use when `name` is `None` or `"auto"`: `auto` when this build
/// registers it, else the command line's default (`lbfgs`).
fn resolve_optimizer(name: Option<&str>) -> String {
    match name {
        Some(n) if n != "auto" => n.to_string(),
        _ => atlas_sweep::default_optimizer(registry()),
    }
}

/// Settings given as a dict (`**settings`), as JSON values.
fn settings_map(
    py: Python<'_>,
    settings: Option<&Bound<'_, PyDict>>,
) -> PyResult<Map<String, Value>> {
    match settings {
        None => Ok(Map::new()),
        Some(d) => from_python::<Map<String, Value>>(d.as_any()).map_err(|e| {
            let field = if e.field.is_empty() {
                "settings".to_string()
            } else {
                format!("settings.{}", e.field)
            };
            input_error(py, &field, e.reason)
        }),
    }
}

fn time_limit(py: Python<'_>, seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(t) if t.is_finite() && t > 0.0 => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(input_error(
            py,
            "time_limit",
            format!("must be a number of seconds > 0 (got {t})"),
        )),
    }
}

/// Solves `problem` and returns the result as a dict of the contract's result JSON.
///
/// `optimizer` `None` or `"auto"` picks `auto` where registered, else `lbfgs`. `model`
/// is an object with `value(x)` (optionally `gradient(x)`, `value_batch(X)`) over the
/// flat channel-major spend vector, used in place of the problem's curves. `start` is a
/// warm start in the same layout.
#[pyfunction]
#[pyo3(signature = (problem, optimizer=None, time_limit=None, seed=None, settings=None, model=None, start=None))]
#[allow(clippy::too_many_arguments)]
fn optimize<'py>(
    py: Python<'py>,
    problem: &PyProblem,
    optimizer: Option<&str>,
    time_limit: Option<f64>,
    seed: Option<u64>,
    settings: Option<&Bound<'py, PyDict>>,
    model: Option<&Bound<'py, PyAny>>,
    start: Option<Vec<f64>>,
) -> PyResult<Bound<'py, PyAny>> {
    let name = resolve_optimizer(optimizer);
    let config = registry()
        .config(&name, settings_map(py, settings)?)
        .map_err(|e| to_py_err(py, e))?;
    let token = CancelToken::new();
    let options = SolveOptions {
        time_limit: self::time_limit(py, time_limit)?,
        seed,
        start,
        cancel: Some(token.clone()),
        ..Default::default()
    };
    let (compiled, py_model) = match model {
        None => (problem.compiled().map_err(|e| to_py_err(py, e))?, None),
        Some(obj) => {
            let dim = problem.problem.channels.len() * problem.problem.periods;
            let m = Arc::new(PyModel::new(obj, dim, token.clone())?);
            let compiled = problem
                .compile_with(Some(m.clone() as Arc<dyn atlas_core::Model>))
                .map_err(|e| to_py_err(py, e))?;
            (Arc::new(compiled), Some(m))
        }
    };
    let outcome = run_interruptible(py, &token, || {
        registry().optimize(&compiled, config.as_ref(), options)
    });
    // An exception raised by the model wins over whatever the solve made of it.
    if let Some(err) = py_model.as_ref().and_then(|m| m.take_error()) {
        return Err(err);
    }
    let result = outcome?.map_err(|e| to_py_err(py, e))?;
    Ok(pythonize::pythonize(py, &result)?)
}

/// Objective, total spend and violations of `allocation` (channel → spend per period),
/// as `atlas evaluate` computes them.
#[pyfunction]
fn evaluate<'py>(
    py: Python<'py>,
    problem: &PyProblem,
    allocation: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let compiled = problem.compiled().map_err(|e| to_py_err(py, e))?;
    let map: IndexMap<String, Vec<f64>> = from_python(allocation).map_err(|e| {
        let field = if e.field.is_empty() {
            "allocation".to_string()
        } else {
            format!("allocation.{}", e.field)
        };
        input_error(py, &field, e.reason)
    })?;
    let x = Allocation { allocation: map }
        .to_flat(&compiled)
        .map_err(|e| to_py_err(py, e))?;
    let evaluation = Evaluation::of(&compiled, &x);
    let out = PyDict::new(py);
    out.set_item("objective", evaluation.objective)?;
    out.set_item("max_violation", evaluation.max_violation)?;
    out.set_item("feasible", evaluation.feasible)?;
    out.set_item("total_spend", evaluation.total_spend)?;
    let totals = PyDict::new(py);
    for (name, t) in compiled
        .layout()
        .channels()
        .iter()
        .zip(compiled.layout().totals(&x))
    {
        totals.set_item(name, t)?;
    }
    out.set_item("totals", totals)?;
    let violations: Vec<(String, f64)> = compiled
        .violations(&x, compiled.feasibility_tolerance())
        .into_iter()
        .map(|v| (v.what, v.amount))
        .collect();
    out.set_item("violations", violations)?;
    Ok(out.into_any())
}

/// Solves many variants of `problem` in parallel (`atlas sweep`): budget points
/// (`budgets`: a spec such as `"0.5x:2x:16"` or a list of amounts) and/or scenario
/// patches (`scenarios`: a list of dicts of `scenarios.md`). Returns the sweep result as
/// a dict.
#[pyfunction]
#[pyo3(signature = (problem, budgets=None, scenarios=None, optimizer=None, jobs=None, warm_start=true, time_limit=None, seed=None, settings=None))]
#[allow(clippy::too_many_arguments)]
fn sweep<'py>(
    py: Python<'py>,
    problem: &PyProblem,
    budgets: Option<&Bound<'py, PyAny>>,
    scenarios: Option<&Bound<'py, PyAny>>,
    optimizer: Option<&str>,
    jobs: Option<usize>,
    warm_start: bool,
    time_limit: Option<f64>,
    seed: Option<u64>,
    settings: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let grid = match budgets {
        None => None,
        Some(b) => Some(if let Ok(spec) = b.extract::<String>() {
            BudgetGrid::parse(&spec).map_err(|e| to_py_err(py, e.into()))?
        } else {
            let values: Vec<f64> = b.extract().map_err(|_| {
                input_error(
                    py,
                    "budgets",
                    "give a spec such as \"0.5x:2x:16\" or \"1e6,2e6\", or a list of amounts",
                )
            })?;
            if let Some(v) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return Err(input_error(
                    py,
                    "budgets",
                    format!("a budget must be a finite number > 0 (got {v})"),
                ));
            }
            BudgetGrid::List(values.into_iter().map(BudgetValue::Amount).collect())
        }),
    };
    let specs: Option<Vec<ScenarioSpec>> = match scenarios {
        None => None,
        Some(s) => Some(from_python(s).map_err(|e| {
            let field = if e.field.is_empty() {
                "scenarios".to_string()
            } else {
                format!(
                    "scenarios{}{}",
                    if e.field.starts_with('[') { "" } else { "." },
                    e.field
                )
            };
            input_error(py, &field, e.reason)
        })?),
    };
    let settings = settings_map(py, settings)?;
    let limit = self::time_limit(py, time_limit)?;
    let token = CancelToken::new();
    let base = problem.problem.clone();
    let source = problem.source.clone();
    let name = optimizer.map(|n| resolve_optimizer(Some(n)));
    let outcome = run_interruptible(py, &token, || {
        let mut s = Sweep::new(registry(), base)
            .settings(settings)
            .warm_start(warm_start)
            .cancel(token.clone());
        let model_source = source.clone();
        s = s.compile_with(Arc::new(move |p: &atlas_core::Problem| {
            atlas::atlas_models::compile(p, model_source.as_deref())
        }));
        if let Some(p) = source {
            s = s.source(p);
        }
        if let Some(n) = name {
            s = s.optimizer(n);
        }
        if let Some(g) = grid {
            s = s.budgets(g);
        }
        if let Some(sp) = specs {
            s = s.scenarios(sp);
        }
        if let Some(j) = jobs {
            s = s.jobs(j);
        }
        if let Some(t) = limit {
            s = s.time_limit(t);
        }
        if let Some(seed) = seed {
            s = s.seed(seed);
        }
        s.run()
    });
    let result = outcome?.map_err(|e| to_py_err(py, e))?;
    Ok(pythonize::pythonize(py, &result)?)
}

/// Name, summary, capabilities and default settings of every registered optimizer.
#[pyfunction]
fn optimizers(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    Ok(pythonize::pythonize(py, &registry().list())?)
}

/// The benchmark's reference: wall times in seconds of `repeats` solves of `problem` by
/// `optimizer` done entirely in Rust (compile, solve, result), without the GIL.
#[pyfunction]
#[pyo3(signature = (problem, optimizer, repeats=1))]
fn rust_solve_times(
    py: Python<'_>,
    problem: &PyProblem,
    optimizer: &str,
    repeats: usize,
) -> PyResult<Vec<f64>> {
    let config = registry()
        .config(&resolve_optimizer(Some(optimizer)), Map::new())
        .map_err(|e| to_py_err(py, e))?;
    let p = problem.problem.clone();
    py.allow_threads(|| {
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let t = Instant::now();
            let compiled = atlas::atlas_models::compile(&p, None)?;
            let r = registry().optimize(&compiled, config.as_ref(), SolveOptions::default())?;
            std::hint::black_box(&r);
            times.push(t.elapsed().as_secs_f64());
        }
        Ok(times)
    })
    .map_err(|e: Error| to_py_err(py, e))
}

/// The module `atlas_mmm._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PyProblem>()?;
    m.add_function(wrap_pyfunction!(optimize, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(optimizers, m)?)?;
    m.add_function(wrap_pyfunction!(rust_solve_times, m)?)?;
    Ok(())
}
