//! Python peers: the same problem files solved by SciPy, Optuna, `cmaes`, CVXPY with
//! Clarabel and HiGHS through `benches/peers/peers.py`, which writes the contract's
//! result JSON; Atlas re-evaluates every peer allocation itself and compares speeds at
//! equal quality.
//!
//! Missing Python or missing packages never fail the Atlas part: the report then says
//! what is missing and how to install it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atlas_core::Allocation;
use indexmap::IndexMap;
use serde::Deserialize;

use crate::error::BenchError;
use crate::optimum::{KnownOptimum, Sense};
use crate::report::{MissingPeer, Outcome, PeerComparison, PeerRow, PeersReport, Report, Stats};
use crate::suite::BenchProblem;

/// Every peer solver of `peers.py`, in the order they run.
pub const SOLVERS: [&str; 7] = [
    "scipy-slsqp",
    "scipy-trust-constr",
    "optuna-tpe",
    "optuna-cmaes",
    "cmaes",
    "cvxpy-clarabel",
    "highs",
];

/// The packages `peers.py` may use, as one `pip install` line.
pub const PIP_PACKAGES: &str = "numpy scipy optuna cmaes cvxpy clarabel highspy";

/// A peer counts as reaching an Atlas result's quality when its re-evaluated objective is
/// at most this much worse, relative.
pub const SAME_QUALITY: f64 = 1e-6;

/// How the peers run.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerOptions {
    /// The Python interpreter.
    pub python: PathBuf,
    /// `peers.py`.
    pub script: PathBuf,
    /// Solvers to run (all when empty).
    pub solvers: Vec<String>,
    /// Time limit per solve, passed to the solvers that take one.
    pub time_limit: Duration,
    /// Runs per solve (median time reported).
    pub runs: usize,
    /// Seed.
    pub seed: u64,
    /// Where problem files for generated problems and peer results go.
    pub work_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
struct CheckOutput {
    python: String,
    solvers: IndexMap<String, SolverAvailability>,
}

#[derive(Debug, Deserialize)]
struct SolverAvailability {
    available: bool,
    missing: Vec<String>,
}

