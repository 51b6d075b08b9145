//! The conic formulation solved by Clarabel.
//!
//! Variables: the spend `u` (scaled), one normalized epigraph variable `tau = t / beta`
//! per (channel, period) term with a nonzero curve, and one auxiliary `y` per `hill` term
//! with `s < 1`. The objective is `w_s sum(u) + w_m sum d_t beta_c tau_ct`; every use of
//! `tau` wants it large, so each hypograph constraint below is tight at the optimum.
//! With `a = (W_c u_c)_t` (adstock as the linear map it is):
//!
//! | curve | constraint | cone |
//! |---|---|---|
//! | linear | `tau <= a` | nonnegative |
//! | exponential | `exp(-a/k) <= 1 - tau`: `(-a/k, 1, 1 - tau)` | exponential |
//! | log | `exp(tau) <= 1 + a/k`: `(tau, 1, 1 + a/k)` | exponential |
//! | power | `tau <= a^alpha`: `(a/c, 1, tau/c^alpha)`, `c` the mean spend | power(alpha) |
//! | hill, s = 1 | `(1 - tau)(1 + a/k) >= 1` | second-order, 3 |
//! | hill, s < 1 | `y <= (a/k)^s` and `(1 - tau)(1 + y) >= 1` | power(s), second-order |
//! | logistic | tangent cuts `tau <= g(z_j) + g'(z_j)(a - z_j)` and `tau <= 1` | nonnegative |
//!
//! (`g = f / beta`.) Only `logistic` is approximated; the cuts lie above the curve, so the
//! conic problem is a relaxation.

use atlas_core::Curve;
use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettings, DefaultSolver, IPSolver, SolverStatus, SupportedConeT};

use crate::certificate::Multipliers;
use crate::curves::curve_is_zero;
use crate::prob::Prob;

/// An affine expression `constant + sum coef * v[col]`.
#[derive(Debug, Clone, Default)]
struct Affine {
    constant: f64,
    terms: Vec<(usize, f64)>,
}

impl Affine {
    fn constant(c: f64) -> Self {
        Self {
            constant: c,
            terms: Vec::new(),
        }
    }
    fn var(col: usize, coef: f64) -> Self {
        Self {
            constant: 0.0,
            terms: vec![(col, coef)],
        }
    }
    fn plus(mut self, other: &Affine, scale: f64) -> Self {
        self.constant += scale * other.constant;
        self.terms
            .extend(other.terms.iter().map(|&(c, v)| (c, scale * v)));
        self
    }
}

/// Where a row of the conic problem comes from, to read its multiplier back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Origin {
    Budget,
    /// Linear row `i`, upper (`true`) or lower side.
    Row(usize, bool),
    /// Equality linear row `i`.
    RowEq(usize),
    Nonlinear(usize),
    /// Variable `i` at its lower (`false`) or upper (`true`) bound.
    Bound(usize, bool),
    Other,
}

/// The conic problem under construction: equality rows, inequality rows (`expr <= 0` as
/// affine `>= 0` slacks) and cones, assembled in that order.
#[derive(Default)]
struct Builder {
    eq: Vec<(Affine, Origin)>,
    ineq: Vec<(Affine, Origin)>,
    cones: Vec<(SupportedConeT<f64>, Vec<Affine>)>,
    columns: usize,
}

impl Builder {
    fn column(&mut self) -> usize {
        self.columns += 1;
        self.columns - 1
    }
    /// `slack >= 0`.
    fn nonneg(&mut self, slack: Affine, origin: Origin) {
        self.ineq.push((slack, origin));
    }
    /// `expr == 0`.
    fn zero(&mut self, expr: Affine, origin: Origin) {
        self.eq.push((expr, origin));
    }
    fn cone(&mut self, cone: SupportedConeT<f64>, parts: Vec<Affine>) {
        self.cones.push((cone, parts));
    }
}

