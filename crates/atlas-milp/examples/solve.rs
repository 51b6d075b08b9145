//! Solves a problem file with `milp` and prints the outcome, the bound, the model's size
//! and the wall time: the benchmark behind the README's figures.
//!
//! ```sh
//! cargo run --release -p atlas-milp --example solve -- examples/problems/scurve.toml
//! cargo run --release -p atlas-milp --features highs --example solve -- \
//!     examples/problems/mixed_integer.toml solver=highs repeat=5
//! ```
//!
//! Arguments after the file are settings (`key=value`, JSON values) and `repeat=N` (runs,
//! the fastest and median times are printed).

use std::time::Instant;

use atlas_core::{Compiled, Registry, SolveOptions};
use serde_json::{Map, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .ok_or("usage: solve PROBLEM [key=value ...] [repeat=N]")?;
    let mut settings = Map::new();
    let mut repeat = 1usize;
    for arg in args {
        let (k, v) = arg
            .split_once('=')
            .ok_or(format!("expected key=value, got `{arg}`"))?;
        if k == "repeat" {
            repeat = v.parse()?;
            continue;
        }
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        settings.insert(k.to_string(), value);
    }
    let mut registry = Registry::new();
    atlas_milp::register(&mut registry)?;
    let compiled = Compiled::from_path(&file)?;
    let config = registry.config("milp", settings)?;
    let max_error = config.settings()["max_error"].as_f64().unwrap_or(1e-3);
    let size = atlas_milp::model_size(&compiled, max_error)?;
    let mut times = Vec::with_capacity(repeat);
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        let result = registry.optimize(&compiled, config.as_ref(), SolveOptions::default())?;
        times.push(started.elapsed().as_secs_f64());
        last = Some(result);
    }
    let r = last.ok_or("no run")?;
    times.sort_by(f64::total_cmp);
    println!("problem      {}", r.problem);
    println!("settings     {}", config.settings());
    println!("model        {size:?}");
    println!("status       {}", r.status);
    println!("objective    {:.6}", r.objective);
    match r.bound {
        Some(b) => println!(
            "bound        {b:.6} (gap {:.3e})",
            (b - r.objective) / r.objective.abs().max(1.0)
        ),
        None => println!("bound        none"),
    }
    println!("violation    {:e}", r.max_violation);
    println!(
        "time_s       min {:.3} median {:.3} ({} runs)",
        times[0],
        times[times.len() / 2],
        times.len()
    );
    Ok(())
}
