//! Prometheus metrics, on a listener of their own (`server.metrics_listen`):
//! never served with the portal, so they are never exposed with it.
//!
//! - `ecr_portal_http_requests_total{route,method,status}` and
//!   `ecr_portal_http_request_duration_seconds{route,method}` (the route's
//!   pattern, `/api/v1/requests/{id}`, never the raw path);
//! - `ecr_portal_applies_total{outcome}` and `ecr_portal_apply_duration_seconds{outcome}`;
//! - `ecr_portal_aws_calls_total{operation,error}` (every SDK call: `error` is
//!   `none`, `http_<status>` or `network`; counted by `aws::CountAwsCalls`);
//! - read from the database at each scrape: `ecr_portal_requests_waiting`,
//!   `ecr_portal_oldest_waiting_request_age_seconds`, `ecr_portal_repositories_drifted`,
//!   `ecr_portal_outbox_backlog`, `ecr_portal_audit_events_total`.
//!
//! The `metrics` facade with `metrics-exporter-prometheus`'s recorder, rendered
//! by our own axum listener (the exporter's own HTTP listener would be a second
//! HTTP stack for one route).
use crate::service::PortalService;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The process's recorder, installed on first use (metrics are per process, like the log).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only what this one sees");
            }
            handle
        })
        .clone()
}

/// HTTP requests by route pattern, method and status, with their latency.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(static or unknown)".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("ecr_portal_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("ecr_portal_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// One apply attempt's outcome and duration (the worker calls it).
pub fn apply_finished(outcome: &crate::service::ApplyOutcome, started: Instant) {
    use crate::service::ApplyOutcome::*;
    let outcome = match outcome {
        Idle => return,
        Applied(_) => "applied",
        Failed(..) => "failed",
        NeedsReapproval(_) => "needs_reapproval",
        Deferred(_) => "deferred",
        LostLease(_) => "lost_lease",
    };
    metrics::counter!("ecr_portal_applies_total", "outcome" => outcome).increment(1);
    metrics::histogram!("ecr_portal_apply_duration_seconds", "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
}

/// `GET /metrics`: the recorder's metrics plus the state read from the database now.
async fn scrape(State(service): State<Arc<PortalService>>) -> Response {
    use axum::response::IntoResponse;
    match crate::db::gauges(&service.db.pool).await {
        Ok(g) => {
            metrics::gauge!("ecr_portal_requests_waiting").set(g.waiting as f64);
            let age = g.oldest_waiting_at.map_or(0.0, |at| ((service.now() - at).max(0) as f64) / 1000.0);
            metrics::gauge!("ecr_portal_oldest_waiting_request_age_seconds").set(age);
            metrics::gauge!("ecr_portal_repositories_drifted").set(g.drifted as f64);
            metrics::gauge!("ecr_portal_outbox_backlog").set(g.outbox as f64);
            metrics::counter!("ecr_portal_audit_events_total").absolute(u64::try_from(g.audit_events).unwrap_or(0));
        }
        Err(e) => tracing::warn!("metrics: reading the portal's state: {e}"),
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle().render()).into_response()
}

/// Serves `/metrics` on its own listener until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<PortalService>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let app = axum::Router::new().route("/metrics", axum::routing::get(scrape)).with_state(service);
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!("metrics listener: {e}");
    }
}
