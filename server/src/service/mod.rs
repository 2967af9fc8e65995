//! The use cases: submit, decide, apply, and read. Called by the server
//! functions (through the `Portal` port), the JSON API and the worker alike.
//!
//! Rules kept here: every state change goes through the domain state machine
//! and is written together with its audit event in ONE `BEGIN IMMEDIATE`
//! transaction, with a compare-and-set on the previous state; if the audit
//! event cannot be written, the change does not happen.
mod apply;

pub use apply::ApplyOutcome;

use crate::aws::{Registry, RegistryError};
use crate::clock::{format_ms, Clock};
use crate::db::{self, Db, EventRow, NewEvent};
use app::api::Portal;
use app::domain::audit::AuditAction;
use app::domain::form::{FieldError, RepositoryRequestInput};
use app::domain::name::Namespace;
use app::domain::plan::{self, Target};
use app::domain::principal::Principal;
use app::domain::request::{Request, Status, MAX_COMMENT};
use app::error::AppError;
use app::views::*;
use std::sync::Arc;
use tokio::sync::Notify;

/// Facts about the deployment that pages show.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub namespace: Namespace,
    pub target: Target,
    pub staging_account: Option<String>,
    pub production_account: Option<String>,
    pub local_sign_in: bool,
}

pub struct PortalService {
    pub db: Db,
    pub registry: Arc<dyn Registry>,
    pub clock: Arc<dyn Clock>,
    pub deployment: Deployment,
    /// Wakes the worker when there is approved work.
    pub wake: Arc<Notify>,
}

/// Logs an internal failure in full and gives the user only a reference.
pub fn internal(context: &str, err: impl std::fmt::Display) -> AppError {
    let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    tracing::error!(reference, "{context}: {err:#}");
    AppError::Internal(reference)
}

fn db_err(e: sqlx::Error) -> AppError {
    internal("database", e)
}

fn event_view(e: EventRow) -> AuditEventView {
    let label = AuditAction::parse(&e.action)
        .map(|a| a.label().to_string())
        .unwrap_or_else(|| e.action.clone());
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
        kind: "create_repository".into(),
        repository: r.spec.name.to_string(),
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

impl PortalService {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Records a sign-in or sign-out (one event, its own transaction).
    pub async fn record(&self, actor: &str, action: AuditAction, detail: String) -> Result<(), AppError> {
        let mut tx = self.db.write().await.map_err(db_err)?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: self.now(),
                actor,
                action,
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

    async fn load(&self, id: i64) -> Result<db::RequestRow, AppError> {
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        db::get_request(&mut conn, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| AppError::NotFound(format!("there is no request #{id}")))
    }

    /// Applies one decision through the state machine, with its audit event, atomically.
    async fn decide(
        &self,
        by: &Principal,
        id: i64,
        action: AuditAction,
        detail: String,
        step: impl FnOnce(Request, i64) -> Result<Request, app::domain::request::TransitionError>,
    ) -> Result<RequestDetail, AppError> {
        let now = self.now();
        let mut tx = self.db.write().await.map_err(db_err)?;
        let row = db::get_request(&mut tx, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| AppError::NotFound(format!("there is no request #{id}")))?;
        let from = row.request.status;
        let next = step(row.request, now)?;
        let saved = db::save_decision(&mut tx, &next, from, now)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => AppError::Conflict(format!(
                    "{} already has an open request; finish that one first",
                    next.spec.name
                )),
                _ => db_err(e),
            })?;
        if !saved {
            return Err(AppError::Conflict(
                "the request changed while you were deciding; reload it".into(),
            ));
        }
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &by.id,
                action,
                request_id: Some(id),
                repository: Some(next.spec.name.as_str()),
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
        self.request_detail(by, id).await
    }
}

#[async_trait::async_trait]
impl Portal for PortalService {
    fn info(&self, user: Option<Principal>) -> PortalInfo {
        PortalInfo {
            namespace: self.deployment.namespace.to_string(),
            region: self.deployment.target.region.clone(),
            staging_account: self.deployment.staging_account.clone(),
            production_account: self.deployment.production_account.clone(),
            local_sign_in: self.deployment.local_sign_in,
            user,
        }
    }

