//! Scale invariance: multiplying the budget, every bound and every curve's spend scale by
//! a factor multiplies the allocation by that factor. Solvers work in internally scaled
//! units, so budgets of 1e3 and 1e9 behave alike.

mod common;

use atlas::problem::{CurveKind, Problem};
use atlas::{Compiled, SolveOptions};

/// The same problem with spend measured in units `1 / c`: every amount times `c`, every
/// curve reparametrized so that `f'(c a) = f(a)`.
fn rescale(p: &Problem, c: f64) -> Problem {
    let mut q = p.clone();
    q.budget *= c;
    // Profit trades response against spend: a unit of response is worth c times more
    // spend units. Responses (and target_response) do not change with the spend unit.
    q.margin *= c;
    for ch in &mut q.channels {
        for v in [
            &mut ch.min,
            &mut ch.max,
            &mut ch.period_min,
            &mut ch.period_max,
            &mut ch.spend_unit,
            &mut ch.min_active,
        ]
        .into_iter()
        .flatten()
        {
            *v *= c;
        }
        if let Some(r) = ch.response.as_mut() {
            match r.kind {
                CurveKind::Linear => r.beta = r.beta.map(|b| b / c),
                CurveKind::Hill | CurveKind::Exponential | CurveKind::Log => {
                    r.k = r.k.map(|k| k * c)
                }
                CurveKind::Logistic => r.lam = r.lam.map(|l| l / c),
                CurveKind::Power => {
                    let alpha = r.alpha.unwrap_or(1.0);
                    r.beta = r.beta.map(|b| b / c.powf(alpha));
                }
            }
        }
    }
    for con in &mut q.constraints {
        use atlas::problem::ConstraintKind;
        if con.kind == ConstraintKind::Spend {
            con.min = con.min.map(|v| v * c);
            con.max = con.max.map(|v| v * c);
        }
        if con.kind == ConstraintKind::Linear {
            con.rhs = con.rhs.map(|v| v * c);
        }
        if con.kind == ConstraintKind::MinRoi {
            con.value = con.value.map(|v| v / c);
        }
    }
    q
}

fn allocation(registry: &atlas::Registry, problem: &Problem, optimizer: &str) -> (Vec<f64>, f64) {
    let compiled = Compiled::new(problem).unwrap();
    let config = registry.default_config(optimizer).unwrap();
    let result = registry
        .optimize(&compiled, config.as_ref(), SolveOptions::default())
        .unwrap();
    assert!(compiled.is_feasible(&result.flat_allocation(&compiled).unwrap()));
    (result.flat_allocation(&compiled).unwrap(), result.objective)
}

#[test]
fn allocations_scale_with_the_spend_unit() {
    let registry = atlas::registry();
    for file in [
        "quickstart.toml",
        "retail_q4.toml",
        "profit.toml",
        "target_spend.toml",
    ] {
        let problem = Problem::from_path(common::problems_dir().join(file)).unwrap();
        let (base, base_objective) = allocation(&registry, &problem, "lbfgs");
        let budget = problem.budget;
        for c in [1e-3, 1e3] {
            let scaled = rescale(&problem, c);
            let (x, objective) = allocation(&registry, &scaled, "lbfgs");
            for (a, b) in base.iter().zip(&x) {
                assert!(
                    (a * c - b).abs() <= 1e-6 * budget * c,
                    "{file} x{c}: {} vs {b}",
                    a * c
                );
            }
            // Profit and min_spend objectives are in spend units; response is not.
            let expected = match problem.objective {
                atlas::problem::ObjectiveKind::Response => base_objective,
                _ => base_objective * c,
            };
            assert!(
                (objective - expected).abs() <= 1e-8 * expected.abs(),
                "{file} x{c}: {objective} vs {expected}"
            );
        }
    }
}

#[test]
fn budgets_of_a_thousand_and_a_billion_give_the_same_relative_allocation() {
    let registry = atlas::registry();
    let problem = Problem::from_path(common::problems_dir().join("retail_q4.toml")).unwrap();
    let small = rescale(&problem, 1e3 / problem.budget);
    let large = rescale(&problem, 1e9 / problem.budget);
    let (a, _) = allocation(&registry, &small, "lbfgs");
    let (b, _) = allocation(&registry, &large, "lbfgs");
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x / 1e3 - y / 1e9).abs() <= 1e-6,
            "{} vs {}",
            x / 1e3,
            y / 1e9
        );
    }
}