/// What `peers.py solve` writes per solver: the contract's result, or a refusal or error.
#[derive(Debug, Deserialize)]
struct PeerFile {
    #[serde(default)]
    objective: Option<f64>,
    #[serde(default)]
    allocation: Option<IndexMap<String, Vec<f64>>>,
    #[serde(default)]
    peer: Option<PeerExtra>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct PeerExtra {
    #[serde(default)]
    wall_times_s: Vec<f64>,
    #[serde(default)]
    refused: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// The default interpreter: `$ATLAS_PYTHON`, else `python3`.
pub fn default_python() -> PathBuf {
    std::env::var_os("ATLAS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Runs a command, killing it after `timeout`; returns (success, stdout, stderr).
fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
) -> std::io::Result<(bool, String, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drain the pipes in threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut s);
        }
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out_thread.join().unwrap_or_default();
    let mut err = err_thread.join().unwrap_or_default();
    if status.is_none() {
        err.push_str(&format!("\n(killed after {} s)", timeout.as_secs()));
    }
    Ok((status.is_some_and(|s| s.success()), out, err))
}

/// Asks `peers.py check` which solvers can run; the error text when Python or the script
/// cannot run at all.
fn availability(options: &PeerOptions) -> Result<CheckOutput, String> {
    if !options.script.exists() {
        return Err(format!(
            "the peers script {} does not exist (run from the repository root or pass --peers-script)",
            options.script.display()
        ));
    }
    let mut cmd = Command::new(&options.python);
    cmd.arg(&options.script).arg("check");
    match run_with_timeout(&mut cmd, Duration::from_secs(120)) {
        Ok((true, out, _)) => serde_json::from_str(&out)
            .map_err(|e| format!("unexpected output of `peers.py check`: {e}")),
        Ok((false, _, err)) => Err(format!(
            "`{} {} check` failed: {}",
            options.python.display(),
            options.script.display(),
            err.trim()
        )),
        Err(e) => Err(format!(
            "cannot run Python `{}`: {e}; install Python 3.11+ or pass --python",
            options.python.display()
        )),
    }
}

/// Splits the solvers `check` reports into those that can run and those missing
/// packages, keeping only `wanted` ones (all when empty).
fn classify(check: &CheckOutput, wanted: &[String]) -> (Vec<String>, Vec<MissingPeer>) {
    let mut available = Vec::new();
    let mut missing = Vec::new();
    for (name, a) in &check.solvers {
        if !(wanted.is_empty() || wanted.iter().any(|w| w == name)) {
            continue;
        }
        if a.available {
            available.push(name.clone());
        } else {
            missing.push(MissingPeer {
                solver: name.clone(),
                packages: a.missing.clone(),
            });
        }
    }
    (available, missing)
}

/// The message naming the peers that cannot run and the `pip install` line that fixes
/// it; `None` when nothing is missing.
fn missing_message(missing: &[MissingPeer], python: &Path) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let mut packages: Vec<String> = missing
        .iter()
        .flat_map(|m| m.packages.iter().cloned())
        .collect();
    packages.sort();
    packages.dedup();
    Some(format!(
        "peers not run for lack of Python packages: {} (missing {}). Install them with: {} -m pip install {}",
        missing
            .iter()
            .map(|m| m.solver.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        packages.join(", "),
        python.display(),
        packages.join(" ")
    ))
}

/// The file peers read for `problem`: its own file, or the generated problem written as
/// TOML into `dir`. `None` for problems no file can express (test functions).
fn problem_file(problem: &BenchProblem, dir: &Path) -> Result<Option<PathBuf>, BenchError> {
    if let crate::suite::Source::File(p) = &problem.entry.source {
        return Ok(Some(p.clone()));
    }
    let Some(p) = &problem.problem else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
    let path = dir.join(format!("{}.toml", problem.entry.id));
    let text = toml::to_string(p).map_err(|e| BenchError::Format {
        path: path.clone(),
        reason: format!("cannot write the problem as TOML: {e}"),
    })?;
    crate::report::write_atomically(&path, &text)?;
    Ok(Some(path))
}

/// Runs the peers on `problems`, re-evaluates their allocations, and fills
/// `report.peers` and each Atlas row's speed ratio to the best peer of the same quality.
pub fn run(
    report: &mut Report,
    problems: &[(BenchProblem, Option<KnownOptimum>)],
    options: &PeerOptions,
    progress: &mut dyn Write,
) -> Result<(), BenchError> {
    report.settings.peers = true;
    let mut peers = PeersReport {
        python: options.python.display().to_string(),
        python_version: None,
        available: Vec::new(),
        missing: Vec::new(),
        message: None,
        results: Vec::new(),
    };
    let check = match availability(options) {
        Ok(c) => c,
        Err(msg) => {
            let _ = writeln!(
                progress,
                "peers: {msg}; the Atlas results stand without them"
            );
            peers.message = Some(format!(
                "{msg}. To run the peers: python3 -m venv .venv && .venv/bin/pip install {PIP_PACKAGES}, then pass --python .venv/bin/python"
            ));
            report.peers = Some(peers);
            return Ok(());
        }
    };
    peers.python_version = Some(check.python.clone());
    let (available, missing) = classify(&check, &options.solvers);
    peers.available = available;
    peers.missing = missing;
    peers.message = missing_message(&peers.missing, &options.python);
    if let Some(msg) = &peers.message {
        let _ = writeln!(progress, "peers: {msg}");
    }
    if peers.available.is_empty() {
        report.peers = Some(peers);
        return Ok(());
    }

    let problems_dir = options.work_dir.join("problems");
    for (problem, optimum) in problems {
        let Some(file) = problem_file(problem, &problems_dir)? else {
            continue;
        };
        let out_dir = options
            .work_dir
            .join("peers")
            .join(sanitize(&problem.entry.id));
        std::fs::create_dir_all(&out_dir).map_err(|e| BenchError::io(&out_dir, e))?;
        let mut cmd = Command::new(&options.python);
        cmd.arg(&options.script)
            .arg("solve")
            .arg(&file)
            .arg("--out-dir")
            .arg(&out_dir)
            .arg("--solvers")
            .arg(peers.available.join(","))
            .arg("--time-limit")
            .arg(format!("{}", options.time_limit.as_secs_f64()))
            .arg("--runs")
            .arg(options.runs.max(1).to_string())
            .arg("--seed")
            .arg(options.seed.to_string());
        // Each solver may use its time limit on each run, plus start-up.
        let timeout = Duration::from_secs_f64(
            60.0 + 2.0
                * options.time_limit.as_secs_f64()
                * (options.runs.max(1) * peers.available.len()) as f64,
        );
        let _ = writeln!(progress, "peers on {} ...", problem.entry.id);
        let _ = progress.flush();
        let (ok, _, err) = run_with_timeout(&mut cmd, timeout).map_err(|e| BenchError::Io {
            path: options.python.clone(),
            message: e.to_string(),
        })?;
        if !ok {
            let _ = writeln!(
                progress,
                "peers on {} failed: {}",
                problem.entry.id,
                err.trim()
            );
        }
        for solver in &peers.available {
            let row = read_peer(
                problem,
                optimum.as_ref(),
                solver,
                &out_dir.join(format!("{solver}.json")),
                &err,
            );
            let _ = writeln!(
                progress,
                "        {solver}: {}{}",
                row.outcome.as_str(),
                row.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
            peers.results.push(row);
        }
    }
    compare(report, &peers, problems);
    report.peers = Some(peers);
    Ok(())
}

fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads and re-evaluates one peer result.
fn read_peer(
    problem: &BenchProblem,
    optimum: Option<&KnownOptimum>,
    solver: &str,
    path: &Path,
    stderr: &str,
) -> PeerRow {
    let mut row = PeerRow {
        problem: problem.entry.id.clone(),
        solver: solver.to_string(),
        outcome: Outcome::Error,
        reason: None,
        runs: 0,
        wall_time_s: None,
        objective_reported: None,
        objective: None,
        gap: None,
        max_violation: None,
        feasible: None,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(_) => {
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            row.reason = Some(format!("no result written; {last}"));
            return row;
        }
    };
    let file: PeerFile = match serde_json::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            row.reason = Some(format!("unreadable result {}: {e}", path.display()));
            return row;
        }
    };
    let extra = file.peer.unwrap_or_default();
    if let Some(r) = extra.refused {
        row.outcome = Outcome::Refused;
        row.reason = Some(r);
        return row;
    }
    if let Some(e) = extra.error {
        row.reason = Some(e);
        return row;
    }
    let Some(allocation) = file.allocation else {
        row.reason = Some("the result has no allocation".to_string());
        return row;
    };
    let x = match (Allocation { allocation }).to_flat(&problem.compiled) {
        Ok(x) => x,
        Err(e) => {
            row.reason = Some(format!("allocation does not fit the problem: {e}"));
            return row;
        }
    };
    let compiled = &problem.compiled;
    let objective = compiled.objective_value(&x);
    let violation = compiled.max_violation(&x);
    let feasible = violation <= compiled.feasibility_tolerance();
    row.runs = extra.wall_times_s.len();
    row.wall_time_s = Stats::of(&extra.wall_times_s);
    row.objective_reported = file.objective;
    row.objective = Some(objective);
    row.gap = optimum.map(|o| o.signed_gap(objective));
    row.max_violation = Some(violation);
    row.feasible = Some(feasible);
    if !feasible {
        row.outcome = Outcome::Fail;
        row.reason = Some(format!(
            "infeasible by Atlas's evaluation (max violation {violation:.3e}){}",
            file.status
                .map(|s| format!("; peer status {s}"))
                .unwrap_or_default()
        ));
    } else if let Some(reported) = file.objective {
        // The peer's model must agree with Atlas's on its own point, else its timing
        // compares a different problem.
        if (reported - objective).abs() > 1e-6 * objective.abs().max(1.0) {
            row.outcome = Outcome::Fail;
            row.reason = Some(format!(
                "the peer's model disagrees with Atlas's: reported {reported}, re-evaluated {objective}"
            ));
        } else {
            row.outcome = Outcome::Ok;
        }
    } else {
        row.outcome = Outcome::Ok;
    }
    row
}

