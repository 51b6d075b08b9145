//! The normal distribution truncated to an interval: cumulative distribution, its
//! inverse and sampling, as the Parzen kernels need them.
//!
//! Every kernel TPE builds has its mean inside the unit interval it is truncated to (the
//! means are observed points, or the prior's centre), so in standard units the interval
//! `[a, b]` always contains 0 and its mass is at least `Phi(min(|a|, b)) - 1/2` plus a
//! half: no catastrophic cancellation can occur, which keeps these formulas simple.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// `ln(sqrt(2 pi))`.
pub(crate) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// The standard normal cumulative distribution `Phi(z)`, accurate in both tails.
pub(crate) fn norm_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * FRAC_1_SQRT_2)
}

/// The standard normal quantile `Phi^{-1}(p)` for `p` in `(0, 1)`: Acklam's rational
/// approximation (relative error 1.2e-9) refined by one Halley step on `erfc`, which
/// brings it to full double precision. `p <= 0` gives `-inf`, `p >= 1` gives `+inf`.
pub(crate) fn norm_ppf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let mut x = if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    };
    // One Halley step on Phi(x) - p.
    let e = norm_cdf(x) - p;
    let u = e * (2.0 * PI).sqrt() * (0.5 * x * x).exp();
    if u.is_finite() {
        x -= u / (1.0 + 0.5 * x * u);
    }
    x
}

/// The normal distribution `N(mu, sigma^2)` truncated to `[low, high]` with `mu` inside:
/// the tail masses below `low` and above `high` (each at most 1/2, so both are accurate
/// where they are small), computed once for many draws and densities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TruncNorm {
    pub mu: f64,
    pub sigma: f64,
    /// `Phi((low - mu) / sigma)`.
    lower_tail: f64,
    /// `Phi((mu - high) / sigma)`.
    upper_tail: f64,
}

impl TruncNorm {
    pub(crate) fn new(mu: f64, sigma: f64, low: f64, high: f64) -> Self {
        let (a, b) = ((low - mu) / sigma, (high - mu) / sigma);
        // Beyond 9 standard deviations a tail holds under 2e-19: none for our purposes,
        // and no erfc to evaluate.
        let tail = |z: f64| if z < -9.0 { 0.0 } else { norm_cdf(z) };
        Self {
            mu,
            sigma,
            lower_tail: tail(a),
            upper_tail: tail(-b),
        }
    }

    fn mass(&self) -> f64 {
        1.0 - self.lower_tail - self.upper_tail
    }

    /// `ln` of the density's normalizing constant: the log-density at `x` is this minus
    /// `((x - mu) / sigma)^2 / 2`.
    pub(crate) fn log_norm(&self) -> f64 {
        -self.sigma.ln() - LN_SQRT_2PI - self.mass().ln()
    }

    /// A draw by inversion of the truncated cumulative distribution at `u` in `[0, 1)`.
    /// The quantile is taken on the side of the median where the cumulative value is
    /// small (so that it keeps its relative precision), and the result is clamped into
    /// the interval against rounding.
    pub(crate) fn draw(&self, u: f64, low: f64, high: f64) -> f64 {
        let mass = self.mass();
        let target = self.lower_tail + u * mass;
        let z = if target <= 0.5 {
            norm_ppf(target)
        } else {
            // Phi(z) = target  <=>  Phi(-z) = 1 - target, from the upper tail.
            -norm_ppf(self.upper_tail + (1.0 - u) * mass)
        };
        (self.mu + self.sigma * z).clamp(low, high)
    }
}

