//! The JSON API for automation (`/api/v1`), mirroring the UI through the same
//! service. Errors are answered by `error.rs`.
//!
//! Every route is registered through `utoipa-axum` from its handler's `#[utoipa::path]`,
//! so a route cannot exist without its entry in the OpenAPI document
//! (`GET /api/v1/openapi.json`); the schemas come from the view and input types themselves.
use super::error::{ApiError, ApiResult, ErrorResponses};
use super::state::AppState;
use app::api::Portal;
use app::domain::form::{AccessRequestInput, RepositoryRequestInput};
use app::domain::principal::Principal;
use app::domain::request::Status;
use app::error::AppError;
use app::views::{AuditQuery, DriftSummary, RepositoryView, RequestDetail, RequestSummary};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

fn user(u: Option<Extension<Principal>>) -> Result<Principal, ApiError> {
    u.map(|Extension(p)| p).ok_or(ApiError(AppError::Unauthenticated))
}

fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        ApiError(match e.classify() {
            Category::Data => AppError::Invalid(vec![app::domain::form::FieldError::new("body", e.to_string())]),
            _ => AppError::BadRequest(format!("the body is not valid JSON: {e}")),
        })
    })
}

fn from_value<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    json_body(&Bytes::from(v.to_string()))
}

fn query<T: DeserializeOwned>(raw: Option<String>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError(AppError::BadRequest(format!("query string: {e}"))))
}

/// The body of `POST /api/v1/requests`: `kind` picks the request (`create_repository`
/// when absent); the other fields are that kind's.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(dead_code)] // Only its documentation is used; `submit` reads the body by `kind`.
enum SubmitBody {
    CreateRepository(RepositoryRequestInput),
    UpdateRepository(app::domain::form::UpdateRequestInput),
    GrantProduction(AccessBody),
    RevokeProduction(AccessBody),
    DeleteRepository(app::domain::form::DeleteRequestInput),
    PromoteImage(app::domain::form::PromoteRequestInput),
}

/// A production grant or revoke (`kind` says which).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct AccessBody {
    /// The repository (with or without the namespace prefix).
    repository: String,
    /// A grant's last day, `YYYY-MM-DD` (UTC); it is revoked when the day has passed.
    #[serde(default)]
    until: Option<String>,
    justification: String,
}

/// Files a request; it waits for approval. `kind` picks the request: `create_repository`
/// (default), `update_repository`, `grant_production`, `revoke_production`,
/// `delete_repository` or `promote_image`.
#[utoipa::path(post, path = "/api/v1/requests", tag = "requests", request_body = SubmitBody,
    responses((status = 201, description = "Filed; `location` names it", body = RequestDetail,
        headers(("location" = String, description = "`/api/v1/requests/{id}`"))), ErrorResponses))]
