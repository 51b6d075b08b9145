//! `atlas worker` processes sharing one PostgreSQL queue behind `atlas serve --workers
//! 0`, as real processes on 127.0.0.1: `kill -9` of a worker holding leases loses
//! nothing (every scenario succeeded exactly once, the killed worker's jobs on their
//! second attempt, the sweep's result equal to a single-machine sweep's), SIGTERM hands
//! running work back and exits 0, and a Redis cache level killed mid-sweep does not stop
//! the solves.
//!
//! Needs `ATLAS_TEST_POSTGRES_URL` (each test creates a database of its own with `psql`
//! and drops it); without it the tests skip loudly, and fail when `CI` is set. The Redis
//! test needs the `redis` feature and `redis-server` (it starts its own on another
//! loopback port, so the shared Redis is left alone):
//!
//! ```text
//! cargo test --release -p atlas --features server,redis --test workers
//! ```

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ATLAS: &str = env!("CARGO_BIN_EXE_atlas");

/// How long any one wait of these tests may last before it counts as a failure (a
/// generous bound on a shared machine, not a speed assertion).
const PATIENCE: Duration = Duration::from_secs(600);

// ---- PostgreSQL ---------------------------------------------------------------------

/// The base PostgreSQL URL, or `None` (said loudly) when it is not set; `CI` set makes
/// a missing one a failure.
fn postgres_base_url() -> Option<String> {
    match std::env::var("ATLAS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("ATLAS_TEST_POSTGRES_URL is not set, and CI must run the worker tests");
            }
            eprintln!(
                "SKIPPED: ATLAS_TEST_POSTGRES_URL is not set \
                 (e.g. postgres://postgres@127.0.0.1:5432/postgres); the worker tests did not run"
            );
            None
        }
    }
}

