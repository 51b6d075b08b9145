//! The `lbfgs` solver: projected L-BFGS over bounds plus budget, inside the core's
//! augmented Lagrangian for the other rules, from one or several starts.

use std::collections::VecDeque;

use atlas_core::augmented::{
    AlmSettings, AugmentedLagrangian, AugmentedLagrangianSolver, InnerOutcome, InnerSolver,
    InnerStep,
};
use atlas_core::multistart::MultiStart;
use atlas_core::{BudgetMode, Context, Error, Executor, Kv, Solution, Solver};

use crate::config::LbfgsConfig;

/// The `lbfgs` optimizer, built from a checked [`LbfgsConfig`].
#[derive(Debug, Clone)]
pub struct Lbfgs {
    config: LbfgsConfig,
}

impl Lbfgs {
    pub(crate) fn new(config: LbfgsConfig) -> Self {
        Self { config }
    }
}

impl Solver for Lbfgs {
    fn name(&self) -> &str {
        "lbfgs"
    }

    fn solve(&self, ctx: &Context<'_>) -> Result<Solution, Error> {
        if let Some(limit) = self.config.max_evaluations {
            ctx.limit_evaluations(limit);
        }
        let settings = AlmSettings {
            gradient_tolerance: self.config.gtol,
            ..AlmSettings::default()
        };
        let config = &self.config;
        let mut search = MultiStart::new(config.multi_start, config.seed, |_| {
            AugmentedLagrangianSolver::new(ctx, settings, ProjectedLbfgs::new(config))
        });
        // Whatever ends the run, the executor returns the best feasible point it saw.
        Executor::new(ctx).solve(&mut search)
    }
}

/// Projected L-BFGS over `{l <= u <= h, sum(u) = budget}` (or `<= budget`).
///
/// Each iteration fixes the variables that sit at a bound and that a projected gradient
/// step keeps there, takes the quasi-Newton step on the other ("free") variables with the
/// budget as an equality on them (`d = -H g + H 1 (1'H g) / (1'H 1)`, which is the
/// minimizer of the quadratic model on `sum(d) = 0`), and backtracks along the projection
/// arc `P(u + alpha d)` with an Armijo test. When that fails it falls back to the
/// projected-gradient direction, which always descends.
pub(crate) struct ProjectedLbfgs {
    memory: usize,
    max_iterations: u64,
    ftol: f64,
    /// Accepted steps over every subproblem of this run.
    iterations: u64,
    /// The state of the current subproblem.
    tolerance: f64,
    g: Vec<f64>,
    fx: f64,
    history: VecDeque<Pair>,
    tau_hint: Option<f64>,
    small_steps: u32,
    restarts: u32,
    /// Diagnostics of the last step.
    last_alpha: f64,
    last_pg: f64,
    last_gradient_direction: bool,
}

struct Pair {
    s: Vec<f64>,
    y: Vec<f64>,
}

impl ProjectedLbfgs {
    pub(crate) fn new(config: &LbfgsConfig) -> Self {
        Self {
            memory: config.memory,
            max_iterations: config.max_iterations,
            ftol: config.ftol,
            iterations: 0,
            tolerance: config.gtol,
            g: Vec::new(),
            fx: f64::NAN,
            history: VecDeque::with_capacity(config.memory),
            tau_hint: None,
            small_steps: 0,
            restarts: 0,
            last_alpha: f64::NAN,
            last_pg: f64::NAN,
            last_gradient_direction: false,
        }
    }
}

/// Marks the variables whose derivative is unbounded at zero at `u`: channels with a
/// singular curve, in periods whose carry-in from earlier spend is below `threshold`.
fn singular_variables(mmm: &atlas_core::Mmm, u: &[f64], threshold: f64, out: &mut [bool]) {
    let periods = mmm.layout().periods();
    let mut carry = vec![0.0; periods];
    for (c, ch) in mmm.channels().iter().enumerate() {
        let range = c * periods..(c + 1) * periods;
        if !ch.curve.is_singular_at_zero() {
            out[range].iter_mut().for_each(|o| *o = false);
            continue;
        }
        ch.adstock.carry(&u[range.clone()], &mut carry);
        for (o, a) in out[range].iter_mut().zip(&carry) {
            *o = *a < threshold;
        }
    }
}

