//! The solve context shared by all backends: counted and timed evaluations, limits,
//! seed, observers and early stopping, implemented once here.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::cancel::CancelToken;
use crate::compile::Compiled;
use crate::executor::Kv;
use crate::feasible::{BoxProjection, ProjectionFailure, ProjectionWorkspace};
use crate::observer::{Frequency, IterationEvent, Observer, StartEvent};
use crate::scaled::Scaled;
use crate::solver::Status;

/// Settings of one solve that do not belong to a backend's configuration.
#[derive(Default)]
pub struct SolveOptions {
    /// Stop with `time_limit` after this long.
    pub time_limit: Option<Duration>,
    /// Stop with `max_evaluations` after this many model evaluations.
    pub max_evaluations: Option<u64>,
    /// Seed for backends that draw random numbers and whose configuration sets none
    /// (default 0).
    pub seed: Option<u64>,
    /// Stop with `stopped_early` after this many feasible iterations without improvement.
    pub patience: Option<u64>,
    /// An improvement counts when it beats the best by more than
    /// `min_delta * max(1, |best|)` (relative; default 0).
    pub min_delta: f64,
    /// Observers with their frequencies.
    pub observers: Vec<(Frequency, Box<dyn Observer>)>,
    /// Cancelled from elsewhere (another thread, a service), the solve stops with status
    /// `cancelled` and the best feasible point found so far.
    pub cancel: Option<CancelToken>,
    /// A warm start in spend units: the flat channel-major vector of the problem's
    /// [`Layout`](crate::Layout). The core projects it onto the feasible set (bounds,
    /// budget, linear rules) and hands it to the backend
    /// ([`Context::start`]); backends that can start from a point start there.
    pub start: Option<Vec<f64>>,
    /// Stop when the process's resident memory exceeds this many MiB (Linux; read from
    /// `/proc/self/status`); the solve then ends with an error that carries the best
    /// feasible point found so far.
    pub max_memory_mb: Option<f64>,
}

impl std::fmt::Debug for SolveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolveOptions")
            .field("time_limit", &self.time_limit)
            .field("max_evaluations", &self.max_evaluations)
            .field("seed", &self.seed)
            .field("patience", &self.patience)
            .field("min_delta", &self.min_delta)
            .field("observers", &self.observers.len())
            .field("cancel", &self.cancel)
            .field("start", &self.start.as_ref().map(Vec::len))
            .field("max_memory_mb", &self.max_memory_mb)
            .finish()
    }
}

/// Counts of work done in a solve.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Model value evaluations (a gradient evaluation includes one).
    pub evaluations: u64,
    /// Model gradient evaluations.
    pub gradient_evaluations: u64,
    /// Hessian-vector products.
    pub hessian_products: u64,
    /// Time spent in the model.
    pub model_time: Duration,
    /// Time spent in projections and constraint evaluation.
    pub constraint_time: Duration,
}

/// Evaluates the scaled problem, counting and timing every call; `Sync`, so population
/// methods can evaluate in parallel.
pub struct Evaluator<'a> {
    problem: &'a Scaled,
    evaluations: AtomicU64,
    gradients: AtomicU64,
    hessian_products: AtomicU64,
    model_nanos: AtomicU64,
    constraint_nanos: AtomicU64,
    /// The evaluation budget (`u64::MAX`: none); batches are cut to what is left of it.
    limit: AtomicU64,
}

impl<'a> Evaluator<'a> {
    fn new(problem: &'a Scaled, limit: u64) -> Self {
        Self {
            problem,
            limit: AtomicU64::new(limit),
            evaluations: AtomicU64::new(0),
            gradients: AtomicU64::new(0),
            hessian_products: AtomicU64::new(0),
            model_nanos: AtomicU64::new(0),
            constraint_nanos: AtomicU64::new(0),
        }
    }

