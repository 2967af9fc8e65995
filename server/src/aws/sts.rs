//! Credentials: the base SDK configuration (moto or the default chain), the
//! attributed AssumeRole session the portal acts in, and the accounts it finds.
use crate::config::{AwsTarget, Config};
use anyhow::Context;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::time::Duration;

/// Builds the base SDK config: moto with static test credentials (local), or
/// the default credential chain (aws).
pub async fn base_config(config: &Config, profile: Option<&str>) -> SdkConfig {
    let aws = &config.raw.aws;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(aws.region.clone()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(20))
                // The cap on one call with its retries: well inside the
                // shortest apply lease (`worker.lease_seconds`, see config.rs),
                // so a write that starts under the lease ends under it.
                .operation_timeout(Duration::from_secs(crate::config::AWS_CALL_CAP_SECONDS))
                .build(),
        );
    if aws.target == AwsTarget::Local {
        loader = loader.endpoint_url(aws.local_endpoint.clone()).credentials_provider(
            aws_sdk_sts::config::Credentials::new("testing", "testing", None, None, "ecr-portal-local"),
        );
    } else if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    loader.load().await
}

/// Who the portal acts for, as AWS sees it: the AssumeRole session name,
/// the source identity and the session tags. CloudTrail records all three
/// on the AssumeRole event and the source identity on every call made with
/// the session (and on any role chained from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub session_name: String,
    pub source_identity: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl Attribution {
    /// The portal itself (reads, discovery): a session name and nothing more.
    pub fn portal(session: &str) -> Self {
        Self { session_name: session_name(session), source_identity: None, tags: Vec::new() }
    }

    /// An apply of request `id`: the session name `req<id>-<requester>-by-<approver>`
    /// (shortened so it never loses the approver), the approver as the source
    /// identity (the person whose decision the change carries out), and the
    /// tags `requester`, `approver`, `request-id` with the full user ids.
    pub fn for_request(id: i64, requester: &str, approver: &str) -> Self {
        let prefix = format!("req{id}-");
        let (who, by) = (sts_chars(person(requester)), sts_chars(person(approver)));
        // The approver keeps what it needs, leaving the requester at least 12 characters.
        let by = fit(&by, 64 - prefix.len() - "-by-".len() - 12);
        let who = fit(&who, 64 - prefix.len() - "-by-".len() - by.len());
        Self {
            session_name: format!("{prefix}{who}-by-{by}"),
            source_identity: Some(fit(&sts_chars(approver), 64)),
            tags: vec![
                ("requester".into(), fit(&tag_chars(requester), 256)),
                ("approver".into(), fit(&tag_chars(approver), 256)),
                ("request-id".into(), id.to_string()),
            ],
        }
    }
}

/// The person part of a user id: `local:alice` → `alice`, `oidc:<sub>@<issuer>` → `<sub>`.
fn person(user_id: &str) -> &str {
    if let Some(rest) = user_id.strip_prefix("local:") {
        return rest;
    }
    match user_id.strip_prefix("oidc:") {
        Some(rest) => rest.rsplit_once('@').map_or(rest, |(sub, _)| sub),
        None => user_id,
    }
}

/// Keeps the characters STS allows in session names and source identities (`[\w+=,.@-]`).
fn sts_chars(raw: &str) -> String {
    raw.chars().map(|c| if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) { c } else { '-' }).collect()
}

/// Keeps the characters STS allows in session tag values (`[\p{L}\p{Z}\p{N}_.:/=+\-@]`).
fn tag_chars(raw: &str) -> String {
    raw.chars().map(|c| if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) { c } else { '-' }).collect()
}

/// `s` in at most `max` characters (at least 2, as STS wants): cut, with a
/// hash of the whole so two long ids that share a beginning stay apart.
fn fit(s: &str, max: usize) -> String {
    let max = max.max(2);
    let s = if s.chars().count() < 2 { format!("{s}--") } else { s.to_string() };
    if s.chars().count() <= max {
        return s;
    }
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(s.as_bytes()));
    if max <= 10 {
        return hash[..max].to_string();
    }
    let head: String = s.chars().take(max - 9).collect();
    format!("{head}-{}", &hash[..8])
}

/// Credentials for a role through STS AssumeRole, carrying an [`Attribution`].
/// aws-config's `AssumeRoleProvider` sets session tags but not a source
/// identity, so this provider makes the call itself; the SDK's identity
/// cache keeps the credentials until shortly before they expire.
#[derive(Debug)]
struct AttributedAssumeRole {
    sts: aws_sdk_sts::Client,
    role: String,
    who: Attribution,
}

