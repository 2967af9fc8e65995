//! The one error boundary of the HTTP layer: every error becomes
//! `{"error":{"code","message","fields"?}}` ([`ErrorBody`], in the OpenAPI
//! document as it is built here) with the status its variant documents (see
//! `app::error::AppError`); internal errors show a reference only.
use app::domain::field::FieldError;
use app::error::AppError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// What every error answer of the API holds.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `unauthenticated`, `forbidden`, `not_found`, `conflict`, `bad_request`,
    /// `too_large`, `unsupported_media_type`, `too_many_requests`, `validation_failed`, `unavailable`,
    /// `internal`; and for answers made before a handler: `timeout`, `method_not_allowed`, `misdirected`,
    /// or `error` for any other status.
    pub code: String,
    /// For people; an internal error gives only a reference to the server's log.
    pub message: String,
    /// With `validation_failed`: each field's problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

/// The error answers any API operation may give (each documented once, shared by all).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its documentation is used.
pub enum ErrorResponses {
    /// The body or query is malformed (not JSON, an unknown value).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No session or API token, or it has expired or been revoked.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// Signed in, but the role (or the token's scope) does not allow it, or the request came from another site.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such request, repository or route.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The path exists, with other methods.
    #[response(status = 405)]
    MethodNotAllowed(ErrorBody),
    /// It is not in a state that allows it (already decided, another request open, …).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is larger than `server.max_body_bytes`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Not answered within `server.request_timeout_seconds`.
    #[response(status = 408)]
    Timeout(ErrorBody),
    /// A body that is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A `Host` this server does not serve (`server.public_url`).
    #[response(status = 421)]
    Misdirected(ErrorBody),
    /// A field's value is refused; `fields` names each.
    #[response(status = 422)]
    Invalid(ErrorBody),
    /// Too many requests from this client; `retry-after` says when to try again.
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// Failed on the server's side; the message has a reference to its log.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// AWS or the database cannot be reached just now.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

pub fn error_response(e: &AppError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    answer(status, e.code(), e.to_string(), e.field_errors().to_vec())
}

/// An error answer that no `AppError` stands for (the request timeout, a wrong method, …).
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    answer(status, code, message.to_string(), Vec::new())
}

fn answer(status: StatusCode, code: &str, message: String, fields: Vec<FieldError>) -> Response {
    (status, Json(ErrorBody { error: ErrorDetail { code: code.to_string(), message, fields } })).into_response()
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
