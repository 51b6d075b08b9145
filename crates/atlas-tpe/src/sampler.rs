//! The TPE sampler on the unit cube: ask for a point, tell its value. It knows nothing of
//! the allocation problem; the solver maps its points onto the feasible set.
//!
//! With `n` finished trials (fewer than `n_startup_trials`: uniform random points), the
//! best `min(ceil(gamma n), max_below)` form the "below" set and the others, with the
//! pending trials of the current batch when `constant_liar` is on, the "above" set, both in
//! trial order. A Parzen estimator is fitted to each; `n_ei_candidates` points drawn from
//! the below estimator compete on `ln l(x) - ln g(x)` and the best is suggested, per
//! coordinate (univariate) or jointly (multivariate), as in Optuna's `TPESampler`.
//!
//! **Bounded cost.** The below set is kept exactly (at most `max_below` trials, held in a
//! sorted list updated in `O(max_below)` per trial). The above estimator uses at most
//! `max_above` observations: when there are more, the newest `max_above / 2` exactly, with
//! their Optuna weights, and the older ones split into `max_above - max_above / 2`
//! contiguous blocks of trials, each represented by one member drawn at random that
//! carries the block's total weight (computed in closed form). So the estimators cost
//! `O(max_above * dims)` to build and `O(n_ei_candidates * max_above * dims)` to score,
//! whatever the length of the history, and the weight each stretch of history has in
//! `g(x)` is Optuna's.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::parzen::{default_weight, default_weight_sum, Parzen};

/// What the sampler needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct SamplerSettings {
    pub n_startup_trials: u64,
    pub n_ei_candidates: usize,
    pub gamma: f64,
    pub max_below: usize,
    pub max_above: usize,
    pub multivariate: bool,
    pub constant_liar: bool,
    pub prior_weight: f64,
}

/// The TPE sampler's state: finished trials, the ranking of the best, pending points.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sampler {
    settings: SamplerSettings,
    dims: usize,
    /// Finished trials' points, flattened in trial order.
    points: Vec<f64>,
    finished: usize,
    /// The best `max_below` finished trials as `(value, trial)`, best first; ties keep
    /// trial order (Python's stable sort in Optuna).
    ranked: Vec<(f64, usize)>,
    /// Points suggested in the current batch and not yet told, flattened.
    pending: Vec<f64>,
    /// Scratch.
    #[serde(skip)]
    acc: Vec<f64>,
}

impl Sampler {
    pub(crate) fn new(settings: SamplerSettings, dims: usize) -> Self {
        Self {
            settings,
            dims,
            points: Vec::new(),
            finished: 0,
            ranked: Vec::with_capacity(settings.max_below + 1),
            pending: Vec::new(),
            acc: Vec::new(),
        }
    }

    /// Number of finished trials told so far.
    #[cfg(test)]
    pub(crate) fn finished(&self) -> usize {
        self.finished
    }

    /// Number of trials told so far (finished, finite values).
    pub(crate) fn told(&self) -> usize {
        self.finished
    }

    fn point(&self, trial: usize) -> &[f64] {
        &self.points[trial * self.dims..(trial + 1) * self.dims]
    }

    /// Records a finished trial. Trials whose value is not finite are left out, as Optuna
    /// leaves out failed trials.
    pub(crate) fn tell(&mut self, v: &[f64], value: f64) {
        if !value.is_finite() {
            return;
        }
        let trial = self.finished;
        self.points.extend_from_slice(v);
        self.finished += 1;
        let at = self.ranked.partition_point(|(y, _)| *y <= value);
        if at < self.settings.max_below {
            self.ranked.insert(at, (value, trial));
            self.ranked.truncate(self.settings.max_below);
        }
    }

    /// Marks `v` as running (seen by later suggestions of the batch under the constant
    /// liar).
    pub(crate) fn push_pending(&mut self, v: &[f64]) {
        self.pending.extend_from_slice(v);
    }

    /// Forgets the pending points (their results are about to be told).
    pub(crate) fn clear_pending(&mut self) {
        self.pending.clear();
    }

