//! Submitting requests (new repositories, production access, restores) and
//! reading them; who may read which.
use super::views::summary;
use super::{aws_unavailable, Error, PortalService};
use crate::db::{self, NewEvent};
use app::domain::audit::AuditAction;
use app::domain::form::{AccessRequestInput, DeleteRequestInput, RepositoryRequestInput, UpdateRequestInput};
use app::domain::name::RepoName;
use app::domain::notify::NotifyEvent;
use app::domain::principal::{Capability, Principal};
use app::domain::request::{Request, RequestKind, Status};
use app::views::*;

/// An image in a sentence: its first tag, or its short digest.
fn short_image(digest: &str, tags: &[String]) -> String {
    tags.first().cloned().unwrap_or_else(|| app::domain::image::short_digest(digest))
}

impl PortalService {
    pub async fn submit(&self, by: &Principal, input: RepositoryRequestInput) -> Result<i64, Error> {
        self.authorize(by, Capability::SubmitRequest, "submit requests").await?;
        let parsed = input.parse(&self.deployment.namespace).map_err(Error::Invalid)?;
        if parsed.grant_production && self.deployment.target.production_account.is_none() {
            return Err(Error::field(
                "grant_production",
                "the production account is not configured, so access cannot be granted yet",
            ));
        }
        if let Some(why) = self.kms_key_elsewhere(&parsed.spec) {
            return Err(Error::field("kms_key_arn", why));
        }
        let name = parsed.spec.name.clone();
        match self.registry.describe(name.as_str()).await {
            Ok(None) => {}
            Ok(Some(_)) => return Err(Error::Conflict(format!("{name} already exists in ECR; choose another name"))),
            Err(e) => return Err(aws_unavailable(&format!("check whether {name} exists"), e)),
        }
        let kind = RequestKind::CreateRepository { spec: parsed.spec, grant_production: parsed.grant_production };
        let request = self.new_request(&by.id, kind, parsed.justification, Status::Pending);
        self.insert_request(request, by.via().map(|v| format!("through {v}")).unwrap_or_default()).await
    }

    /// ECR wants the key in the repository's own region: why this spec's is not, if it is not.
    pub(super) fn kms_key_elsewhere(&self, spec: &app::domain::settings::RepositorySpec) -> Option<String> {
        let app::domain::settings::Encryption::Kms(key) = &spec.encryption else { return None };
        let region = app::domain::settings::KmsKeyRef::parse(key).and_then(|k| k.region());
        let ours = &self.deployment.target.region;
        region
            .filter(|r| *r != ours.as_str())
            .map(|r| format!("the key is in {r}; ECR needs a key in {ours}, the repositories' region"))
    }

