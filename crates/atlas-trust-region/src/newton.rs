//! Trust-region Newton-CG over `{l <= u <= h, sum(u) = budget}` (or `<= budget`), the
//! inner solver of the augmented Lagrangian.
//!
//! Each iteration follows Lin and Moré's TRON ("Newton's method for large
//! bound-constrained optimization problems", 1999), with the budget added:
//!
//! 1. a generalized Cauchy point along the projected-gradient path `P(u - t g)`, with a
//!    sufficient decrease of the quadratic model and inside the trust region;
//! 2. a Newton step from there on the variables the Cauchy point leaves strictly inside
//!    their bounds, with the budget as an equality on them (`sum(d) = 0`), by argmin's
//!    [`Steihaug`] conjugate gradients on [`ReducedHessian`], a matrix-free operator whose
//!    products are the exact Hessian-vector products of the function, diagonally
//!    preconditioned (the same diagonal shapes the trust region);
//! 3. the better of that step projected and that step cut at the first bound, if the model
//!    is no worse there than at the Cauchy point (so every step decreases the model by a
//!    fair share of what the projected gradient promises);
//! 4. the ratio of actual to predicted decrease accepts the step and steers the radius.
//!    When it fails, a search along the step itself (which stays feasible) looks for the
//!    minimizer along it: the augmented Lagrangian is only once differentiable where a
//!    rule's penalty switches on, and a step that crosses such a kink is often good up to
//!    it.
//!
//! argmin's own `TrustRegion` loop adds the step without a projection and has no
//! gradient-based stop, so the loop lives here: it stops on the projected gradient
//! (`gtol`), on the radius (`xtol`), or on the iteration limit.

use std::cell::{Cell, RefCell};
use std::ops::ControlFlow;

use argmin::core::{Executor, IterState};
use argmin::solver::trustregion::{Steihaug, TrustRegionRadius};
use argmin_math::ArgminDot;
use atlas_core::augmented::{AugmentedLagrangian, InnerOutcome, InnerSolver, InnerStep};
use atlas_core::{BudgetMode, Combination, Context, Kv, Status};

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
    fn report(&self, _u: &[f64]) -> ControlFlow<Status> {
        // The executor reports the iterates of the augmented Lagrangian.
        ControlFlow::Continue(())
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

/// A step may take a variable of a channel whose slope is unbounded at zero at most
/// this close, relative to where it is, to its lower bound.
const SINGULAR_KEEP: f64 = 0.5;
/// Steps accepted when actual decrease >= `ETA` * predicted decrease.
const ETA: f64 = 1e-4;
/// Largest relative residual at which conjugate gradients may stop (the forcing term is
/// `min(this, sqrt(|r|))`): a loose one stops ill-conditioned subproblems (a stiff
/// penalty next to flat directions) after a first, tiny, steepest-descent step.
const FORCING_MAX: f64 = 0.1;
/// Conjugate-gradient iterations per subproblem at most.
const MAX_CG_ITERATIONS: u64 = 1000;
/// Curvature band of the trust-region norm (and preconditioner), relative to the median
/// curvature: variables may be up to this much stiffer than the median ...
const STIFFEST: f64 = 1e6;
/// ... and this much looser. Flat directions (linear pieces, saturated curves, the inactive
/// side of a penalty) get no curvature from the model; a tighter floor keeps the region
/// from letting them run far on a model that knows nothing about them.
const LOOSEST: f64 = 1e-2;

/// The trust-region Newton-CG inner solver. One instance serves one start: the radius and
/// the iteration count carry over between the augmented-Lagrangian rounds.
pub(crate) struct TrustRegionNewton {
    settings: NewtonSettings,
    radius: f64,
    iterations: u64,
    state: Option<TrSubproblem>,
    last_pg: f64,
}

impl InnerSolver for TrustRegionNewton {
    fn begin(&mut self, f: &AugmentedLagrangian<'_, '_>, u: &[f64], tolerance: f64) {
        TrustRegionNewton::begin(self, f, f.context(), u, tolerance)
    }

    fn step(&mut self, f: &AugmentedLagrangian<'_, '_>, u: &mut [f64]) -> InnerStep {
        TrustRegionNewton::step(self, f, f.context(), u)
    }

    fn kv(&self) -> Kv {
        Kv::new()
            .with("radius", self.radius)
            .with("projected_gradient", self.last_pg)
    }
}

/// The state of one subproblem.
struct TrSubproblem {
    tolerance: f64,
    singular: Vec<bool>,
    g: Vec<f64>,
    fx: f64,
    tau_hint: Option<f64>,
    cauchy_length: Option<f64>,
}

/// The free-subspace Hessian seen by Steihaug, in preconditioned coordinates `w`
/// (`d = S w`, `S = diag(scale)`, zero off the free variables):
/// `w -> factor * Π S ∇²f(u) S Π w`, where `Π` removes the component along the budget
/// normal (`sum(S w) = 0`) when the budget binds. Matrix-free: each product is one exact
/// Hessian-vector product of the model.
pub(crate) struct ReducedHessian<'s> {
    /// `v -> ∇²f(u) v` (the model's Hessian).
    hessian: &'s dyn Fn(&[f64], &mut [f64]),
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
        (self.hessian)(&z, &mut out);
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

/// The generalized Cauchy point.
struct Cauchy {
    /// The point `P(u - t g)`.
    point: Vec<f64>,
    /// The model's value there (relative to `f(u)`).
    q: f64,
    /// The path parameter `t`.
    t: f64,
}

/// The quadratic model of `f` at `u`: `q(s) = g . s + s . H s / 2`, and the trust-region
/// norm `|s|_D = sqrt(sum D_i s_i^2)`.
struct Model<'m> {
    f: &'m dyn Smooth,
    u: &'m [f64],
    g: &'m [f64],
    metric: &'m [f64],
    exact: bool,
    budget: f64,
}

