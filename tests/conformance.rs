//! One conformance suite for every registered optimizer: the same problems, the same
//! checks (feasibility, reported objective = re-evaluated objective, result shape, bound
//! validity, refusals that name features, optima on concave problems).

mod common;

use atlas::{Compiled, Error, OptimizationResult, Registry, SolveOptions};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// What each optimizer is held to on the shared problems.
struct Expectation {
    /// Settings applied over the defaults.
    settings: Map<String, Value>,
    /// Largest relative gap tolerated on concave problems.
    concave_tolerance: f64,
    /// Problems with more variables are skipped (black-box methods on 2,600 variables).
    max_variables: usize,
}

fn expectation(name: &str) -> Expectation {
    let settings = |v: Value| v.as_object().cloned().unwrap_or_default();
    match name {
        "lbfgs" | "trust-region" | "convex" => Expectation {
            settings: Map::new(),
            concave_tolerance: 1e-6,
            max_variables: usize::MAX,
        },
        "milp" => Expectation {
            settings: Map::new(),
            concave_tolerance: 5e-3,
            max_variables: 200,
        },
        "cmaes" => Expectation {
            settings: settings(json!({ "seed": 1 })),
            concave_tolerance: 1e-3,
            max_variables: 200,
        },
        "tpe" => Expectation {
            settings: settings(json!({ "seed": 1 })),
            concave_tolerance: 2e-2,
            max_variables: 30,
        },
        // Whichever it picks: `milp`'s tolerance on concave problems is the loosest of
        // what it picks for the built-in model.
        "auto" => Expectation {
            settings: Map::new(),
            concave_tolerance: 5e-3,
            max_variables: 200,
        },
        // An optimizer this suite does not know yet: feasibility and shape only.
        _ => Expectation {
            settings: Map::new(),
            concave_tolerance: f64::INFINITY,
            max_variables: 30,
        },
    }
}

const CONTRACT_FIELDS: [&str; 10] = [
    "problem",
    "optimizer",
    "status",
    "objective",
    "bound",
    "allocation",
    "totals",
    "total_spend",
    "max_violation",
    "metrics",
];
const METRIC_FIELDS: [&str; 7] = [
    "wall_time_s",
    "evaluations",
    "gradient_evaluations",
    "iterations",
    "model_time_s",
    "constraint_time_s",
    "peak_memory_mb",
];

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

/// The checks every result must pass, whatever the optimizer.
fn check_result(compiled: &Compiled, result: &OptimizationResult) {
    let name = format!("{} on {}", result.optimizer, compiled.name());
    let x = result
        .flat_allocation(compiled)
        .expect("allocation in the problem's layout");
    assert!(
        compiled.is_feasible(&x),
        "{name}: infeasible, max violation {} ({:?})",
        result.max_violation,
        compiled.violations(&x, compiled.feasibility_tolerance())
    );
    let fresh = compiled.objective_value(&x);
    assert!(
        (fresh - result.objective).abs() <= 1e-12 * fresh.abs().max(1.0),
        "{name}: reported objective {} but the allocation evaluates to {fresh}",
        result.objective
    );
    assert!(
        (compiled.max_violation(&x) - result.max_violation).abs()
            <= 1e-9 * compiled.budget().max(1.0)
    );
    let names: Vec<&String> = result.allocation.keys().collect();
    assert_eq!(
        names,
        compiled.layout().channels().iter().collect::<Vec<_>>(),
        "{name}: channel order"
    );
    for (c, total) in result.totals.values().enumerate() {
        let sum: f64 = compiled.layout().channel_slice(&x, c).iter().sum();
        assert!((sum - total).abs() <= 1e-9 * compiled.budget());
    }
    assert!(
        (result.totals.values().sum::<f64>() - result.total_spend).abs()
            <= 1e-9 * compiled.budget()
    );
    // The JSON is exactly the contract's.
    let v = serde_json::to_value(result).expect("serializable");
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    // `auto` adds the optional field `selected` (contract 1.1), and only `auto`.
    let mut expected = CONTRACT_FIELDS.to_vec();
    if result.optimizer == "auto" {
        expected.push("selected");
    }
    assert_eq!(sorted(keys), sorted(expected), "{name}: result fields");
    let metric_keys: Vec<&str> = v["metrics"]
        .as_object()
        .expect("metrics")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        sorted(metric_keys),
        sorted(METRIC_FIELDS.to_vec()),
        "{name}: metric fields"
    );
    let back: OptimizationResult = serde_json::from_value(v).expect("round trip");
    assert_eq!(&back, result);
    assert!(result.metrics.wall_time_s >= result.metrics.model_time_s);
    if let Some(bound) = result.bound {
        let maximize = compiled.objective().maximize();
        let slack = 1e-9 * bound.abs().max(1.0);
        if maximize {
            assert!(
                bound >= result.objective - slack,
                "{name}: bound {bound} below objective"
            );
        } else {
            assert!(
                bound <= result.objective + slack,
                "{name}: bound {bound} above objective"
            );
        }
    }
}

