//! The `convex` solver: water-filling for separable problems, else rounds of conic
//! relaxation (Clarabel) + Newton polish, each closed by a certificate on the true curves.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use atlas_core::{Context, Error, ProjectionWorkspace, Solution, Solver, Status};
use clarabel::solver::{DefaultSettings, SolverStatus};

use crate::certificate::{best_lower_bound, lower_bound, lower_bound_with, Multipliers, Tangents};
use crate::config::ConvexConfig;
use crate::conic::{self, Cuts};
use crate::polish::{affordable, polish, WorkingSet};
use crate::prob::Prob;
use crate::separable;

/// The `convex` optimizer, built from a checked [`ConvexConfig`].
#[derive(Debug, Clone)]
pub struct Convex {
    config: ConvexConfig,
    settings: DefaultSettings<f64>,
}

impl Convex {
    pub(crate) fn new(config: ConvexConfig, settings: DefaultSettings<f64>) -> Self {
        Self { config, settings }
    }
}

/// What one Clarabel status means for the round that produced it.
enum Outcome {
    /// A solution to polish and certify; `limit` is the status to report if it cannot be
    /// proven optimal (a Clarabel limit), `None` when Clarabel converged.
    Usable { limit: Option<Status> },
    /// The relaxation (hence the problem) has no feasible point.
    Infeasible,
    /// The interior point failed; the reason for the error if nothing else is proven.
    Failed(String),
}

/// Maps every Clarabel status explicitly (no wildcard): never "optimal" by itself, since
/// optimality is proven by the certificate alone.
fn outcome(status: SolverStatus) -> Outcome {
    match status {
        SolverStatus::Solved => Outcome::Usable { limit: None },
        // Reduced accuracy: still a good start for the polish; the certificate decides.
        SolverStatus::AlmostSolved => Outcome::Usable { limit: None },
        SolverStatus::MaxIterations => Outcome::Usable {
            limit: Some(Status::MaxIterations),
        },
        SolverStatus::MaxTime => Outcome::Usable {
            limit: Some(Status::TimeLimit),
        },
        SolverStatus::CallbackTerminated => Outcome::Usable {
            limit: Some(Status::StoppedEarly),
        },
        // The conic problem is a relaxation (logistic cuts lie above the curve), so its
        // infeasibility proves the problem's.
        SolverStatus::PrimalInfeasible | SolverStatus::AlmostPrimalInfeasible => Outcome::Infeasible,
        // A bounded budget rules out unboundedness: this is numerical trouble.
        SolverStatus::DualInfeasible | SolverStatus::AlmostDualInfeasible => {
            Outcome::Failed("Clarabel reported the problem unbounded, which a finite budget rules out (numerical trouble)".to_string())
        }
        SolverStatus::NumericalError => Outcome::Failed("Clarabel stopped on a numerical error".to_string()),
        SolverStatus::InsufficientProgress => Outcome::Failed("Clarabel stopped for lack of progress".to_string()),
        SolverStatus::Unsolved => Outcome::Failed("Clarabel did not run".to_string()),
    }
}

/// A feasible candidate with its proven bound (both scaled: `phi` and a lower bound on
/// the optimum of `phi`) and its true objective.
struct Candidate {
    u: Vec<f64>,
    phi: f64,
    objective: f64,
}

struct Run<'c, 'a> {
    ctx: &'c Context<'a>,
    p: Prob<'a>,
    gap_tolerance: f64,
    /// Best lower bound on `min phi` proven so far.
    bound_phi: f64,
    best: Option<Candidate>,
}

impl Run<'_, '_> {
    /// The true objective of `u` exactly as the core will report it (unscaled, clamped to
    /// the bounds, evaluated on the problem's own model).
    fn true_objective(&self, u: &[f64]) -> f64 {
        let compiled = self.ctx.compiled();
        let set = compiled.feasible_set();
        let x: Vec<f64> = self
            .ctx
            .problem()
            .unscale(u)
            .iter()
            .zip(set.lower().iter().zip(set.upper()))
            .map(|(v, (l, h))| v.max(*l).min(*h))
            .collect();
        compiled.objective_value(&x)
    }

