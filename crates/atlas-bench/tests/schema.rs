//! `bench.json` is an interface: tools read its field names and units. This test pins
//! them; a change must bump `atlas_bench::SCHEMA` and update `tests/bench_schema.txt`.

use std::collections::BTreeSet;
use std::path::Path;

use atlas_bench::report::{MissingPeer, Outcome, PeerComparison, PeerRow, PeersReport, Stats};
use atlas_bench::{runner, suite, Report, SCHEMA};
use atlas_core::Registry;
use serde_json::Value;

/// Objects whose keys belong to someone else (the core's capabilities, each optimizer's
/// own settings): their own keys are not part of this schema.
const PASSTHROUGH: [&str; 2] = ["optimizers[].capabilities", "optimizers[].settings"];

fn paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if PASSTHROUGH.contains(&prefix) {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                paths(v, &p, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                paths(v, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// A real run of the suite on a few problems covering every kind of row: checked and
/// timed, refused, a generated problem with a computed reference, a test function.
fn report() -> Report {
    let mut registry = Registry::new();
    atlas_lbfgs::register(&mut registry).unwrap();
    let mut entries = suite::examples(Path::new("../../examples/problems")).unwrap();
    entries.extend(suite::generated(true));
    entries.extend(suite::test_functions(true));
    let tokens: Vec<String> = ["quickstart", "mixed_integer", "mmm-5x1", "sphere-2d"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let entries = suite::select(entries, &tokens).unwrap();
    let options = runner::Options {
        runs: 2,
        ..runner::Options::quick()
    };
    let mut report = runner::run(&registry, &entries, &options, &mut std::io::sink()).unwrap();
    // A speed comparison, as `peers::run` fills it.
    let row = report
        .results
        .iter_mut()
        .find(|r| r.timing.is_some())
        .unwrap();
    row.speed_vs_best_peer = Some(PeerComparison {
        peer: "scipy-slsqp".into(),
        peer_time_s: 0.2,
        ratio: 100.0,
    });
    // The peers part, as `peers::run` fills it (Python is not needed for the schema).
    let s = Stats {
        median: 0.2,
        min: 0.1,
        max: 0.3,
    };
    report.peers = Some(PeersReport {
        python: "python3".into(),
        python_version: Some("3.11.7".into()),
        available: vec!["scipy-slsqp".into()],
        missing: vec![MissingPeer {
            solver: "highs".into(),
            packages: vec!["highspy".into()],
        }],
        message: Some("peers not run for lack of Python packages".into()),
        results: vec![PeerRow {
            problem: "quickstart".into(),
            solver: "scipy-slsqp".into(),
            outcome: Outcome::Ok,
            reason: None,
            runs: 3,
            wall_time_s: Some(s),
            objective_reported: Some(1.0),
            objective: Some(1.0),
            gap: Some(0.0),
            max_violation: Some(0.0),
            feasible: Some(true),
        }],
    });
    report
}

#[test]
fn bench_json_field_names_are_stable() {
    let report = report();
    assert_eq!(report.schema, SCHEMA);
    assert_eq!(SCHEMA, "atlas-bench/1");
    let value = serde_json::to_value(&report).unwrap();
    let mut actual = BTreeSet::new();
    paths(&value, "", &mut actual);
    let text = std::fs::read_to_string("tests/bench_schema.txt").unwrap();
    let expected: BTreeSet<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let added: Vec<&String> = actual.difference(&expected).collect();
    let removed: Vec<&String> = expected.difference(&actual).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "bench.json schema changed: added {added:?}, removed {removed:?}; bump SCHEMA and update tests/bench_schema.txt"
    );
    // The report reads back into the same type (tools can deserialize it).
    let back: Report = serde_json::from_value(value).unwrap();
    assert_eq!(back.results.len(), report.results.len());
    assert_eq!(back.settings, report.settings);
}

#[test]
fn bench_json_states_its_units_and_names_carry_them() {
    let value = serde_json::to_value(report()).unwrap();
    let units = &value["units"];
    assert_eq!(units["time"], "s");
    assert_eq!(units["memory"], "MiB");
    assert_eq!(units["share"], "fraction of wall time");
    assert_eq!(units["violation"], "spend units");
    assert!(units["gap"].as_str().unwrap().starts_with("relative"));
    assert!(units["speed_vs_best_peer"]
        .as_str()
        .unwrap()
        .contains("best peer's median time / Atlas's median time"));
    // Every time is in seconds and says so (`_s`), every memory in MiB (`_mb`).
    let mut all = BTreeSet::new();
    paths(&value, "", &mut all);
    for p in all.iter().filter(|p| !p.starts_with("units")) {
        let leaf = p.rsplit('.').next().unwrap();
        // (`timeouts` is a count.)
        if leaf.contains("time") && leaf != "timeouts" {
            assert!(
                leaf.ends_with("_s") || leaf.ends_with("_share"),
                "{p}: a time field must end in _s"
            );
        }
        if leaf.contains("memory") {
            assert!(leaf.ends_with("_mb") || leaf.ends_with("_gib"), "{p}");
        }
    }
}

#[test]
fn the_files_are_written() {
    let report = report();
    let dir = std::env::temp_dir().join(format!("atlas-bench-files-{}", std::process::id()));
    let files = report.write_files(&dir).unwrap();
    assert_eq!(files.len(), 3);
    let json: Report =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap()).unwrap();
    let outcomes = |r: &Report| -> Vec<(String, String, Outcome)> {
        r.results
            .iter()
            .map(|x| (x.problem.clone(), x.optimizer.clone(), x.outcome))
            .collect()
    };
    assert_eq!(outcomes(&json), outcomes(&report));
    assert_eq!(json.summary.ok, 3);
    assert_eq!(json.summary.refused, 1);
    let csv = std::fs::read_to_string(dir.join("bench.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("kind,problem,optimizer,outcome,"));
    let columns = header.split(',').count();
    // One line per pair and per peer row.
    assert_eq!(csv.lines().count(), 1 + report.results.len() + 1);
    let quickstart = csv
        .lines()
        .find(|l| l.starts_with("atlas,quickstart,lbfgs,ok,"))
        .unwrap();
    assert_eq!(quickstart.split(',').count(), columns);
    let svg = std::fs::read_to_string(dir.join("bench.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("lbfgs") && svg.contains("scipy-slsqp"));
    let _ = std::fs::remove_dir_all(&dir);
}
