//! `atlas sweep` (contract `scenarios.md`, section 2) and the result cache of `atlas
//! optimize --cache`: thin fronts on `atlas-sweep`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atlas_core::problem::Problem;
use atlas_core::{
    Compiled, Error, InputError, OptimizationResult, Registry, SolveOptions, SolverConfig,
};
use atlas_sweep::{BudgetGrid, Cache, Progress, Sweep, SweepResult};
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::format::{fmt_amount, fmt_duration};

/// Output format of `atlas sweep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SweepFormat {
    /// A readable table.
    Table,
    /// The sweep result JSON.
    Json,
    /// One row per scenario.
    Csv,
}

/// Arguments of `atlas sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// A problem file (with --budgets) or a scenario file (a `base` and `[[scenarios]]`).
    input: PathBuf,
    /// Budget points: START:STOP:N (evenly spaced, both included; `x` marks a factor of
    /// the base budget, e.g. 0.5x:2x:16) or a comma list (1e6,1.5e6,2e6).
    #[arg(long, value_name = "SPEC")]
    budgets: Option<String>,
    /// Optimizer for every scenario (default: the scenario file's, else `auto` or lbfgs).
    #[arg(long, short = 'O')]
    optimizer: Option<String>,
    /// Set one optimizer setting, e.g. `--set max_iterations=50` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Threads solving scenarios at once (default: all cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Result cache: a folder, redis://HOST:PORT[/DB], memory, or off.
    #[arg(long, value_name = "DIR|redis://HOST:PORT|off", default_value = "off")]
    cache: String,
    /// Solve every scenario from a cold start.
    #[arg(long)]
    no_warm_start: bool,
    /// Time limit of each scenario's solve, in seconds.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    time_limit: Option<f64>,
    /// Seed for optimizers that draw random numbers.
    #[arg(long)]
    seed: Option<u64>,
    /// Output on stdout.
    #[arg(long, value_enum, default_value = "table")]
    format: SweepFormat,
    /// Write the sweep result to this file (JSON; CSV when it ends in .csv), atomically.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Draw the budget response curve (objective and marginal return against budget) and
    /// each channel's total against budget to this SVG file, atomically.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// No progress on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// A time limit given in seconds on the command line, checked.
pub(crate) fn time_limit(seconds: Option<f64>) -> Result<Option<Duration>, Error> {
    // (hard, issue 12: the shared check of atlas-core; 1e20 used to panic here.)
    seconds
        .map(|t| atlas_core::limits::check_time_limit("--time-limit", t))
        .transpose()
        .map_err(Error::from)
}

/// Whether a document is a scenario file rather than a problem file.
fn is_scenario_file(path: &Path) -> Result<bool, Error> {
    let value: Value = atlas_core::problem::read_document(path)?;
    Ok(value.get("scenarios").is_some() || value.get("base").is_some())
}

