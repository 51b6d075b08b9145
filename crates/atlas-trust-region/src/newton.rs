//! Trust-region Newton-CG over `{l <= u <= h, sum(u) = budget}` (or `<= budget`), the
//! inner solver of the augmented Lagrangian.
//!
//! Each iteration fixes the variables that sit at a bound and that a projected-gradient
//! step keeps there, and solves the trust-region subproblem on the other ("free")
//! variables with argmin's [`Steihaug`] conjugate gradients. The Hessian it sees is
//! [`ReducedHessian`], a matrix-free operator whose product is the model's exact
//! Hessian-vector product, diagonally preconditioned and restricted to the free variables
//! with the budget as an equality on them (`sum(d) = 0`). The step is projected onto
//! bounds plus budget, and accepted or rejected by the ratio of actual to predicted
//! decrease, which also steers the radius. argmin's own `TrustRegion` loop adds the step
//! without a projection and has no gradient-based stop, so the loop lives here: it stops
//! on the projected gradient (`gtol`), on the radius (`xtol`), or on the iteration limit.

use std::cell::{Cell, RefCell};
use std::ops::ControlFlow;

use argmin::core::{Executor, IterState};
use argmin::solver::trustregion::{Steihaug, TrustRegionRadius};
use argmin_math::ArgminDot;
use atlas_core::augmented::{AugmentedLagrangian, InnerOutcome, InnerSolver};
use atlas_core::{BudgetMode, Combination, Context, Status};

/// A smooth function minimized over bounds plus budget, with exact second derivatives.
pub(crate) trait Smooth {
    /// `f(u)`, and its gradient into `grad`.
    fn value_gradient(&self, u: &[f64], grad: &mut [f64]) -> f64;
    /// `∇²f(u) v` into `out`.
    fn hessian_vector(&self, u: &[f64], v: &[f64], out: &mut [f64]);
    /// The diagonal of `∇²f(u)` into `out`; `false` when not available.
    fn hessian_diagonal(&self, u: &[f64], out: &mut [f64]) -> bool;
    /// Called after each accepted step; `Break` stops the solve.
    fn report(&self, u: &[f64]) -> ControlFlow<Status>;
}

impl Smooth for AugmentedLagrangian<'_, '_> {
    fn value_gradient(&self, u: &[f64], grad: &mut [f64]) -> f64 {
        AugmentedLagrangian::value_gradient(self, u, grad)
    }
    fn hessian_vector(&self, u: &[f64], v: &[f64], out: &mut [f64]) {
        AugmentedLagrangian::hessian_vector(self, u, v, out)
    }
    fn hessian_diagonal(&self, u: &[f64], out: &mut [f64]) -> bool {
        AugmentedLagrangian::hessian_diagonal(self, u, out)
    }
    fn report(&self, u: &[f64]) -> ControlFlow<Status> {
        AugmentedLagrangian::report(self, u)
    }
}

/// `-(model * R_s(u) + spend * sum(u))`: minimizing it maximizes the left-hand side of a
/// nonlinear row over bounds plus budget (used to prove a row unreachable).
pub(crate) struct NegatedRow<'c, 'a> {
    pub(crate) ctx: &'c Context<'a>,
    pub(crate) lhs: Combination,
}

impl Smooth for NegatedRow<'_, '_> {
    fn value_gradient(&self, u: &[f64], grad: &mut [f64]) -> f64 {
        let model = self.ctx.evaluator().model_gradient(u, grad);
        for g in grad.iter_mut() {
            *g = -(self.lhs.model * *g + self.lhs.spend);
        }
        -self.lhs.value(model, u.iter().sum())
    }
    fn hessian_vector(&self, u: &[f64], v: &[f64], out: &mut [f64]) {
        self.ctx.evaluator().model_hessian_vector(u, v, out);
        out.iter_mut().for_each(|o| *o *= -self.lhs.model);
    }
    fn hessian_diagonal(&self, u: &[f64], out: &mut [f64]) -> bool {
        let ok = self.ctx.evaluator().model_hessian_diagonal(u, out);
        out.iter_mut().for_each(|o| *o *= -self.lhs.model);
        ok
    }
    fn report(&self, _u: &[f64]) -> ControlFlow<Status> {
        // Not an iterate of the problem: only the limits apply.
        match self.ctx.should_stop() {
            Some(s) => ControlFlow::Break(s),
            None => ControlFlow::Continue(()),
        }
    }
}