/// Replaces the database name of a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (main, query) = url
        .split_once('?')
        .map_or((url, None), |(m, q)| (m, Some(q)));
    let scheme_end = main.find("://").map_or(0, |i| i + 3);
    let base = match main[scheme_end..].find('/') {
        Some(slash) => &main[..scheme_end + slash],
        None => main,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("run psql (the PostgreSQL client) to create the test database");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database of one test, dropped (with its connections) at the end.
struct TestDatabase {
    url: String,
    base: String,
    name: String,
}

impl TestDatabase {
    fn create(base: &str) -> TestDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let name = format!(
            "atlas_workers_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        psql(base, &format!("CREATE DATABASE {name}"));
        TestDatabase {
            url: with_database(base, &name),
            base: base.to_string(),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let dropped = Command::new("psql")
            .args([
                &self.base,
                "-qAtc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
        if !matches!(&dropped, Ok(o) if o.status.success()) {
            eprintln!(
                "warning: could not drop test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

// ---- processes ----------------------------------------------------------------------

/// A running `atlas` process with its stderr lines collected, killed when dropped.
struct Proc {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `atlas ARGS` and waits for the log line whose message is `ready`.
    fn start(dir: &Path, args: &[&str], ready: &str) -> (Proc, Value) {
        let mut child = Command::new(ATLAS)
            .current_dir(dir)
            .args(args)
            .args(["--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start atlas");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        let ready = ready.to_string();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == ready.as_str() {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(v);
                        }
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("atlas {args:?} did not start: {:?}", logs.lock().unwrap()));
        (Proc { child, logs }, line)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal}");
    }

    /// Waits for the exit status (within [`PATIENCE`]).
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "the process did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The JSON log lines with this message.
    fn lines(&self, message: &str) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }

    fn text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `atlas serve --workers N` on `storage`; answers the process and its base URL.
fn serve(dir: &Path, storage: &str, workers: usize) -> (Proc, String) {
    let workers = workers.to_string();
    let (p, line) = Proc::start(
        dir,
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--storage",
            storage,
            "--workers",
            &workers,
        ],
        "atlas serve listening",
    );
    let addr = line["addr"].as_str().expect("addr").to_string();
    (p, format!("http://{addr}"))
}

/// `atlas worker` with `extra` options; answers the process and its name (`host/pid`).
fn worker(dir: &Path, storage: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["worker", "--storage", storage];
    args.extend_from_slice(extra);
    let (p, line) = Proc::start(dir, &args, "atlas worker started");
    let name = line["worker"].as_str().expect("worker name").to_string();
    assert!(
        name.ends_with(&format!("/{}", p.pid())),
        "the worker names itself host/pid: {name} (pid {})",
        p.pid()
    );
    (p, name)
}

// ---- HTTP ---------------------------------------------------------------------------

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn get(url: &str) -> (u16, Value) {
    let mut r = agent()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn post(url: &str, body: &Value) -> (u16, Value) {
    let mut r = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Every job of the storage (all pages).
fn all_jobs(base: &str) -> Vec<Value> {
    let mut jobs = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(a) => format!("{base}/v1/jobs?limit=1000&after={a}"),
            None => format!("{base}/v1/jobs?limit=1000"),
        };
        let (s, page) = get(&url);
        assert_eq!(s, 200, "{page}");
        jobs.extend(page["jobs"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return jobs,
        }
    }
}

fn wait_sweep(base: &str, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (s, sweep) = get(&format!("{base}/v1/sweeps/{id}"));
        assert_eq!(s, 200, "{sweep}");
        if sweep.get("result").is_some() {
            return sweep;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "sweep {id} not finished: {sweep}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sweep of these tests: quickstart at 40 budget points, each a seeded `tpe`
/// search long enough (a fraction of a second) that a worker holds leases at any moment.
fn sweep_body() -> Value {
    let problem: Value =
        atlas_core::problem::read_document(&common::problems_dir().join("quickstart.toml"))
            .expect("quickstart");
    json!({
        "problem": problem,
        "budgets": "0.6x:1.3x:40",
        "optimizer": "tpe",
        "settings": {"n_trials": 500},
    })
}

fn submit_sweep(base: &str) -> String {
    let (s, answer) = post(&format!("{base}/v1/sweeps"), &sweep_body());
    assert_eq!(s, 202, "{answer}");
    assert_eq!(answer["total"], 40, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

/// The scenarios of a sweep result by name: (status, objective, allocation).
fn scenarios(result: &Value) -> Vec<(String, Value, f64, Value)> {
    result["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].clone(),
                s["objective"].as_f64().unwrap(),
                s["result"]["allocation"].clone(),
            )
        })
        .collect()
}

/// The sweep of [`sweep_body`] on one machine: `atlas serve --workers 2` on SQLite.
fn single_machine_result(dir: &Path) -> Value {
    let db = format!("sqlite://{}", dir.join("single.db").display());
    let (_serve, base) = serve(dir, &db, 2);
    let id = submit_sweep(&base);
    wait_sweep(&base, &id)["result"].clone()
}

/// Each scenario job's "job finished" lines across the workers' logs.
fn finish_lines(procs: &[&Proc]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for p in procs {
        for line in p.lines("job finished") {
            if let Some(id) = line["span"]["job_id"].as_str() {
                *counts.entry(id.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

// ---- the tests ----------------------------------------------------------------------

/// Two workers and one API process, a sweep of 40 scenarios, `kill -9` of one worker
/// while it holds leases.
#[test]
fn kill_9_of_a_worker_holding_leases_loses_nothing() {
    let Some(base_url) = postgres_base_url() else {
        return;
    };
    let dir = common::temp_dir("workers-kill");
    let db = TestDatabase::create(&base_url);
    let (_api, base) = serve(&dir, &db.url, 0);
    let lease = ["--concurrency", "2", "--lease-s", "3"];
    let (mut victim, victim_name) = worker(&dir, &db.url, &lease);
    let (survivor, survivor_name) = worker(&dir, &db.url, &lease);
    assert_ne!(victim_name, survivor_name);
    let sweep = submit_sweep(&base);

    // Wait until the victim holds a lease, with some scenarios already done, then kill it.
    let start = Instant::now();
    loop {
        let jobs = all_jobs(&base);
        let held = jobs
            .iter()
            .filter(|j| j["state"] == "running" && j["worker"] == victim_name.as_str())
            .count();
        let done = jobs.iter().filter(|j| j["state"] == "succeeded").count();
        if held > 0 && done >= 4 {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the victim never held a lease: {}",
            victim.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.signal("-KILL");
    victim.wait_exit();
    // What it held when it died: running under its name (nobody else may take these
    // before their lease expires).
    let orphans: HashSet<String> = all_jobs(&base)
        .iter()
        .filter(|j| j["state"] == "running" && j["worker"] == victim_name.as_str())
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!orphans.is_empty(), "the victim held leases when killed");

    let status = wait_sweep(&base, &sweep);
    assert_eq!(status["state"], "succeeded", "{status}");
    assert_eq!(status["done"], 40, "{status}");
    assert_eq!(status["failed"], 0, "{status}");

    let jobs = all_jobs(&base);
    let children: Vec<&Value> = jobs.iter().filter(|j| j["kind"] == "scenario").collect();
    assert_eq!(children.len(), 40);
    let mut retried = 0;
    for job in &children {
        let id = job["id"].as_str().unwrap();
        let (_, full) = get(&format!("{base}/v1/jobs/{id}"));
        assert_eq!(full["state"], "succeeded", "{full}");
        if orphans.contains(id) {
            assert_eq!(full["attempts"], 2, "a killed worker's job: {full}");
            assert_eq!(
                full["worker"],
                survivor_name.as_str(),
                "the survivor finished it: {full}"
            );
            retried += 1;
        } else {
            assert!(full["attempts"].as_u64().unwrap() >= 1, "{full}");
        }
    }
    assert_eq!(retried, orphans.len());
    // Exactly once: every scenario's result was recorded by one finished attempt, in
    // the survivor's or the victim's logs, never both.
    let finished = finish_lines(&[&victim, &survivor]);
    for job in &children {
        let id = job["id"].as_str().unwrap();
        assert_eq!(finished.get(id), Some(&1), "finished once: {id}");
    }
    let first_attempt = children.iter().filter(|j| j["attempts"] == 1).count();
    eprintln!(
        "kill -9: 40 scenarios succeeded once each; {} held by the killed worker, finished on attempt 2 by the survivor; {first_attempt} on their first attempt",
        orphans.len()
    );

    // The same sweep on one machine gives the same result.
    let single = single_machine_result(&dir);
    let ours = scenarios(&status["result"]);
    let theirs = scenarios(&single);
    assert_eq!(ours.len(), 40);
    assert_eq!(
        ours.iter().map(|s| &s.0).collect::<Vec<_>>(),
        theirs.iter().map(|s| &s.0).collect::<Vec<_>>(),
        "same scenarios in the same order"
    );
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a.1, b.1, "{}: status", a.0);
        assert!(
            (a.2 - b.2).abs() <= 1e-9 * a.2.abs().max(1.0),
            "{}: objective {} vs {} on one machine",
            a.0,
            a.2,
            b.2
        );
        assert_eq!(a.3, b.3, "{}: allocation", a.0);
    }
}

/// SIGTERM: the worker stops claiming, hands its running job back (`--drain-s 0`) and
/// exits 0; another worker then finishes the job.
#[test]
fn sigterm_hands_running_work_back_and_exits_0() {
    let Some(base_url) = postgres_base_url() else {
        return;
    };
    let dir = common::temp_dir("workers-term");
    let db = TestDatabase::create(&base_url);
    let (_api, base) = serve(&dir, &db.url, 0);
    let (mut first, first_name) = worker(
        &dir,
        &db.url,
        &["--concurrency", "1", "--lease-s", "30", "--drain-s", "0"],
    );
    let problem: Value =
        atlas_core::problem::read_document(&common::problems_dir().join("quickstart.toml"))
            .unwrap();
    let (s, job) = post(
        &format!("{base}/v1/jobs"),
        &json!({"problem": problem, "optimizer": "tpe", "settings": {"n_trials": 5_000_000}, "time_limit_s": 2}),
    );
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    loop {
        let (_, j) = get(&format!("{base}/v1/jobs/{id}"));
        if j["state"] == "running" {
            assert_eq!(j["worker"], first_name.as_str(), "{j}");
            break;
        }
        assert!(start.elapsed() < PATIENCE, "never claimed: {j}");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.signal("-TERM");
    let status = first.wait_exit();
    assert!(
        status.success(),
        "exit 0 on SIGTERM: {status:?}\n{}",
        first.text()
    );
    let (_, j) = get(&format!("{base}/v1/jobs/{id}"));
    assert_eq!(j["state"], "queued", "handed back: {j}");
    assert!(!first
        .lines("handed back to the queue (shutdown)")
        .is_empty());

    let (_second, second_name) = worker(&dir, &db.url, &["--concurrency", "1"]);
    let start = Instant::now();
    let done = loop {
        let (_, j) = get(&format!("{base}/v1/jobs/{id}"));
        if j["state"] == "succeeded" {
            break j;
        }
        assert!(start.elapsed() < PATIENCE, "not finished: {j}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done["worker"], second_name.as_str(), "{done}");
    assert_eq!(
        done["attempts"], 1,
        "the handed-back attempt does not count: {done}"
    );
    assert_eq!(done["result"]["status"], "time_limit", "{done}");
}

/// A Redis of the test's own as the workers' shared cache level, killed mid-sweep: the
/// solves go on without it (one warning), and the sweep completes.
#[cfg(feature = "redis")]
#[test]
fn redis_killed_mid_sweep_the_solves_continue() {
    let Some(base_url) = postgres_base_url() else {
        return;
    };
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var_os("CI").is_some() {
            panic!("redis-server is not installed, and CI must run this test");
        }
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let dir = common::temp_dir("workers-redis");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let redis_cli = |cmd: &str| -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), cmd])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let start = Instant::now();
    while redis_cli("PING").as_deref() != Some("PONG") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let db = TestDatabase::create(&base_url);
    let (_api, base) = serve(&dir, &db.url, 0);
    let cache = format!("redis://127.0.0.1:{port}");
    let args = ["--concurrency", "2", "--cache", cache.as_str()];
    let (w1, _) = worker(&dir, &db.url, &args);
    let (w2, _) = worker(&dir, &db.url, &args);
    let sweep = submit_sweep(&base);
    let start = Instant::now();
    let stored_before_kill = loop {
        let (_, s) = get(&format!("{base}/v1/sweeps/{sweep}"));
        let keys: u64 = redis_cli("DBSIZE")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if s["done"].as_u64().unwrap_or(0) >= 5 && keys >= 5 {
            break keys;
        }
        assert!(start.elapsed() < PATIENCE, "no progress: {s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = redis.kill();
    let _ = redis.wait();
    let status = wait_sweep(&base, &sweep);
    assert_eq!(status["state"], "succeeded", "{status}");
    assert_eq!(status["done"], 40, "{status}");
    let warned = [&w1, &w2]
        .iter()
        .filter(|w| w.text().contains("is unreachable"))
        .count();
    assert!(
        warned >= 1,
        "a worker reported the lost Redis:\n{}\n{}",
        w1.text(),
        w2.text()
    );
    eprintln!("redis killed with {stored_before_kill} entries stored; 40 of 40 scenarios succeeded, {warned} worker(s) warned once");
}
