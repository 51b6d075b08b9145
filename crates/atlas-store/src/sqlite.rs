//! Embedded storage in one SQLite file (WAL mode), for `atlas serve` on one machine.
//!
//! One writer connection serializes every change (`BEGIN IMMEDIATE`, so another
//! process on the same file waits on the busy timeout instead of failing); up to four
//! reader connections answer gets and lists beside it (WAL lets readers run during a
//! write). Times are stored as milliseconds since the Unix epoch, taken from this
//! process's clock: one file is used by processes of one machine.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::error::{corrupt, db_error};
use crate::signal::WorkSignal;
use crate::types::*;
use crate::{redact, Storage, StoreError, StoreOptions, SCHEMA_VERSION};

/// The migrations, in order; entry `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE atlas_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('job', 'sweep', 'scenario')),
    parent_id TEXT REFERENCES atlas_jobs (id),
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    optimizer TEXT,
    problem TEXT,
    request TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    lease_expires_at INTEGER,
    finished_attempt INTEGER,
    result TEXT,
    error TEXT,
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
    state TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    next_number INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE atlas_trials (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    study_id TEXT NOT NULL REFERENCES atlas_studies (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    value REAL,
    detail TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    lease_expires_at INTEGER,
    finished_attempt INTEGER,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    UNIQUE (study_id, number)
);
CREATE INDEX atlas_trials_queued ON atlas_trials (seq) WHERE state = 'queued';
CREATE INDEX atlas_trials_queued_study ON atlas_trials (study_id, seq) WHERE state = 'queued';
CREATE INDEX atlas_trials_leased ON atlas_trials (lease_expires_at) WHERE state = 'running';
CREATE INDEX atlas_trials_study_state ON atlas_trials (study_id, state, number);
"#];

const JOB_COLUMNS: &str = "id, kind, parent_id, state, optimizer, problem, created_at, \
     started_at, finished_at, attempts, worker, result, error";

const TRIAL_COLUMNS: &str = "id, study_id, number, params, state, value, detail, attempts, \
     worker, created_at, started_at, finished_at";

/// Storage in one SQLite file (or in memory). See the module docs.
#[derive(Debug)]
pub struct SqliteStorage {
    writer: SqlitePool,
    reader: SqlitePool,
    signal: WorkSignal,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn later_ms(duration: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

fn time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(format!("timestamp {ms} ms")))
}

fn opt_time(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(time).transpose()
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

fn parse_json(text: Option<String>, what: &str) -> Result<Option<Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(format!("{what}: {e}"))))
        .transpose()
}

fn job_from_row(row: &SqliteRow, with_request: bool) -> Result<Job, StoreError> {
    let get_err = |e: sqlx::Error| corrupt(e);
    let error: Option<Value> = parse_json(row.try_get("error").map_err(get_err)?, "job error")?;
    let error = error
        .map(serde_json::from_value::<JobError>)
        .transpose()
        .map_err(|e| corrupt(format!("job error: {e}")))?;
    let request = if with_request {
        parse_json(row.try_get("request").map_err(get_err)?, "job request")?
    } else {
        None
    };
    Ok(Job {
        id: JobId::from_stored(row.try_get("id").map_err(get_err)?),
        kind: row.try_get::<String, _>("kind").map_err(get_err)?.parse()?,
        parent: row
            .try_get::<Option<String>, _>("parent_id")
            .map_err(get_err)?
            .map(JobId::from_stored),
        state: row
            .try_get::<String, _>("state")
            .map_err(get_err)?
            .parse()?,
        optimizer: row.try_get("optimizer").map_err(get_err)?,
        problem: row.try_get("problem").map_err(get_err)?,
        created_at: time(row.try_get("created_at").map_err(get_err)?)?,
        started_at: opt_time(row.try_get("started_at").map_err(get_err)?)?,
        finished_at: opt_time(row.try_get("finished_at").map_err(get_err)?)?,
        attempts: row.try_get::<u32, _>("attempts").map_err(get_err)?,
        worker: row.try_get("worker").map_err(get_err)?,
        result: parse_json(row.try_get("result").map_err(get_err)?, "job result")?,
        error,
        request,
    })
}

