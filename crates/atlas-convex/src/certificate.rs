//! The certificate: a proven lower bound on the optimum of `phi` (scaled, minimized) from
//! Lagrange multipliers, by weak duality, evaluated on the true curves.
//!
//! With multipliers `nu` (budget; `>= 0` when the budget is a cap), `lambda_i` (linear
//! rows: positive on the upper side, negative on the lower) and `rho_k >= 0` (nonlinear
//! rows `p_k R + q_k sum(u) >= r_k`), the Lagrangian
//!
//! ```text
//! L(u) = sigma R(u) + (w_s + nu - sum rho_k q_k) sum(u) + lambda . A u + const,
//! sigma = w_m - sum rho_k p_k <= 0,
//! const = -nu B - sum lambda_i^+ hi_i + sum lambda_i^- lo_i + sum rho_k r_k
//! ```
//!
//! is at most `phi` at every feasible point, so `min phi >= inf L` over any box holding the
//! feasible set. The adstock `a = W u` is relaxed with multipliers `mu` chosen as the
//! tangents at the candidate point, which splits the infimum into one-dimensional
//! conjugates of the curves (bounded with [`conjugate_bound`]) and a linear function on the
//! box (exact). The budget multiplier is then re-optimized exactly (a concave
//! piecewise-linear function of one variable). Any multipliers give a valid bound; exact
//! ones (from the Newton polish) give a tight one.

use crate::curves::conjugate_bound;
use crate::prob::Prob;

/// Lagrange multipliers of the scaled problem.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Multipliers {
    /// Budget row.
    pub(crate) nu: f64,
    /// Linear rows (positive: upper side binds; negative: lower side).
    pub(crate) lambda: Vec<f64>,
    /// Nonlinear rows (`>= 0`).
    pub(crate) rho: Vec<f64>,
}

impl Multipliers {
    pub(crate) fn zero(p: &Prob<'_>) -> Self {
        Self {
            nu: 0.0,
            lambda: vec![0.0; p.rows.len()],
            rho: vec![0.0; p.nonlinear.len()],
        }
    }
}

/// A proven lower bound on `min phi` over the feasible set, from the multipliers and the
/// candidate `u` (where the tangents are taken). `-inf` when the multipliers cannot give
/// one.
pub(crate) fn lower_bound(p: &Prob<'_>, u: &[f64], mult: &Multipliers) -> f64 {
    lower_bound_with(p, u, mult, Tangents::Candidate)
}

/// Where the certificate takes the tangent slopes of the curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tangents {
    /// At the candidate's adstocked spend.
    Candidate,
    /// For channels without carry-over, the slope the multipliers ask for (so that the
    /// variable's linear coefficient vanishes at the budget multiplier): the bound is then
    /// the exact Lagrangian dual there, whatever the candidate's precision. A variable a
    /// hair above a bound where the curve's slope is unbounded (`power`, `hill` with
    /// `s < 1`) has a tangent far off the optimal one, and a candidate tangent can cost a
    /// gap of 1e-5. Channels with carry-over keep the candidate's tangents.
    Multipliers,
}

