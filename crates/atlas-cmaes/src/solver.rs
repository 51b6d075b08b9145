//! The `cmaes` solver: CMA-ES runs (with restarts) over the unit cube that the core maps
//! onto the feasible set, evaluating each generation as one batch on a rayon pool.

use std::ops::ControlFlow;

use atlas_core::augmented::FEASIBLE;
use atlas_core::{Context, Error, Solution, Solver, Status};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::cma::{Cma, Normal, Shape, Termination};
use crate::config::{CmaesConfig, Covariance, Restarts, FULL_COVARIANCE_MAX_DIM};
use crate::repair::{FeasibleMap, Slot};

/// Weight per variable of the penalty: the search ranks a sample by `phi` plus
/// `PENALTY_PER_VARIABLE * n` times the squared distance that the map moved its box point
/// (scaled spend units) plus its squared distance outside the unit cube (cube units).
///
/// Both vanish on the feasible points that the map reaches exactly (`v = (x - l) / (h -
/// l)`), so the penalized and the true minimum coincide; the penalty removes the flat
/// directions of the many-to-one map (e.g. moving every coordinate up when the budget is
/// exact), along which the search would otherwise drift. It grows with `n` because the
/// objective's curvature per variable does (the objective is of order one in scaled units
/// and each variable of order `1 / n`), which keeps both terms comparable. The value was
/// tuned on the example problems: a weight of `0.01 n` leaves `retail_q4` 0.2 % short
/// after 30,000 evaluations (`0.3 n`: 0.01 %), and one of `17 n` makes the restarts on
/// `scurve` end on values that differ by more than 1e-9, so that they all run.
const PENALTY_PER_VARIABLE: f64 = 0.3;

/// Largest population restarts grow to: `2e6 / n` samples, at most 100000 (memory stays
/// within about 50 MB per generation).
fn population_cap(n: usize, first: usize) -> usize {
    (2_000_000 / n.max(1)).clamp(first, 100_000.max(first))
}

/// Relative tolerance within which a restart's best value equals the incumbent's (runs
/// to the same optimum agree to about 1e-10 on the examples; distinct optima differ by
/// 1e-3 or more).
const CONFIRM_TOL: f64 = 1e-7;
/// Largest difference per variable (scaled units: fractions of the budget) between a
/// restart's best point and the incumbent for the two to be the same optimum.
const CONFIRM_DISTANCE: f64 = 1e-3;
/// Consecutive restarts ending on the incumbent's value after which restarts stop.
const CONFIRMATIONS: u32 = 1;

/// The `cmaes` optimizer, built from a checked [`CmaesConfig`].
#[derive(Debug, Clone)]
pub struct Cmaes {
    config: CmaesConfig,
}

impl Cmaes {
    pub(crate) fn new(config: CmaesConfig) -> Self {
        Self { config }
    }
}

/// How one run ended.
enum RunEnd {
    /// The context said stop (time, evaluations, early stopping, cancellation).
    Stopped(Status),
    /// The run's own criteria.
    Terminated(Termination),
}

/// Status of a search that ended by the last run's own criteria. Every reason is listed,
/// so that a new one must be mapped here explicitly.
fn status_of(t: Termination) -> Status {
    match t {
        Termination::TolFun
        | Termination::TolX
        | Termination::NoEffectAxis
        | Termination::NoEffectCoord
        | Termination::ConditionCov
        | Termination::Stagnation
        | Termination::Numerical => Status::Converged,
        Termination::MaxIter => Status::MaxIterations,
    }
}

/// The best feasible point evaluated so far.
struct Best {
    phi: f64,
    x: Vec<f64>,
}

/// What a solve shares between its runs.
struct Search<'c, 'a> {
    ctx: &'c Context<'a>,
    map: FeasibleMap<'a>,
    /// Number of variables of the problem.
    dim: usize,
    /// Worker threads (`n_jobs > 1`); `None` evaluates on the calling thread.
    pool: Option<rayon::ThreadPool>,
    /// Indices of the coordinates with a positive range; the others stay at their lower
    /// bound and are not searched.
    free: Vec<usize>,
    best: Best,
    /// Best `phi` of the current run, and its point.
    run_best: (f64, Vec<f64>),
}

/// One evaluated sample.
struct Evaluated {
    /// The feasible scaled allocation it maps to, with its objective `phi`; `None` when
    /// the projection failed.
    point: Option<(Vec<f64>, f64)>,
    /// `phi` plus the penalty: what the search ranks by.
    ranked: f64,
}

impl Search<'_, '_> {
    fn dim(&self) -> usize {
        self.free.len()
    }

    /// The full cube point of a search point (fixed coordinates at zero).
    fn cube_point(&self, v: &[f64]) -> Vec<f64> {
        let mut full = vec![0.0; self.dim];
        for (k, &i) in self.free.iter().enumerate() {
            full[i] = v[k];
        }
        full
    }