    /// The scaled problem.
    pub fn problem(&self) -> &'a Scaled {
        self.problem
    }

    fn add_time(counter: &AtomicU64, since: Instant) {
        counter.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// `R_s(u)`.
    pub fn model_value(&self, u: &[f64]) -> f64 {
        let t = Instant::now();
        let v = self.problem.model().value(u);
        Self::add_time(&self.model_nanos, t);
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        v
    }

    /// `∇R_s(u)` into `grad`, returning `R_s(u)`. A model without gradients (which
    /// gradient backends refuse before solving) yields NaN.
    pub fn model_gradient(&self, u: &[f64], grad: &mut [f64]) -> f64 {
        let t = Instant::now();
        let v = self.problem.model().gradient(u, grad).unwrap_or_else(|| {
            grad.iter_mut().for_each(|g| *g = f64::NAN);
            f64::NAN
        });
        Self::add_time(&self.model_nanos, t);
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        self.gradients.fetch_add(1, Ordering::Relaxed);
        v
    }

    /// `∇²R_s(u) v` into `out`: the model's own product when it has one, else a
    /// finite difference of its gradients (see [`fd_hessian_vector`]); NaN for a model
    /// without gradients.
    pub fn model_hessian_vector(&self, u: &[f64], v: &[f64], out: &mut [f64]) {
        let t = Instant::now();
        let exact = self.problem.model().hessian_vector(u, v, out).is_some();
        Self::add_time(&self.model_nanos, t);
        self.hessian_products.fetch_add(1, Ordering::Relaxed);
        if !exact {
            // The gradients it takes are counted and timed as gradients.
            fd_hessian_vector(|x, g| self.model_gradient(x, g), u, v, out);
        }
    }

    /// The diagonal of `∇²R_s(u)` into `out`; `false` when the model has none.
    pub fn model_hessian_diagonal(&self, u: &[f64], out: &mut [f64]) -> bool {
        let t = Instant::now();
        let ok = self.problem.model().hessian_diagonal(u, out).is_some();
        Self::add_time(&self.model_nanos, t);
        ok
    }

    /// `R_s` at many points (in parallel when the model batches that way).
    pub fn model_values(&self, us: &[Vec<f64>]) -> Vec<f64> {
        let t = Instant::now();
        let mut out = vec![0.0; us.len()];
        self.problem.model().value_batch(us, &mut out);
        Self::add_time(&self.model_nanos, t);
        self.evaluations
            .fetch_add(us.len() as u64, Ordering::Relaxed);
        out
    }

    /// The objective `phi(u)` to minimize.
    pub fn objective(&self, u: &[f64]) -> f64 {
        let c = self.problem.objective();
        let model = if c.model != 0.0 {
            self.model_value(u)
        } else {
            0.0
        };
        c.value(model, u.iter().sum())
    }

    /// `phi(u)` and its gradient.
    pub fn objective_gradient(&self, u: &[f64], grad: &mut [f64]) -> f64 {
        let c = self.problem.objective();
        let model = if c.model != 0.0 {
            self.model_gradient(u, grad)
        } else {
            grad.iter_mut().for_each(|g| *g = 0.0);
            0.0
        };
        c.gradient_in_place(grad);
        c.value(model, u.iter().sum())
    }

    /// The evaluation budget in force (`u64::MAX`: none).
    pub fn evaluation_limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Evaluations left under the budget (`u64::MAX` less those made when there is none).
    pub fn evaluations_left(&self) -> u64 {
        self.evaluation_limit()
            .saturating_sub(self.evaluations.load(Ordering::Relaxed))
    }

    /// How many of a batch of `wanted` evaluations the budget still allows (at most
    /// `wanted`, possibly 0). The evaluator enforces the budget here, so a population
    /// method never overshoots it by more than the single evaluations it makes between
    /// batches.
    pub fn grant(&self, wanted: usize) -> usize {
        self.evaluations_left().min(wanted as u64) as usize
    }

    /// `phi` at the first [`grant`](Evaluator::grant)`(us.len())` points of `us`, in
    /// parallel: a batch asking for `n` values may get fewer when the evaluation budget
    /// is nearly spent (none when it is spent).
    pub fn objectives_within_budget(&self, us: &[Vec<f64>]) -> Vec<f64> {
        let granted = self.grant(us.len());
        self.objectives(&us[..granted])
    }

    /// `phi` at many points, in parallel.
    pub fn objectives(&self, us: &[Vec<f64>]) -> Vec<f64> {
        let c = self.problem.objective();
        let models = if c.model != 0.0 {
            self.model_values(us)
        } else {
            vec![0.0; us.len()]
        };
        us.par_iter()
            .zip(models)
            .map(|(u, m)| c.value(m, u.iter().sum()))
            .collect()
    }

    /// Euclidean projection onto the whole scaled feasible set (timed as constraint work).
    pub fn project(
        &self,
        z: &[f64],
        out: &mut [f64],
        workspace: &mut ProjectionWorkspace,
    ) -> Result<usize, ProjectionFailure> {
        let t = Instant::now();
        let r = self.problem.feasible_set().project(z, out, workspace);
        Self::add_time(&self.constraint_nanos, t);
        r
    }

    /// Euclidean projection onto bounds plus budget (timed as constraint work).
    pub fn project_box_budget(
        &self,
        z: &[f64],
        out: &mut [f64],
        tau_hint: Option<f64>,
    ) -> BoxProjection {
        let t = Instant::now();
        let set = self.problem.feasible_set();
        let r = crate::feasible::project_box_budget(
            z,
            set.lower(),
            set.upper(),
            set.budget(),
            set.budget_mode(),
            out,
            tau_hint,
        );
        Self::add_time(&self.constraint_nanos, t);
        r
    }

    /// Runs `f` and books its time as constraint work.
    pub fn constraint_work<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        Self::add_time(&self.constraint_nanos, t);
        r
    }

    /// Work done so far.
    pub fn counts(&self) -> Counts {
        Counts {
            evaluations: self.evaluations.load(Ordering::Relaxed),
            gradient_evaluations: self.gradients.load(Ordering::Relaxed),
            hessian_products: self.hessian_products.load(Ordering::Relaxed),
            model_time: Duration::from_nanos(self.model_nanos.load(Ordering::Relaxed)),
            constraint_time: Duration::from_nanos(self.constraint_nanos.load(Ordering::Relaxed)),
        }
    }
}