/// Fills each Atlas row's speed ratio to the fastest peer that reached its objective.
fn compare(
    report: &mut Report,
    peers: &PeersReport,
    problems: &[(BenchProblem, Option<KnownOptimum>)],
) {
    for row in &mut report.results {
        let Some(t) = &row.timing else { continue };
        let Some((problem, _)) = problems.iter().find(|(p, _)| p.entry.id == row.problem) else {
            continue;
        };
        let sense = Sense::of(&problem.compiled);
        let atlas = t.objective.median;
        let slack = SAME_QUALITY * atlas.abs().max(1.0);
        let best = peers
            .results
            .iter()
            .filter(|p| p.problem == row.problem && p.outcome == Outcome::Ok)
            .filter_map(|p| Some((p, p.objective?, p.wall_time_s?.median)))
            .filter(|(_, obj, _)| match sense {
                Sense::Maximize => *obj >= atlas - slack,
                Sense::Minimize => *obj <= atlas + slack,
            })
            .min_by(|a, b| a.2.total_cmp(&b.2));
        row.speed_vs_best_peer = best.map(|(p, _, time)| PeerComparison {
            peer: p.solver.clone(),
            peer_time_s: time,
            ratio: time / t.wall_time_s.median.max(1e-9),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Outcome, ResultRow, Stats, Timing};
    use crate::suite::{Entry, Family, Source};

    fn quickstart() -> BenchProblem {
        Entry {
            id: "quickstart".into(),
            aliases: vec![],
            family: Family::Example,
            source: Source::File("../../examples/problems/quickstart.toml".into()),
            optimum: None,
        }
        .build()
        .unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("atlas-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    // A feasible split of quickstart's budget (within every channel's bounds, digital
    // above its 30% share); OBJ is replaced by the objective the test wants reported.
    const GOOD: &str = r#"{"optimizer": "scipy-slsqp", "status": "converged", "objective": OBJ,
        "allocation": {"tv": [400000.0], "digital": [450000.0], "radio": [150000.0]},
        "peer": {"wall_times_s": [0.3, 0.1, 0.2]}}"#;

    #[test]
    fn peer_allocations_are_re_evaluated_by_atlas() {
        let p = quickstart();
        let x = [400_000.0, 450_000.0, 150_000.0];
        let objective = p.compiled.objective_value(&x);
        let dir = temp_dir("peer-read");
        let good = dir.join("good.json");
        std::fs::write(&good, GOOD.replace("OBJ", &objective.to_string())).unwrap();
        let row = read_peer(&p, None, "scipy-slsqp", &good, "");
        assert_eq!(row.outcome, Outcome::Ok, "{row:?}");
        assert_eq!(row.objective, Some(objective));
        assert_eq!(row.wall_time_s.unwrap().median, 0.2);
        assert_eq!(row.runs, 3);

        // A peer whose own model disagrees with Atlas's is not trusted.
        let lying = dir.join("lying.json");
        std::fs::write(&lying, GOOD.replace("OBJ", &(objective * 1.01).to_string())).unwrap();
        let row = read_peer(&p, None, "scipy-slsqp", &lying, "");
        assert_eq!(row.outcome, Outcome::Fail);
        assert!(row.reason.unwrap().contains("disagrees"));

        // Spending past the exact budget is infeasible, whatever the peer says.
        let over = dir.join("over.json");
        std::fs::write(
            &over,
            GOOD.replace("OBJ", "1.0").replace("150000.0", "250000.0"),
        )
        .unwrap();
        let row = read_peer(&p, None, "scipy-slsqp", &over, "");
        assert_eq!(row.outcome, Outcome::Fail);
        assert!(row.reason.unwrap().contains("infeasible"));
        assert!(row.max_violation.unwrap() >= 99_999.0);

        // Refusals and a missing file.
        let refused = dir.join("refused.json");
        std::fs::write(
            &refused,
            r#"{"optimizer": "highs", "peer": {"refused": "continuous"}}"#,
        )
        .unwrap();
        assert_eq!(
            read_peer(&p, None, "highs", &refused, "").outcome,
            Outcome::Refused
        );
        let row = read_peer(
            &p,
            None,
            "cmaes",
            &dir.join("none.json"),
            "Traceback\nKeyError: x\n",
        );
        assert_eq!(row.outcome, Outcome::Error);
        assert!(row.reason.unwrap().contains("KeyError"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_packages_give_the_pip_line() {
        let check: CheckOutput = serde_json::from_str(
            r#"{"python": "3.11.7", "solvers": {
                "scipy-slsqp": {"available": true, "missing": []},
                "optuna-tpe": {"available": false, "missing": ["optuna"]},
                "highs": {"available": false, "missing": ["highspy", "scipy"]}}}"#,
        )
        .unwrap();
        let (available, missing) = classify(&check, &[]);
        assert_eq!(available, vec!["scipy-slsqp".to_string()]);
        assert_eq!(missing.len(), 2);
        let msg = missing_message(&missing, Path::new("/venv/bin/python")).unwrap();
        assert!(msg.contains("optuna-tpe, highs"), "{msg}");
        assert!(
            msg.contains("/venv/bin/python -m pip install highspy optuna scipy"),
            "{msg}"
        );
        // Only the wanted ones count.
        let (available, missing) = classify(&check, &["highs".to_string()]);
        assert!(available.is_empty());
        assert_eq!(missing[0].solver, "highs");
        assert!(missing_message(&[], Path::new("python3")).is_none());
    }

    #[test]
    fn without_python_the_atlas_report_stands() {
        let mut report = crate::report::tests::empty_report();
        let options = PeerOptions {
            python: PathBuf::from("/nonexistent/python3"),
            script: PathBuf::from("../../benches/peers/peers.py"),
            solvers: vec![],
            time_limit: Duration::from_secs(1),
            runs: 1,
            seed: 0,
            work_dir: temp_dir("no-python"),
        };
        run(&mut report, &[], &options, &mut std::io::sink()).unwrap();
        let peers = report.peers.unwrap();
        assert!(peers.results.is_empty());
        let msg = peers.message.unwrap();
        assert!(msg.contains("cannot run Python"), "{msg}");
        assert!(
            msg.contains("pip install numpy scipy optuna cmaes cvxpy clarabel highspy"),
            "{msg}"
        );
    }

    #[test]
    fn the_fastest_peer_of_equal_quality_sets_the_ratio() {
        let p = quickstart();
        let atlas_objective = 1_585_364.822_896_572;
        let mut report = crate::report::tests::empty_report();
        let stats = |v: f64| Stats {
            median: v,
            min: v,
            max: v,
        };
        report.results.push(ResultRow {
            problem: "quickstart".into(),
            optimizer: "lbfgs".into(),
            outcome: Outcome::Ok,
            reason: None,
            check: None,
            timing: Some(Timing {
                runs: 1,
                statuses: vec!["converged".into()],
                wall_time_s: stats(0.001),
                objective: stats(atlas_objective),
                gap: None,
                evaluations: 10.0,
                gradient_evaluations: 9.0,
                iterations: 8.0,
                model_time_share: 0.1,
                constraint_time_share: 0.1,
                peak_memory_mb: 5.0,
                per_run: vec![],
            }),
            speed_vs_best_peer: None,
        });
        let peer = |solver: &str, objective: f64, time: f64, outcome: Outcome| PeerRow {
            problem: "quickstart".into(),
            solver: solver.into(),
            outcome,
            reason: None,
            runs: 1,
            wall_time_s: Some(stats(time)),
            objective_reported: Some(objective),
            objective: Some(objective),
            gap: None,
            max_violation: Some(0.0),
            feasible: Some(true),
        };
        let peers = PeersReport {
            python: "python3".into(),
            python_version: None,
            available: vec![],
            missing: vec![],
            message: None,
            results: vec![
                // Fastest, but short of Atlas's objective by 1e-4: not the same quality.
                peer(
                    "optuna-tpe",
                    atlas_objective * (1.0 - 1e-4),
                    0.01,
                    Outcome::Ok,
                ),
                // Infeasible: never counts.
                peer("cmaes", atlas_objective, 0.02, Outcome::Fail),
                // Same quality within 1e-6, the faster of the two.
                peer(
                    "cvxpy-clarabel",
                    atlas_objective * (1.0 - 1e-7),
                    0.05,
                    Outcome::Ok,
                ),
                peer("scipy-slsqp", atlas_objective, 0.2, Outcome::Ok),
            ],
        };
        compare(&mut report, &peers, &[(p, None)]);
        let c = report.results[0].speed_vs_best_peer.as_ref().unwrap();
        assert_eq!(c.peer, "cvxpy-clarabel");
        assert!((c.ratio - 50.0).abs() < 1e-9);
    }
}
