//! The apply worker: runs beside the HTTP server, takes approved requests one
//! at a time, and sleeps until woken by an approval or the poll interval.
use crate::service::{ApplyOutcome, PortalService};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub async fn run(service: Arc<PortalService>, poll: Duration, lease: Duration, mut stop: watch::Receiver<bool>) {
    let owner = format!("worker-{}", uuid::Uuid::new_v4().simple());
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
    tracing::info!(%owner, "apply worker started");
    loop {
        if *stop.borrow() {
            break;
        }
        match service.apply_next(&owner, lease_ms).await {
            Ok(ApplyOutcome::Idle) => {}
            Ok(outcome) => {
                tracing::info!(?outcome, "apply finished");
                continue;
            }
            Err(e) => tracing::error!("apply worker: {e}"),
        }
        tokio::select! {
            _ = service.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!("apply worker stopped");
}
