//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The example problems directory.
pub fn problems_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/problems")
}

/// Every example problem file, sorted.
pub fn problem_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(problems_dir())
        .expect("examples/problems exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "optima.json"))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("toml" | "json" | "yaml" | "yml")
            )
        })
        .collect();
    files.sort();
    files
}

/// The certified optima, keyed by file name.
pub fn optima() -> Value {
    let text = std::fs::read_to_string(problems_dir().join("optima.json")).expect("optima.json");
    serde_json::from_str(&text).expect("valid optima.json")
}

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atlas-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Relative gap to the best known optimum, positive when worse.
pub fn gap(objective: f64, best: f64, maximize: bool) -> f64 {
    let g = (best - objective) / best.abs().max(1.0);
    if maximize {
        g
    } else {
        -g
    }
}