fn trial_from_row(row: &SqliteRow) -> Result<Trial, StoreError> {
    let get_err = |e: sqlx::Error| corrupt(e);
    Ok(Trial {
        id: TrialId::from_stored(row.try_get("id").map_err(get_err)?),
        study: StudyId::from_stored(row.try_get("study_id").map_err(get_err)?),
        number: row.try_get("number").map_err(get_err)?,
        params: parse_json(
            Some(row.try_get("params").map_err(get_err)?),
            "trial params",
        )?
        .unwrap_or(Value::Null),
        state: row
            .try_get::<String, _>("state")
            .map_err(get_err)?
            .parse()?,
        value: row.try_get("value").map_err(get_err)?,
        detail: parse_json(row.try_get("detail").map_err(get_err)?, "trial detail")?,
        attempts: row.try_get::<u32, _>("attempts").map_err(get_err)?,
        worker: row.try_get("worker").map_err(get_err)?,
        created_at: time(row.try_get("created_at").map_err(get_err)?)?,
        started_at: opt_time(row.try_get("started_at").map_err(get_err)?)?,
        finished_at: opt_time(row.try_get("finished_at").map_err(get_err)?)?,
    })
}

fn study_from_row(row: &SqliteRow) -> Result<Study, StoreError> {
    let get_err = |e: sqlx::Error| corrupt(e);
    Ok(Study {
        id: StudyId::from_stored(row.try_get("id").map_err(get_err)?),
        job: row
            .try_get::<Option<String>, _>("job_id")
            .map_err(get_err)?
            .map(JobId::from_stored),
        state: parse_json(Some(row.try_get("state").map_err(get_err)?), "study state")?
            .unwrap_or(Value::Null),
        version: row.try_get("version").map_err(get_err)?,
        created_at: time(row.try_get("created_at").map_err(get_err)?)?,
        updated_at: time(row.try_get("updated_at").map_err(get_err)?)?,
    })
}

type Tx = Transaction<'static, Sqlite>;

