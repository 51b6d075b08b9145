//! The routes of contract `service.md` section 2.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_store::{Job, JobId, JobKind, JobQuery, JobState, NewJob};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, ErrorBody};
use crate::request::{check_job, parse_problem, ApiJson, JobRequest, ValidateRequest};
use crate::AppState;

/// Request ids: process-unique, `<pid>-<n>` (a client's own `x-request-id` is kept).
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", std::process::id()))
            .ok()
            .map(RequestId::new)
    }
}

/// The application: every route with its layers.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/optimizers", get(optimizers))
        .route("/v1/validate", axum::routing::post(validate))
        .route("/v1/jobs", axum::routing::post(submit_job).get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/v1/sweeps", axum::routing::post(crate::sweep::submit))
        .route("/v1/sweeps/{id}", get(crate::sweep::get))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ));
    let request_id = header::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(crate::openapi::document))
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::observe::track_http,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("the request handler panicked").into_response()
        }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs_f64(crate::MAX_WAIT_S + 30.0),
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, Counter::default()))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process runs", body = Object)))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "The storage answers", body = Object), (status = 503, description = "Not ready", body = ErrorBody)))]
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if *state.stopping.borrow() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", "shutting down")
            .into_response();
    }
    match tokio::time::timeout(Duration::from_secs(5), state.storage.ping()).await {
        Ok(Ok(())) => {
            Json(json!({"status": "ready", "storage": state.storage.backend()})).into_response()
        }
        Ok(Err(e)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the storage did not answer within 5 s",
        )
        .into_response(),
    }
}

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(stats) = state.storage.queue_stats().await {
        state.metrics.queue(stats.queued, stats.running);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/optimizers", tag = "v1", security(("bearer" = [])), responses((status = 200, description = "The optimizers of this build (`atlas list --format json`)", body = Vec<Object>), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub(crate) async fn optimizers(State(state): State<Arc<AppState>>) -> Response {
    Json(state.registry.list()).into_response()
}

/// The answer of `POST /v1/validate`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Validation {
    /// Number of variables (channels x periods).
    pub variables: usize,
    /// What the problem uses beyond bounds and a budget.
    pub features: Vec<String>,
    /// Optimizers of this build that accept it.
    pub optimizers: Vec<String>,
}

#[utoipa::path(post, path = "/v1/validate", tag = "v1", security(("bearer" = [])), request_body = ValidateRequest, responses((status = 200, description = "The problem is valid", body = Validation), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 415, description = "Not JSON", body = ErrorBody)))]
pub(crate) async fn validate(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<ValidateRequest>,
) -> Result<Json<Validation>, ApiError> {
    let task_state = state.clone();
    tokio::task::spawn_blocking(move || {
        let problem = parse_problem(&body.problem, &task_state.config.limits)?;
        let compiled = atlas_core::Compiled::new(&problem)?;
        atlas_core::Scaled::new(&compiled)?;
        Ok(Json(Validation {
            variables: compiled.layout().len(),
            features: compiled.features().iter().map(|f| f.describe()).collect(),
            optimizers: task_state.registry.capable_of(&compiled),
        }))
    })
    .await
    .map_err(|e| ApiError::internal(format!("validation task failed: {e}")))?
}

/// `?wait=S`, checked.
pub(crate) fn wait_param(query: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
    let Some(raw) = query.get("wait") else {
        return Ok(None);
    };
    let s: f64 = raw.trim().parse().map_err(|_| {
        ApiError::bad_field("wait", format!("wait: `{raw}` is not a number of seconds"))
    })?;
    if !(s.is_finite() && (0.0..=crate::MAX_WAIT_S).contains(&s)) {
        return Err(ApiError::bad_field(
            "wait",
            format!(
                "wait: must be between 0 and {} seconds (got {raw})",
                crate::MAX_WAIT_S
            ),
        ));
    }
    Ok((s > 0.0).then(|| Duration::from_secs_f64(s)))
}

/// 503 once shutdown began; 429 with `Retry-After` when the queue is full.
pub(crate) async fn admit(state: &AppState, adding: u64) -> Result<(), ApiError> {
    if *state.stopping.borrow() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the service is shutting down and takes no new jobs",
        ));
    }
    let stats = state.storage.queue_stats().await?;
    if stats.queued + adding > state.config.max_queue {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            format!(
                "the queue holds {} jobs (limit {}, --max-queue); retry later",
                stats.queued, state.config.max_queue
            ),
        );
        // A rough time for the queue to move: a second per worker's share of it, 1..60 s.
        let workers = state.config.workers.max(1) as u64;
        e.retry_after_s = Some((stats.queued / workers / 100).clamp(1, 60));
        return Err(e);
    }
    Ok(())
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect())
}

