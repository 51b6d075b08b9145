//! `lbfgs` on problems with answers known in closed form, on S-curves with several starts,
//! and under limits.

use atlas_core::problem::{Channel, Constraint, ConstraintKind, CurveSpec, ObjectiveKind};
use atlas_core::{
    BudgetMode, Compiled, OptimizationResult, Problem, Registry, SolveOptions, Status,
};
use serde_json::{json, Map, Value};

fn registry() -> Registry {
    let mut r = Registry::new();
    atlas_lbfgs::register(&mut r).unwrap();
    r
}

fn solve(
    problem: &Problem,
    settings: Value,
    options: SolveOptions,
) -> (Compiled, OptimizationResult) {
    let compiled = Compiled::new(problem).unwrap();
    let r = registry();
    let settings: Map<String, Value> = settings.as_object().cloned().unwrap_or_default();
    let config = r.config("lbfgs", settings).unwrap();
    let result = r.optimize(&compiled, config.as_ref(), options).unwrap();
    (compiled, result)
}

/// `channels` identical exponential channels `beta (1 - exp(-x / k))`, one period.
fn identical(channels: usize, beta: f64, k: f64, budget: f64) -> Problem {
    Problem {
        name: "identical".into(),
        periods: 1,
        budget,
        budget_mode: BudgetMode::AtMost,
        objective: ObjectiveKind::Response,
        margin: 1.0,
        target_response: None,
        discount: 0.0,
        max_active_channels: None,
        channels: (0..channels)
            .map(|i| Channel::new(format!("c{i}"), CurveSpec::exponential(beta, k)))
            .collect(),
        constraints: Vec::new(),
        model: None,
    }
}

#[test]
fn min_spend_matches_the_closed_form() {
    // With C identical channels the cheapest way to a response target is an even split:
    // C beta (1 - exp(-S / (C k))) = target  =>  S = -C k ln(1 - target / (C beta)).
    let (c, beta, k, target) = (4usize, 250_000.0, 80_000.0, 600_000.0);
    let mut p = identical(c, beta, k, 5_000_000.0);
    p.objective = ObjectiveKind::MinSpend;
    p.target_response = Some(target);
    let (compiled, result) = solve(&p, json!({}), SolveOptions::default());
    let cf = c as f64;
    let spend = -cf * k * (1.0 - target / (cf * beta)).ln();
    assert_eq!(result.status, Status::Converged);
    assert!(
        (result.objective - spend).abs() <= 1e-6 * spend,
        "{} vs {spend}",
        result.objective
    );
    for v in result.totals.values() {
        assert!((v - spend / cf).abs() <= 1e-6 * spend, "{v}");
    }
    assert!(compiled.is_feasible(&result.flat_allocation(&compiled).unwrap()));
}

#[test]
fn min_roi_matches_the_closed_form() {
    // Even split again; the response R(S) = C beta (1 - exp(-S / (C k))) grows with S while
    // R(S) / S falls, so the best plan spends the largest S with R(S) >= v S (below the
    // budget): the root of R(S) - v S, found here by bisection.
    let (c, beta, k, v) = (3usize, 400_000.0, 100_000.0, 2.5);
    let mut p = identical(c, beta, k, 2_000_000.0);
    p.constraints.push(Constraint {
        value: Some(v),
        ..Constraint::new(ConstraintKind::MinRoi)
    });
    let cf = c as f64;
    let response = |s: f64| cf * beta * (1.0 - (-s / (cf * k)).exp());
    let (mut lo, mut hi) = (1.0, 2_000_000.0);
    assert!(response(hi) < v * hi, "the rule must bind below the budget");
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if response(mid) >= v * mid {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let (compiled, result) = solve(&p, json!({}), SolveOptions::default());
    assert!(
        (result.total_spend - lo).abs() <= 1e-6 * lo,
        "{} vs {lo}",
        result.total_spend
    );
    assert!((result.objective - response(lo)).abs() <= 1e-6 * response(lo));
    assert!(compiled.is_feasible(&result.flat_allocation(&compiled).unwrap()));
}

#[test]
fn several_starts_find_the_global_optimum_of_s_curves() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/problems/scurve.toml"
    );
    let compiled = Compiled::from_path(path).unwrap();
    let r = registry();
    let best = 7_967_305.117_698_679; // certified by dynamic programming (optima.json)
    let single = r
        .optimize(
            &compiled,
            r.default_config("lbfgs").unwrap().as_ref(),
            SolveOptions::default(),
        )
        .unwrap();
    let many_config = r
        .config(
            "lbfgs",
            json!({"multi_start": 16, "seed": 3})
                .as_object()
                .cloned()
                .unwrap(),
        )
        .unwrap();
    let many = r
        .optimize(&compiled, many_config.as_ref(), SolveOptions::default())
        .unwrap();
    assert!(many.objective >= single.objective);
    assert!(
        (best - many.objective) / best <= 1e-6,
        "{} vs {best}",
        many.objective
    );
    // Same seed, same answer, bit for bit.
    let again = r
        .optimize(&compiled, many_config.as_ref(), SolveOptions::default())
        .unwrap();
    assert_eq!(again.allocation, many.allocation);
}

#[test]
fn limits_stop_with_their_status_and_a_feasible_plan() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/problems/retail_q4.toml"
    );
    let compiled = Compiled::from_path(path).unwrap();
    let r = registry();
    let config = r
        .config(
            "lbfgs",
            json!({"max_evaluations": 40}).as_object().cloned().unwrap(),
        )
        .unwrap();
    let result = r
        .optimize(&compiled, config.as_ref(), SolveOptions::default())
        .unwrap();
    assert_eq!(result.status, Status::MaxEvaluations);
    assert!(
        result.metrics.evaluations <= 45,
        "{}",
        result.metrics.evaluations
    );
    assert!(compiled.is_feasible(&result.flat_allocation(&compiled).unwrap()));
    let options = SolveOptions {
        patience: Some(3),
        min_delta: 1e-2,
        ..Default::default()
    };
    let quickstart = Compiled::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/problems/quickstart.toml"
    ))
    .unwrap();
    let result = r
        .optimize(
            &quickstart,
            r.default_config("lbfgs").unwrap().as_ref(),
            options,
        )
        .unwrap();
    // Every iterate of a bounds-and-budget problem is feasible; after the first big step
    // the gains are below 1 %, so patience runs out.
    assert_eq!(result.status, Status::StoppedEarly);
}

#[test]
fn discounting_moves_spend_earlier() {
    let mut p = identical(2, 100_000.0, 50_000.0, 400_000.0);
    p.budget_mode = BudgetMode::Exact;
    p.periods = 4;
    let (_, flat) = solve(&p, json!({}), SolveOptions::default());
    p.discount = 0.2;
    let (compiled, disc) = solve(&p, json!({}), SolveOptions::default());
    let x0 = flat.allocation["c0"].clone();
    let x1 = disc.allocation["c0"].clone();
    // Without discount the periods are alike; with it, weights 1/1.2^t: for exponential
    // curves marginal equality gives x_t - x_0 = k ln(d_t), so the gaps follow by hand.
    for t in 1..4 {
        assert!((x0[t] - x0[0]).abs() < 1e-3);
        let expect = 50_000.0 * (1.0f64 / 1.2f64.powi(t as i32)).ln();
        assert!(
            (x1[t] - x1[0] - expect).abs() < 1e-3 * 50_000.0,
            "t {t}: {} vs {expect}",
            x1[t] - x1[0]
        );
    }
    assert!(compiled.is_feasible(&disc.flat_allocation(&compiled).unwrap()));
}
