//! The feasible set: variable bounds, the budget and linear rows, with violation measures
//! and exact Euclidean projections.
//!
//! Two projections are provided, and every backend uses these rather than its own:
//!
//! * onto bounds plus budget ([`project_box_budget`]): `y_i = clamp(z_i - tau, l_i, u_i)`
//!   with the multiplier `tau` found by safeguarded Newton steps on the piecewise-linear
//!   `sum(y(tau)) = budget` (exact: a Newton step inside a linear piece lands on the root);
//! * onto the whole set, linear rows included ([`FeasibleSet::project`]): a semismooth
//!   Newton method on the dual of `min ||y - z||^2` over the rows, whose inner problem is
//!   the first projection. Its multipliers diverge when the rows admit no point, which
//!   names the conflicting rows.

use serde::{Deserialize, Serialize};

use crate::error::InfeasibleError;
use crate::problem::BudgetMode;

/// Where a linear row comes from, for messages: the field path and a readable form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowOrigin {
    /// Field path in the problem, e.g. `constraints[3]` or `channels[1].max`.
    pub field: String,
    /// What the row says, e.g. `share of search+social >= 0.14`.
    pub description: String,
}

impl RowOrigin {
    /// `field (description)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.field, self.description)
    }
}

/// Sparse linear rows `lower_i <= a_i . x <= upper_i` (compressed by row).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinearRows {
    ptr: Vec<usize>,
    idx: Vec<usize>,
    val: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    origin: Vec<usize>,
}

impl LinearRows {
    /// No rows.
    pub fn new() -> Self {
        Self {
            ptr: vec![0],
            ..Default::default()
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.lower.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.lower.is_empty()
    }

    /// Appends a row; `terms` may repeat an index (coefficients add up), zeros are dropped.
    pub fn push(&mut self, terms: &[(usize, f64)], lower: f64, upper: f64, origin: usize) {
        let mut sorted: Vec<(usize, f64)> = terms.to_vec();
        sorted.sort_by_key(|t| t.0);
        let mut merged: Vec<(usize, f64)> = Vec::with_capacity(sorted.len());
        for (i, c) in sorted {
            match merged.last_mut() {
                Some(last) if last.0 == i => last.1 += c,
                _ => merged.push((i, c)),
            }
        }
        for (i, c) in merged {
            if c != 0.0 {
                self.idx.push(i);
                self.val.push(c);
            }
        }
        self.ptr.push(self.idx.len());
        self.lower.push(lower);
        self.upper.push(upper);
        self.origin.push(origin);
    }

    /// Row `i` as (indices, coefficients).
    #[inline]
    pub fn row(&self, i: usize) -> (&[usize], &[f64]) {
        let (s, e) = (self.ptr[i], self.ptr[i + 1]);
        (&self.idx[s..e], &self.val[s..e])
    }

    /// Lower limits (`-inf` when absent).
    pub fn lower(&self) -> &[f64] {
        &self.lower
    }

    /// Upper limits (`+inf` when absent).
    pub fn upper(&self) -> &[f64] {
        &self.upper
    }

    /// Index into the feasible set's origins of row `i`.
    pub fn origin(&self, i: usize) -> usize {
        self.origin[i]
    }

    /// `a_i . x`.
    #[inline]
    pub fn dot(&self, i: usize, x: &[f64]) -> f64 {
        let (idx, val) = self.row(i);
        idx.iter().zip(val).map(|(&j, &c)| c * x[j]).sum()
    }

    /// `out = A x`.
    pub fn mul(&self, x: &[f64], out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.dot(i, x);
        }
    }

    /// `out += scale * A^T lambda`.
    pub fn mul_transpose_add(&self, lambda: &[f64], scale: f64, out: &mut [f64]) {
        for (i, &l) in lambda.iter().enumerate() {
            if l == 0.0 {
                continue;
            }
            let (idx, val) = self.row(i);
            for (&j, &c) in idx.iter().zip(val) {
                out[j] += scale * l * c;
            }
        }
    }

    /// How far `value` lies outside row `i`'s limits (0 inside).
    #[inline]
    pub fn residual(&self, i: usize, value: f64) -> f64 {
        (self.lower[i] - value).max(value - self.upper[i]).max(0.0)
    }
}

/// Bounds, budget and linear rows of a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeasibleSet {
    lower: Vec<f64>,
    upper: Vec<f64>,
    budget: f64,
    mode: BudgetMode,
    rows: LinearRows,
    origins: Vec<RowOrigin>,
}

/// What a violation measure found.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Where: a field path with a description.
    pub what: String,
    /// By how much, in the set's units.
    pub amount: f64,
}

impl FeasibleSet {
    /// A set with bounds and budget and no rows.
    pub fn new(lower: Vec<f64>, upper: Vec<f64>, budget: f64, mode: BudgetMode) -> Self {
        assert_eq!(lower.len(), upper.len());
        Self {
            lower,
            upper,
            budget,
            mode,
            rows: LinearRows::new(),
            origins: Vec::new(),
        }
    }

    /// Adds a row `lower <= sum coef x_j <= upper`.
    pub fn add_row(&mut self, terms: &[(usize, f64)], lower: f64, upper: f64, origin: RowOrigin) {
        let o = match self.origins.iter().position(|x| *x == origin) {
            Some(o) => o,
            None => {
                self.origins.push(origin);
                self.origins.len() - 1
            }
        };
        self.rows.push(terms, lower, upper, o);
    }

    /// Number of variables.
    pub fn dim(&self) -> usize {
        self.lower.len()
    }
    /// Lower bounds of the variables.
    pub fn lower(&self) -> &[f64] {
        &self.lower
    }
    /// Upper bounds of the variables (`+inf` when absent).
    pub fn upper(&self) -> &[f64] {
        &self.upper
    }
    /// The budget.
    pub fn budget(&self) -> f64 {
        self.budget
    }
    /// Whether the budget is an equality or a cap.
    pub fn budget_mode(&self) -> BudgetMode {
        self.mode
    }
    /// The linear rows.
    pub fn rows(&self) -> &LinearRows {
        &self.rows
    }
    /// Where row `i` comes from.
    pub fn row_origin(&self, i: usize) -> &RowOrigin {
        &self.origins[self.rows.origin(i)]
    }

