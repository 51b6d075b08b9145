//! The result cache: checked entries, corrupt and forged entries as misses, results that
//! are never stored, a folder that cannot be written.

mod common;

use std::sync::Arc;

use atlas_core::{CacheStatus, Compiled, SolveOptions, Status};
use atlas_sweep::{BudgetGrid, Cache, Sweep};
use common::*;
use serde_json::Value;

fn solve(cache: &Cache, name: &str) -> atlas_core::OptimizationResult {
    let reg = registry();
    let p = problem(name);
    let c = Compiled::new(&p).unwrap();
    let config = reg.default_config("lbfgs").unwrap();
    cache
        .solve(&reg, &p, &c, config.as_ref(), SolveOptions::default())
        .unwrap()
}

fn entry_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_stored_result_is_returned_only_after_it_is_re_evaluated() {
    let dir = scratch("check");
    let first = solve(&Cache::folder(&dir), "quickstart.toml");
    assert_eq!(first.cache, Some(CacheStatus::Miss));
    // A new cache on the same folder (another process, say) answers from the file.
    let cache = Cache::folder(&dir);
    let again = solve(&cache, "quickstart.toml");
    assert_eq!(again.cache, Some(CacheStatus::Hit));
    assert_eq!(again.allocation, first.allocation);
    assert_eq!(cache.stats().hits, 1);
    // Its memory level answers the next time, even with the file gone.
    std::fs::remove_file(&entry_files(&dir)[0]).unwrap();
    assert_eq!(
        solve(&cache, "quickstart.toml").cache,
        Some(CacheStatus::Hit)
    );
}

#[test]
fn truncated_garbage_and_forged_entries_are_misses_and_never_returned() {
    let dir = scratch("forged");
    let reg = registry();
    let run = || {
        Sweep::new(&reg, problem("quickstart.toml"))
            .optimizer("convex")
            .budgets(BudgetGrid::parse("0.5x:1.25x:4").unwrap())
            .cache(Arc::new(Cache::folder(&dir)))
            .run()
            .unwrap()
    };
    let truth = run();
    let files = entry_files(&dir);
    assert_eq!(files.len(), 4);
    let by_budget = |b: f64| {
        files
            .iter()
            .find(|f| {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
                v["result"]["total_spend"]
                    .as_f64()
                    .is_some_and(|s| (s - b).abs() < 1e-3 * b)
            })
            .unwrap()
            .clone()
    };
    let (f500, f750, f1000, f1250) = (
        by_budget(5e5),
        by_budget(7.5e5),
        by_budget(1e6),
        by_budget(1.25e6),
    );
    // 1. Truncated mid-way.
    let text = std::fs::read_to_string(&f500).unwrap();
    std::fs::write(&f500, &text[..text.len() / 2]).unwrap();
    // 2. Not JSON at all.
    std::fs::write(&f750, b"\x00\x01 not json").unwrap();
    // 3. Forged: spend moved from tv to radio, objective, totals and violation left as they
    //    were, so the entry looks whole but its plan does not give its objective.
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&f1000).unwrap()).unwrap();
    let tv = v["result"]["allocation"]["tv"][0].as_f64().unwrap();
    let radio = v["result"]["allocation"]["radio"][0].as_f64().unwrap();
    v["result"]["allocation"]["tv"][0] = (tv - 40_000.0).into();
    v["result"]["allocation"]["radio"][0] = (radio + 40_000.0).into();
    std::fs::write(&f1000, serde_json::to_string(&v).unwrap()).unwrap();
    // 4. Forged the other way: a better objective than the plan gives.
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&f1250).unwrap()).unwrap();
    let objective = v["result"]["objective"].as_f64().unwrap();
    v["result"]["objective"] = (objective * 1.01).into();
    v["result"]["bound"] = (objective * 1.01).into();
    std::fs::write(&f1250, serde_json::to_string(&v).unwrap()).unwrap();

    let again = run();
    assert!(again.errors.is_empty());
    for (t, a) in truth.scenarios.iter().zip(&again.scenarios) {
        // Every damaged entry is a miss, solved again to the true answer.
        assert_eq!(a.cache, CacheStatus::Miss, "{}", a.name);
        assert!(
            (a.objective - t.objective).abs() <= 1e-9 * t.objective,
            "{}",
            a.name
        );
        let p = {
            let mut p = problem("quickstart.toml");
            p.budget = a.budget;
            p
        };
        assert!((reevaluate(&p, &a.result) - a.objective).abs() <= 1e-9 * a.objective);
    }
    // ... and the folder holds good entries again, answered from next time.
    let third = run();
    assert!(third.scenarios.iter().all(|s| s.cache == CacheStatus::Hit));
}

