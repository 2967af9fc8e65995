//! Applying approved requests: claim with a lease, run the plan's AWS calls,
//! verify, and record the outcome only if the lease is still ours.
//!
//! Every step is idempotent, so a worker that dies anywhere can be resumed:
//! - a new repository carries the tag `ecr-portal:request=<id>.<mac>` (a MAC
//!   under the portal's key, so it cannot be forged), so a resumed attempt
//!   recognises its own half-made repository and completes it, while a
//!   repository made by someone else is adopted only if its settings match
//!   and its policy is the one the approval saw (none, when it did not exist
//!   then): otherwise the request goes back for re-approval, showing it;
//! - a policy already in the desired state is left alone;
//! - the live policy is compared with the one the approval was based on: a
//!   change by someone else since then stops the apply as `needs_reapproval`
//!   instead of overwriting it.
//!
//! Leases fence: an attempt holds its request's lease (`lease_owner`, and
//! the attempt number), renewed every third of its length while the attempt
//! runs and renewed again, as a check, right before each AWS write. An
//! attempt that finds the lease gone (it ran out and another attempt took the
//! job over) stops before writing, and records what it did, with its AWS
//! request ids, as `apply_lease_lost`; its result is never recorded. Each AWS
//! call is capped (see `aws::base_config`) well inside the shortest lease
//! allowed, so a write that starts under the lease also ends under it.
use super::{same_policy, Error, PortalService};
use crate::aws::{fixes, Registry, RegistryError, REQUEST_TAG};
use crate::clock::Clock;
use crate::db::{self, Db, NewEvent, RecordRow};
use app::domain::audit::AuditAction;
use app::domain::notify::NotifyEvent;
use app::domain::policy;
use app::domain::principal::SYSTEM_ACTOR;
use app::domain::request::{Request, RequestKind, Status};
use app::views::ApplyResult;
use serde_json::Value;
use std::sync::Arc;

