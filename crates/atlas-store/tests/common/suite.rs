//! The behaviour every backend must have: one suite, run against SQLite and PostgreSQL.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_store::*;
use serde_json::{json, Value};

use super::Backend;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);

fn new_job(n: u32) -> NewJob {
    NewJob {
        request: json!({"problem": {"name": format!("p{n}")}, "optimizer": "convex", "n": n}),
        optimizer: Some("convex".into()),
        problem: Some(format!("p{n}")),
        idempotency_key: None,
    }
}

async fn get(storage: &dyn Storage, id: &JobId) -> Job {
    storage.get(id).await.expect("get").expect("job exists")
}

/// Claims until the job with `id` comes up (other jobs are not expected here).
async fn claim(storage: &dyn Storage, worker: &str, lease: Duration) -> Claimed {
    storage
        .claim(worker, lease)
        .await
        .expect("claim")
        .expect("a claimable job")
}

/// Waits past a lease's end, by the database's clock as well as this one.
async fn outlive(lease: Duration) {
    tokio::time::sleep(lease + Duration::from_millis(150)).await;
}

pub async fn lifecycle(backend: &Backend) {
    let storage = &*backend.storage;
    storage.ping().await.expect("ping");
    assert_eq!(storage.queue_stats().await.unwrap(), QueueStats::default());

    let submitted = storage.submit(new_job(1)).await.expect("submit");
    assert!(submitted.created);
    let job = submitted.job;
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.kind, JobKind::Job);
    assert_eq!(job.attempts, 0);
    assert_eq!(job.optimizer.as_deref(), Some("convex"));
    assert_eq!(
        storage.queue_stats().await.unwrap(),
        QueueStats {
            queued: 1,
            running: 0
        }
    );

    let stored = get(storage, &job.id).await;
    assert_eq!(
        stored.request,
        Some(new_job(1).request),
        "the request round-trips"
    );
    assert_eq!(stored.problem.as_deref(), Some("p1"));

    let claimed = claim(storage, "host-a/1", LONG).await;
    assert_eq!(claimed.job.id, job.id);
    assert_eq!(claimed.job.request, Some(new_job(1).request));
    assert_eq!(claimed.lease.attempt, 1);
    assert_eq!(claimed.job.state, JobState::Running);
    assert_eq!(claimed.job.worker.as_deref(), Some("host-a/1"));
    assert!(claimed.lease.expires_at > job.created_at + chrono::Duration::seconds(50));
    assert_eq!(
        storage.queue_stats().await.unwrap(),
        QueueStats {
            queued: 0,
            running: 1
        }
    );
    assert!(
        storage.claim("host-b/2", LONG).await.unwrap().is_none(),
        "nothing else to claim"
    );

    let before = claimed.lease.expires_at;
    tokio::time::sleep(Duration::from_millis(20)).await;
    match storage.heartbeat(&claimed.lease, LONG * 2).await.unwrap() {
        Heartbeat::Renewed(until) => assert!(until > before, "{until} > {before}"),
        other => panic!("expected a renewal, got {other:?}"),
    }
    let mut foreign = claimed.lease.clone();
    foreign.worker = "host-b/2".into();
    assert_eq!(
        storage.heartbeat(&foreign, LONG).await.unwrap(),
        Heartbeat::Lost
    );

    let result = json!({"status": "optimal", "objective": 12.5});
    let finished = storage
        .finish(&claimed.lease, result.clone())
        .await
        .unwrap();
    assert_eq!(
        finished,
        Finished::Recorded {
            state: JobState::Succeeded,
            sweep_completed: None
        }
    );
    // A retried finish (an answer lost on the way) is recognised as the same one.
    let again = storage
        .finish(&claimed.lease, result.clone())
        .await
        .unwrap();
    assert_eq!(
        again,
        Finished::Recorded {
            state: JobState::Succeeded,
            sweep_completed: None
        }
    );
    assert_eq!(
        storage.heartbeat(&claimed.lease, LONG).await.unwrap(),
        Heartbeat::Lost
    );

    let done = get(storage, &job.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(result));
    assert_eq!(done.error, None);
    assert_eq!(done.attempts, 1);
    let started = done.started_at.expect("started_at");
    let finished_at = done.finished_at.expect("finished_at");
    assert!(done.created_at <= started && started <= finished_at);
    assert_eq!(storage.queue_stats().await.unwrap(), QueueStats::default());

    // The job JSON of the contract: RFC 3339 UTC times, the listed keys.
    let text = serde_json::to_value(&done).unwrap();
    for key in [
        "id",
        "state",
        "optimizer",
        "problem",
        "created_at",
        "started_at",
        "finished_at",
        "attempts",
        "worker",
        "result",
        "error",
    ] {
        assert!(text.get(key).is_some(), "job JSON lacks `{key}`: {text}");
    }
    assert_eq!(text["state"], "succeeded");
    assert_eq!(text["error"], Value::Null);
    let created = text["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z'), "{created}");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(created).unwrap(),
        done.created_at
    );
    assert!(
        text.get("request").is_none(),
        "the request is not part of the job JSON"
    );

    // A failing job.
    let second = storage.submit(new_job(2)).await.unwrap().job;
    let lease = claim(storage, "host-a/1", LONG).await.lease;
    assert_eq!(lease.job, second.id);
    let error = JobError {
        kind: "infeasible".into(),
        message: "budget below the minimums".into(),
        field: Some("budget".into()),
    };
    let failed = storage.fail(&lease, error.clone()).await.unwrap();
    assert_eq!(
        failed,
        Finished::Recorded {
            state: JobState::Failed,
            sweep_completed: None
        }
    );
    let stored = get(storage, &second.id).await;
    assert_eq!(stored.state, JobState::Failed);
    assert_eq!(stored.error, Some(error));
    assert_eq!(
        serde_json::to_value(&stored).unwrap()["error"]["field"],
        "budget"
    );

    let unknown = JobId::generate();
    assert!(storage.get(&unknown).await.unwrap().is_none());
    assert!(storage.cancel(&unknown).await.unwrap().is_none());
    assert!("not-an-id".parse::<JobId>().is_err());
}

