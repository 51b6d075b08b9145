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
    let registry = atlas::registry().expect("the enabled optimizers register");
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
    let registry = atlas::registry().expect("the enabled optimizers register");
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

/// Budgets the scale test covers: every decade pair from a millionth to a quadrillion.
const BUDGETS: [f64; 8] = [1e-6, 1e-3, 1.0, 1e3, 1e6, 1e9, 1e12, 1e15];

/// The gap an optimizer may leave to the certified optimum, at any scale: its stated
/// tolerance (`convex`'s `gap_tolerance`, `milp`'s `max_error`, the gradient methods'
/// local convergence on these concave or single-start problems), and for the
/// black-box searches the gap they leave at the file's own budget plus a little: scale
/// must not change what they find.
fn tolerance(optimizer: &str, base_gap: f64) -> f64 {
    match optimizer {
        "lbfgs" | "trust-region" => 1e-5,
        "convex" => 1e-5,
        "milp" => 2e-3,
        _ => base_gap.max(0.0) + 2e-3,
    }
}

/// Every optimizer on the example problems it can solve, at budgets from 1e-6 to 1e15
/// (the problem rescaled so that only the unit of spend changes): the plan is feasible
/// and its objective, in the new units, is within the optimizer's tolerance of the
/// certified optimum. Prints the table of the largest gap per budget and optimizer.
#[test]
#[ignore = "not yet run to the end before the session's deadline; run with --ignored (see the report of issue 12)"]
fn every_optimizer_gives_the_same_plan_from_a_millionth_to_a_quadrillion() {
    let registry = atlas::registry().expect("the enabled optimizers register");
    let optima = common::optima();
    let files = [
        "quickstart.toml",
        "retail_q4.toml",
        "profit.toml",
        "target_spend.toml",
        "scurve.toml",
        "mixed_integer.toml",
    ];
    let names: Vec<&str> = registry.names();
    // table[budget][optimizer] = largest gap over the files
    let mut table = vec![vec![f64::NAN; names.len()]; BUDGETS.len()];
    let mut failures = Vec::new();
    for file in files {
        let problem = Problem::from_path(common::problems_dir().join(file)).unwrap();
        let best = optima[file]["best_known"].as_f64().unwrap();
        let maximize = optima[file]["sense"] == "maximize";
        let base = Compiled::new(&problem).unwrap();
        let capable = registry.capable_of(&base);
        for (o, name) in names.iter().enumerate() {
            if !capable.iter().any(|c| c == name) {
                continue;
            }
            let config = registry.default_config(name).unwrap();
            let solve = |p: &Problem| -> Result<f64, String> {
                let compiled = Compiled::new(p).map_err(|e| e.to_string())?;
                let options = SolveOptions {
                    seed: Some(7),
                    ..Default::default()
                };
                let result = registry
                    .optimize(&compiled, config.as_ref(), options)
                    .map_err(|e| e.to_string())?;
                compiled.check_result(&result).map_err(|e| e.to_string())?;
                Ok(result.objective)
            };
            let gap_at = |c: f64, objective: f64| {
                let expected = match problem.objective {
                    atlas::problem::ObjectiveKind::Response => best,
                    _ => best * c,
                };
                // Relative to the optimum itself: at a budget of 1e-6 a profit is tiny.
                let g = (expected - objective) / expected.abs();
                if maximize {
                    g
                } else {
                    -g
                }
            };
            let base_gap = match solve(&problem) {
                Ok(objective) => gap_at(1.0, objective),
                Err(e) => {
                    failures.push(format!("{name} on {file} at its own budget: {e}"));
                    continue;
                }
            };
            let limit = tolerance(name, base_gap);
            for (b, &budget) in BUDGETS.iter().enumerate() {
                let c = budget / problem.budget;
                let scaled = rescale(&problem, c);
                let gap = match solve(&scaled) {
                    Ok(objective) => gap_at(c, objective),
                    Err(e) => {
                        failures.push(format!("{name} on {file} at budget {budget:e}: {e}"));
                        f64::INFINITY
                    }
                };
                let cell = &mut table[b][o];
                *cell = if cell.is_nan() { gap } else { cell.max(gap) };
                if gap > limit {
                    failures.push(format!(
                        "{name} on {file} at budget {budget:e}: gap {gap:.3e} above {limit:.1e}"
                    ));
                }
            }
        }
    }
    let mut text = format!("{:>8}", "budget");
    for name in &names {
        text.push_str(&format!("  {name:>12}"));
    }
    text.push('\n');
    for (b, budget) in BUDGETS.iter().enumerate() {
        text.push_str(&format!("{budget:>8.0e}"));
        for cell in &table[b] {
            text.push_str(&format!("  {cell:>12.2e}"));
        }
        text.push('\n');
    }
    eprintln!("largest relative gap to the certified optimum, over the example files:\n{text}");
    assert!(failures.is_empty(), "{}\n{text}", failures.join("\n"));
}

