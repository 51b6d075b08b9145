//! Parzen estimators on the unit cube, with Optuna's rules (v5 `_ParzenEstimator`):
//! one truncated-normal kernel per observation plus a prior kernel, bandwidths from the
//! distances to the neighbouring observations, clipped by the "magic clip".
//!
//! For each coordinate, with the observations sorted and the interval ends `0` and `1`
//! added as sentinels, a kernel's bandwidth is the larger of the gaps to its two
//! neighbours; without `consider_endpoints` the first and last observations take the gap
//! to their inner neighbour only (when there are at least two). Bandwidths are then
//! clipped to `[1 / min(100, n + 2), 1]` (`n` observations plus the prior: the magic
//! clip). The prior kernel is `N(1/2, 1)` with weight `prior_weight` next to the
//! observations' weights; every kernel is truncated to `[0, 1]`. The same bandwidths serve
//! the univariate and the multivariate estimator (Optuna 5 computes them per coordinate in
//! both modes); the multivariate one is the mixture of the products of the kernels.

use rand::Rng;

use crate::math::{exp, TruncNorm};

/// A mixture of products of truncated normals on `[0, 1]^dims`.
#[derive(Debug, Clone)]
pub(crate) struct Parzen {
    dims: usize,
    kernels: usize,
    /// Means, coordinate-major: `mu[d * kernels + k]`.
    mu: Vec<f64>,
    /// The kernels as truncated normals, same order (for drawing).
    kernel: Vec<TruncNorm>,
    /// `1 / sigma^2 / 2`, so that a kernel's log-density is `c - h (x - mu)^2`.
    half_precision: Vec<f64>,
    /// `ln(weight_k)` plus the log normalizer of coordinate `d`: the univariate
    /// log-density of kernel `k` at `x` is `coef - half_precision (x - mu)^2`.
    coef: Vec<f64>,
    /// Log normalizer only (the joint density adds the weight once, not per coordinate).
    log_norm: Vec<f64>,
    log_weight: Vec<f64>,
    cum_weight: Vec<f64>,
}

/// Optuna's `default_weights(m)` at position `i` (observations in trial order): 1 for the
/// newest 25, a linear ramp from `1/m` up to 1 for the older ones (`numpy.linspace`).
pub(crate) fn default_weight(i: usize, m: usize) -> f64 {
    if m < 25 {
        return 1.0;
    }
    let ramp = m - 25;
    if i >= ramp {
        1.0
    } else if ramp == 1 {
        1.0 / m as f64
    } else {
        let start = 1.0 / m as f64;
        start + i as f64 * ((1.0 - start) / (ramp - 1) as f64)
    }
}

/// The sum of [`default_weight`] over positions `lo..hi`, in constant time.
pub(crate) fn default_weight_sum(lo: usize, hi: usize, m: usize) -> f64 {
    if hi <= lo {
        return 0.0;
    }
    if m < 25 {
        return (hi - lo) as f64;
    }
    let ramp = m - 25;
    let flat = hi.saturating_sub(lo.max(ramp)) as f64;
    let r_hi = hi.min(ramp);
    if r_hi <= lo {
        return flat;
    }
    let count = (r_hi - lo) as f64;
    let start = 1.0 / m as f64;
    let ramp_sum = if ramp == 1 {
        start
    } else {
        let step = (1.0 - start) / (ramp - 1) as f64;
        // sum over i in lo..r_hi of start + i step
        count * start + step * (lo + r_hi - 1) as f64 * count / 2.0
    };
    ramp_sum + flat
}

