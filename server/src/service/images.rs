//! Images and promotion: a repository's images with their scans, starting a
//! scan, asking for an image (by digest) to get a release tag, and the
//! releases made so far.
use super::{aws_unavailable, Error, PortalService};
use crate::aws::RegistryError;
use crate::clock::format_ms;
use crate::db::{self, NewEvent};
use app::domain::audit::AuditAction;
use app::domain::form::{FieldError, PromoteRequestInput, MAX_JUSTIFICATION};
use app::domain::image::{is_digest, ImageInfo, PromotionCheck};
use app::domain::name::RepoName;
use app::domain::plan::PromotionFacts;
use app::domain::principal::{Capability, Principal};
use app::domain::request::{RequestKind, Status};
use app::domain::time::Timestamp;
use app::views::*;

pub const DEFAULT_IMAGES_PAGE: u32 = 50;

fn image_view(i: ImageInfo) -> ImageView {
    ImageView {
        scan: i.scan.as_ref().map_or_else(|| "not scanned".to_string(), |s| s.describe()),
        scanned: i.scan.is_some(),
        critical: i.scan.as_ref().map_or(0, |s| s.critical()),
        digest: i.image.digest,
        tags: i.image.tags,
        pushed_at: Timestamp::from_unix_ms(i.image.pushed_at),
        size_bytes: i.size_bytes,
        media_type: i.media_type,
        last_pull: i.image.last_pull.map(Timestamp::from_unix_ms),
    }
}

impl PortalService {
    fn repository_name(&self, raw: &str) -> Result<RepoName, Error> {
        RepoName::parse(&self.deployment.namespace, raw).map_err(|e| Error::field("repository", e.to_string()))
    }

    /// A repository's images, newest first, one page (DescribeImages reads a
    /// thousand a call; the page is cut from the sorted list), with its releases.
    pub async fn images_page(&self, by: &Principal, query: ImagesQuery) -> Result<ImagesPage, Error> {
        self.authorize(by, Capability::ReadRepositories, "read repositories").await?;
        let name = self.repository_name(&query.repository)?;
        let live = match self.registry.describe_settings(name.as_str()).await {
            Ok(Some(l)) => l,
            Ok(None) => return Err(Error::NotFound(format!("there is no repository {name} in ECR"))),
            Err(e) => return Err(aws_unavailable(&format!("read {name}"), e)),
        };
        let mut images = self
            .registry
            .image_details(name.as_str())
            .await
            .map_err(|e| aws_unavailable(&format!("list the images of {name}"), e))?;
        images.sort_by(|a, b| b.image.pushed_at.cmp(&a.image.pushed_at).then(a.image.digest.cmp(&b.image.digest)));
        let limit = query.limit.unwrap_or(DEFAULT_IMAGES_PAGE).clamp(1, 500);
        let offset = query.offset.unwrap_or(0);
        let total = images.len();
        let page: Vec<ImageView> =
            images.into_iter().skip(offset as usize).take(limit as usize).map(image_view).collect();
        let next = offset as usize + page.len();
        let policy = self.live_policy(name.as_str()).await.map_err(|e| aws_unavailable(&format!("read {name}"), e))?;
        let releases = self.release_views(name.as_str(), &live.uri).await?;
        Ok(ImagesPage {
            repository: name.to_string(),
            uri: live.uri,
            images: page,
            total,
            offset,
            limit,
            next_offset: (next < total).then(|| u32::try_from(next).unwrap_or(u32::MAX)),
            releases,
            production_can_pull: self.production_reaches(policy.as_ref()),
            release_tag_patterns: self.deployment.promotion.tag_patterns.clone(),
            can_scan: by.can(Capability::Operate),
        })
    }

    async fn release_views(&self, name: &str, uri: &str) -> Result<Vec<ReleaseView>, Error> {
        let mut conn = self.db.pool.acquire().await?;
        let rows = db::releases(&mut conn, name).await?;
        Ok(rows
            .into_iter()
            .map(|r| ReleaseView {
                pull_by_digest: format!("docker pull {uri}@{}", r.digest),
                pull_by_tag: format!("docker pull {uri}:{}", r.tag),
                tag: r.tag,
                digest: r.digest,
                request_id: r.request_id,
                requested_by: r.requested_by,
                approved_by: r.approved_by,
                at: Timestamp::from_unix_ms(r.at),
            })
            .collect())
    }

