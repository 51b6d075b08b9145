//! One run of (mu/mu_w, lambda)-CMA-ES with cumulative step-size adaptation, rank-one and
//! rank-mu covariance updates (Hansen, "The CMA Evolution Strategy: A Tutorial", 2016), in
//! ask/tell form so that the caller evaluates each generation as one batch. The diagonal
//! form is sep-CMA-ES (Ros and Hansen, 2008), with its faster learning rates.

use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::eigen::symmetric_eigen;

/// Which covariance a run adapts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Shape {
    Full,
    Diagonal,
}

/// Why a run stopped by its own criteria (the tutorial's list, B.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// The range of the best values over recent generations, and of the current
    /// generation's values, fell below `TOL_FUN`.
    TolFun,
    /// The step size times every coordinate's standard deviation fell below `TOL_X`.
    TolX,
    /// A tenth of a standard deviation along some principal axis no longer moves the mean
    /// (in floating point).
    NoEffectAxis,
    /// A fifth of a standard deviation in some coordinate no longer moves the mean.
    NoEffectCoord,
    /// The covariance's condition number exceeded `MAX_CONDITION`.
    ConditionCov,
    /// The median of recent best and median values has not improved over the last 20% of
    /// the run.
    Stagnation,
    /// The iteration limit of one run, `100 + 150 (n + 3)^2 / sqrt(lambda)` generations.
    MaxIter,
    /// The eigendecomposition failed (numerical breakdown).
    Numerical,
}

/// Function-value tolerance (objective in scaled units, of order one).
pub(crate) const TOL_FUN: f64 = 1e-11;
/// Step tolerance, in unit-cube coordinates.
pub(crate) const TOL_X: f64 = 1e-12;
/// Largest condition number of the covariance.
const MAX_CONDITION: f64 = 1e14;

/// The state of one run. Serializable: floats keep their exact bits (see [`crate::exact`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Cma {
    n: usize,
    lambda: usize,
    mu: usize,
    #[serde(with = "crate::exact")]
    weights: Vec<f64>,
    #[serde(with = "crate::exact")]
    mueff: f64,
    #[serde(with = "crate::exact")]
    cc: f64,
    #[serde(with = "crate::exact")]
    cs: f64,
    #[serde(with = "crate::exact")]
    c1: f64,
    #[serde(with = "crate::exact")]
    cmu: f64,
    #[serde(with = "crate::exact")]
    damps: f64,
    #[serde(with = "crate::exact")]
    chi_n: f64,
    shape: Shape,
    #[serde(with = "crate::exact")]
    mean: Vec<f64>,
    #[serde(with = "crate::exact")]
    sigma: f64,
    #[serde(with = "crate::exact")]
    pc: Vec<f64>,
    #[serde(with = "crate::exact")]
    ps: Vec<f64>,
    /// Full: the `n x n` covariance (row-major). Diagonal: its `n` diagonal entries.
    #[serde(with = "crate::exact")]
    cov: Vec<f64>,
    /// Full: eigenvectors of `cov` as rows. Diagonal: unused.
    #[serde(with = "crate::exact")]
    basis: Vec<f64>,
    /// Square roots of the eigenvalues (full) or of the diagonal (diagonal).
    #[serde(with = "crate::exact")]
    scales: Vec<f64>,
    eigen_generation: u64,
    eigen_interval: u64,
    generation: u64,
    /// Best value of each generation (for TolFun and Stagnation) and median value.
    #[serde(with = "crate::exact")]
    best_history: Vec<f64>,
    #[serde(with = "crate::exact")]
    median_history: Vec<f64>,
    #[serde(with = "crate::exact")]
    last_values_range: f64,
    numerical_failure: bool,
}

/// One generation's samples: `z ~ N(0, I)`, `y = B D z` (or `D z`), `x = m + sigma y`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Samples {
    #[serde(with = "crate::exact")]
    pub(crate) z: Vec<Vec<f64>>,
    #[serde(with = "crate::exact")]
    pub(crate) y: Vec<Vec<f64>>,
    #[serde(with = "crate::exact")]
    pub(crate) x: Vec<Vec<f64>>,
}

/// A standard normal draw (Box-Muller, both values used). Serializable with its cached
/// second value, so that a resumed search draws what the uninterrupted one would.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Normal {
    #[serde(with = "crate::exact")]
    spare: Option<f64>,
}

