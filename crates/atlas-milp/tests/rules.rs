//! What `milp` refuses, proves infeasible, and how its settings are checked.

mod common;

use atlas_core::{Error, SolveOptions, Status};
use common::*;
use serde_json::{json, Map, Value};

#[test]
fn min_spend_and_min_roi_are_refused_by_name() {
    let reg = registry();
    let config = reg.default_config("milp").unwrap();
    let c = compiled("target_spend.toml");
    match reg.optimize(&c, config.as_ref(), SolveOptions::default()) {
        Err(Error::Unsupported {
            optimizer,
            features,
            ..
        }) => {
            assert_eq!(optimizer, "milp");
            assert!(
                features.iter().any(|f| f.contains("min_spend")),
                "{features:?}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let c = from_toml(
        r#"
name = "roi"
budget = 100.0
[[channels]]
name = "a"
response = { kind = "log", beta = 300.0, k = 20.0 }
[[channels]]
name = "b"
response = { kind = "hill", beta = 200.0, k = 30.0, s = 2.0 }
[[constraints]]
kind = "min_roi"
value = 1.5
"#,
    );
    match reg.optimize(&c, config.as_ref(), SolveOptions::default()) {
        Err(Error::Unsupported { features, .. }) => {
            assert!(
                features.iter().any(|f| f.contains("min_roi")),
                "{features:?}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn units_that_cannot_spend_the_budget_are_proven_infeasible() {
    // Two channels bought in units of 10, an exact budget of 25: no allocation.
    let c = from_toml(
        r#"
name = "odd budget"
budget = 25.0
[[channels]]
name = "a"
response = { kind = "log", beta = 300.0, k = 20.0 }
spend_unit = 10.0
[[channels]]
name = "b"
response = { kind = "exponential", beta = 200.0, k = 30.0 }
spend_unit = 10.0
"#,
    );
    let r = solve(&c, &[]);
    assert_eq!(r.status, Status::Infeasible);
    assert_eq!(r.bound, None);
    // With a budget cap instead, 20 of the 25 are spent.
    let c = from_toml(
        r#"
name = "odd budget, capped"
budget = 25.0
budget_mode = "at_most"
[[channels]]
name = "a"
response = { kind = "log", beta = 300.0, k = 20.0 }
spend_unit = 10.0
[[channels]]
name = "b"
response = { kind = "exponential", beta = 200.0, k = 30.0 }
spend_unit = 10.0
"#,
    );
    let r = solve(&c, &[]);
    assert_feasible(&c, &r);
    assert_eq!(r.total_spend, 20.0);
    // By hand: a = 10, b = 10 gives 300 ln 1.5 + 200 (1 - e^(-1/3)) = 178.3; a = 20
    // gives 300 ln 2 = 207.9; b = 20 gives 200 (1 - e^(-2/3)) = 97.3.
    assert!(
        (r.objective - 300.0 * 2f64.ln()).abs() < 1e-9,
        "{}",
        r.objective
    );
    assert_eq!(r.status, Status::Optimal);
}

#[test]
fn results_scale_with_the_units_of_the_problem() {
    // The same problem in units 10^6 times larger: the same allocation, scaled.
    let small = r#"
name = "scale"
periods = 2
budget = 10.0
max_active_channels = 1
[[channels]]
name = "a"
response = { kind = "hill", beta = 30.0, k = 4.0, s = 2.5 }
min_active = 3.0
fixed_cost = 0.5
[[channels]]
name = "b"
response = { kind = "log", beta = 8.0, k = 1.0 }
adstock = { kind = "geometric", decay = 0.4, max_lag = 2 }
"#;
    let big = small
        .replace("budget = 10.0", "budget = 10e6")
        .replace("beta = 30.0, k = 4.0", "beta = 30e6, k = 4e6")
        .replace("min_active = 3.0", "min_active = 3e6")
        .replace("fixed_cost = 0.5", "fixed_cost = 0.5e6")
        .replace("beta = 8.0, k = 1.0", "beta = 8e6, k = 1e6");
    let (cs, cb) = (from_toml(small), from_toml(&big));
    let (rs, rb) = (solve(&cs, &[]), solve(&cb, &[]));
    assert_feasible(&cs, &rs);
    assert_feasible(&cb, &rb);
    assert!(
        (rb.objective / 1e6 - rs.objective).abs() <= 1e-9 * rs.objective,
        "{} vs {}",
        rb.objective,
        rs.objective
    );
    let (xs, xb) = (
        rs.flat_allocation(&cs).unwrap(),
        rb.flat_allocation(&cb).unwrap(),
    );
    for (a, b) in xs.iter().zip(&xb) {
        assert!((b / 1e6 - a).abs() <= 1e-7, "{xs:?} vs {xb:?}");
    }
    // Exactly one channel is on.
    assert_eq!(rs.totals.values().filter(|t| **t > 0.0).count(), 1);
}

#[test]
fn settings_are_checked_by_name() {
    let reg = registry();
    let mut bad = Map::new();
    bad.insert("max_eror".to_string(), json!(1e-3));
    let e = reg.config("milp", bad).unwrap_err().to_string();
    assert!(e.contains("max_error"), "{e}");
    for (key, value) in [
        ("max_error", json!(0.0)),
        ("mip_gap", json!(2.0)),
        ("threads", json!(0)),
        ("time_limit", json!(-1.0)),
    ] {
        let settings: Map<String, Value> = [(key.to_string(), value)].into_iter().collect();
        match reg.config("milp", settings) {
            Err(Error::Config(e)) => assert_eq!(e.field, key),
            other => panic!("{key}: expected a configuration error, got {other:?}"),
        }
    }
    let settings: Map<String, Value> = [("solver".to_string(), json!("cplex"))]
        .into_iter()
        .collect();
    assert!(reg.config("milp", settings).is_err());
    // Each solver compiled in is accepted; one that is not is refused naming the feature.
    for (name, built) in [
        ("highs", cfg!(feature = "highs")),
        ("microlp", cfg!(feature = "microlp")),
    ] {
        let settings: Map<String, Value> =
            [("solver".to_string(), json!(name))].into_iter().collect();
        match reg.config("milp", settings) {
            Ok(_) => assert!(built, "{name} accepted without its feature"),
            Err(Error::Config(e)) => {
                assert!(!built, "{name}: {e}");
                assert_eq!(e.field, "solver");
                assert!(e.reason.contains(&format!("feature `{name}`")), "{e}");
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}

#[test]
fn every_compiled_in_solver_gives_the_same_answer() {
    let c = compiled("scurve.toml");
    let (best, _) = optimum("scurve.toml");
    for (name, built) in [
        ("highs", cfg!(feature = "highs")),
        ("microlp", cfg!(feature = "microlp")),
    ] {
        if !built {
            continue;
        }
        let r = solve(&c, &[("solver", json!(name))]);
        assert_feasible(&c, &r);
        assert!(
            (best - r.objective) / best <= 1e-3,
            "{name}: {}",
            r.objective
        );
        assert!(r.bound.unwrap() >= best * (1.0 - 1e-9), "{name}");
    }
}

#[test]
fn a_time_limit_returns_a_feasible_allocation_or_says_why_not() {
    let c = compiled("mixed_integer.toml");
    let reg = registry();
    let settings: Map<String, Value> = [("time_limit".to_string(), json!(1e-3))]
        .into_iter()
        .collect();
    let config = reg.config("milp", settings).unwrap();
    match reg.optimize(&c, config.as_ref(), SolveOptions::default()) {
        // Stopped with an incumbent: feasible, with its bound (or none if the solver
        // had none yet).
        Ok(r) => {
            assert_feasible(&c, &r);
            assert!(
                matches!(
                    r.status,
                    Status::TimeLimit | Status::Optimal | Status::Converged
                ),
                "{:?}",
                r.status
            );
            if let Some(b) = r.bound {
                assert!(b >= r.objective);
            }
        }
        Err(Error::Solver { reason, .. }) => assert!(reason.contains("time limit"), "{reason}"),
        Err(other) => panic!("{other:?}"),
    }
}
