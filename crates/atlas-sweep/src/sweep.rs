//! The [`Sweep`] builder: many variants of one base problem solved on a rayon pool, with
//! warm starts between neighbours and the result cache, gathered into a [`SweepResult`].

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use atlas_core::problem::{BudgetMode, Problem};
use atlas_core::{
    CacheStatus, CancelToken, Compiled, Error, InputError, OptimizationResult, Registry,
    SolveOptions, SolverConfig,
};
use serde_json::{Map, Value};

use crate::cache::{solve_cached, Cache};
use crate::canonical::canonical_json;
use crate::grid::{fmt_budget, BudgetGrid};
use crate::result::{ScenarioError, ScenarioResult, SweepResult};
use crate::scenario::{apply_all, scenario_label, Scenario, ScenarioFile, ScenarioSpec};
use crate::warm;

/// Compiles a scenario's problem (the default is [`Compiled::new`]; a front that loads
/// external models passes its own).
pub type CompileFn = Arc<dyn Fn(&Problem) -> Result<Compiled, Error> + Send + Sync>;

/// Called after every finished scenario.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Where a sweep stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Scenarios finished (solved, answered by the cache, or failed).
    pub done: usize,
    /// Scenarios in the sweep.
    pub total: usize,
    /// Of those finished, how many failed.
    pub failed: usize,
    /// Time since the sweep started.
    pub elapsed: Duration,
}

impl Progress {
    /// Estimated time left, from the mean time per finished scenario (`None` before the
    /// first one finishes).
    pub fn remaining(&self) -> Option<Duration> {
        (self.done > 0).then(|| {
            self.elapsed
                .mul_f64((self.total - self.done) as f64 / self.done as f64)
        })
    }
}

/// Many variants of a base problem, solved in parallel: budget points, scenario patches,
/// or both (every scenario at every budget point).
///
/// ```
/// # let registry = {
/// #     let mut r = atlas_core::Registry::new();
/// #     atlas_lbfgs::register(&mut r).unwrap();
/// #     r
/// # };
/// use atlas_sweep::{BudgetGrid, Sweep};
/// let base = atlas_core::Problem::from_path("../../examples/problems/quickstart.toml").unwrap();
/// let result = Sweep::new(&registry, base)
///     .optimizer("lbfgs")
///     .budgets(BudgetGrid::parse("0.5x:1.25x:4").unwrap())
///     .run()
///     .unwrap();
/// assert_eq!(result.scenarios.len(), 4);
/// assert_eq!(result.scenarios[0].name, "budget=500000");
/// // More budget buys more response, at a falling marginal return.
/// let r = &result.scenarios;
/// assert!(r[1].objective > r[0].objective);
/// assert!(r[1].marginal_return.unwrap() < r[0].marginal_return.unwrap());
/// ```
pub struct Sweep<'r> {
    registry: &'r Registry,
    base: Problem,
    source: Option<PathBuf>,
    scenario_source: Option<PathBuf>,
    specs: Option<Vec<ScenarioSpec>>,
    budgets: Option<BudgetGrid>,
    file_optimizer: Option<String>,
    optimizer: Option<String>,
    settings: Map<String, Value>,
    config: Option<Box<dyn SolverConfig>>,
    jobs: Option<usize>,
    warm_start: bool,
    time_limit: Option<Duration>,
    seed: Option<u64>,
    cache: Option<Arc<Cache>>,
    progress: Option<ProgressFn>,
    cancel: Option<CancelToken>,
    compile: CompileFn,
}

impl std::fmt::Debug for Sweep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweep")
            .field("base", &self.base.name)
            .field("scenarios", &self.specs.as_ref().map(Vec::len))
            .field("budgets", &self.budgets)
            .field("optimizer", &self.optimizer)
            .field("jobs", &self.jobs)
            .field("warm_start", &self.warm_start)
            .finish_non_exhaustive()
    }
}

/// The optimizer a sweep uses when none is named: `auto` when registered, else `lbfgs`,
/// else the first registered one.
pub fn default_optimizer(registry: &Registry) -> String {
    ["auto", "lbfgs"]
        .into_iter()
        .find(|n| registry.contains(n))
        .map(str::to_string)
        .or_else(|| registry.names().first().map(|s| s.to_string()))
        .unwrap_or_default()
}

