//! `cmaes` on black boxes: test functions with known optima, a custom model without a
//! gradient, determinism, limits and early stopping, and settings through the registry.
//! All of them together take under a second in a release build and about 4 s in a debug
//! build.

use std::sync::Arc;
use std::time::Duration;

use atlas_core::functions::{self, TestFunction};
use atlas_core::{Compiled, Model, OptimizationResult, Registry, SolveOptions, Status};
use serde_json::json;

fn registry() -> Registry {
    let mut registry = Registry::new();
    atlas_cmaes::register(&mut registry).unwrap();
    registry
}

fn solve(
    compiled: &Compiled,
    settings: serde_json::Value,
    options: SolveOptions,
) -> OptimizationResult {
    let registry = registry();
    let serde_json::Value::Object(map) = settings else {
        panic!("settings must be an object")
    };
    let config = registry.config("cmaes", map).unwrap();
    registry
        .optimize(compiled, config.as_ref(), options)
        .unwrap()
}

#[test]
fn ipop_restarts_reach_1e_6_on_10d_rastrigin() {
    // 10^10 local minima; a single run with the default population ends in one of them.
    let compiled = functions::problem(TestFunction::Rastrigin, 10).unwrap();
    let result = solve(
        &compiled,
        json!({"restarts": "ipop", "seed": 1}),
        SolveOptions::default(),
    );
    let error = functions::optimum(TestFunction::Rastrigin, 10) - result.objective;
    assert!(
        (0.0..=1e-6).contains(&error),
        "f - f* = {error:e} after {} evaluations",
        result.metrics.evaluations
    );
}

#[test]
fn reaches_the_minimum_of_smooth_test_functions() {
    // Objectives are scaled by their value at the start (a corner of the domain), and
    // the runs stop when the scaled values agree to about 1e-11: Rosenbrock starts near
    // 7e6, so its absolute tolerance is looser.
    for (f, dim, tol) in [
        (TestFunction::Sphere, 10, 1e-9),
        (TestFunction::Rosenbrock, 10, 1e-4),
        (TestFunction::StyblinskiTang, 5, 1e-8),
    ] {
        let compiled = functions::problem(f, dim).unwrap();
        let result = solve(&compiled, json!({"seed": 2}), SolveOptions::default());
        let error = functions::optimum(f, dim) - result.objective;
        assert!((0.0..=tol).contains(&error), "{f:?}: f - f* = {error:e}");
    }
}

/// A black box: `R(x) = sum a_i sqrt(x_i)`, with only `dim` and `value` (no gradient).
/// Under `sum x = B` the optimum is `x_i = B a_i^2 / sum a^2`, worth `sqrt(B sum a^2)`
/// (equal marginal returns `a_i / (2 sqrt(x_i))`).
struct SqrtModel {
    a: Vec<f64>,
}

impl Model for SqrtModel {
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn value(&self, x: &[f64]) -> f64 {
        self.a
            .iter()
            .zip(x)
            .map(|(a, x)| a * x.max(0.0).sqrt())
            .sum()
    }
}

fn sqrt_problem() -> (Compiled, f64, Vec<f64>) {
    let a = vec![3.0, 1.0, 2.0, 0.5, 4.0, 1.5];
    let budget = 1.0e6;
    let mut text = format!("name = \"black box\"\nbudget = {budget:.1}\nbudget_mode = \"exact\"\n");
    for i in 0..a.len() {
        text.push_str(&format!("[[channels]]\nname = \"c{i}\"\n"));
    }
    let problem = atlas_core::Problem::from_text(&text, atlas_core::Format::Toml).unwrap();
    let compiled = Compiled::with_model(&problem, Arc::new(SqrtModel { a: a.clone() })).unwrap();
    let sum_sq: f64 = a.iter().map(|v| v * v).sum();
    let optimum = (budget * sum_sq).sqrt();
    let argmax = a.iter().map(|v| budget * v * v / sum_sq).collect();
    (compiled, optimum, argmax)
}

#[test]
fn optimizes_a_custom_black_box_model() {
    let (compiled, optimum, argmax) = sqrt_problem();
    assert!(compiled
        .features()
        .contains(&atlas_core::Feature::NoGradient));
    let result = solve(&compiled, json!({}), SolveOptions::default());
    assert!(
        (optimum - result.objective) / optimum <= 1e-9,
        "{} vs {optimum}",
        result.objective
    );
    assert!(result.max_violation <= compiled.feasibility_tolerance());
    let x = result.flat_allocation(&compiled).unwrap();
    for (xi, want) in x.iter().zip(&argmax) {
        assert!((xi - want).abs() <= 1e-3 * 1e6, "{x:?} vs {argmax:?}");
    }
}

#[test]
fn same_seed_and_n_jobs_give_identical_results() {
    let compiled = Compiled::from_path("../../examples/problems/profit.toml").unwrap();
    let run = |seed: u64, n_jobs: usize| {
        let r = solve(
            &compiled,
            json!({"seed": seed, "n_jobs": n_jobs, "max_evaluations": 3000}),
            SolveOptions::default(),
        );
        let x = r.flat_allocation(&compiled).unwrap();
        (
            x.iter().map(|v| v.to_bits()).collect::<Vec<u64>>(),
            r.objective.to_bits(),
            r.metrics.evaluations,
        )
    };
    let a = run(7, 1);
    assert_eq!(a, run(7, 1));
    let b = run(7, 3);
    assert_eq!(b, run(7, 3));
    // Each sample is mapped and evaluated on its own, so the thread count does not
    // change the result either.
    assert_eq!(a, b);
    // The seed is used.
    assert_ne!(a.0, run(8, 1).0);
    // The solve's seed applies when the configuration sets none.
    let with_solve_seed = |seed| {
        let r = solve(
            &compiled,
            json!({"max_evaluations": 3000}),
            SolveOptions {
                seed: Some(seed),
                ..Default::default()
            },
        );
        r.flat_allocation(&compiled).unwrap()
    };
    assert_eq!(
        with_solve_seed(7)
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>(),
        a.0
    );
}

