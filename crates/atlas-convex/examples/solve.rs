//! Solves problem files with `convex` several times and prints status, objective, bound,
//! gap and timings (wall clock of each solve, and this process's CPU time, which a busy
//! machine inflates less).
//!
//! ```sh
//! cargo run --release -p atlas-convex --example solve -- examples/problems/large.toml [runs] [key=value ...]
//! ```

use std::time::Instant;

use atlas_core::{Compiled, Registry};

/// CPU time of this process in seconds (Linux `/proc/self/stat`; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime is the 14th field.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: solve PROBLEM [runs] [key=value ...]")?;
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut settings = serde_json::Map::new();
    for kv in args.iter().skip(2) {
        let (k, v) = kv.split_once('=').ok_or("settings are key=value")?;
        let value =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
        settings.insert(k.to_string(), value);
    }
    let mut reg = Registry::new();
    atlas_convex::register(&mut reg)?;
    let compiled = Compiled::from_path(path)?;
    let config = reg.config("convex", settings)?;
    let mut walls = Vec::new();
    let cpu0 = cpu_seconds();
    for run in 0..runs {
        let t = Instant::now();
        let r = reg.optimize(&compiled, config.as_ref(), Default::default())?;
        let wall = t.elapsed().as_secs_f64();
        walls.push(wall);
        if run == 0 {
            println!(
                "{}: status {}, objective {:.10e}, bound {}, gap {}, max_violation {:.2e}, iterations {}",
                compiled.name(),
                r.status,
                r.objective,
                r.bound.map(|b| format!("{b:.10e}")).unwrap_or_else(|| "none".into()),
                r.gap().map(|g| format!("{g:.2e}")).unwrap_or_else(|| "none".into()),
                r.max_violation,
                r.metrics.iterations,
            );
        }
    }
    let cpu = (cpu_seconds() - cpu0) / runs as f64;
    walls.sort_by(f64::total_cmp);
    println!(
        "{} runs: wall min {:.3}s, median {:.3}s, max {:.3}s; CPU time per run {:.3}s",
        runs,
        walls[0],
        walls[walls.len() / 2],
        walls[walls.len() - 1],
        cpu
    );
    Ok(())
}
