//! The benchmark report: `bench.json` (schema [`SCHEMA`]), `bench.csv`, and the table
//! printed on stdout.
//!
//! The JSON field names and the [`Units`] are a stable interface (a test pins them);
//! change them only with a new schema version.

use std::io::Write;
use std::path::Path;

use atlas_core::Capabilities;
use serde::{Deserialize, Serialize};

use crate::check::{Check, Tolerance};
use crate::error::BenchError;
use crate::host::{Build, Git, Host};
use crate::optimum::KnownOptimum;
use crate::suite::Family;

/// Version of the `bench.json` layout.
pub const SCHEMA: &str = "atlas-bench/1";

/// The units of every quantity in the report, spelled out in the report itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Units {
    /// Wall and model times.
    pub time: String,
    /// Peak memory.
    pub memory: String,
    /// The objective.
    pub objective: String,
    /// The gap to the known optimum.
    pub gap: String,
    /// Shares of wall time.
    pub share: String,
    /// The speed ratio to the best peer.
    pub speed_vs_best_peer: String,
    /// Violations.
    pub violation: String,
}

impl Default for Units {
    fn default() -> Self {
        Units {
            time: "s".to_string(),
            memory: "MiB".to_string(),
            objective: "problem units: response, profit, or spend for min_spend".to_string(),
            gap: "relative: (optimum - objective) / max(1, |optimum|) when maximizing, (objective - optimum) / max(1, |optimum|) when minimizing".to_string(),
            share: "fraction of wall time".to_string(),
            speed_vs_best_peer: "best peer's median time / Atlas's median time (> 1: Atlas faster)".to_string(),
            violation: "spend units".to_string(),
        }
    }
}

/// Settings of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `--quick`.
    pub quick: bool,
    /// Timed runs per (optimizer, problem) pair, at most.
    pub runs: usize,
    /// Time limit of one solve, seconds.
    pub time_limit_s: f64,
    /// Time one pair may take over all its runs, seconds; fewer runs when exceeded.
    pub pair_budget_s: f64,
    /// Time the whole suite may take, seconds; later pairs are skipped when exceeded.
    pub suite_budget_s: f64,
    /// Seed of run 0; run `i` uses `seed + i`.
    pub seed: u64,
    /// `--problems` filter.
    pub problems: Vec<String>,
    /// `--optimizers` filter.
    pub optimizers: Vec<String>,
    /// Whether the Python peers ran.
    pub peers: bool,
}

/// A registered optimizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerEntry {
    /// Registered name.
    pub name: String,
    /// What it does.
    pub summary: String,
    /// Its capabilities.
    pub capabilities: Capabilities,
    /// Its default settings (the benchmark uses them).
    pub settings: serde_json::Value,
    /// Its gap tolerance.
    pub tolerance: Tolerance,
}

/// A problem of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemEntry {
    /// Identifier.
    pub id: String,
    /// Part of the suite.
    pub family: Family,
    /// Number of variables (channels x periods).
    pub variables: usize,
    /// Channels.
    pub channels: usize,
    /// Periods.
    pub periods: usize,
    /// Concave without integer rules.
    pub concave: bool,
    /// Features some optimizers cannot honour.
    pub features: Vec<String>,
    /// The reference optimum, when known.
    pub optimum: Option<KnownOptimum>,
    /// Seconds spent computing the reference (generated problems), not counted as
    /// anyone's time.
    pub reference_time_s: Option<f64>,
    /// The problem file (what peers read), when there is one.
    pub file: Option<String>,
}

/// How a pair ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Checked and timed.
    Ok,
    /// The correctness check failed (not timed).
    Fail,
    /// The optimizer refused a feature of the problem before running.
    Refused,
    /// The solve returned an error.
    Error,
    /// The solve returned no allocation within the benchmark's time limit (an optimizer
    /// that has no feasible point yet when stopped); not a failure, but no result.
    Timeout,
    /// Not run: the suite's time budget was spent.
    Skipped,
}