impl Parzen {
    /// The estimator of `points` (each of length `dims`, in `[0, 1]`) with positive
    /// `weights`, plus the prior kernel of weight `prior_weight`. With no points it is the
    /// prior alone.
    pub(crate) fn new(points: &[&[f64]], weights: &[f64], dims: usize, prior_weight: f64) -> Self {
        debug_assert_eq!(points.len(), weights.len());
        let n = points.len();
        let kernels = n + 1;
        let mut raw_weights: Vec<f64> = if n == 0 { vec![1.0] } else { weights.to_vec() };
        if n > 0 {
            raw_weights.push(prior_weight);
        }
        let total: f64 = raw_weights.iter().sum();
        let mut cum = 0.0;
        let mut cum_weight = Vec::with_capacity(kernels);
        let log_weight: Vec<f64> = raw_weights
            .iter()
            .map(|w| {
                cum += w / total;
                cum_weight.push(cum);
                (w / total).ln()
            })
            .collect();
        let mut mu = Vec::with_capacity(dims * kernels);
        let mut sigma = Vec::with_capacity(dims * kernels);
        let mut values = vec![0.0; n];
        let mut sigmas = vec![0.0; n];
        let mut order: Vec<usize> = (0..n).collect();
        let min_sigma = 1.0 / (100.0f64).min(n as f64 + 2.0);
        for d in 0..dims {
            for (v, p) in values.iter_mut().zip(points) {
                *v = p[d];
            }
            neighbour_bandwidths(&values, &mut order, &mut sigmas);
            mu.extend_from_slice(&values);
            sigma.extend(sigmas.iter().map(|s| s.clamp(min_sigma, 1.0)));
            // The prior kernel.
            mu.push(0.5);
            sigma.push(1.0);
        }
        let half_precision: Vec<f64> = sigma.iter().map(|s| 0.5 / (s * s)).collect();
        let kernel: Vec<TruncNorm> = mu
            .iter()
            .zip(&sigma)
            .map(|(m, s)| TruncNorm::new(*m, *s, 0.0, 1.0))
            .collect();
        let log_norm: Vec<f64> = kernel.iter().map(TruncNorm::log_norm).collect();
        let coef = log_norm
            .iter()
            .enumerate()
            .map(|(i, c)| c + log_weight[i % kernels])
            .collect();
        Self {
            dims,
            kernels,
            mu,
            kernel,
            half_precision,
            coef,
            log_norm,
            log_weight,
            cum_weight,
        }
    }

    /// Number of kernels (observations plus the prior).
    #[cfg(test)]
    pub(crate) fn kernels(&self) -> usize {
        self.kernels
    }

    /// The bandwidth of kernel `k` in coordinate `d`.
    #[cfg(test)]
    pub(crate) fn sigma(&self, d: usize, k: usize) -> f64 {
        self.kernel[d * self.kernels + k].sigma
    }

    fn pick(&self, u: f64) -> usize {
        self.cum_weight
            .partition_point(|c| *c <= u)
            .min(self.kernels - 1)
    }

    /// A draw of coordinate `d` from its marginal mixture.
    pub(crate) fn sample_coordinate(&self, d: usize, rng: &mut impl Rng) -> f64 {
        let k = self.pick(rng.random::<f64>());
        self.kernel[d * self.kernels + k].draw(rng.random::<f64>(), 0.0, 1.0)
    }

    /// A draw from the joint mixture (one kernel for all coordinates) into `out`.
    pub(crate) fn sample_joint(&self, rng: &mut impl Rng, out: &mut [f64]) {
        let k = self.pick(rng.random::<f64>());
        for (d, o) in out.iter_mut().enumerate() {
            *o = self.kernel[d * self.kernels + k].draw(rng.random::<f64>(), 0.0, 1.0);
        }
    }

    /// The log-density of coordinate `d`'s marginal mixture at `x`.
    ///
    /// Summed without the usual max shift: the prior kernel alone contributes at least
    /// `weight * 0.35` (its density on `[0, 1]` is above 0.35, its weight above `1e-6` for
    /// any allowed history), and no kernel exceeds `100 / 0.68`, so the sum neither
    /// underflows nor overflows; far kernels' terms are clamped at `e^-700`, far below
    /// the prior's share.
    pub(crate) fn log_pdf_coordinate(&self, d: usize, x: f64) -> f64 {
        let r = d * self.kernels..(d + 1) * self.kernels;
        let (mu, h, c) = (
            &self.mu[r.clone()],
            &self.half_precision[r.clone()],
            &self.coef[r],
        );
        sum_exp(mu.len(), |i| {
            let t = x - mu[i];
            c[i] - h[i] * t * t
        })
        .ln()
    }

