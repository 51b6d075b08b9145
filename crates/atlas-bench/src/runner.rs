//! Runs every registered optimizer on every problem it accepts: a correctness check
//! first (which also warms up), then timed runs, within time budgets.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use atlas_core::{Error, OptimizationResult, Registry, SolveOptions, Status};

use crate::check::{self, Tolerance};
use crate::error::BenchError;
use crate::host::{self, Build, Git, Host};
use crate::optimum::{self, KnownOptimum};
use crate::report::{
    OptimizerEntry, Outcome, ProblemEntry, Report, ResultRow, Run, Settings, Stats, Summary,
    Timing, Units, SCHEMA,
};
use crate::suite::{BenchProblem, Entry};

/// How the suite runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Quick mode (fewer sizes, runs and seconds).
    pub quick: bool,
    /// Timed runs per pair, at most (at least one runs).
    pub runs: usize,
    /// Time limit of one solve (`SolveOptions::time_limit`).
    pub time_limit: Duration,
    /// Time one pair may take over its check and runs: when the check took `t`, at most
    /// `max(1, (pair_budget - t) / t)` timed runs follow.
    pub pair_budget: Duration,
    /// Time the whole suite may take; pairs that would start later are reported as
    /// skipped.
    pub suite_budget: Duration,
    /// Seed of the first run; run `i` uses `seed + i`.
    pub seed: u64,
    /// Optimizers to run (all registered when empty).
    pub optimizers: Vec<String>,
    /// The `--problems` filter, recorded in the report.
    pub problems: Vec<String>,
    /// Gap tolerances replacing the documented ones, by optimizer name.
    pub tolerances: BTreeMap<String, f64>,
}

impl Options {
    /// Defaults of a full run: 5 runs, 60 s per solve, 180 s per pair, 2 hours in all.
    pub fn full() -> Options {
        Options {
            quick: false,
            runs: 5,
            time_limit: Duration::from_secs(60),
            pair_budget: Duration::from_secs(180),
            suite_budget: Duration::from_secs(7_200),
            seed: 0,
            optimizers: Vec::new(),
            problems: Vec::new(),
            tolerances: BTreeMap::new(),
        }
    }

    /// Defaults of `--quick`: 3 runs, 2 s per solve, 5 s per pair, 240 s in all (the
    /// suite, peers excluded, stays under 5 minutes on a 2-core machine even when
    /// several slow black-box optimizers are registered).
    pub fn quick() -> Options {
        Options {
            quick: true,
            runs: 3,
            time_limit: Duration::from_secs(2),
            pair_budget: Duration::from_secs(5),
            suite_budget: Duration::from_secs(240),
            ..Options::full()
        }
    }
}

/// Prints one progress line per pair to `progress`; ignores write errors (progress is a
/// courtesy, the report is the output).
struct Progress<'a> {
    out: &'a mut dyn Write,
    done: usize,
    total: usize,
}

impl Progress<'_> {
    fn line(&mut self, text: &str) {
        self.done += 1;
        let _ = writeln!(self.out, "[{:>3}/{}] {text}", self.done, self.total);
        let _ = self.out.flush();
    }
    fn note(&mut self, text: &str) {
        let _ = writeln!(self.out, "        {text}");
        let _ = self.out.flush();
    }
}