/// `e^x` to within 2 ulp for `x` in `[-700, 700]` (clamped there), inlined and without
/// branches, so that the kernel sums vectorize: `e^x = 2^k e^r` with `k = round(x / ln 2)`
/// (by the 1.5 * 2^52 rounding trick) and `e^r`, `|r| <= ln(2) / 2`, by its Taylor
/// polynomial of degree 13 (truncation error below 3e-18).
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // ln 2 split so that k * LN2_HI is exact for |k| < 2^11.
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let x = x.clamp(-700.0, 700.0);
    let t = x * LOG2E + MAGIC;
    let k = t - MAGIC;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let ki = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    // Horner's rule on the Taylor coefficients 1/13!, ..., 1/1!, 1/0!.
    const TAYLOR: [f64; 14] = [
        1.0 / 6_227_020_800.0,
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        1.0 / 2.0,
        1.0,
        1.0,
    ];
    let mut p = TAYLOR[0];
    for c in &TAYLOR[1..] {
        p = p * r + c;
    }
    p * f64::from_bits(((ki + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_matches_reference_values() {
        // Values of Phi from tables (15+ digits).
        let cases = [
            (0.0, 0.5),
            (1.0, 0.841_344_746_068_542_9),
            (-1.959_963_984_540_054, 0.025),
            (3.0, 0.998_650_101_968_369_9),
            (-6.0, 9.865_876_450_376_946e-10),
        ];
        for (z, p) in cases {
            let got = norm_cdf(z);
            assert!(
                (got - p).abs() <= 1e-15 * p.max(1e-300) + 1e-16,
                "{z}: {got} vs {p}"
            );
        }
    }

    #[test]
    fn ppf_inverts_cdf_to_full_precision() {
        for &p in &[
            1e-300,
            1e-12,
            1e-6,
            0.01,
            0.024,
            0.3,
            0.5,
            0.7,
            0.975,
            0.99,
            1.0 - 1e-9,
        ] {
            let z = norm_ppf(p);
            let back = norm_cdf(z);
            assert!(
                (back - p).abs() <= 1e-13 * p.min(1.0 - p).max(1e-300) + 1e-300,
                "{p}: {z} -> {back}"
            );
        }
        assert!((norm_ppf(0.975) - 1.959_963_984_540_054).abs() < 1e-14);
        assert_eq!(norm_ppf(0.0), f64::NEG_INFINITY);
        assert_eq!(norm_ppf(1.0), f64::INFINITY);
    }

    #[test]
    fn truncated_draws_stay_inside_and_follow_the_distribution() {
        // The truncated density's median: u = 0.5 splits the mass in two halves.
        for &(mu, sigma) in &[(0.5, 1.0), (0.0, 0.01), (1.0, 0.3), (0.2, 0.05)] {
            for k in 0..=100 {
                let u = k as f64 / 100.0 * (1.0 - 1e-12);
                let x = TruncNorm::new(mu, sigma, 0.0, 1.0).draw(u, 0.0, 1.0);
                assert!((0.0..=1.0).contains(&x), "{mu} {sigma} {u}: {x}");
                // Inversion: the truncated cdf at x equals u.
                let (pa, pb) = (norm_cdf(-mu / sigma), norm_cdf((1.0 - mu) / sigma));
                let cdf = (norm_cdf((x - mu) / sigma) - pa) / (pb - pa);
                assert!((cdf - u).abs() < 1e-9, "{mu} {sigma} {u}: cdf {cdf}");
            }
        }
    }

    #[test]
    fn fast_exp_matches_std_to_a_few_ulp() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -700.0 + 1400.0 * i as f64 / 200_000.0;
            let (a, b) = (exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
        }
        for &x in &[
            0.0,
            1e-300,
            -1e-12,
            0.5,
            -0.34657359,
            0.34657359,
            1.0,
            -50.0,
            4.6,
        ] {
            let (a, b) = (exp(x), f64::exp(x));
            worst = worst.max(((a - b) / b).abs());
        }
        assert!(worst < 5e-16, "{worst}");
        assert_eq!(exp(0.0), 1.0);
        // Clamped: no infinities, no garbage below the normal range.
        assert!(exp(-1e6) > 0.0 && exp(-1e6) < 1e-300);
        assert!(exp(1e6).is_finite());
    }

    #[test]
    fn log_norm_integrates_to_one() {
        // Midpoint rule on [0, 1] of exp(log_norm - z^2/2).
        for &(mu, sigma) in &[(0.5, 1.0), (0.0, 0.05), (0.9, 0.2)] {
            let c = TruncNorm::new(mu, sigma, 0.0, 1.0).log_norm();
            let m = 200_000;
            let total: f64 = (0..m)
                .map(|i| {
                    let x = (i as f64 + 0.5) / m as f64;
                    let z = (x - mu) / sigma;
                    (c - 0.5 * z * z).exp() / m as f64
                })
                .sum();
            assert!((total - 1.0).abs() < 1e-6, "{mu} {sigma}: {total}");
        }
    }
}