async fn submit(State(s): State<AppState>, u: Option<Extension<Principal>>, body: Bytes) -> ApiResult<Response> {
    let by = user(u)?;
    let mut value: serde_json::Value = json_body(&body)?;
    let kind = match value.as_object_mut().and_then(|o| o.remove("kind")) {
        None => "create_repository".to_string(),
        Some(serde_json::Value::String(k)) => k,
        Some(_) => return Err(ApiError(AppError::BadRequest("`kind` must be a string".into()))),
    };
    let id = match kind.as_str() {
        "create_repository" => {
            let input: RepositoryRequestInput = from_value(value)?;
            s.service.submit(&by, input).await?
        }
        "delete_repository" => {
            let input: app::domain::form::DeleteRequestInput = from_value(value)?;
            s.service.submit_delete(&by, input).await?
        }
        "promote_image" => {
            let input: app::domain::form::PromoteRequestInput = from_value(value)?;
            s.service.submit_promote(&by, input).await?
        }
        "update_repository" => {
            let input: app::domain::form::UpdateRequestInput = from_value(value)?;
            s.service.submit_update(&by, input).await?
        }
        "grant_production" | "revoke_production" => {
            if let Some(o) = value.as_object_mut() {
                o.insert("action".into(), (if kind == "grant_production" { "grant" } else { "revoke" }).into());
            }
            let input: AccessRequestInput = from_value(value)?;
            s.service.submit_access(&by, input).await?
        }
        other => {
            return Err(ApiError(AppError::BadRequest(format!(
            "unknown kind `{other}`; use create_repository, update_repository, grant_production, revoke_production, \
             delete_repository or promote_image"
        ))))
        }
    };
    let detail = s.service.request_detail(&by, id).await?;
    Ok((StatusCode::CREATED, [("location", format!("/api/v1/requests/{id}"))], Json(detail)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only requests in this status (`pending`, `approved`, `applying`, `applied`, `rejected`,
    /// `failed`, `needs_reapproval`, `withdrawn`).
    #[serde(default)]
    status: Option<String>,
    /// Only the caller's own requests.
    #[serde(default)]
    mine: Option<bool>,
    /// Keyset cursor: requests older than this id.
    #[serde(default)]
    before: Option<i64>,
    /// At most this many (default 50, at most 500).
    #[serde(default)]
    limit: Option<u32>,
    /// Part of the repository's name (any case).
    #[serde(default)]
    repository: Option<String>,
    /// The requester's user id, exactly.
    #[serde(default)]
    requester: Option<String>,
    /// The kind, e.g. `grant_production`.
    #[serde(default)]
    kind: Option<String>,
}

/// The requests the caller may see, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/requests", tag = "requests", params(ListQuery),
    responses((status = 200, body = Vec<RequestSummary>), ErrorResponses))]
async fn list(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let by = user(u)?;
    let q: ListQuery = query(q)?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(Status::parse(raw).ok_or_else(|| {
            ApiError(AppError::BadRequest(format!(
                "unknown status `{raw}`; use one of {}",
                Status::ALL.map(|s| s.as_str()).join(", ")
            )))
        })?),
    };
    let page = app::views::RequestsPage {
        before: q.before,
        limit: q.limit,
        repository: q.repository,
        requester: q.requester,
        kind: q.kind,
    };
    Ok(Json(s.service.list_requests(&by, status, q.mine.unwrap_or(false), page).await?).into_response())
}

/// One request: its plan, approvals, timeline and what the caller may do with it.
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests", params(("id" = i64, Path, description = "The request's number")),
    responses((status = 200, body = RequestDetail), ErrorResponses))]
async fn show(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    Ok(Json(s.service.request_detail(&by, id).await?).into_response())
}

/// The body of the POSTs that take none: `{}` (or nothing), sent as `application/json` like
/// every API POST (other content types are refused with 415: a cross-site form cannot send JSON).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Empty {}

/// Nothing, or `{}`: what the POSTs without fields take (as documented).
fn empty(body: &Bytes) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(())
    } else {
        json_body::<Empty>(body).map(|_| ())
    }
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError(AppError::NotFound(format!("there is no request `{raw}`"))))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct Decision {
    /// Shown on the request's timeline.
    #[serde(default)]
    comment: String,
}

fn decision(body: &Bytes) -> Result<Decision, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Decision::default())
    } else {
        json_body(body)
    }
}

/// Approves it (one of the approvals its rule needs); the worker applies it when the quorum is reached. Not the requester.
#[utoipa::path(post, path = "/api/v1/requests/{id}/approve", tag = "decisions", params(("id" = i64, Path, description = "The request's number")),
    request_body(content = Option<Decision>, description = "Optional; an empty body is no comment"),
    responses((status = 200, body = RequestDetail), ErrorResponses))]
async fn approve(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    let d = decision(&body)?;
    Ok(Json(s.service.approve(&by, id, d.comment).await?).into_response())
}

/// Rejects it; nothing changes in AWS. Not the requester.
#[utoipa::path(post, path = "/api/v1/requests/{id}/reject", tag = "decisions", params(("id" = i64, Path, description = "The request's number")),
    request_body(content = Option<Decision>, description = "Optional; an empty body is no comment"),
    responses((status = 200, body = RequestDetail), ErrorResponses))]
async fn reject(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    let d = decision(&body)?;
    Ok(Json(s.service.reject(&by, id, d.comment).await?).into_response())
}

/// Applies a failed request's approved plan again (admins).
#[utoipa::path(post, path = "/api/v1/requests/{id}/retry", tag = "decisions", params(("id" = i64, Path, description = "The request's number")),
    request_body(content = Option<Empty>, description = "`{}` or nothing, as `application/json`"),
    responses((status = 200, body = RequestDetail), ErrorResponses))]
async fn retry(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    empty(&body)?;
    Ok(Json(s.service.retry(&by, id).await?).into_response())
}

