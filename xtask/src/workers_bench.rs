//! `cargo xtask bench workers`: `atlas worker` processes on PostgreSQL behind `atlas serve
//! --workers 0` (issue 16), bounded in count and time:
//!
//! 1. **Sweep scaling**: the same sweep (quickstart at N budget points, a seeded `tpe`
//!    per scenario, `--cache off` so every scenario is solved) drained by 1, 2, ...
//!    worker processes of `--concurrency 1`; wall time from submission to the stored
//!    sweep result, and the efficiency `T(1) / (n T(n))`.
//! 2. **Tiny jobs**: M quickstart jobs (`lbfgs`, a few milliseconds each) queued through
//!    the API, then drained by 2 worker processes: jobs per second from the workers'
//!    start to the last stored result.
//!
//! It builds the release binary with the `server` feature, makes a PostgreSQL database of
//! its own (`psql`) on the server of `--postgres` (default: `ATLAS_TEST_POSTGRES_URL`,
//! else `postgres://postgres@127.0.0.1:5432/postgres`) and drops it at the end.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::serve_bench::Connection;

const HELP: &str = "\
cargo xtask bench workers [OPTIONS]

  --postgres URL     the PostgreSQL server (default: $ATLAS_TEST_POSTGRES_URL, else
                     postgres://postgres@127.0.0.1:5432/postgres); a database of its own
                     is created and dropped
  --workers LIST     worker process counts of the sweep scaling (default 1,2)
  --scenarios N      budget points of the sweep (default 40)
  --trials N         tpe trials per scenario (default 300)
  --tiny N           tiny jobs drained by 2 workers (default 2000; 0 skips it)
  --no-build         use target/release/atlas as it is (built with --features server)
  --json FILE        also write the figures as JSON
";

/// The longest any one phase may take before the run counts as failed.
const PHASE_LIMIT: Duration = Duration::from_secs(900);

struct Options {
    postgres: String,
    workers: Vec<usize>,
    scenarios: usize,
    trials: u64,
    tiny: usize,
    json: Option<String>,
    build: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        postgres: std::env::var("ATLAS_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        workers: vec![1, 2],
        scenarios: 40,
        trials: 300,
        tiny: 2000,
        json: None,
        build: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow!("{a}: needs a value"))
        };
        match a.as_str() {
            "--postgres" => o.postgres = value()?,
            "--workers" => {
                o.workers = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--workers: a comma list of counts")?;
                if o.workers.is_empty() || o.workers.contains(&0) {
                    bail!("--workers: counts must be at least 1");
                }
            }
            "--scenarios" => o.scenarios = value()?.parse().context("--scenarios")?,
            "--trials" => o.trials = value()?.parse().context("--trials")?,
            "--tiny" => o.tiny = value()?.parse().context("--tiny")?,
            "--json" => o.json = Some(value()?),
            "--no-build" => o.build = false,
            "--help" | "-h" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n\n{HELP}"),
        }
    }
    if o.scenarios < 2 {
        bail!("--scenarios: at least 2");
    }
    Ok(o)
}

