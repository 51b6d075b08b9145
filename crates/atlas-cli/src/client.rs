//! The service's client: `atlas submit PROBLEM --server URL [--wait]` and
//! `atlas jobs --server URL` (feature `server`).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use atlas_core::{Error, InputError};
use clap::Args;
use serde_json::{json, Map, Value};

use crate::{stdout_error, OutputFormat};

/// Where the service is and how to authenticate.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The service's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    server: String,
    /// File whose first line is the bearer token (else $ATLAS_TOKEN, if set).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// `atlas submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Problem file (.toml, .json, .yaml); sent inline as JSON.
    problem: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// Wait for the job to finish and print its result JSON.
    #[arg(long)]
    wait: bool,
    /// Optimizer (default: the service's default).
    #[arg(long, short = 'O')]
    optimizer: Option<String>,
    /// Set one optimizer setting, e.g. `--set max_iterations=50` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Seed for optimizers that draw random numbers.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop the solve after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    time_limit: Option<f64>,
}

/// `atlas jobs`: a running service's jobs (`--server`), or, for operators, the jobs of a
/// storage read and changed directly (`--storage`: list, `--show ID`, `--retry ID`).
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// The service's base URL, e.g. http://127.0.0.1:8080.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "storage",
        conflicts_with = "storage"
    )]
    server: Option<String>,
    /// File whose first line is the bearer token (else $ATLAS_TOKEN, if set).
    #[arg(long, value_name = "FILE", requires = "server")]
    token_file: Option<PathBuf>,
    /// Read the storage itself instead of a service: sqlite://PATH or
    /// postgres://USER@HOST:PORT/DB.
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
    /// With --storage: print this job in full (its result and error too).
    #[arg(
        long,
        value_name = "ID",
        requires = "storage",
        conflicts_with = "retry"
    )]
    show: Option<String>,
    /// With --storage: queue this failed or cancelled job again from scratch.
    #[arg(long, value_name = "ID", requires = "storage")]
    retry: Option<String>,
    /// Only jobs in this state (queued, running, succeeded, failed, cancelled).
    #[arg(long)]
    state: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Start after this cursor (the `next` of the previous page).
    #[arg(long)]
    after: Option<String>,
    /// Output on stdout.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

fn service_error(base: &str, message: impl std::fmt::Display) -> Error {
    Error::Solver {
        optimizer: format!("service at {base}"),
        reason: message.to_string(),
    }
}

impl Client {
    fn new(args: &ServerArgs) -> Result<Self, Error> {
        let base = args.server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(
                InputError::new("--server", format!("`{base}` is not an http:// URL")).into(),
            );
        }
        let token = match &args.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
                    path: path.clone(),
                    message: format!("cannot read: {e}"),
                })?;
                let token = text.lines().map(str::trim).find(|l| !l.is_empty());
                Some(token.map(str::to_string).ok_or_else(|| {
                    InputError::new("--token-file", "no token in the file").in_file(Some(path))
                })?)
            }
            None => std::env::var("ATLAS_TOKEN").ok().filter(|t| !t.is_empty()),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(700)))
            .build()
            .into();
        Ok(Self { base, token, agent })
    }

    /// Sends a request; answers the status and the JSON body.
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), Error> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("POST", Some(body)) => {
                let mut req = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.send(body.to_string().as_bytes())
            }
            _ => {
                let mut req = self.agent.get(&url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
        };
        let mut response = result.map_err(|e| service_error(&self.base, e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| service_error(&self.base, e))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }
}