impl Model<'_> {
    /// `H v` into `out`.
    fn hessian_vector(&self, v: &[f64], out: &mut [f64]) {
        self.f.hessian_vector(self.u, v, out);
    }

    /// `g . s`, rounding-safe along the budget (see [`slope_along`]).
    fn slope(&self, s: &[f64]) -> f64 {
        let moved: Vec<f64> = s.iter().zip(self.u).map(|(a, b)| a + b).collect();
        slope_along(
            self.g,
            s,
            keeps_total(self.u, &moved, self.budget, self.exact),
        )
    }

    /// `q(point - u)` (one Hessian-vector product).
    fn value(&self, point: &[f64]) -> f64 {
        let s: Vec<f64> = point.iter().zip(self.u).map(|(p, a)| p - a).collect();
        let mut hs = vec![0.0; s.len()];
        self.hessian_vector(&s, &mut hs);
        let q = self.slope(&s) + 0.5 * dot(&s, &hs);
        if q.is_finite() {
            q
        } else {
            f64::INFINITY
        }
    }

    /// `|s|_D`.
    fn length(&self, s: &[f64]) -> f64 {
        s.iter()
            .zip(self.metric)
            .map(|(a, m)| m * a * a)
            .sum::<f64>()
            .sqrt()
    }
}

/// Where steps may go: `[lower, upper]` (lower bounds moved off zero for singular
/// channels) and the budget.
struct StepBounds<'b> {
    lower: &'b [f64],
    upper: &'b [f64],
    budget: f64,
    mode: BudgetMode,
    exact: bool,
}

impl StepBounds<'_> {
    /// The largest `alpha <= 1` with `x + alpha d` inside the bounds (and under a budget
    /// cap).
    fn first_hit(&self, x: &[f64], d: &[f64]) -> f64 {
        let mut alpha = 1.0f64;
        for i in 0..x.len() {
            if d[i] < 0.0 {
                alpha = alpha.min((x[i] - self.lower[i]).max(0.0) / -d[i]);
            } else if d[i] > 0.0 {
                alpha = alpha.min((self.upper[i] - x[i]).max(0.0) / d[i]);
            }
        }
        if !self.exact {
            let grow: f64 = d.iter().sum();
            if grow > 0.0 {
                let room = (self.budget - x.iter().sum::<f64>()).max(0.0);
                alpha = alpha.min(room / grow);
            }
        }
        alpha
    }

    /// Clamps `x` into the bounds (rounding at the first hit).
    fn clamp(&self, x: &mut [f64]) {
        for i in 0..x.len() {
            x[i] = x[i].max(self.lower[i]).min(self.upper[i]);
        }
    }

    fn project(&self, ctx: &Context<'_>, z: &[f64], out: &mut [f64], tau_hint: Option<f64>) {
        ctx.evaluator().constraint_work(|| {
            atlas_core::feasible::project_box_budget(
                z,
                self.lower,
                self.upper,
                self.budget,
                self.mode,
                out,
                tau_hint,
            )
        });
    }
}

