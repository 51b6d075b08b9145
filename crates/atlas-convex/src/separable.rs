//! The fast path for separable problems (no adstock, only bounds and the budget, response
//! or profit): water-filling on the budget multiplier.
//!
//! For a price `nu` on the budget, each variable independently maximizes
//! `kappa_i f_i(u) - (w_s + nu) u` on its interval, which the exact inverse marginal
//! solves; the total spend falls as `nu` rises, and a safeguarded Newton / bisection search
//! finds the `nu` that spends the budget (or `nu = 0` when a cap does not bind). The last
//! bracket's two allocations are blended to hit the budget exactly, which also places the
//! remainder on linear channels whose marginal equals the price.

use crate::curves::inverse_marginal;
use crate::prob::Prob;

/// Whether the fast path applies.
pub(crate) fn applies(p: &Prob<'_>) -> bool {
    p.separable() && p.rows.is_empty() && p.nonlinear.is_empty() && p.objective.model < 0.0
}

struct Terms {
    kappa: Vec<f64>,
}

impl Terms {
    fn new(p: &Prob<'_>) -> Self {
        let t = p.periods;
        let d = p.discount();
        let kappa = (0..p.n).map(|i| -p.objective.model * d[i % t]).collect();
        Self { kappa }
    }

    /// The allocation at price `nu` and its total.
    fn at(&self, p: &Prob<'_>, nu: f64, out: &mut [f64]) -> f64 {
        let t = p.periods;
        let m = p.objective.spend + nu;
        let mut total = 0.0;
        for i in 0..p.n {
            out[i] = inverse_marginal(
                p.curve(i / t),
                self.kappa[i],
                m,
                p.lower[i],
                p.upper_finite[i],
            );
            total += out[i];
        }
        total
    }

    /// `d total / d nu` at an allocation: `sum 1 / (kappa f''(u))` over interior variables.
    fn slope(&self, p: &Prob<'_>, u: &[f64]) -> f64 {
        let t = p.periods;
        let mut s = 0.0;
        for i in 0..p.n {
            if u[i] > p.lower[i] && u[i] < p.upper_finite[i] {
                let d2 = self.kappa[i] * p.curve(i / t).second_derivative(u[i]);
                if d2 < 0.0 {
                    s += 1.0 / d2;
                }
            }
        }
        s
    }
}

/// The water-filling solution and its budget multiplier; `iterations` counts the price
/// updates.
pub(crate) fn solve(p: &Prob<'_>) -> (Vec<f64>, f64, usize) {
    let terms = Terms::new(p);
    let n = p.n;
    let b = p.budget;
    let mut u = vec![0.0; n];
    // At nu = -w_s every marginal price is zero: everything at its (finite) top.
    let mut lo = -p.objective.spend;
    let s_lo = terms.at(p, lo, &mut u);
    if !p.exact {
        let s0 = terms.at(p, 0.0, &mut u);
        if s0 <= b {
            return (u, 0.0, 1);
        }
        lo = lo.max(0.0);
    }
    if s_lo <= b {
        // The bounds cannot spend more: everything at the top.
        terms.at(p, lo, &mut u);
        return (u, lo, 1);
    }
    // A price at which every variable sits at its lower bound.
    let t = p.periods;
    let mut hi = lo;
    for i in 0..n {
        let m = terms.kappa[i] * p.curve(i / t).derivative(p.lower[i]) - p.objective.spend;
        hi = hi.max(m);
    }
    hi = hi * (1.0 + 1e-12) + 1e-300;
    let mut u_lo = vec![0.0; n];
    let mut u_hi = vec![0.0; n];
    let mut s_lo = terms.at(p, lo, &mut u_lo);
    let mut s_hi = terms.at(p, hi, &mut u_hi);
    let mut nu = lo + (hi - lo) * 0.5;
    let mut iterations = 0;
    for _ in 0..300 {
        iterations += 1;
        if !(nu > lo && nu < hi) {
            nu = lo + 0.5 * (hi - lo);
            if !(nu > lo && nu < hi) {
                break;
            }
        }
        let s = terms.at(p, nu, &mut u);
        if s == b {
            return (u, nu, iterations);
        }
        if s > b {
            lo = nu;
            s_lo = s;
            u_lo.copy_from_slice(&u);
        } else {
            hi = nu;
            s_hi = s;
            u_hi.copy_from_slice(&u);
        }
        if (s - b).abs() <= 1e-15 * b || hi - lo <= 1e-15 * hi.abs().max(lo.abs()) {
            break;
        }
        // Newton on total(nu) = b, kept inside the bracket (else bisection).
        let slope = terms.slope(p, &u);
        let newton = if slope < 0.0 {
            nu - (s - b) / slope
        } else {
            f64::NAN
        };
        nu = if newton > lo && newton < hi {
            newton
        } else {
            lo + 0.5 * (hi - lo)
        };
    }
    // Blend the bracket's ends so the total is exactly the budget.
    let theta = if s_lo > s_hi {
        ((b - s_hi) / (s_lo - s_hi)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    for i in 0..n {
        u[i] = u_hi[i] + theta * (u_lo[i] - u_hi[i]);
    }
    let nu = hi + theta * (lo - hi);
    (u, nu, iterations)
}
