//! CMA-ES as ask/tell: [`CmaesSearch`] suggests points ([`ask`](CmaesSearch::ask)) and
//! learns from their values ([`tell`](CmaesSearch::tell)), restarts included, with all
//! its state (the distribution, the generation being evaluated, the IPOP/BIPOP
//! bookkeeping, the random generator and the normal sampler's cached draw) serializable,
//! so that a search can be paused, stored, resumed, and fed by evaluations made anywhere.
//!
//! **Coordinates.** A search over `dims` coordinates samples points of `R^dims` whose
//! region of interest is the unit cube `[0, 1]^dims`: the start is a cube point and the
//! step size `sigma0` a fraction of the cube's side. Samples can fall outside the cube;
//! the caller decides what they are worth (the `cmaes` solver maps each point onto the
//! feasible set and adds a penalty for the distance outside). Values are minimized;
//! a non-finite value (a failed evaluation) ranks last.
//!
//! **Generations.** CMA-ES updates its distribution once per generation of `lambda`
//! points. The whole generation is drawn when its first point is asked for, so the
//! sequence of points depends on the seed and the values told only, not on the batch
//! sizes. [`ask`](CmaesSearch::ask) returns at most the generation's points not yet
//! handed out: fewer than asked for (none) when the rest of the generation is out and not
//! told yet. The distribution is updated when every point of the generation has a value;
//! [`tell`](CmaesSearch::tell) takes them in any order and in any number of calls.
//!
//! **Points not asked for** are refused ([`SearchError::NotAsked`]): CMA-ES learns from
//! the steps its own samples took, so a foreign point has no place in its update. A tell
//! either takes all its points or, on an error, none.
//!
//! **Restarts.** When a run ends by its own criteria ([`Termination`]), the search
//! restarts as configured (IPOP: twice the population from a random cube point; BIPOP:
//! alternating with small-population runs), until `max_restarts` or until a restart ends
//! on the incumbent (its best value to a relative `1e-7`, its point to `1e-3` per
//! coordinate), then [`finished`](CmaesSearch::finished) says why and `ask` returns none.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cma::{Cma, Normal, Samples, Shape, Termination};
use crate::config::{CmaesConfig, Covariance, Restarts, FULL_COVARIANCE_MAX_DIM};

/// Largest population restarts grow to: `2e6 / n` samples, at most 100000 (memory stays
/// within about 50 MB per generation).
fn population_cap(n: usize, first: usize) -> usize {
    (2_000_000 / n.max(1)).clamp(first, 100_000.max(first))
}

/// Relative tolerance within which a restart's best value equals the incumbent's (runs
/// to the same optimum agree to about 1e-10 on the examples; distinct optima differ by
/// 1e-3 or more).
const CONFIRM_TOL: f64 = 1e-7;
/// Largest difference per coordinate between a restart's best point and the incumbent
/// for the two to be the same optimum.
const CONFIRM_DISTANCE: f64 = 1e-3;
/// Consecutive restarts ending on the incumbent's value after which restarts stop.
const CONFIRMATIONS: u32 = 1;

/// Why a tell was refused. Nothing of a refused tell is learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchError {
    /// The search has no coordinate to search.
    NoCoordinates,
    /// `points` and `values` differ in length.
    Lengths {
        /// Number of points told.
        points: usize,
        /// Number of values told.
        values: usize,
    },
    /// `points[index]` is not a point of the current generation handed out by `ask` and
    /// not told yet (never asked for, from an earlier generation, told twice, or changed).
    NotAsked {
        /// Its position in the tell.
        index: usize,
    },
}

impl std::fmt::Display for SearchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchError::NoCoordinates => write!(f, "cmaes search: dims must be at least 1"),
            SearchError::Lengths { points, values } => write!(
                f,
                "cmaes tell: {points} points but {values} values (one value per point)"
            ),
            SearchError::NotAsked { index } => write!(
                f,
                "cmaes tell: points[{index}] was not asked for in the current generation, or \
                 was told already (CMA-ES learns only from its own samples, bit for bit as \
                 `ask` returned them)"
            ),
        }
    }
}