impl<'r> Sweep<'r> {
    /// A sweep of `base` alone; add budget points or scenarios.
    pub fn new(registry: &'r Registry, base: Problem) -> Self {
        Self {
            registry,
            base,
            source: None,
            scenario_source: None,
            specs: None,
            budgets: None,
            file_optimizer: None,
            optimizer: None,
            settings: Map::new(),
            config: None,
            jobs: None,
            warm_start: true,
            time_limit: None,
            seed: None,
            cache: None,
            progress: None,
            cancel: None,
            compile: Arc::new(Compiled::new),
        }
    }

    /// A sweep of a problem file (TOML, JSON or YAML); errors name the file.
    pub fn from_problem_file(
        registry: &'r Registry,
        path: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let base = Problem::from_path(path)?;
        Ok(Self::new(registry, base).source(path))
    }

    /// A sweep of a scenario file: its base problem (relative to the file), its scenarios
    /// and its optimizer.
    pub fn from_scenario_file(
        registry: &'r Registry,
        path: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let file = ScenarioFile::from_path(path)?;
        let base_path = file.base_path(path);
        let base = Problem::from_path(&base_path).map_err(|e| match e {
            Error::Io { path: p, message } => Error::Io {
                path: p,
                message: format!("{message} (the `base` of {})", path.display()),
            },
            other => other,
        })?;
        let mut sweep = Self::new(registry, base)
            .source(base_path)
            .scenarios(file.scenarios);
        sweep.file_optimizer = file.optimizer;
        sweep.scenario_source = Some(path.to_path_buf());
        Ok(sweep)
    }

    /// The file the base problem came from, for error messages.
    pub fn source(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Some(path.into());
        self
    }

    /// The scenarios (patches of the base problem), in the order results list them.
    pub fn scenarios(mut self, specs: Vec<ScenarioSpec>) -> Self {
        self.specs = Some(specs);
        self
    }

    /// Budget points: each scenario (or the base problem) at every budget of the grid;
    /// factors (`1.2x`) are of each scenario's own budget.
    pub fn budgets(mut self, grid: BudgetGrid) -> Self {
        self.budgets = Some(grid);
        self
    }

    /// The optimizer by name, with [`settings`](Sweep::settings) on top of its defaults.
    /// A scenario file that names another optimizer is an input error.
    pub fn optimizer(mut self, name: impl Into<String>) -> Self {
        self.optimizer = Some(name.into());
        self
    }

    /// Settings of the optimizer (unknown ones are input errors).
    pub fn settings(mut self, settings: Map<String, Value>) -> Self {
        self.settings = settings;
        self
    }

    /// A checked configuration, instead of [`optimizer`](Sweep::optimizer) and
    /// [`settings`](Sweep::settings).
    pub fn config(mut self, config: Box<dyn SolverConfig>) -> Self {
        self.config = Some(config);
        self
    }

    /// The optimizer a scenario file names, if any.
    pub fn file_optimizer(&self) -> Option<&str> {
        self.file_optimizer.as_deref()
    }

    /// Threads of the pool (default: all cores).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Start each scenario from its nearest solved neighbour (default `true`).
    pub fn warm_start(mut self, on: bool) -> Self {
        self.warm_start = on;
        self
    }

