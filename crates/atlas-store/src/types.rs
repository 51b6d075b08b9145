//! The records the storage keeps and the requests and answers of [`crate::Storage`].

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StoreError;

/// How many claims a job or trial gets before it fails with error kind `abandoned`
/// (contract `service.md` section 3).
pub const MAX_ATTEMPTS: u32 = 3;

/// The largest page [`crate::Storage::list`] returns.
pub const MAX_PAGE: u32 = 1000;

fn next_ulid() -> ulid::Ulid {
    // One monotonic generator per process: ids made in one process sort in the order
    // they were made, even within one millisecond (so a sweep's children sort in
    // scenario order and a cursor walks them in that order).
    static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut guard = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let generator = guard.get_or_insert_with(ulid::Generator::new);
    // The generator fails only when 2^80 ids were made in one millisecond; a fresh
    // random id is then still unique, only not monotonic.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new id: a ULID (26 characters of Crockford base 32, sortable by time).
            pub fn generate() -> Self {
                Self(next_ulid().to_string())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = StoreError;

            /// Parses an id given by a client (a ULID, case-insensitive).
            fn from_str(text: &str) -> Result<Self, StoreError> {
                ulid::Ulid::from_string(text)
                    .map(|id| Self(id.to_string()))
                    .map_err(|e| StoreError::InvalidInput {
                        field: $what.into(),
                        reason: format!("`{text}` is not a valid id ({e})"),
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl $name {
            /// Wraps text read back from the database (already a valid id).
            pub(crate) fn from_stored(text: String) -> Self {
                Self(text)
            }
        }
    };
}

ulid_id!(
    /// The id of a job, sweep or scenario job.
    JobId,
    "id"
);
ulid_id!(
    /// The id of a study (a distributed black-box search).
    StudyId,
    "study"
);
ulid_id!(
    /// The id of one trial of a study.
    TrialId,
    "trial"
);

/// What a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// One optimization (`POST /v1/jobs`).
    Job,
    /// The parent of a sweep (`POST /v1/sweeps`); never claimed, it finishes when all
    /// its scenarios have.
    Sweep,
    /// One scenario of a sweep: a job with a parent.
    Scenario,
}

/// Where a job is in its life (contract `service.md` section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker under a lease.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled by a client (a running job keeps the best point its worker reports).
    Cancelled,
}

/// A trial's place in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Asked for, waiting for a worker to evaluate it.
    Queued,
    /// Being evaluated under a lease.
    Running,
    /// Evaluated: it has a value.
    Done,
    /// Its evaluation failed (or was abandoned after [`MAX_ATTEMPTS`] lost leases).
    Failed,
}

