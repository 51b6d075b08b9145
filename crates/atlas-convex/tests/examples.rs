//! Every concave example problem: `convex` reaches the certified optimum of
//! `examples/problems/optima.json` within 1e-7 relative and proves a bound that does not
//! cut it off.

use atlas_core::{Compiled, Registry, Status};

fn optima() -> serde_json::Value {
    let text = std::fs::read_to_string("../../examples/problems/optima.json").expect("optima.json");
    serde_json::from_str(&text).expect("valid json")
}

fn check(file: &str) {
    let mut reg = Registry::new();
    atlas_convex::register(&mut reg).unwrap();
    let c = Compiled::from_path(format!("../../examples/problems/{file}")).unwrap();
    let cfg = reg.default_config("convex").unwrap();
    let r = reg.optimize(&c, cfg.as_ref(), Default::default()).unwrap();
    let truth = &optima()[file];
    let best = truth["best_known"].as_f64().unwrap();
    let maximize = truth["sense"] == "maximize";
    let bound = r.bound.expect("convex proves a bound");
    eprintln!(
        "{file}: status {} objective {} (best {best}, rel {:.3e}) bound {bound} (rel gap {:.3e}) time {:.3}s iters {}",
        r.status,
        r.objective,
        (r.objective - best) / best.abs(),
        (bound - r.objective).abs() / r.objective.abs(),
        r.metrics.wall_time_s,
        r.metrics.iterations
    );
    assert_eq!(r.status, Status::Optimal, "{file}");
    assert!(
        r.max_violation <= c.feasibility_tolerance(),
        "{file}: violation {}",
        r.max_violation
    );
    assert!(
        (r.objective - best).abs() <= 1e-7 * best.abs(),
        "{file}: objective {} vs best known {best}",
        r.objective
    );
    if maximize {
        assert!(
            bound >= best,
            "{file}: bound {bound} below the best known {best}"
        );
        assert!(bound >= r.objective);
    } else {
        assert!(
            bound <= best,
            "{file}: bound {bound} above the best known {best}"
        );
        assert!(bound <= r.objective);
    }
    assert!(
        (bound - r.objective).abs() <= 1e-7 * r.objective.abs(),
        "{file}: gap too large"
    );
}

#[test]
fn quickstart() {
    check("quickstart.toml");
}

#[test]
fn retail_q4() {
    check("retail_q4.toml");
}

#[test]
fn profit() {
    check("profit.toml");
}

#[test]
fn target_spend() {
    check("target_spend.toml");
}

#[test]
fn large() {
    check("large.toml");
}
