//! Constraint handling shared by the gradient backends: an augmented Lagrangian
//! (Powell–Hestenes–Rockafellar) over the linear rows and the nonlinear rows (`min_roi`,
//! the `min_spend` target), with bounds and budget left to the inner solver, which keeps
//! every iterate inside them by projection.
//!
//! A backend supplies an [`InnerSolver`] that takes steps on a smooth function over bounds
//! plus budget; [`AugmentedLagrangianSolver`] wraps it into an
//! [`IterativeSolver`] (multiplier updates, penalty growth, tolerances between
//! subproblems) and finishes with an exact projection onto the linear rows, so the
//! returned point is feasible for them to rounding. The [`Executor`](crate::Executor)
//! runs it, with every limit.

use std::cell::RefCell;

use crate::context::Context;
use crate::error::Error;
use crate::executor::{Iterate, IterativeSolver, Kv, Step, Termination};
use crate::feasible::{LinearRows, ProjectionWorkspace};
use crate::scaled::Scaled;
use crate::solver::Status;

/// Outer-loop settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlmSettings {
    /// Final tolerance of the inner solves (projected gradient, scaled units).
    pub gradient_tolerance: f64,
    /// Largest violation of a linear row accepted as satisfied (scaled units: budget = 1);
    /// what is left is removed by the final projection.
    pub feasibility_tolerance: f64,
    /// Largest violation of a nonlinear row accepted as satisfied (relative to its scale);
    /// tighter, since no projection repairs these.
    pub nonlinear_tolerance: f64,
    /// Outer iterations at most.
    pub max_outer_iterations: usize,
    /// Initial penalty.
    pub initial_penalty: f64,
    /// Largest penalty.
    pub max_penalty: f64,
}

impl Default for AlmSettings {
    fn default() -> Self {
        Self {
            gradient_tolerance: 1e-9,
            feasibility_tolerance: 1e-10,
            nonlinear_tolerance: 1e-12,
            max_outer_iterations: 60,
            initial_penalty: 10.0,
            max_penalty: 1e10,
        }
    }
}

/// How an inner solve ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InnerOutcome {
    /// The tolerance was met.
    Converged,
    /// No step decreases the function at this precision (a line search that failed, a
    /// radius below its tolerance), with the projected gradient where it stalled: near a
    /// stationary point that is convergence, far from one a numerical failure.
    Stalled {
        /// The projected-gradient measure at the stall (scaled units).
        projected_gradient: f64,
    },
    /// The inner solver's own iteration limit.
    MaxIterations,
}

/// What one inner step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InnerStep {
    /// Whether the point moved (an accepted step).
    pub moved: bool,
    /// Set when the subproblem is finished (after the move, if any).
    pub done: Option<InnerOutcome>,
}

impl InnerStep {
    /// An accepted step.
    pub const MOVED: InnerStep = InnerStep {
        moved: true,
        done: None,
    };
    /// A step that only changed the solver's state.
    pub const UNMOVED: InnerStep = InnerStep {
        moved: false,
        done: None,
    };
    /// The subproblem ended without a move.
    pub fn done(outcome: InnerOutcome) -> Self {
        Self {
            moved: false,
            done: Some(outcome),
        }
    }
}

/// Minimizes a smooth function over bounds plus budget, one step at a time (the inner
/// problem of the augmented Lagrangian, or the whole problem when there are no rows).
/// No loop and no limits: the [`AugmentedLagrangianSolver`] calls it, the
/// [`Executor`](crate::Executor) decides when to stop.
pub trait InnerSolver: Send {
    /// Starts a subproblem: minimize `f` from `u` (inside bounds plus budget) until the
    /// projected gradient is below `tolerance`. Called again, with the same point, when
    /// the multipliers or the penalty change.
    fn begin(&mut self, f: &AugmentedLagrangian<'_, '_>, u: &[f64], tolerance: f64);

    /// One step on the subproblem, moving `u` when it accepts one.
    fn step(&mut self, f: &AugmentedLagrangian<'_, '_>, u: &mut [f64]) -> InnerStep;

