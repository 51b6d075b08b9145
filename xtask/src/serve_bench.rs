//! `cargo xtask bench serve`: a bounded load test of `atlas serve` on loopback (issue 20).
//! Builds the release binary with the `server` feature, starts it on 127.0.0.1 with a
//! fresh SQLite database, and sends N quickstart jobs with `?wait=` over C keep-alive
//! connections (a plain HTTP/1.1 client on std's TcpStream, one thread per connection).
//! Reports throughput, latency percentiles and the service's resident memory after the
//! first 1,000 jobs and after all of them.
//!
//! Before the load, the service overhead: jobs of one problem (`retail_q4.toml`) sent one
//! at a time with `?wait=`, each job's API time (client side) minus the in-process solve
//! time the job's result reports (`metrics.wall_time_s`), beside the CLI's process time
//! (`atlas optimize FILE --format json -q`) for the same problem.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

const HELP: &str = "\
cargo xtask bench serve [OPTIONS]

  --jobs N           jobs to send (default 10000)
  --connections C    concurrent keep-alive connections (default 64)
  --workers W        the service's --workers (default: the number of cores)
  --storage URL      the service's storage (default: sqlite://DIR/load.db?synchronous=normal)
  --wait S           the jobs' ?wait= in seconds (default 5)
  --overhead-jobs N  sequential jobs of the overhead measurement (default 200; 0 skips it)
  --overhead-problem FILE
                     its problem (default examples/problems/retail_q4.toml)
  --cli-runs N       `atlas optimize` processes timed beside it (default 50)
  --json FILE        also write the figures as JSON
";

struct Options {
    jobs: usize,
    connections: usize,
    workers: Option<usize>,
    storage: Option<String>,
    wait: f64,
    overhead_jobs: usize,
    overhead_problem: String,
    cli_runs: usize,
    json: Option<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        jobs: 10_000,
        connections: 64,
        workers: None,
        storage: None,
        wait: 5.0,
        overhead_jobs: 200,
        overhead_problem: "examples/problems/retail_q4.toml".into(),
        cli_runs: 50,
        json: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--jobs" => o.jobs = value()?.parse().context("--jobs")?,
            "--connections" => o.connections = value()?.parse().context("--connections")?,
            "--workers" => o.workers = Some(value()?.parse().context("--workers")?),
            "--storage" => o.storage = Some(value()?),
            "--wait" => o.wait = value()?.parse().context("--wait")?,
            "--overhead-jobs" => o.overhead_jobs = value()?.parse().context("--overhead-jobs")?,
            "--overhead-problem" => o.overhead_problem = value()?,
            "--cli-runs" => o.cli_runs = value()?.parse().context("--cli-runs")?,
            "--json" => o.json = Some(value()?),
            "--help" | "-h" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n\n{HELP}"),
        }
    }
    if o.jobs == 0 || o.connections == 0 {
        bail!("--jobs and --connections must be > 0");
    }
    if !(o.wait.is_finite() && o.wait > 0.0 && o.wait <= 600.0) {
        bail!("--wait must be more than 0 and at most 600 seconds");
    }
    Ok(o)
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    pub(crate) fn open(addr: &str) -> Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends a request and reads the answer: (status, body).
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line `{line}`"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `{"problem": ...}` of a TOML problem file.
fn job_body(file: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let problem: Value = toml::from_str(&text).with_context(|| file.display().to_string())?;
    Ok(serde_json::to_vec(&json!({ "problem": problem }))?)
}

fn median_p99(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({"median": percentile(&v, 50.0), "p99": percentile(&v, 99.0), "min": v.first().copied().unwrap_or(f64::NAN)})
}

/// `n` jobs one after another over one connection (after 10 unrecorded ones): the API
/// time of each, the solve time its result reports, and their difference, in ms.
fn overhead(addr: &str, body: &[u8], n: usize, wait_path: &str) -> Result<Value> {
    let mut conn = Connection::open(addr)?;
    let (mut api, mut solve, mut over) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n + 10 {
        let t = Instant::now();
        let (status, answer) = conn.request("POST", wait_path, body)?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let job: Value = serde_json::from_slice(&answer).context("job answer")?;
        if status != 200 || job["state"] != "succeeded" {
            bail!("overhead job {i}: status {status}, {job}");
        }
        let solve_ms = job["result"]["metrics"]["wall_time_s"]
            .as_f64()
            .ok_or_else(|| anyhow!("no result.metrics.wall_time_s in {job}"))?
            * 1000.0;
        if i >= 10 {
            api.push(ms);
            solve.push(solve_ms);
            over.push(ms - solve_ms);
        }
    }
    Ok(
        json!({"jobs": n, "api_ms": median_p99(api), "solve_ms": median_p99(solve), "overhead_ms": median_p99(over)}),
    )
}

