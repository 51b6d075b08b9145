//! The Newton polish: an active-set method on the true curves, started from the conic
//! solution and its active set.
//!
//! Each iteration holds a working set (variables fixed at a bound, linear rows and the
//! budget at one of their sides, nonlinear rows at equality) and takes the Newton step of
//! the equality-constrained problem on the free variables. The KKT system
//!
//! ```text
//! [ H  A' ] [ du     ]   [ -g  ]
//! [ A  0  ] [ lambda ] = [ res ]
//! ```
//!
//! is solved through its Schur complement: `H = sigma W' diag(d f'') W` (plus a tiny
//! regularization) is block diagonal by channel, so each block is factored densely, and
//! `A H^-1 A'` is as small as the number of active rows. Steps are cut at the first
//! constraint they would cross (which joins the working set); when the step vanishes, the
//! multipliers' signs are checked and wrong-signed constraints leave the working set.
//! Converged, it yields the optimum to rounding and exact Lagrange multipliers, which is
//! what makes the certificate tight.

use crate::certificate::Multipliers;
use crate::prob::Prob;

/// Which constraints hold with equality.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkingSet {
    /// Per variable: `None` free, `Some(false)` at its lower bound, `Some(true)` upper.
    pub(crate) var: Vec<Option<bool>>,
    /// Per linear row: `Some(true)` at its upper limit, `Some(false)` at its lower one.
    pub(crate) row: Vec<Option<bool>>,
    /// The budget row (always active when the budget is exact).
    pub(crate) budget: bool,
    /// Per nonlinear row.
    pub(crate) nonlinear: Vec<bool>,
}

/// Result of the polish.
pub(crate) struct Polished {
    pub(crate) u: Vec<f64>,
    pub(crate) multipliers: Multipliers,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Budget,
    Row(usize, bool),
    Nonlinear(usize),
}

struct Active {
    kind: Kind,
    /// Normal over all variables (sparse).
    idx: Vec<usize>,
    val: Vec<f64>,
    residual: f64,
}

/// Dense Cholesky factor of an `m x m` symmetric positive definite matrix (row-major,
/// lower triangle used). `None` when not positive definite.
fn cholesky(a: &mut [f64], m: usize) -> Option<()> {
    for j in 0..m {
        let mut s = a[j * m + j];
        for k in 0..j {
            s -= a[j * m + k] * a[j * m + k];
        }
        if s.is_nan() || s <= 0.0 {
            return None;
        }
        let d = s.sqrt();
        a[j * m + j] = d;
        for i in j + 1..m {
            let mut s = a[i * m + j];
            for k in 0..j {
                s -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = s / d;
        }
    }
    Some(())
}

/// Solves `L L' x = b` in place.
fn cholesky_solve(l: &[f64], m: usize, b: &mut [f64]) {
    for i in 0..m {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * m + k] * b[k];
        }
        b[i] = s / l[i * m + i];
    }
    for i in (0..m).rev() {
        let mut s = b[i];
        for k in i + 1..m {
            s -= l[k * m + i] * b[k];
        }
        b[i] = s / l[i * m + i];
    }
}

/// Factors a symmetric positive semidefinite matrix with the smallest diagonal shift that
/// makes it definite (starting from `shift`). `None` when no finite shift does (an entry
/// that is not finite): the polish then stops where it is.
fn factor_shifted(a: &[f64], m: usize, mut shift: f64) -> Option<Vec<f64>> {
    if a.iter().any(|v| !v.is_finite()) {
        return None;
    }
    loop {
        let mut f = a.to_vec();
        for i in 0..m {
            f[i * m + i] += shift;
        }
        if cholesky(&mut f, m).is_some() {
            return Some(f);
        }
        shift = if shift > 0.0 { shift * 100.0 } else { 1e-300 };
        if shift.is_nan() || shift >= 1e300 {
            return None;
        }
    }
}

/// The per-channel factored Hessian blocks over the free variables.
struct Blocks {
    /// Free variable indices of each channel.
    free: Vec<Vec<usize>>,
    factor: Vec<Vec<f64>>,
}

impl Blocks {
    /// `H^-1 v` for a vector over all variables (zero off the free set).
    fn solve(&self, v: &[f64], out: &mut [f64], t: usize) {
        out.iter_mut().for_each(|o| *o = 0.0);
        for (c, free) in self.free.iter().enumerate() {
            if free.is_empty() {
                continue;
            }
            // Skip channels the vector does not touch.
            let range = c * t..(c + 1) * t;
            if v[range].iter().all(|x| *x == 0.0) {
                continue;
            }
            let mut b: Vec<f64> = free.iter().map(|&i| v[i]).collect();
            cholesky_solve(&self.factor[c], free.len(), &mut b);
            for (k, &i) in free.iter().enumerate() {
                out[i] = b[k];
            }
        }
    }
}

