//! What pages and the JSON API show: a request's page (with its plan), the
//! audit trail and its verification.
use super::{internal, Error, PortalService};
use crate::clock::format_ms;
use crate::db::{self, EventRow, RequestRow};
use app::domain::audit::AuditAction;
use app::domain::plan::{self, Plan};
use app::domain::principal::{Capability, Principal};
use app::domain::request::{Request, RequestKind, Status};
use app::domain::time::Timestamp;
use app::views::*;

fn event_view(e: EventRow) -> AuditEventView {
    let label = AuditAction::parse(&e.action).map(|a| a.label().to_string()).unwrap_or_else(|| e.action.clone());
    AuditEventView {
        id: e.id,
        at: Timestamp::from_unix_ms(e.at),
        actor: e.actor,
        action: e.action,
        label,
        request_id: e.request_id,
        repository: e.repository,
        detail: e.detail,
        aws_request_ids: e.aws_request_ids,
    }
}

pub(super) fn summary(r: &Request) -> RequestSummary {
    RequestSummary {
        id: r.id,
        kind: r.kind.as_str().into(),
        kind_label: r.kind.label().into(),
        repository: r.kind.repository().to_string(),
        requester: r.requester.clone(),
        status: r.status,
        created_at: Timestamp::from_unix_ms(r.created_at),
        updated_at: Timestamp::from_unix_ms(r.updated_at),
    }
}

