//! The `trust-region` solver: trust-region Newton-CG over bounds plus budget, inside the
//! core's augmented Lagrangian for the other rules, from one or several starts; a
//! nonlinear rule left violated is proven unreachable (status `infeasible`) when the
//! model is concave.

use atlas_core::augmented::{self, AlmSettings};
use atlas_core::feasible::ProjectionWorkspace;
use atlas_core::{Context, Error, Solution, Solver, Status};
use rand::Rng;
use rayon::prelude::*;

use crate::config::{TrustRegionConfig, NAME};
use crate::newton::{box_budget_linear_max, NegatedRow, NewtonSettings, Smooth, TrustRegionNewton};

/// The `trust-region` optimizer, built from a checked [`TrustRegionConfig`].
#[derive(Debug, Clone)]
pub struct TrustRegion {
    config: TrustRegionConfig,
}

impl TrustRegion {
    pub(crate) fn new(config: TrustRegionConfig) -> Self {
        Self { config }
    }

    fn newton_settings(&self) -> NewtonSettings {
        NewtonSettings {
            xtol: self.config.xtol,
            max_iterations: self.config.max_iterations,
            initial_radius: self.config.initial_tr_radius,
            max_radius: self.config.max_tr_radius,
        }
    }
}

struct Run {
    u: Vec<f64>,
    status: Status,
    phi: f64,
    violation: f64,
}

impl Solver for TrustRegion {
    fn name(&self) -> &str {
        NAME
    }

    fn solve(&self, ctx: &Context<'_>) -> Result<Solution, Error> {
        let starts = self.starts(ctx);
        let settings = AlmSettings {
            gradient_tolerance: self.config.gtol,
            ..AlmSettings::default()
        };
        let run = |start: &Vec<f64>| -> Run {
            let mut inner = TrustRegionNewton::new(self.newton_settings());
            let result = augmented::solve(ctx, start, &settings, &mut inner);
            let ev = ctx.evaluator();
            let problem = ctx.problem();
            let model = ev.model_value(&result.u);
            let spend: f64 = result.u.iter().sum();
            let phi = problem.objective().value(model, spend);
            let violation = ev
                .constraint_work(|| problem.feasible_set().max_violation(&result.u))
                .max(problem.nonlinear_violation(model, spend));
            // The augmented Lagrangian calls a stalled inner solve converged; one that ran
            // out of iterations is not.
            let status = if result.status == Status::Converged && inner.hit_iteration_limit {
                Status::MaxIterations
            } else {
                result.status
            };
            Run {
                u: result.u,
                status,
                phi,
                violation,
            }
        };
        let runs: Vec<Run> = if starts.len() == 1 {
            vec![run(&starts[0])]
        } else {
            starts.par_iter().map(run).collect()
        };
        // Feasible runs first (to a tolerance well inside the contract's), then the best
        // objective; ties keep the earlier start, so results do not depend on threads.
        let tol = 1e-8;
        let best = runs
            .into_iter()
            .reduce(|a, b| {
                let (fa, fb) = (a.violation <= tol, b.violation <= tol);
                if fb && !fa || (fa == fb && (b.phi < a.phi || !fa && b.violation < a.violation)) {
                    b
                } else {
                    a
                }
            })
            .ok_or_else(|| Error::Solver {
                optimizer: NAME.to_string(),
                reason: "no starting point".to_string(),
            })?;
        if best.violation > tol {
            if self.nonlinear_rows_unreachable(ctx, &best.u) {
                return Ok(Solution::new(best.u, Status::Infeasible));
            }
            // Stopped before the rules were met (a limit): the best iterate that met them,
            // if any, rather than an infeasible one.
            if let Some((_, u)) = ctx.best() {
                return Ok(Solution::new(u, best.status));
            }
        }
        Ok(Solution::new(best.u, best.status))
    }
}

impl TrustRegion {
    /// The even split (projected), then random allocations: alternately spread
    /// (Dirichlet(1) weights) and concentrated (cubed exponential weights, which put most
    /// of the budget on a few channels: what S-curves need), each projected onto the
    /// feasible set.
    fn starts(&self, ctx: &Context<'_>) -> Vec<Vec<f64>> {
        let problem = ctx.problem();
        let set = problem.feasible_set();
        let mut starts = vec![problem.start().to_vec()];
        let n = problem.dim();
        let mut ws = ProjectionWorkspace::default();
        for k in 1..self.config.multi_start {
            let mut rng = ctx.rng(self.config.seed, k as u64);
            let power = if k % 2 == 1 { 1 } else { 3 };
            let w: Vec<f64> = (0..n)
                .map(|_| {
                    let e = -(1.0 - rng.random::<f64>()).ln();
                    e.powi(power)
                })
                .collect();
            let total: f64 = w.iter().sum();
            let z: Vec<f64> = w.iter().map(|v| v / total * set.budget()).collect();
            let mut u = vec![0.0; n];
            if ctx.evaluator().project(&z, &mut u, &mut ws).is_ok() {
                starts.push(u);
            }
        }
        starts
    }

    /// Whether some nonlinear row violated at `u` is proven out of reach: with a concave
    /// model, its left-hand side `c` is concave, so for any point `v` of bounds plus
    /// budget `B`, `max_B c <= c(v) + max_{y in B} ∇c(v) . (y - v)` (a linear program over
    /// `B`, solved exactly by a greedy fill). `v` maximizes `c` over `B` (by the same
    /// trust-region method, which makes the bound tight); when the bound stays below the
    /// row's right-hand side by more than the contract's tolerance, no allocation meets the
    /// row, whatever the other rules. The row is then named by the result's violations.
    fn nonlinear_rows_unreachable(&self, ctx: &Context<'_>, u: &[f64]) -> bool {
        let problem = ctx.problem();
        if problem.model().is_concave() != Some(true) {
            return false;
        }
        let set = problem.feasible_set();
        let tolerance = ctx.compiled().feasibility_tolerance() / problem.response_scale();
        let ev = ctx.evaluator();
        let n = u.len();
        let model = ev.model_value(u);
        let spend: f64 = u.iter().sum();
        for row in problem.nonlinear_rows() {
            // `c` is concave only with a non-negative weight on the (concave) model.
            if row.lhs.model < 0.0 || row.rhs - row.lhs.value(model, spend) <= tolerance {
                continue;
            }
            let objective = NegatedRow { ctx, lhs: row.lhs };
            let mut v = u.to_vec();
            let mut newton = TrustRegionNewton::new(self.newton_settings());
            // Whatever its outcome, `v` stays inside B and the bound below is valid.
            let _ = newton.run(&objective, ctx, &mut v, self.config.gtol);
            let mut gradient = vec![0.0; n];
            let c = -objective.value_gradient(&v, &mut gradient);
            gradient.iter_mut().for_each(|g| *g = -*g);
            let linear_max = box_budget_linear_max(
                &gradient,
                set.lower(),
                set.upper(),
                set.budget(),
                set.budget_mode(),
            );
            let bound = c + linear_max - gradient.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>();
            if bound.is_finite() && bound < row.rhs - tolerance {
                return true;
            }
        }
        false
    }
}