/// A solved conic relaxation: the spend, its status, multipliers and the active set the
/// interior point indicates.
pub(crate) struct ConicSolution {
    pub(crate) status: SolverStatus,
    pub(crate) u: Vec<f64>,
    pub(crate) multipliers: Multipliers,
    /// Per variable: `Some(false)` at its lower bound, `Some(true)` at its upper one.
    pub(crate) at_bound: Vec<Option<bool>>,
    /// Per linear row: `Some(true)` upper side active, `Some(false)` lower side.
    pub(crate) row_active: Vec<Option<bool>>,
    pub(crate) budget_active: bool,
    pub(crate) nonlinear_active: Vec<bool>,
}

/// The tangent cut points of each logistic term, in adstocked spend.
pub(crate) type Cuts = Vec<Vec<f64>>;

/// Initial cut points for a logistic term: `count - 1` points of `z = lam a` spread over
/// `[0, 7]` (denser where the curve bends) plus the asymptote, added separately.
pub(crate) fn initial_cuts(curve: &Curve, count: usize) -> Vec<f64> {
    match *curve {
        Curve::Logistic { lam, .. } => {
            let k = count.saturating_sub(1).max(1);
            (0..k)
                .map(|j| {
                    let s = j as f64 / (k.max(2) - 1) as f64;
                    7.0 * s.powf(1.3) / lam
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Builds and solves the conic relaxation.
pub(crate) fn solve(
    p: &Prob<'_>,
    cuts: &Cuts,
    settings: DefaultSettings<f64>,
) -> Result<ConicSolution, String> {
    let n = p.n;
    let t = p.periods;
    let mut b = Builder {
        columns: n,
        ..Default::default()
    };
    let mut q = vec![p.objective.spend; n];
    // Objective and nonlinear-row coefficients of each term's tau (before d_t beta).
    let mut tau_cols: Vec<Option<(usize, f64)>> = vec![None; n];
    let d = p.discount();
    for c in 0..p.channels() {
        let curve = *p.curve(c);
        if curve_is_zero(&curve) {
            continue;
        }
        let w = p.weights(c);
        // A long geometric kernel gets one column per period for its adstocked spend, tied
        // to the spend by the recursion `a_t = w_0 u_t + d (a_{t-1} - w_{L-1} u_{t-L})`:
        // three or four nonzeros per period instead of up to `L`.
        let recursion = p.mmm.channels()[c].adstock.recursion();
        let mut previous: Option<usize> = None;
        for period in 0..t {
            let i = c * t + period;
            // a = sum_l w_l u_{c, period - l}
            let mut a = Affine::default();
            if let Some(decay) = recursion {
                let col = b.column();
                // w_0 u_t + d a_{t-1} - d w_{L-1} u_{t-L} - a_t == 0
                let mut e = Affine::var(i, w[0]).plus(&Affine::var(col, 1.0), -1.0);
                if let Some(prev) = previous {
                    e.terms.push((prev, decay));
                }
                if period >= w.len() {
                    e.terms.push((i - w.len(), -decay * w[w.len() - 1]));
                }
                b.zero(e, Origin::Other);
                previous = Some(col);
                a.terms.push((col, 1.0));
            } else {
                for (l, wl) in w.iter().enumerate().take(period + 1) {
                    if *wl != 0.0 {
                        a.terms.push((c * t + period - l, *wl));
                    }
                }
            }
            let tau = b.column();
            let tv = Affine::var(tau, 1.0);
            let beta = match curve {
                Curve::Linear { beta }
                | Curve::Hill { beta, .. }
                | Curve::Exponential { beta, .. }
                | Curve::Logistic { beta, .. }
                | Curve::Log { beta, .. }
                | Curve::Power { beta, .. } => beta,
            };
            match curve {
                Curve::Linear { .. } => {
                    // a - tau >= 0
                    b.nonneg(a.clone().plus(&tv, -1.0), Origin::Other);
                }
                Curve::Power { alpha: 1.0, .. } => {
                    // a - tau >= 0
                    b.nonneg(a.clone().plus(&tv, -1.0), Origin::Other);
                }
                Curve::Exponential { k, .. } => {
                    let x = Affine::default().plus(&a, -1.0 / k);
                    let z = Affine::constant(1.0).plus(&tv, -1.0);
                    b.cone(
                        SupportedConeT::ExponentialConeT(),
                        vec![x, Affine::constant(1.0), z],
                    );
                }
                Curve::Log { k, .. } => {
                    let z = Affine::constant(1.0).plus(&a, 1.0 / k);
                    b.cone(
                        SupportedConeT::ExponentialConeT(),
                        vec![tv.clone(), Affine::constant(1.0), z],
                    );
                }
                Curve::Power { alpha, .. } => {
                    // tau <= a^alpha as (a/c)^alpha >= tau / c^alpha with c the mean spend
                    // per variable, so that both sides are of order one.
                    let c0 = p.budget / n as f64;
                    let x = Affine::default().plus(&a, 1.0 / c0);
                    b.cone(
                        SupportedConeT::PowerConeT(alpha),
                        vec![x, Affine::constant(1.0), Affine::var(tau, c0.powf(-alpha))],
                    );
                }
                Curve::Hill { k, s, .. } => {
                    // v = 1 + a / k  (s = 1), or 1 + y / k^s with y <= a^s.
                    let v = if s == 1.0 {
                        Affine::constant(1.0).plus(&a, 1.0 / k)
                    } else {
                        let y = b.column();
                        let yv = Affine::var(y, 1.0);
                        // y / k^s <= (a / k)^s, with y measured in units of k^s.
                        b.cone(
                            SupportedConeT::PowerConeT(s),
                            vec![
                                Affine::default().plus(&a, 1.0 / k),
                                Affine::constant(1.0),
                                yv.clone(),
                            ],
                        );
                        Affine::constant(1.0).plus(&yv, 1.0)
                    };
                    let u = Affine::constant(1.0).plus(&tv, -1.0);
                    let s1 = u.clone().plus(&v, 1.0);
                    let s2 = u.plus(&v, -1.0);
                    b.cone(
                        SupportedConeT::SecondOrderConeT(3),
                        vec![s1, s2, Affine::constant(2.0)],
                    );
                }
                Curve::Logistic { lam, .. } => {
                    // tau <= 1, and tangents of g(a) = tanh(lam a / 2).
                    b.nonneg(Affine::constant(1.0).plus(&tv, -1.0), Origin::Other);
                    for &z in &cuts[i] {
                        let th = (0.5 * lam * z).tanh();
                        let slope = 0.5 * lam * (1.0 - th * th);
                        // th + slope (a - z) - tau >= 0
                        let e = Affine::constant(th - slope * z)
                            .plus(&a, slope)
                            .plus(&tv, -1.0);
                        b.nonneg(e, Origin::Other);
                    }
                }
            }
            tau_cols[i] = Some((tau, d[period] * beta));
        }
    }
    q.resize(b.columns, 0.0);
    for &(col, coef) in tau_cols.iter().flatten() {
        q[col] = p.objective.model * coef;
    }
    // Bounds.
    for i in 0..n {
        b.nonneg(
            Affine::var(i, 1.0).plus(&Affine::constant(-p.lower[i]), 1.0),
            Origin::Bound(i, false),
        );
        if p.upper[i].is_finite() {
            b.nonneg(
                Affine::constant(p.upper[i]).plus(&Affine::var(i, 1.0), -1.0),
                Origin::Bound(i, true),
            );
        }
    }
    // Budget.
    let total = Affine {
        constant: -p.budget,
        terms: (0..n).map(|i| (i, 1.0)).collect(),
    };
    if p.exact {
        b.zero(total, Origin::Budget);
    } else {
        b.nonneg(Affine::default().plus(&total, -1.0), Origin::Budget);
    }
    // Linear rows.
    for r in 0..p.rows.len() {
        let (idx, val) = p.rows.row(r);
        let expr = Affine {
            constant: 0.0,
            terms: idx.iter().copied().zip(val.iter().copied()).collect(),
        };
        let (lo, hi) = (p.rows.lower()[r], p.rows.upper()[r]);
        if lo == hi {
            b.zero(expr.plus(&Affine::constant(-hi), 1.0), Origin::RowEq(r));
            continue;
        }
        if hi.is_finite() {
            b.nonneg(Affine::constant(hi).plus(&expr, -1.0), Origin::Row(r, true));
        }
        if lo.is_finite() {
            b.nonneg(
                expr.plus(&Affine::constant(-lo), 1.0),
                Origin::Row(r, false),
            );
        }
    }
    // Nonlinear rows: p_k sum d beta tau + q_k sum(u) - r_k >= 0.
    for (k, row) in p.nonlinear.iter().enumerate() {
        let mut e = Affine::constant(-row.rhs);
        for i in 0..n {
            e.terms.push((i, row.lhs.spend));
        }
        for &(col, coef) in tau_cols.iter().flatten() {
            e.terms.push((col, row.lhs.model * coef));
        }
        b.nonneg(e, Origin::Nonlinear(k));
    }

    // Assemble A and b: slack s = b - A v, so a part `constant + terms` has b = constant
    // and A = -terms.
    let mut rows_i = Vec::new();
    let mut cols_j = Vec::new();
    let mut vals = Vec::new();
    let mut rhs = Vec::new();
    let mut origins = Vec::new();
    let mut cones = Vec::new();
    let mut push = |e: &Affine, origin: Origin, rows_i: &mut Vec<usize>, rhs: &mut Vec<f64>| {
        let r = rhs.len();
        for &(col, v) in &e.terms {
            if v != 0.0 {
                rows_i.push(r);
                cols_j.push(col);
                vals.push(-v);
            }
        }
        rhs.push(e.constant);
        origins.push(origin);
    };
    if !b.eq.is_empty() {
        cones.push(SupportedConeT::ZeroConeT(b.eq.len()));
        for (e, o) in &b.eq {
            push(e, *o, &mut rows_i, &mut rhs);
        }
    }
    if !b.ineq.is_empty() {
        cones.push(SupportedConeT::NonnegativeConeT(b.ineq.len()));
        for (e, o) in &b.ineq {
            push(e, *o, &mut rows_i, &mut rhs);
        }
    }
    for (cone, parts) in &b.cones {
        cones.push(cone.clone());
        for e in parts {
            push(e, Origin::Other, &mut rows_i, &mut rhs);
        }
    }
    let m = rhs.len();
    let cols = b.columns;
    let a_mat = CscMatrix::new_from_triplets(m, cols, rows_i, cols_j, vals);
    let p_mat = CscMatrix::<f64>::zeros((cols, cols));
    let mut solver = DefaultSolver::new(&p_mat, &q, &a_mat, &rhs, &cones, settings)
        .map_err(|e| format!("Clarabel refused the problem: {e}"))?;
    solver.solve();
    let sol = &solver.solution;

    let mut mult = Multipliers::zero(p);
    let mut at_bound = vec![None; n];
    let mut row_active = vec![None; p.rows.len()];
    let mut budget_active = p.exact;
    let mut nonlinear_active = vec![false; p.nonlinear.len()];
    for (r, origin) in origins.iter().enumerate() {
        let (z, s) = (sol.z[r], sol.s[r]);
        // Strict complementarity: a constraint is active when its multiplier exceeds its
        // slack.
        let active = z > s;
        match *origin {
            Origin::Budget => {
                // Equality rows are stored as `B - sum(u) + s = 0`-style slacks whose
                // multiplier has the opposite sign of this crate's convention.
                mult.nu = if p.exact { -z } else { z };
                budget_active |= active;
            }
            Origin::Row(i, upper) => {
                if upper {
                    mult.lambda[i] += z;
                } else {
                    mult.lambda[i] -= z;
                }
                if active {
                    row_active[i] = Some(upper);
                }
            }
            Origin::RowEq(i) => {
                mult.lambda[i] = -z;
                row_active[i] = Some(true);
            }
            Origin::Nonlinear(k) => {
                mult.rho[k] = z;
                nonlinear_active[k] = active;
            }
            Origin::Bound(i, upper) => {
                if active {
                    at_bound[i] = Some(upper);
                }
            }
            Origin::Other => {}
        }
    }
    Ok(ConicSolution {
        status: sol.status,
        u: sol.x[..n].to_vec(),
        multipliers: mult,
        at_bound,
        row_active,
        budget_active,
        nonlinear_active,
    })
}
