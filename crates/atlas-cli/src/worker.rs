//! `atlas worker`: a process without the HTTP API that claims jobs and sweep scenarios
//! from a shared storage and runs them (feature `server`; contract `service.md`
//! sections 1 and 3).

use std::path::PathBuf;
use std::time::Duration;

use atlas_core::{Error, InputError, Registry};
use clap::Args;

use crate::serve::LogFormat;

/// `atlas worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Storage shared with the service and the other workers: postgres://USER@HOST:PORT/DB
    /// (or sqlite://PATH for processes of one machine).
    #[arg(long)]
    storage: String,
    /// Jobs this process runs at once (default: the number of cores).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Lease of a claim in seconds, renewed every third of it while the job runs.
    #[arg(long, default_value_t = 30.0)]
    lease_s: f64,
    /// Result cache: memory, off, a folder, or redis://HOST:PORT[/DB] (shared by every
    /// worker and service process).
    #[arg(long, default_value = "memory")]
    cache: String,
    /// Longest a job may run, in seconds (a request's time_limit_s is capped to it).
    #[arg(long, value_name = "SECONDS")]
    job_time_limit: Option<f64>,
    /// A host an `http` model in a job may call (repeatable; as the service's).
    #[arg(long = "allow-model-host", value_name = "HOST[:PORT]")]
    allow_model_host: Vec<String>,
    /// After SIGTERM, how long running jobs may finish before they are handed back to
    /// the queue, in seconds.
    #[arg(long, default_value_t = 30.0)]
    drain_s: f64,
    /// Exit 0 once the storage has had no queued and no running job for this many
    /// seconds (the workers of a one-off sweep, e.g. a Kubernetes Indexed Job).
    #[arg(long, value_name = "SECONDS")]
    exit_when_idle: Option<f64>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn seconds(name: &str, value: f64, min: f64) -> Result<Duration, Error> {
    if value.is_finite() && value >= min && value <= 365.0 * 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(InputError::new(
            name,
            format!("must be a number of seconds >= {min} (got {value})"),
        )
        .into())
    }
}

/// Runs the workers until SIGTERM or SIGINT; exits 0 after handing unfinished jobs back.
pub fn run(args: WorkerArgs, registry: Registry) -> Result<(), Error> {
    let mut config = atlas_server::WorkerConfig::new(args.storage.clone());
    if let Some(n) = args.concurrency {
        if n == 0 {
            return Err(InputError::new("--concurrency", "must be at least 1").into());
        }
        config.concurrency = n;
    }
    config.lease = seconds("--lease-s", args.lease_s, 1.0)?;
    config.drain = seconds("--drain-s", args.drain_s, 0.0)?;
    config.exit_when_idle = args
        .exit_when_idle
        .map(|s| seconds("--exit-when-idle", s, 0.0))
        .transpose()?;
    if let Some(t) = args.job_time_limit {
        if !(t.is_finite() && t > 0.0) {
            return Err(
                InputError::new("--job-time-limit", "must be a number of seconds > 0").into(),
            );
        }
        config.job_time_limit = Some(Duration::from_secs_f64(t));
    }
    config.cache = args.cache;
    config.limits.allow_model_hosts = args
        .allow_model_host
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    config.default_optimizer = crate::default_optimizer(&registry);
    config.log_format = match args.log_format {
        LogFormat::Text => atlas_server::LogFormat::Text,
        LogFormat::Json => atlas_server::LogFormat::Json,
    };
    atlas_server::work_blocking(config, registry).map_err(|e| match e {
        atlas_server::ServeError::Config(message) => InputError::new("", message).into(),
        atlas_server::ServeError::Storage(e) => Error::Io {
            path: PathBuf::from(&args.storage),
            message: e.to_string(),
        },
        atlas_server::ServeError::Io(message) => Error::Solver {
            optimizer: "worker".into(),
            reason: message,
        },
    })
}