fn psql(url: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .context("run psql")?;
    if !out.status.success() {
        bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn with_database(url: &str, name: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let main = url.split('?').next().unwrap_or(url);
    match main[scheme_end..].find('/') {
        Some(slash) => format!("{}/{name}", &main[..scheme_end + slash]),
        None => format!("{main}/{name}"),
    }
}

/// The benchmark's database, dropped at the end.
struct Database {
    base: String,
    name: String,
    url: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(
            &self.base,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn terminate(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()?;
        let status = self.0.wait()?;
        if !status.success() {
            bail!("a worker exited with {status} on SIGTERM");
        }
        Ok(())
    }
}

/// Starts `atlas ARGS --log-format json` and waits for the line with message `ready`.
fn start(bin: &Path, args: &[&str], ready: &str) -> Result<(Proc, Value)> {
    let mut child = Command::new(bin)
        .args(args)
        .args(["--log-format", "json"])
        .env("ATLAS_LOG", "warn,atlas_server=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start atlas {args:?}"))?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let proc = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = ready.to_string();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["message"] == ready.as_str() {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(v);
                    }
                } else if v["level"] == "ERROR" {
                    eprintln!("atlas: {line}");
                }
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .map_err(|_| anyhow!("atlas {args:?} did not start"))?;
    Ok((proc, line))
}

fn workers(bin: &Path, storage: &str, n: usize) -> Result<Vec<Proc>> {
    (0..n)
        .map(|_| {
            start(
                bin,
                &[
                    "worker",
                    "--storage",
                    storage,
                    "--concurrency",
                    "1",
                    "--cache",
                    "off",
                    "--drain-s",
                    "0",
                ],
                "atlas worker started",
            )
            .map(|(p, _)| p)
        })
        .collect()
}

fn problem(root: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(root.join("examples/problems/quickstart.toml"))?;
    let value: toml::Value = toml::from_str(&text)?;
    Ok(serde_json::to_value(value)?)
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    let o = parse(args)?;
    let root = crate::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--features",
            "server",
            "--bin",
            "atlas",
        ])
        .status()
        .with_context(|| format!("cannot run `{cargo}`"))?;
    if !status.success() {
        bail!("building atlas --features server failed");
    }
    let bin = root.join("target/release/atlas");
    let name = format!("atlas_bench_workers_{}", std::process::id());
    psql(&o.postgres, &format!("CREATE DATABASE {name}"))?;
    let db = Database {
        url: with_database(&o.postgres, &name),
        base: o.postgres.clone(),
        name,
    };
    let (_api, line) = start(
        &bin,
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--storage",
            &db.url,
            "--workers",
            "0",
            "--max-queue",
            "1000000",
        ],
        "atlas serve listening",
    )?;
    let addr = line["addr"]
        .as_str()
        .ok_or_else(|| anyhow!("no address in {line}"))?
        .to_string();
    let mut http = Connection::open(&addr)?;
    let problem = problem(&root)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average before: {}", load.trim());

    // 1. Sweep scaling.
    let sweep = json!({
        "problem": problem,
        "budgets": format!("0.6x:1.3x:{}", o.scenarios),
        "optimizer": "tpe",
        "settings": {"n_trials": o.trials},
    })
    .to_string();
    let mut scaling = Vec::new();
    let mut t1 = None;
    for &n in &o.workers {
        let procs = workers(&bin, &db.url, n)?;
        let started = Instant::now();
        let (s, body) = http.request("POST", "/v1/sweeps", sweep.as_bytes())?;
        if s != 202 {
            bail!("POST /v1/sweeps: {s} {}", String::from_utf8_lossy(&body));
        }
        let id = serde_json::from_slice::<Value>(&body)?["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no sweep id"))?
            .to_string();
        let status = loop {
            let (_, body) = http.request("GET", &format!("/v1/sweeps/{id}"), b"")?;
            let v: Value = serde_json::from_slice(&body)?;
            if v.get("result").is_some() {
                break v;
            }
            if started.elapsed() > PHASE_LIMIT {
                bail!("the sweep with {n} workers did not finish: {v}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let wall = started.elapsed().as_secs_f64();
        if status["done"].as_u64() != Some(o.scenarios as u64) {
            bail!("the sweep with {n} workers: {status}");
        }
        for p in procs {
            p.terminate()?;
        }
        let t1 = *t1.get_or_insert(wall * n as f64);
        let efficiency = t1 / (n as f64 * wall);
        eprintln!(
            "sweep of {} scenarios, {n} worker(s): {wall:.2} s, efficiency {efficiency:.2}",
            o.scenarios
        );
        scaling.push(json!({"workers": n, "wall_s": wall, "efficiency": efficiency}));
    }

    // 2. Tiny jobs with 2 workers.
    let mut tiny = Value::Null;
    if o.tiny > 0 {
        let job = json!({"problem": problem, "optimizer": "lbfgs"}).to_string();
        for _ in 0..o.tiny {
            let (s, body) = http.request("POST", "/v1/jobs", job.as_bytes())?;
            if s != 202 {
                bail!("POST /v1/jobs: {s} {}", String::from_utf8_lossy(&body));
            }
        }
        let count = "SELECT COUNT(*) FROM atlas_jobs WHERE kind = 'job' \
                     AND state IN ('succeeded', 'failed')";
        let started = Instant::now();
        let procs = workers(&bin, &db.url, 2)?;
        loop {
            let done: usize = psql(&db.url, count)?.parse().unwrap_or(0);
            if done >= o.tiny {
                break;
            }
            if started.elapsed() > PHASE_LIMIT {
                bail!("tiny jobs: {done} of {} finished", o.tiny);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let wall = started.elapsed().as_secs_f64();
        for p in procs {
            p.terminate()?;
        }
        let failed: usize = psql(
            &db.url,
            "SELECT COUNT(*) FROM atlas_jobs WHERE kind = 'job' AND state <> 'succeeded'",
        )?
        .parse()
        .unwrap_or(0);
        if failed > 0 {
            bail!("tiny jobs: {failed} did not succeed");
        }
        let per_s = o.tiny as f64 / wall;
        eprintln!(
            "{} tiny jobs, 2 workers: {wall:.2} s, {per_s:.0} jobs/s",
            o.tiny
        );
        tiny = json!({"jobs": o.tiny, "workers": 2, "wall_s": wall, "jobs_per_s": per_s});
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average after: {}", load_after.trim());
    let figures = json!({
        "sweep_scaling": {"scenarios": o.scenarios, "tpe_trials": o.trials, "runs": scaling},
        "tiny_jobs": tiny,
        "load_before": load.trim(),
        "load_after": load_after.trim(),
    });
    println!("{}", serde_json::to_string_pretty(&figures)?);
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
