//! AWS adapters: ECR through the SDK, with credentials from STS AssumeRole.
//!
//! [`Registry`] is the port the service and worker use; [`EcrRegistry`] is the
//! only implementation that talks to AWS (or to moto, which stands in for it
//! locally and in tests). SDK errors become [`RegistryError`] here so nothing
//! above this module sees SDK types.
use crate::config::{AwsTarget, Config};
use anyhow::Context;
use app::domain::settings::{Encryption, RepositorySpec, Tag, TagMutability};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::operation::RequestId;
use aws_sdk_ecr::types as ecr;
use std::time::Duration;

/// The tag that marks a repository as created by a portal request, so a
/// resumed apply recognises its own half-finished work. Its value is
/// [`crate::secret::PortalKey::repository_marker`]: the request number and a
/// MAC under the portal's key, so nobody can tag a repository as the portal's.
pub const REQUEST_TAG: &str = "ecr-portal:request";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("the repository already exists")]
    AlreadyExists,
    #[error("the repository does not exist")]
    NotFound,
    #[error("AWS refused the parameters: {0}")]
    Invalid(String),
    #[error("AWS denied access: {0}")]
    Denied(String),
    #[error("AWS is unreachable or throttling: {0}")]
    Transient(String),
    #[error("AWS call failed: {0}")]
    Other(String),
}

/// A repository as it is in ECR now.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRepository {
    pub name: String,
    pub uri: String,
    pub arn: String,
    pub registry_id: String,
    pub created_at_ms: i64,
    pub tag_mutability: TagMutability,
    pub scan_on_push: bool,
    pub encryption: Encryption,
    /// Only filled by [`Registry::describe`] (not by listing).
    pub tags: Vec<Tag>,
    pub lifecycle_policy: Option<serde_json::Value>,
    /// Only filled by [`Registry::describe`]: the repository policy, parsed.
    pub policy: Option<serde_json::Value>,
    /// The AWS request ids of the reads that produced this view.
    pub request_ids: Vec<String>,
}

impl LiveRepository {
    /// Differences between this repository and a spec, in words (empty: same).
    /// Differences in what DescribeRepositories shows (tag mutability, scanning, encryption).
    pub fn settings_differences(&self, spec: &RepositorySpec) -> Vec<String> {
        let mut d = Vec::new();
        if self.tag_mutability != spec.tag_mutability {
            d.push(format!("image tags are {} (requested {})", self.tag_mutability, spec.tag_mutability));
        }
        if self.scan_on_push != spec.scan_on_push {
            d.push(format!("scan on push is {} (requested {})", self.scan_on_push, spec.scan_on_push));
        }
        if self.encryption != spec.encryption {
            d.push(format!("encryption is {} (requested {})", self.encryption, spec.encryption));
        }
        d
    }

    pub fn differences(&self, spec: &RepositorySpec) -> Vec<String> {
        let mut d = self.settings_differences(spec);
        // Compared as parsed JSON: AWS reformats policy text.
        if self.lifecycle_policy != spec.lifecycle.policy_json() {
            d.push(match &self.lifecycle_policy {
                None => "it has no lifecycle policy (one was requested)".into(),
                Some(_) if spec.lifecycle.is_empty() => "it has a lifecycle policy (none was requested)".into(),
                Some(_) => "its lifecycle policy differs from the requested one".into(),
            });
        }
        for want in spec.tags.iter().filter(|t| t.key != REQUEST_TAG) {
            match self.tags.iter().find(|t| t.key == want.key) {
                Some(t) if t.value == want.value => {}
                Some(t) => d.push(format!("tag {} is `{}` (requested `{}`)", want.key, t.value, want.value)),
                None => d.push(format!("tag {} is missing", want.key)),
            }
        }
        d
    }

    pub fn request_tag(&self) -> Option<&str> {
        self.tags.iter().find(|t| t.key == REQUEST_TAG).map(|t| t.value.as_str())
    }
}

/// One setting to put back to its approved value.
#[derive(Debug, Clone, PartialEq)]
pub enum Fix {
    TagMutability(TagMutability),
    ScanOnPush(bool),
    Lifecycle(Option<serde_json::Value>),
    Tags(Vec<Tag>),
}