/// `H v` for each of `vs` (already zero outside the free variables), by the two-loop
/// recursion with the pairs restricted to the free variables (`mask` is 1 on them, 0
/// elsewhere). Pairs without positive curvature there are skipped, so `H` stays positive
/// definite on the free subspace.
fn two_loop(
    history: &VecDeque<Pair>,
    mask: &[f64],
    vs: &mut [Vec<f64>],
    gamma0: f64,
    h0: Option<&[f64]>,
) {
    let n = mask.len();
    // Restricted curvature of each pair: (s.y, y.y) over the free variables.
    let mut curvature: Vec<Option<(f64, f64)>> = Vec::with_capacity(history.len());
    for p in history {
        let (mut sy, mut ss, mut yy) = (0.0, 0.0, 0.0);
        for j in 0..n {
            let (s, y, m) = (p.s[j], p.y[j], mask[j]);
            sy += s * y * m;
            ss += s * s * m;
            yy += y * y * m;
        }
        let ok = sy.is_finite() && sy > 1e-16 * (ss * yy).sqrt() && sy > 0.0;
        curvature.push(ok.then_some((sy, yy)));
    }
    let gamma = history
        .iter()
        .zip(&curvature)
        .rev()
        .find_map(|(_, c)| c.map(|(sy, yy)| sy / yy))
        .unwrap_or(gamma0);
    let k = vs.len();
    let mut alphas = vec![0.0; history.len() * k];
    for (i, p) in history.iter().enumerate().rev() {
        let Some((sy, _)) = curvature[i] else {
            continue;
        };
        for (v, q) in vs.iter_mut().enumerate() {
            // q is zero off the free set, so the plain dot is the restricted one.
            let a: f64 = p.s.iter().zip(q.iter()).map(|(s, x)| s * x).sum::<f64>() / sy;
            alphas[i * k + v] = a;
            for j in 0..n {
                q[j] -= a * p.y[j] * mask[j];
            }
        }
    }
    for q in vs.iter_mut() {
        match h0 {
            Some(h) => q.iter_mut().zip(h).for_each(|(x, d)| *x *= d),
            None => q.iter_mut().for_each(|x| *x *= gamma),
        }
    }
    for (i, p) in history.iter().enumerate() {
        let Some((sy, _)) = curvature[i] else {
            continue;
        };
        for (v, q) in vs.iter_mut().enumerate() {
            let b: f64 = p.y.iter().zip(q.iter()).map(|(y, x)| y * x).sum::<f64>() / sy;
            let c = alphas[i * k + v] - b;
            for j in 0..n {
                q[j] += c * p.s[j] * mask[j];
            }
        }
    }
}

impl InnerSolver for ProjectedLbfgs {
    fn begin(&mut self, f: &AugmentedLagrangian<'_, '_>, u: &[f64], tolerance: f64) {
        self.tolerance = tolerance;
        self.g = vec![0.0; u.len()];
        self.fx = f.value_gradient(u, &mut self.g);
        self.history.clear();
        self.tau_hint = None;
        self.small_steps = 0;
        self.restarts = 0;
    }

    fn kv(&self) -> Kv {
        Kv::new()
            .with("alpha", self.last_alpha)
            .with("projected_gradient", self.last_pg)
            .with("gradient_direction", self.last_gradient_direction)
            .with("pairs", self.history.len())
    }