/// [`lower_bound`] with the tangents taken as `tangents` says.
pub(crate) fn lower_bound_with(
    p: &Prob<'_>,
    u: &[f64],
    mult: &Multipliers,
    tangents: Tangents,
) -> f64 {
    let n = p.n;
    let t = p.periods;
    let rho: Vec<f64> = mult.rho.iter().map(|r| r.max(0.0)).collect();
    let sigma = p.objective.model
        - p.nonlinear
            .iter()
            .zip(&rho)
            .map(|(row, r)| r * row.lhs.model)
            .sum::<f64>();
    if sigma.is_nan() || sigma > 0.0 {
        return f64::NEG_INFINITY;
    }
    let s0 = p.objective.spend
        - p.nonlinear
            .iter()
            .zip(&rho)
            .map(|(row, r)| r * row.lhs.spend)
            .sum::<f64>();
    let mut constant: f64 = p
        .nonlinear
        .iter()
        .zip(&rho)
        .map(|(row, r)| r * row.rhs)
        .sum();
    // Sum of magnitudes of every term, for the rounding margin.
    let mut magnitude = constant.abs();
    let lower = p.lower;
    let upper = &p.upper_finite;

    // Linear part: c = W^T mu + s0 + A^T lambda, starting with the rows.
    let mut c = vec![s0; n];
    for i in 0..p.rows.len() {
        let (lo, hi) = (p.rows.lower()[i], p.rows.upper()[i]);
        // A multiplier on a side that does not exist would not give a bound: drop it.
        let l = match mult.lambda[i] {
            l if l > 0.0 && hi.is_finite() => l,
            l if l < 0.0 && lo.is_finite() => l,
            _ => 0.0,
        };
        if l == 0.0 {
            continue;
        }
        let term = if l > 0.0 { -l * hi } else { -l * lo };
        constant += term;
        magnitude += term.abs();
        let (idx, val) = p.rows.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            c[j] += l * v;
        }
    }

    // Curve part: for each term, the tangent slope m at the candidate, the conjugate bound,
    // and -m pushed back through the adstock into c.
    let mut conj_total = 0.0;
    if sigma < 0.0 {
        let a_hat = p.adstock(u);
        let a_lo = p.adstock(lower);
        let a_hi = p.adstock(upper);
        let d = p.discount();
        let mut slopes = vec![0.0; n];
        for ch in 0..p.channels() {
            let curve = p.curve(ch);
            // Without carry-over `a_i = w u_i`, so the slope m comes back as `w m`.
            let single = match p.weights(ch) {
                [w] if *w > 0.0 => Some(*w),
                _ => None,
            };
            let from_multipliers = if tangents == Tangents::Multipliers {
                single
            } else {
                None
            };
            for q in 0..t {
                let i = ch * t + q;
                let kappa = -sigma * d[q];
                let m = if let Some(w) = from_multipliers {
                    (c[i] + mult.nu) / w
                } else {
                    kappa * curve.derivative(a_hat[i])
                };
                let (bound, _) = conjugate_bound(curve, kappa, m, a_lo[i], a_hi[i]);
                conj_total += bound;
                // The conjugate is a difference of kappa f and m a: its rounding scales with both.
                magnitude += bound.abs() + (m * a_hat[i]).abs();
                slopes[i] = m;
            }
        }
        p.adstock_transpose(&mut slopes);
        for i in 0..n {
            c[i] -= slopes[i];
        }
    }

    // The budget multiplier maximizing h(nu) = -nu B + sum_i min((c_i + nu) l_i, (c_i + nu) h_i).
    let nu = best_nu(&c, lower, upper, p.budget, p.exact, mult.nu);
    let mut linear = -nu * p.budget;
    magnitude += linear.abs();
    for i in 0..n {
        let ci = c[i] + nu;
        let term = if ci >= 0.0 {
            ci * lower[i]
        } else {
            ci * upper[i]
        };
        linear += term;
        magnitude += term.abs();
    }
    let bound = constant - conj_total + linear;
    // Rounding: every term carries a relative error of a few ulps, the sums add n of them.
    let margin = 1e-12 * magnitude + (n as f64) * f64::EPSILON * magnitude;
    bound - margin
}

