//! `atlas jobs --storage URL`: the jobs of a storage read (and retried) directly, without
//! a service, for operators (feature `server`).

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use atlas_core::{Error, InputError};
use atlas_store::{Job, JobId, JobQuery, JobState, Retried, Storage, MAX_PAGE};
use serde_json::{json, Value};

use crate::client::{print_jobs, JobsArgs};
use crate::{stdout_error, OutputFormat};

fn storage_error(url: &str, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: PathBuf::from(url),
        message: e.to_string(),
    }
}

fn job_id(field: &str, raw: &str) -> Result<JobId, Error> {
    JobId::from_str(raw.trim())
        .map_err(|_| InputError::new(field, format!("`{raw}` is not a job id (a ULID)")).into())
}

/// Lists, shows or retries jobs of the storage at `url`.
pub(crate) fn run(url: &str, args: &JobsArgs, out: &mut dyn Write) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| storage_error(url, format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let storage = atlas_store::open(url)
            .await
            .map_err(|e| storage_error(url, e))?;
        if let Some(id) = args.retry() {
            return retry(&*storage, url, id, args.format(), out).await;
        }
        if let Some(id) = args.show() {
            return show(&*storage, url, id, args.format(), out).await;
        }
        list(&*storage, url, args, out).await
    })
}

async fn list(
    storage: &dyn Storage,
    url: &str,
    args: &JobsArgs,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let state = match args.state() {
        Some(s) => Some(JobState::from_str(s.trim()).map_err(|_| {
            InputError::new(
                "--state",
                format!("`{s}`: expected queued, running, succeeded, failed or cancelled"),
            )
        })?),
        None => None,
    };
    if args.limit() == 0 || args.limit() > MAX_PAGE {
        return Err(InputError::new("--limit", format!("must be 1 to {MAX_PAGE}")).into());
    }
    let page = storage
        .list(&JobQuery {
            state,
            limit: args.limit(),
            after: args.after().map(str::to_string),
            ..Default::default()
        })
        .await
        .map_err(|e| match e {
            atlas_store::StoreError::InvalidInput { .. } => {
                Error::Input(InputError::new("--after", e.to_string()))
            }
            e => storage_error(url, e),
        })?;
    let mut answer = json!({"jobs": page.jobs});
    if let Some(next) = page.next {
        answer["next"] = json!(next);
    }
    print_jobs(&answer, args.format(), out)
}

async fn load(storage: &dyn Storage, url: &str, field: &str, raw: &str) -> Result<Job, Error> {
    let id = job_id(field, raw)?;
    storage
        .get(&id)
        .await
        .map_err(|e| storage_error(url, e))?
        .ok_or_else(|| InputError::new(field, format!("no job {id} in {url}")).into())
}

async fn show(
    storage: &dyn Storage,
    url: &str,
    raw: &str,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let job = load(storage, url, "--show", raw).await?;
    print_job(&job, format, out)
}

fn print_job(job: &Job, format: OutputFormat, out: &mut dyn Write) -> Result<(), Error> {
    let mut value = serde_json::to_value(job).unwrap_or(Value::Null);
    if let Some(request) = &job.request {
        value["request"] = request.clone();
    }
    match format {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&value).unwrap_or_default();
            writeln!(out, "{text}").map_err(stdout_error)
        }
        OutputFormat::Table => {
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_string(), |t| t.to_rfc3339())
            };
            let lines = [
                ("id", job.id.to_string()),
                ("kind", job.kind.as_str().to_string()),
                ("state", job.state.as_str().to_string()),
                ("optimizer", job.optimizer.clone().unwrap_or("-".into())),
                ("problem", job.problem.clone().unwrap_or("-".into())),
                (
                    "sweep",
                    job.parent.as_ref().map_or("-".into(), |p| p.to_string()),
                ),
                ("created", job.created_at.to_rfc3339()),
                ("started", time(job.started_at)),
                ("finished", time(job.finished_at)),
                ("attempts", job.attempts.to_string()),
                ("worker", job.worker.clone().unwrap_or("-".into())),
                (
                    "error",
                    job.error
                        .as_ref()
                        .map_or("-".into(), |e| format!("{}: {}", e.kind, e.message)),
                ),
                (
                    "result",
                    job.result.as_ref().map_or("-".into(), |r| {
                        let status = r.get("status").and_then(Value::as_str).unwrap_or("?");
                        match r.get("objective").and_then(Value::as_f64) {
                            Some(o) => format!("{status}, objective {o}"),
                            None => status.to_string(),
                        }
                    }),
                ),
            ];
            for (k, v) in lines {
                writeln!(out, "{k:<10} {v}").map_err(stdout_error)?;
            }
            Ok(())
        }
    }
}

async fn retry(
    storage: &dyn Storage,
    url: &str,
    raw: &str,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let id = job_id("--retry", raw)?;
    match storage
        .retry_job(&id)
        .await
        .map_err(|e| storage_error(url, e))?
    {
        None => Err(InputError::new("--retry", format!("no job {id} in {url}")).into()),
        Some(Retried::Refused { reason, .. }) => {
            Err(InputError::new("--retry", format!("{id}: {reason}")).into())
        }
        Some(Retried::Queued(job)) => match format {
            OutputFormat::Json => print_job(&job, format, out),
            OutputFormat::Table => writeln!(out, "{id}: queued again").map_err(stdout_error),
        },
    }
}
