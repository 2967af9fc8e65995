//! The notification channels' adapter: which channels are configured and
//! which events each takes, who gets an email, and sending one outbox row: a
//! Slack-compatible incoming webhook, a generic webhook signed the way GitHub
//! signs its own, or an email over SMTP (lettre). The outbox and the retries
//! are the service's (`service/notifications.rs`).
use crate::config::NotifySection;
use crate::db::OutboxRow;
use app::domain::notify::{Audience, Channel, Notice, NotifyEvent};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::collections::{BTreeMap, HashSet};
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
    email: Option<Email>,
    /// Where links point (`server.public_url`).
    pub public_url: String,
}

struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
    group_emails: BTreeMap<String, Vec<String>>,
    events: HashSet<NotifyEvent>,
    /// Admin-audience notices (drift, failed revokes, tests) go to this group's addresses.
    admin_group: String,
    timeout: Duration,
}

/// The SMTP transport for `smtp://` (STARTTLS, or plain only to a loopback
/// host, as the tests' server is) or `smtps://` (TLS from the start).
fn smtp_transport(cfg: &NotifySection, timeout: Duration) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let url = reqwest::Url::parse(cfg.smtp_url.trim())?;
    let host = url.host_str().unwrap_or_default().to_string();
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let mut builder = match (url.scheme(), loopback) {
        ("smtps", _) => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)?,
        (_, true) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)?,
    };
    if let Some(port) = url.port() {
        builder = builder.port(port);
    }
    if !cfg.smtp_username.is_empty() {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            cfg.smtp_username.clone(),
            cfg.smtp_password.clone(),
        ));
    }
    Ok(builder.timeout(Some(timeout)).build())
}

fn events(names: &[String]) -> HashSet<NotifyEvent> {
    names.iter().filter_map(|n| NotifyEvent::parse(n)).collect()
}

impl Notifier {
    pub fn new(cfg: &NotifySection, public_url: &str, admin_group: &str) -> anyhow::Result<Self> {
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
            email: match some(&cfg.smtp_url) {
                None => None,
                Some(_) => Some(Email {
                    transport: smtp_transport(cfg, timeout)?,
                    from: cfg.email_from.trim().parse()?,
                    group_emails: cfg.group_emails.clone(),
                    events: events(&cfg.email_events),
                    admin_group: admin_group.to_string(),
                    timeout,
                }),
            },
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
            email: None,
            public_url: String::new(),
        }
    }

    /// Who gets the email about `notice`: the addresses of the approver groups
    /// (new requests, reminders), the requester's own (decisions and outcomes),
    /// or the admin group's (drift, failed revokes, tests). Sorted, no repeats.
    pub fn recipients(&self, notice: &Notice, requester_email: Option<String>) -> Vec<String> {
        let Some(email) = &self.email else { return Vec::new() };
        let of = |groups: &[String]| -> Vec<String> {
            groups.iter().flat_map(|g| email.group_emails.get(g).cloned().unwrap_or_default()).collect()
        };
        let mut to = match notice.event.audience() {
            Audience::Approvers => of(&notice.approver_groups),
            Audience::Requester => requester_email.into_iter().collect(),
            Audience::RequesterAndApprovers => {
                let mut to = of(&notice.approver_groups);
                to.extend(requester_email);
                to
            }
            Audience::Admins => of(std::slice::from_ref(&email.admin_group)),
        };
        to.sort();
        to.dedup();
        to
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
        if self.email.is_some() {
            c.push(Channel::Email);
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
                        Channel::Email => self.email.as_ref().is_some_and(|e| e.events.contains(&event)),
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
            Channel::Email => return self.send_email(row).await,
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

impl Notifier {
    async fn send_email(&self, row: &OutboxRow) -> Result<(), SendError> {
        let email = self.email.as_ref().ok_or_else(|| not_configured(Channel::Email))?;
        let (subject, text, html) = row.notice.email();
        let mut message = lettre::Message::builder().from(email.from.clone()).subject(subject);
        for to in &row.recipients {
            let address = to
                .parse::<lettre::message::Mailbox>()
                .map_err(|_| SendError { message: format!("`{to}` is not an email address"), permanent: true })?;
            message = message.to(address);
        }
        let message = message
            .header(DeliveryId(row.delivery.clone()))
            .multipart(lettre::message::MultiPart::alternative_plain_html(text, html))
            .map_err(|e| SendError { message: format!("the email could not be built: {e}"), permanent: true })?;
        match tokio::time::timeout(email.timeout, email.transport.send(message)).await {
            Err(_) => Err(SendError { message: "the mail server did not answer in time".into(), permanent: false }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                Err(SendError { message: format!("the mail server refused it: {e}"), permanent: e.is_permanent() })
            }
        }
    }
}

/// `X-Ecr-Portal-Delivery` on emails too: the same across retries.
#[derive(Clone)]
struct DeliveryId(String);

impl lettre::message::header::Header for DeliveryId {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("X-Ecr-Portal-Delivery")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_string()))
    }
    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
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
