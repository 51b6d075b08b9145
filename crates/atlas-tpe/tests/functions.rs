//! `tpe` against random search of the same budget on the classic test functions (the
//! core's `function` models, 2 to 10 variables): the median over 10 seeds of the best
//! value `tpe` finds must beat that of random search. Random search is written here, on
//! the same unit-cube parametrization (the core's `CubeMap`).
//!
//! The budget is 300 trials (default settings otherwise) to keep the suite quick; the 5-
//! and 10-variable cases (100 solves each) run in release builds only
//! (`cargo test --release`), being minutes long unoptimized.

mod common;

use atlas_core::blackbox::CubeMap;
use atlas_core::functions::{self, TestFunction};
use atlas_core::{ProjectionWorkspace, Scaled, SolveOptions};
use rand::{Rng, SeedableRng};

const SEEDS: u64 = 10;
const TRIALS: u64 = 300;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The best `f` (the test function's own value, to minimize) of `trials` uniform points
/// of the unit cube mapped onto the feasible set.
fn random_search(function: TestFunction, dim: usize, trials: u64, seed: u64) -> f64 {
    let compiled = functions::problem(function, dim).expect("problem");
    let scaled = Scaled::new(&compiled).expect("scaled");
    let map = CubeMap::new(&scaled);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + seed);
    let mut workspace = ProjectionWorkspace::default();
    let mut x = vec![0.0; dim];
    let mut best = f64::INFINITY;
    for _ in 0..trials {
        let v: Vec<f64> = (0..dim).map(|_| rng.random::<f64>()).collect();
        map.map(&v, &mut x, &mut workspace).expect("projection");
        let spend = scaled.unscale(&x);
        assert!(compiled.is_feasible(&spend));
        best = best.min(-compiled.objective_value(&spend));
    }
    best
}

/// The best `f` `tpe` finds in [`TRIALS`] trials with default settings otherwise.
fn tpe(function: TestFunction, dim: usize, seed: u64) -> (f64, u64) {
    let compiled = functions::problem(function, dim).expect("problem");
    let settings = [("seed", seed.into()), ("n_trials", TRIALS.into())];
    let result = common::solve(&compiled, &settings, SolveOptions::default());
    assert!(common::feasible(&compiled, &result));
    // The response is -f, and never beyond the known optimum.
    assert!(result.objective <= functions::optimum(function, dim) + 1e-9);
    (-result.objective, result.metrics.evaluations)
}

fn beats_random_search(dim: usize) {
    let mut failures = Vec::new();
    for function in TestFunction::all() {
        let runs: Vec<(f64, u64)> = (0..SEEDS).map(|s| tpe(function, dim, s)).collect();
        let budget = runs[0].1;
        assert!(runs.iter().all(|r| r.1 == TRIALS));
        let ours = median(runs.iter().map(|r| r.0).collect());
        let random = median(
            (0..SEEDS)
                .map(|s| random_search(function, dim, budget, s))
                .collect(),
        );
        let minimum = function.minimum(dim);
        println!(
            "{:16} {dim:2}-d, {budget} trials: f - f* median tpe {:10.4}, random {:10.4}",
            function.name(),
            ours - minimum,
            random - minimum
        );
        if ours.partial_cmp(&random) != Some(std::cmp::Ordering::Less) {
            failures.push(format!(
                "{} {dim}-d: tpe {ours} vs random {random}",
                function.name()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn beats_random_search_in_2_dimensions() {
    beats_random_search(2);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "slow unoptimized: run with --release")]
fn beats_random_search_in_5_dimensions() {
    beats_random_search(5);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "slow unoptimized: run with --release")]
fn beats_random_search_in_10_dimensions() {
    beats_random_search(10);
}
