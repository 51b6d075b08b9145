#![doc = include_str!("../README.md")]

mod api;
mod auth;
mod error;
mod observe;
mod openapi;
mod request;
mod sweep;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_core::{CancelToken, Registry};
use atlas_store::{JobId, Storage};
use tokio::sync::{broadcast, watch};

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use request::{JobRequest, ValidateRequest};

/// How long running jobs may finish after SIGTERM before they are handed back to the
/// queue (contract `service.md` section 1).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest `?wait=` a request may ask for, in seconds.
pub const MAX_WAIT_S: f64 = 600.0;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The settings of `atlas serve` (contract `service.md` section 1).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:8080`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Storage URL (`sqlite://atlas.db`, `sqlite::memory:`, `postgres://...`).
    pub storage: String,
    /// In-process workers (0: an API-only front for separate workers).
    pub workers: usize,
    /// File with one bearer token per line; `None`: no authentication.
    pub token_file: Option<PathBuf>,
    /// Allow a non-loopback address without tokens.
    pub insecure_no_auth: bool,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most queued jobs before submissions get 429.
    pub max_queue: u64,
    /// Longest a job may run (a request's `time_limit_s` is capped to it).
    pub job_time_limit: Option<Duration>,
    /// Lease of an in-process worker's claim.
    pub lease: Duration,
    /// Size limits and allowed model hosts.
    pub limits: Limits,
    /// The optimizer of a request that names none (the CLI's default).
    pub default_optimizer: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Result cache of the workers (`scenarios.md` section 4): `memory` (the default),
    /// `off`, a folder, or `redis://HOST:PORT[/DB]` (shared by every process).
    pub cache: String,
}

impl ServerConfig {
    /// The defaults of the contract for `addr` and `storage`.
    pub fn new(addr: SocketAddr, storage: impl Into<String>) -> Self {
        Self {
            addr,
            storage: storage.into(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            token_file: None,
            insecure_no_auth: false,
            max_body_bytes: 16 * 1024 * 1024,
            max_queue: 10_000,
            job_time_limit: None,
            lease: Duration::from_secs(30),
            limits: Limits::default(),
            default_optimizer: "lbfgs".into(),
            log_format: LogFormat::Text,
            cache: "memory".into(),
        }
    }
}

/// Sizes a client controls and the service bounds, each refused with its own 400.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most channels of a problem.
    pub max_channels: usize,
    /// Most periods of a problem.
    pub max_periods: usize,
    /// Most variables (channels x periods).
    pub max_variables: usize,
    /// Most draws of a `draws` model.
    pub max_draws: usize,
    /// Most scenarios (budget points included) of a sweep.
    pub max_scenarios: usize,
    /// Largest `multi_start`.
    pub max_multi_start: u64,
    /// Largest `population_size`.
    pub max_population: u64,
    /// Largest `max_iterations`, `max_evaluations` and `n_trials`.
    pub max_iterations: u64,
    /// Hosts (`host` or `host:port`) an `http` model may call.
    pub allow_model_hosts: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_channels: 1_000,
            max_periods: 520,
            max_variables: 100_000,
            max_draws: 10_000,
            max_scenarios: 1_000,
            max_multi_start: 256,
            max_population: 10_000,
            max_iterations: 10_000_000,
            allow_model_hosts: Vec::new(),
        }
    }
}

impl Limits {
    /// Whether an `http` model may call `authority` (`host[:port]`): an allowed entry
    /// `host:port` matches exactly, an entry `host` matches any port.
    pub fn host_allowed(&self, authority: &str) -> bool {
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
            _ => authority,
        };
        self.allow_model_hosts.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            allowed == authority || allowed == host
        })
    }

    fn max_setting(&self, key: &str) -> u64 {
        match key {
            "multi_start" => self.max_multi_start,
            "population_size" => self.max_population,
            _ => self.max_iterations,
        }
    }
}

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is not usable (exit status 2).
    #[error("{0}")]
    Config(String),
    /// The storage cannot be opened.
    #[error(transparent)]
    Storage(#[from] atlas_store::StoreError),
    /// Listening or serving failed.
    #[error("{0}")]
    Io(String),
}

