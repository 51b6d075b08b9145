//! A user-written optimizer, registered beside the built-in ones and run through the same
//! factory and the same `atlas` command line.
//!
//! The solver is a projected gradient method: step along the gradient, project back onto
//! the feasible set with the core's exact projection (bounds, budget and every linear
//! rule), backtrack until the objective improves. Everything a backend needs comes from
//! the solve context: scaled problem, counted evaluations, projection, iteration reports
//! (observers, limits, early stopping).
//!
//! ```sh
//! cargo run --release --example custom_solver                       # quickstart, checked
//! cargo run --release --example custom_solver -- optimize examples/problems/retail_q4.toml --optimizer pgd
//! cargo run --release --example custom_solver -- list
//! ```

use std::ops::ControlFlow;
use std::process::ExitCode;

use atlas::feasible::ProjectionWorkspace;
use atlas::{Capabilities, ConfigError, Context, Error, Solution, Solver, SolverConfig, Status};
use serde::{Deserialize, Serialize};

/// Settings of the `pgd` optimizer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgdConfig {
    /// Iterations at most (default 5000, >= 1).
    pub max_iterations: u64,
    /// Stop when a step changes the objective by less than this, relatively (default 1e-12).
    pub tolerance: f64,
}

impl Default for PgdConfig {
    fn default() -> Self {
        Self {
            max_iterations: 5000,
            tolerance: 1e-12,
        }
    }
}

#[typetag::serde(name = "pgd")]
impl SolverConfig for PgdConfig {
    fn name(&self) -> &'static str {
        "pgd"
    }
    fn summary(&self) -> &'static str {
        "projected gradient (a user-written example optimizer)"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            needs_gradient: true,
            needs_hessian: false,
            needs_structure: false,
            handles_nonconvex: true,
            integer_features: false,
            // Projection handles linear rules only: refuse min_roi and min_spend.
            nonlinear_constraints: false,
            proves_bound: false,
            parallel: false,
        }
    }
    fn check(&self) -> Result<(), ConfigError> {
        if self.max_iterations == 0 {
            return Err(ConfigError::new(
                "pgd",
                "max_iterations",
                "must be >= 1 (got 0)",
            ));
        }
        if !(self.tolerance >= 0.0 && self.tolerance < 1.0) {
            return Err(ConfigError::new(
                "pgd",
                "tolerance",
                format!("must be in [0, 1) (got {})", self.tolerance),
            ));
        }
        Ok(())
    }
    fn build(&self) -> Result<Box<dyn Solver>, ConfigError> {
        self.check()?;
        Ok(Box::new(Pgd(self.clone())))
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

struct Pgd(PgdConfig);

impl Solver for Pgd {
    fn name(&self) -> &str {
        "pgd"
    }

    fn solve(&self, ctx: &Context<'_>) -> Result<Solution, Error> {
        let ev = ctx.evaluator();
        let mut u = ctx.problem().start().to_vec();
        let n = u.len();
        let mut g = vec![0.0; n];
        let mut phi = ev.objective_gradient(&u, &mut g);
        let mut step = 1.0 / g.iter().fold(1e-12f64, |m, v| m.max(v.abs())) / n as f64;
        let mut ws = ProjectionWorkspace::default();
        let (mut trial, mut z) = (vec![0.0; n], vec![0.0; n]);
        for _ in 0..self.0.max_iterations {
            // Backtrack from a growing step until the projected step improves phi.
            step *= 2.0;
            let mut improved = None;
            for _ in 0..60 {
                for i in 0..n {
                    z[i] = u[i] - step * g[i];
                }
                ev.project(&z, &mut trial, &mut ws)
                    .map_err(|f| Error::Infeasible(f.into_infeasible()))?;
                let value = ev.objective(&trial);
                if value < phi {
                    improved = Some(value);
                    break;
                }
                step *= 0.5;
            }
            let Some(value) = improved else {
                return Ok(Solution::new(u, Status::Converged));
            };
            let change = (phi - value) / phi.abs().max(1.0);
            u.copy_from_slice(&trial);
            phi = ev.objective_gradient(&u, &mut g);
            if let ControlFlow::Break(status) = ctx.iteration(phi, &u, true) {
                return Ok(Solution::new(u, status));
            }
            if change <= self.0.tolerance {
                return Ok(Solution::new(u, Status::Converged));
            }
        }
        Ok(Solution::new(u, Status::MaxIterations))
    }
}

fn main() -> ExitCode {
    let mut registry = atlas::registry();
    if let Err(e) = registry.register::<PgdConfig>() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.len() > 1 {
        // The same command line as `atlas`, with `pgd` available.
        return atlas_cli::main_with_args(registry, args);
    }

    // Without arguments: solve the quickstart problem through the factory and check the
    // answer against the certified optimum and against the built-in `lbfgs`.
    let compiled = match atlas::Compiled::from_path("examples/problems/quickstart.toml") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e} (run from the repository root)");
            return ExitCode::from(2);
        }
    };
    let mut objectives = Vec::new();
    for name in ["pgd", "lbfgs"] {
        let result = registry
            .default_config(name)
            .and_then(|config| registry.optimize(&compiled, config.as_ref(), Default::default()));
        match result {
            Ok(r) => {
                println!(
                    "{name:>6}: objective {:.4} ({}), {} iterations, max violation {:.2e}",
                    r.objective, r.status, r.metrics.iterations, r.max_violation
                );
                assert!(compiled.is_feasible(&r.flat_allocation(&compiled).expect("layout")));
                objectives.push(r.objective);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let certified = 1_585_364.822_896_572_5;
    let gap = (certified - objectives[0]) / certified;
    println!("pgd gap to the certified optimum: {gap:.2e}");
    assert!(
        gap.abs() < 1e-6,
        "pgd should reach the optimum of this concave problem"
    );
    ExitCode::SUCCESS
}
