//! The router in-process (no socket) over an in-memory SQLite storage: the token check,
//! cursor pagination, the size limits' 400s naming their field, the queue limit's 429
//! with `Retry-After`, `?wait=` parsing and the error body's shape.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use atlas_store::{NewJob, Storage};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::{Limits, ServerConfig};

fn quickstart() -> Value {
    json!({
        "name": "quickstart",
        "periods": 1,
        "budget": 1_000_000.0,
        "budget_mode": "exact",
        "objective": "response",
        "channels": [
            {"name": "tv", "min": 100_000.0, "max": 500_000.0,
             "response": {"kind": "hill", "beta": 1_200_000.0, "k": 300_000.0, "s": 1.0}},
            {"name": "digital", "min": 200_000.0, "max": 600_000.0,
             "response": {"kind": "hill", "beta": 1_000_000.0, "k": 200_000.0, "s": 1.0}},
            {"name": "radio", "min": 50_000.0, "max": 200_000.0,
             "response": {"kind": "hill", "beta": 300_000.0, "k": 80_000.0, "s": 1.0}}
        ]
    })
}

fn registry() -> Arc<atlas_core::Registry> {
    let mut registry = atlas_core::Registry::new();
    atlas_lbfgs::register(&mut registry).expect("register lbfgs");
    Arc::new(registry)
}

/// A config with no workers (jobs stay queued) and the given tokens.
fn config() -> ServerConfig {
    let mut c = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), "sqlite::memory:");
    c.workers = 0;
    c
}

struct App {
    router: Router,
    storage: Arc<dyn Storage>,
}

