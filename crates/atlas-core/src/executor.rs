//! The one loop every iterative optimizer runs under, in the manner of argmin's
//! `Executor`: a solver only knows how to start and how to take one step
//! ([`IterativeSolver`]); the [`Executor`] owns the loop and everything around it —
//! iteration, evaluation and time limits, cancellation, early stopping (`patience`,
//! `min_delta`), observers (with a key-value record of the solver's diagnostics per
//! iteration) and the best feasible point seen. Whatever ends the run, it returns the best
//! feasible point it knows of, with a status that says what ended it.
//!
//! The limits themselves live in the [`Context`] (set from
//! [`SolveOptions`](crate::SolveOptions)); the executor asks it between steps, so a
//! solver's step needs no limit code of its own. A step is short (one model evaluation,
//! a line search, one generation), so a limit or a cancellation takes effect within one
//! step.

use std::ops::ControlFlow;

use crate::context::Context;
use crate::error::Error;
use crate::solver::{Solution, Status};

/// A value of the key-value diagnostics record.
#[derive(Debug, Clone, PartialEq)]
pub enum KvValue {
    /// A number (a step length, a radius, a gradient norm).
    Float(f64),
    /// A count (inner iterations, products).
    Int(i64),
    /// A flag.
    Bool(bool),
    /// A word (a phase, the direction used).
    Text(String),
}

impl From<f64> for KvValue {
    fn from(v: f64) -> Self {
        KvValue::Float(v)
    }
}
impl From<i64> for KvValue {
    fn from(v: i64) -> Self {
        KvValue::Int(v)
    }
}
impl From<u64> for KvValue {
    fn from(v: u64) -> Self {
        KvValue::Int(v.min(i64::MAX as u64) as i64)
    }
}
impl From<usize> for KvValue {
    fn from(v: usize) -> Self {
        KvValue::from(v as u64)
    }
}
impl From<bool> for KvValue {
    fn from(v: bool) -> Self {
        KvValue::Bool(v)
    }
}
impl From<&str> for KvValue {
    fn from(v: &str) -> Self {
        KvValue::Text(v.to_string())
    }
}

impl std::fmt::Display for KvValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvValue::Float(v) => write!(f, "{v:e}"),
            KvValue::Int(v) => write!(f, "{v}"),
            KvValue::Bool(v) => write!(f, "{v}"),
            KvValue::Text(v) => f.write_str(v),
        }
    }
}

/// A solver's diagnostics for one iteration (argmin's `KV`): named values, in the order
/// the solver pushed them. Observers receive it with every iteration event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kv(Vec<(&'static str, KvValue)>);