/// What approving it will change in AWS: the steps and the policy diff.
#[utoipa::path(get, path = "/api/v1/requests/{id}/plan", tag = "requests", params(("id" = i64, Path, description = "The request's number")),
    responses((status = 200, body = app::domain::plan::Plan), ErrorResponses))]
async fn plan(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    Ok(Json(s.service.request_detail(&by, id).await?.plan).into_response())
}

/// The body of the repository actions.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RepositoryAction {
    /// The repository (with or without the namespace prefix); `check` without it checks every managed one.
    #[serde(default)]
    name: Option<String>,
    /// Why (`restore` files a request with it).
    #[serde(default)]
    justification: String,
}

impl RepositoryAction {
    fn name(&self) -> Result<String, ApiError> {
        self.name.clone().ok_or_else(|| {
            ApiError(AppError::Invalid(vec![app::domain::form::FieldError::new("name", "name the repository")]))
        })
    }
}

/// Takes a repository that exists in ECR into the portal's records as it is (admins).
#[utoipa::path(post, path = "/api/v1/repositories/adopt", tag = "repositories", request_body = RepositoryAction,
    responses((status = 200, body = RepositoryView), ErrorResponses))]
async fn adopt(State(s): State<AppState>, u: Option<Extension<Principal>>, body: Bytes) -> ApiResult<Response> {
    let by = user(u)?;
    let a: RepositoryAction = json_body(&body)?;
    Ok(Json(s.service.adopt(&by, a.name()?).await?).into_response())
}

/// Compares the live settings of one managed repository (or all) with the approved ones.
#[utoipa::path(post, path = "/api/v1/repositories/check", tag = "repositories", request_body = RepositoryAction,
    responses((status = 200, body = DriftSummary), ErrorResponses))]
async fn check(State(s): State<AppState>, u: Option<Extension<Principal>>, body: Bytes) -> ApiResult<Response> {
    let by = user(u)?;
    let a: RepositoryAction = json_body(&body)?;
    Ok(Json(s.service.check_drift(&by, a.name).await?).into_response())
}

/// Makes a drifted repository's live settings the approved ones (admins).
#[utoipa::path(post, path = "/api/v1/repositories/accept", tag = "repositories", request_body = RepositoryAction,
    responses((status = 200, body = RepositoryView), ErrorResponses))]
async fn accept(State(s): State<AppState>, u: Option<Extension<Principal>>, body: Bytes) -> ApiResult<Response> {
    let by = user(u)?;
    let a: RepositoryAction = json_body(&body)?;
    Ok(Json(s.service.accept_drift(&by, a.name()?).await?).into_response())
}

/// Files a request that puts a drifted repository back to its approved settings.
#[utoipa::path(post, path = "/api/v1/repositories/restore", tag = "repositories", request_body = RepositoryAction,
    responses((status = 201, body = RequestDetail), ErrorResponses))]
async fn restore(State(s): State<AppState>, u: Option<Extension<Principal>>, body: Bytes) -> ApiResult<Response> {
    let by = user(u)?;
    let a: RepositoryAction = json_body(&body)?;
    let id = s.service.request_restore(&by, a.name()?, a.justification.clone()).await?;
    Ok((StatusCode::CREATED, Json(s.service.request_detail(&by, id).await?)).into_response())
}

/// One page of the inventory: the repositories under the namespace, live, with drift and production access.
#[utoipa::path(get, path = "/api/v1/repositories", tag = "repositories", params(app::views::RepositoriesQuery),
    responses((status = 200, body = app::views::RepositoriesPage), ErrorResponses))]
async fn repositories(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let by = user(u)?;
    let q: app::views::RepositoriesQuery = query(q)?;
    Ok(Json(s.service.repositories(&by, q).await?).into_response())
}

/// A page of the audit trail, newest first, filtered.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = app::views::AuditPage), ErrorResponses))]
async fn audit(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let by = user(u)?;
    let q: AuditQuery = query(q)?;
    Ok(Json(s.service.audit(&by, q).await?).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportFormat {
    /// `csv` (default) or `ndjson` (`jsonl` is taken as `ndjson`).
    #[serde(default)]
    format: Option<String>,
}

/// Every matching event, oldest first, as a download (`format=csv|ndjson` and the audit filters;
/// the paging ones, `before`, `after` and `limit`, do not apply: the export is whole).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(ExportFormat, AuditQuery),
    responses((status = 200, description = "One event a line: CSV (times as `2026-12-01 21:39:00 UTC`) or \
        NDJSON (`at` in RFC 3339, and `at_ms`)",
        content((String = "text/csv"), (String = "application/x-ndjson"))), ErrorResponses))]