    /// A repository's releases, newest first (`GET /api/v1/releases`).
    pub async fn releases(&self, by: &Principal, repository: String) -> Result<Vec<ReleaseView>, Error> {
        self.authorize(by, Capability::ReadRepositories, "read repositories").await?;
        let name = self.repository_name(&repository)?;
        let uri = match self.registry.describe_settings(name.as_str()).await {
            Ok(Some(l)) => l.uri,
            Ok(None) => return Err(Error::NotFound(format!("there is no repository {name} in ECR"))),
            Err(e) => return Err(aws_unavailable(&format!("read {name}"), e)),
        };
        self.release_views(name.as_str(), &uri).await
    }

    /// Starts a vulnerability scan of one image (admins), audited.
    pub async fn start_scan(&self, by: &Principal, repository: String, digest: String) -> Result<(), Error> {
        self.authorize(by, Capability::Operate, "start scans").await?;
        let name = self.repository_name(&repository)?;
        if !is_digest(&digest) {
            return Err(Error::field("digest", "a digest is sha256: and 64 lowercase hex digits"));
        }
        let id = match self.registry.start_scan(name.as_str(), &digest).await {
            Ok(id) => id,
            Err(RegistryError::Invalid(m)) => return Err(Error::Conflict(format!("ECR refused to scan it: {m}"))),
            Err(RegistryError::Other(m)) if m.contains("LimitExceeded") || m.contains("ImageNotFound") => {
                return Err(Error::Conflict(format!("ECR refused to scan it: {m}")))
            }
            Err(e) => return Err(aws_unavailable(&format!("scan {digest}"), e)),
        };
        let mut tx = self.db.write().await?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: self.now(),
                actor: &by.id,
                action: AuditAction::ImageScanStarted,
                request_id: None,
                repository: Some(name.as_str()),
                detail: digest,
                aws_request_ids: vec![id],
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The repositories under the namespace as Terraform (see `crate::terraform`), for the download.
    pub async fn terraform_export(&self, by: &Principal) -> Result<crate::terraform::Export, Error> {
        self.authorize(by, Capability::ReadRepositories, "read repositories").await?;
        crate::terraform::export(&*self.registry, &self.deployment.namespace).await.map_err(|e| {
            tracing::warn!("terraform export: {e:#}");
            Error::Unavailable("could not read the repositories from ECR right now; try again".into())
        })
    }

    /// Release tags moved or deleted outside the portal (one DescribeImages
    /// listing for a repository with releases; none without).
    pub(super) async fn release_drift(&self, name: &str) -> Result<Vec<String>, Error> {
        let mut conn = self.db.pool.acquire().await?;
        let releases = db::releases(&mut conn, name).await?;
        drop(conn);
        if releases.is_empty() {
            return Ok(Vec::new());
        }
        let images = self.registry.image_details(name).await.map_err(|e| aws_unavailable("list the images", e))?;
        let digest_of =
            |tag: &str| images.iter().find(|i| i.image.tags.iter().any(|t| t == tag)).map(|i| &i.image.digest);
        Ok(releases
            .iter()
            .filter_map(|r| match digest_of(&r.tag) {
                Some(d) if *d == r.digest => None,
                Some(d) => Some(format!("release tag {} was moved to {d} (the portal released {})", r.tag, r.digest)),
                None => Some(format!("release tag {} was deleted (it named {})", r.tag, r.digest)),
            })
            .collect())
    }

    /// The deployment's promotion rules applied to an image's facts.
    pub(super) fn promotion_refused(&self, facts: &PromotionFacts) -> Option<String> {
        app::domain::plan::promotion_refused(
            facts,
            self.deployment.promotion.require_scan,
            self.deployment.promotion.refuse_critical,
        )
    }

    /// What the plan of a promotion shows of the image (None: no such image), from the
    /// repository as it is live (read in full by the caller: settings, lifecycle, policy).
    pub(super) async fn promotion_facts(
        &self,
        live: &crate::aws::LiveRepository,
        digest: &str,
        tag: &str,
    ) -> Result<Option<PromotionFacts>, RegistryError> {
        let name = live.name.as_str();
        let images = self.registry.image_details(name).await?;
        let Some(image) = images.iter().find(|i| i.image.digest == digest).cloned() else { return Ok(None) };
        let scan = match image.scan {
            Some(s) => Some(s),
            None => self.registry.scan_findings(name, digest).await?,
        };
        let policy = live.policy.as_ref();
        // ECR runs the lifecycle by its own rules, which know nothing of releases: would it expire
        // this image, with its release tag, as the repository stands?
        let lifecycle = app::domain::settings::Lifecycle::from_policy(live.lifecycle_policy.as_ref());
        let expired_by = lifecycle.as_ref().and_then(|lifecycle| {
            let rules = lifecycle.effective_rules();
            let mut all: Vec<app::domain::lifecycle::Image> = images.iter().map(|i| i.image.clone()).collect();
            if let Some(me) = all.iter_mut().find(|i| i.digest == digest) {
                me.tags.push(tag.to_string());
            }
            let none = app::domain::lifecycle::Protection { pulled_within_days: 0, tag_patterns: vec![] };
            app::domain::lifecycle::preview(&rules, &all, self.now(), &none)
                .into_iter()
                .find(|e| e.image.digest == digest)
                .and_then(|e| rules.iter().find(|r| r.priority == e.rule).map(|r| r.describe()))
        });
        Ok(Some(PromotionFacts {
            expired_by,
            lifecycle_unchecked: lifecycle.is_none(),
            current_tags: image.image.tags,
            pushed_at: Some(format_ms(image.image.pushed_at)),
            critical: scan.as_ref().map_or(0, |s| s.critical()),
            scan_complete: scan.as_ref().is_some_and(|s| s.is_complete()),
            scan: scan.map(|s| s.describe()),
            production_can_pull: self.production_reaches(policy),
        }))
    }

    /// Asks for an image (by digest) to get a release tag. Refused at once,
    /// per field: a digest that is not in the repository, a tag outside the
    /// release patterns, a tag that names another image (always when tags are
    /// immutable; otherwise unless the request says `move`), and, as
    /// configured, an image with critical findings or never scanned.
    pub async fn submit_promote(&self, by: &Principal, input: PromoteRequestInput) -> Result<i64, Error> {
        self.authorize(by, Capability::SubmitRequest, "submit requests").await?;
        let mut errors = Vec::new();
        let name = RepoName::parse(&self.deployment.namespace, &input.repository)
            .map_err(|e| errors.push(FieldError::new("repository", e.to_string())))
            .ok();
        let digest = input.digest.trim().to_string();
        if !is_digest(&digest) {
            errors.push(FieldError::new("digest", "a digest is sha256: and 64 lowercase hex digits"));
        }
        let tag = input.tag.trim().to_string();
        let justification = match app::domain::text::free_text(&input.justification, MAX_JUSTIFICATION, true) {
            Ok(j) if !j.is_empty() => j,
            Ok(_) => {
                errors.push(FieldError::new("justification", "say why this image should be released"));
                String::new()
            }
            Err(e) => {
                errors.push(FieldError::new("justification", format!("the justification: {e}")));
                String::new()
            }
        };
        let Some(name) = name.filter(|_| errors.is_empty()) else { return Err(Error::Invalid(errors)) };
        let live = match self.registry.describe(name.as_str()).await {
            Ok(Some(l)) => l,
            Ok(None) => return Err(Error::field("repository", format!("there is no repository {name} in ECR"))),
            Err(e) => return Err(aws_unavailable(&format!("read {name}"), e)),
        };
        let facts = match self.promotion_facts(&live, &digest, &tag).await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(Error::field("digest", format!("there is no image {digest} in {name}"))),
            Err(e) => return Err(aws_unavailable(&format!("read the images of {name}"), e)),
        };
        let tag_now =
            self.registry.digest_of_tag(name.as_str(), &tag).await.map_err(|e| aws_unavailable("read the tag", e))?;
        let moves_from = PromotionCheck {
            tag: &tag,
            digest: &digest,
            patterns: &self.deployment.promotion.tag_patterns,
            tag_now: tag_now.as_deref(),
            mutability: live.tag_mutability,
            exclusions: &live.tag_mutability_exclusions,
            move_tag: input.move_tag.unwrap_or(false),
        }
        .check()
        .map_err(|e| Error::Invalid(vec![e]))?;
        if let Some(why) = self.promotion_refused(&facts) {
            return Err(Error::field("digest", why));
        }
        let kind = RequestKind::PromoteImage { repository: name, digest, tag, moves_from };
        let request = self.new_request(&by.id, kind, justification, Status::Pending);
        self.insert_request(request, by.via().map(|v| format!("through {v}")).unwrap_or_default()).await
    }
}
