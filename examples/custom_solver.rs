//! A user-written optimizer, registered beside the built-in ones and run through the same
//! factory and the same `atlas` command line.
//!
//! The solver is a projected gradient method: step along the gradient, project back onto
//! the feasible set with the core's exact projection (bounds, budget and every linear
//! rule), backtrack until the objective improves. It is written as steps
//! ([`IterativeSolver`]: start, take one step, say when it has converged) and run by the
//! core's [`Executor`], which owns the loop: the time limit, the evaluation budget,
//! cancellation, early stopping, observers and the best feasible point are handled there,
//! so this file has no limit code at all. Everything else a backend needs comes from the
//! solve context: scaled problem, counted evaluations, projection.
//!
//! ```sh
//! cargo run --release --example custom_solver                       # quickstart, checked
//! cargo run --release --example custom_solver -- optimize examples/problems/retail_q4.toml --optimizer pgd
//! cargo run --release --example custom_solver -- list
//! ```

use std::process::ExitCode;

use atlas::feasible::ProjectionWorkspace;
use atlas::{
    Capabilities, ConfigError, Context, Error, Executor, Iterate, IterativeSolver, Kv, Solution,
    Solver, SolverConfig, Status, Step, Termination,
};
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

/// The configured `pgd` optimizer: builds a [`PgdRun`] per solve and hands it to the
/// core's [`Executor`], which owns the loop and every limit.
pub struct Pgd(pub PgdConfig);

impl Solver for Pgd {
    fn name(&self) -> &str {
        "pgd"
    }

    fn solve(&self, ctx: &Context<'_>) -> Result<Solution, Error> {
        let mut run = PgdRun::new(self.0.clone());
        Executor::new(ctx)
            .max_iterations(self.0.max_iterations)
            .solve(&mut run)
    }
}

/// One projected-gradient run, as steps: no loop over iterations and no limit code here
/// (time, evaluations, cancellation, patience and the iteration limit are the executor's).
pub struct PgdRun {
    config: PgdConfig,
    u: Vec<f64>,
    g: Vec<f64>,
    phi: f64,
    step: f64,
    workspace: ProjectionWorkspace,
}

impl PgdRun {
    /// A run with `config`'s tolerance.
    pub fn new(config: PgdConfig) -> Self {
        Self {
            config,
            u: Vec::new(),
            g: Vec::new(),
            phi: f64::NAN,
            step: 0.0,
            workspace: ProjectionWorkspace::default(),
        }
    }

    fn iterate(&self) -> Iterate {
        // Every point is a projection onto the whole feasible set: feasible.
        Iterate {
            u: self.u.clone(),
            phi: self.phi,
            feasible: true,
        }
    }
}

impl IterativeSolver for PgdRun {
    fn init(&mut self, ctx: &Context<'_>, start: &[f64]) -> Result<Iterate, Error> {
        let ev = ctx.evaluator();
        let n = start.len();
        self.u = start.to_vec();
        self.g = vec![0.0; n];
        self.phi = ev.objective_gradient(&self.u, &mut self.g);
        self.step = 1.0 / self.g.iter().fold(1e-12f64, |m, v| m.max(v.abs())) / n as f64;
        Ok(self.iterate())
    }

    fn step(&mut self, ctx: &Context<'_>) -> Result<Step, Error> {
        let ev = ctx.evaluator();
        let n = self.u.len();
        let (mut trial, mut z) = (vec![0.0; n], vec![0.0; n]);
        // Backtrack from a growing step until the projected step improves phi.
        self.step *= 2.0;
        let mut improved = None;
        let mut trials = 0u64;
        for _ in 0..60 {
            trials += 1;
            for i in 0..n {
                z[i] = self.u[i] - self.step * self.g[i];
            }
            ev.project(&z, &mut trial, &mut self.workspace)
                .map_err(|f| Error::Infeasible(f.into_infeasible()))?;
            let value = ev.objective(&trial);
            if value < self.phi {
                improved = Some(value);
                break;
            }
            self.step *= 0.5;
        }
        let kv = Kv::new().with("step", self.step).with("trials", trials);
        let Some(value) = improved else {
            // No step down to 2^-60 of the last one decreases phi: stationary at this
            // precision.
            return Ok(Step::done(Termination::Converged).with_kv(kv));
        };
        let change = (self.phi - value) / self.phi.abs().max(1.0);
        self.u.copy_from_slice(&trial);
        self.phi = ev.objective_gradient(&self.u, &mut self.g);
        let step = Step::moved(self.iterate()).with_kv(kv);
        Ok(if change <= self.config.tolerance {
            step.ending(Termination::Converged)
        } else {
            step
        })
    }

    fn finish(&mut self, _ctx: &Context<'_>, _status: Status) -> Result<Iterate, Error> {
        Ok(self.iterate())
    }
}

fn main() -> ExitCode {
    let mut registry = match atlas::registry() {
        Ok(registry) => registry,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
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