/// A search for a sufficient decrease of `f` along a feasible step `u + alpha s`,
/// `alpha` in `(0, 1]`, after the model failed at `alpha = 1`.
struct LineSearch<'l> {
    f: &'l dyn Smooth,
    u: &'l [f64],
    s: &'l [f64],
    fx: f64,
    /// `g . s < 0`.
    slope: f64,
    on_budget: bool,
}

/// A point found by [`LineSearch`].
struct Found {
    alpha: f64,
    point: Vec<f64>,
    value: f64,
    gradient: Vec<f64>,
}

impl LineSearch<'_> {
    /// `f(u + alpha s)`, its gradient, and the slope along `s` there.
    fn at(&self, alpha: f64) -> Found {
        let point: Vec<f64> = self
            .u
            .iter()
            .zip(self.s)
            .map(|(a, b)| a + alpha * b)
            .collect();
        let mut gradient = vec![0.0; point.len()];
        let value = self.f.value_gradient(&point, &mut gradient);
        Found {
            alpha,
            point,
            value,
            gradient,
        }
    }

    fn slope_at(&self, found: &Found) -> f64 {
        slope_along(&found.gradient, self.s, self.on_budget)
    }

    /// Armijo's test, on the trapezoid rule of the gradients when the decrease is below
    /// the rounding of f.
    fn sufficient(&self, found: &Found) -> bool {
        if !found.value.is_finite() {
            return false;
        }
        let alpha = found.alpha;
        let mut decrease = self.fx - found.value;
        if (alpha * self.slope).abs() < 1e-10 * self.fx.abs().max(1.0) {
            decrease = -0.5 * alpha * (self.slope_at(found) + self.slope);
        }
        decrease >= -1e-4 * alpha * self.slope
    }

    /// When the slope along `s` has turned positive at `alpha = 1`, the minimizer along
    /// the step lies inside: it is bracketed and found by safeguarded secant steps on the
    /// slope (past a kink, where the model of the far side is right). Otherwise, or when
    /// that fails, backtracking by quadratic interpolation. `None` when no point of
    /// length above `xtol` decreases `f` enough.
    fn run(&self, f_one: f64, g_one: &[f64], length: f64, xtol: f64) -> Option<Found> {
        let one = Found {
            alpha: 1.0,
            point: Vec::new(),
            value: f_one,
            gradient: g_one.to_vec(),
        };
        let slope_one = self.slope_at(&one);
        if f_one.is_finite() && slope_one > 0.0 {
            let (mut lo, mut slope_lo) = (0.0, self.slope);
            let (mut hi, mut slope_hi) = (1.0, slope_one);
            let mut best: Option<Found> = None;
            for _ in 0..12 {
                let width = hi - lo;
                let secant = lo - slope_lo * width / (slope_hi - slope_lo);
                let alpha = secant.clamp(lo + 0.05 * width, hi - 0.05 * width);
                let found = self.at(alpha);
                let slope = self.slope_at(&found);
                let good = self.sufficient(&found);
                if good && slope.abs() <= 0.1 * self.slope.abs() {
                    return Some(found);
                }
                if slope > 0.0 || !good {
                    hi = alpha;
                    slope_hi = if slope > 0.0 { slope } else { slope_hi };
                } else {
                    lo = alpha;
                    slope_lo = slope;
                }
                if good && best.as_ref().is_none_or(|b| found.value < b.value) {
                    best = Some(found);
                }
                if width * length < xtol {
                    break;
                }
            }
            if best.is_some() {
                return best;
            }
        }
        let mut alpha = 1.0;
        let mut f_alpha = f_one;
        for _ in 0..30 {
            // Minimizer of the quadratic through f(u), its slope and f(u + alpha s), kept
            // within [0.1, 0.5] of alpha.
            let curvature = f_alpha - self.fx - alpha * self.slope;
            let factor = if f_alpha.is_finite() && curvature > 0.0 {
                (-self.slope * alpha / (2.0 * curvature)).clamp(0.1 * alpha, 0.5 * alpha) / alpha
            } else {
                0.1
            };
            alpha *= factor;
            let found = self.at(alpha);
            if self.sufficient(&found) {
                return Some(found);
            }
            f_alpha = found.value;
            if alpha * length < xtol {
                break;
            }
        }
        None
    }
}

