//! One-dimensional facts about concave curves that the water-filling and the certificate
//! need: the exact maximizer of `kappa f(a) - m a` on an interval (inverse marginal) and a
//! proven upper bound on that maximum (the curve's conjugate).

use atlas_core::Curve;

/// Argmax of `kappa * f(a) - m * a` over `[lo, hi]` for a concave curve `f` and
/// `kappa >= 0`: where the marginal `kappa f'(a)` falls to `m`, clamped to the interval.
/// `hi` must be finite.
pub(crate) fn inverse_marginal(curve: &Curve, kappa: f64, m: f64, lo: f64, hi: f64) -> f64 {
    if kappa <= 0.0 || curve_is_zero(curve) {
        // Only the linear cost is left: as little as possible when it is positive.
        return if m > 0.0 { lo } else { hi };
    }
    if m <= 0.0 {
        // The curve is nondecreasing: more is never worse.
        return hi;
    }
    let q = m / kappa;
    let a = match *curve {
        Curve::Linear { beta } => {
            return if beta > q { hi } else { lo };
        }
        Curve::Hill { beta, k, s: 1.0 } => (beta * k / q).sqrt() - k,
        Curve::Exponential { beta, k } => k * (beta / (k * q)).ln(),
        Curve::Logistic { beta, lam } => {
            let c = (0.5 * beta * lam / q).sqrt();
            if c <= 1.0 {
                0.0
            } else {
                2.0 / lam * c.acosh()
            }
        }
        Curve::Log { beta, k } => beta / q - k,
        Curve::Power { beta, alpha } => {
            if alpha == 1.0 {
                return if beta > q { hi } else { lo };
            }
            (q / (alpha * beta)).powf(1.0 / (alpha - 1.0))
        }
        Curve::Hill { .. } => return bisect_marginal(curve, q, lo, hi),
    };
    if a.is_nan() {
        return lo;
    }
    a.clamp(lo, hi)
}

/// Where `f'` (non-increasing) crosses `q` within `[lo, hi]`, by bisection (geometric
/// while the bracket spans many orders of magnitude).
fn bisect_marginal(curve: &Curve, q: f64, lo: f64, hi: f64) -> f64 {
    if curve.derivative(hi) >= q {
        return hi;
    }
    if lo > 0.0 && curve.derivative(lo) <= q {
        return lo;
    }
    let (mut a, mut b) = (lo, hi);
    for _ in 0..400 {
        let mid = if a > 0.0 && b / a > 4.0 {
            (a * b).sqrt()
        } else if a == 0.0 && b > 1e-300 {
            // Walk down geometrically from the top until the slope exceeds q.
            b * 1e-3
        } else {
            0.5 * (a + b)
        };
        if !(mid > a && mid < b) {
            break;
        }
        if curve.derivative(mid) > q {
            a = mid;
        } else {
            b = mid;
        }
    }
    0.5 * (a + b)
}

/// Whether the curve is identically zero (`beta = 0`).
pub(crate) fn curve_is_zero(curve: &Curve) -> bool {
    match *curve {
        Curve::Linear { beta }
        | Curve::Hill { beta, .. }
        | Curve::Exponential { beta, .. }
        | Curve::Logistic { beta, .. }
        | Curve::Log { beta, .. }
        | Curve::Power { beta, .. } => beta == 0.0,
    }
}

/// A proven upper bound on `sup { kappa f(a) - m a : lo <= a <= hi }` (concave `f`,
/// `kappa >= 0`, finite interval), with `a*` the approximate maximizer: by concavity
/// `g(a) <= g(a*) + g'(a*) (a - a*)`, whose maximum over the interval is at an end.
///
/// Returns the bound and `a*`.
pub(crate) fn conjugate_bound(curve: &Curve, kappa: f64, m: f64, lo: f64, hi: f64) -> (f64, f64) {
    let a = inverse_marginal(curve, kappa, m, lo, hi);
    let (f, d1, _) = curve.value_and_derivatives(a);
    let value = kappa * f - m * a;
    if kappa == 0.0 {
        return (value.max(-m * lo).max(-m * hi), a);
    }
    // At a = 0 a singular curve's slope is the core's large finite stand-in, which only
    // loosens the bound there.
    let slope = kappa * d1 - m;
    let up = value + (slope * (lo - a)).max(slope * (hi - a));
    (up.max(value), a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curves() -> Vec<Curve> {
        vec![
            Curve::Linear { beta: 1.5 },
            Curve::Hill {
                beta: 3.0,
                k: 0.7,
                s: 1.0,
            },
            Curve::Hill {
                beta: 3.0,
                k: 0.7,
                s: 0.6,
            },
            Curve::Exponential { beta: 2.0, k: 0.5 },
            Curve::Logistic {
                beta: 2.0,
                lam: 1.7,
            },
            Curve::Log { beta: 1.2, k: 0.3 },
            Curve::Power {
                beta: 2.0,
                alpha: 0.45,
            },
        ]
    }

    /// The maximizer and the bound agree with a fine grid search.
    #[test]
    fn inverse_marginal_and_conjugate_match_a_grid() {
        for c in curves() {
            for (kappa, m, lo, hi) in [
                (1.0, 0.8, 0.0, 5.0),
                (0.5, 0.05, 0.1, 3.0),
                (2.0, 7.0, 0.0, 1.0),
                (1.0, 0.0, 0.0, 2.0),
            ] {
                let g = |a: f64| kappa * c.value(a) - m * a;
                let mut best = f64::NEG_INFINITY;
                let steps = 200_000;
                for i in 0..=steps {
                    let a = lo + (hi - lo) * i as f64 / steps as f64;
                    best = best.max(g(a));
                }
                let (bound, a) = conjugate_bound(&c, kappa, m, lo, hi);
                assert!(
                    bound >= best - 1e-12,
                    "{c:?} {kappa} {m}: bound {bound} < grid {best}"
                );
                assert!(
                    bound - g(a) <= 1e-9 * (1.0 + bound.abs()),
                    "{c:?}: bound {bound} vs value {}",
                    g(a)
                );
                assert!(
                    g(a) >= best - 1e-7 * (1.0 + best.abs()),
                    "{c:?} {kappa} {m}: argmax {a} gives {} < {best}",
                    g(a)
                );
            }
        }
    }
}