    fn bound(&self) -> Option<f64> {
        self.bound_phi
            .is_finite()
            .then(|| self.ctx.problem().objective_from_phi(self.bound_phi))
    }

    /// Relative gap of the best candidate against the best bound (infinite without both).
    fn gap(&self) -> f64 {
        match (&self.best, self.bound()) {
            (Some(c), Some(b)) => {
                let diff = if self.ctx.problem().maximize() {
                    b - c.objective
                } else {
                    c.objective - b
                };
                diff.max(0.0) / c.objective.abs().max(1e-300)
            }
            _ => f64::INFINITY,
        }
    }

    fn proven(&self) -> bool {
        self.gap() <= self.gap_tolerance
    }

    /// Makes `u` feasible for the linear rows (exact projection, when rounding left a
    /// trace), then records it if it satisfies every rule and beats the best; tightens the
    /// bound with `multipliers` taken at `u`. Reports the iteration.
    fn offer(
        &mut self,
        mut u: Vec<f64>,
        multipliers: &[(&[f64], &Multipliers)],
    ) -> ControlFlow<Status> {
        for (at, m) in multipliers {
            let lb = lower_bound(&self.p, at, m).max(lower_bound_with(
                &self.p,
                at,
                m,
                Tangents::Multipliers,
            ));
            if lb > self.bound_phi {
                self.bound_phi = lb;
            }
        }
        if u.iter().any(|v| !v.is_finite()) {
            return ControlFlow::Continue(());
        }
        let tol = 1e-12 * (1.0 + self.p.budget);
        if self.p.linear_violation(&u) > tol {
            let mut out = vec![0.0; u.len()];
            if self
                .ctx
                .evaluator()
                .project(&u, &mut out, &mut ProjectionWorkspace::default())
                .is_ok()
            {
                u = out;
            }
        }
        let ev = self.ctx.evaluator();
        let r = ev.model_value(&u);
        let spend: f64 = u.iter().sum();
        let phi = self.p.objective.value(r, spend);
        let rows = self.ctx.problem().nonlinear_violation(r, spend);
        let feasible = self.p.linear_violation(&u) <= 1e-9 * (1.0 + self.p.budget)
            && rows
                <= 1e-12
                    * (1.0
                        + self
                            .p
                            .nonlinear
                            .iter()
                            .map(|r| r.rhs.abs())
                            .fold(0.0, f64::max));
        let flow = self.ctx.iteration(phi, &u, feasible);
        if feasible && self.best.as_ref().is_none_or(|b| phi < b.phi) {
            let objective = self.true_objective(&u);
            self.best = Some(Candidate { u, phi, objective });
        }
        flow
    }

    /// When a small gap is left, re-optimizes the multipliers `m` taken at `at` (a few
    /// hundred cheap bound evaluations per multiplier): they carry the polish's tolerance,
    /// which alone can leave a gap above `gap_tolerance` at the optimum.
    fn refine(&mut self, at: &[f64], m: &Multipliers, stop: &dyn Fn() -> bool) {
        if self.proven() || self.gap() > 1e-4 {
            return;
        }
        let lb = best_lower_bound(&self.p, at, m, stop);
        if lb > self.bound_phi {
            self.bound_phi = lb;
        }
    }
}

impl Solver for Convex {
    fn name(&self) -> &str {
        "convex"
    }