    /// Finite upper bounds, with infinite ones replaced by what the budget allows.
    pub fn finite_upper(&self) -> Vec<f64> {
        self.upper.iter().map(|&u| u.min(self.budget)).collect()
    }

    /// The largest violation of any bound, the budget or any row, in the set's units.
    pub fn max_violation(&self, x: &[f64]) -> f64 {
        let mut worst = 0.0f64;
        for ((&xi, &l), &u) in x.iter().zip(&self.lower).zip(&self.upper) {
            worst = worst.max(l - xi).max(xi - u);
        }
        let total: f64 = x.iter().sum();
        worst = worst.max(match self.mode {
            BudgetMode::Exact => (total - self.budget).abs(),
            BudgetMode::AtMost => total - self.budget,
        });
        for i in 0..self.rows.len() {
            worst = worst.max(self.rows.residual(i, self.rows.dot(i, x)));
        }
        worst
    }

    /// Every violated bound, budget and row of `x` above `tolerance`.
    pub fn violations(
        &self,
        x: &[f64],
        tolerance: f64,
        names: &dyn Fn(usize) -> String,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        for (j, ((&xj, &l), &u)) in x.iter().zip(&self.lower).zip(&self.upper).enumerate() {
            if l - xj > tolerance {
                out.push(Violation {
                    what: format!("{} below its lower bound {l}", names(j)),
                    amount: l - xj,
                });
            }
            if xj - u > tolerance {
                out.push(Violation {
                    what: format!("{} above its upper bound {u}", names(j)),
                    amount: xj - u,
                });
            }
        }
        let total: f64 = x.iter().sum();
        let budget_gap = match self.mode {
            BudgetMode::Exact => (total - self.budget).abs(),
            BudgetMode::AtMost => total - self.budget,
        };
        if budget_gap > tolerance {
            out.push(Violation {
                what: format!("budget: total spend {total} against budget {}", self.budget),
                amount: budget_gap,
            });
        }
        for i in 0..self.rows.len() {
            let r = self.rows.residual(i, self.rows.dot(i, x));
            if r > tolerance {
                out.push(Violation {
                    what: self.row_origin(i).label(),
                    amount: r,
                });
            }
        }
        out
    }

    /// Projection onto bounds plus budget (rows ignored); see [`project_box_budget`].
    pub fn project_box_budget(&self, z: &[f64], out: &mut [f64]) -> BoxProjection {
        project_box_budget(
            z,
            &self.lower,
            &self.upper,
            self.budget,
            self.mode,
            out,
            None,
        )
    }

    /// The same set in units of `spend_scale`, simplified for solvers: rows touching every
    /// variable lose their common coefficient when the budget is exact (it is a constant
    /// there), one-variable rows become bounds, rows the bounds imply are dropped, and every
    /// row is normalized to a largest coefficient of 1. Fails when the simplification
    /// finds a contradiction, naming the rows involved.
    pub fn for_solvers(&self, spend_scale: f64) -> Result<FeasibleSet, InfeasibleError> {
        let s = spend_scale;
        let n = self.dim();
        let mut lower: Vec<f64> = self.lower.iter().map(|v| v / s).collect();
        let mut upper: Vec<f64> = self.upper.iter().map(|v| v / s).collect();
        let budget = self.budget / s;
        // Which rule tightened each variable's bounds, to name it in conflicts.
        let mut bound_origin: Vec<Option<usize>> = vec![None; n];
        // (terms, lower, upper, origin) of the rows that stay rows.
        type Row = (Vec<(usize, f64)>, f64, f64, usize);
        let mut kept: Vec<Row> = Vec::new();
        for i in 0..self.rows.len() {
            let (idx, val) = self.rows.row(i);
            let mut lo = self.rows.lower[i] / s;
            let mut hi = self.rows.upper[i] / s;
            let mut terms: Vec<(usize, f64)> =
                idx.iter().copied().zip(val.iter().copied()).collect();
            if self.mode == BudgetMode::Exact && terms.len() == n && n > 1 {
                // On sum(x) = budget, a . x = (a - c 1) . x + c budget for any c.
                let c = modal_value(val);
                terms = terms
                    .into_iter()
                    .map(|(j, v)| (j, v - c))
                    .filter(|(_, v)| v.abs() > 1e-15 * c.abs())
                    .collect();
                lo -= c * budget;
                hi -= c * budget;
            }
            let origin = self.rows.origin[i];
            let conflict = |what: &str, other: Option<usize>| {
                let mut constraints = vec![self.origins[origin].label()];
                if let Some(o) = other.filter(|o| *o != origin) {
                    constraints.push(self.origins[o].label());
                }
                InfeasibleError {
                    file: None,
                    constraints,
                    reason: what.to_string(),
                }
            };
            match terms.len() {
                0 => {
                    let tol = 1e-9 * (1.0 + budget.abs());
                    if lo > tol || hi < -tol {
                        return Err(conflict(
                            "this rule cannot hold when the whole budget is spent",
                            None,
                        ));
                    }
                }
                1 => {
                    let (j, a) = terms[0];
                    let (l, u) = if a > 0.0 {
                        (lo / a, hi / a)
                    } else {
                        (hi / a, lo / a)
                    };
                    let previous = bound_origin[j];
                    if l > lower[j] {
                        lower[j] = l;
                        bound_origin[j] = Some(origin);
                    }
                    if u < upper[j] {
                        upper[j] = u;
                        bound_origin[j] = Some(origin);
                    }
                    if lower[j] > upper[j] + 1e-12 * (1.0 + upper[j].abs()) {
                        return Err(conflict(
                            &format!(
                                "it leaves variable {j} an empty range [{}, {}]",
                                lower[j] * s,
                                upper[j] * s
                            ),
                            previous,
                        ));
                    }
                    upper[j] = upper[j].max(lower[j]);
                }
                _ => kept.push((terms, lo, hi, origin)),
            }
        }
        let mut out = FeasibleSet::new(lower, upper, budget, self.mode);
        out.origins = self.origins.clone();
        let mut merged: Vec<Row> = Vec::with_capacity(kept.len());
        let mut normals: std::collections::HashMap<Vec<(usize, u64)>, (usize, f64)> =
            std::collections::HashMap::with_capacity(kept.len());
        for (terms, mut lo, mut hi, origin) in kept {
            // Drop sides the bounds imply.
            let (mut rmin, mut rmax) = (0.0, 0.0);
            for &(j, a) in &terms {
                let (l, u) = (out.lower[j], out.upper[j]);
                if a > 0.0 {
                    rmin += a * l;
                    rmax += a * u;
                } else {
                    rmin += a * u;
                    rmax += a * l;
                }
            }
            if lo <= rmin {
                lo = f64::NEG_INFINITY;
            }
            if hi >= rmax {
                hi = f64::INFINITY;
            }
            if lo == f64::NEG_INFINITY && hi == f64::INFINITY {
                continue;
            }
            if lo > rmax + 1e-12 * (1.0 + rmax.abs()) || hi < rmin - 1e-12 * (1.0 + rmin.abs()) {
                let mut constraints = vec![self.origins[origin].label()];
                for &(j, _) in &terms {
                    if let Some(o) = bound_origin[j] {
                        let label = self.origins[o].label();
                        if !constraints.contains(&label) {
                            constraints.push(label);
                        }
                    }
                }
                return Err(InfeasibleError {
                    file: None,
                    constraints,
                    reason: "the rule cannot be met within the variables' bounds".to_string(),
                });
            }
            let scale = terms.iter().map(|t| t.1.abs()).fold(0.0, f64::max);
            let terms: Vec<(usize, f64)> = terms.iter().map(|&(j, a)| (j, a / scale)).collect();
            let (mut lo, mut hi) = (lo / scale, hi / scale);
            // The normal up to its sign (the first coefficient by index made positive), so
            // that rows with the same normal meet below.
            let mut key: Vec<(usize, f64)> = terms.clone();
            key.sort_by_key(|t| t.0);
            let sign = key[0].1.signum();
            let key: Vec<(usize, u64)> = key
                .iter()
                .map(|&(j, a)| (j, (sign * a).to_bits()))
                .collect();
            match normals.get(&key) {
                Some(&(k, first_sign)) => {
                    if sign != first_sign {
                        (lo, hi) = (-hi, -lo);
                    }
                    // The same normal twice (both sides of `max_change` with `max_rate =
                    // 0`, a rule repeated): one row with both ranges, an equality when
                    // they meet, so that no solver sees a pair of rows without interior.
                    let row: &mut Row = &mut merged[k];
                    let (l, h) = (row.1.max(lo), row.2.min(hi));
                    if l > h + 1e-12 * (1.0 + h.abs().max(l.abs())) {
                        return Err(InfeasibleError {
                            file: None,
                            constraints: vec![
                                self.origins[row.3].label(),
                                self.origins[origin].label(),
                            ],
                            reason: "the two rules leave no room between them".to_string(),
                        });
                    }
                    row.1 = l;
                    row.2 = h.max(l);
                }
                None => {
                    normals.insert(key, (merged.len(), sign));
                    merged.push((terms, lo, hi, origin));
                }
            }
        }
        for (terms, lo, hi, origin) in merged {
            out.rows.push(&terms, lo, hi, origin);
        }
        Ok(out)
    }

