//! Solves problem files with `trust-region` and prints status, objective, feasibility,
//! work and wall time: the measuring harness for release builds, e.g.
//!
//! ```sh
//! cargo run --release -p atlas-trust-region --example solve -- examples/problems/large.toml
//! cargo run --release -p atlas-trust-region --example solve -- examples/problems/scurve.toml multi_start=16
//! ```
//!
//! Arguments after the files are `key=value` settings (numbers or integers).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atlas_core::{Frequency, IterationEvent, Observer, SolveOptions};

/// Records when a feasible iterate first comes within 1e-6 (relative) of the best known
/// objective.
struct TimeToTarget {
    best_known: f64,
    reached: Arc<Mutex<Option<Duration>>>,
}

impl Observer for TimeToTarget {
    fn on_improvement(&mut self, event: &IterationEvent) {
        let gap = (event.objective - self.best_known).abs() / self.best_known.abs();
        if event.feasible && gap <= 1e-6 {
            let mut reached = self.reached.lock().unwrap_or_else(|e| e.into_inner());
            reached.get_or_insert(event.elapsed);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = atlas_core::Registry::new();
    atlas_trust_region::register(&mut registry)?;
    let mut files = Vec::new();
    let mut settings = serde_json::Map::new();
    for arg in std::env::args().skip(1) {
        match arg.split_once('=') {
            Some((k, v)) => {
                let value: serde_json::Value = serde_json::from_str(v)?;
                settings.insert(k.to_string(), value);
            }
            None => files.push(arg),
        }
    }
    let config = registry.config("trust-region", settings)?;
    for file in files {
        let compiled = atlas_core::Compiled::from_path(&file)?;
        // Gap to the certified optimum when an `optima.json` sits beside the file.
        let path = std::path::Path::new(&file);
        let best_known = path
            .parent()
            .and_then(|d| std::fs::read_to_string(d.join("optima.json")).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v[path.file_name()?.to_str()?]["best_known"].as_f64());
        let reached = Arc::new(Mutex::new(None));
        let mut options = SolveOptions::default();
        if let Some(best_known) = best_known {
            let observer = TimeToTarget {
                best_known,
                reached: reached.clone(),
            };
            options
                .observers
                .push((Frequency::OnImprovement, Box::new(observer)));
        }
        let started = Instant::now();
        let r = registry.optimize(&compiled, config.as_ref(), options)?;
        let wall = started.elapsed().as_secs_f64();
        let to_target = reached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(String::from("-"), |d| format!("{:.3} s", d.as_secs_f64()));
        let gap = best_known.map_or(String::from("-"), |b| {
            format!("{:.2e}", (r.objective - b) / b.abs())
        });
        println!(
            "{file}: status {} objective {:.10e} (relative to best known {gap}) max_violation {:.3e} (feasible: {}) iterations {} evaluations {} gradients {} wall {:.3} s (within 1e-6 after {to_target})",
            r.status,
            r.objective,
            r.max_violation,
            r.max_violation <= compiled.feasibility_tolerance(),
            r.metrics.iterations,
            r.metrics.evaluations,
            r.metrics.gradient_evaluations,
            wall
        );
        if r.max_violation > compiled.feasibility_tolerance() {
            let x = r.flat_allocation(&compiled)?;
            for v in compiled.violations(&x, compiled.feasibility_tolerance()) {
                println!("  violated: {} by {:.3e}", v.what, v.amount);
            }
        }
    }
    Ok(())
}