    /// Time limit of each scenario's solve.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// Seed of every solve.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Serve and store results through `cache`.
    pub fn cache(mut self, cache: Arc<Cache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Called after each finished scenario, from the pool's threads.
    pub fn on_progress(mut self, f: ProgressFn) -> Self {
        self.progress = Some(f);
        self
    }

    /// Stops the sweep when `token` is cancelled: running solves end with status
    /// `cancelled` and their best feasible plan, scenarios not yet started are listed in
    /// `errors` with kind `cancelled`.
    pub fn cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// How scenarios' problems are compiled (default [`Compiled::new`]).
    pub fn compile_with(mut self, compile: CompileFn) -> Self {
        self.compile = compile;
        self
    }

    fn in_source(&self, e: Error) -> Error {
        e.in_file(self.source.as_deref())
    }

    /// The checked configuration of the sweep.
    fn resolve_config(&mut self) -> Result<Box<dyn SolverConfig>, Error> {
        if let Some(config) = self.config.take() {
            if let Some(file) = &self.file_optimizer {
                if file != config.name() {
                    return Err(optimizer_conflict(file, config.name()));
                }
            }
            return Ok(config);
        }
        let name = match (&self.file_optimizer, &self.optimizer) {
            (Some(file), Some(asked)) if file != asked => {
                return Err(optimizer_conflict(file, asked))
            }
            (_, Some(name)) | (Some(name), None) => name.clone(),
            (None, None) => default_optimizer(self.registry),
        };
        self.registry
            .config(&name, std::mem::take(&mut self.settings))
    }

    /// The scenarios as complete problems, with budget points expanded.
    fn expand(&self) -> Result<Vec<Scenario>, Error> {
        let scenarios = match &self.specs {
            Some(specs) => apply_all(&self.base, specs)
                .map_err(|e| Error::Input(e.in_file(self.scenario_source.as_deref())))?,
            None => vec![Scenario {
                name: self.base.name.clone(),
                problem: self.base.clone(),
            }],
        };
        let Some(grid) = &self.budgets else {
            return Ok(scenarios);
        };
        let mut out = Vec::new();
        for s in scenarios {
            let budgets = grid.budgets(s.problem.budget).map_err(Error::Input)?;
            // (hard, issue 12: the shared limit, checked before the problems are cloned.)
            let limit = atlas_core::limits::MAX_SCENARIOS;
            if out.len() + budgets.len() > limit {
                return Err(Error::Input(atlas_core::InputError::new(
                    "--budgets",
                    format!(
                        "the scenarios times the budget points exceed the limit of {limit} solves in one sweep"
                    ),
                )));
            }
            for b in budgets {
                let point = format!("budget={}", fmt_budget(b));
                let name = if self.specs.is_some() {
                    format!("{}, {point}", s.name)
                } else {
                    point
                };
                let mut problem = s.problem.clone();
                problem.budget = b;
                out.push(Scenario { name, problem });
            }
        }
        Ok(out)
    }

    /// Runs the sweep. `Err` only for bad input found before any solve (the base problem,
    /// a scenario patch, the budget grid, the optimizer or its settings); every failure of
    /// a single scenario (infeasible rules, a refused feature, a time limit without a
    /// feasible point) is listed in the result's `errors`, and the others are solved.
    pub fn run(mut self) -> Result<SweepResult, Error> {
        let started = Instant::now();
        // The base problem must be a valid problem before its variants are looked at.
        if let Err(e) = (self.compile)(&self.base) {
            if matches!(e, Error::Input(_) | Error::Config(_)) {
                return Err(self.in_source(e));
            }
        }
        let config = self.resolve_config()?;
        let scenarios = self.expand()?;
        let mut tasks = Vec::with_capacity(scenarios.len());
        for (i, s) in scenarios.into_iter().enumerate() {
            let compiled = match (self.compile)(&s.problem) {
                Ok(c) => Ok(c),
                Err(e @ (Error::Input(_) | Error::Config(_))) => {
                    let label = match &self.specs {
                        Some(_) => scenario_label(i, &s.name),
                        None => format!("{:?}", s.name),
                    };
                    let file = self.scenario_source.as_deref().or(self.source.as_deref());
                    return Err(prefix_error(e.in_file(file), &label));
                }
                Err(e) => Err(failure(&s.name, s.problem.budget, &e)),
            };
            tasks.push(Task::new(s, compiled));
        }

        let plan = warm::plan(
            &tasks
                .iter()
                .map(|t| (t.shape.as_str(), t.budget))
                .collect::<Vec<_>>(),
            self.warm_start,
        );
        let pool = {
            let mut b = rayon::ThreadPoolBuilder::new();
            if let Some(n) = self.jobs {
                if n == 0 {
                    return Err(InputError::new("--jobs", "must be >= 1 (got 0)").into());
                }
                b = b.num_threads(n);
            }
            b.build().map_err(|e| Error::Solver {
                optimizer: config.name().to_string(),
                reason: format!("cannot start the sweep's threads: {e}"),
            })?
        };

        let outcomes: Vec<OnceLock<Outcome>> = tasks.iter().map(|_| OnceLock::new()).collect();
        let done = AtomicUsize::new(0);
        let failed = AtomicUsize::new(0);
        let runner = Runner {
            registry: self.registry,
            config: config.as_ref(),
            tasks: &tasks,
            plan: &plan,
            outcomes: &outcomes,
            cache: self.cache.as_deref(),
            time_limit: self.time_limit,
            seed: self.seed,
            progress: self.progress.as_ref(),
            cancel: self.cancel.as_ref(),
            done: &done,
            failed: &failed,
            started,
        };
        pool.install(|| {
            rayon::scope(|scope| {
                for &root in &plan.roots {
                    runner.spawn(scope, root);
                }
            })
        });

        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| {
                o.into_inner().unwrap_or_else(|| {
                    Outcome::Failed(ScenarioError {
                        name: String::new(),
                        budget: None,
                        kind: "solver".into(),
                        message: "the scenario was never run".into(),
                    })
                })
            })
            .collect();
        Ok(assemble(
            &self.base.name,
            config.name(),
            &tasks,
            outcomes,
            started.elapsed(),
        ))
    }
}