/// Runs the suite `entries` on the optimizers of `registry` and returns the report
/// (without peers; see [`crate::peers`]). Progress lines go to `progress`.
pub fn run(
    registry: &Registry,
    entries: &[Entry],
    options: &Options,
    progress: &mut dyn Write,
) -> Result<Report, BenchError> {
    let started = Instant::now();
    let created = host::utc_now();
    for name in &options.optimizers {
        if !registry.contains(name) {
            return Err(BenchError::usage(
                "--optimizers",
                format!(
                    "`{name}` is not registered in this build; registered: {}",
                    registry.names().join(", ")
                ),
            ));
        }
    }
    let optimizers: Vec<OptimizerEntry> = registry
        .list()
        .into_iter()
        .filter(|i| options.optimizers.is_empty() || options.optimizers.iter().any(|o| o == i.name))
        .map(|i| {
            let mut tolerance = Tolerance::for_optimizer(i.name, &i.capabilities);
            if let Some(&gap) = options.tolerances.get(i.name) {
                tolerance.gap = gap;
            }
            OptimizerEntry {
                name: i.name.to_string(),
                summary: i.summary.to_string(),
                capabilities: i.capabilities,
                settings: i.defaults,
                tolerance,
            }
        })
        .collect();

    let mut progress = Progress {
        out: progress,
        done: 0,
        total: entries.len() * optimizers.len(),
    };
    let mut problems = Vec::new();
    let mut results = Vec::new();
    for entry in entries {
        let over_budget = started.elapsed() >= options.suite_budget;
        if over_budget {
            for o in &optimizers {
                progress.line(&format!(
                    "{} on {}: skipped (suite time budget spent)",
                    o.name, entry.id
                ));
                results.push(skipped(&entry.id, &o.name));
            }
            continue;
        }
        let problem = entry.build()?;
        let (optimum, reference_time) = match &entry.optimum {
            Some(o) => (Some(o.clone()), None),
            None => {
                match optimum::compute_reference(
                    registry,
                    problem.problem.as_ref(),
                    &problem.compiled,
                ) {
                    Some(r) => {
                        progress.note(&format!(
                            "{}: reference {} from {} in {:.2} s{}",
                            entry.id,
                            r.optimum.value,
                            r.optimum.source,
                            r.seconds,
                            r.optimum
                                .certified_gap
                                .map(|g| format!(", certified within {g:.1e}"))
                                .unwrap_or_default()
                        ));
                        (Some(r.optimum), Some(r.seconds))
                    }
                    None => {
                        progress.note(&format!("{}: no reference optimum (gap unknown)", entry.id));
                        (None, None)
                    }
                }
            }
        };
        problems.push(problem_entry(&problem, optimum.clone(), reference_time));
        for o in &optimizers {
            if started.elapsed() >= options.suite_budget {
                progress.line(&format!(
                    "{} on {}: skipped (suite time budget spent)",
                    o.name, entry.id
                ));
                results.push(skipped(&entry.id, &o.name));
                continue;
            }
            let row = run_pair(registry, &problem, optimum.as_ref(), o, options)?;
            progress.line(&describe(&row));
            results.push(row);
        }
    }
    let summary = summarize(&results, started.elapsed().as_secs_f64());
    Ok(Report {
        schema: SCHEMA.to_string(),
        created,
        units: Units::default(),
        host: Host::detect(),
        git: Git::detect(),
        build: Build::detect(),
        settings: Settings {
            quick: options.quick,
            runs: options.runs,
            time_limit_s: options.time_limit.as_secs_f64(),
            pair_budget_s: options.pair_budget.as_secs_f64(),
            suite_budget_s: options.suite_budget.as_secs_f64(),
            seed: options.seed,
            problems: options.problems.clone(),
            optimizers: options.optimizers.clone(),
            peers: false,
        },
        optimizers,
        problems,
        results,
        peers: None,
        summary,
    })
}

/// Recomputes the totals of `results`.
pub fn summarize(results: &[ResultRow], total_time_s: f64) -> Summary {
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    Summary {
        pairs: results.len(),
        ok: count(Outcome::Ok),
        failed: count(Outcome::Fail),
        refused: count(Outcome::Refused),
        errors: count(Outcome::Error),
        timeouts: count(Outcome::Timeout),
        skipped: count(Outcome::Skipped),
        total_time_s,
    }
}

fn skipped(problem: &str, optimizer: &str) -> ResultRow {
    ResultRow {
        problem: problem.to_string(),
        optimizer: optimizer.to_string(),
        outcome: Outcome::Skipped,
        reason: Some("the suite's time budget was spent before this pair".to_string()),
        check: None,
        timing: None,
        speed_vs_best_peer: None,
    }
}

fn describe(row: &ResultRow) -> String {
    let head = format!(
        "{} on {}: {}",
        row.optimizer,
        row.problem,
        row.outcome.as_str()
    );
    match (&row.timing, row.outcome) {
        (Some(t), _) => format!(
            "{head}, {} run(s), median {}, gap {}",
            t.runs,
            crate::report::fmt_time(t.wall_time_s.median),
            t.gap
                .map_or("?".to_string(), |g| crate::report::fmt_gap(g.median))
        ),
        (None, _) => format!("{head}: {}", row.reason.as_deref().unwrap_or("")),
    }
}

