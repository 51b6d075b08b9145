//! In-process workers: claim a job under a lease, solve it on the blocking pool, renew
//! the lease every third of it, store the outcome once (contract `service.md` section 3).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_core::{CancelToken, SolveOptions};
use atlas_store::{Claimed, Finished, Heartbeat, JobError, JobKind};
use serde_json::Value;
use tracing::Instrument;

use crate::request::{check_job, JobRequest};
use crate::AppState;

/// Resolves once the flag is true (the guard is dropped inside: the future stays `Send`).
pub(crate) async fn until_true(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}

/// One worker: claims and runs jobs until shutdown begins.
pub(crate) async fn run(state: Arc<AppState>, index: usize) {
    let mut stopping = state.stopping.subscribe();
    loop {
        if *stopping.borrow() {
            break;
        }
        match state
            .storage
            .claim(&state.worker_name, state.config.lease)
            .await
        {
            Ok(Some(claimed)) => {
                let span = tracing::info_span!("job", job_id = %claimed.job.id, worker = index);
                run_claimed(&state, claimed).instrument(span).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = state.storage.wait_for_work(Duration::from_secs(2)) => {}
                    _ = until_true(&mut stopping) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claim failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = until_true(&mut stopping) => {}
                }
            }
        }
    }
}

/// The outcome of one solve.
enum Outcome {
    Result(Value),
    Error(JobError),
}

fn solve(state: &AppState, mut request: Value, token: CancelToken) -> Outcome {
    // A scenario job carries its name and budget beside the job request.
    if let Some(map) = request.as_object_mut() {
        map.remove("scenario");
    }
    let request: JobRequest = match serde_json::from_value(request) {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Error(JobError::new(
                "internal",
                format!("stored request unreadable: {e}"),
            ))
        }
    };
    let checked = match check_job(
        &request,
        &state.registry,
        &state.config.default_optimizer,
        &state.config.limits,
    ) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Error(JobError {
                kind: e.kind.to_string(),
                message: e.message,
                field: e.field,
            })
        }
    };
    let requested = request.time_limit_s.map(Duration::from_secs_f64);
    let time_limit = match (requested, state.config.job_time_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let options = SolveOptions {
        seed: request.seed,
        time_limit,
        cancel: Some(token),
        ..Default::default()
    };
    match atlas_sweep::solve_cached(
        &state.registry,
        state.cache.as_deref(),
        &checked.problem,
        &checked.compiled,
        checked.config.as_ref(),
        options,
    ) {
        Ok(result) => {
            if result.cache != Some(atlas_core::CacheStatus::Hit) {
                state.metrics.model_evaluations(result.metrics.evaluations);
            }
            if let Some(status) = result.cache {
                state.metrics.cache_request(status);
            }
            match serde_json::to_value(&result) {
                Ok(v) => Outcome::Result(v),
                Err(e) => Outcome::Error(JobError::new(
                    "internal",
                    format!("cannot serialize the result: {e}"),
                )),
            }
        }
        Err(e) => {
            let api: crate::ApiError = e.into();
            Outcome::Error(JobError {
                kind: api.kind.to_string(),
                message: api.message,
                field: api.field,
            })
        }
    }
}

async fn run_claimed(state: &Arc<AppState>, claimed: Claimed) {
    let Claimed { job, lease } = claimed;
    if job.attempts > 1 {
        state.metrics.lease_expired();
    }
    if let Some(started) = job.started_at {
        let wait = (started - job.created_at).to_std().unwrap_or_default();
        state.metrics.queue_wait(wait);
    }
    tracing::info!(attempt = lease.attempt, "job claimed");
    let Some(request) = job.request.clone() else {
        finish(
            state,
            &lease,
            job.kind,
            Outcome::Error(JobError::new("internal", "the job has no stored request")),
            "?",
        )
        .await;
        return;
    };
    let token = CancelToken::new();
    state
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(job.id.clone(), (token.clone(), job.parent.clone()));
    let optimizer = job.optimizer.clone().unwrap_or_default();
    let started = Instant::now();
    let solve_state = state.clone();
    let solve_token = token.clone();
    let span = tracing::Span::current();
    let mut handle = tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            solve(&solve_state, request, solve_token)
        }))
    });
    let renew_every = state.config.lease / 3;
    let mut drain_over = state.drain_over.subscribe();
    let outcome = loop {
        tokio::select! {
            joined = &mut handle => {
                break match joined {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(panic)) => {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "a panic".into());
                        tracing::error!(%message, "the solve panicked");
                        Outcome::Error(JobError::new("internal", format!("the solve panicked: {message}")))
                    }
                    Err(e) => Outcome::Error(JobError::new("internal", format!("the solve task failed: {e}"))),
                };
            }
            _ = tokio::time::sleep(renew_every) => {
                match state.storage.heartbeat(&lease, state.config.lease).await {
                    Ok(Heartbeat::Renewed(_)) => {}
                    Ok(Heartbeat::Cancelled) => {
                        tracing::info!("cancelled: stopping at the next iteration");
                        token.cancel();
                    }
                    Ok(Heartbeat::Lost) => {
                        tracing::warn!("lease lost: another attempt holds the job");
                        state.metrics.lease_expired();
                        token.cancel();
                    }
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
                }
            }
            _ = until_true(&mut drain_over) => {
                token.cancel();
                match state.storage.requeue(&lease).await {
                    Ok(_) => tracing::info!("handed back to the queue (shutdown)"),
                    Err(e) => tracing::warn!(error = %e, "could not hand the job back; its lease will expire"),
                }
                state.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.id);
                return;
            }
        }
    };
    state
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&job.id);
    state.metrics.job_duration(&optimizer, started.elapsed());
    finish(state, &lease, job.kind, outcome, &optimizer).await;
}

async fn finish(
    state: &Arc<AppState>,
    lease: &atlas_store::Lease,
    kind: JobKind,
    outcome: Outcome,
    optimizer: &str,
) {
    let mut tries = 0;
    let answer = loop {
        let answer = match &outcome {
            Outcome::Result(v) => state.storage.finish(lease, v.clone()).await,
            Outcome::Error(e) => state.storage.fail(lease, e.clone()).await,
        };
        match answer {
            Ok(a) => break Some(a),
            Err(e) if tries < 10 => {
                tries += 1;
                tracing::warn!(error = %e, "storing the outcome failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "storing the outcome failed; the lease will expire and the job run again");
                break None;
            }
        }
    };
    match answer {
        Some(Finished::Recorded {
            state: job_state,
            sweep_completed,
        }) => {
            tracing::info!(state = %job_state, optimizer, "job finished");
            state.metrics.finished(kind, job_state);
            if let Some(parent) = sweep_completed {
                if let Some(sweep_state) = crate::sweep::assemble(state, &parent).await {
                    state.metrics.finished(JobKind::Sweep, sweep_state);
                }
                let _ = state.finished.send(parent);
            }
        }
        Some(Finished::Discarded { state: job_state }) => {
            tracing::info!(state = %job_state, "outcome discarded: another attempt finished first");
        }
        None => {}
    }
    let _ = state.finished.send(lease.job.clone());
}