impl std::error::Error for SearchError {}

/// The random generator's state: seed, stream and position (ChaCha8 is seekable, so
/// these three restore it exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RngState {
    seed: [u8; 32],
    stream: u64,
    word_pos: u128,
}

mod rng_serde {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        rng: &ChaCha8Rng,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        RngState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<ChaCha8Rng, D::Error> {
        let state = RngState::deserialize(d)?;
        let mut rng = ChaCha8Rng::from_seed(state.seed);
        rng.set_stream(state.stream);
        rng.set_word_pos(state.word_pos);
        Ok(rng)
    }
}

/// Which regime a BIPOP run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Regime {
    Large,
    Small,
}

/// Settings fixed for the whole search.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settings {
    dims: usize,
    shape: Shape,
    lambda0: usize,
    cap: usize,
    #[serde(with = "crate::exact")]
    sigma0: f64,
    restarts: Restarts,
    max_restarts: u32,
}

/// The generation being evaluated.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Generation {
    samples: Samples,
    /// Points handed out so far (the first `asked` of `samples.x`).
    asked: usize,
    /// The values told, by sample.
    #[serde(with = "crate::exact")]
    values: Vec<Option<f64>>,
    told: usize,
}

/// The best value of a run (or of the runs so far) and its point.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Best {
    #[serde(with = "crate::exact")]
    value: f64,
    #[serde(with = "crate::exact")]
    point: Vec<f64>,
}

impl Best {
    fn none() -> Self {
        Self {
            value: f64::INFINITY,
            point: Vec::new(),
        }
    }
}

/// A CMA-ES search (with the configured restarts) over `dims` coordinates, driven by
/// ask/tell; see the [module documentation](self) for its coordinates and rules.
/// Serialize it (serde) to pause it; deserialize it to resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CmaesSearch {
    settings: Settings,
    cma: Cma,
    regime: Regime,
    #[serde(with = "rng_serde")]
    rng: ChaCha8Rng,
    normal: Normal,
    generation: Option<Generation>,
    lambda_large: usize,
    large_restarts: u32,
    evals_large: u64,
    evals_small: u64,
    /// Runs ended so far.
    runs: u32,
    confirmations: u32,
    /// Best over the runs that ended, and over the current one.
    incumbent: Best,
    run_best: Best,
    told: u64,
    finished: Option<Termination>,
}

impl CmaesSearch {
    /// A search from the cube point `start` (its length is the number of coordinates,
    /// at least 1) with `config`'s `sigma0`, `population_size`, `covariance`, `restarts`
    /// and `max_restarts`, drawing from `rng` (seeded by the caller: the solver uses the
    /// context's seeded stream 0). `config` should be checked
    /// ([`check`](atlas_core::SolverConfig::check)) first.
    pub fn new(
        config: &CmaesConfig,
        start: Vec<f64>,
        rng: ChaCha8Rng,
    ) -> Result<Self, SearchError> {
        let n = start.len();
        if n == 0 {
            return Err(SearchError::NoCoordinates);
        }
        let shape = match config.covariance {
            Covariance::Full => Shape::Full,
            Covariance::Diagonal => Shape::Diagonal,
            Covariance::Auto if n <= FULL_COVARIANCE_MAX_DIM => Shape::Full,
            Covariance::Auto => Shape::Diagonal,
        };
        let lambda0 = config
            .population_size
            .unwrap_or_else(|| 4 + (3.0 * (n as f64).ln()).floor() as usize);
        let settings = Settings {
            dims: n,
            shape,
            lambda0,
            cap: population_cap(n, lambda0),
            sigma0: config.sigma0,
            restarts: config.restarts,
            max_restarts: config.max_restarts,
        };
        Ok(Self {
            cma: Cma::new(start, config.sigma0, lambda0, shape),
            settings,
            regime: Regime::Large,
            rng,
            normal: Normal::new(),
            generation: None,
            lambda_large: lambda0,
            large_restarts: 0,
            evals_large: 0,
            evals_small: 0,
            runs: 0,
            confirmations: 0,
            incumbent: Best::none(),
            run_best: Best::none(),
            told: 0,
            finished: None,
        })
    }

