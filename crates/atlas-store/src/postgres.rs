//! Shared storage in PostgreSQL, for `atlas worker` processes on many machines.
//!
//! - A claim is ONE statement: `UPDATE ... WHERE id = COALESCE((expired lease ... FOR
//!   UPDATE SKIP LOCKED), (oldest queued ... FOR UPDATE SKIP LOCKED))`, each branch
//!   served by a partial index that holds only queued (or only running) rows, so its
//!   cost does not grow with the number of finished jobs.
//! - Lease times come from the database clock (`now()`), so workers on machines whose
//!   clocks disagree still agree on when a lease has expired.
//! - A trigger sends `NOTIFY atlas_work` whenever a job or trial becomes queued; one
//!   `LISTEN` connection per storage wakes the idle workers of its process.
//! - A bounded pool; every operation retries with exponential backoff (50 ms doubling
//!   to 2 s) while the server cannot be reached, up to
//!   [`StoreOptions::reconnect_timeout`]. Every operation is safe to retry: ids are
//!   made before the first try, and a finish that was committed but whose answer was
//!   lost is recognised by its attempt number.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};
use tokio::task::JoinHandle;

use crate::error::{corrupt, db_error};
use crate::signal::WorkSignal;
use crate::types::*;
use crate::{redact, Storage, StoreError, StoreOptions, SCHEMA_VERSION};

/// The channel of the wake-up notifications.
const CHANNEL: &str = "atlas_work";

/// The advisory lock key that serializes migrations of concurrently starting processes.
const MIGRATION_LOCK: i64 = 0x0A71_A550_0001;

