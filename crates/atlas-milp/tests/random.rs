//! Random small problems: `milp` is feasible, honest about its objective and bound, and
//! at least as good as a local method: equal on concave problems (the polish reaches the
//! optimum), never worse than multi-start L-BFGS on S-curves (it is global).

mod common;

use atlas_core::problem::{
    AdstockKind, AdstockSpec, Channel, Constraint, ConstraintKind, CurveSpec, ObjectiveKind,
};
use atlas_core::{BudgetMode, Compiled, OptimizationResult, Problem, Registry, SolveOptions};
use common::assert_feasible;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn registry() -> Registry {
    let mut reg = Registry::new();
    atlas_milp::register(&mut reg).unwrap();
    atlas_lbfgs::register(&mut reg).unwrap();
    reg
}

fn run(reg: &Registry, name: &str, c: &Compiled, settings: Value) -> OptimizationResult {
    let map: Map<String, Value> = settings.as_object().cloned().unwrap_or_default();
    let config = reg.config(name, map).unwrap();
    reg.optimize(c, config.as_ref(), SolveOptions::default())
        .unwrap()
}

fn problem(s_curves: bool) -> impl Strategy<Value = Problem> {
    let concave = prop_oneof![
        (1e3f64..1e6, 1e3f64..1e5).prop_map(|(b, k)| CurveSpec::hill(b, k, 1.0)),
        (1e3f64..1e6, 1e3f64..1e5).prop_map(|(b, k)| CurveSpec::exponential(b, k)),
        (1e3f64..1e6, 1e3f64..1e5).prop_map(|(b, k)| CurveSpec::log(b, k)),
        (1.0f64..500.0, 0.3f64..0.9).prop_map(|(b, a)| CurveSpec::power(b, a)),
        (1e3f64..1e6, 1e-5f64..1e-3).prop_map(|(b, l)| CurveSpec::logistic(b, l)),
    ];
    let curve = if s_curves {
        (1e4f64..1e6, 1e4f64..3e5, 1.3f64..3.5)
            .prop_map(|(b, k, s)| CurveSpec::hill(b, k, s))
            .boxed()
    } else {
        concave.boxed()
    };
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
        prop::bool::ANY,
    )
        .prop_map(|(channels, periods, budget, share, profit)| {
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
            Problem {
                name: "random".into(),
                periods,
                budget,
                budget_mode: if profit {
                    BudgetMode::AtMost
                } else {
                    BudgetMode::Exact
                },
                objective: if profit {
                    ObjectiveKind::Profit
                } else {
                    ObjectiveKind::Response
                },
                margin: 3.0,
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
    fn concave_problems_reach_the_local_optimum_with_a_valid_bound(p in problem(false)) {
        let reg = registry();
        let c = Compiled::new(&p).unwrap();
        let milp = run(&reg, "milp", &c, json!({}));
        let lbfgs = run(&reg, "lbfgs", &c, json!({}));
        assert_feasible(&c, &milp);
        let scale = lbfgs.objective.abs().max(1.0);
        // Concave: the local optimum is the global one, and the polish reaches it.
        prop_assert!((milp.objective - lbfgs.objective).abs() <= 1e-6 * scale,
            "milp {} vs lbfgs {}", milp.objective, lbfgs.objective);
        if let Some(bound) = milp.bound {
            prop_assert!(bound >= lbfgs.objective - 1e-9 * scale, "bound {bound} below lbfgs {}", lbfgs.objective);
        }
    }

    #[test]
    fn s_curves_are_never_worse_than_multi_start_local_search(p in problem(true)) {
        let reg = registry();
        let c = Compiled::new(&p).unwrap();
        let milp = run(&reg, "milp", &c, json!({}));
        let lbfgs = run(&reg, "lbfgs", &c, json!({ "multi_start": 16, "seed": 3 }));
        assert_feasible(&c, &milp);
        let scale = lbfgs.objective.abs().max(1.0);
        let bound = milp.bound.expect("a bound");
        // The bound holds for every feasible allocation, the local search's included.
        prop_assert!(bound >= lbfgs.objective - 1e-9 * scale, "bound {bound} below lbfgs {}", lbfgs.objective);
        // Global within twice the curve error (default 1e-3 of the even split's response,
        // which on these problems is below the optimum's).
        prop_assert!(milp.objective >= lbfgs.objective - 2e-3 * scale,
            "milp {} vs lbfgs {}", milp.objective, lbfgs.objective);
    }
}
