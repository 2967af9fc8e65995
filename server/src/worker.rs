//! The apply worker: runs beside the HTTP server, takes approved requests one
//! at a time, and sleeps until woken by an approval or the poll interval. On
//! each round it also ends temporary grants whose time is up, and every
//! `drift_every` it compares managed repositories with their approved state.
use crate::service::{ApplyOutcome, PortalService};
use app::domain::principal::SYSTEM_ACTOR;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub struct Settings {
    pub poll: Duration,
    pub lease: Duration,
    pub drift_every: Duration,
}

pub async fn run(service: Arc<PortalService>, settings: Settings, mut stop: watch::Receiver<bool>) {
    let owner = format!("worker-{}", uuid::Uuid::new_v4().simple());
    let lease_ms = i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX / 2);
    let mut next_drift_check = Instant::now() + settings.drift_every;
    tracing::info!(%owner, "apply worker started");
    // One SQLite file has one portal process: anything still `applying` was
    // left by a process that died, so resume it now rather than after its lease.
    match service.release_leases_of_dead_workers().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!("resuming {n} apply job(s) interrupted by a previous stop"),
        Err(e) => tracing::error!("releasing stale leases: {e}"),
    }
    loop {
        if *stop.borrow() {
            break;
        }
        if let Err(e) = service.end_expired_grants().await {
            tracing::error!("ending temporary grants: {e}");
        }
        if service.inventory_stale() {
            service.refresh_inventory_in_background();
        }
        match service.expire_pending().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} pending request(s) expired without a decision"),
            Err(e) => tracing::error!("expiring pending requests: {e}"),
        }
        if Instant::now() >= next_drift_check {
            next_drift_check = Instant::now() + settings.drift_every;
            match service.run_drift_check(SYSTEM_ACTOR, None).await {
                Ok(s) if s.drifted > 0 => {
                    tracing::warn!("{} of {} repositories drifted from their approved state", s.drifted, s.checked)
                }
                Ok(_) => {}
                Err(e) => tracing::error!("drift check: {e}"),
            }
        }
        let started = Instant::now();
        match service.apply_next(&owner, lease_ms).await {
            Ok(ApplyOutcome::Idle) => {}
            Ok(outcome) => {
                crate::metrics::apply_finished(&outcome, started);
                tracing::info!(?outcome, "apply finished");
                continue;
            }
            Err(e) => tracing::error!("apply worker: {e}"),
        }
        tokio::select! {
            _ = service.wake.notified() => {}
            _ = tokio::time::sleep(settings.poll) => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!("apply worker stopped");
}

/// The notification sender: delivers what the outbox holds, beside the apply
/// worker so a slow receiver never holds up an apply (or an approval).
pub async fn send_notifications(service: Arc<PortalService>, poll: Duration, mut stop: watch::Receiver<bool>) {
    if service.notifier.channels().is_empty() {
        return;
    }
    if let Err(e) = service.release_outbox_claims().await {
        tracing::error!("releasing notification claims: {e}");
    }
    // Reminders and expiry warnings are looked for once a minute of the portal's clock.
    let mut next_reminders = i64::MIN;
    loop {
        if *stop.borrow() {
            break;
        }
        if service.now() >= next_reminders {
            next_reminders = service.now().saturating_add(60_000);
            if let Err(e) = service.remind_and_warn().await {
                tracing::error!("reminders and expiry warnings: {e}");
            }
        }
        let busy = match service.deliver_due().await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::error!("sending notifications: {e}");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
    }
}
