//! The use cases: submit, decide, apply, read, and keep repositories in their
//! approved state. Called by the server functions (through the `Portal`
//! port), the JSON API and the worker alike.
//!
//! Rules kept here: every state change goes through the domain state machine
//! and is written together with its audit event in ONE `BEGIN IMMEDIATE`
//! transaction, with a compare-and-set on the previous state; if the audit
//! event cannot be written, the change does not happen.
mod apply;
mod drift;

pub use apply::ApplyOutcome;

use crate::aws::{Registry, RegistryError};
use crate::clock::{format_ms, Clock};
use crate::db::{self, Db, EventRow, NewEvent, RequestRow};
use app::api::Portal;
use app::domain::approval::{Approval, ApprovalPolicy};
use app::domain::audit::AuditAction;
use app::domain::form::{AccessRequestInput, FieldError, RepositoryRequestInput};
use app::domain::name::{Namespace, RepoName};
use app::domain::plan::{self, Plan, Target};
use app::domain::policy;
use app::domain::principal::{Capability, Principal, TokenScope, SYSTEM_ACTOR};
use app::domain::request::{Request, RequestKind, Status, MAX_COMMENT};
use app::error::AppError;
use app::views::*;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::Notify;

/// Facts about the deployment that pages show and plans use.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub namespace: Namespace,
    pub target: Target,
    pub staging_account: Option<String>,
    pub local_sign_in: bool,
    pub oidc_sign_in: bool,
    pub approval: ApprovalPolicy,
    /// Longest life of an API token (days).
    pub token_max_days: u32,
}

pub struct PortalService {
    pub db: Db,
    pub registry: Arc<dyn Registry>,
    pub clock: Arc<dyn Clock>,
    pub deployment: Deployment,
    /// Wakes the worker when there is approved work.
    pub wake: Arc<Notify>,
    pub retry: RetryPolicy,
    /// (window start ms, events in it, events dropped since the last recorded one).
    anonymous_window: std::sync::Mutex<(i64, u32, u64)>,
    /// The last inventory read from ECR, and when (see `drift.rs`).
    inventory: drift::InventoryCache,
}

/// How temporary AWS failures are retried by the worker.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_ms: u64,
    pub max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_ms: 2_000, max_ms: 60_000 }
    }
}

impl RetryPolicy {
    /// Exponential backoff with jitter: between half and all of `base * 2^retries`, capped.
    pub fn delay_ms(&self, retries: u32) -> u64 {
        let full = self.base_ms.saturating_mul(1u64 << retries.min(20)).min(self.max_ms);
        let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * (full / 2) / 255;
        full / 2 + jitter
    }
}

/// Security events anyone can cause without signing in, recorded per minute at most.
pub const ANONYMOUS_EVENTS_PER_MINUTE: u32 = 120;

/// Logs an internal failure in full and gives the user only a reference.
pub fn internal(context: &str, err: impl std::fmt::Display) -> AppError {
    let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    tracing::error!(reference, "{context}: {err:#}");
    AppError::Internal(reference)
}

pub(crate) fn db_err(e: sqlx::Error) -> AppError {
    internal("database", e)
}

fn aws_unavailable(what: &str, e: RegistryError) -> AppError {
    match e {
        RegistryError::Transient(m) | RegistryError::Other(m) => {
            tracing::warn!("{what}: {m}");
            AppError::Unavailable(format!("could not {what} in ECR right now; nothing was changed, try again shortly"))
        }
        other => internal(what, other),
    }
}

fn event_view(e: EventRow) -> AuditEventView {
    let label = AuditAction::parse(&e.action).map(|a| a.label().to_string()).unwrap_or_else(|| e.action.clone());
    AuditEventView {
        id: e.id,
        at: format_ms(e.at),
        actor: e.actor,
        action: e.action,
        label,
        request_id: e.request_id,
        repository: e.repository,
        detail: e.detail,
        aws_request_ids: e.aws_request_ids,
    }
}

fn summary(r: &Request) -> RequestSummary {
    RequestSummary {
        id: r.id,
        kind: r.kind.as_str().into(),
        kind_label: r.kind.label().into(),
        repository: r.kind.repository().to_string(),
        requester: r.requester.clone(),
        status: r.status,
        created_at: format_ms(r.created_at),
        updated_at: format_ms(r.updated_at),
    }
}

