//! Response curves `f(a)` of adstocked spend `a >= 0`, with exact first and second
//! derivatives.

use serde::{Deserialize, Serialize};

/// Where a curve's slope is unbounded at zero (`power`, `hill` with `s < 1`), derivatives
/// are taken at this fraction of the curve's own spend scale instead, so that solvers see
/// a large but finite slope.
const SLOPE_FLOOR: f64 = 1e-12;

/// A checked response curve (see the contract's table in section 2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Curve {
    /// `beta * a`.
    Linear {
        /// Slope.
        beta: f64,
    },
    /// `beta * a^s / (a^s + k^s)`.
    Hill {
        /// Saturation level.
        beta: f64,
        /// Half-saturation spend.
        k: f64,
        /// Shape; S-shaped when `s > 1`.
        s: f64,
    },
    /// `beta * (1 - exp(-a / k))`.
    Exponential {
        /// Saturation level.
        beta: f64,
        /// Spend scale.
        k: f64,
    },
    /// `beta * (1 - exp(-lam a)) / (1 + exp(-lam a)) = beta * tanh(lam a / 2)`.
    Logistic {
        /// Saturation level.
        beta: f64,
        /// Steepness.
        lam: f64,
    },
    /// `beta * ln(1 + a / k)`.
    Log {
        /// Scale.
        beta: f64,
        /// Spend scale.
        k: f64,
    },
    /// `beta * a^alpha`.
    Power {
        /// Scale.
        beta: f64,
        /// Exponent in `(0, 1]`.
        alpha: f64,
    },
}

impl Curve {
    /// `f(a)`; negative `a` is treated as zero.
    #[inline]
    pub fn value(&self, a: f64) -> f64 {
        let a = a.max(0.0);
        match *self {
            Curve::Linear { beta } => beta * a,
            Curve::Hill { beta, k, s } => {
                if a == 0.0 {
                    return 0.0;
                }
                hill_value(beta, hill_ratio(a, k, s))
            }
            Curve::Exponential { beta, k } => -beta * (-a / k).exp_m1(),
            Curve::Logistic { beta, lam } => beta * (0.5 * lam * a).tanh(),
            Curve::Log { beta, k } => beta * (a / k).ln_1p(),
            Curve::Power { beta, alpha } => beta * a.powf(alpha),
        }
    }

    /// `f'(a)`.
    #[inline]
    pub fn derivative(&self, a: f64) -> f64 {
        self.value_and_derivatives(a).1
    }

    /// `f''(a)`.
    #[inline]
    pub fn second_derivative(&self, a: f64) -> f64 {
        self.value_and_derivatives(a).2
    }

    /// `(f(a), f'(a), f''(a))` in one pass.
    #[inline]
    pub fn value_and_derivatives(&self, a: f64) -> (f64, f64, f64) {
        let a = a.max(0.0);
        match *self {
            Curve::Linear { beta } => (beta * a, beta, 0.0),
            Curve::Hill { beta, k, s } => {
                let v = if a == 0.0 {
                    0.0
                } else {
                    hill_value(beta, hill_ratio(a, k, s))
                };
                // Slopes at a = 0 are beta / k (s = 1), 0 (s > 1) or unbounded (s < 1):
                // away from s = 1 take them just off zero, finite either way.
                let ad = if a > 0.0 {
                    a
                } else if s == 1.0 {
                    return (v, beta / k, -2.0 * beta / (k * k));
                } else {
                    SLOPE_FLOOR * k
                };
                // With h = t / (1 + t) and q = 1 / (1 + t), both in [0, 1] however large
                // `t` is: f' = beta s h q / a, f'' = beta s h q ((s - 1) q - (s + 1) h) / a^2.
                let t = hill_ratio(ad, k, s);
                let (h, q) = if t > 1.0 {
                    (1.0 / (1.0 + 1.0 / t), (1.0 / t) / (1.0 + 1.0 / t))
                } else {
                    (t / (1.0 + t), 1.0 / (1.0 + t))
                };
                let d1 = beta * s * h * q / ad;
                let d2 = beta * s * h * q * ((s - 1.0) * q - (s + 1.0) * h) / (ad * ad);
                (v, d1, d2)
            }
            Curve::Exponential { beta, k } => {
                let e = (-a / k).exp();
                (-beta * (-a / k).exp_m1(), beta / k * e, -beta / (k * k) * e)
            }
            Curve::Logistic { beta, lam } => {
                let th = (0.5 * lam * a).tanh();
                let sech2 = 1.0 - th * th;
                (
                    beta * th,
                    0.5 * beta * lam * sech2,
                    -0.5 * beta * lam * lam * th * sech2,
                )
            }
            Curve::Log { beta, k } => {
                let d = k + a;
                (beta * (a / k).ln_1p(), beta / d, -beta / (d * d))
            }
            Curve::Power { beta, alpha } => {
                let v = beta * a.powf(alpha);
                if alpha == 1.0 {
                    return (v, beta, 0.0);
                }
                let ad = a.max(SLOPE_FLOOR);
                let p = beta * ad.powf(alpha - 2.0);
                (v, alpha * p * ad, alpha * (alpha - 1.0) * p)
            }
        }
    }

