//! The port the UI's server functions call (`app::api::Portal`), implemented
//! by the use cases of this layer; errors become the UI's `AppError` here.
use super::PortalService;
use app::api::Portal;
use app::domain::form::{AccessRequestInput, RepositoryRequestInput};
use app::domain::principal::Principal;
use app::domain::request::Status;
use app::error::AppError;
use app::views::*;

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
            can_decide: user.as_ref().is_some_and(|u| self.approves_anything(u)),
            user,
        }
    }

    async fn submit(&self, by: &Principal, input: RepositoryRequestInput) -> Result<i64, AppError> {
        Ok(PortalService::submit(self, by, input).await?)
    }

    async fn submit_access(&self, by: &Principal, input: AccessRequestInput) -> Result<i64, AppError> {
        Ok(PortalService::submit_access(self, by, input).await?)
    }

    async fn list_requests(
        &self,
        by: &Principal,
        status: Option<Status>,
        mine: bool,
        page: RequestsPage,
    ) -> Result<Vec<RequestSummary>, AppError> {
        Ok(PortalService::list_requests(self, by, status, mine, page).await?)
    }

    async fn request_detail(&self, by: &Principal, id: i64) -> Result<RequestDetail, AppError> {
        Ok(PortalService::request_detail(self, by, id).await?)
    }

    async fn request_status(&self, by: &Principal, id: i64) -> Result<Status, AppError> {
        Ok(PortalService::request_status(self, by, id).await?)
    }

    async fn approve(&self, by: &Principal, id: i64, comment: String) -> Result<RequestDetail, AppError> {
        Ok(PortalService::approve(self, by, id, comment).await?)
    }

    async fn reject(&self, by: &Principal, id: i64, comment: String) -> Result<RequestDetail, AppError> {
        Ok(PortalService::reject(self, by, id, comment).await?)
    }

    async fn retry(&self, by: &Principal, id: i64) -> Result<RequestDetail, AppError> {
        Ok(PortalService::retry(self, by, id).await?)
    }

    async fn repositories(&self, by: &Principal, query: RepositoriesQuery) -> Result<RepositoriesPage, AppError> {
        Ok(PortalService::repositories(self, by, query).await?)
    }

    async fn audit(&self, by: &Principal, query: AuditQuery) -> Result<AuditPage, AppError> {
        Ok(PortalService::audit(self, by, query).await?)
    }

    async fn verify_audit(&self, by: &Principal) -> Result<AuditVerification, AppError> {
        Ok(PortalService::verify_audit(self, by).await?)
    }

    async fn adopt(&self, by: &Principal, repository: String) -> Result<RepositoryView, AppError> {
        Ok(PortalService::adopt(self, by, repository).await?)
    }

    async fn check_drift(&self, by: &Principal, repository: Option<String>) -> Result<DriftSummary, AppError> {
        Ok(PortalService::check_drift(self, by, repository).await?)
    }

    async fn accept_drift(&self, by: &Principal, repository: String) -> Result<RepositoryView, AppError> {
        Ok(PortalService::accept_drift(self, by, repository).await?)
    }

    async fn request_restore(
        &self,
        by: &Principal,
        repository: String,
        justification: String,
    ) -> Result<i64, AppError> {
        Ok(PortalService::request_restore(self, by, repository, justification).await?)
    }

    async fn list_tokens(&self, by: &Principal) -> Result<Vec<TokenView>, AppError> {
        Ok(PortalService::list_tokens(self, by).await?)
    }

    async fn create_token(
        &self,
        by: &Principal,
        name: String,
        scope: String,
        days: u32,
    ) -> Result<CreatedToken, AppError> {
        Ok(PortalService::create_token(self, by, name, scope, days).await?)
    }

    async fn revoke_token(&self, by: &Principal, id: i64) -> Result<Vec<TokenView>, AppError> {
        Ok(PortalService::revoke_token(self, by, id).await?)
    }

    async fn list_users(&self, by: &Principal) -> Result<Vec<UserView>, AppError> {
        Ok(PortalService::list_users(self, by).await?)
    }

    async fn revoke_user(&self, by: &Principal, user: String) -> Result<UserRevoked, AppError> {
        Ok(PortalService::revoke_user(self, by, user).await?)
    }

    async fn outbox(&self, by: &Principal) -> Result<OutboxPage, AppError> {
        Ok(PortalService::outbox_page(self, by).await?)
    }

    async fn images(&self, by: &Principal, query: ImagesQuery) -> Result<ImagesPage, AppError> {
        Ok(PortalService::images_page(self, by, query).await?)
    }

    async fn repository_settings(&self, by: &Principal, name: String) -> Result<RepositorySettingsView, AppError> {
        Ok(PortalService::repository_settings(self, by, name).await?)
    }

    async fn preview_lifecycle(
        &self,
        by: &Principal,
        name: String,
        lifecycle: String,
    ) -> Result<app::domain::plan::LifecyclePreview, AppError> {
        Ok(PortalService::preview_lifecycle(self, by, name, lifecycle).await?)
    }
}
