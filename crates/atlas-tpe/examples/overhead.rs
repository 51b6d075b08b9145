//! Per-trial overhead of `tpe` on a 10-d problem (the benchmark the issue asks for; a
//! report, not a timed test). Run it next to `benches/optuna_overhead.py` in the same
//! session with `benches/overhead.sh`, from the workspace root:
//!
//! ```sh
//! cargo run --release -p atlas-tpe --example overhead -- [n_trials] [dims]
//! ```
//!
//! The problem is the 10-d sphere on `[-5.12, 5.12]^10` (the core's `function` model), as
//! in the Optuna script; its evaluation takes nanoseconds, so the time per trial is the
//! sampler's overhead plus the projection onto the feasible set. Prints one JSON line per
//! mode (univariate, multivariate) and history bound (`max_above` at its default, and
//! unbounded as in Optuna): the mean time per trial over all trials and over the last 100
//! (where the history is longest), and the model's own time per trial.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_core::functions::{self, TestFunction};
use atlas_core::{Frequency, IterationEvent, Observer, Registry, SolveOptions};
use serde_json::{json, Map, Value};

/// Records the elapsed time at every trial.
struct Stamps(Arc<Mutex<Vec<Duration>>>);

impl Observer for Stamps {
    fn on_iteration(&mut self, event: &IterationEvent) {
        if let Ok(mut s) = self.0.lock() {
            s.push(event.elapsed);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n_trials: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let dims: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let mut registry = Registry::new();
    atlas_tpe::register(&mut registry)?;
    let problem = functions::problem(TestFunction::Sphere, dims)?;
    for (multivariate, max_above) in [
        (false, None),
        (true, None),
        (false, Some(1_000_000)),
        (true, Some(1_000_000)),
    ] {
        let mut settings = Map::new();
        if let Some(m) = max_above {
            settings.insert("max_above".into(), Value::from(m));
        }
        settings.insert("n_trials".into(), Value::from(n_trials));
        settings.insert("multivariate".into(), Value::from(multivariate));
        settings.insert("seed".into(), Value::from(0));
        let config = registry.config("tpe", settings)?;
        let stamps = Arc::new(Mutex::new(Vec::new()));
        let options = SolveOptions {
            observers: vec![(Frequency::Always, Box::new(Stamps(stamps.clone())))],
            ..Default::default()
        };
        let result = registry.optimize(&problem, config.as_ref(), options)?;
        let stamps = stamps.lock().map_err(|_| "poisoned")?.clone();
        let n = stamps.len();
        let last = 100.min(n - 1);
        let per_trial_ms = |d: Duration, k: usize| 1e3 * d.as_secs_f64() / k as f64;
        let model_ms = 1e3 * result.metrics.model_time_s / n as f64;
        println!(
            "{}",
            json!({
                "sampler": "atlas tpe",
                "multivariate": multivariate,
                "max_above": max_above.unwrap_or(256),
                "n_trials": n,
                "dims": dims,
                "mean_ms_per_trial": per_trial_ms(stamps[n - 1], n),
                "last100_ms_per_trial": per_trial_ms(stamps[n - 1] - stamps[n - 1 - last], last),
                "model_ms_per_trial": model_ms,
                "best": -result.objective,
            })
        );
    }
    Ok(())
}