    /// Whether the curve is concave on `a >= 0` (everything but `hill` with `s > 1`).
    pub fn is_concave(&self) -> bool {
        !matches!(*self, Curve::Hill { s, .. } if s > 1.0)
    }

    /// Whether the slope is unbounded at zero (`power` with `alpha < 1`, `hill` with
    /// `s < 1`): such a channel never rests at zero spend at an optimum unless a rule
    /// forces it.
    pub fn is_singular_at_zero(&self) -> bool {
        match *self {
            Curve::Power { alpha, .. } => alpha < 1.0,
            Curve::Hill { s, .. } => s < 1.0,
            _ => false,
        }
    }

    /// The same curve of spend measured in units of `spend_scale` and response measured
    /// in units of `response_scale`: `g(a) = f(a * spend_scale) / response_scale`.
    pub fn rescaled(&self, spend_scale: f64, response_scale: f64) -> Curve {
        let (c, r) = (spend_scale, response_scale);
        match *self {
            Curve::Linear { beta } => Curve::Linear { beta: beta * c / r },
            Curve::Hill { beta, k, s } => Curve::Hill {
                beta: beta / r,
                k: k / c,
                s,
            },
            Curve::Exponential { beta, k } => Curve::Exponential {
                beta: beta / r,
                k: k / c,
            },
            Curve::Logistic { beta, lam } => Curve::Logistic {
                beta: beta / r,
                lam: lam * c,
            },
            Curve::Log { beta, k } => Curve::Log {
                beta: beta / r,
                k: k / c,
            },
            Curve::Power { beta, alpha } => Curve::Power {
                beta: beta * c.powf(alpha) / r,
                alpha,
            },
        }
    }

    /// The largest average return `sup_{a > 0} f(a) / a` (infinite where the slope at
    /// zero is): `f'(0)` for concave curves, `beta (s-1)^((s-1)/s) / (k s)` for an S-shaped
    /// `hill`, reached at `a = k (s - 1)^(1/s)`. No allocation earns more per unit of
    /// adstocked spend, which proves some `min_roi` rules out of reach.
    pub fn max_average_return(&self) -> f64 {
        match *self {
            Curve::Linear { beta } => beta,
            Curve::Hill { beta, k, s } => {
                if s < 1.0 {
                    f64::INFINITY
                } else if s == 1.0 {
                    beta / k
                } else {
                    beta * (s - 1.0).powf((s - 1.0) / s) / (k * s)
                }
            }
            Curve::Exponential { beta, k } | Curve::Log { beta, k } => beta / k,
            Curve::Logistic { beta, lam } => 0.5 * beta * lam,
            Curve::Power { beta, alpha } => {
                if alpha < 1.0 {
                    f64::INFINITY
                } else {
                    beta
                }
            }
        }
    }

