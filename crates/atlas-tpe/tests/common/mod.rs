//! Helpers shared by the integration tests.

#![allow(dead_code)]

use atlas_core::{Compiled, OptimizationResult, Registry, SolveOptions, SolverConfig};
use serde_json::{Map, Value};

/// A registry with `tpe` registered.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    atlas_tpe::register(&mut registry).expect("register tpe");
    registry
}

/// A checked `tpe` configuration: the defaults with `settings` (`key=value`, JSON values).
pub fn config(registry: &Registry, settings: &[(&str, Value)]) -> Box<dyn SolverConfig> {
    let map: Map<String, Value> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    registry.config("tpe", map).expect("valid settings")
}

/// Solves `compiled` with `tpe` and `settings`.
pub fn solve(
    compiled: &Compiled,
    settings: &[(&str, Value)],
    options: SolveOptions,
) -> OptimizationResult {
    let registry = registry();
    let config = config(&registry, settings);
    registry
        .optimize(compiled, config.as_ref(), options)
        .expect("tpe solves")
}

/// An example problem by file name.
pub fn example(name: &str) -> Compiled {
    Compiled::from_path(format!("../../examples/problems/{name}")).expect("example problem")
}

/// The entry of `optima.json` for `name`.
pub fn optimum(name: &str) -> Value {
    let text = std::fs::read_to_string("../../examples/problems/optima.json").expect("optima.json");
    let all: Value = serde_json::from_str(&text).expect("optima.json parses");
    all[name].clone()
}

/// The contract's feasibility tolerance.
pub fn feasible(compiled: &Compiled, result: &OptimizationResult) -> bool {
    result.max_violation <= 1e-6 * compiled.budget().max(1.0)
}
