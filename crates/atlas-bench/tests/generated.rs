//! The generator and the Frank-Wolfe bound that certifies references of generated
//! problems.

use atlas_bench::generate::{self, generate, SIZES, SUITE_SEED};
use atlas_bench::optimum::{compute_reference, frank_wolfe_bound, Sense};
use atlas_core::problem::{BudgetMode, Channel, CurveSpec, ObjectiveKind, Problem};
use atlas_core::{Compiled, Registry};

fn lbfgs() -> Registry {
    let mut reg = Registry::new();
    atlas_lbfgs::register(&mut reg).unwrap();
    reg
}

#[test]
fn generated_problems_are_deterministic_concave_and_feasible() {
    for &(c, t) in &SIZES {
        let p = generate(c, t, SUITE_SEED);
        assert_eq!(p, generate(c, t, SUITE_SEED), "same seed, same problem");
        assert_ne!(
            p,
            generate(c, t, SUITE_SEED + 1),
            "another seed, another problem"
        );
        assert_eq!(p.name, generate::name(c, t));
        assert_eq!((p.channels.len(), p.periods), (c, t));
        let compiled = Compiled::new(&p).unwrap();
        assert_eq!(compiled.layout().len(), c * t);
        // Concave, no integer rules, no constraint rows beyond bounds and totals.
        assert!(compiled.features().is_empty(), "{:?}", compiled.features());
        assert!(p.constraints.is_empty());
        // The rules admit an allocation: the core's scaling (which presolves) accepts it.
        atlas_core::Scaled::new(&compiled).unwrap();
        let mins: f64 = p.channels.iter().filter_map(|ch| ch.min).sum();
        let maxs: f64 = p.channels.iter().filter_map(|ch| ch.max).sum();
        assert!(mins <= 0.3 * p.budget && maxs >= 1.5 * p.budget - c as f64);
    }
}

#[test]
fn generated_problems_round_trip_through_toml() {
    // Peers read the generated problems from TOML files.
    let p = generate(10, 13, SUITE_SEED);
    let text = toml::to_string(&p).unwrap();
    let back = Problem::from_text(&text, atlas_core::Format::Toml).unwrap();
    assert_eq!(back, p);
}

/// max log(1 + x1/10) * 100 + log(1 + x2/30) * 60 over x1 + x2 = 100, x >= 0, one period.
fn two_logs() -> Problem {
    Problem {
        name: "two logs".into(),
        periods: 1,
        budget: 100.0,
        budget_mode: BudgetMode::Exact,
        objective: ObjectiveKind::Response,
        margin: 1.0,
        target_response: None,
        discount: 0.0,
        max_active_channels: None,
        channels: vec![
            Channel::new("a", CurveSpec::log(100.0, 10.0)),
            Channel::new("b", CurveSpec::log(60.0, 30.0)),
        ],
        constraints: Vec::new(),
        model: None,
    }
}

#[test]
fn frank_wolfe_bound_by_hand() {
    let p = two_logs();
    let c = Compiled::new(&p).unwrap();
    let x = [50.0, 50.0];
    // Gradients 100/60 and 60/80; the best vertex puts all 100 on `a`:
    // bound = f(x) + (100/60) (100 - 50) + (60/80) (0 - 50).
    let f = 100.0 * (1.0f64 + 5.0).ln() + 60.0 * (1.0f64 + 50.0 / 30.0).ln();
    let expected = f + 100.0 / 60.0 * 50.0 - 60.0 / 80.0 * 50.0;
    let bound = frank_wolfe_bound(&p, &c, &x).unwrap();
    assert!(
        (bound - expected).abs() <= 1e-9 * expected,
        "{bound} vs {expected}"
    );
    // The optimum equalizes 100/(10+x1) = 60/(30+x2) with x1 + x2 = 100:
    // 100 (130 - x1) = 60 (10 + x1) -> x1 = 12400 / 160 = 77.5.
    let opt = [77.5, 22.5];
    let f_opt = c.objective_value(&opt);
    assert!(bound >= f_opt);
    let tight = frank_wolfe_bound(&p, &c, &opt).unwrap();
    assert!(
        tight >= f_opt && tight - f_opt <= 1e-9 * f_opt,
        "{tight} vs {f_opt}"
    );
}

#[test]
fn frank_wolfe_bound_is_valid_anywhere_and_tight_at_the_optimum() {
    let reg = lbfgs();
    for (c, t) in [(5, 1), (10, 13)] {
        let p = generate(c, t, SUITE_SEED);
        let compiled = Compiled::new(&p).unwrap();
        let r = compute_reference(&reg, Some(&p), &compiled).unwrap();
        let opt = &r.optimum;
        assert_eq!(opt.sense, Sense::Maximize);
        assert!(opt.source.contains("best known (lbfgs)") && opt.source.contains("Frank-Wolfe"));
        let bound = opt.bound.unwrap();
        assert!(bound >= opt.value, "{bound} < {}", opt.value);
        assert!(opt.certified, "certified gap {:?}", opt.certified_gap);
        assert!(opt.certified_gap.unwrap() <= 1e-6);
        // The bound from a poor feasible point (the core's starting point, an even split
        // projected onto the rules) is weaker but still above the optimum.
        let scaled = atlas_core::Scaled::new(&compiled).unwrap();
        let start = scaled.unscale(scaled.start());
        assert!(compiled.is_feasible(&start));
        let loose = frank_wolfe_bound(&p, &compiled, &start).unwrap();
        assert!(
            loose >= opt.value * (1.0 - 1e-12),
            "{loose} < {}",
            opt.value
        );
        assert!(loose >= bound * (1.0 - 1e-9));
        assert!(compiled.objective_value(&start) <= opt.value);
    }
}

#[test]
fn frank_wolfe_bound_refuses_problems_outside_its_class() {
    let mut p = two_logs();
    p.constraints.push(atlas_core::problem::Constraint {
        channels: Some(vec!["a".into()]),
        min: Some(0.5),
        ..atlas_core::problem::Constraint::new(atlas_core::problem::ConstraintKind::Share)
    });
    let c = Compiled::new(&p).unwrap();
    assert!(
        frank_wolfe_bound(&p, &c, &[50.0, 50.0]).is_none(),
        "linear rows"
    );
    let mut p = two_logs();
    p.channels[0].response = Some(CurveSpec::hill(100.0, 10.0, 2.0));
    let c = Compiled::new(&p).unwrap();
    assert!(
        frank_wolfe_bound(&p, &c, &[50.0, 50.0]).is_none(),
        "S-curve"
    );
    let p = two_logs();
    let c = Compiled::new(&p).unwrap();
    assert!(
        frank_wolfe_bound(&p, &c, &[60.0, 50.0]).is_none(),
        "infeasible point"
    );
}
