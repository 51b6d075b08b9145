//! `min_roi` and `objective = "min_spend"`, on problems whose optimum is known in closed
//! form: identical exponential channels `f(x) = beta (1 - exp(-x / k))`, no carry-over.
//!
//! For a fixed total `S` over `n` identical concave channels the response is largest at
//! the even split, `R(S) = n beta (1 - exp(-S / (n k)))`, and only there, so:
//!
//! * max response subject to `R >= v S` and `S <= cap`: `R(S)` grows with `S` while the
//!   rule needs `R(S) / S >= v`, and `R(S) / S` falls with `S`; the optimum is the even
//!   split at the `S*` where `R(S*) = v S*`. With `z = S* / (n k)` that reads
//!   `beta (1 - exp(-z)) = v k z`; choosing `v = beta / (2 k ln 2)` makes `z = ln 2`
//!   the root (`1 - 1/2 = ln 2 / (2 ln 2)`): each variable gets `k ln 2`, and the response
//!   is `n beta / 2`.
//! * min spend subject to `R >= target`: the even split reaches a response with the least
//!   spend; `target = 3 n beta / 4` needs `exp(-z) = 1/4`, so each variable gets
//!   `k ln 4` and the spend is `n k ln 4`.

mod common;

use atlas_core::Status;
use common::*;
use serde_json::json;

const BETA: f64 = 1_000_000.0;
const K: f64 = 100_000.0;
const CHANNELS: usize = 4;
const PERIODS: usize = 3;

fn problem(header: &str) -> String {
    let mut text = format!("name = \"identical\"\nperiods = {PERIODS}\n{header}\n");
    for c in 0..CHANNELS {
        text += &format!(
            "[[channels]]\nname = \"ch{c}\"\nresponse = {{ kind = \"exponential\", beta = {BETA:?}, k = {K:?} }}\n"
        );
    }
    text
}

fn assert_even_split(result: &atlas_core::OptimizationResult, each: f64) {
    for (name, spends) in &result.allocation {
        assert_eq!(spends.len(), PERIODS);
        for x in spends {
            assert!(rel(*x, each) <= 1e-6, "{name}: {x} vs {each}");
        }
    }
}

#[test]
fn min_roi_optimum_matches_the_closed_form() {
    let n = (CHANNELS * PERIODS) as f64;
    let ln2 = std::f64::consts::LN_2;
    let value = BETA / (2.0 * K * ln2);
    // The cap, 2e6, is above S* = n k ln 2 ≈ 831,777.
    let compiled = from_toml(&problem(&format!(
        "budget = 2_000_000.0\nbudget_mode = \"at_most\"\nobjective = \"response\"\n\
         [[constraints]]\nkind = \"min_roi\"\nvalue = {value:?}\n"
    )));
    // Without the rule the whole cap would be spent: the rule binds.
    let spend_star = n * K * ln2;
    assert!(spend_star < 2_000_000.0);
    let result = solve(&compiled);
    assert_feasible(&compiled, &result);
    assert_eq!(result.status, Status::Converged);
    assert!(
        rel(result.objective, n * BETA / 2.0) <= 1e-6,
        "{}",
        result.objective
    );
    assert!(
        rel(result.total_spend, spend_star) <= 1e-6,
        "{}",
        result.total_spend
    );
    assert_even_split(&result, K * ln2);
}

#[test]
fn min_spend_optimum_matches_the_closed_form() {
    let n = (CHANNELS * PERIODS) as f64;
    let ln4 = 4f64.ln();
    let target = 0.75 * n * BETA;
    let compiled = from_toml(&problem(&format!(
        "budget = 5_000_000.0\nbudget_mode = \"at_most\"\nobjective = \"min_spend\"\n\
         target_response = {target:?}\n"
    )));
    let result = solve(&compiled);
    assert_feasible(&compiled, &result);
    assert_eq!(result.status, Status::Converged);
    let spend_star = n * K * ln4;
    assert!(
        rel(result.objective, spend_star) <= 1e-6,
        "{} vs {spend_star}",
        result.objective
    );
    assert_even_split(&result, K * ln4);
    // The target is met (to the contract's tolerance) and not exceeded by much.
    let x = result.flat_allocation(&compiled).unwrap();
    let response = compiled.model().value(&x);
    assert!(rel(response, target) <= 1e-6, "{response}");
}

/// A `min_roi` that no allocation meets: with an exact budget the best return per unit of
/// spend is the even split's, `R(B) / B`; asking 10% more is proven infeasible, and the
/// result's violations name the rule.
#[test]
fn unreachable_min_roi_is_infeasible_and_named() {
    let n = (CHANNELS * PERIODS) as f64;
    let budget = 1_000_000.0;
    let best_roi = n * BETA * (1.0 - (-budget / (n * K)).exp()) / budget;
    let compiled = from_toml(&problem(&format!(
        "budget = {budget:?}\nbudget_mode = \"exact\"\n\
         [[constraints]]\nkind = \"min_roi\"\nvalue = {:?}\n",
        1.1 * best_roi
    )));
    let result = solve(&compiled);
    assert_eq!(result.status, Status::Infeasible);
    let x = result.flat_allocation(&compiled).unwrap();
    let violations = compiled.violations(&x, compiled.feasibility_tolerance());
    assert!(!violations.is_empty());
    // The rule is the first (only) entry of `constraints`, and the only one violated.
    assert!(
        violations
            .iter()
            .all(|v| v.what.starts_with("constraints[0]") && v.what.contains("total spend")),
        "{violations:?}"
    );
    // The allocation returned is the least-violating one: the even split.
    for v in &x {
        assert!(rel(*v, budget / n) <= 1e-4, "{v}");
    }
}

/// A response target above what the whole budget can buy: infeasible, `target_response`
/// named.
#[test]
fn unreachable_target_is_infeasible_and_named() {
    let n = (CHANNELS * PERIODS) as f64;
    let cap = 1_000_000.0;
    let reachable = n * BETA * (1.0 - (-cap / (n * K)).exp());
    let compiled = from_toml(&problem(&format!(
        "budget = {cap:?}\nbudget_mode = \"at_most\"\nobjective = \"min_spend\"\n\
         target_response = {:?}\n",
        1.05 * reachable
    )));
    let result = solve(&compiled);
    assert_eq!(result.status, Status::Infeasible);
    let x = result.flat_allocation(&compiled).unwrap();
    let violations = compiled.violations(&x, compiled.feasibility_tolerance());
    assert!(
        violations
            .iter()
            .any(|v| v.what.contains("target_response")),
        "{violations:?}"
    );
}

/// A `min_roi` that does not bind leaves the optimum of the unconstrained problem.
#[test]
fn slack_min_roi_changes_nothing() {
    let base = "budget = 1_000_000.0\nbudget_mode = \"exact\"\n";
    let free = solve(&from_toml(&problem(base)));
    let ruled = solve_with(
        &from_toml(&problem(&format!(
            "{base}[[constraints]]\nkind = \"min_roi\"\nvalue = 1.0\n"
        ))),
        json!({}),
    )
    .unwrap();
    assert_eq!(ruled.status, Status::Converged);
    assert!(rel(ruled.objective, free.objective) <= 1e-9);
}