async fn export(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let by = user(u)?;
    let f: ExportFormat = query(q.clone())?;
    let filter: AuditQuery = query(q)?;
    let format = crate::export::Format::parse(f.format.as_deref().unwrap_or("csv"))
        .ok_or_else(|| ApiError(AppError::BadRequest("format must be csv or ndjson".into())))?;
    let body = axum::body::Body::from_stream(s.service.export_audit(&by, &filter, format).await?);
    let name = format!("attachment; filename=\"ecr-portal-audit.{}\"", format.extension());
    Ok(([("content-type", format.content_type().to_string()), ("content-disposition", name)], body).into_response())
}

/// Checks the audit trail's hash chain from the first event to the newest.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    // The errors first: this 409 is the broken chain's answer, not an `ErrorBody`.
    responses(ErrorResponses, (status = 200, description = "Intact", body = app::views::AuditVerification),
        (status = 409, description = "Broken: where and why", body = app::views::AuditVerification)))]
async fn verify(State(s): State<AppState>, u: Option<Extension<Principal>>) -> ApiResult<Response> {
    let by = user(u)?;
    let v = s.service.verify_audit(&by).await?;
    let status = if v.intact { StatusCode::OK } else { StatusCode::CONFLICT };
    Ok((status, Json(v)).into_response())
}

/// Who has signed in, with role, last seen, live sessions and tokens (admins, auditors).
#[utoipa::path(get, path = "/api/v1/users", tag = "people",
    responses((status = 200, body = Vec<app::views::UserView>), ErrorResponses))]
async fn users(State(s): State<AppState>, u: Option<Extension<Principal>>) -> ApiResult<Response> {
    let by = user(u)?;
    Ok(Json(s.service.list_users(&by).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeUser {
    /// The user id, e.g. `oidc:alice`.
    user: String,
}

/// Ends all of that person's sessions and API tokens (admins).
#[utoipa::path(post, path = "/api/v1/users/revoke", tag = "people", request_body = RevokeUser,
    responses((status = 200, body = app::views::UserRevoked), ErrorResponses))]
async fn revoke_user(State(s): State<AppState>, u: Option<Extension<Principal>>, body: Bytes) -> ApiResult<Response> {
    let by = user(u)?;
    let RevokeUser { user: who } = json_body(&body)?;
    Ok(Json(s.service.revoke_user(&by, who).await?).into_response())
}

/// The notification channels and the newest notifications (admins).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    responses((status = 200, body = app::views::OutboxPage), ErrorResponses))]
async fn notifications(State(s): State<AppState>, u: Option<Extension<Principal>>) -> ApiResult<Response> {
    let by = user(u)?;
    Ok(Json(s.service.outbox_page(&by).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TestNotification {
    /// A configured channel's name.
    channel: String,
}

/// Queues a test notification on a channel (admins).
#[utoipa::path(post, path = "/api/v1/notifications/test", tag = "notifications", request_body = TestNotification,
    responses((status = 202, body = app::views::OutboxPage), ErrorResponses))]
async fn test_notification(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let TestNotification { channel } = json_body(&body)?;
    Ok((StatusCode::ACCEPTED, Json(s.service.send_test_notification(&by, channel).await?)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    body: String,
}

/// A comment on the request's timeline.
#[utoipa::path(post, path = "/api/v1/requests/{id}/comments", tag = "requests", params(("id" = i64, Path, description = "The request's number")), request_body = CommentBody,
    responses((status = 201, body = RequestDetail), ErrorResponses))]
async fn comment(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    let CommentBody { body } = json_body(&body)?;
    Ok((StatusCode::CREATED, Json(s.service.comment(&by, id, body).await?)).into_response())
}

/// The requester takes it back while it waits for a decision.
#[utoipa::path(post, path = "/api/v1/requests/{id}/withdraw", tag = "requests", params(("id" = i64, Path, description = "The request's number")),
    request_body(content = Option<Empty>, description = "`{}` or nothing, as `application/json`"),
    responses((status = 200, body = RequestDetail), ErrorResponses))]