impl Outcome {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "FAIL",
            Outcome::Refused => "refused",
            Outcome::Error => "ERROR",
            Outcome::Timeout => "timeout",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Median, minimum and maximum of a quantity over the timed runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Stats {
    /// Stats of `values`; `None` when empty or when any value is NaN.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Some(Stats {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// One timed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Seed passed to the solve.
    pub seed: u64,
    /// How it ended.
    pub status: String,
    /// Wall time, seconds.
    pub wall_time_s: f64,
    /// Objective, re-evaluated.
    pub objective: f64,
    /// Gap to the known optimum.
    pub gap: Option<f64>,
    /// Model evaluations.
    pub evaluations: u64,
    /// Gradient evaluations.
    pub gradient_evaluations: u64,
    /// Iterations.
    pub iterations: u64,
    /// Seconds in the model.
    pub model_time_s: f64,
    /// Seconds in projections and constraints.
    pub constraint_time_s: f64,
    /// Peak resident memory of the process during the solve, MiB.
    pub peak_memory_mb: f64,
    /// Largest violation, re-evaluated.
    pub max_violation: f64,
}

/// Summary of the timed runs of a pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Number of timed runs (fewer than asked when the pair's budget ran out).
    pub runs: usize,
    /// Status of each run, distinct values in order of appearance.
    pub statuses: Vec<String>,
    /// Wall time.
    pub wall_time_s: Stats,
    /// Objective.
    pub objective: Stats,
    /// Gap, when the optimum is known.
    pub gap: Option<Stats>,
    /// Median model evaluations.
    pub evaluations: f64,
    /// Median gradient evaluations.
    pub gradient_evaluations: f64,
    /// Median iterations.
    pub iterations: f64,
    /// Median share of wall time spent in the model.
    pub model_time_share: f64,
    /// Median share of wall time spent in projections and constraints.
    pub constraint_time_share: f64,
    /// Largest peak memory over the runs, MiB.
    pub peak_memory_mb: f64,
    /// Every run.
    pub per_run: Vec<Run>,
}

/// The best peer that reached an Atlas result's quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerComparison {
    /// The peer solver.
    pub peer: String,
    /// Its median wall time, seconds.
    pub peer_time_s: f64,
    /// `peer_time_s` / Atlas's median time.
    pub ratio: f64,
}

/// One (optimizer, problem) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// Problem id.
    pub problem: String,
    /// Optimizer name.
    pub optimizer: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was refused, failed, errored or skipped.
    pub reason: Option<String>,
    /// The correctness check (the first solve, which also warms up).
    pub check: Option<Check>,
    /// The timed runs.
    pub timing: Option<Timing>,
    /// Speed against the fastest peer that reached the same objective (`--peers`).
    pub speed_vs_best_peer: Option<PeerComparison>,
}

/// Totals of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    /// Pairs considered.
    pub pairs: usize,
    /// Checked and timed.
    pub ok: usize,
    /// Failed the correctness check.
    pub failed: usize,
    /// Refused by the optimizer.
    pub refused: usize,
    /// Solve errors.
    pub errors: usize,
    /// No allocation within the time limit.
    pub timeouts: usize,
    /// Skipped for time.
    pub skipped: usize,
    /// Wall time of the whole benchmark, seconds.
    pub total_time_s: f64,
}

/// A peer solver that could not run for lack of Python packages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingPeer {
    /// The solver.
    pub solver: String,
    /// The missing packages.
    pub packages: Vec<String>,
}

