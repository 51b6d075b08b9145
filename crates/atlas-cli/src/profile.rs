//! `atlas profile PROBLEM` (`shared/spec/models.md` section 6): measures the response
//! model before anyone optimizes it — the time of one value, one gradient and one batch
//! of 64 values over random feasible plans, the peak memory, whether the model is known
//! to be concave, and which optimizers can take it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use atlas_core::{Compiled, Derivatives, Error, InputError, Problem, Registry};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::format::fmt_duration;
use crate::{json_error, stdout_error, OutputFormat};

/// Arguments of `atlas profile`.
#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    /// Problem file (.toml, .json, .yaml).
    problem: PathBuf,
    /// Random feasible plans to time the model on (each: one value, one gradient, one
    /// batch of 64 values).
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Seed of the random plans.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output on stdout.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

/// Mean, standard deviation, minimum and maximum of timings, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    /// Mean.
    pub mean_s: f64,
    /// Standard deviation (over the samples).
    pub std_s: f64,
    /// Fastest.
    pub min_s: f64,
    /// Slowest.
    pub max_s: f64,
}

impl Timing {
    fn of(samples: &[f64]) -> Timing {
        let n = samples.len().max(1) as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
        Timing {
            mean_s: mean,
            std_s: var.sqrt(),
            min_s: samples.iter().copied().fold(f64::INFINITY, f64::min),
            max_s: samples.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// What `atlas profile` measured (its `--format json` output).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// The problem's name.
    pub problem: String,
    /// `mmm`, `onnx` or `http`.
    pub model: String,
    /// Channels x periods.
    pub variables: usize,
    /// Random feasible plans timed.
    pub samples: usize,
    /// One value.
    pub value: Timing,
    /// One gradient.
    pub gradient: Option<Timing>,
    /// How a gradient is obtained: `exact`, `finite_differences` (one batch of 2n + 1
    /// points) or `none`.
    pub gradient_method: String,
    /// One batch of 64 values.
    pub batch_64: Timing,
    /// Peak resident memory of the process while profiling, in MiB.
    pub peak_memory_mb: f64,
    /// `true`/`false` when known, `null` when not.
    pub concave: Option<bool>,
    /// Why the concavity is known or not.
    pub concave_reason: String,
    /// Optimizers of this build that accept the problem.
    pub optimizers: Vec<String>,
}

/// Runs `atlas profile`.
pub(crate) fn run(
    args: &ProfileArgs,
    registry: &Registry,
    out: &mut dyn Write,
) -> Result<(), Error> {
    if args.samples == 0 {
        return Err(InputError::new("--samples", "must be >= 1 (got 0)").into());
    }
    let problem = Problem::from_path(&args.problem)?;
    let compiled = atlas_models::compile(&problem, Some(&args.problem))?;
    let profile = measure(&problem, &compiled, registry, args.samples, args.seed)?;
    match args.format {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&profile).map_err(json_error)?;
            writeln!(out, "{text}").map_err(stdout_error)
        }
        OutputFormat::Table => print(out, &args.problem, &profile).map_err(stdout_error),
    }
}

/// Random plans within the bounds, projected onto the feasible set (bounds, budget and
/// linear rules).
fn feasible_plans(compiled: &Compiled, count: usize, seed: u64) -> Result<Vec<Vec<f64>>, Error> {
    let set = compiled.feasible_set();
    let n = set.dim();
    let spread = 2.0 * set.budget() / n as f64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut plans = Vec::with_capacity(count);
    for _ in 0..count {
        let z: Vec<f64> = set
            .lower()
            .iter()
            .zip(set.upper())
            .map(|(l, u)| l + rng.random::<f64>() * (u - l).min(spread))
            .collect();
        let mut x = vec![0.0; n];
        set.project_cold(&z, &mut x).map_err(|e| Error::Solver {
            optimizer: "profile".to_string(),
            reason: format!("cannot draw a feasible plan: {e:?}"),
        })?;
        plans.push(x);
    }
    Ok(plans)
}

