//! Speed of external models (issue 14), ratios measured in one run, medians of 3:
//!
//! 1. `lbfgs` with batched finite differences on the ONNX twin of retail_q4 (feature
//!    `onnx`) against `lbfgs` on the built-in model: the same optimum, within 20x.
//! 2. `cmaes` against the loopback HTTP server with 2 ms latency per request: requests of
//!    64 points against requests of 1 point, the same evaluations.
//! 3. A surrogate of a model costing 1 ms per evaluation (the HTTP server with 1 ms
//!    latency, batch 1): `atlas surrogate` + `optimize --surrogate` against `cmaes` on the
//!    true model, the true-model evaluations each needs to come within 0.1 % of the optimum.
//!
//! `cargo bench --bench models [--features onnx]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas::atlas_models::test_server::{Behaviour, TestServer};
use atlas::model_spec::{HttpSpec, ModelSpec};
use atlas::{Compiled, OptimizationResult, Problem, SolveOptions};

const PROBLEMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/problems");

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed(runs: usize, mut f: impl FnMut() -> OptimizationResult) -> (f64, OptimizationResult) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        times.push(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    (median(times), last.expect("runs >= 1"))
}

fn solve(compiled: &Compiled, name: &str, settings: serde_json::Value) -> OptimizationResult {
    let registry = atlas::registry().expect("the enabled optimizers register");
    let serde_json::Value::Object(map) = settings else {
        panic!("settings are an object")
    };
    let config = registry.config(name, map).expect("config");
    registry
        .optimize(compiled, config.as_ref(), SolveOptions::default())
        .expect("solve")
}

#[cfg(feature = "onnx")]
fn onnx_twin() {
    let builtin = Compiled::from_path(format!("{PROBLEMS}/retail_q4.toml")).unwrap();
    let twin = atlas::load_problem(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/models/retail_q4_onnx.toml"
    ))
    .unwrap();
    let (t_builtin, r_builtin) = timed(3, || solve(&builtin, "lbfgs", serde_json::json!({})));
    let (t_twin, r_twin) = timed(3, || {
        // A fresh model per run: the evaluation cache must not carry over.
        let fresh = atlas::load_problem(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/models/retail_q4_onnx.toml"
        ))
        .unwrap();
        solve(&fresh, "lbfgs", serde_json::json!({}))
    });
    let _ = twin;
    let rel = (r_twin.objective - r_builtin.objective).abs() / r_builtin.objective;
    println!(
        "onnx twin of retail_q4, lbfgs: built-in {:.3} s ({} evaluations), ONNX with batched finite differences {:.3} s ({} evaluations, {} gradients): {:.1}x; objectives differ by {rel:.1e} relative",
        t_builtin,
        r_builtin.metrics.evaluations,
        t_twin,
        r_twin.metrics.evaluations,
        r_twin.metrics.gradient_evaluations,
        t_twin / t_builtin
    );
}

#[cfg(not(feature = "onnx"))]
fn onnx_twin() {
    println!("onnx twin of retail_q4: skipped (build with --features onnx)");
}

/// quickstart's rules with the test server as the model.
fn http_problem(server: &TestServer, batch: usize) -> Compiled {
    let mut problem = Problem::from_path(format!("{PROBLEMS}/quickstart.toml")).unwrap();
    for c in &mut problem.channels {
        c.response = None;
    }
    problem.model = Some(ModelSpec::Http(HttpSpec {
        url: server.url(),
        timeout_s: 10.0,
        retries: 3,
        batch,
        concurrency: 4,
        headers: Default::default(),
        gradient: false,
    }));
    atlas::atlas_models::compile(&problem, None).unwrap()
}

fn served(latency: Duration) -> TestServer {
    let builtin = Compiled::from_path(format!("{PROBLEMS}/quickstart.toml")).unwrap();
    let model = builtin.model().clone();
    let server = TestServer::start(Arc::new(move |x: &[f64]| model.value(x))).unwrap();
    server.set(Behaviour {
        delay: latency,
        ..Default::default()
    });
    server
}

fn cmaes_batches() {
    let server = served(Duration::from_millis(2));
    let settings = serde_json::json!({"max_evaluations": 1500, "seed": 3});
    let mut rows = Vec::new();
    for batch in [64, 1] {
        let before = server.requests();
        let (t, r) = timed(3, || {
            solve(&http_problem(&server, batch), "cmaes", settings.clone())
        });
        rows.push((
            batch,
            t,
            r.metrics.evaluations,
            (server.requests() - before) / 3,
            server.largest_batch(),
        ));
    }
    for (batch, t, evals, requests, _) in &rows {
        println!("cmaes over HTTP (2 ms per request), batch {batch}: {t:.3} s, {evals} evaluations, {requests} requests per solve");
    }
    println!(
        "cmaes over HTTP: batch 64 is {:.1}x faster in wall time than batch 1 (largest request seen: {} points)",
        rows[1].1 / rows[0].1,
        rows[0].4
    );
}