#[test]
fn results_stopped_by_the_clock_or_by_patience_are_never_stored() {
    let cache = Cache::memory();
    let reg = registry();
    let p = problem("quickstart.toml");
    let c = Compiled::new(&p).unwrap();
    let config = reg.default_config("lbfgs").unwrap();
    let options = SolveOptions::default();
    let key = Cache::key(&p, config.as_ref(), &options);
    let mut r = reg
        .optimize(&c, config.as_ref(), SolveOptions::default())
        .unwrap();
    for status in [Status::TimeLimit, Status::StoppedEarly] {
        r.status = status;
        assert!(!atlas_sweep::cacheable(&r));
        cache.put(&key, &r);
        assert!(cache.get(&key, &c, "lbfgs").is_none(), "{status}");
    }
    r.status = Status::Converged;
    cache.put(&key, &r);
    assert!(cache.get(&key, &c, "lbfgs").is_some());
    // A stored result is tied to its key: another problem (another budget) misses.
    let mut q = p.clone();
    q.budget = 900_000.0;
    assert_ne!(Cache::key(&q, config.as_ref(), &options), key);
    // And a result under the right key but for another problem is rejected on reading.
    let cq = Compiled::new(&q).unwrap();
    assert!(cache.get(&key, &cq, "lbfgs").is_none());
    assert_eq!(cache.stats().stored, 1);
}

#[test]
fn a_folder_that_cannot_be_written_warns_once_and_the_sweep_runs() {
    let dir = scratch("unwritable");
    // A folder below a plain file can be neither created nor written, even by root.
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let (sink, seen) = warnings();
    let cache = Cache::builder()
        .folder(file.join("cache"))
        .warnings(sink)
        .build()
        .unwrap();
    let reg = registry();
    let r = Sweep::new(&reg, problem("quickstart.toml"))
        .optimizer("lbfgs")
        .budgets(BudgetGrid::parse("0.5x:1x:4").unwrap())
        .cache(Arc::new(cache))
        .run()
        .unwrap();
    assert_eq!(r.scenarios.len(), 4);
    assert!(r.errors.is_empty());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains("is not writable") && seen[0].contains("a-file"),
        "{}",
        seen[0]
    );
}

#[test]
fn cache_specs() {
    assert!(Cache::from_spec("off").unwrap().is_none());
    assert_eq!(
        Cache::from_spec("memory").unwrap().unwrap().describe(),
        "memory"
    );
    let dir = scratch("spec");
    let c = Cache::from_spec(dir.to_str().unwrap()).unwrap().unwrap();
    assert_eq!(c.folder_path(), Some(dir.as_path()));
    assert!(Cache::from_spec("  ").is_err());
    #[cfg(not(feature = "redis"))]
    {
        let e = Cache::from_spec("redis://user:secret@127.0.0.1:6379")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no Redis support") && !e.contains("secret"),
            "{e}"
        );
    }
    #[cfg(feature = "redis")]
    {
        let e = Cache::from_spec("redis://[::1").unwrap_err().to_string();
        assert!(e.starts_with("--cache: "), "{e}");
    }
}