async fn withdraw(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    empty(&body)?;
    Ok(Json(s.service.withdraw(&by, id).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BreakGlassBody {
    /// Why it cannot wait (required).
    #[serde(default)]
    reason: String,
}

/// An admin (not the requester) applies it at once, without the quorum (`approval.break_glass`).
#[utoipa::path(post, path = "/api/v1/requests/{id}/break-glass", tag = "decisions", params(("id" = i64, Path, description = "The request's number")), request_body = BreakGlassBody,
    responses((status = 200, body = RequestDetail), ErrorResponses))]
async fn break_glass(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    let BreakGlassBody { reason } = json_body(&body)?;
    Ok(Json(s.service.break_glass(&by, id, reason).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    /// `accepted` or `revert`.
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    comment: String,
}

/// Another admin reviews a break-glass apply; `revert` files the request that undoes it.
#[utoipa::path(post, path = "/api/v1/requests/{id}/review", tag = "decisions", params(("id" = i64, Path, description = "The request's number")), request_body = ReviewBody,
    responses((status = 200, body = RequestDetail), ErrorResponses))]
async fn review(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    let ReviewBody { outcome, comment } = json_body(&body)?;
    Ok(Json(s.service.review_break_glass(&by, id, outcome, comment).await?).into_response())
}

/// A repository's images, newest first, a page at a time, with its releases.
#[utoipa::path(get, path = "/api/v1/images", tag = "images", params(app::views::ImagesQuery),
    responses((status = 200, body = app::views::ImagesPage), ErrorResponses))]
async fn images(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let by = user(u)?;
    let query: app::views::ImagesQuery = query(q)?;
    Ok(Json(s.service.images_page(&by, query).await?).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReleasesQuery {
    /// The repository (with or without the namespace prefix).
    #[serde(default)]
    repository: String,
}

/// The repository's releases (promoted images), newest first.
#[utoipa::path(get, path = "/api/v1/releases", tag = "images", params(ReleasesQuery),
    responses((status = 200, body = Vec<app::views::ReleaseView>), ErrorResponses))]
async fn releases(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let by = user(u)?;
    let query: ReleasesQuery = query(q)?;
    Ok(Json(s.service.releases(&by, query.repository).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    digest: String,
}

#[derive(Serialize, ToSchema)]
struct ScanStarted {
    started: bool,
}

/// Starts a vulnerability scan of one image (admins); the images page shows the result.
#[utoipa::path(post, path = "/api/v1/images/scan", tag = "images", request_body = ScanBody,
    responses((status = 202, body = ScanStarted), ErrorResponses))]
async fn scan(State(s): State<AppState>, u: Option<Extension<Principal>>, body: Bytes) -> ApiResult<Response> {
    let by = user(u)?;
    let ScanBody { repository, digest } = json_body(&body)?;
    s.service.start_scan(&by, repository, digest).await?;
    Ok((StatusCode::ACCEPTED, Json(ScanStarted { started: true })).into_response())
}

/// `main.tf` for the repositories under the namespace, as they are live, in the Terraform
/// module's shape with import blocks (a download).
#[utoipa::path(get, path = "/api/v1/terraform/export", tag = "terraform",
    responses((status = 200, body = String, content_type = "text/plain"), ErrorResponses))]
async fn terraform_export(State(s): State<AppState>, u: Option<Extension<Principal>>) -> ApiResult<Response> {
    let by = user(u)?;
    let export = s.service.terraform_export(&by).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"main.tf\""),
        ],
        export.main_tf,
    )
        .into_response())
}

/// Takes over the repositories Terraform files describe (adopted when in ECR, create
/// requests otherwise), or with `dry_run` only reports what it would do (admins).
#[utoipa::path(post, path = "/api/v1/terraform/import", tag = "terraform", request_body = app::views::TerraformImportInput,
    responses((status = 200, body = app::views::TerraformImportReport), ErrorResponses))]
async fn terraform_import(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let input: app::views::TerraformImportInput = json_body(&body)?;
    Ok(Json(s.service.import_terraform(&by, input).await?).into_response())
}

/// The portal (namespace, accounts, sign-in methods) and the caller, if signed in.
#[utoipa::path(get, path = "/api/v1/me", tag = "people", security((), ("token" = []), ("session" = [])),
    responses((status = 200, body = app::views::PortalInfo), ErrorResponses))]
async fn me(State(s): State<AppState>, u: Option<Extension<Principal>>) -> ApiResult<Response> {
    Ok(Json(s.service.info(u.map(|Extension(p)| p))).into_response())
}

