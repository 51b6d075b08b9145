//! Request bodies: JSON-only extraction (415, 413, 400 naming the field) and the checks
//! every problem passes before it is stored: size limits, no files, no network.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use atlas_core::{Compiled, Format, Problem, Registry, SolverConfig};

use crate::error::ApiError;
use crate::Limits;

/// A JSON body: `Content-Type: application/json` (else 415), at most the body limit
/// (else 413), and a value of `T` (else 400 naming the field of the first error).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON: send `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    status,
                    "payload_too_large",
                    "the body is larger than the service's limit (--max-body-mb)",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "input", rejection.body_text())
            }
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            let inner = e.into_inner();
            let message = if field.is_empty() {
                format!("malformed JSON body: {inner}")
            } else {
                format!("{field}: {inner}")
            };
            ApiError::bad_field(field, message)
        })?;
        de.end()
            .map_err(|e| ApiError::bad_field("", format!("malformed JSON body: {e}")))?;
        Ok(ApiJson(value))
    }
}

/// `POST /v1/validate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The problem of `problem-format.md` as a JSON object.
    #[schema(value_type = Object)]
    pub problem: Value,
}

/// `POST /v1/jobs`: one optimization.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The problem of `problem-format.md` as a JSON object.
    #[schema(value_type = Object)]
    pub problem: Value,
    /// The optimizer (default: the CLI's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<String>,
    /// Optimizer settings, as `atlas optimize --set` takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Map<String, Value>>,
    /// Stop after this many seconds (status `time_limit`); at most the service's
    /// `--job-time-limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0)]
    pub time_limit_s: Option<f64>,
    /// Seed for optimizers that draw random numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A job request checked and compiled: what a worker runs.
pub struct CheckedJob {
    /// The problem as parsed (the result cache keys on it).
    pub problem: Problem,
    /// The compiled problem.
    pub compiled: Compiled,
    /// The checked optimizer configuration.
    pub config: Box<dyn SolverConfig>,
    /// The optimizer's name.
    pub optimizer: String,
}

/// The problem checks every request's problem passes before anything else: no files on
/// the server, no hosts but the allowed ones, sizes within the limits. Fields are named
/// as in the problem (`channels`, `model.path`).
pub fn check_problem_value(problem: &Value, limits: &Limits) -> Result<(), ApiError> {
    let Value::Object(map) = problem else {
        return Err(ApiError::bad_field(
            "problem",
            "problem: must be a JSON object (the schema of a .json problem file)",
        ));
    };
    if let Some(channels) = map.get("channels").and_then(Value::as_array) {
        if channels.len() > limits.max_channels {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "limit",
                format!(
                    "channels: {} channels is more than this service takes (at most {})",
                    channels.len(),
                    limits.max_channels
                ),
            )
            .with_field("channels"));
        }
    }
    if let Some(periods) = map.get("periods").and_then(Value::as_u64) {
        if periods > limits.max_periods as u64 {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "limit",
                format!(
                    "periods: {periods} periods is more than this service takes (at most {})",
                    limits.max_periods
                ),
            )
            .with_field("periods"));
        }
    }
    if let Some(model) = map.get("model") {
        check_model(model, "model", limits)?;
    }
    Ok(())
}

/// An external model in a request: no `path` (requests carry no files) and an `http`
/// model only to an allowed host; `draws` within the limit.
fn check_model(model: &Value, at: &str, limits: &Limits) -> Result<(), ApiError> {
    let Value::Object(map) = model else {
        return Ok(());
    };
    if map.contains_key("path") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "forbidden_file",
            format!(
                "{at}.path: a request cannot name a file on the server; send the model inline or run `atlas optimize` where the file is"
            ),
        )
        .with_field(format!("{at}.path")));
    }
    for key in ["url", "endpoint"] {
        if let Some(url) = map.get(key).and_then(Value::as_str) {
            let host = host_of(url);
            let allowed = host.as_deref().is_some_and(|h| limits.host_allowed(h));
            if !allowed {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "forbidden_host",
                    format!(
                        "{at}.{key}: host `{}` is not one this service may call (allowed: {})",
                        host.unwrap_or_default(),
                        if limits.allow_model_hosts.is_empty() {
                            "none; start the service with --allow-model-host".to_string()
                        } else {
                            limits.allow_model_hosts.join(", ")
                        }
                    ),
                )
                .with_field(format!("{at}.{key}")));
            }
        }
    }
    if let Some(draws) = map.get("draws").and_then(Value::as_array) {
        if draws.len() > limits.max_draws {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "limit",
                format!(
                    "{at}.draws: {} draws is more than this service takes (at most {})",
                    draws.len(),
                    limits.max_draws
                ),
            )
            .with_field(format!("{at}.draws")));
        }
    }
    Ok(())
}