impl PortalService {
    /// The plan of a request: from the snapshot taken at approval once approved,
    /// from the live state while it waits for a decision.
    pub async fn plan_for(&self, row: &RequestRow) -> Plan {
        let target = &self.deployment.target;
        let r = &row.request;
        let snapshot = if r.status.is_awaiting_decision() { None } else { row.approved_policy.clone() };
        match &r.kind {
            RequestKind::CreateRepository { spec, grant_production } => {
                // Sent back because the repository appeared meanwhile: shown with its live policy.
                let existing = match snapshot {
                    Some(Some(p)) => Some(Some(p)),
                    Some(None) => None,
                    None if r.status != Status::NeedsReapproval => None,
                    None => match self.existing_policy(spec.name.as_str()).await {
                        Ok(existing) => existing,
                        Err(e) => {
                            tracing::warn!("reading {}: {e}", spec.name);
                            return Plan {
                                blocked: Some(
                                    "could not read ECR right now to see whether the repository exists; reload to \
                                     try again"
                                        .to_string(),
                                ),
                                ..Plan::default()
                            };
                        }
                    },
                };
                plan::for_new_repository(spec, *grant_production, existing.as_ref().map(Option::as_ref), target)
            }
            RequestKind::GrantProduction { repository, .. } | RequestKind::RevokeProduction { repository } => {
                let grant = matches!(r.kind, RequestKind::GrantProduction { .. });
                let before = match snapshot {
                    Some(p) => p,
                    None => match self.live_policy(repository.as_str()).await {
                        Ok(p) => p,
                        Err(e) => {
                            return Plan {
                                blocked: Some({
                                    tracing::warn!("reading the policy of {repository}: {e}");
                                    "could not read the live policy from ECR right now; reload to try again".to_string()
                                }),
                                ..Plan::default()
                            }
                        }
                    },
                };
                plan::for_access(repository.as_str(), before.as_ref(), grant, target)
            }
            RequestKind::RestoreRepository { repository, .. } => self.restore_plan(repository, snapshot).await,
            RequestKind::DeleteRepository { repository, production_can_pull } => {
                // While it waits, the plan counts what would go; afterwards there is nothing left to read.
                let images = if r.status.is_awaiting_decision() {
                    match self.registry.images(repository.as_str()).await {
                        Ok(images) => Some(plan::ImageCount {
                            count: images.len(),
                            newest_push: images.iter().map(|i| i.pushed_at).max().map(format_ms),
                            last_pull: images.iter().filter_map(|i| i.last_pull).max().map(format_ms),
                        }),
                        Err(e) => {
                            tracing::warn!("counting the images of {repository}: {e}");
                            None
                        }
                    }
                } else {
                    None
                };
                plan::for_delete(repository.as_str(), images, *production_can_pull, target)
            }
            RequestKind::PromoteImage { repository, digest, tag, moves_from } => {
                let facts = if r.status.is_awaiting_decision() {
                    let facts = match self.registry.describe(repository.as_str()).await {
                        Ok(Some(live)) => self.promotion_facts(&live, digest, tag).await,
                        Ok(None) => Ok(None),
                        Err(e) => Err(e),
                    };
                    match facts {
                        Ok(Some(f)) => Some(f),
                        Ok(None) => {
                            return Plan {
                                blocked: Some(format!("the image {digest} is no longer in {repository}")),
                                ..Plan::default()
                            }
                        }
                        Err(e) => {
                            tracing::warn!("reading the image {digest} of {repository}: {e}");
                            None
                        }
                    }
                } else {
                    None
                };
                // The promotion rules are checked again while it waits: a scan may have finished meanwhile.
                let refused = facts.as_ref().and_then(|f| self.promotion_refused(f));
                plan::for_promote(
                    repository.as_str(),
                    digest,
                    tag,
                    moves_from.as_deref(),
                    facts.as_ref(),
                    refused,
                    target,
                )
            }
            RequestKind::UpdateRepository { before, spec, expire_protected } => {
                // While it waits: from the live settings, with the preview against the images now.
                // Afterwards: as approved (the images have moved on).
                if !r.status.is_awaiting_decision() {
                    return plan::for_update(before, spec, None, *expire_protected, target);
                }
                let live = match self.registry.describe(spec.name.as_str()).await {
                    Ok(Some(live)) => live,
                    Ok(None) => {
                        return Plan { blocked: Some(format!("{} is no longer in ECR", spec.name)), ..Plan::default() }
                    }
                    Err(e) => {
                        tracing::warn!("reading {}: {e}", spec.name);
                        return Plan {
                            blocked: Some(
                                "could not read the repository from ECR right now; reload to try again".into(),
                            ),
                            ..Plan::default()
                        };
                    }
                };
                let from = Self::live_settings(before, &live);
                // Fails closed: a lifecycle whose effect cannot be previewed is not approved blind.
                let preview = match self.lifecycle_preview(spec).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!("previewing the lifecycle of {}: {e}", spec.name);
                        return Plan {
                            blocked: Some(
                                "could not read the repository's images to preview what the lifecycle would expire; \
                                 reload to try again"
                                    .into(),
                            ),
                            ..Plan::default()
                        };
                    }
                };
                plan::for_update(&from, spec, preview, *expire_protected, target)
            }
        }
    }

    /// What a lifecycle would expire from the repository's images now (None:
    /// no lifecycle). An error when the images or the releases cannot be read:
    /// callers refuse rather than let a lifecycle through unseen.
    pub(super) async fn lifecycle_preview(
        &self,
        spec: &app::domain::settings::RepositorySpec,
    ) -> Result<Option<plan::LifecyclePreview>, Error> {
        let rules = spec.lifecycle.effective_rules();
        if rules.is_empty() {
            return Ok(None);
        }
        let images = self
            .registry
            .images(spec.name.as_str())
            .await
            .map_err(|e| super::aws_unavailable(&format!("read the images of {}", spec.name), e))?;
        // The repository's releases are protected too (their tags, exactly).
        let mut protection = self.deployment.protection.clone();
        let mut conn = self.db.pool.acquire().await?;
        protection.tag_patterns.extend(db::releases(&mut conn, spec.name.as_str()).await?.into_iter().map(|r| r.tag));
        drop(conn);
        let expiring = app::domain::lifecycle::preview(&rules, &images, self.now(), &protection);
        Ok(Some(plan::LifecyclePreview {
            images: images.len(),
            expiring: expiring
                .into_iter()
                .map(|e| plan::ExpiringImage {
                    rule: rules.iter().find(|r| r.priority == e.rule).map(|r| r.describe()).unwrap_or_default(),
                    protected: e.protected.map(|p| match p {
                        app::domain::lifecycle::Protected::Pulled { at } => {
                            format!(
                                "pulled {} (within {} days)",
                                format_ms(at),
                                self.deployment.protection.pulled_within_days
                            )
                        }
                        app::domain::lifecycle::Protected::ReleaseTag { tag } => format!("release tag {tag}"),
                    }),
                    digest: e.image.digest,
                    tags: e.image.tags,
                    pushed_at: Timestamp::from_unix_ms(e.image.pushed_at),
                })
                .collect(),
        }))
    }

    /// The settings as they are live, in the terms of a spec (tags: the spec's
    /// keys as they are live; a lifecycle the portal cannot express keeps `approved`'s).
    pub(super) fn live_settings(
        approved: &app::domain::settings::RepositorySpec,
        live: &crate::aws::LiveRepository,
    ) -> app::domain::settings::RepositorySpec {
        let mut tags: Vec<app::domain::settings::Tag> = live
            .tags
            .iter()
            .filter(|t| app::domain::form::is_required_tag(&t.key) || app::domain::form::is_free_tag(&t.key))
            .cloned()
            .collect();
        tags.sort();
        app::domain::settings::RepositorySpec {
            name: approved.name.clone(),
            tag_mutability: live.tag_mutability,
            tag_mutability_exclusions: live.tag_mutability_exclusions.clone(),
            scan_on_push: live.scan_on_push,
            encryption: live.encryption.clone(),
            lifecycle: app::domain::settings::Lifecycle::from_policy(live.lifecycle_policy.as_ref())
                .unwrap_or_else(|| approved.lifecycle.clone()),
            tags,
        }
    }

    /// The request page's data from a request's [`db::RequestView`] (with its plan).
    pub(super) async fn detail_from(&self, by: &Principal, view: db::RequestView) -> Result<RequestDetail, Error> {
        let db::RequestView { row, approvals, timeline, drift } = view;
        self.may_read(by, &row.request).await?;
        let r = &row.request;
        let plan = self.plan_for(&row).await;
        let timeline: Vec<AuditEventView> = timeline.into_iter().map(event_view).collect();
        let rule = self.deployment.approval.rule(&r.kind);
        let approve_blocked = if r.status.is_awaiting_decision() {
            r.check_decision(by, "approved", &rule, &approvals)
                .err()
                .map(|e| e.to_string())
                .or_else(|| plan.blocked.clone())
        } else {
            None
        };
        // Waiting requests expire: pending ones counted from submission, sent-back ones from being sent back.
        let expires_at = match r.status {
            Status::Pending => Some(r.created_at),
            Status::NeedsReapproval => Some(r.updated_at),
            _ => None,
        }
        .map(|from| Timestamp::from_unix_ms(from.saturating_add(self.deployment.approval.pending_expiry_ms)));
        let until = match &r.kind {
            RequestKind::GrantProduction { until: Some(t), .. } => Some(Timestamp::from_unix_ms(*t)),
            _ => None,
        };
        let broken = timeline.iter().rev().find(|e: &&AuditEventView| e.action == AuditAction::BreakGlass.as_str());
        let breaker = broken.map(|e| e.actor.clone());
        let break_glass =
            broken.map(|e| format!("{} applied it at {} without the quorum: {}", e.actor, e.at, e.detail));
        let operator = by.can(Capability::Operate);
        Ok(RequestDetail {
            break_glass,
            review_pending: row.review_pending,
            can_break_glass: self.deployment.break_glass
                && operator
                && r.requester != by.id
                && r.status.is_awaiting_decision(),
            can_review: operator
                && row.review_pending
                && breaker.as_deref() != Some(by.id.as_str())
                && r.requester != by.id,
            summary: summary(r),
            kind: r.kind.clone(),
            until,
            justification: r.justification.clone(),
            decided_by: r.decided_by.clone(),
            decision_comment: r.decision_comment.clone(),
            failure: r.failure.clone(),
            attempts: r.attempts,
            plan,
            result: row.result.clone(),
            timeline,
            approve_blocked,
            can_reject: r.check_decision(by, "rejected", &rule, &[]).is_ok(),
            can_withdraw: r.requester == by.id && r.status.is_awaiting_decision() && by.can(Capability::SubmitRequest),
            can_retry: by.can(Capability::Operate) && r.status == Status::Failed,
            approvals: approvals
                .into_iter()
                .map(|a| ApprovalView { approver: a.approver, at: Timestamp::from_unix_ms(a.at), comment: a.comment })
                .collect(),
            approvals_required: rule.required,
            approver_groups: rule.groups.clone(),
            expires_at,
            drift,
        })
    }

    pub async fn audit(&self, by: &Principal, query: AuditQuery) -> Result<AuditPage, Error> {
        self.authorize(by, Capability::ReadAudit, "read the audit trail").await?;
        let filter =
            db::filter_from_query(&query, self.deployment.namespace.as_str()).map_err(|e| Error::Invalid(vec![e]))?;
        if let Some(a) = &filter.action {
            if AuditAction::parse(a).is_none() {
                return Err(Error::field("action", format!("unknown action `{a}`")));
            }
        }
        let limit = i64::from(query.limit.unwrap_or(50).clamp(1, 200));
        let rows = db::events_page(&self.db.pool, &filter, query.before, query.after, limit).await?;
        let (older, newer) = match (rows.first(), rows.last()) {
            (Some(first), Some(last)) => {
                let older = db::events_exist_beyond(&self.db.pool, &filter, last.id, true).await?;
                let newer = db::events_exist_beyond(&self.db.pool, &filter, first.id, false).await?;
                (older.then_some(last.id), newer.then_some(first.id))
            }
            _ => (None, None),
        };
        Ok(AuditPage { events: rows.into_iter().map(event_view).collect(), older, newer })
    }

    pub async fn verify_audit(&self, by: &Principal) -> Result<AuditVerification, Error> {
        self.authorize(by, Capability::ReadAudit, "verify the audit trail").await?;
        let mut v = crate::db::verify_chain(&self.db.pool, &self.db.chain).await?;
        if let Some(file) = &self.audit_head_file {
            let heads = super::read_heads(file).map_err(|e| internal("reading the audit heads", e))?;
            v = crate::db::check_published_heads(&self.db.pool, v, &heads).await?;
        }
        Ok(AuditVerification {
            intact: v.intact(),
            events: v.events,
            head: v.head,
            broken_at: v.broken_at,
            reason: v.reason,
            checked_at: Timestamp::from_unix_ms(self.now()),
        })
    }

    /// The audit trail as CSV or NDJSON chunks, oldest first, for those who may read it.
    pub async fn export_audit(
        &self,
        by: &Principal,
        query: &AuditQuery,
        format: crate::export::Format,
    ) -> Result<impl futures::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + use<>, Error> {
        self.authorize(by, Capability::ReadAudit, "export the audit trail").await?;
        let filter =
            db::filter_from_query(query, self.deployment.namespace.as_str()).map_err(|e| Error::Invalid(vec![e]))?;
        Ok(crate::export::stream(self.db.pool.clone(), filter, format))
    }
}