struct Progress {
    iterations: u64,
    best: Option<(f64, Vec<f64>)>,
    since_improvement: u64,
    stopped: Option<Status>,
    observers: Vec<(Frequency, Box<dyn Observer>)>,
}

/// Everything a solver needs besides its configuration: the problem (scaled and as
/// compiled), the evaluator, limits, the seed, observers and early stopping.
///
/// All methods take `&self`, so parallel workers can share one context.
pub struct Context<'a> {
    compiled: &'a Compiled,
    evaluator: Evaluator<'a>,
    started: Instant,
    time_limit: Option<Duration>,
    seed: u64,
    patience: Option<u64>,
    min_delta: f64,
    cancel: Option<CancelToken>,
    max_memory_mb: Option<f64>,
    start: Vec<f64>,
    warm_start: bool,
    progress: Mutex<Progress>,
}

impl<'a> Context<'a> {
    /// A context for solving `scaled` (built from `compiled`) with `options`.
    ///
    /// A warm start in `options.start` is scaled and projected onto the feasible set;
    /// one of the wrong length, with values that are not finite, or that cannot be
    /// projected is ignored here ([`optimize`](crate::optimize) refuses the first two as
    /// input errors before it gets here).
    pub fn new(compiled: &'a Compiled, scaled: &'a Scaled, options: SolveOptions) -> Self {
        let warm = options
            .start
            .as_deref()
            .and_then(|x| project_start(scaled, x));
        let warm_start = warm.is_some();
        let start = warm.unwrap_or_else(|| scaled.start().to_vec());
        Self {
            compiled,
            evaluator: Evaluator::new(scaled, options.max_evaluations.unwrap_or(u64::MAX)),
            started: Instant::now(),
            time_limit: options.time_limit,
            seed: options.seed.unwrap_or(0),
            patience: options.patience,
            min_delta: options.min_delta,
            cancel: options.cancel,
            max_memory_mb: options.max_memory_mb,
            start,
            warm_start,
            progress: Mutex::new(Progress {
                iterations: 0,
                best: None,
                since_improvement: 0,
                stopped: None,
                observers: options.observers,
            }),
        }
    }

