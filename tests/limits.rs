//! The executor's limits, shown on the user-written, step-based `pgd` solver of
//! `examples/custom_solver.rs`, which has no limit code of its own: it stops at a time
//! limit, at an evaluation budget, on patience, and when cancelled from another thread,
//! and each time returns the best feasible point it saw.

#[path = "../examples/custom_solver.rs"]
#[allow(dead_code)]
mod custom_solver;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atlas::{
    CancelToken, Compiled, Derivatives, Frequency, IterationEvent, Model, Observer,
    OptimizationResult, Problem, Registry, SolveOptions, Status,
};
use custom_solver::PgdConfig;

/// The quickstart problem's model, made slow: every value or gradient takes `delay`.
struct Slow {
    inner: Arc<dyn Model>,
    delay: Duration,
}

impl Model for Slow {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn value(&self, x: &[f64]) -> f64 {
        std::thread::sleep(self.delay);
        self.inner.value(x)
    }
    fn derivatives(&self) -> Derivatives {
        Derivatives::Gradient
    }
    fn gradient(&self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        std::thread::sleep(self.delay);
        self.inner.gradient(x, grad)
    }
    fn hessian_vector(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Option<()> {
        // Products are not evaluations (they are counted apart): no delay.
        self.inner.hessian_vector(x, v, out)
    }
    fn hessian_diagonal(&self, x: &[f64], out: &mut [f64]) -> Option<()> {
        self.inner.hessian_diagonal(x, out)
    }
    fn is_concave(&self) -> Option<bool> {
        self.inner.is_concave()
    }
}

fn problem_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/problems/quickstart.toml")
}

/// The quickstart problem around a model that sleeps `delay` per evaluation.
fn slow_quickstart(delay: Duration) -> Compiled {
    slow(problem_path(), delay)
}

/// The problem in `path` around its model made to sleep `delay` per evaluation.
fn slow(path: std::path::PathBuf, delay: Duration) -> Compiled {
    let problem = Problem::from_path(path).expect("the problem parses");
    let fast = Compiled::new(&problem).expect("quickstart compiles");
    let model = Slow {
        inner: fast.model().clone(),
        delay,
    };
    Compiled::with_model(&problem, Arc::new(model)).expect("compiles around the slow model")
}

fn registry() -> Registry {
    let mut registry = atlas::registry().expect("the enabled optimizers register");
    registry
        .register::<PgdConfig>()
        .expect("pgd registers beside the built-in optimizers");
    registry
}

/// What the observer saw: every iteration's time and the best feasible objective.
#[derive(Default)]
struct Seen {
    times: Vec<Instant>,
    best: Option<f64>,
    iterations: u64,
    with_diagnostics: u64,
}

struct Recorder(Arc<Mutex<Seen>>);

impl Observer for Recorder {
    fn on_iteration(&mut self, event: &IterationEvent) {
        let mut seen = self.0.lock().unwrap();
        seen.times.push(Instant::now());
        seen.iterations = event.iteration;
        if event.feasible {
            seen.best = event.best_objective;
        }
        if event.diagnostics.get("step").is_some() {
            seen.with_diagnostics += 1;
        }
    }
}

/// Solves `compiled` with `pgd` and `options` plus a recording observer.
fn solve(compiled: &Compiled, mut options: SolveOptions) -> (OptimizationResult, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    options
        .observers
        .push((Frequency::Always, Box::new(Recorder(seen.clone()))));
    let result = registry()
        .optimize(compiled, &PgdConfig::default(), options)
        .expect("pgd solves the quickstart problem");
    (result, seen)
}

/// The result is feasible and is the best feasible point the observer saw (or better: the
/// start counts too).
fn assert_best_feasible(compiled: &Compiled, result: &OptimizationResult, seen: &Seen) {
    let x = result.flat_allocation(compiled).expect("layout");
    assert!(
        compiled.is_feasible(&x),
        "violation {}",
        result.max_violation
    );
    if let Some(best) = seen.best {
        assert!(
            result.objective >= best * (1.0 - 1e-12),
            "returned {} but a feasible iterate reached {best}",
            result.objective
        );
    }
}

#[test]
fn unlimited_pgd_reaches_the_certified_optimum() {
    let compiled = Compiled::from_path(problem_path()).unwrap();
    let (result, seen) = solve(&compiled, SolveOptions::default());
    assert_eq!(result.status, Status::Converged);
    let certified = 1_585_364.822_896_572_5;
    assert!((result.objective - certified).abs() <= 1e-6 * certified);
    let seen = seen.lock().unwrap();
    // The solver's diagnostics reach the observers with each iteration.
    assert_eq!(seen.with_diagnostics, seen.iterations);
    assert_eq!(seen.iterations, result.metrics.iterations);
}

