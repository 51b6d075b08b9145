//! `cmaes` driven by ask/tell: batches of 1, 8 and 64 reach the in-process run's quality
//! on `quickstart.toml`; a search serialized mid-run and resumed asks for the same points
//! as one that ran uninterrupted; points that were not asked for are refused.

use atlas_cmaes::{CmaesConfig, CmaesSearch, SearchError, SearchObjective};
use atlas_core::{Compiled, Context, Registry, Scaled, SolveOptions};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const DIR: &str = "../../examples/problems";

fn best_known(file: &str) -> f64 {
    let text = std::fs::read_to_string(format!("{DIR}/optima.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all[file]["best_known"].as_f64().unwrap()
}

/// A shifted, rotated-free ellipsoid on the cube, minimum 0 at `(0.3, 0.7, 0.3, ...)`.
fn ellipsoid(v: &[f64]) -> f64 {
    v.iter()
        .enumerate()
        .map(|(i, x)| {
            let c = if i % 2 == 0 { 0.3 } else { 0.7 };
            (1.0 + i as f64) * (x - c) * (x - c)
        })
        .sum()
}

/// Drives `search` with batches of `size` on `f` for at most `batches` asks (or until it
/// finishes); every point asked, in order.
fn drive(
    search: &mut CmaesSearch,
    batches: usize,
    size: usize,
    f: &mut dyn FnMut(&[f64]) -> f64,
) -> Vec<Vec<f64>> {
    let mut asked = Vec::new();
    for _ in 0..batches {
        let points = search.ask(size);
        if points.is_empty() {
            assert!(
                search.finished().is_some(),
                "nothing asked, nothing pending"
            );
            break;
        }
        assert!(points.len() <= size);
        let values: Vec<f64> = points.iter().map(|p| f(p)).collect();
        search.tell(&points, &values).unwrap();
        asked.extend(points);
    }
    asked
}

fn new_search(dims: usize, seed: u64) -> CmaesSearch {
    CmaesSearch::new(
        &CmaesConfig::default(),
        vec![0.5; dims],
        ChaCha8Rng::seed_from_u64(seed),
    )
    .unwrap()
}

#[test]
fn a_resumed_search_asks_what_the_uninterrupted_one_would() {
    // 3000 batches cover restarts (the 4-d ellipsoid's first run ends well before) on
    // both sides of the pause, and a pause in the middle of a generation.
    for size in [1, 3, 8] {
        let mut whole = new_search(4, 11);
        let all = drive(&mut whole, 3000, size, &mut ellipsoid);
        let mut first = new_search(4, 11);
        let mut resumed = drive(&mut first, 1501, size, &mut ellipsoid);
        // Pause with points out: they are evaluated after the resume.
        let out = first.ask(size);
        let saved = serde_json::to_string(&first).expect("the state serializes");
        drop(first);
        let mut second: CmaesSearch = serde_json::from_str(&saved).expect("and deserializes");
        assert_eq!(second.pending(), out.len());
        let values: Vec<f64> = out.iter().map(|p| ellipsoid(p)).collect();
        second.tell(&out, &values).unwrap();
        resumed.extend(out);
        resumed.extend(drive(&mut second, 3000, size, &mut ellipsoid));
        assert!(whole.runs() >= 2, "the run restarted: {}", whole.runs());
        // Bit for bit, to the end of the search.
        assert_eq!(all.len(), resumed.len(), "batch size {size}");
        assert!(
            all.iter()
                .zip(&resumed)
                .all(|(a, b)| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())),
            "batch size {size}"
        );
        assert_eq!(whole.finished(), second.finished());
    }
}

#[test]
fn the_points_do_not_depend_on_the_batch_size() {
    // Both run to the end of the search (restarts included).
    let mut one = new_search(6, 5);
    let a = drive(&mut one, usize::MAX, 1, &mut ellipsoid);
    let mut many = new_search(6, 5);
    let b = drive(&mut many, usize::MAX, 64, &mut ellipsoid);
    assert!(one.finished().is_some());
    assert_eq!(a, b);
    let best = one.best().unwrap().0;
    assert!(best < 1e-10, "{best:e}");
}

#[test]
fn points_not_asked_for_are_refused_and_nothing_is_learned() {
    let mut search = new_search(3, 2);
    // Nothing asked yet.
    assert_eq!(
        search.tell(&[vec![0.5; 3]], &[1.0]),
        Err(SearchError::NotAsked { index: 0 })
    );
    let points = search.ask(4);
    assert_eq!(points.len(), 4);
    let before = serde_json::to_string(&search).unwrap();
    // A foreign point after two good ones: the whole tell is refused.
    let mut foreign = points[..2].to_vec();
    foreign.push(vec![0.1, 0.2, 0.3]);
    let e = search.tell(&foreign, &[1.0, 2.0, 3.0]).unwrap_err();
    assert_eq!(e, SearchError::NotAsked { index: 2 });
    assert!(e.to_string().contains("points[2]"), "{e}");
    // A point changed in its last bit is foreign too.
    let mut nudged = points[0].clone();
    nudged[1] = f64::from_bits(nudged[1].to_bits() ^ 1);
    assert!(search.tell(&[nudged], &[1.0]).is_err());
    // The same point twice in one tell, and lengths that differ.
    assert_eq!(
        search.tell(&[points[0].clone(), points[0].clone()], &[1.0, 1.0]),
        Err(SearchError::NotAsked { index: 1 })
    );
    assert_eq!(
        search.tell(&points, &[1.0]),
        Err(SearchError::Lengths {
            points: 4,
            values: 1
        })
    );
    assert_eq!(serde_json::to_string(&search).unwrap(), before);
    assert_eq!(search.pending(), 4);
    // Told in another order, in two calls, with a failed evaluation (NaN ranks last).
    search
        .tell(&[points[3].clone(), points[1].clone()], &[0.5, f64::NAN])
        .unwrap();
    // Told already.
    assert_eq!(
        search.tell(&[points[3].clone()], &[0.5]),
        Err(SearchError::NotAsked { index: 0 })
    );
    assert_eq!(search.pending(), 2);
    assert_eq!(search.told(), 2);
    assert!(CmaesSearch::new(
        &CmaesConfig::default(),
        vec![],
        ChaCha8Rng::seed_from_u64(0)
    )
    .is_err());
}

#[test]
fn batches_of_1_8_and_64_reach_the_in_process_quality_on_quickstart() {
    let file = "quickstart.toml";
    let compiled = Compiled::from_path(format!("{DIR}/{file}")).unwrap();
    let best = best_known(file);
    // In process, as the examples test checks it: within 0.1 % of the best known value.
    let mut registry = Registry::new();
    atlas_cmaes::register(&mut registry).unwrap();
    let config = registry.default_config("cmaes").unwrap();
    let in_process = registry
        .optimize(&compiled, config.as_ref(), SolveOptions::default())
        .unwrap();
    assert!((best - in_process.objective) / best.abs() <= 1e-3);

    let scaled = Scaled::new(&compiled).unwrap();
    let ctx = Context::new(&compiled, &scaled, SolveOptions::default());
    let objective = SearchObjective::new(&scaled);
    let start = objective.search_point(ctx.problem().start());
    for size in [1usize, 8, 64] {
        let mut search = CmaesSearch::new(
            &CmaesConfig::default(),
            start.clone(),
            ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
        // The best feasible allocation evaluated, by its true objective.
        let mut found = f64::NEG_INFINITY;
        let mut evaluations = 0u64;
        while search.finished().is_none() {
            let points = search.ask(size);
            assert!(!points.is_empty());
            let values: Vec<f64> = points
                .iter()
                .map(|p| {
                    let e = objective.evaluate(ctx.evaluator(), p);
                    if let Some((x, _)) = &e.point {
                        let flat = scaled.unscale(x);
                        if compiled.max_violation(&flat) <= compiled.feasibility_tolerance() {
                            found = found.max(compiled.objective_value(&flat));
                        }
                    }
                    e.ranked
                })
                .collect();
            evaluations += points.len() as u64;
            search.tell(&points, &values).unwrap();
            assert!(evaluations < 10_000_000, "the search ends");
        }
        let gap = (best - found) / best.abs();
        assert!(
            gap <= 1e-3,
            "batch {size}: {found} vs best known {best} (gap {gap:.2e})"
        );
    }
}
