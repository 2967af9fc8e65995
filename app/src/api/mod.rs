//! Server functions: thin. Each one finds the signed-in user, calls the
//! service (through the [`Portal`] port, injected as context by the server)
//! and returns the service's typed result. Rules live in the service.
use crate::domain::form::{AccessRequestInput, RepositoryRequestInput};
use crate::domain::request::Status;
use crate::error::AppError;
use crate::views::*;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
mod port;
#[cfg(feature = "ssr")]
pub use port::{Portal, PortalHandle};

#[cfg(feature = "ssr")]
fn portal() -> Result<std::sync::Arc<dyn Portal>, AppError> {
    use_context::<PortalHandle>().map(|h| h.0).ok_or_else(|| AppError::Internal("no-portal-context".into()))
}

/// The signed-in user, put into the request by the server's session layer.
#[cfg(feature = "ssr")]
fn user() -> Option<crate::domain::principal::Principal> {
    use_context::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<crate::domain::principal::Principal>().cloned())
}

/// Gives a failed server function the HTTP status of its error (401, 403,
/// 422, …) instead of the generic 500, so clients and tests can rely on it.
#[cfg(feature = "ssr")]
fn answer<T>(r: Result<T, AppError>) -> Result<T, AppError> {
    if let (Err(e), Some(res)) = (&r, use_context::<leptos_axum::ResponseOptions>()) {
        res.set_status(http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR));
    }
    r
}

#[cfg(feature = "ssr")]
fn signed_in() -> Result<crate::domain::principal::Principal, AppError> {
    user().ok_or(AppError::Unauthenticated)
}

#[server(prefix = "/rpc", endpoint = "get_portal_info")]
pub async fn get_portal_info() -> Result<PortalInfo, AppError> {
    answer(async move { Ok(portal()?.info(user())) }.await)
}

#[server(prefix = "/rpc", endpoint = "list_requests", input = Json)]
pub async fn list_requests(
    status: Option<String>,
    mine: bool,
    #[server(default)] page: RequestsPage,
) -> Result<Vec<RequestSummary>, AppError> {
    answer(
        async move {
            let by = signed_in()?;
            let status = match status.as_deref().filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(
                    crate::domain::request::Status::parse(s)
                        .ok_or_else(|| AppError::BadRequest(format!("unknown status `{s}`")))?,
                ),
            };
            portal()?.list_requests(&by, status, mine, page).await
        }
        .await,
    )
}

#[server(prefix = "/rpc", endpoint = "get_request", input = Json)]
pub async fn get_request(id: i64) -> Result<RequestDetail, AppError> {
    answer(async move { portal()?.request_detail(&signed_in()?, id).await }.await)
}

/// Where a request stands (the request page polls it while the worker moves the request along).
#[server(prefix = "/rpc", endpoint = "request_status", input = Json)]
pub async fn request_status(id: i64) -> Result<Status, AppError> {
    answer(async move { portal()?.request_status(&signed_in()?, id).await }.await)
}

#[server(prefix = "/rpc", endpoint = "submit_repository_request", input = Json)]
pub async fn submit_repository_request(input: RepositoryRequestInput) -> Result<i64, AppError> {
    answer(async move { portal()?.submit(&signed_in()?, input).await }.await)
}

#[server(prefix = "/rpc", endpoint = "approve_request", input = Json)]
pub async fn approve_request(id: i64, comment: String) -> Result<Status, AppError> {
    answer(async move { Ok(portal()?.approve(&signed_in()?, id, comment).await?.summary.status) }.await)
}

#[server(prefix = "/rpc", endpoint = "reject_request", input = Json)]
pub async fn reject_request(id: i64, comment: String) -> Result<Status, AppError> {
    answer(async move { Ok(portal()?.reject(&signed_in()?, id, comment).await?.summary.status) }.await)
}

#[server(prefix = "/rpc", endpoint = "retry_request", input = Json)]
pub async fn retry_request(id: i64) -> Result<Status, AppError> {
    answer(async move { Ok(portal()?.retry(&signed_in()?, id).await?.summary.status) }.await)
}

#[server(prefix = "/rpc", endpoint = "list_repositories", input = Json)]
pub async fn list_repositories(#[server(default)] query: RepositoriesQuery) -> Result<RepositoriesPage, AppError> {
    answer(async move { portal()?.repositories(&signed_in()?, query).await }.await)
}

