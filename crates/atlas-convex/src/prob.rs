//! The scaled problem with its curve structure laid out for this backend.

use atlas_core::{BudgetMode, Combination, Curve, LinearRows, Mmm, NonlinearRow, Scaled};

/// The scaled problem (see [`Scaled`]): minimize `phi(u) = w_m R(u) + w_s sum(u)` over
/// `l <= u <= h`, the budget row, linear rows and nonlinear rows, where
/// `R(u) = sum_{c,t} d_t f_c((W_c u_c)_t)`.
pub(crate) struct Prob<'a> {
    pub(crate) mmm: &'a Mmm,
    pub(crate) n: usize,
    pub(crate) periods: usize,
    pub(crate) lower: &'a [f64],
    pub(crate) upper: &'a [f64],
    /// Upper bounds made finite by the budget: `min(h_i, B - sum_{j != i} l_j)`. Every
    /// feasible point lies below them, so bounds taken over this box stay valid.
    pub(crate) upper_finite: Vec<f64>,
    pub(crate) budget: f64,
    pub(crate) exact: bool,
    pub(crate) rows: &'a LinearRows,
    pub(crate) objective: Combination,
    pub(crate) nonlinear: &'a [NonlinearRow],
}

impl<'a> Prob<'a> {
    /// `None` for a custom model (no curve structure).
    pub(crate) fn new(scaled: &'a Scaled) -> Option<Prob<'a>> {
        let mmm = scaled.mmm()?;
        let set = scaled.feasible_set();
        let lower = set.lower();
        let upper = set.upper();
        let budget = set.budget();
        let sum_lower: f64 = lower.iter().sum();
        let upper_finite = lower
            .iter()
            .zip(upper)
            .map(|(&l, &h)| h.min(budget - (sum_lower - l)).max(l))
            .collect();
        Some(Prob {
            mmm: mmm.as_ref(),
            n: set.dim(),
            periods: mmm.layout().periods(),
            lower,
            upper,
            upper_finite,
            budget,
            exact: set.budget_mode() == BudgetMode::Exact,
            rows: set.rows(),
            objective: scaled.objective(),
            nonlinear: scaled.nonlinear_rows(),
        })
    }

    pub(crate) fn channels(&self) -> usize {
        self.mmm.channels().len()
    }

    pub(crate) fn curve(&self, c: usize) -> &Curve {
        &self.mmm.channels()[c].curve
    }

    pub(crate) fn weights(&self, c: usize) -> &[f64] {
        self.mmm.channels()[c].adstock.weights()
    }

    pub(crate) fn discount(&self) -> &[f64] {
        self.mmm.discount_weights()
    }

    /// Whether no channel carries spend over and every adstock is the identity: the
    /// water-filling path reads the curves at the spend itself. A single weight below 1
    /// (a `max_lag` beyond the horizon, normalized over all its lags) is not the identity.
    pub(crate) fn separable(&self) -> bool {
        self.mmm.channels().iter().all(|c| c.adstock.is_identity())
    }

    /// Adstocked spend `a = W u` (flat, like `u`).
    pub(crate) fn adstock(&self, u: &[f64]) -> Vec<f64> {
        let mut a = vec![0.0; self.n];
        self.adstock_into(u, &mut a);
        a
    }

    pub(crate) fn adstock_into(&self, u: &[f64], a: &mut [f64]) {
        let t = self.periods;
        for c in 0..self.channels() {
            let ad = &self.mmm.channels()[c].adstock;
            ad.apply(&u[c * t..(c + 1) * t], &mut a[c * t..(c + 1) * t]);
        }
    }

    /// `out = W^T g` (flat).
    pub(crate) fn adstock_transpose(&self, g: &mut [f64]) {
        let t = self.periods;
        for c in 0..self.channels() {
            self.mmm.channels()[c]
                .adstock
                .apply_transpose_in_place(&mut g[c * t..(c + 1) * t]);
        }
    }

    /// `R(u)`, its gradient (into `grad`) and the per-term curvature `d_t f''(a)` (into
    /// `curv`), at adstocked spend `a`.
    pub(crate) fn model_derivatives(&self, a: &[f64], grad: &mut [f64], curv: &mut [f64]) -> f64 {
        let t = self.periods;
        let d = self.discount();
        let mut value = 0.0;
        for c in 0..self.channels() {
            let curve = self.curve(c);
            for p in 0..t {
                let i = c * t + p;
                let (v, d1, d2) = curve.value_and_derivatives(a[i]);
                value += d[p] * v;
                grad[i] = d[p] * d1;
                curv[i] = d[p] * d2;
            }
        }
        self.adstock_transpose(grad);
        value
    }

    /// `R(u)` at adstocked spend `a`.
    pub(crate) fn model_value_at(&self, a: &[f64]) -> f64 {
        let t = self.periods;
        let d = self.discount();
        let mut value = 0.0;
        for c in 0..self.channels() {
            let curve = self.curve(c);
            for p in 0..t {
                value += d[p] * curve.value(a[c * t + p]);
            }
        }
        value
    }

    /// `phi(u)`.
    pub(crate) fn phi(&self, u: &[f64]) -> f64 {
        let r = if self.objective.model != 0.0 {
            self.model_value_at(&self.adstock(u))
        } else {
            0.0
        };
        self.objective.value(r, u.iter().sum())
    }

    /// Largest violation of the bounds, budget and linear rows (scaled units).
    pub(crate) fn linear_violation(&self, u: &[f64]) -> f64 {
        let mut worst = 0.0f64;
        for i in 0..self.n {
            worst = worst.max(self.lower[i] - u[i]).max(u[i] - self.upper[i]);
        }
        let total: f64 = u.iter().sum();
        worst = worst.max(if self.exact {
            (total - self.budget).abs()
        } else {
            total - self.budget
        });
        for r in 0..self.rows.len() {
            worst = worst.max(self.rows.residual(r, self.rows.dot(r, u)));
        }
        worst
    }
}
