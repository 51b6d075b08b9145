//! Shared helpers of the `milp` integration tests.

#![allow(dead_code)]

use atlas_core::{Compiled, Format, OptimizationResult, Problem, Registry, SolveOptions};
use serde_json::{Map, Value};

pub const PROBLEMS: &str = "../../examples/problems";

pub fn registry() -> Registry {
    let mut reg = Registry::new();
    atlas_milp::register(&mut reg).unwrap();
    reg
}

pub fn compiled(file: &str) -> Compiled {
    Compiled::from_path(format!("{PROBLEMS}/{file}")).unwrap()
}

pub fn from_toml(text: &str) -> Compiled {
    Compiled::new(&Problem::from_text(text, Format::Toml).unwrap()).unwrap()
}

/// `(best_known, bound)` of an example problem, from `optima.json`.
pub fn optimum(file: &str) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("{PROBLEMS}/optima.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let entry = &v[file];
    (
        entry["best_known"].as_f64().unwrap(),
        entry["bound"].as_f64().unwrap(),
    )
}

/// Solves with `milp` and the given settings.
pub fn solve(c: &Compiled, settings: &[(&str, Value)]) -> OptimizationResult {
    let reg = registry();
    let map: Map<String, Value> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let config = reg.config("milp", map).unwrap();
    reg.optimize(c, config.as_ref(), SolveOptions::default())
        .unwrap()
}

/// Feasible by the contract's tolerance, every integer rule included.
pub fn assert_feasible(c: &Compiled, r: &OptimizationResult) {
    let x = r.flat_allocation(c).unwrap();
    let tol = c.feasibility_tolerance();
    let violations = c.violations(&x, tol);
    assert!(
        violations.is_empty(),
        "{:?}",
        violations.iter().map(|v| &v.what).collect::<Vec<_>>()
    );
    assert!(r.max_violation <= tol, "max_violation {}", r.max_violation);
    assert!((c.objective_value(&x) - r.objective).abs() <= 1e-9 * r.objective.abs().max(1.0));
}