fn optimizer_conflict(file: &str, asked: &str) -> Error {
    InputError::new(
        "optimizer",
        format!("the scenario file names optimizer `{file}` but `{asked}` was asked for: drop one of them"),
    )
    .into()
}

/// `scenarios[3] ("tv capped"): ` before the field of an input error.
fn prefix_error(e: Error, label: &str) -> Error {
    match e {
        Error::Input(mut ie) => {
            ie.field = if ie.field.is_empty() {
                label.to_string()
            } else {
                format!("{label}: {}", ie.field)
            };
            Error::Input(ie)
        }
        other => other,
    }
}

/// One scenario to solve.
pub(crate) struct Task {
    pub(crate) name: String,
    pub(crate) budget: f64,
    pub(crate) exact_budget: bool,
    pub(crate) problem: Problem,
    pub(crate) compiled: Result<Compiled, ScenarioError>,
    /// Scenarios of one shape can start from each other's solutions.
    pub(crate) shape: String,
    /// Scenarios of one family differ only in their budget: the budget response curve.
    pub(crate) family: String,
}

impl Task {
    fn new(s: Scenario, compiled: Result<Compiled, ScenarioError>) -> Self {
        Self {
            budget: s.problem.budget,
            exact_budget: s.problem.budget_mode == BudgetMode::Exact,
            shape: shape_key(&s.problem),
            family: family_key(&s.problem),
            name: s.name,
            problem: s.problem,
            compiled,
        }
    }
}

/// Channels, periods, objective and the kinds and groups of the rules, without numbers:
/// what must agree for one scenario's plan to be a sensible start of another.
fn shape_key(p: &Problem) -> String {
    let channels: Vec<Value> = p
        .channels
        .iter()
        .map(|c| {
            let fields = serde_json::to_value(c).unwrap_or(Value::Null);
            let keys: Vec<&String> = fields
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            serde_json::json!([c.name, keys])
        })
        .collect();
    let rules: Vec<Value> = p
        .constraints
        .iter()
        .map(|c| serde_json::json!([c.kind.as_str(), c.channels, c.over, c.given()]))
        .collect();
    canonical_json(&serde_json::json!({
        "periods": p.periods,
        "channels": channels,
        "objective": p.objective,
        "budget_mode": p.budget_mode,
        "max_active_channels": p.max_active_channels.is_some(),
        "rules": rules,
    }))
}

/// The problem without its budget.
fn family_key(p: &Problem) -> String {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("budget");
        m.remove("name");
    }
    canonical_json(&v)
}

/// How one scenario ended.
pub(crate) enum Outcome {
    Solved {
        result: Box<OptimizationResult>,
        warm_start: bool,
        wall_time_s: f64,
    },
    Failed(ScenarioError),
}

