//! `auto` (issue 17, item 5): its choice on every example problem equals running the chosen
//! optimizer directly; the result's `selected` field on the command line; a first choice
//! that refuses (by its capabilities, when its solve starts, or missing from the build)
//! passes the problem to the next candidate; black-box models go to `tpe` or `cmaes`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use atlas::problem::{Channel, Constraint, ConstraintKind, CurveSpec, ObjectiveKind};
use atlas::{
    BudgetMode, Capabilities, Compiled, ConfigError, Context, Derivatives, Error, Model,
    OptimizationResult, Problem, Registry, Solution, SolveOptions, Solver, SolverConfig,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

fn registry() -> Registry {
    atlas::registry().expect("the enabled optimizers register")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/problems")
        .join(name)
}

fn settings(value: Value) -> Map<String, Value> {
    serde_json::from_value(value).unwrap()
}

/// Solves `compiled` with `name` and `settings` through `registry`, default options.
fn solve(
    registry: &Registry,
    compiled: &Compiled,
    name: &str,
    with: Value,
) -> Result<OptimizationResult, Error> {
    let config = registry.config(name, settings(with))?;
    registry.optimize(compiled, config.as_ref(), SolveOptions::default())
}

/// `auto`'s result is the chosen optimizer's own: the same plan, objective, bound, status
/// and work; only the name (`auto`), `selected` and the measured times differ.
fn assert_same_solve(auto: &OptimizationResult, direct: &OptimizationResult) {
    assert_eq!(auto.optimizer, "auto");
    assert_eq!(direct.selected, None);
    assert_eq!(auto.status, direct.status);
    assert_eq!(auto.allocation, direct.allocation);
    assert_eq!(auto.objective, direct.objective);
    assert_eq!(auto.bound, direct.bound);
    assert_eq!(auto.max_violation, direct.max_violation);
    assert_eq!(auto.budget_multiplier, direct.budget_multiplier);
    assert_eq!(auto.metrics.evaluations, direct.metrics.evaluations);
    assert_eq!(
        auto.metrics.gradient_evaluations,
        direct.metrics.gradient_evaluations
    );
    assert_eq!(auto.metrics.iterations, direct.metrics.iterations);
}

#[test]
fn every_example_problem_goes_to_the_backend_of_the_table() {
    let registry = registry();
    let expected = [
        ("large.toml", "convex"),
        ("mixed_integer.toml", "milp"),
        ("profit.toml", "convex"),
        ("quickstart.toml", "convex"),
        ("retail_q4.toml", "convex"),
        ("scurve.toml", "milp"),
        ("target_spend.toml", "convex"),
    ];
    // Every example problem is in the table above.
    let mut files: Vec<String> = std::fs::read_dir(example(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".toml"))
        .collect();
    files.sort();
    let listed: Vec<&str> = expected.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, listed);
    for (file, backend) in expected {
        let compiled = atlas::load_problem(example(file)).unwrap();
        let auto = solve(&registry, &compiled, "auto", json!({})).unwrap();
        let selected = auto.selected.clone().expect("auto says what it chose");
        assert_eq!(selected.optimizer, backend, "{file}: {}", selected.reason);
        let direct = solve(&registry, &compiled, backend, json!({})).unwrap();
        assert_same_solve(&auto, &direct);
        let why = if backend == "convex" {
            "concave curves"
        } else if file == "scurve.toml" {
            "S-curves"
        } else {
            "integer and activation rules"
        };
        assert!(selected.reason.contains(why), "{file}: {}", selected.reason);
        // The core's own check of what the optimizers promise.
        assert!(
            auto.max_violation <= compiled.feasibility_tolerance(),
            "{file}"
        );
        // `choose` says the same without solving.
        let config = registry.default_config("auto").unwrap();
        assert!(config.refuses(&compiled).is_empty(), "{file}");
        let chosen = atlas::auto::AutoConfig::over(&registry)
            .choose(&compiled)
            .unwrap();
        assert_eq!(chosen, selected, "{file}");
    }
}

/// `scurve.toml` with a `min_roi` rule, which `milp` cannot honour.
fn s_curves_with_min_roi() -> Compiled {
    let mut problem = Problem::from_path(example("scurve.toml")).unwrap();
    problem.constraints.push(Constraint {
        value: Some(0.5),
        ..Constraint::new(ConstraintKind::MinRoi)
    });
    Compiled::new(&problem).unwrap()
}

