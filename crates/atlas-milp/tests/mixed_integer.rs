//! Integer units, minimum buys, fixed costs and at most five channels.

mod common;

use atlas_core::Status;
use common::*;

#[test]
fn mixed_integer_rules_hold_and_the_optimum_is_reached() {
    let c = compiled("mixed_integer.toml");
    let (best, _) = optimum("mixed_integer.toml");
    let r = solve(&c, &[]);
    assert_feasible(&c, &r);
    let rules = c.integer_rules();
    let names = c.layout().channels();
    let mut active = 0;
    for (c_idx, name) in names.iter().enumerate() {
        let spend = &r.allocation[name];
        if let Some(unit) = rules.spend_unit[c_idx] {
            for v in spend {
                let n = (v / unit).round();
                assert!(
                    (v - n * unit).abs() <= 1e-6,
                    "{name}: {v} is not a multiple of {unit}"
                );
            }
        }
        let total = r.totals[name];
        if total > 0.0 {
            active += 1;
            if let Some(m) = rules.min_active[c_idx] {
                assert!(
                    total >= m * (1.0 - 1e-12),
                    "{name}: {total} below the minimum buy {m}"
                );
            }
        } else {
            assert!(
                spend.iter().all(|v| *v == 0.0),
                "{name}: off means exactly zero"
            );
        }
    }
    assert!(active <= 5, "{active} channels active");
    let rel = (best - r.objective) / best;
    assert!(
        rel <= 5e-3,
        "objective {} vs best known {best} ({rel:e})",
        r.objective
    );
    let bound = r.bound.expect("milp reports a bound");
    assert!(
        bound >= best * (1.0 - 1e-9),
        "bound {bound} below the optimum {best}"
    );
    assert!(bound >= r.objective);
    assert!(
        matches!(r.status, Status::Optimal | Status::Converged),
        "{:?}",
        r.status
    );
}

#[test]
fn model_has_integers_for_units_and_binaries_for_activation() {
    let c = compiled("mixed_integer.toml");
    let size = atlas_milp::model_size(&c, 1e-3).unwrap();
    // 8 channels bought in units over 4 periods; 10 activation binaries (at most 5
    // active channels needs one per channel) and no S-curve.
    assert_eq!(size.integers, 8 * 4);
    assert_eq!(size.binaries, 10);
}
