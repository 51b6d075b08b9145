//! The storage suite on SQLite (a temporary file per test), plus SQLite's own checks:
//! schema refusal, URL forms, in-memory databases.

mod common;

use atlas_store::{JobState, NewJob, SqliteStorage};
use serde_json::json;
use sqlx::Connection;

suite_tests!(common::sqlite;
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

#[tokio::test]
async fn refuses_a_database_from_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atlas.db");
    let url = format!("sqlite://{}", path.display());
    drop(SqliteStorage::open(&url).await.expect("create"));
    common::suite::refuse_newer_schema(&url, async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query("INSERT INTO atlas_schema_version (version, applied_at) VALUES (99, 0)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn reopening_keeps_jobs_and_does_not_migrate_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("atlas.db").display());
    let first = atlas_store::open(&url).await.unwrap();
    let id = first
        .submit(NewJob::new(json!({"n": 1})))
        .await
        .unwrap()
        .job
        .id;
    drop(first);
    let second = atlas_store::open(&url).await.unwrap();
    assert_eq!(
        second.get(&id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM atlas_schema_version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(versions, [atlas_store::SCHEMA_VERSION]);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn in_memory_database_works_for_one_process() {
    let storage = atlas_store::open("sqlite::memory:").await.unwrap();
    assert_eq!(storage.backend(), "sqlite");
    let id = storage.submit(NewJob::new(json!({}))).await.unwrap().job.id;
    // Reads go through the same single connection: the database is not lost between calls.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(storage.get(&id).await.unwrap().is_some());
    let claimed = storage
        .claim("w/1", std::time::Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.job.id, id);
}

#[tokio::test]
async fn bad_urls_say_what_is_wrong() {
    for (url, expect) in [
        ("sqlite://", "the path is empty"),
        (
            "sqlite:///tmp/x.db?synchronous=maybe",
            "unknown parameter `synchronous=maybe`",
        ),
        ("redis://127.0.0.1", "expected sqlite://PATH"),
    ] {
        let error = atlas_store::open(url).await.err().expect("refused");
        assert!(error.to_string().contains(expect), "{url}: {error}");
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?synchronous=normal",
        dir.path().join("n.db").display()
    );
    atlas_store::open(&url)
        .await
        .expect("synchronous=normal is accepted");
}