    /// The next point to evaluate, in `[0, 1]^dims`.
    pub(crate) fn suggest(&mut self, rng: &mut impl Rng) -> Vec<f64> {
        let s = self.settings;
        let n = self.finished;
        if (n as u64) < s.n_startup_trials || n == 0 {
            return (0..self.dims).map(|_| rng.random::<f64>()).collect();
        }
        // Optuna's default gamma: min(ceil(0.1 n), 25); `as` saturates.
        let n_below = ((s.gamma * n as f64).ceil() as usize)
            .min(s.max_below)
            .min(self.ranked.len());
        let mut below: Vec<usize> = self.ranked[..n_below].iter().map(|r| r.1).collect();
        below.sort_unstable();
        let below_points: Vec<&[f64]> = below.iter().map(|&t| self.point(t)).collect();
        let below_weights: Vec<f64> = (0..n_below).map(|i| default_weight(i, n_below)).collect();
        let (above_points, above_weights) = self.above(&below, rng);
        let l = Parzen::new(&below_points, &below_weights, self.dims, s.prior_weight);
        let g = Parzen::new(&above_points, &above_weights, self.dims, s.prior_weight);
        let mut best = vec![0.0; self.dims];
        if s.multivariate {
            let mut cand = vec![0.0; self.dims];
            let mut top = f64::NEG_INFINITY;
            for c in 0..s.n_ei_candidates {
                l.sample_joint(rng, &mut cand);
                let score =
                    l.log_pdf_joint(&cand, &mut self.acc) - g.log_pdf_joint(&cand, &mut self.acc);
                // First maximum wins (numpy's argmax); a NaN score never does.
                if c == 0 || score > top {
                    top = score;
                    best.copy_from_slice(&cand);
                }
            }
        } else {
            for (d, b) in best.iter_mut().enumerate() {
                let mut top = f64::NEG_INFINITY;
                for c in 0..s.n_ei_candidates {
                    let x = l.sample_coordinate(d, rng);
                    let score = l.log_pdf_coordinate(d, x) - g.log_pdf_coordinate(d, x);
                    if c == 0 || score > top {
                        top = score;
                        *b = x;
                    }
                }
            }
        }
        best
    }