#[test]
fn a_first_choice_that_cannot_honour_a_rule_passes_the_problem_on() {
    let registry = registry();
    let compiled = s_curves_with_min_roi();
    let auto = solve(&registry, &compiled, "auto", json!({})).unwrap();
    let selected = auto.selected.clone().unwrap();
    assert_eq!(selected.optimizer, "lbfgs", "{}", selected.reason);
    assert!(
        selected.reason.contains("16 starts")
            && selected
                .reason
                .contains("`milp` cannot honour the `min_roi` constraint"),
        "{}",
        selected.reason
    );
    let direct = solve(&registry, &compiled, "lbfgs", json!({"multi_start": 16})).unwrap();
    assert_same_solve(&auto, &direct);
    // Its own setting reaches the chosen optimizer.
    let four = solve(&registry, &compiled, "auto", json!({"multi_start": 4})).unwrap();
    let direct = solve(&registry, &compiled, "lbfgs", json!({"multi_start": 4})).unwrap();
    assert_same_solve(&four, &direct);
}

#[test]
fn without_milp_s_curves_go_to_multi_start_lbfgs_and_integer_rules_are_refused() {
    let mut registry = Registry::new();
    atlas::atlas_lbfgs::register(&mut registry).unwrap();
    atlas::atlas_convex::register(&mut registry).unwrap();
    atlas::atlas_cmaes::register(&mut registry).unwrap();
    atlas::auto::register(&mut registry).unwrap();
    let compiled = atlas::load_problem(example("scurve.toml")).unwrap();
    let auto = solve(&registry, &compiled, "auto", json!({})).unwrap();
    let selected = auto.selected.clone().unwrap();
    assert_eq!(selected.optimizer, "lbfgs");
    assert!(
        selected.reason.contains("`milp` is not in this build"),
        "{}",
        selected.reason
    );
    let direct = solve(&registry, &compiled, "lbfgs", json!({"multi_start": 16})).unwrap();
    assert_same_solve(&auto, &direct);

    // Nothing in this build honours the integer rules: refused before solving, naming
    // them, with no alternative.
    let compiled = atlas::load_problem(example("mixed_integer.toml")).unwrap();
    let err = solve(&registry, &compiled, "auto", json!({})).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let Error::Unsupported {
        optimizer,
        features,
        alternatives,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(optimizer, "auto");
    assert!(alternatives.is_empty(), "{alternatives:?}");
    let text = features.join("; ");
    assert!(
        text.contains("spend_unit") && text.contains("max_active_channels"),
        "{text}"
    );
    assert!(!registry.capable_of(&compiled).contains(&"auto".to_string()));
}

/// A stand-in registered as `convex` that refuses every problem when its solve starts.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct RefusingConvex {}

#[typetag::serde(name = "refusing-convex")]
impl SolverConfig for RefusingConvex {
    fn name(&self) -> &'static str {
        "convex"
    }
    fn summary(&self) -> &'static str {
        "refuses every problem when its solve starts (a test of auto)"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            needs_gradient: false,
            needs_hessian: false,
            needs_structure: true,
            handles_nonconvex: false,
            integer_features: false,
            nonlinear_constraints: true,
            proves_bound: true,
            parallel: false,
        }
    }
    fn check(&self) -> Result<(), ConfigError> {
        Ok(())
    }
    fn build(&self) -> Result<Box<dyn Solver>, ConfigError> {
        Ok(Box::new(Refusing))
    }
    fn settings(&self) -> Value {
        json!({})
    }
}

struct Refusing;

impl Solver for Refusing {
    fn name(&self) -> &str {
        "convex"
    }
    fn solve(&self, _ctx: &Context<'_>) -> Result<Solution, Error> {
        Err(Error::Unsupported {
            optimizer: "convex".into(),
            features: vec!["this test's refusal".into()],
            alternatives: Vec::new(),
        })
    }
}

#[test]
fn a_first_choice_that_refuses_when_its_solve_starts_passes_the_problem_on() {
    let mut registry = Registry::new();
    registry.register::<RefusingConvex>().unwrap();
    atlas::atlas_lbfgs::register(&mut registry).unwrap();
    atlas::auto::register(&mut registry).unwrap();
    let compiled = atlas::load_problem(example("quickstart.toml")).unwrap();
    // By its capabilities `convex` comes first...
    let chosen = atlas::auto::AutoConfig::over(&registry)
        .choose(&compiled)
        .unwrap();
    assert_eq!(chosen.optimizer, "convex");
    // ... and when it refuses, `lbfgs` solves.
    let auto = solve(&registry, &compiled, "auto", json!({})).unwrap();
    let selected = auto.selected.clone().unwrap();
    assert_eq!(selected.optimizer, "lbfgs");
    assert!(
        selected
            .reason
            .contains("`convex` refused this test's refusal"),
        "{}",
        selected.reason
    );
    let direct = solve(&registry, &compiled, "lbfgs", json!({})).unwrap();
    assert_same_solve(&auto, &direct);
}

