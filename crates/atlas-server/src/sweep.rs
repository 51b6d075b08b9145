//! Sweeps: a parent plus one scenario job per scenario (budget point or patch), run by
//! any worker; the worker that finishes the last scenario assembles the sweep result of
//! `scenarios.md` section 3.

use std::collections::HashMap;
use std::sync::Arc;

use atlas_core::{CacheStatus, OptimizationResult, Problem};
use atlas_store::{JobId, JobKind, JobQuery, JobState, NewScenario, NewSweep};
use atlas_sweep::{BudgetGrid, ScenarioError, ScenarioResult, ScenarioSpec, SweepResult};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::api::{admit, parse_id, wait_param};
use crate::error::{ApiError, ErrorBody};
use crate::request::{check_job, parse_problem, ApiJson, JobRequest};
use crate::AppState;

/// Budget points: a `--budgets` spec (`0.5x:2x:16`, `1e6,2e6`) or a list of amounts.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Budgets {
    /// `START:STOP:N` or a comma list, as `atlas sweep --budgets`.
    Spec(String),
    /// Amounts.
    List(Vec<f64>),
}

/// `POST /v1/sweeps`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    /// The base problem (`problem-format.md`) as a JSON object.
    #[schema(value_type = Object)]
    pub problem: Value,
    /// Budget points (each scenario, or the base problem, at every budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Budgets>,
    /// Scenarios as in `scenarios.md` (inline), each a patch of the base problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub scenarios: Option<Vec<ScenarioSpec>>,
    /// The optimizer of every scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<String>,
    /// Its settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Map<String, Value>>,
}

/// One scenario to queue: its name, budget and complete problem.
struct Planned {
    name: String,
    budget: f64,
    problem: Problem,
}

fn plan(request: &SweepRequest, state: &AppState) -> Result<Vec<Planned>, ApiError> {
    let limits = &state.config.limits;
    let base = parse_problem(&request.problem, limits)?;
    let variants: Vec<(String, Problem)> = match &request.scenarios {
        Some(specs) => {
            if specs.len() > limits.max_scenarios {
                return Err(too_many(specs.len(), limits.max_scenarios, "scenarios"));
            }
            atlas_sweep::scenario::apply_all(&base, specs)
                .map_err(|e| ApiError::from(atlas_core::Error::Input(e)))?
                .into_iter()
                .map(|s| (s.name, s.problem))
                .collect()
        }
        None => vec![(String::new(), base.clone())],
    };
    let grid = match &request.budgets {
        None => None,
        Some(Budgets::Spec(spec)) => Some(BudgetGrid::parse(spec).map_err(|mut e| {
            e.field = "budgets".into();
            ApiError::from(atlas_core::Error::Input(e))
        })?),
        Some(Budgets::List(values)) => {
            let text = values
                .iter()
                .map(|v| format!("{v:e}"))
                .collect::<Vec<_>>()
                .join(",");
            Some(BudgetGrid::parse(&text).map_err(|mut e| {
                e.field = "budgets".into();
                ApiError::from(atlas_core::Error::Input(e))
            })?)
        }
    };
    if request.scenarios.is_none() && grid.is_none() {
        return Err(ApiError::bad_field(
            "budgets",
            "budgets: give `budgets` (a spec such as \"0.5x:2x:8\" or a list of amounts) or `scenarios`",
        ));
    }
    let mut planned = Vec::new();
    for (name, problem) in variants {
        match &grid {
            None => planned.push(Planned {
                budget: problem.budget,
                name,
                problem,
            }),
            Some(grid) => {
                let budgets = grid.budgets(problem.budget).map_err(|mut e| {
                    e.field = "budgets".into();
                    ApiError::from(atlas_core::Error::Input(e))
                })?;
                for b in budgets {
                    let mut p = problem.clone();
                    p.budget = b;
                    let point = format!("budget={}", atlas_sweep::grid::fmt_budget(b));
                    let label = if name.is_empty() {
                        point
                    } else {
                        format!("{name} {point}")
                    };
                    planned.push(Planned {
                        name: label,
                        budget: b,
                        problem: p,
                    });
                }
            }
        }
        if planned.len() > limits.max_scenarios {
            return Err(too_many(planned.len(), limits.max_scenarios, "budgets"));
        }
    }
    Ok(planned)
}

fn too_many(n: usize, max: usize, field: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "limit",
        format!(
            "{field}: {n} scenarios is more than this service takes in one sweep (at most {max})"
        ),
    )
    .with_field(field)
}