pub async fn claims_oldest_first(backend: &Backend) {
    let storage = &*backend.storage;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(storage.submit(new_job(n)).await.unwrap().job.id);
    }
    for id in &ids {
        assert_eq!(&claim(storage, "w/1", LONG).await.job.id, id);
    }
}

pub async fn idempotent_submission(backend: &Backend) {
    let storage = &*backend.storage;
    let mut job = new_job(7);
    job.idempotency_key = Some("client-key-1".into());
    let first = storage.submit(job.clone()).await.unwrap();
    let second = storage.submit(job.clone()).await.unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.job.id, second.job.id);
    let page = storage.list(&JobQuery::default()).await.unwrap();
    assert_eq!(page.jobs.len(), 1, "one job stored");
}

pub async fn lease_expiry_then_abandoned(backend: &Backend) {
    let storage = &*backend.storage;
    let id = storage.submit(new_job(1)).await.unwrap().job.id;
    let mut seen = Vec::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let claimed = claim(storage, &format!("host/{attempt}"), SHORT).await;
        assert_eq!(claimed.job.id, id);
        assert_eq!(claimed.lease.attempt, attempt);
        assert_eq!(claimed.job.attempts, attempt);
        seen.push(claimed.lease);
        // While the lease runs, nobody else gets the job.
        assert!(storage.claim("other/9", SHORT).await.unwrap().is_none());
        outlive(SHORT).await;
    }
    // The previous holder's heartbeat after a re-claim: lost.
    assert_eq!(
        storage.heartbeat(&seen[0], LONG).await.unwrap(),
        Heartbeat::Lost
    );
    // Third lease expired: the next claims fail the job as abandoned instead of a 4th try.
    let deadline = Instant::now() + Duration::from_secs(10);
    let job = loop {
        assert!(
            storage.claim("other/9", LONG).await.unwrap().is_none(),
            "no 4th attempt"
        );
        let job = get(storage, &id).await;
        if job.state != JobState::Running || Instant::now() > deadline {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert_eq!(job.attempts, MAX_ATTEMPTS);
    let error = job.error.expect("an error");
    assert_eq!(error.kind, "abandoned");
    assert!(error.message.contains("host/3"), "{}", error.message);
    // A late finish of any attempt is discarded now.
    let late = storage
        .finish(&seen[2], json!({"late": true}))
        .await
        .unwrap();
    assert_eq!(
        late,
        Finished::Discarded {
            state: JobState::Failed
        }
    );
}

pub async fn finish_once_with_racing_finishers(backend: &Backend) {
    let storage = backend.storage.clone();
    for round in 0..10 {
        let id = storage.submit(new_job(round)).await.unwrap().job.id;
        let first = claim(&*storage, "slow/1", SHORT).await.lease;
        outlive(SHORT).await;
        let second = claim(&*storage, "fast/2", LONG).await.lease;
        assert_eq!(
            (first.job.clone(), second.job.clone()),
            (id.clone(), id.clone())
        );
        assert_eq!(second.attempt, 2);
        let (a, b) = {
            let (s1, s2) = (storage.clone(), storage.clone());
            let t1 = tokio::spawn(async move { s1.finish(&first, json!({"by": "slow"})).await });
            let t2 = tokio::spawn(async move { s2.finish(&second, json!({"by": "fast"})).await });
            (t1.await.unwrap().unwrap(), t2.await.unwrap().unwrap())
        };
        let recorded = |f: &Finished| matches!(f, Finished::Recorded { .. });
        assert!(
            recorded(&a) ^ recorded(&b),
            "exactly one recorded: {a:?} {b:?}"
        );
        let winner = if recorded(&a) { "slow" } else { "fast" };
        let loser = if recorded(&a) { &b } else { &a };
        assert_eq!(
            loser,
            &Finished::Discarded {
                state: JobState::Succeeded
            }
        );
        let job = get(&*storage, &id).await;
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(job.result, Some(json!({ "by": winner })));
        assert!(
            job.worker.as_deref().unwrap().starts_with(winner),
            "{:?}",
            job.worker
        );
    }
}

pub async fn cancel_queued_and_running(backend: &Backend) {
    let storage = &*backend.storage;
    let queued = storage.submit(new_job(1)).await.unwrap().job.id;
    let cancelled = storage.cancel(&queued).await.unwrap().expect("known");
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.finished_at.is_some());
    assert!(
        storage.claim("w/1", LONG).await.unwrap().is_none(),
        "a cancelled job is not claimed"
    );

    let running = storage.submit(new_job(2)).await.unwrap().job.id;
    let lease = claim(storage, "w/1", LONG).await.lease;
    let job = storage.cancel(&running).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(
        storage.heartbeat(&lease, LONG).await.unwrap(),
        Heartbeat::Cancelled
    );
    // The worker stops and reports its best point: kept, the job stays cancelled.
    let best = json!({"status": "cancelled", "objective": 3.0});
    let finished = storage.finish(&lease, best.clone()).await.unwrap();
    assert_eq!(
        finished,
        Finished::Recorded {
            state: JobState::Cancelled,
            sweep_completed: None
        }
    );
    let job = get(storage, &running).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.result, Some(best));
    assert_eq!(
        storage.heartbeat(&lease, LONG).await.unwrap(),
        Heartbeat::Lost
    );

    // Cancelling a finished job changes nothing.
    let finished_id = storage.submit(new_job(3)).await.unwrap().job.id;
    let lease = claim(storage, "w/1", LONG).await.lease;
    storage.finish(&lease, json!({"ok": 1})).await.unwrap();
    let job = storage.cancel(&finished_id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.result, Some(json!({"ok": 1})));
    assert_eq!(storage.queue_stats().await.unwrap(), QueueStats::default());
}

