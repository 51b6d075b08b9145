//! `tpe` driven by ask/tell: batches of 1, 8 and 64 reach the quality of in-process runs;
//! a search serialized mid-run and resumed suggests the same points as one that ran
//! uninterrupted.

mod common;

use atlas_core::SolveOptions;
use atlas_tpe::{TpeConfig, TpeSearch};
use common::{example, feasible, optimum, solve};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A shifted sphere on the unit cube, minimum 0 at `(0.3, 0.7, 0.3, ...)`.
fn sphere(v: &[f64]) -> f64 {
    v.iter()
        .enumerate()
        .map(|(i, x)| {
            let c = if i % 2 == 0 { 0.3 } else { 0.7 };
            (x - c) * (x - c)
        })
        .sum()
}

/// Runs `batches` batches of `size` through ask/tell; every point asked, in order, and
/// the best value.
fn drive(search: &mut TpeSearch, batches: usize, size: usize) -> (Vec<Vec<f64>>, f64) {
    let mut asked = Vec::new();
    let mut best = f64::INFINITY;
    for _ in 0..batches {
        let points = search.ask(size);
        let values: Vec<f64> = points.iter().map(|p| sphere(p)).collect();
        best = values.iter().copied().fold(best, f64::min);
        search.tell(&points, &values);
        asked.extend(points);
    }
    (asked, best)
}

fn search(dims: usize, seed: u64) -> TpeSearch {
    TpeSearch::new(&TpeConfig::default(), dims, ChaCha8Rng::seed_from_u64(seed))
}

#[test]
fn a_resumed_search_suggests_what_the_uninterrupted_one_would() {
    for size in [1, 8] {
        let mut whole = search(4, 11);
        let (all, _) = drive(&mut whole, 40, size);
        let mut first = search(4, 11);
        let (mut resumed, _) = drive(&mut first, 20, size);
        let saved = serde_json::to_string(&first).expect("the state serializes");
        drop(first);
        let mut second: TpeSearch = serde_json::from_str(&saved).expect("and deserializes");
        assert_eq!(second.told(), 20 * size);
        let (rest, _) = drive(&mut second, 20, size);
        resumed.extend(rest);
        // Bit for bit.
        assert_eq!(all, resumed, "batch size {size}");
    }
}

#[test]
fn batches_of_1_8_and_64_reach_the_same_quality() {
    // 1024 trials on a 5-d sphere: random search's best is of order 1e-2 there; TPE's
    // must be well below whatever the batch size.
    let mut random = ChaCha8Rng::seed_from_u64(3);
    let random_best = (0..1024)
        .map(|_| {
            let p: Vec<f64> = (0..5)
                .map(|_| rand::Rng::random::<f64>(&mut random))
                .collect();
            sphere(&p)
        })
        .fold(f64::INFINITY, f64::min);
    for size in [1usize, 8, 64] {
        let (_, best) = drive(&mut search(5, 3), 1024 / size, size);
        assert!(
            best < 0.25 * random_best,
            "batch {size}: best {best:e} against random search's {random_best:e}"
        );
    }
    // In process, on an example problem: batches of n_jobs, within 2 % as with one job.
    let name = "quickstart.toml";
    let compiled = example(name);
    let best_known = optimum(name)["best_known"].as_f64().unwrap();
    for n_jobs in [1u64, 8, 64] {
        let result = solve(
            &compiled,
            &[("n_jobs", n_jobs.into())],
            SolveOptions::default(),
        );
        assert!(feasible(&compiled, &result));
        let gap = (best_known - result.objective) / best_known;
        assert!(gap <= 0.02, "n_jobs {n_jobs}: {:.3} % short", 100.0 * gap);
    }
}