    /// The log-density of the joint mixture at `x`; `acc` is scratch space.
    pub(crate) fn log_pdf_joint(&self, x: &[f64], acc: &mut Vec<f64>) -> f64 {
        acc.clear();
        acc.extend_from_slice(&self.log_weight);
        for (d, xd) in x.iter().enumerate().take(self.dims) {
            let r = d * self.kernels..(d + 1) * self.kernels;
            for ((a, m), (h, c)) in acc
                .iter_mut()
                .zip(&self.mu[r.clone()])
                .zip(self.half_precision[r.clone()].iter().zip(&self.log_norm[r]))
            {
                let t = xd - m;
                *a += c - h * t * t;
            }
        }
        // Products of many coordinates can underflow: shift by the largest term.
        let top = acc.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
        if !top.is_finite() {
            return top;
        }
        top + sum_exp(acc.len(), |i| acc[i] - top).ln()
    }
}

/// `sum_i e^{term(i)}` for `i < n`, in four interleaved partial sums so that the loop
/// vectorizes (a single running sum must be added in order); the order is fixed, so the
/// result is deterministic.
#[inline(always)]
fn sum_exp(n: usize, term: impl Fn(usize) -> f64) -> f64 {
    let mut part = [0.0f64; 4];
    let full = n / 4 * 4;
    let mut i = 0;
    while i < full {
        for (l, p) in part.iter_mut().enumerate() {
            *p += exp(term(i + l));
        }
        i += 4;
    }
    for j in full..n {
        part[j - full] += exp(term(j));
    }
    (part[0] + part[1]) + (part[2] + part[3])
}

