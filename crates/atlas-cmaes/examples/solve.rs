//! Solves a problem file with `cmaes` and prints the result next to the certified optimum
//! of `examples/problems/optima.json` when the file is listed there.
//!
//! ```sh
//! cargo run --release -p atlas-cmaes --example solve -- examples/problems/retail_q4.toml restarts=none seed=3
//! ```

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: solve PROBLEM.toml [key=value ...]")?;
    let mut settings = serde_json::Map::new();
    for kv in args {
        let (k, v) = kv.split_once('=').ok_or("settings are key=value")?;
        let value =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
        settings.insert(k.to_string(), value);
    }
    let mut registry = atlas_core::Registry::new();
    atlas_cmaes::register(&mut registry)?;
    let compiled = atlas_core::Compiled::from_path(&path)?;
    let config = registry.config("cmaes", settings)?;
    let result = registry.optimize(&compiled, config.as_ref(), Default::default())?;
    let optima_path = Path::new(&path).with_file_name("optima.json");
    let file = Path::new(&path)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default()
        .to_string();
    let best_known = std::fs::read_to_string(optima_path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v[&file]["best_known"].as_f64());
    let gap = best_known.map(|b| (b - result.objective) / b.abs());
    println!(
        "{}: objective {:.6} best_known {:?} gap {:?} status {} evaluations {} iterations {} wall {:.3}s (model {:.3}s, constraints {:.3}s) violation {:.2e}",
        compiled.name(),
        result.objective,
        best_known,
        gap,
        result.status,
        result.metrics.evaluations,
        result.metrics.iterations,
        result.metrics.wall_time_s,
        result.metrics.model_time_s,
        result.metrics.constraint_time_s,
        result.max_violation
    );
    Ok(())
}