    /// Euclidean projection of `z` onto the whole set (bounds, budget and rows), warm
    /// started from and updating `workspace`. Returns the number of Newton iterations.
    pub fn project(
        &self,
        z: &[f64],
        out: &mut [f64],
        workspace: &mut ProjectionWorkspace,
    ) -> Result<usize, ProjectionFailure> {
        if self.rows.is_empty() {
            let p = project_box_budget(
                z,
                &self.lower,
                &self.upper,
                self.budget,
                self.mode,
                out,
                workspace.tau,
            );
            workspace.tau = Some(p.tau);
            return Ok(0);
        }
        DualNewton::new(self, z, workspace).solve(out)
    }

    /// Projection onto the whole set with a fresh workspace.
    pub fn project_cold(&self, z: &[f64], out: &mut [f64]) -> Result<usize, ProjectionFailure> {
        self.project(z, out, &mut ProjectionWorkspace::default())
    }

    /// The rows as an [`InfeasibleError`] naming those with the largest multipliers.
    fn name_conflict(&self, lambda: &[f64]) -> Vec<String> {
        let big = lambda.iter().fold(0.0f64, |m, l| m.max(l.abs()));
        let mut rows: Vec<(usize, f64)> = lambda
            .iter()
            .enumerate()
            .filter(|(_, l)| l.abs() >= 1e-3 * big && **l != 0.0)
            .map(|(i, l)| (i, l.abs()))
            .collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut labels: Vec<String> = Vec::new();
        for (i, _) in rows {
            let label = self.row_origin(i).label();
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        labels
    }
}

/// The most frequent value of a coefficient list (ties: the first seen).
fn modal_value(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (mut best, mut best_count) = (sorted[0], 0usize);
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        if j - i > best_count {
            best = sorted[i];
            best_count = j - i;
        }
        i = j;
    }
    best
}

/// Result of a projection onto bounds plus budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxProjection {
    /// The budget multiplier: `y_i = clamp(z_i - tau, l_i, u_i)`.
    pub tau: f64,
    /// Whether the budget constrains the result (always for an exact budget).
    pub budget_binding: bool,
}