    async fn submit(&self, by: &Principal, input: RepositoryRequestInput) -> Result<i64, AppError> {
        let parsed = input.parse(&self.deployment.namespace).map_err(AppError::Invalid)?;
        let name = parsed.spec.name.clone();
        match self.registry.describe(name.as_str()).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                return Err(AppError::Conflict(format!(
                    "{name} already exists in ECR; choose another name"
                )));
            }
            Err(RegistryError::Transient(e)) | Err(RegistryError::Other(e)) => {
                tracing::warn!("checking {name} in ECR: {e}");
                return Err(AppError::Unavailable(format!(
                    "could not check whether {name} exists in ECR; nothing was submitted, try again shortly"
                )));
            }
            Err(e) => return Err(internal("checking ECR", e)),
        }
        let now = self.now();
        let request = Request {
            id: 0,
            spec: parsed.spec,
            justification: parsed.justification,
            requester: by.id.clone(),
            status: Status::Pending,
            created_at: now,
            updated_at: now,
            decided_by: None,
            decision_comment: None,
            failure: None,
            attempts: 0,
        };
        let mut tx = self.db.write().await.map_err(db_err)?;
        let id = db::insert_request(&mut tx, &request).await.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                AppError::Conflict(format!("{name} already has an open request; see the requests list"))
            }
            _ => db_err(e),
        })?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &by.id,
                action: AuditAction::RequestSubmitted,
                request_id: Some(id),
                repository: Some(name.as_str()),
                detail: String::new(),
                aws_request_ids: vec![],
            },
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn list_requests(
        &self,
        by: &Principal,
        status: Option<Status>,
        mine: bool,
    ) -> Result<Vec<RequestSummary>, AppError> {
        let requester = mine.then_some(by.id.as_str());
        let rows = db::list_requests(&self.db.pool, status, requester, 500)
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(summary).collect())
    }

    async fn request_detail(&self, by: &Principal, id: i64) -> Result<RequestDetail, AppError> {
        let row = self.load(id).await?;
        let r = &row.request;
        let timeline = db::events_for_request(&self.db.pool, id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(event_view)
            .collect();
        let approve_blocked = match r.check_decision(by, "approved") {
            Ok(()) => None,
            Err(e) if r.status == Status::Pending => Some(e.to_string()),
            Err(_) => Some(String::new()),
        }
        .filter(|s| !s.is_empty());
        Ok(RequestDetail {
            summary: summary(r),
            spec: r.spec.clone(),
            justification: r.justification.clone(),
            decided_by: r.decided_by.clone(),
            decision_comment: r.decision_comment.clone(),
            failure: r.failure.clone(),
            attempts: r.attempts,
            plan: plan::for_new_repository(&r.spec, &self.deployment.target),
            result: row.result.clone(),
            timeline,
            approve_blocked: if r.status == Status::Pending {
                approve_blocked
            } else {
                None
            },
            can_reject: r.check_decision(by, "rejected").is_ok(),
            can_retry: by.is_admin() && r.status == Status::Failed,
        })
    }

    async fn approve(&self, by: &Principal, id: i64, comment: String) -> Result<RequestDetail, AppError> {
        let comment = clean_comment(comment)?;
        let detail = comment.clone().unwrap_or_default();
        self.decide(by, id, AuditAction::RequestApproved, detail, |r, now| {
            r.approve(by, comment, now)
        })
        .await
    }

    async fn reject(&self, by: &Principal, id: i64, comment: String) -> Result<RequestDetail, AppError> {
        let comment = clean_comment(comment)?;
        let detail = comment.clone().unwrap_or_default();
        self.decide(by, id, AuditAction::RequestRejected, detail, |r, now| {
            r.reject(by, comment, now)
        })
        .await
    }

    async fn retry(&self, by: &Principal, id: i64) -> Result<RequestDetail, AppError> {
        self.decide(by, id, AuditAction::ApplyRetried, String::new(), |r, now| {
            r.retry(by, now)
        })
        .await
    }

    async fn repositories(&self, _by: &Principal) -> Result<Vec<RepositoryView>, AppError> {
        let prefix = format!("{}/", self.deployment.namespace);
        let live = self.registry.list(&prefix).await.map_err(|e| match e {
            RegistryError::Transient(_) => {
                AppError::Unavailable("ECR is not answering right now; try again shortly".into())
            }
            other => internal("listing repositories", other),
        })?;
        let owners: std::collections::HashMap<String, i64> = db::applied_requests(&self.db.pool)
            .await
            .map_err(db_err)?
            .into_iter()
            .collect();
        Ok(live
            .into_iter()
            .map(|r| RepositoryView {
                request_id: owners.get(&r.name).copied(),
                name: r.name,
                uri: r.uri,
                arn: r.arn,
                created_at: format_ms(r.created_at_ms),
                tag_mutability: r.tag_mutability.to_string(),
                scan_on_push: r.scan_on_push,
                encryption: r.encryption.to_string(),
            })
            .collect())
    }

    async fn audit(&self, _by: &Principal, query: AuditQuery) -> Result<AuditPage, AppError> {
        let filter = db::filter_from_query(&query, self.deployment.namespace.as_str())
            .map_err(|e| AppError::Invalid(vec![e]))?;
        if let Some(a) = &filter.action {
            if AuditAction::parse(a).is_none() {
                return Err(AppError::Invalid(vec![FieldError::new(
                    "action",
                    format!("unknown action `{a}`"),
                )]));
            }
        }
        let limit = i64::from(query.limit.unwrap_or(50).clamp(1, 200));
        let rows = db::events_page(&self.db.pool, &filter, query.before, query.after, limit)
            .await
            .map_err(db_err)?;
        let (older, newer) = match (rows.first(), rows.last()) {
            (Some(first), Some(last)) => {
                let older = db::events_exist_beyond(&self.db.pool, &filter, last.id, true)
                    .await
                    .map_err(db_err)?;
                let newer = db::events_exist_beyond(&self.db.pool, &filter, first.id, false)
                    .await
                    .map_err(db_err)?;
                (older.then_some(last.id), newer.then_some(first.id))
            }
            _ => (None, None),
        };
        Ok(AuditPage {
            events: rows.into_iter().map(event_view).collect(),
            older,
            newer,
        })
    }
}
