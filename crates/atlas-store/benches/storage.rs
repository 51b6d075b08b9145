//! Storage benchmark: claim latency with 0 and 100,000 finished jobs in the table,
//! throughput of tiny jobs (submit + claim + finish) with 2 concurrent claimers, and
//! the trials per second of a distributed ask/tell loop (the figure compared with
//! Optuna's RDB storage by `benches/peers/optuna_rdb.py`).
//!
//! ```text
//! ATLAS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench -p atlas-store --bench storage -- [--quick] [--json FILE] [--peers]
//! ```
//!
//! `--peers` also runs `benches/peers/optuna_rdb.py` (needs `pip install optuna
//! psycopg2-binary`) on the same server right after, with as many trials, and reports
//! the ratios.
//!
//! It makes its own databases (a PostgreSQL database and a SQLite file) and removes
//! them at the end. Without `ATLAS_TEST_POSTGRES_URL` only the SQLite figures run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_store::{NewJob, Storage, StudyUpdate, TrialOutcome};
use serde_json::json;
use sqlx::Connection;

const LEASE: Duration = Duration::from_secs(60);

struct Sizes {
    claims: usize,
    finished: usize,
    jobs: usize,
    trials: usize,
}

fn median_and_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// Times `claims` single claims from a queue of as many tiny jobs (each claim alone;
/// the finish after it is not timed). Returns (median ms, p99 ms).
async fn claim_latency(storage: &dyn Storage, claims: usize) -> (f64, f64) {
    for n in 0..claims {
        storage.submit(NewJob::new(json!({"n": n}))).await.unwrap();
    }
    let mut samples = Vec::with_capacity(claims);
    for _ in 0..claims {
        let start = Instant::now();
        let claimed = storage
            .claim("bench/1", LEASE)
            .await
            .unwrap()
            .expect("a job");
        samples.push(start.elapsed());
        storage.finish(&claimed.lease, json!({})).await.unwrap();
    }
    median_and_p99(samples)
}