    pub async fn submit_access(&self, by: &Principal, input: AccessRequestInput) -> Result<i64, Error> {
        self.authorize(by, Capability::SubmitRequest, "submit requests").await?;
        let parsed = input.parse(&self.deployment.namespace, self.now()).map_err(Error::Invalid)?;
        let name = parsed.repository.clone();
        if parsed.grant && self.deployment.target.production_account.is_none() {
            return Err(Error::Conflict(
                "the production account is not configured, so access cannot be granted".into(),
            ));
        }
        match self.registry.describe(name.as_str()).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(Error::field("repository", format!("there is no repository {name} in ECR"))),
            Err(e) => return Err(aws_unavailable(&format!("check {name}"), e)),
        }
        let kind = if parsed.grant {
            RequestKind::GrantProduction { repository: name, until: parsed.until }
        } else {
            RequestKind::RevokeProduction { repository: name }
        };
        let request = self.new_request(&by.id, kind, parsed.justification, Status::Pending);
        self.insert_request(request, by.via().map(|v| format!("through {v}")).unwrap_or_default()).await
    }

    /// Asks for a repository to be deleted with its images. Whether production can
    /// pull it now decides the approval rule (the grant's, then), and is shown.
    pub async fn submit_delete(&self, by: &Principal, input: DeleteRequestInput) -> Result<i64, Error> {
        self.authorize(by, Capability::SubmitRequest, "submit requests").await?;
        let mut errors = Vec::new();
        let name = match RepoName::parse(&self.deployment.namespace, &input.repository) {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(app::domain::form::FieldError::new("repository", e.to_string()));
                None
            }
        };
        let justification =
            match app::domain::text::free_text(&input.justification, app::domain::form::MAX_JUSTIFICATION, true) {
                Ok(j) if !j.is_empty() => j,
                Ok(_) => {
                    errors.push(app::domain::form::FieldError::new("justification", "say why it can go"));
                    String::new()
                }
                Err(e) => {
                    errors.push(app::domain::form::FieldError::new("justification", format!("the justification: {e}")));
                    String::new()
                }
            };
        let Some(name) = name.filter(|_| errors.is_empty()) else { return Err(Error::Invalid(errors)) };
        let policy = match self.existing_policy(name.as_str()).await {
            Ok(Some(p)) => p,
            Ok(None) => return Err(Error::field("repository", format!("there is no repository {name} in ECR"))),
            Err(e) => return Err(aws_unavailable(&format!("check {name}"), e)),
        };
        let production_can_pull = self.production_reaches(policy.as_ref());
        let kind = RequestKind::DeleteRepository { repository: name, production_can_pull };
        let request = self.new_request(&by.id, kind, justification, Status::Pending);
        self.insert_request(request, by.via().map(|v| format!("through {v}")).unwrap_or_default()).await
    }

    /// Asks for a repository's settings to change. The approved settings are
    /// the base (what the input leaves out stays); a new lifecycle is previewed
    /// against the images now, and refused when it would expire a protected
    /// image unless the request says so (`expire_protected`).
    pub async fn submit_update(&self, by: &Principal, input: UpdateRequestInput) -> Result<i64, Error> {
        self.authorize(by, Capability::SubmitRequest, "submit requests").await?;
        let name = RepoName::parse(&self.deployment.namespace, &input.repository)
            .map_err(|e| Error::field("repository", e.to_string()))?;
        let mut conn = self.db.pool.acquire().await?;
        let record = db::get_record(&mut conn, name.as_str()).await?;
        drop(conn);
        let Some(mut before) = record.and_then(|r| r.spec) else {
            return Err(Error::field(
                "repository",
                format!(
                    "{name} is not managed by the portal (or its settings are not known); an admin adopts it first"
                ),
            ));
        };
        let live = match self.registry.describe(name.as_str()).await {
            Ok(Some(live)) => live,
            Ok(None) => return Err(Error::field("repository", format!("there is no repository {name} in ECR"))),
            Err(e) => return Err(aws_unavailable(&format!("check {name}"), e)),
        };
        // The free tags are taken as they are live (an adopted repository's record keeps only team
        // and cost centre), so the plan's "before" and what the apply removes are the same tags.
        use app::domain::form::{is_free_tag, is_required_tag};
        before.tags.retain(|t| is_required_tag(&t.key));
        before.tags.extend(live.tags.iter().filter(|t| is_free_tag(&t.key)).cloned());
        before.tags.sort();
        let parsed = input.parse(&before).map_err(Error::Invalid)?;
        if parsed.spec.lifecycle.policy_json() != before.lifecycle.policy_json() && !parsed.expire_protected {
            if let Some(preview) = self.lifecycle_preview(&parsed.spec).await? {
                let protected: Vec<String> = preview
                    .expiring
                    .iter()
                    .filter_map(|e| e.protected.as_ref().map(|p| format!("{} ({p})", short_image(&e.digest, &e.tags))))
                    .collect();
                if !protected.is_empty() {
                    let field = if input.lifecycle_rules.is_some() { "lifecycle_rules" } else { "keep_last_images" };
                    return Err(Error::field(
                        field,
                        format!(
                            "this lifecycle would expire {} protected image(s): {}. Change the rules, or say it is \
                             intended (expire_protected)",
                            protected.len(),
                            protected.into_iter().take(5).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        let kind =
            RequestKind::UpdateRepository { before, spec: parsed.spec, expire_protected: parsed.expire_protected };
        let request = self.new_request(&by.id, kind, parsed.justification, Status::Pending);
        self.insert_request(request, by.via().map(|v| format!("through {v}")).unwrap_or_default()).await
    }

    /// What a lifecycle typed on the settings page would expire now (the
    /// form's "Preview" button; nothing is filed).
    pub async fn preview_lifecycle(
        &self,
        by: &Principal,
        repository: String,
        lifecycle: String,
    ) -> Result<app::domain::plan::LifecyclePreview, Error> {
        self.authorize(by, Capability::ReadRepositories, "read repositories").await?;
        let name = RepoName::parse(&self.deployment.namespace, &repository)
            .map_err(|e| Error::field("repository", e.to_string()))?;
        let raw = app::domain::lifecycle::rules_from_text(&lifecycle).map_err(|e| Error::Invalid(vec![e]))?;
        let rules = app::domain::lifecycle::parse_rules(&raw, "lifecycle_rules").map_err(Error::Invalid)?;
        let mut conn = self.db.pool.acquire().await?;
        let spec = db::get_record(&mut conn, name.as_str()).await?.and_then(|r| r.spec);
        drop(conn);
        let Some(mut spec) = spec else {
            return Err(Error::field(
                "repository",
                format!("{name} is not managed by the portal; an admin adopts it first"),
            ));
        };
        spec.lifecycle = app::domain::settings::Lifecycle { rules, ..Default::default() };
        if spec.lifecycle.is_empty() {
            let images =
                self.registry.images(name.as_str()).await.map_err(|e| aws_unavailable(&format!("read {name}"), e))?;
            return Ok(app::domain::plan::LifecyclePreview { images: images.len(), expiring: vec![] });
        }
        Ok(self
            .lifecycle_preview(&spec)
            .await?
            .unwrap_or(app::domain::plan::LifecyclePreview { images: 0, expiring: vec![] }))
    }

    /// A repository's settings page.
    pub async fn repository_settings(
        &self,
        by: &Principal,
        repository: String,
    ) -> Result<RepositorySettingsView, Error> {
        self.authorize(by, Capability::ReadRepositories, "read repositories").await?;
        let name = RepoName::parse(&self.deployment.namespace, &repository)
            .map_err(|e| Error::field("repository", e.to_string()))?;
        let mut conn = self.db.pool.acquire().await?;
        let record = db::get_record(&mut conn, name.as_str()).await?;
        let open_request = db::open_request_about(&mut conn, name.as_str()).await?;
        drop(conn);
        let policy = match self.existing_policy(name.as_str()).await {
            Ok(Some(p)) => p,
            Ok(None) => return Err(Error::NotFound(format!("there is no repository {name} in ECR"))),
            Err(e) => return Err(aws_unavailable(&format!("read {name}"), e)),
        };
        let image_count = self.registry.images(name.as_str()).await.ok().map(|i| i.len());
        let spec = record.and_then(|r| r.spec);
        let lifecycle_json = spec
            .as_ref()
            .and_then(|s| s.lifecycle.policy_json())
            .and_then(|p| serde_json::to_string_pretty(&p).ok())
            .unwrap_or_default();
        let free_tags = spec
            .as_ref()
            .map(|s| {
                s.tags
                    .iter()
                    .filter(|t| app::domain::form::is_free_tag(&t.key))
                    .map(|t| format!("{}={}\n", t.key, t.value))
                    .collect::<String>()
            })
            .unwrap_or_default();
        Ok(RepositorySettingsView {
            name: name.to_string(),
            spec,
            lifecycle_json,
            free_tags,
            production_can_pull: self.production_reaches(policy.as_ref()),
            image_count,
            protected_tags: self.deployment.protection.tag_patterns.clone(),
            protect_pulled_days: self.deployment.protection.pulled_within_days,
            open_request,
        })
    }

    pub async fn request_restore(
        &self,
        by: &Principal,
        repository: String,
        justification: String,
    ) -> Result<i64, Error> {
        self.authorize(by, Capability::Operate, "request a restore").await?;
        let name = RepoName::parse(&self.deployment.namespace, &repository)
            .map_err(|e| Error::field("repository", e.to_string()))?;
        let mut conn = self.db.pool.acquire().await?;
        let Some(record) = db::get_record(&mut conn, name.as_str()).await? else {
            return Err(Error::NotFound(format!("{name} is not in the portal's records; adopt it first")));
        };
        drop(conn);
        // Putting back an approved grant that is gone is a production grant (decided by its rule).
        let grants_production = record.production_access && {
            let live =
                self.live_policy(name.as_str()).await.map_err(|e| aws_unavailable(&format!("read {name}"), e))?;
            !self.production_can_pull(live.as_ref())
        };
        let justification = app::domain::text::free_text(&justification, app::domain::form::MAX_JUSTIFICATION, true)
            .map_err(|e| Error::field("justification", format!("the justification: {e}")))?;
        let justification = Some(justification)
            .filter(|j| !j.is_empty())
            .unwrap_or_else(|| "Put the repository back to its approved state".into());
        let request = self.new_request(
            &by.id,
            RequestKind::RestoreRepository { repository: name, grants_production },
            justification,
            Status::Pending,
        );
        self.insert_request(request, by.via().map(|v| format!("through {v}")).unwrap_or_default()).await
    }

    /// Inserts a new request and its submission event (and, for system
    /// requests, the approval) in one transaction; wakes the worker for an
    /// approved one.
    pub(super) async fn insert_request(&self, request: Request, detail: String) -> Result<i64, Error> {
        let mut tx = self.db.write().await?;
        // Counted in the transaction that inserts, so two submissions at once cannot both pass.
        let max = self.deployment.max_open_per_user;
        if db::open_requests_of(&mut tx, &request.requester).await? >= i64::from(max) {
            tx.rollback().await?;
            return Err(Error::Conflict(format!(
                "you already have {max} open requests (waiting for a decision or being applied), the most one \
                 person may hold; wait for decisions, or reject (withdraw) ones you no longer need"
            )));
        }
        let id = Self::insert_request_in(&mut tx, &request, detail).await?;
        if request.status == Status::Pending {
            let submitted = Request { id, ..request.clone() };
            let notice = self.notice(NotifyEvent::RequestSubmitted, &submitted, submitted.justification.clone());
            self.enqueue(&mut tx, &notice, Some(id), None).await?;
        }
        tx.commit().await?;
        if request.status == Status::Approved {
            self.wake.notify_one();
        }
        Ok(id)
    }

    /// Inserts a request and its events inside the caller's write transaction.
    pub(super) async fn insert_request_in(
        tx: &mut db::WriteTx,
        request: &Request,
        detail: String,
    ) -> Result<i64, Error> {
        let name = request.kind.repository().to_string();
        let id = db::insert_request(&mut *tx, request).await.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                Error::Conflict(format!("{name} already has an open request; see the requests list"))
            }
            _ => Error::from(e),
        })?;
        db::insert_event(
            tx,
            &NewEvent {
                at: request.created_at,
                actor: &request.requester,
                action: AuditAction::RequestSubmitted,
                request_id: Some(id),
                repository: Some(&name),
                detail: detail.clone(),
                aws_request_ids: vec![],
            },
        )
        .await?;
        if request.status == Status::Approved {
            db::insert_event(
                tx,
                &NewEvent {
                    at: request.created_at,
                    actor: &request.requester,
                    action: AuditAction::RequestApproved,
                    request_id: Some(id),
                    repository: Some(&name),
                    detail,
                    aws_request_ids: vec![],
                },
            )
            .await?;
        }
        Ok(id)
    }

    pub(super) fn new_request(
        &self,
        requester: &str,
        kind: RequestKind,
        justification: String,
        status: Status,
    ) -> Request {
        let now = self.now();
        Request {
            id: 0,
            kind,
            justification,
            requester: requester.to_string(),
            status,
            created_at: now,
            updated_at: now,
            decided_by: (status == Status::Approved).then(|| requester.to_string()),
            decision_comment: None,
            failure: None,
            attempts: 0,
        }
    }

    pub async fn list_requests(
        &self,
        by: &Principal,
        status: Option<Status>,
        mine: bool,
        page: RequestsPage,
    ) -> Result<Vec<RequestSummary>, Error> {
        self.authorize(by, Capability::ReadOwnRequests, "read requests").await?;
        let limit = page.limit() as usize;
        let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
        let kind = text(&page.kind);
        if let Some(k) = kind.as_deref().filter(|k| !RequestsPage::KINDS.contains(k)) {
            return Err(Error::field("kind", format!("`{k}` is not a kind; use {}", RequestsPage::KINDS.join(", "))));
        }
        let repository = text(&page.repository).map(|r| r.to_lowercase());
        if repository.as_ref().is_some_and(|r| r.chars().count() > 256) {
            return Err(Error::field("repository", "search with at most 256 characters"));
        }
        let mut filter = db::RequestFilter { status, requester: text(&page.requester), repository, kind };
        if mine || by.can(Capability::ReadAllRequests) || !self.approves_anything(by) {
            // Without the right to read everyone's, the list is one's own.
            if mine || !by.can(Capability::ReadAllRequests) {
                if filter.requester.as_ref().is_some_and(|r| *r != by.id) {
                    return Ok(Vec::new()); // Someone else's requests: none of them are readable here.
                }
                filter.requester = Some(by.id.clone());
            }
            let rows = db::list_requests(&self.db.pool, &filter, page.before, limit as i64).await?;
            return Ok(rows.iter().map(summary).collect());
        }
        // An approver: their own requests and those their group decides, read
        // newest first in batches until the page is full.
        let mut out = Vec::new();
        let mut before = page.before;
        loop {
            let rows = db::list_requests(&self.db.pool, &filter, before, 200).await?;
            let done = rows.len() < 200;
            before = rows.last().map(|r| r.id);
            out.extend(rows.iter().filter(|r| self.readable(by, r)).take(limit - out.len()).map(summary));
            if done || out.len() >= limit {
                return Ok(out);
            }
        }
    }

    /// Requesters read their own requests; approvers those their rule decides; admins and auditors any.
    fn readable(&self, by: &Principal, r: &Request) -> bool {
        r.requester == by.id
            || by.can(Capability::ReadAllRequests)
            || self.deployment.approval.rule(&r.kind).may_decide(by)
    }

    pub async fn request_detail(&self, by: &Principal, id: i64) -> Result<RequestDetail, Error> {
        self.authorize(by, Capability::ReadOwnRequests, "read requests").await?;
        let view = self.load_view(id).await?;
        self.detail_from(by, view).await
    }

    pub async fn request_status(&self, by: &Principal, id: i64) -> Result<Status, Error> {
        self.authorize(by, Capability::ReadOwnRequests, "read requests").await?;
        let row = self.load(id).await?;
        self.may_read(by, &row.request).await?;
        Ok(row.request.status)
    }

    /// Comments on a request: anyone who can see it and may submit or decide
    /// (not auditors, who change nothing). The comment is an audit event on
    /// the request's timeline (so the discussion is as tamper-evident as the
    /// decisions), and its requester and approvers are notified, in one transaction.
    pub async fn comment(&self, by: &Principal, id: i64, body: String) -> Result<RequestDetail, Error> {
        if !(by.can(Capability::SubmitRequest) || by.can(Capability::Decide)) {
            return Err(self.deny(by, "auditors read everything but cannot comment".into()).await);
        }
        let row = self.load(id).await?;
        self.may_read(by, &row.request).await?;
        let body = app::domain::text::free_text(&body, app::domain::request::MAX_COMMENT, true)
            .map_err(|e| Error::field("body", format!("the comment: {e}")))?;
        if body.is_empty() {
            return Err(Error::field("body", "write the comment"));
        }
        let name = row.request.kind.repository().to_string();
        let detail = match by.via() {
            Some(via) => format!("{body} (through {via})"),
            None => body.clone(),
        };
        let mut tx = self.db.write().await?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: self.now(),
                actor: &by.id,
                action: AuditAction::CommentAdded,
                request_id: Some(id),
                repository: Some(&name),
                detail,
                aws_request_ids: vec![],
            },
        )
        .await?;
        let notice = self.notice(NotifyEvent::RequestCommented, &row.request, format!("{}: {body}", by.id));
        self.enqueue(&mut tx, &notice, Some(id), None).await?;
        tx.commit().await?;
        self.request_detail(by, id).await
    }

    /// See [`Self::readable`]; a refusal is audited.
    pub(super) async fn may_read(&self, by: &Principal, r: &Request) -> Result<(), Error> {
        if !self.readable(by, r) {
            let id = r.id;
            return Err(self.deny(by, format!("request #{id} is someone else's; you can see your own requests")).await);
        }
        Ok(())
    }
}
