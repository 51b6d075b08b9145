//! TPE as ask/tell: [`TpeSearch`] suggests points of the unit cube ([`ask`](TpeSearch::ask))
//! and learns from their values ([`tell`](TpeSearch::tell)), with all its state (history,
//! ranking, random generator) serializable, so that a search can be paused, stored,
//! resumed, and fed by evaluations made anywhere. The in-process solver is one driver of
//! it; for a given seed and batch size it suggests the same points whichever driver runs
//! it, and a search resumed from its serialized state suggests what the uninterrupted one
//! would have.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::TpeConfig;
use crate::sampler::Sampler;

/// The random generator's state: seed, stream and position (ChaCha8 is seekable, so
/// these three restore it exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RngState {
    seed: [u8; 32],
    stream: u64,
    word_pos: u128,
}

impl RngState {
    fn of(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    fn restore(&self) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// A TPE search over `[0, 1]^dims`, driven by ask/tell. Serialize it (serde) to pause it;
/// deserialize it to resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TpeSearch {
    sampler: Sampler,
    #[serde(with = "rng_serde")]
    rng: ChaCha8Rng,
    /// Points asked for and not yet told, in order.
    pending: Vec<Vec<f64>>,
}

mod rng_serde {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        rng: &ChaCha8Rng,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        RngState::of(rng).serialize(s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<ChaCha8Rng, D::Error> {
        Ok(RngState::deserialize(d)?.restore())
    }
}

impl TpeSearch {
    /// A search over `dims` coordinates with `config`'s sampler settings, drawing from
    /// `rng` (seeded by the caller: the solver uses the context's seeded stream 0).
    pub fn new(config: &TpeConfig, dims: usize, rng: ChaCha8Rng) -> Self {
        Self {
            sampler: Sampler::new(config.sampler_settings(dims), dims),
            rng,
            pending: Vec::new(),
        }
    }

    /// `n` points to evaluate, in order, from one generator (so they depend on the seed
    /// and the batch size only). Under the constant liar each point sees the earlier ones
    /// of the batch as running.
    pub fn ask(&mut self, n: usize) -> Vec<Vec<f64>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let v = self.sampler.suggest(&mut self.rng);
            self.sampler.push_pending(&v);
            self.pending.push(v.clone());
            out.push(v);
        }
        out
    }

    /// Withdraws the points asked for and not told (a trial that failed before it was
    /// evaluated): they stop counting as running.
    pub fn withdraw(&mut self, points: &[Vec<f64>]) {
        self.pending.retain(|p| !points.contains(p));
        self.rebuild_pending();
    }

    /// Learns `values[k]` at `points[k]`, in order (non-finite values are left out, as
    /// Optuna leaves out failed trials). The points need not have been asked for here (a
    /// search may be fed by evaluations made elsewhere); those that were stop counting as
    /// running.
    pub fn tell(&mut self, points: &[Vec<f64>], values: &[f64]) {
        self.pending.retain(|p| !points.contains(p));
        self.sampler.clear_pending();
        for (v, y) in points.iter().zip(values) {
            self.sampler.tell(v, *y);
        }
        self.rebuild_pending();
    }

    fn rebuild_pending(&mut self) {
        self.sampler.clear_pending();
        for p in &self.pending {
            self.sampler.push_pending(p);
        }
    }

    /// Finished trials told so far.
    pub fn told(&self) -> usize {
        self.sampler.told()
    }
}