/// Points the test server evaluated while `f` ran.
fn points_during<T>(server: &TestServer, f: impl FnOnce() -> T) -> (u64, T) {
    let before = server.points();
    let out = f();
    (server.points() - before, out)
}

/// `atlas surrogate` then `atlas optimize --surrogate` (the command line, in process) on
/// quickstart's rules with its model behind the test server at 1 ms per request and one
/// point per request (1 ms per evaluation), against `cmaes` on the true model: the
/// true-model evaluations each needs to come within 0.1 % of the optimum.
#[cfg(feature = "cli")]
fn surrogate() {
    let builtin = Compiled::from_path(format!("{PROBLEMS}/quickstart.toml")).unwrap();
    let optimum = solve(&builtin, "lbfgs", serde_json::json!({})).objective;
    let server = served(Duration::from_millis(1));
    let dir = std::env::temp_dir().join(format!("atlas-models-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(format!("{PROBLEMS}/quickstart.toml")).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("response =") && !l.starts_with("adstock ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let problem = dir.join("quickstart_http.toml");
    std::fs::write(
        &problem,
        format!(
            "{kept}\n[model]\nkind = \"http\"\nurl = \"{}\"\nbatch = 1\nconcurrency = 1\n",
            server.url()
        ),
    )
    .unwrap();
    let fitted = dir.join("fitted.toml");
    let result = dir.join("result.json");
    let cli = |args: &[&std::path::Path]| {
        let mut argv: Vec<std::ffi::OsString> = vec!["atlas".into()];
        argv.extend(args.iter().map(|a| a.as_os_str().to_owned()));
        let status = atlas_cli::main_with_args(atlas::registry().unwrap(), argv);
        assert_eq!(status, std::process::ExitCode::SUCCESS, "{args:?}");
    };
    let p = std::path::Path::new;
    let samples = "40";
    let t = Instant::now();
    let (fit_points, ()) = points_during(&server, || {
        cli(&[
            p("surrogate"),
            &problem,
            p("--samples"),
            p(samples),
            p("--output"),
            &fitted,
        ])
    });
    let (polish_points, ()) = points_during(&server, || {
        cli(&[
            p("optimize"),
            &problem,
            p("--surrogate"),
            &fitted,
            p("-O"),
            p("lbfgs"),
            p("--quiet"),
            p("--format"),
            p("json"),
            p("--output"),
            &result,
        ])
    });
    let t_surrogate = t.elapsed().as_secs_f64();
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let objective = value["objective"].as_f64().unwrap();
    let gap = (optimum - objective) / optimum;
    let surrogate_points = fit_points + polish_points;
    println!(
        "surrogate (1 ms per evaluation): `atlas surrogate --samples {samples}` {fit_points} evaluations + `optimize --surrogate -O lbfgs` {polish_points} on the true model = {surrogate_points}, {t_surrogate:.3} s, {gap:.1e} below the optimum"
    );
    let mut cmaes = None;
    for budget in [
        25, 50, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 2400, 3200,
    ] {
        let t = Instant::now();
        let (points, r) = points_during(&server, || {
            solve(
                &http_problem(&server, 1),
                "cmaes",
                serde_json::json!({"max_evaluations": budget, "seed": 3}),
            )
        });
        let gap = (optimum - r.objective) / optimum;
        if gap <= 1e-3 {
            cmaes = Some((budget, points, t.elapsed().as_secs_f64(), gap));
            break;
        }
    }
    match cmaes {
        Some((budget, points, t, gap)) => println!(
            "cmaes on the true model (1 ms per evaluation): within 0.1 % first with max_evaluations {budget}: {points} evaluations, {t:.3} s, {gap:.1e} below the optimum; the surrogate used {:.2}x its evaluations",
            surrogate_points as f64 / points as f64
        ),
        None => println!("cmaes on the true model: not within 0.1 % in 3200 evaluations"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(not(feature = "cli"))]
fn surrogate() {
    println!("surrogate: skipped (needs the cli feature)");
}

fn main() {
    onnx_twin();
    cmaes_batches();
    surrogate();
}
