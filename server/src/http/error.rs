//! The one error boundary of the HTTP layer: every error becomes
//! `{"error":{"code","message","fields"?}}` with the status its variant
//! documents (see `app::error::AppError`); internal errors show a reference only.
use app::error::AppError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

pub fn error_response(e: &AppError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}});
    if !e.field_errors().is_empty() {
        body["error"]["fields"] = serde_json::to_value(e.field_errors()).unwrap_or_default();
    }
    (status, Json(body)).into_response()
}

pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::service::Error> for ApiError {
    fn from(e: crate::service::Error) -> Self {
        Self(AppError::from(e))
    }
}