/// Euclidean projection of `z` onto `{l <= y <= u, sum(y) = budget}` (or `<= budget`),
/// written to `out`. `tau_hint` warm-starts the multiplier search.
///
/// The bounds must admit a point (`sum(l) <= budget`, and `sum(u) >= budget` when exact);
/// otherwise the nearest extreme is returned.
pub fn project_box_budget(
    z: &[f64],
    lower: &[f64],
    upper: &[f64],
    budget: f64,
    mode: BudgetMode,
    out: &mut [f64],
    tau_hint: Option<f64>,
) -> BoxProjection {
    if mode == BudgetMode::AtMost {
        let (s, _) = clamp_sum(z, lower, upper, 0.0);
        if s <= budget {
            clamp_into(z, lower, upper, 0.0, out);
            return BoxProjection {
                tau: 0.0,
                budget_binding: false,
            };
        }
    }
    let mut tau = find_tau(z, lower, upper, budget, tau_hint);
    if mode == BudgetMode::AtMost {
        tau = tau.max(0.0);
    }
    clamp_into(z, lower, upper, tau, out);
    // Spread the rounding residual over the free variables so the sum is exact.
    let total: f64 = out.iter().sum();
    let residual = budget - total;
    if residual != 0.0 {
        let free: Vec<usize> = (0..out.len())
            .filter(|&i| out[i] > lower[i] && out[i] < upper[i])
            .collect();
        if !free.is_empty() {
            let share = residual / free.len() as f64;
            for i in free {
                out[i] = (out[i] + share).clamp(lower[i], upper[i]);
            }
        }
    }
    BoxProjection {
        tau,
        budget_binding: true,
    }
}

#[inline]
fn clamp_sum(z: &[f64], lower: &[f64], upper: &[f64], tau: f64) -> (f64, usize) {
    let mut sum = 0.0;
    let mut free = 0usize;
    for i in 0..z.len() {
        let v = z[i] - tau;
        if v <= lower[i] {
            sum += lower[i];
        } else if v >= upper[i] {
            sum += upper[i];
        } else {
            sum += v;
            free += 1;
        }
    }
    (sum, free)
}

#[inline]
fn clamp_into(z: &[f64], lower: &[f64], upper: &[f64], tau: f64, out: &mut [f64]) {
    for i in 0..z.len() {
        out[i] = (z[i] - tau).max(lower[i]).min(upper[i]);
    }
}

/// Finds `tau` with `sum clamp(z - tau, l, u) = budget` by Newton steps on the
/// non-increasing piecewise-linear sum, safeguarded by a bracket; exact sort as a fallback.
fn find_tau(z: &[f64], lower: &[f64], upper: &[f64], budget: f64, hint: Option<f64>) -> f64 {
    let n = z.len();
    let tol = 1e-13 * budget.abs().max(f64::MIN_POSITIVE) * (1.0 + (n as f64).sqrt());
    let mut tau = hint.unwrap_or_else(|| (z.iter().sum::<f64>() - budget) / n as f64);
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    for _ in 0..64 {
        let (s, free) = clamp_sum(z, lower, upper, tau);
        let h = s - budget;
        if h.abs() <= tol {
            return tau;
        }
        if h > 0.0 {
            lo = tau;
        } else {
            hi = tau;
        }
        let newton = if free > 0 {
            tau + h / free as f64
        } else {
            f64::NAN
        };
        if newton > lo && newton < hi {
            tau = newton;
            continue;
        }
        tau = if lo.is_finite() && hi.is_finite() {
            0.5 * (lo + hi)
        } else {
            // Move to the next breakpoint in the needed direction (a larger tau when the
            // sum is too large); past the last one the sum is linear, so one step is exact.
            match next_breakpoint(z, lower, upper, tau, h > 0.0) {
                Some(b) => b,
                None => {
                    let probe = tau + h.signum() * (1.0 + tau.abs());
                    let (_, beyond) = clamp_sum(z, lower, upper, probe);
                    if beyond == 0 {
                        return tau;
                    }
                    tau + h / beyond as f64
                }
            }
        };
        if lo.is_finite() && hi.is_finite() && (hi - lo) <= 1e-15 * (1.0 + lo.abs().max(hi.abs())) {
            return tau;
        }
    }
    exact_tau(z, lower, upper, budget)
}

fn next_breakpoint(z: &[f64], lower: &[f64], upper: &[f64], tau: f64, above: bool) -> Option<f64> {
    let mut best: Option<f64> = None;
    for i in 0..z.len() {
        for b in [z[i] - lower[i], z[i] - upper[i]] {
            if !b.is_finite() {
                continue;
            }
            let better = if above {
                b > tau && best.is_none_or(|x| b < x)
            } else {
                b < tau && best.is_none_or(|x| b > x)
            };
            if better {
                best = Some(b);
            }
        }
    }
    best
}

/// Exact `tau` by sorting the breakpoints (O(n log n)); the reference for tests and the
/// fallback of [`find_tau`].
fn exact_tau(z: &[f64], lower: &[f64], upper: &[f64], budget: f64) -> f64 {
    let mut points: Vec<f64> = Vec::with_capacity(2 * z.len());
    for i in 0..z.len() {
        for b in [z[i] - lower[i], z[i] - upper[i]] {
            if b.is_finite() {
                points.push(b);
            }
        }
    }
    points.sort_by(f64::total_cmp);
    points.dedup();
    // h(tau) = clamp_sum(tau) - budget is non-increasing; find the piece containing the root.
    let h = |t: f64| clamp_sum(z, lower, upper, t).0 - budget;
    let mut prev: Option<f64> = None;
    for &p in &points {
        if h(p) <= 0.0 {
            // Root lies in [prev, p]: linear there.
            return match prev {
                Some(q) => {
                    let (hq, hp) = (h(q), h(p));
                    if hq == hp {
                        p
                    } else {
                        q + (p - q) * hq / (hq - hp)
                    }
                }
                None => {
                    let (_, free) = clamp_sum(z, lower, upper, p - 1.0);
                    if free == 0 {
                        p
                    } else {
                        p + h(p) / free as f64
                    }
                }
            };
        }
        prev = Some(p);
    }
    match prev {
        Some(q) => {
            let (_, free) = clamp_sum(z, lower, upper, q + 1.0);
            if free == 0 {
                q
            } else {
                q + h(q) / free as f64
            }
        }
        None => 0.0,
    }
}

/// Warm-start state for repeated projections onto the same set.
#[derive(Debug, Clone, Default)]
pub struct ProjectionWorkspace {
    lambda: Vec<f64>,
    tau: Option<f64>,
}

impl ProjectionWorkspace {
    /// Forget the warm start.
    pub fn reset(&mut self) {
        self.lambda.clear();
        self.tau = None;
    }
}