    /// Diagnostics of the last step, for observers.
    fn kv(&self) -> Kv {
        Kv::new()
    }
}

/// A stalled inner solve counts as converged when its projected gradient is at most this
/// multiple of the tolerance asked for, or below [`STALL_STATIONARY`]: it stalled where
/// rounding, not the method, stops progress.
const STALL_FACTOR: f64 = 1e3;
/// See [`STALL_FACTOR`] (scaled units: the objective and budget are of order one).
const STALL_STATIONARY: f64 = 1e-5;

/// Whether a stall at `projected_gradient` is, in truth, convergence to `tolerance`.
fn stall_is_stationary(projected_gradient: f64, tolerance: f64) -> bool {
    projected_gradient <= (STALL_FACTOR * tolerance).max(STALL_STATIONARY)
}

/// Violations below this (scaled units, well inside the contract's `1e-6`) count as
/// feasible.
pub const FEASIBLE: f64 = 1e-9;

struct Cache {
    u: Vec<f64>,
    model_value: f64,
    model_gradient: Vec<f64>,
    row_values: Vec<f64>,
    phi: f64,
}

/// `L(u) = phi(u) + PHR penalties of the rows`, with value, gradient and (generalized)
/// Hessian-vector product; evaluates through the context's counted evaluator.
pub struct AugmentedLagrangian<'c, 'a> {
    ctx: &'c Context<'a>,
    problem: &'a Scaled,
    /// Multipliers of the linear rows: positive when the upper limit binds, negative for
    /// the lower one.
    row_multipliers: Vec<f64>,
    /// Multipliers of the nonlinear rows (`>= 0`).
    nonlinear_multipliers: Vec<f64>,
    penalty: f64,
    cache: RefCell<Option<Cache>>,
    uses_model: bool,
}

impl<'c, 'a> AugmentedLagrangian<'c, 'a> {
    /// The augmented Lagrangian of the context's problem with zero multipliers.
    pub fn new(ctx: &'c Context<'a>, penalty: f64) -> Self {
        let problem = ctx.problem();
        let uses_model = problem.objective().model != 0.0 || !problem.nonlinear_rows().is_empty();
        Self {
            ctx,
            problem,
            row_multipliers: vec![0.0; problem.feasible_set().rows().len()],
            nonlinear_multipliers: vec![0.0; problem.nonlinear_rows().len()],
            penalty,
            cache: RefCell::new(None),
            uses_model,
        }
    }

    /// The context.
    pub fn context(&self) -> &'c Context<'a> {
        self.ctx
    }

    /// Number of variables.
    pub fn dim(&self) -> usize {
        self.problem.dim()
    }