/// Settings of the trust-region loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewtonSettings {
    pub(crate) xtol: f64,
    pub(crate) max_iterations: u64,
    pub(crate) initial_radius: f64,
    pub(crate) max_radius: f64,
}

/// Steps accepted when actual decrease >= `ETA` * predicted decrease.
const ETA: f64 = 1e-4;
/// Consecutive rejected steps after which a projected-gradient step is tried instead.
const MAX_REJECTIONS: u32 = 6;
/// Curvature band of the diagonal preconditioner, around the median curvature.
const CURVATURE_BAND: f64 = 1e6;

/// The trust-region Newton-CG inner solver. One instance serves one start: the radius and
/// the iteration count carry over between the augmented-Lagrangian rounds.
pub(crate) struct TrustRegionNewton {
    settings: NewtonSettings,
    radius: f64,
    iterations: u64,
    pub(crate) hit_iteration_limit: bool,
}

impl InnerSolver for TrustRegionNewton {
    fn minimize(
        &mut self,
        f: &AugmentedLagrangian<'_, '_>,
        u: &mut [f64],
        tolerance: f64,
    ) -> InnerOutcome {
        self.run(f, f.context(), u, tolerance)
    }
}

/// The free-subspace Hessian seen by Steihaug, in preconditioned coordinates `w`
/// (`d = S w`, `S = diag(scale)`, zero off the free variables):
/// `w -> factor * Π S ∇²f(u) S Π w`, where `Π` removes the component along the budget
/// normal (`sum(S w) = 0`) when the budget binds. Matrix-free: each product is one exact
/// Hessian-vector product of the model.
pub(crate) struct ReducedHessian<'s> {
    f: &'s dyn Smooth,
    u: &'s [f64],
    scale: &'s [f64],
    normal: Option<&'s [f64]>,
    factor: f64,
    /// Steihaug multiplies the same direction twice per iteration (curvature test, then
    /// residual update): the last product is kept.
    last: RefCell<Option<(Vec<f64>, Vec<f64>)>>,
    /// Products computed (outside the operator: Steihaug does not always hand it back).
    products: &'s Cell<u64>,
    /// Set when a product was not finite.
    non_finite: &'s Cell<bool>,
}

fn remove_normal(v: &mut [f64], normal: Option<&[f64]>) {
    if let Some(nrm) = normal {
        let a: f64 = v.iter().zip(nrm).map(|(x, y)| x * y).sum();
        v.iter_mut().zip(nrm).for_each(|(x, y)| *x -= a * y);
    }
}

impl ArgminDot<Vec<f64>, Vec<f64>> for ReducedHessian<'_> {
    fn dot(&self, w: &Vec<f64>) -> Vec<f64> {
        if let Some((input, output)) = self.last.borrow().as_ref() {
            if input == w {
                return output.clone();
            }
        }
        let mut z = w.clone();
        remove_normal(&mut z, self.normal);
        z.iter_mut().zip(self.scale).for_each(|(x, s)| *x *= s);
        let mut out = vec![0.0; z.len()];
        self.f.hessian_vector(self.u, &z, &mut out);
        self.products.set(self.products.get() + 1);
        out.iter_mut()
            .zip(self.scale)
            .for_each(|(x, s)| *x *= s * self.factor);
        remove_normal(&mut out, self.normal);
        if out.iter().any(|x| !x.is_finite()) {
            // Steihaug would carry NaN into the step (and argmin's boundary search can
            // panic on it): report zero curvature and let the caller discard the step.
            self.non_finite.set(true);
            out.iter_mut().for_each(|x| *x = 0.0);
        }
        *self.last.borrow_mut() = Some((w.clone(), out.clone()));
        out
    }
}

