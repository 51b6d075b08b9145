//! On random concave problems the budget response curve rises with the budget and its
//! marginal return falls, within what the optimizer proves about each point.

mod common;

use atlas_core::problem::{AdstockKind, AdstockSpec, Channel, CurveSpec, Problem};
use atlas_core::BudgetMode;
use atlas_sweep::{BudgetGrid, Sweep};
use proptest::prelude::*;

fn curve() -> impl Strategy<Value = CurveSpec> {
    let beta = 1.0f64..5.0;
    let k = 0.05f64..2.0;
    prop_oneof![
        (beta.clone(), k.clone(), 0.3f64..=1.0).prop_map(|(b, k, s)| CurveSpec::hill(b, k, s)),
        (beta.clone(), k.clone()).prop_map(|(b, k)| CurveSpec::exponential(b, k)),
        (beta.clone(), k).prop_map(|(b, k)| CurveSpec::log(b, k)),
        (beta, 0.2f64..=1.0).prop_map(|(b, a)| CurveSpec::power(b, a)),
    ]
}

prop_compose! {
    fn concave_problem()(
        periods in 1usize..=3,
        budget_exp in 3.0f64..7.0,
        channels in prop::collection::vec((curve(), prop::option::of(0.0f64..0.8)), 2..=4),
    ) -> Problem {
        let budget = 10f64.powf(budget_exp);
        // Curves are drawn in units of the budget, so every scale is exercised alike.
        let channels = channels
            .into_iter()
            .enumerate()
            .map(|(i, (mut c, decay))| {
                c.beta = c.beta.map(|b| b * budget);
                c.k = c.k.map(|k| k * budget);
                let mut ch = Channel::new(format!("c{i}"), c);
                ch.adstock = decay.map(|decay| AdstockSpec {
                    kind: AdstockKind::Geometric,
                    decay,
                    max_lag: 3,
                    normalize: true,
                });
                ch
            })
            .collect();
        Problem {
            name: "random concave".into(),
            periods,
            budget,
            budget_mode: BudgetMode::Exact,
            objective: Default::default(),
            margin: 1.0,
            target_response: None,
            discount: 0.0,
            max_active_channels: None,
            channels,
            constraints: Vec::new(),
            model: None,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn budget_curves_rise_and_their_marginal_returns_fall(p in concave_problem()) {
        let reg = common::registry();
        let r = Sweep::new(&reg, p)
            .optimizer("convex")
            .budgets(BudgetGrid::parse("0.5x:2x:6").unwrap())
            .jobs(2)
            .run()
            .unwrap();
        prop_assert!(r.errors.is_empty(), "{:?}", r.errors);
        let s = &r.scenarios;
        prop_assert_eq!(s.len(), 6);
        // What `convex` proves: the optimum of each point lies in [objective, bound].
        let slack: Vec<f64> = s.iter().map(|x| x.bound.unwrap() - x.objective).collect();
        let eps = |i: usize| slack[i].max(0.0) + 1e-12 * s[i].objective.abs().max(1.0);
        for i in 1..s.len() {
            // f*(b) is non-decreasing: objective[i] >= f*(b[i-1]) - eps >= objective[i-1] - eps.
            prop_assert!(
                s[i].objective >= s[i - 1].objective - eps(i) - eps(i - 1),
                "objective falls from {} to {} between budgets {} and {}",
                s[i - 1].objective, s[i].objective, s[i - 1].budget, s[i].budget
            );
            // Concavity: secant slopes fall; each point's error moves a slope by at most
            // eps / (budget step).
            let step = s[1].budget - s[0].budget;
            let tol = 4.0 * (0..s.len()).map(eps).fold(0.0, f64::max) / step;
            let (a, b) = (s[i - 1].marginal_return.unwrap(), s[i].marginal_return.unwrap());
            prop_assert!(b <= a + tol, "marginal return rises from {a} to {b} (tolerance {tol})");
        }
    }
}