impl TrustRegionNewton {
    pub(crate) fn new(settings: NewtonSettings) -> Self {
        Self {
            settings,
            radius: settings.initial_radius,
            iterations: 0,
            state: None,
            last_pg: f64::NAN,
        }
    }

    /// Minimizes `f` from `u` (inside bounds plus budget) until the projected gradient is
    /// below `tolerance`, stepping until the subproblem ends; `None` when `f.report` says
    /// to stop (a limit). For subproblems outside the executor (the proof that a rule is
    /// out of reach).
    pub(crate) fn run(
        &mut self,
        f: &dyn Smooth,
        ctx: &Context<'_>,
        u: &mut [f64],
        tolerance: f64,
    ) -> Option<InnerOutcome> {
        self.begin(f, ctx, u, tolerance);
        loop {
            let step = self.step(f, ctx, u);
            if step.moved && f.report(u).is_break() {
                return None;
            }
            if let Some(outcome) = step.done {
                return Some(outcome);
            }
        }
    }

    /// Starts minimizing `f` from `u` to `tolerance` (a new subproblem, or the same with
    /// new multipliers); the radius and the iteration count carry over.
    pub(crate) fn begin(&mut self, f: &dyn Smooth, ctx: &Context<'_>, u: &[f64], tolerance: f64) {
        let n = u.len();
        let mut g = vec![0.0; n];
        let fx = f.value_gradient(u, &mut g);
        self.state = Some(TrSubproblem {
            tolerance,
            singular: singular_variables(ctx, n),
            g,
            fx,
            tau_hint: None,
            cauchy_length: None,
        });
    }

    /// One iteration on the current subproblem.
    ///
    /// Each iteration follows Lin and Moré's TRON: a generalized Cauchy point along the
    /// projected-gradient path `P(u - t g)` with sufficient decrease of the quadratic
    /// model, then a Steihaug step on the variables the Cauchy point leaves strictly inside
    /// their bounds, taken from the Cauchy point by a projected search that keeps the model
    /// at least as low as there. Every step therefore decreases the model by a fair share
    /// of what the projected gradient promises, and the ratio test decides on the radius.
    pub(crate) fn step(&mut self, f: &dyn Smooth, ctx: &Context<'_>, u: &mut [f64]) -> InnerStep {
        let Some(mut state) = self.state.take() else {
            return InnerStep::done(InnerOutcome::MaxIterations);
        };
        let step = self.step_on(&mut state, f, ctx, u);
        self.state = Some(state);
        step
    }