/// Optuna's neighbour rule (with `consider_endpoints = false`) for the bandwidths of
/// `values` in `[0, 1]`, before clipping; `order` is scratch of the same length.
fn neighbour_bandwidths(values: &[f64], order: &mut [usize], out: &mut [f64]) {
    let n = values.len();
    if n == 0 {
        return;
    }
    order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    // The sorted values with the interval ends as sentinels: e[0] = 0, e[n + 1] = 1.
    let e = |j: usize| -> f64 {
        if j == 0 {
            0.0
        } else if j == n + 1 {
            1.0
        } else {
            values[order[j - 1]]
        }
    };
    for j in 0..n {
        let s = (e(j + 1) - e(j)).max(e(j + 2) - e(j + 1));
        out[order[j]] = s;
    }
    if n >= 2 {
        out[order[0]] = e(2) - e(1);
        out[order[n - 1]] = e(n) - e(n - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn weights_match_numpy_linspace() {
        // default_weights(30): linspace(1/30, 1, 5) then 25 ones.
        let expect = [
            1.0 / 30.0,
            0.275,
            0.516_666_666_666_666_7,
            0.758_333_333_333_333_3,
            1.0,
        ];
        for (i, e) in expect.iter().enumerate() {
            assert!((default_weight(i, 30) - e).abs() < 1e-15, "{i}");
        }
        assert_eq!(default_weight(29, 30), 1.0);
        assert_eq!(default_weight(3, 10), 1.0);
        assert_eq!(default_weight(0, 26), 1.0 / 26.0);
        // Closed-form sums agree with the loop, on every sub-range.
        for m in [1, 10, 24, 25, 26, 27, 40, 300] {
            for lo in 0..m {
                for hi in lo..=m {
                    let direct: f64 = (lo..hi).map(|i| default_weight(i, m)).sum();
                    let fast = default_weight_sum(lo, hi, m);
                    assert!(
                        (direct - fast).abs() < 1e-10,
                        "{m} {lo} {hi}: {direct} vs {fast}"
                    );
                }
            }
        }
    }

    /// Log-densities computed by Optuna 5.0.0's own `_ParzenEstimator` (prior weight 1,
    /// magic clip, no endpoints, `default_weights`) for the same observations: see
    /// `benches/optuna_parzen_reference.py`.
    #[test]
    fn log_densities_match_optuna() {
        let a = [0.05, 0.2, 0.7, 0.72, 0.4, 0.99, 0.33];
        let b = [0.9, 0.85, 0.1, 0.12, 0.5, 0.0, 0.61];
        let pts: Vec<[f64; 2]> = a.iter().zip(&b).map(|(x, y)| [*x, *y]).collect();
        let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
        let w: Vec<f64> = (0..7).map(|i| default_weight(i, 7)).collect();
        let pe = Parzen::new(&refs, &w, 2, 1.0);
        let xa = [0.0, 0.3, 0.71, 1.0, 0.5];
        let xb = [1.0, 0.2, 0.11, 0.0, 0.5];
        let joint = [
            0.6416648162736268,
            -0.1794574720928146,
            0.8666014660520596,
            1.1811514047230849,
            -0.18867881188432678,
        ];
        let marginal_a = [
            -0.13195933082999434,
            0.235933035799883,
            -0.13763032972536027,
            -0.29080465483134854,
            -0.09111737606186865,
        ];
        let marginal_b = [
            -0.15518055270552844,
            0.05357333397410846,
            0.44164945452416626,
            0.5069118701810137,
            -0.32906594841922754,
        ];
        let mut acc = Vec::new();
        for i in 0..5 {
            let j = pe.log_pdf_joint(&[xa[i], xb[i]], &mut acc);
            assert!((j - joint[i]).abs() < 1e-12, "{i}: {j} vs {}", joint[i]);
            let ma = pe.log_pdf_coordinate(0, xa[i]);
            assert!(
                (ma - marginal_a[i]).abs() < 1e-12,
                "{i}: {ma} vs {}",
                marginal_a[i]
            );
            let mb = pe.log_pdf_coordinate(1, xb[i]);
            assert!(
                (mb - marginal_b[i]).abs() < 1e-12,
                "{i}: {mb} vs {}",
                marginal_b[i]
            );
        }
        // 30 observations: the ramp weights of `default_weights(30)`.
        let obs = [
            0.5488135039273248,
            0.7151893663724195,
            0.6027633760716439,
            0.5448831829968969,
            0.4236547993389047,
            0.6458941130666561,
            0.4375872112626925,
            0.8917730007820798,
            0.9636627605010293,
            0.3834415188257777,
            0.7917250380826646,
            0.5288949197529045,
            0.5680445610939323,
            0.925596638292661,
            0.07103605819788694,
            0.08712929970154071,
            0.02021839744032572,
            0.832619845547938,
            0.7781567509498505,
            0.8700121482468192,
            0.978618342232764,
            0.7991585642167236,
            0.46147936225293185,
            0.7805291762864555,
            0.11827442586893322,
            0.6399210213275238,
            0.1433532874090464,
            0.9446689170495839,
            0.5218483217500717,
            0.4146619399905236,
        ];
        let pts: Vec<[f64; 1]> = obs.iter().map(|x| [*x]).collect();
        let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
        let w: Vec<f64> = (0..30).map(|i| default_weight(i, 30)).collect();
        let pe = Parzen::new(&refs, &w, 1, 1.0);
        let expect = [
            -0.46801949354174477,
            -1.818807991716434,
            0.1129574098513828,
            0.517242934705179,
        ];
        for (x, e) in [0.0, 0.25, 0.5, 0.93].iter().zip(expect) {
            let got = pe.log_pdf_coordinate(0, *x);
            assert!((got - e).abs() < 1e-12, "{x}: {got} vs {e}");
        }
    }

    #[test]
    fn bandwidths_follow_the_neighbour_rule_and_magic_clip() {
        // Observations 0.1, 0.5, 0.6 (given unsorted) with sentinels 0 and 1:
        // 0.1 -> gap to its inner neighbour 0.4 (endpoint rule); 0.5 -> max(0.4, 0.1);
        // 0.6 -> gap to its inner neighbour 0.1. Clip below at 1 / min(100, 3 + 2) = 0.2.
        let pts: Vec<Vec<f64>> = vec![vec![0.6], vec![0.1], vec![0.5]];
        let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
        let pe = Parzen::new(&refs, &[1.0, 1.0, 1.0], 1, 1.0);
        assert_eq!(pe.kernels(), 4);
        let s: Vec<f64> = (0..4).map(|k| pe.sigma(0, k)).collect();
        let expect = [0.2, 0.4, 0.4, 1.0];
        for (a, b) in s.iter().zip(expect) {
            assert!((a - b).abs() < 1e-15, "{s:?}");
        }
        // One observation: max of the gaps to both ends.
        let one: Vec<&[f64]> = vec![&[0.3]];
        let pe = Parzen::new(&one, &[1.0], 1, 1.0);
        assert!((pe.sigma(0, 0) - 0.7).abs() < 1e-15);
    }

    #[test]
    fn densities_integrate_to_one_and_joint_matches_univariate_in_1d() {
        let pts: Vec<Vec<f64>> = vec![
            vec![0.05, 0.9],
            vec![0.2, 0.85],
            vec![0.7, 0.1],
            vec![0.72, 0.12],
        ];
        let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
        let pe = Parzen::new(&refs, &[0.2, 1.0, 1.0, 0.5], 2, 1.0);
        let m = 100_000;
        for d in 0..2 {
            let total: f64 = (0..m)
                .map(|i| pe.log_pdf_coordinate(d, (i as f64 + 0.5) / m as f64).exp() / m as f64)
                .sum();
            assert!((total - 1.0).abs() < 1e-6, "{d}: {total}");
        }
        // The joint density integrates to one too (coarser grid).
        let g = 600;
        let mut acc = Vec::new();
        let mut total = 0.0;
        for i in 0..g {
            for j in 0..g {
                let x = [(i as f64 + 0.5) / g as f64, (j as f64 + 0.5) / g as f64];
                total += pe.log_pdf_joint(&x, &mut acc).exp() / (g * g) as f64;
            }
        }
        assert!((total - 1.0).abs() < 1e-3, "{total}");
        // In one dimension the joint and the marginal are the same mixture.
        let one: Vec<Vec<f64>> = vec![vec![0.3], vec![0.31], vec![0.8]];
        let refs: Vec<&[f64]> = one.iter().map(|p| p.as_slice()).collect();
        let pe = Parzen::new(&refs, &[1.0, 2.0, 1.0], 1, 1.0);
        for x in [0.0, 0.3, 0.55, 1.0] {
            let a = pe.log_pdf_coordinate(0, x);
            let b = pe.log_pdf_joint(&[x], &mut acc);
            assert!((a - b).abs() < 1e-12, "{x}: {a} vs {b}");
        }
    }

    #[test]
    fn samples_follow_the_mixture() {
        // A cluster of 30 points, another of 10 (weights 1, and a ramp), and the prior:
        // the share of draws in each window matches the density's integral over it.
        let pts: Vec<Vec<f64>> = (0..40)
            .map(|i| {
                vec![if i < 30 {
                    0.1 + 0.001 * i as f64
                } else {
                    0.9 - 0.002 * i as f64
                }]
            })
            .collect();
        let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
        let weights: Vec<f64> = (0..40).map(|i| default_weight(i, 40)).collect();
        let pe = Parzen::new(&refs, &weights, 1, 1.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 20_000;
        let draws: Vec<f64> = (0..n).map(|_| pe.sample_coordinate(0, &mut rng)).collect();
        assert!(draws.iter().all(|x| (0.0..=1.0).contains(x)));
        for (lo, hi) in [
            (0.0, 0.1),
            (0.1, 0.15),
            (0.15, 0.5),
            (0.5, 0.8),
            (0.8, 0.84),
            (0.84, 1.0),
        ] {
            let m = 20_000;
            let p: f64 = (0..m)
                .map(|i| {
                    let x = lo + (hi - lo) * (i as f64 + 0.5) / m as f64;
                    pe.log_pdf_coordinate(0, x).exp() * (hi - lo) / m as f64
                })
                .sum();
            let count = draws.iter().filter(|x| **x >= lo && **x < hi).count() as f64;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (count - n as f64 * p).abs() < 4.0 * sd + 1.0,
                "[{lo}, {hi}): {count} vs {}",
                n as f64 * p
            );
        }
        // The joint sampler draws the same marginals.
        let mut out = [0.0];
        let joint: Vec<f64> = (0..n)
            .map(|_| {
                pe.sample_joint(&mut rng, &mut out);
                out[0]
            })
            .collect();
        let below = |v: &[f64]| v.iter().filter(|x| **x < 0.5).count() as f64 / n as f64;
        assert!((below(&draws) - below(&joint)).abs() < 0.02);
    }
}