    /// Maps `points` onto the feasible set and evaluates them, in parallel on the pool
    /// when there is one. Each point is mapped and evaluated on its own (slot `k`'s
    /// warm start serves only sample `k`), so results do not depend on the threads.
    fn evaluate(&self, points: &[Vec<f64>], slots: &mut [Slot]) -> Vec<Evaluated> {
        let ev = self.ctx.evaluator();
        let weight = PENALTY_PER_VARIABLE * self.dim as f64;
        let one = |v: &Vec<f64>, slot: &mut Slot| -> Evaluated {
            let outside: f64 = v
                .iter()
                .map(|vi| {
                    let d = vi - vi.clamp(0.0, 1.0);
                    d * d
                })
                .sum();
            let cube = self.cube_point(v);
            let mut x = vec![0.0; self.dim];
            match self.map.map(ev, &cube, &mut x, slot) {
                Ok(moved) => {
                    let phi = ev.objective(&x);
                    // A non-finite model value ranks last (NaN sorts last in `tell`).
                    let ranked = if phi.is_finite() {
                        phi + weight * (moved + outside)
                    } else {
                        f64::NAN
                    };
                    Evaluated {
                        point: Some((x, phi)),
                        ranked,
                    }
                }
                Err(_) => Evaluated {
                    point: None,
                    ranked: f64::NAN,
                },
            }
        };
        match &self.pool {
            Some(pool) => pool.install(|| {
                points
                    .par_iter()
                    .zip(slots.par_iter_mut())
                    .map(|(v, s)| one(v, s))
                    .collect()
            }),
            None => points
                .iter()
                .zip(slots.iter_mut())
                .map(|(v, s)| one(v, s))
                .collect(),
        }
    }

    /// Evaluates a batch, keeps the best feasible point and reports the batch's best to
    /// the context.
    fn evaluate_and_report(
        &mut self,
        points: &[Vec<f64>],
        slots: &mut [Slot],
    ) -> (Vec<f64>, ControlFlow<Status>) {
        let evaluated = self.evaluate(points, slots);
        let mut generation_best: Option<(f64, &Vec<f64>, bool)> = None;
        let set = self.ctx.problem().feasible_set();
        let ev = self.ctx.evaluator();
        for e in &evaluated {
            if let Some((x, phi)) = &e.point {
                // The map projects onto the feasible set; whether the projection met every
                // rule is checked here, not assumed (a point it left outside ranks after
                // every feasible one and never becomes the best).
                let feasible = ev.constraint_work(|| set.max_violation(x)) <= FEASIBLE;
                let better = match generation_best {
                    None => true,
                    Some((b, _, bf)) => (feasible && !bf) || (feasible == bf && *phi < b),
                };
                if phi.is_finite() && better {
                    generation_best = Some((*phi, x, feasible));
                }
            }
        }
        let flow = match generation_best {
            Some((phi, x, feasible)) => {
                if feasible && phi < self.run_best.0 {
                    self.run_best = (phi, x.clone());
                }
                if feasible && phi < self.best.phi {
                    self.best = Best { phi, x: x.clone() };
                }
                self.ctx.iteration(phi, x, feasible)
            }
            None => match self.ctx.should_stop() {
                Some(s) => ControlFlow::Break(s),
                None => ControlFlow::Continue(()),
            },
        };
        (evaluated.iter().map(|e| e.ranked).collect(), flow)
    }

    /// One CMA-ES run until the context stops it or its own criteria end it.
    fn run(&mut self, mut cma: Cma, rng: &mut ChaCha8Rng, normal: &mut Normal) -> RunEnd {
        let lambda = cma.lambda();
        let mut slots = vec![Slot::default(); lambda];
        loop {
            if let Some(s) = self.ctx.should_stop() {
                return RunEnd::Stopped(s);
            }
            let samples = match &self.pool {
                Some(pool) => pool.install(|| cma.ask(rng, normal, true)),
                None => cma.ask(rng, normal, false),
            };
            // The evaluator never grants more than the evaluation budget: a last, partial
            // generation is evaluated (its points may be the best) but not used to update.
            let take = self.ctx.evaluator().grant(lambda);
            let (values, flow) = self.evaluate_and_report(&samples.x[..take], &mut slots[..take]);
            if let ControlFlow::Break(s) = flow {
                return RunEnd::Stopped(s);
            }
            if take < lambda {
                return RunEnd::Stopped(self.ctx.should_stop().unwrap_or(Status::MaxEvaluations));
            }
            cma.tell(&samples, &values);
            if let Some(t) = cma.termination() {
                return RunEnd::Terminated(t);
            }
        }
    }
}

/// Which regime a BIPOP run belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Regime {
    Large,
    Small,
}

impl Solver for Cmaes {
    fn name(&self) -> &str {
        "cmaes"
    }