/// Runs `atlas sweep`.
pub(crate) fn run(args: SweepArgs, registry: &Registry, out: &mut dyn Write) -> Result<(), Error> {
    let limit = time_limit(args.time_limit)?;
    if args.jobs == Some(0) {
        return Err(InputError::new("--jobs", "must be >= 1 (got 0)").into());
    }
    let grid = args.budgets.as_deref().map(BudgetGrid::parse).transpose()?;
    // (hard, issue 12: outputs that cannot be written are reported before the solves.)
    for path in args.output.iter().chain(&args.plot) {
        crate::check_output(path)?;
    }
    let mut sweep = if is_scenario_file(&args.input)? {
        Sweep::from_scenario_file(registry, &args.input)?
    } else {
        if grid.is_none() {
            return Err(InputError::new(
                "--budgets",
                format!(
                    "required with a problem file ({}): give budget points such as 0.5x:2x:16, or pass a scenario file",
                    args.input.display()
                ),
            )
            .into());
        }
        Sweep::from_problem_file(registry, &args.input)?
    };
    if let Some(grid) = grid {
        sweep = sweep.budgets(grid);
    }
    // (models) Scenarios load the base problem's `[model]` (relative paths from its folder).
    let base_file = if is_scenario_file(&args.input)? {
        atlas_sweep::ScenarioFile::from_path(&args.input)?.base_path(&args.input)
    } else {
        args.input.clone()
    };
    sweep = sweep.compile_with(std::sync::Arc::new(move |p| {
        atlas_models::compile(p, Some(&base_file))
    }));
    let name = match (sweep.file_optimizer(), args.optimizer.as_deref()) {
        (Some(file), Some(cli)) if file != cli => {
            return Err(InputError::new(
                "--optimizer",
                format!("the scenario file names optimizer `{file}` but --optimizer is `{cli}`: drop one of them"),
            )
            .into())
        }
        (_, Some(cli)) => cli.to_string(),
        (Some(file), None) => file.to_string(),
        (None, None) => atlas_sweep::default_optimizer(registry),
    };
    let config = crate::resolve_config(registry, Some(&name), None, &args.set)?;
    sweep = sweep.config(config).warm_start(!args.no_warm_start);
    if let Some(t) = limit {
        sweep = sweep.time_limit(t);
    }
    if let Some(seed) = args.seed {
        sweep = sweep.seed(seed);
    }
    if let Some(jobs) = args.jobs {
        sweep = sweep.jobs(jobs);
    }
    if let Some(cache) = Cache::from_spec(&args.cache)? {
        sweep = sweep.cache(Arc::new(cache));
    }
    let ticker = (!args.quiet).then(|| Ticker::start(std::io::stderr().is_terminal()));
    if let Some(t) = &ticker {
        let state = t.state.clone();
        sweep = sweep.on_progress(Arc::new(move |p: &Progress| {
            *state.lock().unwrap_or_else(|e| e.into_inner()) = Some(*p);
        }));
    }
    let result = sweep.run();
    if let Some(t) = ticker {
        t.stop();
    }
    let result = result?;
    if let Some(path) = &args.output {
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if is_csv {
            atlas_core::files::write_atomically(path, &result.to_csv()).map_err(|e| {
                Error::Write {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
        } else {
            result.write_json(path)?;
        }
    }
    if let Some(plot) = &args.plot {
        let svg = atlas_report::SweepFile::from_serialize(&result)
            .and_then(|sweep| atlas_report::sweep_svg(&sweep))
            .map_err(|e| Error::Solver {
                optimizer: result.optimizer.clone(),
                reason: format!("cannot draw the sweep: {e}"),
            })?;
        atlas_report::write_file(plot, &svg).map_err(|e| Error::Write {
            path: plot.clone(),
            message: e.to_string(),
        })?;
    }
    let written = match args.format {
        SweepFormat::Json => writeln!(out, "{}", result.to_json()),
        SweepFormat::Csv => write!(out, "{}", result.to_csv()),
        SweepFormat::Table => print_table(out, &result),
    };
    written.map_err(crate::stdout_error)?;
    if result.errors.is_empty() {
        Ok(())
    } else {
        let total = result.errors.len() + result.scenarios.len();
        let names: Vec<String> = result
            .errors
            .iter()
            .take(5)
            .map(|e| format!("{} ({})", e.name, e.kind))
            .collect();
        Err(Error::Solver {
            optimizer: result.optimizer.clone(),
            reason: format!(
                "{} of {total} scenarios failed: {}{} (see `errors` in the result)",
                result.errors.len(),
                names.join(", "),
                if result.errors.len() > 5 { ", ..." } else { "" }
            ),
        })
    }
}

/// The progress line: silent for the first second, then redrawn in place on a terminal
/// (every 0.2 s) or printed every 2 s otherwise.
struct Ticker {
    state: Arc<Mutex<Option<Progress>>>,
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Ticker {
    fn start(terminal: bool) -> Self {
        let state: Arc<Mutex<Option<Progress>>> = Arc::new(Mutex::new(None));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let every = if terminal {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(2)
            };
            if stopped.recv_timeout(Duration::from_secs(1)).is_ok() {
                return;
            }
            loop {
                let p = *shared.lock().unwrap_or_else(|e| e.into_inner());
                let elapsed = started.elapsed();
                let line = match p {
                    Some(p) => {
                        let left = p
                            .remaining()
                            .map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
                        let failed = if p.failed > 0 {
                            format!(", {} failed", p.failed)
                        } else {
                            String::new()
                        };
                        format!(
                            "sweep: {}/{} scenarios done{failed}, {:.1} s elapsed, about {left} left",
                            p.done,
                            p.total,
                            elapsed.as_secs_f64()
                        )
                    }
                    None => format!("sweep: starting, {:.1} s elapsed", elapsed.as_secs_f64()),
                };
                let mut err = std::io::stderr().lock();
                if terminal {
                    let _ = write!(err, "\r\x1b[2K{line}");
                } else {
                    let _ = writeln!(err, "{line}");
                }
                let _ = err.flush();
                if stopped.recv_timeout(every).is_ok() {
                    break;
                }
            }
            // Reached only after at least one line was drawn.
            let mut err = std::io::stderr().lock();
            if terminal {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = writeln!(
                err,
                "sweep: done in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        });
        Self {
            state,
            stop,
            thread,
        }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Scenarios with their budget, status, objective, marginal return, warm start, cache and
/// time; the channels' totals too when there are at most eight.
fn print_table(out: &mut dyn Write, r: &SweepResult) -> std::io::Result<()> {
    let total = r.scenarios.len() + r.errors.len();
    writeln!(
        out,
        "{} · sweep of {total} scenario{} · optimizer {} · {}",
        r.base,
        if total == 1 { "" } else { "s" },
        r.optimizer,
        fmt_duration(r.wall_time_s)
    )?;
    writeln!(out)?;
    let channels = r.channels();
    let show_channels = channels.len() <= 8;
    let width = r
        .scenarios
        .iter()
        .map(|s| s.name.chars().count())
        .chain(r.errors.iter().map(|e| e.name.chars().count()))
        .max()
        .unwrap_or(8)
        .max(8);
    let mut header = format!(
        "{:<width$}  {:>14}  {:<10}  {:>14}  {:>9}  {:>4}  {:>5}  {:>9}",
        "scenario", "budget", "status", "objective", "marginal", "warm", "cache", "time"
    );
    if show_channels {
        for c in &channels {
            header.push_str(&format!("  {:>12}", c));
        }
    }
    writeln!(out, "{header}")?;
    for s in &r.scenarios {
        let mut line = format!(
            "{:<width$}  {:>14}  {:<10}  {:>14}  {:>9}  {:>4}  {:>5}  {:>9}",
            s.name,
            fmt_amount(s.budget),
            s.status.as_str(),
            fmt_amount(s.objective),
            s.marginal_return
                .map_or("-".to_string(), |m| format!("{m:.4}")),
            if s.warm_start { "yes" } else { "no" },
            s.cache.as_str(),
            fmt_duration(s.wall_time_s)
        );
        if show_channels {
            for c in &channels {
                line.push_str(&format!(
                    "  {:>12}",
                    s.totals.get(*c).map_or("-".to_string(), |v| fmt_amount(*v))
                ));
            }
        }
        writeln!(out, "{line}")?;
    }
    if !r.errors.is_empty() {
        writeln!(out)?;
        writeln!(out, "failed ({}):", r.errors.len())?;
        for e in &r.errors {
            writeln!(out, "  {:<width$}  {:<12}  {}", e.name, e.kind, e.message)?;
        }
    }
    Ok(())
}

/// `atlas optimize` through the result cache: the problem is read once (for the key and
/// for the model), and the cache answers or stores.
pub(crate) fn optimize_cached(
    registry: &Registry,
    path: &Path,
    spec: &str,
    config: &dyn SolverConfig,
    options: SolveOptions,
) -> Result<(Compiled, OptimizationResult), Error> {
    let cache = Cache::from_spec(spec)?;
    let problem = Problem::from_path(path)?;
    let compiled = atlas_models::compile(&problem, Some(path))?;
    let result = atlas_sweep::solve_cached(
        registry,
        cache.as_ref(),
        &problem,
        &compiled,
        config,
        options,
    )?;
    Ok((compiled, result))
}