/// Budgets beyond what f64 carries are refused by name, not solved into garbage.
#[test]
fn budgets_beyond_the_range_are_refused_by_name() {
    let problem = Problem::from_path(common::problems_dir().join("quickstart.toml")).unwrap();
    for budget in [1e101, 1e300, 1e-101] {
        let scaled = rescale(&problem, budget / problem.budget);
        let e = Compiled::new(&scaled).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, atlas::Error::Input(_)), "{budget:e}: {text}");
        assert!(
            text.starts_with("budget: ") && text.contains("1e100"),
            "{budget:e}: {text}"
        );
    }
}

/// The case CI found in `crates/atlas-milp/tests/random.rs`: a profit problem whose
/// optimum spends under 0.4 % of the budget on a steep logistic channel (and nothing on
/// a log channel whose marginal return at zero, 3 * 1000 / 9736, is below 1). By hand:
/// `3 beta lam / 2 sech^2(lam a / 2) = 1` at `a = 2 / lam acosh(sqrt(3 beta lam / 2))`
/// = 16,387.05, profit `3 beta tanh(lam a / 2) - a` = 912,103.40. `lbfgs` stopped at
/// 837,234 before.
#[test]
fn lbfgs_finds_a_profit_optimum_that_spends_a_fraction_of_the_budget() {
    use atlas::problem::{BudgetMode, Channel, CurveSpec, ObjectiveKind};
    let problem = Problem {
        name: "one percent".into(),
        periods: 1,
        budget: 4.295e6,
        budget_mode: BudgetMode::AtMost,
        objective: ObjectiveKind::Profit,
        margin: 3.0,
        target_response: None,
        discount: 0.0,
        max_active_channels: None,
        channels: vec![
            Channel {
                max: Some(1.29e6),
                ..Channel::new("c0", CurveSpec::log(1000.0, 9736.0))
            },
            Channel::new("c1", CurveSpec::logistic(310_323.0, 4.04e-4)),
        ],
        constraints: Vec::new(),
        model: None,
    };
    let lam: f64 = 4.04e-4;
    let beta = 310_323.0;
    let a = 2.0 / lam * (1.5 * beta * lam).sqrt().acosh();
    let best = 3.0 * beta * (0.5 * lam * a).tanh() - a;
    assert!((best - 912_103.40).abs() < 0.01, "{best}");
    let registry = atlas::registry().expect("the enabled optimizers register");
    let compiled = Compiled::new(&problem).unwrap();
    for name in ["lbfgs", "trust-region", "convex", "milp"] {
        if !registry.contains(name) {
            continue;
        }
        let config = registry.default_config(name).unwrap();
        let result = registry
            .optimize(&compiled, config.as_ref(), SolveOptions::default())
            .unwrap();
        compiled.check_result(&result).unwrap();
        let tol = if name == "milp" { 1e-3 } else { 1e-7 };
        assert!(
            (best - result.objective) / best <= tol,
            "{name}: {} vs {best} ({}, spend {:?})",
            result.objective,
            result.status,
            result.totals
        );
    }
}