fn problem_entry(
    problem: &BenchProblem,
    optimum: Option<KnownOptimum>,
    reference_time_s: Option<f64>,
) -> ProblemEntry {
    let layout = problem.compiled.layout();
    ProblemEntry {
        id: problem.entry.id.clone(),
        family: problem.entry.family,
        variables: layout.len(),
        channels: layout.n_channels(),
        periods: layout.periods(),
        concave: check::is_concave(&problem.compiled),
        features: problem
            .compiled
            .features()
            .iter()
            .map(|f| f.describe())
            .collect(),
        optimum,
        reference_time_s,
        file: match &problem.entry.source {
            crate::suite::Source::File(p) => Some(p.display().to_string()),
            _ => None,
        },
    }
}

/// One solve with the suite's limits; the wall time is measured around the whole call,
/// and returned with an error too (to tell a solve stopped by the limit without an
/// answer from other errors).
fn solve(
    registry: &Registry,
    problem: &BenchProblem,
    config: &dyn atlas_core::SolverConfig,
    options: &Options,
    seed: u64,
) -> (Result<OptimizationResult, Error>, f64) {
    let solve_options = SolveOptions {
        time_limit: Some(options.time_limit),
        seed: Some(seed),
        ..Default::default()
    };
    let t = Instant::now();
    let result = registry.optimize(&problem.compiled, config, solve_options);
    (result, t.elapsed().as_secs_f64())
}

/// How an error ends a pair: a refusal, a time-out (the solve used most of the
/// benchmark's time limit and returned no allocation), or an error.
fn classify_error(e: &Error, elapsed: f64, options: &Options) -> (Outcome, String) {
    match e {
        Error::Unsupported { .. } => (Outcome::Refused, e.to_string()),
        _ if elapsed >= 0.5 * options.time_limit.as_secs_f64() => (
            Outcome::Timeout,
            format!(
                "no allocation within the benchmark's time limit of {} s: {e}",
                options.time_limit.as_secs_f64()
            ),
        ),
        _ => (Outcome::Error, e.to_string()),
    }
}

/// Checks then times one (optimizer, problem) pair.
pub fn run_pair(
    registry: &Registry,
    problem: &BenchProblem,
    optimum: Option<&KnownOptimum>,
    optimizer: &OptimizerEntry,
    options: &Options,
) -> Result<ResultRow, BenchError> {
    let mut row = ResultRow {
        problem: problem.entry.id.clone(),
        optimizer: optimizer.name.clone(),
        outcome: Outcome::Ok,
        reason: None,
        check: None,
        timing: None,
        speed_vs_best_peer: None,
    };
    let config = registry.default_config(&optimizer.name)?;
    // The core refuses unsupported features before running; that is the optimizer's
    // honest answer, not a failure.
    let (first, first_time) = match solve(registry, problem, config.as_ref(), options, options.seed)
    {
        (Ok(r), t) => (r, t),
        (Err(e), t) => {
            let (outcome, reason) = classify_error(&e, t, options);
            row.outcome = outcome;
            row.reason = Some(reason);
            return Ok(row);
        }
    };
    let c = check::check(
        &problem.compiled,
        &first,
        optimum,
        &optimizer.tolerance,
        first.status == Status::TimeLimit,
    );
    let passed = c.passed;
    if !passed {
        row.outcome = Outcome::Fail;
        row.reason = Some(c.failures.join("; "));
    }
    row.check = Some(c);
    if !passed {
        return Ok(row);
    }

    let budget = options.pair_budget.as_secs_f64();
    let affordable = if first_time > 0.0 {
        ((budget - first_time) / first_time).floor().max(1.0) as usize
    } else {
        options.runs
    };
    let n = options.runs.max(1).min(affordable);
    let mut runs = Vec::with_capacity(n);
    for i in 0..n {
        let seed = options.seed.wrapping_add(i as u64);
        let (result, wall) = match solve(registry, problem, config.as_ref(), options, seed) {
            (Ok(r), t) => (r, t),
            (Err(e), t) => {
                let (outcome, reason) = classify_error(&e, t, options);
                row.outcome = outcome;
                row.reason = Some(format!("timed run {i} (seed {seed}): {reason}"));
                return Ok(row);
            }
        };
        let x = result.flat_allocation(&problem.compiled)?;
        let objective = problem.compiled.objective_value(&x);
        let max_violation = problem.compiled.max_violation(&x);
        // Every timed run must stay correct, not only the first (seeds differ).
        if max_violation > problem.compiled.feasibility_tolerance() {
            row.outcome = Outcome::Fail;
            row.reason = Some(format!(
                "timed run {i} (seed {seed}) returned an infeasible allocation (max violation {max_violation:.3e})"
            ));
        }
        let m = &result.metrics;
        runs.push(Run {
            seed,
            status: result.status.as_str().to_string(),
            wall_time_s: wall,
            objective,
            gap: optimum.map(|o| o.signed_gap(objective)),
            evaluations: m.evaluations,
            gradient_evaluations: m.gradient_evaluations,
            iterations: m.iterations,
            model_time_s: m.model_time_s,
            constraint_time_s: m.constraint_time_s,
            peak_memory_mb: m.peak_memory_mb,
            max_violation,
        });
    }
    row.timing = timing(runs);
    Ok(row)
}