    fn step(&mut self, f: &AugmentedLagrangian<'_, '_>, u: &mut [f64]) -> InnerStep {
        let ctx = f.context();
        let ev = ctx.evaluator();
        let set = ctx.problem().feasible_set();
        let (lower, upper) = (set.lower(), set.upper());
        let budget = set.budget();
        let exact = set.budget_mode() == BudgetMode::Exact;
        let n = u.len();
        let tolerance = self.tolerance;
        let (g, history) = (&mut self.g, &mut self.history);
        let mut fx = self.fx;
        let mut tau_hint = self.tau_hint;
        let mut y = vec![0.0; n];
        let mut diag = vec![0.0; n];
        let mut trial = vec![0.0; n];
        let mut g_new = vec![0.0; n];
        // Variables whose slope is unbounded at zero (a singular curve with no carry-in
        // from earlier periods): a step may take them at most 99% of the way to their
        // lower bound (fraction to the boundary), since at the bound their gradient is
        // singular and they would crawl back. Recomputed at every iterate.
        let mut singular = vec![false; n];
        let mut step_lower = lower.to_vec();
        let radius = budget;
        {
            if self.iterations >= self.max_iterations {
                return InnerStep::done(InnerOutcome::MaxIterations);
            }
            if let Some(mmm) = ctx.problem().mmm() {
                singular_variables(mmm, u, 1e-3 * budget / n as f64, &mut singular);
                // A positive lower bound keeps the spend, and the slope, away from zero.
                for i in 0..n {
                    singular[i] &= lower[i] <= 0.0;
                }
            }
            // A short projected-gradient step `P(u - s g)`, with `s` the current inverse
            // curvature estimate, gives the active set (variables at a bound that the step
            // keeps there) and the convergence measure `|P(u - s g) - u| / s`, which tends
            // to the reduced gradient (budget multiplier included) as `s` shrinks.
            let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let step = match history.back() {
                Some(p) => {
                    let sy: f64 = p.s.iter().zip(&p.y).map(|(a, b)| a * b).sum();
                    let yy: f64 = p.y.iter().map(|v| v * v).sum();
                    sy / yy
                }
                None => 0.1 * (budget / n as f64) / gmax.max(1e-300),
            };
            // (hard, issue 12) At most the step that moves a variable by the budget: the
            // measure below shrinks as the step grows, and an inverse curvature from a flat
            // stretch (a saturated logistic) made it vanish far from the optimum, which
            // was then reported converged (837,234 for an optimum of 912,103).
            let step = step.min(radius / gmax.max(1e-300));
            let z: Vec<f64> = u.iter().zip(g.iter()).map(|(a, b)| a - step * b).collect();
            let proj = ev.project_box_budget(&z, &mut y, tau_hint);
            tau_hint = Some(proj.tau);
            self.tau_hint = tau_hint;
            let pg = u
                .iter()
                .zip(&y)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
                / step;
            self.last_pg = pg;
            if pg <= tolerance {
                return InnerStep::done(InnerOutcome::Converged);
            }
            if !fx.is_finite() || !pg.is_finite() {
                return InnerStep::done(InnerOutcome::Stalled {
                    projected_gradient: f64::INFINITY,
                });
            }
            // Variables within `w` (the projected step's size) of a bound count as at the
            // bound (Bertsekas' epsilon-active set): if the step pushes them there, they
            // are moved onto it rather than approaching it geometrically. Variables with a
            // singular slope at zero only count when exactly there.
            let w = pg * step;
            let eps = |i: usize, v: f64| {
                let tiny = 1e-14 * (1.0 + v.abs());
                if singular[i] {
                    tiny
                } else {
                    tiny.max(w)
                }
            };
            let at_lower: Vec<bool> = (0..n)
                .map(|i| u[i] <= lower[i] + eps(i, lower[i]))
                .collect();
            let at_upper: Vec<bool> = (0..n)
                .map(|i| u[i] >= upper[i] - eps(i, upper[i]))
                .collect();
            let tight = |v: f64| 1e-14 * (1.0 + v.abs());
            let mut free: Vec<bool> = (0..n)
                .map(|i| {
                    !((at_lower[i] && y[i] <= lower[i] + tight(lower[i]))
                        || (at_upper[i] && y[i] >= upper[i] - tight(upper[i])))
                })
                .collect();
            let total: f64 = u.iter().sum();
            // A cap on spend binds when the projected step hits it and the iterate is
            // within that step of it (epsilon-active, like the bounds): the step then
            // lands exactly on the cap instead of approaching it.
            let to_cap = u.iter().zip(&y).map(|(a, b)| (a - b).abs()).sum::<f64>();
            let binding = exact
                || (proj.budget_binding && total >= budget - to_cap.max(1e-12 * budget.max(1.0)));
            let gamma0 = step;
            // Diagonal preconditioner where the model provides a Hessian diagonal: its
            // inverse, clamped to a band around the median curvature of the free
            // variables (flat directions would take huge steps, and singular curvature,
            // as of power curves near zero, would freeze a variable).
            let h0: Option<Vec<f64>> = if f.hessian_diagonal(u, &mut diag) {
                let mut positive: Vec<f64> = (0..n)
                    .filter(|&i| free[i] && diag[i] > 0.0 && diag[i].is_finite())
                    .map(|i| diag[i])
                    .collect();
                (!positive.is_empty()).then(|| {
                    let mid = positive.len() / 2;
                    let median = *positive.select_nth_unstable_by(mid, f64::total_cmp).1;
                    let (lo, hi) = (median * 1e-3, median * 1e3);
                    diag.iter()
                        .map(|&d| 1.0 / if d.is_finite() { d.clamp(lo, hi) } else { hi })
                        .collect()
                })
            } else {
                None
            };
            // Quasi-Newton direction on the free variables; free variables at a bound
            // that it would push outward are fixed and the direction recomputed.
            let mut d = vec![0.0; n];
            for _pass in 0..4 {
                let mask: Vec<f64> = free.iter().map(|f| if *f { 1.0 } else { 0.0 }).collect();
                let masked_g: Vec<f64> = g.iter().zip(&mask).map(|(a, m)| a * m).collect();
                let mut vs = if binding {
                    vec![masked_g, mask.clone()]
                } else {
                    vec![masked_g]
                };
                two_loop(history, &mask, &mut vs, gamma0, h0.as_deref());
                let hg = &vs[0];
                d = hg.iter().map(|v| -v).collect();
                // Fixed variables move onto their bound; when the budget binds, the free
                // ones make up the change so that the step ends on the budget.
                let mut fixed_move = 0.0;
                for i in 0..n {
                    if !free[i] {
                        d[i] = if at_lower[i] {
                            lower[i] - u[i]
                        } else {
                            upper[i] - u[i]
                        };
                        fixed_move += d[i];
                    }
                }
                if binding {
                    let h1 = &vs[1];
                    let one_h1: f64 = h1.iter().sum();
                    let one_hg: f64 = hg.iter().sum();
                    if one_h1 > 0.0 {
                        let c = (one_hg + (budget - total) - fixed_move) / one_h1;
                        for i in 0..n {
                            if free[i] {
                                d[i] += c * h1[i];
                            }
                        }
                    }
                }
                let mut changed = false;
                for i in 0..n {
                    if free[i] && ((at_lower[i] && d[i] < 0.0) || (at_upper[i] && d[i] > 0.0)) {
                        free[i] = false;
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
            let mut slope: f64 = g.iter().zip(&d).map(|(a, b)| a * b).sum();
            let mut use_gradient = slope >= 0.0 || !slope.is_finite();
            let mut accepted = false;
            let mut fx_new = fx;
            let mut alpha_accepted = f64::NAN;
            for attempt in 0..2 {
                if use_gradient {
                    // Projected-gradient direction: feasible, and descending.
                    history.clear();
                    for i in 0..n {
                        d[i] = y[i] - u[i];
                    }
                    slope = g.iter().zip(&d).map(|(a, b)| a * b).sum();
                    if slope >= 0.0 || slope.is_nan() {
                        return InnerStep::done(InnerOutcome::Stalled {
                            projected_gradient: pg,
                        });
                    }
                }
                for i in 0..n {
                    step_lower[i] = if singular[i] && u[i] > lower[i] {
                        lower[i] + 0.01 * (u[i] - lower[i])
                    } else {
                        lower[i]
                    };
                }
                // The first trial moves no variable by more than the budget (the size of
                // the feasible set): an overlong step, projected, would squeeze every
                // other variable onto its bound.
                let dmax = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let mut alpha = if dmax > radius { radius / dmax } else { 1.0 };
                for _ in 0..60 {
                    let mut inside = true;
                    for i in 0..n {
                        trial[i] = u[i] + alpha * d[i];
                        if trial[i] < step_lower[i] || trial[i] > upper[i] {
                            inside = false;
                        }
                    }
                    if !inside || (!exact && trial.iter().sum::<f64>() > budget) {
                        let z = trial.clone();
                        ev.constraint_work(|| {
                            atlas_core::feasible::project_box_budget(
                                &z,
                                &step_lower,
                                upper,
                                budget,
                                set.budget_mode(),
                                &mut trial,
                                tau_hint,
                            )
                        });
                    }
                    let step_slope: f64 = g
                        .iter()
                        .zip(trial.iter().zip(u.iter()))
                        .map(|(gi, (t, ui))| gi * (t - ui))
                        .sum();
                    let mut next = 0.5;
                    if step_slope < 0.0 {
                        fx_new = f.value_gradient(&trial, &mut g_new);
                        if fx_new.is_finite() && fx_new <= fx + 1e-4 * step_slope {
                            accepted = true;
                            alpha_accepted = alpha;
                            break;
                        }
                        // Minimizer of the quadratic through f(0), its slope and f(alpha),
                        // kept within [0.1, 0.5] of the current step.
                        if fx_new.is_finite() {
                            let curvature = fx_new - fx - step_slope;
                            if curvature > 0.0 {
                                next = (-step_slope / (2.0 * curvature)).clamp(0.1, 0.5);
                            }
                        } else {
                            next = 0.1;
                        }
                    }
                    alpha *= next;
                    if alpha < 1e-20 {
                        break;
                    }
                }
                if accepted || use_gradient || attempt == 1 {
                    break;
                }
                use_gradient = true;
            }
            self.last_gradient_direction = use_gradient;
            if !accepted {
                return InnerStep::done(InnerOutcome::Stalled {
                    projected_gradient: pg,
                });
            }
            self.last_alpha = alpha_accepted;
            self.iterations += 1;
            // Curvature pair.
            let s: Vec<f64> = trial.iter().zip(u.iter()).map(|(a, b)| a - b).collect();
            let yv: Vec<f64> = g_new.iter().zip(g.iter()).map(|(a, b)| a - b).collect();
            let sy: f64 = s.iter().zip(&yv).map(|(a, b)| a * b).sum();
            if sy > 1e-16 && sy.is_finite() {
                if history.len() == self.memory {
                    history.pop_front();
                }
                history.push_back(Pair { s, y: yv });
            }
            let decrease = fx - fx_new;
            u.copy_from_slice(&trial);
            g.copy_from_slice(&g_new);
            fx = fx_new;
            self.fx = fx;
            if decrease <= self.ftol * fx.abs().max(1.0) {
                self.small_steps += 1;
                if self.small_steps >= 3 {
                    // Stuck far from stationarity: the curvature pairs mislead, so start
                    // afresh from the gradient (a few times) before giving up.
                    if pg > (1e3 * tolerance).max(1e-4) && self.restarts < 3 {
                        self.restarts += 1;
                        self.small_steps = 0;
                        history.clear();
                        return InnerStep::MOVED;
                    }
                    // The objective no longer decreases by more than `ftol`: converged
                    // by that test when the projected gradient is near zero, else a
                    // stall.
                    return InnerStep {
                        moved: true,
                        done: Some(InnerOutcome::Stalled {
                            projected_gradient: pg,
                        }),
                    };
                }
            } else {
                self.small_steps = 0;
            }
            InnerStep::MOVED
        }
    }
}