    fn rows(&self) -> &'a LinearRows {
        self.problem.feasible_set().rows()
    }

    /// Whether there is anything beyond bounds and budget (else `L = phi`).
    pub fn has_rows(&self) -> bool {
        !self.rows().is_empty() || !self.problem.nonlinear_rows().is_empty()
    }

    fn evaluate(&self, u: &[f64]) {
        if self.cache.borrow().as_ref().is_some_and(|c| c.u == u) {
            return;
        }
        let n = u.len();
        let mut model_gradient = vec![0.0; n];
        let model_value = if self.uses_model {
            self.ctx.evaluator().model_gradient(u, &mut model_gradient)
        } else {
            0.0
        };
        let spend: f64 = u.iter().sum();
        let rows = self.rows();
        let mut row_values = vec![0.0; rows.len()];
        if !rows.is_empty() {
            self.ctx
                .evaluator()
                .constraint_work(|| rows.mul(u, &mut row_values));
        }
        let phi = self.problem.objective().value(model_value, spend);
        *self.cache.borrow_mut() = Some(Cache {
            u: u.to_vec(),
            model_value,
            model_gradient,
            row_values,
            phi,
        });
    }

    /// Coefficient of row `i`'s gradient `a_i` in `∇L` (also its updated multiplier).
    #[inline]
    fn row_coefficient(&self, i: usize, r: f64) -> f64 {
        let rows = self.rows();
        let (lo, hi) = (rows.lower()[i], rows.upper()[i]);
        let l = self.row_multipliers[i];
        let rho = self.penalty;
        if lo == hi {
            return l + rho * (r - hi);
        }
        let up = (l.max(0.0) + rho * (r - hi)).max(0.0);
        let down = ((-l).max(0.0) + rho * (lo - r)).max(0.0);
        up - down
    }

    /// Whether row `i`'s penalty is curved at row value `r` (an equality, or a limit whose
    /// shifted residual is positive).
    #[inline]
    fn row_active(&self, i: usize, r: f64) -> bool {
        let rows = self.rows();
        let (lo, hi) = (rows.lower()[i], rows.upper()[i]);
        let l = self.row_multipliers[i];
        let rho = self.penalty;
        lo == hi || l.max(0.0) + rho * (r - hi) > 0.0 || (-l).max(0.0) + rho * (lo - r) > 0.0
    }

    /// Weight `m_j >= 0` of the nonlinear row `j` in `∇L` (`-m_j ∇c_j`), and its updated
    /// multiplier.
    #[inline]
    fn nonlinear_weight(&self, j: usize, model_value: f64, spend: f64) -> f64 {
        let row = &self.problem.nonlinear_rows()[j];
        let c = row.lhs.value(model_value, spend) - row.rhs;
        (self.nonlinear_multipliers[j] - self.penalty * c).max(0.0)
    }

    /// `L(u)` and its gradient.
    pub fn value_gradient(&self, u: &[f64], grad: &mut [f64]) -> f64 {
        self.evaluate(u);
        let cache = self.cache.borrow();
        let c = cache.as_ref().expect("evaluated above");
        let rho = self.penalty;
        let spend: f64 = u.iter().sum();
        let obj = self.problem.objective();
        let mut w_model = obj.model;
        let mut w_spend = obj.spend;
        let mut value = c.phi;
        for (j, row) in self.problem.nonlinear_rows().iter().enumerate() {
            let m = self.nonlinear_weight(j, c.model_value, spend);
            let mu = self.nonlinear_multipliers[j];
            value += (m * m - mu * mu) / (2.0 * rho);
            w_model -= m * row.lhs.model;
            w_spend -= m * row.lhs.spend;
        }
        for (g, mg) in grad.iter_mut().zip(&c.model_gradient) {
            *g = w_model * mg + w_spend;
        }
        let rows = self.rows();
        for i in 0..rows.len() {
            let r = c.row_values[i];
            let coef = self.row_coefficient(i, r);
            let l = self.row_multipliers[i];
            let (lo, hi) = (rows.lower()[i], rows.upper()[i]);
            value += if lo == hi {
                l * (r - hi) + 0.5 * rho * (r - hi) * (r - hi)
            } else {
                let up0 = l.max(0.0);
                let down0 = (-l).max(0.0);
                let up = coef.max(0.0);
                let down = (-coef).max(0.0);
                (up * up - up0 * up0 + down * down - down0 * down0) / (2.0 * rho)
            };
            if coef != 0.0 {
                let (idx, val) = rows.row(i);
                for (&k, &a) in idx.iter().zip(val) {
                    grad[k] += coef * a;
                }
            }
        }
        value
    }

    /// `L(u)`.
    pub fn value(&self, u: &[f64]) -> f64 {
        let mut g = vec![0.0; u.len()];
        self.value_gradient(u, &mut g)
    }

    /// Generalized Hessian-vector product `∇²L(u) v` (exact where the penalty terms are
    /// twice differentiable).
    pub fn hessian_vector(&self, u: &[f64], v: &[f64], out: &mut [f64]) {
        self.evaluate(u);
        let cache = self.cache.borrow();
        let c = cache.as_ref().expect("evaluated above");
        let rho = self.penalty;
        let spend: f64 = u.iter().sum();
        let v_sum: f64 = v.iter().sum();
        let obj = self.problem.objective();
        let mut w_model = obj.model;
        let mut rank_one: Vec<(f64, f64, f64)> = Vec::new(); // (model, spend, grad_c . v)
        let gr_v: f64 = c.model_gradient.iter().zip(v).map(|(a, b)| a * b).sum();
        for (j, row) in self.problem.nonlinear_rows().iter().enumerate() {
            let m = self.nonlinear_weight(j, c.model_value, spend);
            w_model -= m * row.lhs.model;
            if m > 0.0 {
                rank_one.push((
                    row.lhs.model,
                    row.lhs.spend,
                    row.lhs.model * gr_v + row.lhs.spend * v_sum,
                ));
            }
        }
        if w_model != 0.0 {
            self.ctx.evaluator().model_hessian_vector(u, v, out);
            out.iter_mut().for_each(|o| *o *= w_model);
        } else {
            out.iter_mut().for_each(|o| *o = 0.0);
        }
        for (cm, cs, dot) in rank_one {
            for (o, g) in out.iter_mut().zip(&c.model_gradient) {
                *o += rho * (cm * g + cs) * dot;
            }
        }
        let rows = self.rows();
        for i in 0..rows.len() {
            if self.row_active(i, c.row_values[i]) {
                let av = rows.dot(i, v);
                let (idx, val) = rows.row(i);
                for (&k, &a) in idx.iter().zip(val) {
                    out[k] += rho * a * av;
                }
            }
        }
    }

    /// The diagonal of `∇²L(u)` (generalized, like [`hessian_vector`](Self::hessian_vector))
    /// into `out`; `false` when the model provides no Hessian diagonal.
    pub fn hessian_diagonal(&self, u: &[f64], out: &mut [f64]) -> bool {
        self.evaluate(u);
        let cache = self.cache.borrow();
        let c = cache.as_ref().expect("evaluated above");
        let rho = self.penalty;
        let spend: f64 = u.iter().sum();
        let obj = self.problem.objective();
        let mut w_model = obj.model;
        let mut rank_one: Vec<(f64, f64)> = Vec::new();
        for (j, row) in self.problem.nonlinear_rows().iter().enumerate() {
            let m = self.nonlinear_weight(j, c.model_value, spend);
            w_model -= m * row.lhs.model;
            if m > 0.0 {
                rank_one.push((row.lhs.model, row.lhs.spend));
            }
        }
        if w_model != 0.0 {
            if !self.ctx.evaluator().model_hessian_diagonal(u, out) {
                return false;
            }
            out.iter_mut().for_each(|o| *o *= w_model);
        } else {
            out.iter_mut().for_each(|o| *o = 0.0);
        }
        for (cm, cs) in rank_one {
            for (o, g) in out.iter_mut().zip(&c.model_gradient) {
                let d = cm * g + cs;
                *o += rho * d * d;
            }
        }
        let rows = self.rows();
        for i in 0..rows.len() {
            if self.row_active(i, c.row_values[i]) {
                let (idx, val) = rows.row(i);
                for (&k, &a) in idx.iter().zip(val) {
                    out[k] += rho * a * a;
                }
            }
        }
        true
    }

    /// The objective `phi` at the last evaluated point.
    pub fn phi(&self, u: &[f64]) -> f64 {
        self.evaluate(u);
        self.cache.borrow().as_ref().map_or(f64::NAN, |c| c.phi)
    }

    /// Largest violation of the linear and nonlinear rows at `u` (scaled units).
    pub fn violation(&self, u: &[f64]) -> f64 {
        let (linear, nonlinear) = self.violations(u);
        linear.max(nonlinear)
    }

    /// Largest violations at `u` of the linear rows and of the nonlinear rows, apart.
    pub fn violations(&self, u: &[f64]) -> (f64, f64) {
        self.evaluate(u);
        let cache = self.cache.borrow();
        let c = cache.as_ref().expect("evaluated above");
        let rows = self.rows();
        let linear = (0..rows.len())
            .map(|i| rows.residual(i, c.row_values[i]))
            .fold(0.0, f64::max);
        let nonlinear = self
            .problem
            .nonlinear_violation(c.model_value, u.iter().sum());
        (linear, nonlinear)
    }

    /// The iterate at `u`: its objective and whether it meets every rule.
    pub fn iterate(&self, u: &[f64]) -> Iterate {
        let phi = self.phi(u);
        let feasible = !self.has_rows() || self.violation(u) <= FEASIBLE;
        Iterate {
            u: u.to_vec(),
            phi,
            feasible,
        }
    }

    /// Updates the multipliers at `u`; returns the complementarity-aware violation
    /// `max_i \|max(g_i, -mu_i / rho)\|` (Birgin–Martínez) used to steer the penalty.
    fn update_multipliers(&mut self, u: &[f64]) -> f64 {
        self.evaluate(u);
        let (row_values, model_value) = {
            let cache = self.cache.borrow();
            let c = cache.as_ref().expect("evaluated above");
            (c.row_values.clone(), c.model_value)
        };
        let spend: f64 = u.iter().sum();
        let rows = self.rows();
        let rho = self.penalty;
        let mut measure = 0.0f64;
        for (i, &r) in row_values.iter().enumerate() {
            let (lo, hi) = (rows.lower()[i], rows.upper()[i]);
            let l = self.row_multipliers[i];
            let m = if lo == hi {
                (r - hi).abs()
            } else {
                let up = (r - hi).max(-l.max(0.0) / rho).abs();
                let down = (lo - r).max(-(-l).max(0.0) / rho).abs();
                // An absent limit is never violated nor active.
                let up = if hi.is_finite() { up } else { 0.0 };
                let down = if lo.is_finite() { down } else { 0.0 };
                up.max(down)
            };
            measure = measure.max(m);
            self.row_multipliers[i] = self.row_coefficient(i, r);
        }
        for j in 0..self.nonlinear_multipliers.len() {
            let row = &self.problem.nonlinear_rows()[j];
            let c = row.lhs.value(model_value, spend) - row.rhs;
            let mu = self.nonlinear_multipliers[j];
            measure = measure.max((-c).max(-mu / rho).abs());
            self.nonlinear_multipliers[j] = self.nonlinear_weight(j, model_value, spend);
        }
        // The multipliers changed: the cached point stays valid (values only).
        measure
    }
}

