//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use atlas_core::{Compiled, Error, Format, OptimizationResult, Problem, Registry, SolveOptions};
use serde_json::{Map, Value};

/// The workspace's example problems.
pub fn problems_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/problems")
}

/// The certified optimum record of an example problem (`optima.json`).
pub fn optimum(file: &str) -> Value {
    let text = std::fs::read_to_string(problems_dir().join("optima.json")).expect("optima.json");
    let all: Value = serde_json::from_str(&text).expect("valid optima.json");
    all[file].clone()
}

/// A registry holding `trust-region` only.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    atlas_trust_region::register(&mut registry).expect("registers once");
    registry
}

/// Solves `compiled` with `trust-region` and `settings` over the defaults.
pub fn solve_with(compiled: &Compiled, settings: Value) -> Result<OptimizationResult, Error> {
    let registry = registry();
    let map: Map<String, Value> = settings.as_object().cloned().unwrap_or_default();
    let config = registry.config("trust-region", map)?;
    registry.optimize(compiled, config.as_ref(), SolveOptions::default())
}

/// Solves `compiled` with the default settings.
pub fn solve(compiled: &Compiled) -> OptimizationResult {
    solve_with(compiled, Value::Null).expect("solves")
}

/// Compiles an example problem.
pub fn example(file: &str) -> Compiled {
    Compiled::from_path(problems_dir().join(file)).expect("example compiles")
}

/// Compiles a problem written in TOML.
pub fn from_toml(text: &str) -> Compiled {
    let problem = Problem::from_text(text, Format::Toml).expect("valid problem");
    Compiled::new(&problem).expect("compiles")
}

/// Relative difference `|a - b| / |b|`.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

/// Asserts that the result is feasible by the contract's tolerance.
pub fn assert_feasible(compiled: &Compiled, result: &OptimizationResult) {
    let x = result
        .flat_allocation(compiled)
        .expect("allocation in layout");
    assert!(
        compiled.is_feasible(&x),
        "{}: infeasible, max violation {} (tolerance {}): {:?}",
        compiled.name(),
        result.max_violation,
        compiled.feasibility_tolerance(),
        compiled.violations(&x, compiled.feasibility_tolerance())
    );
}
