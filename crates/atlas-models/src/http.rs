//! `kind = "http"`: a prediction service (contract section 3), through a blocking ureq
//! agent whose pool keeps one connection per request in flight.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use atlas_core::model_spec::{expand_env, HttpSpec};
use atlas_core::{Error, InputError};
use serde_json::Value;

use crate::external::{Backend, PointGradients};

/// First backoff after a failed attempt; doubled after each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// How many characters of a body an error quotes.
const BODY_START: usize = 200;

/// A prediction service: `POST url` with `{"spend": [[...], ...]}`, answered by
/// `{"response": [...]}`.
pub struct HttpModel {
    url: String,
    dim: usize,
    agent: ureq::Agent,
    headers: Vec<(String, String)>,
    timeout: Duration,
    retries: u32,
    batch: usize,
    concurrency: usize,
    gradient: bool,
    calls: AtomicU64,
}

/// Why one attempt failed, and whether another may succeed.
struct Failure {
    retry: bool,
    reason: String,
}

impl HttpModel {
    /// A client for `spec`, for points of `dim` values; `${VAR}` in headers are read from
    /// the environment now (an unset variable is an input error naming the header).
    pub fn new(spec: &HttpSpec, dim: usize) -> Result<Self, Error> {
        let mut headers = Vec::new();
        for (name, value) in &spec.headers {
            let value = expand_env(value, |v| std::env::var(v).ok())
                .map_err(|reason| InputError::new(format!("model.headers.{name}"), reason))?;
            headers.push((name.clone(), value));
        }
        let timeout = Duration::from_secs_f64(spec.timeout_s);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_idle_connections_per_host(spec.concurrency)
            .max_idle_connections(spec.concurrency.max(4))
            .build()
            .into();
        Ok(Self {
            url: spec.url.clone(),
            dim,
            agent,
            headers,
            timeout,
            retries: spec.retries,
            batch: spec.batch,
            concurrency: spec.concurrency,
            gradient: spec.gradient,
            calls: AtomicU64::new(0),
        })
    }

    /// One request with its retries: a 5xx answer, a timeout or a broken connection is
    /// tried again after 50 ms, 100 ms, 200 ms, ...; anything else ends at once.
    fn request(&self, points: &[Vec<f64>], gradient: bool) -> Result<PointGradients, String> {
        let body = serde_json::json!({ "spend": points }).to_string();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(&body, points.len(), gradient) {
                Ok(answer) => return Ok(answer),
                Err(f) if f.retry && attempt <= self.retries => {
                    std::thread::sleep(backoff);
                    backoff *= 2;
                }
                Err(f) => {
                    let tries = if f.retry {
                        format!(" (after {attempt} attempts)")
                    } else {
                        String::new()
                    };
                    return Err(format!("{}: {}{tries}", self.url, f.reason));
                }
            }
        }
    }

    fn attempt(&self, body: &str, n: usize, gradient: bool) -> Result<PointGradients, Failure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let mut response = request.send(body).map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| self.transport(e))?;
        if !(200..300).contains(&status) {
            return Err(Failure {
                retry: status >= 500,
                reason: format!("HTTP status {status}; body: {}", body_start(&text)),
            });
        }
        parse_answer(&text, n, self.dim, gradient).map_err(|reason| Failure {
            retry: false,
            reason: format!(
                "HTTP status {status}: {reason}; body: {}",
                body_start(&text)
            ),
        })
    }

    fn transport(&self, e: ureq::Error) -> Failure {
        match e {
            ureq::Error::Timeout(_) => Failure {
                retry: true,
                reason: format!(
                    "no answer within the timeout of {} s",
                    self.timeout.as_secs_f64()
                ),
            },
            ureq::Error::Io(e) => Failure {
                retry: true,
                reason: format!("connection failed: {e}"),
            },
            ureq::Error::ConnectionFailed => Failure {
                retry: true,
                reason: "connection failed".to_string(),
            },
            other => Failure {
                retry: false,
                reason: format!("request failed: {other}"),
            },
        }
    }

    /// The points in requests of `batch`, `concurrency` in flight; the first error ends
    /// the call (requests not yet sent are not sent).
    fn predict_all(&self, points: &[Vec<f64>], gradient: bool) -> Result<PointGradients, String> {
        let chunks: Vec<&[Vec<f64>]> = points.chunks(self.batch).collect();
        if chunks.len() <= 1 {
            return self.request(points, gradient);
        }
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<PointGradients, String>>>> =
            Mutex::new((0..chunks.len()).map(|_| None).collect());
        let failed = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..self.concurrency.min(chunks.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= chunks.len() || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = self.request(chunks[i], gradient);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                });
            }
        });
        let mut values = Vec::with_capacity(points.len());
        let mut gradients = Vec::new();
        for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
            match r {
                Some(Ok((v, g))) => {
                    values.extend(v);
                    gradients.extend(g);
                }
                Some(Err(e)) => return Err(e),
                // Not sent because another request failed; that one's error comes first
                // or later in this loop.
                None => continue,
            }
        }
        if values.len() != points.len() {
            return Err(format!("{}: requests were not all answered", self.url));
        }
        Ok((values, gradients))
    }
}

