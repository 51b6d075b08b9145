//! Crash safety of SQLite: a child process submits, claims and finishes jobs and is
//! killed with SIGKILL in the middle; a new process opening the same file finds every
//! job the child had acknowledged, and every one of them can be finished.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use atlas_store::{JobId, JobState, NewJob};
use serde_json::json;

const CHILD_ENV: &str = "ATLAS_STORE_CRASH_CHILD_DB";
// Longer than the child usually lives, so its claims seldom expire while it runs (when
// they do, the child claims them again, which the counts below allow for).
const CHILD_LEASE: Duration = Duration::from_secs(2);

/// The child's work (a test of its own, which does nothing unless started by the
/// parent): submit jobs forever; claim every second one and finish every other claim,
/// printing each acknowledgement only after the storage returned.
#[tokio::test]
async fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let storage = atlas_store::open(&format!("sqlite://{path}"))
        .await
        .expect("child open");
    let mut n = 0u64;
    loop {
        let id = storage
            .submit(NewJob::new(json!({"n": n})))
            .await
            .unwrap()
            .job
            .id;
        println!("SUBMITTED {id}");
        if n % 2 == 0 {
            if let Some(claimed) = storage.claim("child/1", CHILD_LEASE).await.unwrap() {
                println!("CLAIMED {}", claimed.job.id);
                if n % 4 == 0 {
                    storage
                        .finish(&claimed.lease, json!({"n": n}))
                        .await
                        .unwrap();
                    println!("FINISHED {}", claimed.job.id);
                }
            }
        }
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_job() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atlas.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().unwrap();
    let (mut submitted, mut claimed, mut finished) = (Vec::new(), HashMap::new(), HashSet::new());
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Some((what, id)) = line.split_once(' ') else {
            continue;
        };
        let Ok(id) = id.trim().parse::<JobId>() else {
            continue;
        };
        match what {
            "SUBMITTED" => submitted.push(id),
            "CLAIMED" => *claimed.entry(id).or_insert(0u32) += 1,
            "FINISHED" => {
                finished.insert(id);
            }
            _ => {}
        }
        // Killed at the 400th acknowledgement; the reading goes on to the end of the
        // pipe, because what the child printed before the signal landed (a claim and a
        // finish after that submission, say) was acknowledged too.
        if submitted.len() == 400 && !killed {
            child.kill().expect("SIGKILL the child");
            killed = true;
        }
    }
    assert!(killed, "the child stopped before 400 submissions");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed: {status:?}");
    eprintln!(
        "child killed after {} acknowledged submissions, {} claims, {} finishes",
        submitted.len(),
        claimed.len(),
        finished.len()
    );
    assert!(finished.len() >= 50 && claimed.len() > finished.len());

    // A new process on the same file.
    let storage = atlas_store::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("reopen");
    // The one finish the child may have committed without living to print it.
    let mut unprinted_finishes = 0;
    for id in &submitted {
        let job = storage
            .get(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged job {id} lost"));
        if finished.contains(id) {
            assert_eq!(job.state, JobState::Succeeded, "{job:?}");
            assert!(job.result.is_some());
        } else if job.state == JobState::Succeeded {
            assert!(
                claimed.contains_key(id),
                "finished by the child without a claim: {job:?}"
            );
            unprinted_finishes += 1;
            finished.insert(id.clone());
        } else {
            let abandoned = job.error.as_ref().is_some_and(|e| e.kind == "abandoned");
            assert!(
                matches!(job.state, JobState::Queued | JobState::Running) || abandoned,
                "{job:?}"
            );
        }
    }
    assert!(
        unprinted_finishes <= 1,
        "{unprinted_finishes} finishes without an acknowledgement"
    );
    // Work goes on: the child's leases expire, and everything ends succeeded.
    tokio::time::sleep(CHILD_LEASE + Duration::from_millis(100)).await;
    let mut rerun = HashSet::new();
    while let Some(next) = storage
        .claim("after/2", Duration::from_secs(30))
        .await
        .unwrap()
    {
        rerun.insert(next.job.id.clone());
        storage
            .finish(&next.lease, json!({"after": true}))
            .await
            .unwrap();
    }
    // The one claim the child may have committed without living to print it.
    let mut unprinted_claims = 0;
    for id in &submitted {
        let job = storage.get(id).await.unwrap().unwrap();
        let child_claims = claimed.get(id).copied().unwrap_or(0);
        if child_claims >= atlas_store::MAX_ATTEMPTS && !finished.contains(id) {
            // The child itself outlived this job's three leases: abandoned, as it must be.
            assert_eq!(
                job.error.as_ref().map(|e| e.kind.as_str()),
                Some("abandoned")
            );
            continue;
        }
        let expected = if finished.contains(id) {
            assert!(
                !rerun.contains(id),
                "a finished job never runs again: {job:?}"
            );
            child_claims
        } else {
            child_claims + 1
        };
        if job.attempts == expected + 1 && !finished.contains(id) {
            unprinted_claims += 1;
        } else {
            assert_eq!(job.attempts, expected, "{job:?}");
        }
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    }
    assert!(
        unprinted_claims <= 1,
        "{unprinted_claims} claims without an acknowledgement"
    );
    let unfinished = claimed.keys().filter(|id| !finished.contains(*id)).count();
    eprintln!("{unfinished} jobs held by the killed child were re-run with attempts + 1");
    let stats = storage.queue_stats().await.unwrap();
    assert_eq!((stats.queued, stats.running), (0, 0));
}