fn solve(
    registry: &Registry,
    optimizer: &str,
    compiled: &Compiled,
) -> Result<OptimizationResult, Error> {
    let config = registry.config(optimizer, expectation(optimizer).settings)?;
    registry.optimize(compiled, config.as_ref(), SolveOptions::default())
}

#[test]
fn every_optimizer_on_every_example_problem() {
    let registry = atlas::registry().expect("the enabled optimizers register");
    assert!(!registry.names().is_empty());
    let optima = common::optima();
    for optimizer in registry.names() {
        let expect = expectation(optimizer);
        for path in common::problem_files() {
            let file = path.file_name().unwrap().to_string_lossy().to_string();
            let compiled = Compiled::from_path(&path).expect("example problems are valid");
            if compiled.layout().len() > expect.max_variables {
                continue;
            }
            let known = &optima[&file];
            match solve(&registry, optimizer, &compiled) {
                Ok(result) => {
                    check_result(&compiled, &result);
                    let best = known["best_known"].as_f64().expect("best_known");
                    let maximize = known["sense"] == "maximize";
                    if let Some(bound) = result.bound {
                        // A valid bound is never on the wrong side of the best known value.
                        let slack = 1e-7 * best.abs();
                        if maximize {
                            assert!(
                                bound >= best - slack,
                                "{optimizer} on {file}: bound {bound} below best known {best}"
                            );
                        } else {
                            assert!(
                                bound <= best + slack,
                                "{optimizer} on {file}: bound {bound} above best known {best}"
                            );
                        }
                    }
                    if known["concave"] == true
                        && known["integer_features"]
                            .as_array()
                            .is_some_and(|a| a.is_empty())
                    {
                        let g = common::gap(result.objective, best, maximize);
                        assert!(
                            g <= expect.concave_tolerance,
                            "{optimizer} on {file}: gap {g:e} above {:e} (objective {}, best {best})",
                            expect.concave_tolerance,
                            result.objective
                        );
                        // Nobody beats a certified optimum by more than rounding.
                        assert!(
                            g >= -1e-8,
                            "{optimizer} on {file}: beats the certified optimum: {g:e}"
                        );
                    }
                }
                Err(Error::Unsupported {
                    optimizer: o,
                    features,
                    alternatives,
                }) => {
                    // Refusals name real features of the problem, never silently pass.
                    assert_eq!(o, optimizer);
                    assert!(!features.is_empty());
                    let described: Vec<String> =
                        compiled.features().iter().map(|f| f.describe()).collect();
                    for f in &features {
                        assert!(
                            described.contains(f),
                            "{optimizer} on {file}: refused for {f}, not a feature of the problem"
                        );
                    }
                    assert!(!alternatives.contains(&optimizer.to_string()));
                }
                Err(e) => panic!("{optimizer} on {file}: {e}"),
            }
        }
    }
}

