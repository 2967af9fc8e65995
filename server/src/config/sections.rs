//! The configuration as written: one struct per section, with the embedded defaults
//! (the local run). `Config::validate` (in `mod.rs`) turns it into the typed `Config`.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub portal: PortalSection,
    pub aws: AwsSection,
    pub auth: AuthSection,
    pub oidc: OidcSection,
    pub approval: ApprovalSection,
    pub worker: WorkerSection,
    pub audit: AuditSection,
    pub notify: NotifySection,
    pub log: LogSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Where the built site (pkg/, favicon) is served from.
    pub site_root: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// The address people use (https://ecr.example.com). With https: Secure
    /// `__Host-` cookies and HSTS. Empty: http://<listen>.
    pub public_url: String,
    /// A connection that has not sent a request's headers within this long is closed.
    pub header_read_timeout_seconds: u64,
    /// A request that has not been answered within this long gets 408.
    pub request_timeout_seconds: u64,
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: u64,
    /// Behind a reverse proxy: take the client's address for per-client limits
    /// from the last `X-Forwarded-For` entry (only if the proxy always sets it).
    pub trust_forwarded_for: bool,
    /// Where Prometheus scrapes `/metrics` (a listener of its own, never the
    /// portal's); empty: no metrics.
    pub metrics_listen: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:3000".into(),
            site_root: "target/site".into(),
            max_body_bytes: 64 * 1024,
            public_url: String::new(),
            header_read_timeout_seconds: 30,
            request_timeout_seconds: 120,
            max_connections: 1024,
            trust_forwarded_for: false,
            metrics_listen: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    pub path: String,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self { path: "data/ecr-portal.db".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalSection {
    pub namespace: String,
    /// Production may also list and describe images (ecr:ListImages, ecr:DescribeImages), not only pull.
    pub production_can_list: bool,
    /// A lifecycle that would expire an image pulled within this many days is
    /// refused unless the request says so (0: pulls do not protect).
    pub protect_pulled_days: u32,
    /// Tags that mark a release: a lifecycle that would expire such an image is
    /// refused unless the request says so. ECR's wildcard patterns.
    pub protected_tags: Vec<String>,
    /// The tags an image may be promoted to (wildcard patterns).
    pub release_tag_patterns: Vec<String>,
    /// Refuse to promote an image whose scan found critical vulnerabilities.
    pub promote_refuse_critical: bool,
    /// Refuse to promote an image that was never scanned.
    pub promote_require_scan: bool,
}

impl Default for PortalSection {
    fn default() -> Self {
        let protection = app::domain::lifecycle::Protection::default();
        Self {
            namespace: "crytera".into(),
            production_can_list: false,
            protect_pulled_days: protection.pulled_within_days,
            protected_tags: protection.tag_patterns,
            release_tag_patterns: vec!["v*".into()],
            promote_refuse_critical: false,
            promote_require_scan: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AwsTarget {
    /// moto on loopback, with static test credentials.
    Local,
    /// AWS itself, with the default credential chain.
    Aws,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSection {
    pub target: AwsTarget,
    /// The local stand-in's endpoint (target = "local" only).
    pub local_endpoint: String,
    pub region: String,
    /// Role assumed for every change in the staging account; empty: default credentials.
    pub staging_role_arn: String,
    /// The production account that gets pull access; or discover it from a role/profile.
    pub production_account_id: String,
    pub production_role_arn: String,
    pub production_profile: String,
}

impl Default for AwsSection {
    fn default() -> Self {
        Self {
            target: AwsTarget::Local,
            local_endpoint: "http://127.0.0.1:5055".into(),
            region: "us-east-1".into(),
            staging_role_arn: "arn:aws:iam::111111111111:role/ecr-portal-apply".into(),
            production_account_id: String::new(),
            production_role_arn: "arn:aws:iam::222222222222:role/ecr-portal-discover".into(),
            production_profile: String::new(),
        }
    }
}

/// `[log]`: how the portal writes its log (to standard error).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people (coloured only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, with the request's id, for log pipelines.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Type a user name and pick a role; loopback only unless allowed.
    Local,
    /// OpenID Connect (authorization code + PKCE) against `[oidc]`.
    Oidc,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub mode: AuthMode,
    /// Members of this group are admins (and approve, under the default approval policy).
    pub admin_group: String,
    /// Members of this group are auditors: they read everything and change nothing.
    pub auditor_group: String,
    /// If not empty, only members of these groups may sign in (OIDC).
    pub allowed_groups: Vec<String>,
    /// Sign-in attempts (local sign-in, OIDC start and callback) per client address per minute.
    pub sign_in_per_minute: u32,
    /// Longest life of an API token, in days.
    pub token_max_days: u64,
    /// A token acts with its owner's role only while the owner has signed in
    /// within this many days; after that it is refused until they sign in again.
    pub token_role_max_age_days: u64,
    /// Local sign-in on a non-loopback address lets anyone be admin: off unless set.
    pub allow_local_on_non_loopback: bool,
    pub session_idle_minutes: u64,
    pub session_absolute_hours: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            mode: AuthMode::Local,
            admin_group: "ecr-admins".into(),
            auditor_group: "ecr-auditors".into(),
            allowed_groups: vec![],
            sign_in_per_minute: 20,
            token_max_days: 90,
            token_role_max_age_days: 30,
            allow_local_on_non_loopback: false,
            session_idle_minutes: 8 * 60,
            session_absolute_hours: 24,
        }
    }
}

/// The OpenID Connect client (auth.mode = "oidc").
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSection {
    /// The provider's issuer URL; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer_url: String,
    pub client_id: String,
    /// Set it from the environment (ECR_PORTAL_OIDC__CLIENT_SECRET); never printed.
    pub client_secret: String,
    /// The claim that lists the user's groups.
    pub groups_claim: String,
    /// Where the provider sends the browser back; empty: <public_url>/auth/oidc/callback.
    pub redirect_url: String,
    /// The id_token signature algorithms accepted. Asymmetric ones only by
    /// default; a shared-secret algorithm (HS256…) only when listed here.
    pub id_token_algorithms: Vec<String>,
}

impl Default for OidcSection {
    fn default() -> Self {
        Self {
            issuer_url: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            groups_claim: "groups".into(),
            redirect_url: String::new(),
            id_token_algorithms: ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384", "PS512", "EdDSA"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl std::fmt::Debug for OidcSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSection")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &if self.client_secret.is_empty() { "" } else { "<redacted>" })
            .field("groups_claim", &self.groups_claim)
            .field("redirect_url", &self.redirect_url)
            .finish()
    }
}

/// Who approves which kind of request, and how many distinct approvers each needs.
/// Empty group lists mean `auth.admin_group`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSection {
    pub create_repository_groups: Vec<String>,
    pub create_repository_approvals: u32,
    pub grant_production_groups: Vec<String>,
    pub grant_production_approvals: u32,
    pub revoke_production_groups: Vec<String>,
    pub revoke_production_approvals: u32,
    pub restore_repository_groups: Vec<String>,
    pub restore_repository_approvals: u32,
    /// Who decides promotions of images to release tags; empty: the production grant's groups.
    pub promote_image_groups: Vec<String>,
    /// How many approvers a promotion needs; 0: as many as a production grant.
    pub promote_image_approvals: u32,
    /// Pending requests are closed as expired after this many hours.
    pub pending_expiry_hours: u64,
    /// Open requests (waiting or being applied) one person may hold at once.
    pub max_open_per_user: u32,
    /// An admin may apply a request at once, without the quorum, with a
    /// reason; another admin reviews it afterwards.
    pub break_glass: bool,
}