/// Test hook: with `PORTAL_TEST_CRASH_AT=<point>` the worker announces the
/// point on standard error and hangs there, so a crash test can SIGKILL the
/// process at exactly that moment. Points: `before_aws`, `after_create`,
/// `during_verify`, and the notification sender's `before_delivery` and
/// `after_delivery`. Unset (always, outside tests) it does nothing.
pub(crate) fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT.get_or_init(|| std::env::var("PORTAL_TEST_CRASH_AT").ok()).as_deref() == Some(point) {
        eprintln!("CRASH POINT {point}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Who asked and who approved, for AWS's own logs: the session name
/// `req42-alice-by-bob`, the approver as source identity, and session tags.
fn attribution(r: &Request) -> crate::aws::Attribution {
    crate::aws::Attribution::for_request(r.id, &r.requester, r.decided_by.as_deref().unwrap_or(SYSTEM_ACTOR))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Nothing to do.
    Idle,
    Applied(i64),
    Failed(i64, String),
    /// The live policy changed since approval: sent back to the admins.
    NeedsReapproval(i64),
    /// A temporary AWS failure: back to approved, retried after a backoff.
    Deferred(i64),
    /// Another attempt took the job over (this one's lease ran out); this
    /// attempt stopped before its next write, or its result was dropped.
    LostLease(i64),
}

pub(crate) struct Failure {
    reason: String,
    request_ids: Vec<String>,
    reapprove: bool,
    /// Throttling, 5xx or unreachable: worth retrying later.
    transient: bool,
    /// The lease was gone before a write: another attempt owns the job.
    lost_lease: bool,
}

/// The apply lease of one attempt (see the module notes).
#[derive(Clone)]
struct Lease {
    db: Db,
    clock: Arc<dyn Clock>,
    id: i64,
    owner: String,
    attempt: u32,
    length_ms: i64,
}

impl Lease {
    /// Extends the lease if this attempt still holds it; false once it is gone.
    async fn renew(&self) -> Result<bool, sqlx::Error> {
        let until = self.clock.now_ms().saturating_add(self.length_ms);
        let mut tx = self.db.write().await?;
        let held = db::renew_lease(&mut tx, self.id, &self.owner, self.attempt, until).await?;
        tx.commit().await?;
        Ok(held)
    }

    /// Renews the lease every third of its length until the attempt ends
    /// (the task is aborted) or the lease is gone.
    fn keep_renewed(&self) -> tokio::task::JoinHandle<()> {
        let lease = self.clone();
        tokio::spawn(async move {
            let every = std::time::Duration::from_millis(u64::try_from(lease.length_ms / 3).unwrap_or(1).max(1));
            loop {
                tokio::time::sleep(every).await;
                match lease.renew().await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => tracing::warn!(request = lease.id, "renewing the apply lease: {e}"),
                }
            }
        })
    }
}

fn aws_reason(step: &str, e: RegistryError) -> String {
    match e {
        RegistryError::Denied(m) => format!("{step}: AWS denied access ({m}); check the staging role's permissions"),
        RegistryError::Invalid(m) => format!("{step}: AWS refused the settings: {m}"),
        RegistryError::Transient(m) => format!("{step}: AWS did not answer after retries ({m}); retry when it is back"),
        other => format!("{step}: {other}"),
    }
}

/// The registry session of one apply; collects AWS request ids as it goes,
/// builds failures that carry them, and checks the lease before each write.
struct Calls {
    reg: Arc<dyn Registry>,
    ids: Vec<String>,
    lease: Lease,
}

impl Calls {
    fn fail(&self, reason: String) -> Failure {
        Failure { reason, request_ids: self.ids.clone(), reapprove: false, transient: false, lost_lease: false }
    }

    /// Renews the lease before the AWS write `call`, or stops the attempt if it is gone.
    async fn fence(&self, call: &str) -> Result<(), Failure> {
        match self.lease.renew().await {
            Ok(true) => Ok(()),
            Ok(false) => {
                let mut f = self.fail(format!("the lease was gone before {call}; stopped without writing"));
                f.lost_lease = true;
                Err(f)
            }
            Err(e) => {
                tracing::error!("checking the apply lease: {e}");
                let mut f =
                    self.fail(format!("could not check the apply lease before {call}; nothing more was written"));
                f.transient = true;
                Err(f)
            }
        }
    }

    async fn put_lifecycle(&mut self, name: &str, policy: &Value) -> Result<(), Failure> {
        self.fence("PutLifecyclePolicy").await?;
        let id = self.reg.put_lifecycle_policy(name, policy).await.map_err(|e| self.aws("PutLifecyclePolicy", e))?;
        self.ids.push(id);
        Ok(())
    }

    fn aws(&self, step: &str, e: RegistryError) -> Failure {
        let transient = matches!(e, RegistryError::Transient(_));
        let mut f = self.fail(aws_reason(step, e));
        f.transient = transient;
        f
    }
}

impl PortalService {
    /// Lets the next `apply_next` resume jobs whose worker died with the last process.
    pub async fn release_leases_of_dead_workers(&self) -> Result<u64, Error> {
        db::expire_leases(&self.db.pool).await.map_err(Error::from)
    }

    /// Claims and applies the oldest approved request. Returns what happened.
    pub async fn apply_next(&self, owner: &str, lease_ms: i64) -> Result<ApplyOutcome, Error> {
        let now = self.now();
        let mut tx = self.db.write().await?;
        let Some(row) = db::next_claimable(&mut tx, now).await? else {
            tx.rollback().await?;
            return Ok(ApplyOutcome::Idle);
        };
        let approved_policy = row.approved_policy.clone();
        let retries = row.retries;
        let previous = row.request.status;
        let previous_attempts = row.request.attempts;
        let resumed = previous == Status::Applying;
        let started = if resumed { row.request.resume(now) } else { row.request.start_apply(now) }?;
        if !db::claim(&mut tx, &started, previous, previous_attempts, owner, now + lease_ms).await? {
            tx.rollback().await?;
            return Ok(ApplyOutcome::Idle);
        }
        let detail = if resumed {
            format!("attempt {} (resuming an interrupted attempt)", started.attempts)
        } else {
            format!("attempt {}", started.attempts)
        };
        let name = started.kind.repository().to_string();
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: SYSTEM_ACTOR,
                action: AuditAction::ApplyStarted,
                request_id: Some(started.id),
                repository: Some(&name),
                detail,
                aws_request_ids: vec![],
            },
        )
        .await?;
        tx.commit().await?;
        crash_point("before_aws");

        let lease = Lease {
            db: self.db.clone(),
            clock: self.clock.clone(),
            id: started.id,
            owner: owner.to_string(),
            attempt: started.attempts,
            length_ms: lease_ms,
        };
        let renewing = lease.keep_renewed();
        let outcome = self.execute(&started, approved_policy, lease).await;
        renewing.abort();

        let now = self.now();
        let id = started.id;
        let mut retry_at = None;
        // What this attempt found, and what it would record: the new state,
        // the result, the record of what is approved, and whether a new
        // approval round starts.
        let mut record = None;
        let mut clear_approvals = false;
        let (finished, result, action, detail, ids) = match outcome {
            Err(f) if f.lost_lease => {
                return self.record_lost_lease(&started, &name, f.reason, f.request_ids).await;
            }
            Ok(res) => {
                let detail = match &started.kind {
                    RequestKind::CreateRepository { .. } if res.adopted => {
                        format!("adopted the existing repository {}", res.repository_uri)
                    }
                    RequestKind::CreateRepository { .. } => format!("created {}", res.repository_uri),
                    RequestKind::GrantProduction { .. } => "production can pull".to_string(),
                    RequestKind::RevokeProduction { .. } => "production can no longer pull".to_string(),
                    RequestKind::RestoreRepository { .. } => "restored the approved state".to_string(),
                    RequestKind::DeleteRepository { .. } => format!("deleted {name} and its images"),
                    RequestKind::UpdateRepository { .. } => "changed the settings".to_string(),
                    RequestKind::PromoteImage { digest, tag, .. } => format!("tagged {digest} as {tag}"),
                };
                record = Some(res.adopted);
                let ids = res.aws_request_ids.clone();
                (started.clone().succeed(now)?, Some(res), AuditAction::ApplySucceeded, detail, ids)
            }
            Err(f) if f.transient && retries + 1 < self.retry.max_attempts => {
                let delay = self.retry.delay_ms(retries);
                retry_at = Some(now + i64::try_from(delay).unwrap_or(i64::MAX / 4));
                let detail = format!(
                    "attempt {} of {} failed: {}; retrying in {:.1} s",
                    retries + 1,
                    self.retry.max_attempts,
                    f.reason,
                    delay as f64 / 1000.0
                );
                (started.clone().defer(f.reason, now)?, None, AuditAction::ApplyDeferred, detail, f.request_ids)
            }
            Err(f) if f.transient => {
                let reason = format!("{} (gave up after {} attempts)", f.reason, self.retry.max_attempts);
                (started.clone().fail(reason.clone(), now)?, None, AuditAction::ApplyFailed, reason, f.request_ids)
            }
            Err(f) if f.reapprove => {
                clear_approvals = true;
                let r = started.clone().stop_for_reapproval(f.reason.clone(), now)?;
                (r, None, AuditAction::ApplyNeedsReapproval, f.reason, f.request_ids)
            }
            Err(f) => {
                let r = started.clone().fail(f.reason.clone(), now)?;
                (r, None, AuditAction::ApplyFailed, f.reason, f.request_ids)
            }
        };
        let mut tx = self.db.write().await?;
        if !db::finish_apply(&mut tx, &finished, owner, result.as_ref(), retry_at).await? {
            tx.rollback().await?;
            let why = format!("the lease was gone when the attempt finished ({detail}); its result was not recorded");
            return self.record_lost_lease(&started, &name, why, ids).await;
        }
        match (record, &started.kind) {
            // A deleted repository's record is kept apart; a later one of the same name starts afresh.
            (Some(_), RequestKind::DeleteRepository { .. }) => {
                db::archive_record(&mut tx, &name, id, now).await?;
                db::retire_releases(&mut tx, &name, id).await?;
            }
            // A promotion is a release of the repository; the repository's record does not change.
            (Some(_), RequestKind::PromoteImage { digest, tag, .. }) => {
                let release = db::Release {
                    repository: name.clone(),
                    tag: tag.clone(),
                    digest: digest.clone(),
                    request_id: id,
                    requested_by: started.requester.clone(),
                    approved_by: started.decided_by.clone().unwrap_or_default(),
                    at: now,
                };
                db::insert_release(&mut tx, &release).await?;
            }
            (Some(adopted), _) => {
                let before = db::get_record(&mut tx, &name).await?;
                db::upsert_record(&mut tx, &updated_record(&started, before, adopted, now)).await?;
            }
            (None, _) => {}
        }
        if clear_approvals {
            db::clear_approvals(&mut tx, id).await?;
        }
        let told = match finished.status {
            Status::Applied => Some(NotifyEvent::RequestApplied),
            Status::NeedsReapproval => Some(NotifyEvent::RequestNeedsReapproval),
            // A revoke the portal made itself (a temporary grant ended) that failed: production can still pull.
            Status::Failed if finished.requester == SYSTEM_ACTOR => Some(NotifyEvent::RevokeFailed),
            Status::Failed => Some(NotifyEvent::RequestFailed),
            _ => None,
        };
        if let Some(event) = told {
            let notice = self.notice(event, &finished, detail.clone());
            self.enqueue(&mut tx, &notice, Some(id), None).await?;
        }
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: SYSTEM_ACTOR,
                action,
                request_id: Some(id),
                repository: Some(&name),
                detail: detail.clone(),
                aws_request_ids: ids,
            },
        )
        .await?;
        tx.commit().await?;
        if retry_at.is_some() {
            self.wake.notify_one();
        }
        Ok(match finished.status {
            Status::Applied => ApplyOutcome::Applied(id),
            Status::NeedsReapproval => ApplyOutcome::NeedsReapproval(id),
            Status::Approved => ApplyOutcome::Deferred(id),
            _ => ApplyOutcome::Failed(id, detail),
        })
    }

    /// Records that an attempt lost its lease, with what it did in AWS; the
    /// request itself belongs to the attempt that took it over.
    async fn record_lost_lease(
        &self,
        started: &Request,
        name: &str,
        why: String,
        aws_request_ids: Vec<String>,
    ) -> Result<ApplyOutcome, Error> {
        tracing::warn!(request = started.id, attempt = started.attempts, "{why}");
        let mut tx = self.db.write().await?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: self.now(),
                actor: SYSTEM_ACTOR,
                action: AuditAction::ApplyLeaseLost,
                request_id: Some(started.id),
                repository: Some(name),
                detail: format!("attempt {}: {why}", started.attempts),
                aws_request_ids,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(ApplyOutcome::LostLease(started.id))
    }

    /// Runs the plan against the registry. Idempotent (see the module header).
    async fn execute(
        &self,
        r: &Request,
        approved_policy: Option<Option<Value>>,
        lease: Lease,
    ) -> Result<ApplyResult, Failure> {
        let mut calls = Calls { reg: self.registry.scoped(&attribution(r)).await, ids: Vec::new(), lease };
        let name = r.kind.repository().as_str().to_string();
        // URI and ARN when the steps already know them; otherwise the verification read gives them.
        let (known, adopted) = match &r.kind {
            RequestKind::CreateRepository { spec, grant_production } => {
                // The policy the approval saw (none when the repository did not exist yet).
                let approved = approved_policy.unwrap_or(None);
                let (uri, arn, adopted) = self.create(r, spec, approved.as_ref(), &mut calls).await?;
                if *grant_production {
                    self.apply_policy(&name, true, Some(&approved), &mut calls).await?;
                }
                (Some((uri, arn)), adopted)
            }
            RequestKind::GrantProduction { .. } | RequestKind::RevokeProduction { .. } => {
                let grant = matches!(r.kind, RequestKind::GrantProduction { .. });
                self.apply_policy(&name, grant, approved_policy.as_ref(), &mut calls).await?;
                (None, false)
            }
            RequestKind::DeleteRepository { .. } => return self.delete(&name, calls).await,
            RequestKind::PromoteImage { digest, tag, moves_from, .. } => {
                return self.promote(&name, digest, tag, moves_from.as_deref(), calls).await
            }
            RequestKind::UpdateRepository { before, spec, .. } => {
                // Every write sets a value (or removes a tag): running them again is harmless.
                let live = self.describe_for(&name, &mut calls).await?;
                let (mut todo, _encryption_is_fixed) = fixes(&live, spec);
                let removed = removed_tags(before, spec, &live);
                if !removed.is_empty() {
                    todo.push(crate::aws::Fix::Untag(removed));
                }
                for fix in &todo {
                    calls.fence(fix.call()).await?;
                    let id = calls.reg.fix(&name, &live.arn, fix).await.map_err(|e| calls.aws(fix.call(), e))?;
                    calls.ids.push(id);
                }
                (Some((live.uri, live.arn)), false)
            }
            RequestKind::RestoreRepository { grants_production, .. } => {
                let mut conn = self.db.pool.acquire().await.map_err(|e| {
                    tracing::error!("reading the approved state: {e}");
                    calls.fail("could not read the approved state from the database".into())
                })?;
                let record = db::get_record(&mut conn, &name)
                    .await
                    .map_err(|e| {
                        tracing::error!("reading the approved state: {e}");
                        calls.fail("could not read the approved state from the database".into())
                    })?
                    .ok_or_else(|| calls.fail(format!("{name} is no longer in the portal's records")))?;
                drop(conn);
                let live = self.describe_for(&name, &mut calls).await?;
                let regrant = record.production_access && !self.production_can_pull(live.policy.as_ref());
                if regrant && !grants_production {
                    return Err(calls.fail(format!(
                        "putting {name} back would give production its pull access again, which this restore was \
                         not approved for (production access was in place when it was requested); nothing was \
                         written. Request the restore again: it will be decided by the production grant's rule"
                    )));
                }
                if let Some(spec) = &record.spec {
                    let (todo, _impossible) = fixes(&live, spec);
                    for fix in &todo {
                        calls.fence(fix.call()).await?;
                        let id = calls.reg.fix(&name, &live.arn, fix).await.map_err(|e| calls.aws(fix.call(), e))?;
                        calls.ids.push(id);
                    }
                }
                self.apply_policy(&name, record.production_access, approved_policy.as_ref(), &mut calls).await?;
                (Some((live.uri, live.arn)), false)
            }
        };

        crash_point("after_create");
        // Verify: read it back and compare with what was approved. One read
        // (DescribeRepositories) for the settings; the lifecycle and policy
        // writes are confirmed by their own answers, and the policy is read
        // once more only when the request is about production access. A
        // restore compares everything again.
        let full = matches!(r.kind, RequestKind::RestoreRepository { .. } | RequestKind::UpdateRepository { .. });
        let mut live = if full {
            self.describe_for(&name, &mut calls).await?
        } else {
            let live = calls
                .reg
                .describe_settings(&name)
                .await
                .map_err(|e| calls.aws("DescribeRepositories", e))?
                .ok_or_else(|| calls.fail(format!("{name} is not in ECR")))?;
            calls.ids.extend(live.request_ids.iter().cloned());
            live
        };
        crash_point("during_verify");
        if let RequestKind::CreateRepository { spec, .. } = &r.kind {
            let diffs = live.settings_differences(spec);
            if !diffs.is_empty() {
                return Err(calls.fail(format!("verification failed: {}", diffs.join("; "))));
            }
        }
        if let RequestKind::UpdateRepository { before, spec, .. } = &r.kind {
            let mut diffs = live.differences(spec);
            diffs.extend(removed_tags(before, spec, &live).into_iter().map(|k| format!("tag {k} is still there")));
            if !diffs.is_empty() {
                return Err(calls.fail(format!("verification failed: {}", diffs.join("; "))));
            }
        }
        let (uri, arn) = known.unwrap_or_else(|| (live.uri.clone(), live.arn.clone()));
        let account = self.deployment.target.production_account.as_deref();
        let can_list = self.deployment.target.production_can_list;
        let must_grant = match &r.kind {
            RequestKind::CreateRepository { grant_production, .. } => Some(*grant_production).filter(|g| *g),
            RequestKind::GrantProduction { .. } => Some(true),
            RequestKind::RevokeProduction { .. } => Some(false),
            RequestKind::RestoreRepository { .. }
            | RequestKind::DeleteRepository { .. }
            | RequestKind::UpdateRepository { .. }
            | RequestKind::PromoteImage { .. } => None,
        };
        if must_grant.is_some() && !full {
            let (text, id) = calls.reg.get_policy(&name).await.map_err(|e| calls.aws("GetRepositoryPolicy", e))?;
            calls.ids.push(id);
            live.policy =
                policy::parse(text.as_deref()).map_err(|e| calls.fail(format!("verification failed: {e}")))?;
        }
        match (must_grant, account) {
            (Some(true), Some(a)) if !policy::grants(live.policy.as_ref(), a, can_list) => {
                return Err(calls.fail("verification failed: the policy does not grant production pull access".into()))
            }
            (Some(false), _) if policy::portal_statement(live.policy.as_ref()).is_some() => {
                return Err(calls.fail("verification failed: the portal's statement is still in the policy".into()))
            }
            _ => {}
        }
        // The inventory learns the new state from this verification read (no extra ECR calls).
        if !adopted || full {
            self.put_in_inventory(&live);
        }
        Ok(ApplyResult { repository_uri: uri, repository_arn: arn, adopted, aws_request_ids: calls.ids })
    }

    /// Deletes the repository with its images (force), then checks it is gone.
    /// A repository already gone (an earlier attempt deleted it) counts as deleted.
    async fn delete(&self, name: &str, mut calls: Calls) -> Result<ApplyResult, Failure> {
        calls.fence("DeleteRepository").await?;
        match calls.reg.delete_repository(name).await {
            Ok(id) => calls.ids.push(id),
            Err(RegistryError::NotFound) => {}
            Err(e) => return Err(calls.aws("DeleteRepository", e)),
        }
        match calls.reg.describe_settings(name).await {
            Ok(None) => {}
            Ok(Some(_)) => return Err(calls.fail(format!("verification failed: {name} is still in ECR"))),
            Err(e) => return Err(calls.aws("DescribeRepositories", e)),
        }
        self.forget_in_inventory(name);
        Ok(ApplyResult {
            repository_uri: String::new(),
            repository_arn: String::new(),
            adopted: false,
            aws_request_ids: calls.ids,
        })
    }

    /// Gives the image `digest` the tag: its own manifest put again under the
    /// tag (PutImage), then the tag read back. An earlier attempt that tagged
    /// it already counts; a tag that names an image nobody approved stops for
    /// re-approval.
    async fn promote(
        &self,
        name: &str,
        digest: &str,
        tag: &str,
        moves_from: Option<&str>,
        mut calls: Calls,
    ) -> Result<ApplyResult, Failure> {
        let now = calls.reg.digest_of_tag(name, tag).await.map_err(|e| calls.aws("DescribeImages", e))?;
        match now.as_deref() {
            Some(d) if d == digest => {}
            Some(d) if Some(d) != moves_from => {
                let mut f = calls.fail(format!(
                    "{tag} now names {d}, which this promotion was not approved to move; nothing was written. \
                     Review the new plan and approve it again."
                ));
                f.reapprove = true;
                return Err(f);
            }
            _ => {
                let (manifest, media_type) = calls
                    .reg
                    .manifest(name, digest)
                    .await
                    .map_err(|e| calls.aws("BatchGetImage", e))?
                    .ok_or_else(|| calls.fail(format!("the image {digest} is no longer in {name}")))?;
                calls.fence("PutImage").await?;
                let id = calls
                    .reg
                    .put_tag(name, tag, &manifest, media_type.as_deref())
                    .await
                    .map_err(|e| calls.aws("PutImage", e))?;
                calls.ids.push(id);
            }
        }
        match calls.reg.digest_of_tag(name, tag).await.map_err(|e| calls.aws("DescribeImages", e))? {
            Some(d) if d == digest => {}
            other => {
                return Err(calls
                    .fail(format!("verification failed: {tag} names {}", other.unwrap_or_else(|| "no image".into()))))
            }
        }
        Ok(ApplyResult {
            repository_uri: String::new(),
            repository_arn: String::new(),
            adopted: false,
            aws_request_ids: calls.ids,
        })
    }

    async fn describe_for(&self, name: &str, calls: &mut Calls) -> Result<crate::aws::LiveRepository, Failure> {
        let live = calls
            .reg
            .describe(name)
            .await
            .map_err(|e| calls.aws("DescribeRepositories", e))?
            .ok_or_else(|| calls.fail(format!("{name} is not in ECR")))?;
        calls.ids.extend(live.request_ids.iter().cloned());
        Ok(live)
    }

    /// Creates the repository, or finishes or adopts the one that is there
    /// (see the module notes). `approved` is the policy the approval saw.
    async fn create(
        &self,
        r: &Request,
        spec: &app::domain::settings::RepositorySpec,
        approved: Option<&Value>,
        calls: &mut Calls,
    ) -> Result<(String, String, bool), Failure> {
        let name = spec.name.as_str();
        let lifecycle = spec.lifecycle.policy_json();
        let marker = self.key.repository_marker(r.id, name);
        calls.fence("CreateRepository").await?;
        match calls.reg.create(spec, &marker).await {
            Ok(created) => {
                calls.ids.push(created.request_id);
                if let Some(policy) = &lifecycle {
                    calls.put_lifecycle(name, policy).await?;
                }
                Ok((created.uri, created.arn, false))
            }
            Err(RegistryError::AlreadyExists) => {
                let live = self.describe_for(name, calls).await?;
                if live.request_tag() == Some(marker.as_str()) {
                    // An earlier attempt of this request created it: finish the job.
                    if let Some(policy) = lifecycle.as_ref().filter(|p| live.lifecycle_policy.as_ref() != Some(*p)) {
                        calls.put_lifecycle(name, policy).await?;
                    }
                    return Ok((live.uri, live.arn, false));
                }
                let diffs = live.differences(spec);
                if !diffs.is_empty() {
                    return Err(calls.fail(format!(
                        "{name} already exists in ECR with different settings: {}. Nothing was changed.",
                        diffs.join("; ")
                    )));
                }
                if !same_policy(live.policy.as_ref(), approved) {
                    let shown = live.policy.as_ref().map_or_else(|| "no policy".to_string(), Value::to_string);
                    let mut f = calls.fail(format!(
                        "{name} was created outside this request and its policy is not the one this plan was \
                         approved with (it is {shown}); nothing was written. Review the new plan, which shows the \
                         live policy, and approve it again."
                    ));
                    f.reapprove = true;
                    return Err(f);
                }
                if let Some(other) = live.request_tag() {
                    tracing::info!(request = r.id, "adopting {name}, tagged `{REQUEST_TAG}={other}` by someone else");
                }
                Ok((live.uri, live.arn, true))
            }
            Err(e) => Err(calls.aws("CreateRepository", e)),
        }
    }

    /// Puts the portal's statement into (grant) or out of (revoke) the live policy.
    /// `approved` is the policy the approval saw. SetRepositoryPolicy replaces
    /// the whole document, so two attempts must never write one repository's
    /// policy at once: the lease, checked before the write, sees to that (one
    /// open request per repository, one attempt holding its lease).
    async fn apply_policy(
        &self,
        name: &str,
        grant: bool,
        approved: Option<&Option<Value>>,
        calls: &mut Calls,
    ) -> Result<(), Failure> {
        let account = self.deployment.target.production_account.as_deref();
        let wanted = match (grant, account) {
            (true, Some(_)) => Some(self.deployment.target.production_can_list),
            (true, None) => {
                return Err(calls.fail("the production account is not configured or could not be discovered".into()))
            }
            (false, _) => None,
        };
        let (text, id) = calls.reg.get_policy(name).await.map_err(|e| calls.aws("GetRepositoryPolicy", e))?;
        calls.ids.push(id);
        let live = policy::parse(text.as_deref()).map_err(|e| calls.fail(e.to_string()))?;
        if let Some(approved) = approved {
            if !same_policy(live.as_ref(), approved.as_ref()) {
                let approved_after = policy::with_production(approved.as_ref(), account, wanted)
                    .map_err(|e| calls.fail(e.to_string()))?;
                if same_policy(live.as_ref(), approved_after.as_ref()) {
                    return Ok(()); // Someone (or an earlier attempt) already made exactly the approved change.
                }
                let mut f = calls.fail(format!(
                    "the policy of {name} changed since this plan was approved; nothing was written. Review the new plan and approve it again."
                ));
                f.reapprove = true;
                return Err(f);
            }
        }
        let after = policy::with_production(live.as_ref(), account, wanted).map_err(|e| calls.fail(e.to_string()))?;
        if same_policy(live.as_ref(), after.as_ref()) {
            return Ok(());
        }
        calls.fence(if after.is_some() { "SetRepositoryPolicy" } else { "DeleteRepositoryPolicy" }).await?;
        let id = match &after {
            Some(doc) => calls.reg.set_policy(name, doc).await.map_err(|e| calls.aws("SetRepositoryPolicy", e))?,
            None => calls.reg.delete_policy(name).await.map_err(|e| calls.aws("DeleteRepositoryPolicy", e))?,
        };
        calls.ids.push(id);
        Ok(())
    }
}

