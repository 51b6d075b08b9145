//! The `atlas bench` command (also what `cargo xtask bench` runs): arguments and the
//! whole run, from choosing problems to writing the files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atlas_core::Registry;

use crate::error::BenchError;
use crate::optimum::OptimaFile;
use crate::peers::{self, PeerOptions};
use crate::report::Report;
use crate::runner::{self, Options};
use crate::suite;

/// Arguments of `atlas bench` / `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Problem files to benchmark; without any, the built-in suite (example problems,
    /// generated problems, test functions).
    #[arg(value_name = "PROBLEM")]
    pub files: Vec<PathBuf>,
    /// Fewer sizes, runs and seconds: finishes in under 5 minutes on 2 cores.
    #[arg(long)]
    pub quick: bool,
    /// Only these problems: ids (`retail-q4`, `mmm-10x13`, `rastrigin-10d`), file stems,
    /// families (`examples`, `generated`, `functions`) or prefixes (`mmm-*`).
    #[arg(long, value_delimiter = ',', value_name = "P,...")]
    pub problems: Vec<String>,
    /// Only these optimizers (default: every registered one).
    #[arg(long, value_delimiter = ',', value_name = "O,...")]
    pub optimizers: Vec<String>,
    /// Timed runs per pair after the check (default 5, quick 3).
    #[arg(long, value_name = "N")]
    pub runs: Option<usize>,
    /// Also solve the problem files with the Python peers (benches/peers/peers.py).
    #[arg(long)]
    pub peers: bool,
    /// Output directory for bench.json, bench.csv, bench.svg.
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    pub out: PathBuf,
    /// Time limit of one solve in seconds (default 60, quick 2).
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<f64>,
    /// Seconds one pair may take over its check and runs (default 180, quick 5).
    #[arg(long, value_name = "SECONDS")]
    pub pair_budget: Option<f64>,
    /// Seconds the whole suite may take, peers excluded (default 7200, quick 240).
    #[arg(long, value_name = "SECONDS")]
    pub suite_budget: Option<f64>,
    /// Seed of the first run (run i uses seed + i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory of the example problems and their optima.json (default
    /// examples/problems when it exists).
    #[arg(long, value_name = "DIR")]
    pub examples: Option<PathBuf>,
    /// Optima of the given problem files, in the format of examples/problems/optima.json
    /// (default: an optima.json beside each file, if any).
    #[arg(long, value_name = "FILE")]
    pub optima: Option<PathBuf>,
    /// Replace an optimizer's gap tolerance, e.g. `--tolerance tpe=0.1` (repeatable).
    #[arg(long = "tolerance", value_name = "NAME=GAP")]
    pub tolerance: Vec<String>,
    /// Python interpreter for the peers (default $ATLAS_PYTHON, else python3).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// The peers script (default benches/peers/peers.py).
    #[arg(long, value_name = "FILE", default_value = "benches/peers/peers.py")]
    pub peers_script: PathBuf,
    /// Only these peer solvers (scipy-slsqp, scipy-trust-constr, optuna-tpe,
    /// optuna-cmaes, cmaes, cvxpy-clarabel, highs).
    #[arg(long, value_delimiter = ',', value_name = "S,...")]
    pub peer_solvers: Vec<String>,
    /// Time limit of one peer solve in seconds (default 60, quick 10).
    #[arg(long, value_name = "SECONDS")]
    pub peer_time_limit: Option<f64>,
}

fn seconds(option: &str, value: Option<f64>, default: Duration) -> Result<Duration, BenchError> {
    // (hard, issue 12: the shared check of atlas-core, bounded; 1e20 used to panic.)
    match value {
        None => Ok(default),
        Some(s) => atlas_core::limits::check_time_limit(option, s)
            .map_err(|e| BenchError::usage(option, e.reason)),
    }
}

