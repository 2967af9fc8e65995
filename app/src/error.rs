//! The one error type users see, from server functions and the JSON API alike.
//! Each variant fixes its HTTP status; internal failures carry only a reference
//! id (the full chain is logged on the server), never database or AWS text.
use crate::domain::form::FieldError;
use crate::domain::request::TransitionError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum AppError {
    /// 401
    #[error("sign in to continue")]
    Unauthenticated,
    /// 403
    #[error("{0}")]
    Forbidden(String),
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 409
    #[error("{0}")]
    Conflict(String),
    /// 400
    #[error("{0}")]
    BadRequest(String),
    /// 413
    #[error("{0}")]
    TooLarge(String),
    /// 415
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429
    #[error("{0}")]
    TooManyRequests(String),
    /// 422
    #[error("{}", summary(.0))]
    Invalid(Vec<FieldError>),
    /// 503
    #[error("{0}")]
    Unavailable(String),
    /// 500
    #[error("something went wrong on our side (reference {0}); it has been logged")]
    Internal(String),
}

fn summary(errors: &[FieldError]) -> String {
    match errors {
        [one] => format!("{}: {}", one.field, one.message),
        _ => format!("{} fields need attention", errors.len()),
    }
}

impl AppError {
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::BadRequest(_) => 400,
            Self::TooLarge(_) => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::TooManyRequests(_) => 429,
            Self::Invalid(_) => 422,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }
    /// A stable machine-readable code for the JSON API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::BadRequest(_) => "bad_request",
            Self::TooLarge(_) => "too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::Invalid(_) => "validation_failed",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Invalid(e) => e,
            _ => &[],
        }
    }
}

impl From<TransitionError> for AppError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::SelfApproval
            | TransitionError::NotAdmin(_)
            | TransitionError::NotApprover { .. }
            | TransitionError::NotRequester
            | TransitionError::OwnBreakGlass => Self::Forbidden(e.to_string()),
            TransitionError::Invalid { .. } | TransitionError::AlreadyApproved => Self::Conflict(e.to_string()),
        }
    }
}

impl leptos::server_fn::error::FromServerFnError for AppError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        use leptos::server_fn::error::ServerFnErrorErr as E;
        match value {
            E::Request(msg) => Self::Unavailable(format!("could not reach the portal: {msg}")),
            E::Args(msg) | E::Deserialization(msg) | E::MissingArg(msg) => Self::BadRequest(msg),
            other => Self::Internal(other.to_string()),
        }
    }
}