fn timing(runs: Vec<Run>) -> Option<Timing> {
    let col = |f: &dyn Fn(&Run) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let median = |f: &dyn Fn(&Run) -> f64| Stats::of(&col(f)).map_or(f64::NAN, |s| s.median);
    let share = |part: f64, whole: f64| {
        if whole > 0.0 {
            (part / whole).min(1.0)
        } else {
            0.0
        }
    };
    let mut statuses: Vec<String> = Vec::new();
    for r in &runs {
        if !statuses.contains(&r.status) {
            statuses.push(r.status.clone());
        }
    }
    let gaps: Option<Vec<f64>> = runs.iter().map(|r| r.gap).collect();
    Some(Timing {
        runs: runs.len(),
        statuses,
        wall_time_s: Stats::of(&col(&|r| r.wall_time_s))?,
        objective: Stats::of(&col(&|r| r.objective))?,
        gap: gaps.and_then(|g| Stats::of(&g)),
        evaluations: median(&|r| r.evaluations as f64),
        gradient_evaluations: median(&|r| r.gradient_evaluations as f64),
        iterations: median(&|r| r.iterations as f64),
        model_time_share: median(&|r| share(r.model_time_s, r.wall_time_s)),
        constraint_time_share: median(&|r| share(r.constraint_time_s, r.wall_time_s)),
        peak_memory_mb: runs.iter().map(|r| r.peak_memory_mb).fold(0.0, f64::max),
        per_run: runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_at_the_time_limit_are_timeouts_not_failures() {
        let options = Options::quick(); // 2 s per solve
        let solver_error = Error::Solver {
            optimizer: "milp".into(),
            reason: "no feasible allocation yet".into(),
        };
        assert_eq!(
            classify_error(&solver_error, 1.9, &options).0,
            Outcome::Timeout
        );
        assert!(classify_error(&solver_error, 1.9, &options)
            .1
            .contains("time limit of 2 s"));
        assert_eq!(
            classify_error(&solver_error, 0.1, &options).0,
            Outcome::Error
        );
        let refused = Error::Unsupported {
            optimizer: "lbfgs".into(),
            features: vec!["`spend_unit`".into()],
            alternatives: vec![],
        };
        assert_eq!(classify_error(&refused, 1.9, &options).0, Outcome::Refused);
    }

    #[test]
    fn timeouts_and_refusals_do_not_fail_the_run() {
        let row = |outcome| ResultRow {
            problem: "p".into(),
            optimizer: "o".into(),
            outcome,
            reason: None,
            check: None,
            timing: None,
            speed_vs_best_peer: None,
        };
        let rows = [
            row(Outcome::Ok),
            row(Outcome::Timeout),
            row(Outcome::Refused),
            row(Outcome::Skipped),
        ];
        let s = summarize(&rows, 1.0);
        assert_eq!(
            (s.pairs, s.ok, s.timeouts, s.refused, s.skipped),
            (4, 1, 1, 1, 1)
        );
        assert_eq!((s.failed, s.errors), (0, 0));
        let rows = [row(Outcome::Error), row(Outcome::Fail)];
        let s = summarize(&rows, 1.0);
        assert_eq!((s.failed, s.errors), (1, 1));
    }
}
