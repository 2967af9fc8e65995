//! Notifications: the outbox and its sender.
//!
//! - `enqueue` adds a notice's rows (one per channel that takes its event) in
//!   the caller's write transaction, the one that makes the change the notice
//!   is about: a change that commits has its notifications, one that rolls
//!   back has none.
//! - `deliver_due` (the sender, a task beside the apply worker) claims due
//!   rows, sends each with a time limit, and records the outcome with its
//!   audit event: `notification_sent` on the request's timeline, or, after a
//!   failure, a retry with exponential backoff and jitter, until
//!   `notify.give_up_after_minutes` (or a receiver's permanent refusal) makes
//!   it `notification_failed`.
//! - A sender that dies after sending and before recording sends again, with
//!   the same delivery id (rows claimed by a dead process are released at
//!   start): at least once, and receivers drop duplicates by that id.
use super::views::summary;
use super::{Error, PortalService, RetryPolicy};
use crate::db::{self, NewEvent, OutboxRow};
use app::domain::audit::AuditAction;
use app::domain::notify::{Channel, Notice, NotifyEvent};
use app::domain::principal::{Capability, Principal, SYSTEM_ACTOR};
use app::domain::request::Request;
use app::domain::time::Timestamp;
use app::views::{OutboxPage, OutboxView};

/// How long a sender holds the rows it claimed (one delivery's time limit is far shorter).
const CLAIM_MS: i64 = 120_000;
/// Rows claimed at once.
const BATCH: i64 = 20;

/// How deliveries are retried and when they are given up.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryPolicy {
    pub retry: RetryPolicy,
    pub give_up_after_ms: i64,
    /// Waiting requests are reminded once per this period (`notify.remind_after_hours`).
    pub remind_after_ms: i64,
    /// Temporary grants ending within this long are announced (`notify.expiry_warning_hours`).
    pub expiry_warning_ms: i64,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            retry: RetryPolicy { max_attempts: u32::MAX, base_ms: 5_000, max_ms: 300_000 },
            give_up_after_ms: 24 * 3_600_000,
            remind_after_ms: 24 * 3_600_000,
            expiry_warning_ms: 24 * 3_600_000,
        }
    }
}

impl PortalService {
    /// The notice about request `r`: its summary as the JSON API lists it, and a link to its page.
    pub(super) fn notice(&self, event: NotifyEvent, r: &Request, detail: String) -> Notice {
        Notice {
            event,
            request: serde_json::to_value(summary(r)).ok(),
            repository: Some(r.kind.repository().to_string()),
            detail,
            link: format!("{}/requests/{}", self.notifier.public_url, r.id),
            approver_groups: self.deployment.approval.rule(&r.kind).groups,
        }
    }

    /// Adds the notice to the outbox for every channel that takes its event,
    /// inside the caller's write transaction.
    pub(super) async fn enqueue(
        &self,
        tx: &mut db::WriteTx,
        notice: &Notice,
        request_id: Option<i64>,
        dedupe: Option<&str>,
    ) -> Result<(), Error> {
        let now = self.now();
        for channel in self.notifier.channels_for(notice.event) {
            let recipients = if channel == Channel::Email {
                let requester = match notice.request.as_ref().and_then(|r| r.get("requester")).and_then(|v| v.as_str())
                {
                    Some(id) => db::user_email(tx, id).await?,
                    None => None,
                };
                let to = self.notifier.recipients(notice, requester);
                if to.is_empty() {
                    continue; // Nobody to email about this one.
                }
                to
            } else {
                Vec::new()
            };
            db::insert_outbox(tx, channel, notice, request_id, dedupe, &recipients, now).await?;
        }
        Ok(())
    }

    /// Reminds approvers of requests waiting longer than `remind_after_ms` (once
    /// per period: the period's number is the reminder's dedupe key), and tells
    /// requesters that a temporary grant ends within `expiry_warning_ms` (once
    /// per grant). The worker calls it about once a minute of the portal's clock.
    pub async fn remind_and_warn(&self) -> Result<usize, Error> {
        if self.notifier.channels().is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let remind = self.delivery.remind_after_ms.max(1);
        let mut conn = self.db.pool.acquire().await?;
        let waiting = db::waiting_since(&mut conn, now.saturating_sub(remind)).await?;
        let ending = db::grants_ending(&mut conn, now, now.saturating_add(self.delivery.expiry_warning_ms)).await?;
        let mut grants = Vec::new();
        for rec in ending {
            let Some(id) = rec.request_id else { continue };
            if let Some(row) = db::get_request(&mut conn, id).await? {
                grants.push((rec, row.request));
            }
        }
        drop(conn);
        if waiting.is_empty() && grants.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.write().await?;
        for row in &waiting {
            let r = &row.request;
            let hours = (now - r.created_at) / 3_600_000;
            let period = (now - r.created_at) / remind;
            let notice =
                self.notice(NotifyEvent::RequestReminder, r, format!("waiting for a decision for {hours} hours"));
            self.enqueue(&mut tx, &notice, Some(r.id), Some(&format!("remind:{}:{period}", r.id))).await?;
        }
        for (rec, r) in &grants {
            let until = rec.production_until.unwrap_or(now);
            let detail = format!("production's pull access to {} ends on {}", rec.name, crate::clock::format_ms(until));
            let notice = self.notice(NotifyEvent::GrantExpiring, r, detail);
            self.enqueue(&mut tx, &notice, Some(r.id), Some(&format!("expiring:{}:{until}", rec.name))).await?;
        }
        tx.commit().await?;
        Ok(waiting.len() + grants.len())
    }