impl Backend for HttpModel {
    fn label(&self) -> &str {
        &self.url
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn predict(&self, points: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        self.predict_all(points, false).map(|(v, _)| v)
    }
    fn predict_with_gradient(&self, points: &[Vec<f64>]) -> Option<Result<PointGradients, String>> {
        if !self.gradient {
            return None;
        }
        if points.is_empty() {
            return Some(Ok((Vec::new(), Vec::new())));
        }
        Some(self.predict_all(points, true))
    }
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

fn body_start(text: &str) -> String {
    let start: String = text.chars().take(BODY_START).collect();
    let more = if text.chars().count() > BODY_START {
        "..."
    } else {
        ""
    };
    format!("`{}`{more}", start.replace('\n', " "))
}

/// Reads `{"response": [...]}` (and `"gradient"` when asked) for `n` points of `dim`
/// values; every value must be a finite number.
pub fn parse_answer(
    text: &str,
    n: usize,
    dim: usize,
    gradient: bool,
) -> Result<PointGradients, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let t = text.trim_start();
        if t.starts_with('<') {
            "the answer is HTML, not JSON".to_string()
        } else if ["NaN", "Infinity"].iter().any(|w| text.contains(w)) {
            "the answer holds a non-finite value (NaN or Infinity), which is not JSON".to_string()
        } else {
            format!("the answer is not JSON ({e})")
        }
    })?;
    let Some(object) = value.as_object() else {
        return Err("the answer is not a JSON object with a `response` array".to_string());
    };
    let Some(response) = object.get("response").and_then(Value::as_array) else {
        return Err("the answer has no `response` array".to_string());
    };
    if response.len() != n {
        return Err(format!(
            "`response` has {} values for {n} points",
            response.len()
        ));
    }
    let values = response
        .iter()
        .enumerate()
        .map(|(i, v)| {
            finite(v).ok_or_else(|| format!("response[{i}] is `{v}`, not a finite number"))
        })
        .collect::<Result<Vec<f64>, String>>()?;
    if !gradient {
        return Ok((values, Vec::new()));
    }
    let Some(rows) = object.get("gradient").and_then(Value::as_array) else {
        return Err(
            "the answer has no `gradient` array (the problem says gradient = true)".to_string(),
        );
    };
    if rows.len() != n {
        return Err(format!("`gradient` has {} rows for {n} points", rows.len()));
    }
    let mut gradients = Vec::with_capacity(n);
    for (i, row) in rows.iter().enumerate() {
        let Some(row) = row.as_array().filter(|r| r.len() == dim) else {
            return Err(format!("gradient[{i}] is not an array of {dim} numbers"));
        };
        gradients.push(
            row.iter()
                .enumerate()
                .map(|(j, v)| {
                    finite(v)
                        .ok_or_else(|| format!("gradient[{i}][{j}] is `{v}`, not a finite number"))
                })
                .collect::<Result<Vec<f64>, String>>()?,
        );
    }
    Ok((values, gradients))
}

fn finite(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::parse_answer;

    #[test]
    fn answers_are_checked() {
        assert_eq!(
            parse_answer(r#"{"response": [1.5, 2]}"#, 2, 3, false)
                .unwrap()
                .0,
            vec![1.5, 2.0]
        );
        let e = parse_answer(r#"{"response": [1.5]}"#, 2, 3, false).unwrap_err();
        assert!(e.contains("1 values for 2 points"), "{e}");
        let e = parse_answer(r#"{"response": [NaN, 1]}"#, 2, 3, false).unwrap_err();
        assert!(e.contains("non-finite"), "{e}");
        let e = parse_answer(r#"{"response": [null, 1]}"#, 2, 3, false).unwrap_err();
        assert!(e.contains("response[0]"), "{e}");
        let e = parse_answer("<html><body>502 Bad Gateway</body></html>", 2, 3, false).unwrap_err();
        assert!(e.contains("HTML"), "{e}");
        let e = parse_answer(r#"{"predictions": [1, 2]}"#, 2, 3, false).unwrap_err();
        assert!(e.contains("no `response`"), "{e}");
        let (v, g) =
            parse_answer(r#"{"response": [1], "gradient": [[1, 2, 3]]}"#, 1, 3, true).unwrap();
        assert_eq!((v, g), (vec![1.0], vec![vec![1.0, 2.0, 3.0]]));
        let e = parse_answer(r#"{"response": [1], "gradient": [[1, 2]]}"#, 1, 3, true).unwrap_err();
        assert!(e.contains("gradient[0]"), "{e}");
    }
}