    /// The scaled problem.
    pub fn problem(&self) -> &'a Scaled {
        self.evaluator.problem
    }

    /// The problem as compiled (names, rules, units).
    pub fn compiled(&self) -> &'a Compiled {
        self.compiled
    }

    /// Where a backend starts: the caller's warm start
    /// ([`SolveOptions::start`]) projected onto the scaled feasible set when one was
    /// given, else the even split projected ([`Scaled::start`]). Inside bounds, budget
    /// and every linear rule; not necessarily the nonlinear rules.
    pub fn start(&self) -> &[f64] {
        &self.start
    }

    /// Whether the caller gave a warm start.
    pub fn has_warm_start(&self) -> bool {
        self.warm_start
    }

    /// The memory limit in MiB, if one is set.
    pub fn memory_limit_mb(&self) -> Option<f64> {
        self.max_memory_mb
    }

    /// The cancellation token, if the caller gave one.
    pub fn cancel_token(&self) -> Option<&CancelToken> {
        self.cancel.as_ref()
    }

    /// Counted, timed evaluation.
    pub fn evaluator(&self) -> &Evaluator<'a> {
        &self.evaluator
    }

    /// The solve's seed (a backend's own `seed` setting takes precedence).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Tightens the evaluation limit (a backend's own `max_evaluations`).
    pub fn limit_evaluations(&self, limit: u64) {
        self.evaluator.limit.fetch_min(limit, Ordering::Relaxed);
    }

    /// The evaluation limit in force (`u64::MAX`: none).
    pub fn evaluation_limit(&self) -> u64 {
        self.evaluator.evaluation_limit()
    }

    /// Time since the solve started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Time left before the time limit, if one is set.
    pub fn time_left(&self) -> Option<Duration> {
        self.time_limit.map(|l| l.saturating_sub(self.elapsed()))
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a limit says to stop now (time, evaluations, cancellation, early stopping),
    /// without counting an iteration. Cheap: call it in inner loops.
    pub fn should_stop(&self) -> Option<Status> {
        if let Some(s) = self.lock().stopped {
            return Some(s);
        }
        // (models) A failed external model stops the solve; `optimize` reports its error.
        let status = if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
            || self.compiled.model().failure().is_some()
        {
            Some(Status::Cancelled)
        } else if self.time_limit.is_some_and(|l| self.elapsed() >= l) {
            Some(Status::TimeLimit)
        } else if self.evaluator.evaluations_left() == 0 {
            Some(Status::MaxEvaluations)
        } else {
            None
        };
        if status.is_some() {
            self.lock().stopped = status;
        }
        status
    }

    /// Reports an iteration with its objective `phi` (scaled, minimized) at `u`; `feasible`
    /// says whether `u` satisfies every rule (then it competes for the best point, and
    /// counts toward early stopping). Observers are notified. Returns `Break(status)` when
    /// the solver must stop.
    pub fn iteration(&self, phi: f64, u: &[f64], feasible: bool) -> ControlFlow<Status> {
        self.iteration_with(phi, u, feasible, &Kv::new())
    }

    /// [`iteration`](Context::iteration) with the solver's diagnostics for observers.
    pub fn iteration_with(
        &self,
        phi: f64,
        u: &[f64],
        feasible: bool,
        diagnostics: &Kv,
    ) -> ControlFlow<Status> {
        let problem = self.problem();
        let evaluations = self.evaluator.evaluations.load(Ordering::Relaxed);
        let elapsed = self.elapsed();
        let mut guard = self.lock();
        let p = &mut *guard;
        p.iterations += 1;
        let mut improved = false;
        if feasible && phi.is_finite() {
            match &p.best {
                Some((best, _)) => {
                    let threshold = self.min_delta * best.abs().max(1.0);
                    if phi < *best {
                        if *best - phi > threshold {
                            p.since_improvement = 0;
                        } else {
                            p.since_improvement += 1;
                        }
                        p.best = Some((phi, u.to_vec()));
                        improved = true;
                    } else {
                        p.since_improvement += 1;
                    }
                }
                None => {
                    p.best = Some((phi, u.to_vec()));
                    improved = true;
                }
            }
        }
        if !p.observers.is_empty() {
            let event = IterationEvent {
                iteration: p.iterations,
                objective: problem.objective_from_phi(phi),
                best_objective: p.best.as_ref().map(|(b, _)| problem.objective_from_phi(*b)),
                feasible,
                evaluations,
                elapsed,
                diagnostics: diagnostics.clone(),
            };
            for (freq, obs) in p.observers.iter_mut() {
                if freq.fires(p.iterations, improved) {
                    obs.on_iteration(&event);
                }
                if improved {
                    obs.on_improvement(&event);
                }
            }
        }
        if let Some(patience) = self.patience {
            if feasible && p.since_improvement >= patience && p.stopped.is_none() {
                p.stopped = Some(Status::StoppedEarly);
            }
        }
        drop(guard);
        match self.should_stop() {
            Some(s) => ControlFlow::Break(s),
            None => ControlFlow::Continue(()),
        }
    }

    /// Offers `u` (with its `phi`) as the best point without counting an iteration (a
    /// starting point, a final repair): it becomes the best when it is feasible and
    /// better than the best so far. Early stopping does not count it.
    pub fn offer(&self, phi: f64, u: &[f64], feasible: bool) {
        if !(feasible && phi.is_finite()) {
            return;
        }
        let mut p = self.lock();
        if p.best.as_ref().is_none_or(|(b, _)| phi < *b) {
            p.best = Some((phi, u.to_vec()));
        }
    }

    /// Iterations reported so far.
    pub fn iterations(&self) -> u64 {
        self.lock().iterations
    }

    /// The best feasible point reported so far, with its `phi`.
    pub fn best(&self) -> Option<(f64, Vec<f64>)> {
        self.lock().best.clone()
    }

    pub(crate) fn notify_start(&self, event: &StartEvent) {
        for (_, obs) in self.lock().observers.iter_mut() {
            obs.on_start(event);
        }
    }

    pub(crate) fn take_observers(&self) -> Vec<(Frequency, Box<dyn Observer>)> {
        std::mem::take(&mut self.lock().observers)
    }
}