/// The augmented-Lagrangian method as an [`IterativeSolver`], around any inner solver
/// of bounds plus budget: each step is one inner step; when a subproblem ends, the
/// multipliers and the penalty are updated (Birgin–Martínez) and the next subproblem
/// begins from the same point. Without rows it is the inner solver alone.
///
/// [`finish`](IterativeSolver::finish) removes what violation of the linear rows is left
/// by an exact projection, so the end point meets them to rounding.
pub struct AugmentedLagrangianSolver<'c, 'a, I> {
    al: AugmentedLagrangian<'c, 'a>,
    inner: I,
    settings: AlmSettings,
    u: Vec<f64>,
    tolerance: f64,
    previous: f64,
    outer: usize,
}

impl<'c, 'a, I: InnerSolver> AugmentedLagrangianSolver<'c, 'a, I> {
    /// The method over `ctx`'s problem with `inner` solving the subproblems.
    pub fn new(ctx: &'c Context<'a>, settings: AlmSettings, inner: I) -> Self {
        Self {
            al: AugmentedLagrangian::new(ctx, settings.initial_penalty),
            inner,
            settings,
            u: Vec::new(),
            tolerance: settings.gradient_tolerance,
            previous: f64::INFINITY,
            outer: 0,
        }
    }

    /// The inner solver.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    /// Outer iterations (subproblems finished) so far.
    pub fn outer_iterations(&self) -> usize {
        self.outer
    }

