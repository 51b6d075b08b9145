//! `trust-region` on the example problems, measured against the certified optima of
//! `examples/problems/optima.json`.

mod common;

use atlas_core::{Error, Status};
use common::*;
use serde_json::json;

/// Every continuous concave example (the profit one included): within 1e-6 of the
/// certified optimum, never past the certified bound, feasible, converged.
#[test]
fn concave_examples_reach_the_certified_optimum() {
    for file in [
        "quickstart.toml",
        "profit.toml",
        "retail_q4.toml",
        "target_spend.toml",
        "large.toml",
    ] {
        let record = optimum(file);
        assert_eq!(record["concave"], json!(true), "{file}");
        assert_eq!(record["integer_features"], json!([]), "{file}");
        let best = record["best_known"].as_f64().expect("best_known");
        let bound = record["bound"].as_f64().expect("bound");
        let maximize = record["sense"] == json!("maximize");
        let compiled = example(file);
        let result = solve(&compiled);
        assert_feasible(&compiled, &result);
        assert_eq!(result.status, Status::Converged, "{file}");
        assert!(
            rel(result.objective, best) <= 1e-6,
            "{file}: objective {} vs certified {best} (relative gap {:e})",
            result.objective,
            rel(result.objective, best)
        );
        // A feasible allocation cannot beat a proven bound (beyond rounding).
        let slack = 1e-9 * bound.abs();
        if maximize {
            assert!(
                result.objective <= bound + slack,
                "{file}: {} above the bound {bound}",
                result.objective
            );
        } else {
            assert!(
                result.objective >= bound - slack,
                "{file}: {} below the bound {bound}",
                result.objective
            );
        }
        // The reported objective is the model's value of the returned allocation.
        let x = result.flat_allocation(&compiled).unwrap();
        assert!(
            rel(compiled.objective_value(&x), result.objective) <= 1e-12,
            "{file}"
        );
        assert!(
            result.metrics.iterations > 0 && result.metrics.gradient_evaluations > 0,
            "{file}"
        );
        assert_eq!(result.bound, None, "{file}: a local method proves no bound");
    }
}

/// S-curves: one start ends in a local optimum (feasible, below the bound); a few random
/// starts find the certified one.
#[test]
fn scurve_local_from_one_start_global_from_several() {
    let file = "scurve.toml";
    let record = optimum(file);
    let best = record["best_known"].as_f64().unwrap();
    let bound = record["bound"].as_f64().unwrap();
    let compiled = example(file);
    let single = solve(&compiled);
    assert_feasible(&compiled, &single);
    assert!(single.objective <= bound * (1.0 + 1e-12));
    let multi = solve_with(&compiled, json!({ "multi_start": 16, "seed": 1 })).unwrap();
    assert_feasible(&compiled, &multi);
    assert!(multi.objective >= single.objective);
    assert!(
        rel(multi.objective, best) <= 1e-6,
        "objective {} vs certified {best}",
        multi.objective
    );
    // Same seed, same answer (starts are drawn from the seed, ties keep the earlier one).
    let again = solve_with(&compiled, json!({ "multi_start": 16, "seed": 1 })).unwrap();
    assert_eq!(again.objective, multi.objective);
}

/// Integer and activation rules are refused by name, with the backends that can.
#[test]
fn integer_rules_are_refused_by_name() {
    let compiled = example("mixed_integer.toml");
    match solve_with(&compiled, serde_json::Value::Null) {
        Err(Error::Unsupported {
            optimizer,
            features,
            ..
        }) => {
            assert_eq!(optimizer, "trust-region");
            let text = features.join(" ");
            for name in [
                "spend_unit",
                "min_active",
                "fixed_cost",
                "max_active_channels",
            ] {
                assert!(text.contains(name), "{text}");
            }
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A limit on iterations ends with `max_iterations` and still a feasible allocation.
#[test]
fn iteration_limit_is_reported_and_result_stays_feasible() {
    let compiled = example("retail_q4.toml");
    let result = solve_with(&compiled, json!({ "max_iterations": 2 })).unwrap();
    assert_eq!(result.status, Status::MaxIterations);
    assert_feasible(&compiled, &result);
}