/// One peer solve, re-evaluated by Atlas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    /// Problem id.
    pub problem: String,
    /// Peer solver (`scipy-slsqp`, `optuna-tpe`, ...).
    pub solver: String,
    /// How it ended (`ok`: feasible when re-evaluated).
    pub outcome: Outcome,
    /// Why it was refused, infeasible or failed.
    pub reason: Option<String>,
    /// Runs.
    pub runs: usize,
    /// Wall time of the solve inside Python (imports excluded), seconds.
    pub wall_time_s: Option<Stats>,
    /// The objective the peer reported (its own evaluation of the model).
    pub objective_reported: Option<f64>,
    /// The objective Atlas computes from the peer's allocation.
    pub objective: Option<f64>,
    /// Gap to the known optimum.
    pub gap: Option<f64>,
    /// Largest violation Atlas finds in the peer's allocation.
    pub max_violation: Option<f64>,
    /// Whether that allocation is feasible.
    pub feasible: Option<bool>,
}

/// The peers part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeersReport {
    /// The Python interpreter.
    pub python: String,
    /// Python version, when it ran.
    pub python_version: Option<String>,
    /// Peer solvers whose packages are installed.
    pub available: Vec<String>,
    /// Peer solvers that could not run.
    pub missing: Vec<MissingPeer>,
    /// A message for the user (how to install what is missing), when any.
    pub message: Option<String>,
    /// Every peer solve.
    pub results: Vec<PeerRow>,
}

/// The whole report (`bench.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: String,
    /// When the benchmark started, RFC 3339 UTC.
    pub created: String,
    /// Units of every quantity.
    pub units: Units,
    /// The machine.
    pub host: Host,
    /// The source revision.
    pub git: Git,
    /// The build.
    pub build: Build,
    /// Settings of the run.
    pub settings: Settings,
    /// Registered optimizers (after `--optimizers`).
    pub optimizers: Vec<OptimizerEntry>,
    /// Problems (after `--problems`).
    pub problems: Vec<ProblemEntry>,
    /// One row per (optimizer, problem) pair.
    pub results: Vec<ResultRow>,
    /// Peer results, with `--peers`.
    pub peers: Option<PeersReport>,
    /// Totals.
    pub summary: Summary,
}

impl Report {
    /// Whether every pair passed its check (refusals and skips are not failures).
    pub fn all_passed(&self) -> bool {
        self.summary.failed == 0 && self.summary.errors == 0
    }