    fn kv(&self) -> Kv {
        let mut kv = Kv::new()
            .with("outer", self.outer)
            .with("tolerance", self.tolerance);
        if self.al.has_rows() {
            kv.push("penalty", self.al.penalty);
        }
        kv.extend(self.inner.kv());
        kv
    }

    /// After a subproblem ended with `outcome`: the verdict, or `None` to go on with the
    /// next subproblem (already begun).
    fn outer_update(&mut self, outcome: InnerOutcome) -> Option<Termination> {
        let settings = self.settings;
        if !self.al.has_rows() {
            return Some(match outcome {
                InnerOutcome::Converged => Termination::Converged,
                InnerOutcome::Stalled { projected_gradient }
                    if stall_is_stationary(projected_gradient, self.tolerance) =>
                {
                    Termination::Converged
                }
                InnerOutcome::Stalled { .. } => Termination::NumericalError,
                InnerOutcome::MaxIterations => Termination::MaxIterations,
            });
        }
        // The inner solver's iteration budget is spent for good: no further subproblem
        // can move the point.
        if outcome == InnerOutcome::MaxIterations {
            return Some(Termination::MaxIterations);
        }
        self.outer += 1;
        let u = &self.u;
        let (linear, nonlinear) = self.al.violations(u);
        let satisfied =
            linear <= settings.feasibility_tolerance && nonlinear <= settings.nonlinear_tolerance;
        let measure = self.al.update_multipliers(u);
        let inner_done = self.tolerance <= settings.gradient_tolerance;
        if satisfied && measure <= 1e-8 && inner_done {
            return Some(Termination::Converged);
        }
        if let InnerOutcome::Stalled { projected_gradient } = outcome {
            if satisfied && inner_done {
                return Some(if stall_is_stationary(projected_gradient, self.tolerance) {
                    Termination::Converged
                } else {
                    Termination::NumericalError
                });
            }
        }
        if self.outer >= settings.max_outer_iterations {
            return Some(Termination::MaxIterations);
        }
        if measure > 0.25 * self.previous {
            self.al.penalty = (self.al.penalty * 10.0).min(settings.max_penalty);
        }
        self.previous = measure;
        self.tolerance = (self.tolerance * 0.1).max(settings.gradient_tolerance);
        self.inner.begin(&self.al, &self.u, self.tolerance);
        None
    }
}