pub async fn requeue_hands_back(backend: &Backend) {
    let storage = &*backend.storage;
    let id = storage.submit(new_job(1)).await.unwrap().job.id;
    let lease = claim(storage, "w/1", LONG).await.lease;
    assert!(storage.requeue(&lease).await.unwrap());
    assert!(!storage.requeue(&lease).await.unwrap(), "only once");
    let job = get(storage, &id).await;
    assert_eq!(
        (job.state, job.attempts, job.worker),
        (JobState::Queued, 0, None)
    );
    let again = claim(storage, "w/2", LONG).await;
    assert_eq!((again.job.id.clone(), again.lease.attempt), (id, 1));
    // The old holder's lease is not the new one.
    assert_eq!(
        storage.heartbeat(&lease, LONG).await.unwrap(),
        Heartbeat::Lost
    );
}

/// An operator's retry: a failed or cancelled job is queued again from scratch; anything
/// else is refused with the reason and left as it is.
pub async fn retry_job_requeues_failed_and_cancelled(backend: &Backend) {
    let storage = &*backend.storage;
    assert_eq!(storage.retry_job(&JobId::generate()).await.unwrap(), None);
    let id = storage.submit(new_job(1)).await.unwrap().job.id;
    match storage.retry_job(&id).await.unwrap() {
        Some(Retried::Refused { job, reason }) => {
            assert_eq!(job.state, JobState::Queued);
            assert!(reason.contains("queued"), "{reason}");
        }
        other => panic!("a queued job is not retried: {other:?}"),
    }
    let first = claim(storage, "w/1", LONG).await.lease;
    storage
        .fail(&first, JobError::new("model", "the model broke"))
        .await
        .unwrap();
    let job = match storage.retry_job(&id).await.unwrap() {
        Some(Retried::Queued(job)) => job,
        other => panic!("a failed job is retried: {other:?}"),
    };
    assert_eq!(
        (
            job.state,
            job.attempts,
            job.worker.clone(),
            job.error.clone()
        ),
        (JobState::Queued, 0, None, None)
    );
    assert!(job.finished_at.is_none() && job.started_at.is_none());
    let second = claim(storage, "w/2", LONG).await;
    assert_eq!(
        (second.job.id.clone(), second.lease.attempt),
        (id.clone(), 1)
    );
    storage
        .finish(&second.lease, json!({"ok": true}))
        .await
        .unwrap();
    let job = get(storage, &id).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.result, Some(json!({"ok": true})));
    assert!(matches!(
        storage.retry_job(&id).await.unwrap(),
        Some(Retried::Refused { .. })
    ));
    assert_eq!(
        get(storage, &id).await.state,
        JobState::Succeeded,
        "left as it is"
    );

    let cancelled = storage.submit(new_job(2)).await.unwrap().job.id;
    storage.cancel(&cancelled).await.unwrap();
    assert!(matches!(
        storage.retry_job(&cancelled).await.unwrap(),
        Some(Retried::Queued(_))
    ));
    assert_eq!(get(storage, &cancelled).await.state, JobState::Queued);

    let sweep = storage.submit_sweep(new_sweep(2)).await.unwrap().job.id;
    storage.cancel(&sweep).await.unwrap();
    for id in [sweep.clone()]
        .into_iter()
        .chain(child_ids(storage, &sweep).await)
    {
        match storage.retry_job(&id).await.unwrap() {
            Some(Retried::Refused { job, reason }) => {
                assert_eq!(job.state, JobState::Cancelled);
                assert!(reason.contains("submit the sweep again"), "{reason}");
            }
            other => panic!("a sweep or scenario is not retried alone: {other:?}"),
        }
    }
}