/// One submitter and 2 claimers that finish what they claim, concurrently; jobs per
/// second from the first submission to the last finish.
async fn tiny_job_throughput(storages: [Arc<dyn Storage>; 3], jobs: usize) -> f64 {
    let finished = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let [submitter, a, b] = storages;
    let submit = tokio::spawn(async move {
        for n in 0..jobs {
            submitter
                .submit(NewJob::new(json!({"n": n})))
                .await
                .unwrap();
        }
    });
    let mut claimers = Vec::new();
    for (w, storage) in [a, b].into_iter().enumerate() {
        let finished = finished.clone();
        claimers.push(tokio::spawn(async move {
            let worker = format!("bench/{w}");
            while finished.load(Ordering::SeqCst) < jobs {
                match storage.claim(&worker, LEASE).await.unwrap() {
                    Some(claimed) => {
                        storage
                            .finish(&claimed.lease, json!({"ok": true}))
                            .await
                            .unwrap();
                        finished.fetch_add(1, Ordering::SeqCst);
                    }
                    None => {
                        storage.wait_for_work(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    submit.await.unwrap();
    for claimer in claimers {
        claimer.await.unwrap();
    }
    jobs as f64 / start.elapsed().as_secs_f64()
}

/// The distributed ask/tell loop of a black-box search with a trivial objective and a
/// random searcher, on 2 workers: each claims a queued trial, evaluates `x^2` and tells
/// it; a worker that finds none queued reads the study and asks for `batch` more
/// (optimistic version check: of two askers at once one wins, the other claims the
/// winner's trials). `batch = 1` is Optuna's one-trial ask; `batch = 2` is one trial per
/// worker, as the constant-liar scheme allows. Trials per second over `trials` trials.
async fn study_trials_per_second(
    storages: [Arc<dyn Storage>; 2],
    trials: usize,
    batch: usize,
) -> f64 {
    let study = storages[0]
        .create_study(atlas_store::NewStudy {
            job: None,
            state: json!({"asked": 0}),
        })
        .await
        .unwrap();
    let told = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for (w, storage) in storages.into_iter().enumerate() {
        let (id, told) = (study.id.clone(), told.clone());
        workers.push(tokio::spawn(async move {
            let worker = format!("bench/{w}");
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ w as u64;
            while told.load(Ordering::SeqCst) < trials {
                if let Some(trial) = storage
                    .claim_trial(Some(&id), &worker, LEASE)
                    .await
                    .unwrap()
                {
                    let x = trial.trial.params["x"].as_f64().unwrap();
                    storage
                        .tell(&trial.lease, TrialOutcome::Value(x * x, None))
                        .await
                        .unwrap();
                    told.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let current = storage.get_study(&id).await.unwrap().unwrap();
                let asked = current.state["asked"].as_u64().unwrap_or(0) + batch as u64;
                let points = (0..batch)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        json!({ "x": (seed >> 11) as f64 / (1u64 << 53) as f64 * 20.0 - 10.0 })
                    })
                    .collect();
                let update = storage
                    .update_study(&id, current.version, json!({ "asked": asked }), points)
                    .await
                    .unwrap();
                // On a conflict another worker asked just now: claim from its batch.
                if let StudyUpdate::Conflict { .. } = update {
                    continue;
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    told.load(Ordering::SeqCst) as f64 / start.elapsed().as_secs_f64()
}

async fn add_finished_jobs(url: &str, n: usize) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(
        "INSERT INTO atlas_jobs (id, kind, state, request, result, created_at, started_at, \
         finished_at, attempts, finished_attempt, worker) \
         SELECT '0' || lpad(g::text, 25, '0'), 'job', 'succeeded', '{\"n\": 1}'::jsonb, \
         '{\"status\": \"optimal\"}'::jsonb, now(), now(), now(), 1, 1, 'old/1' \
         FROM generate_series(1, $1) g",
    )
    .bind(n as i64)
    .execute(&mut conn)
    .await
    .unwrap();
    vacuum(&mut conn).await;
}

async fn vacuum(conn: &mut sqlx::PgConnection) {
    sqlx::query("VACUUM ANALYZE atlas_jobs")
        .execute(&mut *conn)
        .await
        .unwrap();
}

async fn open_n<const N: usize>(url: &str) -> [Arc<dyn Storage>; N] {
    let mut out = Vec::new();
    for _ in 0..N {
        out.push(atlas_store::open(url).await.unwrap());
    }
    out.try_into().unwrap_or_else(|_| unreachable!())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json_out = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1).cloned());
    let sizes = if quick {
        Sizes {
            claims: 200,
            finished: 100_000,
            jobs: 1000,
            trials: 500,
        }
    } else {
        Sizes {
            claims: 1000,
            finished: 100_000,
            jobs: 5000,
            trials: 2000,
        }
    };
    let mut report = serde_json::Map::new();
    report.insert(
        "cores".into(),
        json!(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)),
    );

    // SQLite: a temporary file.
    let dir = std::env::temp_dir().join(format!("atlas-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (label, query) in [
        ("sqlite_full", ""),
        ("sqlite_normal", "?synchronous=normal"),
    ] {
        let url = format!(
            "sqlite://{}{query}",
            dir.join(format!("{label}.db")).display()
        );
        let storages = open_n::<3>(&url).await;
        let (median, p99) = claim_latency(&*storages[0], sizes.claims).await;
        let jobs_per_s = tiny_job_throughput(storages.clone(), sizes.jobs).await;
        println!("{label}: claim median {median:.3} ms, p99 {p99:.3} ms; tiny jobs (submit+claim+finish, 2 claimers) {jobs_per_s:.0}/s");
        report.insert(
            label.into(),
            json!({"claim_median_ms": median, "claim_p99_ms": p99, "tiny_jobs_per_s": jobs_per_s}),
        );
    }
    std::fs::remove_dir_all(&dir).ok();

    let Ok(base) = std::env::var("ATLAS_TEST_POSTGRES_URL") else {
        eprintln!("ATLAS_TEST_POSTGRES_URL is not set: PostgreSQL figures skipped");
        print_json(json_out, report);
        return;
    };
    let name = format!("atlas_bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = {
        let (main, _) = base.split_once('?').unwrap_or((&base, ""));
        format!("{}/{name}", &main[..main.rfind('/').unwrap()])
    };
    {
        let storages = open_n::<3>(&url).await;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        vacuum(&mut conn).await;
        let (empty_median, empty_p99) = claim_latency(&*storages[0], sizes.claims).await;
        // Start the second measure from the same shape: the first one's jobs removed.
        sqlx::query("DELETE FROM atlas_jobs")
            .execute(&mut conn)
            .await
            .unwrap();
        add_finished_jobs(&url, sizes.finished).await;
        let (full_median, full_p99) = claim_latency(&*storages[0], sizes.claims).await;
        let ratio = full_median / empty_median;
        println!(
            "postgres: claim median {empty_median:.3} ms (p99 {empty_p99:.3}) with 0 finished jobs, \
             {full_median:.3} ms (p99 {full_p99:.3}) with {} finished: ratio {ratio:.2}",
            sizes.finished
        );
        let jobs_per_s = tiny_job_throughput(storages.clone(), sizes.jobs).await;
        println!("postgres: tiny jobs (submit+claim+finish, 2 claimers) {jobs_per_s:.0}/s");
        let trials_per_s =
            study_trials_per_second([storages[1].clone(), storages[2].clone()], sizes.trials, 1)
                .await;
        println!(
            "postgres: study ask(1)/claim/tell, 2 workers, {} trials: {trials_per_s:.0} trials/s",
            sizes.trials
        );
        let batched_per_s =
            study_trials_per_second([storages[1].clone(), storages[2].clone()], sizes.trials, 2)
                .await;
        println!(
            "postgres: study ask(2)/claim/tell, 2 workers, {} trials: {batched_per_s:.0} trials/s",
            sizes.trials
        );
        report.insert(
            "postgres".into(),
            json!({
                "claim_median_ms_0_finished": empty_median,
                "claim_p99_ms_0_finished": empty_p99,
                "claim_median_ms_100k_finished": full_median,
                "claim_p99_ms_100k_finished": full_p99,
                "claim_ratio": ratio,
                "finished_jobs": sizes.finished,
                "tiny_jobs_per_s": jobs_per_s,
                "study_trials": sizes.trials,
                "study_trials_per_s": trials_per_s,
                "study_trials_per_s_batch_2": batched_per_s,
            }),
        );
    }
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if args.iter().any(|a| a == "--peers") {
        peers(&base, sizes.trials, &mut report);
    }
    print_json(json_out, report);
}

/// Optuna's RDB storage on the same server, as many trials, 2 worker processes.
fn peers(base: &str, trials: usize, report: &mut serde_json::Map<String, serde_json::Value>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/optuna_rdb.py");
    let output = std::process::Command::new("python3")
        .args([
            script,
            "--url",
            base,
            "--trials",
            &trials.to_string(),
            "--workers",
            "2",
        ])
        .output()
        .expect("run python3");
    if !output.status.success() {
        eprintln!(
            "optuna peer failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let optuna: serde_json::Value = serde_json::from_slice(&output.stdout).expect("optuna JSON");
    let optuna_rate = optuna["trials_per_s"].as_f64().unwrap();
    let pg = &report["postgres"];
    let jobs_ratio = pg["tiny_jobs_per_s"].as_f64().unwrap() / optuna_rate;
    let trials_ratio = pg["study_trials_per_s"].as_f64().unwrap() / optuna_rate;
    let batched_ratio = pg["study_trials_per_s_batch_2"].as_f64().unwrap() / optuna_rate;
    println!(
        "optuna {} RDB storage, 2 processes, {trials} trials: {optuna_rate:.1} trials/s; \
         atlas tiny jobs / optuna trials = {jobs_ratio:.1}x, atlas study trials / optuna trials = {trials_ratio:.1}x (asking 2 at a time: {batched_ratio:.1}x)",
        optuna["optuna_version"].as_str().unwrap_or("?")
    );
    report.insert("optuna".into(), optuna);
    report.insert("ratio_tiny_jobs_vs_optuna".into(), json!(jobs_ratio));
    report.insert("ratio_study_trials_vs_optuna".into(), json!(trials_ratio));
    report.insert(
        "ratio_study_trials_batch_2_vs_optuna".into(),
        json!(batched_ratio),
    );
}

fn print_json(path: Option<String>, report: serde_json::Map<String, serde_json::Value>) {
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(report)).unwrap();
    match path {
        Some(path) => std::fs::write(&path, text).unwrap(),
        None => println!("{text}"),
    }
}
