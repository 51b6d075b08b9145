//! Problems found hard by randomized comparison with `lbfgs`, with optima established
//! independently.

mod common;

use atlas_core::Status;
use common::*;

/// One period, budget only, concave curves with invertible slopes: the optimum is the
/// water-filling point `f_i'(x_i) = lambda` (clamped to the bounds) with `sum x = B`,
/// found here by bisection on `lambda`. (An early `lbfgs` stopped 1.3e-3 short of it:
/// an exponential channel saturating next to a log channel at zero.)
#[test]
fn water_filling_optimum_on_saturating_curves() {
    let budget = 1342460.12051684;
    // (kind, beta, k, max)
    let channels = [
        (
            "exponential",
            2496903.6233273908,
            29019.685226071866,
            f64::INFINITY,
        ),
        ("log", 316823.1604556723, 80977.0130714436, f64::INFINITY),
        (
            "log",
            1437045.4369289929,
            131102.58843602525,
            281682.47676547145,
        ),
        (
            "log",
            491403.5961615344,
            1899362.893374853,
            342316.0072291128,
        ),
        (
            "hill",
            2036593.8002427032,
            224463.17453838227,
            f64::INFINITY,
        ),
    ];
    let mut text = format!("name = \"water\"\nbudget = {budget:?}\n");
    for (i, (kind, beta, k, max)) in channels.iter().enumerate() {
        text += &format!("[[channels]]\nname = \"c{i}\"\n");
        if max.is_finite() {
            text += &format!("max = {max:?}\n");
        }
        text += &match *kind {
            "hill" => {
                format!("response = {{ kind = \"hill\", beta = {beta:?}, k = {k:?}, s = 1.0 }}\n")
            }
            _ => format!("response = {{ kind = \"{kind}\", beta = {beta:?}, k = {k:?} }}\n"),
        };
    }
    // Spend at which each slope equals lambda: exponential beta/k e^(-x/k), log
    // beta/(k + x), hill (s = 1) beta k/(k + x)^2.
    let spend_at = |lambda: f64| -> Vec<f64> {
        channels
            .iter()
            .map(|&(kind, beta, k, max)| {
                let x = match kind {
                    "exponential" => k * (beta / (k * lambda)).ln(),
                    "log" => beta / lambda - k,
                    _ => (beta * k / lambda).sqrt() - k,
                };
                x.clamp(0.0, max)
            })
            .collect()
    };
    let (mut lo, mut hi) = (1e-12f64, 1e3f64);
    for _ in 0..300 {
        let mid = (lo * hi).sqrt();
        if spend_at(mid).iter().sum::<f64>() > budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let expected = spend_at(lo);
    let compiled = from_toml(&text);
    let optimum = compiled.model().value(&expected);
    let result = solve(&compiled);
    assert_eq!(result.status, Status::Converged);
    assert_feasible(&compiled, &result);
    assert!(
        rel(result.objective, optimum) <= 1e-9,
        "{} vs {optimum}",
        result.objective
    );
    let x = result.flat_allocation(&compiled).unwrap();
    for (got, want) in x.iter().zip(&expected) {
        assert!((got - want).abs() <= 1e-6 * budget, "{x:?} vs {expected:?}");
    }
}

/// `min_spend` whose optimum sits on kinks of the augmented Lagrangian (the response
/// target, max_change and channel minimums all binding). The problem is convex (concave
/// curves), so its optimal spend is unique: 1648.815413778537, certified by `convex`
/// (`atlas optimize tests/problems/min_spend_kinks.toml --optimizer convex`, proven gap
/// below 1e-9).
#[test]
fn min_spend_along_penalty_kinks() {
    let compiled = atlas_core::Compiled::from_path(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/problems/min_spend_kinks.toml"),
    )
    .unwrap();
    let result = solve(&compiled);
    assert_eq!(result.status, Status::Converged);
    assert_feasible(&compiled, &result);
    assert!(
        rel(result.objective, 1648.815413778537) <= 1e-6,
        "{}",
        result.objective
    );
}

/// A model with gradients only (the classic test functions): Hessian products come from
/// differences of gradients. Rosenbrock's curved valley needs the curvature to be right:
/// the minimum at (1, ..., 1) is reached to 1e-10 in under 100 Newton iterations (the
/// quick bench counts 27 in 2-d and 28 in 10-d).
#[test]
fn gradient_only_models_take_newton_steps_from_differences() {
    use atlas_core::functions::{self, TestFunction};
    for dim in [2, 10] {
        let compiled = functions::problem(TestFunction::Rosenbrock, dim).unwrap();
        let result = solve(&compiled);
        assert_eq!(result.status, Status::Converged, "{dim}-d");
        let error = functions::optimum(TestFunction::Rosenbrock, dim) - result.objective;
        assert!(error.abs() < 1e-10, "{dim}-d: {error}");
        assert!(result.metrics.iterations < 100, "{:?}", result.metrics);
        assert_feasible(&compiled, &result);
    }
}
