//! Typed configuration: embedded defaults (the local run), then a TOML file
//! (`--config PATH`), then environment variables `ECR_PORTAL_SECTION__KEY`.
//! Validated once at start; every error names the key to fix. Secrets are
//! never printed (there are none yet; OIDC client secrets will be redacted).
use anyhow::{anyhow, bail, Context};
use app::domain::account::{AccountId, RoleArn};
use app::domain::name::Namespace;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const ENV_PREFIX: &str = "ECR_PORTAL_";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub portal: PortalSection,
    pub aws: AwsSection,
    pub auth: AuthSection,
    pub worker: WorkerSection,
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
}

impl Default for ServerSection {
    fn default() -> Self {
        Self { listen: "127.0.0.1:3000".into(), site_root: "target/site".into(), max_body_bytes: 64 * 1024 }
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
}

impl Default for PortalSection {
    fn default() -> Self {
        Self { namespace: "crytera".into(), production_can_list: false }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Type a user name and pick a role; loopback only unless allowed.
    Local,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub mode: AuthMode,
    /// Members of this group are admins (OIDC sign-in).
    pub admin_group: String,
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
            allow_local_on_non_loopback: false,
            session_idle_minutes: 8 * 60,
            session_absolute_hours: 24,
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

/// The validated configuration the application runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    pub listen: SocketAddr,
    pub database_path: PathBuf,
    pub namespace: Namespace,
    pub staging_role: Option<RoleArn>,
    pub production_account: Option<AccountId>,
    pub production_role: Option<RoleArn>,
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
        let namespace =
            Namespace::parse(&raw.portal.namespace).map_err(|e| anyhow!("config key `portal.namespace`: {e}"))?;
        if opt(&raw.database.path).is_none() {
            bail!("config key `database.path`: give a file path for the SQLite database");
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
        if raw.worker.max_attempts == 0
            || raw.worker.retry_base_ms == 0
            || raw.worker.retry_max_ms < raw.worker.retry_base_ms
        {
            bail!("config keys `worker.max_attempts` and `worker.retry_base_ms` must be above 0, and `worker.retry_max_ms` at least `worker.retry_base_ms`");
        }
        if raw.auth.session_idle_minutes == 0 || raw.auth.session_absolute_hours == 0 {
            bail!("config keys `auth.session_idle_minutes` and `auth.session_absolute_hours` must be above 0");
        }
        Ok(Self {
            listen,
            database_path: PathBuf::from(raw.database.path.trim()),
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
                ("ECR_PORTAL_AUTH__ALLOW_LOCAL_ON_NON_LOOPBACK", "true")
            ])
        )
        .is_ok());
    }

    #[test]
    fn the_example_config_is_valid() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ecr-portal.example.toml");
        let c = Config::load_from(Some(&file), &[]).expect("the example config loads");
        assert_eq!(c.raw.aws.target, AwsTarget::Aws);
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
