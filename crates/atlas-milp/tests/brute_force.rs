//! Small problems whose integer optimum is found by enumerating every allocation on the
//! spend-unit grid: `milp` must find it.

mod common;

use atlas_core::{Compiled, Status};
use common::*;
use serde_json::json;

/// Every allocation of whole units (`unit`) to `n` variables with total `units` (or at
/// most `units` when `at_most`), feasible for every rule; returns the best two objective
/// values with the best allocation.
fn enumerate(c: &Compiled, unit: f64, units: usize, at_most: bool) -> (Vec<f64>, f64, f64) {
    let n = c.layout().len();
    let mut counts = vec![0usize; n];
    let mut best: (Vec<f64>, f64) = (Vec::new(), f64::NEG_INFINITY);
    let mut second = f64::NEG_INFINITY;
    let mut visit = |counts: &[usize]| {
        let x: Vec<f64> = counts.iter().map(|&k| k as f64 * unit).collect();
        if !c.is_feasible(&x) {
            return;
        }
        let v = c.objective_value(&x);
        if v > best.1 {
            second = best.1;
            best = (x, v);
        } else if v > second {
            second = v;
        }
    };
    // Odometer over compositions: the last variable takes what is left.
    fn rec(
        i: usize,
        left: usize,
        at_most: bool,
        counts: &mut Vec<usize>,
        visit: &mut dyn FnMut(&[usize]),
    ) {
        let n = counts.len();
        if i == n - 1 {
            let options: Vec<usize> = if at_most {
                (0..=left).collect()
            } else {
                vec![left]
            };
            for k in options {
                counts[i] = k;
                visit(counts);
            }
            return;
        }
        for k in 0..=left {
            counts[i] = k;
            rec(i + 1, left - k, at_most, counts, visit);
        }
    }
    rec(0, units, at_most, &mut counts, &mut visit);
    (best.0, best.1, second)
}

const EXACT: &str = r#"
name = "brute-force"
periods = 2
budget = 100_000.0
budget_mode = "exact"
objective = "response"
discount = 0.05
max_active_channels = 2

[[channels]]
name = "tv"
period_max = 60_000.0
response = { kind = "hill", beta = 150_000.0, k = 35_000.0, s = 2.4 }
spend_unit = 10_000.0
min_active = 40_000.0
fixed_cost = 6_000.0

[[channels]]
name = "search"
response = { kind = "log", beta = 40_000.0, k = 8_000.0 }
spend_unit = 10_000.0
fixed_cost = 2_000.0

[[channels]]
name = "social"
response = { kind = "exponential", beta = 70_000.0, k = 25_000.0 }
spend_unit = 10_000.0
min_active = 30_000.0
"#;

#[test]
fn integer_optimum_found_by_enumeration_is_matched_exactly() {
    let c = from_toml(EXACT);
    let (x_best, best, second) = enumerate(&c, 10_000.0, 10, false);
    // A unique optimum, so that matching it exactly is well defined.
    assert!(best - second > 1e-6 * best, "{best} vs {second}");
    // Units without carry-over and at most 64 grid segments: the curves are exact on the
    // grid, so the mixed-integer optimum is the true one.
    let r = solve(&c, &[("mip_gap", json!(0.0))]);
    assert_feasible(&c, &r);
    let x = r.flat_allocation(&c).unwrap();
    for (a, b) in x.iter().zip(&x_best) {
        assert!((a - b).abs() <= 1e-6, "{x:?} vs {x_best:?}");
    }
    assert!(
        (r.objective - best).abs() <= 1e-9 * best,
        "{} vs {best}",
        r.objective
    );
    let bound = r.bound.unwrap();
    assert!(
        bound >= best && bound <= best * (1.0 + 1e-5),
        "{bound} vs {best}"
    );
    assert_eq!(r.status, Status::Optimal);
}

#[test]
fn with_carry_over_and_profit_the_enumerated_optimum_is_within_the_curve_error() {
    // Carry-over makes the curves' arguments leave the grid, so they are approximated;
    // profit with at most the budget also lets the enumeration stop short of it.
    let text = EXACT
        .replace("budget_mode = \"exact\"", "budget_mode = \"at_most\"")
        .replace("objective = \"response\"", "objective = \"profit\"\nmargin = 1.6")
        .replace(
            "response = { kind = \"log\", beta = 40_000.0, k = 8_000.0 }",
            "response = { kind = \"log\", beta = 40_000.0, k = 8_000.0 }\nadstock = { kind = \"geometric\", decay = 0.5, max_lag = 2 }",
        )
        + "\n[[constraints]]\nkind = \"share\"\nchannels = [\"tv\"]\nmax = 0.7\n";
    let c = from_toml(&text);
    let (_, best, _) = enumerate(&c, 10_000.0, 10, true);
    for max_error in [1e-3, 1e-5] {
        let r = solve(
            &c,
            &[("mip_gap", json!(0.0)), ("max_error", json!(max_error))],
        );
        assert_feasible(&c, &r);
        let bound = r.bound.unwrap();
        assert!(
            bound >= best,
            "bound {bound} below the enumerated optimum {best}"
        );
        assert!(
            r.objective <= best * (1.0 + 1e-12),
            "{} above the enumerated optimum {best}",
            r.objective
        );
        // Profit is smaller than the response the error is relative to: allow for it.
        assert!(
            best - r.objective <= 4.0 * max_error * best,
            "{} vs {best} at max_error {max_error}",
            r.objective
        );
    }
}