    /// The above set's observations and weights, bounded by `max_above` (see the module
    /// documentation). `below` is sorted.
    fn above<'s>(&'s self, below: &[usize], rng: &mut impl Rng) -> (Vec<&'s [f64]>, Vec<f64>) {
        let s = self.settings;
        let told = self.finished - below.len();
        let pending = if s.constant_liar {
            self.pending.len() / self.dims
        } else {
            0
        };
        let m = told + pending;
        // (position in the above list, weight), positions ascending.
        let mut chosen: Vec<(usize, f64)> = Vec::with_capacity(m.min(s.max_above));
        if m <= s.max_above {
            chosen.extend((0..m).map(|i| (i, default_weight(i, m))));
        } else {
            let recent = s.max_above / 2;
            let blocks = s.max_above - recent;
            let older = m - recent;
            for j in 0..blocks {
                let lo = j * older / blocks;
                let hi = (j + 1) * older / blocks;
                let pick = lo + rng.random_range(0..hi - lo);
                chosen.push((pick, default_weight_sum(lo, hi, m)));
            }
            chosen.extend((older..m).map(|i| (i, default_weight(i, m))));
        }
        // Position -> trial: the `p`-th finished trial not in `below` (both ascending).
        let mut skipped = 0;
        let mut points = Vec::with_capacity(chosen.len());
        let mut weights = Vec::with_capacity(chosen.len());
        for (p, w) in chosen {
            if p < told {
                while skipped < below.len() && below[skipped] <= p + skipped {
                    skipped += 1;
                }
                points.push(self.point(p + skipped));
            } else {
                let q = p - told;
                points.push(&self.pending[q * self.dims..(q + 1) * self.dims]);
            }
            weights.push(w);
        }
        (points, weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn settings() -> SamplerSettings {
        SamplerSettings {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            gamma: 0.1,
            max_below: 25,
            max_above: 256,
            multivariate: false,
            constant_liar: false,
            prior_weight: 1.0,
        }
    }

    #[test]
    fn ranking_keeps_the_best_in_order_with_stable_ties() {
        let mut s = Sampler::new(
            SamplerSettings {
                max_below: 3,
                ..settings()
            },
            1,
        );
        for (i, y) in [5.0, 1.0, 3.0, 1.0, f64::NAN, 0.5, 9.0].iter().enumerate() {
            s.tell(&[i as f64 / 10.0], *y);
        }
        // The NaN trial is left out, so trial numbers shift after it.
        assert_eq!(s.finished(), 6);
        assert_eq!(s.ranked, vec![(0.5, 4), (1.0, 1), (1.0, 3)]);
    }

    #[test]
    fn above_set_is_the_complement_of_below_in_trial_order() {
        let mut s = Sampler::new(settings(), 1);
        for i in 0..40 {
            s.tell(&[i as f64 / 100.0], ((i * 7) % 40) as f64);
        }
        let below = vec![0, 6, 17];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let (points, weights) = s.above(&below, &mut rng);
        let trials: Vec<usize> = points
            .iter()
            .map(|p| (p[0] * 100.0).round() as usize)
            .collect();
        let expect: Vec<usize> = (0..40).filter(|t| !below.contains(t)).collect();
        assert_eq!(trials, expect);
        for (i, w) in weights.iter().enumerate() {
            assert_eq!(*w, default_weight(i, 37));
        }
    }

    #[test]
    fn capped_above_set_keeps_recent_trials_and_the_total_weight() {
        let settings = SamplerSettings {
            max_above: 20,
            constant_liar: true,
            ..settings()
        };
        let mut s = Sampler::new(settings, 1);
        for i in 0..200 {
            s.tell(&[i as f64 / 1000.0], i as f64);
        }
        s.push_pending(&[0.999]);
        let below: Vec<usize> = (0..20).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (points, weights) = s.above(&below, &mut rng);
        assert_eq!(points.len(), 20);
        // 180 finished + 1 pending above; the newest 10 exactly, the pending one last.
        let m = 181;
        let total: f64 = weights.iter().sum();
        assert!((total - default_weight_sum(0, m, m)).abs() < 1e-9);
        let trials: Vec<usize> = points
            .iter()
            .map(|p| (p[0] * 1000.0).round() as usize)
            .collect();
        assert_eq!(
            &trials[10..],
            &[191, 192, 193, 194, 195, 196, 197, 198, 199, 999]
        );
        // Each older block of 17 positions (171 / 10, floored) is represented by one of
        // its own members, never by a below trial.
        for (j, t) in trials[..10].iter().enumerate() {
            let lo = 20 + j * 171 / 10;
            let hi = 20 + (j + 1) * 171 / 10;
            assert!((lo..hi).contains(t), "block {j}: {t}");
        }
    }

    #[test]
    fn startup_is_uniform_then_tpe_concentrates_on_the_good_region() {
        // Minimize (x - 0.8)^2 + (y - 0.2)^2 in both modes.
        for multivariate in [false, true] {
            let mut s = Sampler::new(
                SamplerSettings {
                    multivariate,
                    ..settings()
                },
                2,
            );
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
            let f = |v: &[f64]| (v[0] - 0.8).powi(2) + (v[1] - 0.2).powi(2);
            let mut late = Vec::new();
            for t in 0..200 {
                let v = s.suggest(&mut rng);
                assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
                let y = f(&v);
                if t >= 150 {
                    late.push(y);
                }
                s.tell(&v, y);
            }
            late.sort_by(f64::total_cmp);
            // Uniform points have a median of about 0.2 here; TPE's late ones are close.
            assert!(
                late[late.len() / 2] < 0.01,
                "{multivariate}: {}",
                late[late.len() / 2]
            );
            assert!(s.ranked[0].0 < 1e-3, "{multivariate}: {}", s.ranked[0].0);
        }
    }
}
