//! Decisions on requests: approve, reject, retry (by people), expire and
//! supersede (by the system). Each is one transaction: the request is read,
//! the domain state machine decides, and the new state is stored with its
//! audit event, guarded by the status as read.
use super::{aws_unavailable, Error, PortalService};
use crate::clock::format_ms;
use crate::db::{self, NewEvent, RequestRow};
use app::domain::approval::Approval;
use app::domain::audit::AuditAction;
use app::domain::name::RepoName;
use app::domain::notify::NotifyEvent;
use app::domain::principal::{Capability, Principal, SYSTEM_ACTOR};
use app::domain::request::{Request, RequestKind, Status, MAX_COMMENT};
use app::views::*;

fn clean_comment(comment: String) -> Result<Option<String>, Error> {
    let c = app::domain::text::free_text(&comment, MAX_COMMENT, true)
        .map_err(|e| Error::field("comment", format!("the comment: {e}")))?;
    Ok(Some(c).filter(|c| !c.is_empty()))
}

impl PortalService {
    pub async fn approve(&self, by: &Principal, id: i64, comment: String) -> Result<RequestDetail, Error> {
        self.authorize_decide(by, "approve requests").await?;
        let comment = clean_comment(comment)?;
        let view = self.load_view(id).await?;
        let rule = self.deployment.approval.rule(&view.row.request.kind);
        // A blocked plan is refused before the transaction, unless this
        // approval would be refused anyway (the transaction says why).
        if view.row.request.status.is_awaiting_decision() {
            if let Some(why) = self.plan_for(&view.row).await.blocked {
                if view.row.request.check_decision(by, "approved", &rule, &view.approvals).is_ok() {
                    return Err(Error::Conflict(format!("this plan cannot be applied: {why}")));
                }
            }
        }
        let c = comment.clone();
        self.decide(by, &view.row, AuditAction::RequestApproved, comment, move |r, by, approvals, now| {
            r.approve(by, &rule, approvals, c.clone(), now)
        })
        .await
    }

    pub async fn reject(&self, by: &Principal, id: i64, comment: String) -> Result<RequestDetail, Error> {
        self.authorize_decide(by, "reject requests").await?;
        let comment = clean_comment(comment)?;
        let read = self.load(id).await?;
        let rule = self.deployment.approval.rule(&read.request.kind);
        let c = comment.clone();
        self.decide(by, &read, AuditAction::RequestRejected, comment, move |r, by, _, now| {
            r.reject(by, &rule, c.clone(), now)
        })
        .await
    }

    /// The requester takes a request back while it waits for a decision (nobody else can).
    pub async fn withdraw(&self, by: &Principal, id: i64) -> Result<RequestDetail, Error> {
        self.authorize(by, Capability::SubmitRequest, "withdraw requests").await?;
        let read = self.load(id).await?;
        self.decide(by, &read, AuditAction::RequestWithdrawn, None, |r, by, _, now| r.withdraw(by, now)).await
    }

    /// An admin who is not the requester applies a waiting request at once,
    /// without the quorum, with a reason (`approval.break_glass`). It is
    /// applied like an approved one and waits for another admin's review.
    pub async fn break_glass(&self, by: &Principal, id: i64, reason: String) -> Result<RequestDetail, Error> {
        self.authorize(by, Capability::Operate, "break glass").await?;
        if !self.deployment.break_glass {
            return Err(Error::Conflict(
                "break glass is off here (approval.break_glass = false): the request needs its approvals".into(),
            ));
        }
        let reason = clean_comment(reason).map_err(|_| {
            Error::field(
                "reason",
                "the reason: at most 2,000 characters, without control characters or direction marks",
            )
        })?;
        let Some(reason) = reason else {
            return Err(Error::field("reason", "say why this cannot wait for the approvals"));
        };
        let view = self.load_view(id).await?;
        if view.row.request.status.is_awaiting_decision() {
            if let Some(why) = self.plan_for(&view.row).await.blocked {
                return Err(Error::Conflict(format!("this plan cannot be applied: {why}")));
            }
        }
        let r = reason.clone();
        self.decide(by, &view.row, AuditAction::BreakGlass, Some(reason), move |req, by, _, now| {
            req.break_glass(by, r.clone(), now)
        })
        .await
    }

