//! Polish: with the integer decisions fixed (which channels are on, how many units each
//! unit-bought variable takes), the rest is a smooth problem on a polyhedron, solved on
//! the true curves in two phases that both use the core's exact projection:
//!
//! 1. projected Newton steps in the metric of the Hessian's diagonal: the projection in
//!    that metric is the core's Euclidean projection after the change of variables
//!    `v = sqrt(D) u` (bounds, budget and rows rewritten for `v`). Curvatures differ by
//!    many orders of magnitude between channels (a power curve near zero against a
//!    saturated one), which defeats unscaled gradient steps;
//! 2. a spectral projected gradient method (Birgin, Martínez and Raydan) to finish, and
//!    to take over where the first phase cannot proceed.

use std::collections::VecDeque;
use std::ops::ControlFlow;

use atlas_core::feasible::ProjectionWorkspace;
use atlas_core::{BudgetMode, Context, FeasibleSet, RowOrigin, Status};

use crate::model::Decision;

/// Iterations at most: the start is already within the curve error of the optimum, so
/// this is a generous ceiling rather than an expected count.
const MAX_ITERATIONS: usize = 5_000;
/// Stop when the projected gradient `|P(u - s g) - u| / s` (scaled units) is below this.
const TOLERANCE: f64 = 1e-10;
/// Nonmonotone line search memory (objective values compared against).
const MEMORY: usize = 10;
/// Consecutive iterations without a better point after which the search has stalled
/// (the nonmonotone search may climb for up to `MEMORY` iterations before it descends).
const STALL: usize = 2 * MEMORY;
/// Tenfold shrinks of a step whose projection fails before giving up.
const PROJECTION_RETRIES: usize = 12;

/// The polished point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Polished {
    /// The point, feasible for the fixed decisions.
    pub u: Vec<f64>,
    /// Its objective `phi` (fixed costs included).
    pub phi: f64,
    /// Set when the context stopped the polish (a limit).
    pub stopped: Option<Status>,
}

/// The feasible set with the decisions fixed: unit counts and switched-off channels as
/// equal bounds, the minimum buy of every channel that is on as a row.
pub(crate) fn fixed_set(ctx: &Context<'_>, decision: &Decision) -> FeasibleSet {
    let problem = ctx.problem();
    let compiled = ctx.compiled();
    let set = problem.feasible_set();
    let periods = compiled.layout().periods();
    let mut lower = set.lower().to_vec();
    let mut upper = set.upper().to_vec();
    for (j, f) in decision.fixed.iter().enumerate() {
        if let Some(v) = *f {
            lower[j] = v;
            upper[j] = v;
        }
    }
    let mut out = FeasibleSet::new(lower, upper, set.budget(), set.budget_mode());
    let rows = set.rows();
    for i in 0..rows.len() {
        let (idx, val) = rows.row(i);
        let terms: Vec<(usize, f64)> = idx.iter().copied().zip(val.iter().copied()).collect();
        out.add_row(
            &terms,
            rows.lower()[i],
            rows.upper()[i],
            set.row_origin(i).clone(),
        );
    }
    let scale = problem.spend_scale();
    for (c, on) in decision.active.iter().enumerate() {
        if let (Some(true), Some(m)) = (on, compiled.integer_rules().min_active[c]) {
            let terms: Vec<(usize, f64)> = (0..periods).map(|t| (c * periods + t, 1.0)).collect();
            out.add_row(
                &terms,
                m / scale,
                f64::INFINITY,
                RowOrigin {
                    field: format!("channels[{c}].min_active"),
                    description: format!(
                        "{} spends at least {m} once on",
                        compiled.layout().channels()[c]
                    ),
                },
            );
        }
    }
    out
}

/// `phi(u)` with the fixed costs of the channels that spend, in scaled units.
pub(crate) fn phi_with_fixed_costs(ctx: &Context<'_>, u: &[f64], grad: Option<&mut [f64]>) -> f64 {
    let ev = ctx.evaluator();
    let phi = match grad {
        Some(g) => ev.objective_gradient(u, g),
        None => ev.objective(u),
    };
    phi + fixed_costs(ctx, u)
}