impl Fix {
    pub fn call(&self) -> &'static str {
        match self {
            Fix::TagMutability(_) => "ecr:PutImageTagMutability",
            Fix::ScanOnPush(_) => "ecr:PutImageScanningConfiguration",
            Fix::Lifecycle(Some(_)) => "ecr:PutLifecyclePolicy",
            Fix::Lifecycle(None) => "ecr:DeleteLifecyclePolicy",
            Fix::Tags(_) => "ecr:TagResource",
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Fix::TagMutability(m) => format!("set image tags to {m}"),
            Fix::ScanOnPush(b) => format!("set scan on push to {b}"),
            Fix::Lifecycle(Some(_)) => "put the approved lifecycle policy back".into(),
            Fix::Lifecycle(None) => "delete the lifecycle policy".into(),
            Fix::Tags(t) => format!(
                "set tags {}",
                t.iter().map(|t| format!("{}={}", t.key, t.value)).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// The settings that differ between `live` and `spec`, as fixes (encryption cannot be changed).
pub fn fixes(live: &LiveRepository, spec: &RepositorySpec) -> (Vec<Fix>, Vec<String>) {
    let mut fixes = Vec::new();
    let mut impossible = Vec::new();
    if live.tag_mutability != spec.tag_mutability {
        fixes.push(Fix::TagMutability(spec.tag_mutability));
    }
    if live.scan_on_push != spec.scan_on_push {
        fixes.push(Fix::ScanOnPush(spec.scan_on_push));
    }
    if live.lifecycle_policy != spec.lifecycle.policy_json() {
        fixes.push(Fix::Lifecycle(spec.lifecycle.policy_json()));
    }
    let wrong_tags: Vec<Tag> =
        spec.tags.iter().filter(|want| t_value(live, &want.key) != Some(want.value.as_str())).cloned().collect();
    if !wrong_tags.is_empty() {
        fixes.push(Fix::Tags(wrong_tags));
    }
    if live.encryption != spec.encryption {
        impossible.push(format!(
            "encryption is {} (approved {}); ECR cannot change it after creation",
            live.encryption, spec.encryption
        ));
    }
    (fixes, impossible)
}

fn t_value<'a>(live: &'a LiveRepository, key: &str) -> Option<&'a str> {
    live.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

/// What creating a repository returned.
#[derive(Debug, Clone)]
pub struct Created {
    pub uri: String,
    pub arn: String,
    pub request_id: String,
}

/// The port: the ECR operations the portal needs, in the staging account.
#[async_trait::async_trait]
pub trait Registry: Send + Sync + 'static {
    async fn create(&self, spec: &RepositorySpec, marker: &str) -> Result<Created, RegistryError>;
    async fn put_lifecycle_policy(&self, name: &str, policy: &serde_json::Value) -> Result<String, RegistryError>;
    async fn describe(&self, name: &str) -> Result<Option<LiveRepository>, RegistryError>;
    /// Only DescribeRepositories: settings, URI and ARN (no tags, lifecycle or
    /// policy). The apply's verification read.
    async fn describe_settings(&self, name: &str) -> Result<Option<LiveRepository>, RegistryError> {
        self.describe(name).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<LiveRepository>, RegistryError>;
    /// The repository policy text (None: no policy) and the request id.
    async fn get_policy(&self, name: &str) -> Result<(Option<String>, String), RegistryError>;
    async fn set_policy(&self, name: &str, policy: &serde_json::Value) -> Result<String, RegistryError>;
    async fn delete_policy(&self, name: &str) -> Result<String, RegistryError>;
    /// How many images, and when the newest was pushed (unix ms).
    async fn image_stats(&self, name: &str) -> Result<(usize, Option<i64>), RegistryError>;
    /// Restores one setting (used by restore requests).
    async fn fix(&self, name: &str, arn: &str, fix: &Fix) -> Result<String, RegistryError>;
    /// A cheap authenticated call (STS GetCallerIdentity) for readiness.
    async fn ping(&self) -> Result<String, RegistryError>;
    /// The same registry acting under its own assumed-role session, named so AWS's
    /// own logs (CloudTrail) show whose request it is. Credentials are cached by the
    /// provider until shortly before they expire.
    async fn scoped(&self, session: &str) -> std::sync::Arc<dyn Registry>;
}

fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    err: aws_sdk_ecr::error::SdkError<E>,
) -> RegistryError {
    use aws_sdk_ecr::error::SdkError;
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            RegistryError::Transient(aws_sdk_ecr::error::DisplayErrorContext(&err).to_string())
        }
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("");
            let msg = e.message().unwrap_or(code).to_string();
            let status = se.raw().status().as_u16();
            match code {
                "RepositoryAlreadyExistsException" => RegistryError::AlreadyExists,
                "RepositoryNotFoundException" => RegistryError::NotFound,
                "InvalidParameterException"
                | "InvalidTagParameterException"
                | "LimitExceededException"
                | "KmsException" => RegistryError::Invalid(msg),
                "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" => RegistryError::Denied(msg),
                "ThrottlingException" | "ServerException" => RegistryError::Transient(msg),
                _ if status == 403 => RegistryError::Denied(format!("HTTP 403 {msg}")),
                _ if status == 429 || status >= 500 => RegistryError::Transient(format!("HTTP {status} {msg}")),
                _ => RegistryError::Other(format!("{code} {msg}")),
            }
        }
        _ => RegistryError::Other(aws_sdk_ecr::error::DisplayErrorContext(&err).to_string()),
    }
}