    /// The saturation level `sup f` (infinite for `linear`, `log` and `power`).
    pub fn saturation(&self) -> f64 {
        match *self {
            Curve::Hill { beta, .. }
            | Curve::Exponential { beta, .. }
            | Curve::Logistic { beta, .. } => beta,
            Curve::Linear { .. } | Curve::Log { .. } | Curve::Power { .. } => f64::INFINITY,
        }
    }
}

/// `beta t / (1 + t)` without overflow: `t` may be infinite (`a / k` beyond `f64`), where
/// the curve is at its saturation `beta`.
#[inline]
fn hill_value(beta: f64, t: f64) -> f64 {
    if t > 1.0 {
        beta / (1.0 + 1.0 / t)
    } else {
        beta * t / (1.0 + t)
    }
}

/// `(a / k)^s`, computed without overflow for large ratios.
#[inline]
fn hill_ratio(a: f64, k: f64, s: f64) -> f64 {
    if s == 1.0 {
        a / k
    } else {
        (s * (a / k).ln()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn values_by_hand() {
        // hill s = 1 at a = k is half the saturation.
        let h = Curve::Hill {
            beta: 10.0,
            k: 4.0,
            s: 1.0,
        };
        assert!(close(h.value(4.0), 5.0, 1e-15));
        // hill s = 2: 10 * 4 / (4 + 16) = 2 at a = 2, k = 4.
        let h2 = Curve::Hill {
            beta: 10.0,
            k: 4.0,
            s: 2.0,
        };
        assert!(close(h2.value(2.0), 2.0, 1e-15));
        let e = Curve::Exponential { beta: 3.0, k: 2.0 };
        assert!(close(e.value(2.0), 3.0 * (1.0 - (-1.0f64).exp()), 1e-15));
        let l = Curve::Logistic {
            beta: 2.0,
            lam: 0.5,
        };
        let z = (-0.5f64 * 3.0).exp();
        assert!(close(l.value(3.0), 2.0 * (1.0 - z) / (1.0 + z), 1e-14));
        let g = Curve::Log { beta: 2.0, k: 1.0 };
        assert!(close(g.value(std::f64::consts::E - 1.0), 2.0, 1e-15));
        let p = Curve::Power {
            beta: 3.0,
            alpha: 0.5,
        };
        assert!(close(p.value(16.0), 12.0, 1e-15));
        let lin = Curve::Linear { beta: 1.5 };
        assert!(close(lin.value(4.0), 6.0, 1e-15));
        // Derivatives by hand.
        assert!(close(h.derivative(4.0), 10.0 * 4.0 / 64.0, 1e-14));
        assert!(close(g.derivative(1.0), 1.0, 1e-15));
        assert!(close(p.derivative(16.0), 3.0 * 0.5 / 4.0, 1e-15));
        assert!(close(e.second_derivative(0.0), -3.0 / 4.0, 1e-15));
    }

    #[test]
    fn the_largest_average_return_bounds_every_ratio() {
        let curves = [
            Curve::Linear { beta: 2.0 },
            Curve::Hill {
                beta: 10.0,
                k: 4.0,
                s: 1.0,
            },
            Curve::Hill {
                beta: 10.0,
                k: 4.0,
                s: 3.0,
            },
            Curve::Exponential { beta: 3.0, k: 2.0 },
            Curve::Logistic {
                beta: 2.0,
                lam: 0.5,
            },
            Curve::Log { beta: 2.0, k: 1.5 },
            Curve::Power {
                beta: 3.0,
                alpha: 1.0,
            },
        ];
        for c in curves {
            let rho = c.max_average_return();
            let mut best = 0.0f64;
            for i in 1..=20_000 {
                let a = 1e-4 * 1.001f64.powi(i);
                let r = c.value(a) / a;
                assert!(r <= rho * (1.0 + 1e-9), "{c:?}: {r} > {rho} at {a}");
                best = best.max(r);
            }
            // And it is reached (or approached at zero).
            assert!(best >= rho * (1.0 - 1e-3), "{c:?}: {best} vs {rho}");
        }
    }

    #[test]
    fn hill_stays_at_most_beta_at_huge_spend() {
        for (k, s) in [(300.0, 1.0), (1e-3, 1.0), (300.0, 2.5), (0.5, 0.7)] {
            let h = Curve::Hill { beta: 1000.0, k, s };
            for a in [1e308, f64::MAX] {
                let (v, d1, d2) = h.value_and_derivatives(a);
                assert!(v.is_finite() && v <= 1000.0 && v > 999.0, "{k} {s}: {v}");
                assert!(d1.is_finite() && d1 >= 0.0, "{k} {s}: {d1}");
                assert!(d2.is_finite(), "{k} {s}: {d2}");
            }
        }
    }

    #[test]
    fn slopes_at_zero_are_finite() {
        for c in [
            Curve::Power {
                beta: 1.0,
                alpha: 0.3,
            },
            Curve::Hill {
                beta: 1.0,
                k: 1.0,
                s: 0.5,
            },
            Curve::Hill {
                beta: 1.0,
                k: 1.0,
                s: 2.5,
            },
        ] {
            let (v, d1, d2) = c.value_and_derivatives(0.0);
            assert_eq!(v, 0.0);
            assert!(d1.is_finite() && d2.is_finite(), "{c:?}");
        }
    }

    #[test]
    fn rescaling_is_exact() {
        let curves = [
            Curve::Linear { beta: 2.0 },
            Curve::Hill {
                beta: 5.0,
                k: 3.0,
                s: 2.2,
            },
            Curve::Exponential { beta: 5.0, k: 3.0 },
            Curve::Logistic {
                beta: 5.0,
                lam: 0.3,
            },
            Curve::Log { beta: 5.0, k: 3.0 },
            Curve::Power {
                beta: 5.0,
                alpha: 0.4,
            },
        ];
        for c in curves {
            let r = c.rescaled(1e6, 1e3);
            assert!(close(r.value(2e-6), c.value(2.0) / 1e3, 1e-12), "{c:?}");
        }
    }

    fn curve_strategy() -> impl Strategy<Value = Curve> {
        prop_oneof![
            (0.1f64..10.0).prop_map(|beta| Curve::Linear { beta }),
            (0.1f64..10.0, 0.1f64..5.0, 0.3f64..4.0).prop_map(|(beta, k, s)| Curve::Hill {
                beta,
                k,
                s
            }),
            (0.1f64..10.0, 0.1f64..5.0).prop_map(|(beta, k)| Curve::Exponential { beta, k }),
            (0.1f64..10.0, 0.1f64..3.0).prop_map(|(beta, lam)| Curve::Logistic { beta, lam }),
            (0.1f64..10.0, 0.1f64..5.0).prop_map(|(beta, k)| Curve::Log { beta, k }),
            (0.1f64..10.0, 0.1f64..1.0).prop_map(|(beta, alpha)| Curve::Power { beta, alpha }),
        ]
    }

    proptest! {
        #[test]
        fn derivatives_match_finite_differences(c in curve_strategy(), a in 0.05f64..8.0) {
            let h = 1e-6 * (1.0 + a);
            let fd1 = (c.value(a + h) - c.value(a - h)) / (2.0 * h);
            let fd2 = (c.derivative(a + h) - c.derivative(a - h)) / (2.0 * h);
            let (_, d1, d2) = c.value_and_derivatives(a);
            prop_assert!(close(d1, fd1, 1e-6), "{:?}: d1 {} fd {}", c, d1, fd1);
            prop_assert!(close(d2, fd2, 1e-5), "{:?}: d2 {} fd {}", c, d2, fd2);
        }

        #[test]
        fn concave_curves_have_nonpositive_curvature(c in curve_strategy(), a in 0.01f64..8.0) {
            if c.is_concave() {
                prop_assert!(c.second_derivative(a) <= 1e-12);
            }
        }
    }
}