/// Why a projection onto the whole set failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectionFailure {
    /// The rows admit no point; the rows involved, most implicated first.
    Infeasible(Vec<String>),
    /// No convergence within the iteration limit; the violation reached.
    NotConverged(f64),
}

impl ProjectionFailure {
    /// As an infeasibility error (for `NotConverged`, the reason says so).
    pub fn into_infeasible(self) -> InfeasibleError {
        match self {
            ProjectionFailure::Infeasible(constraints) => InfeasibleError {
                file: None,
                constraints,
                reason: "no allocation satisfies all rules together".to_string(),
            },
            ProjectionFailure::NotConverged(v) => InfeasibleError {
                file: None,
                constraints: Vec::new(),
                reason: format!(
                    "no feasible allocation found (closest violation {v:.3e} in budget units)"
                ),
            },
        }
    }
}

/// Semismooth Newton on the dual of the projection onto the whole set.
///
/// Dual variable `lambda_i` per row: positive when the upper limit binds, negative when
/// the lower one does. `y(lambda) = P_X(z - A^T lambda)` with `X` = bounds plus budget;
/// the dual `D(lambda) = ||y - z||^2 / 2 + lambda . A y - sum h_i(lambda_i)`, with
/// `h_i(l) = l * upper_i` for `l > 0` and `l * lower_i` for `l < 0`, is concave and
/// piecewise quadratic; its generalized Hessian is `-A J A^T` with `J` the Jacobian of
/// `P_X` (identity on free variables minus the budget's rank-one term).
struct DualNewton<'a> {
    set: &'a FeasibleSet,
    z: &'a [f64],
    ws: &'a mut ProjectionWorkspace,
    m: usize,
}

struct DualPoint {
    y: Vec<f64>,
    r: Vec<f64>,
    value: f64,
    tau: f64,
    binding: bool,
}

const DUAL_TOL: f64 = 1e-12;

impl<'a> DualNewton<'a> {
    fn new(set: &'a FeasibleSet, z: &'a [f64], ws: &'a mut ProjectionWorkspace) -> Self {
        let m = set.rows.len();
        if ws.lambda.len() != m {
            ws.lambda = vec![0.0; m];
        }
        Self { set, z, ws, m }
    }

    fn evaluate(&self, lambda: &[f64], tau_hint: Option<f64>) -> DualPoint {
        let set = self.set;
        let mut w = self.z.to_vec();
        set.rows.mul_transpose_add(lambda, -1.0, &mut w);
        let mut y = vec![0.0; w.len()];
        let p = project_box_budget(
            &w, &set.lower, &set.upper, set.budget, set.mode, &mut y, tau_hint,
        );
        let mut r = vec![0.0; self.m];
        set.rows.mul(&y, &mut r);
        let mut value = 0.5
            * y.iter()
                .zip(self.z)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>();
        for i in 0..self.m {
            let l = lambda[i];
            value += l * r[i];
            if l > 0.0 {
                value -= l * set.rows.upper[i];
            } else if l < 0.0 {
                value -= l * set.rows.lower[i];
            }
        }
        DualPoint {
            y,
            r,
            value,
            tau: p.tau,
            binding: p.budget_binding,
        }
    }

    /// Ascent direction components: `Some(g_i)` for rows that move, `None` for rows held
    /// at zero (their residual lies within the limits).
    fn gradient(&self, lambda: &[f64], point: &DualPoint) -> Vec<Option<f64>> {
        let rows = &self.set.rows;
        (0..self.m)
            .map(|i| {
                let (lo, hi, r, l) = (rows.lower[i], rows.upper[i], point.r[i], lambda[i]);
                if lo == hi || l > 0.0 {
                    Some(r - hi)
                } else if l < 0.0 {
                    Some(r - lo)
                } else if r > hi {
                    Some(r - hi)
                } else if r < lo {
                    Some(r - lo)
                } else {
                    None
                }
            })
            .collect()
    }

