//! PostgreSQL restarted for real while two workers drain a queue: the pools reconnect
//! (with backoff), the LISTEN connections come back, and every job ends succeeded,
//! finished exactly once.
//!
//! It restarts the server, which disturbs every other test using it, so it runs only
//! with `ATLAS_TEST_PG_RESTART=1` (`.ci/run` runs this binary alone, after the others).

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atlas_store::{Finished, JobQuery, JobState, NewJob, NewScenario, NewSweep, Storage, MAX_PAGE};
use serde_json::json;

fn restart_postgres() {
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql (a Debian PostgreSQL cluster)")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        versions.len(),
        1,
        "one PostgreSQL version installed: {versions:?}"
    );
    let output = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &versions[0], "main", "restart"])
        .output()
        .expect("run pg_ctlcluster");
    assert!(
        output.status.success(),
        "pg_ctlcluster restart failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_survive_a_postgres_restart() {
    if std::env::var("ATLAS_TEST_PG_RESTART").as_deref() != Ok("1") {
        eprintln!("SKIPPED: set ATLAS_TEST_PG_RESTART=1 to restart PostgreSQL in this test (.ci/run does, alone)");
        return;
    }
    let Some(backend) = common::postgres().await else {
        return;
    };
    const JOBS: usize = 300;
    const SCENARIOS: usize = 40;
    for n in 0..JOBS {
        backend
            .storage
            .submit(NewJob::new(json!({"n": n})))
            .await
            .unwrap();
    }
    let sweep = backend
        .storage
        .submit_sweep(NewSweep {
            request: json!({"sweep": true}),
            optimizer: None,
            problem: Some("base".into()),
            scenarios: (0..SCENARIOS)
                .map(|i| NewScenario {
                    request: json!({"i": i}),
                    optimizer: None,
                    problem: None,
                })
                .collect(),
            idempotency_key: None,
        })
        .await
        .unwrap()
        .job
        .id;
    let total = JOBS + SCENARIOS;

    let finished = Arc::new(AtomicUsize::new(0));
    let recorded: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let errors = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..2 {
        let storage = backend.open_again().await;
        let (finished, recorded, errors) = (finished.clone(), recorded.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let worker = format!("host-{w}/{w}");
            let deadline = Instant::now() + Duration::from_secs(180);
            while finished.load(Ordering::SeqCst) < total && Instant::now() < deadline {
                match storage.claim(&worker, Duration::from_secs(3)).await {
                    Ok(Some(claimed)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        match storage.finish(&claimed.lease, json!({"by": worker})).await {
                            Ok(Finished::Recorded { .. }) => {
                                *recorded
                                    .lock()
                                    .unwrap()
                                    .entry(claimed.job.id.to_string())
                                    .or_default() += 1;
                                finished.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(Finished::Discarded { .. }) => {}
                            Err(error) => {
                                eprintln!("{worker}: finish failed: {error}");
                                errors.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    Ok(None) => {
                        storage.wait_for_work(Duration::from_millis(500)).await;
                    }
                    Err(error) => {
                        eprintln!("{worker}: claim failed: {error}");
                        errors.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    while finished.load(Ordering::SeqCst) < total / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = finished.load(Ordering::SeqCst);
    let started = Instant::now();
    tokio::task::spawn_blocking(restart_postgres).await.unwrap();
    eprintln!(
        "PostgreSQL restarted in {:?} with {before} of {total} jobs finished",
        started.elapsed()
    );
    for worker in workers {
        worker.await.unwrap();
    }
    let done = finished.load(Ordering::SeqCst);
    eprintln!(
        "after the restart: {done} of {total} finished, {} errors surfaced to workers",
        errors.load(Ordering::SeqCst)
    );
    assert_eq!(done, total, "every job finished");
    assert_eq!(
        errors.load(Ordering::SeqCst),
        0,
        "the storage retried through the restart"
    );
    let recorded = recorded.lock().unwrap().clone();
    assert_eq!(recorded.len(), total);
    assert!(
        recorded.values().all(|&n| n == 1),
        "each result recorded once"
    );

    // On the stored rows: every job and scenario succeeded; the sweep completed.
    let mut query = JobQuery {
        limit: MAX_PAGE,
        ..JobQuery::default()
    };
    let mut rows = 0;
    let mut retried = 0;
    loop {
        let page = backend.storage.list(&query).await.unwrap();
        for job in &page.jobs {
            assert_eq!(job.state, JobState::Succeeded, "{job:?}");
            if job.attempts > 1 {
                retried += 1;
            }
            rows += 1;
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(rows, total + 1, "the jobs, the scenarios and the sweep");
    eprintln!("{retried} jobs were claimed again after a claim's answer was lost in the restart");
    let status = backend.storage.sweep_status(&sweep).await.unwrap().unwrap();
    assert_eq!((status.done, status.failed), (SCENARIOS as u32, 0));

    // The LISTEN connection is back: another process's submission wakes a waiter.
    let waiter_storage = backend.open_again().await;
    let other: Arc<dyn Storage> = backend.storage.clone();
    while waiter_storage
        .wait_for_work(Duration::from_millis(200))
        .await
    {}
    let waiter =
        tokio::spawn(async move { waiter_storage.wait_for_work(Duration::from_secs(30)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    other
        .submit(NewJob::new(json!({"after": "restart"})))
        .await
        .unwrap();
    assert!(waiter.await.unwrap(), "woken by NOTIFY after the restart");
}