impl BenchArgs {
    /// The runner's options from these arguments.
    pub fn options(&self) -> Result<Options, BenchError> {
        let base = if self.quick {
            Options::quick()
        } else {
            Options::full()
        };
        let runs = match self.runs {
            Some(0) => return Err(BenchError::usage("--runs", "must be at least 1")),
            Some(n) => n,
            None => base.runs,
        };
        let mut tolerances = BTreeMap::new();
        for item in &self.tolerance {
            let parsed = item
                .split_once('=')
                .and_then(|(n, v)| v.trim().parse::<f64>().ok().map(|v| (n.trim(), v)));
            match parsed {
                Some((name, gap)) if gap.is_finite() && gap >= 0.0 => {
                    tolerances.insert(name.to_string(), gap);
                }
                _ => {
                    return Err(BenchError::usage(
                        "--tolerance",
                        format!("expected NAME=GAP with GAP >= 0 (got `{item}`)"),
                    ))
                }
            }
        }
        for s in &self.peer_solvers {
            if !peers::SOLVERS.contains(&s.as_str()) {
                return Err(BenchError::usage(
                    "--peer-solvers",
                    format!("unknown peer `{s}`; peers: {}", peers::SOLVERS.join(", ")),
                ));
            }
        }
        Ok(Options {
            runs,
            time_limit: seconds("--time-limit", self.time_limit, base.time_limit)?,
            pair_budget: seconds("--pair-budget", self.pair_budget, base.pair_budget)?,
            suite_budget: seconds("--suite-budget", self.suite_budget, base.suite_budget)?,
            seed: self.seed,
            optimizers: self.optimizers.clone(),
            problems: self.problems.clone(),
            tolerances,
            ..base
        })
    }

    /// The problems these arguments select.
    pub fn entries(&self) -> Result<Vec<suite::Entry>, BenchError> {
        let all = if self.files.is_empty() {
            let dir = match &self.examples {
                Some(d) if d.is_dir() => Some(d.clone()),
                Some(d) => {
                    return Err(BenchError::usage(
                        "--examples",
                        format!("{} is not a directory", d.display()),
                    ))
                }
                None => Some(PathBuf::from("examples/problems")).filter(|d| d.is_dir()),
            };
            suite::builtin(dir.as_deref(), self.quick)?
        } else {
            let optima = self.optima.as_deref().map(OptimaFile::read).transpose()?;
            suite::files(&self.files, optima.as_ref())?
        };
        suite::select(all, &self.problems)
    }
}

/// Runs the benchmark: prints the table to `out`, progress to `progress`, writes the
/// files, and returns the report.
pub fn run(
    args: &BenchArgs,
    registry: &Registry,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<Report, BenchError> {
    let started = Instant::now();
    let options = args.options()?;
    let entries = args.entries()?;
    if args.files.is_empty() && args.examples.is_none() && !Path::new("examples/problems").is_dir()
    {
        let _ = writeln!(
            progress,
            "note: examples/problems not found here; the example problems are left out (run from the repository root or pass --examples DIR)"
        );
    }
    if cfg!(debug_assertions) {
        let _ = writeln!(
            progress,
            "note: this is a debug build; timings mean little (use `cargo xtask bench` or a release build)"
        );
    }
    let mut report = runner::run(registry, &entries, &options, progress)?;
    if args.peers {
        let peer_options = PeerOptions {
            python: args.python.clone().unwrap_or_else(peers::default_python),
            script: args.peers_script.clone(),
            solvers: args.peer_solvers.clone(),
            time_limit: seconds(
                "--peer-time-limit",
                args.peer_time_limit,
                Duration::from_secs(if args.quick { 10 } else { 60 }),
            )?,
            // Peers are slow (black-box searches use their whole time limit): one run in
            // quick mode, at most three otherwise.
            runs: if args.quick { 1 } else { options.runs.min(3) },
            seed: options.seed,
            work_dir: args.out.clone(),
        };
        // The problems again, with the references the runner used.
        let mut problems = Vec::new();
        for e in &entries {
            let optimum = report
                .problems
                .iter()
                .find(|p| p.id == e.id)
                .and_then(|p| p.optimum.clone());
            problems.push((e.build()?, optimum));
        }
        peers::run(&mut report, &problems, &peer_options, progress)?;
    }
    report.summary.total_time_s = started.elapsed().as_secs_f64();
    report
        .write_table(out)
        .map_err(|e| BenchError::io(Path::new("<stdout>"), e))?;
    let files = report.write_files(&args.out)?;
    let _ = writeln!(
        progress,
        "wrote {}",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(report)
}
