//! S-curves: the global optimum, which local methods from the even split miss, with a
//! bound that proves it.

mod common;

use atlas_core::Status;
use common::*;
use serde_json::json;

#[test]
fn scurve_reaches_the_global_optimum_with_a_proof() {
    let c = compiled("scurve.toml");
    let (best, certified_bound) = optimum("scurve.toml");
    let r = solve(&c, &[]);
    assert_feasible(&c, &r);
    let rel = (best - r.objective) / best;
    assert!(
        rel <= 5e-3,
        "objective {} vs best known {best} ({rel:e})",
        r.objective
    );
    // The bound is valid: at or above the certified optimum (up to the reference's own
    // rounding), and it proves the answer within 0.5 %.
    let bound = r.bound.expect("milp proves a bound");
    assert!(
        bound >= best * (1.0 - 1e-9),
        "bound {bound} below the optimum {best}"
    );
    assert!(bound >= r.objective);
    assert!(
        (bound - r.objective) / r.objective <= 5e-3,
        "gap {}",
        (bound - r.objective) / r.objective
    );
    assert_eq!(r.status, Status::Optimal, "{r:?}");
    // In fact far tighter than 0.5 %: the default curve error is 1e-3 of the reference.
    assert!(rel <= 1e-3, "{rel:e}");
    assert!(bound <= certified_bound * (1.0 + 2e-3));
}

#[test]
fn tighter_curves_give_a_tighter_bound() {
    let c = compiled("scurve.toml");
    let (best, _) = optimum("scurve.toml");
    let coarse = solve(&c, &[("max_error", json!(1e-2))]);
    let fine = solve(&c, &[("max_error", json!(1e-4))]);
    for r in [&coarse, &fine] {
        assert_feasible(&c, r);
        assert!(r.bound.unwrap() >= best * (1.0 - 1e-9));
    }
    let gap = |r: &atlas_core::OptimizationResult| r.bound.unwrap() - r.objective;
    assert!(
        gap(&fine) < gap(&coarse),
        "{} vs {}",
        gap(&fine),
        gap(&coarse)
    );
    assert!(gap(&fine) / best <= 2e-4, "{}", gap(&fine) / best);
    assert!((best - fine.objective) / best <= 1e-4);
}

#[test]
fn binaries_only_where_curves_are_convex() {
    // Six S-curves: binaries on their convex parts only; no integer rules, no integers.
    let c = compiled("scurve.toml");
    let size = atlas_milp::model_size(&c, 1e-3).unwrap();
    assert!(size.binaries > 0);
    assert_eq!(size.integers, 0);
    assert!(size.binaries < size.segments / 2, "{size:?}");
    // Concave curves without rules: a pure LP.
    let q = compiled("quickstart.toml");
    let size = atlas_milp::model_size(&q, 1e-3).unwrap();
    assert_eq!(size.binaries + size.integers, 0, "{size:?}");
}