fn rid<T: RequestId>(out: &T) -> String {
    out.request_id().unwrap_or("unknown").to_string()
}

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

/// Credentials for `role` through STS AssumeRole, refreshed shortly before they expire.
pub async fn assume(base: &SdkConfig, role: &str, session: &str) -> SdkConfig {
    let provider =
        aws_config::sts::AssumeRoleProvider::builder(role).session_name(session).configure(base).build().await;
    base.to_builder().credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(provider)).build()
}

/// The account the given SDK config acts in (STS GetCallerIdentity).
pub async fn caller_account(cfg: &SdkConfig) -> anyhow::Result<String> {
    let who = aws_sdk_sts::Client::new(cfg).get_caller_identity().send().await.context("STS GetCallerIdentity")?;
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
        let cfg = assume(&base, role.as_str(), "ecr-portal-discover").await;
        return caller_account(&cfg).await.map(Some);
    }
    if profile.is_some() {
        let cfg = base_config(config, profile).await;
        return caller_account(&cfg).await.map(Some);
    }
    Ok(None)
}

pub struct EcrRegistry {
    ecr: aws_sdk_ecr::Client,
    sts: aws_sdk_sts::Client,
    base: SdkConfig,
    role: Option<String>,
}

/// An STS role session name: `[\w+=,.@-]`, at most 64 characters.
pub fn session_name(raw: &str) -> String {
    let clean: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) { c } else { '-' }).collect();
    clean.chars().take(64).collect()
}

impl EcrRegistry {
    /// Clients acting in the staging account: through the staging role when configured.
    pub async fn new(config: &Config) -> Self {
        let base = base_config(config, None).await;
        let role = config.staging_role.as_ref().map(|r| r.to_string());
        Self::with_session(base, role, "ecr-portal").await
    }

    async fn with_session(base: SdkConfig, role: Option<String>, session: &str) -> Self {
        let cfg = match &role {
            Some(r) => assume(&base, r, &session_name(session)).await,
            None => base.clone(),
        };
        Self { ecr: aws_sdk_ecr::Client::new(&cfg), sts: aws_sdk_sts::Client::new(&cfg), base, role }
    }

