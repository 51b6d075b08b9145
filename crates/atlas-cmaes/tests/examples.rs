//! `cmaes` with default settings on the continuous example problems with at most 200
//! variables, against the certified optima of `examples/problems/optima.json`.
//!
//! Release build (CI): quickstart, profit and scurve take well under a second together;
//! retail_q4 (104 variables, 200 linear rows, about 270,000 evaluations) takes 20 to 40 s
//! on a loaded 2-core machine. Debug build: the first three about a second; retail_q4 is
//! slow there (minutes), run it in release.

use atlas_core::{Compiled, OptimizationResult, Registry, SolveOptions, Status};

const DIR: &str = "../../examples/problems";

fn optimum(file: &str) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("{DIR}/optima.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    (
        all[file]["best_known"].as_f64().unwrap(),
        all[file]["bound"].as_f64().unwrap(),
    )
}

fn solve(file: &str, options: SolveOptions) -> (Compiled, OptimizationResult) {
    let mut registry = Registry::new();
    atlas_cmaes::register(&mut registry).unwrap();
    let compiled = Compiled::from_path(format!("{DIR}/{file}")).unwrap();
    let config = registry.default_config("cmaes").unwrap();
    let result = registry
        .optimize(&compiled, config.as_ref(), options)
        .unwrap();
    (compiled, result)
}

/// Within 0.1% of the best known value, never past the certified bound, feasible.
fn check(file: &str) -> OptimizationResult {
    let (compiled, result) = solve(file, SolveOptions::default());
    let (best, bound) = optimum(file);
    let gap = (best - result.objective) / best.abs();
    assert!(
        gap <= 1e-3,
        "{file}: objective {} vs best known {best} (gap {gap:.2e})",
        result.objective
    );
    assert!(
        result.objective <= bound * (1.0 + 1e-9),
        "{file}: {} above the bound {bound}",
        result.objective
    );
    assert!(
        result.max_violation <= compiled.feasibility_tolerance(),
        "{file}: violation {}",
        result.max_violation
    );
    assert_eq!(result.status, Status::Converged, "{file}");
    // The reported objective is the true objective of the returned allocation.
    let x = result.flat_allocation(&compiled).unwrap();
    assert!((compiled.objective_value(&x) - result.objective).abs() <= 1e-9 * best.abs());
    result
}

#[test]
fn quickstart_within_a_tenth_of_a_percent() {
    check("quickstart.toml");
}

#[test]
fn profit_within_a_tenth_of_a_percent() {
    check("profit.toml");
}

#[test]
fn scurve_within_a_tenth_of_a_percent_without_stalling_at_zero_spend() {
    let result = check("scurve.toml");
    // The local optima a gradient method stalls in leave a channel at zero spend whose
    // S-curve has zero slope there; the optimum funds every channel but one, and the
    // 0.1% test above already excludes the stalls (the best of them is 1.8% short).
    let funded = result.totals.values().filter(|t| **t > 1.0).count();
    assert!(funded >= 5, "{:?}", result.totals);
}

#[test]
fn retail_q4_within_a_tenth_of_a_percent() {
    // 104 variables and 200 linear rows (shares, spend windows, week-on-week limits).
    check("retail_q4.toml");
}

#[test]
fn refuses_rules_it_cannot_honour_and_names_who_can() {
    let mut registry = Registry::new();
    atlas_cmaes::register(&mut registry).unwrap();
    let config = registry.default_config("cmaes").unwrap();
    for (file, feature) in [
        ("mixed_integer.toml", "spend_unit"),
        ("target_spend.toml", "min_spend"),
    ] {
        let compiled = Compiled::from_path(format!("{DIR}/{file}")).unwrap();
        let e = registry
            .optimize(&compiled, config.as_ref(), SolveOptions::default())
            .unwrap_err();
        match e {
            atlas_core::Error::Unsupported {
                optimizer,
                features,
                ..
            } => {
                assert_eq!(optimizer, "cmaes");
                assert!(
                    features.iter().any(|f| f.contains(feature)),
                    "{file}: {features:?}"
                );
            }
            other => panic!("{file}: expected a refusal, got {other}"),
        }
    }
    let text = r#"
        name = "roi"
        budget = 100.0
        [[channels]]
        name = "a"
        response = { kind = "log", beta = 300.0, k = 20.0 }
        [[channels]]
        name = "b"
        response = { kind = "log", beta = 200.0, k = 10.0 }
        [[constraints]]
        kind = "min_roi"
        value = 1.5
    "#;
    let problem = atlas_core::Problem::from_text(text, atlas_core::Format::Toml).unwrap();
    let compiled = Compiled::new(&problem).unwrap();
    let e = registry
        .optimize(&compiled, config.as_ref(), SolveOptions::default())
        .unwrap_err();
    assert!(matches!(e, atlas_core::Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("min_roi"), "{e}");
}