impl aws_credential_types::provider::ProvideCredentials for AttributedAssumeRole {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        use aws_credential_types::provider::error::CredentialsError;
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let mut call = self
                .sts
                .assume_role()
                .role_arn(&self.role)
                .role_session_name(&self.who.session_name)
                .set_source_identity(self.who.source_identity.clone());
            for (k, v) in &self.who.tags {
                let tag = aws_sdk_sts::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| CredentialsError::invalid_configuration(e.to_string()))?;
                call = call.tags(tag);
            }
            let out = call.send().await.map_err(|e| {
                CredentialsError::provider_error(aws_sdk_sts::error::DisplayErrorContext(&e).to_string())
            })?;
            let c = out
                .credentials()
                .ok_or_else(|| CredentialsError::provider_error("AssumeRole returned no credentials"))?;
            Ok(aws_sdk_sts::config::Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                std::time::SystemTime::try_from(*c.expiration()).ok(),
                "ecr-portal-assume-role",
            ))
        })
    }
}

/// An STS client whose calls the metrics count.
pub fn sts_client(cfg: &SdkConfig) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::from_conf(aws_sdk_sts::config::Builder::from(cfg).interceptor(super::CountAwsCalls).build())
}

/// The SDK config acting as `role`, assumed with `who`'s attribution.
pub async fn assume(base: &SdkConfig, role: &str, who: &Attribution) -> SdkConfig {
    let provider = AttributedAssumeRole { sts: sts_client(base), role: role.to_string(), who: who.clone() };
    base.to_builder().credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(provider)).build()
}

/// The account the given SDK config acts in (STS GetCallerIdentity).
pub async fn caller_account(cfg: &SdkConfig) -> anyhow::Result<String> {
    let who = sts_client(cfg).get_caller_identity().send().await.context("STS GetCallerIdentity")?;
    who.account().map(str::to_string).context("GetCallerIdentity returned no account")
}

/// The production account: configured, or discovered through its role or profile
/// (like the Terraform module's `data "aws_caller_identity" "production"`).
pub async fn production_account(config: &Config) -> anyhow::Result<Option<String>> {
    if let Some(a) = &config.production_account {
        return Ok(Some(a.to_string()));
    }
    let profile = Some(config.raw.aws.production_profile.trim()).filter(|p| !p.is_empty());
    if let Some(role) = &config.production_role {
        let base = base_config(config, None).await;
        let cfg = assume(&base, role.as_str(), &Attribution::portal("ecr-portal-discover")).await;
        return caller_account(&cfg).await.map(Some);
    }
    if profile.is_some() {
        let cfg = base_config(config, profile).await;
        return caller_account(&cfg).await.map(Some);
    }
    Ok(None)
}

/// An STS role session name: `[\w+=,.@-]`, 2 to 64 characters.
pub fn session_name(raw: &str) -> String {
    fit(&sts_chars(raw), 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_attribution_reads_naturally() {
        let a = Attribution::for_request(42, "local:alice", "local:bob");
        assert_eq!(a.session_name, "req42-alice-by-bob");
        assert_eq!(a.source_identity.as_deref(), Some("local-bob"));
        assert_eq!(
            a.tags,
            [
                ("requester".to_string(), "local:alice".to_string()),
                ("approver".to_string(), "local:bob".to_string()),
                ("request-id".to_string(), "42".to_string())
            ]
        );
    }

    #[test]
    fn long_oidc_subjects_never_push_the_approver_out_of_the_session_name() {
        let issuer = "@login.crytera.example/realms/engineering";
        let requester = format!("oidc:{}{issuer}", "r".repeat(90));
        let approver = |tail: &str| format!("oidc:{}{tail}{issuer}", "a".repeat(50));
        let one = Attribution::for_request(1234567, &requester, &approver("x1"));
        let two = Attribution::for_request(1234567, &requester, &approver("x2"));
        for a in [&one, &two] {
            let n = a.session_name.chars().count();
            assert!((2..=64).contains(&n), "{} ({n})", a.session_name);
            assert!(a.session_name.starts_with("req1234567-rrr"), "{}", a.session_name);
            let by = a.session_name.split("-by-").nth(1).expect("the approver is there");
            assert!(by.starts_with("aaaa") && by.len() >= 12, "{by}");
            assert!(a.session_name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c)));
            let source = a.source_identity.as_deref().expect("source identity");
            assert!((2..=64).contains(&source.len()), "{source}");
        }
        assert_ne!(one.session_name, two.session_name, "approvers that share a beginning stay apart");
        assert_ne!(one.source_identity, two.source_identity);
        // Tags keep the whole ids (up to STS's 256 characters).
        assert_eq!(one.tags[0].1, requester);
        assert_eq!(one.tags[1].1, approver("x1"));
    }

    #[test]
    fn session_names_keep_sts_characters_and_length() {
        assert_eq!(session_name("ecr portal/x"), "ecr-portal-x");
        assert_eq!(session_name("x").len(), 3, "padded to STS's minimum of 2");
        assert!(session_name(&"y".repeat(100)).len() == 64);
    }
}