    /// Another admin reviews a break-glass apply: `accepted`, or `revert`,
    /// which files the request that undoes it (decided like any other).
    pub async fn review_break_glass(
        &self,
        by: &Principal,
        id: i64,
        outcome: String,
        comment: String,
    ) -> Result<RequestDetail, Error> {
        self.authorize(by, Capability::Operate, "review break-glass applies").await?;
        let comment = clean_comment(comment)?;
        let revert = match outcome.trim() {
            "accepted" => false,
            "revert" => true,
            _ => return Err(Error::field("outcome", "choose accepted or revert")),
        };
        let view = self.load_view(id).await?;
        let row = view.row;
        if !row.review_pending {
            return Err(Error::Conflict(format!("request #{id} is not waiting for a break-glass review")));
        }
        // Who broke the glass, from the trail (a later approval round may have changed `decided_by`).
        let breaker =
            view.timeline.iter().rev().find(|e| e.action == AuditAction::BreakGlass.as_str()).map(|e| e.actor.clone());
        if breaker.as_deref() == Some(by.id.as_str()) || row.request.requester == by.id {
            return Err(self
                .deny(by, "the admin who broke the glass and the requester cannot review it; another admin does".into())
                .await);
        }
        let undo = if revert {
            if row.request.status != Status::Applied {
                return Err(Error::Conflict(format!(
                    "request #{id} is {}, not applied: there is nothing to revert. Accept the review, then retry or \
                     leave it as usual",
                    row.request.status
                )));
            }
            Some(row.request.undo().ok_or_else(|| {
                Error::Conflict(format!(
                    "a {} cannot be undone by a request; accept the review and put it right by hand",
                    row.request.kind.label()
                ))
            })?)
        } else {
            None
        };
        let name = row.request.kind.repository().to_string();
        let now = self.now();
        let mut tx = self.db.write().await?;
        let current =
            db::get_request(&mut tx, id).await?.ok_or_else(|| Error::NotFound(format!("there is no request #{id}")))?;
        if !current.review_pending {
            tx.rollback().await?;
            return Err(Error::Conflict(format!("request #{id} was reviewed meanwhile")));
        }
        db::set_review_pending(&mut tx, id, false).await?;
        let note = comment.clone().unwrap_or_default();
        let detail = match undo {
            None => format!("accepted{}", if note.is_empty() { String::new() } else { format!(": {note}") }),
            Some(kind) => {
                let justification = format!(
                    "Revert break-glass request #{id}{}",
                    if note.is_empty() { String::new() } else { format!(": {note}") }
                );
                let request = self.new_request(&by.id, kind, justification, Status::Pending);
                let new_id = match Self::insert_request_in(&mut tx, &request, format!("reverting #{id}")).await {
                    Ok(n) => n,
                    Err(e) => {
                        tx.rollback().await?;
                        return Err(e);
                    }
                };
                let notice = self.notice(
                    NotifyEvent::RequestSubmitted,
                    &Request { id: new_id, ..request },
                    format!("reverting #{id}"),
                );
                self.enqueue(&mut tx, &notice, Some(new_id), None).await?;
                format!(
                    "revert: filed request #{new_id} to undo it{}",
                    if note.is_empty() { String::new() } else { format!(": {note}") }
                )
            }
        };
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &by.id,
                action: AuditAction::BreakGlassReviewed,
                request_id: Some(id),
                repository: Some(&name),
                detail,
                aws_request_ids: vec![],
            },
        )
        .await?;
        tx.commit().await?;
        self.detail_from(by, self.load_view(id).await?).await
    }

    pub async fn retry(&self, by: &Principal, id: i64) -> Result<RequestDetail, Error> {
        self.authorize(by, Capability::Operate, "retry applies").await?;
        let read = self.load(id).await?;
        self.decide(by, &read, AuditAction::ApplyRetried, None, |r, by, _, now| r.retry(by, now)).await
    }

    /// Applies one decision through the state machine, with its audit event,
    /// in one write transaction: the request and its approvals are read in
    /// it, the state machine decides, and the new state is stored with a
    /// compare-and-set on the status as read. Approvals are counted per
    /// approver; the request moves to `approved` only when the approval
    /// policy's number is reached. Answers with the request page as it is then.
    /// `read` is the request as the caller read it (for the policy snapshot).
    async fn decide(
        &self,
        by: &Principal,
        read: &RequestRow,
        action: AuditAction,
        comment: Option<String>,
        step: impl Fn(Request, &Principal, &[Approval], i64) -> Result<Request, app::domain::request::TransitionError>,
    ) -> Result<RequestDetail, Error> {
        let id = read.request.id;
        let kind = &read.request.kind;
        let name = kind.repository().as_str();
        // The policy an approval is based on is read before the transaction (an AWS call).
        // Every create request takes one too: a repository someone else made
        // in the meantime is adopted only with the policy its approvers saw.
        let snapshot = if (action == AuditAction::RequestApproved || action == AuditAction::BreakGlass)
            && (kind.touches_policy() || matches!(kind, RequestKind::CreateRepository { .. }))
        {
            Some(match kind {
                // A create request is approved on a plan with no policy, unless it
                // was sent back because the repository appeared: its page then
                // shows the live policy, and approving it again takes that on.
                RequestKind::CreateRepository { .. } if read.request.status != Status::NeedsReapproval => None,
                RequestKind::CreateRepository { .. } => {
                    self.existing_policy(name).await.map_err(|e| aws_unavailable("read the repository", e))?.flatten()
                }
                _ => self.live_policy(name).await.map_err(|e| aws_unavailable("read the policy", e))?,
            })
        } else {
            None
        };
        let now = self.now();
        let mut tx = self.db.write().await?;
        let row =
            db::get_request(&mut tx, id).await?.ok_or_else(|| Error::NotFound(format!("there is no request #{id}")))?;
        let approvals = db::approvals(&mut tx, id).await?;
        if action == AuditAction::ApplyRetried && row.request.status == Status::Failed {
            // A failed grant must not come back after a later revoke (or the reverse).
            if let Some((newer, status)) = db::newer_about_repository(&mut tx, name, id).await? {
                tx.rollback().await?;
                return Err(Error::Conflict(format!(
                    "request #{newer} about {name} came after this one (it is {status}); retrying would run an \
                     older decision over it. Submit a new request instead"
                )));
            }
        }
        let from = row.request.status;
        let next = match step(row.request, by, &approvals, now) {
            Ok(next) => next,
            Err(e) => {
                // Before recording the refusal, which is a write of its own.
                tx.rollback().await?;
                return Err(self.refused(by, e).await);
            }
        };
        let approving = action == AuditAction::RequestApproved;
        let breaking = action == AuditAction::BreakGlass;
        let decided_at = (next.status != from
            && (approving
                || breaking
                || action == AuditAction::RequestRejected
                || action == AuditAction::RequestWithdrawn))
            .then_some(now);
        if !db::save_decision(&mut tx, &next, from, decided_at).await? {
            // Only a bug gets here: the request was read in this transaction.
            return Err(Error::Conflict("the request changed while you were deciding; reload it".into()));
        }
        if approving {
            let approval = Approval { approver: by.id.clone(), at: now, comment: comment.clone() };
            db::insert_approval(&mut tx, id, &approval).await.map_err(|e| match &e {
                // The state machine refuses a second approval by the same approver first.
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    Error::Conflict("you have already approved this request; it needs another approver".into())
                }
                _ => Error::from(e),
            })?;
        }
        if next.status == Status::Approved {
            if let Some(policy) = &snapshot {
                db::set_approved_policy(&mut tx, id, policy.as_ref()).await?;
            }
        }
        if breaking {
            db::set_review_pending(&mut tx, id, true).await?;
        }
        let required = self.deployment.approval.rule(kind).required;
        let mut detail = comment.unwrap_or_default();
        if approving && required > 1 {
            let count = format!("approval {} of {required}", approvals.len() + 1);
            detail = if detail.is_empty() { count } else { format!("{count}: {detail}") };
        }
        if let Some(via) = by.via() {
            detail = if detail.is_empty() { format!("through {via}") } else { format!("{detail} (through {via})") };
        }
        let partial = approving && next.status == from;
        let told = match action {
            AuditAction::RequestApproved | AuditAction::BreakGlass => Some(NotifyEvent::RequestApproved),
            AuditAction::RequestRejected => Some(NotifyEvent::RequestRejected),
            _ => None,
        };
        if let Some(event) = told {
            let by_whom = if detail.is_empty() { format!("by {}", by.id) } else { format!("by {}: {detail}", by.id) };
            let what = if partial {
                "one approval of several, "
            } else if breaking {
                "break glass (applied without the quorum; another admin reviews it), "
            } else {
                ""
            };
            let notice = self.notice(event, &next, format!("{what}{by_whom}"));
            self.enqueue(&mut tx, &notice, Some(id), None).await?;
        }
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &by.id,
                action: if partial { AuditAction::ApprovalGiven } else { action },
                request_id: Some(id),
                repository: Some(name),
                detail,
                aws_request_ids: vec![],
            },
        )
        .await?;
        tx.commit().await?;
        if next.status == Status::Approved {
            self.wake.notify_one();
        }
        self.detail_from(by, self.load_view(id).await?).await
    }

    /// Closes pending requests that waited longer than the approval policy allows.
    pub async fn expire_pending(&self) -> Result<usize, Error> {
        let now = self.now();
        let limit = self.deployment.approval.pending_expiry_ms;
        let mut tx = self.db.write().await?;
        let old = db::pending_before(&mut tx, now.saturating_sub(limit)).await?;
        let mut n = 0;
        for row in old {
            let hours = limit / 3_600_000;
            let why = format!("expired: no decision within {hours} hours; submit it again if it is still needed");
            let name = row.request.kind.repository().to_string();
            let from = row.request.status;
            let expired = row.request.expire(now, why.clone())?;
            if db::save_decision(&mut tx, &expired, from, Some(now)).await? {
                let notice = self.notice(NotifyEvent::RequestExpired, &expired, why.clone());
                self.enqueue(&mut tx, &notice, Some(expired.id), None).await?;
                db::insert_event(
                    &mut tx,
                    &NewEvent {
                        at: now,
                        actor: SYSTEM_ACTOR,
                        action: AuditAction::RequestExpired,
                        request_id: Some(expired.id),
                        repository: Some(&name),
                        detail: why,
                        aws_request_ids: vec![],
                    },
                )
                .await?;
                n += 1;
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Revokes temporary grants whose end has passed: a revoke request made and
    /// approved by the system, applied by the worker like any other.
    pub async fn end_expired_grants(&self) -> Result<usize, Error> {
        let now = self.now();
        let mut conn = self.db.pool.acquire().await?;
        let ended = db::ended_grants(&mut conn, now).await?;
        drop(conn);
        let mut made = 0;
        for rec in ended {
            let Ok(name) = RepoName::parse_full(&self.deployment.namespace, &rec.name) else { continue };
            let detail = format!(
                "the temporary grant ended on {}; revoking production access",
                format_ms(rec.production_until.unwrap_or(now))
            );
            let kind = RequestKind::RevokeProduction { repository: name.clone() };
            let request = self.new_request(SYSTEM_ACTOR, kind, detail.clone(), Status::Approved);
            // In one transaction: requests still waiting for a decision on this repository
            // are rejected as superseded (they would otherwise block the revoke), then the
            // revoke is inserted, already approved by the system.
            let mut tx = self.db.write().await?;
            for waiting in db::awaiting_decision(&mut tx, name.as_str()).await? {
                let from = waiting.request.status;
                let why =
                    "superseded: the temporary grant ended and production access is being revoked first".to_string();
                let rejected = waiting.request.supersede(why.clone(), now)?;
                if db::save_decision(&mut tx, &rejected, from, Some(now)).await? {
                    db::insert_event(
                        &mut tx,
                        &NewEvent {
                            at: now,
                            actor: SYSTEM_ACTOR,
                            action: AuditAction::RequestRejected,
                            request_id: Some(rejected.id),
                            repository: Some(name.as_str()),
                            detail: why,
                            aws_request_ids: vec![],
                        },
                    )
                    .await?;
                }
            }
            match Self::insert_request_in(&mut tx, &request, detail).await {
                Ok(_) => {
                    tx.commit().await?;
                    made += 1;
                }
                Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if made > 0 {
            self.wake.notify_one();
        }
        Ok(made)
    }
}
