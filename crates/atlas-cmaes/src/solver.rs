//! The `cmaes` solver: the in-process driver of [`CmaesSearch`] (CMA-ES runs with
//! restarts over the unit cube), which maps each point onto the feasible set and
//! evaluates each generation as one batch on a rayon pool.

use std::ops::ControlFlow;

use atlas_core::augmented::FEASIBLE;
use atlas_core::{Context, Error, Evaluator, Scaled, Solution, Solver, Status};
use rayon::prelude::*;

use crate::cma::Termination;
use crate::config::CmaesConfig;
use crate::repair::{FeasibleMap, Slot};
use crate::search::CmaesSearch;

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

/// The value of a point of [`CmaesSearch`]'s coordinates on a problem, as the `cmaes`
/// solver ranks it: the search's coordinates are the unit-cube coordinates of the
/// problem's free variables (those whose bounds leave a positive range, in order); a
/// point `v` is mapped onto the feasible set (bounds, budget, linear rules) and ranked by
/// the scaled objective `phi` of its image plus the penalty `0.3 n` times the squared
/// distance the map moved it and its squared distance outside the cube. A driver that
/// evaluates [`CmaesSearch::ask`]'s points elsewhere tells these values to reproduce the
/// in-process solver's search.
pub struct SearchObjective<'a> {
    map: FeasibleMap<'a>,
    /// Number of variables of the problem.
    dim: usize,
    /// Indices of the coordinates with a positive range; the others stay at their lower
    /// bound and are not searched.
    free: Vec<usize>,
}

/// One evaluated point of the search.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// The feasible scaled allocation it maps to, with its objective `phi`; `None` when
    /// the projection failed.
    pub point: Option<(Vec<f64>, f64)>,
    /// `phi` plus the penalty (NaN when the projection failed or `phi` is not finite):
    /// what the search ranks by, and what to tell it.
    pub ranked: f64,
}

impl<'a> SearchObjective<'a> {
    /// The objective of `problem`'s search.
    pub fn new(problem: &'a Scaled) -> Self {
        let set = problem.feasible_set();
        let free = set
            .finite_upper()
            .iter()
            .zip(set.lower())
            .enumerate()
            .filter(|(_, (h, l))| *h - *l > 0.0)
            .map(|(i, _)| i)
            .collect();
        Self {
            map: FeasibleMap::new(problem),
            dim: problem.dim(),
            free,
        }
    }

    /// Number of search coordinates (free variables).
    pub fn dims(&self) -> usize {
        self.free.len()
    }

    /// The search point of a scaled allocation `x` (the solver starts from that of the
    /// problem's start).
    pub fn search_point(&self, x: &[f64]) -> Vec<f64> {
        let cube = self.map.inverse(x);
        self.free.iter().map(|&i| cube[i]).collect()
    }

    /// Maps `v` onto the feasible set and evaluates it (counted by `ev`).
    pub fn evaluate(&self, ev: &Evaluator<'_>, v: &[f64]) -> Evaluated {
        self.evaluate_in(ev, v, &mut Slot::default())
    }

    /// The full cube point of a search point (fixed coordinates at zero).
    fn cube_point(&self, v: &[f64]) -> Vec<f64> {
        let mut full = vec![0.0; self.dim];
        for (k, &i) in self.free.iter().enumerate() {
            full[i] = v[k];
        }
        full
    }

    /// [`evaluate`](Self::evaluate) with the warm start of `slot`.
    fn evaluate_in(&self, ev: &Evaluator<'_>, v: &[f64], slot: &mut Slot) -> Evaluated {
        let weight = PENALTY_PER_VARIABLE * self.dim as f64;
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
    }
}

/// What a solve shares between its runs.
struct Search<'c, 'a> {
    ctx: &'c Context<'a>,
    objective: SearchObjective<'a>,
    /// Worker threads (`n_jobs > 1`); `None` evaluates on the calling thread.
    pool: Option<rayon::ThreadPool>,
    best: Best,
}

impl Search<'_, '_> {
    /// Maps `points` onto the feasible set and evaluates them, in parallel on the pool
    /// when there is one. Each point is mapped and evaluated on its own (slot `k`'s
    /// warm start serves only sample `k`), so results do not depend on the threads.
    fn evaluate(&self, points: &[Vec<f64>], slots: &mut [Slot]) -> Vec<Evaluated> {
        let ev = self.ctx.evaluator();
        let one = |v: &Vec<f64>, slot: &mut Slot| self.objective.evaluate_in(ev, v, slot);
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

    /// The in-process driver of the ask/tell search: each generation is asked for whole,
    /// mapped onto the feasible set and evaluated as one batch (on the pool when there is
    /// one), and told, until the context stops the search or the search finishes.
    fn drive(&mut self, search: &mut CmaesSearch) -> Status {
        let mut slots: Vec<Slot> = Vec::new();
        loop {
            if let Some(s) = self.ctx.should_stop() {
                return s;
            }
            let lambda = search.population();
            let points = match &self.pool {
                Some(pool) => pool.install(|| search.ask_with(lambda, true)),
                None => search.ask_with(lambda, false),
            };
            if points.is_empty() {
                return status_of(search.finished().unwrap_or(Termination::TolFun));
            }
            // One warm-start slot per sample of a generation (reset when a restart
            // changes the population, as a new run starts with fresh slots).
            if slots.len() != points.len() {
                slots = vec![Slot::default(); points.len()];
            }
            // The evaluator never grants more than the evaluation budget: a last, partial
            // generation is evaluated (its points may be the best) but not told.
            let take = self.ctx.evaluator().grant(points.len());
            let (values, flow) = self.evaluate_and_report(&points[..take], &mut slots[..take]);
            if let ControlFlow::Break(s) = flow {
                return s;
            }
            if take < points.len() {
                return self.ctx.should_stop().unwrap_or(Status::MaxEvaluations);
            }
            let runs = search.runs();
            search
                .tell(&points, &values)
                .expect("the points of the generation just asked for");
            if search.runs() != runs {
                slots.clear();
            }
        }
    }
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
        let objective = SearchObjective::new(problem);
        let v0 = objective.search_point(&start);
        let n = objective.dims();
        let mut search = Search {
            ctx,
            objective,
            pool,
            best: Best {
                phi: f64::INFINITY,
                x: start,
            },
        };

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

        let mut cma =
            CmaesSearch::new(config, v0, ctx.rng(config.seed, 0)).map_err(|e| Error::Solver {
                optimizer: "cmaes".to_string(),
                reason: e.to_string(),
            })?;
        let status = search.drive(&mut cma);
        Ok(Solution::new(search.best.x, status))
    }
}