    fn solve(&self, ctx: &Context<'_>) -> Result<Solution, Error> {
        let scaled = ctx.problem();
        let refuse = |what: &str| Error::Unsupported {
            optimizer: "convex".to_string(),
            features: vec![what.to_string()],
            alternatives: Vec::new(),
        };
        // The core refuses these before solving (capabilities); kept as a guard for
        // callers that build the solver by hand.
        let p = Prob::new(scaled).ok_or_else(|| refuse("a custom model (no curve structure)"))?;
        let nonconcave: Vec<String> = p
            .mmm
            .nonconcave_channels()
            .iter()
            .map(|&c| p.mmm.layout().channels()[c].clone())
            .collect();
        if !nonconcave.is_empty() {
            return Err(refuse(&format!(
                "non-concave S-curves (`hill` with s > 1 on channels {})",
                nonconcave.join(", ")
            )));
        }
        let started = Instant::now();
        let deadline = self
            .config
            .time_limit
            .map(|s| started + Duration::from_secs_f64(s));
        let mut run = Run {
            ctx,
            p,
            gap_tolerance: self.config.gap_tolerance,
            bound_phi: f64::NEG_INFINITY,
            best: None,
        };

        if separable::applies(&run.p) {
            let (u, nu, _) = separable::solve(&run.p);
            let mut m = Multipliers::zero(&run.p);
            m.nu = nu;
            let flow = run.offer(u.clone(), &[(&u, &m)]);
            return Ok(self.finish(run, flow.break_value(), ctx));
        }

        // Tangent cut points of logistic terms (empty for other curves).
        let t = run.p.periods;
        let mut cuts: Cuts = (0..run.p.n)
            .map(|i| conic::initial_cuts(run.p.curve(i / t), self.config.logistic_cuts))
            .collect();
        let has_logistic = cuts.iter().any(|c| !c.is_empty());
        let stop = || ctx.should_stop().is_some() || deadline.is_some_and(|d| Instant::now() >= d);
        let mut limit: Option<Status> = None;
        let mut stopped: Option<Status> = None;
        let mut failure: Option<String> = None;
        let mut rounds = 0;
        while rounds < self.config.max_iterations {
            rounds += 1;
            if let Some(s) = ctx.should_stop() {
                stopped = Some(s);
                break;
            }
            let mut settings = self.settings.clone();

            let left = [
                ctx.time_left(),
                deadline.map(|d| d.saturating_duration_since(Instant::now())),
            ]
            .into_iter()
            .flatten()
            .min();
            if let Some(left) = left {
                if left.is_zero() {
                    stopped = Some(Status::TimeLimit);
                    break;
                }
                settings.time_limit = settings.time_limit.min(left.as_secs_f64());
            }
            // The conic solve and the polish are the solver's own work (reported as neither
            // model nor constraint time). Clarabel asserts on inputs it cannot handle; such
            // a panic becomes an error here rather than reaching the user.
            let conic_solve = |settings: DefaultSettings<f64>| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    conic::solve(&run.p, &cuts, settings)
                }))
                .unwrap_or_else(|_| Err("Clarabel panicked on this problem".to_string()))
                .map_err(|reason| Error::Solver {
                    optimizer: "convex".to_string(),
                    reason,
                })
            };
            let mut sol = conic_solve(settings.clone())?;
            // Iterative refinement is off by default (the polish supplies the accuracy, and
            // it costs a third of the interior point's time); a failure, or an infeasibility
            // found at reduced accuracy, is checked again with it on.
            let doubtful = matches!(
                sol.status,
                SolverStatus::AlmostPrimalInfeasible
                    | SolverStatus::NumericalError
                    | SolverStatus::InsufficientProgress
                    | SolverStatus::DualInfeasible
                    | SolverStatus::AlmostDualInfeasible
            );
            if doubtful && !settings.iterative_refinement_enable {
                settings.iterative_refinement_enable = true;
                sol = conic_solve(settings)?;
            }
            match outcome(sol.status) {
                Outcome::Infeasible => {
                    return Ok(Solution::new(scaled.start().to_vec(), Status::Infeasible));
                }
                Outcome::Failed(reason) => {
                    failure = Some(reason);
                }
                Outcome::Usable { limit: l } => {
                    limit = l;
                    failure = None;
                }
            }
            // Polish from the interior point's answer and active set.
            let mut offers: Vec<(Vec<f64>, Multipliers)> =
                vec![(sol.u.clone(), sol.multipliers.clone())];
            if self.config.polish
                && sol.u.iter().all(|v| v.is_finite())
                && affordable(&run.p, &sol.at_bound)
            {
                let ws = WorkingSet {
                    var: sol.at_bound.clone(),
                    row: sol.row_active.clone(),
                    budget: sol.budget_active,
                    nonlinear: sol.nonlinear_active.clone(),
                };
                let max_steps = 200 + 4 * run.p.n;
                let pol = polish(&run.p, &sol.u, ws, &sol.multipliers.rho, max_steps, &stop);
                offers.push((pol.u, pol.multipliers));
            }
            let mut flow = ControlFlow::Continue(());
            for (u, m) in &offers {
                if let ControlFlow::Break(s) = run.offer(u.clone(), &[(u, m)]) {
                    flow = ControlFlow::Break(s);
                }
            }
            if let Some((u, m)) = offers.last() {
                run.refine(u, m, &stop);
            }
            if run.proven() {
                break;
            }
            if let ControlFlow::Break(s) = flow {
                stopped = Some(s);
                break;
            }
            if limit.is_some() || failure.is_some() || !has_logistic {
                // Nothing left to refine: the relaxation is exact without logistic curves,
                // and a Clarabel limit or failure would only repeat.
                break;
            }
            // Refine the logistic cuts where this round's candidates lie.
            let points: Vec<Vec<f64>> = offers.iter().map(|(u, _)| run.p.adstock(u)).collect();
            for (i, c) in cuts.iter_mut().enumerate() {
                if c.is_empty() {
                    continue;
                }
                for a in &points {
                    let z = a[i].max(0.0);
                    if z.is_finite() && !c.iter().any(|x| (x - z).abs() <= 1e-12 * (1.0 + z)) {
                        c.push(z);
                    }
                }
            }
        }
        if failure.is_some() && !run.proven() {
            // The interior point failed and no certificate proved the polished point: a
            // numerical failure, with the best candidate found (or the start).
            return Ok(self.finish(run, Some(Status::NumericalError), ctx));
        }
        let exhausted = (rounds >= self.config.max_iterations).then_some(Status::MaxIterations);
        Ok(self.finish(run, stopped.or(limit).or(exhausted), ctx))
    }
}