impl Default for ApprovalSection {
    fn default() -> Self {
        Self {
            create_repository_groups: vec![],
            create_repository_approvals: 1,
            grant_production_groups: vec![],
            grant_production_approvals: 1,
            revoke_production_groups: vec![],
            revoke_production_approvals: 1,
            restore_repository_groups: vec![],
            restore_repository_approvals: 1,
            promote_image_groups: vec![],
            promote_image_approvals: 0,
            pending_expiry_hours: 14 * 24,
            max_open_per_user: 20,
            break_glass: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSection {
    /// How often the worker looks for approved work (it is also woken on approval).
    pub poll_interval_ms: u64,
    /// How long a claimed job stays with one worker before another may resume it.
    pub lease_seconds: u64,
    /// How often every managed repository is compared with its approved state.
    pub drift_check_seconds: u64,
    /// Run the apply worker in this process (tests turn it off and drive it by hand).
    pub enabled: bool,
    /// Attempts per apply when AWS throttles, answers 5xx or is unreachable; then it fails.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt (with jitter) up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for WorkerSection {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1000,
            lease_seconds: 300,
            drift_check_seconds: 300,
            enabled: true,
            max_attempts: 5,
            retry_base_ms: 2_000,
            retry_max_ms: 60_000,
        }
    }
}

/// The audit trail's key and published heads (see `server/src/audit.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// The key that signs the audit chain (HMAC-SHA-256), kept outside the
    /// database; created with mode 0600 at first start. Empty: `audit.key`
    /// next to the database (`data/audit.key` by default).
    pub key_file: String,
    /// Publish the chain's head (event count and hash) to the log, and to
    /// `head_file` when set, every this many events and at shutdown.
    pub publish_every_events: u64,
    /// An append-only file, ideally on other storage, where published heads
    /// are appended (one line each); `audit verify` checks the chain against it.
    pub head_file: String,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self { key_file: String::new(), publish_every_events: 1000, head_file: String::new() }
    }
}