async fn child_ids(storage: &dyn Storage, parent: &JobId) -> Vec<JobId> {
    storage
        .list(&JobQuery {
            parent: Some(parent.clone()),
            limit: MAX_PAGE,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect()
}

pub async fn cursor_pagination(backend: &Backend) {
    let storage = &*backend.storage;
    let mut ids = Vec::new();
    for n in 0..57 {
        ids.push(storage.submit(new_job(n)).await.unwrap().job.id);
    }
    // Some of them run and finish, so the states are mixed.
    let mut succeeded = BTreeSet::new();
    for _ in 0..20 {
        let lease = claim(storage, "w/1", LONG).await.lease;
        storage.finish(&lease, json!({})).await.unwrap();
        succeeded.insert(lease.job);
    }
    let walk = |query: JobQuery| async move {
        let mut seen = Vec::new();
        let mut query = query;
        let mut pages = 0;
        loop {
            let page = storage.list(&query).await.expect("list");
            assert!(page.jobs.len() <= query.limit as usize);
            pages += 1;
            seen.extend(page.jobs.into_iter().map(|j| (j.id, j.state, j.request)));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
            // Jobs submitted during the walk come after the cursor or not at all.
            if pages == 2 {
                storage.submit(new_job(999)).await.unwrap();
            }
        }
        (seen, pages)
    };
    let (all, pages) = walk(JobQuery {
        limit: 10,
        ..JobQuery::default()
    })
    .await;
    let walked: Vec<JobId> = all.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(
        &walked[..57],
        &ids[..],
        "every job once, in order (no gaps, no duplicates)"
    );
    assert_eq!(walked.iter().collect::<HashSet<_>>().len(), walked.len());
    assert!(pages >= 6);
    assert!(
        all.iter().all(|(_, _, request)| request.is_none()),
        "pages carry no requests"
    );

    let (done, _) = walk(JobQuery {
        state: Some(JobState::Succeeded),
        limit: 7,
        ..JobQuery::default()
    })
    .await;
    let done: BTreeSet<JobId> = done
        .into_iter()
        .map(|(id, state, _)| {
            assert_eq!(state, JobState::Succeeded);
            id
        })
        .collect();
    assert_eq!(done, succeeded);

    let bad = storage
        .list(&JobQuery {
            after: Some("garbage".into()),
            ..JobQuery::default()
        })
        .await;
    assert!(
        matches!(&bad, Err(StoreError::InvalidInput { field, .. }) if field == "after"),
        "{bad:?}"
    );
    let big = storage
        .list(&JobQuery {
            limit: MAX_PAGE + 1,
            ..JobQuery::default()
        })
        .await;
    assert!(
        matches!(&big, Err(StoreError::InvalidInput { field, .. }) if field == "limit"),
        "{big:?}"
    );
}

fn new_sweep(n: usize) -> NewSweep {
    NewSweep {
        request: json!({"problem": {"name": "retail"}, "budgets": n}),
        optimizer: Some("convex".into()),
        problem: Some("retail".into()),
        scenarios: (0..n)
            .map(|i| NewScenario {
                request: json!({"budget": 1000 * (i + 1)}),
                optimizer: Some("convex".into()),
                problem: Some(format!("budget={}", 1000 * (i + 1))),
            })
            .collect(),
        idempotency_key: None,
    }
}

pub async fn sweep_parent_and_children(backend: &Backend) {
    let storage = &*backend.storage;
    let parent = storage.submit_sweep(new_sweep(5)).await.unwrap().job;
    assert_eq!(
        (parent.kind, parent.state),
        (JobKind::Sweep, JobState::Queued)
    );
    let status = storage
        .sweep_status(&parent.id)
        .await
        .unwrap()
        .expect("a sweep");
    assert_eq!(
        (status.total, status.done, status.failed, status.cancelled),
        (5, 0, 0, 0)
    );
    assert_eq!(
        storage.queue_stats().await.unwrap().queued,
        5,
        "the parent is not queued work"
    );

    let children = storage
        .list(&JobQuery {
            parent: Some(parent.id.clone()),
            ..JobQuery::default()
        })
        .await
        .unwrap()
        .jobs;
    let names: Vec<_> = children
        .iter()
        .map(|c| c.problem.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "budget=1000",
            "budget=2000",
            "budget=3000",
            "budget=4000",
            "budget=5000"
        ]
    );
    assert!(children
        .iter()
        .all(|c| c.kind == JobKind::Scenario && c.parent.as_ref() == Some(&parent.id)));

    let mut leases = Vec::new();
    for child in &children {
        let claimed = claim(storage, "w/1", LONG).await;
        assert_eq!(
            &claimed.job.id, &child.id,
            "scenarios are claimed in order, never the parent"
        );
        assert_eq!(
            claimed.job.request,
            Some(
                json!({"budget": claimed.job.problem.as_ref().unwrap()[7..].parse::<u64>().unwrap()})
            )
        );
        leases.push(claimed.lease);
    }
    assert!(storage.claim("w/1", LONG).await.unwrap().is_none());
    assert_eq!(get(storage, &parent.id).await.state, JobState::Running);

    for lease in &leases[..3] {
        let f = storage
            .finish(lease, json!({"objective": 1}))
            .await
            .unwrap();
        assert_eq!(
            f,
            Finished::Recorded {
                state: JobState::Succeeded,
                sweep_completed: None
            }
        );
    }
    storage
        .fail(&leases[3], JobError::new("infeasible", "too small"))
        .await
        .unwrap();
    let status = storage.sweep_status(&parent.id).await.unwrap().unwrap();
    assert_eq!(
        (status.total, status.done, status.failed, status.cancelled),
        (5, 3, 1, 0)
    );
    assert_eq!(status.job.state, JobState::Running);
    // The last scenario is cancelled: the sweep is complete now.
    storage.cancel(&leases[4].job).await.unwrap();
    let status = storage.sweep_status(&parent.id).await.unwrap().unwrap();
    assert_eq!((status.done, status.failed, status.cancelled), (3, 1, 1));
    assert_eq!(status.job.state, JobState::Succeeded);
    assert!(status.job.finished_at.is_some());
    // The cancelled scenario's worker reports its best point: kept, not counted twice.
    storage
        .finish(&leases[4], json!({"best": 1}))
        .await
        .unwrap();
    let status = storage.sweep_status(&parent.id).await.unwrap().unwrap();
    assert_eq!((status.done, status.failed, status.cancelled), (3, 1, 1));

    assert!(storage
        .set_sweep_result(&parent.id, json!({"scenarios": []}))
        .await
        .unwrap());
    assert!(
        !storage
            .set_sweep_result(&parent.id, json!({"other": 1}))
            .await
            .unwrap(),
        "once"
    );
    assert_eq!(
        get(storage, &parent.id).await.result,
        Some(json!({"scenarios": []}))
    );
    assert!(
        storage
            .sweep_status(&children[0].id)
            .await
            .unwrap()
            .is_none(),
        "a child is not a sweep"
    );

    // The finish of the last scenario names the sweep it completed.
    let second = storage.submit_sweep(new_sweep(2)).await.unwrap().job;
    let a = claim(storage, "w/1", LONG).await.lease;
    let b = claim(storage, "w/2", LONG).await.lease;
    assert_eq!(
        storage.finish(&b, json!({})).await.unwrap(),
        Finished::Recorded {
            state: JobState::Succeeded,
            sweep_completed: None
        }
    );
    assert_eq!(
        storage.finish(&a, json!({})).await.unwrap(),
        Finished::Recorded {
            state: JobState::Succeeded,
            sweep_completed: Some(second.id.clone())
        }
    );
    // A sweep whose scenarios all failed is failed.
    let third = storage.submit_sweep(new_sweep(1)).await.unwrap().job;
    let lease = claim(storage, "w/1", LONG).await.lease;
    storage
        .fail(&lease, JobError::new("infeasible", "no"))
        .await
        .unwrap();
    let job = get(storage, &third.id).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.unwrap().kind, "scenarios_failed");
}

