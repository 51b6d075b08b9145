//! The `milp` solver: piecewise-linear mixed-integer model, solved by HiGHS or microlp,
//! then polished on the true curves with the integer decisions fixed.

use std::ops::ControlFlow;

use atlas_core::{Context, Error, Solution, Solver, Status};

use crate::backend::{self, Outcome, RunSettings};
use crate::config::{MilpConfig, MipSolver};
use crate::model::{BuildError, Formulation, MAX_SEGMENTS};
use crate::polish;

/// Safety margin subtracted from the proven bound on `phi` (relative), for the
/// mixed-integer solvers' feasibility tolerances (1e-6 to 1e-7 on scaled values).
const BOUND_MARGIN: f64 = 1e-6;

/// The `milp` optimizer, built from a checked [`MilpConfig`].
#[derive(Debug, Clone)]
pub struct Milp {
    config: MilpConfig,
}

impl Milp {
    pub(crate) fn new(config: MilpConfig) -> Self {
        Self { config }
    }
}

impl Solver for Milp {
    fn name(&self) -> &str {
        "milp"
    }

    fn solve(&self, ctx: &Context<'_>) -> Result<Solution, Error> {
        let solver = self.config.solver.resolve();
        let first = self.attempt(ctx, solver, true)?;
        if !first.inconsistent {
            return Ok(first.solution);
        }
        // The polish found an allocation better than the solver's bound allows: that
        // bound is wrong. HiGHS's presolve has been seen to mistreat tiny segments, so
        // HiGHS solves the model once more without it. Otherwise (or if the bound is
        // contradicted again) no bound is reported.
        if solver == MipSolver::Highs && ctx.should_stop().is_none() {
            let second = self.attempt(ctx, solver, false)?;
            if !second.inconsistent {
                // The bound holds for the problem, whichever allocation is kept.
                let mut solution = second.solution;
                if first.phi < second.phi {
                    solution.x = first.solution.x;
                }
                return Ok(solution);
            }
        }
        let mut solution = first.solution;
        solution.bound = None;
        if solution.status == Status::Optimal {
            solution.status = Status::Converged;
        }
        Ok(solution)
    }
}

/// One model, solve and polish.
struct Attempt {
    solution: Solution,
    /// The allocation's objective `phi` (scaled, minimized, fixed costs included).
    phi: f64,
    /// The polished point beats the solver's bound: the bound is invalid.
    inconsistent: bool,
}

