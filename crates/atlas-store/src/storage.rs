//! The storage trait that the service and the workers program against.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::types::*;
use crate::StoreError;

/// Durable jobs, sweeps and studies, shared by the service and any number of workers.
///
/// Object safe: hold it as `Arc<dyn Storage>` (from [`crate::open`]). Every method is
/// one transaction: an `Ok` answer means the change is durable. Leases follow contract
/// `service.md` section 3: a claim holds a job for `lease`; the worker renews it with
/// [`Storage::heartbeat`] (every third of the lease); an expired lease lets any worker
/// claim the job again with `attempts` + 1, and a job whose lease expired
/// [`MAX_ATTEMPTS`] times fails with error kind `abandoned`.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Answers when the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a job in state `queued` and wakes idle workers. With an idempotency key
    /// seen before, returns the earlier job (`created: false`) and stores nothing.
    async fn submit(&self, job: NewJob) -> Result<Submitted, StoreError>;

    /// Stores a sweep parent and one queued `scenario` job per scenario, atomically.
    async fn submit_sweep(&self, sweep: NewSweep) -> Result<Submitted, StoreError>;

    /// A job with its request, or `None` for an unknown id.
    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError>;

    /// A sweep's parent and counts, or `None` when `id` is not a sweep.
    async fn sweep_status(&self, id: &JobId) -> Result<Option<SweepStatus>, StoreError>;

    /// A page of jobs in id (creation) order, filtered. Walking the pages with `next`
    /// visits every job that existed when the walk began exactly once.
    async fn list(&self, query: &JobQuery) -> Result<JobPage, StoreError>;

    /// Claims the oldest claimable job (queued, or running with an expired lease) for
    /// `worker` (`host/pid`) for `lease`; `None` when there is none. Jobs whose lease
    /// expired for the last allowed time are failed (`abandoned`) on the way.
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Claimed>, StoreError>;

    /// Renews a lease for `lease` from now, or says the job was cancelled or lost.
    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> Result<Heartbeat, StoreError>;

    /// Finishes the job with its result JSON. The first finished attempt wins.
    async fn finish(&self, lease: &Lease, result: Value) -> Result<Finished, StoreError>;

    /// Finishes the job as failed. The first finished attempt wins.
    async fn fail(&self, lease: &Lease, error: JobError) -> Result<Finished, StoreError>;

    /// Hands a held job back to the queue (graceful shutdown): it is queued again and
    /// this attempt does not count. `false` when this attempt no longer held it.
    async fn requeue(&self, lease: &Lease) -> Result<bool, StoreError>;

    /// Cancels a job (and, for a sweep, its unfinished scenarios). A queued job ends at
    /// once; a running one is marked `cancelled` and its worker learns it at its next
    /// heartbeat, then reports its best point with [`Storage::finish`]. A finished job
    /// is left as it is. `None` for an unknown id.
    async fn cancel(&self, id: &JobId) -> Result<Option<Job>, StoreError>;

    /// Queues a `failed` or `cancelled` job again from scratch (an operator's retry):
    /// its result, error, worker and lease are cleared and `attempts` starts again from
    /// 0. Only stand-alone jobs (`kind = job`): a sweep or one of its scenarios is
    /// submitted again instead. [`Retried::Refused`] says why a job was left as it is;
    /// `None` for an unknown id.
    async fn retry_job(&self, id: &JobId) -> Result<Option<Retried>, StoreError>;

    /// Stores the assembled result of a finished sweep (once; `false` if it already had
    /// one or is not a finished sweep).
    async fn set_sweep_result(&self, id: &JobId, result: Value) -> Result<bool, StoreError>;

    /// Queued and running counts (for metrics and the queue limit).
    async fn queue_stats(&self) -> Result<QueueStats, StoreError>;

    /// Waits until new work may be there (a job or trial queued anywhere, by any process
    /// on this storage) or `timeout` passes; `true` when woken by a notification. Idle
    /// workers call it between empty claims instead of polling hard; a wake-up may come
    /// without work (claim again) and work may come without a wake-up (expired leases),
    /// so keep the timeout finite (a few seconds).
    async fn wait_for_work(&self, timeout: Duration) -> bool;

    /// Creates a study with the searcher's initial state, at version 0.
    async fn create_study(&self, study: NewStudy) -> Result<Study, StoreError>;

    /// A study, or `None`.
    async fn get_study(&self, id: &StudyId) -> Result<Option<Study>, StoreError>;

    /// The "ask" step: writes the searcher's new state and queues `trials` (their
    /// params), atomically, if the study is still at `expected_version`; otherwise
    /// stores nothing and answers [`StudyUpdate::Conflict`]. So of several workers that
    /// ask at once exactly one batch is stored; the others reload and ask again.
    async fn update_study(
        &self,
        id: &StudyId,
        expected_version: i64,
        state: Value,
        trials: Vec<Value>,
    ) -> Result<StudyUpdate, StoreError>;

    /// Claims the oldest claimable trial (of `study`, or of any study) under a lease, as
    /// [`Storage::claim`] does for jobs.
    async fn claim_trial(
        &self,
        study: Option<&StudyId>,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedTrial>, StoreError>;

    /// Renews a trial's lease (never answers `Cancelled`).
    async fn heartbeat_trial(
        &self,
        lease: &TrialLease,
        duration: Duration,
    ) -> Result<Heartbeat, StoreError>;

    /// The "tell" step: stores a trial's value or failure. The first told attempt wins.
    async fn tell(&self, lease: &TrialLease, outcome: TrialOutcome) -> Result<Told, StoreError>;

    /// Hands a claimed trial back to the queue (this attempt does not count).
    async fn requeue_trial(&self, lease: &TrialLease) -> Result<bool, StoreError>;

    /// A study's trials in number order, filtered.
    async fn list_trials(
        &self,
        study: &StudyId,
        query: &TrialQuery,
    ) -> Result<Vec<Trial>, StoreError>;

    /// A study's trial counts by state.
    async fn trial_counts(&self, study: &StudyId) -> Result<TrialCounts, StoreError>;
}