/// Maximizes `a . y` over `{l <= y <= h, sum(y) = budget}` (or `<= budget`): start at the
/// lower bounds, then fill the budget in decreasing order of `a` (only where `a > 0` when
/// the budget is a cap).
pub(crate) fn box_budget_linear_max(
    a: &[f64],
    lower: &[f64],
    upper: &[f64],
    budget: f64,
    mode: BudgetMode,
) -> f64 {
    let mut value: f64 = a.iter().zip(lower).map(|(x, l)| x * l).sum();
    let mut left = budget - lower.iter().sum::<f64>();
    let mut order: Vec<usize> = (0..a.len()).collect();
    order.sort_by(|&i, &j| a[j].total_cmp(&a[i]));
    for i in order {
        if left <= 0.0 || (mode == BudgetMode::AtMost && a[i] <= 0.0) {
            break;
        }
        let take = (upper[i] - lower[i]).min(left);
        value += a[i] * take;
        left -= take;
    }
    value
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Whether a move from `u` to `v` keeps the total at the budget (so the move sums to zero
/// in exact arithmetic).
fn keeps_total(u: &[f64], v: &[f64], budget: f64, exact: bool) -> bool {
    let at = |w: &[f64]| w.iter().sum::<f64>() >= budget - 1e-13 * budget.max(1.0);
    exact || (at(u) && at(v))
}

/// `g . s`. When `s` sums to zero in exact arithmetic, the gradient's common part (the
/// budget's multiplier, large next to what is left near the optimum) contributes only
/// rounding; it is removed first (the mean of `g` over the moving variables), so that the
/// slopes of tiny steps keep their sign.
fn slope_along(g: &[f64], s: &[f64], sums_to_zero: bool) -> f64 {
    if !sums_to_zero {
        return dot(g, s);
    }
    let (mut total, mut count) = (0.0, 0usize);
    for (gi, si) in g.iter().zip(s) {
        if *si != 0.0 {
            total += gi;
            count += 1;
        }
    }
    let c = if count > 0 { total / count as f64 } else { 0.0 };
    g.iter().zip(s).map(|(gi, si)| (gi - c) * si).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Whether each variable belongs to a channel whose slope is unbounded at zero spend.
fn singular_variables(ctx: &Context<'_>, n: usize) -> Vec<bool> {
    match ctx.problem().mmm() {
        Some(mmm) => {
            let periods = mmm.layout().periods();
            (0..n)
                .map(|i| mmm.channels()[i / periods].curve.is_singular_at_zero())
                .collect()
        }
        None => vec![false; n],
    }
}

/// What the Steihaug subproblem returned.
struct NewtonStep {
    /// Step in spend units (zero off the free variables).
    d: Vec<f64>,
    /// Its length in the preconditioned norm, `|w|`.
    length: f64,
}

impl TrustRegionNewton {
    pub(crate) fn new(settings: NewtonSettings) -> Self {
        Self {
            settings,
            radius: settings.initial_radius,
            iterations: 0,
            hit_iteration_limit: false,
        }
    }

    /// Minimizes `f` from `u` (inside bounds plus budget) until the projected gradient is
    /// below `tolerance`.
    pub(crate) fn run(
        &mut self,
        f: &dyn Smooth,
        ctx: &Context<'_>,
        u: &mut [f64],
        tolerance: f64,
    ) -> InnerOutcome {
        let ev = ctx.evaluator();
        let set = ctx.problem().feasible_set();
        let (lower, upper) = (set.lower(), set.upper());
        let budget = set.budget();
        let mode = set.budget_mode();
        let exact = mode == BudgetMode::Exact;
        let n = u.len();
        let singular = singular_variables(ctx, n);
        let mut g = vec![0.0; n];
        let mut fx = f.value_gradient(u, &mut g);
        if !fx.is_finite() {
            return InnerOutcome::Stalled;
        }
        let mut diag = vec![0.0; n];
        let mut y = vec![0.0; n];
        let mut trial = vec![0.0; n];
        let mut g_trial = vec![0.0; n];
        let mut hs = vec![0.0; n];
        let mut step_lower = lower.to_vec();
        let mut tau_hint: Option<f64> = None;
        let mut rejections = 0u32;
        loop {
            if let Some(s) = ctx.should_stop() {
                return InnerOutcome::Stopped(s);
            }
            if self.iterations >= self.settings.max_iterations {
                self.hit_iteration_limit = true;
                return InnerOutcome::MaxIterations;
            }
            let have_diag = f.hessian_diagonal(u, &mut diag) && diag.iter().all(|d| !d.is_nan());
            // Median curvature: the preconditioner's unit, and the length of the probing
            // projected-gradient step (a Newton step for a typical variable).
            let median = if have_diag {
                let mut positive: Vec<f64> = diag
                    .iter()
                    .map(|d| d.abs())
                    .filter(|d| *d > 0.0 && d.is_finite())
                    .collect();
                if positive.is_empty() {
                    None
                } else {
                    let mid = positive.len() / 2;
                    Some(*positive.select_nth_unstable_by(mid, f64::total_cmp).1)
                }
            } else {
                None
            };
            let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let probe = match median {
                Some(m) => 1.0 / m,
                None => 0.1 * (budget / n as f64) / gmax.max(1e-300),
            };
            // The projected-gradient step `P(u - probe g)` gives the convergence measure
            // `|P(u - probe g) - u| / probe` (the reduced gradient, budget multiplier
            // included, for variables away from their bounds) and the active set.
            let z: Vec<f64> = u.iter().zip(&g).map(|(a, b)| a - probe * b).collect();
            let proj = ev.project_box_budget(&z, &mut y, tau_hint);
            tau_hint = Some(proj.tau);
            let pg = u
                .iter()
                .zip(&y)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
                / probe;
            if pg <= tolerance {
                return InnerOutcome::Converged;
            }
            if !pg.is_finite() {
                return InnerOutcome::Stalled;
            }
            for i in 0..n {
                step_lower[i] = if singular[i] && u[i] > lower[i] {
                    // Fraction to the boundary: at zero spend the slope of these curves is
                    // unbounded, and a variable taken there would crawl back.
                    lower[i] + 0.01 * (u[i] - lower[i])
                } else {
                    lower[i]
                };
            }
            let eps = |v: f64| 1e-14 * (1.0 + v.abs());
            let at_lower: Vec<bool> = (0..n).map(|i| u[i] <= lower[i] + eps(lower[i])).collect();
            let at_upper: Vec<bool> = (0..n).map(|i| u[i] >= upper[i] - eps(upper[i])).collect();
            let mut free: Vec<bool> = (0..n)
                .map(|i| {
                    !((at_lower[i] && y[i] <= lower[i] + eps(lower[i]))
                        || (at_upper[i] && y[i] >= upper[i] - eps(upper[i])))
                })
                .collect();
            let total: f64 = u.iter().sum();
            let binding =
                exact || (proj.budget_binding && total >= budget - 1e-12 * budget.max(1.0));
            // Preconditioner: variable i is measured by sqrt(D_i) |d_i| with D_i its
            // curvature relative to the median, clamped to a band (flat or negatively
            // curved directions would otherwise be unbounded, singular ones frozen).
            let scale: Vec<f64> = match median {
                Some(m) => diag
                    .iter()
                    .map(|d| {
                        let c = if d.is_finite() {
                            d.abs() / m
                        } else {
                            CURVATURE_BAND
                        };
                        1.0 / c.clamp(1.0 / CURVATURE_BAND, CURVATURE_BAND).sqrt()
                    })
                    .collect(),
                None => vec![1.0; n],
            };
            let newton = self.newton_step(
                f, u, &g, &mut free, &at_lower, &at_upper, &scale, binding, pg,
            );
            self.iterations += 1;
            let mut accepted = false;
            if let Some(step) = newton {
                for i in 0..n {
                    trial[i] = u[i] + step.d[i];
                }
                let inside = (0..n).all(|i| trial[i] >= step_lower[i] && trial[i] <= upper[i]);
                let total_trial: f64 = trial.iter().sum();
                let off_budget = if exact {
                    (total_trial - budget).abs() > 1e-14 * budget.max(1.0)
                } else {
                    total_trial > budget
                };
                if !inside || off_budget {
                    let zt = trial.clone();
                    ev.constraint_work(|| {
                        atlas_core::feasible::project_box_budget(
                            &zt,
                            &step_lower,
                            upper,
                            budget,
                            mode,
                            &mut trial,
                            tau_hint,
                        )
                    });
                }
                let s: Vec<f64> = trial.iter().zip(u.iter()).map(|(t, a)| t - a).collect();
                f.hessian_vector(u, &s, &mut hs);
                let on_budget = keeps_total(u, &trial, budget, exact);
                let pred = -(slope_along(&g, &s, on_budget) + 0.5 * dot(&s, &hs));
                let ft = f.value_gradient(&trial, &mut g_trial);
                let mut ared = fx - ft;
                if pred.abs() < 1e-10 * fx.abs().max(1.0) {
                    // Differences of f are lost in rounding at this scale: the trapezoid
                    // rule on the gradients gives the decrease to third order instead.
                    ared = -0.5
                        * (slope_along(&g, &s, on_budget) + slope_along(&g_trial, &s, on_budget));
                }
                let rho = if pred > 0.0 && ft.is_finite() && g_trial.iter().all(|v| v.is_finite()) {
                    ared / pred
                } else {
                    f64::NEG_INFINITY
                };
                if !pred.is_finite() {
                    // No usable second-order model here: straight to the gradient step.
                    rejections = MAX_REJECTIONS;
                }
                if rho < 0.25 {
                    self.radius = 0.25 * step.length.min(self.radius);
                } else if rho > 0.75 && step.length >= 0.99 * self.radius {
                    self.radius = (2.0 * self.radius).min(self.settings.max_radius);
                }
                if rho > ETA {
                    u.copy_from_slice(&trial);
                    g.copy_from_slice(&g_trial);
                    fx = ft;
                    accepted = true;
                    rejections = 0;
                } else {
                    rejections = (rejections + 1).min(MAX_REJECTIONS);
                }
            } else {
                rejections = MAX_REJECTIONS;
            }
            if !accepted && (rejections >= MAX_REJECTIONS || self.radius < self.settings.xtol) {
                // The model step keeps failing (or the radius fell below xtol): a
                // projected-gradient step with backtracking always descends while the
                // projected gradient is not zero.
                match self.gradient_step(f, ctx, u, &mut g, fx, probe, &step_lower, tau_hint) {
                    Some((f_new, length)) => {
                        let decrease = fx - f_new;
                        fx = f_new;
                        rejections = 0;
                        self.radius = self.radius.max(length).min(self.settings.max_radius);
                        accepted = true;
                        if self.radius < self.settings.xtol && decrease <= 1e-15 * fx.abs().max(1.0)
                        {
                            return InnerOutcome::Stalled;
                        }
                    }
                    None => return InnerOutcome::Stalled,
                }
            }
            if accepted {
                if let ControlFlow::Break(s) = f.report(u) {
                    return InnerOutcome::Stopped(s);
                }
            }
        }
    }

    /// The Steihaug step on the free variables (variables at a bound that it pushes
    /// outward are fixed and the step recomputed once). `None` when the subproblem has
    /// nothing to work on or failed.
    #[allow(clippy::too_many_arguments)]
    fn newton_step(
        &self,
        f: &dyn Smooth,
        u: &[f64],
        g: &[f64],
        free: &mut [bool],
        at_lower: &[bool],
        at_upper: &[bool],
        scale: &[f64],
        binding: bool,
        pg: f64,
    ) -> Option<NewtonStep> {
        let n = u.len();
        for pass in 0..2 {
            let sc: Vec<f64> = (0..n)
                .map(|i| if free[i] { scale[i] } else { 0.0 })
                .collect();
            let normal: Option<Vec<f64>> = if binding {
                let len = norm(&sc);
                (len > 0.0).then(|| sc.iter().map(|s| s / len).collect())
            } else {
                None
            };
            let mut gw: Vec<f64> = sc.iter().zip(g).map(|(s, gi)| s * gi).collect();
            remove_normal(&mut gw, normal.as_deref());
            let gamma = norm(&gw);
            if !(gamma > 0.0 && gamma.is_finite()) {
                return None;
            }
            // Steihaug's tolerance is both relative to the first residual and absolute:
            // the subproblem is divided by |g| so that the first residual has norm 1
            // (the minimizer is unchanged).
            gw.iter_mut().for_each(|v| *v /= gamma);
            let products = Cell::new(0);
            let non_finite = Cell::new(false);
            let operator = ReducedHessian {
                f,
                u,
                scale: &sc,
                normal: normal.as_deref(),
                factor: 1.0 / gamma,
                last: RefCell::new(None),
                products: &products,
                non_finite: &non_finite,
            };
            // Inexact Newton: relative residual min(0.5, sqrt(|pg|)) gives superlinear
            // convergence without solving far-off subproblems exactly.
            let forcing = pg.sqrt().clamp(1e-10, 0.5);
            let free_count = free.iter().filter(|f| **f).count() as u64;
            let mut steihaug: Steihaug<Vec<f64>, f64> = Steihaug::new()
                .with_epsilon(forcing)
                .ok()?
                .with_max_iters(free_count.clamp(1, 1000));
            steihaug.set_radius(self.radius);
            let result = Executor::new(Subproblem, steihaug)
                .configure(
                    |state: IterState<Vec<f64>, Vec<f64>, (), ReducedHessian<'_>, (), f64>| {
                        state.gradient(gw).hessian(operator)
                    },
                )
                .ctrlc(false)
                .run()
                .ok()?;
            let mut state = result.state;
            let mut w = state.take_param()?;
            if non_finite.get() || w.iter().any(|v| !v.is_finite()) {
                return None;
            }
            remove_normal(&mut w, normal.as_deref());
            let length = norm(&w);
            let d: Vec<f64> = w.iter().zip(&sc).map(|(a, s)| a * s).collect();
            let mut changed = false;
            for i in 0..n {
                if free[i] && ((at_lower[i] && d[i] < 0.0) || (at_upper[i] && d[i] > 0.0)) {
                    free[i] = false;
                    changed = true;
                }
            }
            if !changed || pass == 1 {
                return (length > 0.0).then_some(NewtonStep { d, length });
            }
        }
        None
    }

    /// A projected-gradient step `u + alpha (P(u - probe g) - u)` with Armijo backtracking
    /// (feasible for every `alpha` in `[0, 1]`). Updates `u` and `g`; returns the new value
    /// and the step's length, or `None` when no decrease is found.
    #[allow(clippy::too_many_arguments)]
    fn gradient_step(
        &mut self,
        f: &dyn Smooth,
        ctx: &Context<'_>,
        u: &mut [f64],
        g: &mut [f64],
        fx: f64,
        probe: f64,
        step_lower: &[f64],
        tau_hint: Option<f64>,
    ) -> Option<(f64, f64)> {
        let set = ctx.problem().feasible_set();
        let n = u.len();
        let z: Vec<f64> = u.iter().zip(g.iter()).map(|(a, b)| a - probe * b).collect();
        let mut y = vec![0.0; n];
        ctx.evaluator().constraint_work(|| {
            atlas_core::feasible::project_box_budget(
                &z,
                step_lower,
                set.upper(),
                set.budget(),
                set.budget_mode(),
                &mut y,
                tau_hint,
            )
        });
        let d: Vec<f64> = y.iter().zip(u.iter()).map(|(a, b)| a - b).collect();
        let on_budget = keeps_total(u, &y, set.budget(), set.budget_mode() == BudgetMode::Exact);
        let slope = slope_along(g, &d, on_budget);
        if slope.is_nan() || slope >= 0.0 {
            return None;
        }
        let mut trial = vec![0.0; n];
        let mut g_trial = vec![0.0; n];
        let mut alpha = 1.0;
        for _ in 0..60 {
            for i in 0..n {
                trial[i] = u[i] + alpha * d[i];
            }
            let ft = f.value_gradient(&trial, &mut g_trial);
            let mut decrease = fx - ft;
            if (alpha * slope).abs() < 1e-10 * fx.abs().max(1.0) {
                // Below the rounding of f: the trapezoid rule on the gradients instead.
                decrease = -0.5 * alpha * (slope_along(&g_trial, &d, on_budget) + slope);
            }
            if ft.is_finite() && decrease >= -1e-4 * alpha * slope {
                u.copy_from_slice(&trial);
                g.copy_from_slice(&g_trial);
                return Some((ft, alpha * norm(&d)));
            }
            alpha *= 0.5;
        }
        None
    }
}

/// Steihaug reads nothing from its problem: the subproblem lives in the state's gradient
/// and Hessian operator.
struct Subproblem;

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_core::{Compiled, Format, Problem, Scaled, SolveOptions};

    /// `f(u) = sum_i q_i (u_i - c_i)^2 / 2` (negated when `q < 0`: concave), optionally
    /// with a broken Hessian (NaN products, no diagonal).
    struct Quadratic {
        q: Vec<f64>,
        c: Vec<f64>,
        broken_hessian: bool,
    }

    impl Smooth for Quadratic {
        fn value_gradient(&self, u: &[f64], grad: &mut [f64]) -> f64 {
            let mut v = 0.0;
            for i in 0..u.len() {
                let e = u[i] - self.c[i];
                v += 0.5 * self.q[i] * e * e;
                grad[i] = self.q[i] * e;
            }
            v
        }
        fn hessian_vector(&self, _u: &[f64], v: &[f64], out: &mut [f64]) {
            for i in 0..v.len() {
                out[i] = if self.broken_hessian {
                    f64::NAN
                } else {
                    self.q[i] * v[i]
                };
            }
        }
        fn hessian_diagonal(&self, _u: &[f64], out: &mut [f64]) -> bool {
            out.copy_from_slice(&self.q);
            !self.broken_hessian
        }
        fn report(&self, _u: &[f64]) -> ControlFlow<Status> {
            ControlFlow::Continue(())
        }
    }

    fn compiled(text: &str) -> Compiled {
        Compiled::new(&Problem::from_text(text, Format::Toml).unwrap()).unwrap()
    }

    /// Four channels, one period, budget 100 (scaled: 1), caps 40 on two of them.
    const FOUR: &str = r#"
        name = "four"
        budget = 100.0
        [[channels]]
        name = "a"
        max = 40.0
        response = { kind = "log", beta = 1.0, k = 1.0 }
        [[channels]]
        name = "b"
        response = { kind = "log", beta = 1.0, k = 1.0 }
        [[channels]]
        name = "c"
        max = 40.0
        response = { kind = "log", beta = 1.0, k = 1.0 }
        [[channels]]
        name = "d"
        response = { kind = "log", beta = 1.0, k = 1.0 }
    "#;

    fn settings() -> NewtonSettings {
        NewtonSettings {
            xtol: 1e-12,
            max_iterations: 2000,
            initial_radius: 1.0,
            max_radius: 1e4,
        }
    }

    /// With equal curvatures the minimizer over bounds plus budget is the Euclidean
    /// projection of the centre: the solver must land on it, with and without a usable
    /// Hessian (the projected-gradient fallback takes over when products are NaN).
    #[test]
    fn converges_to_the_projection_of_the_centre() {
        let compiled = compiled(FOUR);
        let scaled = Scaled::new(&compiled).unwrap();
        let ctx = Context::new(&compiled, &scaled, SolveOptions::default());
        // Centre outside the set: a above its cap, d below zero, sum != 1.
        let c = vec![0.9, 0.3, 0.2, -0.3];
        let mut expected = vec![0.0; 4];
        ctx.evaluator().project_box_budget(&c, &mut expected, None);
        // By hand: clamp(c - tau) with a at 0.4, d at 0: 0.4 + (0.3 - tau) + (0.2 - tau) = 1
        // gives tau = -0.05.
        let by_hand = [0.4, 0.35, 0.25, 0.0];
        for (e, h) in expected.iter().zip(&by_hand) {
            assert!((e - h).abs() < 1e-12, "{expected:?}");
        }
        for broken_hessian in [false, true] {
            let f = Quadratic {
                q: vec![1.0; 4],
                c: c.clone(),
                broken_hessian,
            };
            let mut u = scaled.start().to_vec();
            let mut solver = TrustRegionNewton::new(settings());
            let outcome = solver.run(&f, &ctx, &mut u, 1e-11);
            assert!(
                matches!(outcome, InnerOutcome::Converged | InnerOutcome::Stalled),
                "{outcome:?}"
            );
            for (a, b) in u.iter().zip(&by_hand) {
                assert!((a - b).abs() < 1e-9, "broken {broken_hessian}: {u:?}");
            }
            assert!((u.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        }
    }

    /// Badly scaled curvatures (1e-4 to 1e4): the minimizer is still found precisely.
    #[test]
    fn unequal_curvatures() {
        let compiled = compiled(FOUR);
        let scaled = Scaled::new(&compiled).unwrap();
        let ctx = Context::new(&compiled, &scaled, SolveOptions::default());
        let q = vec![1e4, 1e-4, 1.0, 1e2];
        let c = vec![0.1, 5.0, 0.3, 0.2];
        let f = Quadratic {
            q: q.clone(),
            c: c.clone(),
            broken_hessian: false,
        };
        let mut u = scaled.start().to_vec();
        let mut solver = TrustRegionNewton::new(settings());
        solver.run(&f, &ctx, &mut u, 1e-12);
        // KKT by hand: no bound binds, so q_i (u_i - c_i) = -tau for all i, sum u = 1:
        // u_i = c_i - tau / q_i, tau = (sum c - 1) / sum(1 / q).
        let tau = (c.iter().sum::<f64>() - 1.0) / q.iter().map(|v| 1.0 / v).sum::<f64>();
        for i in 0..4 {
            let expected = c[i] - tau / q[i];
            assert!((u[i] - expected).abs() < 1e-9, "{u:?} vs {expected}");
        }
    }

    /// Negative curvature everywhere (a concave function minimized): Steihaug goes to the
    /// edge of the region, and the iterates end at the vertex farthest from the centre.
    #[test]
    fn negative_curvature_ends_at_a_vertex() {
        let compiled = compiled(
            r#"
            name = "two"
            budget = 1.0
            [[channels]]
            name = "a"
            response = { kind = "log", beta = 1.0, k = 1.0 }
            [[channels]]
            name = "b"
            response = { kind = "log", beta = 1.0, k = 1.0 }
        "#,
        );
        let scaled = Scaled::new(&compiled).unwrap();
        let ctx = Context::new(&compiled, &scaled, SolveOptions::default());
        let f = Quadratic {
            q: vec![-1.0, -1.0],
            c: vec![0.45, 0.55],
            broken_hessian: false,
        };
        let mut u = vec![0.5, 0.5];
        let mut solver = TrustRegionNewton::new(settings());
        solver.run(&f, &ctx, &mut u, 1e-12);
        assert_eq!(u, vec![1.0, 0.0]);
    }

    /// The operator is `factor * Π S Q S Π` for a diagonal `Q`, and its output has no
    /// component along the budget normal.
    #[test]
    fn reduced_hessian_matches_its_definition() {
        let q = vec![2.0, 3.0, 5.0, 7.0];
        let f = Quadratic {
            q: q.clone(),
            c: vec![0.0; 4],
            broken_hessian: false,
        };
        let u = vec![0.25; 4];
        let scale = vec![1.0, 0.5, 0.0, 2.0]; // variable 2 fixed
        let len = norm(&scale);
        let normal: Vec<f64> = scale.iter().map(|s| s / len).collect();
        let op = ReducedHessian {
            f: &f,
            u: &u,
            scale: &scale,
            normal: Some(&normal),
            factor: 0.5,
            last: RefCell::new(None),
            products: &Cell::new(0),
            non_finite: &Cell::new(false),
        };
        let w = vec![1.0, -2.0, 0.0, 0.5];
        let out = op.dot(&w);
        // By definition, step by step.
        let mut pw = w.clone();
        remove_normal(&mut pw, Some(&normal));
        let mut expected: Vec<f64> = (0..4)
            .map(|i| 0.5 * scale[i] * q[i] * scale[i] * pw[i])
            .collect();
        remove_normal(&mut expected, Some(&normal));
        for (a, b) in out.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-14, "{out:?} vs {expected:?}");
        }
        assert!(dot(&out, &normal).abs() < 1e-14);
        assert_eq!(out[2], 0.0);
        // Symmetric: v . (H w) = w . (H v).
        let v = vec![0.3, 0.1, 0.0, -0.7];
        assert!((dot(&v, &op.dot(&w)) - dot(&w, &op.dot(&v))).abs() < 1e-14);
        // The repeated product comes from the cache.
        let before = op.products.get();
        let _ = op.dot(&v);
        assert_eq!(op.products.get(), before);
    }

    #[test]
    fn linear_maximum_over_bounds_and_budget() {
        let lower = [0.0, 0.1, 0.0];
        let upper = [0.5, 1.0, f64::INFINITY];
        let a = [3.0, -1.0, 2.0];
        // Exact budget 1: y = lower (value -0.1), then 0.5 more on the first variable
        // (best coefficient), then 0.4 on the third: -0.1 + 1.5 + 0.8 = 2.2.
        let exact = box_budget_linear_max(&a, &lower, &upper, 1.0, BudgetMode::Exact);
        assert!((exact - 2.2).abs() < 1e-15, "{exact}");
        // A cap never spends on negative coefficients: same here.
        let capped = box_budget_linear_max(&a, &lower, &upper, 1.0, BudgetMode::AtMost);
        assert!((capped - 2.2).abs() < 1e-15);
        // All coefficients negative: the cap spends nothing beyond the lower bounds, an
        // exact budget must.
        let b = [-1.0, -2.0, -3.0];
        let capped = box_budget_linear_max(&b, &lower, &upper, 1.0, BudgetMode::AtMost);
        assert!((capped + 0.2).abs() < 1e-15, "{capped}");
        let exact = box_budget_linear_max(&b, &lower, &upper, 1.0, BudgetMode::Exact);
        // 0.1 on the second (lower bound), 0.5 on the first, 0.4 more on the second.
        assert!((exact - (-0.2 - 0.5 - 0.8)).abs() < 1e-15, "{exact}");
        // No feasible point does better (a grid over the exact-budget set).
        for i in 0..=50 {
            for j in 0..=90 {
                let y = [0.5 * i as f64 / 50.0, 0.1 + 0.9 * j as f64 / 90.0];
                let y2 = 1.0 - y[0] - y[1];
                if y2 >= 0.0 {
                    let v = a[0] * y[0] + a[1] * y[1] + a[2] * y2;
                    assert!(v <= 2.2 + 1e-12);
                }
            }
        }
    }
}