macro_rules! text_enum {
    ($name:ident, $field:literal, { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $name {
            /// The name stored in the database and written in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),*
                }
            }
        }

        impl FromStr for $name {
            type Err = StoreError;

            fn from_str(text: &str) -> Result<Self, StoreError> {
                match text {
                    $($text => Ok(Self::$variant),)*
                    other => Err(StoreError::InvalidInput {
                        field: $field.into(),
                        reason: format!(
                            "unknown {} `{other}` (expected one of: {})",
                            $field,
                            [$($text),*].join(", ")
                        ),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(JobKind, "kind", { Job => "job", Sweep => "sweep", Scenario => "scenario" });
text_enum!(JobState, "state", {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
});
text_enum!(TrialState, "state", {
    Queued => "queued",
    Running => "running",
    Done => "done",
    Failed => "failed",
});

impl JobState {
    /// Whether the job will not change state again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// The error of a failed job: `{"kind", "message", "field"?}` as in the HTTP contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// A short machine-readable kind, e.g. `infeasible`, `internal`, `abandoned`.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// The field of the request at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl JobError {
    /// An error with a kind and a message and no field.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            field: None,
        }
    }
}

/// A stored job, serialized as the contract's job JSON (`service.md` section 2) plus
/// `kind` and, for scenarios, `parent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id (a ULID).
    pub id: JobId,
    /// Job, sweep parent or scenario.
    pub kind: JobKind,
    /// The sweep a scenario belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<JobId>,
    /// Where it is in its life.
    pub state: JobState,
    /// The optimizer the request names (as given at submission).
    pub optimizer: Option<String>,
    /// The problem's name (as given at submission).
    pub problem: Option<String>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its current (or last) attempt was claimed.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// How many times it was claimed.
    pub attempts: u32,
    /// The worker (`host/pid`) that holds it, or that produced its result.
    pub worker: Option<String>,
    /// The result JSON once succeeded (or the best point of a cancelled running job).
    pub result: Option<Value>,
    /// The error once failed.
    pub error: Option<JobError>,
    /// The request as submitted. Loaded by [`crate::Storage::get`] and in a claim; `None`
    /// in list pages (to keep them small). Not part of the job JSON.
    #[serde(skip)]
    pub request: Option<Value>,
}

/// A job to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The request JSON (what the worker needs to run it).
    pub request: Value,
    /// The optimizer name, shown in the job JSON.
    pub optimizer: Option<String>,
    /// The problem's name, shown in the job JSON.
    pub problem: Option<String>,
    /// A client's key: submitting twice with the same key gives the first job back.
    pub idempotency_key: Option<String>,
}

impl NewJob {
    /// A job with this request and nothing else.
    pub fn new(request: Value) -> Self {
        Self {
            request,
            optimizer: None,
            problem: None,
            idempotency_key: None,
        }
    }
}

/// One scenario of a sweep to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScenario {
    /// The scenario's request JSON.
    pub request: Value,
    /// The optimizer name, shown in the job JSON.
    pub optimizer: Option<String>,
    /// The scenario's problem name (e.g. `budget=2000000`).
    pub problem: Option<String>,
}

/// A sweep to submit: a parent plus one child job per scenario, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSweep {
    /// The sweep request JSON (kept on the parent).
    pub request: Value,
    /// The optimizer name.
    pub optimizer: Option<String>,
    /// The base problem's name.
    pub problem: Option<String>,
    /// The scenarios, in the order the sweep result lists them.
    pub scenarios: Vec<NewScenario>,
    /// A client's key, as for [`NewJob::idempotency_key`].
    pub idempotency_key: Option<String>,
}

/// The answer to a submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// The stored job (the earlier one when the idempotency key was seen before).
    pub job: Job,
    /// `false` when an earlier job with the same idempotency key was returned.
    pub created: bool,
}

/// A worker's hold on a job: returned by a claim, handed back to heartbeat, finish,
/// fail and requeue. The attempt number identifies the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The job held.
    pub job: JobId,
    /// Which attempt this is (1 for the first claim).
    pub attempt: u32,
    /// The worker holding it (`host/pid`).
    pub worker: String,
    /// When the lease runs out unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// A job claimed by a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The job, with its request.
    pub job: Job,
    /// The lease to renew and to finish with.
    pub lease: Lease,
}

/// The answer to [`crate::Storage::retry_job`].
#[derive(Debug, Clone, PartialEq)]
pub enum Retried {
    /// The job is queued again (shown as it is now).
    Queued(Job),
    /// The job was left as it is: it is not finished as failed or cancelled, or it is a
    /// sweep or a scenario.
    Refused {
        /// The job as it is.
        job: Job,
        /// Why, for the operator.
        reason: String,
    },
}

impl Retried {
    /// Why a job in `state` of `kind` cannot be retried, or `None` when it can.
    pub fn refusal(kind: JobKind, state: JobState) -> Option<String> {
        if kind != JobKind::Job {
            return Some(format!(
                "a {} cannot be retried on its own: submit the sweep again",
                kind.as_str()
            ));
        }
        match state {
            JobState::Failed | JobState::Cancelled => None,
            s => Some(format!(
                "the job is {s}: only failed or cancelled jobs are retried"
            )),
        }
    }
}

/// The answer to a heartbeat (of a job or a trial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease now runs until this time.
    Renewed(DateTime<Utc>),
    /// The job was cancelled: stop it and finish with the best point so far.
    Cancelled,
    /// This attempt no longer holds the job: it finished, or its lease expired and
    /// another worker claimed it. Stopping is wise; a result reported anyway is still
    /// kept if no other attempt has finished first.
    Lost,
}