impl Normal {
    pub(crate) fn new() -> Self {
        Self { spare: None }
    }

    pub(crate) fn sample<R: Rng>(&mut self, rng: &mut R) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        // u1 in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }
}

impl Cma {
    /// A run in `n` dimensions from `mean` with step size `sigma` and population `lambda`.
    pub(crate) fn new(mean: Vec<f64>, sigma: f64, lambda: usize, shape: Shape) -> Self {
        let n = mean.len();
        let nf = n as f64;
        let mu = lambda / 2;
        let raw: Vec<f64> = (0..mu)
            .map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - ((i + 1) as f64).ln())
            .collect();
        let total: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
        let mueff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        let cc = (4.0 + mueff / nf) / (nf + 4.0 + 2.0 * mueff / nf);
        let cs = (mueff + 2.0) / (nf + mueff + 5.0);
        let mut c1 = 2.0 / ((nf + 1.3).powi(2) + mueff);
        let mut cmu =
            (1.0 - c1).min(2.0 * (mueff - 2.0 + 1.0 / mueff) / ((nf + 2.0).powi(2) + mueff));
        if shape == Shape::Diagonal {
            // sep-CMA-ES: the diagonal has n degrees of freedom instead of n^2 / 2, so it
            // can learn (n + 2) / 3 times faster.
            c1 *= (nf + 2.0) / 3.0;
            cmu = (1.0 - c1).min(cmu * (nf + 2.0) / 3.0);
        }
        let damps = 1.0 + 2.0 * (((mueff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let (cov, basis) = match shape {
            Shape::Full => {
                let mut eye = vec![0.0; n * n];
                for i in 0..n {
                    eye[i * n + i] = 1.0;
                }
                (eye.clone(), eye)
            }
            Shape::Diagonal => (vec![1.0; n], Vec::new()),
        };
        // Decompose every 0.5 / (n (c1 + cmu)) generations (pycma's lazy gap): the
        // covariance barely moves in between, and this keeps the O(n^3) work near the
        // O(lambda n^2) of sampling (n = 100: every 7 generations).
        let eigen_interval = ((0.5 / ((c1 + cmu) * nf)).floor() as u64).max(1);
        Self {
            n,
            lambda,
            mu,
            weights,
            mueff,
            cc,
            cs,
            c1,
            cmu,
            damps,
            chi_n,
            shape,
            mean,
            sigma,
            pc: vec![0.0; n],
            ps: vec![0.0; n],
            cov,
            basis,
            scales: vec![1.0; n],
            eigen_generation: 0,
            eigen_interval,
            generation: 0,
            best_history: Vec::new(),
            median_history: Vec::new(),
            last_values_range: f64::INFINITY,
            numerical_failure: false,
        }
    }

    pub(crate) fn lambda(&self) -> usize {
        self.lambda
    }

    /// Draws a generation. Normal draws come from `rng` in a fixed order; the linear maps
    /// run in parallel (on the caller's rayon pool) when `parallel`, with identical results.
    pub(crate) fn ask<R: Rng>(&self, rng: &mut R, normal: &mut Normal, parallel: bool) -> Samples {
        let n = self.n;
        let z: Vec<Vec<f64>> = (0..self.lambda)
            .map(|_| (0..n).map(|_| normal.sample(rng)).collect())
            .collect();
        let transform = |zk: &Vec<f64>| -> (Vec<f64>, Vec<f64>) {
            let y = self.transform(zk);
            let x = self
                .mean
                .iter()
                .zip(&y)
                .map(|(m, yi)| m + self.sigma * yi)
                .collect();
            (y, x)
        };
        let pairs: Vec<(Vec<f64>, Vec<f64>)> = if parallel && self.shape == Shape::Full {
            z.par_iter().map(transform).collect()
        } else {
            z.iter().map(transform).collect()
        };
        let (y, x) = pairs.into_iter().unzip();
        Samples { z, y, x }
    }

    /// `B D z` (full) or `D z` (diagonal).
    fn transform(&self, z: &[f64]) -> Vec<f64> {
        let n = self.n;
        match self.shape {
            Shape::Full => {
                let mut y = vec![0.0; n];
                for (i, (zi, di)) in z.iter().zip(&self.scales).enumerate() {
                    let a = zi * di;
                    if a != 0.0 {
                        let row = &self.basis[i * n..(i + 1) * n];
                        for (yj, bj) in y.iter_mut().zip(row) {
                            *yj += a * bj;
                        }
                    }
                }
                y
            }
            Shape::Diagonal => z.iter().zip(&self.scales).map(|(zi, di)| zi * di).collect(),
        }
    }

    /// `B z` (full) or `z` (diagonal): `C^{-1/2} y` for `y = B D z`.
    fn whiten(&self, z: &[f64]) -> Vec<f64> {
        let n = self.n;
        match self.shape {
            Shape::Full => {
                let mut out = vec![0.0; n];
                for (i, zi) in z.iter().enumerate() {
                    let row = &self.basis[i * n..(i + 1) * n];
                    for (o, bj) in out.iter_mut().zip(row) {
                        *o += zi * bj;
                    }
                }
                out
            }
            Shape::Diagonal => z.to_vec(),
        }
    }

    /// Updates the distribution from the generation's `values` (to minimize; NaN counts
    /// as worst).
    pub(crate) fn tell(&mut self, samples: &Samples, values: &[f64]) {
        let n = self.n;
        let nf = n as f64;
        let mut order: Vec<usize> = (0..values.len()).collect();
        // Stable sort with NaN last: ties keep the sampling order, so results do not
        // depend on anything but the values.
        order.sort_by(|&a, &b| key(values[a]).total_cmp(&key(values[b])));
        self.generation += 1;
        let best = key(values[order[0]]);
        let median = key(values[order[order.len() / 2]]);
        let worst = key(values[order[order.len() - 1]]);
        self.best_history.push(best);
        self.median_history.push(median);
        self.last_values_range = worst - best;

        // Recombination.
        let mut yw = vec![0.0; n];
        let mut zw = vec![0.0; n];
        for (w, &k) in self.weights.iter().zip(&order[..self.mu]) {
            for j in 0..n {
                yw[j] += w * samples.y[k][j];
                zw[j] += w * samples.z[k][j];
            }
        }
        for j in 0..n {
            self.mean[j] += self.sigma * yw[j];
        }

        // Step-size path (conjugate evolution path).
        let cs_factor = (self.cs * (2.0 - self.cs) * self.mueff).sqrt();
        let white = self.whiten(&zw);
        for j in 0..n {
            self.ps[j] = (1.0 - self.cs) * self.ps[j] + cs_factor * white[j];
        }
        let ps_norm = self.ps.iter().map(|p| p * p).sum::<f64>().sqrt();
        let decay = 1.0 - (1.0 - self.cs).powf(2.0 * self.generation as f64);
        let hsig = ps_norm / decay.sqrt() / self.chi_n < 1.4 + 2.0 / (nf + 1.0);

        // Covariance path.
        let cc_factor = (self.cc * (2.0 - self.cc) * self.mueff).sqrt();
        for j in 0..n {
            self.pc[j] = (1.0 - self.cc) * self.pc[j] + if hsig { cc_factor * yw[j] } else { 0.0 };
        }

        // Covariance: rank-one and rank-mu updates.
        let delta_hsig = if hsig {
            0.0
        } else {
            self.c1 * self.cc * (2.0 - self.cc)
        };
        let keep = 1.0 - self.c1 - self.cmu + delta_hsig;
        let (c1, cmu) = (self.c1, self.cmu);
        match self.shape {
            Shape::Full => {
                let selected: Vec<(f64, &Vec<f64>)> = self
                    .weights
                    .iter()
                    .zip(&order[..self.mu])
                    .map(|(w, &k)| (*w, &samples.y[k]))
                    .collect();
                let pc = &self.pc;
                // Row by row over the upper triangle, then mirrored.
                for r in 0..n {
                    let row = &mut self.cov[r * n..(r + 1) * n];
                    for c in r..n {
                        let mut rank_mu = 0.0;
                        for (w, y) in &selected {
                            rank_mu += w * y[r] * y[c];
                        }
                        row[c] = keep * row[c] + c1 * pc[r] * pc[c] + cmu * rank_mu;
                    }
                }
                for r in 0..n {
                    for c in 0..r {
                        self.cov[r * n + c] = self.cov[c * n + r];
                    }
                }
            }
            Shape::Diagonal => {
                for j in 0..n {
                    let mut rank_mu = 0.0;
                    for (w, &k) in self.weights.iter().zip(&order[..self.mu]) {
                        rank_mu += w * samples.y[k][j] * samples.y[k][j];
                    }
                    self.cov[j] = keep * self.cov[j] + c1 * self.pc[j] * self.pc[j] + cmu * rank_mu;
                }
            }
        }

        // Step size (the exponent is capped so that a single generation cannot blow it
        // up, as in pycma).
        let exponent = ((self.cs / self.damps) * (ps_norm / self.chi_n - 1.0)).min(1.0);
        self.sigma *= exponent.exp();
        // A flat generation (best equals the value ranked mu-th; e.g. a piecewise
        // constant model) gives no direction: widen the search.
        if key(values[order[0]]) == key(values[order[self.mu.min(order.len() - 1)]]) {
            self.sigma *= (0.2 + self.cs / self.damps).exp();
        }

        self.update_decomposition();
    }

    fn update_decomposition(&mut self) {
        let n = self.n;
        match self.shape {
            Shape::Full => {
                if self.generation - self.eigen_generation < self.eigen_interval {
                    return;
                }
                self.eigen_generation = self.generation;
                let mut values = vec![0.0; n];
                let mut vectors = vec![0.0; n * n];
                if symmetric_eigen(&self.cov, n, &mut values, &mut vectors).is_err() {
                    self.numerical_failure = true;
                    return;
                }
                // Rounding can leave tiny negative eigenvalues on a nearly singular
                // covariance: floor them at a relative 1e-20 (ConditionCov stops long
                // before that matters).
                let top = values.iter().fold(0.0f64, |m, v| m.max(*v));
                if top <= 0.0 || !top.is_finite() {
                    self.numerical_failure = true;
                    return;
                }
                self.scales = values.iter().map(|v| v.max(top * 1e-20).sqrt()).collect();
                self.basis = vectors;
            }
            Shape::Diagonal => {
                if self.cov.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
                    self.numerical_failure = true;
                    return;
                }
                self.scales = self.cov.iter().map(|c| c.sqrt()).collect();
            }
        }
    }

    /// Whether the run should stop, and why.
    pub(crate) fn termination(&self) -> Option<Termination> {
        let n = self.n;
        let nf = n as f64;
        let g = self.generation as usize;
        if self.numerical_failure
            || !self.sigma.is_finite()
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Some(Termination::Numerical);
        }
        let max_iter = 100.0 + 150.0 * (nf + 3.0).powi(2) / (self.lambda as f64).sqrt();
        if g as f64 >= max_iter {
            return Some(Termination::MaxIter);
        }
        let window = 10 + (30.0 * nf / self.lambda as f64).ceil() as usize;
        if g >= window {
            let recent = &self.best_history[g - window..];
            let (lo, hi) = recent
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(*v), b.max(*v))
                });
            if hi - lo < TOL_FUN && self.last_values_range < TOL_FUN {
                return Some(Termination::TolFun);
            }
        }
        let diag = |i: usize| match self.shape {
            Shape::Full => self.cov[i * n + i],
            Shape::Diagonal => self.cov[i],
        };
        if (0..n).all(|i| self.sigma * self.pc[i].abs().max(diag(i).sqrt()) < TOL_X) {
            return Some(Termination::TolX);
        }
        let (dmin, dmax) = self
            .scales
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), d| (a.min(*d), b.max(*d)));
        if (dmax / dmin).powi(2) > MAX_CONDITION {
            return Some(Termination::ConditionCov);
        }
        // NoEffectAxis: one principal axis per generation, cycling.
        let axis = g % n.max(1);
        let step = 0.1 * self.sigma * self.scales[axis];
        let moved = match self.shape {
            Shape::Full => {
                let row = &self.basis[axis * n..(axis + 1) * n];
                self.mean.iter().zip(row).any(|(m, b)| m + step * b != *m)
            }
            Shape::Diagonal => self.mean[axis] + step != self.mean[axis],
        };
        if !moved {
            return Some(Termination::NoEffectAxis);
        }
        if (0..n).any(|i| self.mean[i] + 0.2 * self.sigma * diag(i).sqrt() == self.mean[i]) {
            return Some(Termination::NoEffectCoord);
        }
        // Stagnation over the last 20% of the run (at least 120 + 30 n / lambda
        // generations): the median of the 20 newest best and median values is no better
        // than that of the 20 oldest.
        let span = ((0.2 * g as f64) as usize)
            .max(120 + (30.0 * nf / self.lambda as f64) as usize)
            .min(20_000);
        if g > span && span >= 40 {
            let stale = |h: &[f64]| {
                let window = &h[g - span..];
                median_of(&window[span - 20..]) >= median_of(&window[..20])
            };
            if stale(&self.best_history) && stale(&self.median_history) {
                return Some(Termination::Stagnation);
            }
        }
        None
    }
}