    fn solve(&self, ctx: &Context<'_>) -> Result<Solution, Error> {
        let config = &self.config;
        if let Some(limit) = config.max_evaluations {
            ctx.limit_evaluations(limit);
        }
        let problem = ctx.problem();
        let map = FeasibleMap::new(problem);
        let set = problem.feasible_set();
        let free: Vec<usize> = set
            .finite_upper()
            .iter()
            .zip(set.lower())
            .enumerate()
            .filter(|(_, (h, l))| *h - *l > 0.0)
            .map(|(i, _)| i)
            .collect();
        let pool = if config.n_jobs > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(config.n_jobs)
                .build()
                .map_err(|e| Error::Solver {
                    optimizer: "cmaes".to_string(),
                    reason: format!("cannot start {} worker threads: {e}", config.n_jobs),
                })?;
            Some(pool)
        } else {
            None
        };
        let start = problem.start().to_vec();
        let start_cube = map.inverse(&start);
        let mut search = Search {
            ctx,
            map,
            dim: problem.dim(),
            pool,
            free,
            best: Best {
                phi: f64::INFINITY,
                x: start.clone(),
            },
            run_best: (f64::INFINITY, Vec::new()),
        };
        let n = search.dim();
        let v0: Vec<f64> = search.free.iter().map(|&i| start_cube[i]).collect();

        // The starting allocation is evaluated first: the result is never worse than it.
        let mut one_slot = [Slot::default()];
        if let (_, ControlFlow::Break(s)) =
            search.evaluate_and_report(std::slice::from_ref(&v0), &mut one_slot)
        {
            return Ok(Solution::new(search.best.x, s));
        }
        if n == 0 {
            // Every variable is fixed by its bounds: the start is the only allocation.
            return Ok(Solution::new(search.best.x, Status::Converged));
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
        let cap = population_cap(n, lambda0);
        let mut rng = ctx.rng(config.seed, 0);
        let mut normal = Normal::new();
        let random_mean =
            |rng: &mut ChaCha8Rng| -> Vec<f64> { (0..n).map(|_| rng.random::<f64>()).collect() };

        let mut lambda_large = lambda0;
        let mut large_restarts = 0u32;
        let (mut evals_large, mut evals_small) = (0u64, 0u64);
        let mut first = true;
        let mut last_reason = Termination::TolFun;
        let mut first_run = true;
        let mut confirmations = 0;
        let stopped = loop {
            let (mean, sigma, lambda, regime) = if first {
                first = false;
                (v0.clone(), config.sigma0, lambda0, Regime::Large)
            } else {
                let small_turn = config.restarts == Restarts::Bipop && evals_small < evals_large;
                if small_turn {
                    // BIPOP's local regime (Hansen 2009): population between the default
                    // and half the last large one, step size down to 1/100 of sigma0.
                    let u: f64 = rng.random();
                    let ratio = 0.5 * lambda_large as f64 / lambda0 as f64;
                    let lambda = ((lambda0 as f64 * ratio.max(1.0).powf(u * u)).floor() as usize)
                        .max(lambda0);
                    let sigma = config.sigma0 * 10f64.powf(-2.0 * u);
                    (random_mean(&mut rng), sigma, lambda, Regime::Small)
                } else {
                    if config.restarts == Restarts::None || large_restarts >= config.max_restarts {
                        break None;
                    }
                    large_restarts += 1;
                    lambda_large = (lambda_large * 2).min(cap);
                    (
                        random_mean(&mut rng),
                        config.sigma0,
                        lambda_large,
                        Regime::Large,
                    )
                }
            };
            let before = ctx.evaluator().counts().evaluations;
            let incumbent = (search.best.phi, search.best.x.clone());
            search.run_best = (f64::INFINITY, Vec::new());
            let end = search.run(Cma::new(mean, sigma, lambda, shape), &mut rng, &mut normal);
            let used = ctx.evaluator().counts().evaluations - before;
            match regime {
                Regime::Large => evals_large += used,
                Regime::Small => evals_small += used,
            }
            match end {
                RunEnd::Stopped(s) => break Some(s),
                // The next turn of the loop restarts or, when none is left, ends with
                // this reason.
                RunEnd::Terminated(t) => last_reason = t,
            }
            // A restart that ends on the incumbent (its value to CONFIRM_TOL, its point to
            // CONFIRM_DISTANCE) found the same optimum again from a random start with a
            // larger population; after CONFIRMATIONS such restarts in a row, more
            // restarts are very unlikely to find a better one (on a concave problem every
            // run ends there). The point is compared too, so that distinct optima of
            // equal value (symmetric problems) do not count.
            if !first_run {
                let (value, point) = &search.run_best;
                let same_value =
                    (value - incumbent.0).abs() <= CONFIRM_TOL * incumbent.0.abs().max(1.0);
                let same_point = point.len() == incumbent.1.len()
                    && point
                        .iter()
                        .zip(&incumbent.1)
                        .all(|(a, b)| (a - b).abs() <= CONFIRM_DISTANCE);
                if same_value && same_point {
                    confirmations += 1;
                } else {
                    confirmations = 0;
                }
                if confirmations >= CONFIRMATIONS {
                    break None;
                }
            }
            first_run = false;
        };
        let status = stopped.unwrap_or_else(|| status_of(last_reason));
        Ok(Solution::new(search.best.x, status))
    }
}