/// The answer to finishing a job (or a trial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// This attempt's outcome is the stored one. `state` is the job's state now
    /// (`cancelled` when it had been cancelled while running: its result is kept as
    /// its best point). `sweep_completed` names the sweep parent whose last scenario
    /// this was: the caller assembles the sweep result and stores it with
    /// [`crate::Storage::set_sweep_result`].
    Recorded {
        /// The job's state now.
        state: JobState,
        /// The sweep that this finish completed.
        sweep_completed: Option<JobId>,
    },
    /// Another attempt finished first (or the job was cancelled and already has its
    /// result, or was abandoned): this outcome was discarded.
    Discarded {
        /// The job's state now.
        state: JobState,
    },
}

/// A filter and a page position for [`crate::Storage::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<JobKind>,
    /// Only the scenarios of this sweep.
    pub parent: Option<JobId>,
    /// At most this many (1 to [`MAX_PAGE`]; `0` means 100).
    pub limit: u32,
    /// Start after this cursor (the `next` of the previous page).
    pub after: Option<String>,
}

/// One page of jobs, oldest first (in id order).
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// The jobs of this page (without their requests).
    pub jobs: Vec<Job>,
    /// The cursor of the next page, `None` on the last page.
    pub next: Option<String>,
}

/// Counts for metrics and the queue limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Jobs and scenarios waiting for a worker (sweep parents not counted).
    pub queued: u64,
    /// Jobs and scenarios held by a worker.
    pub running: u64,
}

/// A sweep's progress (`GET /v1/sweeps/{id}`).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepStatus {
    /// The parent job (its `result` is the sweep result once stored).
    pub job: Job,
    /// Number of scenarios.
    pub total: u32,
    /// Scenarios that succeeded.
    pub done: u32,
    /// Scenarios that failed.
    pub failed: u32,
    /// Scenarios that were cancelled.
    pub cancelled: u32,
}

/// A study: the shared state of one distributed black-box search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// Its id.
    pub id: StudyId,
    /// The job it serves, if any.
    pub job: Option<JobId>,
    /// The searcher's serialized ask/tell state, owned by the caller.
    pub state: Value,
    /// Bumped by every [`crate::Storage::update_study`]; the optimistic-concurrency check.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its state was last written.
    pub updated_at: DateTime<Utc>,
}

/// A study to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStudy {
    /// The job it serves, if any.
    pub job: Option<JobId>,
    /// The searcher's initial state.
    pub state: Value,
}

/// The answer to [`crate::Storage::update_study`].
#[derive(Debug, Clone, PartialEq)]
pub enum StudyUpdate {
    /// The state was written and the trials queued; the study is at `version` now.
    Updated {
        /// The new version.
        version: i64,
        /// The trials queued, in the order given.
        trials: Vec<Trial>,
    },
    /// Another writer updated the study first: reload it and ask again.
    Conflict {
        /// The version stored now.
        current: i64,
    },
}

/// One trial of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Its id.
    pub id: TrialId,
    /// The study it belongs to.
    pub study: StudyId,
    /// Its number within the study (0, 1, 2, ... in the order asked).
    pub number: i64,
    /// The point to evaluate, as the searcher wrote it.
    pub params: Value,
    /// Where it is.
    pub state: TrialState,
    /// The objective value once done.
    pub value: Option<f64>,
    /// Extra data the evaluator reported with the value (or the failure message).
    pub detail: Option<Value>,
    /// How many times it was claimed.
    pub attempts: u32,
    /// The worker holding it, or that evaluated it.
    pub worker: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When its current (or last) evaluation started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was told.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A worker's hold on a trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialLease {
    /// The trial held.
    pub trial: TrialId,
    /// Its study.
    pub study: StudyId,
    /// Which attempt this is (1 for the first claim).
    pub attempt: u32,
    /// The worker holding it.
    pub worker: String,
    /// When the lease runs out unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// A trial claimed by a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTrial {
    /// The trial.
    pub trial: Trial,
    /// The lease to renew and to tell with.
    pub lease: TrialLease,
}

/// What a worker tells about a trial.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialOutcome {
    /// The objective value, with optional extra data.
    Value(f64, Option<Value>),
    /// The evaluation failed.
    Failed(JobError),
}