#[utoipa::path(post, path = "/v1/sweeps", tag = "v1", security(("bearer" = [])), request_body = SweepRequest, params(("wait" = Option<f64>, Query, description = "Wait up to this many seconds for the sweep to finish", minimum = 0, maximum = 600)), responses((status = 200, description = "The finished sweep (with `wait`)", body = Object), (status = 202, description = "Queued", body = Object), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 415, description = "Not JSON", body = ErrorBody), (status = 422, description = "The optimizer cannot honour a scenario", body = ErrorBody), (status = 429, description = "Queue full", body = ErrorBody), (status = 503, description = "Shutting down", body = ErrorBody)))]
pub(crate) async fn submit(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SweepRequest>,
) -> Result<Response, ApiError> {
    let wait = wait_param(&query)?;
    let task_state = state.clone();
    let request = body.clone();
    let (optimizer, base_name, scenarios) = tokio::task::spawn_blocking(move || {
        let planned = plan(&request, &task_state)?;
        let mut optimizer = request.optimizer.clone();
        let mut scenarios = Vec::with_capacity(planned.len());
        for (i, p) in planned.into_iter().enumerate() {
            let job = JobRequest {
                problem: serde_json::to_value(&p.problem)
                    .map_err(|e| ApiError::internal(format!("cannot store a scenario: {e}")))?,
                optimizer: optimizer.clone(),
                settings: request.settings.clone(),
                time_limit_s: None,
                seed: None,
            };
            let checked = check_job(
                &job,
                &task_state.registry,
                &task_state.config.default_optimizer,
                &task_state.config.limits,
            )
            .map_err(|mut e| {
                if let Some(f) = &e.field {
                    e.field = Some(format!("scenarios[{i}] ({:?}): {f}", p.name));
                }
                e.message = format!("scenario {:?}: {}", p.name, e.message);
                e
            })?;
            optimizer = Some(checked.optimizer.clone());
            let mut job = job;
            job.optimizer = optimizer.clone();
            let mut stored = serde_json::to_value(&job)
                .map_err(|e| ApiError::internal(format!("cannot store a scenario: {e}")))?;
            stored["scenario"] = json!({"name": p.name, "budget": p.budget});
            scenarios.push(NewScenario {
                request: stored,
                optimizer: optimizer.clone(),
                problem: Some(p.name),
            });
        }
        let base_name = request
            .problem
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok::<_, ApiError>((optimizer, base_name, scenarios))
    })
    .await
    .map_err(|e| ApiError::internal(format!("validation task failed: {e}")))??;
    admit(&state, scenarios.len() as u64).await?;
    let total = scenarios.len();
    let submitted = state
        .storage
        .submit_sweep(NewSweep {
            request: serde_json::to_value(&body)
                .map_err(|e| ApiError::internal(format!("cannot store the sweep: {e}")))?,
            optimizer,
            problem: Some(base_name),
            scenarios,
            idempotency_key: headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        })
        .await?;
    let job = submitted.job;
    if submitted.created {
        state.metrics.submitted(JobKind::Sweep, 1);
        state.metrics.submitted(JobKind::Scenario, total as u64);
        tracing::info!(job_id = %job.id, total, "sweep queued");
    }
    if let Some(wait) = wait {
        if crate::api::wait_for(&state, &job.id, wait).await?.is_some() {
            let status = status_json(&state, &job.id).await?;
            return Ok((StatusCode::OK, Json(status)).into_response());
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/sweeps/{}", job.id))],
        Json(json!({"id": job.id, "state": job.state, "total": total})),
    )
        .into_response())
}

async fn status_json(state: &AppState, id: &JobId) -> Result<Value, ApiError> {
    let status = state
        .storage
        .sweep_status(id)
        .await?
        .ok_or_else(|| ApiError::not_found("sweep", id.as_str()))?;
    let mut out = json!({
        "id": status.job.id,
        "state": status.job.state,
        "total": status.total,
        "done": status.done,
        "failed": status.failed,
        "cancelled": status.cancelled,
        "created_at": status.job.created_at,
        "finished_at": status.job.finished_at,
    });
    if let Some(result) = status.job.result {
        out["result"] = result;
    }
    if let Some(error) = status.job.error {
        out["error"] = serde_json::to_value(error).unwrap_or(Value::Null);
    }
    Ok(out)
}

#[utoipa::path(get, path = "/v1/sweeps/{id}", tag = "v1", security(("bearer" = [])), params(("id" = String, Path, description = "Sweep id")), responses((status = 200, description = "Progress, and the sweep result once done", body = Object), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 404, description = "Unknown id", body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id("sweep", &id)?;
    status_json(&state, &id).await.map(Json)
}

