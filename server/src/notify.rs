//! The notification channels' adapter: which channels are configured and
//! which events each takes, and sending one outbox row over HTTP (a
//! Slack-compatible incoming webhook, or a generic webhook signed the way
//! GitHub signs its own). The outbox and the retries are the service's
//! (`service/notifications.rs`).
use crate::config::NotifySection;
use crate::db::OutboxRow;
use app::domain::notify::{Channel, NotifyEvent};
use std::collections::HashSet;
use std::time::Duration;

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub message: String,
    /// The receiver refused it for good (a 4xx other than 408 and 429): no retry.
    pub permanent: bool,
}

pub struct Notifier {
    http: reqwest::Client,
    slack: Option<String>,
    /// (URL, secret)
    webhook: Option<(String, String)>,
    slack_events: HashSet<NotifyEvent>,
    webhook_events: HashSet<NotifyEvent>,
    /// Where links point (`server.public_url`).
    pub public_url: String,
}

fn events(names: &[String]) -> HashSet<NotifyEvent> {
    names.iter().filter_map(|n| NotifyEvent::parse(n)).collect()
}

impl Notifier {
    pub fn new(cfg: &NotifySection, public_url: &str) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            // A receiver's redirect is not followed: the configured URL is the one trusted.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ecr-portal/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(Self {
            http,
            slack: some(&cfg.slack_webhook_url),
            webhook: some(&cfg.webhook_url).map(|u| (u, cfg.webhook_secret.clone())),
            slack_events: events(&cfg.slack_events),
            webhook_events: events(&cfg.webhook_events),
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }

    /// No channel configured (tests and the default local run).
    pub fn none() -> Self {
        Self {
            http: reqwest::Client::new(),
            slack: None,
            webhook: None,
            slack_events: HashSet::new(),
            webhook_events: HashSet::new(),
            public_url: String::new(),
        }
    }

    /// The configured channels.
    pub fn channels(&self) -> Vec<Channel> {
        let mut c = Vec::new();
        if self.slack.is_some() {
            c.push(Channel::Slack);
        }
        if self.webhook.is_some() {
            c.push(Channel::Webhook);
        }
        c
    }

    /// The channels that take `event` (a test goes to every configured channel asked for).
    pub fn channels_for(&self, event: NotifyEvent) -> Vec<Channel> {
        self.channels()
            .into_iter()
            .filter(|c| {
                event == NotifyEvent::Test
                    || match c {
                        Channel::Slack => self.slack_events.contains(&event),
                        Channel::Webhook => self.webhook_events.contains(&event),
                        Channel::Email => false,
                    }
            })
            .collect()
    }

    /// Sends one row. Errors never carry the webhook's secret or a response body.
    pub async fn send(&self, row: &OutboxRow) -> Result<(), SendError> {
        let request = match row.channel {
            Channel::Slack => {
                let url = self.slack.as_deref().ok_or_else(|| not_configured(row.channel))?;
                self.http.post(url).json(&serde_json::json!({ "text": row.notice.slack_text() }))
            }
            Channel::Webhook => {
                let (url, secret) = self.webhook.as_ref().ok_or_else(|| not_configured(row.channel))?;
                let body = webhook_body(row);
                self.http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("x-ecr-portal-event", row.notice.event.as_str())
                    .header("x-ecr-portal-delivery", &row.delivery)
                    .header("x-ecr-portal-signature-256", signature(secret, body.as_bytes()))
                    .body(body)
            }
            Channel::Email => return Err(not_configured(row.channel)),
        };
        let answer = request.send().await.map_err(|e| SendError {
            message: if e.is_timeout() {
                "the receiver did not answer in time".to_string()
            } else if e.is_connect() {
                "could not connect to the receiver".to_string()
            } else {
                format!("sending failed: {}", e.without_url())
            },
            permanent: false,
        })?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let code = status.as_u16();
        Err(SendError {
            message: format!("the receiver answered HTTP {code}"),
            permanent: status.is_client_error() && code != 408 && code != 429,
        })
    }
}

fn not_configured(channel: Channel) -> SendError {
    SendError { message: format!("the {} channel is no longer configured", channel.as_str()), permanent: true }
}

/// The generic webhook's body: the same bytes on every retry of one delivery.
pub fn webhook_body(row: &OutboxRow) -> String {
    let occurred = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(row.created_at) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    serde_json::json!({
        "event": row.notice.event.as_str(),
        "delivery": row.delivery,
        "occurred_at": occurred,
        "request": row.notice.request,
        "repository": row.notice.repository,
        "detail": row.notice.detail,
        "link": row.notice.link,
    })
    .to_string()
}

/// `sha256=<hex HMAC-SHA256 of the body under the secret>`, as GitHub signs webhooks.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_githubs_hmac_sha256() {
        // GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