#[utoipa::path(post, path = "/v1/jobs", tag = "v1", security(("bearer" = [])), request_body = JobRequest, params(("wait" = Option<f64>, Query, description = "Wait up to this many seconds for the job to finish", minimum = 0, maximum = 600)), responses((status = 200, description = "The finished job (with `wait`)", body = Object), (status = 202, description = "Queued", body = Object), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 415, description = "Not JSON", body = ErrorBody), (status = 422, description = "The optimizer cannot honour the problem", body = ErrorBody), (status = 429, description = "Queue full (see Retry-After)", body = ErrorBody), (status = 503, description = "Shutting down or storage unavailable", body = ErrorBody)))]
pub(crate) async fn submit_job(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ApiJson(mut body): ApiJson<JobRequest>,
) -> Result<Response, ApiError> {
    let wait = wait_param(&query)?;
    admit(&state, 1).await?;
    let task_state = state.clone();
    let checked_body = body.clone();
    let (optimizer, name) = tokio::task::spawn_blocking(move || {
        check_job(
            &checked_body,
            &task_state.registry,
            &task_state.config.default_optimizer,
            &task_state.config.limits,
        )
        .map(|c| (c.optimizer, c.compiled.name().to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(format!("validation task failed: {e}")))??;
    // The worker runs the optimizer resolved now, whatever the default is later.
    body.optimizer = Some(optimizer.clone());
    let request = serde_json::to_value(&body)
        .map_err(|e| ApiError::internal(format!("cannot store the request: {e}")))?;
    let submitted = state
        .storage
        .submit(NewJob {
            request,
            optimizer: Some(optimizer),
            problem: Some(name),
            idempotency_key: idempotency_key(&headers),
        })
        .await?;
    let job = submitted.job;
    if submitted.created {
        state.metrics.submitted(JobKind::Job, 1);
        tracing::info!(job_id = %job.id, "job queued");
    }
    if let Some(wait) = wait {
        if let Some(done) = wait_for(&state, &job.id, wait).await? {
            return Ok((StatusCode::OK, Json(done)).into_response());
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/jobs/{}", job.id))],
        Json(json!({"id": job.id, "state": job.state})),
    )
        .into_response())
}

/// Waits until the job is finished (`Some`) or `timeout` passes (`None`). Jobs finished
/// in this process wake it at once; jobs finished by other processes are seen within
/// half a second.
pub(crate) async fn wait_for(
    state: &AppState,
    id: &JobId,
    timeout: Duration,
) -> Result<Option<Job>, ApiError> {
    let deadline = Instant::now() + timeout;
    let mut finished = state.finished.subscribe();
    loop {
        let job = state
            .storage
            .get(id)
            .await?
            .ok_or_else(|| ApiError::not_found("job", id.as_str()))?;
        if job.state.is_terminal() {
            return Ok(Some(job));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let nap = (deadline - now).min(Duration::from_millis(500));
        let _ = tokio::time::timeout(nap, async {
            loop {
                match finished.recv().await {
                    Ok(done) if &done == id => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        })
        .await;
    }
}

/// A job id from the path; 404 when it cannot be one (nothing has that id).
pub(crate) fn parse_id(what: &str, raw: &str) -> Result<JobId, ApiError> {
    JobId::from_str(raw).map_err(|_| ApiError::not_found(what, raw))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "v1", security(("bearer" = [])), params(("id" = String, Path, description = "Job id")), responses((status = 200, description = "The job", body = Object), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 404, description = "Unknown id", body = ErrorBody)))]
pub(crate) async fn get_job(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let id = parse_id("job", &id)?;
    state
        .storage
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("job", id.as_str()))
}

#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "v1", security(("bearer" = [])), params(("id" = String, Path, description = "Job id")), responses((status = 200, description = "The job, now cancelled (or already finished)", body = Object), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 404, description = "Unknown id", body = ErrorBody)))]
pub(crate) async fn cancel_job(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let id = parse_id("job", &id)?;
    let job = state
        .storage
        .cancel(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", id.as_str()))?;
    // A job running here (or a scenario of a sweep cancelled here) stops at its next
    // iteration, not only at its next heartbeat.
    for (job_id, (token, parent)) in state
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        if *job_id == id || parent.as_ref() == Some(&id) {
            token.cancel();
        }
    }
    tracing::info!(job_id = %id, state = %job.state, "cancel requested");
    Ok(Json(job))
}

/// A page of `GET /v1/jobs`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobList {
    /// The jobs, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub jobs: Vec<Job>,
    /// The cursor of the next page (`after=`), `null` on the last page.
    pub next: Option<String>,
}

#[utoipa::path(get, path = "/v1/jobs", tag = "v1", security(("bearer" = [])), params(("state" = Option<String>, Query, description = "queued, running, succeeded, failed or cancelled", pattern = r"^(queued|running|succeeded|failed|cancelled)$"), ("kind" = Option<String>, Query, description = "job, sweep or scenario", pattern = r"^(job|sweep|scenario)$"), ("limit" = Option<u32>, Query, description = "1 to 1000", minimum = 1, maximum = 1000), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page (a job id)", pattern = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$")), responses((status = 200, description = "A page of jobs", body = JobList), (status = 400, description = "Bad filter or cursor", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub(crate) async fn list_jobs(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<JobList>, ApiError> {
    let mut q = JobQuery::default();
    // An empty value is a value (`?state=` is not a state), not an absent filter.
    if let Some(s) = query.get("state") {
        q.state = Some(JobState::from_str(s)?);
    }
    if let Some(k) = query.get("kind") {
        q.kind = Some(JobKind::from_str(k)?);
    }
    if let Some(l) = query.get("limit") {
        let limit: u32 = l.parse().map_err(|_| {
            ApiError::bad_field("limit", format!("limit: `{l}` is not a whole number"))
        })?;
        if !(1..=atlas_store::MAX_PAGE).contains(&limit) {
            return Err(ApiError::bad_field(
                "limit",
                format!(
                    "limit: must be 1 to {} (got {limit})",
                    atlas_store::MAX_PAGE
                ),
            ));
        }
        q.limit = limit;
    }
    q.after = query.get("after").cloned();
    let page = state.storage.list(&q).await?;
    Ok(Json(JobList {
        jobs: page.jobs,
        next: page.next,
    }))
}