#[server(prefix = "/rpc", endpoint = "audit_history", input = Json)]
pub async fn audit_history(query: AuditQuery) -> Result<AuditPage, AppError> {
    answer(async move { portal()?.audit(&signed_in()?, query).await }.await)
}

#[server(prefix = "/rpc", endpoint = "submit_access_request", input = Json)]
pub async fn submit_access_request(input: AccessRequestInput) -> Result<i64, AppError> {
    answer(async move { portal()?.submit_access(&signed_in()?, input).await }.await)
}

#[server(prefix = "/rpc", endpoint = "adopt_repository", input = Json)]
pub async fn adopt_repository(repository: String) -> Result<(), AppError> {
    answer(async move { portal()?.adopt(&signed_in()?, repository).await.map(|_| ()) }.await)
}

#[server(prefix = "/rpc", endpoint = "check_drift", input = Json)]
pub async fn check_drift(repository: Option<String>) -> Result<DriftSummary, AppError> {
    answer(async move { portal()?.check_drift(&signed_in()?, repository).await }.await)
}

#[server(prefix = "/rpc", endpoint = "accept_drift", input = Json)]
pub async fn accept_drift(repository: String) -> Result<(), AppError> {
    answer(async move { portal()?.accept_drift(&signed_in()?, repository).await.map(|_| ()) }.await)
}

#[server(prefix = "/rpc", endpoint = "request_restore", input = Json)]
pub async fn request_restore(repository: String, justification: String) -> Result<i64, AppError> {
    answer(async move { portal()?.request_restore(&signed_in()?, repository, justification).await }.await)
}

#[server(prefix = "/rpc", endpoint = "verify_audit")]
pub async fn verify_audit() -> Result<AuditVerification, AppError> {
    answer(async move { portal()?.verify_audit(&signed_in()?).await }.await)
}

#[server(prefix = "/rpc", endpoint = "list_tokens")]
pub async fn list_tokens() -> Result<Vec<TokenView>, AppError> {
    answer(async move { portal()?.list_tokens(&signed_in()?).await }.await)
}

#[server(prefix = "/rpc", endpoint = "create_token", input = Json)]
pub async fn create_token(name: String, scope: String, days: u32) -> Result<CreatedToken, AppError> {
    answer(async move { portal()?.create_token(&signed_in()?, name, scope, days).await }.await)
}

#[server(prefix = "/rpc", endpoint = "revoke_token", input = Json)]
pub async fn revoke_token(id: i64) -> Result<Vec<TokenView>, AppError> {
    answer(async move { portal()?.revoke_token(&signed_in()?, id).await }.await)
}

#[server(prefix = "/rpc", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<UserView>, AppError> {
    answer(async move { portal()?.list_users(&signed_in()?).await }.await)
}

#[server(prefix = "/rpc", endpoint = "revoke_user", input = Json)]
pub async fn revoke_user(user: String) -> Result<UserRevoked, AppError> {
    answer(async move { portal()?.revoke_user(&signed_in()?, user).await }.await)
}

#[server(prefix = "/rpc", endpoint = "repository_settings", input = Json)]
pub async fn repository_settings(name: String) -> Result<RepositorySettingsView, AppError> {
    answer(async move { portal()?.repository_settings(&signed_in()?, name).await }.await)
}

#[server(prefix = "/rpc", endpoint = "preview_lifecycle", input = Json)]
pub async fn preview_lifecycle(
    name: String,
    lifecycle: String,
) -> Result<crate::domain::plan::LifecyclePreview, AppError> {
    answer(async move { portal()?.preview_lifecycle(&signed_in()?, name, lifecycle).await }.await)
}

#[server(prefix = "/rpc", endpoint = "list_images", input = Json)]
pub async fn list_images(query: ImagesQuery) -> Result<ImagesPage, AppError> {
    answer(async move { portal()?.images(&signed_in()?, query).await }.await)
}

#[server(prefix = "/rpc", endpoint = "outbox")]
pub async fn outbox() -> Result<OutboxPage, AppError> {
    answer(async move { portal()?.outbox(&signed_in()?).await }.await)
}
