//! Prometheus metrics of contract `service.md` section 4, through the `metrics` facade
//! and its Prometheus exporter (rendered by `/metrics`; the exporter's own HTTP
//! listener is not built).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use atlas_store::{JobKind, JobState};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// Buckets of the duration histograms, in seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 1800.0,
];

/// The process's recorder (one per process: a second service in the same process, as in
/// tests, shares it).
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The metrics handle of the service.
#[derive(Clone)]
pub(crate) struct Metrics {
    handle: Option<PrometheusHandle>,
}

impl Metrics {
    /// Installs the Prometheus recorder (once per process) and describes the metrics.
    pub fn install() -> Self {
        let handle = HANDLE
            .get_or_init(|| {
                let recorder = PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                    .ok()?
                    .build_recorder();
                let handle = recorder.handle();
                metrics::set_global_recorder(recorder).ok()?;
                describe();
                Some(handle)
            })
            .clone();
        Self { handle }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default()
    }

    pub fn submitted(&self, kind: JobKind, n: u64) {
        metrics::counter!("atlas_jobs_submitted_total", "kind" => kind.as_str()).increment(n);
    }

    pub fn finished(&self, kind: JobKind, state: JobState) {
        metrics::counter!("atlas_jobs_finished_total", "kind" => kind.as_str(), "state" => state.as_str())
            .increment(1);
    }

    pub fn queue(&self, queued: u64, running: u64) {
        metrics::gauge!("atlas_jobs_queued").set(queued as f64);
        metrics::gauge!("atlas_jobs_running").set(running as f64);
    }

    pub fn job_duration(&self, optimizer: &str, d: Duration) {
        metrics::histogram!("atlas_job_duration_seconds", "optimizer" => optimizer.to_string())
            .record(d.as_secs_f64());
    }

    pub fn queue_wait(&self, d: Duration) {
        metrics::histogram!("atlas_queue_wait_seconds").record(d.as_secs_f64());
    }

    pub fn model_evaluations(&self, n: u64) {
        metrics::counter!("atlas_model_evaluations_total").increment(n);
    }

    /// One solve through the result cache: `hit` or `miss` over all its levels
    /// (`level="all"`; the cache does not say which level answered). Solves with the
    /// cache off are not counted.
    pub fn cache_request(&self, status: atlas_core::CacheStatus) {
        if status != atlas_core::CacheStatus::Off {
            metrics::counter!("atlas_cache_requests_total", "level" => "all", "outcome" => status.as_str())
                .increment(1);
        }
    }

    pub fn lease_expired(&self) {
        metrics::counter!("atlas_worker_leases_expired_total").increment(1);
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "atlas_jobs_submitted_total",
        "Jobs, sweeps and scenarios acknowledged"
    );
    describe_counter!(
        "atlas_jobs_finished_total",
        "Jobs that reached a final state in this process"
    );
    describe_gauge!(
        "atlas_jobs_queued",
        "Jobs and scenarios waiting for a worker"
    );
    describe_gauge!("atlas_jobs_running", "Jobs and scenarios held by a worker");
    describe_histogram!(
        "atlas_job_duration_seconds",
        Unit::Seconds,
        "Solve time of a job, by optimizer"
    );
    describe_histogram!(
        "atlas_queue_wait_seconds",
        Unit::Seconds,
        "Time from submission to the claim"
    );
    describe_counter!(
        "atlas_model_evaluations_total",
        "Objective evaluations of the solves"
    );
    describe_counter!(
        "atlas_cache_requests_total",
        "Result cache lookups, by level and outcome"
    );
    describe_counter!(
        "atlas_http_requests_total",
        "HTTP requests, by route and status"
    );
    describe_histogram!(
        "atlas_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request time, by route"
    );
    describe_counter!(
        "atlas_worker_leases_expired_total",
        "Leases that ran out (a job claimed again, or an attempt that lost its job)"
    );
    // Every series of the contract exists from the start, at zero.
    metrics::counter!("atlas_model_evaluations_total").increment(0);
    metrics::counter!("atlas_worker_leases_expired_total").increment(0);
    metrics::gauge!("atlas_jobs_queued").set(0.0);
    metrics::gauge!("atlas_jobs_running").set(0.0);
}

/// Counts and times every request by its route (the matched pattern, so ids do not
/// make new series).
pub(crate) async fn track_http(
    State(_state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("atlas_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("atlas_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}