    fn solve(self, out: &mut [f64]) -> Result<usize, ProjectionFailure> {
        let set = self.set;
        let n = self.z.len();
        let mut lambda = std::mem::take(&mut self.ws.lambda);
        let mut point = self.evaluate(&lambda, self.ws.tau);
        let scale = 1.0 + self.z.iter().fold(0.0f64, |m, v| m.max(v.abs())) + set.budget.abs();
        let tol = DUAL_TOL * scale;
        let mut iterations = 0;
        let mut result = Err(ProjectionFailure::NotConverged(f64::INFINITY));
        let (mut damping, mut checkpoint, mut checkpoint_err) = (1.0, 0, f64::INFINITY);
        for it in 0..200 {
            iterations = it;
            let grad = self.gradient(&lambda, &point);
            let err = grad.iter().flatten().fold(0.0f64, |m, g| m.max(g.abs()));
            if err <= tol {
                result = Ok(it);
                break;
            }
            let big = lambda.iter().fold(0.0f64, |m, l| m.max(l.abs()));
            if big > 1e9 * scale {
                result = Err(ProjectionFailure::Infeasible(set.name_conflict(&lambda)));
                break;
            }
            // Free variables of the inner projection.
            let free: Vec<bool> = (0..n)
                .map(|j| point.y[j] > set.lower[j] && point.y[j] < set.upper[j])
                .collect();
            let nfree = free.iter().filter(|f| **f).count();
            // Bertsekas' epsilon-active set: a multiplier within `err` of zero whose
            // gradient pulls it to zero goes there directly rather than through the Newton
            // system, which would otherwise zigzag around the kink.
            let eps = err.min(1e-3);
            let to_zero: Vec<bool> = (0..self.m)
                .map(|i| {
                    let l = lambda[i];
                    let (lo, hi) = (set.rows.lower[i], set.rows.upper[i]);
                    lo != hi && l != 0.0 && l.abs() <= eps && grad[i].is_some_and(|g| g * l < 0.0)
                })
                .collect();
            let active: Vec<usize> = (0..self.m)
                .filter(|&i| grad[i].is_some() && !to_zero[i])
                .collect();
            let g: Vec<f64> = active.iter().map(|&i| grad[i].unwrap_or(0.0)).collect();
            // Damping that stops paying off (no halving of the residual in 8 iterations) is
            // cut: on infeasible rows the multipliers then diverge quickly along the
            // conflict, which names it.
            if it >= checkpoint + 8 {
                if err > 0.5 * checkpoint_err {
                    damping *= 1e-3;
                }
                checkpoint = it;
                checkpoint_err = err;
            }
            let d_active = self.newton_direction(&active, &g, &free, nfree, point.binding, damping);
            let mut direction: Vec<f64> = (0..self.m)
                .map(|i| if to_zero[i] { -lambda[i] } else { 0.0 })
                .collect();
            for (k, &i) in active.iter().enumerate() {
                direction[i] = d_active[k];
            }
            match self.line_search(&lambda, &point, &grad, &direction) {
                Some((l, p)) => {
                    lambda = l;
                    point = p;
                }
                None => {
                    // Newton failed to ascend: fall back to a scaled gradient step.
                    let step = 1.0 / (1.0 + self.row_norm_sq_max());
                    let dir: Vec<f64> = grad.iter().map(|g| g.map_or(0.0, |v| v * step)).collect();
                    match self.line_search(&lambda, &point, &grad, &dir) {
                        Some((l, p)) => {
                            lambda = l;
                            point = p;
                        }
                        None => {
                            let viol = self.violation(&point);
                            result = if viol <= 1e-9 * scale {
                                Ok(it)
                            } else {
                                Err(ProjectionFailure::NotConverged(viol))
                            };
                            break;
                        }
                    }
                }
            }
        }
        if result.is_err() {
            if let Err(ProjectionFailure::NotConverged(_)) = result {
                let viol = self.violation(&point);
                if viol <= 1e-9 * scale {
                    result = Ok(iterations);
                } else {
                    let big = lambda.iter().fold(0.0f64, |m, l| m.max(l.abs()));
                    result = if big > 1e4 * scale {
                        Err(ProjectionFailure::Infeasible(set.name_conflict(&lambda)))
                    } else {
                        Err(ProjectionFailure::NotConverged(viol))
                    };
                }
            }
        }
        // The convergence test is relative to `|z|` (the dual residual's rounding grows
        // with it); the answer must also meet the rows at the set's own scale, or a point
        // far outside (a long trial step) would come back visibly infeasible.
        if result.is_ok() {
            let viol = self.violation(&point);
            if viol > 1e-9 * (1.0 + set.budget.abs()) {
                result = Err(ProjectionFailure::NotConverged(viol));
            }
        }
        out.copy_from_slice(&point.y);
        self.ws.tau = Some(point.tau);
        if result.is_ok() {
            self.ws.lambda = lambda;
        } else {
            self.ws.lambda = vec![0.0; self.m];
        }
        result
    }

    /// Largest entry of the dual gradient (the optimality residual).
    fn residual(&self, lambda: &[f64], point: &DualPoint) -> f64 {
        self.gradient(lambda, point)
            .iter()
            .flatten()
            .fold(0.0f64, |m, g| m.max(g.abs()))
    }

    fn violation(&self, point: &DualPoint) -> f64 {
        (0..self.m)
            .map(|i| self.set.rows.residual(i, point.r[i]))
            .fold(0.0, f64::max)
    }

    fn row_norm_sq_max(&self) -> f64 {
        (0..self.m)
            .map(|i| self.set.rows.row(i).1.iter().map(|c| c * c).sum::<f64>())
            .fold(0.0, f64::max)
    }

    /// Solves `(A_S J A_S^T + delta I) d = g` by conjugate gradients.
    fn newton_direction(
        &self,
        active: &[usize],
        g: &[f64],
        free: &[bool],
        nfree: usize,
        binding: bool,
        damping: f64,
    ) -> Vec<f64> {
        let rows = &self.set.rows;
        let k = active.len();
        let n = free.len();
        let apply = |v: &[f64], out: &mut [f64], tmp: &mut Vec<f64>| {
            tmp.iter_mut().for_each(|t| *t = 0.0);
            for (kk, &i) in active.iter().enumerate() {
                if v[kk] == 0.0 {
                    continue;
                }
                let (idx, val) = rows.row(i);
                for (&j, &c) in idx.iter().zip(val) {
                    tmp[j] += c * v[kk];
                }
            }
            let mut mean = 0.0;
            for j in 0..n {
                if !free[j] {
                    tmp[j] = 0.0;
                } else {
                    mean += tmp[j];
                }
            }
            if binding && nfree > 0 {
                mean /= nfree as f64;
                for j in 0..n {
                    if free[j] {
                        tmp[j] -= mean;
                    }
                }
            }
            for (kk, &i) in active.iter().enumerate() {
                let (idx, val) = rows.row(i);
                out[kk] = idx.iter().zip(val).map(|(&j, &c)| c * tmp[j]).sum();
            }
        };
        let mut tmp = vec![0.0; n];
        // Regularization relative to the largest diagonal entry.
        // Jacobi preconditioner and regularization from the diagonal `|a_i|^2` over free
        // variables.
        let diag: Vec<f64> = active
            .iter()
            .map(|&i| {
                let (idx, val) = rows.row(i);
                idx.iter()
                    .zip(val)
                    .filter(|(j, _)| free[**j])
                    .map(|(_, c)| c * c)
                    .sum()
            })
            .collect();
        let dmax = diag.iter().fold(0.0f64, |m, v| m.max(*v));
        // Levenberg-Marquardt damping proportional to the residual: far from the solution
        // (rows being identified) it tames directions along the near-null space of a
        // singular M; near it, it vanishes and Newton's fast convergence returns.
        let g_max = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let delta = (1.0 + dmax) * (1e-10 + damping * g_max.min(0.1));
        let mut x = vec![0.0; k];
        let mut r: Vec<f64> = g.to_vec();
        let pre: Vec<f64> = diag.iter().map(|d| 1.0 / (d + delta)).collect();
        let mut zv: Vec<f64> = r.iter().zip(&pre).map(|(a, b)| a * b).collect();
        let mut p = zv.clone();
        let mut rz: f64 = r.iter().zip(&zv).map(|(a, b)| a * b).sum();
        let g_norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let mut ap = vec![0.0; k];
        for _ in 0..(2 * k + 20) {
            apply(&p, &mut ap, &mut tmp);
            for kk in 0..k {
                ap[kk] += delta * p[kk];
            }
            let pap: f64 = p.iter().zip(&ap).map(|(a, b)| a * b).sum();
            if pap <= 0.0 {
                break;
            }
            let alpha = rz / pap;
            for kk in 0..k {
                x[kk] += alpha * p[kk];
                r[kk] -= alpha * ap[kk];
            }
            let r_norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            // Inexact Newton: the tolerance tightens as the residual shrinks.
            if r_norm <= g_max.clamp(1e-12, 0.1) * g_norm {
                break;
            }
            for kk in 0..k {
                zv[kk] = r[kk] * pre[kk];
            }
            let rz_new: f64 = r.iter().zip(&zv).map(|(a, b)| a * b).sum();
            let beta = rz_new / rz;
            rz = rz_new;
            for kk in 0..k {
                p[kk] = zv[kk] + beta * p[kk];
            }
        }
        x
    }