impl Milp {
    fn attempt(
        &self,
        ctx: &Context<'_>,
        solver: MipSolver,
        presolve: bool,
    ) -> Result<Attempt, Error> {
        let fail = |reason: String| Error::Solver {
            optimizer: "milp".to_string(),
            reason,
        };
        let problem = ctx.problem();
        let names = ctx.compiled().layout().channels();
        let done = |solution: Solution| Attempt {
            solution,
            phi: f64::INFINITY,
            inconsistent: false,
        };
        let model = match Formulation::build(ctx, self.config.max_error) {
            Ok(m) => m,
            // No whole number of units fits a variable's bounds: no allocation does.
            Err(BuildError::NoUnitFits { .. }) => {
                return Ok(done(Solution::new(problem.start().to_vec(), Status::Infeasible)))
            }
            Err(BuildError::TooManySegments { channel, segments }) => {
                return Err(fail(format!(
                    "channel `{}` needs more than {MAX_SEGMENTS} segments ({segments} so far) at max_error = {}; raise max_error",
                    names[channel], self.config.max_error
                )))
            }
            Err(BuildError::NoStructure) => {
                return Err(fail("needs the built-in model's curves (a custom model has none)".to_string()))
            }
        };
        let Formulation {
            lp,
            decoder,
            constant,
            error,
            ..
        } = model;
        let time_limit = match (self.config.time_limit, ctx.time_left()) {
            (Some(a), Some(b)) => Some(a.min(b.as_secs_f64())),
            (a, b) => a.or(b.map(|d| d.as_secs_f64())),
        };
        // Stopped before the solver found an incumbent: the starting allocation when it
        // meets every rule (a status, with a feasible point), else an error (no allocation
        // meeting the rules is known).
        let without_incumbent = |status: Status, why: String| -> Result<Attempt, Error> {
            let start = ctx.start();
            if ctx.compiled().is_feasible(&problem.unscale(start)) {
                Ok(done(Solution::new(start.to_vec(), status)))
            } else {
                Err(fail(format!(
                    "{why}, and the starting allocation does not meet the integer rules; raise time_limit"
                )))
            }
        };
        if let Some(status) = ctx.should_stop() {
            return without_incumbent(
                status,
                format!("stopped ({status}) before the mixed-integer solve"),
            );
        }
        let settings = RunSettings {
            mip_gap: self.config.mip_gap,
            // Solvers need a positive limit; a spent one stops them at once.
            time_limit: time_limit.map(|t| t.max(1e-3)),
            threads: self.config.threads,
            presolve,
        };
        let (values, bound_lin, limit_reached) = match backend::run(solver, lp, settings)
            .map_err(fail)?
        {
            Outcome::Solved {
                values,
                bound,
                limit_reached,
                ..
            } => (values, bound, limit_reached),
            Outcome::Infeasible => {
                return Ok(done(Solution::new(
                    problem.start().to_vec(),
                    Status::Infeasible,
                )))
            }
            Outcome::NoIncumbent => {
                let status = ctx.should_stop().unwrap_or(Status::TimeLimit);
                return without_incumbent(status, format!(
                    "the time limit ({:.3} s) ran out before the mixed-integer solver found a feasible allocation",
                    settings.time_limit.unwrap_or(0.0)
                ));
            }
        };

        // Fix the integer decisions and polish the rest on the true curves.
        let decision = decoder.decode(&values);
        let set = polish::fixed_set(ctx, &decision);
        // The solver's point satisfies the rules to its tolerances; projecting it onto the
        // set with the decisions fixed removes that rounding (and keeps it if the
        // projection fails, which leaves it within those tolerances).
        let mut start = vec![0.0; decision.u.len()];
        let start = match ctx
            .evaluator()
            .constraint_work(|| set.project_cold(&decision.u, &mut start))
        {
            Ok(_) => start,
            Err(_) => decision.u.clone(),
        };
        let phi_start = polish::phi_with_fixed_costs(ctx, &start, None);
        let mut stopped = match ctx.iteration(phi_start, &start, true) {
            ControlFlow::Break(s) => Some(s),
            ControlFlow::Continue(()) => None,
        };
        let (u, phi) = if stopped.is_none() {
            let polished = polish::polish(ctx, &set, &start);
            stopped = polished.stopped;
            if polished.phi <= phi_start {
                (polished.u, polished.phi)
            } else {
                (start, phi_start)
            }
        } else {
            (start, phi_start)
        };

        // The bound: the solver's bound on the piecewise-linear minimum, less the largest
        // total error of the interpolants, less a margin for solver tolerances.
        let lower = constant + bound_lin - error;
        let lower = lower - BOUND_MARGIN * (1.0 + lower.abs());
        let bound = lower.is_finite().then(|| problem.objective_from_phi(lower));
        let inconsistent = phi < lower - 1e-12 * (1.0 + lower.abs());
        // Proven within the stated tolerance: the solver's gap plus twice the curve error
        // (the error can cost once in the solver's choice and once in the bound), plus
        // the margin; all in `phi` units.
        let tolerance = self.config.mip_gap * phi.abs() * (1.0 + 1e-9)
            + 2.0 * error
            + 2.0 * BOUND_MARGIN * (1.0 + lower.abs());
        // `optimal` also needs the gap the result shows, `|bound - objective| / max(1,
        // |objective|)` in objective units, within the stated tolerance (`mip_gap` plus
        // `max_error`): the tolerance above, in scaled units, can be loose where the
        // objective is small against the curves' scale (fixed costs that eat the
        // response) or the budget is extreme.
        let stated = self.config.mip_gap + self.config.max_error;
        let shown_gap_ok = bound.is_some_and(|b| {
            let objective = problem.objective_from_phi(phi);
            (b - objective).abs() <= stated * objective.abs().max(1.0)
        });
        let status = match stopped {
            Some(s) => s,
            None if limit_reached => Status::TimeLimit,
            None if phi - lower <= tolerance && shown_gap_ok => Status::Optimal,
            None => Status::Converged,
        };
        Ok(Attempt {
            solution: Solution::new(u, status).with_bound(bound),
            phi,
            inconsistent,
        })
    }
}
