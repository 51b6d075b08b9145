//! `atlas serve` as a real process on 127.0.0.1, talked to over loopback: results equal
//! the CLI's, bad input answers 400 naming the CLI's field, every status of the
//! contract, no 500, kill -9 loses no acknowledged job, SIGTERM drains.
//! (Needs the `server` feature: `cargo test --release --features server --test service`.)

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ATLAS: &str = env!("CARGO_BIN_EXE_atlas");

/// A running `atlas serve`, killed when dropped.
struct Service {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Service {
    fn start(dir: &Path, db: &str, extra: &[&str]) -> Service {
        let mut child = Command::new(ATLAS)
            .current_dir(dir)
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--storage",
                db,
                "--log-format",
                "json",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start atlas serve");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "atlas serve listening" {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_string());
                        }
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("atlas serve did not start: {:?}", logs.lock().unwrap()));
        Service {
            child,
            base: format!("http://{addr}"),
            logs,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then the exit status (within `limit`).
    fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "atlas serve did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

/// One request; answers (status, JSON body or text, headers). Asserts no 500.
fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, Value, ureq::http::HeaderMap) {
    let agent = agent();
    let mut response = match method {
        "GET" | "DELETE" => {
            let mut r = if method == "GET" {
                agent.get(url)
            } else {
                agent.delete(url)
            };
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.call()
        }
        _ => {
            let mut r = agent.post(url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.send(body.unwrap_or_default())
        }
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap_or_default();
    assert_ne!(status, 500, "{method} {url} answered 500: {text}");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value, headers)
}

fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let (s, v, _) = call(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    );
    (s, v)
}

fn get(url: &str) -> (u16, Value) {
    let (s, v, _) = call("GET", url, &[], None);
    (s, v)
}

/// A problem file (any format) as the JSON value a request carries.
fn problem_json(path: &Path) -> Value {
    atlas_core::problem::read_document(path).expect("a readable problem file")
}

fn wait_job(service: &Service, id: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (s, job) = get(&service.url(&format!("/v1/jobs/{id}")));
        assert_eq!(s, 200, "{job}");
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(start.elapsed() < limit, "job {id} not finished: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cli_json(args: &[&str]) -> Value {
    let out = Command::new(ATLAS).args(args).output().expect("run atlas");
    assert!(
        out.status.success(),
        "atlas {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn every_example_problem_through_the_api_equals_the_cli() {
    let dir = common::temp_dir("svc-examples");
    let service = Service::start(&dir, "sqlite::memory:", &["--workers", "2"]);
    for file in common::problem_files() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        // The default optimizer where it accepts the problem, else the first that does
        // (both sides use the same one).
        let (s, v) = post_json(
            &service.url("/v1/validate"),
            &json!({"problem": problem_json(&file)}),
        );
        assert_eq!(s, 200, "{name}: {v}");
        let capable: Vec<&str> = v["optimizers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        let mut args = vec![
            "optimize",
            file.to_str().unwrap(),
            "--format",
            "json",
            "--quiet",
        ];
        let mut body = json!({"problem": problem_json(&file)});
        if !capable.contains(&"lbfgs") {
            args.extend(["--optimizer", capable[0]]);
            body["optimizer"] = json!(capable[0]);
        }
        let cli = cli_json(&args);
        let (status, job) = post_json(&service.url("/v1/jobs?wait=300"), &body);
        assert_eq!(status, 200, "{name}: {job}");
        assert_eq!(job["state"], "succeeded", "{name}: {job}");
        let api = &job["result"];
        assert_eq!(api["optimizer"], cli["optimizer"], "{name}");
        assert_eq!(api["status"], cli["status"], "{name}");
        assert_eq!(api["problem"], cli["problem"], "{name}");
        let (a, c) = (
            api["objective"].as_f64().unwrap(),
            cli["objective"].as_f64().unwrap(),
        );
        assert!(close(a, c, 1e-9), "{name}: objective {a} vs CLI {c}");
        let (alloc_a, alloc_c) = (
            api["allocation"].as_object().unwrap(),
            cli["allocation"].as_object().unwrap(),
        );
        assert_eq!(
            alloc_a.keys().collect::<Vec<_>>(),
            alloc_c.keys().collect::<Vec<_>>(),
            "{name}"
        );
        let scale = cli["total_spend"].as_f64().unwrap().abs().max(1.0);
        for (channel, xs) in alloc_c {
            for (x, y) in xs
                .as_array()
                .unwrap()
                .iter()
                .zip(alloc_a[channel].as_array().unwrap())
            {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-9 * scale,
                    "{name}: {channel} {y} vs CLI {x}"
                );
            }
        }
    }
}

/// Bad problems (JSON files) answer 400 naming the field the CLI names for the same file.
#[test]
fn bad_inputs_answer_400_with_the_cli_field() {
    let dir = common::temp_dir("svc-bad");
    let service = Service::start(&dir, "sqlite::memory:", &["--workers", "1"]);
    let good = json!({"name": "t", "budget": 1000.0, "channels": [
        {"name": "tv", "max": 600.0, "response": {"kind": "hill", "beta": 1000.0, "k": 300.0, "s": 1.0}},
        {"name": "search", "response": {"kind": "log", "beta": 500.0, "k": 100.0}}]});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let mut cases: Vec<(String, Value)> = vec![
        (
            "negative budget".into(),
            with(&|v| v["budget"] = json!(-5.0)),
        ),
        (
            "negative k".into(),
            with(&|v| v["channels"][0]["response"]["k"] = json!(-1.0)),
        ),
        (
            "unknown kind".into(),
            with(&|v| v["channels"][1]["response"]["kind"] = json!("lgo")),
        ),
        ("misspelt field".into(), with(&|v| v["budgte"] = json!(3.0))),
        (
            "min above max".into(),
            with(&|v| v["channels"][0]["min"] = json!(700.0)),
        ),
        (
            "duplicate names".into(),
            with(&|v| v["channels"][1]["name"] = json!("tv")),
        ),
        (
            "unknown channel in a rule".into(),
            with(&|v| {
                v["constraints"] = json!([{"kind": "share", "channels": ["serch"], "min": 0.1}])
            }),
        ),
        (
            "period out of range".into(),
            with(&|v| {
                v["periods"] = json!(4);
                v["constraints"] =
                    json!([{"kind": "spend", "channels": ["tv"], "periods": [1, 4], "max": 10.0}]);
            }),
        ),
        ("wrong type".into(), with(&|v| v["budget"] = json!("a lot"))),
    ];
    // Every file of tests/bad_inputs that is a problem expressible as JSON, when present.
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs");
    if let Ok(entries) = std::fs::read_dir(&folder) {
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            if file.extension().and_then(|e| e.to_str()) == Some("json") {
                if let Ok(v) =
                    serde_json::from_str::<Value>(&std::fs::read_to_string(&file).unwrap())
                {
                    cases.push((file.display().to_string(), v));
                }
            }
        }
    }
    for (name, problem) in cases {
        let file = dir.join("p.json");
        std::fs::write(&file, problem.to_string()).unwrap();
        let out = Command::new(ATLAS)
            .args(["validate", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: the CLI accepts it");
        let cli = String::from_utf8_lossy(&out.stderr).to_string();
        for route in ["/v1/jobs", "/v1/validate"] {
            let (status, body) = post_json(&service.url(route), &json!({"problem": problem}));
            assert_eq!(status, 400, "{name} {route}: {body}");
            let error = &body["error"];
            assert!(
                error["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{name}: {body}"
            );
            let field = error["field"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no field in {body}"));
            assert!(
                cli.contains(&format!("{field}:"))
                    || cli.contains(&format!("{field} "))
                    // A document that is not a table at all: the CLI names the document,
                    // the API the request's `problem` field that holds it.
                    || (field == "problem" && cli.contains("the document must be")),
                "{name}: API field `{field}` not the CLI's: {cli}"
            );
        }
    }
}

#[test]
fn every_status_of_the_contract_and_no_500() {
    let dir = common::temp_dir("svc-status");
    std::fs::write(dir.join("tokens"), "# tokens\nsecret-one\nsecret-two\n").unwrap();
    let service = Service::start(
        &dir,
        "sqlite::memory:",
        &[
            "--workers",
            "0",
            "--token-file",
            "tokens",
            "--max-body-mb",
            "0.01",
            "--max-queue",
            "2",
        ],
    );
    let auth = ("Authorization", "Bearer secret-two");
    let json_type = ("Content-Type", "application/json");
    let quickstart = problem_json(&common::problems_dir().join("quickstart.toml"));
    let body = json!({"problem": quickstart}).to_string();
    // Open routes need no token.
    assert_eq!(
        get(&service.url("/healthz")),
        (200, json!({"status": "ok"}))
    );
    assert_eq!(get(&service.url("/readyz")).0, 200);
    let (s, doc) = get(&service.url("/openapi.json"));
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    assert!(doc["paths"]["/v1/jobs/{id}"].is_object());
    // 401: missing and wrong token.
    let (s, v, h) = call(
        "POST",
        &service.url("/v1/jobs"),
        &[json_type],
        Some(body.as_bytes()),
    );
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"]["kind"], "unauthorized");
    assert_eq!(h.get("www-authenticate").unwrap(), "Bearer");
    let (s, _, _) = call(
        "GET",
        &service.url("/v1/jobs"),
        &[("Authorization", "Bearer secret-thre")],
        None,
    );
    assert_eq!(s, 401);
    // 415, 400 malformed, 413.
    let (s, v, _) = call(
        "POST",
        &service.url("/v1/jobs"),
        &[auth, ("Content-Type", "text/plain")],
        Some(body.as_bytes()),
    );
    assert_eq!(
        (s, v["error"]["kind"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (s, v, _) = call(
        "POST",
        &service.url("/v1/jobs"),
        &[auth, json_type],
        Some(b"{\"problem\": "),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v, _) = call(
        "POST",
        &service.url("/v1/jobs"),
        &[auth, json_type],
        Some(b"{\"problem\": {}, \"extra\": 1}"),
    );
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("extra")),
        "{v}"
    );
    let big = format!("{{\"problem\": {{\"name\": \"{}\"}}}}", "x".repeat(20_000));
    let (s, v, _) = call(
        "POST",
        &service.url("/v1/jobs"),
        &[auth, json_type],
        Some(big.as_bytes()),
    );
    assert_eq!(s, 413, "{v}");
    // 422: an optimizer that cannot honour the problem lists those that can.
    let integer = problem_json(&common::problems_dir().join("mixed_integer.toml"));
    let (s, v, _) = call(
        "POST",
        &service.url("/v1/jobs"),
        &[auth, json_type],
        Some(
            json!({"problem": integer, "optimizer": "lbfgs"})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("milp"),
        "{v}"
    );
    // A model path in a request is refused; an http model to a host not allowed too.
    let mut with_model = quickstart.clone();
    with_model["model"] = json!({"kind": "onnx", "path": "/etc/passwd"});
    let (s, v, _) = call(
        "POST",
        &service.url("/v1/jobs"),
        &[auth, json_type],
        Some(json!({"problem": with_model}).to_string().as_bytes()),
    );
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("model.path")),
        "{v}"
    );
    // Limits, each naming its field.
    let (s, v, _) = call(
        "POST",
        &service.url("/v1/jobs"),
        &[auth, json_type],
        Some(
            json!({"problem": quickstart, "settings": {"multi_start": 100000}})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("settings.multi_start")),
        "{v}"
    );
    // 202 twice, then 429 with Retry-After (no workers: the queue holds them).
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (s, v, h) = call(
            "POST",
            &service.url("/v1/jobs"),
            &[auth, json_type],
            Some(body.as_bytes()),
        );
        assert_eq!((s, v["state"].as_str()), (202, Some("queued")), "{v}");
        assert!(h.get("location").is_some());
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let (s, v, h) = call(
        "POST",
        &service.url("/v1/jobs"),
        &[auth, json_type],
        Some(body.as_bytes()),
    );
    assert_eq!(s, 429, "{v}");
    assert!(
        h.get("retry-after")
            .unwrap()
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // 200 job, 404 unknown and malformed ids.
    let (s, v, _) = call(
        "GET",
        &service.url(&format!("/v1/jobs/{}", ids[0])),
        &[auth],
        None,
    );
    assert_eq!(
        (s, v["state"].as_str(), v["attempts"].as_u64()),
        (200, Some("queued"), Some(0)),
        "{v}"
    );
    let (s, _, _) = call(
        "GET",
        &service.url("/v1/jobs/01JD0000000000000000000000"),
        &[auth],
        None,
    );
    assert_eq!(s, 404);
    let (s, _, _) = call("GET", &service.url("/v1/jobs/not-an-id"), &[auth], None);
    assert_eq!(s, 404);
    let (s, _, _) = call(
        "DELETE",
        &service.url("/v1/jobs/01JD0000000000000000000000"),
        &[auth],
        None,
    );
    assert_eq!(s, 404);
    let (s, _, _) = call(
        "GET",
        &service.url("/v1/sweeps/01JD0000000000000000000000"),
        &[auth],
        None,
    );
    assert_eq!(s, 404);
    // Pagination: a page of 1, then the next; bad filters are 400 naming them.
    let (s, page, _) = call("GET", &service.url("/v1/jobs?limit=1"), &[auth], None);
    assert_eq!(s, 200);
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(page["jobs"][0]["id"], ids[0].as_str());
    let next = page["next"].as_str().unwrap().to_string();
    let (_, page2, _) = call(
        "GET",
        &service.url(&format!("/v1/jobs?limit=1&after={next}")),
        &[auth],
        None,
    );
    assert_eq!(page2["jobs"][0]["id"], ids[1].as_str());
    let (s, v, _) = call("GET", &service.url("/v1/jobs?state=done"), &[auth], None);
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("state")),
        "{v}"
    );
    let (s, v, _) = call("GET", &service.url("/v1/jobs?limit=0"), &[auth], None);
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("limit")),
        "{v}"
    );
    // DELETE a queued job: cancelled at once; a finished one stays as it is.
    let (s, v, _) = call(
        "DELETE",
        &service.url(&format!("/v1/jobs/{}", ids[0])),
        &[auth],
        None,
    );
    assert_eq!((s, v["state"].as_str()), (200, Some("cancelled")), "{v}");
    // Unknown route and method: JSON errors.
    let (s, v, _) = call("GET", &service.url("/v2/nothing"), &[auth], None);
    assert_eq!((s, v["error"]["kind"].as_str()), (404, Some("not_found")));
    // Metrics of the contract.
    let (s, text) = get(&service.url("/metrics"));
    assert_eq!(s, 200);
    let text = text.as_str().unwrap().to_string();
    for name in [
        "atlas_jobs_submitted_total",
        "atlas_jobs_queued",
        "atlas_jobs_running",
        "atlas_http_requests_total",
        "atlas_http_request_duration_seconds_bucket",
        "atlas_worker_leases_expired_total",
        "atlas_model_evaluations_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert!(text.contains("atlas_jobs_queued 1"), "{text}");
    assert!(text.contains("status=\"429\""), "{text}");
}

#[test]
fn refuses_a_public_address_without_tokens() {
    let out = Command::new(ATLAS)
        .args([
            "serve",
            "--addr",
            "0.0.0.0:0",
            "--storage",
            "sqlite::memory:",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--token-file") && err.contains("--insecure-no-auth"),
        "{err}"
    );
}

#[test]
fn jobs_cancel_wait_sweep_and_the_cli_client() {
    let dir = common::temp_dir("svc-life");
    let service = Service::start(&dir, "sqlite://life.db", &["--workers", "2"]);
    let quickstart = common::problems_dir().join("quickstart.toml");
    // atlas submit --wait prints the result, equal to atlas optimize.
    let out = Command::new(ATLAS)
        .args([
            "submit",
            quickstart.to_str().unwrap(),
            "--server",
            &service.base,
            "--wait",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cli = cli_json(&[
        "optimize",
        quickstart.to_str().unwrap(),
        "--format",
        "json",
        "--quiet",
    ]);
    assert!(close(
        result["objective"].as_f64().unwrap(),
        cli["objective"].as_f64().unwrap(),
        1e-9
    ));
    // atlas submit without --wait, then atlas jobs lists it.
    let out = Command::new(ATLAS)
        .args([
            "submit",
            quickstart.to_str().unwrap(),
            "--server",
            &service.base,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let queued: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = queued["id"].as_str().unwrap().to_string();
    wait_job(&service, &id, Duration::from_secs(60));
    let out = Command::new(ATLAS)
        .args(["jobs", "--server", &service.base, "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["id"] == id.as_str() && j["state"] == "succeeded"));
    // A bad problem through atlas submit: exit 2 naming the field.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        json!({"name": "b", "budget": -1.0, "channels": []}).to_string(),
    )
    .unwrap();
    let out = Command::new(ATLAS)
        .args(["submit", bad.to_str().unwrap(), "--server", &service.base])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("budget"));
    // A long job cancelled while running stops early and keeps its best point.
    let large = problem_json(&common::problems_dir().join("large.toml"));
    let (s, v) = post_json(
        &service.url("/v1/jobs"),
        &json!({"problem": large, "optimizer": "tpe", "settings": {"n_trials": 5000000}, "time_limit_s": 60}),
    );
    assert_eq!(s, 202, "{v}");
    let long = v["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    while get(&service.url(&format!("/v1/jobs/{long}"))).1["state"] != "running" {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (s, v, _) = call(
        "DELETE",
        &service.url(&format!("/v1/jobs/{long}")),
        &[],
        None,
    );
    assert_eq!((s, v["state"].as_str()), (200, Some("cancelled")), "{v}");
    let job = wait_job(&service, &long, Duration::from_secs(20));
    assert_eq!(job["state"], "cancelled");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "the cancel did not stop the solve"
    );
    let start = Instant::now();
    while get(&service.url(&format!("/v1/jobs/{long}"))).1["result"].is_null() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no best point kept"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let job = get(&service.url(&format!("/v1/jobs/{long}"))).1;
    assert_eq!(job["result"]["status"], "cancelled", "{job}");
    // A sweep of three budget points, waited for: objectives rise with the budget.
    let (s, sweep) = post_json(
        &service.url("/v1/sweeps?wait=120"),
        &json!({"problem": problem_json(&quickstart), "budgets": "0.8x:1.2x:3"}),
    );
    assert_eq!(s, 200, "{sweep}");
    assert_eq!(
        (sweep["total"].as_u64(), sweep["done"].as_u64()),
        (Some(3), Some(3)),
        "{sweep}"
    );
    let scenarios = sweep["result"]["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 3);
    let objectives: Vec<f64> = scenarios
        .iter()
        .map(|s| s["objective"].as_f64().unwrap())
        .collect();
    assert!(
        objectives[0] < objectives[1] && objectives[1] < objectives[2],
        "{objectives:?}"
    );
    assert_eq!(scenarios[1]["name"], "budget=1000000");
    // The same through the CLI's sweep: equal objectives.
    let cli = cli_json(&[
        "sweep",
        quickstart.to_str().unwrap(),
        "--budgets",
        "0.8x:1.2x:3",
        "--format",
        "json",
        "--quiet",
    ]);
    for (a, c) in scenarios.iter().zip(cli["scenarios"].as_array().unwrap()) {
        assert!(
            close(
                a["objective"].as_f64().unwrap(),
                c["objective"].as_f64().unwrap(),
                1e-6
            ),
            "{a} vs {c}"
        );
    }
    // Logs are JSON lines, and lines about a job carry its id.
    let logs = service.logs.lock().unwrap().clone();
    assert!(
        logs.iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "non-JSON log line"
    );
    let about_long: Vec<&String> = logs.iter().filter(|l| l.contains(&long)).collect();
    assert!(
        about_long.iter().any(|l| l.contains("job claimed")),
        "{logs:?}"
    );
}

/// kill -9 with 100 jobs queued and running, restart on the same database: every
/// acknowledged job ends succeeded, each with one result.
#[test]
fn kill_9_loses_no_acknowledged_job() {
    let dir = common::temp_dir("svc-kill");
    let quickstart = problem_json(&common::problems_dir().join("quickstart.toml"));
    let mut ids = Vec::new();
    {
        let service = Service::start(&dir, "sqlite://jobs.db", &["--workers", "2"]);
        for i in 0..100 {
            // Every fifth job takes longer, so some are running when the process dies.
            let body = if i % 5 == 0 {
                json!({"problem": quickstart, "optimizer": "cmaes", "seed": i})
            } else {
                json!({"problem": quickstart, "seed": i})
            };
            let (s, v) = post_json(&service.url("/v1/jobs"), &body);
            assert_eq!(s, 202, "{v}");
            ids.push(v["id"].as_str().unwrap().to_string());
        }
        let (_, page) = get(&service.url("/v1/jobs?state=running"));
        eprintln!(
            "running at the kill: {}",
            page["jobs"].as_array().unwrap().len()
        );
        // `service` drops here: SIGKILL.
    }
    let service = Service::start(&dir, "sqlite://jobs.db", &["--workers", "2"]);
    let mut finished_before_restart = 0;
    let mut retried = 0;
    for id in &ids {
        let job = wait_job(&service, id, Duration::from_secs(300));
        assert_eq!(job["state"], "succeeded", "{job}");
        assert!(job["result"]["objective"].as_f64().is_some(), "{job}");
        if job["attempts"].as_u64().unwrap() > 1 {
            retried += 1;
        } else {
            finished_before_restart += 1;
        }
    }
    // Every job exactly once in the listing.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (_, page) = get(&service.url(&format!("/v1/jobs?limit=37{after}")));
        for j in page["jobs"].as_array().unwrap() {
            seen.push(j["id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len());
    assert_eq!(seen, ids, "every acknowledged job once, in order");
    eprintln!("kill -9: 100 acknowledged, 100 succeeded ({finished_before_restart} on their first attempt, {retried} claimed again)");
}

/// SIGTERM: no new jobs, the running one finishes, exit 0; a queued one is left for the
/// next start.
#[test]
fn sigterm_drains_running_jobs_and_exits_0() {
    let dir = common::temp_dir("svc-term");
    let large = problem_json(&common::problems_dir().join("large.toml"));
    let quickstart = problem_json(&common::problems_dir().join("quickstart.toml"));
    let mut service = Service::start(&dir, "sqlite://term.db", &["--workers", "1"]);
    let (_, running) = post_json(
        &service.url("/v1/jobs"),
        &json!({"problem": large, "optimizer": "tpe", "settings": {"n_trials": 5000000}, "time_limit_s": 3}),
    );
    let running = running["id"].as_str().unwrap().to_string();
    let (_, queued) = post_json(&service.url("/v1/jobs"), &json!({"problem": quickstart}));
    let queued = queued["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    while get(&service.url(&format!("/v1/jobs/{running}"))).1["state"] != "running" {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = service.terminate(Duration::from_secs(40));
    assert!(status.success(), "{status:?}");
    drop(service);
    let service = Service::start(&dir, "sqlite://term.db", &["--workers", "0"]);
    let job = get(&service.url(&format!("/v1/jobs/{running}"))).1;
    assert_eq!(
        job["state"], "succeeded",
        "the running job was drained: {job}"
    );
    assert_eq!(job["result"]["status"], "time_limit", "{job}");
    let job = get(&service.url(&format!("/v1/jobs/{queued}"))).1;
    assert_eq!(job["state"], "queued", "not started after SIGTERM: {job}");
}