/// What the handlers and workers share.
pub(crate) struct AppState {
    pub storage: Arc<dyn Storage>,
    pub registry: Arc<Registry>,
    pub config: ServerConfig,
    pub tokens: Vec<String>,
    pub metrics: observe::Metrics,
    /// Tokens of the jobs running in this process, so a DELETE stops them at once.
    pub running: Mutex<HashMap<JobId, (CancelToken, Option<JobId>)>>,
    /// Ids of jobs that finished in this process (wakes `?wait=` requests).
    pub finished: broadcast::Sender<JobId>,
    /// `true` once shutdown began: stop claiming, answer 503 to new jobs.
    pub stopping: watch::Sender<bool>,
    /// `true` once the drain time ran out: hand running jobs back.
    pub drain_over: watch::Sender<bool>,
    pub worker_name: String,
    /// The result cache of this process's solves (`None`: `--cache off`).
    pub cache: Option<Arc<atlas_sweep::Cache>>,
}

/// A service started by [`start`].
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    state: Arc<AppState>,
    server: tokio::task::JoinHandle<Result<(), std::io::Error>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Running {
    /// Stops as on SIGTERM: no new jobs, running ones get [`DRAIN_TIMEOUT`] (or
    /// `drain`) to finish, unfinished ones are handed back to the queue.
    pub async fn shutdown(self, drain: Duration) -> Result<(), ServeError> {
        tracing::info!("shutting down: no new jobs; draining running ones");
        let _ = self.state.stopping.send(true);
        let _ = self.stop.send(true);
        drain_workers(&self.state, self.workers, drain).await;
        match self.server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServeError::Io(e.to_string())),
            Err(e) => Err(ServeError::Io(e.to_string())),
        }
    }
}

/// Stops the workers of `state`: no new claims, running jobs get `drain` to finish, then
/// unfinished ones are handed back to the queue.
async fn drain_workers(
    state: &AppState,
    mut workers: Vec<tokio::task::JoinHandle<()>>,
    drain: Duration,
) {
    let _ = state.stopping.send(true);
    let all_done = async {
        for w in workers.iter_mut() {
            let _ = w.await;
        }
    };
    if tokio::time::timeout(drain, all_done).await.is_err() {
        tracing::warn!("drain time over: handing running jobs back to the queue");
        let _ = state.drain_over.send(true);
        for w in workers {
            let _ = w.await;
        }
    }
}

/// The settings of `atlas worker` (contract `service.md` sections 1 and 3): a process
/// without the HTTP API that runs the same worker loop as `atlas serve`'s in-process
/// workers against a shared storage.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Storage URL (`postgres://...` to share the queue between machines; a
    /// `sqlite://PATH` file works for processes of one machine).
    pub storage: String,
    /// Jobs this process runs at once.
    pub concurrency: usize,
    /// Lease of a claim, renewed every third of it while the job runs.
    pub lease: Duration,
    /// Result cache (`memory`, `off`, a folder, `redis://HOST:PORT[/DB]`).
    pub cache: String,
    /// Longest a job may run (a request's `time_limit_s` is capped to it).
    pub job_time_limit: Option<Duration>,
    /// Limits and allowed model hosts, as the API checks them (a worker checks every
    /// stored request again before it runs it).
    pub limits: Limits,
    /// The optimizer of a request that names none.
    pub default_optimizer: String,
    /// Log format.
    pub log_format: LogFormat,
    /// How long running jobs may finish after SIGTERM before they are handed back.
    pub drain: Duration,
    /// Exit once the storage had no queued and no running job for this long (a one-off
    /// sweep's workers, e.g. a Kubernetes Indexed Job); `None`: run until SIGTERM.
    pub exit_when_idle: Option<Duration>,
}

