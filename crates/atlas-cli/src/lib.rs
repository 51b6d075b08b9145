#![doc = include_str!("../README.md")]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use atlas_core::{
    Allocation, Compiled, Error, Evaluation, Frequency, InputError, Objective, OptimizationResult,
    Registry, Scaled, SolveOptions, SolverConfig,
};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value};

#[cfg(feature = "server")]
mod client;
mod format;
mod profile;
mod progress;
mod report;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod store_jobs;
mod surrogate;
mod sweep;
#[cfg(feature = "server")]
mod worker;

use format::{fmt_amount, fmt_duration, fmt_ratio, pad_right};

/// Budget allocation across marketing channels and periods.
#[derive(Debug, Parser)]
#[command(name = "atlas", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Output format of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A readable table.
    Table,
    /// JSON.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find the best allocation of a problem file.
    Optimize {
        /// Problem file (.toml, .json, .yaml).
        problem: PathBuf,
        /// Optimizer to use (see `atlas list`).
        #[arg(long, short = 'O')]
        optimizer: Option<String>,
        /// Optimizer settings file with an `optimizer = "name"` key and settings.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Set one optimizer setting, e.g. `--set max_iterations=50` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Seed for optimizers that draw random numbers.
        #[arg(long)]
        seed: Option<u64>,
        /// Stop after this many seconds (status `time_limit`); at most one year.
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
        time_limit: Option<f64>,
        /// Write the result JSON to this file.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Output on stdout.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        /// No progress or notes on stderr.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Result cache: a folder, redis://HOST:PORT[/DB], memory, or off.
        #[arg(long, value_name = "DIR|redis://HOST:PORT|off", default_value = "off")]
        cache: String,
        /// Solve this fitted problem (`atlas surrogate`) first, then polish from its
        /// optimum on the true model; the objective reported is the true model's.
        #[arg(long, value_name = "FITTED")]
        surrogate: Option<PathBuf>,
    },
    /// Solve many variants of a problem: budget points (--budgets) or a scenario file.
    Sweep(sweep::SweepArgs),
    /// Objective and violations of a given allocation (a result file or
    /// `{"allocation": {...}}`).
    Evaluate {
        /// Problem file.
        problem: PathBuf,
        /// Allocation file (JSON, TOML or YAML with an `allocation` table).
        #[arg(long)]
        allocation: PathBuf,
        /// Output on stdout.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Check a problem file: schema, values, and whether its rules admit an allocation.
    Validate {
        /// Problem file.
        problem: PathBuf,
    },
    /// The optimizers of this build, their capabilities and default settings.
    List {
        /// Output on stdout.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Benchmark every optimizer of this build on problem files (default: the built-in
    /// suite): correctness check, timed runs, bench.json / bench.csv / bench.svg.
    Bench(atlas_bench::BenchArgs),
    /// A self-contained HTML report (inline SVG charts, no network) of a result or a
    /// sweep result: allocation, flighting, response curves (with `--problem`),
    /// certificate, metrics; for a sweep the budget response curve.
    Report(report::ReportArgs),
    /// Measure the response model: time of a value, a gradient and a batch of 64 over
    /// random feasible plans, peak memory, concavity, the optimizers that take it.
    Profile(profile::ProfileArgs),
    /// Fit the built-in curve model to an external model over space-filling feasible
    /// plans; writes the fitted problem when the fit is good (R², held-out error).
    Surrogate(surrogate::SurrogateArgs),
    /// The HTTP service: jobs and sweeps over a JSON API, on durable storage.
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
    /// A worker without the HTTP API: claims jobs and sweep scenarios from a storage
    /// shared with `atlas serve` (PostgreSQL for many machines) and runs them.
    #[cfg(feature = "server")]
    Worker(worker::WorkerArgs),
    /// Send a problem to a running service (`--wait`: print its result).
    #[cfg(feature = "server")]
    Submit(client::SubmitArgs),
    /// List a running service's jobs (--server), or list, show and retry the jobs of a
    /// storage directly (--storage, for operators).
    #[cfg(feature = "server")]
    Jobs(client::JobsArgs),
}

/// Runs the command line with the process arguments; returns the exit status
/// (0 success, 2 bad input, 1 other failure).
pub fn main(registry: Registry) -> ExitCode {
    main_with_args(registry, std::env::args_os())
}

/// Runs the command line with the given arguments (the first is the program name).
pub fn main_with_args<I, T>(registry: Registry, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let command = Cli::command().after_help(help_footer(&registry));
    let cli = match command
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    #[cfg(feature = "server")]
    let cli = match cli.command {
        // The service owns the registry for its whole life (its workers share it).
        Command::Serve(args) => {
            return match serve::run(args, registry) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Worker(args) => {
            return match worker::run(args, registry) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        command => Cli { command },
    };
    let mut stdout = std::io::stdout().lock();
    let outcome =
        run(cli, &registry, &mut stdout).and_then(|()| stdout.flush().map_err(stdout_error));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of a pipe went away (`atlas list | head -1`): nothing is left to
        // say to anyone, so end quietly.
        Err(e) if is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = stdout.flush();
            // Not `eprintln!`, which panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// What [`stdout_error`] says when the reader of stdout has gone.
const CLOSED_PIPE: &str = "the reader of the output closed the pipe";

fn is_closed_pipe(e: &Error) -> bool {
    matches!(e, Error::Write { path, message } if path.as_os_str() == STDOUT && message == CLOSED_PIPE)
}

const STDOUT: &str = "<stdout>";

/// The end of `atlas --help`: the default optimizer of this build, the exit statuses and
/// where the file format is documented.
fn help_footer(registry: &Registry) -> String {
    format!(
        "Default optimizer: `{}` (see `atlas list` for all of this build's).\n\
         Exit status: 0 success; 2 bad input (problem, settings, unknown optimizer, a feature \
         the optimizer cannot honour, rules proven infeasible, an unreadable file); 1 any other \
         failure (a plan that breaks the rules without such a proof, an output that cannot be \
         written, a solver failure).\n\
         Problem and result files: docs/problem-format.md (limits on sizes in its section 7).",
        default_optimizer(registry)
    )
}

/// Runs a parsed command, writing its output to `out`.
pub fn run(cli: Cli, registry: &Registry, out: &mut dyn Write) -> Result<(), Error> {
    match cli.command {
        Command::Optimize {
            problem,
            optimizer,
            config,
            set,
            seed,
            time_limit,
            output,
            format,
            quiet,
            cache,
            surrogate,
        } => {
            let config = resolve_config(registry, optimizer.as_deref(), config.as_deref(), &set)?;
            // One solve at a time in a process of its own: its peak memory alone.
            atlas_core::memory::reset_before_each_solve(true);
            if let Some(path) = &output {
                check_output(path)?;
            }
            let mut options = SolveOptions {
                seed,
                ..Default::default()
            };
            if let Some(t) = time_limit {
                options.time_limit = Some(atlas_core::limits::check_time_limit("--time-limit", t)?);
            }
            if !quiet {
                options.observers.push((
                    Frequency::Always,
                    Box::new(progress::Progress::new(
                        config.name(),
                        std::io::stderr().is_terminal(),
                    )),
                ));
            }
            if let Some(fitted) = &surrogate {
                // (models) The fitted problem's optimum is the true model's warm start.
                let fitted = Compiled::from_path(fitted)?;
                let first =
                    if fitted.model().is_concave() == Some(true) && registry.contains("convex") {
                        registry.config("convex", Map::new())?
                    } else {
                        resolve_config(registry, None, None, &[])?
                    };
                let solved = registry.optimize(&fitted, first.as_ref(), SolveOptions::default())?;
                options.start = Some(solved.flat_allocation(&fitted)?);
            }
            let (compiled, result) = if cache == "off" {
                let compiled = atlas_models::compile_path(&problem)?;
                let result = registry.optimize(&compiled, config.as_ref(), options)?;
                (compiled, result)
            } else {
                sweep::optimize_cached(registry, &problem, &cache, config.as_ref(), options)?
            };
            if !quiet {
                if let Some(note) = local_optimum_note(&compiled, config.as_ref(), registry) {
                    let _ = writeln!(std::io::stderr(), "{note}");
                }
            }
            // A plan that breaks the rules is no answer: no result file, a non-zero exit.
            compiled.check_result(&result)?;
            if let Some(path) = &output {
                write_atomically(path, &to_json(&result)?)?;
            }
            match format {
                OutputFormat::Json => {
                    writeln!(out, "{}", to_json(&result)?).map_err(stdout_error)?
                }
                OutputFormat::Table => {
                    print_result(out, &compiled, &result).map_err(stdout_error)?
                }
            }
            Ok(())
        }
        Command::Evaluate {
            problem,
            allocation,
            format,
        } => {
            let compiled = atlas_models::compile_path(&problem)?;
            let x = Allocation::from_path(&allocation)?
                .to_flat(&compiled)
                .map_err(|e| e.in_file(Some(&allocation)))?;
            let evaluation = Evaluation::of(&compiled, &x);
            match format {
                OutputFormat::Json => {
                    let text = serde_json::to_string_pretty(&evaluation).map_err(json_error)?;
                    writeln!(out, "{text}").map_err(stdout_error)?;
                }
                OutputFormat::Table => {
                    print_evaluation(out, &compiled, &x, &evaluation).map_err(stdout_error)?
                }
            }
            Ok(())
        }
        Command::Validate { problem } => {
            let compiled = atlas_models::compile_path(&problem)?;
            let scaled = Scaled::new(&compiled)?;
            print_validation(out, &problem, &compiled, &scaled, registry).map_err(stdout_error)
        }
        Command::List { format } => {
            let list = registry.list();
            match format {
                OutputFormat::Json => {
                    let text = serde_json::to_string_pretty(&list).map_err(json_error)?;
                    writeln!(out, "{text}").map_err(stdout_error)?;
                }
                OutputFormat::Table => print_list(out, registry).map_err(stdout_error)?,
            }
            Ok(())
        }
        Command::Sweep(args) => sweep::run(args, registry, out),
        Command::Report(args) => report::run(&args, out),
        Command::Profile(args) => profile::run(&args, registry, out),
        Command::Surrogate(args) => surrogate::run(&args, out),
        #[cfg(feature = "server")]
        Command::Serve(_) => Err(Error::Solver {
            optimizer: "serve".into(),
            reason: "`atlas serve` runs through `atlas_cli::main`, which hands it the registry"
                .into(),
        }),
        #[cfg(feature = "server")]
        Command::Worker(_) => Err(Error::Solver {
            optimizer: "worker".into(),
            reason: "`atlas worker` runs through `atlas_cli::main`, which hands it the registry"
                .into(),
        }),
        #[cfg(feature = "server")]
        Command::Submit(args) => client::submit(&args, out),
        #[cfg(feature = "server")]
        Command::Jobs(args) => client::jobs(&args, out),
        Command::Bench(args) => {
            // The runs are one after another: each one's peak memory alone.
            atlas_core::memory::reset_before_each_solve(true);
            let report = atlas_bench::run_cli(&args, registry, out, &mut std::io::stderr())?;
            if report.all_passed() {
                Ok(())
            } else {
                Err(Error::Solver {
                    optimizer: "bench".to_string(),
                    reason: format!(
                        "{} pair(s) failed the correctness check and {} returned errors (see the table and bench.json)",
                        report.summary.failed, report.summary.errors
                    ),
                })
            }
        }
    }
}

/// A failure to write stdout: not the input's fault (exit status 1), and a closed pipe
/// ends the program quietly.
pub(crate) fn stdout_error(e: std::io::Error) -> Error {
    Error::Write {
        path: PathBuf::from(STDOUT),
        message: if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED_PIPE.to_string()
        } else {
            e.to_string()
        },
    }
}

pub(crate) fn json_error(e: serde_json::Error) -> Error {
    Error::Solver {
        optimizer: String::new(),
        reason: format!("cannot serialize the result: {e}"),
    }
}

fn to_json(result: &OptimizationResult) -> Result<String, Error> {
    serde_json::to_string_pretty(result).map_err(json_error)
}

/// The result file, with no partial file left on failure; a symlink, FIFO or device is
/// written through (see [`atlas_core::files::write_atomically`]).
pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    atlas_core::files::write_atomically(path, &format!("{text}\n")).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// An `--output` that cannot be written, reported before the solve rather than after it.
pub(crate) fn check_output(path: &Path) -> Result<(), Error> {
    atlas_core::files::check_writable(path).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The configuration from `--optimizer`, `--config` and `--set`, checked.
pub(crate) fn resolve_config(
    registry: &Registry,
    optimizer: Option<&str>,
    config_file: Option<&Path>,
    sets: &[String],
) -> Result<Box<dyn SolverConfig>, Error> {
    let mut settings = Map::new();
    let mut name = optimizer.map(str::to_string);
    if let Some(path) = config_file {
        let value: Value = atlas_core::problem::read_document(path)?;
        let Value::Object(map) = value else {
            return Err(InputError::new(
                "",
                "an optimizer configuration must be a table of settings",
            )
            .in_file(Some(path))
            .into());
        };
        match (map.get("optimizer").and_then(Value::as_str), &name) {
            (Some(file_name), Some(cli_name)) if file_name != cli_name => {
                return Err(InputError::new(
                    "optimizer",
                    format!("the file configures `{file_name}` but --optimizer is `{cli_name}`"),
                )
                .in_file(Some(path))
                .into());
            }
            (Some(file_name), None) => name = Some(file_name.to_string()),
            _ => {}
        }
        settings = map;
        if settings.contains_key("optimizer") {
            // Deserialize the file by name through typetag (checks the settings too).
            registry.config_from_value(Value::Object(settings.clone()))?;
        }
    }
    let name = name.unwrap_or_else(|| default_optimizer(registry));
    for item in sets {
        let Some((key, raw)) = item.split_once('=') else {
            return Err(
                InputError::new("--set", format!("expected KEY=VALUE (got `{item}`)")).into(),
            );
        };
        let key = key.trim();
        let raw = raw.trim();
        // Numbers, booleans, null, arrays and quoted strings as JSON; anything else as text.
        let value =
            serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        settings.insert(key.to_string(), value);
    }
    registry.config(&name, settings)
}

/// A warning for a local gradient method on S-shaped curves: its answer is a local
/// optimum that may be far from the global one, and nothing in the result says so.
/// Names the channels and what finds the global optimum. `None` when it does not apply.
fn local_optimum_note(
    compiled: &Compiled,
    config: &dyn SolverConfig,
    registry: &Registry,
) -> Option<String> {
    let caps = config.capabilities();
    if !caps.needs_gradient || caps.proves_bound {
        return None;
    }
    let mmm = compiled.mmm()?;
    let channels: Vec<&str> = mmm
        .nonconcave_channels()
        .into_iter()
        .map(|c| compiled.layout().channels()[c].as_str())
        .collect();
    if channels.is_empty() {
        return None;
    }
    let mut remedies = Vec::new();
    if registry.contains("milp") {
        remedies.push("`--optimizer milp` (global optimum with a bound)".to_string());
    }
    let single_start = serde_json::to_value(config)
        .ok()
        .and_then(|v| v.get("multi_start").and_then(Value::as_u64))
        == Some(1);
    if single_start {
        remedies.push("`--set multi_start=16` (several starts)".to_string());
    }
    if registry.contains("cmaes") {
        remedies.push("`--optimizer cmaes`".to_string());
    }
    let mut note = format!(
        "note: S-shaped curves (hill with s > 1) on {}: `{}` returns a local optimum, which may be short of the global one",
        channels.join(", "),
        config.name()
    );
    if !remedies.is_empty() {
        note.push_str(&format!("; try {}", remedies.join(" or ")));
    }
    Some(note)
}

/// `auto` when this build has it (it picks the optimizer for each problem), else `lbfgs`,
/// else the first registered optimizer: the sweeps' rule, so that `optimize`, `sweep` and
/// `serve` default alike.
pub(crate) use atlas_sweep::default_optimizer;

fn print_result(
    out: &mut dyn Write,
    compiled: &Compiled,
    result: &OptimizationResult,
) -> std::io::Result<()> {
    let x = result
        .flat_allocation(compiled)
        .unwrap_or_else(|_| vec![0.0; compiled.layout().len()]);
    writeln!(
        out,
        "{} · optimizer {} · {}",
        result.problem,
        match &result.selected {
            Some(s) => format!("{} → {}", result.optimizer, s.optimizer),
            None => result.optimizer.clone(),
        },
        result.status
    )?;
    if let Some(s) = &result.selected {
        writeln!(out, "selected       {}: {}", s.optimizer, s.reason)?;
    }
    writeln!(out)?;
    write_channel_table(out, compiled, &x)?;
    writeln!(out)?;
    let objective_name = match compiled.objective() {
        Objective::Response => "response",
        Objective::Profit { .. } => "profit",
        Objective::MinSpend { .. } => "spend (min)",
    };
    writeln!(
        out,
        "objective      {:>18}  ({objective_name})",
        fmt_amount(result.objective)
    )?;
    if let Some(risk) = &result.risk {
        write_risk(out, compiled, risk)?;
    }
    if let Objective::MinSpend { target } = compiled.objective() {
        writeln!(
            out,
            "response       {:>18}  (target {})",
            fmt_amount(compiled.model().value(&x)),
            fmt_amount(target)
        )?;
    }
    match (result.bound, result.gap()) {
        (Some(b), Some(g)) => writeln!(
            out,
            "bound          {:>18}  (gap {})",
            fmt_amount(b),
            fmt_ratio(g)
        )?,
        _ => writeln!(
            out,
            "bound          {:>18}  (this optimizer proves none)",
            "-"
        )?,
    }
    let feasible = if result.max_violation <= compiled.feasibility_tolerance() {
        "feasible"
    } else {
        "INFEASIBLE"
    };
    writeln!(
        out,
        "max violation  {:>18}  ({feasible})",
        format!("{:.3e}", result.max_violation)
    )?;
    let m = &result.metrics;
    writeln!(
        out,
        "time           {:>18}  (model {}, constraints {})",
        fmt_duration(m.wall_time_s),
        fmt_duration(m.model_time_s),
        fmt_duration(m.constraint_time_s)
    )?;
    writeln!(
        out,
        "evaluations    {:>18}  ({} gradients, {} iterations)",
        m.evaluations, m.gradient_evaluations, m.iterations
    )?;
    writeln!(
        out,
        "peak memory    {:>18}",
        format!("{:.1} MiB", m.peak_memory_mb)
    )?;
    // An `infeasible` status (or a limit hit before the rules were met) says which rules
    // the returned plan breaks.
    write_violations(out, compiled, &x)
}

/// Per channel: total, share of spend, response, average and marginal ROI.
fn write_channel_table(out: &mut dyn Write, compiled: &Compiled, x: &[f64]) -> std::io::Result<()> {
    let layout = compiled.layout();
    let totals = layout.totals(x);
    let spend: f64 = totals.iter().sum();
    let model = compiled.model();
    let responses = model.channel_responses(x);
    let mut gradient = vec![0.0; x.len()];
    let has_gradient = model.gradient(x, &mut gradient).is_some();
    let width = layout
        .channels()
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    writeln!(
        out,
        "{}  {:>16}  {:>7}  {:>16}  {:>8}  {:>12}",
        pad_right("channel", width),
        "total spend",
        "share",
        "response",
        "avg ROI",
        "marginal ROI"
    )?;
    for (c, name) in layout.channels().iter().enumerate() {
        let total = totals[c];
        let share = if spend > 0.0 { total / spend } else { 0.0 };
        let response = responses.as_ref().map(|r| r[c]);
        let avg = response.filter(|_| total > 0.0).map(|r| r / total);
        let marginal = has_gradient.then(|| {
            let g = layout.channel_slice(&gradient, c);
            let xs = layout.channel_slice(x, c);
            if total > 0.0 {
                g.iter()
                    .zip(xs)
                    .map(|(gi, xi)| gi * xi / total)
                    .sum::<f64>()
            } else {
                g.iter().sum::<f64>() / g.len() as f64
            }
        });
        let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
        writeln!(
            out,
            "{}  {:>16}  {:>6.1}%  {:>16}  {:>8}  {:>12}",
            pad_right(name, width),
            fmt_amount(total),
            100.0 * share,
            opt(response, &fmt_amount),
            opt(avg, &|v| format!("{v:.3}")),
            opt(marginal, &|v| format!("{v:.4}")),
        )?;
    }
    let response_total = responses.as_ref().map(|r| r.iter().sum::<f64>());
    writeln!(
        out,
        "{}  {:>16}  {:>6.1}%  {:>16}  {:>8}",
        pad_right("total", width),
        fmt_amount(spend),
        if spend > 0.0 { 100.0 } else { 0.0 },
        response_total.map_or("-".to_string(), fmt_amount),
        response_total
            .filter(|_| spend > 0.0)
            .map_or("-".to_string(), |r| format!("{:.3}", r / spend)),
    )
}

fn print_evaluation(
    out: &mut dyn Write,
    compiled: &Compiled,
    x: &[f64],
    e: &Evaluation,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} · evaluation of a given allocation",
        compiled.name()
    )?;
    writeln!(out)?;
    write_channel_table(out, compiled, x)?;
    writeln!(out)?;
    writeln!(out, "objective      {:>18}", fmt_amount(e.objective))?;
    if let Some(risk) = &e.risk {
        write_risk(out, compiled, risk)?;
    }
    writeln!(out, "total spend    {:>18}", fmt_amount(e.total_spend))?;
    writeln!(
        out,
        "max violation  {:>18}  ({})",
        format!("{:.3e}", e.max_violation),
        if e.feasible { "feasible" } else { "INFEASIBLE" }
    )?;
    write_violations(out, compiled, x)
}

/// The spread of the objective over a posterior's draws (`models.md` section 4): what
/// the plan gives on average, in the worst tenth of the draws, and at three percentiles.
fn write_risk(
    out: &mut dyn Write,
    compiled: &Compiled,
    risk: &atlas_core::draws::RiskBlock,
) -> std::io::Result<()> {
    let optimized = compiled
        .model()
        .posterior()
        .map(|p| p.risk.describe())
        .unwrap_or_else(|| "mean".to_string());
    writeln!(
        out,
        "over draws     {:>18}  ({} draws; the objective above is the {optimized})",
        "", risk.draws
    )?;
    for (name, v) in [
        ("  mean", risk.mean),
        ("  cvar 10%", risk.cvar_10),
        ("  p05", risk.p05),
        ("  p50", risk.p50),
        ("  p95", risk.p95),
    ] {
        writeln!(out, "{}  {:>18}", pad_right(name, 13), fmt_amount(v))?;
    }
    Ok(())
}

/// The rules `x` violates beyond the feasibility tolerance, largest first (none printed
/// when it meets them all).
fn write_violations(out: &mut dyn Write, compiled: &Compiled, x: &[f64]) -> std::io::Result<()> {
    let mut violations = compiled.violations(x, compiled.feasibility_tolerance());
    if violations.is_empty() {
        return Ok(());
    }
    violations.sort_by(|a, b| b.amount.total_cmp(&a.amount));
    writeln!(out)?;
    writeln!(out, "violated rules ({}):", violations.len())?;
    for v in violations.iter().take(20) {
        writeln!(out, "  {:>14}  {}", format!("{:.4e}", v.amount), v.what)?;
    }
    if violations.len() > 20 {
        writeln!(out, "  ... and {} more", violations.len() - 20)?;
    }
    Ok(())
}

fn print_validation(
    out: &mut dyn Write,
    path: &Path,
    compiled: &Compiled,
    scaled: &Scaled,
    registry: &Registry,
) -> std::io::Result<()> {
    let layout = compiled.layout();
    writeln!(out, "{}: ok", path.display())?;
    writeln!(
        out,
        "  {} x {} = {}; {} as written, {} after simplification",
        plural(layout.n_channels(), "channel"),
        plural(layout.periods(), "period"),
        plural(layout.len(), "variable"),
        plural(compiled.feasible_set().rows().len(), "linear row"),
        scaled.feasible_set().rows().len()
    )?;
    let set = compiled.feasible_set();
    let mode = match set.budget_mode() {
        atlas_core::BudgetMode::Exact => "spent in full",
        atlas_core::BudgetMode::AtMost => "at most",
    };
    let objective = match compiled.objective() {
        Objective::Response => "maximize response".to_string(),
        Objective::Profit { margin } => format!("maximize profit (margin {})", fmt_amount(margin)),
        Objective::MinSpend { target } => {
            format!("minimize spend for a response of {}", fmt_amount(target))
        }
    };
    writeln!(
        out,
        "  budget {} ({mode}), objective: {objective}",
        fmt_amount(set.budget()),
    )?;
    let features: Vec<String> = compiled.features().iter().map(|f| f.describe()).collect();
    if !features.is_empty() {
        writeln!(out, "  features: {}", features.join("; "))?;
    }
    let capable = registry.capable_of(compiled);
    writeln!(
        out,
        "  optimizers that can solve it: {}",
        if capable.is_empty() {
            "none in this build".to_string()
        } else {
            capable.join(", ")
        }
    )
}

/// `1 period`, `4 periods`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn print_list(out: &mut dyn Write, registry: &Registry) -> std::io::Result<()> {
    for info in registry.list() {
        let c = info.capabilities;
        let yes = |b: bool| if b { "yes" } else { "no" };
        writeln!(out, "{}", info.name)?;
        writeln!(out, "  {}", info.summary)?;
        writeln!(
            out,
            "  needs gradients: {}, handles non-convex: {}, integer rules: {}, min_roi/min_spend: {}, proves a bound: {}, parallel: {}",
            yes(c.needs_gradient),
            yes(c.handles_nonconvex),
            yes(c.integer_features),
            yes(c.nonlinear_constraints),
            yes(c.proves_bound),
            yes(c.parallel)
        )?;
        if let Value::Object(map) = &info.defaults {
            let items: Vec<String> = map.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            writeln!(out, "  defaults: {}", items.join(", "))?;
        }
        writeln!(out)?;
    }
    Ok(())
}
