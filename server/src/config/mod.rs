//! Typed configuration: embedded defaults (the local run), then a TOML file
//! (`--config PATH`), then environment variables `ECR_PORTAL_SECTION__KEY`.
//! Validated once at start; every error names the key to fix. Secrets are
//! never printed: the OIDC client secret is redacted from `Debug`.
use anyhow::{anyhow, bail, Context};
use app::domain::account::{AccountId, RoleArn};
use app::domain::approval::{ApprovalPolicy, ApprovalRule};
use app::domain::name::Namespace;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod sections;
pub use sections::*;

pub const ENV_PREFIX: &str = "ECR_PORTAL_";

/// The longest one AWS call may take, retries included (the SDK's operation
/// timeout); the shortest apply lease allowed is twice that.
pub const AWS_CALL_CAP_SECONDS: u64 = 60;

/// The validated configuration the application runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    pub listen: SocketAddr,
    /// `server.metrics_listen`, if set.
    pub metrics_listen: Option<SocketAddr>,
    pub database_path: PathBuf,
    pub namespace: Namespace,
    pub staging_role: Option<RoleArn>,
    pub production_account: Option<AccountId>,
    pub production_role: Option<RoleArn>,
    /// The origin people use, e.g. `https://ecr.example.com` (no trailing slash).
    pub public_url: String,
    pub approval: ApprovalPolicy,
    /// `audit.key_file`, resolved.
    pub audit_key_path: PathBuf,
    /// `audit.head_file`, if set.
    pub audit_head_file: Option<PathBuf>,
}