/// Builds the sweep result from its scenario jobs and stores it on the parent (once);
/// answers the parent's final state.
pub(crate) async fn assemble(state: &AppState, parent: &JobId) -> Option<JobState> {
    match build_result(state, parent).await {
        Ok((result, final_state)) => match state.storage.set_sweep_result(parent, result).await {
            Ok(_) => {
                tracing::info!(job_id = %parent, "sweep result stored");
                Some(final_state)
            }
            Err(e) => {
                tracing::error!(job_id = %parent, error = %e, "cannot store the sweep result");
                None
            }
        },
        Err(e) => {
            tracing::error!(job_id = %parent, error = %e.message, "cannot assemble the sweep result");
            None
        }
    }
}

async fn build_result(state: &AppState, parent: &JobId) -> Result<(Value, JobState), ApiError> {
    let parent_job = state
        .storage
        .get(parent)
        .await?
        .ok_or_else(|| ApiError::not_found("sweep", parent.as_str()))?;
    let mut children = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .storage
            .list(&JobQuery {
                parent: Some(parent.clone()),
                limit: atlas_store::MAX_PAGE,
                after: after.clone(),
                ..Default::default()
            })
            .await?;
        children.extend(page.jobs);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for child in children {
        let full = state.storage.get(&child.id).await?.unwrap_or(child);
        let meta = full
            .request
            .as_ref()
            .and_then(|r| r.get("scenario"))
            .cloned()
            .unwrap_or(Value::Null);
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(full.problem.clone())
            .unwrap_or_default();
        let budget = meta.get("budget").and_then(Value::as_f64);
        let result: Option<OptimizationResult> = full
            .result
            .as_ref()
            .and_then(|r| serde_json::from_value(r.clone()).ok());
        match (full.state, result) {
            (JobState::Succeeded, Some(result)) => {
                let wall = match (full.started_at, full.finished_at) {
                    (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default().as_secs_f64(),
                    _ => result.metrics.wall_time_s,
                };
                scenarios.push(ScenarioResult {
                    name,
                    budget: budget.unwrap_or(result.total_spend),
                    status: result.status,
                    objective: result.objective,
                    bound: result.bound,
                    total_spend: result.total_spend,
                    totals: result.totals.clone(),
                    marginal_return: result.budget_multiplier,
                    warm_start: false,
                    cache: result.cache.unwrap_or(CacheStatus::Off),
                    wall_time_s: wall,
                    result,
                });
            }
            (state, _) => {
                let (kind, message) = match &full.error {
                    Some(e) => (e.kind.clone(), e.message.clone()),
                    None => (
                        state.as_str().to_string(),
                        format!("the scenario ended {state}"),
                    ),
                };
                errors.push(ScenarioError {
                    name,
                    budget,
                    kind,
                    message,
                });
            }
        }
    }
    fill_marginal_returns(&mut scenarios);
    let wall_time_s = match parent_job.finished_at {
        Some(f) => (f - parent_job.created_at)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64(),
        None => 0.0,
    };
    let result = SweepResult {
        atlas_version: atlas_sweep::ATLAS_VERSION.to_string(),
        base: parent_job.problem.clone().unwrap_or_default(),
        optimizer: parent_job.optimizer.clone().unwrap_or_default(),
        scenarios,
        errors,
        wall_time_s,
    };
    serde_json::to_value(&result)
        .map(|v| (v, parent_job.state))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Where a scenario has no budget multiplier, the central difference between its
/// neighbouring budget points of the same variant (the name before ` budget=`).
fn fill_marginal_returns(scenarios: &mut [ScenarioResult]) {
    let variant = |s: &ScenarioResult| -> String {
        match s.name.rfind("budget=") {
            Some(i) => s.name[..i].to_string(),
            None => s.name.clone(),
        }
    };
    let n = scenarios.len();
    for i in 0..n {
        if scenarios[i].marginal_return.is_some() {
            continue;
        }
        let v = variant(&scenarios[i]);
        let lo = (0..i).rev().find(|&j| variant(&scenarios[j]) == v);
        let hi = (i + 1..n).find(|&j| variant(&scenarios[j]) == v);
        let pair = match (lo, hi) {
            (Some(a), Some(b)) => Some((a, b)),
            (Some(a), None) => Some((a, i)),
            (None, Some(b)) => Some((i, b)),
            (None, None) => None,
        };
        if let Some((a, b)) = pair {
            let db = scenarios[b].budget - scenarios[a].budget;
            if db.abs() > 0.0 {
                scenarios[i].marginal_return =
                    Some((scenarios[b].objective - scenarios[a].objective) / db);
            }
        }
    }
}
