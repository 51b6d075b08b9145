//! A response model written in plain Rust, optimized by the same backends as the built-in
//! marketing-mix model.
//!
//! The model adds a synergy between TV and search to log responses:
//! `R(x) = sum_c beta_c ln(1 + x_c / k_c) + gamma sqrt(x_tv x_search)`. It is concave (a
//! sum of concave terms; the geometric mean is concave), so a gradient method reaches its
//! optimum, which the example checks with the optimality conditions: every channel that is
//! strictly inside its bounds has the same marginal response (the budget's multiplier).
//!
//! The same model is then offered as a black box (values only): gradient optimizers refuse
//! it by name, and black-box optimizers (`cmaes`, `tpe`, when built) take it.
//!
//! ```sh
//! cargo run --release --example custom_model
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use atlas::problem::{Channel, Constraint, ConstraintKind, ObjectiveKind};
use atlas::{BudgetMode, Compiled, Derivatives, Error, Model, Problem};

/// Log responses with a TV x search synergy, over one period.
struct Synergy {
    beta: [f64; 4],
    k: [f64; 4],
    gamma: f64,
    /// Whether to expose the gradient (false: a black box).
    with_gradient: bool,
}

const TV: usize = 0;
const SEARCH: usize = 1;

impl Model for Synergy {
    fn dim(&self) -> usize {
        4
    }

    fn value(&self, x: &[f64]) -> f64 {
        let own: f64 = (0..4)
            .map(|c| self.beta[c] * (x[c].max(0.0) / self.k[c]).ln_1p())
            .sum();
        own + self.gamma * (x[TV].max(0.0) * x[SEARCH].max(0.0)).sqrt()
    }

    fn derivatives(&self) -> Derivatives {
        if self.with_gradient {
            Derivatives::Gradient
        } else {
            Derivatives::ValueOnly
        }
    }

    fn gradient(&self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        if !self.with_gradient {
            return None;
        }
        for c in 0..4 {
            grad[c] = self.beta[c] / (self.k[c] + x[c].max(0.0));
        }
        let g = (x[TV].max(1e-12) * x[SEARCH].max(1e-12)).sqrt();
        grad[TV] += 0.5 * self.gamma * g / x[TV].max(1e-12);
        grad[SEARCH] += 0.5 * self.gamma * g / x[SEARCH].max(1e-12);
        Some(self.value(x))
    }

    fn is_concave(&self) -> Option<bool> {
        Some(true)
    }
}

fn rules() -> Problem {
    let channel = |name: &str, max: Option<f64>| Channel {
        max,
        response: None,
        ..Channel::new(name, atlas::problem::CurveSpec::linear(0.0))
    };
    Problem {
        name: "synergy".into(),
        periods: 1,
        budget: 1_000_000.0,
        budget_mode: BudgetMode::Exact,
        objective: ObjectiveKind::Response,
        margin: 1.0,
        target_response: None,
        discount: 0.0,
        max_active_channels: None,
        channels: vec![
            channel("tv", Some(500_000.0)),
            channel("search", None),
            channel("social", None),
            channel("radio", Some(100_000.0)),
        ],
        constraints: vec![Constraint {
            channels: Some(vec!["social".into()]),
            min: Some(0.1),
            ..Constraint::new(ConstraintKind::Share)
        }],
        model: None,
    }
}

fn model(with_gradient: bool) -> Synergy {
    Synergy {
        beta: [900_000.0, 600_000.0, 400_000.0, 150_000.0],
        k: [250_000.0, 120_000.0, 90_000.0, 40_000.0],
        gamma: 0.8,
        with_gradient,
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run() -> Result<(), Error> {
    let registry = atlas::registry().expect("the enabled optimizers register");
    let problem = rules();

    // 1. With gradients: every optimizer that takes a custom model.
    let compiled = Compiled::with_model(&problem, Arc::new(model(true)))?;
    println!("custom model with gradients:");
    for name in registry.capable_of(&compiled) {
        let config = registry.default_config(&name)?;
        let result = registry.optimize(&compiled, config.as_ref(), Default::default())?;
        let x = result.flat_allocation(&compiled)?;
        println!(
            "  {name:>12}: response {:.2} ({}), allocation {:?}",
            result.objective,
            result.status,
            x.iter().map(|v| v.round()).collect::<Vec<_>>()
        );
        assert!(compiled.is_feasible(&x));
        if name == "lbfgs" || name == "trust-region" {
            check_optimality(&compiled, &x);
        }
    }

    // 2. As a black box: gradient optimizers refuse it, naming why.
    let black_box = Compiled::with_model(&problem, Arc::new(model(false)))?;
    println!("the same model as a black box:");
    for name in registry.names() {
        let config = registry.default_config(name)?;
        match registry.optimize(&black_box, config.as_ref(), Default::default()) {
            Ok(result) => println!(
                "  {name:>12}: response {:.2} ({})",
                result.objective, result.status
            ),
            Err(Error::Unsupported {
                features,
                alternatives,
                ..
            }) => {
                println!(
                    "  {name:>12}: refused ({}); can: {}",
                    features.join(", "),
                    alternatives.join(", ")
                )
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// KKT conditions of `max R(x)` on the budget: channels strictly inside their bounds
/// share one marginal response; channels at a lower bound have a smaller one, at an upper
/// bound a larger one. Marginals by central differences of the model itself.
fn check_optimality(compiled: &Compiled, x: &[f64]) {
    let set = compiled.feasible_set();
    let m = compiled.model();
    let marginal = |i: usize| {
        let h = 1.0;
        let mut p = x.to_vec();
        let mut q = x.to_vec();
        p[i] += h;
        q[i] -= h;
        (m.value(&p) - m.value(&q)) / (2.0 * h)
    };
    // The share rule makes social's lower bound 100,000 (10% of an exact budget).
    let lower = |i: usize| if i == 2 { 100_000.0 } else { set.lower()[i] };
    let interior: Vec<usize> = (0..4)
        .filter(|&i| x[i] > lower(i) + 1.0 && x[i] < set.upper()[i] - 1.0)
        .collect();
    let lambda = marginal(interior[0]);
    for &i in &interior {
        assert!(
            (marginal(i) - lambda).abs() < 1e-4 * lambda,
            "channel {i}: {} vs {lambda}",
            marginal(i)
        );
    }
    for i in 0..4 {
        if x[i] <= lower(i) + 1.0 {
            assert!(marginal(i) <= lambda * (1.0 + 1e-4));
        } else if x[i] >= set.upper()[i] - 1.0 {
            assert!(marginal(i) >= lambda * (1.0 - 1e-4));
        }
    }
    println!("  optimality conditions hold: marginal response {lambda:.6} on interior channels {interior:?}");
}