    /// Up to `n` points to evaluate, in order: the current generation's points not yet
    /// handed out (the next generation is drawn once this one is told). Fewer than `n`
    /// at the end of a generation; none while the rest of the generation awaits its
    /// values, and once the search has [`finished`](Self::finished).
    pub fn ask(&mut self, n: usize) -> Vec<Vec<f64>> {
        self.ask_with(n, false)
    }

    /// [`ask`](Self::ask), with the generation's linear maps on the caller's rayon pool
    /// when `parallel` (identical results).
    pub(crate) fn ask_with(&mut self, n: usize, parallel: bool) -> Vec<Vec<f64>> {
        if self.finished.is_some() {
            return Vec::new();
        }
        let generation = match &mut self.generation {
            Some(g) => g,
            None => {
                let samples = self.cma.ask(&mut self.rng, &mut self.normal, parallel);
                let lambda = samples.x.len();
                self.generation.insert(Generation {
                    samples,
                    asked: 0,
                    values: vec![None; lambda],
                    told: 0,
                })
            }
        };
        let from = generation.asked;
        let to = (from + n).min(generation.samples.x.len());
        generation.asked = to;
        generation.samples.x[from..to].to_vec()
    }

    /// Learns `values[k]` (to minimize; NaN or infinite ranks last) at `points[k]`, each
    /// a point handed out by [`ask`](Self::ask) in the current generation and not told
    /// yet, compared bit for bit. When the generation is complete the distribution is
    /// updated, and when the run ends by its own criteria the search restarts or
    /// finishes. On an error nothing is learned.
    pub fn tell(&mut self, points: &[Vec<f64>], values: &[f64]) -> Result<(), SearchError> {
        if points.len() != values.len() {
            return Err(SearchError::Lengths {
                points: points.len(),
                values: values.len(),
            });
        }
        if points.is_empty() {
            return Ok(());
        }
        let Some(generation) = &mut self.generation else {
            return Err(SearchError::NotAsked { index: 0 });
        };
        // Find every point's sample first (a driver that tells in asking order is matched
        // at the first try), so that a refused tell changes nothing.
        let xs = &generation.samples.x[..generation.asked];
        let mut slots = Vec::with_capacity(points.len());
        let mut hint = 0;
        for (index, p) in points.iter().enumerate() {
            let same = |k: &usize| {
                generation.values[*k].is_none()
                    && !slots.contains(k)
                    && xs[*k].len() == p.len()
                    && xs[*k]
                        .iter()
                        .zip(p)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
            };
            let found = (hint..xs.len()).chain(0..hint).find(same);
            match found {
                Some(k) => {
                    slots.push(k);
                    hint = k + 1;
                }
                None => return Err(SearchError::NotAsked { index }),
            }
        }
        for ((k, p), v) in slots.into_iter().zip(points).zip(values) {
            generation.values[k] = Some(*v);
            generation.told += 1;
            if *v < self.run_best.value {
                self.run_best = Best {
                    value: *v,
                    point: p.clone(),
                };
            }
        }
        self.told += points.len() as u64;
        if generation.told == generation.values.len() {
            let generation = self.generation.take().expect("the generation is there");
            let values: Vec<f64> = generation
                .values
                .iter()
                .map(|v| v.unwrap_or(f64::NAN))
                .collect();
            self.cma.tell(&generation.samples, &values);
            match self.regime {
                Regime::Large => self.evals_large += values.len() as u64,
                Regime::Small => self.evals_small += values.len() as u64,
            }
            if let Some(t) = self.cma.termination() {
                self.end_run(t);
            }
        }
        Ok(())
    }

