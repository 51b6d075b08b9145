//! `atlas report` end to end: a real solve reported, and bad input refused with exit 2,
//! naming the file and the field, leaving no output file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn atlas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .output()
        .expect("run atlas")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn problem(name: &str) -> String {
    common::problems_dir()
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn sweep_fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/atlas-report/tests/fixtures/retail_q4_sweep.json")
        .to_string_lossy()
        .into_owned()
}

/// `n` rounded, with thousands separators (as the report writes amounts from 1,000 up).
fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A solved retail result in `dir`.
fn solve(dir: &Path) -> PathBuf {
    let result = dir.join("r.json");
    let out = atlas(&[
        "optimize",
        &problem("retail_q4.toml"),
        "--optimizer",
        "convex",
        "--output",
        result.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    result
}

#[test]
fn a_solve_reported_with_its_problem() {
    let dir = common::temp_dir("report-ok");
    let result = solve(&dir);
    let html_path = dir.join("report.html");
    let out = atlas(&[
        "report",
        result.to_str().unwrap(),
        "--problem",
        &problem("retail_q4.toml"),
        "--output",
        html_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("report of retail-q4 (convex, optimal)"));
    // The problem is the one solved: no notice.
    assert!(
        !text(&out.stderr).contains("note:"),
        "{}",
        text(&out.stderr)
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert!(html.contains(&grouped(value["objective"].as_f64().unwrap())));
    assert!(html.contains("<h2>Response curves</h2>"));
    assert_eq!(html.matches("<figure class=\"curve\">").count(), 8);
    assert!(!html.contains("http"));
    // No temporary file is left beside the report.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(left.len(), 2);

    // To stdout with `-o -`, the same page.
    let out = atlas(&[
        "report",
        result.to_str().unwrap(),
        "--problem",
        &problem("retail_q4.toml"),
        "-o",
        "-",
    ]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), html);

    // Without the problem: a page, a note on stderr saying what is missing.
    let out = atlas(&[
        "report",
        result.to_str().unwrap(),
        "--output",
        html_path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("no --problem given"));
    assert!(std::fs::read_to_string(&html_path)
        .unwrap()
        .contains("Not drawn"));

    // Another problem with the same channels but other curves: a notice.
    let changed = dir.join("changed.toml");
    std::fs::write(
        &changed,
        std::fs::read_to_string(problem("retail_q4.toml"))
            .unwrap()
            .replace("beta = 393_200.0", "beta = 300_000.0"),
    )
    .unwrap();
    let out = atlas(&[
        "report",
        result.to_str().unwrap(),
        "--problem",
        changed.to_str().unwrap(),
        "--output",
        html_path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("is not the one this result was solved for"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_sweep_and_one_of_its_scenarios() {
    let dir = common::temp_dir("report-sweep");
    let html_path = dir.join("sweep.html");
    let out = atlas(&[
        "report",
        &sweep_fixture(),
        "--output",
        html_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sweep retail-q4 (7 scenarios, 1 failed)"));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("<h2>Budget response curve</h2>"));
    assert!(html.contains("budget=24000000"));

    let one = dir.join("one.html");
    let out = atlas(&[
        "report",
        &sweep_fixture(),
        "--scenario",
        "budget=12000000",
        "--problem",
        &problem("retail_q4.toml"),
        "--output",
        one.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("note:"),
        "{}",
        text(&out.stderr)
    );
    assert!(std::fs::read_to_string(&one)
        .unwrap()
        .contains("<h2>Response curves</h2>"));
}

#[test]
fn bad_input_exits_2_names_the_file_and_field_and_writes_nothing() {
    let dir = common::temp_dir("report-bad");
    let result = solve(&dir);
    let result_s = result.to_str().unwrap().to_string();
    let not_a_result = dir.join("not_a_result.json");
    std::fs::write(&not_a_result, r#"{"name": "retail", "budget": 1.0}"#).unwrap();
    let broken = dir.join("broken.json");
    std::fs::write(&broken, &std::fs::read_to_string(&result).unwrap()[..200]).unwrap();
    let missing = dir.join("missing.json");
    let renamed = dir.join("renamed.toml");
    std::fs::write(
        &renamed,
        std::fs::read_to_string(problem("retail_q4.toml"))
            .unwrap()
            .replace("\"search\"", "\"paid_search\""),
    )
    .unwrap();
    let output = dir.join("out.html");
    let output_s = output.to_str().unwrap().to_string();
    let sweep = sweep_fixture();
    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "missing input file",
            vec![missing.to_str().unwrap().into()],
            vec![missing.to_str().unwrap().into(), "cannot read".into()],
        ),
        (
            "not a result",
            vec![not_a_result.to_str().unwrap().into()],
            vec![
                not_a_result.to_str().unwrap().into(),
                "allocation: missing".into(),
            ],
        ),
        (
            "truncated JSON",
            vec![broken.to_str().unwrap().into()],
            vec![broken.to_str().unwrap().into(), "line".into()],
        ),
        (
            "a channel the problem does not have",
            vec![
                result_s.clone(),
                "--problem".into(),
                renamed.to_str().unwrap().into(),
            ],
            vec![
                result_s.clone(),
                "allocation.search".into(),
                "unknown channel `search`".into(),
                "the problem's channels: tv, digital, radio, paid_search".into(),
            ],
        ),
        (
            "a problem with other periods",
            vec![
                result_s.clone(),
                "--problem".into(),
                problem("quickstart.toml"),
            ],
            vec![
                result_s.clone(),
                "allocation.tv".into(),
                "13 values given".into(),
            ],
        ),
        (
            "a problem file that is bad",
            vec![
                result_s.clone(),
                "--problem".into(),
                not_a_result.to_str().unwrap().into(),
            ],
            vec![not_a_result.to_str().unwrap().into()],
        ),
        (
            "a sweep with --problem",
            vec![sweep.clone(), "--problem".into(), problem("retail_q4.toml")],
            vec!["--problem".into(), "--scenario NAME".into()],
        ),
        (
            "an unknown scenario",
            vec![sweep.clone(), "--scenario".into(), "budget=12000001".into()],
            vec!["--scenario".into(), "did you mean `budget=12000000`".into()],
        ),
        (
            "a failed scenario",
            vec![sweep.clone(), "--scenario".into(), "budget=2000000".into()],
            vec!["--scenario".into(), "it failed: infeasible rules".into()],
        ),
        (
            "a scenario of a single result",
            vec![result_s.clone(), "--scenario".into(), "x".into()],
            vec![result_s.clone(), "--scenario".into()],
        ),
    ];
    for (name, mut args, expected) in cases {
        let mut all = vec!["report".to_string()];
        all.append(&mut args);
        all.extend(["--output".to_string(), output_s.clone()]);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = atlas(&refs);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        for e in &expected {
            assert!(err.contains(e.as_str()), "{name}: `{e}` not in: {err}");
        }
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(!output.exists(), "{name}: an output file was written");
    }
    // An output folder that does not exist: an output that cannot be written, not bad
    // input (exit 1, as for `optimize`; issue 12), naming it, nothing left behind.
    let nowhere = dir.join("no-such-folder").join("r.html");
    let out = atlas(&["report", &result_s, "--output", nowhere.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(nowhere.to_str().unwrap()));
    assert!(text(&out.stderr).contains("cannot write"));
}