fn seconds(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn measure(
    problem: &Problem,
    compiled: &Compiled,
    registry: &Registry,
    samples: usize,
    seed: u64,
) -> Result<Profile, Error> {
    atlas_core::memory::reset_peak();
    let model = compiled.model();
    let n = compiled.layout().len();
    // Distinct plans for every measurement, so that an evaluation cache answers none.
    let plans = feasible_plans(compiled, samples * 66, seed)?;
    let mut value = Vec::with_capacity(samples);
    let mut gradient = Vec::with_capacity(samples);
    let mut batch = Vec::with_capacity(samples);
    let has_gradient = model.derivatives() != Derivatives::ValueOnly;
    let mut g = vec![0.0; n];
    for s in 0..samples {
        let chunk = &plans[s * 66..(s + 1) * 66];
        value.push(seconds(|| {
            model.value(&chunk[0]);
        }));
        if has_gradient {
            gradient.push(seconds(|| {
                model.gradient(&chunk[1], &mut g);
            }));
        }
        let mut values = vec![0.0; 64];
        batch.push(seconds(|| model.value_batch(&chunk[2..], &mut values)));
        if let Some(reason) = model.failure() {
            return Err(Error::Model {
                model: compiled
                    .source()
                    .map_or_else(|| compiled.name().to_string(), |p| p.display().to_string()),
                reason,
            });
        }
    }
    let gradient_method = match (model.derivatives(), model.stats().and_then(|s| s.gradient)) {
        (Derivatives::ValueOnly, _) => "none".to_string(),
        (_, Some(method)) => method.to_string(),
        _ => "exact".to_string(),
    };
    let (concave, concave_reason) = match (model.is_concave(), compiled.mmm()) {
        (Some(true), _) => (Some(true), "known: every curve is concave".to_string()),
        (Some(false), Some(mmm)) => {
            let names: Vec<&str> = mmm
                .nonconcave_channels()
                .into_iter()
                .map(|c| compiled.layout().channels()[c].as_str())
                .collect();
            (
                Some(false),
                format!("known not to be: S-curves on {}", names.join(", ")),
            )
        }
        (Some(false), None) => (Some(false), "the model says it is not".to_string()),
        (None, _) => (
            None,
            "unknown: an external model gives values only".to_string(),
        ),
    };
    Ok(Profile {
        problem: compiled.name().to_string(),
        model: problem
            .model
            .as_ref()
            .map_or("mmm", |m| m.kind())
            .to_string(),
        variables: n,
        samples,
        value: Timing::of(&value),
        gradient: has_gradient.then(|| Timing::of(&gradient)),
        gradient_method,
        batch_64: Timing::of(&batch),
        peak_memory_mb: atlas_core::memory::peak_mb(),
        concave,
        concave_reason,
        optimizers: registry.capable_of(compiled),
    })
}

fn print(out: &mut dyn Write, path: &std::path::Path, p: &Profile) -> std::io::Result<()> {
    writeln!(
        out,
        "{} · model {} · {} variables · {} random feasible plans",
        path.display(),
        p.model,
        p.variables,
        p.samples
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<22}  {:>10}  {:>10}  {:>10}  {:>10}",
        "", "mean", "std", "min", "max"
    )?;
    let row = |out: &mut dyn Write, name: &str, t: &Timing| {
        writeln!(
            out,
            "{:<22}  {:>10}  {:>10}  {:>10}  {:>10}",
            name,
            fmt_duration(t.mean_s),
            fmt_duration(t.std_s),
            fmt_duration(t.min_s),
            fmt_duration(t.max_s)
        )
    };
    row(out, "one value", &p.value)?;
    if let Some(g) = &p.gradient {
        row(out, "one gradient", g)?;
    }
    row(out, "batch of 64 values", &p.batch_64)?;
    writeln!(out)?;
    let method = match p.gradient_method.as_str() {
        "finite_differences" => format!(
            "finite differences (one batch of {} points: central, 2n + 1)",
            2 * p.variables + 1
        ),
        "exact" => "exact (from the model)".to_string(),
        other => other.to_string(),
    };
    writeln!(out, "gradient        {method}")?;
    writeln!(out, "peak memory     {:.1} MiB", p.peak_memory_mb)?;
    let concave = match p.concave {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    writeln!(out, "concave         {concave} ({})", p.concave_reason)?;
    writeln!(
        out,
        "optimizers      {}",
        if p.optimizers.is_empty() {
            "none in this build".to_string()
        } else {
            p.optimizers.join(", ")
        }
    )
}