fn fixed_costs(ctx: &Context<'_>, u: &[f64]) -> f64 {
    let compiled = ctx.compiled();
    let periods = compiled.layout().periods();
    let scale = ctx.problem().response_scale();
    compiled
        .integer_rules()
        .fixed_cost
        .iter()
        .enumerate()
        .filter_map(|(c, f)| {
            let total: f64 = u[c * periods..(c + 1) * periods].iter().sum();
            f.filter(|_| total > 0.0).map(|f| f / scale)
        })
        .sum()
}

/// `P(u - s g)` into `out`, shrinking `s` tenfold while the projection fails (a point
/// far outside the set can defeat its Newton iteration); the step used, or `None`.
fn projected_step(
    ctx: &Context<'_>,
    set: &FeasibleSet,
    u: &[f64],
    g: &[f64],
    mut s: f64,
    out: &mut [f64],
    ws: &mut ProjectionWorkspace,
) -> Option<f64> {
    let ev = ctx.evaluator();
    let mut z = vec![0.0; u.len()];
    for _ in 0..PROJECTION_RETRIES {
        for i in 0..u.len() {
            z[i] = u[i] - s * g[i];
        }
        if ev.constraint_work(|| set.project(&z, out, ws)).is_ok() {
            return Some(s);
        }
        ws.reset();
        s *= 0.1;
    }
    None
}

/// Minimizes `phi` over `set` from `start` (already in `set`). Every accepted step is
/// reported to the context; the activity of channels cannot change inside `set` except
/// for a channel with no minimum buy reaching zero, which only lowers the fixed costs.
pub(crate) fn polish(ctx: &Context<'_>, set: &FeasibleSet, start: &[f64]) -> Polished {
    let first = scaled_newton(ctx, set, start);
    if first.stopped.is_some() {
        return first;
    }
    let second = spectral_gradient(ctx, set, &first.u);
    if second.phi <= first.phi {
        second
    } else {
        Polished {
            stopped: second.stopped,
            ..first
        }
    }
}

/// Newton iterations at most in the first phase.
const NEWTON_ITERATIONS: usize = 500;

/// The set in the variables `v = sqrt(d) u`: bounds scaled, the budget and every row
/// rewritten with coefficients divided by `sqrt(d)`.
fn scaled_set(set: &FeasibleSet, root: &[f64]) -> FeasibleSet {
    let n = set.dim();
    let lower: Vec<f64> = (0..n).map(|i| set.lower()[i] * root[i]).collect();
    let upper: Vec<f64> = (0..n).map(|i| set.upper()[i] * root[i]).collect();
    // The budget becomes a row; the set's own budget is made a cap that no point
    // satisfying that row can reach.
    let reach: f64 = set.budget() * root.iter().fold(0.0f64, |m, r| m.max(*r));
    let mut out = FeasibleSet::new(lower, upper, 2.0 * reach + 1.0, BudgetMode::AtMost);
    let origin = RowOrigin {
        field: "polish".to_string(),
        description: "scaled row".to_string(),
    };
    let budget: Vec<(usize, f64)> = (0..n).map(|i| (i, 1.0 / root[i])).collect();
    let lo = match set.budget_mode() {
        BudgetMode::Exact => set.budget(),
        BudgetMode::AtMost => f64::NEG_INFINITY,
    };
    out.add_row(&budget, lo, set.budget(), origin.clone());
    let rows = set.rows();
    for i in 0..rows.len() {
        let (idx, val) = rows.row(i);
        let terms: Vec<(usize, f64)> = idx
            .iter()
            .zip(val)
            .map(|(&j, &a)| (j, a / root[j]))
            .collect();
        out.add_row(&terms, rows.lower()[i], rows.upper()[i], origin.clone());
    }
    out
}