impl SqliteStorage {
    /// Opens `sqlite://PATH` or `sqlite::memory:` with the default options.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &StoreOptions::default()).await
    }

    /// Opens `sqlite://PATH[?synchronous=normal|full]` or `sqlite::memory:`, creating
    /// the file and migrating the schema. A file from a newer schema is refused.
    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidUrl {
            url: redact(url),
            reason,
        };
        let memory = url == "sqlite::memory:" || url == "sqlite://:memory:";
        let mut synchronous = SqliteSynchronous::Full;
        let connect = if memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(|e| invalid(e.to_string()))?
        } else {
            let rest = url
                .strip_prefix("sqlite://")
                .ok_or_else(|| invalid("expected sqlite://PATH or sqlite::memory:".into()))?;
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err(invalid("the path is empty".into()));
            }
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("synchronous", "full")) => synchronous = SqliteSynchronous::Full,
                    Some(("synchronous", "normal")) => synchronous = SqliteSynchronous::Normal,
                    _ => {
                        return Err(invalid(format!(
                            "unknown parameter `{pair}` (known: synchronous=full|normal)"
                        )))
                    }
                }
            }
            SqliteConnectOptions::new()
                .filename(Path::new(path))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
        };
        let connect = connect
            .synchronous(synchronous)
            .busy_timeout(options.reconnect_timeout)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(if memory { 1 } else { 0 })
            // An in-memory database lives as long as its one connection: keep it.
            .idle_timeout(if memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(None)
            .acquire_timeout(options.reconnect_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(db_error)?;
        let storage_location = if memory {
            "in memory".to_string()
        } else {
            redact(url)
        };
        migrate(&writer, &storage_location).await?;
        let reader = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections.clamp(1, 4))
                .acquire_timeout(options.reconnect_timeout)
                .connect_with(connect.read_only(true))
                .await
                .map_err(db_error)?
        };
        Ok(Self {
            writer,
            reader,
            signal: WorkSignal::default(),
        })
    }

    /// Puts a held job or trial back in the queue; this attempt does not count.
    async fn hand_back(
        &self,
        table: &str,
        id: &str,
        attempt: u32,
        worker: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&hand_back_sql(table))
            .bind(id)
            .bind(attempt)
            .bind(worker)
            .execute(&self.writer)
            .await
            .map_err(db_error)?
            .rows_affected()
            > 0;
        if done {
            self.signal.ring();
        }
        Ok(done)
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
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

    /// Counts a scenario that reached `state` on its sweep; when it was the last one,
    /// finishes the sweep and returns its id.
    async fn count_child(
        tx: &mut Tx,
        parent: &str,
        state: JobState,
        now: i64,
    ) -> Result<Option<JobId>, StoreError> {
        let column = child_column(state);
        let sql = format!(
            "UPDATE atlas_jobs SET {column} = {column} + 1 WHERE id = $1 \
             RETURNING total, done, failed, cancelled, state"
        );
        let row = sqlx::query(&sql)
            .bind(parent)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let (total, done, failed, cancelled): (i64, i64, i64, i64) = (
            row.get("total"),
            row.get("done"),
            row.get("failed"),
            row.get("cancelled"),
        );
        let parent_state: JobState = row.get::<String, _>("state").parse()?;
        if done + failed + cancelled < total || parent_state.is_terminal() {
            return Ok(None);
        }
        let (final_state, error) = sweep_outcome(done);
        sqlx::query(
            "UPDATE atlas_jobs SET state = $1, error = $2, finished_at = $3, \
             started_at = COALESCE(started_at, $3) WHERE id = $4",
        )
        .bind(final_state.as_str())
        .bind(error.map(|e| json_text(&serde_json::to_value(e).unwrap_or(Value::Null))))
        .bind(now)
        .bind(parent)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        Ok(Some(JobId::from_stored(parent.to_string())))
    }

    /// Fails every job (and trial) whose lease expired for the last allowed time.
    async fn reap_abandoned(tx: &mut Tx, now: i64) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "UPDATE atlas_jobs SET state = 'failed', finished_at = $1, lease_expires_at = NULL, \
             error = json_object('kind', 'abandoned', 'message', \
               'abandoned after ' || attempts || ' attempts: the lease expired each time (last worker: ' \
               || COALESCE(worker, 'unknown') || ')') \
             WHERE state = 'running' AND kind <> 'sweep' AND lease_expires_at < $1 AND attempts >= $2 \
             RETURNING parent_id",
        )
        .bind(now)
        .bind(MAX_ATTEMPTS)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
        for row in rows {
            if let Some(parent) = row.get::<Option<String>, _>("parent_id") {
                Self::count_child(tx, &parent, JobState::Failed, now).await?;
            }
        }
        let rows = sqlx::query(
            "UPDATE atlas_trials SET state = 'failed', finished_at = $1, lease_expires_at = NULL, \
             detail = json_object('kind', 'abandoned', 'message', \
               'abandoned after ' || attempts || ' attempts: the lease expired each time') \
             WHERE state = 'running' AND lease_expires_at < $1 AND attempts >= $2 \
             RETURNING study_id",
        )
        .bind(now)
        .bind(MAX_ATTEMPTS)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
        for row in rows {
            sqlx::query("UPDATE atlas_studies SET failed = failed + 1 WHERE id = $1")
                .bind(row.get::<String, _>("study_id"))
                .execute(&mut **tx)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    async fn finish_with(
        &self,
        lease: &Lease,
        state: JobState,
        result: Option<Value>,
        error: Option<JobError>,
    ) -> Result<Finished, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let result_text = result.as_ref().map(json_text);
        let error_text = error
            .as_ref()
            .map(|e| json_text(&serde_json::to_value(e).unwrap_or(Value::Null)));
        let row = sqlx::query(
            "UPDATE atlas_jobs SET state = $1, result = $2, error = $3, finished_at = $4, \
             finished_attempt = $5, worker = $6, lease_expires_at = NULL \
             WHERE id = $7 AND state = 'running' AND attempts >= $5 RETURNING parent_id",
        )
        .bind(state.as_str())
        .bind(&result_text)
        .bind(&error_text)
        .bind(now)
        .bind(lease.attempt)
        .bind(&lease.worker)
        .bind(lease.job.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let outcome = if let Some(row) = row {
            let sweep_completed = match row.get::<Option<String>, _>("parent_id") {
                Some(parent) => Self::count_child(&mut tx, &parent, state, now).await?,
                None => None,
            };
            Finished::Recorded {
                state,
                sweep_completed,
            }
        } else {
            // Not running: cancelled while running (keep its best point once), already
            // finished by this very attempt (a retried call), or finished by another.
            let kept = sqlx::query(
                "UPDATE atlas_jobs SET result = $1, finished_attempt = $2, worker = $3, \
                 lease_expires_at = NULL \
                 WHERE id = $4 AND state = 'cancelled' AND finished_attempt IS NULL \
                 AND result IS NULL AND $1 IS NOT NULL AND attempts >= $2",
            )
            .bind(&result_text)
            .bind(lease.attempt)
            .bind(&lease.worker)
            .bind(lease.job.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            let row = sqlx::query("SELECT state, finished_attempt FROM atlas_jobs WHERE id = $1")
                .bind(lease.job.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            let Some(row) = row else {
                return Err(unknown("job", &lease.job));
            };
            let now_state: JobState = row.get::<String, _>("state").parse()?;
            let finished_attempt: Option<u32> = row.get("finished_attempt");
            if kept > 0 || finished_attempt == Some(lease.attempt) {
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
}

/// Boxed with an explicit `Send`: callers spawn `open` on a runtime, and the compiler
/// cannot prove an unboxed transaction future `Send` there (rust-lang/rust#102211).
fn migrate<'a>(
    pool: &'a SqlitePool,
    location: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>> {
    Box::pin(async move {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS atlas_schema_version (\
             version INTEGER NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let found: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM atlas_schema_version")
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
            sqlx::query("INSERT INTO atlas_schema_version (version, applied_at) VALUES ($1, $2)")
                .bind(index as i64 + 1)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    })
}

const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

#[async_trait]
impl Storage for SqliteStorage {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn submit(&self, job: NewJob) -> Result<Submitted, StoreError> {
        let mut tx = self.begin().await?;
        if let Some(key) = &job.idempotency_key {
            let sql =
                format!("SELECT {JOB_COLUMNS}, request FROM atlas_jobs WHERE idempotency_key = $1");
            if let Some(row) = sqlx::query(&sql)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
            {
                return Ok(Submitted {
                    job: job_from_row(&row, true)?,
                    created: false,
                });
            }
        }
        let id = JobId::generate();
        let sql = format!(
            "INSERT INTO atlas_jobs (id, kind, state, optimizer, problem, request, idempotency_key, created_at) \
             VALUES ($1, 'job', 'queued', $2, $3, $4, $5, $6) RETURNING {JOB_COLUMNS}, request"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(&job.optimizer)
            .bind(&job.problem)
            .bind(json_text(&job.request))
            .bind(&job.idempotency_key)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        let stored = job_from_row(&row, true)?;
        tx.commit().await.map_err(db_error)?;
        self.signal.ring();
        Ok(Submitted {
            job: stored,
            created: true,
        })
    }

    async fn submit_sweep(&self, sweep: NewSweep) -> Result<Submitted, StoreError> {
        let mut tx = self.begin().await?;
        if let Some(key) = &sweep.idempotency_key {
            let sql =
                format!("SELECT {JOB_COLUMNS}, request FROM atlas_jobs WHERE idempotency_key = $1");
            if let Some(row) = sqlx::query(&sql)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
            {
                return Ok(Submitted {
                    job: job_from_row(&row, true)?,
                    created: false,
                });
            }
        }
        let now = now_ms();
        let id = JobId::generate();
        let total = sweep.scenarios.len() as i64;
        let empty = total == 0;
        sqlx::query(
            "INSERT INTO atlas_jobs (id, kind, state, optimizer, problem, request, idempotency_key, \
             created_at, total, started_at, finished_at) \
             VALUES ($1, 'sweep', $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(id.as_str())
        .bind(if empty { "succeeded" } else { "queued" })
        .bind(&sweep.optimizer)
        .bind(&sweep.problem)
        .bind(json_text(&sweep.request))
        .bind(&sweep.idempotency_key)
        .bind(now)
        .bind(total)
        .bind(if empty { Some(now) } else { None })
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        for scenario in &sweep.scenarios {
            sqlx::query(
                "INSERT INTO atlas_jobs (id, kind, parent_id, state, optimizer, problem, request, created_at) \
                 VALUES ($1, 'scenario', $2, 'queued', $3, $4, $5, $6)",
            )
            .bind(JobId::generate().as_str())
            .bind(id.as_str())
            .bind(&scenario.optimizer)
            .bind(&scenario.problem)
            .bind(json_text(&scenario.request))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        let job = Self::job_in(&mut tx, id.as_str())
            .await?
            .ok_or_else(|| corrupt("sweep vanished"))?;
        tx.commit().await.map_err(db_error)?;
        self.signal.ring();
        Ok(Submitted { job, created: true })
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS}, request FROM atlas_jobs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error)?;
        row.map(|r| job_from_row(&r, true)).transpose()
    }

    async fn sweep_status(&self, id: &JobId) -> Result<Option<SweepStatus>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS}, request, total, done, failed, cancelled FROM atlas_jobs \
             WHERE id = $1 AND kind = 'sweep'"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error)?;
        row.map(|r| {
            Ok(SweepStatus {
                job: job_from_row(&r, true)?,
                total: r.get("total"),
                done: r.get("done"),
                failed: r.get("failed"),
                cancelled: r.get("cancelled"),
            })
        })
        .transpose()
    }

    async fn list(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        let limit = page_limit(query.limit, 100)?;
        let after = parse_cursor(&query.after)?;
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM atlas_jobs \
             WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR kind = $2) \
             AND ($3 IS NULL OR parent_id = $3) AND ($4 IS NULL OR id > $4) \
             ORDER BY id LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(query.state.map(JobState::as_str))
            .bind(query.kind.map(JobKind::as_str))
            .bind(query.parent.as_ref().map(JobId::as_str))
            .bind(after)
            .bind(limit + 1)
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)?;
        page_from_rows(rows.iter().map(|r| job_from_row(r, false)), limit)
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Claimed>, StoreError> {
        let now = now_ms();
        let expires = later_ms(lease);
        let mut tx = self.begin().await?;
        Self::reap_abandoned(&mut tx, now).await?;
        let sql = format!(
            "UPDATE atlas_jobs SET state = 'running', attempts = attempts + 1, worker = $1, \
             lease_expires_at = $2, started_at = $3 \
             WHERE seq = COALESCE(\
               (SELECT seq FROM atlas_jobs WHERE state = 'running' AND kind <> 'sweep' \
                AND lease_expires_at < $3 ORDER BY lease_expires_at LIMIT 1), \
               (SELECT seq FROM atlas_jobs WHERE state = 'queued' AND kind <> 'sweep' \
                ORDER BY seq LIMIT 1)) \
             RETURNING {JOB_COLUMNS}, request"
        );
        let row = sqlx::query(&sql)
            .bind(worker)
            .bind(expires)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            tx.commit().await.map_err(db_error)?;
            return Ok(None);
        };
        let job = job_from_row(&row, true)?;
        if let Some(parent) = &job.parent {
            sqlx::query(
                "UPDATE atlas_jobs SET state = 'running', started_at = $1 WHERE id = $2 AND state = 'queued'",
            )
            .bind(now)
            .bind(parent.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        let lease = Lease {
            job: job.id.clone(),
            attempt: job.attempts,
            worker: worker.to_string(),
            expires_at: time(expires)?,
        };
        Ok(Some(Claimed { job, lease }))
    }

    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> Result<Heartbeat, StoreError> {
        let expires = later_ms(duration);
        let row = sqlx::query(
            "UPDATE atlas_jobs SET lease_expires_at = CASE WHEN state = 'running' THEN $1 \
             ELSE lease_expires_at END \
             WHERE id = $2 AND attempts = $3 AND worker = $4 \
             AND state IN ('running', 'cancelled') AND finished_attempt IS NULL RETURNING state",
        )
        .bind(expires)
        .bind(lease.job.as_str())
        .bind(lease.attempt)
        .bind(&lease.worker)
        .fetch_optional(&self.writer)
        .await
        .map_err(db_error)?;
        Ok(match row.map(|r| r.get::<String, _>("state")).as_deref() {
            Some("running") => Heartbeat::Renewed(time(expires)?),
            Some(_) => Heartbeat::Cancelled,
            None => Heartbeat::Lost,
        })
    }

    async fn finish(&self, lease: &Lease, result: Value) -> Result<Finished, StoreError> {
        self.finish_with(lease, JobState::Succeeded, Some(result), None)
            .await
    }

    async fn fail(&self, lease: &Lease, error: JobError) -> Result<Finished, StoreError> {
        self.finish_with(lease, JobState::Failed, None, Some(error))
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

    async fn retry_job(&self, id: &JobId) -> Result<Option<Retried>, StoreError> {
        let mut tx = self.begin().await?;
        let Some(job) = Self::job_in(&mut tx, id.as_str()).await? else {
            return Ok(None);
        };
        if let Some(reason) = Retried::refusal(job.kind, job.state) {
            return Ok(Some(Retried::Refused { job, reason }));
        }
        sqlx::query(
            "UPDATE atlas_jobs SET state = 'queued', attempts = 0, worker = NULL, \
             lease_expires_at = NULL, started_at = NULL, finished_at = NULL, \
             finished_attempt = NULL, result = NULL, error = NULL WHERE id = $1",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let job = Self::job_in(&mut tx, id.as_str()).await?;
        tx.commit().await.map_err(db_error)?;
        self.signal.ring();
        Ok(job.map(Retried::Queued))
    }

    async fn cancel(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let Some(job) = Self::job_in(&mut tx, id.as_str()).await? else {
            return Ok(None);
        };
        if !job.state.is_terminal() {
            if job.kind == JobKind::Sweep {
                let cancelled = sqlx::query(
                    "UPDATE atlas_jobs SET state = 'cancelled', finished_at = $1, \
                     lease_expires_at = CASE WHEN state = 'running' THEN lease_expires_at END \
                     WHERE parent_id = $2 AND state IN ('queued', 'running')",
                )
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
                sqlx::query(
                    "UPDATE atlas_jobs SET state = 'cancelled', finished_at = $1, \
                     cancelled = cancelled + $2 WHERE id = $3",
                )
                .bind(now)
                .bind(cancelled as i64)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            } else {
                sqlx::query(
                    "UPDATE atlas_jobs SET state = 'cancelled', finished_at = $1 WHERE id = $2",
                )
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if let Some(parent) = &job.parent {
                    Self::count_child(&mut tx, parent.as_str(), JobState::Cancelled, now).await?;
                }
            }
        }
        let job = Self::job_in(&mut tx, id.as_str()).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(job)
    }

    async fn set_sweep_result(&self, id: &JobId, result: Value) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE atlas_jobs SET result = $1 WHERE id = $2 AND kind = 'sweep' \
             AND state IN ('succeeded', 'failed') AND result IS NULL",
        )
        .bind(json_text(&result))
        .bind(id.as_str())
        .execute(&self.writer)
        .await
        .map_err(db_error)?
        .rows_affected()
            > 0)
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM atlas_jobs WHERE state = 'queued' AND kind <> 'sweep') AS queued, \
             (SELECT COUNT(*) FROM atlas_jobs WHERE state = 'running' AND kind <> 'sweep') AS running",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(db_error)?;
        Ok(QueueStats {
            queued: row.get::<i64, _>("queued").max(0) as u64,
            running: row.get::<i64, _>("running").max(0) as u64,
        })
    }

    async fn wait_for_work(&self, timeout: Duration) -> bool {
        self.signal.wait(timeout).await
    }

    async fn create_study(&self, study: NewStudy) -> Result<Study, StoreError> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO atlas_studies (id, job_id, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id, job_id, state, version, created_at, updated_at",
        )
        .bind(StudyId::generate().as_str())
        .bind(study.job.as_ref().map(JobId::as_str))
        .bind(json_text(&study.state))
        .bind(now)
        .fetch_one(&self.writer)
        .await
        .map_err(db_error)?;
        study_from_row(&row)
    }

    async fn get_study(&self, id: &StudyId) -> Result<Option<Study>, StoreError> {
        let row = sqlx::query(
            "SELECT id, job_id, state, version, created_at, updated_at FROM atlas_studies WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?;
        row.map(|r| study_from_row(&r)).transpose()
    }

    async fn update_study(
        &self,
        id: &StudyId,
        expected_version: i64,
        state: Value,
        trials: Vec<Value>,
    ) -> Result<StudyUpdate, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE atlas_studies SET state = $1, version = version + 1, updated_at = $2, \
             next_number = next_number + $3 WHERE id = $4 AND version = $5 \
             RETURNING version, next_number",
        )
        .bind(json_text(&state))
        .bind(now)
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
        let version: i64 = row.get("version");
        let first = row.get::<i64, _>("next_number") - trials.len() as i64;
        let mut stored = Vec::with_capacity(trials.len());
        let sql = format!(
            "INSERT INTO atlas_trials (id, study_id, number, params, state, created_at) \
             VALUES ($1, $2, $3, $4, 'queued', $5) RETURNING {TRIAL_COLUMNS}"
        );
        for (offset, params) in trials.iter().enumerate() {
            let row = sqlx::query(&sql)
                .bind(TrialId::generate().as_str())
                .bind(id.as_str())
                .bind(first + offset as i64)
                .bind(json_text(params))
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            stored.push(trial_from_row(&row)?);
        }
        tx.commit().await.map_err(db_error)?;
        if !stored.is_empty() {
            self.signal.ring();
        }
        Ok(StudyUpdate::Updated {
            version,
            trials: stored,
        })
    }

    async fn claim_trial(
        &self,
        study: Option<&StudyId>,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedTrial>, StoreError> {
        let now = now_ms();
        let expires = later_ms(lease);
        let mut tx = self.begin().await?;
        Self::reap_abandoned(&mut tx, now).await?;
        let sql = format!(
            "UPDATE atlas_trials SET state = 'running', attempts = attempts + 1, worker = $1, \
             lease_expires_at = $2, started_at = $3 \
             WHERE seq = COALESCE(\
               (SELECT seq FROM atlas_trials WHERE state = 'running' AND lease_expires_at < $3 \
                AND ($4 IS NULL OR study_id = $4) ORDER BY lease_expires_at LIMIT 1), \
               (SELECT seq FROM atlas_trials WHERE state = 'queued' \
                AND ($4 IS NULL OR study_id = $4) ORDER BY seq LIMIT 1)) \
             RETURNING {TRIAL_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(worker)
            .bind(expires)
            .bind(now)
            .bind(study.map(StudyId::as_str))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let trial = trial_from_row(&row)?;
        let lease = TrialLease {
            trial: trial.id.clone(),
            study: trial.study.clone(),
            attempt: trial.attempts,
            worker: worker.to_string(),
            expires_at: time(expires)?,
        };
        Ok(Some(ClaimedTrial { trial, lease }))
    }

    async fn heartbeat_trial(
        &self,
        lease: &TrialLease,
        duration: Duration,
    ) -> Result<Heartbeat, StoreError> {
        let expires = later_ms(duration);
        let renewed = sqlx::query(
            "UPDATE atlas_trials SET lease_expires_at = $1 \
             WHERE id = $2 AND attempts = $3 AND worker = $4 AND state = 'running'",
        )
        .bind(expires)
        .bind(lease.trial.as_str())
        .bind(lease.attempt)
        .bind(&lease.worker)
        .execute(&self.writer)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(if renewed > 0 {
            Heartbeat::Renewed(time(expires)?)
        } else {
            Heartbeat::Lost
        })
    }

    async fn tell(&self, lease: &TrialLease, outcome: TrialOutcome) -> Result<Told, StoreError> {
        let now = now_ms();
        let (state, value, detail) = outcome.parts();
        let mut tx = self.begin().await?;
        let told = sqlx::query(
            "UPDATE atlas_trials SET state = $1, value = $2, detail = $3, finished_at = $4, \
             finished_attempt = $5, worker = $6, lease_expires_at = NULL \
             WHERE id = $7 AND state = 'running' AND attempts >= $5",
        )
        .bind(state.as_str())
        .bind(value)
        .bind(detail.as_ref().map(json_text))
        .bind(now)
        .bind(lease.attempt)
        .bind(&lease.worker)
        .bind(lease.trial.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected()
            > 0;
        let outcome = if told {
            let column = if state == TrialState::Done {
                "done"
            } else {
                "failed"
            };
            sqlx::query(&format!(
                "UPDATE atlas_studies SET {column} = {column} + 1 WHERE id = $1"
            ))
            .bind(lease.study.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            Told::Recorded
        } else {
            let finished: Option<Option<u32>> =
                sqlx::query_scalar("SELECT finished_attempt FROM atlas_trials WHERE id = $1")
                    .bind(lease.trial.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
            if finished.flatten() == Some(lease.attempt) {
                Told::Recorded
            } else {
                Told::Discarded
            }
        };
        tx.commit().await.map_err(db_error)?;
        Ok(outcome)
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
             AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR number > $3) \
             ORDER BY number LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(study.as_str())
            .bind(query.state.map(TrialState::as_str))
            .bind(query.after_number)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)?;
        rows.iter().map(trial_from_row).collect()
    }

    async fn trial_counts(&self, study: &StudyId) -> Result<TrialCounts, StoreError> {
        let row = sqlx::query(
            "SELECT done, failed, \
             (SELECT COUNT(*) FROM atlas_trials WHERE study_id = $1 AND state = 'queued') AS queued, \
             (SELECT COUNT(*) FROM atlas_trials WHERE study_id = $1 AND state = 'running') AS running \
             FROM atlas_studies WHERE id = $1",
        )
        .bind(study.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Err(unknown("study", study));
        };
        let count = |name: &str| row.get::<i64, _>(name).max(0) as u64;
        Ok(TrialCounts {
            queued: count("queued"),
            running: count("running"),
            done: count("done"),
            failed: count("failed"),
        })
    }
}