#[test]
fn the_integer_problem_is_refused_by_continuous_optimizers_with_the_features_named() {
    let registry = atlas::registry().expect("the enabled optimizers register");
    let compiled = Compiled::from_path(common::problems_dir().join("mixed_integer.toml")).unwrap();
    for optimizer in registry.names() {
        let caps = registry.default_config(optimizer).unwrap().capabilities();
        if caps.integer_features {
            continue;
        }
        let err = solve(&registry, optimizer, &compiled).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.exit_code(), 2);
        for feature in [
            "spend_unit",
            "min_active",
            "fixed_cost",
            "max_active_channels",
        ] {
            assert!(text.contains(feature), "{optimizer}: {text}");
        }
        let capable: Vec<String> = registry.capable_of(&compiled);
        match &err {
            Error::Unsupported { alternatives, .. } => assert_eq!(alternatives, &capable),
            other => panic!("expected a refusal, got {other}"),
        }
    }
}

/// Random small concave problems: a few channels and periods, mixed curves, adstock,
/// a share rule.
fn small_problem() -> impl Strategy<Value = atlas::Problem> {
    use atlas::problem::{
        AdstockKind, AdstockSpec, Channel, Constraint, ConstraintKind, CurveSpec,
    };
    let curve = prop_oneof![
        (1e3f64..1e6, 1e3f64..1e5).prop_map(|(b, k)| CurveSpec::hill(b, k, 1.0)),
        (1e3f64..1e6, 1e3f64..1e5).prop_map(|(b, k)| CurveSpec::exponential(b, k)),
        (1e3f64..1e6, 1e3f64..1e5).prop_map(|(b, k)| CurveSpec::log(b, k)),
        (1.0f64..500.0, 0.3f64..0.9).prop_map(|(b, a)| CurveSpec::power(b, a)),
        (1e3f64..1e6, 1e-5f64..1e-3).prop_map(|(b, l)| CurveSpec::logistic(b, l)),
    ];
    let channel = (
        curve,
        prop::option::of((0.0f64..0.8, 1usize..4)),
        prop::option::of(0.3f64..1.0),
    );
    (
        prop::collection::vec(channel, 2..5),
        1usize..4,
        1e4f64..1e7,
        prop::option::of(0.05f64..0.4),
    )
        .prop_map(|(channels, periods, budget, share)| {
            let n = channels.len();
            let channels = channels
                .into_iter()
                .enumerate()
                .map(|(i, (curve, adstock, cap))| Channel {
                    // The last channel is uncapped, so the budget can always be spent.
                    max: cap.filter(|_| i + 1 < n).map(|c| c * budget),
                    adstock: adstock.map(|(decay, max_lag)| AdstockSpec {
                        kind: AdstockKind::Geometric,
                        decay,
                        max_lag,
                        normalize: true,
                    }),
                    ..Channel::new(format!("c{i}"), curve)
                })
                .collect();
            let constraints = share
                .map(|m| {
                    vec![Constraint {
                        channels: Some(vec![format!("c{}", n - 1)]),
                        min: Some(m),
                        ..Constraint::new(ConstraintKind::Share)
                    }]
                })
                .unwrap_or_default();
            atlas::Problem {
                name: "random".into(),
                periods,
                budget,
                budget_mode: atlas::BudgetMode::Exact,
                objective: atlas::problem::ObjectiveKind::Response,
                margin: 1.0,
                target_response: None,
                discount: 0.0,
                max_active_channels: None,
                channels,
                constraints,
                model: None,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_optimizer_returns_feasible_results_with_honest_objectives(problem in small_problem()) {
        let registry = atlas::registry().expect("the enabled optimizers register");
        let compiled = Compiled::new(&problem).unwrap();
        for optimizer in registry.names() {
            if compiled.layout().len() > expectation(optimizer).max_variables {
                continue;
            }
            match solve(&registry, optimizer, &compiled) {
                Ok(result) => check_result(&compiled, &result),
                Err(Error::Unsupported { .. }) => {}
                Err(e) => panic!("{optimizer}: {e}"),
            }
        }
    }
}