/// [`lower_bound`] with the multipliers of the nonlinear rows, and of the linear rows that
/// carry one, re-optimized. For fixed tangent points the bound is a concave function of
/// these multipliers (terms linear in them plus a minimum of such terms), so golden-section
/// searches along each in turn (in its sign's direction) can only raise it. The polish
/// estimates multipliers to its own tolerance; on ill-conditioned problems (a curve with
/// unbounded slope at zero beside a binding `min_spend` target, say) that alone can leave
/// a gap of 1e-7 at the optimum, which this closes.
///
/// `stop` is checked between coordinates (the search stops with the best bound so far).
pub(crate) fn best_lower_bound(
    p: &Prob<'_>,
    u: &[f64],
    mult: &Multipliers,
    stop: &dyn Fn() -> bool,
) -> f64 {
    [Tangents::Candidate, Tangents::Multipliers]
        .into_iter()
        .map(|tangents| search_multipliers(p, u, mult, tangents, stop))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Coordinate-wise golden-section ascent of [`lower_bound_with`] over the multipliers.
fn search_multipliers(
    p: &Prob<'_>,
    u: &[f64],
    mult: &Multipliers,
    tangents: Tangents,
    stop: &dyn Fn() -> bool,
) -> f64 {
    let lower_bound =
        |p: &Prob<'_>, u: &[f64], m: &Multipliers| lower_bound_with(p, u, m, tangents);
    #[derive(Clone, Copy)]
    enum Coordinate {
        Rho(usize),
        /// A linear row, with the sign of its multiplier.
        Lambda(usize, f64),
    }
    let mut best = lower_bound(p, u, mult);
    let mut m = mult.clone();
    m.rho.iter_mut().for_each(|r| *r = r.max(0.0));
    let mut coordinates: Vec<Coordinate> = (0..m.rho.len()).map(Coordinate::Rho).collect();
    coordinates.extend(
        m.lambda
            .iter()
            .enumerate()
            .filter(|(_, l)| **l != 0.0)
            .map(|(i, l)| Coordinate::Lambda(i, l.signum())),
    );
    if coordinates.is_empty() {
        return best;
    }
    let get = |m: &Multipliers, c: Coordinate| match c {
        Coordinate::Rho(k) => m.rho[k],
        Coordinate::Lambda(i, sign) => sign * m.lambda[i],
    };
    let set = |m: &mut Multipliers, c: Coordinate, v: f64| match c {
        Coordinate::Rho(k) => m.rho[k] = v,
        Coordinate::Lambda(i, sign) => m.lambda[i] = sign * v,
    };
    // One pass is exact for a single coordinate; more settle coupled ones.
    let sweeps = if coordinates.len() == 1 { 1 } else { 4 };
    for _sweep in 0..sweeps {
        let before = best;
        for &c in &coordinates {
            if stop() {
                return best;
            }
            let at = |v: f64| {
                let mut trial = m.clone();
                set(&mut trial, c, v);
                lower_bound(p, u, &trial)
            };
            // Bracket: double the upper end while the bound still rises there.
            let v0 = get(&m, c);
            let mut hi = if v0 > 0.0 { 2.0 * v0 } else { 1.0 };
            let mut at_half = at(0.5 * hi);
            for _ in 0..60 {
                let at_hi = at(hi);
                if at_hi <= at_half {
                    break;
                }
                at_half = at_hi;
                hi *= 2.0;
            }
            let (mut a, mut b) = (0.0, hi);
            let ratio = 0.5 * (5f64.sqrt() - 1.0);
            let mut x1 = b - ratio * (b - a);
            let mut x2 = a + ratio * (b - a);
            let (mut f1, mut f2) = (at(x1), at(x2));
            for _ in 0..64 {
                if f1 < f2 {
                    a = x1;
                    x1 = x2;
                    f1 = f2;
                    x2 = a + ratio * (b - a);
                    f2 = at(x2);
                } else {
                    b = x2;
                    x2 = x1;
                    f2 = f1;
                    x1 = b - ratio * (b - a);
                    f1 = at(x1);
                }
            }
            let (v, f) = if f1 >= f2 { (x1, f1) } else { (x2, f2) };
            if f > best {
                best = f;
                set(&mut m, c, v);
            }
        }
        if best <= before {
            break;
        }
    }
    best
}

/// Maximizer of the concave piecewise-linear `h(nu) = -nu B + sum_i min((c_i + nu) l_i,
/// (c_i + nu) h_i)` (over `nu >= 0` for a budget cap). Its slope is `-B + sum` of `h_i`
/// where `c_i + nu < 0` and `l_i` elsewhere, falling as `nu` passes each `-c_i`.
fn best_nu(
    c: &[f64],
    lower: &[f64],
    upper: &[f64],
    budget: f64,
    exact: bool,
    fallback: f64,
) -> f64 {
    let mut order: Vec<usize> = (0..c.len()).collect();
    order.sort_by(|&a, &b| (-c[a]).total_cmp(&(-c[b])));
    let mut slope = -budget + upper.iter().sum::<f64>();
    let mut nu = f64::NAN;
    if slope <= 0.0 {
        // Non-increasing everywhere: the budget never binds (or the box cannot reach it).
        nu = if exact {
            order.first().map(|&i| -c[i]).unwrap_or(fallback)
        } else {
            0.0
        };
    } else {
        for &i in &order {
            slope -= upper[i] - lower[i];
            if slope <= 0.0 {
                nu = -c[i];
                break;
            }
        }
    }
    if !nu.is_finite() {
        nu = fallback;
    }
    if exact {
        nu
    } else {
        nu.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_core::{Compiled, Registry, Scaled};
    use proptest::prelude::*;

    /// The scaled problem and its certified optimum of `phi`.
    fn problem(file: &str) -> (Compiled, f64) {
        let c = Compiled::from_path(format!("../../examples/problems/{file}")).unwrap();
        let mut reg = Registry::new();
        crate::register(&mut reg).unwrap();
        let r = reg
            .optimize(
                &c,
                reg.default_config("convex").unwrap().as_ref(),
                Default::default(),
            )
            .unwrap();
        let s = Scaled::new(&c).unwrap();
        let phi = s.phi_from_objective(r.objective);
        (c, phi)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

        /// Weak duality: whatever the multipliers (signs included) and the tangent point,
        /// the bound never exceeds the optimum.
        #[test]
        fn any_multipliers_give_a_valid_bound(
            which in 0usize..3,
            nu in -5.0f64..5.0,
            lambdas in prop::collection::vec(-5.0f64..5.0, 300),
            rho in -2.0f64..4.0,
            point in prop::collection::vec(0.0f64..1.0, 300),
            mix in 0.0f64..1.0,
        ) {
            let file = ["retail_q4.toml", "target_spend.toml", "profit.toml"][which];
            let (c, phi_star) = problem(file);
            let s = Scaled::new(&c).unwrap();
            let p = Prob::new(&s).unwrap();
            let start = s.start();
            // A tangent point between the feasible start and a random point of the box.
            let u: Vec<f64> = (0..p.n).map(|i| (1.0 - mix) * start[i] + mix * point[i % point.len()] * p.upper_finite[i]).collect();
            let mult = Multipliers {
                nu,
                lambda: (0..p.rows.len()).map(|i| lambdas[i % lambdas.len()]).collect(),
                rho: vec![rho; p.nonlinear.len()],
            };
            let lb = lower_bound(&p, &u, &mult);
            prop_assert!(lb <= phi_star + 1e-12 * phi_star.abs(), "{file}: bound {lb} above the optimum {phi_star}");
        }
    }
}