pub async fn sweep_cancel(backend: &Backend) {
    let storage = &*backend.storage;
    let parent = storage.submit_sweep(new_sweep(4)).await.unwrap().job;
    let running = claim(storage, "w/1", LONG).await.lease;
    let job = storage.cancel(&parent.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(
        storage.heartbeat(&running, LONG).await.unwrap(),
        Heartbeat::Cancelled
    );
    assert!(
        storage.claim("w/1", LONG).await.unwrap().is_none(),
        "no scenario left to run"
    );
    let status = storage.sweep_status(&parent.id).await.unwrap().unwrap();
    assert_eq!((status.total, status.cancelled), (4, 4));
    let children = storage
        .list(&JobQuery {
            parent: Some(parent.id.clone()),
            ..JobQuery::default()
        })
        .await
        .unwrap()
        .jobs;
    assert!(children.iter().all(|c| c.state == JobState::Cancelled));
    assert_eq!(storage.queue_stats().await.unwrap(), QueueStats::default());
}

pub async fn wakes_idle_workers(backend: &Backend) {
    // The waiter and the submitter are separate storage instances, as two processes are
    // (on SQLite, one process holds the file: the same instance rings itself).
    let waiter_storage = if backend.storage.backend() == "postgres" {
        backend.open_again().await
    } else {
        backend.storage.clone()
    };
    // Drain the permit a fresh storage may hold (its LISTEN connection rang on connect).
    while waiter_storage
        .wait_for_work(Duration::from_millis(200))
        .await
    {}
    let waiter = {
        let storage = waiter_storage.clone();
        tokio::spawn(async move { storage.wait_for_work(Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    backend.storage.submit(new_job(1)).await.unwrap();
    let woken = waiter.await.unwrap();
    assert!(woken, "woken by the submission, not by the 30 s timeout");
    eprintln!("woken {:?} after the submission", started.elapsed());
    assert!(waiter_storage.claim("w/1", LONG).await.unwrap().is_some());
}

pub async fn study_ask_tell(backend: &Backend) {
    let storage = backend.storage.clone();
    let study = storage
        .create_study(NewStudy {
            job: None,
            state: json!({"told": 0}),
        })
        .await
        .unwrap();
    assert_eq!(study.version, 0);
    assert_eq!(storage.get_study(&study.id).await.unwrap().unwrap(), study);

    // Two askers at version 0: exactly one batch is stored.
    let (s1, s2, id1, id2) = (
        storage.clone(),
        storage.clone(),
        study.id.clone(),
        study.id.clone(),
    );
    let ask1 = tokio::spawn(async move {
        s1.update_study(
            &id1,
            0,
            json!({"asked": "a"}),
            vec![json!({"x": 1.0}), json!({"x": 2.0})],
        )
        .await
    });
    let ask2 = tokio::spawn(async move {
        s2.update_study(
            &id2,
            0,
            json!({"asked": "b"}),
            vec![json!({"x": 9.0}), json!({"x": 8.0})],
        )
        .await
    });
    let (r1, r2) = (ask1.await.unwrap().unwrap(), ask2.await.unwrap().unwrap());
    let (winner, trials) = match (&r1, &r2) {
        (StudyUpdate::Updated { version, trials }, StudyUpdate::Conflict { current })
        | (StudyUpdate::Conflict { current }, StudyUpdate::Updated { version, trials }) => {
            assert_eq!((*version, *current), (1, 1));
            (
                if matches!(r1, StudyUpdate::Updated { .. }) {
                    "a"
                } else {
                    "b"
                },
                trials.clone(),
            )
        }
        other => panic!("expected one update and one conflict: {other:?}"),
    };
    assert_eq!(trials.iter().map(|t| t.number).collect::<Vec<_>>(), [0, 1]);
    assert!(trials
        .iter()
        .all(|t| t.state == TrialState::Queued && t.attempts == 0));
    let stored = storage.get_study(&study.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.state),
        (1, json!({ "asked": winner }))
    );
    let more = storage
        .update_study(&study.id, 1, json!({"asked": 2}), vec![json!({"x": 3.0})])
        .await
        .unwrap();
    let StudyUpdate::Updated {
        version: 2,
        trials: third,
    } = more
    else {
        panic!("{more:?}")
    };
    assert_eq!(third[0].number, 2);
    let counts = storage.trial_counts(&study.id).await.unwrap();
    assert_eq!(
        counts,
        TrialCounts {
            queued: 3,
            running: 0,
            done: 0,
            failed: 0
        }
    );

    // Workers claim trials in number order; the running count feeds the constant liar.
    let t0 = storage
        .claim_trial(Some(&study.id), "w/1", LONG)
        .await
        .unwrap()
        .unwrap();
    let t1 = storage
        .claim_trial(None, "w/2", SHORT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t0.trial.number, t1.trial.number), (0, 1));
    assert_eq!(t0.trial.params, trials[0].params);
    let counts = storage.trial_counts(&study.id).await.unwrap();
    assert_eq!((counts.queued, counts.running), (1, 2));
    let running = storage
        .list_trials(
            &study.id,
            &TrialQuery {
                state: Some(TrialState::Running),
                ..TrialQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(running.iter().map(|t| t.number).collect::<Vec<_>>(), [0, 1]);

    assert_eq!(
        storage
            .tell(
                &t0.lease,
                TrialOutcome::Value(0.5, Some(json!({"evals": 1})))
            )
            .await
            .unwrap(),
        Told::Recorded
    );
    assert_eq!(
        storage
            .tell(&t0.lease, TrialOutcome::Value(0.5, None))
            .await
            .unwrap(),
        Told::Recorded,
        "a retried tell"
    );
    assert!(matches!(
        storage.heartbeat_trial(&t0.lease, LONG).await.unwrap(),
        Heartbeat::Lost
    ));

    // A worker dies holding trial 1: only that trial is re-run (attempt 2).
    outlive(SHORT).await;
    let t1b = storage
        .claim_trial(Some(&study.id), "w/3", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t1b.trial.number, t1b.lease.attempt), (1, 2));
    assert!(matches!(
        storage.heartbeat_trial(&t1b.lease, LONG).await.unwrap(),
        Heartbeat::Renewed(_)
    ));
    assert_eq!(
        storage
            .tell(&t1b.lease, TrialOutcome::Value(0.25, None))
            .await
            .unwrap(),
        Told::Recorded
    );
    assert_eq!(
        storage
            .tell(&t1.lease, TrialOutcome::Value(99.0, None))
            .await
            .unwrap(),
        Told::Discarded,
        "second tell of trial 1"
    );

    let t2 = storage
        .claim_trial(Some(&study.id), "w/1", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t2.trial.number, 2);
    let failure = JobError::new("model_error", "the model service answered 500");
    assert_eq!(
        storage
            .tell(&t2.lease, TrialOutcome::Failed(failure))
            .await
            .unwrap(),
        Told::Recorded
    );
    assert!(storage
        .claim_trial(Some(&study.id), "w/1", LONG)
        .await
        .unwrap()
        .is_none());

    let counts = storage.trial_counts(&study.id).await.unwrap();
    assert_eq!(
        counts,
        TrialCounts {
            queued: 0,
            running: 0,
            done: 2,
            failed: 1
        }
    );
    let done = storage
        .list_trials(
            &study.id,
            &TrialQuery {
                state: Some(TrialState::Done),
                ..TrialQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        done.iter().map(|t| (t.number, t.value)).collect::<Vec<_>>(),
        [(0, Some(0.5)), (1, Some(0.25))]
    );
    assert_eq!(done[0].detail, Some(json!({"evals": 1})));
    assert_eq!(done[1].worker.as_deref(), Some("w/3"));
    let after = storage
        .list_trials(
            &study.id,
            &TrialQuery {
                after_number: Some(0),
                ..TrialQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(after.iter().map(|t| t.number).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(after[1].state, TrialState::Failed);
    assert_eq!(after[1].detail.as_ref().unwrap()["kind"], "model_error");
}

pub async fn trial_abandoned_after_three_leases(backend: &Backend) {
    let storage = &*backend.storage;
    let study = storage
        .create_study(NewStudy {
            job: None,
            state: json!({}),
        })
        .await
        .unwrap();
    storage
        .update_study(&study.id, 0, json!({}), vec![json!({"x": 0})])
        .await
        .unwrap();
    for attempt in 1..=MAX_ATTEMPTS {
        let claimed = storage
            .claim_trial(Some(&study.id), "w/1", SHORT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.lease.attempt, attempt);
        outlive(SHORT).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(storage
            .claim_trial(None, "w/1", LONG)
            .await
            .unwrap()
            .is_none());
        let counts = storage.trial_counts(&study.id).await.unwrap();
        if counts.failed == 1 {
            assert_eq!(counts.running, 0);
            break;
        }
        assert!(Instant::now() < deadline, "not abandoned: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let trials = storage
        .list_trials(&study.id, &TrialQuery::default())
        .await
        .unwrap();
    assert_eq!(trials[0].detail.as_ref().unwrap()["kind"], "abandoned");
}

/// Opens the same database again after the schema was marked as written by a newer
/// Atlas: refused with a clear error.
pub async fn refuse_newer_schema(url: &str, mark_newer: impl std::future::Future<Output = ()>) {
    mark_newer.await;
    let error = atlas_store::open(url)
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(error, StoreError::SchemaTooNew { found: 99, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("schema version 99") && message.contains("newer"),
        "{message}"
    );
}

/// Shared by the concurrency tests: every stored job succeeded exactly once.
pub async fn assert_all_succeeded_once(storage: &Arc<dyn Storage>, expected: usize) {
    let mut query = JobQuery {
        limit: MAX_PAGE,
        ..JobQuery::default()
    };
    let mut seen = 0;
    loop {
        let page = storage.list(&query).await.unwrap();
        for job in &page.jobs {
            assert_eq!(job.state, JobState::Succeeded, "{job:?}");
            assert_eq!(job.attempts, 1, "{job:?}");
            seen += 1;
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}
