//! Prediction services over loopback: a real HTTP server (the `test-server` feature)
//! serving the built-in model of `quickstart.toml`, and the misbehaviours of the
//! contract (section 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_core::model_spec::{HttpSpec, ModelSpec};
use atlas_core::{Compiled, Error, Problem, SolveOptions};
use atlas_models::test_server::{Behaviour, TestServer};

const QUICKSTART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/problems/quickstart.toml"
);
/// The optimum of quickstart (examples/problems/optima.json, certified).
const QUICKSTART_OPTIMUM: f64 = 1_585_364.8228965725;

fn spec(url: String) -> HttpSpec {
    HttpSpec {
        url,
        timeout_s: 10.0,
        retries: 3,
        batch: 64,
        concurrency: 4,
        headers: Default::default(),
        gradient: false,
    }
}

/// The server of quickstart's built-in model, and quickstart with that service as its
/// model (the same channels, bounds, budget and rules; no curves).
fn served() -> (TestServer, Problem) {
    let builtin = Compiled::from_path(QUICKSTART).unwrap();
    let model = builtin.model().clone();
    let server = TestServer::start(Arc::new(move |x: &[f64]| model.value(x))).unwrap();
    let mut problem = Problem::from_path(QUICKSTART).unwrap();
    for c in &mut problem.channels {
        c.response = None;
        c.adstock = None;
    }
    problem.model = Some(ModelSpec::Http(spec(server.url())));
    (server, problem)
}

fn with_spec(problem: &Problem, f: impl FnOnce(&mut HttpSpec)) -> Problem {
    let mut p = problem.clone();
    if let Some(ModelSpec::Http(h)) = &mut p.model {
        f(h);
    }
    p
}

fn lbfgs(compiled: &Compiled) -> Result<atlas_core::OptimizationResult, Error> {
    atlas_core::optimize(
        compiled,
        &atlas_lbfgs::LbfgsConfig::default(),
        SolveOptions::default(),
    )
}

#[test]
fn lbfgs_reaches_the_optimum_through_the_service_with_finite_differences() {
    let (server, problem) = served();
    let compiled = atlas_models::compile(&problem, Some(QUICKSTART.as_ref())).unwrap();
    let result = lbfgs(&compiled).unwrap();
    let rel = (result.objective - QUICKSTART_OPTIMUM).abs() / QUICKSTART_OPTIMUM;
    assert!(
        rel < 1e-6,
        "{} vs {QUICKSTART_OPTIMUM} ({rel:e})",
        result.objective
    );
    assert!(result.max_violation <= 1e-6 * 1e6);
    assert_eq!(
        result.metrics.gradient.as_deref(),
        Some("finite_differences")
    );
    // Gradients are batches of 2n + 1 = 7 points, answered in one request each.
    assert!(server.largest_batch() >= 6, "{}", server.largest_batch());
    assert!(result.metrics.cache_hits.is_some());
    // The reported objective is the service's own value at the returned plan.
    let x = result.flat_allocation(&compiled).unwrap();
    let builtin = Compiled::from_path(QUICKSTART).unwrap();
    assert!((builtin.model().value(&x) - result.objective).abs() <= 1e-9 * result.objective);
}

#[test]
fn a_service_that_fails_every_third_request_still_gives_the_optimum() {
    let (server, problem) = served();
    server.set(Behaviour {
        fail_every: Some(3),
        ..Default::default()
    });
    let compiled = atlas_models::compile(&problem, None).unwrap();
    let result = lbfgs(&compiled).unwrap();
    let rel = (result.objective - QUICKSTART_OPTIMUM).abs() / QUICKSTART_OPTIMUM;
    assert!(rel < 1e-6, "{} ({rel:e})", result.objective);
    assert!(server.requests() >= 6);
}