impl Kv {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key = value` (builder style).
    pub fn with(mut self, key: &'static str, value: impl Into<KvValue>) -> Self {
        self.push(key, value);
        self
    }

    /// Adds `key = value`; a key already present is replaced.
    pub fn push(&mut self, key: &'static str, value: impl Into<KvValue>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&KvValue> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &KvValue)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the entries of `other` with their keys unchanged (a wrapper adding its
    /// inner solver's record to its own).
    pub fn extend(&mut self, other: Kv) {
        for (k, v) in other.0 {
            self.push(k, v);
        }
    }
}

/// A point of the scaled problem with what the executor needs to rank it.
#[derive(Debug, Clone, PartialEq)]
pub struct Iterate {
    /// The point (scaled units).
    pub u: Vec<f64>,
    /// The objective `phi` (scaled, minimized) at `u`.
    pub phi: f64,
    /// Whether `u` meets every rule (then it competes for the best point).
    pub feasible: bool,
}

/// Why a solver ended a run by itself (a limit is the executor's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Proven optimal within the solver's tolerance.
    Optimal,
    /// The solver's convergence criteria are met.
    Converged,
    /// The solver's own iteration (or trial, or restart) budget is spent.
    MaxIterations,
    /// The rules are proven to admit no point.
    Infeasible,
    /// No further progress is possible in floating point away from a stationary point
    /// (a line search that finds no decrease, a factorization that broke down).
    NumericalError,
}

impl Termination {
    /// The status a run ended this way reports.
    pub fn status(self) -> Status {
        match self {
            Termination::Optimal => Status::Optimal,
            Termination::Converged => Status::Converged,
            Termination::MaxIterations => Status::MaxIterations,
            Termination::Infeasible => Status::Infeasible,
            Termination::NumericalError => Status::NumericalError,
        }
    }
}

/// What one step produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// The iterate the step accepted, if it moved (reported to observers, counted as an
    /// iteration, offered as the best point); `None` for a step that only changed the
    /// solver's internal state (a restart, an outer update).
    pub iterate: Option<Iterate>,
    /// Diagnostics for observers.
    pub kv: Kv,
    /// Set when the solver ends the run.
    pub termination: Option<Termination>,
}

impl Step {
    /// A step that accepted `iterate`.
    pub fn moved(iterate: Iterate) -> Self {
        Self {
            iterate: Some(iterate),
            ..Self::default()
        }
    }

    /// A step that did not move.
    pub fn unmoved() -> Self {
        Self::default()
    }

    /// A step that ends the run.
    pub fn done(termination: Termination) -> Self {
        Self {
            termination: Some(termination),
            ..Self::default()
        }
    }

    /// The same step with diagnostics `kv`.
    pub fn with_kv(mut self, kv: Kv) -> Self {
        self.kv = kv;
        self
    }

    /// The same step, ending the run with `termination`.
    pub fn ending(mut self, termination: Termination) -> Self {
        self.termination = Some(termination);
        self
    }
}

/// An optimizer written as initialization plus one step (argmin's `Solver`): no loop, no
/// limits, no counting. Run it with an [`Executor`]. `Send`, so wrappers such as
/// [`MultiStart`](crate::multistart::MultiStart) can step several runs in parallel.
pub trait IterativeSolver: Send {
    /// Prepares a run from `start` (scaled, inside bounds, budget and the linear rules)
    /// and returns the starting iterate.
    fn init(&mut self, ctx: &Context<'_>, start: &[f64]) -> Result<Iterate, Error>;

    /// Takes one step.
    fn step(&mut self, ctx: &Context<'_>) -> Result<Step, Error>;

    /// The point the run ends on, after the loop stopped for `status` (by the solver or
    /// by a limit): the last iterate, or a final repair of it (a projection). The
    /// executor returns it unless a better feasible point was seen.
    fn finish(&mut self, ctx: &Context<'_>, status: Status) -> Result<Iterate, Error>;
}

impl<S: IterativeSolver + ?Sized> IterativeSolver for Box<S> {
    fn init(&mut self, ctx: &Context<'_>, start: &[f64]) -> Result<Iterate, Error> {
        (**self).init(ctx, start)
    }
    fn step(&mut self, ctx: &Context<'_>) -> Result<Step, Error> {
        (**self).step(ctx)
    }
    fn finish(&mut self, ctx: &Context<'_>, status: Status) -> Result<Iterate, Error> {
        (**self).finish(ctx, status)
    }
}

/// How a run ended: the solver's end point, the status, and the best feasible point the
/// context saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Where the solver ended (after [`IterativeSolver::finish`]).
    pub end: Iterate,
    /// What ended the run.
    pub status: Status,
    /// The best feasible iterate reported in this solve (any run), with its `phi`.
    pub best: Option<(f64, Vec<f64>)>,
}

impl Run {
    /// The point to return: the end point when it is feasible and either the solver
    /// converged there (its final repair, a projection, is kept over an iterate that met
    /// the rules only to the iterates' tolerance) or it is no worse than the best feasible
    /// point seen; else that best point; the end point when nothing feasible was seen.
    pub fn point(&self) -> &[f64] {
        let converged = matches!(self.status, Status::Optimal | Status::Converged);
        match &self.best {
            Some((phi, u)) if !self.end.feasible || (!converged && *phi < self.end.phi) => u,
            _ => &self.end.u,
        }
    }

    /// The contract's solution: [`point`](Run::point) with the status.
    pub fn into_solution(self) -> Solution {
        let status = self.status;
        let u = self.point().to_vec();
        Solution::new(u, status)
    }
}

/// Runs an [`IterativeSolver`] under the context's limits.
///
/// Each turn of the loop asks the context whether to stop (cancellation, time,
/// evaluations, early stopping), then takes one step, reports its iterate (observers,
/// best point, patience) and stops when the solver says so. The executor's own
/// iteration limit counts steps that moved.
pub struct Executor<'c, 'a> {
    ctx: &'c Context<'a>,
    max_iterations: Option<u64>,
}

impl<'c, 'a> Executor<'c, 'a> {
    /// An executor over `ctx`.
    pub fn new(ctx: &'c Context<'a>) -> Self {
        Self {
            ctx,
            max_iterations: None,
        }
    }

    /// Stops with `max_iterations` after this many iterations (steps that moved).
    pub fn max_iterations(mut self, limit: u64) -> Self {
        self.max_iterations = Some(limit);
        self
    }

    /// Runs `solver` from `start` until it ends the run or a limit stops it.
    pub fn run<S: IterativeSolver + ?Sized>(
        &self,
        solver: &mut S,
        start: &[f64],
    ) -> Result<Run, Error> {
        let ctx = self.ctx;
        let first = solver.init(ctx, start)?;
        ctx.offer(first.phi, &first.u, first.feasible);
        let mut iterations = 0u64;
        let status = loop {
            if let Some(s) = ctx.should_stop() {
                break s;
            }
            if self.max_iterations.is_some_and(|m| iterations >= m) {
                break Status::MaxIterations;
            }
            let step = solver.step(ctx)?;
            if let Some(it) = &step.iterate {
                iterations += 1;
                if let ControlFlow::Break(s) =
                    ctx.iteration_with(it.phi, &it.u, it.feasible, &step.kv)
                {
                    // The solver's own verdict on this step wins over a limit hit on it.
                    break step.termination.map_or(s, Termination::status);
                }
            }
            if let Some(t) = step.termination {
                break t.status();
            }
        };
        let end = solver.finish(ctx, status)?;
        ctx.offer(end.phi, &end.u, end.feasible);
        Ok(Run {
            end,
            status,
            best: ctx.best(),
        })
    }

    /// [`run`](Executor::run) from the context's start, as a [`Solution`].
    pub fn solve<S: IterativeSolver + ?Sized>(&self, solver: &mut S) -> Result<Solution, Error> {
        Ok(self.run(solver, self.ctx.start())?.into_solution())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cancel::CancelToken;
    use crate::compile::Compiled;
    use crate::context::SolveOptions;
    use crate::problem::{Format, Problem};
    use crate::scaled::Scaled;

    const TWO: &str = r#"
        name = "two channels"
        budget = 100.0
        [[channels]]
        name = "tv"
        response = { kind = "hill", beta = 300.0, k = 50.0, s = 1.0 }
        [[channels]]
        name = "search"
        response = { kind = "log", beta = 80.0, k = 20.0 }
    "#;

    fn compiled() -> Compiled {
        Compiled::new(&Problem::from_text(TWO, Format::Toml).unwrap()).unwrap()
    }

    /// A scripted solver: its `k`-th step moves to `script[k]` (phi, feasible), one
    /// model evaluation each, optionally sleeping; past the script it converges.
    struct Scripted {
        script: Vec<(f64, bool)>,
        at: usize,
        sleep: Duration,
        evaluations_per_step: usize,
        steps: usize,
    }

    impl Scripted {
        fn new(script: Vec<(f64, bool)>) -> Self {
            Self {
                script,
                at: 0,
                sleep: Duration::ZERO,
                evaluations_per_step: 1,
                steps: 0,
            }
        }
        fn point(k: usize) -> Vec<f64> {
            vec![k as f64, -(k as f64)]
        }
    }

    impl IterativeSolver for Scripted {
        fn init(&mut self, _ctx: &Context<'_>, _start: &[f64]) -> Result<Iterate, Error> {
            Ok(Iterate {
                u: vec![0.5, 0.5],
                phi: 0.0,
                feasible: true,
            })
        }
        fn step(&mut self, ctx: &Context<'_>) -> Result<Step, Error> {
            self.steps += 1;
            std::thread::sleep(self.sleep);
            let points = vec![vec![0.5, 0.5]; self.evaluations_per_step];
            let got = ctx.evaluator().objectives_within_budget(&points);
            assert!(got.len() <= self.evaluations_per_step);
            let Some(&(phi, feasible)) = self.script.get(self.at) else {
                return Ok(Step::done(Termination::Converged));
            };
            self.at += 1;
            Ok(Step::moved(Iterate {
                u: Self::point(self.at),
                phi,
                feasible,
            })
            .with_kv(Kv::new().with("at", self.at)))
        }
        fn finish(&mut self, ctx: &Context<'_>, _status: Status) -> Result<Iterate, Error> {
            if self.at == 0 {
                return self.init(ctx, &[]);
            }
            let (phi, feasible) = self.script[self.at - 1];
            Ok(Iterate {
                u: Self::point(self.at),
                phi,
                feasible,
            })
        }
    }

    fn run_with(options: SolveOptions, solver: &mut Scripted) -> (Run, u64, u64) {
        let compiled = compiled();
        let scaled = Scaled::new(&compiled).unwrap();
        let ctx = Context::new(&compiled, &scaled, options);
        let run = Executor::new(&ctx).run(solver, ctx.start()).unwrap();
        (run, ctx.iterations(), ctx.evaluator().counts().evaluations)
    }

    #[test]
    fn the_solver_ends_the_run_on_its_last_point() {
        let mut s = Scripted::new(vec![(-1.0, true), (-2.0, true), (-3.0, true)]);
        let (run, iterations, evaluations) = run_with(SolveOptions::default(), &mut s);
        assert_eq!(run.status, Status::Converged);
        assert_eq!(iterations, 3);
        assert_eq!(evaluations, 4);
        assert_eq!(run.point(), Scripted::point(3));
    }

    #[test]
    fn a_limit_returns_the_best_feasible_point_not_the_last() {
        // Better but infeasible, then feasible but worse: the best feasible is step 2.
        let script = vec![(-1.0, true), (-5.0, true), (-9.0, false), (-2.0, true)];
        let mut s = Scripted::new(script.clone());
        let compiled = compiled();
        let scaled = Scaled::new(&compiled).unwrap();
        let ctx = Context::new(&compiled, &scaled, SolveOptions::default());
        let run = Executor::new(&ctx)
            .max_iterations(4)
            .run(&mut s, ctx.start())
            .unwrap();
        assert_eq!(run.status, Status::MaxIterations);
        assert_eq!(run.point(), Scripted::point(2));
        assert_eq!(run.into_solution().x, Scripted::point(2));
        // Stopped on the infeasible step: its end point is not returned either.
        let ctx = Context::new(&compiled, &scaled, SolveOptions::default());
        let mut s = Scripted::new(script);
        let run = Executor::new(&ctx)
            .max_iterations(3)
            .run(&mut s, ctx.start())
            .unwrap();
        assert_eq!(run.point(), Scripted::point(2));
    }

    #[test]
    fn the_evaluation_budget_cuts_batches_and_stops_the_run() {
        let mut s = Scripted::new(vec![(-1.0, true); 100]);
        s.evaluations_per_step = 4;
        let options = SolveOptions {
            max_evaluations: Some(10),
            ..Default::default()
        };
        let (run, iterations, evaluations) = run_with(options, &mut s);
        assert_eq!(run.status, Status::MaxEvaluations);
        // 4 + 4 + 2: the third batch asked for 4 and got 2.
        assert_eq!(evaluations, 10);
        assert_eq!(iterations, 3);
    }

    #[test]
    fn the_time_limit_stops_within_one_step() {
        let mut s = Scripted::new(vec![(-1.0, true); 1000]);
        s.sleep = Duration::from_millis(5);
        let options = SolveOptions {
            time_limit: Some(Duration::from_millis(30)),
            ..Default::default()
        };
        let (run, iterations, _) = run_with(options, &mut s);
        assert_eq!(run.status, Status::TimeLimit);
        // Sleeps last at least as long as asked, so 7 steps take at least 35 ms: a run
        // that stops at the first step boundary past 30 ms takes at most 7. How many it
        // takes at least depends on the machine's load (the clock starts before setup),
        // so only one is certain.
        assert!((1..=7).contains(&iterations), "{iterations}");
    }

    #[test]
    fn a_cancelled_token_stops_before_the_first_step() {
        let token = CancelToken::new();
        token.cancel();
        let mut s = Scripted::new(vec![(-1.0, true); 10]);
        let options = SolveOptions {
            cancel: Some(token),
            ..Default::default()
        };
        let compiled = compiled();
        let scaled = Scaled::new(&compiled).unwrap();
        let ctx = Context::new(&compiled, &scaled, options);
        let run = Executor::new(&ctx).run(&mut s, ctx.start()).unwrap();
        assert_eq!(run.status, Status::Cancelled);
        assert_eq!(s.steps, 0);
        assert_eq!(ctx.iterations(), 0);
        // The start is the best (and only) point.
        assert_eq!(run.point(), [0.5, 0.5]);
    }

    #[test]
    fn patience_counts_iterations_without_improvement_beyond_min_delta() {
        // Improvements of 1e-3 relative, below a min_delta of 1e-2, do not count.
        let script: Vec<(f64, bool)> = (0..50).map(|k| (-1.0 - 1e-3 * k as f64, true)).collect();
        let mut s = Scripted::new(script);
        let options = SolveOptions {
            patience: Some(4),
            min_delta: 1e-2,
            ..Default::default()
        };
        let (run, iterations, _) = run_with(options, &mut s);
        assert_eq!(run.status, Status::StoppedEarly);
        // The start (phi 0) is offered, not counted: the first step improves by 1 and
        // resets the count, the next four do not count.
        assert_eq!(iterations, 5);
        // The best point is the last (they all improve, if only a little).
        assert_eq!(run.point(), Scripted::point(5));
    }

    #[test]
    fn context_limits_tighten_and_grant() {
        let compiled = compiled();
        let scaled = Scaled::new(&compiled).unwrap();
        let options = SolveOptions {
            max_evaluations: Some(7),
            ..Default::default()
        };
        let ctx = Context::new(&compiled, &scaled, options);
        assert_eq!(ctx.evaluation_limit(), 7);
        ctx.limit_evaluations(100);
        assert_eq!(
            ctx.evaluation_limit(),
            7,
            "a looser backend limit does not loosen"
        );
        ctx.limit_evaluations(5);
        assert_eq!(ctx.evaluation_limit(), 5);
        let ev = ctx.evaluator();
        assert_eq!(ev.grant(3), 3);
        let points = vec![vec![0.5, 0.5]; 3];
        assert_eq!(ev.objectives_within_budget(&points).len(), 3);
        assert_eq!(ctx.should_stop(), None);
        assert_eq!(ev.objectives_within_budget(&points).len(), 2);
        assert_eq!(ev.grant(3), 0);
        assert_eq!(ctx.should_stop(), Some(Status::MaxEvaluations));
        // Once stopped, the context stays stopped.
        assert_eq!(ctx.should_stop(), Some(Status::MaxEvaluations));
        // offer: only feasible, finite, better points become the best.
        ctx.offer(-1.0, &[0.2, 0.8], true);
        ctx.offer(-2.0, &[0.3, 0.7], false);
        ctx.offer(f64::NAN, &[0.4, 0.6], true);
        ctx.offer(-0.5, &[0.6, 0.4], true);
        assert_eq!(ctx.best(), Some((-1.0, vec![0.2, 0.8])));
        assert_eq!(ctx.iterations(), 0);
    }

    #[test]
    fn kv_replaces_keys_and_keeps_order() {
        let mut kv = Kv::new().with("a", 1.0).with("b", 2u64);
        kv.push("a", true);
        kv.extend(Kv::new().with("c", "word"));
        let keys: Vec<&str> = kv.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(kv.get("a"), Some(&KvValue::Bool(true)));
        assert_eq!(kv.get("b").map(ToString::to_string).as_deref(), Some("2"));
    }
}
