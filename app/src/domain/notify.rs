//! Notifications: which events there are, who hears about each, and how a
//! message reads on each channel. Pure: the outbox, the sender and the
//! channels' adapters are the server's. User-typed text is escaped for each
//! channel's markup here, and nothing secret is ever part of a message (it
//! is built only from a request's public summary and the portal's URL).
use serde::{Deserialize, Serialize};

/// What happened. The names are the webhook's `event` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum NotifyEvent {
    #[serde(rename = "request.submitted")]
    RequestSubmitted,
    /// One approval of several (`last: false` in the details) or the last.
    #[serde(rename = "request.approved")]
    RequestApproved,
    #[serde(rename = "request.rejected")]
    RequestRejected,
    #[serde(rename = "request.applied")]
    RequestApplied,
    #[serde(rename = "request.failed")]
    RequestFailed,
    #[serde(rename = "request.expired")]
    RequestExpired,
    #[serde(rename = "request.needs_reapproval")]
    RequestNeedsReapproval,
    #[serde(rename = "request.reminder")]
    RequestReminder,
    /// Someone commented on a request: its requester and its approvers hear of it.
    #[serde(rename = "request.commented")]
    RequestCommented,
    #[serde(rename = "drift.found")]
    DriftFound,
    #[serde(rename = "grant.expiring")]
    GrantExpiring,
    #[serde(rename = "revoke.failed")]
    RevokeFailed,
    /// An admin's "send a test notification".
    #[serde(rename = "test")]
    Test,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 13] = [
        Self::RequestSubmitted,
        Self::RequestApproved,
        Self::RequestRejected,
        Self::RequestApplied,
        Self::RequestFailed,
        Self::RequestExpired,
        Self::RequestNeedsReapproval,
        Self::RequestReminder,
        Self::RequestCommented,
        Self::DriftFound,
        Self::GrantExpiring,
        Self::RevokeFailed,
        Self::Test,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RequestSubmitted => "request.submitted",
            Self::RequestApproved => "request.approved",
            Self::RequestRejected => "request.rejected",
            Self::RequestApplied => "request.applied",
            Self::RequestFailed => "request.failed",
            Self::RequestExpired => "request.expired",
            Self::RequestNeedsReapproval => "request.needs_reapproval",
            Self::RequestReminder => "request.reminder",
            Self::RequestCommented => "request.commented",
            Self::DriftFound => "drift.found",
            Self::GrantExpiring => "grant.expiring",
            Self::RevokeFailed => "revoke.failed",
            Self::Test => "test",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == raw.trim())
    }

    /// Who it is for: the approvers of the request's kind, its requester, or the admins.
    pub fn audience(&self) -> Audience {
        match self {
            Self::RequestSubmitted | Self::RequestReminder => Audience::Approvers,
            Self::RequestApproved
            | Self::RequestRejected
            | Self::RequestApplied
            | Self::RequestFailed
            | Self::RequestExpired
            | Self::RequestNeedsReapproval
            | Self::GrantExpiring => Audience::Requester,
            Self::RequestCommented => Audience::RequesterAndApprovers,
            Self::DriftFound | Self::RevokeFailed | Self::Test => Audience::Admins,
        }
    }

    /// A short headline, as people read it.
    pub fn headline(&self) -> &'static str {
        match self {
            Self::RequestSubmitted => "New request waiting for approval",
            Self::RequestApproved => "Request approved",
            Self::RequestRejected => "Request rejected",
            Self::RequestApplied => "Request applied",
            Self::RequestFailed => "Request failed",
            Self::RequestExpired => "Request expired",
            Self::RequestNeedsReapproval => "Request needs approval again",
            Self::RequestReminder => "Reminder: request still waiting for approval",
            Self::RequestCommented => "New comment on a request",
            Self::DriftFound => "Drift found",
            Self::GrantExpiring => "Temporary production access ends soon",
            Self::RevokeFailed => "Automatic revoke failed",
            Self::Test => "Test notification",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Approvers,
    Requester,
    RequesterAndApprovers,
    Admins,
}

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Slack,
    Webhook,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Slack, Channel::Webhook, Channel::Email];
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Webhook => "webhook",
            Self::Email => "email",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == raw.trim())
    }
}

/// What a message is about, as stored in the outbox: the request as the
/// JSON API lists it (or nothing, for drift and tests), and a line of detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Notice {
    pub event: NotifyEvent,
    /// The request as the JSON API shows it in lists (`RequestSummary`), if any.
    #[serde(default)]
    pub request: Option<serde_json::Value>,
    #[serde(default)]
    pub repository: Option<String>,
    /// One line: the approval count, the failure, the drift, the grant's end.
    #[serde(default)]
    pub detail: String,
    /// A link to the request page, or to the portal.
    pub link: String,
    /// The groups whose members decide the request (email goes to their addresses).
    #[serde(default)]
    pub approver_groups: Vec<String>,
}