/// A service error answer as the CLI's error: 400 and 422 are bad input (exit 2).
fn answer_error(base: &str, status: u16, body: &Value) -> Error {
    let error = body.get("error");
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    let field = error
        .and_then(|e| e.get("field"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if matches!(status, 400 | 413 | 415 | 422) {
        let reason = match message.strip_prefix(&format!("{field}: ")) {
            Some(rest) if !field.is_empty() => rest.to_string(),
            _ => message,
        };
        InputError::new(field, reason).into()
    } else {
        service_error(base, format!("HTTP {status}: {message}"))
    }
}

fn settings(sets: &[String]) -> Result<Map<String, Value>, Error> {
    let mut map = Map::new();
    for item in sets {
        let Some((key, raw)) = item.split_once('=') else {
            return Err(
                InputError::new("--set", format!("expected KEY=VALUE (got `{item}`)")).into(),
            );
        };
        let raw = raw.trim();
        let value =
            serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        map.insert(key.trim().to_string(), value);
    }
    Ok(map)
}

/// `atlas submit`: prints `{"id", "state"}`, or with `--wait` the result JSON of the
/// finished job (exit 1 when it failed).
pub fn submit(args: &SubmitArgs, out: &mut dyn Write) -> Result<(), Error> {
    let client = Client::new(&args.server)?;
    let problem: Value = atlas_core::problem::read_document(&args.problem)?;
    let mut body = json!({"problem": problem});
    if let Some(o) = &args.optimizer {
        body["optimizer"] = json!(o);
    }
    if !args.set.is_empty() {
        body["settings"] = Value::Object(settings(&args.set)?);
    }
    if let Some(s) = args.seed {
        body["seed"] = json!(s);
    }
    if let Some(t) = args.time_limit {
        body["time_limit_s"] = json!(t);
    }
    let path = if args.wait {
        "/v1/jobs?wait=600"
    } else {
        "/v1/jobs"
    };
    let (status, answer) = client.send("POST", path, Some(&body))?;
    if !(status == 200 || status == 202) {
        return Err(match answer_error(&client.base, status, &answer) {
            Error::Input(e) => Error::Input(e.in_file(Some(&args.problem))),
            e => e,
        });
    }
    if !args.wait {
        writeln!(out, "{answer}").map_err(stdout_error)?;
        return Ok(());
    }
    let id = answer
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut job = answer;
    let started = Instant::now();
    while !matches!(
        job.get("state").and_then(Value::as_str),
        Some("succeeded" | "failed" | "cancelled")
    ) {
        std::thread::sleep(Duration::from_millis(
            if started.elapsed() < Duration::from_secs(5) {
                100
            } else {
                1000
            },
        ));
        let (status, answer) = client.send("GET", &format!("/v1/jobs/{id}"), None)?;
        if status != 200 {
            return Err(answer_error(&client.base, status, &answer));
        }
        job = answer;
    }
    match job.get("state").and_then(Value::as_str) {
        Some("failed") => {
            let error = job.get("error").cloned().unwrap_or(Value::Null);
            Err(service_error(
                &client.base,
                format!(
                    "job {id} failed: {}",
                    error.get("message").and_then(Value::as_str).unwrap_or("")
                ),
            ))
        }
        _ => {
            let result = job.get("result").cloned().unwrap_or(Value::Null);
            let text = serde_json::to_string_pretty(&result).unwrap_or_default();
            writeln!(out, "{text}").map_err(stdout_error)
        }
    }
}

/// `atlas jobs`: one page of the service's jobs.
pub fn jobs(args: &JobsArgs, out: &mut dyn Write) -> Result<(), Error> {
    if let Some(storage) = &args.storage {
        return crate::store_jobs::run(storage, args, out);
    }
    let server = ServerArgs {
        server: args.server.clone().unwrap_or_default(),
        token_file: args.token_file.clone(),
    };
    let client = Client::new(&server)?;
    let mut path = format!("/v1/jobs?limit={}", args.limit);
    if let Some(s) = &args.state {
        path.push_str(&format!("&state={s}"));
    }
    if let Some(a) = &args.after {
        path.push_str(&format!("&after={a}"));
    }
    let (status, answer) = client.send("GET", &path, None)?;
    if status != 200 {
        return Err(answer_error(&client.base, status, &answer));
    }
    print_jobs(&answer, args.format, out)
}

impl JobsArgs {
    /// `--show`, `--retry`, `--state`, `--limit`, `--after`.
    pub(crate) fn show(&self) -> Option<&str> {
        self.show.as_deref()
    }
    pub(crate) fn retry(&self) -> Option<&str> {
        self.retry.as_deref()
    }
    pub(crate) fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }
    pub(crate) fn after(&self) -> Option<&str> {
        self.after.as_deref()
    }
    pub(crate) fn format(&self) -> OutputFormat {
        self.format
    }
}

/// A page `{"jobs": [...], "next"?}` as JSON or as a table.
pub(crate) fn print_jobs(
    answer: &Value,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), Error> {
    match format {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(answer).unwrap_or_default();
            writeln!(out, "{text}").map_err(stdout_error)
        }
        OutputFormat::Table => {
            let jobs = answer
                .get("jobs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let text =
                |j: &Value, k: &str| j.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
            writeln!(
                out,
                "{:<26}  {:<9}  {:<8}  {:<12}  {:<20}  problem",
                "id", "state", "kind", "optimizer", "created"
            )
            .map_err(stdout_error)?;
            for j in &jobs {
                writeln!(
                    out,
                    "{:<26}  {:<9}  {:<8}  {:<12}  {:<20}  {}",
                    text(j, "id"),
                    text(j, "state"),
                    text(j, "kind"),
                    text(j, "optimizer"),
                    text(j, "created_at").chars().take(20).collect::<String>(),
                    text(j, "problem")
                )
                .map_err(stdout_error)?;
            }
            if let Some(next) = answer.get("next").and_then(Value::as_str) {
                writeln!(out, "more: --after {next}").map_err(stdout_error)?;
            }
            Ok(())
        }
    }
}