/// `host[:port]` of an `http(s)://` URL, lower-cased; `None` when it is not one.
fn host_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    (!authority.is_empty()).then(|| authority.to_ascii_lowercase())
}

/// Settings a client controls whose size the service bounds.
fn check_settings(settings: &Map<String, Value>, limits: &Limits) -> Result<(), ApiError> {
    for key in [
        "multi_start",
        "population_size",
        "max_iterations",
        "max_evaluations",
        "n_trials",
    ] {
        if let Some(n) = settings.get(key).and_then(Value::as_u64) {
            let max = limits.max_setting(key);
            if n > max {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "limit",
                    format!("settings.{key}: {n} is more than this service takes (at most {max})"),
                )
                .with_field(format!("settings.{key}")));
            }
        }
    }
    Ok(())
}

/// Parses a problem value as the CLI parses a `.json` problem file, so that errors name
/// the same field paths.
pub fn parse_problem(problem: &Value, limits: &Limits) -> Result<Problem, ApiError> {
    check_problem_value(problem, limits)?;
    let text = serde_json::to_string(problem)
        .map_err(|e| ApiError::bad_field("problem", format!("problem: {e}")))?;
    let problem = Problem::from_text(&text, Format::Json).map_err(atlas_core::Error::Input)?;
    Ok(problem)
}

/// Checks and compiles a job request: the problem, the optimizer, its settings and the
/// time limit. 400 naming the field, or 422 when the optimizer cannot honour the problem.
pub fn check_job(
    request: &JobRequest,
    registry: &Registry,
    default_optimizer: &str,
    limits: &Limits,
) -> Result<CheckedJob, ApiError> {
    let problem = parse_problem(&request.problem, limits)?;
    let compiled = Compiled::new(&problem)?;
    if compiled.layout().len() > limits.max_variables {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit",
            format!(
                "channels: {} variables (channels x periods) is more than this service takes (at most {})",
                compiled.layout().len(),
                limits.max_variables
            ),
        )
        .with_field("channels"));
    }
    let optimizer = request
        .optimizer
        .clone()
        .unwrap_or_else(|| default_optimizer.to_string());
    let settings = request.settings.clone().unwrap_or_default();
    check_settings(&settings, limits)?;
    if let Some(t) = request.time_limit_s {
        if !(t.is_finite() && t > 0.0) {
            return Err(ApiError::bad_field(
                "time_limit_s",
                format!("time_limit_s: must be a number of seconds > 0 (got {t})"),
            ));
        }
    }
    let config = registry.config(&optimizer, settings)?;
    let capable = registry.capable_of(&compiled);
    if registry.contains(&optimizer) && !capable.contains(&optimizer) {
        // The solve would refuse it: say so now, with the optimizers that can.
        let features = atlas_core::unsupported(&compiled.features(), &config.capabilities())
            .iter()
            .map(|f| f.describe())
            .collect();
        return Err(atlas_core::Error::Unsupported {
            optimizer,
            features,
            alternatives: capable,
        }
        .into());
    }
    Ok(CheckedJob {
        problem,
        compiled,
        config,
        optimizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_takes_the_authority_only() {
        assert_eq!(
            host_of("http://Models:8080/x?y"),
            Some("models:8080".into())
        );
        assert_eq!(host_of("https://u:p@h/x"), Some("h".into()));
        assert_eq!(host_of("file:///etc/passwd"), None);
        assert_eq!(host_of("http://"), None);
    }

    #[test]
    fn a_model_path_is_refused_naming_the_field() {
        let limits = Limits::default();
        let problem = serde_json::json!({"model": {"kind": "onnx", "path": "/etc/passwd"}});
        let e = check_problem_value(&problem, &limits).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("model.path"));
    }

    #[test]
    fn an_http_model_needs_an_allowed_host() {
        let mut limits = Limits::default();
        let problem = serde_json::json!({"model": {"kind": "http", "url": "http://10.0.0.1:80/m"}});
        let e = check_problem_value(&problem, &limits).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("model.url"));
        limits.allow_model_hosts = vec!["10.0.0.1:80".into()];
        assert!(check_problem_value(&problem, &limits).is_ok());
        limits.allow_model_hosts = vec!["10.0.0.1".into()];
        assert!(check_problem_value(&problem, &limits).is_ok());
        limits.allow_model_hosts = vec!["10.0.0.2".into()];
        assert!(check_problem_value(&problem, &limits).is_err());
    }
}