/// Escapes text for Slack's mrkdwn (`&`, `<`, `>`), so typed text cannot
/// make links or mentions (`<!channel>`).
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn field<'a>(n: &'a Notice, key: &str) -> Option<&'a str> {
    n.request.as_ref().and_then(|r| r.get(key)).and_then(|v| v.as_str())
}

impl Notice {
    /// `#42 crytera/app (new repository) by local:alice, status pending`.
    pub fn summary_line(&self) -> String {
        let id = self.request.as_ref().and_then(|r| r.get("id")).and_then(|v| v.as_i64());
        let repo = self.repository.as_deref().or_else(|| field(self, "repository")).unwrap_or("");
        match id {
            Some(id) => format!(
                "#{id} {repo} ({}) by {}, status {}",
                field(self, "kind_label").unwrap_or(""),
                field(self, "requester").unwrap_or(""),
                field(self, "status").unwrap_or("")
            ),
            None => repo.to_string(),
        }
    }

    /// The Slack-compatible message (`text`, escaped; the link as Slack writes links).
    pub fn slack_text(&self) -> String {
        let mut text = format!("*{}*: {}", self.event.headline(), slack_escape(&self.summary_line()));
        if !self.detail.is_empty() {
            text.push_str(&format!("\n{}", slack_escape(&self.detail)));
        }
        text.push_str(&format!("\n<{}|Open in ecr-portal>", self.link.replace(['<', '>', '|'], "")));
        text
    }

    /// The email: subject, plain text, and a small HTML part (escaped).
    pub fn email(&self) -> (String, String, String) {
        let subject = format!("[ecr-portal] {}: {}", self.event.headline(), self.summary_line());
        let subject: String = subject.chars().filter(|c| !c.is_control()).take(200).collect();
        let mut text = format!("{}\n\n{}\n", self.event.headline(), self.summary_line());
        if !self.detail.is_empty() {
            text.push_str(&format!("\n{}\n", self.detail));
        }
        text.push_str(&format!("\nOpen it: {}\n", self.link));
        let html = format!(
            "<p><strong>{}</strong></p><p>{}</p>{}<p><a href=\"{}\">Open in ecr-portal</a></p>",
            html_escape(self.event.headline()),
            html_escape(&self.summary_line()),
            if self.detail.is_empty() { String::new() } else { format!("<p>{}</p>", html_escape(&self.detail)) },
            html_escape(&self.link)
        );
        (subject, text, html)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notice(event: NotifyEvent, justification_like: &str) -> Notice {
        Notice {
            event,
            request: Some(json!({"id": 42, "kind_label": "new repository", "repository": "crytera/app",
                "requester": "local:alice", "status": "pending"})),
            repository: Some("crytera/app".into()),
            detail: justification_like.into(),
            link: "https://ecr.example.com/requests/42".into(),
            approver_groups: vec!["ecr-admins".into()],
        }
    }

    #[test]
    fn events_round_trip_and_have_an_audience() {
        for e in NotifyEvent::ALL {
            assert_eq!(NotifyEvent::parse(e.as_str()), Some(e));
            assert_eq!(serde_json::to_value(e).expect("json"), e.as_str());
        }
        assert_eq!(NotifyEvent::RequestSubmitted.audience(), Audience::Approvers);
        assert_eq!(NotifyEvent::RequestApplied.audience(), Audience::Requester);
        assert_eq!(NotifyEvent::DriftFound.audience(), Audience::Admins);
    }

    #[test]
    fn slack_text_is_escaped_and_links_to_the_request() {
        let t = notice(NotifyEvent::RequestSubmitted, "<!channel> & <https://evil.example|click>").slack_text();
        assert!(t.starts_with("*New request waiting for approval*: #42 crytera/app (new repository)"), "{t}");
        assert!(t.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"), "{t}");
        assert!(!t.contains("<!channel>"));
        assert!(t.ends_with("<https://ecr.example.com/requests/42|Open in ecr-portal>"), "{t}");
    }

    #[test]
    fn email_html_is_escaped_and_the_subject_is_one_line() {
        let (subject, text, html) = notice(NotifyEvent::RequestFailed, "<script>x</script>\nsecond").email();
        assert!(subject.starts_with("[ecr-portal] Request failed: #42 crytera/app"), "{subject}");
        assert!(!subject.contains('\n'));
        assert!(text.contains("Open it: https://ecr.example.com/requests/42"));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"), "{html}");
        assert!(html.contains(r#"<a href="https://ecr.example.com/requests/42">"#));
    }
}
