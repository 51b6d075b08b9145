//! The storage suite on the real PostgreSQL (`ATLAS_TEST_POSTGRES_URL`; a database of its
//! own per test, dropped at the end), plus PostgreSQL's own checks: many concurrent
//! claimers, the claim plan, schema refusal.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_store::{NewJob, Storage, StoreOptions};
use serde_json::json;
use sqlx::Connection;

suite_tests!(common::postgres;
    lifecycle,
    claims_oldest_first,
    idempotent_submission,
    lease_expiry_then_abandoned,
    finish_once_with_racing_finishers,
    cancel_queued_and_running,
    requeue_hands_back,
    retry_job_requeues_failed_and_cancelled,
    cursor_pagination,
    sweep_parent_and_children,
    sweep_cancel,
    wakes_idle_workers,
    study_ask_tell,
    trial_abandoned_after_three_leases,
);

/// 8 workers (each its own storage and pool, as separate processes) drain one queue of
/// 2,000 tiny jobs: no job is claimed twice and none is missed, checked on the stored rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_claimers_share_one_queue_exactly_once() {
    let Some(backend) = common::postgres().await else {
        return;
    };
    const JOBS: usize = 2000;
    let ids: Vec<_> = futures_submit(&backend.storage, JOBS).await;
    let claims = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..8 {
        let storage = atlas_store::open_with(
            &backend.url,
            &StoreOptions {
                max_connections: 3,
                ..common::test_options()
            },
        )
        .await
        .unwrap();
        let claims = claims.clone();
        workers.push(tokio::spawn(async move {
            let worker = format!("host-{w}/{}", 1000 + w);
            let mut mine = 0;
            while let Some(claimed) = storage
                .claim(&worker, Duration::from_secs(60))
                .await
                .unwrap()
            {
                claims.lock().unwrap().push(claimed.job.id.clone());
                let finished = storage
                    .finish(&claimed.lease, json!({"by": worker}))
                    .await
                    .unwrap();
                assert!(matches!(finished, atlas_store::Finished::Recorded { .. }));
                mine += 1;
            }
            mine
        }));
    }
    let mut per_worker = Vec::new();
    for worker in workers {
        per_worker.push(worker.await.unwrap());
    }
    eprintln!("jobs per worker: {per_worker:?}");
    let claims = claims.lock().unwrap().clone();
    let unique: HashSet<_> = claims.iter().collect();
    assert_eq!(claims.len(), JOBS, "claims made");
    assert_eq!(unique.len(), JOBS, "no job claimed twice");
    assert_eq!(unique, ids.iter().collect(), "none missed");
    assert!(
        per_worker.iter().filter(|&&n| n > 0).count() >= 2,
        "the work was shared"
    );
    common::suite::assert_all_succeeded_once(&backend.storage, JOBS).await;
    // On the rows themselves: one attempt each, a worker and a result naming the same one.
    let mut conn = sqlx::PgConnection::connect(&backend.url).await.unwrap();
    let bad: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM atlas_jobs WHERE state <> 'succeeded' OR attempts <> 1 \
         OR finished_attempt <> 1 OR result->>'by' IS DISTINCT FROM worker",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(bad, 0);
}

async fn futures_submit(storage: &Arc<dyn Storage>, n: usize) -> Vec<atlas_store::JobId> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            storage
                .submit(NewJob::new(json!({"n": i})))
                .await
                .unwrap()
                .job
                .id,
        );
    }
    ids
}

/// The claim reads the partial index of queued jobs: its plan never scans the table,
/// whatever number of finished jobs it holds.
#[tokio::test]
async fn claim_uses_the_queued_index_not_a_scan() {
    let Some(backend) = common::postgres().await else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect(&backend.url).await.unwrap();
    sqlx::query(
        "INSERT INTO atlas_jobs (id, kind, state, request, finished_at, attempts, finished_attempt) \
         SELECT 'F' || lpad(g::text, 25, '0'), 'job', 'succeeded', '{}'::jsonb, now(), 1, 1 \
         FROM generate_series(1, 20000) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("ANALYZE atlas_jobs")
        .execute(&mut conn)
        .await
        .unwrap();
    backend
        .storage
        .submit(NewJob::new(json!({})))
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM atlas_jobs WHERE state = 'queued' AND kind <> 'sweep' \
         ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("atlas_jobs_queued"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    let claimed = backend
        .storage
        .claim("w/1", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(claimed.is_some());
}

#[tokio::test]
async fn refuses_a_database_from_a_newer_schema() {
    let Some(backend) = common::postgres().await else {
        return;
    };
    let url = backend.url.clone();
    common::suite::refuse_newer_schema(&url, async {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("INSERT INTO atlas_schema_version (version) VALUES (99)")
            .execute(&mut conn)
            .await
            .unwrap();
    })
    .await;
}

/// Many processes starting at once on an empty database migrate it exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_migrate_once() {
    let Some(base) = common::postgres_base_url() else {
        return;
    };
    let database = common::TestDatabase::create(&base).await;
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = database.url.clone();
            tokio::spawn(async move { atlas_store::open(&url).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().expect("every start succeeds");
    }
    let mut conn = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM atlas_schema_version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(versions, [atlas_store::SCHEMA_VERSION]);
}

#[tokio::test]
async fn unreachable_server_is_unavailable_after_the_reconnect_timeout() {
    // Port 1 on loopback: nothing listens there.
    let options = StoreOptions {
        reconnect_timeout: Duration::from_millis(300),
        acquire_timeout: Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let error = atlas_store::open_with("postgres://postgres@127.0.0.1:1/postgres", &options)
        .await
        .err()
        .expect("no server");
    assert!(error.is_unavailable(), "{error}");
}
