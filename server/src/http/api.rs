//! The JSON API for automation (`/api/v1`), mirroring the UI through the same
//! service. Errors are answered by `error.rs`.
use super::error::{ApiError, ApiResult};
use super::state::AppState;
use app::api::Portal;
use app::domain::form::{AccessRequestInput, RepositoryRequestInput};
use app::domain::principal::Principal;
use app::domain::request::Status;
use app::error::AppError;
use app::views::AuditQuery;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;

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

/// `kind` picks the request: `create_repository` (default), `update_repository`,
/// `grant_production`, `revoke_production` or `delete_repository`.
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

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    mine: Option<bool>,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    requester: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

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

async fn show(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    Ok(Json(s.service.request_detail(&by, id).await?).into_response())
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError(AppError::NotFound(format!("there is no request `{raw}`"))))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
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

async fn retry(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    Ok(Json(s.service.retry(&by, id).await?).into_response())
}

async fn plan(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    Ok(Json(s.service.request_detail(&by, id).await?.plan).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositoryAction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    justification: String,
}

/// `POST /api/v1/repositories/{adopt|check|accept|restore}` with `{"name": …}`.
async fn repository_action(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(action): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let a: RepositoryAction = json_body(&body)?;
    let name = || {
        a.name.clone().ok_or_else(|| {
            ApiError(AppError::Invalid(vec![app::domain::form::FieldError::new("name", "name the repository")]))
        })
    };
    Ok(match action.as_str() {
        "adopt" => Json(s.service.adopt(&by, name()?).await?).into_response(),
        "check" => Json(s.service.check_drift(&by, a.name.clone()).await?).into_response(),
        "accept" => Json(s.service.accept_drift(&by, name()?).await?).into_response(),
        "restore" => {
            let id = s.service.request_restore(&by, name()?, a.justification.clone()).await?;
            (StatusCode::CREATED, Json(s.service.request_detail(&by, id).await?)).into_response()
        }
        other => {
            return Err(ApiError(AppError::NotFound(format!(
                "no repository action `{other}`; use adopt, check, accept or restore"
            ))))
        }
    })
}

/// `GET /api/v1/repositories?q=&show=all|drift|unmanaged|production&offset=&limit=`: one page of the inventory.
async fn repositories(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let by = user(u)?;
    let q: app::views::RepositoriesQuery = query(q)?;
    Ok(Json(s.service.repositories(&by, q).await?).into_response())
}

async fn audit(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let by = user(u)?;
    let q: AuditQuery = query(q)?;
    Ok(Json(s.service.audit(&by, q).await?).into_response())
}

#[derive(Deserialize)]
struct ExportFormat {
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/v1/audit/export?format=csv|ndjson&<the audit filters>`: every matching event, oldest first.
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

async fn verify(State(s): State<AppState>, u: Option<Extension<Principal>>) -> ApiResult<Response> {
    let by = user(u)?;
    let v = s.service.verify_audit(&by).await?;
    let status = if v.intact { StatusCode::OK } else { StatusCode::CONFLICT };
    Ok((status, Json(v)).into_response())
}

/// `GET /api/v1/users`: who has signed in, with role, last seen, live sessions and tokens (admins, auditors).
async fn users(State(s): State<AppState>, u: Option<Extension<Principal>>) -> ApiResult<Response> {
    let by = user(u)?;
    Ok(Json(s.service.list_users(&by).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeUser {
    user: String,
}

/// `POST /api/v1/users/revoke` `{"user"}`: ends all of that person's sessions and API tokens (admins).
async fn revoke_user(State(s): State<AppState>, u: Option<Extension<Principal>>, body: Bytes) -> ApiResult<Response> {
    let by = user(u)?;
    let RevokeUser { user: who } = json_body(&body)?;
    Ok(Json(s.service.revoke_user(&by, who).await?).into_response())
}

/// `GET /api/v1/notifications`: the channels and the newest notifications (admins).
async fn notifications(State(s): State<AppState>, u: Option<Extension<Principal>>) -> ApiResult<Response> {
    let by = user(u)?;
    Ok(Json(s.service.outbox_page(&by).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestNotification {
    channel: String,
}

/// `POST /api/v1/notifications/test` `{"channel"}`: queues a test notification (admins).
async fn test_notification(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let TestNotification { channel } = json_body(&body)?;
    Ok((StatusCode::ACCEPTED, Json(s.service.send_test_notification(&by, channel).await?)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    body: String,
}

/// `POST /api/v1/requests/{id}/comments` `{"body"}`: a comment on the request's timeline; 201 with the request.
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

/// `POST /api/v1/requests/{id}/withdraw`: the requester takes it back while it waits for a decision.
async fn withdraw(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let by = user(u)?;
    let id = parse_id(&id)?;
    Ok(Json(s.service.withdraw(&by, id).await?).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakGlassBody {
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/requests/{id}/break-glass` `{"reason"}`: an admin (not the
/// requester) applies it at once, without the quorum (`approval.break_glass`).
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    comment: String,
}

/// `POST /api/v1/requests/{id}/review` `{"outcome": "accepted"|"revert", "comment"}`:
/// another admin reviews a break-glass apply; `revert` files the request that undoes it.
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

/// `GET /api/v1/images?repository=&offset=&limit=`: a repository's images, newest first, with its releases.
async fn images(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let by = user(u)?;
    let query: app::views::ImagesQuery = query(q)?;
    Ok(Json(s.service.images_page(&by, query).await?).into_response())
}

#[derive(serde::Deserialize)]
struct ReleasesQuery {
    #[serde(default)]
    repository: String,
}

/// `GET /api/v1/releases?repository=`: the repository's releases, newest first.
async fn releases(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let by = user(u)?;
    let query: ReleasesQuery = query(q)?;
    Ok(Json(s.service.releases(&by, query.repository).await?).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    digest: String,
}

/// `POST /api/v1/images/scan` `{"repository","digest"}`: start a scan (admins); 202.
async fn scan(State(s): State<AppState>, u: Option<Extension<Principal>>, body: Bytes) -> ApiResult<Response> {
    let by = user(u)?;
    let ScanBody { repository, digest } = json_body(&body)?;
    s.service.start_scan(&by, repository, digest).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({"started": true}))).into_response())
}

