//! AWS adapters: ECR through the SDK, with credentials from STS AssumeRole.
//!
//! [`Registry`] is the port the service and worker use; [`EcrRegistry`] is the
//! only implementation that talks to AWS (or to moto, which stands in for it
//! locally and in tests). SDK errors become [`RegistryError`] here so nothing
//! above this module sees SDK types.
use crate::config::Config;
use app::domain::settings::{Encryption, RepositorySpec, Tag, TagMutability};
use aws_config::SdkConfig;
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::operation::RequestId;
use aws_sdk_ecr::types as ecr;

mod count;
mod live;
mod sts;

pub use count::CountAwsCalls;
pub use live::{fixes, Fix, LiveRepository};
pub use sts::{assume, base_config, caller_account, production_account, session_name, Attribution};

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

pub struct EcrRegistry {
    ecr: aws_sdk_ecr::Client,
    sts: aws_sdk_sts::Client,
    base: SdkConfig,
    role: Option<String>,
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
        let ecr =
            aws_sdk_ecr::Client::from_conf(aws_sdk_ecr::config::Builder::from(&cfg).interceptor(CountAwsCalls).build());
        Self { ecr, sts: sts::sts_client(&cfg), base, role }
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