/// `sum_c beta_c ln(1 + x_c / k_c)`: concave, offered with or without its gradient.
struct Logs {
    n: usize,
    with_gradient: bool,
}

impl Model for Logs {
    fn dim(&self) -> usize {
        self.n
    }
    fn value(&self, x: &[f64]) -> f64 {
        x.iter()
            .enumerate()
            .map(|(c, v)| (100.0 + c as f64) * (v.max(0.0) / 50.0).ln_1p())
            .sum()
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
        for (c, g) in grad.iter_mut().enumerate() {
            *g = (100.0 + c as f64) / (50.0 + x[c].max(0.0));
        }
        Some(self.value(x))
    }
    fn is_concave(&self) -> Option<bool> {
        Some(true)
    }
}

fn custom(n: usize, with_gradient: bool) -> Compiled {
    let problem = Problem {
        name: "logs".into(),
        periods: 1,
        budget: 1_000.0,
        budget_mode: BudgetMode::Exact,
        objective: ObjectiveKind::Response,
        margin: 1.0,
        target_response: None,
        discount: 0.0,
        max_active_channels: None,
        channels: (0..n)
            .map(|c| Channel {
                response: None,
                ..Channel::new(format!("c{c}"), CurveSpec::linear(0.0))
            })
            .collect(),
        constraints: Vec::new(),
        model: None,
    };
    Compiled::with_model(&problem, Arc::new(Logs { n, with_gradient })).unwrap()
}

#[test]
fn custom_models_go_by_their_derivatives_and_size() {
    let registry = registry();
    // The solve's seed is an option, not one of auto's settings.
    let err = solve(&registry, &custom(3, false), "auto", json!({"seed": 7})).unwrap_err();
    assert!(err.to_string().contains("unknown setting"), "{err}");
    for (n, with_gradient, backend, why) in [
        (3, true, "lbfgs", "a model with gradients"),
        (3, false, "tpe", "values only, 3 variables (at most 10)"),
        (12, false, "cmaes", "values only, 12 variables"),
    ] {
        let compiled = custom(n, with_gradient);
        let options = || SolveOptions {
            seed: Some(7),
            ..Default::default()
        };
        let config = registry.default_config("auto").unwrap();
        let auto = registry
            .optimize(&compiled, config.as_ref(), options())
            .unwrap();
        let selected = auto.selected.clone().unwrap();
        assert_eq!(selected.optimizer, backend, "{n} {with_gradient}");
        assert!(selected.reason.contains(why), "{}", selected.reason);
        let config = registry.default_config(backend).unwrap();
        let direct = registry
            .optimize(&compiled, config.as_ref(), options())
            .unwrap();
        assert_same_solve(&auto, &direct);
    }
}

fn atlas_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_line_defaults_to_auto_and_shows_its_choice() {
    let problem = "examples/problems/quickstart.toml";
    let (code, out, err) = atlas_cli(&["optimize", problem, "--format", "json", "-q"]);
    assert_eq!(code, 0, "{err}");
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["optimizer"], "auto");
    assert_eq!(result["selected"]["optimizer"], "convex");
    let reason = result["selected"]["reason"].as_str().unwrap();
    assert!(reason.contains("concave curves"), "{reason}");
    assert_eq!(result["selected"].as_object().unwrap().len(), 2);
    // The result file reads back as the contract's type.
    let back: OptimizationResult = serde_json::from_value(result.clone()).unwrap();
    assert_eq!(back.selected.unwrap().optimizer, "convex");

    // A named optimizer: no `selected`.
    let (code, out, err) = atlas_cli(&["optimize", problem, "-O", "lbfgs", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["optimizer"], "lbfgs");
    assert!(result.get("selected").is_none(), "{out}");

    // The table names both, and the reason.
    let (code, out, err) = atlas_cli(&["optimize", problem, "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("optimizer auto → convex"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("selected") && l.contains("convex: concave curves")),
        "{out}"
    );
    let (code, out, _) = atlas_cli(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Default optimizer: `auto`"), "{out}");
}