/// `GET /api/v1/terraform/export`: main.tf for the repositories under the namespace, as they are
/// live, in the Terraform module's shape with import blocks (a download).
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

/// `POST /api/v1/terraform/import`: the repositories a Terraform file describes, taken over
/// (adopted when in ECR, create requests otherwise), or with `dry_run` only reported.
async fn terraform_import(
    State(s): State<AppState>,
    u: Option<Extension<Principal>>,
    body: Bytes,
) -> ApiResult<Response> {
    let by = user(u)?;
    let input: app::views::TerraformImportInput = json_body(&body)?;
    Ok(Json(s.service.import_terraform(&by, input).await?).into_response())
}

async fn me(State(s): State<AppState>, u: Option<Extension<Principal>>) -> ApiResult<Response> {
    Ok(Json(s.service.info(u.map(|Extension(p)| p))).into_response())
}

async fn not_found() -> ApiError {
    ApiError(AppError::NotFound("no such API route; see README.md for the API".into()))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/requests", post(submit).get(list))
        .route("/api/v1/requests/{id}", get(show))
        .route("/api/v1/requests/{id}/approve", post(approve))
        .route("/api/v1/requests/{id}/reject", post(reject))
        .route("/api/v1/requests/{id}/retry", post(retry))
        .route("/api/v1/requests/{id}/plan", get(plan))
        .route("/api/v1/requests/{id}/comments", post(comment))
        .route("/api/v1/requests/{id}/withdraw", post(withdraw))
        .route("/api/v1/requests/{id}/break-glass", post(break_glass))
        .route("/api/v1/requests/{id}/review", post(review))
        .route("/api/v1/repositories", get(repositories))
        .route("/api/v1/images", get(images))
        .route("/api/v1/images/scan", post(scan))
        .route("/api/v1/releases", get(releases))
        .route("/api/v1/terraform/export", get(terraform_export))
        .route("/api/v1/terraform/import", post(terraform_import))
        .route("/api/v1/repositories/{action}", post(repository_action))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/audit/export", get(export))
        .route("/api/v1/audit/verify", get(verify))
        .route("/api/v1/me", get(me))
        .route("/api/v1/users", get(users))
        .route("/api/v1/users/revoke", post(revoke_user))
        .route("/api/v1/notifications", get(notifications))
        .route("/api/v1/notifications/test", post(test_notification))
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
}