struct Runner<'a> {
    registry: &'a Registry,
    config: &'a dyn SolverConfig,
    tasks: &'a [Task],
    plan: &'a warm::Plan,
    outcomes: &'a [OnceLock<Outcome>],
    cache: Option<&'a Cache>,
    time_limit: Option<Duration>,
    seed: Option<u64>,
    progress: Option<&'a ProgressFn>,
    cancel: Option<&'a CancelToken>,
    done: &'a AtomicUsize,
    failed: &'a AtomicUsize,
    started: Instant,
}

impl<'a> Runner<'a> {
    fn spawn<'s>(&'s self, scope: &rayon::Scope<'s>, i: usize)
    where
        'a: 's,
    {
        scope.spawn(move |scope| {
            let outcome = self.run_one(i);
            let is_failure = matches!(outcome, Outcome::Failed(_));
            let _ = self.outcomes[i].set(outcome);
            let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            let failed = self
                .failed
                .fetch_add(usize::from(is_failure), Ordering::Relaxed)
                + usize::from(is_failure);
            if let Some(f) = self.progress {
                f(&Progress {
                    done,
                    total: self.tasks.len(),
                    failed,
                    elapsed: self.started.elapsed(),
                });
            }
            for &child in &self.plan.children[i] {
                self.spawn(scope, child);
            }
        });
    }

    /// The start point of scenario `i`: the plan of its planned source, or of the nearest
    /// ancestor that was solved, rescaled to `i`'s budget.
    fn start_for(&self, i: usize) -> Option<Vec<f64>> {
        let mut source = self.plan.source[i];
        while let Some(s) = source {
            if let Some(Outcome::Solved { result, .. }) = self.outcomes[s].get() {
                let from = &self.tasks[s];
                let to = &self.tasks[i];
                let compiled = to.compiled.as_ref().ok()?;
                let mut x = result.flat_allocation(compiled).ok()?;
                if from.exact_budget && to.exact_budget && from.budget > 0.0 {
                    let ratio = to.budget / from.budget;
                    x.iter_mut().for_each(|v| *v *= ratio);
                }
                return Some(x);
            }
            source = self.plan.source[s];
        }
        None
    }

    fn run_one(&self, i: usize) -> Outcome {
        let task = &self.tasks[i];
        let started = Instant::now();
        let compiled = match &task.compiled {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(e.clone()),
        };
        if self.cancel.is_some_and(CancelToken::is_cancelled) {
            return Outcome::Failed(ScenarioError {
                name: task.name.clone(),
                budget: Some(task.budget),
                kind: "cancelled".into(),
                message: "the sweep was cancelled before this scenario started".into(),
            });
        }
        let mut options = SolveOptions {
            time_limit: self.time_limit,
            seed: self.seed,
            cancel: self.cancel.cloned(),
            ..Default::default()
        };
        let warm_start = match self.start_for(i) {
            Some(x) => warm::set_start(&mut options, x),
            None => false,
        };
        let solved = std::panic::catch_unwind(AssertUnwindSafe(|| {
            solve_cached(
                self.registry,
                self.cache,
                &task.problem,
                compiled,
                self.config,
                options,
            )
        }));
        let wall_time_s = started.elapsed().as_secs_f64();
        match solved {
            Ok(Ok(result)) => match result_failure(task, compiled, &result) {
                Some(e) => Outcome::Failed(e),
                None => Outcome::Solved {
                    warm_start: warm_start && result.cache != Some(CacheStatus::Hit),
                    result: Box::new(result),
                    wall_time_s,
                },
            },
            Ok(Err(e)) => Outcome::Failed(failure(&task.name, task.budget, &e)),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                Outcome::Failed(ScenarioError {
                    name: task.name.clone(),
                    budget: Some(task.budget),
                    kind: "solver".into(),
                    message: format!("optimizer `{}` panicked: {what}", self.config.name()),
                })
            }
        }
    }
}

/// The kind of a failed solve, as the sweep result names it.
fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Infeasible(_) => "infeasible",
        Error::Unsupported { .. } => "unsupported",
        Error::Input(_) | Error::Config(_) | Error::UnknownOptimizer { .. } => "input",
        Error::Io { .. } | Error::Write { .. } => "io",
        Error::Solver { .. } | Error::DuplicateOptimizer(_) => "solver",
        Error::Model { .. } => "model",
    }
}

