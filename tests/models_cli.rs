//! `atlas` with external models (`[model]`, shared/spec/models.md): a prediction service
//! over loopback (the test server of atlas-models), end to end through the binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use atlas::atlas_models::test_server::{Behaviour, TestServer};
use atlas::Compiled;
use serde_json::Value;

const QUICKSTART_OPTIMUM: f64 = 1_585_364.8228965725;

fn atlas(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .output()
        .expect("run atlas");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/problems/quickstart.toml")
}

/// A server of quickstart's built-in model and a folder with quickstart's rules and that
/// service as its model.
fn served(model_lines: &str) -> (TestServer, PathBuf, PathBuf) {
    let builtin = Compiled::from_path(quickstart()).unwrap();
    let model = builtin.model().clone();
    served_model(model_lines, Arc::new(move |x: &[f64]| model.value(x)))
}

fn served_model(
    model_lines: &str,
    model: atlas::atlas_models::test_server::ServedModel,
) -> (TestServer, PathBuf, PathBuf) {
    let server = TestServer::start(model).unwrap();
    let text = std::fs::read_to_string(quickstart()).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("response ="))
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "atlas-models-cli-{}-{}",
        std::process::id(),
        server
            .url()
            .rsplit(':')
            .next()
            .unwrap()
            .replace("/predict", "")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("http.toml");
    std::fs::write(
        &path,
        format!(
            "{}\n[model]\nkind = \"http\"\nurl = \"{}\"\n{model_lines}\n",
            kept.join("\n"),
            server.url()
        ),
    )
    .unwrap();
    (server, path, dir)
}

/// `atlas optimize PATH EXTRA --quiet --output DIR/result.json`: exit 0, and the result
/// file's objective is quickstart's optimum (1e-6 relative). Returns the result.
fn optimize_to_quickstarts_optimum(path: &Path, extra: &[&str], dir: &Path) -> Value {
    let output = dir.join("result.json");
    let mut args = vec!["optimize", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend(["--quiet", "--output", output.to_str().unwrap()]);
    let (code, _, err) = atlas(&args);
    assert_eq!(code, 0, "{err}");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let objective = result["objective"].as_f64().unwrap();
    assert!(
        (objective - QUICKSTART_OPTIMUM).abs() < 1e-6 * QUICKSTART_OPTIMUM,
        "{objective}"
    );
    result
}

#[test]
fn optimize_through_a_service_reports_finite_differences_and_the_optimum() {
    let (_server, path, dir) = served("");
    let result = optimize_to_quickstarts_optimum(&path, &[], &dir);
    assert_eq!(result["metrics"]["gradient"], "finite_differences");
    assert!(result["metrics"]["cache_hits"].as_u64().is_some());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_hanging_service_exits_1_with_the_error_and_no_result_file() {
    let (server, path, dir) = served("timeout_s = 0.2\nretries = 1");
    server.set(Behaviour {
        hang: true,
        ..Default::default()
    });
    let output = dir.join("result.json");
    let (code, out, err) = atlas(&[
        "optimize",
        path.to_str().unwrap(),
        "--quiet",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&server.url()) && err.contains("timeout") && err.contains("2 attempts"),
        "{err}"
    );
    assert!(!output.exists());
    assert!(out.is_empty(), "{out}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_problem_with_curves_and_an_external_model_is_refused_with_exit_2() {
    let (_server, path, dir) = served("");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "name = \"tv\"",
        "name = \"tv\"\nresponse = { kind = \"linear\", beta = 1.0 }",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let (code, _, err) = atlas(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("channels[0].response") && err.contains("http"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_surrogate_of_a_curve_model_is_exact_and_optimize_reports_the_true_objective() {
    let (server, path, dir) = served("");
    let fitted = dir.join("fitted.toml");
    let (code, out, err) = atlas(&[
        "surrogate",
        path.to_str().unwrap(),
        "--samples",
        "200",
        "--output",
        fitted.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("hill") && out.contains("R²"), "{out}");
    let surrogate = Compiled::from_path(&fitted).unwrap();
    // Quickstart's model is made of hill curves: the fit recovers it.
    let builtin = Compiled::from_path(quickstart()).unwrap();
    for x in [
        [300_000.0, 400_000.0, 100_000.0],
        [450_000.0, 300_000.0, 60_000.0],
    ] {
        let (a, b) = (surrogate.model().value(&x), builtin.model().value(&x));
        assert!((a - b).abs() < 1e-6 * b, "{a} vs {b}");
    }
    let requests_before = server.points();
    optimize_to_quickstarts_optimum(&path, &["--surrogate", fitted.to_str().unwrap()], &dir);
    // The objective is the service's: the polish asked it.
    assert!(server.points() > requests_before);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_poor_surrogate_is_refused_and_not_written() {
    // Interaction between channels: no sum of curves fits it.
    let (_server, path, dir) = served_model(
        "",
        Arc::new(|x: &[f64]| 1e6 * ((x[0] - x[1]) / 1e5).sin().abs() + x[2]),
    );
    let fitted = dir.join("fitted.toml");
    let (code, out, err) = atlas(&[
        "surrogate",
        path.to_str().unwrap(),
        "--samples",
        "100",
        "--output",
        fitted.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("poor fit"), "{err}");
    assert!(!fitted.exists());
    std::fs::remove_dir_all(dir).ok();
}