impl<I: InnerSolver> IterativeSolver for AugmentedLagrangianSolver<'_, '_, I> {
    fn init(&mut self, _ctx: &Context<'_>, start: &[f64]) -> Result<Iterate, Error> {
        self.u = start.to_vec();
        self.outer = 0;
        self.previous = f64::INFINITY;
        self.al.penalty = self.settings.initial_penalty;
        self.al.row_multipliers.iter_mut().for_each(|m| *m = 0.0);
        self.al
            .nonlinear_multipliers
            .iter_mut()
            .for_each(|m| *m = 0.0);
        self.tolerance = if self.al.has_rows() {
            1e-3f64.max(self.settings.gradient_tolerance)
        } else {
            self.settings.gradient_tolerance
        };
        self.inner.begin(&self.al, &self.u, self.tolerance);
        Ok(self.al.iterate(&self.u))
    }

    fn step(&mut self, _ctx: &Context<'_>) -> Result<Step, Error> {
        let inner = self.inner.step(&self.al, &mut self.u);
        let termination = inner.done.and_then(|outcome| self.outer_update(outcome));
        let mut step = if inner.moved {
            Step::moved(self.al.iterate(&self.u))
        } else {
            Step::unmoved()
        };
        step.kv = self.kv();
        step.termination = termination;
        Ok(step)
    }

    fn finish(&mut self, ctx: &Context<'_>, _status: Status) -> Result<Iterate, Error> {
        if self.al.has_rows() {
            // Remove what violation is left of the linear rows by an exact projection,
            // unless it costs more on the nonlinear rows than it saves on the linear ones.
            let mut projected = self.u.clone();
            let mut ws = ProjectionWorkspace::default();
            if ctx
                .evaluator()
                .project(&self.u, &mut projected, &mut ws)
                .is_ok()
                && self.al.violation(&projected)
                    <= self
                        .al
                        .violation(&self.u)
                        .max(10.0 * self.settings.feasibility_tolerance)
            {
                self.u = projected;
            }
        }
        Ok(self.al.iterate(&self.u))
    }
}