    /// A run ended by `reason`: confirm the incumbent, then restart or finish.
    fn end_run(&mut self, reason: Termination) {
        // A restart that ends on the incumbent (its value to CONFIRM_TOL, its point to
        // CONFIRM_DISTANCE) found the same optimum again from a random start with a
        // larger population; after CONFIRMATIONS such restarts in a row, more restarts
        // are very unlikely to find a better one (on a concave problem every run ends
        // there). The point is compared too, so that distinct optima of equal value
        // (symmetric problems) do not count.
        let run_best = std::mem::replace(&mut self.run_best, Best::none());
        if self.runs > 0 {
            let incumbent = &self.incumbent;
            let same_value = (run_best.value - incumbent.value).abs()
                <= CONFIRM_TOL * incumbent.value.abs().max(1.0);
            let same_point = run_best.point.len() == incumbent.point.len()
                && run_best
                    .point
                    .iter()
                    .zip(&incumbent.point)
                    .all(|(a, b)| (a - b).abs() <= CONFIRM_DISTANCE);
            if same_value && same_point {
                self.confirmations += 1;
            } else {
                self.confirmations = 0;
            }
        }
        self.runs += 1;
        if run_best.value < self.incumbent.value {
            self.incumbent = run_best;
        }
        if self.confirmations >= CONFIRMATIONS {
            self.finished = Some(reason);
            return;
        }
        let s = &self.settings;
        let n = s.dims;
        let small_turn = s.restarts == Restarts::Bipop && self.evals_small < self.evals_large;
        let (sigma, lambda, regime) = if small_turn {
            // BIPOP's local regime (Hansen 2009): population between the default and half
            // the last large one, step size down to 1/100 of sigma0.
            let u: f64 = self.rng.random();
            let ratio = 0.5 * self.lambda_large as f64 / s.lambda0 as f64;
            let lambda =
                ((s.lambda0 as f64 * ratio.max(1.0).powf(u * u)).floor() as usize).max(s.lambda0);
            (s.sigma0 * 10f64.powf(-2.0 * u), lambda, Regime::Small)
        } else {
            if s.restarts == Restarts::None || self.large_restarts >= s.max_restarts {
                self.finished = Some(reason);
                return;
            }
            self.large_restarts += 1;
            self.lambda_large = (self.lambda_large * 2).min(s.cap);
            (s.sigma0, self.lambda_large, Regime::Large)
        };
        let mean: Vec<f64> = (0..n).map(|_| self.rng.random::<f64>()).collect();
        self.cma = Cma::new(mean, sigma, lambda, s.shape);
        self.regime = regime;
    }

    /// Why the search ended (the last run's own criterion), once no restart is left or a
    /// restart confirmed the incumbent; `None` while it goes on.
    pub fn finished(&self) -> Option<Termination> {
        self.finished
    }

    /// Number of coordinates.
    pub fn dims(&self) -> usize {
        self.settings.dims
    }

    /// Population size of the current run (points per generation).
    pub fn population(&self) -> usize {
        self.cma.lambda()
    }

    /// Points handed out by `ask` and not told yet.
    pub fn pending(&self) -> usize {
        self.generation.as_ref().map_or(0, |g| g.asked - g.told)
    }

    /// Values told so far.
    pub fn told(&self) -> u64 {
        self.told
    }

    /// Runs ended so far (the first run and the restarts).
    pub fn runs(&self) -> u32 {
        self.runs
    }

    /// The best value told and its point, if any value was finite.
    pub fn best(&self) -> Option<(f64, &[f64])> {
        let best = if self.run_best.value < self.incumbent.value {
            &self.run_best
        } else {
            &self.incumbent
        };
        best.value
            .is_finite()
            .then_some((best.value, best.point.as_slice()))
    }
}