    fn step_on(
        &mut self,
        state: &mut TrSubproblem,
        f: &dyn Smooth,
        ctx: &Context<'_>,
        u: &mut [f64],
    ) -> InnerStep {
        let ev = ctx.evaluator();
        let set = ctx.problem().feasible_set();
        let (lower, upper) = (set.lower(), set.upper());
        let budget = set.budget();
        let mode = set.budget_mode();
        let exact = mode == BudgetMode::Exact;
        let n = u.len();
        let tolerance = state.tolerance;
        let singular = &state.singular;
        let g = &mut state.g;
        let mut fx = state.fx;
        if !fx.is_finite() {
            return InnerStep::done(InnerOutcome::Stalled {
                projected_gradient: f64::INFINITY,
            });
        }
        let mut diag = vec![0.0; n];
        let mut y = vec![0.0; n];
        let mut g_trial = vec![0.0; n];
        let mut step_lower = lower.to_vec();
        let mut tau_hint = state.tau_hint;
        {
            if self.iterations >= self.settings.max_iterations {
                return InnerStep::done(InnerOutcome::MaxIterations);
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
            // `|P(u - probe g) - u| / probe`: the reduced gradient (budget multiplier
            // included) for variables away from their bounds.
            let z: Vec<f64> = u.iter().zip(g.iter()).map(|(a, b)| a - probe * b).collect();
            let proj = ev.project_box_budget(&z, &mut y, tau_hint);
            tau_hint = Some(proj.tau);
            state.tau_hint = tau_hint;
            let pg = u
                .iter()
                .zip(&y)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
                / probe;
            self.last_pg = pg;
            if pg <= tolerance {
                return InnerStep::done(InnerOutcome::Converged);
            }
            if !pg.is_finite() {
                return InnerStep::done(InnerOutcome::Stalled {
                    projected_gradient: f64::INFINITY,
                });
            }
            for i in 0..n {
                step_lower[i] = if singular[i] && u[i] > lower[i] {
                    // Fraction to the boundary: at zero spend the slope of these curves is
                    // unbounded (a variable taken there would crawl back), and near it no
                    // quadratic model holds over a step that more than halves the spend.
                    lower[i] + SINGULAR_KEEP * (u[i] - lower[i])
                } else {
                    lower[i]
                };
            }
            // Trust-region norm: variable i weighted by its curvature relative to the
            // median, clamped to a band (flat or negatively curved directions would
            // otherwise be unbounded, singular ones frozen).
            let metric: Vec<f64> = match median {
                Some(m) => diag
                    .iter()
                    .map(|d| {
                        let c = if d.is_finite() { d.abs() / m } else { STIFFEST };
                        c.clamp(LOOSEST, STIFFEST)
                    })
                    .collect(),
                None => vec![1.0; n],
            };
            self.iterations += 1;
            let bounds = StepBounds {
                lower: &step_lower,
                upper,
                budget,
                mode,
                exact,
            };
            let model = Model {
                f,
                u,
                g,
                metric: &metric,
                exact,
                budget,
            };
            let start = state.cauchy_length.unwrap_or(probe);
            let Some(cauchy) = self.cauchy_point(ctx, &model, &bounds, start, tau_hint) else {
                // No model decrease along the projected-gradient path (a Hessian that is
                // not finite, say): a projected-gradient step on f itself.
                return match self.gradient_step(f, ctx, u, g, fx, probe, &step_lower, tau_hint) {
                    Some((f_new, _)) => {
                        state.fx = f_new;
                        InnerStep::MOVED
                    }
                    None => InnerStep::done(InnerOutcome::Stalled {
                        projected_gradient: pg,
                    }),
                };
            };
            state.cauchy_length = Some(cauchy.t);
            let mut best = cauchy.point.clone();
            let mut best_q = cauchy.q;
            if let Some(d) = self.subspace_step(ctx, &model, &bounds, &cauchy) {
                // From the Cauchy point along the Newton step: the full step projected,
                // and the step cut at the first bound it meets (on which the model
                // decreases, being the Steihaug path's); the better one if it is no worse
                // than the Cauchy point, else the projected step halved until it is.
                let mut trial = vec![0.0; n];
                let z: Vec<f64> = cauchy.point.iter().zip(&d).map(|(c, di)| c + di).collect();
                bounds.project(ctx, &z, &mut trial, tau_hint);
                let q_full = model.value(&trial);
                if q_full <= best_q {
                    best.copy_from_slice(&trial);
                    best_q = q_full;
                }
                let cut = bounds.first_hit(&cauchy.point, &d);
                if cut < 1.0 && cut > 0.0 {
                    for i in 0..n {
                        trial[i] = cauchy.point[i] + cut * d[i];
                    }
                    bounds.clamp(&mut trial);
                    let q_cut = model.value(&trial);
                    if q_cut <= best_q {
                        best.copy_from_slice(&trial);
                        best_q = q_cut;
                    }
                }
                if best_q == cauchy.q {
                    let mut alpha = 0.5;
                    for _ in 0..6 {
                        let z: Vec<f64> = cauchy
                            .point
                            .iter()
                            .zip(&d)
                            .map(|(c, di)| c + alpha * di)
                            .collect();
                        bounds.project(ctx, &z, &mut trial, tau_hint);
                        let q = model.value(&trial);
                        if q <= best_q {
                            best.copy_from_slice(&trial);
                            best_q = q;
                            break;
                        }
                        alpha *= 0.5;
                    }
                }
            }
            let s: Vec<f64> = best.iter().zip(u.iter()).map(|(t, a)| t - a).collect();
            let length = model.length(&s);
            let pred = -best_q;
            let mut ft = f.value_gradient(&best, &mut g_trial);
            let on_budget = keeps_total(u, &best, budget, exact);
            let mut ared = fx - ft;
            if pred.abs() < 1e-10 * fx.abs().max(1.0) {
                // Differences of f are lost in rounding at this scale: the trapezoid rule
                // on the gradients gives the decrease to third order instead.
                ared =
                    -0.5 * (slope_along(g, &s, on_budget) + slope_along(&g_trial, &s, on_budget));
            }
            let usable = pred > 0.0 && ft.is_finite() && g_trial.iter().all(|v| v.is_finite());
            let rho = if usable {
                ared / pred
            } else {
                f64::NEG_INFINITY
            };
            let radius_before = self.radius;
            if rho < 0.25 {
                self.radius = 0.25 * length.min(self.radius);
            } else if rho > 0.75 && length >= 0.99 * self.radius {
                self.radius = (2.0 * self.radius).min(self.settings.max_radius);
            }
            let mut accepted = rho > ETA;
            let slope = model.slope(&s);
            if !accepted && usable && slope < 0.0 {
                // The model failed over the whole step (typically a penalty switching on
                // part of the way): search along the step itself, which stays feasible.
                // The radius then becomes the length that worked, instead of shrinking
                // blindly.
                let search = LineSearch {
                    f,
                    u,
                    s: &s,
                    fx,
                    slope,
                    on_budget,
                };
                if let Some(found) = search.run(ft, &g_trial, length, self.settings.xtol) {
                    best.copy_from_slice(&found.point);
                    g_trial.copy_from_slice(&found.gradient);
                    ft = found.value;
                    accepted = true;
                    // The model held up to where the search stopped, and the failure was
                    // along this step only: the radius stays.
                    self.radius = (found.alpha * length)
                        .max(radius_before)
                        .min(self.settings.max_radius);
                }
            }
            let decrease = if accepted { fx - ft } else { 0.0 };
            if accepted {
                u.copy_from_slice(&best);
                g.copy_from_slice(&g_trial);
                fx = ft;
                state.fx = fx;
            }
            let done = (self.radius < self.settings.xtol && decrease <= 1e-15 * fx.abs().max(1.0))
                // Steps this short no longer decrease f at this precision.
                .then_some(InnerOutcome::Stalled {
                    projected_gradient: pg,
                });
            InnerStep {
                moved: accepted,
                done,
            }
        }
    }

    /// The generalized Cauchy point: `P(u - t g)` for the largest `t` tried (doubling from
    /// `start` while it succeeds, else halving) whose step is inside the trust region and
    /// decreases the quadratic model by at least 1% of its slope. `None` when no `t`
    /// gives such a step.
    fn cauchy_point(
        &self,
        ctx: &Context<'_>,
        model: &Model<'_>,
        bounds: &StepBounds<'_>,
        start: f64,
        tau_hint: Option<f64>,
    ) -> Option<Cauchy> {
        let n = model.u.len();
        let point_at = |t: f64, out: &mut Vec<f64>| {
            let z: Vec<f64> = model
                .u
                .iter()
                .zip(model.g)
                .map(|(a, b)| a - t * b)
                .collect();
            bounds.project(ctx, &z, out, tau_hint);
        };
        let accept = |point: &[f64]| -> Option<f64> {
            let s: Vec<f64> = point.iter().zip(model.u).map(|(p, a)| p - a).collect();
            let slope = model.slope(&s);
            if slope.is_nan() || slope >= 0.0 || model.length(&s) > self.radius {
                return None;
            }
            let q = model.value(point);
            (q <= 0.01 * slope).then_some(q)
        };
        let mut t = start;
        let mut point = vec![0.0; n];
        point_at(t, &mut point);
        match accept(&point) {
            Some(q) => {
                // Extrapolate while the conditions hold and the point still moves.
                let mut best = Cauchy {
                    point: point.clone(),
                    q,
                    t,
                };
                for _ in 0..8 {
                    t *= 2.0;
                    point_at(t, &mut point);
                    if point == best.point {
                        break;
                    }
                    match accept(&point) {
                        Some(q) if q <= best.q => {
                            best = Cauchy {
                                point: point.clone(),
                                q,
                                t,
                            };
                        }
                        _ => break,
                    }
                }
                Some(best)
            }
            None => {
                for _ in 0..60 {
                    t *= 0.5;
                    point_at(t, &mut point);
                    if let Some(q) = accept(&point) {
                        return Some(Cauchy { point, q, t });
                    }
                }
                None
            }
        }
    }

    /// The Steihaug step from the Cauchy point on the variables it leaves strictly inside
    /// their bounds, with the budget as an equality on them when it binds: it minimizes
    /// the model `q(s_C + d)` whose gradient is `g + H s_C`. `None` when there is nothing
    /// to do or the subproblem failed.
    fn subspace_step(
        &self,
        ctx: &Context<'_>,
        model: &Model<'_>,
        bounds: &StepBounds<'_>,
        cauchy: &Cauchy,
    ) -> Option<Vec<f64>> {
        let _ = ctx;
        let n = model.u.len();
        // Strictly inside, by a relative margin (an infinite bound has none).
        let eps = |v: f64| {
            if v.is_finite() {
                1e-14 * (1.0 + v.abs())
            } else {
                0.0
            }
        };
        let c = &cauchy.point;
        let free: Vec<bool> = (0..n)
            .map(|i| {
                let (lo, hi) = (bounds.lower[i], bounds.upper[i]);
                c[i] > lo + eps(lo) && c[i] < hi - eps(hi)
            })
            .collect();
        let free_count = free.iter().filter(|f| **f).count();
        if free_count == 0 {
            return None;
        }
        // Model gradient at the Cauchy point.
        let s_c: Vec<f64> = c.iter().zip(model.u).map(|(p, a)| p - a).collect();
        let mut r = vec![0.0; n];
        model.hessian_vector(&s_c, &mut r);
        r.iter_mut().zip(model.g).for_each(|(ri, gi)| *ri += gi);
        if r.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let total: f64 = c.iter().sum();
        let mean_free: f64 =
            (0..n).filter(|&i| free[i]).map(|i| r[i]).sum::<f64>() / free_count as f64;
        // With a cap, the budget binds when it is reached and the model would spend more.
        let binding = bounds.exact
            || (total >= bounds.budget - 1e-12 * bounds.budget.max(1.0) && mean_free < 0.0);
        let sc: Vec<f64> = (0..n)
            .map(|i| {
                if free[i] {
                    1.0 / model.metric[i].sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        let normal: Option<Vec<f64>> = if binding {
            let len = norm(&sc);
            (len > 0.0).then(|| sc.iter().map(|s| s / len).collect())
        } else {
            None
        };
        let mut gw: Vec<f64> = sc.iter().zip(&r).map(|(s, ri)| s * ri).collect();
        remove_normal(&mut gw, normal.as_deref());
        let gamma = norm(&gw);
        if !(gamma > 0.0 && gamma.is_finite()) {
            return None;
        }
        // Steihaug's tolerance is both relative to the first residual and absolute: the
        // subproblem is divided by |r| so that the first residual has norm 1 (the
        // minimizer is unchanged).
        gw.iter_mut().for_each(|v| *v /= gamma);
        let products = Cell::new(0);
        let non_finite = Cell::new(false);
        let hessian = |v: &[f64], out: &mut [f64]| model.hessian_vector(v, out);
        let operator = ReducedHessian {
            hessian: &hessian,
            scale: &sc,
            normal: normal.as_deref(),
            factor: 1.0 / gamma,
            last: RefCell::new(None),
            products: &products,
            non_finite: &non_finite,
        };
        // Inexact Newton: relative residual min(FORCING_MAX, sqrt(|r|)) gives superlinear
        // convergence without solving far-off subproblems exactly.
        let forcing = gamma.sqrt().clamp(1e-10, FORCING_MAX);
        let mut steihaug: Steihaug<Vec<f64>, f64> = Steihaug::new()
            .with_epsilon(forcing)
            .ok()?
            .with_max_iters((free_count as u64).clamp(1, MAX_CG_ITERATIONS));
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
        let d: Vec<f64> = w.iter().zip(&sc).map(|(a, s)| a * s).collect();
        d.iter().any(|v| *v != 0.0).then_some(d)
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
                matches!(
                    outcome,
                    Some(InnerOutcome::Converged | InnerOutcome::Stalled { .. })
                ),
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
        let hessian = |v: &[f64], out: &mut [f64]| f.hessian_vector(&u, v, out);
        let op = ReducedHessian {
            hessian: &hessian,
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