/// The tags a settings change removes that are still on the repository.
fn removed_tags(
    before: &app::domain::settings::RepositorySpec,
    after: &app::domain::settings::RepositorySpec,
    live: &crate::aws::LiveRepository,
) -> Vec<String> {
    before
        .tags
        .iter()
        .filter(|t| !after.tags.iter().any(|a| a.key == t.key) && live.tags.iter().any(|l| l.key == t.key))
        .map(|t| t.key.clone())
        .collect()
}

/// The approved state of a repository after a request succeeded.
fn updated_record(r: &Request, record: Option<RecordRow>, adopted: bool, now: i64) -> RecordRow {
    let name = r.kind.repository().to_string();
    let mut rec = record.unwrap_or(RecordRow {
        name,
        spec: None,
        production_access: false,
        production_until: None,
        request_id: None,
        adopted_at: None,
        drift: Vec::new(),
        checked_at: None,
    });
    rec.request_id = Some(r.id);
    match &r.kind {
        RequestKind::CreateRepository { spec, grant_production } => {
            let mut spec = spec.clone();
            spec.tags.retain(|t| t.key != REQUEST_TAG);
            rec.spec = Some(spec);
            rec.production_access = *grant_production;
            rec.production_until = None;
            rec.adopted_at = adopted.then_some(now);
        }
        RequestKind::GrantProduction { until, .. } => {
            rec.production_access = true;
            rec.production_until = *until;
        }
        RequestKind::RevokeProduction { .. } => {
            rec.production_access = false;
            rec.production_until = None;
        }
        RequestKind::UpdateRepository { spec, .. } => rec.spec = Some(spec.clone()),
        RequestKind::RestoreRepository { .. }
        | RequestKind::DeleteRepository { .. }
        | RequestKind::PromoteImage { .. } => {}
    }
    rec.drift = Vec::new();
    rec.checked_at = Some(now);
    rec
}
