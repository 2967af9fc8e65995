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
    /// Sorted.
    pub tag_mutability_exclusions: Vec<String>,
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
        } else if self.tag_mutability_exclusions != spec.tag_mutability_exclusions {
            d.push(format!(
                "the tag mutability exclusions are [{}] (requested [{}])",
                self.tag_mutability_exclusions.join(", "),
                spec.tag_mutability_exclusions.join(", ")
            ));
        }
        if self.scan_on_push != spec.scan_on_push {
            d.push(format!("scan on push is {} (requested {})", self.scan_on_push, spec.scan_on_push));
        }
        if !spec.encryption.matches_live(&self.encryption) {
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
    /// The setting and its exclusion filters.
    TagMutability(TagMutability, Vec<String>),
    ScanOnPush(bool),
    Lifecycle(Option<serde_json::Value>),
    Tags(Vec<Tag>),
    /// Remove these tag keys.
    Untag(Vec<String>),
}

impl Fix {
    pub fn call(&self) -> &'static str {
        match self {
            Fix::TagMutability(..) => "ecr:PutImageTagMutability",
            Fix::ScanOnPush(_) => "ecr:PutImageScanningConfiguration",
            Fix::Lifecycle(Some(_)) => "ecr:PutLifecyclePolicy",
            Fix::Lifecycle(None) => "ecr:DeleteLifecyclePolicy",
            Fix::Tags(_) => "ecr:TagResource",
            Fix::Untag(_) => "ecr:UntagResource",
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Fix::TagMutability(m, ex) if ex.is_empty() => format!("set image tags to {m}"),
            Fix::TagMutability(m, ex) => format!("set image tags to {m}, except {}", ex.join(", ")),
            Fix::ScanOnPush(b) => format!("set scan on push to {b}"),
            Fix::Lifecycle(Some(_)) => "put the approved lifecycle policy back".into(),
            Fix::Lifecycle(None) => "delete the lifecycle policy".into(),
            Fix::Tags(t) => format!(
                "set tags {}",
                t.iter().map(|t| format!("{}={}", t.key, t.value)).collect::<Vec<_>>().join(", ")
            ),
            Fix::Untag(keys) => format!("remove tags {}", keys.join(", ")),
        }
    }
}