impl Context<'_> {
    /// A seeded random number generator (ChaCha8, reproducible across platforms): from the
    /// backend's own `seed` when set, else the solve's, and a `stream` number so that
    /// parallel workers draw independent sequences.
    pub fn rng(&self, seed: Option<u64>, stream: u64) -> rand_chacha::ChaCha8Rng {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.unwrap_or(self.seed));
        rng.set_stream(stream);
        rng
    }
}

/// The scaled projection of a warm start `x` (spend units), or `None` when it has the
/// wrong length, values that are not finite, or the projection fails.
fn project_start(scaled: &Scaled, x: &[f64]) -> Option<Vec<f64>> {
    if x.len() != scaled.dim() || x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let z = scaled.scale(x);
    let mut u = vec![0.0; z.len()];
    scaled.feasible_set().project_cold(&z, &mut u).ok()?;
    Some(u)
}

/// `∇²f(u) v` from gradients alone, for models that give no Hessian products: the
/// central difference `(∇f(u + h v) - ∇f(u - h v)) / 2h`, with `h` from the cube root of
/// the machine epsilon relative to `|u|` and `|v|` (error of order `eps^(2/3)` for a
/// smooth `f`). When one side is not finite (a model undefined past a bound, say) it
/// falls back to the one-sided difference with `∇f(u)`; NaN in `out` when no difference
/// is finite. `gradient` writes `∇f(x)` into its second argument.
pub fn fd_hessian_vector(
    mut gradient: impl FnMut(&[f64], &mut [f64]) -> f64,
    u: &[f64],
    v: &[f64],
    out: &mut [f64],
) {
    let v_norm = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if v_norm == 0.0 {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    let u_norm = u.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let h = f64::EPSILON.cbrt() * (1.0 + u_norm) / v_norm;
    let finite = |g: &[f64]| g.iter().all(|x| x.is_finite());
    let step = |sign: f64| -> Vec<f64> { u.iter().zip(v).map(|(a, b)| a + sign * h * b).collect() };
    let mut plus = vec![0.0; u.len()];
    let mut minus = vec![0.0; u.len()];
    gradient(&step(1.0), &mut plus);
    gradient(&step(-1.0), &mut minus);
    let (upper, lower, width) = match (finite(&plus), finite(&minus)) {
        (true, true) => (plus, minus, 2.0 * h),
        (true, false) => {
            gradient(u, &mut minus);
            (plus, minus, h)
        }
        (false, true) => {
            gradient(u, &mut plus);
            (plus, minus, h)
        }
        (false, false) => {
            out.iter_mut().for_each(|o| *o = f64::NAN);
            return;
        }
    };
    for ((o, a), b) in out.iter_mut().zip(&upper).zip(&lower) {
        *o = (a - b) / width;
    }
}

#[cfg(test)]
mod fd_tests {
    use super::fd_hessian_vector;

    /// `f(x) = x0^3 + x0 x1 + exp(x1)`: `∇f = (3 x0^2 + x1, x0 + exp(x1))`,
    /// `∇²f = [[6 x0, 1], [1, exp(x1)]]`.
    fn gradient(x: &[f64], g: &mut [f64]) -> f64 {
        g[0] = 3.0 * x[0] * x[0] + x[1];
        g[1] = x[0] + x[1].exp();
        x[0].powi(3) + x[0] * x[1] + x[1].exp()
    }

    #[test]
    fn central_difference_matches_the_hessian_by_hand() {
        let (u, v) = ([0.7, -0.3], [0.4, -1.1]);
        let mut out = [0.0; 2];
        fd_hessian_vector(gradient, &u, &v, &mut out);
        let exact = [6.0 * u[0] * v[0] + v[1], v[0] + u[1].exp() * v[1]];
        for (a, b) in out.iter().zip(exact) {
            assert!((a - b).abs() < 1e-8 * (1.0 + b.abs()), "{a} vs {b}");
        }
        fd_hessian_vector(gradient, &u, &[0.0, 0.0], &mut out);
        assert_eq!(out, [0.0, 0.0]);
    }

    #[test]
    fn one_sided_where_the_model_is_undefined() {
        // g(x) = 1.5 sqrt(x) per coordinate (f = x^1.5), NaN below zero; next to zero the
        // backward side is undefined, so the forward difference is used.
        let sqrt_gradient = |x: &[f64], g: &mut [f64]| {
            for (gi, xi) in g.iter_mut().zip(x) {
                *gi = if *xi < 0.0 { f64::NAN } else { 1.5 * xi.sqrt() };
            }
            0.0
        };
        let (u, v) = ([1e-6, 2.0], [1.0, 1.0]);
        let mut out = [0.0; 2];
        fd_hessian_vector(sqrt_gradient, &u, &v, &mut out);
        assert!(out.iter().all(|x| x.is_finite()), "{out:?}");
        // f'' = 0.75 / sqrt(x): the forward difference is close at 2.0 and positive at 1e-6.
        assert!((out[1] - 0.75 / 2.0f64.sqrt()).abs() < 1e-4, "{out:?}");
        assert!(out[0] > 0.0);
        let undefined = |_: &[f64], g: &mut [f64]| {
            g.iter_mut().for_each(|x| *x = f64::NAN);
            f64::NAN
        };
        fd_hessian_vector(undefined, &u, &v, &mut out);
        assert!(out.iter().all(|x| x.is_nan()));
    }
}
