//! The `trust-region` solver: trust-region Newton-CG over bounds plus budget, inside the
//! core's augmented Lagrangian for the other rules, from one or several starts; a
//! nonlinear rule left violated is proven unreachable (status `infeasible`) when the
//! model is concave.

use atlas_core::augmented::{AlmSettings, AugmentedLagrangianSolver};
use atlas_core::multistart::MultiStart;
use atlas_core::{Context, Error, Executor, Solution, Solver, Status};

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

impl Solver for TrustRegion {
    fn name(&self) -> &str {
        NAME
    }

    fn solve(&self, ctx: &Context<'_>) -> Result<Solution, Error> {
        let settings = AlmSettings {
            gradient_tolerance: self.config.gtol,
            ..AlmSettings::default()
        };
        let newton = self.newton_settings();
        let mut search = MultiStart::new(self.config.multi_start, self.config.seed, |_| {
            AugmentedLagrangianSolver::new(ctx, settings, TrustRegionNewton::new(newton))
        });
        let run = Executor::new(ctx).run(&mut search, ctx.start())?;
        // A nonlinear rule left violated may be proven out of reach; otherwise, stopped
        // before the rules were met (a limit), the executor's best feasible point stands.
        if !run.end.feasible && self.nonlinear_rows_unreachable(ctx, &run.end.u) {
            return Ok(Solution::new(run.end.u, Status::Infeasible));
        }
        Ok(run.into_solution())
    }
}

impl TrustRegion {
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