/// `n` runs of `atlas optimize FILE --format json -q`: the process's wall time and the
/// solve time it reports, in ms.
fn cli_time(bin: &Path, file: &Path, n: usize) -> Result<Value> {
    let (mut process, mut solve) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let out = Command::new(bin)
            .arg("optimize")
            .arg(file)
            .args(["--format", "json", "-q"])
            .stderr(Stdio::null())
            .output()
            .context("run atlas optimize")?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            bail!("atlas optimize {} failed: {}", file.display(), out.status);
        }
        let result: Value = serde_json::from_slice(&out.stdout).context("atlas optimize json")?;
        process.push(ms);
        solve.push(
            result["metrics"]["wall_time_s"]
                .as_f64()
                .unwrap_or(f64::NAN)
                * 1000.0,
        );
    }
    Ok(json!({"runs": n, "process_ms": median_p99(process), "solve_ms": median_p99(solve)}))
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    let dir = root.join("target/bench-serve");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let storage = o
        .storage
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/load.db?synchronous=normal", dir.display()));
    let workers = o
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut child = Command::new(&bin)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--storage",
            &storage,
            "--log-format",
            "json",
        ])
        .args(["--workers", &workers.to_string(), "--max-queue", "1000000"])
        .env("ATLAS_LOG", "warn,atlas_server=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start atlas serve")?;
    let pid = child.id();
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let service = Service(child);
    let (tx, rx) = std::sync::mpsc::channel();
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
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("atlas serve did not start")?;
    let wait_path = format!("/v1/jobs?wait={}", o.wait);
    let overhead = if o.overhead_jobs > 0 {
        let file = root.join(&o.overhead_problem);
        let body = job_body(&file)?;
        let api = overhead(&addr, &body, o.overhead_jobs, &wait_path)?;
        let cli = cli_time(&bin, &file, o.cli_runs)?;
        json!({"problem": o.overhead_problem, "api": api, "cli": cli})
    } else {
        Value::Null
    };
    let body = Arc::new(job_body(&root.join("examples/problems/quickstart.toml"))?);
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(o.jobs)));
    let failures = Arc::new(AtomicUsize::new(0));
    let rss_at_1000 = Arc::new(Mutex::new(None::<f64>));
    let start = Instant::now();
    let threads: Vec<_> = (0..o.connections)
        .map(|_| {
            let (addr, body, next, latencies, failures, rss_at_1000) = (
                addr.clone(),
                body.clone(),
                next.clone(),
                latencies.clone(),
                failures.clone(),
                rss_at_1000.clone(),
            );
            let jobs = o.jobs;
            let wait_path = wait_path.clone();
            std::thread::spawn(move || -> Result<()> {
                let mut conn = Connection::open(&addr)?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs {
                        return Ok(());
                    }
                    let t = Instant::now();
                    let (status, answer) = conn.request("POST", &wait_path, &body)?;
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    let ok = status == 200
                        && serde_json::from_slice::<Value>(&answer)
                            .map(|v| v["state"] == "succeeded")
                            .unwrap_or(false);
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut l = latencies.lock().unwrap_or_else(|p| p.into_inner());
                    l.push(ms);
                    if l.len() == 1000 {
                        *rss_at_1000.lock().unwrap_or_else(|p| p.into_inner()) = rss_mib(pid);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow!("a load thread panicked"))??;
    }
    let wall = start.elapsed().as_secs_f64();
    let rss_end = rss_mib(pid);
    drop(service);
    let mut l = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    l.sort_by(f64::total_cmp);
    let failures = failures.load(Ordering::Relaxed);
    let figures = json!({
        "jobs": o.jobs,
        "connections": o.connections,
        "workers": workers,
        "storage": storage,
        "wall_s": wall,
        "throughput_jobs_per_s": o.jobs as f64 / wall,
        "latency_ms": {"p50": percentile(&l, 50.0), "p90": percentile(&l, 90.0), "p99": percentile(&l, 99.0), "max": l.last().copied().unwrap_or(f64::NAN)},
        "failures": failures,
        "rss_mib_after_1000": *rss_at_1000.lock().unwrap_or_else(|p| p.into_inner()),
        "rss_mib_after_all": rss_end,
        "wait_s": o.wait,
        "overhead": overhead,
    });
    println!("{}", serde_json::to_string_pretty(&figures)?);
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)?)?;
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failures} job(s) did not answer 200 succeeded");
        ExitCode::FAILURE
    })
}