/// The settings that differ between `live` and `spec`, as fixes (encryption cannot be changed).
pub fn fixes(live: &LiveRepository, spec: &RepositorySpec) -> (Vec<Fix>, Vec<String>) {
    let mut fixes = Vec::new();
    let mut impossible = Vec::new();
    if live.tag_mutability != spec.tag_mutability || live.tag_mutability_exclusions != spec.tag_mutability_exclusions {
        fixes.push(Fix::TagMutability(spec.tag_mutability, spec.tag_mutability_exclusions.clone()));
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
    if !spec.encryption.matches_live(&live.encryption) {
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
    /// Deletes the repository and its images (ECR's force delete).
    async fn delete_repository(&self, name: &str) -> Result<String, RegistryError>;
    /// Every image: digest, tags, push time and last recorded pull.
    async fn images(&self, name: &str) -> Result<Vec<app::domain::lifecycle::Image>, RegistryError> {
        Ok(self.image_details(name).await?.into_iter().map(|i| i.image).collect())
    }
    /// Every image with its size, media type and scan summary (DescribeImages).
    async fn image_details(&self, name: &str) -> Result<Vec<app::domain::image::ImageInfo>, RegistryError>;
    /// The digest a tag names now (None: no such tag).
    async fn digest_of_tag(&self, name: &str, tag: &str) -> Result<Option<String>, RegistryError>;
    /// An image's manifest and its media type (BatchGetImage by digest); None: no such image.
    async fn manifest(&self, name: &str, digest: &str) -> Result<Option<(String, Option<String>)>, RegistryError>;
    /// Tags an image (PutImage with its own manifest). An image that already has the tag is done.
    async fn put_tag(
        &self,
        name: &str,
        tag: &str,
        manifest: &str,
        media_type: Option<&str>,
    ) -> Result<String, RegistryError>;
    /// An image's scan findings (None: not scanned).
    async fn scan_findings(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<Option<app::domain::image::ScanSummary>, RegistryError>;
    /// Starts a scan of an image.
    async fn start_scan(&self, name: &str, digest: &str) -> Result<String, RegistryError>;
    /// Restores one setting (used by restore requests).
    async fn fix(&self, name: &str, arn: &str, fix: &Fix) -> Result<String, RegistryError>;
    /// A cheap authenticated call (STS GetCallerIdentity) for readiness.
    async fn ping(&self) -> Result<String, RegistryError>;
    /// The same registry acting under its own assumed-role session, attributed
    /// (session name, source identity, session tags) so AWS's own logs
    /// (CloudTrail) show whose request it is and who approved it.
    async fn scoped(&self, who: &Attribution) -> std::sync::Arc<dyn Registry>;
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

fn mutability_to_aws(m: TagMutability) -> ecr::ImageTagMutability {
    match m {
        TagMutability::Mutable => ecr::ImageTagMutability::Mutable,
        TagMutability::Immutable => ecr::ImageTagMutability::Immutable,
        TagMutability::ImmutableWithExclusion => ecr::ImageTagMutability::ImmutableWithExclusion,
        TagMutability::MutableWithExclusion => ecr::ImageTagMutability::MutableWithExclusion,
    }
}

fn exclusion_filters(list: &[String]) -> Result<Vec<ecr::ImageTagMutabilityExclusionFilter>, RegistryError> {
    list.iter()
        .map(|f| {
            ecr::ImageTagMutabilityExclusionFilter::builder()
                .filter_type(ecr::ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter(f)
                .build()
                .map_err(|e| RegistryError::Invalid(e.to_string()))
        })
        .collect()
}

/// The SDK leaves a `false` boolean out of the JSON, so turning scan on push
/// off sends `"imageScanningConfiguration": {}`. ECR reads that as off; moto
/// (our stand-in) reads it as "no change". Spelling the value out means the
/// same to ECR and makes moto agree.
fn spell_out_scan_off(req: &mut aws_smithy_runtime_api::http::Request) {
    let empty = br#""imageScanningConfiguration":{}"#;
    let Some(body) = req.body().bytes() else { return };
    let Some(at) = body.windows(empty.len()).position(|w| w == empty) else { return };
    let mut new = body[..at].to_vec();
    new.extend_from_slice(br#""imageScanningConfiguration":{"scanOnPush":false}"#);
    new.extend_from_slice(&body[at + empty.len()..]);
    let len = new.len().to_string();
    *req.body_mut() = aws_smithy_types::body::SdkBody::from(new);
    req.headers_mut().insert("content-length", len);
}

/// Scan findings by severity, as the domain counts them.
fn severity_counts(
    counts: Option<&std::collections::HashMap<ecr::FindingSeverity, i32>>,
) -> std::collections::BTreeMap<String, u32> {
    counts
        .map(|c| c.iter().map(|(k, v)| (k.as_str().to_string(), u32::try_from(*v).unwrap_or(0))).collect())
        .unwrap_or_default()
}

/// Unix ms of an SDK time.
fn ms(t: &aws_sdk_ecr::primitives::DateTime) -> i64 {
    t.secs() * 1000 + i64::from(t.subsec_nanos() / 1_000_000)
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

/// The SDK config acting as `role`, assumed with `who`'s attribution.
pub async fn assume(base: &SdkConfig, role: &str, who: &Attribution) -> SdkConfig {
    let provider =
        AttributedAssumeRole { sts: aws_sdk_sts::Client::new(base), role: role.to_string(), who: who.clone() };
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
        let cfg = assume(&base, role.as_str(), &Attribution::portal("ecr-portal-discover")).await;
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

/// An STS role session name: `[\w+=,.@-]`, 2 to 64 characters.
pub fn session_name(raw: &str) -> String {
    fit(&sts_chars(raw), 64)
}

impl EcrRegistry {
    /// Clients acting in the staging account: through the staging role when configured.
    pub async fn new(config: &Config) -> Self {
        let base = base_config(config, None).await;
        let role = config.staging_role.as_ref().map(|r| r.to_string());
        Self::with_session(base, role, &Attribution::portal("ecr-portal")).await
    }

    async fn with_session(base: SdkConfig, role: Option<String>, who: &Attribution) -> Self {
        let cfg = match &role {
            Some(r) => assume(&base, r, who).await,
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
                Some(ecr::ImageTagMutability::ImmutableWithExclusion) => TagMutability::ImmutableWithExclusion,
                Some(ecr::ImageTagMutability::MutableWithExclusion) => TagMutability::MutableWithExclusion,
                _ => TagMutability::Immutable,
            },
            tag_mutability_exclusions: {
                let mut v: Vec<String> =
                    r.image_tag_mutability_exclusion_filters().iter().map(|f| f.filter().to_string()).collect();
                v.sort();
                v
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
            .image_tag_mutability(mutability_to_aws(spec.tag_mutability))
            .set_image_tag_mutability_exclusion_filters(
                Some(exclusion_filters(&spec.tag_mutability_exclusions)?).filter(|f| !f.is_empty()),
            )
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

    async fn delete_repository(&self, name: &str) -> Result<String, RegistryError> {
        let out = self.ecr.delete_repository().repository_name(name).force(true).send().await.map_err(classify)?;
        Ok(rid(&out))
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

    async fn image_details(&self, name: &str) -> Result<Vec<app::domain::image::ImageInfo>, RegistryError> {
        let mut out = Vec::new();
        let mut pages = self.ecr.describe_images().repository_name(name).max_results(1000).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            for img in page.image_details() {
                let scan =
                    img.image_scan_status().and_then(|s| s.status()).map(|status| app::domain::image::ScanSummary {
                        status: status.as_str().to_string(),
                        counts: severity_counts(
                            img.image_scan_findings_summary().and_then(|f| f.finding_severity_counts()),
                        ),
                    });
                out.push(app::domain::image::ImageInfo {
                    image: app::domain::lifecycle::Image {
                        digest: img.image_digest().unwrap_or_default().to_string(),
                        tags: img.image_tags().to_vec(),
                        pushed_at: img.image_pushed_at().map(ms).unwrap_or(0),
                        last_pull: img.last_recorded_pull_time().map(ms),
                    },
                    size_bytes: img.image_size_in_bytes(),
                    media_type: img.image_manifest_media_type().map(str::to_string),
                    scan,
                });
            }
        }
        Ok(out)
    }

    async fn digest_of_tag(&self, name: &str, tag: &str) -> Result<Option<String>, RegistryError> {
        let id = ecr::ImageIdentifier::builder().image_tag(tag).build();
        match self.ecr.describe_images().repository_name(name).image_ids(id).send().await {
            Ok(out) => Ok(out.image_details().first().and_then(|d| d.image_digest()).map(str::to_string)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_image_not_found_exception()) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    async fn manifest(&self, name: &str, digest: &str) -> Result<Option<(String, Option<String>)>, RegistryError> {
        let id = ecr::ImageIdentifier::builder().image_digest(digest).build();
        // Every manifest kind as it is stored (single images and multi-arch lists, Docker and OCI):
        // without them ECR may convert the manifest, and a converted one has another digest.
        let mut req = self.ecr.batch_get_image().repository_name(name).image_ids(id);
        for t in [
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        ] {
            req = req.accepted_media_types(t);
        }
        let out = req.send().await.map_err(classify)?;
        if let Some(f) = out.failures().iter().find(|f| {
            !matches!(
                f.failure_code(),
                Some(ecr::ImageFailureCode::ImageNotFound) | Some(ecr::ImageFailureCode::MissingDigestAndTag)
            )
        }) {
            let code = f.failure_code().map(|c| c.as_str().to_string()).unwrap_or_default();
            return Err(RegistryError::Invalid(format!("{code}: {}", f.failure_reason().unwrap_or(""))));
        }
        Ok(out.images().first().and_then(|i| {
            i.image_manifest().map(|m| (m.to_string(), i.image_manifest_media_type().map(str::to_string)))
        }))
    }

    async fn put_tag(
        &self,
        name: &str,
        tag: &str,
        manifest: &str,
        media_type: Option<&str>,
    ) -> Result<String, RegistryError> {
        let req = self
            .ecr
            .put_image()
            .repository_name(name)
            .image_tag(tag)
            .image_manifest(manifest)
            .set_image_manifest_media_type(media_type.map(str::to_string));
        match req.send().await {
            Ok(out) => Ok(rid(&out)),
            // The image already has this tag: done.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_image_already_exists_exception()) => {
                Ok(e.request_id().unwrap_or("unknown").to_string())
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn scan_findings(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<Option<app::domain::image::ScanSummary>, RegistryError> {
        let id = ecr::ImageIdentifier::builder().image_digest(digest).build();
        match self.ecr.describe_image_scan_findings().repository_name(name).image_id(id).send().await {
            Ok(out) => Ok(Some(app::domain::image::ScanSummary {
                status: out
                    .image_scan_status()
                    .and_then(|s| s.status())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "UNKNOWN".into()),
                counts: severity_counts(out.image_scan_findings().and_then(|f| f.finding_severity_counts())),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_scan_not_found_exception()) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    async fn start_scan(&self, name: &str, digest: &str) -> Result<String, RegistryError> {
        let id = ecr::ImageIdentifier::builder().image_digest(digest).build();
        let out = self.ecr.start_image_scan().repository_name(name).image_id(id).send().await.map_err(classify)?;
        Ok(rid(&out))
    }

    async fn fix(&self, name: &str, arn: &str, fix: &Fix) -> Result<String, RegistryError> {
        match fix {
            Fix::TagMutability(m, exclusions) => {
                let out = self
                    .ecr
                    .put_image_tag_mutability()
                    .repository_name(name)
                    .image_tag_mutability(mutability_to_aws(*m))
                    .set_image_tag_mutability_exclusion_filters(
                        Some(exclusion_filters(exclusions)?).filter(|f| !f.is_empty()),
                    )
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
                    .customize()
                    .mutate_request(spell_out_scan_off)
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
            Fix::Untag(keys) => {
                let out = self
                    .ecr
                    .untag_resource()
                    .resource_arn(arn)
                    .set_tag_keys(Some(keys.clone()))
                    .send()
                    .await
                    .map_err(classify)?;
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

    async fn scoped(&self, who: &Attribution) -> std::sync::Arc<dyn Registry> {
        std::sync::Arc::new(Self::with_session(self.base.clone(), self.role.clone(), who).await)
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