/// Phase 1: `u + lambda (P_D(u - D^-1 g) - u)` with `D` the Hessian diagonal of `phi`
/// (clamped positive) and `P_D` the projection in its metric, which makes every such
/// direction a descent direction; Armijo backtracking from the full Newton step.
fn scaled_newton(ctx: &Context<'_>, set: &FeasibleSet, start: &[f64]) -> Polished {
    let ev = ctx.evaluator();
    let n = start.len();
    let w_model = ctx.problem().objective().model;
    let mut u = start.to_vec();
    let mut g = vec![0.0; n];
    let mut h = vec![0.0; n];
    let mut f = phi_with_fixed_costs(ctx, &u, Some(&mut g));
    let mut stopped = None;
    let mut trial = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut flat = 0;
    for _ in 0..NEWTON_ITERATIONS {
        if w_model == 0.0 || !ev.model_hessian_diagonal(&u, &mut h) {
            break;
        }
        // Curvature of phi, with a floor that keeps each Newton step below a thousand
        // budgets: negative (convex parts of S-curves) or vanishing curvatures would
        // send it anywhere; the projection and line search take care of the rest. No
        // ceiling: a channel near a singular start (power curves at zero) needs its huge
        // curvature, and a floor relative to the others' would stall them.
        h.iter_mut().for_each(|v| *v *= w_model);
        let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if !(gmax > 0.0 && gmax.is_finite()) {
            break;
        }
        let budget = set.budget();
        let d: Vec<f64> = h
            .iter()
            .zip(&g)
            .map(|(&v, gi)| {
                let floor = 1e-3 * gi.abs().max(1e-6 * gmax) / budget;
                if v.is_finite() {
                    v.max(floor)
                } else {
                    floor
                }
            })
            .collect();
        let root: Vec<f64> = d.iter().map(|v| v.sqrt()).collect();
        let scaled = ev.constraint_work(|| scaled_set(set, &root));
        let z: Vec<f64> = (0..n).map(|i| root[i] * u[i] - g[i] / root[i]).collect();
        let mut v = vec![0.0; n];
        if ev
            .constraint_work(|| scaled.project_cold(&z, &mut v))
            .is_err()
        {
            break;
        }
        // Back to u, then onto the set itself: the scaled rows hold to rounding only.
        let p: Vec<f64> = (0..n).map(|i| v[i] / root[i]).collect();
        let mut q = vec![0.0; n];
        if ev.constraint_work(|| set.project_cold(&p, &mut q)).is_err() {
            break;
        }
        let step: Vec<f64> = q.iter().zip(&u).map(|(a, b)| a - b).collect();
        let decrement: f64 = step.iter().zip(&d).map(|(s, di)| s * s * di).sum();
        let slope: f64 = g.iter().zip(&step).map(|(a, b)| a * b).sum();
        if decrement <= 1e-24 || slope.is_nan() || slope >= 0.0 {
            break;
        }
        let mut lambda = 1.0;
        let mut accepted = false;
        let mut f_new = f;
        for _ in 0..40 {
            for i in 0..n {
                trial[i] = u[i] + lambda * step[i];
            }
            f_new = phi_with_fixed_costs(ctx, &trial, Some(&mut g_new));
            if f_new.is_finite() && f_new <= f + 1e-4 * lambda * slope {
                accepted = true;
                break;
            }
            lambda *= 0.5;
        }
        if !accepted {
            break;
        }
        let decrease = f - f_new;
        u.copy_from_slice(&trial);
        g.copy_from_slice(&g_new);
        f = f_new;
        if let ControlFlow::Break(status) = ctx.iteration(f, &u, true) {
            stopped = Some(status);
            break;
        }
        // Converged to rounding: further steps change nothing measurable.
        if decrease <= 1e-15 * f.abs().max(1e-300) {
            flat += 1;
            if flat >= 3 {
                break;
            }
        } else {
            flat = 0;
        }
    }
    Polished { u, phi: f, stopped }
}