/// The answer to [`crate::Storage::tell`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// This outcome is the trial's stored outcome.
    Recorded,
    /// Another attempt told first (or the trial was abandoned): discarded.
    Discarded,
}

/// A trial filter for [`crate::Storage::list_trials`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrialQuery {
    /// Only trials in this state.
    pub state: Option<TrialState>,
    /// Only trials numbered above this one (to read only what was told since).
    pub after_number: Option<i64>,
    /// At most this many (1 to [`MAX_PAGE`]; `0` means [`MAX_PAGE`]).
    pub limit: u32,
}

/// A study's trial counts: the caller uses `running` (and `queued`) for TPE's
/// constant-liar strategy and to decide when to ask for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrialCounts {
    /// Asked, not yet claimed.
    pub queued: u64,
    /// Being evaluated.
    pub running: u64,
    /// Told with a value.
    pub done: u64,
    /// Failed or abandoned.
    pub failed: u64,
}

pub(crate) fn page_limit(limit: u32, default: u32) -> Result<i64, StoreError> {
    match limit {
        0 => Ok(i64::from(default)),
        l if l <= MAX_PAGE => Ok(i64::from(l)),
        l => Err(StoreError::InvalidInput {
            field: "limit".into(),
            reason: format!("{l} is over the largest page, {MAX_PAGE}"),
        }),
    }
}

/// Checks a cursor given by a client: a cursor is the id of the last job of a page.
pub(crate) fn parse_cursor(after: &Option<String>) -> Result<Option<String>, StoreError> {
    after
        .as_deref()
        .map(|text| {
            text.parse::<JobId>()
                .map(|id| id.0)
                .map_err(|_| StoreError::InvalidInput {
                    field: "after".into(),
                    reason: format!("`{text}` is not a cursor returned by this service"),
                })
        })
        .transpose()
}

/// The sweep counter a scenario that ended in `state` adds to.
pub(crate) fn child_column(state: JobState) -> &'static str {
    match state {
        JobState::Succeeded => "done",
        JobState::Cancelled => "cancelled",
        _ => "failed",
    }
}

/// The statement that puts a held job or trial back in the queue (the same text for
/// both backends: `$1` id, `$2` attempt, `$3` worker); the attempt does not count.
pub(crate) fn hand_back_sql(table: &str) -> String {
    format!(
        "UPDATE {table} SET state = 'queued', attempts = attempts - 1, worker = NULL, \
         lease_expires_at = NULL, started_at = NULL \
         WHERE id = $1 AND attempts = $2 AND worker = $3 AND state = 'running'"
    )
}

/// The error for an id that names nothing stored.
pub(crate) fn unknown(field: &str, id: impl fmt::Display) -> StoreError {
    StoreError::InvalidInput {
        field: field.into(),
        reason: format!("no {field} {id}"),
    }
}

impl TrialOutcome {
    /// The stored form: state, value, detail (a failure's error as JSON).
    pub(crate) fn parts(&self) -> (TrialState, Option<f64>, Option<Value>) {
        match self {
            TrialOutcome::Value(value, detail) => (TrialState::Done, Some(*value), detail.clone()),
            TrialOutcome::Failed(error) => {
                (TrialState::Failed, None, serde_json::to_value(error).ok())
            }
        }
    }
}

/// A finished sweep's state: succeeded when at least one scenario did.
pub(crate) fn sweep_outcome(done: i64) -> (JobState, Option<JobError>) {
    if done > 0 {
        (JobState::Succeeded, None)
    } else {
        (
            JobState::Failed,
            Some(JobError::new(
                "scenarios_failed",
                "no scenario of the sweep succeeded",
            )),
        )
    }
}

/// Cuts a page of `limit + 1` rows to `limit` and makes its cursor.
pub(crate) fn page_from_rows(
    jobs: impl Iterator<Item = Result<Job, StoreError>>,
    limit: i64,
) -> Result<JobPage, StoreError> {
    let mut jobs = jobs.collect::<Result<Vec<_>, _>>()?;
    let next = if jobs.len() as i64 > limit {
        jobs.truncate(limit as usize);
        jobs.last().map(|job| job.id.to_string())
    } else {
        None
    };
    Ok(JobPage { jobs, next })
}