    /// Writes `bench.json`, `bench.csv` and `bench.svg` into `dir` (created if needed);
    /// returns their paths.
    pub fn write_files(&self, dir: &Path) -> Result<Vec<std::path::PathBuf>, BenchError> {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
        let json_path = dir.join("bench.json");
        let json = serde_json::to_string_pretty(self).map_err(|e| BenchError::Format {
            path: json_path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&json_path, &(json + "\n"))?;
        let csv_path = dir.join("bench.csv");
        write_atomically(&csv_path, &self.csv())?;
        let svg_path = dir.join("bench.svg");
        crate::chart::draw(self, &svg_path)?;
        Ok(vec![json_path, csv_path, svg_path])
    }

    /// The CSV: one line per Atlas pair and per peer solve.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "kind,problem,optimizer,outcome,statuses,runs,time_median_s,time_min_s,time_max_s,objective,gap,evaluations,iterations,model_time_share,peak_memory_mb,speed_vs_best_peer,best_peer,reason\n",
        );
        // Shortest round-trip decimal: exact, and readable by any CSV tool.
        let num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        for r in &self.results {
            let t = r.timing.as_ref();
            let objective = t
                .map(|t| t.objective.median)
                .or(r.check.as_ref().map(|c| c.objective_reevaluated));
            let gap = t
                .and_then(|t| t.gap.map(|g| g.median))
                .or(r.check.as_ref().and_then(|c| c.gap));
            let fields = [
                "atlas".to_string(),
                r.problem.clone(),
                r.optimizer.clone(),
                r.outcome.as_str().to_string(),
                t.map(|t| t.statuses.join(" ")).unwrap_or_default(),
                t.map_or(String::new(), |t| t.runs.to_string()),
                num(t.map(|t| t.wall_time_s.median)),
                num(t.map(|t| t.wall_time_s.min)),
                num(t.map(|t| t.wall_time_s.max)),
                num(objective),
                num(gap),
                num(t.map(|t| t.evaluations)),
                num(t.map(|t| t.iterations)),
                num(t.map(|t| t.model_time_share)),
                num(t.map(|t| t.peak_memory_mb)),
                num(r.speed_vs_best_peer.as_ref().map(|p| p.ratio)),
                r.speed_vs_best_peer
                    .as_ref()
                    .map(|p| p.peer.clone())
                    .unwrap_or_default(),
                r.reason.clone().unwrap_or_default(),
            ];
            out.push_str(&csv_line(&fields));
        }
        if let Some(peers) = &self.peers {
            for p in &peers.results {
                let fields = [
                    "peer".to_string(),
                    p.problem.clone(),
                    p.solver.clone(),
                    p.outcome.as_str().to_string(),
                    String::new(),
                    p.runs.to_string(),
                    num(p.wall_time_s.map(|s| s.median)),
                    num(p.wall_time_s.map(|s| s.min)),
                    num(p.wall_time_s.map(|s| s.max)),
                    num(p.objective),
                    num(p.gap),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    p.reason.clone().unwrap_or_default(),
                ];
                out.push_str(&csv_line(&fields));
            }
        }
        out
    }

    /// The table printed on stdout (Markdown, so it pastes into documentation).
    pub fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let h = &self.host;
        writeln!(
            out,
            "Atlas benchmark · {} · {} · {} logical cores{} · {} build · git {}{}",
            self.created,
            h.cpu.as_deref().unwrap_or(&h.arch),
            h.logical_cores,
            h.load_average_1m
                .map(|l| format!(" (load {l:.2} at start)"))
                .unwrap_or_default(),
            self.build.profile,
            self.git
                .revision
                .as_deref()
                .map(|r| &r[..r.len().min(12)])
                .unwrap_or("unknown"),
            if self.git.dirty == Some(true) {
                " (dirty)"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "{} run(s) per pair{}, time limit {} s per solve; optimizers: {}",
            self.settings.runs,
            if self.settings.quick {
                " (--quick)"
            } else {
                ""
            },
            self.settings.time_limit_s,
            self.optimizers
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(out)?;
        let with_peers = self.peers.is_some();
        write!(
            out,
            "| problem | vars | optimizer | check | status | time median (min-max) | objective | gap | evals | iters | model | peak MiB |"
        )?;
        if with_peers {
            write!(out, " vs best peer |")?;
        }
        writeln!(out)?;
        write!(out, "|---|--:|---|---|---|--:|--:|--:|--:|--:|--:|--:|")?;
        if with_peers {
            write!(out, "--:|")?;
        }
        writeln!(out)?;
        for r in self
            .results
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Refused | Outcome::Skipped))
        {
            let vars = self
                .problems
                .iter()
                .find(|p| p.id == r.problem)
                .map_or(0, |p| p.variables);
            let check = match (&r.outcome, &r.check) {
                (Outcome::Ok, Some(c)) if c.gap_checked => "ok".to_string(),
                (Outcome::Ok, _) => "ok*".to_string(),
                (o, _) => o.as_str().to_string(),
            };
            let (status, time, objective, gap, evals, iters, model, peak) = match &r.timing {
                Some(t) => (
                    t.statuses.join(","),
                    format!(
                        "{} ({}-{})",
                        fmt_time(t.wall_time_s.median),
                        fmt_time(t.wall_time_s.min),
                        fmt_time(t.wall_time_s.max)
                    ),
                    fmt_objective(t.objective.median),
                    t.gap.map_or("?".to_string(), |g| fmt_gap(g.median)),
                    format!("{:.0}", t.evaluations),
                    format!("{:.0}", t.iterations),
                    format!("{:.0}%", 100.0 * t.model_time_share),
                    format!("{:.1}", t.peak_memory_mb),
                ),
                None => {
                    let c = r.check.as_ref();
                    (
                        "-".to_string(),
                        "-".to_string(),
                        c.map_or("-".to_string(), |c| fmt_objective(c.objective_reevaluated)),
                        c.and_then(|c| c.gap).map_or("-".to_string(), fmt_gap),
                        "-".to_string(),
                        "-".to_string(),
                        "-".to_string(),
                        "-".to_string(),
                    )
                }
            };
            write!(
                out,
                "| {} | {vars} | {} | {check} | {status} | {time} | {objective} | {gap} | {evals} | {iters} | {model} | {peak} |",
                r.problem, r.optimizer
            )?;
            if with_peers {
                let cell = match &r.speed_vs_best_peer {
                    Some(p) => format!("{:.1}x {}", p.ratio, p.peer),
                    None if self.problem_has_peers(&r.problem) => "no peer as good".to_string(),
                    None => "-".to_string(),
                };
                write!(out, " {cell} |")?;
            }
            writeln!(out)?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "check: `ok` = feasible, objective re-evaluated, gap within the optimizer's tolerance; `ok*` = the same but the gap is only reported (non-concave problem for a local method, large problem for a black-box search, or no certified optimum)."
        )?;
        for r in &self.results {
            match r.outcome {
                Outcome::Fail | Outcome::Error | Outcome::Timeout => writeln!(
                    out,
                    "{} {} on {}: {}",
                    r.outcome.as_str(),
                    r.optimizer,
                    r.problem,
                    r.reason.as_deref().unwrap_or("")
                )?,
                _ => {}
            }
        }
        let refused: Vec<String> = self
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Refused)
            .map(|r| format!("{} on {}", r.optimizer, r.problem))
            .collect();
        if !refused.is_empty() {
            writeln!(
                out,
                "refused before running (a feature the optimizer cannot honour; reasons in bench.json): {}",
                refused.join(", ")
            )?;
        }
        let skipped = self
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Skipped)
            .count();
        if skipped > 0 {
            writeln!(
                out,
                "skipped: {skipped} pair(s), the suite's time budget of {} s was spent",
                self.settings.suite_budget_s
            )?;
        }
        if let Some(peers) = &self.peers {
            self.write_peer_table(out, peers)?;
        }
        writeln!(
            out,
            "{} pairs: {} ok, {} failed, {} errors, {} timeouts, {} refused, {} skipped; {:.1} s in all",
            self.summary.pairs,
            self.summary.ok,
            self.summary.failed,
            self.summary.errors,
            self.summary.timeouts,
            self.summary.refused,
            self.summary.skipped,
            self.summary.total_time_s
        )
    }

    fn problem_has_peers(&self, problem: &str) -> bool {
        self.peers.as_ref().is_some_and(|p| {
            p.results
                .iter()
                .any(|r| r.problem == problem && r.outcome == Outcome::Ok)
        })
    }

    fn write_peer_table(&self, out: &mut dyn Write, peers: &PeersReport) -> std::io::Result<()> {
        writeln!(out)?;
        writeln!(
            out,
            "Python peers ({}{}), allocations re-evaluated by Atlas:",
            peers.python,
            peers
                .python_version
                .as_deref()
                .map(|v| format!(", Python {v}"))
                .unwrap_or_default()
        )?;
        if let Some(m) = &peers.message {
            writeln!(out, "{m}")?;
        }
        if peers.results.is_empty() {
            return Ok(());
        }
        writeln!(out)?;
        writeln!(
            out,
            "| problem | peer | outcome | time median (min-max) | objective | gap | max violation |"
        )?;
        writeln!(out, "|---|---|---|--:|--:|--:|--:|")?;
        for p in peers
            .results
            .iter()
            .filter(|p| p.outcome != Outcome::Refused)
        {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                p.problem,
                p.solver,
                match p.outcome {
                    Outcome::Ok => "ok".to_string(),
                    o => format!("{}: {}", o.as_str(), p.reason.as_deref().unwrap_or("")),
                },
                p.wall_time_s.map_or("-".to_string(), |s| format!(
                    "{} ({}-{})",
                    fmt_time(s.median),
                    fmt_time(s.min),
                    fmt_time(s.max)
                )),
                p.objective.map_or("-".to_string(), fmt_objective),
                p.gap.map_or("?".to_string(), fmt_gap),
                p.max_violation
                    .map_or("-".to_string(), |v| format!("{v:.1e}")),
            )?;
        }
        let refused: Vec<String> = peers
            .results
            .iter()
            .filter(|p| p.outcome == Outcome::Refused)
            .map(|p| format!("{} on {}", p.solver, p.problem))
            .collect();
        if !refused.is_empty() {
            writeln!(
                out,
                "peers that do not apply (reasons in bench.json): {}",
                refused.join(", ")
            )?;
        }
        writeln!(out)
    }
}