async fn not_found() -> ApiError {
    ApiError(AppError::NotFound("no such API route; see README.md for the API".into()))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
async fn openapi_json() -> Response {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| serde_json::to_string_pretty(&openapi()).unwrap_or_default());
    ([(axum::http::header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ecr-portal",
        description = "Self-service Amazon ECR repositories: requests, approvals, the inventory, images and \
                       the audit trail. Authenticate with an API token (`Authorization: Bearer …`, made on the \
                       Tokens page) or a session cookie. Times are RFC 3339 in UTC. Every error is an `ErrorBody`."
    ),
    security(("token" = []), ("session" = [])),
    components(schemas(super::error::ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "requests", description = "Ask for repositories, changes, production access and promotions"),
        (name = "decisions", description = "Approve, reject, retry, break glass"),
        (name = "repositories", description = "The inventory, drift, adoption"),
        (name = "images", description = "Images, releases, scans"),
        (name = "audit", description = "The hash-chained audit trail"),
        (name = "people", description = "The caller and the people who signed in"),
        (name = "notifications", description = "Channels and the outbox"),
        (name = "terraform", description = "From and to Terraform"),
        (name = "meta", description = "This document")
    )
)]
struct ApiDoc;

/// The two ways to authenticate.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token made on the Tokens page"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "ecr_portal_session",
                "The browser's session (named `__Host-ecr_portal_session` when the portal is served over HTTPS)",
            ))),
        );
    }
}

/// The API's routes and their document, from the same handlers.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(submit, list))
        .routes(routes!(show))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(retry))
        .routes(routes!(plan))
        .routes(routes!(comment))
        .routes(routes!(withdraw))
        .routes(routes!(break_glass))
        .routes(routes!(review))
        .routes(routes!(repositories))
        .routes(routes!(adopt))
        .routes(routes!(check))
        .routes(routes!(accept))
        .routes(routes!(restore))
        .routes(routes!(images))
        .routes(routes!(scan))
        .routes(routes!(releases))
        .routes(routes!(terraform_export))
        .routes(routes!(terraform_import))
        .routes(routes!(audit))
        .routes(routes!(export))
        .routes(routes!(verify))
        .routes(routes!(me))
        .routes(routes!(users))
        .routes(routes!(revoke_user))
        .routes(routes!(notifications))
        .routes(routes!(test_notification))
        .routes(routes!(openapi_json))
}

/// The OpenAPI 3.1 document of every `/api/v1` route.
pub fn openapi() -> serde_json::Value {
    let mut doc = serde_json::to_value(api().split_for_parts().1).unwrap_or_default();
    submit_body_as_sent(&mut doc);
    doc
}

/// What utoipa cannot say about `POST /api/v1/requests`: each kind's body is its input plus
/// `kind` (optional for `create_repository`, the default), and nothing else. The inputs refuse
/// unknown fields (`additionalProperties: false`), which inside `allOf` would refuse `kind`
/// too; so the refusal moves to each branch as a whole (`unevaluatedProperties: false`).
fn submit_body_as_sent(doc: &mut serde_json::Value) {
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(|s| s.as_object_mut()) else { return };
    let mut inputs = Vec::new();
    if let Some(branches) =
        schemas.get_mut("SubmitBody").and_then(|b| b.get_mut("oneOf")).and_then(|o| o.as_array_mut())
    {
        for branch in branches {
            let Some(parts) = branch.get_mut("allOf").and_then(|a| a.as_array_mut()) else { continue };
            if let Some(input) = parts.first().and_then(|p| p["$ref"].as_str()) {
                inputs.push(input.trim_start_matches("#/components/schemas/").to_string());
            }
            if let Some(kind) = parts.get_mut(1) {
                if kind.pointer("/properties/kind/enum/0").and_then(|k| k.as_str()) == Some("create_repository") {
                    kind.as_object_mut().map(|k| k.remove("required"));
                }
            }
            branch["unevaluatedProperties"] = serde_json::Value::Bool(false);
        }
    }
    for name in inputs {
        if let Some(input) = schemas.get_mut(&name).and_then(|i| i.as_object_mut()) {
            input.remove("additionalProperties");
        }
    }
}

pub fn routes() -> Router<AppState> {
    // Anything else under /api/v1 is a JSON 404 (not the pages' HTML one).
    api().split_for_parts().0.route("/api/v1/{*rest}", axum::routing::any(not_found))
}