impl Config {
    /// Served over HTTPS (behind a TLS proxy): Secure `__Host-` cookies and HSTS.
    pub fn https(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

fn opt(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

impl Config {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        Self::load_from(file, &env)
    }

    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut value = toml::Value::try_from(RawConfig::default()).context("serialising defaults")?;
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
            let file_value: toml::Value =
                toml::from_str(&text).with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            merge(&mut value, file_value);
        }
        for (key, raw) in env {
            apply_env(&mut value, key, raw)?;
        }
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            anyhow!("config key `{path}`: {}", e.into_inner())
        })?;
        Self::validate(raw)
    }

    pub fn validate(raw: RawConfig) -> anyhow::Result<Self> {
        let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
            anyhow!("config key `server.listen`: `{}` is not an address like 127.0.0.1:3000", raw.server.listen)
        })?;
        let metrics_listen = opt(&raw.server.metrics_listen)
            .map(|m| {
                m.parse::<SocketAddr>().map_err(|_| {
                    anyhow!("config key `server.metrics_listen`: `{m}` is not an address like 127.0.0.1:9464 (empty: no metrics)")
                })
            })
            .transpose()?;
        if metrics_listen.is_some_and(|m| m == listen && m.port() != 0) {
            bail!("config key `server.metrics_listen`: metrics get a listener of their own, not `server.listen`'s");
        }
        let namespace =
            Namespace::parse(&raw.portal.namespace).map_err(|e| anyhow!("config key `portal.namespace`: {e}"))?;
        if opt(&raw.database.path).is_none() {
            bail!("config key `database.path`: give a file path for the SQLite database");
        }
        if raw.portal.release_tag_patterns.is_empty() {
            bail!("config key `portal.release_tag_patterns`: give at least one pattern, such as v*");
        }
        for p in raw.portal.protected_tags.iter().chain(&raw.portal.release_tag_patterns) {
            if let Err(e) = app::domain::lifecycle::check_exclusion_filter(p) {
                bail!("config keys `portal.protected_tags` and `portal.release_tag_patterns`: {e}");
            }
        }
        if raw.aws.region.trim().is_empty() {
            bail!("config key `aws.region`: give an AWS region such as us-east-1");
        }
        let staging_role = opt(&raw.aws.staging_role_arn)
            .map(RoleArn::parse)
            .transpose()
            .map_err(|e| anyhow!("config key `aws.staging_role_arn`: {e}"))?;
        let production_account = opt(&raw.aws.production_account_id)
            .map(AccountId::parse)
            .transpose()
            .map_err(|e| anyhow!("config key `aws.production_account_id`: {e}"))?;
        let production_role = opt(&raw.aws.production_role_arn)
            .map(RoleArn::parse)
            .transpose()
            .map_err(|e| anyhow!("config key `aws.production_role_arn`: {e}"))?;
        if raw.aws.target == AwsTarget::Local
            && !raw.aws.local_endpoint.starts_with("http://127.")
            && !raw.aws.local_endpoint.starts_with("http://localhost")
        {
            bail!(
                "config key `aws.local_endpoint`: the local AWS stand-in must be on loopback (http://127.0.0.1:PORT)"
            );
        }
        if raw.auth.mode == AuthMode::Local && !listen.ip().is_loopback() && !raw.auth.allow_local_on_non_loopback {
            bail!(
                "config key `auth.mode`: local sign-in lets anyone choose to be admin, so it only listens on loopback; \
                 `server.listen` is {listen}. Use 127.0.0.1, or set `auth.allow_local_on_non_loopback = true` if you really mean it"
            );
        }
        if raw.worker.poll_interval_ms == 0 || raw.worker.lease_seconds == 0 || raw.worker.drift_check_seconds == 0 {
            bail!("config keys `worker.poll_interval_ms`, `worker.lease_seconds` and `worker.drift_check_seconds` must be above 0");
        }
        let shortest_lease = 2 * AWS_CALL_CAP_SECONDS;
        if raw.worker.lease_seconds < shortest_lease {
            bail!(
                "config key `worker.lease_seconds` must be at least {shortest_lease} (two AWS calls at their time limit), got {}",
                raw.worker.lease_seconds
            );
        }
        if raw.worker.max_attempts == 0
            || raw.worker.retry_base_ms == 0
            || raw.worker.retry_max_ms < raw.worker.retry_base_ms
        {
            bail!("config keys `worker.max_attempts` and `worker.retry_base_ms` must be above 0, and `worker.retry_max_ms` at least `worker.retry_base_ms`");
        }
        if raw.auth.session_idle_minutes == 0 || raw.auth.session_absolute_hours == 0 {
            bail!("config keys `auth.session_idle_minutes` and `auth.session_absolute_hours` must be above 0");
        }
        for (key, value) in [
            ("server.header_read_timeout_seconds", raw.server.header_read_timeout_seconds),
            ("server.request_timeout_seconds", raw.server.request_timeout_seconds),
            ("server.max_connections", raw.server.max_connections),
            ("auth.sign_in_per_minute", u64::from(raw.auth.sign_in_per_minute)),
            ("approval.max_open_per_user", u64::from(raw.approval.max_open_per_user)),
        ] {
            if value == 0 {
                bail!("config key `{key}` must be above 0");
            }
        }
        if raw.auth.token_role_max_age_days == 0 {
            bail!("config key `auth.token_role_max_age_days` must be above 0");
        }
        if raw.auth.token_max_days == 0 {
            bail!("config key `auth.token_max_days` must be above 0");
        }
        if raw.auth.admin_group.trim().is_empty() {
            bail!("config key `auth.admin_group`: name the group whose members are admins");
        }
        let public_url = match opt(&raw.server.public_url) {
            None => format!("http://{listen}"),
            Some(u) => {
                let u = u.trim_end_matches('/');
                let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
                if rest.is_none_or(|r| r.is_empty() || r.contains('/')) {
                    bail!("config key `server.public_url`: `{u}` should be an origin like https://ecr.example.com");
                }
                u.to_string()
            }
        };
        if !listen.ip().is_loopback() && opt(&raw.server.public_url).is_none() {
            bail!(
                "config key `server.public_url`: the portal listens on {listen}, so say the address people use \
                 (e.g. https://ecr.example.com); requests for other host names are refused"
            );
        }
        if raw.auth.mode == AuthMode::Oidc {
            for (key, v) in [("oidc.issuer_url", &raw.oidc.issuer_url), ("oidc.client_id", &raw.oidc.client_id)] {
                if v.trim().is_empty() {
                    bail!("config key `{key}`: required when `auth.mode = \"oidc\"`");
                }
            }
            if !raw.oidc.issuer_url.starts_with("https://") && !raw.oidc.issuer_url.starts_with("http://127.") {
                bail!("config key `oidc.issuer_url`: the provider must be reached over https (or http on loopback, for tests)");
            }
        }
        let a = &raw.approval;
        let rule = |key: &str, groups: &[String], required: u32| -> anyhow::Result<ApprovalRule> {
            if required == 0 {
                bail!("config key `approval.{key}_approvals` must be at least 1");
            }
            let groups: Vec<String> = groups.iter().map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect();
            let groups = if groups.is_empty() { vec![raw.auth.admin_group.trim().to_string()] } else { groups };
            Ok(ApprovalRule { groups, required })
        };
        let approval = ApprovalPolicy {
            create_repository: rule("create_repository", &a.create_repository_groups, a.create_repository_approvals)?,
            grant_production: rule("grant_production", &a.grant_production_groups, a.grant_production_approvals)?,
            revoke_production: rule("revoke_production", &a.revoke_production_groups, a.revoke_production_approvals)?,
            restore_repository: rule(
                "restore_repository",
                &a.restore_repository_groups,
                a.restore_repository_approvals,
            )?,
            promote_image: {
                let grant = rule("grant_production", &a.grant_production_groups, a.grant_production_approvals)?;
                let groups: Vec<String> =
                    a.promote_image_groups.iter().map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect();
                ApprovalRule {
                    groups: if groups.is_empty() { grant.groups } else { groups },
                    required: if a.promote_image_approvals == 0 { grant.required } else { a.promote_image_approvals },
                }
            },
            pending_expiry_ms: i64::try_from(a.pending_expiry_hours.saturating_mul(3_600_000))
                .unwrap_or(i64::MAX)
                .max(1),
        };
        if a.pending_expiry_hours == 0 {
            bail!("config key `approval.pending_expiry_hours` must be above 0");
        }
        if raw.audit.publish_every_events == 0 {
            bail!("config key `audit.publish_every_events` must be above 0");
        }
        let n = &raw.notify;
        for (key, url) in [("notify.slack_webhook_url", &n.slack_webhook_url), ("notify.webhook_url", &n.webhook_url)] {
            // The configuration is trusted: loopback and private addresses are allowed.
            if let Some(u) = opt(url) {
                if !(u.starts_with("https://") || u.starts_with("http://")) || reqwest::Url::parse(u).is_err() {
                    bail!("config key `{key}`: `{u}` is not an http(s) URL");
                }
            }
        }
        if opt(&n.webhook_url).is_some() && opt(&n.webhook_secret).is_none() {
            bail!(
                "config key `notify.webhook_secret`: a webhook needs a secret to sign its deliveries \
                 (ECR_PORTAL_NOTIFY__WEBHOOK_SECRET)"
            );
        }
        if let Some(u) = opt(&n.smtp_url) {
            let url = reqwest::Url::parse(u).map_err(|e| anyhow!("config key `notify.smtp_url`: `{u}`: {e}"))?;
            if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none() {
                bail!("config key `notify.smtp_url`: use smtp://host:587 (STARTTLS) or smtps://host:465, got `{u}`");
            }
            if opt(&n.email_from).and_then(|f| f.parse::<lettre::message::Mailbox>().ok()).is_none() {
                bail!("config key `notify.email_from`: email needs a sender such as `ecr-portal <ecr-portal@crytera.example>`");
            }
        }
        for (group, addresses) in &n.group_emails {
            if let Some(bad) = addresses.iter().find(|a| a.parse::<lettre::Address>().is_err()) {
                bail!("config key `notify.group_emails.{group}`: `{bad}` is not an email address");
            }
        }
        for (key, list) in [
            ("notify.slack_events", &n.slack_events),
            ("notify.webhook_events", &n.webhook_events),
            ("notify.email_events", &n.email_events),
        ] {
            if let Some(bad) = list.iter().find(|e| app::domain::notify::NotifyEvent::parse(e).is_none()) {
                bail!("config key `{key}`: `{bad}` is not an event; use request.submitted, request.approved, …, drift.found");
            }
        }
        if n.retry_base_ms == 0 || n.retry_max_ms < n.retry_base_ms || n.give_up_after_minutes == 0 || n.timeout_ms == 0
        {
            bail!(
                "config keys `notify.retry_base_ms`, `notify.give_up_after_minutes`, `notify.timeout_ms`, \
                 `notify.remind_after_hours` and `notify.expiry_warning_hours` must be above 0, and \
                 `notify.retry_max_ms` at least `notify.retry_base_ms`"
            );
        }
        let database_path = PathBuf::from(raw.database.path.trim());
        let audit_key_path = match opt(&raw.audit.key_file) {
            Some(p) => PathBuf::from(p),
            None => database_path.with_file_name("audit.key"),
        };
        if audit_key_path == database_path {
            bail!("config key `audit.key_file`: the key must not be the database file itself");
        }
        Ok(Self {
            public_url,
            approval,
            listen,
            metrics_listen,
            audit_key_path,
            audit_head_file: opt(&raw.audit.head_file).map(PathBuf::from),
            database_path,
            namespace,
            staging_role,
            production_account,
            production_role,
            raw,
        })
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// `ECR_PORTAL_AWS__REGION=eu-west-1` sets `aws.region`. The value takes the
/// type of the key's default (bool, integer or string).
fn apply_env(root: &mut toml::Value, key: &str, raw: &str) -> anyhow::Result<()> {
    let path: Vec<String> = key[ENV_PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect();
    let [section, field] = path.as_slice() else {
        bail!("environment variable {key}: expected {ENV_PREFIX}SECTION__KEY, e.g. ECR_PORTAL_AWS__REGION");
    };
    let table = root
        .get_mut(section.as_str())
        .and_then(toml::Value::as_table_mut)
        .ok_or_else(|| anyhow!("environment variable {key}: there is no config section `{section}`"))?;
    let value = match table.get(field.as_str()) {
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(raw.trim().parse().map_err(|_| {
            anyhow!("config key `{section}.{field}` (from {key}): expected true or false, got `{raw}`")
        })?),
        Some(toml::Value::Integer(_)) => toml::Value::Integer(raw.trim().parse().map_err(|_| {
            anyhow!("config key `{section}.{field}` (from {key}): expected a whole number, got `{raw}`")
        })?),
        Some(toml::Value::Array(_)) => toml::Value::Array(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| toml::Value::String(s.into())).collect(),
        ),
        _ => toml::Value::String(raw.to_string()),
    };
    table.insert(field.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn embedded_defaults_are_the_local_run() {
        let c = Config::load_from(None, &[]).expect("defaults are valid");
        assert_eq!(c.namespace.as_str(), "crytera");
        assert_eq!(c.raw.aws.region, "us-east-1");
        assert_eq!(c.raw.aws.target, AwsTarget::Local);
        assert_eq!(c.raw.auth.mode, AuthMode::Local);
        assert!(c.listen.ip().is_loopback());
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[aws]\nregion = \"eu-west-1\"\n[worker]\npoll_interval_ms = 50\n").expect("write");
        let c = Config::load_from(
            Some(&file),
            &env(&[
                ("ECR_PORTAL_AWS__REGION", "eu-central-1"),
                ("ECR_PORTAL_AWS__PRODUCTION_ACCOUNT_ID", "222222222222"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.raw.aws.region, "eu-central-1");
        assert_eq!(c.raw.worker.poll_interval_ms, 50);
        assert_eq!(c.production_account.expect("set").as_str(), "222222222222");
    }

    #[test]
    fn errors_name_the_bad_key() {
        let msg = |e: &[(&str, &str)]| Config::load_from(None, &env(e)).expect_err("invalid").to_string();
        assert!(msg(&[("ECR_PORTAL_PORTAL__NAMESPACE", "Bad")]).contains("portal.namespace"));
        assert!(msg(&[("ECR_PORTAL_WORKER__POLL_INTERVAL_MS", "soon")]).contains("worker.poll_interval_ms"));
        assert!(msg(&[("ECR_PORTAL_AWS__STAGING_ROLE_ARN", "nope")]).contains("aws.staging_role_arn"));
        assert!(msg(&[("ECR_PORTAL_AWS__BOGUS", "x")]).contains("bogus"));
        assert!(msg(&[("ECR_PORTAL_NOPE__X", "x")]).contains("no config section"));
    }

    #[test]
    fn local_sign_in_refuses_a_non_loopback_address_unless_allowed() {
        let e = Config::load_from(None, &env(&[("ECR_PORTAL_SERVER__LISTEN", "0.0.0.0:3000")])).expect_err("refused");
        assert!(e.to_string().contains("loopback"));
        assert!(Config::load_from(
            None,
            &env(&[
                ("ECR_PORTAL_SERVER__LISTEN", "0.0.0.0:3000"),
                ("ECR_PORTAL_SERVER__PUBLIC_URL", "http://portal.internal:3000"),
                ("ECR_PORTAL_AUTH__ALLOW_LOCAL_ON_NON_LOOPBACK", "true")
            ])
        )
        .is_ok());
    }

    #[test]
    fn approval_rules_default_to_the_admin_group_and_read_lists_from_the_environment() {
        let c = Config::load_from(
            None,
            &env(&[
                ("ECR_PORTAL_APPROVAL__GRANT_PRODUCTION_GROUPS", "prod-approvers, sre"),
                ("ECR_PORTAL_APPROVAL__GRANT_PRODUCTION_APPROVALS", "2"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.approval.grant_production, ApprovalRule::new(&["prod-approvers", "sre"], 2));
        assert_eq!(c.approval.create_repository, ApprovalRule::new(&["ecr-admins"], 1));
        let e = Config::load_from(None, &env(&[("ECR_PORTAL_APPROVAL__REVOKE_PRODUCTION_APPROVALS", "0")]))
            .expect_err("zero approvers");
        assert!(e.to_string().contains("approval.revoke_production_approvals"), "{e}");
    }

    #[test]
    fn oidc_needs_an_issuer_and_the_secret_is_never_printed() {
        let e = Config::load_from(None, &env(&[("ECR_PORTAL_AUTH__MODE", "oidc")])).expect_err("no issuer");
        assert!(e.to_string().contains("oidc.issuer_url"), "{e}");
        let c = Config::load_from(
            None,
            &env(&[
                ("ECR_PORTAL_AUTH__MODE", "oidc"),
                ("ECR_PORTAL_OIDC__ISSUER_URL", "https://id.example.com"),
                ("ECR_PORTAL_OIDC__CLIENT_ID", "ecr-portal"),
                ("ECR_PORTAL_OIDC__CLIENT_SECRET", "s3cr3t-value"),
                ("ECR_PORTAL_SERVER__PUBLIC_URL", "https://ecr.example.com/"),
            ]),
        )
        .expect("valid");
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
        assert!(c.https());
        assert_eq!(c.public_url, "https://ecr.example.com");
    }

    #[test]
    fn the_example_config_is_valid() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ecr-portal.example.toml");
        let c = Config::load_from(Some(&file), &[]).expect("the example config loads");
        assert_eq!(c.raw.aws.target, AwsTarget::Aws);
        assert_eq!(c.raw.auth.mode, AuthMode::Oidc);
        assert_eq!(c.approval.grant_production, ApprovalRule::new(&["prod-approvers"], 2));
        assert!(c.https());
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[server]\nlisten_addr = \"127.0.0.1:1\"\n").expect("write");
        let e = Config::load_from(Some(&file), &[]).expect_err("unknown key");
        assert!(e.to_string().contains("listen_addr"), "{e}");
    }
}
