#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use atlas_core::{Compiled, Problem, Registry};

pub fn registry() -> Registry {
    let mut r = Registry::new();
    atlas_lbfgs::register(&mut r).unwrap();
    atlas_convex::register(&mut r).unwrap();
    r
}

pub fn problems() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/problems")
}

pub fn problem(name: &str) -> Problem {
    Problem::from_path(problems().join(name)).unwrap()
}

/// A fresh, empty folder under the system's temporary folder.
pub fn scratch(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "atlas-sweep-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Warnings collected instead of printed.
pub fn warnings() -> (atlas_sweep::WarningSink, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    (
        Arc::new(move |m: &str| s.lock().unwrap().push(m.to_string())),
        seen,
    )
}

/// The objective of `problem` re-evaluated at a result's allocation.
pub fn reevaluate(problem: &Problem, result: &atlas_core::OptimizationResult) -> f64 {
    let c = Compiled::new(problem).unwrap();
    c.objective_value(&result.flat_allocation(&c).unwrap())
}