#[test]
fn evaluation_limit_is_exact_and_every_point_is_feasible() {
    let compiled = Compiled::from_path("../../examples/problems/retail_q4.toml").unwrap();
    for limit in [1u64, 10, 257] {
        let r = solve(
            &compiled,
            json!({"max_evaluations": limit}),
            SolveOptions::default(),
        );
        assert_eq!(r.metrics.evaluations, limit);
        assert_eq!(r.status, Status::MaxEvaluations);
        assert!(
            r.max_violation <= compiled.feasibility_tolerance(),
            "{}",
            r.max_violation
        );
    }
    // The solve's own limit works the same way, and the tighter one wins.
    let r = solve(
        &compiled,
        json!({"max_evaluations": 500}),
        SolveOptions {
            max_evaluations: Some(100),
            ..Default::default()
        },
    );
    assert_eq!(r.metrics.evaluations, 100);
}

/// Records every reported iteration.
struct Record(Arc<std::sync::Mutex<Vec<(f64, bool)>>>);

impl atlas_core::Observer for Record {
    fn on_iteration(&mut self, event: &atlas_core::IterationEvent) {
        self.0
            .lock()
            .unwrap()
            .push((event.objective, event.feasible));
    }
}

#[test]
fn reports_generations_and_stops_early_and_on_time() {
    let compiled = functions::problem(TestFunction::Sphere, 8).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let options = SolveOptions {
        patience: Some(5),
        min_delta: 1e-3,
        observers: vec![(
            atlas_core::Frequency::Always,
            Box::new(Record(seen.clone())),
        )],
        ..Default::default()
    };
    let r = solve(&compiled, json!({}), options);
    assert_eq!(r.status, Status::StoppedEarly);
    let seen = seen.lock().unwrap();
    // One report for the start, then one per generation, every point feasible.
    assert_eq!(seen.len() as u64, r.metrics.iterations);
    assert!(seen.iter().all(|(_, feasible)| *feasible));
    assert!(seen.iter().any(|(objective, _)| *objective <= r.objective));
    // Population 4 + floor(3 ln 8) = 10: one start evaluation plus 10 per generation.
    assert_eq!(r.metrics.evaluations, 1 + 10 * (r.metrics.iterations - 1));

    let r = solve(
        &compiled,
        json!({}),
        SolveOptions {
            time_limit: Some(Duration::ZERO),
            ..Default::default()
        },
    );
    assert_eq!(r.status, Status::TimeLimit);
    assert!(r.metrics.evaluations <= 1);
}

#[test]
fn settings_through_the_registry() {
    let registry = registry();
    assert_eq!(registry.names(), vec!["cmaes"]);
    let info = &registry.list()[0];
    assert!(
        !info.capabilities.needs_gradient
            && info.capabilities.handles_nonconvex
            && info.capabilities.parallel
    );
    assert!(!info.capabilities.integer_features && !info.capabilities.nonlinear_constraints);
    assert_eq!(info.defaults["sigma0"], json!(0.3));
    assert_eq!(info.defaults["restarts"], json!("ipop"));
    let bad = |settings: serde_json::Value| {
        let serde_json::Value::Object(map) = settings else {
            unreachable!()
        };
        registry.config("cmaes", map).unwrap_err().to_string()
    };
    assert!(bad(json!({"sigma": 0.2})).contains("sigma0"));
    assert!(bad(json!({"sigma0": 2.0})).contains("(0, 1]"));
    assert!(bad(json!({"restarts": "lpop"})).contains("ipop"));
    assert!(bad(json!({"n_jobs": 0})).contains("n_jobs"));
    assert!(bad(json!({"population_size": 2})).contains("population_size"));
    // A configuration document, by name.
    let config = registry
        .config_from_value(json!({"optimizer": "cmaes", "restarts": "bipop", "covariance": "diagonal", "population_size": 12}))
        .unwrap();
    assert_eq!(config.settings()["population_size"], json!(12));
}

#[test]
fn bipop_and_diagonal_covariance_work() {
    let compiled = functions::problem(TestFunction::Ackley, 6).unwrap();
    for settings in [
        json!({"restarts": "bipop", "seed": 3}),
        json!({"covariance": "diagonal", "seed": 3}),
    ] {
        let r = solve(&compiled, settings.clone(), SolveOptions::default());
        assert!(
            functions::optimum(TestFunction::Ackley, 6) - r.objective <= 1e-8,
            "{settings}: {}",
            r.objective
        );
    }
    // A population far above the default, run in parallel.
    let compiled = functions::problem(TestFunction::Sphere, 3).unwrap();
    let r = solve(
        &compiled,
        json!({"population_size": 200, "n_jobs": 2, "restarts": "none"}),
        SolveOptions::default(),
    );
    assert!(-r.objective <= 1e-9, "{}", r.objective);
}