#[test]
fn stops_at_the_time_limit_with_its_best_point() {
    let compiled = slow_quickstart(Duration::from_millis(2));
    let limit = Duration::from_millis(150);
    let (result, seen) = solve(
        &compiled,
        SolveOptions {
            time_limit: Some(limit),
            ..Default::default()
        },
    );
    assert_eq!(result.status, Status::TimeLimit);
    let seen = seen.lock().unwrap();
    assert!(seen.iterations >= 1, "some iterations ran before the limit");
    assert_best_feasible(&compiled, &result, &seen);
    // Work stops at the limit plus at most one step (60 trials of 2 ms, generously).
    assert!(result.metrics.wall_time_s < limit.as_secs_f64() + 1.0);
}

#[test]
fn stops_at_the_evaluation_budget_with_its_best_point() {
    let compiled = Compiled::from_path(problem_path()).unwrap();
    let budget = 40;
    let (result, seen) = solve(
        &compiled,
        SolveOptions {
            max_evaluations: Some(budget),
            ..Default::default()
        },
    );
    assert_eq!(result.status, Status::MaxEvaluations);
    // The budget is checked between steps: one step (at most 60 trials and a gradient)
    // may cross it, no more.
    assert!(result.metrics.evaluations >= budget);
    assert!(result.metrics.evaluations <= budget + 61);
    assert_best_feasible(&compiled, &result, &seen.lock().unwrap());
}

#[test]
fn stops_on_patience_with_its_best_point() {
    let compiled = Compiled::from_path(problem_path()).unwrap();
    let unlimited = solve(&compiled, SolveOptions::default()).0;
    let (result, seen) = solve(
        &compiled,
        SolveOptions {
            patience: Some(3),
            // Improvements below 1e-4 of the objective do not count.
            min_delta: 1e-4,
            ..Default::default()
        },
    );
    assert_eq!(result.status, Status::StoppedEarly);
    assert!(result.metrics.iterations < unlimited.metrics.iterations);
    let seen = seen.lock().unwrap();
    assert_best_feasible(&compiled, &result, &seen);
    // Stopped near the optimum: the last improvements were below min_delta.
    assert!(result.objective >= unlimited.objective * (1.0 - 1e-3));
}

#[test]
fn cancelled_from_another_thread_returns_promptly_with_its_best_point() {
    let compiled = slow_quickstart(Duration::from_millis(1));
    let token = CancelToken::new();
    let canceller = {
        let token = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let at = Instant::now();
            token.cancel();
            at
        })
    };
    let (result, seen) = solve(
        &compiled,
        SolveOptions {
            cancel: Some(token),
            ..Default::default()
        },
    );
    let returned = Instant::now();
    let cancelled_at = canceller.join().unwrap();
    assert_eq!(result.status, Status::Cancelled);
    let seen = seen.lock().unwrap();
    assert!(
        seen.iterations >= 1,
        "iterations ran before the cancellation"
    );
    assert_best_feasible(&compiled, &result, &seen);
    // Within 100 ms plus one iteration (the longest one seen).
    let longest = seen
        .times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let latency = returned.saturating_duration_since(cancelled_at);
    assert!(
        latency <= Duration::from_millis(100) + longest,
        "returned {latency:?} after the cancellation (longest iteration {longest:?})"
    );
}

/// Every registered optimizer, on the 2600-variable `large.toml` with a model that sleeps
/// 1 ms per evaluation (the built-in model for those that need its curve structure, which
/// a custom model lacks) and a time limit of 1 s, returns a feasible allocation with
/// status `time_limit` or better within 1.5 s.
#[test]
fn every_optimizer_keeps_a_one_second_limit_on_the_large_problem() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/problems/large.toml");
    let slow_large = slow(path.clone(), Duration::from_millis(1));
    let large = Compiled::from_path(&path).unwrap();
    // The built-in optimizers (the example's `pgd` is not one).
    let registry = atlas::registry().expect("the enabled optimizers register");
    for name in registry.names() {
        let config = registry.default_config(name).unwrap();
        let compiled = if config.capabilities().needs_structure {
            &large
        } else {
            &slow_large
        };
        let started = Instant::now();
        let result = registry
            .optimize(
                compiled,
                config.as_ref(),
                SolveOptions {
                    time_limit: Some(Duration::from_secs(1)),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let wall = started.elapsed();
        eprintln!("{name}: {} in {wall:?}", result.status);
        assert!(
            matches!(
                result.status,
                Status::TimeLimit | Status::Optimal | Status::Converged
            ),
            "{name}: {}",
            result.status
        );
        let x = result.flat_allocation(compiled).unwrap();
        assert!(
            compiled.is_feasible(&x),
            "{name}: violation {}",
            result.max_violation
        );
        assert!(wall <= Duration::from_millis(1500), "{name}: {wall:?}");
    }
}