/// `sigma W_F' diag(curv) W_F` for channel `c`'s free variables `free` (row-major,
/// `m x m`), built without the channel's full `t x t` block: by the band for short kernels,
/// from the columns `W e_j` (each by the recursion) for long ones.
fn restricted_block(p: &Prob<'_>, c: usize, free: &[usize], sigma: f64, curv: &[f64]) -> Vec<f64> {
    let t = p.periods;
    let m = free.len();
    let mut r = vec![0.0; m * m];
    if m == 0 {
        return r;
    }
    let adstock = &p.mmm.channels()[c].adstock;
    let w = adstock.weights();
    if adstock.recursion().is_some() {
        let mut cols = vec![0.0; m * t];
        let mut e = vec![0.0; t];
        for (a, &i) in free.iter().enumerate() {
            let q = i - c * t;
            e[q] = 1.0;
            adstock.apply(&e, &mut cols[a * t..(a + 1) * t]);
            e[q] = 0.0;
        }
        let k: Vec<f64> = curv.iter().map(|v| sigma * v).collect();
        for a in 0..m {
            let ca = &cols[a * t..(a + 1) * t];
            // W e_j vanishes before period j: start the sum at the later column.
            let qa = free[a] - c * t;
            for b in 0..=a {
                let cb = &cols[b * t..(b + 1) * t];
                let v: f64 = (qa..t).map(|q| k[q] * ca[q] * cb[q]).sum();
                r[a * m + b] = v;
                r[b * m + a] = v;
            }
        }
        return r;
    }
    // Position of each period of the channel among the free variables.
    let mut pos = vec![usize::MAX; t];
    for (a, &i) in free.iter().enumerate() {
        pos[i - c * t] = a;
    }
    for q in 0..t {
        let k = sigma * curv[q];
        if k == 0.0 {
            continue;
        }
        let lo = q.saturating_sub(w.len() - 1);
        for i in lo..=q {
            let pi = pos[i];
            if pi == usize::MAX {
                continue;
            }
            let wi = w[q - i];
            for j in lo..=q {
                let pj = pos[j];
                if pj != usize::MAX {
                    r[pi * m + pj] += k * wi * w[q - j];
                }
            }
        }
    }
    r
}

/// Whether one polish iteration stays cheap: the blocks over `free` variables of every
/// channel (`m_c`) cost about `m_c^3 / 3` to factor and, for long kernels, `m_c^2 t` to
/// build. Above about `3e8` operations the polish would cost seconds per step, and the
/// conic solution with its own multipliers is certified instead.
pub(crate) fn affordable(p: &Prob<'_>, at_bound: &[Option<bool>]) -> bool {
    let t = p.periods;
    let mut cost = 0.0f64;
    for c in 0..p.channels() {
        let m = at_bound[c * t..(c + 1) * t]
            .iter()
            .filter(|b| b.is_none())
            .count() as f64;
        cost += m * m * m / 3.0;
        if p.mmm.channels()[c].adstock.recursion().is_some() {
            cost += m * m * t as f64;
        }
    }
    cost <= 3e8
}

/// `None` when a block cannot be factored (see [`factor_shifted`]).
fn build_blocks(p: &Prob<'_>, ws: &WorkingSet, sigma: f64, curv: &[f64]) -> Option<Blocks> {
    let t = p.periods;
    let nch = p.channels();
    let mut free = vec![Vec::new(); nch];
    for c in 0..nch {
        for q in 0..t {
            let i = c * t + q;
            if ws.var[i].is_none() {
                free[c].push(i);
            }
        }
    }
    // Dense blocks H_c = sigma W' diag(curv) W, restricted to the channel's free variables.
    let mut blocks: Vec<Vec<f64>> = Vec::with_capacity(nch);
    let mut max_diag = 0.0f64;
    for c in 0..nch {
        let r = restricted_block(p, c, &free[c], sigma, &curv[c * t..(c + 1) * t]);
        let m = free[c].len();
        for a in 0..m {
            max_diag = max_diag.max(r[a * m + a]);
        }
        blocks.push(r);
    }
    // A relative shift keeps flat directions (linear curves, saturated ones) solvable;
    // the steps it makes long are cut by the bounds.
    let shift = 1e-13 * max_diag.max(1.0);
    let factor = blocks
        .iter()
        .enumerate()
        .map(|(c, b)| factor_shifted(b, free[c].len(), shift))
        .collect::<Option<Vec<_>>>()?;
    Some(Blocks { free, factor })
}