    /// Makes due rows claimable again after a restart (one process per database:
    /// a claim left behind belongs to a sender that died).
    pub async fn release_outbox_claims(&self) -> Result<(), Error> {
        let mut tx = self.db.write().await?;
        db::release_outbox_claims(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sends what is due; returns how many rows it tried.
    pub async fn deliver_due(&self) -> Result<usize, Error> {
        let now = self.now();
        let mut tx = self.db.write().await?;
        let rows = db::claim_due(&mut tx, now, now.saturating_add(CLAIM_MS), BATCH).await?;
        tx.commit().await?;
        let n = rows.len();
        for row in rows {
            crate::service::apply::crash_point("before_delivery");
            let sent = self.notifier.send(&row).await;
            crate::service::apply::crash_point("after_delivery");
            self.record_delivery(&row, sent).await?;
        }
        Ok(n)
    }

    async fn record_delivery(&self, row: &OutboxRow, sent: Result<(), crate::notify::SendError>) -> Result<(), Error> {
        let now = self.now();
        let channel = row.channel.as_str();
        let event = row.notice.event.as_str();
        let attempt = row.attempts + 1;
        // Who was notified, for the request's timeline (email names its recipients).
        let channel = if row.recipients.is_empty() {
            channel.to_string()
        } else {
            format!("{channel} to {}", row.recipients.join(", "))
        };
        let (outcome, action, detail) = match sent {
            Ok(()) => (
                Ok(now),
                Some(AuditAction::NotificationSent),
                format!("{channel}: {event} (delivery {}, attempt {attempt})", row.delivery),
            ),
            Err(e) if e.permanent || now.saturating_sub(row.created_at) >= self.delivery.give_up_after_ms => {
                let why = if e.permanent { "refused for good" } else { "gave up" };
                let detail = format!(
                    "{channel}: {event} (delivery {}): {why} after {attempt} attempt(s): {}",
                    row.delivery, e.message
                );
                (Err((e.message, None)), Some(AuditAction::NotificationFailed), detail)
            }
            Err(e) => {
                let delay = self.delivery.retry.delay_ms(row.attempts);
                let retry_at = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX / 4));
                tracing::warn!(
                    delivery = %row.delivery,
                    "{channel}: {event}: {}; retrying in {:.1} s",
                    e.message,
                    delay as f64 / 1000.0
                );
                (Err((e.message, Some(retry_at))), None, String::new())
            }
        };
        let mut tx = self.db.write().await?;
        db::finish_delivery(&mut tx, row.id, outcome).await?;
        if let Some(action) = action {
            db::insert_event(
                &mut tx,
                &NewEvent {
                    at: now,
                    actor: SYSTEM_ACTOR,
                    action,
                    request_id: row.request_id,
                    repository: row.notice.repository.as_deref(),
                    detail,
                    aws_request_ids: vec![],
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl PortalService {
    /// The notifications page (admins): the channels, and the newest 200 notifications.
    pub async fn outbox_page(&self, by: &Principal) -> Result<OutboxPage, Error> {
        self.authorize(by, Capability::Operate, "see the notifications").await?;
        let rows = db::list_outbox(&self.db.pool, None, 200).await?;
        let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
        Ok(OutboxPage {
            channels: self.notifier.channels().iter().map(|c| c.as_str().to_string()).collect(),
            pending: count("pending"),
            failed: count("failed"),
            notifications: rows.iter().map(outbox_view).collect(),
        })
    }

    /// Queues a test notification on one configured channel (admins).
    pub async fn send_test_notification(&self, by: &Principal, channel: String) -> Result<OutboxPage, Error> {
        self.authorize(by, Capability::Operate, "send test notifications").await?;
        let channel = Channel::parse(&channel).filter(|c| self.notifier.channels().contains(c)).ok_or_else(|| {
            let configured: Vec<&str> = self.notifier.channels().iter().map(|c| c.as_str()).collect();
            Error::field(
                "channel",
                if configured.is_empty() {
                    "no notification channel is configured (see [notify] in the configuration)".to_string()
                } else {
                    format!("choose a configured channel: {}", configured.join(", "))
                },
            )
        })?;
        let notice = Notice {
            event: NotifyEvent::Test,
            request: None,
            repository: None,
            detail: format!("sent by {} from the notifications page", by.id),
            link: format!("{}/notifications", self.notifier.public_url),
            approver_groups: Vec::new(),
        };
        let mut tx = self.db.write().await?;
        let mut recipients = self.notifier.recipients(&notice, None);
        if let Some(own) = db::user_email(&mut tx, &by.id).await? {
            recipients.push(own);
        }
        if channel == Channel::Email && recipients.is_empty() {
            return Err(Error::field(
                "channel",
                "nobody to email: give notify.group_emails for the admin group, or sign in with an email address",
            ));
        }
        db::insert_outbox(&mut tx, channel, &notice, None, None, &recipients, self.now()).await?;
        tx.commit().await?;
        self.outbox_page(by).await
    }
}

fn outbox_view(r: &OutboxRow) -> OutboxView {
    OutboxView {
        id: r.id,
        delivery: r.delivery.clone(),
        channel: r.channel.as_str().to_string(),
        event: r.notice.event.as_str().to_string(),
        request_id: r.request_id,
        repository: r.notice.repository.clone(),
        status: r.status.clone(),
        attempts: r.attempts,
        created_at: Timestamp::from_unix_ms(r.created_at),
        delivered_at: r.delivered_at.map(Timestamp::from_unix_ms),
        next_attempt_at: (r.status == "pending").then(|| Timestamp::from_unix_ms(r.next_attempt_at)),
        last_error: r.last_error.clone(),
    }
}