/// Seconds with a unit, three significant digits.
pub fn fmt_time(s: f64) -> String {
    let three = |v: f64, unit: &str| {
        if v >= 100.0 {
            format!("{v:.0}{unit}")
        } else if v >= 10.0 {
            format!("{v:.1}{unit}")
        } else {
            format!("{v:.2}{unit}")
        }
    };
    if s >= 1.0 {
        three(s, "s")
    } else if s >= 1e-3 {
        three(s * 1e3, "ms")
    } else {
        three(s * 1e6, "us")
    }
}

/// A relative gap: `0` below `1e-15` in magnitude (rounding of the objective itself),
/// else two significant digits.
pub fn fmt_gap(g: f64) -> String {
    if g.abs() < 1e-15 {
        "0".to_string()
    } else {
        format!("{g:.1e}")
    }
}

/// An objective with enough digits to see a relative difference of 1e-9.
pub fn fmt_objective(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e12 || v.abs() < 1e-3) {
        format!("{v:.10e}")
    } else {
        format!("{v:.4}")
    }
}

fn csv_line(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    quoted.join(",") + "\n"
}

/// [`atlas_core::files::write_atomically`], its error naming `path`.
pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<(), BenchError> {
    atlas_core::files::write_atomically(path, text).map_err(|e| BenchError::io(path, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report with no rows, for tests of what fills it.
    pub(crate) fn empty_report() -> Report {
        Report {
            schema: SCHEMA.to_string(),
            created: crate::host::utc_now(),
            units: Units::default(),
            host: Host::detect(),
            git: Git {
                revision: None,
                dirty: None,
            },
            build: Build::detect(),
            settings: Settings {
                quick: true,
                runs: 1,
                time_limit_s: 1.0,
                pair_budget_s: 1.0,
                suite_budget_s: 1.0,
                seed: 0,
                problems: vec![],
                optimizers: vec![],
                peers: false,
            },
            optimizers: vec![],
            problems: vec![],
            results: vec![],
            peers: None,
            summary: Summary::default(),
        }
    }

    #[test]
    fn stats_of_odd_and_even_counts() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert!(Stats::of(&[]).is_none());
        assert!(Stats::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn csv_quotes_fields_with_commas_and_quotes() {
        let line = csv_line(&["a".into(), "b,c".into(), "say \"hi\"".into()]);
        assert_eq!(line, "a,\"b,c\",\"say \"\"hi\"\"\"\n");
    }

    #[test]
    fn times_and_gaps_format_compactly() {
        assert_eq!(fmt_time(0.000_012_3), "12.3us");
        assert_eq!(fmt_time(0.0125), "12.5ms");
        assert_eq!(fmt_time(0.002), "2.00ms");
        assert_eq!(fmt_time(4.567), "4.57s");
        assert_eq!(fmt_time(314.159), "314s");
        assert_eq!(fmt_gap(0.0), "0");
        assert_eq!(fmt_gap(-5e-16), "0");
        assert_eq!(fmt_gap(-2.5e-9), "-2.5e-9");
        assert_eq!(fmt_gap(1.234e-7), "1.2e-7");
    }
}