impl WorkerConfig {
    /// The defaults of the contract (one job at once per core, 30 s leases, a memory
    /// cache) for `storage`.
    pub fn new(storage: impl Into<String>) -> Self {
        Self {
            storage: storage.into(),
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            lease: Duration::from_secs(30),
            cache: "memory".into(),
            job_time_limit: None,
            limits: Limits::default(),
            default_optimizer: "lbfgs".into(),
            log_format: LogFormat::Text,
            drain: DRAIN_TIMEOUT,
            exit_when_idle: None,
        }
    }

    fn server_config(&self) -> ServerConfig {
        let mut c = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), self.storage.clone());
        c.workers = self.concurrency;
        c.lease = self.lease;
        c.cache = self.cache.clone();
        c.job_time_limit = self.job_time_limit;
        c.limits = self.limits.clone();
        c.default_optimizer = self.default_optimizer.clone();
        c.log_format = self.log_format;
        c
    }
}

/// Workers started by [`start_workers`].
pub struct Workers {
    state: Arc<AppState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// The name this process writes into each job it claims (`host/pid`).
    pub fn name(&self) -> &str {
        &self.state.worker_name
    }

    /// Resolves once the storage has had no queued and no running job (of any worker)
    /// for `quiet`, by its counts checked every second at most.
    pub async fn until_idle(&self, quiet: Duration) {
        let every = (quiet / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut idle_since: Option<std::time::Instant> = None;
        loop {
            match self.state.storage.queue_stats().await {
                Ok(s) if s.queued == 0 && s.running == 0 => {
                    let since = *idle_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= quiet {
                        tracing::info!("no queued or running job left: exiting (--exit-when-idle)");
                        return;
                    }
                }
                Ok(_) => idle_since = None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot count the queue");
                    idle_since = None;
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Stops as on SIGTERM: no new claims, running jobs get `drain` to finish, then
    /// unfinished ones are handed back to the queue (their attempt does not count).
    pub async fn shutdown(self, drain: Duration) {
        tracing::info!("worker stopping: no new claims; draining running jobs");
        drain_workers(&self.state, self.tasks, drain).await;
        tracing::info!("worker stopped");
    }
}

/// Opens the storage and the cache and starts `config.concurrency` worker loops on the
/// current Tokio runtime (the loop of `atlas serve`'s in-process workers).
pub async fn start_workers(
    config: WorkerConfig,
    registry: Arc<Registry>,
) -> Result<Workers, ServeError> {
    if config.concurrency == 0 {
        return Err(ServeError::Config(
            "--concurrency: must be at least 1".into(),
        ));
    }
    if config.storage.trim() == "sqlite::memory:" {
        return Err(ServeError::Config(
            "--storage sqlite::memory:: a worker needs a storage other processes share (postgres://... or sqlite://PATH)".into(),
        ));
    }
    let cache = open_cache(&config.cache)?;
    let storage = atlas_store::open(&config.storage).await?;
    let state = new_state(config.server_config(), registry, storage, Vec::new(), cache);
    let tasks = (0..config.concurrency)
        .map(|i| tokio::spawn(worker::run(state.clone(), i)))
        .collect();
    tracing::info!(
        worker = %state.worker_name,
        concurrency = config.concurrency,
        lease_s = config.lease.as_secs_f64(),
        storage = state.storage.backend(),
        "atlas worker started"
    );
    Ok(Workers { state, tasks })
}

/// `atlas worker`: builds the runtime, runs the workers until SIGTERM or SIGINT (or,
/// with `exit_when_idle`, until the queue stays empty), drains for `config.drain`, hands
/// unfinished jobs back, and returns.
pub fn work_blocking(config: WorkerConfig, registry: Registry) -> Result<(), ServeError> {
    init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.concurrency.max(1) + 4)
        .build()
        .map_err(|e| ServeError::Io(format!("cannot start the runtime: {e}")))?;
    let drain = config.drain;
    let idle = config.exit_when_idle;
    let result = runtime.block_on(async move {
        let workers = start_workers(config, Arc::new(registry)).await?;
        match idle {
            Some(quiet) => tokio::select! {
                _ = shutdown_signal() => {}
                _ = workers.until_idle(quiet) => {}
            },
            None => shutdown_signal().await,
        }
        workers.shutdown(drain).await;
        Ok(())
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// Reads the bearer tokens of `--token-file` (one a line; blank lines and `#` comments
/// skipped).
pub fn read_tokens(path: &std::path::Path) -> Result<Vec<String>, ServeError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ServeError::Config(format!("--token-file {}: cannot read: {e}", path.display()))
    })?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return Err(ServeError::Config(format!(
            "--token-file {}: no tokens in it (one per line)",
            path.display()
        )));
    }
    Ok(tokens)
}

/// `host/pid`, the contract's worker name.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{}", std::process::id())
}

/// The cache a `--cache` value names, or the setting's error.
pub(crate) fn open_cache(spec: &str) -> Result<Option<Arc<atlas_sweep::Cache>>, ServeError> {
    let cache = atlas_sweep::Cache::from_spec(spec)
        .map_err(|e| ServeError::Config(e.to_string()))?
        .map(Arc::new);
    if let Some(c) = &cache {
        tracing::info!(levels = c.describe(), "result cache");
    }
    Ok(cache)
}

/// The shared state of the handlers and workers over an opened storage.
pub(crate) fn new_state(
    config: ServerConfig,
    registry: Arc<Registry>,
    storage: Arc<dyn Storage>,
    tokens: Vec<String>,
    cache: Option<Arc<atlas_sweep::Cache>>,
) -> Arc<AppState> {
    let (finished, _) = broadcast::channel(4096);
    Arc::new(AppState {
        cache,
        storage,
        registry,
        tokens,
        metrics: observe::Metrics::install(),
        running: Mutex::new(HashMap::new()),
        finished,
        stopping: watch::channel(false).0,
        drain_over: watch::channel(false).0,
        worker_name: worker_name(),
        config,
    })
}

/// Opens the storage, binds the address and starts the API and the workers on the
/// current Tokio runtime. Solves run on the runtime's blocking pool, at most
/// `config.workers` at once.
pub async fn start(config: ServerConfig, registry: Arc<Registry>) -> Result<Running, ServeError> {
    let tokens = match &config.token_file {
        Some(path) => read_tokens(path)?,
        None => Vec::new(),
    };
    if tokens.is_empty() && !config.addr.ip().is_loopback() && !config.insecure_no_auth {
        return Err(ServeError::Config(format!(
            "--addr {}: refusing to listen beyond loopback without authentication; give --token-file FILE (or --insecure-no-auth on a trusted network)",
            config.addr
        )));
    }
    if config.max_body_bytes == 0 {
        return Err(ServeError::Config("--max-body-mb: must be > 0".into()));
    }
    let cache = open_cache(&config.cache)?;
    let storage = atlas_store::open(&config.storage).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| ServeError::Io(format!("--addr {}: cannot listen: {e}", config.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    let state = new_state(config, registry, storage, tokens, cache);
    let workers = (0..state.config.workers)
        .map(|i| tokio::spawn(worker::run(state.clone(), i)))
        .collect();
    let app = api::router(state.clone());
    let (stop, mut stop_rx) = watch::channel(false);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        })
        .await
    });
    tracing::info!(%addr, workers = state.config.workers, storage = state.storage.backend(), "atlas serve listening");
    Ok(Running {
        addr,
        state,
        server,
        workers,
        stop,
    })
}

/// Sets up logging on stderr in `format` (once per process; later calls do nothing).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ATLAS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// Runs the service until `shutdown` resolves, then drains (see [`Running::shutdown`]).
pub async fn serve_until(
    config: ServerConfig,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let running = start(config, registry).await?;
    shutdown.await;
    running.shutdown(DRAIN_TIMEOUT).await
}

/// `atlas serve`: builds the runtime (blocking pool sized for the workers), runs until
/// SIGTERM or SIGINT, drains, and returns.
pub fn serve_blocking(config: ServerConfig, registry: Registry) -> Result<(), ServeError> {
    init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.workers.max(1) + 4)
        .build()
        .map_err(|e| ServeError::Io(format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(serve_until(config, Arc::new(registry), shutdown_signal()));
    // Solves handed back at the end of the drain stop at their next iteration; do not
    // wait for them longer than a moment.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
