//! The service port: what the UI's server functions need from the server.
//! Implemented by `server::service::PortalService`, which the JSON API and the
//! worker use directly.
use crate::domain::form::{AccessRequestInput, RepositoryRequestInput};
use crate::domain::principal::Principal;
use crate::domain::request::Status;
use crate::error::AppError;
use crate::views::*;
use std::sync::Arc;

#[async_trait::async_trait]
pub trait Portal: Send + Sync + 'static {
    fn info(&self, user: Option<Principal>) -> PortalInfo;
    async fn submit(&self, by: &Principal, input: RepositoryRequestInput) -> Result<i64, AppError>;
    async fn submit_access(&self, by: &Principal, input: AccessRequestInput) -> Result<i64, AppError>;
    async fn list_requests(
        &self,
        by: &Principal,
        status: Option<Status>,
        mine: bool,
        page: RequestsPage,
    ) -> Result<Vec<RequestSummary>, AppError>;
    async fn request_detail(&self, by: &Principal, id: i64) -> Result<RequestDetail, AppError>;
    /// Only where a request stands (polled by an open request page).
    async fn request_status(&self, by: &Principal, id: i64) -> Result<crate::domain::request::Status, AppError>;
    async fn approve(&self, by: &Principal, id: i64, comment: String) -> Result<RequestDetail, AppError>;
    async fn reject(&self, by: &Principal, id: i64, comment: String) -> Result<RequestDetail, AppError>;
    async fn retry(&self, by: &Principal, id: i64) -> Result<RequestDetail, AppError>;
    async fn repositories(&self, by: &Principal, query: RepositoriesQuery) -> Result<RepositoriesPage, AppError>;
    async fn audit(&self, by: &Principal, query: AuditQuery) -> Result<AuditPage, AppError>;
    async fn verify_audit(&self, by: &Principal) -> Result<AuditVerification, AppError>;
    async fn adopt(&self, by: &Principal, repository: String) -> Result<RepositoryView, AppError>;
    /// Checks one repository (or all managed ones) for drift now and re-reads
    /// it (or the whole inventory) from ECR; says how many were checked and drifted.
    async fn check_drift(&self, by: &Principal, repository: Option<String>) -> Result<DriftSummary, AppError>;
    async fn accept_drift(&self, by: &Principal, repository: String) -> Result<RepositoryView, AppError>;
    async fn request_restore(&self, by: &Principal, repository: String, justification: String)
        -> Result<i64, AppError>;
    async fn list_tokens(&self, by: &Principal) -> Result<Vec<TokenView>, AppError>;
    async fn create_token(
        &self,
        by: &Principal,
        name: String,
        scope: String,
        days: u32,
    ) -> Result<CreatedToken, AppError>;
    async fn revoke_token(&self, by: &Principal, id: i64) -> Result<Vec<TokenView>, AppError>;
    async fn list_users(&self, by: &Principal) -> Result<Vec<UserView>, AppError>;
    async fn revoke_user(&self, by: &Principal, user: String) -> Result<UserRevoked, AppError>;
    async fn outbox(&self, by: &Principal) -> Result<OutboxPage, AppError>;
    async fn repository_settings(&self, by: &Principal, name: String) -> Result<RepositorySettingsView, AppError>;
    async fn images(&self, by: &Principal, query: ImagesQuery) -> Result<ImagesPage, AppError>;
    async fn preview_lifecycle(
        &self,
        by: &Principal,
        name: String,
        lifecycle: String,
    ) -> Result<crate::domain::plan::LifecyclePreview, AppError>;
}

/// The context value the server provides to every server function.
#[derive(Clone)]
pub struct PortalHandle(pub Arc<dyn Portal>);
