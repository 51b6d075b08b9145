//! A custom black-box model (value only, no gradient) optimized by `tpe`; early stopping,
//! limits and observers through the core's solve context.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_core::{
    Compiled, Frequency, IterationEvent, Model, Observer, Problem, SolveOptions, Status,
};

/// `R(x) = sum_i a_i sqrt(x_i)`, given as a black box: only `dim` and `value`. With an
/// exact budget `B`, the optimum puts `x_i = B a_i^2 / sum a^2`, where
/// `R* = sqrt(B sum a^2)` (equal marginal returns `a_i / (2 sqrt(x_i))`).
struct SqrtResponse {
    a: Vec<f64>,
    calls: AtomicU64,
}

impl Model for SqrtResponse {
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn value(&self, x: &[f64]) -> f64 {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.a
            .iter()
            .zip(x)
            .map(|(a, v)| a * v.max(0.0).sqrt())
            .sum()
    }
}

fn black_box() -> (Compiled, Arc<SqrtResponse>, f64) {
    let problem = Problem::from_text(
        r#"
        name = "black box"
        budget = 1_000_000.0
        budget_mode = "exact"
        [[channels]]
        name = "tv"
        [[channels]]
        name = "search"
        [[channels]]
        name = "social"
        [[channels]]
        name = "radio"
        [[channels]]
        name = "print"
        "#,
        atlas_core::Format::Toml,
    )
    .expect("parses");
    let model = Arc::new(SqrtResponse {
        a: vec![900.0, 700.0, 400.0, 250.0, 100.0],
        calls: AtomicU64::new(0),
    });
    let compiled = Compiled::with_model(&problem, model.clone()).expect("compiles");
    let optimum = (1e6 * model.a.iter().map(|a| a * a).sum::<f64>()).sqrt();
    (compiled, model, optimum)
}

#[test]
fn custom_black_box_model_is_optimized() {
    let (compiled, model, optimum) = black_box();
    assert_eq!(model.derivatives(), atlas_core::Derivatives::ValueOnly);
    let result = common::solve(&compiled, &[], SolveOptions::default());
    assert!(
        common::feasible(&compiled, &result),
        "{}",
        result.max_violation
    );
    assert!((result.total_spend - 1e6).abs() <= 1e-6 * 1e6);
    assert!(result.objective <= optimum * (1.0 + 1e-12));
    let gap = (optimum - result.objective) / optimum;
    assert!(gap < 0.005, "{:.3} % short", 100.0 * gap);
    // The allocation follows the optimum's shape: the largest share to tv, then search.
    let t = &result.totals;
    assert!(
        t["tv"] > t["search"] && t["search"] > t["social"] && t["social"] > t["print"],
        "{t:?}"
    );
    // Every trial evaluated the model once (the core adds its own few evaluations).
    assert_eq!(result.metrics.evaluations, 1000);
    assert_eq!(result.metrics.gradient_evaluations, 0);
    assert!(model.calls.load(Ordering::Relaxed) >= 1000);
}

/// Counts iterations and improvements; keeps the last event.
#[derive(Default)]
struct Log {
    iterations: u64,
    improvements: u64,
    last: Option<IterationEvent>,
}

struct Watch(Arc<Mutex<Log>>);

impl Observer for Watch {
    fn on_iteration(&mut self, e: &IterationEvent) {
        if let Ok(mut l) = self.0.lock() {
            l.iterations += 1;
            l.last = Some(e.clone());
        }
    }
    fn on_improvement(&mut self, _: &IterationEvent) {
        if let Ok(mut l) = self.0.lock() {
            l.improvements += 1;
        }
    }
}

#[test]
fn observers_see_every_trial_as_feasible() {
    let (compiled, _, _) = black_box();
    let log = Arc::new(Mutex::new(Log::default()));
    let options = SolveOptions {
        observers: vec![(Frequency::Always, Box::new(Watch(log.clone())))],
        ..Default::default()
    };
    let result = common::solve(&compiled, &[("n_trials", 200.into())], options);
    let log = log.lock().expect("lock");
    assert_eq!(log.iterations, 200);
    assert!(log.improvements >= 1 && log.improvements < 200);
    let last = log.last.as_ref().expect("an event");
    assert!(last.feasible);
    assert_eq!(last.iteration, 200);
    // The best objective the observers saw is the result's.
    let best = last.best_objective.expect("a best");
    assert!((best - result.objective).abs() <= 1e-9 * result.objective.abs());
}

#[test]
fn early_stopping_and_limits_end_the_search() {
    let (compiled, _, _) = black_box();
    // Patience: stops once 30 trials in a row bring no improvement.
    let options = SolveOptions {
        patience: Some(30),
        min_delta: 1e-3,
        ..Default::default()
    };
    let r = common::solve(&compiled, &[("n_trials", 100_000.into())], options);
    assert_eq!(r.status, Status::StoppedEarly);
    assert!(r.metrics.iterations < 100_000);
    assert!(common::feasible(&compiled, &r));
    // Evaluation limit, also with batches: never overshot.
    for n_jobs in [1, 4] {
        let options = SolveOptions {
            max_evaluations: Some(37),
            ..Default::default()
        };
        let r = common::solve(&compiled, &[("n_jobs", n_jobs.into())], options);
        assert_eq!(r.status, Status::MaxEvaluations, "n_jobs {n_jobs}");
        assert_eq!(r.metrics.iterations, 37, "n_jobs {n_jobs}");
    }
    // Time limit.
    let options = SolveOptions {
        time_limit: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let r = common::solve(&compiled, &[("n_trials", 100_000_000.into())], options);
    assert_eq!(r.status, Status::TimeLimit);
    assert!(common::feasible(&compiled, &r));
    // Cancelled before the first trial: the core's feasible start, not an error.
    let cancel = atlas_core::CancelToken::new();
    cancel.cancel();
    let options = SolveOptions {
        cancel: Some(cancel),
        ..Default::default()
    };
    let r = common::solve(&compiled, &[], options);
    assert_eq!(r.status, Status::Cancelled);
    assert_eq!(r.metrics.iterations, 0);
    assert!(common::feasible(&compiled, &r));
}