/// The migrations, in order; entry `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE atlas_jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('job', 'sweep', 'scenario')),
    parent_id TEXT REFERENCES atlas_jobs (id),
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    optimizer TEXT,
    problem TEXT,
    request JSONB NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    lease_expires_at TIMESTAMPTZ,
    finished_attempt INTEGER,
    result JSONB,
    error JSONB,
    total INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0
);
-- A claim reads only queued (or leased) rows: finished jobs are in neither index.
CREATE INDEX atlas_jobs_queued ON atlas_jobs (seq) WHERE state = 'queued' AND kind <> 'sweep';
CREATE INDEX atlas_jobs_leased ON atlas_jobs (lease_expires_at) WHERE state = 'running' AND kind <> 'sweep';
CREATE INDEX atlas_jobs_parent ON atlas_jobs (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX atlas_jobs_state ON atlas_jobs (state, id);

CREATE TABLE atlas_studies (
    id TEXT PRIMARY KEY,
    job_id TEXT,
    state JSONB NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    next_number BIGINT NOT NULL DEFAULT 0,
    done BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE atlas_trials (
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id TEXT PRIMARY KEY,
    study_id TEXT NOT NULL REFERENCES atlas_studies (id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    params JSONB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    value DOUBLE PRECISION,
    detail JSONB,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    lease_expires_at TIMESTAMPTZ,
    finished_attempt INTEGER,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    UNIQUE (study_id, number)
);
CREATE INDEX atlas_trials_queued ON atlas_trials (seq) WHERE state = 'queued';
CREATE INDEX atlas_trials_queued_study ON atlas_trials (study_id, seq) WHERE state = 'queued';
CREATE INDEX atlas_trials_leased ON atlas_trials (lease_expires_at) WHERE state = 'running';
CREATE INDEX atlas_trials_study_state ON atlas_trials (study_id, state, number);

CREATE FUNCTION atlas_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('atlas_work', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER atlas_jobs_notify AFTER INSERT OR UPDATE OF state ON atlas_jobs
    FOR EACH ROW WHEN (NEW.state = 'queued' AND NEW.kind <> 'sweep')
    EXECUTE FUNCTION atlas_notify_work();
CREATE TRIGGER atlas_trials_notify AFTER INSERT OR UPDATE OF state ON atlas_trials
    FOR EACH ROW WHEN (NEW.state = 'queued')
    EXECUTE FUNCTION atlas_notify_work();
"#];

const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

const JOB_COLUMNS: &str = "id, kind, parent_id, state, optimizer, problem, created_at, \
     started_at, finished_at, attempts, worker, result, error";

const TRIAL_COLUMNS: &str = "id, study_id, number, params, state, value, detail, attempts, \
     worker, created_at, started_at, finished_at";

/// Claims and lease renewals commit without waiting for the WAL flush (the
/// `synchronous_commit = off` of their own transaction only). They acknowledge no work:
/// if the server crashes and loses one, the job or trial is simply claimable again (a
/// re-run, which finish-once makes harmless). Submissions, finishes, tells, cancels and
/// study updates keep the server's durable commit.
const ASYNC_COMMIT: &str = "async_commit AS (SELECT set_config('synchronous_commit', 'off', true))";

/// How often a process looks for jobs whose lease expired for the last allowed time.
const REAP_EVERY_MS: i64 = 1000;

type Tx = Transaction<'static, Postgres>;

/// Storage in a PostgreSQL database. See the module docs.
#[derive(Debug)]
pub struct PostgresStorage {
    pool: PgPool,
    signal: Arc<WorkSignal>,
    listener: JoinHandle<()>,
    reconnect_timeout: Duration,
    last_reap_ms: AtomicI64,
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(corrupt)
}

fn count(row: &PgRow, column: &str) -> Result<u32, StoreError> {
    let n: i32 = get(row, column)?;
    u32::try_from(n).map_err(|_| corrupt(format!("{column} = {n}")))
}

fn job_from_row(row: &PgRow, with_request: bool) -> Result<Job, StoreError> {
    let error: Option<Json<JobError>> = get(row, "error")?;
    let request: Option<Json<Value>> = if with_request {
        get(row, "request")?
    } else {
        None
    };
    let result: Option<Json<Value>> = get(row, "result")?;
    Ok(Job {
        id: JobId::from_stored(get(row, "id")?),
        kind: get::<String>(row, "kind")?.parse()?,
        parent: get::<Option<String>>(row, "parent_id")?.map(JobId::from_stored),
        state: get::<String>(row, "state")?.parse()?,
        optimizer: get(row, "optimizer")?,
        problem: get(row, "problem")?,
        created_at: get(row, "created_at")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
        attempts: count(row, "attempts")?,
        worker: get(row, "worker")?,
        result: result.map(|j| j.0),
        error: error.map(|j| j.0),
        request: request.map(|j| j.0),
    })
}

fn trial_from_row(row: &PgRow) -> Result<Trial, StoreError> {
    let detail: Option<Json<Value>> = get(row, "detail")?;
    Ok(Trial {
        id: TrialId::from_stored(get(row, "id")?),
        study: StudyId::from_stored(get(row, "study_id")?),
        number: get(row, "number")?,
        params: get::<Json<Value>>(row, "params")?.0,
        state: get::<String>(row, "state")?.parse()?,
        value: get(row, "value")?,
        detail: detail.map(|j| j.0),
        attempts: count(row, "attempts")?,
        worker: get(row, "worker")?,
        created_at: get(row, "created_at")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
    })
}

fn study_from_row(row: &PgRow) -> Result<Study, StoreError> {
    Ok(Study {
        id: StudyId::from_stored(get(row, "id")?),
        job: get::<Option<String>>(row, "job_id")?.map(JobId::from_stored),
        state: get::<Json<Value>>(row, "state")?.0,
        version: get(row, "version")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Keeps one `LISTEN atlas_work` connection open (re-opening it with backoff when the
/// server goes away) and rings the signal on every notification and every reconnect
/// (work queued while it was away would otherwise go unnoticed until a timeout).
async fn listen(pool: PgPool, signal: Arc<WorkSignal>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "storage: LISTEN connection failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        signal.ring();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => signal.ring(),
                // The connection dropped and was re-opened (channels re-subscribed).
                Ok(None) => signal.ring(),
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(%error, "storage: LISTEN connection lost; reconnecting");
                    break;
                }
            }
        }
    }
}

impl PostgresStorage {
    /// Opens `postgres://...` with the default options.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &StoreOptions::default()).await
    }

    /// Opens `postgres://USER@HOST:PORT/DB`, migrating the schema (concurrent starts
    /// are serialized by an advisory lock). A database from a newer schema is refused.
    /// One connection of the pool is kept for `LISTEN`.
    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect: sqlx::postgres::PgConnectOptions =
            url.parse()
                .map_err(|e: sqlx::Error| StoreError::InvalidUrl {
                    url: redact(url),
                    reason: e.to_string(),
                })?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            // No ping before each use (a round trip per operation): a connection that
            // died with a server restart fails its next query with an I/O error, is
            // dropped, and `retry` runs the operation again on a fresh one.
            .test_before_acquire(false)
            .connect_lazy_with(connect);
        let signal = Arc::new(WorkSignal::default());
        let storage = Self {
            listener: tokio::spawn(listen(pool.clone(), signal.clone())),
            pool,
            signal,
            reconnect_timeout: options.reconnect_timeout,
            last_reap_ms: AtomicI64::new(0),
        };
        let location = redact(url);
        storage.retry(|| storage.migrate(&location)).await?;
        Ok(storage)
    }

    /// Runs `op` until it succeeds, fails for a reason other than an unreachable
    /// server, or the reconnect timeout passes.
    async fn retry<T, F, Fut>(&self, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            match op().await {
                Err(StoreError::Unavailable(error)) if start.elapsed() < self.reconnect_timeout => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "storage: database unreachable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Puts a held job or trial back in the queue; this attempt does not count.
    async fn hand_back(
        &self,
        table: &str,
        id: &str,
        attempt: u32,
        worker: &str,
    ) -> Result<bool, StoreError> {
        let sql = &hand_back_sql(table);
        self.retry(|| async move {
            Ok(sqlx::query(sql)
                .bind(id)
                .bind(attempt as i32)
                .bind(worker)
                .execute(&self.pool)
                .await
                .map_err(db_error)?
                .rows_affected()
                > 0)
        })
        .await
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        self.pool.begin().await.map_err(db_error)
    }

    /// Boxed with an explicit `Send`: callers spawn `open` on a runtime, and the
    /// compiler cannot prove an unboxed transaction future `Send` there
    /// (rust-lang/rust#102211).
    fn migrate<'a>(
        &'a self,
        location: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS atlas_schema_version (\
                 version BIGINT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let found: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM atlas_schema_version",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            if found > SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    location: location.to_string(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            for (index, sql) in MIGRATIONS
                .iter()
                .enumerate()
                .skip(usize::try_from(found).unwrap_or(0))
            {
                sqlx::Executor::execute(&mut *tx, *sql)
                    .await
                    .map_err(db_error)?;
                sqlx::query("INSERT INTO atlas_schema_version (version) VALUES ($1)")
                    .bind(index as i64 + 1)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)
        })
    }

    async fn job_in(tx: &mut Tx, id: &str) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS}, request FROM atlas_jobs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?;
        row.map(|r| job_from_row(&r, true)).transpose()
    }

    /// Counts `n` scenarios that reached `state` on their sweep; when they were the
    /// last ones, finishes the sweep and returns its id.
    async fn count_children(
        tx: &mut Tx,
        parent: &str,
        state: JobState,
        n: i32,
    ) -> Result<Option<JobId>, StoreError> {
        let column = child_column(state);
        let sql = format!(
            "UPDATE atlas_jobs SET {column} = {column} + $2 WHERE id = $1 \
             RETURNING total, done, failed, cancelled, state"
        );
        let row = sqlx::query(&sql)
            .bind(parent)
            .bind(n)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let (total, done, failed, cancelled) = (
            count(&row, "total")?,
            count(&row, "done")?,
            count(&row, "failed")?,
            count(&row, "cancelled")?,
        );
        let parent_state: JobState = get::<String>(&row, "state")?.parse()?;
        if done + failed + cancelled < total || parent_state.is_terminal() {
            return Ok(None);
        }
        let (final_state, error) = sweep_outcome(i64::from(done));
        sqlx::query(
            "UPDATE atlas_jobs SET state = $1, error = $2, finished_at = now(), \
             started_at = COALESCE(started_at, now()) WHERE id = $3",
        )
        .bind(final_state.as_str())
        .bind(error.map(Json))
        .bind(parent)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        Ok(Some(JobId::from_stored(parent.to_string())))
    }

    /// Fails every job and trial whose lease expired for the last allowed time (at most
    /// once a second per process: it is a transaction, a claim is one statement).
    async fn reap_abandoned(&self) -> Result<(), StoreError> {
        let now = Utc::now().timestamp_millis();
        let last = self.last_reap_ms.load(Ordering::Relaxed);
        if now - last < REAP_EVERY_MS
            || self
                .last_reap_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "UPDATE atlas_jobs SET state = 'failed', finished_at = now(), lease_expires_at = NULL, \
             error = jsonb_build_object('kind', 'abandoned', 'message', \
               'abandoned after ' || attempts || ' attempts: the lease expired each time (last worker: ' \
               || COALESCE(worker, 'unknown') || ')') \
             WHERE state = 'running' AND kind <> 'sweep' AND lease_expires_at < now() \
             AND attempts >= $1 RETURNING parent_id",
        )
        .bind(MAX_ATTEMPTS as i32)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut parents: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<Option<String>, _>("parent_id").ok().flatten())
            .collect();
        parents.sort();
        for group in parents.chunk_by(|a, b| a == b) {
            Self::count_children(&mut tx, &group[0], JobState::Failed, group.len() as i32).await?;
        }
        sqlx::query(
            "WITH reaped AS (\
               UPDATE atlas_trials SET state = 'failed', finished_at = now(), lease_expires_at = NULL, \
               detail = jsonb_build_object('kind', 'abandoned', 'message', \
                 'abandoned after ' || attempts || ' attempts: the lease expired each time') \
               WHERE state = 'running' AND lease_expires_at < now() AND attempts >= $1 \
               RETURNING study_id), \
             counted AS (SELECT study_id, COUNT(*) AS n FROM reaped GROUP BY study_id) \
             UPDATE atlas_studies s SET failed = s.failed + counted.n FROM counted \
             WHERE s.id = counted.study_id",
        )
        .bind(MAX_ATTEMPTS as i32)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn submit_once(&self, id: &JobId, job: &NewJob) -> Result<Submitted, StoreError> {
        if let Some(key) = &job.idempotency_key {
            let sql =
                format!("SELECT {JOB_COLUMNS}, request FROM atlas_jobs WHERE idempotency_key = $1");
            if let Some(row) = sqlx::query(&sql)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?
            {
                let earlier = job_from_row(&row, true)?;
                let created = &earlier.id == id;
                return Ok(Submitted {
                    job: earlier,
                    created,
                });
            }
        }
        // ON CONFLICT: a retry after a commit whose answer was lost finds its own row.
        let sql = format!(
            "WITH inserted AS (\
               INSERT INTO atlas_jobs (id, kind, state, optimizer, problem, request, idempotency_key) \
               VALUES ($1, 'job', 'queued', $2, $3, $4, $5) ON CONFLICT DO NOTHING \
               RETURNING {JOB_COLUMNS}, request) \
             SELECT * FROM inserted UNION ALL \
             SELECT {JOB_COLUMNS}, request FROM atlas_jobs WHERE id = $1 OR idempotency_key = $5"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(&job.optimizer)
            .bind(&job.problem)
            .bind(Json(&job.request))
            .bind(&job.idempotency_key)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        let stored = job_from_row(&row, true)?;
        let created = &stored.id == id;
        Ok(Submitted {
            job: stored,
            created,
        })
    }

    async fn submit_sweep_once(
        &self,
        id: &JobId,
        sweep: &NewSweep,
    ) -> Result<Submitted, StoreError> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT {JOB_COLUMNS}, request FROM atlas_jobs WHERE id = $1 OR idempotency_key = $2"
        );
        if let Some(row) = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(&sweep.idempotency_key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
        {
            let earlier = job_from_row(&row, true)?;
            let created = &earlier.id == id;
            return Ok(Submitted {
                job: earlier,
                created,
            });
        }
        let total = sweep.scenarios.len() as i32;
        let empty = total == 0;
        sqlx::query(
            "INSERT INTO atlas_jobs (id, kind, state, optimizer, problem, request, idempotency_key, \
             total, started_at, finished_at) \
             VALUES ($1, 'sweep', $2, $3, $4, $5, $6, $7, \
             CASE WHEN $8 THEN now() END, CASE WHEN $8 THEN now() END)",
        )
        .bind(id.as_str())
        .bind(if empty { "succeeded" } else { "queued" })
        .bind(&sweep.optimizer)
        .bind(&sweep.problem)
        .bind(Json(&sweep.request))
        .bind(&sweep.idempotency_key)
        .bind(total)
        .bind(empty)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if !empty {
            // One statement for all scenarios: arrays of ids, optimizers, names and
            // requests, unnested in order (ids are made in order, so they sort so).
            let ids: Vec<String> = sweep
                .scenarios
                .iter()
                .map(|_| JobId::generate().to_string())
                .collect();
            let optimizers: Vec<Option<String>> = sweep
                .scenarios
                .iter()
                .map(|s| s.optimizer.clone())
                .collect();
            let problems: Vec<Option<String>> =
                sweep.scenarios.iter().map(|s| s.problem.clone()).collect();
            let requests: Vec<String> = sweep
                .scenarios
                .iter()
                .map(|s| s.request.to_string())
                .collect();
            sqlx::query(
                "INSERT INTO atlas_jobs (id, kind, parent_id, state, optimizer, problem, request) \
                 SELECT s.id, 'scenario', $1, 'queued', s.optimizer, s.problem, s.request::jsonb \
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) \
                   WITH ORDINALITY AS s (id, optimizer, problem, request, n) ORDER BY s.n",
            )
            .bind(id.as_str())
            .bind(&ids)
            .bind(&optimizers)
            .bind(&problems)
            .bind(&requests)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        let job = Self::job_in(&mut tx, id.as_str())
            .await?
            .ok_or_else(|| corrupt("sweep vanished"))?;
        tx.commit().await.map_err(db_error)?;
        Ok(Submitted { job, created: true })
    }

    async fn claim_once(
        &self,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        self.reap_abandoned().await?;
        let sql = format!(
            "WITH claimed AS (\
               UPDATE atlas_jobs SET state = 'running', attempts = attempts + 1, worker = $1, \
               lease_expires_at = now() + make_interval(secs => $2), started_at = now() \
               WHERE id = COALESCE(\
                 (SELECT id FROM atlas_jobs WHERE state = 'running' AND kind <> 'sweep' \
                  AND lease_expires_at < now() AND attempts < $3 \
                  ORDER BY lease_expires_at LIMIT 1 FOR UPDATE SKIP LOCKED), \
                 (SELECT id FROM atlas_jobs WHERE state = 'queued' AND kind <> 'sweep' \
                  ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)) \
               RETURNING {JOB_COLUMNS}, request, lease_expires_at), \
             parent AS (\
               UPDATE atlas_jobs p SET state = 'running', started_at = now() FROM claimed \
               WHERE p.id = claimed.parent_id AND p.state = 'queued'), \
             {ASYNC_COMMIT} \
             SELECT claimed.* FROM claimed, async_commit"
        );
        let row = sqlx::query(&sql)
            .bind(worker)
            .bind(seconds(lease))
            .bind(MAX_ATTEMPTS as i32)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let job = job_from_row(&row, true)?;
        let lease = Lease {
            job: job.id.clone(),
            attempt: job.attempts,
            worker: worker.to_string(),
            expires_at: get(&row, "lease_expires_at")?,
        };
        Ok(Some(Claimed { job, lease }))
    }

    async fn finish_once(
        &self,
        lease: &Lease,
        state: JobState,
        result: Option<&Value>,
        error: Option<&JobError>,
    ) -> Result<Finished, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE atlas_jobs SET state = $1, result = $2, error = $3, finished_at = now(), \
             finished_attempt = $4, worker = $5, lease_expires_at = NULL \
             WHERE id = $6 AND state = 'running' AND attempts >= $4 RETURNING parent_id",
        )
        .bind(state.as_str())
        .bind(result.map(Json))
        .bind(error.map(Json))
        .bind(lease.attempt as i32)
        .bind(&lease.worker)
        .bind(lease.job.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let outcome = if let Some(row) = row {
            let sweep_completed = match get::<Option<String>>(&row, "parent_id")? {
                Some(parent) => Self::count_children(&mut tx, &parent, state, 1).await?,
                None => None,
            };
            Finished::Recorded {
                state,
                sweep_completed,
            }
        } else {
            // Not running: cancelled while running (keep its best point once), already
            // finished by this very attempt (a retried call), or finished by another.
            let row = sqlx::query(
                "WITH kept AS (\
                   UPDATE atlas_jobs SET result = $1, finished_attempt = $2, worker = $3, \
                   lease_expires_at = NULL \
                   WHERE id = $4 AND state = 'cancelled' AND finished_attempt IS NULL \
                   AND result IS NULL AND $1::jsonb IS NOT NULL AND attempts >= $2 RETURNING id) \
                 SELECT state, finished_attempt, EXISTS (SELECT 1 FROM kept) AS kept \
                 FROM atlas_jobs WHERE id = $4",
            )
            .bind(result.map(Json))
            .bind(lease.attempt as i32)
            .bind(&lease.worker)
            .bind(lease.job.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            let Some(row) = row else {
                return Err(unknown("job", &lease.job));
            };
            let now_state: JobState = get::<String>(&row, "state")?.parse()?;
            let finished_attempt: Option<i32> = get(&row, "finished_attempt")?;
            let kept: bool = get(&row, "kept")?;
            if kept || finished_attempt == Some(lease.attempt as i32) {
                Finished::Recorded {
                    state: now_state,
                    sweep_completed: None,
                }
            } else {
                Finished::Discarded { state: now_state }
            }
        };
        tx.commit().await.map_err(db_error)?;
        Ok(outcome)
    }

    async fn cancel_once(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        let mut tx = self.begin().await?;
        // Lock the row first so a concurrent finish or claim waits for this decision.
        let locked =
            sqlx::query("SELECT kind, state, parent_id FROM atlas_jobs WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        let Some(locked) = locked else {
            return Ok(None);
        };
        let kind: JobKind = get::<String>(&locked, "kind")?.parse()?;
        let state: JobState = get::<String>(&locked, "state")?.parse()?;
        let parent: Option<String> = get(&locked, "parent_id")?;
        if !state.is_terminal() {
            if kind == JobKind::Sweep {
                let cancelled = sqlx::query(
                    "UPDATE atlas_jobs SET state = 'cancelled', finished_at = now() \
                     WHERE parent_id = $1 AND state IN ('queued', 'running')",
                )
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
                sqlx::query(
                    "UPDATE atlas_jobs SET state = 'cancelled', finished_at = now(), \
                     cancelled = cancelled + $1 WHERE id = $2",
                )
                .bind(cancelled as i32)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            } else {
                sqlx::query(
                    "UPDATE atlas_jobs SET state = 'cancelled', finished_at = now() WHERE id = $1",
                )
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if let Some(parent) = parent {
                    Self::count_children(&mut tx, &parent, JobState::Cancelled, 1).await?;
                }
            }
        }
        let job = Self::job_in(&mut tx, id.as_str()).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(job)
    }

    async fn retry_once(&self, id: &JobId) -> Result<Option<Retried>, StoreError> {
        let mut tx = self.begin().await?;
        let locked = sqlx::query("SELECT kind, state FROM atlas_jobs WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let Some(locked) = locked else {
            return Ok(None);
        };
        let kind: JobKind = get::<String>(&locked, "kind")?.parse()?;
        let state: JobState = get::<String>(&locked, "state")?.parse()?;
        let refusal = Retried::refusal(kind, state);
        if refusal.is_none() {
            sqlx::query(
                "UPDATE atlas_jobs SET state = 'queued', attempts = 0, worker = NULL, \
                 lease_expires_at = NULL, started_at = NULL, finished_at = NULL, \
                 finished_attempt = NULL, result = NULL, error = NULL WHERE id = $1",
            )
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        let Some(job) = Self::job_in(&mut tx, id.as_str()).await? else {
            return Ok(None);
        };
        tx.commit().await.map_err(db_error)?;
        Ok(Some(match refusal {
            None => Retried::Queued(job),
            Some(reason) => Retried::Refused { job, reason },
        }))
    }

    async fn update_study_once(
        &self,
        id: &StudyId,
        expected_version: i64,
        state: &Value,
        trials: &[Value],
        trial_ids: &[String],
    ) -> Result<StudyUpdate, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE atlas_studies SET state = $1, version = version + 1, updated_at = now(), \
             next_number = next_number + $2 WHERE id = $3 AND version = $4 \
             RETURNING version, next_number",
        )
        .bind(Json(state))
        .bind(trials.len() as i64)
        .bind(id.as_str())
        .bind(expected_version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            let current: Option<i64> =
                sqlx::query_scalar("SELECT version FROM atlas_studies WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
            return match current {
                Some(current) => Ok(StudyUpdate::Conflict { current }),
                None => Err(unknown("study", id)),
            };
        };
        let version: i64 = get(&row, "version")?;
        let first = get::<i64>(&row, "next_number")? - trials.len() as i64;
        let params: Vec<String> = trials.iter().map(Value::to_string).collect();
        let sql = format!(
            "INSERT INTO atlas_trials (id, study_id, number, params, state) \
             SELECT t.id, $1, $2 + t.n - 1, t.params::jsonb, 'queued' \
             FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS t (id, params, n) \
             ORDER BY t.n RETURNING {TRIAL_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(first)
            .bind(trial_ids)
            .bind(&params)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let mut stored = rows
            .iter()
            .map(trial_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        stored.sort_by_key(|t| t.number);
        Ok(StudyUpdate::Updated {
            version,
            trials: stored,
        })
    }

    async fn tell_once(
        &self,
        lease: &TrialLease,
        state: TrialState,
        value: Option<f64>,
        detail: Option<&Value>,
    ) -> Result<Told, StoreError> {
        let column = if state == TrialState::Done {
            "done"
        } else {
            "failed"
        };
        let sql = format!(
            "WITH told AS (\
               UPDATE atlas_trials SET state = $1, value = $2, detail = $3, finished_at = now(), \
               finished_attempt = $4, worker = $5, lease_expires_at = NULL \
               WHERE id = $6 AND state = 'running' AND attempts >= $4 RETURNING study_id), \
             counted AS (\
               UPDATE atlas_studies s SET {column} = s.{column} + 1 FROM told \
               WHERE s.id = told.study_id RETURNING s.id) \
             SELECT EXISTS (SELECT 1 FROM counted) AS told, \
               (SELECT finished_attempt FROM atlas_trials WHERE id = $6) AS finished_attempt"
        );
        let row = sqlx::query(&sql)
            .bind(state.as_str())
            .bind(value)
            .bind(detail.map(Json))
            .bind(lease.attempt as i32)
            .bind(&lease.worker)
            .bind(lease.trial.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        let told: bool = get(&row, "told")?;
        // The sub-select sees the row as it was before this statement: a retry of a
        // told that was committed finds its own attempt there.
        let finished_attempt: Option<i32> = get(&row, "finished_attempt")?;
        Ok(if told || finished_attempt == Some(lease.attempt as i32) {
            Told::Recorded
        } else {
            Told::Discarded
        })
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // No retry: readiness reports the state now.
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn submit(&self, job: NewJob) -> Result<Submitted, StoreError> {
        let id = JobId::generate();
        self.retry(|| self.submit_once(&id, &job)).await
    }

    async fn submit_sweep(&self, sweep: NewSweep) -> Result<Submitted, StoreError> {
        let id = JobId::generate();
        self.retry(|| self.submit_sweep_once(&id, &sweep)).await
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        let sql = &format!("SELECT {JOB_COLUMNS}, request FROM atlas_jobs WHERE id = $1");
        self.retry(|| async move {
            let row = sqlx::query(sql)
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            row.map(|r| job_from_row(&r, true)).transpose()
        })
        .await
    }

    async fn sweep_status(&self, id: &JobId) -> Result<Option<SweepStatus>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS}, request, total, done, failed, cancelled FROM atlas_jobs \
             WHERE id = $1 AND kind = 'sweep'"
        );
        let sql = &sql;
        self.retry(|| async move {
            let row = sqlx::query(sql)
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            row.map(|r| {
                Ok(SweepStatus {
                    job: job_from_row(&r, true)?,
                    total: count(&r, "total")?,
                    done: count(&r, "done")?,
                    failed: count(&r, "failed")?,
                    cancelled: count(&r, "cancelled")?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn list(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        let limit = page_limit(query.limit, 100)?;
        let after = parse_cursor(&query.after)?;
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM atlas_jobs \
             WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR kind = $2) \
             AND ($3::text IS NULL OR parent_id = $3) AND ($4::text IS NULL OR id > $4) \
             ORDER BY id LIMIT $5"
        );
        let (sql, after) = (&sql, after.as_deref());
        self.retry(|| async move {
            let rows = sqlx::query(sql)
                .bind(query.state.map(JobState::as_str))
                .bind(query.kind.map(JobKind::as_str))
                .bind(query.parent.as_ref().map(JobId::as_str))
                .bind(after)
                .bind(limit + 1)
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            page_from_rows(rows.iter().map(|r| job_from_row(r, false)), limit)
        })
        .await
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Claimed>, StoreError> {
        self.retry(|| self.claim_once(worker, lease)).await
    }

    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> Result<Heartbeat, StoreError> {
        self.retry(|| async move {
            let row = sqlx::query(&format!(
                "WITH renewed AS (\
                   UPDATE atlas_jobs SET lease_expires_at = CASE WHEN state = 'running' \
                   THEN now() + make_interval(secs => $1) ELSE lease_expires_at END \
                   WHERE id = $2 AND attempts = $3 AND worker = $4 \
                   AND state IN ('running', 'cancelled') AND finished_attempt IS NULL \
                   RETURNING state, lease_expires_at), {ASYNC_COMMIT} \
                 SELECT renewed.* FROM renewed, async_commit"
            ))
            .bind(seconds(duration))
            .bind(lease.job.as_str())
            .bind(lease.attempt as i32)
            .bind(&lease.worker)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            let Some(row) = row else {
                return Ok(Heartbeat::Lost);
            };
            Ok(match get::<String>(&row, "state")?.as_str() {
                "running" => Heartbeat::Renewed(get::<DateTime<Utc>>(&row, "lease_expires_at")?),
                _ => Heartbeat::Cancelled,
            })
        })
        .await
    }

    async fn finish(&self, lease: &Lease, result: Value) -> Result<Finished, StoreError> {
        self.retry(|| self.finish_once(lease, JobState::Succeeded, Some(&result), None))
            .await
    }

    async fn fail(&self, lease: &Lease, error: JobError) -> Result<Finished, StoreError> {
        self.retry(|| self.finish_once(lease, JobState::Failed, None, Some(&error)))
            .await
    }

    async fn requeue(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.hand_back(
            "atlas_jobs",
            lease.job.as_str(),
            lease.attempt,
            &lease.worker,
        )
        .await
    }

    async fn cancel(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        self.retry(|| self.cancel_once(id)).await
    }

    async fn retry_job(&self, id: &JobId) -> Result<Option<Retried>, StoreError> {
        self.retry(|| self.retry_once(id)).await
    }

    async fn set_sweep_result(&self, id: &JobId, result: Value) -> Result<bool, StoreError> {
        let result = &result;
        self.retry(|| async move {
            Ok(sqlx::query(
                "UPDATE atlas_jobs SET result = $1 WHERE id = $2 AND kind = 'sweep' \
                 AND state IN ('succeeded', 'failed') AND result IS NULL",
            )
            .bind(Json(result))
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected()
                > 0)
        })
        .await
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        self.retry(|| async move {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM atlas_jobs WHERE state = 'queued' AND kind <> 'sweep') AS queued, \
                 (SELECT COUNT(*) FROM atlas_jobs WHERE state = 'running' AND kind <> 'sweep') AS running",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(QueueStats {
                queued: get::<i64>(&row, "queued")?.max(0) as u64,
                running: get::<i64>(&row, "running")?.max(0) as u64,
            })
        })
        .await
    }

    async fn wait_for_work(&self, timeout: Duration) -> bool {
        self.signal.wait(timeout).await
    }

    async fn create_study(&self, study: NewStudy) -> Result<Study, StoreError> {
        let (id, study) = (&StudyId::generate(), &study);
        self.retry(|| async move {
            let row = sqlx::query(
                "WITH inserted AS (\
                   INSERT INTO atlas_studies (id, job_id, state) VALUES ($1, $2, $3) \
                   ON CONFLICT DO NOTHING RETURNING id, job_id, state, version, created_at, updated_at) \
                 SELECT * FROM inserted UNION ALL \
                 SELECT id, job_id, state, version, created_at, updated_at FROM atlas_studies WHERE id = $1",
            )
            .bind(id.as_str())
            .bind(study.job.as_ref().map(JobId::as_str))
            .bind(Json(&study.state))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
            study_from_row(&row)
        })
        .await
    }

    async fn get_study(&self, id: &StudyId) -> Result<Option<Study>, StoreError> {
        self.retry(|| async move {
            let row = sqlx::query(
                "SELECT id, job_id, state, version, created_at, updated_at FROM atlas_studies WHERE id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            row.map(|r| study_from_row(&r)).transpose()
        })
        .await
    }

    async fn update_study(
        &self,
        id: &StudyId,
        expected_version: i64,
        state: Value,
        trials: Vec<Value>,
    ) -> Result<StudyUpdate, StoreError> {
        let trial_ids: Vec<String> = trials
            .iter()
            .map(|_| TrialId::generate().to_string())
            .collect();
        self.retry(|| self.update_study_once(id, expected_version, &state, &trials, &trial_ids))
            .await
    }

    async fn claim_trial(
        &self,
        study: Option<&StudyId>,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedTrial>, StoreError> {
        let sql = format!(
            "WITH claimed AS (\
             UPDATE atlas_trials SET state = 'running', attempts = attempts + 1, worker = $1, \
             lease_expires_at = now() + make_interval(secs => $2), started_at = now() \
             WHERE id = COALESCE(\
               (SELECT id FROM atlas_trials WHERE state = 'running' AND lease_expires_at < now() \
                AND attempts < $3 AND ($4::text IS NULL OR study_id = $4) \
                ORDER BY lease_expires_at LIMIT 1 FOR UPDATE SKIP LOCKED), \
               (SELECT id FROM atlas_trials WHERE state = 'queued' \
                AND ($4::text IS NULL OR study_id = $4) ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)) \
             RETURNING {TRIAL_COLUMNS}, lease_expires_at), {ASYNC_COMMIT} \
             SELECT claimed.* FROM claimed, async_commit"
        );
        let sql = &sql;
        self.retry(|| async move {
            self.reap_abandoned().await?;
            let row = sqlx::query(sql)
                .bind(worker)
                .bind(seconds(lease))
                .bind(MAX_ATTEMPTS as i32)
                .bind(study.map(StudyId::as_str))
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            let Some(row) = row else { return Ok(None) };
            let trial = trial_from_row(&row)?;
            let lease = TrialLease {
                trial: trial.id.clone(),
                study: trial.study.clone(),
                attempt: trial.attempts,
                worker: worker.to_string(),
                expires_at: get(&row, "lease_expires_at")?,
            };
            Ok(Some(ClaimedTrial { trial, lease }))
        })
        .await
    }

    async fn heartbeat_trial(
        &self,
        lease: &TrialLease,
        duration: Duration,
    ) -> Result<Heartbeat, StoreError> {
        self.retry(|| async move {
            let row = sqlx::query(&format!(
                "WITH renewed AS (\
                   UPDATE atlas_trials SET lease_expires_at = now() + make_interval(secs => $1) \
                   WHERE id = $2 AND attempts = $3 AND worker = $4 AND state = 'running' \
                   RETURNING lease_expires_at), {ASYNC_COMMIT} \
                 SELECT renewed.* FROM renewed, async_commit"
            ))
            .bind(seconds(duration))
            .bind(lease.trial.as_str())
            .bind(lease.attempt as i32)
            .bind(&lease.worker)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            row.map_or(Ok(Heartbeat::Lost), |r| {
                Ok(Heartbeat::Renewed(get(&r, "lease_expires_at")?))
            })
        })
        .await
    }

    async fn tell(&self, lease: &TrialLease, outcome: TrialOutcome) -> Result<Told, StoreError> {
        let (state, value, detail) = outcome.parts();
        self.retry(|| self.tell_once(lease, state, value, detail.as_ref()))
            .await
    }

    async fn requeue_trial(&self, lease: &TrialLease) -> Result<bool, StoreError> {
        self.hand_back(
            "atlas_trials",
            lease.trial.as_str(),
            lease.attempt,
            &lease.worker,
        )
        .await
    }

    async fn list_trials(
        &self,
        study: &StudyId,
        query: &TrialQuery,
    ) -> Result<Vec<Trial>, StoreError> {
        let limit = page_limit(query.limit, MAX_PAGE)?;
        let sql = format!(
            "SELECT {TRIAL_COLUMNS} FROM atlas_trials WHERE study_id = $1 \
             AND ($2::text IS NULL OR state = $2) AND ($3::bigint IS NULL OR number > $3) \
             ORDER BY number LIMIT $4"
        );
        let sql = &sql;
        self.retry(|| async move {
            let rows = sqlx::query(sql)
                .bind(study.as_str())
                .bind(query.state.map(TrialState::as_str))
                .bind(query.after_number)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            rows.iter().map(trial_from_row).collect()
        })
        .await
    }

    async fn trial_counts(&self, study: &StudyId) -> Result<TrialCounts, StoreError> {
        self.retry(|| async move {
            let row = sqlx::query(
                "SELECT done, failed, \
                 (SELECT COUNT(*) FROM atlas_trials WHERE study_id = $1 AND state = 'queued') AS queued, \
                 (SELECT COUNT(*) FROM atlas_trials WHERE study_id = $1 AND state = 'running') AS running \
                 FROM atlas_studies WHERE id = $1",
            )
            .bind(study.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            let Some(row) = row else {
                return Err(unknown("study", study));
            };
            let n = |name: &str| get::<i64>(&row, name).map(|v| v.max(0) as u64);
            Ok(TrialCounts {
                queued: n("queued")?,
                running: n("running")?,
                done: n("done")?,
                failed: n("failed")?,
            })
        })
        .await
    }
}
