//! Multi-start for local methods: starting points spread over the feasible set, runs from
//! each (in parallel), and the choice of the best, shared by the gradient backends.

use rand::Rng;
use rayon::prelude::*;

use crate::context::Context;
use crate::feasible::ProjectionWorkspace;
use crate::solver::Status;

/// Violations below this (scaled units, well inside the contract's `1e-6`) count as
/// feasible when runs are compared.
const FEASIBLE: f64 = 1e-8;

/// `count` starting points: the even split (projected), then random allocations,
/// alternately spread (Dirichlet(1) weights) and concentrated (cubed exponential weights,
/// which put most of the budget on a few channels: what S-curves need), each projected
/// onto the feasible set. Stream `k` of the seed draws start `k`, so the starts do not
/// depend on how many are asked for.
pub fn starts(ctx: &Context<'_>, count: usize, seed: Option<u64>) -> Vec<Vec<f64>> {
    let problem = ctx.problem();
    let budget = problem.feasible_set().budget();
    let n = problem.dim();
    let mut starts = vec![problem.start().to_vec()];
    let mut ws = ProjectionWorkspace::default();
    for k in 1..count {
        let mut rng = ctx.rng(seed, k as u64);
        let power = if k % 2 == 1 { 1 } else { 3 };
        let w: Vec<f64> = (0..n)
            .map(|_| (-(1.0 - rng.random::<f64>()).ln()).powi(power))
            .collect();
        let total: f64 = w.iter().sum();
        let z: Vec<f64> = w.iter().map(|v| v / total * budget).collect();
        let mut u = vec![0.0; n];
        if ctx.evaluator().project(&z, &mut u, &mut ws).is_ok() {
            starts.push(u);
        }
    }
    starts
}

/// The outcome of one local run, assessed on the scaled problem.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRun {
    /// Final point (scaled units).
    pub u: Vec<f64>,
    /// How the run ended.
    pub status: Status,
    /// Objective `phi` at `u`.
    pub phi: f64,
    /// Largest violation of any linear or nonlinear row at `u` (scaled units).
    pub violation: f64,
}

impl LocalRun {
    /// Whether the run ended on a point that meets the rules.
    pub fn feasible(&self) -> bool {
        self.violation <= FEASIBLE
    }

    fn better_than(&self, other: &LocalRun) -> bool {
        match (self.feasible(), other.feasible()) {
            (true, false) => true,
            (false, true) => false,
            (true, true) => self.phi < other.phi,
            (false, false) => self.violation < other.violation,
        }
    }
}

/// Runs `run` from every start (in parallel when there are several) and keeps the best:
/// a feasible end first, then the lowest objective; ties keep the earlier start, so the
/// result does not depend on threads. `None` only for an empty list of starts.
pub fn best_of<F>(ctx: &Context<'_>, starts: &[Vec<f64>], run: F) -> Option<LocalRun>
where
    F: Fn(&[f64]) -> (Vec<f64>, Status) + Sync,
{
    let assess = |start: &Vec<f64>| {
        let (u, status) = run(start);
        let ev = ctx.evaluator();
        let problem = ctx.problem();
        let model = ev.model_value(&u);
        let spend: f64 = u.iter().sum();
        let violation = ev
            .constraint_work(|| problem.feasible_set().max_violation(&u))
            .max(problem.nonlinear_violation(model, spend));
        LocalRun {
            phi: problem.objective().value(model, spend),
            u,
            status,
            violation,
        }
    };
    let runs: Vec<LocalRun> = if starts.len() == 1 {
        vec![assess(&starts[0])]
    } else {
        starts.par_iter().map(assess).collect()
    };
    runs.into_iter()
        .reduce(|best, next| if next.better_than(&best) { next } else { best })
}