/// Runs the polish from `u0` with the working set `ws` and nonlinear multipliers `rho0`.
pub(crate) fn polish(
    p: &Prob<'_>,
    u0: &[f64],
    mut ws: WorkingSet,
    rho0: &[f64],
    max_iterations: usize,
    stop: &dyn Fn() -> bool,
) -> Polished {
    let n = p.n;
    let t = p.periods;
    let mut u = u0.to_vec();
    let mut rho: Vec<f64> = rho0.iter().map(|r| r.max(0.0)).collect();
    if p.exact {
        ws.budget = true;
    }
    for r in 0..p.rows.len() {
        if p.rows.lower()[r] == p.rows.upper()[r] {
            ws.row[r] = Some(true);
        }
    }
    // Start inside the bounds; what lies outside (or on) a bound is fixed there, and rows
    // the start violates join the working set.
    for i in 0..n {
        if u[i] <= p.lower[i] {
            ws.var[i] = Some(false);
        } else if u[i] >= p.upper[i] {
            ws.var[i] = Some(true);
        }
    }
    let snap = |u: &mut [f64], ws: &WorkingSet| {
        for i in 0..n {
            match ws.var[i] {
                Some(false) => u[i] = p.lower[i],
                Some(true) => u[i] = p.upper[i],
                None => {}
            }
        }
    };
    snap(&mut u, &ws);
    for r in 0..p.rows.len() {
        if ws.row[r].is_none() {
            let v = p.rows.dot(r, &u);
            if v > p.rows.upper()[r] {
                ws.row[r] = Some(true);
            } else if v < p.rows.lower()[r] {
                ws.row[r] = Some(false);
            }
        }
    }
    if !p.exact && u.iter().sum::<f64>() > p.budget {
        ws.budget = true;
    }

    let mut a = vec![0.0; n];
    let mut grad_r = vec![0.0; n];
    let mut curv = vec![0.0; n];
    let mut mult = Multipliers::zero(p);
    let mut iterations = 0;
    let mut hv = vec![0.0; n];
    let mut last_residual = f64::INFINITY;
    while iterations < max_iterations && !stop() {
        iterations += 1;
        p.adstock_into(&u, &mut a);
        let r_value = p.model_derivatives(&a, &mut grad_r, &mut curv);
        let spend: f64 = u.iter().sum();
        let g: Vec<f64> = grad_r
            .iter()
            .map(|gr| p.objective.model * gr + p.objective.spend)
            .collect();
        let sigma = p.objective.model
            - p.nonlinear
                .iter()
                .zip(&rho)
                .zip(&ws.nonlinear)
                .map(|((row, r), on)| if *on { r * row.lhs.model } else { 0.0 })
                .sum::<f64>();
        // Curvature that is not finite (a curve with unbounded slope at zero, evaluated
        // there) leaves no Newton step: stop with what we have.
        if !affordable(p, &ws.var) {
            break;
        }
        let Some(blocks) = build_blocks(p, &ws, sigma.min(0.0), &curv) else {
            break;
        };

        // Active constraints with their normals and residuals.
        let mut active: Vec<Active> = Vec::new();
        if ws.budget {
            active.push(Active {
                kind: Kind::Budget,
                idx: (0..n).collect(),
                val: vec![1.0; n],
                residual: p.budget - spend,
            });
        }
        for r in 0..p.rows.len() {
            if let Some(upper) = ws.row[r] {
                let (idx, val) = p.rows.row(r);
                let target = if upper {
                    p.rows.upper()[r]
                } else {
                    p.rows.lower()[r]
                };
                active.push(Active {
                    kind: Kind::Row(r, upper),
                    idx: idx.to_vec(),
                    val: val.to_vec(),
                    residual: target - p.rows.dot(r, &u),
                });
            }
        }
        for (k, row) in p.nonlinear.iter().enumerate() {
            if ws.nonlinear[k] {
                active.push(Active {
                    kind: Kind::Nonlinear(k),
                    idx: (0..n).collect(),
                    val: grad_r
                        .iter()
                        .map(|gr| row.lhs.model * gr + row.lhs.spend)
                        .collect(),
                    residual: row.rhs - row.lhs.value(r_value, spend),
                });
            }
        }
        // Only rows that reach a free variable can be adjusted; the others are inert.
        active.retain(|c| {
            c.idx
                .iter()
                .zip(&c.val)
                .any(|(&i, &v)| v != 0.0 && ws.var[i].is_none())
        });
        let na = active.len();

        // Schur complement.
        let gf: Vec<f64> = (0..n)
            .map(|i| if ws.var[i].is_none() { g[i] } else { 0.0 })
            .collect();
        let mut v0 = vec![0.0; n];
        blocks.solve(&gf, &mut v0, t);
        let mut vs: Vec<Vec<f64>> = Vec::with_capacity(na);
        for c in &active {
            let mut dense = vec![0.0; n];
            for (&i, &v) in c.idx.iter().zip(&c.val) {
                if ws.var[i].is_none() {
                    dense[i] = v;
                }
            }
            let mut out = vec![0.0; n];
            blocks.solve(&dense, &mut out, t);
            vs.push(out);
        }
        let dot_free = |c: &Active, v: &[f64]| -> f64 {
            c.idx
                .iter()
                .zip(&c.val)
                .map(|(&i, &x)| if ws.var[i].is_none() { x * v[i] } else { 0.0 })
                .sum()
        };
        let mut s = vec![0.0; na * na];
        let mut rhs = vec![0.0; na];
        let mut max_s = 0.0f64;
        for (pi, c) in active.iter().enumerate() {
            for q in 0..na {
                s[pi * na + q] = dot_free(c, &vs[q]);
            }
            max_s = max_s.max(s[pi * na + pi]);
            rhs[pi] = -dot_free(c, &v0) - c.residual;
        }
        let lambda = if na > 0 {
            // Symmetrize against rounding, then factor with a tiny shift for dependent rows.
            for i in 0..na {
                for j in 0..i {
                    let m = 0.5 * (s[i * na + j] + s[j * na + i]);
                    s[i * na + j] = m;
                    s[j * na + i] = m;
                }
            }
            let Some(f) = factor_shifted(&s, na, 1e-14 * max_s) else {
                break;
            };
            let mut l = rhs.clone();
            cholesky_solve(&f, na, &mut l);
            l
        } else {
            Vec::new()
        };
        let mut du = vec![0.0; n];
        for i in 0..n {
            if ws.var[i].is_none() {
                let mut v = -v0[i];
                for (pi, l) in lambda.iter().enumerate() {
                    v -= l * vs[pi][i];
                }
                du[i] = v;
            }
        }

        // Multipliers in the certificate's convention, and reduced costs of fixed
        // variables: z = g + A' lambda.
        mult = Multipliers::zero(p);
        let mut z = g.clone();
        for (c, &l) in active.iter().zip(&lambda) {
            for (&i, &v) in c.idx.iter().zip(&c.val) {
                z[i] += l * v;
            }
            match c.kind {
                Kind::Budget => mult.nu = l,
                Kind::Row(r, _) => mult.lambda[r] = l,
                Kind::Nonlinear(k) => mult.rho[k] = -l,
            }
        }
        for (k, on) in ws.nonlinear.iter().enumerate() {
            rho[k] = if *on { mult.rho[k].max(0.0) } else { 0.0 };
        }

        // Step, cut at the first constraint crossed.
        let mut alpha = 1.0f64;
        let mut blocking: Option<(usize, bool, bool)> = None; // (index, is_row, upper)
                                                              // Constraints the step leaves at once (on their side already): when it is cut to
                                                              // nothing, all of them join together rather than one per iteration.
        let mut at_zero: Vec<(usize, bool, bool)> = Vec::new();
        for i in 0..n {
            if ws.var[i].is_some() || du[i] == 0.0 {
                continue;
            }
            let limit = if du[i] < 0.0 {
                (p.lower[i] - u[i]) / du[i]
            } else {
                (p.upper[i] - u[i]) / du[i]
            };
            if limit <= 0.0 {
                at_zero.push((i, false, du[i] > 0.0));
            }
            if limit < alpha {
                alpha = limit.max(0.0);
                blocking = Some((i, false, du[i] > 0.0));
            }
        }
        for r in 0..p.rows.len() {
            if ws.row[r].is_some() {
                continue;
            }
            let dv = p.rows.dot(r, &du);
            if dv == 0.0 {
                continue;
            }
            let v = p.rows.dot(r, &u);
            let limit = if dv > 0.0 {
                (p.rows.upper()[r] - v) / dv
            } else {
                (p.rows.lower()[r] - v) / dv
            };
            if limit <= 0.0 {
                at_zero.push((r, true, dv > 0.0));
            }
            if limit < alpha {
                alpha = limit.max(0.0);
                blocking = Some((r, true, dv > 0.0));
            }
        }
        if !ws.budget {
            let dv: f64 = du.iter().sum();
            if dv > 0.0 {
                let limit = (p.budget - spend) / dv;
                if limit < alpha {
                    alpha = limit.max(0.0);
                    blocking = Some((usize::MAX, true, true));
                }
            }
        }
        // Backtracking on phi while only linear rows are active (then the step keeps them,
        // and phi must fall); with a nonlinear row at equality the full Newton step is
        // kept, as its multiplier is still settling.
        let slope: f64 = g.iter().zip(&du).map(|(a, b)| a * b).sum();
        let nonlinear_on = ws.nonlinear.iter().any(|x| *x);
        let phi0 = p.objective.value(r_value, spend);
        let mut trial = u.clone();
        loop {
            for i in 0..n {
                trial[i] = u[i] + alpha * du[i];
            }
            if nonlinear_on || slope.is_nan() || slope >= 0.0 || alpha < 1e-12 {
                break;
            }
            let phi1 = p.phi(&trial);
            if phi1 <= phi0 + 1e-4 * alpha * slope + 1e-15 * phi0.abs() {
                break;
            }
            alpha *= 0.5;
            blocking = None;
        }
        let step = du.iter().fold(0.0f64, |m, d| m.max((alpha * d).abs()));
        u.copy_from_slice(&trial);
        if blocking.is_some() && alpha == 0.0 {
            for &(i, is_row, upper) in &at_zero {
                if is_row {
                    ws.row[i] = Some(upper);
                } else {
                    ws.var[i] = Some(upper);
                }
            }
        }
        if let Some((i, is_row, upper)) = blocking {
            if is_row && i == usize::MAX {
                ws.budget = true;
            } else if is_row {
                ws.row[i] = Some(upper);
            } else {
                ws.var[i] = Some(upper);
            }
        }
        snap(&mut u, &ws);
        // Nonlinear rows the step broke join the working set.
        if !p.nonlinear.is_empty() {
            p.adstock_into(&u, &mut hv);
            let rv = p.model_value_at(&hv);
            let sp: f64 = u.iter().sum();
            for (k, row) in p.nonlinear.iter().enumerate() {
                if !ws.nonlinear[k]
                    && row.lhs.value(rv, sp) < row.rhs - 1e-13 * row.rhs.abs().max(1.0)
                {
                    ws.nonlinear[k] = true;
                    rho[k] = rho[k].max(0.0);
                }
            }
        }
        let residual = active.iter().fold(0.0f64, |m, c| m.max(c.residual.abs()));
        // Rounding: a row's value (the budget's sum over every variable, say) is known to
        // a few ulps per term, so what is left of the steps and residuals grows with `n`.
        let settled = (1e-13 + 4.0 * n as f64 * f64::EPSILON) * (1.0 + p.budget);
        // A residual the steps no longer reduce (rows at equality that meet fixed
        // variables in a nearly dependent set) is as settled as rounding lets it be.
        let stalled = residual >= 0.5 * last_residual;
        last_residual = if blocking.is_some() {
            f64::INFINITY
        } else {
            residual
        };
        if blocking.is_some() || step > settled || (residual > settled && !stalled) {
            continue;
        }
        // Stationary on the working set: release constraints whose multipliers have the
        // wrong sign (beyond rounding), else done.
        let scale = g.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
        let tol = 1e-11 * scale;
        let mut released = false;
        for i in 0..n {
            match ws.var[i] {
                Some(false) if z[i] < -tol && p.upper[i] > p.lower[i] => {
                    ws.var[i] = None;
                    released = true;
                }
                Some(true) if z[i] > tol && p.upper[i] > p.lower[i] => {
                    ws.var[i] = None;
                    released = true;
                }
                _ => {}
            }
        }
        for (c, &l) in active.iter().zip(&lambda) {
            match c.kind {
                Kind::Budget if !p.exact && l < -tol => {
                    ws.budget = false;
                    released = true;
                }
                Kind::Row(r, upper)
                    if p.rows.lower()[r] != p.rows.upper()[r]
                        && ((upper && l < -tol) || (!upper && l > tol)) =>
                {
                    ws.row[r] = None;
                    released = true;
                }
                Kind::Nonlinear(k) if -l < -tol => {
                    ws.nonlinear[k] = false;
                    rho[k] = 0.0;
                    released = true;
                }
                _ => {}
            }
        }
        if !released {
            // A KKT point: stationary on the working set, every multiplier signed right.
            break;
        }
    }
    Polished {
        u,
        multipliers: mult,
    }
}