fn clean_comment(comment: String) -> Result<Option<String>, AppError> {
    let c = comment.trim().to_string();
    if c.chars().count() > MAX_COMMENT {
        return Err(AppError::Invalid(vec![FieldError::new(
            "comment",
            format!("keep the comment under {MAX_COMMENT} characters"),
        )]));
    }
    Ok(Some(c).filter(|c| !c.is_empty()))
}

/// Two optional policies are the same when both are absent or equal as IAM compares them.
pub(crate) fn same_policy(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => policy::same(a, b),
        _ => false,
    }
}

impl PortalService {
    pub fn new(db: Db, registry: Arc<dyn Registry>, clock: Arc<dyn Clock>, deployment: Deployment) -> Self {
        Self {
            db,
            registry,
            clock,
            deployment,
            wake: Arc::new(Notify::new()),
            retry: RetryPolicy::default(),
            inventory: Default::default(),
            anonymous_window: std::sync::Mutex::new((0, 0, 0)),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Creates a session and records the sign-in, in one transaction.
    pub async fn start_session(
        &self,
        p: &Principal,
        id_hash: &str,
        now: i64,
        expires: i64,
        detail: String,
    ) -> Result<(), AppError> {
        let mut tx = self.db.write().await.map_err(db_err)?;
        db::upsert_user(&mut tx, p, now).await.map_err(db_err)?;
        db::insert_session(&mut tx, id_hash, &p.id, now, expires).await.map_err(db_err)?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &p.id,
                action: AuditAction::SignedIn,
                request_id: None,
                repository: None,
                detail,
                aws_request_ids: vec![],
            },
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// Ends a session on the server and records the sign-out, in one transaction.
    pub async fn end_session(&self, p: Option<&Principal>, id_hash: Option<&str>) -> Result<(), AppError> {
        let mut tx = self.db.write().await.map_err(db_err)?;
        if let Some(h) = id_hash {
            db::delete_session(&mut tx, h).await.map_err(db_err)?;
        }
        if let Some(p) = p {
            db::insert_event(
                &mut tx,
                &NewEvent {
                    at: self.now(),
                    actor: &p.id,
                    action: AuditAction::SignedOut,
                    request_id: None,
                    repository: None,
                    detail: String::new(),
                    aws_request_ids: vec![],
                },
            )
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    /// Notes that a session is in use (at most once a minute). Best effort.
    pub async fn touch_session(&self, id_hash: &str, now: i64) {
        let touch = async {
            let mut tx = self.db.write().await?;
            db::touch_session(&mut tx, id_hash, now).await?;
            tx.commit().await
        };
        if let Err(e) = touch.await {
            tracing::warn!("touching a session: {e}");
        }
    }

    async fn load(&self, id: i64) -> Result<RequestRow, AppError> {
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        db::get_request(&mut conn, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| AppError::NotFound(format!("there is no request #{id}")))
    }

    /// A request with its approvals, timeline and drift, in one read.
    async fn load_view(&self, id: i64) -> Result<db::RequestView, AppError> {
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        db::request_view(&mut conn, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| AppError::NotFound(format!("there is no request #{id}")))
    }

    /// The live policy of a repository, parsed.
    pub(crate) async fn live_policy(&self, name: &str) -> Result<Option<Value>, RegistryError> {
        let (text, _) = self.registry.get_policy(name).await?;
        policy::parse(text.as_deref()).map_err(|e| RegistryError::Other(e.to_string()))
    }

    /// Records a security event that belongs to no request (sign-in failures,
    /// denials, token use). Best effort: a failure to record is logged, and
    /// never turns a denial into something else.
    pub async fn security_event(&self, actor: &str, action: AuditAction, detail: String) {
        let event = NewEvent {
            at: self.now(),
            actor,
            action,
            request_id: None,
            repository: None,
            detail,
            aws_request_ids: vec![],
        };
        let write = async {
            let mut tx = self.db.write().await?;
            db::insert_event(&mut tx, &event).await?;
            tx.commit().await
        };
        if let Err(e) = write.await {
            tracing::error!("recording {}: {e}", action.as_str());
        }
    }

    /// A security event that anyone can cause without signing in (a bogus
    /// token, a forged callback, a cross-site post). Recorded like the others,
    /// but at most [`ANONYMOUS_EVENTS_PER_MINUTE`] a minute, so a flood cannot
    /// fill the audit trail or hold its write lock; the rest are counted in the
    /// log and summed up in the next recorded event.
    pub async fn anonymous_event(&self, actor: Option<&str>, action: AuditAction, detail: String) {
        let now = self.now();
        let dropped = {
            let mut w = self.anonymous_window.lock().unwrap_or_else(|p| p.into_inner());
            if now - w.0 >= 60_000 || now < w.0 {
                *w = (now, 0, w.2);
            }
            w.1 += 1;
            if w.1 > ANONYMOUS_EVENTS_PER_MINUTE {
                w.2 += 1;
                tracing::warn!("{}: {detail} (not recorded: over {ANONYMOUS_EVENTS_PER_MINUTE}/min)", action.as_str());
                return;
            }
            std::mem::take(&mut w.2)
        };
        let detail =
            if dropped > 0 { format!("{detail} (and {dropped} more not recorded, over the limit)") } else { detail };
        self.security_event(actor.unwrap_or("anonymous"), action, detail).await;
    }

    /// A refusal, recorded in the audit trail with who tried what.
    pub async fn deny(&self, by: &Principal, message: String) -> AppError {
        let via = by.via().map(|v| format!(" (through {v})")).unwrap_or_default();
        self.security_event(&by.id, AuditAction::AccessDenied, format!("{message}{via}")).await;
        AppError::Forbidden(message)
    }

    /// Checks one capability; a refusal is recorded. `what` completes "you cannot …".
    pub async fn authorize(&self, by: &Principal, c: Capability, what: &str) -> Result<(), AppError> {
        if by.can(c) {
            return Ok(());
        }
        let message = match (&by.token, by.role) {
            (Some(t), _) if t.scope == TokenScope::Submit => {
                format!("this API token can only submit requests and read them; it cannot {what}")
            }
            (Some(_), _) if c == Capability::ManageTokens => "API tokens cannot manage API tokens; sign in".into(),
            (_, app::domain::principal::Role::Auditor) => format!("auditors read everything but cannot {what}"),
            _ => format!("only admins can {what}"),
        };
        Err(self.deny(by, message).await)
    }

    /// Turns a refused decision into an error, recording refusals that are about rights.
    async fn refused(&self, by: &Principal, e: app::domain::request::TransitionError) -> AppError {
        let e = AppError::from(e);
        match e {
            AppError::Forbidden(m) => self.deny(by, m).await,
            other => other,
        }
    }

    /// Inserts a new request and its submission event (and, for system
    /// requests, the approval) in one transaction; wakes the worker for an
    /// approved one.
    async fn insert_request(&self, request: Request, detail: String) -> Result<i64, AppError> {
        let mut tx = self.db.write().await.map_err(db_err)?;
        let id = Self::insert_request_in(&mut tx, &request, detail).await?;
        tx.commit().await.map_err(db_err)?;
        if request.status == Status::Approved {
            self.wake.notify_one();
        }
        Ok(id)
    }

    /// Inserts a request and its events inside the caller's write transaction.
    async fn insert_request_in(
        tx: &mut sqlx::SqliteConnection,
        request: &Request,
        detail: String,
    ) -> Result<i64, AppError> {
        let name = request.kind.repository().to_string();
        let id = db::insert_request(&mut *tx, request).await.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                AppError::Conflict(format!("{name} already has an open request; see the requests list"))
            }
            _ => db_err(e),
        })?;
        db::insert_event(
            &mut *tx,
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
        .await
        .map_err(db_err)?;
        if request.status == Status::Approved {
            db::insert_event(
                &mut *tx,
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
            .await
            .map_err(db_err)?;
        }
        Ok(id)
    }

    fn new_request(&self, requester: &str, kind: RequestKind, justification: String, status: Status) -> Request {
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

    /// The plan of a request: from the snapshot taken at approval once approved,
    /// from the live state while it waits for a decision.
    pub async fn plan_for(&self, row: &RequestRow) -> Plan {
        let target = &self.deployment.target;
        let r = &row.request;
        let snapshot = if r.status.is_awaiting_decision() { None } else { row.approved_policy.clone() };
        match &r.kind {
            RequestKind::CreateRepository { spec, grant_production } => {
                plan::for_new_repository(spec, *grant_production, target)
            }
            RequestKind::GrantProduction { repository, .. } | RequestKind::RevokeProduction { repository } => {
                let grant = matches!(r.kind, RequestKind::GrantProduction { .. });
                let before = match snapshot {
                    Some(p) => p,
                    None => match self.live_policy(repository.as_str()).await {
                        Ok(p) => p,
                        Err(e) => {
                            return Plan {
                                steps: vec![],
                                policy: None,
                                blocked: Some({
                                    tracing::warn!("reading the policy of {repository}: {e}");
                                    "could not read the live policy from ECR right now; reload to try again".to_string()
                                }),
                            }
                        }
                    },
                };
                plan::for_access(repository.as_str(), before.as_ref(), grant, target)
            }
            RequestKind::RestoreRepository { repository } => self.restore_plan(repository, snapshot).await,
        }
    }

    /// Requesters read their own requests; readers of all requests read any.
    async fn may_read(&self, by: &Principal, r: &Request) -> Result<(), AppError> {
        if r.requester != by.id && !by.can(Capability::ReadAllRequests) {
            let id = r.id;
            return Err(self.deny(by, format!("request #{id} is someone else's; you can see your own requests")).await);
        }
        Ok(())
    }

    /// The request page's data from a request's [`db::RequestView`] (with its plan).
    async fn detail_from(&self, by: &Principal, view: db::RequestView) -> Result<RequestDetail, AppError> {
        let db::RequestView { row, approvals, timeline, drift } = view;
        self.may_read(by, &row.request).await?;
        let r = &row.request;
        let plan = self.plan_for(&row).await;
        let timeline = timeline.into_iter().map(event_view).collect();
        let rule = self.deployment.approval.rule(&r.kind);
        let approve_blocked = if r.status.is_awaiting_decision() {
            r.check_decision(by, "approved", &rule, &approvals)
                .err()
                .map(|e| e.to_string())
                .or_else(|| plan.blocked.clone())
        } else {
            None
        };
        let expires_at = (r.status == Status::Pending)
            .then(|| format_ms(r.created_at.saturating_add(self.deployment.approval.pending_expiry_ms)));
        let until = match &r.kind {
            RequestKind::GrantProduction { until: Some(t), .. } => Some(format_ms(*t)),
            _ => None,
        };
        Ok(RequestDetail {
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
            can_retry: by.can(Capability::Operate) && r.status == Status::Failed,
            approvals: approvals
                .into_iter()
                .map(|a| ApprovalView { approver: a.approver, at: format_ms(a.at), comment: a.comment })
                .collect(),
            approvals_required: rule.required,
            approver_groups: rule.groups.clone(),
            expires_at,
            drift,
        })
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
    ) -> Result<RequestDetail, AppError> {
        let id = read.request.id;
        let kind = &read.request.kind;
        let name = kind.repository().as_str();
        // The policy an approval is based on is read before the transaction (an AWS call).
        let snapshot = if action == AuditAction::RequestApproved && kind.touches_policy() {
            let exists = match kind {
                RequestKind::CreateRepository { .. } => {
                    self.registry.describe(name).await.map_err(|e| aws_unavailable("read the repository", e))?.is_some()
                }
                _ => true,
            };
            if exists {
                Some(self.live_policy(name).await.map_err(|e| aws_unavailable("read the policy", e))?)
            } else {
                Some(None)
            }
        } else {
            None
        };
        let now = self.now();
        let mut tx = self.db.write().await.map_err(db_err)?;
        let row = db::get_request(&mut tx, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| AppError::NotFound(format!("there is no request #{id}")))?;
        let approvals = db::approvals(&mut tx, id).await.map_err(db_err)?;
        let from = row.request.status;
        let next = match step(row.request, by, &approvals, now) {
            Ok(next) => next,
            Err(e) => {
                // Before recording the refusal, which is a write of its own.
                tx.rollback().await.map_err(db_err)?;
                return Err(self.refused(by, e).await);
            }
        };
        let approving = action == AuditAction::RequestApproved;
        let decided_at = (next.status != from && (approving || action == AuditAction::RequestRejected)).then_some(now);
        if !db::save_decision(&mut tx, &next, from, decided_at).await.map_err(db_err)? {
            // Only a bug gets here: the request was read in this transaction.
            return Err(AppError::Conflict("the request changed while you were deciding; reload it".into()));
        }
        if approving {
            let approval = Approval { approver: by.id.clone(), at: now, comment: comment.clone() };
            db::insert_approval(&mut tx, id, &approval).await.map_err(|e| match &e {
                // The state machine refuses a second approval by the same approver first.
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    AppError::Conflict("you have already approved this request; it needs another approver".into())
                }
                _ => db_err(e),
            })?;
        }
        if next.status == Status::Approved {
            if let Some(policy) = &snapshot {
                db::set_approved_policy(&mut tx, id, policy.as_ref()).await.map_err(db_err)?;
            }
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
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        if next.status == Status::Approved {
            self.wake.notify_one();
        }
        self.detail_from(by, self.load_view(id).await?).await
    }

    fn token_view(&self, t: db::TokenRow) -> TokenView {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at <= self.now() {
            "expired"
        } else {
            "active"
        };
        TokenView {
            id: t.id,
            name: t.name,
            scope: t.scope,
            created_at: format_ms(t.created_at),
            expires_at: format_ms(t.expires_at),
            last_used_at: t.last_used_at.map(format_ms),
            state: state.into(),
        }
    }

    /// The principal an API token acts for, or why it cannot be used (never echoing the secret).
    pub async fn authenticate_token(&self, secret: &str) -> Result<Principal, String> {
        let found = db::token_by_hash(&self.db.pool, &crate::auth::hash(secret)).await.map_err(|e| {
            tracing::error!("reading API tokens: {e}");
            "API tokens cannot be checked right now".to_string()
        })?;
        let Some((t, mut p)) = found else { return Err("unknown API token".into()) };
        let now = self.now();
        if t.revoked_at.is_some() {
            return Err(format!("API token #{} was revoked", t.id));
        }
        if t.expires_at <= now {
            return Err(format!("API token #{} expired on {}", t.id, format_ms(t.expires_at)));
        }
        if t.last_used_at.is_none_or(|at| now - at > 60_000) {
            let id = t.id;
            let touch = async {
                let mut tx = self.db.write().await?;
                db::touch_token(&mut tx, id, now).await?;
                tx.commit().await
            };
            if let Err(e) = touch.await {
                tracing::warn!("touching an API token: {e}");
            }
        }
        p.token = Some(app::domain::principal::TokenUse { id: t.id, name: t.name, scope: t.scope });
        Ok(p)
    }

    /// Closes pending requests that waited longer than the approval policy allows.
    pub async fn expire_pending(&self) -> Result<usize, AppError> {
        let now = self.now();
        let limit = self.deployment.approval.pending_expiry_ms;
        let mut tx = self.db.write().await.map_err(db_err)?;
        let old = db::pending_before(&mut tx, now.saturating_sub(limit)).await.map_err(db_err)?;
        let mut n = 0;
        for row in old {
            let hours = limit / 3_600_000;
            let why = format!("expired: no decision within {hours} hours; submit it again if it is still needed");
            let name = row.request.kind.repository().to_string();
            let expired = row.request.expire(now, why.clone())?;
            if db::save_decision(&mut tx, &expired, Status::Pending, Some(now)).await.map_err(db_err)? {
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
                .await
                .map_err(db_err)?;
                n += 1;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(n)
    }

    /// Revokes temporary grants whose end has passed: a revoke request made and
    /// approved by the system, applied by the worker like any other.
    pub async fn end_expired_grants(&self) -> Result<usize, AppError> {
        let now = self.now();
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        let ended = db::ended_grants(&mut conn, now).await.map_err(db_err)?;
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
            let mut tx = self.db.write().await.map_err(db_err)?;
            for waiting in db::awaiting_decision(&mut tx, name.as_str()).await.map_err(db_err)? {
                let from = waiting.request.status;
                let why =
                    "superseded: the temporary grant ended and production access is being revoked first".to_string();
                let rejected = waiting.request.supersede(why.clone(), now)?;
                if db::save_decision(&mut tx, &rejected, from, Some(now)).await.map_err(db_err)? {
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
                    .await
                    .map_err(db_err)?;
                }
            }
            match Self::insert_request_in(&mut tx, &request, detail).await {
                Ok(_) => {
                    tx.commit().await.map_err(db_err)?;
                    made += 1;
                }
                Err(AppError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if made > 0 {
            self.wake.notify_one();
        }
        Ok(made)
    }
}

#[async_trait::async_trait]
impl Portal for PortalService {
    fn info(&self, user: Option<Principal>) -> PortalInfo {
        PortalInfo {
            namespace: self.deployment.namespace.to_string(),
            region: self.deployment.target.region.clone(),
            staging_account: self.deployment.staging_account.clone(),
            production_account: self.deployment.target.production_account.clone(),
            local_sign_in: self.deployment.local_sign_in,
            oidc_sign_in: self.deployment.oidc_sign_in,
            user,
        }
    }

    async fn submit(&self, by: &Principal, input: RepositoryRequestInput) -> Result<i64, AppError> {
        self.authorize(by, Capability::SubmitRequest, "submit requests").await?;
        let parsed = input.parse(&self.deployment.namespace).map_err(AppError::Invalid)?;
        if parsed.grant_production && self.deployment.target.production_account.is_none() {
            return Err(AppError::Invalid(vec![FieldError::new(
                "grant_production",
                "the production account is not configured, so access cannot be granted yet",
            )]));
        }
        let name = parsed.spec.name.clone();
        match self.registry.describe(name.as_str()).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                return Err(AppError::Conflict(format!("{name} already exists in ECR; choose another name")))
            }
            Err(e) => return Err(aws_unavailable(&format!("check whether {name} exists"), e)),
        }
        let kind = RequestKind::CreateRepository { spec: parsed.spec, grant_production: parsed.grant_production };
        let request = self.new_request(&by.id, kind, parsed.justification, Status::Pending);
        self.insert_request(request, by.via().map(|v| format!("through {v}")).unwrap_or_default()).await
    }

    async fn submit_access(&self, by: &Principal, input: AccessRequestInput) -> Result<i64, AppError> {
        self.authorize(by, Capability::SubmitRequest, "submit requests").await?;
        let parsed = input.parse(&self.deployment.namespace, self.now()).map_err(AppError::Invalid)?;
        let name = parsed.repository.clone();
        if parsed.grant && self.deployment.target.production_account.is_none() {
            return Err(AppError::Conflict(
                "the production account is not configured, so access cannot be granted".into(),
            ));
        }
        match self.registry.describe(name.as_str()).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(AppError::Invalid(vec![FieldError::new(
                    "repository",
                    format!("there is no repository {name} in ECR"),
                )]))
            }
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

    async fn list_requests(
        &self,
        by: &Principal,
        status: Option<Status>,
        mine: bool,
        page: RequestsPage,
    ) -> Result<Vec<RequestSummary>, AppError> {
        self.authorize(by, Capability::ReadOwnRequests, "read requests").await?;
        // Without the right to read everyone's, the list is one's own.
        let requester = (mine || !by.can(Capability::ReadAllRequests)).then_some(by.id.as_str());
        let rows = db::list_requests(&self.db.pool, status, requester, page.before, i64::from(page.limit()))
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(summary).collect())
    }

    async fn request_detail(&self, by: &Principal, id: i64) -> Result<RequestDetail, AppError> {
        self.authorize(by, Capability::ReadOwnRequests, "read requests").await?;
        let view = self.load_view(id).await?;
        self.detail_from(by, view).await
    }

    async fn request_status(&self, by: &Principal, id: i64) -> Result<Status, AppError> {
        self.authorize(by, Capability::ReadOwnRequests, "read requests").await?;
        let row = self.load(id).await?;
        self.may_read(by, &row.request).await?;
        Ok(row.request.status)
    }

    async fn approve(&self, by: &Principal, id: i64, comment: String) -> Result<RequestDetail, AppError> {
        self.authorize(by, Capability::Decide, "approve requests").await?;
        let comment = clean_comment(comment)?;
        let view = self.load_view(id).await?;
        let rule = self.deployment.approval.rule(&view.row.request.kind);
        // A blocked plan is refused before the transaction, unless this
        // approval would be refused anyway (the transaction says why).
        if view.row.request.status.is_awaiting_decision() {
            if let Some(why) = self.plan_for(&view.row).await.blocked {
                if view.row.request.check_decision(by, "approved", &rule, &view.approvals).is_ok() {
                    return Err(AppError::Conflict(format!("this plan cannot be applied: {why}")));
                }
            }
        }
        let c = comment.clone();
        self.decide(by, &view.row, AuditAction::RequestApproved, comment, move |r, by, approvals, now| {
            r.approve(by, &rule, approvals, c.clone(), now)
        })
        .await
    }

    async fn reject(&self, by: &Principal, id: i64, comment: String) -> Result<RequestDetail, AppError> {
        self.authorize(by, Capability::Decide, "reject requests").await?;
        let comment = clean_comment(comment)?;
        let read = self.load(id).await?;
        let rule = self.deployment.approval.rule(&read.request.kind);
        let c = comment.clone();
        self.decide(by, &read, AuditAction::RequestRejected, comment, move |r, by, _, now| {
            r.reject(by, &rule, c.clone(), now)
        })
        .await
    }

    async fn retry(&self, by: &Principal, id: i64) -> Result<RequestDetail, AppError> {
        self.authorize(by, Capability::Operate, "retry applies").await?;
        let read = self.load(id).await?;
        self.decide(by, &read, AuditAction::ApplyRetried, None, |r, by, _, now| r.retry(by, now)).await
    }

    async fn repositories(&self, by: &Principal, query: RepositoriesQuery) -> Result<RepositoriesPage, AppError> {
        self.authorize(by, Capability::ReadRepositories, "see the repositories").await?;
        self.inventory(&query).await
    }

    async fn audit(&self, by: &Principal, query: AuditQuery) -> Result<AuditPage, AppError> {
        self.authorize(by, Capability::ReadAudit, "read the audit trail").await?;
        let filter = db::filter_from_query(&query, self.deployment.namespace.as_str())
            .map_err(|e| AppError::Invalid(vec![e]))?;
        if let Some(a) = &filter.action {
            if AuditAction::parse(a).is_none() {
                return Err(AppError::Invalid(vec![FieldError::new("action", format!("unknown action `{a}`"))]));
            }
        }
        let limit = i64::from(query.limit.unwrap_or(50).clamp(1, 200));
        let rows = db::events_page(&self.db.pool, &filter, query.before, query.after, limit).await.map_err(db_err)?;
        let (older, newer) = match (rows.first(), rows.last()) {
            (Some(first), Some(last)) => {
                let older = db::events_exist_beyond(&self.db.pool, &filter, last.id, true).await.map_err(db_err)?;
                let newer = db::events_exist_beyond(&self.db.pool, &filter, first.id, false).await.map_err(db_err)?;
                (older.then_some(last.id), newer.then_some(first.id))
            }
            _ => (None, None),
        };
        Ok(AuditPage { events: rows.into_iter().map(event_view).collect(), older, newer })
    }

    async fn verify_audit(&self, by: &Principal) -> Result<AuditVerification, AppError> {
        self.authorize(by, Capability::ReadAudit, "verify the audit trail").await?;
        let v = crate::audit::verify(&self.db.pool).await.map_err(db_err)?;
        Ok(AuditVerification {
            intact: v.intact(),
            events: v.events,
            head: v.head,
            broken_at: v.broken_at,
            reason: v.reason,
            checked_at: format_ms(self.now()),
        })
    }

    async fn adopt(&self, by: &Principal, repository: String) -> Result<RepositoryView, AppError> {
        self.authorize(by, Capability::Operate, "adopt repositories").await?;
        self.adopt_repository(by, &repository).await
    }

    async fn check_drift(&self, by: &Principal, repository: Option<String>) -> Result<DriftSummary, AppError> {
        self.authorize(by, Capability::Operate, "run drift checks").await?;
        let only = repository
            .map(|n| {
                RepoName::parse(&self.deployment.namespace, &n)
                    .map_err(|e| AppError::Invalid(vec![FieldError::new("repository", e.to_string())]))
            })
            .transpose()?;
        let summary = self.run_drift_check(&by.id, only.as_ref()).await?;
        // The admin asked for the live state: read it now.
        match &only {
            Some(name) => self.refresh_repository(name.as_str()).await,
            None => {
                self.refresh_inventory().await?;
            }
        }
        Ok(summary)
    }

    async fn accept_drift(&self, by: &Principal, repository: String) -> Result<RepositoryView, AppError> {
        self.authorize(by, Capability::Operate, "accept the live state").await?;
        self.accept_live(by, &repository).await
    }

    async fn request_restore(
        &self,
        by: &Principal,
        repository: String,
        justification: String,
    ) -> Result<i64, AppError> {
        self.authorize(by, Capability::Operate, "request a restore").await?;
        let name = RepoName::parse(&self.deployment.namespace, &repository)
            .map_err(|e| AppError::Invalid(vec![FieldError::new("repository", e.to_string())]))?;
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        if db::get_record(&mut conn, name.as_str()).await.map_err(db_err)?.is_none() {
            return Err(AppError::NotFound(format!("{name} is not in the portal's records; adopt it first")));
        }
        drop(conn);
        let justification = Some(justification.trim().to_string())
            .filter(|j| !j.is_empty())
            .unwrap_or_else(|| "Put the repository back to its approved state".into());
        let request = self.new_request(
            &by.id,
            RequestKind::RestoreRepository { repository: name },
            justification,
            Status::Pending,
        );
        self.insert_request(request, by.via().map(|v| format!("through {v}")).unwrap_or_default()).await
    }

    async fn list_tokens(&self, by: &Principal) -> Result<Vec<TokenView>, AppError> {
        self.authorize(by, Capability::ManageTokens, "manage API tokens").await?;
        let rows = db::tokens_of(&self.db.pool, &by.id).await.map_err(db_err)?;
        Ok(rows.into_iter().map(|t| self.token_view(t)).collect())
    }

    async fn create_token(
        &self,
        by: &Principal,
        name: String,
        scope: String,
        days: u32,
    ) -> Result<CreatedToken, AppError> {
        self.authorize(by, Capability::ManageTokens, "manage API tokens").await?;
        let name = name.trim().to_string();
        let mut errors = vec![];
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            errors.push(FieldError::new("name", "name the token in 1 to 64 characters, e.g. ci-deploy"));
        }
        let scope = TokenScope::parse(&scope);
        if scope.is_none() {
            errors.push(FieldError::new("scope", "choose `submit` (submit requests only) or `user` (act as you)"));
        }
        let max = self.deployment.token_max_days;
        if days == 0 || days > max {
            errors.push(FieldError::new("days", format!("a token lives 1 to {max} days")));
        }
        let Some(scope) = scope.filter(|_| errors.is_empty()) else { return Err(AppError::Invalid(errors)) };
        let secret = crate::auth::new_token_secret();
        let now = self.now();
        let expires = now + i64::from(days) * 86_400_000;
        let mut tx = self.db.write().await.map_err(db_err)?;
        let id = db::insert_token(&mut tx, &crate::auth::hash(&secret), &by.id, &name, scope, now, expires)
            .await
            .map_err(db_err)?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &by.id,
                action: AuditAction::TokenCreated,
                request_id: None,
                repository: None,
                detail: format!("API token #{id} ({name}): {}, until {}", scope.label(), format_ms(expires)),
                aws_request_ids: vec![],
            },
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let token = db::TokenRow {
            id,
            name,
            scope,
            created_at: now,
            expires_at: expires,
            revoked_at: None,
            last_used_at: None,
        };
        Ok(CreatedToken { token: self.token_view(token), secret })
    }

    async fn revoke_token(&self, by: &Principal, id: i64) -> Result<Vec<TokenView>, AppError> {
        self.authorize(by, Capability::ManageTokens, "manage API tokens").await?;
        let now = self.now();
        let mut tx = self.db.write().await.map_err(db_err)?;
        if !db::revoke_token(&mut tx, &by.id, id, now).await.map_err(db_err)? {
            return Err(AppError::NotFound(format!("you have no active API token #{id}")));
        }
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &by.id,
                action: AuditAction::TokenRevoked,
                request_id: None,
                repository: None,
                detail: format!("API token #{id}"),
                aws_request_ids: vec![],
            },
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.list_tokens(by).await
    }
}