/// Sort key: NaN ranks last.
fn key(v: f64) -> f64 {
    if v.is_nan() {
        f64::INFINITY
    } else {
        v
    }
}

fn median_of(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn minimize(
        f: impl Fn(&[f64]) -> f64,
        n: usize,
        shape: Shape,
        generations: usize,
    ) -> (f64, Termination) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut normal = Normal::new();
        let lambda = 4 + (3.0 * (n as f64).ln()) as usize;
        let mut cma = Cma::new(vec![1.0; n], 0.5, lambda, shape);
        let mut best = f64::INFINITY;
        for _ in 0..generations {
            let s = cma.ask(&mut rng, &mut normal, false);
            let values: Vec<f64> = s.x.iter().map(|x| f(x)).collect();
            best = values.iter().fold(best, |b, v| b.min(*v));
            cma.tell(&s, &values);
            if let Some(t) = cma.termination() {
                return (best, t);
            }
        }
        (best, Termination::MaxIter)
    }

    #[test]
    fn normal_draws_have_unit_moments() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut normal = Normal::new();
        let k = 200_000;
        let draws: Vec<f64> = (0..k).map(|_| normal.sample(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / k as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / k as f64;
        // Standard errors: 1 / sqrt(k) = 0.0022 for the mean, sqrt(2 / k) = 0.0032 for
        // the variance.
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.015, "{var}");
    }

    #[test]
    fn weights_and_rates_match_the_tutorial() {
        // n = 10, lambda = 10: mu = 5, mueff = 3.17 (tutorial table 1 gives the formulas;
        // these are their values).
        let cma = Cma::new(vec![0.0; 10], 1.0, 10, Shape::Full);
        assert_eq!(cma.mu, 5);
        assert!((cma.weights.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!(cma.weights.windows(2).all(|w| w[0] > w[1]));
        assert!((cma.mueff - 3.1672992).abs() < 1e-6, "{}", cma.mueff);
        assert!((cma.c1 - 2.0 / (11.3f64.powi(2) + cma.mueff)).abs() < 1e-15);
        assert!((cma.chi_n - 3.0847).abs() < 1e-3, "{}", cma.chi_n);
    }

    #[test]
    fn converges_on_an_ill_conditioned_ellipsoid() {
        // f(x) = sum 10^(6 i / (n - 1)) x_i^2 in a rotated frame: the full form must learn
        // the 1e6 conditioning and the rotation to get below 1e-10.
        let n = 8;
        let f = |x: &[f64]| {
            (0..n)
                .map(|i| {
                    // A fixed rotation: pairs of coordinates rotated by 30 degrees.
                    let (s, c) = (0.5f64, 0.75f64.sqrt());
                    let j = i ^ 1;
                    let xi = if i % 2 == 0 {
                        c * x[i] - s * x[j]
                    } else {
                        s * x[j] + c * x[i]
                    };
                    10f64.powf(6.0 * i as f64 / (n - 1) as f64) * xi * xi
                })
                .sum::<f64>()
        };
        let (best, t) = minimize(f, n, Shape::Full, 20_000);
        assert!(best < 1e-10, "{best} {t:?}");
        // The diagonal form solves an axis-aligned ellipsoid.
        let g = |x: &[f64]| {
            (0..n)
                .map(|i| 10f64.powf(6.0 * i as f64 / (n - 1) as f64) * x[i] * x[i])
                .sum::<f64>()
        };
        let (best, t) = minimize(g, n, Shape::Diagonal, 20_000);
        assert!(best < 1e-10, "{best} {t:?}");
    }

    #[test]
    fn flat_function_stops_by_tolfun() {
        let (best, t) = minimize(|_| 1.0, 5, Shape::Full, 10_000);
        assert_eq!(best, 1.0);
        assert_eq!(t, Termination::TolFun);
    }
}
