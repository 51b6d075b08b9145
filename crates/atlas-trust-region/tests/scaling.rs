//! Badly scaled input: the same problem in units 1e6 times apart gives the same relative
//! allocation, and allocations spanning six orders of magnitude are found precisely.

mod common;

use atlas_core::Status;
use common::*;

/// One problem written with every amount multiplied by `unit`: curves re-parametrized so
/// that the response of `unit * x` equals the response of `x` at unit 1 (half-saturation
/// spends and bounds scale with `unit`, `power` betas with `unit^-alpha`, `linear` with
/// `1 / unit`), rules scaled alike; shares are unit-free.
fn scaled_problem(unit: f64) -> String {
    let u = |v: f64| format!("{:?}", v * unit);
    let pw = |beta: f64, alpha: f64| format!("{:?}", beta * unit.powf(-alpha));
    let beta_print = format!("{:?}", 1.2 / unit);
    format!(
        r#"
name = "scaled"
periods = 6
budget = {budget}
budget_mode = "exact"

[[channels]]
name = "tv"
max = {tv_max}
response = {{ kind = "hill", beta = 900.0, k = {k_tv}, s = 1.0 }}
adstock = {{ kind = "geometric", decay = 0.5, max_lag = 3 }}

[[channels]]
name = "search"
response = {{ kind = "power", beta = {beta_search}, alpha = 0.6 }}

[[channels]]
name = "social"
period_max = {social_pmax}
response = {{ kind = "exponential", beta = 500.0, k = {k_social} }}
adstock = {{ kind = "geometric", decay = 0.3, max_lag = 2 }}

[[channels]]
name = "radio"
response = {{ kind = "log", beta = 300.0, k = {k_radio} }}

[[channels]]
name = "print"
max = {print_max}
response = {{ kind = "linear", beta = {beta_print} }}

[[constraints]]
kind = "share"
channels = ["search", "social"]
min = 0.35

[[constraints]]
kind = "spend"
channels = ["tv"]
periods = [0, 1]
max = {tv_window}
"#,
        budget = u(1000.0),
        tv_max = u(400.0),
        k_tv = u(60.0),
        beta_search = pw(40.0, 0.6),
        social_pmax = u(40.0),
        k_social = u(30.0),
        k_radio = u(25.0),
        print_max = u(50.0),
        beta_print = beta_print,
        tv_window = u(90.0),
    )
}

#[test]
fn budgets_1e3_and_1e9_give_the_same_relative_allocation() {
    let small = from_toml(&scaled_problem(1.0));
    let large = from_toml(&scaled_problem(1e6));
    assert_eq!(small.budget(), 1e3);
    assert_eq!(large.budget(), 1e9);
    let a = solve(&small);
    let b = solve(&large);
    assert_eq!(a.status, Status::Converged);
    assert_eq!(b.status, Status::Converged);
    assert_feasible(&small, &a);
    assert_feasible(&large, &b);
    // Same response (the curves were re-parametrized to give it).
    assert!(
        rel(a.objective, b.objective) <= 1e-9,
        "{} vs {}",
        a.objective,
        b.objective
    );
    let xa = a.flat_allocation(&small).unwrap();
    let xb = b.flat_allocation(&large).unwrap();
    let mut active = 0;
    for (p, q) in xa.iter().zip(&xb) {
        let (p, q) = (p / 1e3, q / 1e9);
        assert!((p - q).abs() <= 1e-8, "shares {p} vs {q}");
        if p > 1e-3 {
            active += 1;
        }
    }
    // Not a degenerate answer: spend is spread over many variables.
    assert!(active >= 10, "{active}");
}

/// Power curves `beta_i x^alpha` under a budget alone: the optimum equalizes
/// `alpha beta_i x_i^(alpha - 1)`, so `x_i ∝ beta_i^(1 / (1 - alpha))`; with `alpha = 1/2`
/// the shares are `beta_i^2 / sum beta_j^2`. Betas 1 to 1000 put shares from 1e-6 to 1 on
/// the channels, and slopes are unbounded at zero: every share must still come out to
/// 1e-6 relative.
#[test]
fn power_curves_across_six_orders_of_magnitude() {
    let betas = [1.0, 10.0, 100.0, 1000.0, 3.0, 300.0];
    let budget = 1e8;
    let mut text = format!("name = \"power\"\nbudget = {budget:?}\n");
    for (i, b) in betas.iter().enumerate() {
        text += &format!(
            "[[channels]]\nname = \"c{i}\"\nresponse = {{ kind = \"power\", beta = {b:?}, alpha = 0.5 }}\n"
        );
    }
    let compiled = from_toml(&text);
    let result = solve(&compiled);
    assert_eq!(result.status, Status::Converged);
    assert_feasible(&compiled, &result);
    let squares: f64 = betas.iter().map(|b| b * b).sum();
    let x = result.flat_allocation(&compiled).unwrap();
    for (xi, b) in x.iter().zip(&betas) {
        let expected = budget * b * b / squares;
        assert!(rel(*xi, expected) <= 1e-6, "beta {b}: {xi} vs {expected}");
    }
    let optimum: f64 = betas
        .iter()
        .map(|b| b * (budget * b * b / squares).sqrt())
        .sum();
    assert!(rel(result.objective, optimum) <= 1e-12);
}