/// Phase 2: spectral projected gradient with a nonmonotone line search.
fn spectral_gradient(ctx: &Context<'_>, set: &FeasibleSet, start: &[f64]) -> Polished {
    let n = start.len();
    let mut ws = ProjectionWorkspace::default();
    let mut u = start.to_vec();
    let mut g = vec![0.0; n];
    let mut f = phi_with_fixed_costs(ctx, &u, Some(&mut g));
    let mut recent: VecDeque<f64> = VecDeque::from([f]);
    let mut p = vec![0.0; n];
    let mut trial = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut stalled = 0;
    // First step: a tenth of the budget along the steepest gradient entry.
    let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut step = if gmax > 0.0 {
        0.1 * set.budget() / gmax
    } else {
        1.0
    };
    let mut stopped = None;
    let (mut best_u, mut best_f) = (u.clone(), f);
    for _ in 0..MAX_ITERATIONS {
        // Stationarity: the projected gradient `|P(u - s g) - u| / s`, with `s` the
        // spectral step capped at 1 (a long step would understate it).
        let Some(s) = projected_step(ctx, set, &u, &g, step.min(1.0), &mut p, &mut ws) else {
            break;
        };
        let measure = p
            .iter()
            .zip(&u)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
            / s;
        if measure <= TOLERANCE {
            break;
        }
        // Spectral step, projected; then backtracking on the segment towards it.
        if step > 1.0 {
            match projected_step(ctx, set, &u, &g, step, &mut p, &mut ws) {
                Some(s) => step = s,
                None => break,
            }
        } else {
            step = s;
        }
        let d: Vec<f64> = p.iter().zip(&u).map(|(a, b)| a - b).collect();
        let slope: f64 = g.iter().zip(&d).map(|(a, b)| a * b).sum();
        // Not a descent direction (or NaN): nothing left to gain at this precision.
        if slope.is_nan() || slope >= 0.0 {
            break;
        }
        let reference = recent.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut lambda = 1.0;
        let mut accepted = false;
        let mut f_new = f;
        for _ in 0..50 {
            for i in 0..n {
                trial[i] = u[i] + lambda * d[i];
            }
            f_new = phi_with_fixed_costs(ctx, &trial, Some(&mut g_new));
            if f_new.is_finite() && f_new <= reference + 1e-4 * lambda * slope {
                accepted = true;
                break;
            }
            // Safeguarded quadratic interpolation.
            let curvature = f_new - f - lambda * slope;
            lambda = if f_new.is_finite() && curvature > 0.0 {
                (-slope * lambda * lambda / (2.0 * curvature)).clamp(0.1 * lambda, 0.5 * lambda)
            } else {
                0.1 * lambda
            };
        }
        if !accepted {
            break;
        }
        let s: Vec<f64> = trial.iter().zip(&u).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        let ss: f64 = s.iter().map(|v| v * v).sum();
        step = if sy > 0.0 {
            (ss / sy).clamp(1e-12, 1e12)
        } else {
            1e12f64.min(step * 10.0)
        };
        u.copy_from_slice(&trial);
        g.copy_from_slice(&g_new);
        f = f_new;
        if recent.len() == MEMORY {
            recent.pop_front();
        }
        recent.push_back(f);
        // Progress is measured on the best value: the nonmonotone search may go up.
        if f < best_f - 1e-15 * best_f.abs().max(1e-300) {
            stalled = 0;
        } else {
            stalled += 1;
        }
        if f < best_f {
            best_f = f;
            best_u.copy_from_slice(&u);
        }
        if let ControlFlow::Break(status) = ctx.iteration(f, &u, true) {
            stopped = Some(status);
            break;
        }
        if stalled >= STALL {
            break;
        }
    }
    // The nonmonotone search may end above its best point: keep the best.
    Polished {
        u: best_u,
        phi: best_f,
        stopped,
    }
}