#[test]
fn a_hanging_service_ends_with_an_error_after_timeout_times_retries() {
    let (server, problem) = served();
    server.set(Behaviour {
        hang: true,
        ..Default::default()
    });
    let problem = with_spec(&problem, |h| {
        h.timeout_s = 0.3;
        h.retries = 2;
    });
    let compiled = atlas_models::compile(&problem, Some(QUICKSTART.as_ref())).unwrap();
    let started = Instant::now();
    let e = lbfgs(&compiled).unwrap_err();
    let elapsed = started.elapsed();
    // 3 attempts of 0.3 s and backoffs of 50 + 100 ms.
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    assert!(matches!(e, Error::Model { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 1);
    let text = e.to_string();
    assert!(
        text.contains(&server.url()) && text.contains("timeout") && text.contains("3 attempts"),
        "{text}"
    );
    assert_eq!(server.requests(), 3);
}

fn error_of(behaviour: Behaviour) -> (String, u64) {
    let (server, problem) = served();
    server.set(behaviour);
    let compiled = atlas_models::compile(&problem, None).unwrap();
    let e = lbfgs(&compiled).unwrap_err();
    assert!(matches!(e, Error::Model { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&server.url()), "{text}");
    (text, server.requests())
}

#[test]
fn bad_answers_are_each_a_clear_error() {
    let (text, requests) = error_of(Behaviour {
        status: Some(400),
        ..Default::default()
    });
    assert!(
        text.contains("HTTP status 400") && text.contains("the test server answers 400"),
        "{text}"
    );
    assert_eq!(requests, 1, "a 4xx answer is not retried");

    let (text, _) = error_of(Behaviour {
        drop_one_value: true,
        ..Default::default()
    });
    assert!(
        text.contains("values for") && text.contains("points"),
        "{text}"
    );

    let (text, _) = error_of(Behaviour {
        nan: true,
        ..Default::default()
    });
    assert!(text.contains("non-finite"), "{text}");

    let (text, _) = error_of(Behaviour {
        html: true,
        ..Default::default()
    });
    assert!(
        text.contains("HTML") && text.contains("<html><body><h1>502"),
        "{text}"
    );

    let (text, requests) = error_of(Behaviour {
        status: Some(500),
        ..Default::default()
    });
    assert!(
        text.contains("HTTP status 500") && text.contains("4 attempts"),
        "{text}"
    );
    assert_eq!(requests, 4, "one try and three retries");
}

#[test]
fn headers_read_the_environment() {
    let (server, problem) = served();
    server.set(Behaviour {
        require_authorization: Some("Bearer t0ken".to_string()),
        ..Default::default()
    });
    std::env::set_var("ATLAS_MODELS_TEST_TOKEN", "t0ken");
    let problem = with_spec(&problem, |h| {
        h.headers.insert(
            "Authorization".into(),
            "Bearer ${ATLAS_MODELS_TEST_TOKEN}".into(),
        );
    });
    let compiled = atlas_models::compile(&problem, None).unwrap();
    assert!(compiled
        .model()
        .value(&[400_000.0, 400_000.0, 200_000.0])
        .is_finite());

    let unset = with_spec(&problem, |h| {
        h.headers.insert(
            "Authorization".into(),
            "Bearer ${ATLAS_MODELS_TEST_UNSET}".into(),
        );
    });
    let e = atlas_models::compile(&unset, Some(QUICKSTART.as_ref())).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let text = e.to_string();
    assert!(
        text.contains("model.headers.Authorization") && text.contains("ATLAS_MODELS_TEST_UNSET"),
        "{text}"
    );
}

#[test]
fn large_batches_are_split_and_sent_concurrently() {
    let (server, problem) = served();
    server.set(Behaviour {
        delay: Duration::from_millis(30),
        ..Default::default()
    });
    let problem = with_spec(&problem, |h| {
        h.batch = 5;
        h.concurrency = 4;
    });
    let compiled = atlas_models::compile(&problem, None).unwrap();
    let points: Vec<Vec<f64>> = (0..40)
        .map(|i| vec![100_000.0 + i as f64, 300_000.0, 100_000.0])
        .collect();
    let mut out = vec![0.0; points.len()];
    let started = Instant::now();
    compiled.model().value_batch(&points, &mut out);
    let elapsed = started.elapsed();
    let builtin = Compiled::from_path(QUICKSTART).unwrap();
    for (p, v) in points.iter().zip(&out) {
        assert_eq!(*v, builtin.model().value(p));
    }
    assert_eq!(server.requests(), 8);
    assert_eq!(server.largest_batch(), 5);
    assert!(server.most_in_flight() > 1);
    // Concurrency is shown by the server's count of requests in flight, not by the
    // wall clock (8 requests of 30 ms, 4 at a time, take about 60 ms on a quiet machine;
    // a shared CI machine promises nothing).
    eprintln!("40 points in 8 requests of 30 ms: {elapsed:?}");
    // A second pass is answered by the cache.
    compiled.model().value_batch(&points, &mut out);
    assert_eq!(server.requests(), 8);
}

#[test]
fn a_service_with_gradients_is_used_for_them() {
    let (server, problem) = served();
    server.set(Behaviour {
        gradients: true,
        ..Default::default()
    });
    let problem = with_spec(&problem, |h| h.gradient = true);
    let compiled = atlas_models::compile(&problem, None).unwrap();
    let result = lbfgs(&compiled).unwrap();
    assert_eq!(result.metrics.gradient.as_deref(), Some("exact"));
    let rel = (result.objective - QUICKSTART_OPTIMUM).abs() / QUICKSTART_OPTIMUM;
    assert!(rel < 1e-6, "{rel:e}");
    assert_eq!(server.largest_batch(), 1);
}