    /// Backtracking along `lambda + alpha d`, clipped where a multiplier would change sign
    /// (a row switches from one limit to the other only through zero).
    fn line_search(
        &self,
        lambda: &[f64],
        point: &DualPoint,
        grad: &[Option<f64>],
        direction: &[f64],
    ) -> Option<(Vec<f64>, DualPoint)> {
        let rows = &self.set.rows;
        let mut alpha = 1.0;
        for _ in 0..50 {
            let mut trial = lambda.to_vec();
            let mut predicted = 0.0;
            for i in 0..self.m {
                let Some(g) = grad[i] else { continue };
                let mut v = lambda[i] + alpha * direction[i];
                if rows.lower[i] != rows.upper[i] {
                    // Sign of the side in use: fixed by the current multiplier, or by which
                    // limit is violated when it is zero.
                    let side = if lambda[i] != 0.0 {
                        lambda[i].signum()
                    } else {
                        g.signum()
                    };
                    if v * side < 0.0 {
                        v = 0.0;
                    }
                }
                predicted += g * (v - lambda[i]);
                trial[i] = v;
            }
            if predicted <= 0.0 {
                return None;
            }
            let p = self.evaluate(&trial, Some(point.tau));
            if p.value >= point.value + 1e-4 * predicted {
                return Some((trial, p));
            }
            // Near the solution the dual's gains fall below its rounding, and Armijo cannot
            // see them: accept a full step that halves the residual (Newton's local rule)
            // as long as the dual did not fall by more than rounding (else steps could
            // cycle between two points).
            let rounding = 1e-12 * (1.0 + point.value.abs());
            if alpha == 1.0 && p.value >= point.value - rounding {
                let before = self.residual(lambda, point);
                let after = self.residual(&trial, &p);
                if after <= 0.5 * before {
                    return Some((trial, p));
                }
            }
            if alpha < 1e-12 {
                return None;
            }
            alpha *= 0.5;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kkt_holds(z: &[f64], y: &[f64], l: &[f64], u: &[f64], tau: f64, tol: f64) -> bool {
        (0..z.len()).all(|i| {
            let v = z[i] - tau;
            if u[i] - l[i] <= tol {
                true
            } else if y[i] <= l[i] + tol {
                v <= l[i] + tol
            } else if y[i] >= u[i] - tol {
                v >= u[i] - tol
            } else {
                (v - y[i]).abs() <= tol
            }
        })
    }

    fn boxes() -> impl Strategy<Value = (Vec<f64>, Vec<f64>, Vec<f64>, f64)> {
        (1usize..40).prop_flat_map(|n| {
            (
                prop::collection::vec(-3.0f64..3.0, n),
                prop::collection::vec(0.0f64..1.0, n),
                prop::collection::vec(prop_oneof![Just(f64::INFINITY), 0.0f64..2.0], n),
                0.0f64..1.0,
            )
                .prop_map(|(z, l, w, frac)| {
                    let u: Vec<f64> = l.iter().zip(&w).map(|(a, b)| a + b).collect();
                    let lo: f64 = l.iter().sum();
                    let hi: f64 = u.iter().sum::<f64>().min(lo + 10.0);
                    let budget = lo + frac * (hi - lo);
                    (z, l, u, budget)
                })
        })
    }

    proptest! {
        #[test]
        fn box_budget_projection_is_feasible_idempotent_and_optimal((z, l, u, b) in boxes()) {
            for mode in [BudgetMode::Exact, BudgetMode::AtMost] {
                let mut y = vec![0.0; z.len()];
                let p = project_box_budget(&z, &l, &u, b, mode, &mut y, None);
                let tol = 1e-9 * (1.0 + b);
                let sum: f64 = y.iter().sum();
                match mode {
                    BudgetMode::Exact => prop_assert!((sum - b).abs() <= tol),
                    BudgetMode::AtMost => prop_assert!(sum <= b + tol),
                }
                for i in 0..y.len() {
                    prop_assert!(y[i] >= l[i] - tol && y[i] <= u[i] + tol);
                }
                prop_assert!(kkt_holds(&z, &y, &l, &u, p.tau, 1e-9));
                if mode == BudgetMode::AtMost {
                    prop_assert!(p.tau >= 0.0);
                }
                let mut y2 = vec![0.0; z.len()];
                project_box_budget(&y, &l, &u, b, mode, &mut y2, None);
                for i in 0..y.len() {
                    prop_assert!((y[i] - y2[i]).abs() <= 1e-9);
                }
                // The Newton search agrees with the exact sort.
                if mode == BudgetMode::Exact {
                    let t = exact_tau(&z, &l, &u, b);
                    let mut y3 = vec![0.0; z.len()];
                    clamp_into(&z, &l, &u, t, &mut y3);
                    for i in 0..y.len() {
                        prop_assert!((y[i] - y3[i]).abs() <= 1e-9, "{} vs {}", y[i], y3[i]);
                    }
                }
            }
        }

        #[test]
        fn polytope_projection_is_feasible_and_optimal(
            (z, l, u, b) in boxes(),
            rows in prop::collection::vec((prop::collection::vec((0usize..40, -1.0f64..1.0), 1..6), -0.5f64..0.5, 0.0f64..1.0), 0..6)
        ) {
            let n = z.len();
            let mut set = FeasibleSet::new(l.clone(), u.clone(), b, BudgetMode::Exact);
            // Rows built around a known feasible point, so the set is never empty.
            let mut x0 = vec![0.0; n];
            project_box_budget(&vec![0.0; n], &l, &u, b, BudgetMode::Exact, &mut x0, None);
            for (k, (terms, shift, width)) in rows.iter().enumerate() {
                let terms: Vec<(usize, f64)> = terms.iter().map(|&(j, c)| (j % n, c)).collect();
                let v: f64 = terms.iter().map(|&(j, c)| c * x0[j]).sum();
                set.add_row(&terms, v + shift.min(0.0) - width, v + shift.max(0.0) + 0.1 * width, RowOrigin { field: format!("r{k}"), description: String::new() });
            }
            let mut y = vec![0.0; n];
            let res = set.project_cold(&z, &mut y);
            prop_assert!(res.is_ok(), "{:?}", res);
            prop_assert!(set.max_violation(&y) <= 1e-9 * (1.0 + b));
            // Optimality: no feasible point on the segment to x0 is closer to z, and
            // idempotence.
            let d0: f64 = y.iter().zip(&z).map(|(a, c)| (a - c) * (a - c)).sum();
            for t in [0.01, 0.1, 0.5] {
                let p: Vec<f64> = y.iter().zip(&x0).map(|(a, c)| a + t * (c - a)).collect();
                let d: f64 = p.iter().zip(&z).map(|(a, c)| (a - c) * (a - c)).sum();
                prop_assert!(d >= d0 - 1e-9 * (1.0 + d0));
            }
            let mut y2 = vec![0.0; n];
            set.project_cold(&y, &mut y2).unwrap();
            for i in 0..n {
                prop_assert!((y[i] - y2[i]).abs() <= 1e-7 * (1.0 + b));
            }
        }
    }

    #[test]
    fn conflicting_rows_are_named() {
        // x0 + x1 >= 0.8 and x0 + x1 <= 0.3 cannot both hold.
        let mut set = FeasibleSet::new(vec![0.0; 3], vec![1.0; 3], 1.0, BudgetMode::Exact);
        set.add_row(
            &[(0, 1.0), (1, 1.0)],
            0.8,
            f64::INFINITY,
            RowOrigin {
                field: "constraints[0]".into(),
                description: "a".into(),
            },
        );
        set.add_row(
            &[(0, 1.0), (1, 1.0)],
            f64::NEG_INFINITY,
            0.3,
            RowOrigin {
                field: "constraints[1]".into(),
                description: "b".into(),
            },
        );
        set.add_row(
            &[(1, 1.0), (2, 1.0)],
            0.0,
            1.0,
            RowOrigin {
                field: "constraints[2]".into(),
                description: "c".into(),
            },
        );
        let mut y = vec![0.0; 3];
        match set.project_cold(&[0.3, 0.3, 0.4], &mut y) {
            Err(ProjectionFailure::Infeasible(rows)) => {
                assert!(
                    rows.iter().any(|r| r.starts_with("constraints[0]")),
                    "{rows:?}"
                );
                assert!(
                    rows.iter().any(|r| r.starts_with("constraints[1]")),
                    "{rows:?}"
                );
                assert!(
                    !rows.iter().any(|r| r.starts_with("constraints[2]")),
                    "{rows:?}"
                );
            }
            other => panic!("expected infeasible, got {other:?}"),
        }
    }

    #[test]
    fn a_far_point_is_projected_feasibly_or_refused() {
        // A long trial step of a polish (found by the conformance proptest): with `|z|`
        // near 3e11 the dual residual's tolerance grew with it, and an answer violating a
        // row by 0.28 came back as converged.
        let origin = || RowOrigin {
            field: "r".into(),
            description: String::new(),
        };
        let mut set = FeasibleSet::new(vec![0.0; 6], vec![1.0; 6], 1.0, BudgetMode::Exact);
        set.add_row(&[(0, 1.0), (1, 1.0)], f64::NEG_INFINITY, 0.7205, origin());
        let share = 0.21494579054878268;
        let terms: Vec<(usize, f64)> = (0..6)
            .map(|j| (j, if j >= 4 { 1.0 - share } else { -share }))
            .collect();
        set.add_row(&terms, 0.0, f64::INFINITY, origin());
        let z = [
            274051736338.2411,
            274051736338.2411,
            500.1849083937799,
            500.1849083937799,
            0.2389267018055766,
            0.015745549749513754,
        ];
        let mut y = vec![0.0; 6];
        if set.project_cold(&z, &mut y).is_ok() {
            assert!(
                set.max_violation(&y) <= 1e-9,
                "{y:?}: {}",
                set.max_violation(&y)
            );
        }
        // From a moderate distance the same set projects fine.
        let near: Vec<f64> = z.iter().map(|v| v.min(3.0)).collect();
        set.project_cold(&near, &mut y).unwrap();
        assert!(set.max_violation(&y) <= 1e-9);
    }

    #[test]
    fn presolve_turns_share_rows_into_sparse_rows() {
        // share of x0 >= 0.3 with exact budget: 0.7 x0 - 0.3 x1 - 0.3 x2 >= 0 becomes x0 >= 0.3 B.
        let mut set = FeasibleSet::new(
            vec![0.0; 3],
            vec![f64::INFINITY; 3],
            10.0,
            BudgetMode::Exact,
        );
        set.add_row(
            &[(0, 0.7), (1, -0.3), (2, -0.3)],
            0.0,
            f64::INFINITY,
            RowOrigin {
                field: "c".into(),
                description: String::new(),
            },
        );
        let s = set.for_solvers(10.0).unwrap();
        assert!(s.rows().is_empty());
        assert!((s.lower()[0] - 0.3).abs() < 1e-15);
        assert_eq!(s.budget(), 1.0);
    }
}
