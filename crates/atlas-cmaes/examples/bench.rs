//! Times `cmaes` at a fixed number of evaluations on the classic test functions, one JSON
//! line per case (used by `benches/compare.py`, which runs the Python `cmaes` package on
//! the same cases):
//!
//! ```sh
//! cargo run --release -p atlas-cmaes --example bench -- rastrigin:10:20000 rosenbrock:40:20000
//! ```

use atlas_core::functions::{self, TestFunction};
use atlas_core::{Registry, SolveOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::new();
    atlas_cmaes::register(&mut registry)?;
    let cases: Vec<String> = std::env::args().skip(1).collect();
    for case in cases {
        let parts: Vec<&str> = case.split(':').collect();
        let [name, dim, evaluations] = parts[..] else {
            return Err(format!("cases are function:dim:evaluations (got {case})").into());
        };
        let function =
            TestFunction::from_name(name).ok_or_else(|| format!("unknown function {name}"))?;
        let (dim, evaluations): (usize, u64) = (dim.parse()?, evaluations.parse()?);
        let compiled = functions::problem(function, dim)?;
        let mut settings = serde_json::Map::new();
        settings.insert("max_evaluations".into(), evaluations.into());
        settings.insert("seed".into(), 1.into());
        let config = registry.config("cmaes", settings)?;
        let result = registry.optimize(&compiled, config.as_ref(), SolveOptions::default())?;
        let line = serde_json::json!({
            "function": name,
            "dim": dim,
            "evaluations": result.metrics.evaluations,
            "seconds": result.metrics.wall_time_s,
            "model_seconds": result.metrics.model_time_s,
            "best": -result.objective,
            "status": result.status.as_str(),
        });
        println!("{line}");
    }
    Ok(())
}