fn failure(name: &str, budget: f64, e: &Error) -> ScenarioError {
    ScenarioError {
        name: name.to_string(),
        budget: Some(budget),
        kind: error_kind(e).to_string(),
        message: e.to_string(),
    }
}

/// A result that is not an answer, by the check a single `optimize` makes
/// ([`Compiled::check_result`]): proven infeasible (kind `infeasible`), or a plan that
/// breaks the rules beyond the tolerance without a proof (kind: the status it stopped
/// with, such as `max_iterations`). The message is that check's, naming the violated
/// rules.
fn result_failure(
    task: &Task,
    compiled: &Compiled,
    r: &OptimizationResult,
) -> Option<ScenarioError> {
    let e = compiled.check_result(r).err()?;
    let kind = match &e {
        Error::Infeasible(_) => "infeasible".to_string(),
        Error::Solver { .. } => r.status.as_str().to_string(),
        other => error_kind(other).to_string(),
    };
    Some(ScenarioError {
        name: task.name.clone(),
        budget: Some(task.budget),
        kind,
        message: e.to_string(),
    })
}

/// The sweep result: scenarios and errors in the order given, marginal returns filled in.
fn assemble(
    base: &str,
    optimizer: &str,
    tasks: &[Task],
    outcomes: Vec<Outcome>,
    elapsed: Duration,
) -> SweepResult {
    let marginals = marginal_returns(tasks, &outcomes);
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for (i, (task, outcome)) in tasks.iter().zip(outcomes).enumerate() {
        match outcome {
            Outcome::Solved {
                result,
                warm_start,
                wall_time_s,
            } => scenarios.push(ScenarioResult {
                name: task.name.clone(),
                budget: task.budget,
                status: result.status,
                objective: result.objective,
                bound: result.bound,
                total_spend: result.total_spend,
                totals: result.totals.clone(),
                marginal_return: marginals[i],
                warm_start,
                cache: result.cache.unwrap_or(CacheStatus::Off),
                wall_time_s,
                result: *result,
            }),
            Outcome::Failed(mut e) => {
                e.name = task.name.clone();
                errors.push(e);
            }
        }
    }
    SweepResult {
        atlas_version: crate::canonical::ATLAS_VERSION.to_string(),
        base: base.to_string(),
        optimizer: optimizer.to_string(),
        scenarios,
        errors,
        wall_time_s: elapsed.as_secs_f64(),
    }
}

/// d(objective)/d(budget) per scenario: the optimizer's budget multiplier when it reports
/// one, else the central difference between the neighbouring budget points of the same
/// family (one-sided at the ends), `None` for a scenario alone in its family.
fn marginal_returns(tasks: &[Task], outcomes: &[Outcome]) -> Vec<Option<f64>> {
    let mut out = vec![None; tasks.len()];
    let mut families: BTreeMap<&str, Vec<(f64, f64, usize)>> = BTreeMap::new();
    for (i, (t, o)) in tasks.iter().zip(outcomes).enumerate() {
        if let Outcome::Solved { result, .. } = o {
            if let Some(m) = warm::budget_multiplier(result) {
                out[i] = Some(m);
                continue;
            }
            families
                .entry(t.family.as_str())
                .or_default()
                .push((t.budget, result.objective, i));
        }
    }
    for points in families.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
        // One point per budget (the first given); duplicates get its value.
        let mut distinct: Vec<(f64, f64)> = Vec::new();
        for &(b, f, _) in points.iter() {
            if distinct.last().is_none_or(|d| d.0 != b) {
                distinct.push((b, f));
            }
        }
        if distinct.len() < 2 {
            continue;
        }
        let slope = |j: usize| {
            let lo = j.saturating_sub(1);
            let hi = (j + 1).min(distinct.len() - 1);
            let d = (distinct[hi].1 - distinct[lo].1) / (distinct[hi].0 - distinct[lo].0);
            d.is_finite().then_some(d)
        };
        for &(b, _, i) in points.iter() {
            let j = distinct.partition_point(|d| d.0 < b);
            out[i] = slope(j);
        }
    }
    out
}
