//! `atlas serve`: the HTTP service of `atlas-server` (feature `server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use atlas_core::{Error, InputError, Registry};
use clap::{Args, ValueEnum};

/// Log line format of `atlas serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `atlas serve` (contract `service.md` section 1).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (a non-loopback one needs --token-file or --insecure-no-auth).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Storage: sqlite://PATH, sqlite::memory: or postgres://USER@HOST:PORT/DB.
    #[arg(long, default_value = "sqlite://atlas.db")]
    storage: String,
    /// In-process workers (default: the number of cores; 0: API only).
    #[arg(long)]
    workers: Option<usize>,
    /// File with one bearer token per line; every /v1 request then needs one.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Listen beyond loopback without tokens (a trusted network only).
    #[arg(long)]
    insecure_no_auth: bool,
    /// Largest request body, in MiB (413 above it).
    #[arg(long, default_value_t = 16.0)]
    max_body_mb: f64,
    /// Most queued jobs before submissions get 429.
    #[arg(long, default_value_t = 10_000)]
    max_queue: u64,
    /// Longest a job may run, in seconds (a request's time_limit_s is capped to it).
    #[arg(long, value_name = "SECONDS")]
    job_time_limit: Option<f64>,
    /// A host an `http` model in a request may call (repeatable; none by default).
    #[arg(long = "allow-model-host", value_name = "HOST[:PORT]")]
    allow_model_host: Vec<String>,
    /// Result cache of the in-process workers: memory, off, a folder, or
    /// redis://HOST:PORT[/DB] (shared with every worker).
    #[arg(long, default_value = "memory")]
    cache: String,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Runs the service until SIGTERM or SIGINT.
pub fn run(args: ServeArgs, registry: Registry) -> Result<(), Error> {
    let mut config = atlas_server::ServerConfig::new(args.addr, args.storage.clone());
    if let Some(n) = args.workers {
        config.workers = n;
    }
    config.token_file = args.token_file;
    config.insecure_no_auth = args.insecure_no_auth;
    if !(args.max_body_mb.is_finite() && args.max_body_mb > 0.0) {
        return Err(InputError::new("--max-body-mb", "must be a number of MiB > 0").into());
    }
    config.max_body_bytes = (args.max_body_mb * 1024.0 * 1024.0) as usize;
    config.max_queue = args.max_queue;
    if let Some(t) = args.job_time_limit {
        if !(t.is_finite() && t > 0.0) {
            return Err(
                InputError::new("--job-time-limit", "must be a number of seconds > 0").into(),
            );
        }
        config.job_time_limit = Some(Duration::from_secs_f64(t));
    }
    config.limits.allow_model_hosts = args
        .allow_model_host
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    config.default_optimizer = crate::default_optimizer(&registry);
    config.cache = args.cache;
    config.log_format = match args.log_format {
        LogFormat::Text => atlas_server::LogFormat::Text,
        LogFormat::Json => atlas_server::LogFormat::Json,
    };
    atlas_server::serve_blocking(config, registry).map_err(|e| match e {
        atlas_server::ServeError::Config(message) => InputError::new("", message).into(),
        atlas_server::ServeError::Storage(e) => Error::Io {
            path: PathBuf::from(&args.storage),
            message: e.to_string(),
        },
        atlas_server::ServeError::Io(message) => Error::Solver {
            optimizer: "serve".into(),
            reason: message,
        },
    })
}