impl Convex {
    /// The solution: the best candidate (or the start when none was feasible), `optimal`
    /// only when the certificate proves the gap, else the limit that stopped the search,
    /// else `converged`.
    fn finish(&self, run: Run<'_, '_>, stopped: Option<Status>, ctx: &Context<'_>) -> Solution {
        let proven = run.proven();
        let bound = run.bound();
        let status = if proven {
            Status::Optimal
        } else if let Some(s) = stopped {
            s
        } else {
            Status::Converged
        };
        let x = match run.best {
            Some(c) => c.u,
            None => ctx.problem().start().to_vec(),
        };
        Solution::new(x, status).with_bound(bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(status: SolverStatus) -> String {
        match outcome(status) {
            Outcome::Usable { limit: None } => "usable".to_string(),
            Outcome::Usable { limit: Some(s) } => format!("usable, else {s}"),
            Outcome::Infeasible => "infeasible".to_string(),
            Outcome::Failed(_) => "failed".to_string(),
        }
    }

    /// Every Clarabel status has its meaning; none of them is "optimal" by itself.
    #[test]
    fn every_clarabel_status_is_mapped() {
        let cases = [
            (SolverStatus::Solved, "usable"),
            (SolverStatus::AlmostSolved, "usable"),
            (SolverStatus::MaxIterations, "usable, else max_iterations"),
            (SolverStatus::MaxTime, "usable, else time_limit"),
            (
                SolverStatus::CallbackTerminated,
                "usable, else stopped_early",
            ),
            (SolverStatus::PrimalInfeasible, "infeasible"),
            (SolverStatus::AlmostPrimalInfeasible, "infeasible"),
            (SolverStatus::DualInfeasible, "failed"),
            (SolverStatus::AlmostDualInfeasible, "failed"),
            (SolverStatus::NumericalError, "failed"),
            (SolverStatus::InsufficientProgress, "failed"),
            (SolverStatus::Unsolved, "failed"),
        ];
        for (status, expect) in cases {
            assert_eq!(describe(status), expect, "{status:?}");
        }
    }
}
