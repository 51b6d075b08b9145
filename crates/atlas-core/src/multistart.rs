//! Multi-start for local methods: starting points spread over the feasible set, runs from
//! each (in parallel), and the choice of the best: [`MultiStart`], a wrapper around any
//! [`IterativeSolver`].

use rand::Rng;
use rayon::prelude::*;

use crate::context::Context;
use crate::error::Error;
use crate::executor::{Iterate, IterativeSolver, Kv, Step, Termination};
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
    starts_from(ctx, ctx.problem().start(), count, seed)
}

/// [`starts`] with `first` (a warm start, say) in place of the even split.
pub fn starts_from(
    ctx: &Context<'_>,
    first: &[f64],
    count: usize,
    seed: Option<u64>,
) -> Vec<Vec<f64>> {
    let problem = ctx.problem();
    let budget = problem.feasible_set().budget();
    let n = problem.dim();
    let mut starts = vec![first.to_vec()];
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

/// Several runs of an inner [`IterativeSolver`] from spread starting points, as one
/// [`IterativeSolver`]: each step steps every run still going (in parallel when there are
/// several) and reports the best iterate of the round; the run ends when every run has
/// ended, on the best run's end point (a feasible end first, then the lowest objective;
/// ties keep the earlier start, so the result does not depend on threads) and its
/// termination. Written once, for any inner solver: `make(k)` builds the solver of run
/// `k`.
pub struct MultiStart<S, F> {
    count: usize,
    seed: Option<u64>,
    runs: Vec<Lane<S>>,
    chosen: Option<(Iterate, Option<Termination>)>,
    make: F,
}

struct Lane<S> {
    solver: S,
    ended: Option<Termination>,
    /// Set when the run was finished: its end point and that point's largest violation.
    end: Option<(Iterate, f64)>,
    /// Its last iterate, for the tie-break of a run stopped by a limit.
    last: Iterate,
}

impl<S: IterativeSolver, F: Fn(usize) -> S + Send> MultiStart<S, F> {
    /// `count` runs (at least one), the starts drawn with `seed` (else the solve's).
    pub fn new(count: usize, seed: Option<u64>, make: F) -> Self {
        Self {
            count: count.max(1),
            seed,
            runs: Vec::new(),
            chosen: None,
            make,
        }
    }

    /// Finishes every run (in parallel) and assesses its end point on the scaled problem.
    fn finish_all(&mut self, ctx: &Context<'_>, status: Status) -> Result<(), Error> {
        let finish = |lane: &mut Lane<S>| -> Result<(), Error> {
            if lane.end.is_none() {
                let end = lane.solver.finish(ctx, status)?;
                lane.end = Some(assess(ctx, end.u));
            }
            Ok(())
        };
        if self.runs.len() == 1 {
            self.runs.iter_mut().try_for_each(finish)?;
        } else {
            self.runs.par_iter_mut().try_for_each(finish)?;
        }
        let mut best: Option<(&Iterate, Option<Termination>, f64)> = None;
        for lane in &self.runs {
            let (end, violation) = lane.end.as_ref().expect("finished above");
            let better = match &best {
                None => true,
                Some((b, _, bv)) => better_than((end, *violation), (b, *bv)),
            };
            if better {
                best = Some((end, lane.ended, *violation));
            }
        }
        self.chosen = best.map(|(it, t, _)| (it.clone(), t));
        Ok(())
    }
}

/// The end point `u`, assessed on the scaled problem (objective and feasibility to
/// [`FEASIBLE`]), with its largest violation.
fn assess(ctx: &Context<'_>, u: Vec<f64>) -> (Iterate, f64) {
    let ev = ctx.evaluator();
    let problem = ctx.problem();
    let model = ev.model_value(&u);
    let spend: f64 = u.iter().sum();
    let violation = ev
        .constraint_work(|| problem.feasible_set().max_violation(&u))
        .max(problem.nonlinear_violation(model, spend));
    let it = Iterate {
        phi: problem.objective().value(model, spend),
        feasible: violation <= FEASIBLE,
        u,
    };
    (it, violation)
}

fn better_than(a: (&Iterate, f64), b: (&Iterate, f64)) -> bool {
    match (a.0.feasible, b.0.feasible) {
        (true, false) => true,
        (false, true) => false,
        (true, true) => a.0.phi < b.0.phi,
        (false, false) => a.1 < b.1,
    }
}

impl<S: IterativeSolver, F: Fn(usize) -> S + Send> IterativeSolver for MultiStart<S, F> {
    fn init(&mut self, ctx: &Context<'_>, start: &[f64]) -> Result<Iterate, Error> {
        let points = starts_from(ctx, start, self.count, self.seed);
        self.chosen = None;
        let make = &self.make;
        let init = |(k, p): (usize, &Vec<f64>)| -> Result<Lane<S>, Error> {
            let mut solver = make(k);
            let last = solver.init(ctx, p)?;
            Ok(Lane {
                solver,
                ended: None,
                end: None,
                last,
            })
        };
        self.runs = points
            .iter()
            .enumerate()
            .map(init)
            .collect::<Result<_, _>>()?;
        for lane in &self.runs[1..] {
            ctx.offer(lane.last.phi, &lane.last.u, lane.last.feasible);
        }
        Ok(self.runs[0].last.clone())
    }

    fn step(&mut self, ctx: &Context<'_>) -> Result<Step, Error> {
        let step_one = |lane: &mut Lane<S>| -> Result<Option<Step>, Error> {
            if lane.ended.is_some() {
                return Ok(None);
            }
            let step = lane.solver.step(ctx)?;
            if let Some(it) = &step.iterate {
                lane.last = it.clone();
            }
            lane.ended = step.termination;
            Ok(Some(step))
        };
        let steps: Vec<Option<Step>> = if self.runs.len() == 1 {
            self.runs
                .iter_mut()
                .map(step_one)
                .collect::<Result<_, _>>()?
        } else {
            self.runs
                .par_iter_mut()
                .map(step_one)
                .collect::<Result<_, _>>()?
        };
        // The round's best iterate is reported; every other feasible one is offered as
        // the best point.
        let mut best: Option<(usize, Iterate, Kv)> = None;
        for (k, step) in steps.into_iter().enumerate() {
            let Some(step) = step else { continue };
            let Some(it) = step.iterate else { continue };
            let better = best.as_ref().is_none_or(|(_, b, _)| {
                (it.feasible && !b.feasible) || (it.feasible == b.feasible && it.phi < b.phi)
            });
            if better {
                if let Some((_, b, _)) = &best {
                    ctx.offer(b.phi, &b.u, b.feasible);
                }
                best = Some((k, it, step.kv));
            } else {
                ctx.offer(it.phi, &it.u, it.feasible);
            }
        }
        let mut step = match best {
            Some((k, it, mut kv)) => {
                if self.runs.len() > 1 {
                    kv.push("run", k);
                }
                Step::moved(it).with_kv(kv)
            }
            None => Step::unmoved(),
        };
        if self.runs.iter().all(|l| l.ended.is_some()) {
            // Every run ended by itself: the status of the one whose end is returned.
            self.finish_all(ctx, Status::Converged)?;
            let termination = self
                .chosen
                .as_ref()
                .and_then(|(_, t)| *t)
                .unwrap_or(Termination::Converged);
            step.termination = Some(termination);
        }
        Ok(step)
    }

    fn finish(&mut self, ctx: &Context<'_>, status: Status) -> Result<Iterate, Error> {
        if self.chosen.is_none() {
            self.finish_all(ctx, status)?;
        }
        match &self.chosen {
            Some((it, _)) => Ok(it.clone()),
            None => Err(Error::Solver {
                optimizer: "multi-start".to_string(),
                reason: "no starting point".to_string(),
            }),
        }
    }
}