/// Notifications (`server/src/notify.rs`): channels, which events go where,
/// and how deliveries are retried. Secrets come from the environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySection {
    /// A Slack-compatible incoming webhook (Slack, Mattermost, …). Empty: off.
    pub slack_webhook_url: String,
    /// A generic webhook receiving signed JSON. Empty: off.
    pub webhook_url: String,
    /// The HMAC-SHA256 key of `X-Ecr-Portal-Signature-256` (ECR_PORTAL_NOTIFY__WEBHOOK_SECRET).
    pub webhook_secret: String,
    /// Events each channel gets (`request.submitted`, …, `drift.found`); all by default.
    pub slack_events: Vec<String>,
    pub webhook_events: Vec<String>,
    /// Retries: exponential backoff with jitter from this, doubling up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// A notification not delivered within this long is given up (and the audit trail says so).
    pub give_up_after_minutes: u64,
    /// Each delivery's limit, connecting included.
    pub timeout_ms: u64,
    /// Email over SMTP: `smtp://host:587` (STARTTLS; plain only to a loopback host) or
    /// `smtps://host:465`. Empty: off. User and password from the environment.
    pub smtp_url: String,
    pub smtp_username: String,
    pub smtp_password: String,
    /// The sender, e.g. `ecr-portal <ecr-portal@crytera.example>`.
    pub email_from: String,
    /// Approvers by group: group name → addresses. Requesters get email at the
    /// address their OpenID Connect sign-in carried.
    pub group_emails: std::collections::BTreeMap<String, Vec<String>>,
    pub email_events: Vec<String>,
    /// A request waiting for a decision longer than this is reminded to its approvers, once per period.
    pub remind_after_hours: u64,
    /// A temporary production grant that ends within this long is announced (once).
    pub expiry_warning_hours: u64,
}

impl Default for NotifySection {
    fn default() -> Self {
        let all = || app::domain::notify::NotifyEvent::ALL.iter().map(|e| e.as_str().to_string()).collect();
        Self {
            slack_webhook_url: String::new(),
            webhook_url: String::new(),
            webhook_secret: String::new(),
            slack_events: all(),
            webhook_events: all(),
            smtp_url: String::new(),
            smtp_username: String::new(),
            smtp_password: String::new(),
            email_from: String::new(),
            group_emails: Default::default(),
            email_events: all(),
            retry_base_ms: 5_000,
            retry_max_ms: 300_000,
            give_up_after_minutes: 24 * 60,
            timeout_ms: 10_000,
            remind_after_hours: 24,
            expiry_warning_hours: 24,
        }
    }
}
