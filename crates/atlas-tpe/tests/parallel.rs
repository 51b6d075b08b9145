//! Determinism and parallel evaluation: the same seed and `n_jobs` give the same result
//! bit for bit; `n_jobs` worker threads evaluate each batch, never more.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use atlas_core::{Compiled, Model, OptimizationResult, Problem, SolveOptions};
use serde_json::Value;

fn run(compiled: &Compiled, seed: u64, n_jobs: usize, constant_liar: bool) -> OptimizationResult {
    let settings: Vec<(&str, Value)> = vec![
        ("seed", seed.into()),
        ("n_jobs", n_jobs.into()),
        ("n_trials", 240.into()),
        ("constant_liar", constant_liar.into()),
    ];
    common::solve(compiled, &settings, SolveOptions::default())
}

fn same(a: &OptimizationResult, b: &OptimizationResult) -> bool {
    a.objective.to_bits() == b.objective.to_bits()
        && a.allocation
            .iter()
            .zip(&b.allocation)
            .all(|((na, xa), (nb, xb))| {
                na == nb && xa.iter().zip(xb).all(|(p, q)| p.to_bits() == q.to_bits())
            })
}

#[test]
fn same_seed_and_n_jobs_give_identical_results() {
    // profit.toml has linear rules (channel caps), so the projection is exercised.
    let compiled = common::example("profit.toml");
    for n_jobs in [1, 3, 8] {
        for liar in [true, false] {
            let a = run(&compiled, 42, n_jobs, liar);
            let b = run(&compiled, 42, n_jobs, liar);
            assert!(
                same(&a, &b),
                "n_jobs {n_jobs}, constant_liar {liar}: {} vs {}",
                a.objective,
                b.objective
            );
            assert_eq!(a.metrics.evaluations, 240);
            assert!(common::feasible(&compiled, &a));
        }
    }
    // Another seed searches elsewhere.
    let a = run(&compiled, 42, 1, true);
    let c = run(&compiled, 43, 1, true);
    assert!(!same(&a, &c));
}

/// A model that records, for each evaluation, how many threads the rayon pool it runs in
/// has and which thread runs it.
struct Recording {
    pools: Mutex<HashSet<usize>>,
    threads: Mutex<HashSet<std::thread::ThreadId>>,
}

impl Model for Recording {
    fn dim(&self) -> usize {
        4
    }
    fn value(&self, x: &[f64]) -> f64 {
        if let Ok(mut p) = self.pools.lock() {
            p.insert(rayon::current_num_threads());
        }
        if let Ok(mut t) = self.threads.lock() {
            t.insert(std::thread::current().id());
        }
        x.iter().map(|v| v.sqrt()).sum()
    }
}

#[test]
fn n_jobs_threads_evaluate_the_batches() {
    let problem = Problem::from_text(
        r#"
        name = "threads"
        budget = 100.0
        budget_mode = "exact"
        [[channels]]
        name = "a"
        [[channels]]
        name = "b"
        [[channels]]
        name = "c"
        [[channels]]
        name = "d"
        "#,
        atlas_core::Format::Toml,
    )
    .expect("parses");
    for n_jobs in [1usize, 3] {
        let model = Arc::new(Recording {
            pools: Mutex::new(HashSet::new()),
            threads: Mutex::new(HashSet::new()),
        });
        let compiled = Compiled::with_model(&problem, model.clone()).expect("compiles");
        let settings: Vec<(&str, Value)> = vec![("n_jobs", n_jobs.into()), ("n_trials", 60.into())];
        let result = common::solve(&compiled, &settings, SolveOptions::default());
        assert_eq!(result.metrics.iterations, 60);
        let threads = model.threads.lock().expect("lock").len();
        if n_jobs == 1 {
            // Batches of one are evaluated on the solving thread (the core evaluates
            // the final allocation there too).
            assert_eq!(threads, 1);
        } else {
            // Trials ran in a pool of exactly n_jobs threads (the final re-evaluation by
            // the core runs on the calling thread, outside it).
            let pools = model.pools.lock().expect("lock").clone();
            assert!(pools.contains(&n_jobs), "{pools:?}");
            assert!(threads <= n_jobs + 1, "{threads} threads");
        }
    }
}