async fn app(config: ServerConfig, tokens: &[&str]) -> App {
    let storage = atlas_store::open("sqlite::memory:")
        .await
        .expect("in-memory storage");
    let state = crate::new_state(
        config,
        registry(),
        storage.clone(),
        tokens.iter().map(|t| t.to_string()).collect(),
        Some(Arc::new(atlas_sweep::Cache::memory())),
    );
    App {
        router: crate::api::router(state),
        storage,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl App {
    async fn send(&self, req: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(req).await
    }

    async fn queue(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let job = self
                .storage
                .submit(NewJob {
                    request: json!({"problem": quickstart()}),
                    optimizer: Some("lbfgs".into()),
                    problem: Some(format!("p{i}")),
                    idempotency_key: None,
                })
                .await
                .expect("submit");
            ids.push(job.job.id.to_string());
        }
        ids
    }
}

fn field(a: &Answer) -> Option<&str> {
    a.body["error"]["field"].as_str()
}

#[tokio::test]
async fn v1_routes_need_a_listed_bearer_token_and_open_routes_do_not() {
    let app = app(config(), &["tok-alpha", "tok-beta"]).await;
    let missing = app.get("/v1/optimizers", &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.body["error"]["kind"], "unauthorized");
    assert_eq!(missing.headers[header::WWW_AUTHENTICATE], "Bearer");
    for wrong in [
        "Bearer tok-alph",
        "Bearer tok-alpha2",
        "Bearer tok-alphatok-beta",
        "Basic tok-alpha",
        "tok-alpha",
        "Bearer ",
    ] {
        let a = app.get("/v1/optimizers", &[("authorization", wrong)]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    for right in ["Bearer tok-alpha", "Bearer tok-beta", "bearer tok-beta"] {
        let a = app.get("/v1/optimizers", &[("authorization", right)]).await;
        assert_eq!(a.status, StatusCode::OK, "{right}: {}", a.body);
        assert_eq!(a.body[0]["name"], "lbfgs");
    }
    // Health, readiness and the document are open.
    for open in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(app.get(open, &[]).await.status, StatusCode::OK, "{open}");
    }
    // Without tokens, /v1 is open.
    let open = self::app(config(), &[]).await;
    assert_eq!(open.get("/v1/optimizers", &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn cursor_pages_walk_every_job_once_in_order() {
    let app = app(config(), &[]).await;
    let ids = app.queue(11).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(c) => format!("/v1/jobs?limit=4&after={c}"),
            None => "/v1/jobs?limit=4".to_string(),
        };
        let page = app.get(&path, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let jobs = page.body["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 4);
        seen.extend(jobs.iter().map(|j| j["id"].as_str().unwrap().to_string()));
        pages += 1;
        match page.body["next"].as_str() {
            Some(c) => {
                // The cursor is the last id of the page.
                assert_eq!(Some(c), jobs.last().and_then(|j| j["id"].as_str()));
                after = Some(c.to_string());
            }
            None => {
                assert!(page.body["next"].is_null());
                break;
            }
        }
    }
    assert_eq!(pages, 3, "11 jobs in pages of 4");
    assert_eq!(seen, ids, "every job once, oldest first");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 11);
    // A page that ends exactly at the last job says so (no empty extra page).
    let exact = app.get("/v1/jobs?limit=11", &[]).await;
    assert!(exact.body["next"].is_null(), "{}", exact.body);
    // Filters combine with the cursor: no job is running.
    let running = app.get("/v1/jobs?state=running", &[]).await;
    assert_eq!(running.body["jobs"], json!([]));
}

#[tokio::test]
async fn bad_page_parameters_answer_400_naming_them() {
    let app = app(config(), &[]).await;
    app.queue(1).await;
    for (query, name) in [
        ("after=not-a-cursor", "after"),
        ("after=%00", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("state=finished", "state"),
        ("kind=batch", "kind"),
        // An empty value is not an absent filter.
        ("state=", "state"),
        ("kind=", "kind"),
        ("limit=", "limit"),
        ("after=", "after"),
    ] {
        let a = app.get(&format!("/v1/jobs?{query}"), &[]).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{query}: {}", a.body);
        assert_eq!(field(&a), Some(name), "{query}: {}", a.body);
    }
    assert_eq!(
        app.get("/v1/jobs?limit=1000", &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn each_size_limit_answers_400_naming_its_field() {
    let mut c = config();
    c.limits = Limits {
        max_channels: 2,
        max_periods: 4,
        max_variables: 5,
        max_draws: 3,
        max_scenarios: 2,
        max_multi_start: 8,
        max_population: 16,
        max_iterations: 100,
        allow_model_hosts: Vec::new(),
    };
    let app = app(c, &[]).await;
    let base = quickstart();
    let two_channels = {
        let mut p = base.clone();
        p["channels"].as_array_mut().unwrap().truncate(2);
        p
    };
    let mut periods = two_channels.clone();
    periods["periods"] = json!(5);
    let mut variables = two_channels.clone();
    variables["periods"] = json!(3); // 2 x 3 = 6 > 5
    let mut draws = two_channels.clone();
    draws["model"] = json!({"kind": "draws", "draws": [[1.0], [1.0], [1.0], [1.0]]});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"problem": base}), "channels"),
        (json!({"problem": periods}), "periods"),
        (json!({"problem": variables}), "channels"),
        (json!({"problem": draws}), "model.draws"),
        (
            json!({"problem": two_channels, "settings": {"multi_start": 9}}),
            "settings.multi_start",
        ),
        (
            json!({"problem": two_channels, "settings": {"population_size": 17}}),
            "settings.population_size",
        ),
        (
            json!({"problem": two_channels, "settings": {"max_iterations": 101}}),
            "settings.max_iterations",
        ),
        (
            json!({"problem": two_channels, "settings": {"n_trials": 101}}),
            "settings.n_trials",
        ),
    ];
    for (body, name) in cases {
        let a = app.post("/v1/jobs", &body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{name}: {}", a.body);
        assert_eq!(field(&a), Some(name), "{}", a.body);
        assert_eq!(a.body["error"]["kind"], "limit", "{}", a.body);
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(name),
            "the message starts with the field: {}",
            a.body
        );
    }
    // Within every limit the same problem is taken.
    let a = app
        .post(
            "/v1/jobs",
            &json!({"problem": two_channels, "settings": {"max_iterations": 100}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    // A sweep over the scenario limit names `budgets`.
    let a = app
        .post(
            "/v1/sweeps",
            &json!({"problem": two_channels, "budgets": [1e5, 2e5, 3e5]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(field(&a), Some("budgets"), "{}", a.body);
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after_and_takes_jobs_again_when_it_drains() {
    let mut c = config();
    c.max_queue = 3;
    let app = app(c, &[]).await;
    let body = json!({"problem": quickstart()});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let a = app.post("/v1/jobs", &body).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
        ids.push(a.body["id"].as_str().unwrap().to_string());
    }
    let full = app.post("/v1/jobs", &body).await;
    assert_eq!(full.status, StatusCode::TOO_MANY_REQUESTS, "{}", full.body);
    assert_eq!(full.body["error"]["kind"], "queue_full");
    let retry: u64 = full.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // A sweep that would overflow it is refused whole.
    let sweep = app
        .post(
            "/v1/sweeps",
            &json!({"problem": quickstart(), "budgets": [5e5, 1e6]}),
        )
        .await;
    assert_eq!(
        sweep.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        sweep.body
    );
    assert!(sweep.headers.contains_key(header::RETRY_AFTER));
    // A cancelled job leaves the queue: one more is taken, then it is full again.
    let req = Request::delete(format!("/v1/jobs/{}", ids[0]))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::OK);
    assert_eq!(
        app.post("/v1/jobs", &body).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.post("/v1/jobs", &body).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn retry_after_grows_with_the_queue_per_worker_and_is_at_least_a_second() {
    for (queued, workers, expected) in [(5u64, 1usize, 1u64), (1_000, 2, 5), (1_000, 1, 10)] {
        let mut c = config();
        c.max_queue = queued;
        c.workers = workers;
        // The state alone: no worker is started, the jobs stay queued.
        let storage = atlas_store::open("sqlite::memory:").await.unwrap();
        let state = crate::new_state(c, registry(), storage.clone(), Vec::new(), None);
        for _ in 0..queued {
            storage
                .submit(NewJob {
                    request: json!({}),
                    optimizer: None,
                    problem: None,
                    idempotency_key: None,
                })
                .await
                .unwrap();
        }
        crate::api::admit(&state, 0)
            .await
            .expect("exactly full takes nothing more, but is not over");
        let e = crate::api::admit(&state, 1).await.unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            e.retry_after_s,
            Some(expected),
            "{queued} queued, {workers} workers"
        );
    }
}

#[test]
fn wait_accepts_seconds_within_the_bound_and_names_the_field_otherwise() {
    let q = |v: &str| HashMap::from([("wait".to_string(), v.to_string())]);
    assert_eq!(crate::api::wait_param(&HashMap::new()).unwrap(), None);
    assert_eq!(crate::api::wait_param(&q("0")).unwrap(), None);
    assert_eq!(
        crate::api::wait_param(&q(" 2.5 ")).unwrap(),
        Some(std::time::Duration::from_millis(2500))
    );
    assert!(crate::api::wait_param(&q("600")).unwrap().is_some());
    for bad in ["-1", "600.5", "NaN", "inf", "soon", ""] {
        let e = crate::api::wait_param(&q(bad)).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(e.field.as_deref(), Some("wait"), "{bad}");
    }
}

#[tokio::test]
async fn errors_have_the_contract_shape_and_a_json_content_type() {
    let app = app(config(), &[]).await;
    let req = Request::post("/v1/jobs")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let a = app.send(req).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/json");
    let error = a.body["error"].as_object().unwrap();
    assert_eq!(error["kind"], "unsupported_media_type");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        !error.contains_key("field"),
        "no field when none is at fault"
    );
    let a = app
        .post("/v1/jobs", &json!({"problem": quickstart(), "seed": -1}))
        .await;
    assert_eq!(
        (a.status, field(&a)),
        (StatusCode::BAD_REQUEST, Some("seed"))
    );
    let a = app.get("/v1/jobs/01JD0000000000000000000000", &[]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["error"]["kind"], "not_found");
}

#[test]
fn model_hosts_match_exactly_or_by_host_for_any_port() {
    let limits = Limits {
        allow_model_hosts: vec!["models.internal".into(), "10.0.0.5:8080".into()],
        ..Limits::default()
    };
    assert!(limits.host_allowed("models.internal"));
    assert!(limits.host_allowed("models.internal:9000"));
    assert!(limits.host_allowed("10.0.0.5:8080"));
    assert!(!limits.host_allowed("10.0.0.5:8081"));
    assert!(!limits.host_allowed("10.0.0.5"));
    assert!(!limits.host_allowed("models.internal.evil.com"));
    assert!(!limits.host_allowed("evil.com"));
    assert!(!Limits::default().host_allowed("localhost"));
}