    fn live(r: &ecr::Repository) -> LiveRepository {
        let enc = r.encryption_configuration();
        let encryption = match enc.map(|e| e.encryption_type()) {
            Some(ecr::EncryptionType::Kms) | Some(ecr::EncryptionType::KmsDsse) => {
                Encryption::Kms(enc.and_then(|e| e.kms_key()).unwrap_or_default().to_string())
            }
            _ => Encryption::Aes256,
        };
        LiveRepository {
            name: r.repository_name().unwrap_or_default().to_string(),
            uri: r.repository_uri().unwrap_or_default().to_string(),
            arn: r.repository_arn().unwrap_or_default().to_string(),
            registry_id: r.registry_id().unwrap_or_default().to_string(),
            created_at_ms: r
                .created_at()
                .map(|t| t.secs() * 1000 + i64::from(t.subsec_nanos() / 1_000_000))
                .unwrap_or(0),
            tag_mutability: match r.image_tag_mutability() {
                Some(ecr::ImageTagMutability::Mutable) => TagMutability::Mutable,
                _ => TagMutability::Immutable,
            },
            scan_on_push: r.image_scanning_configuration().is_some_and(|s| s.scan_on_push()),
            encryption,
            tags: Vec::new(),
            lifecycle_policy: None,
            policy: None,
            request_ids: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl Registry for EcrRegistry {
    async fn create(&self, spec: &RepositorySpec, marker: &str) -> Result<Created, RegistryError> {
        let encryption = match &spec.encryption {
            Encryption::Aes256 => ecr::EncryptionConfiguration::builder().encryption_type(ecr::EncryptionType::Aes256),
            Encryption::Kms(key) => {
                ecr::EncryptionConfiguration::builder().encryption_type(ecr::EncryptionType::Kms).kms_key(key)
            }
        }
        .build()
        .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let mut req = self
            .ecr
            .create_repository()
            .repository_name(spec.name.as_str())
            .image_tag_mutability(match spec.tag_mutability {
                TagMutability::Mutable => ecr::ImageTagMutability::Mutable,
                TagMutability::Immutable => ecr::ImageTagMutability::Immutable,
            })
            .image_scanning_configuration(
                ecr::ImageScanningConfiguration::builder().scan_on_push(spec.scan_on_push).build(),
            )
            .encryption_configuration(encryption);
        let request_tag = Tag { key: REQUEST_TAG.into(), value: marker.to_string() };
        for t in spec.tags.iter().chain(std::iter::once(&request_tag)) {
            req = req.tags(
                ecr::Tag::builder()
                    .key(&t.key)
                    .value(&t.value)
                    .build()
                    .map_err(|e| RegistryError::Invalid(e.to_string()))?,
            );
        }
        let out = req.send().await.map_err(classify)?;
        let repo =
            out.repository().ok_or_else(|| RegistryError::Other("CreateRepository returned no repository".into()))?;
        Ok(Created {
            uri: repo.repository_uri().unwrap_or_default().to_string(),
            arn: repo.repository_arn().unwrap_or_default().to_string(),
            request_id: rid(&out),
        })
    }

    async fn put_lifecycle_policy(&self, name: &str, policy: &serde_json::Value) -> Result<String, RegistryError> {
        let out = self
            .ecr
            .put_lifecycle_policy()
            .repository_name(name)
            .lifecycle_policy_text(policy.to_string())
            .send()
            .await
            .map_err(classify)?;
        Ok(rid(&out))
    }

    async fn describe_settings(&self, name: &str) -> Result<Option<LiveRepository>, RegistryError> {
        let out = match self.ecr.describe_repositories().repository_names(name).send().await.map_err(classify) {
            Ok(o) => o,
            Err(RegistryError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(out.repositories().first().map(|r| {
            let mut live = Self::live(r);
            live.request_ids.push(rid(&out));
            live
        }))
    }

    async fn describe(&self, name: &str) -> Result<Option<LiveRepository>, RegistryError> {
        let out = match self.ecr.describe_repositories().repository_names(name).send().await.map_err(classify) {
            Ok(o) => o,
            Err(RegistryError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(r) = out.repositories().first() else {
            return Ok(None);
        };
        let mut live = Self::live(r);
        live.request_ids.push(rid(&out));
        let tags = self.ecr.list_tags_for_resource().resource_arn(&live.arn).send().await.map_err(classify)?;
        live.request_ids.push(rid(&tags));
        live.tags =
            tags.tags().iter().map(|t| Tag { key: t.key().to_string(), value: t.value().to_string() }).collect();
        live.tags.sort();
        match self.ecr.get_lifecycle_policy().repository_name(name).send().await {
            Ok(lp) => {
                live.request_ids.push(rid(&lp));
                live.lifecycle_policy = lp.lifecycle_policy_text().and_then(|t| serde_json::from_str(t).ok());
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_lifecycle_policy_not_found_exception()) => {}
            Err(e) => return Err(classify(e)),
        }
        let (policy, id) = self.get_policy(name).await?;
        live.request_ids.push(id);
        live.policy = policy.and_then(|t| serde_json::from_str(&t).ok());
        Ok(Some(live))
    }

    async fn get_policy(&self, name: &str) -> Result<(Option<String>, String), RegistryError> {
        match self.ecr.get_repository_policy().repository_name(name).send().await {
            Ok(out) => Ok((out.policy_text().map(str::to_string), rid(&out))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_repository_policy_not_found_exception()) => {
                Ok((None, e.request_id().unwrap_or("unknown").to_string()))
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn set_policy(&self, name: &str, policy: &serde_json::Value) -> Result<String, RegistryError> {
        let out = self
            .ecr
            .set_repository_policy()
            .repository_name(name)
            .policy_text(policy.to_string())
            .send()
            .await
            .map_err(classify)?;
        Ok(rid(&out))
    }

    async fn delete_policy(&self, name: &str) -> Result<String, RegistryError> {
        match self.ecr.delete_repository_policy().repository_name(name).send().await {
            Ok(out) => Ok(rid(&out)),
            // Already gone: the desired state.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_repository_policy_not_found_exception()) => {
                Ok(e.request_id().unwrap_or("unknown").to_string())
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn image_stats(&self, name: &str) -> Result<(usize, Option<i64>), RegistryError> {
        let mut count = 0;
        let mut last: Option<i64> = None;
        let mut pages = self.ecr.describe_images().repository_name(name).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            for img in page.image_details() {
                count += 1;
                if let Some(t) = img.image_pushed_at() {
                    let ms = t.secs() * 1000;
                    last = Some(last.map_or(ms, |l| l.max(ms)));
                }
            }
        }
        Ok((count, last))
    }

    async fn fix(&self, name: &str, arn: &str, fix: &Fix) -> Result<String, RegistryError> {
        match fix {
            Fix::TagMutability(m) => {
                let out = self
                    .ecr
                    .put_image_tag_mutability()
                    .repository_name(name)
                    .image_tag_mutability(match m {
                        TagMutability::Mutable => ecr::ImageTagMutability::Mutable,
                        TagMutability::Immutable => ecr::ImageTagMutability::Immutable,
                    })
                    .send()
                    .await
                    .map_err(classify)?;
                Ok(rid(&out))
            }
            Fix::ScanOnPush(b) => {
                let out = self
                    .ecr
                    .put_image_scanning_configuration()
                    .repository_name(name)
                    .image_scanning_configuration(ecr::ImageScanningConfiguration::builder().scan_on_push(*b).build())
                    .send()
                    .await
                    .map_err(classify)?;
                Ok(rid(&out))
            }
            Fix::Lifecycle(Some(p)) => self.put_lifecycle_policy(name, p).await,
            Fix::Lifecycle(None) => match self.ecr.delete_lifecycle_policy().repository_name(name).send().await {
                Ok(out) => Ok(rid(&out)),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_lifecycle_policy_not_found_exception()) => {
                    Ok(e.request_id().unwrap_or("unknown").to_string())
                }
                Err(e) => Err(classify(e)),
            },
            Fix::Tags(tags) => {
                let mut req = self.ecr.tag_resource().resource_arn(arn);
                for t in tags {
                    req = req.tags(
                        ecr::Tag::builder()
                            .key(&t.key)
                            .value(&t.value)
                            .build()
                            .map_err(|e| RegistryError::Invalid(e.to_string()))?,
                    );
                }
                let out = req.send().await.map_err(classify)?;
                Ok(rid(&out))
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LiveRepository>, RegistryError> {
        let mut out = Vec::new();
        let mut pages = self.ecr.describe_repositories().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            out.extend(
                page.repositories()
                    .iter()
                    .filter(|r| r.repository_name().is_some_and(|n| n.starts_with(prefix)))
                    .map(Self::live),
            );
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn scoped(&self, session: &str) -> std::sync::Arc<dyn Registry> {
        std::sync::Arc::new(Self::with_session(self.base.clone(), self.role.clone(), session).await)
    }

    async fn ping(&self) -> Result<String, RegistryError> {
        let who = self.sts.get_caller_identity().send().await.map_err(|e| {
            use aws_sdk_sts::error::SdkError;
            match &e {
                SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                    RegistryError::Transient(aws_sdk_sts::error::DisplayErrorContext(&e).to_string())
                }
                _ => RegistryError::Other(aws_sdk_sts::error::DisplayErrorContext(&e).to_string()),
            }
        })?;
        Ok(who.account().unwrap_or_default().to_string())
    }
}
