//! What can go wrong in a use case, in terms its caller can act on.
//!
//! The server functions and the HTTP layer turn these into the UI's
//! [`AppError`] at their boundary (`From<Error> for AppError`): a user's error
//! keeps its message; an internal one is logged in full and the person sees
//! only a reference to quote.
use app::domain::form::FieldError;
use app::domain::request::TransitionError;
use app::error::AppError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that does not parse, field by field.
    #[error("{}", AppError::Invalid(.0.clone()))]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    /// The request is not in a state that allows this (or someone was first).
    #[error("{0}")]
    Conflict(String),
    /// AWS could not be reached or read right now; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// An internal failure, already logged with this reference.
    #[error("internal error (reference {0})")]
    Logged(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// One invalid field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Logs an internal failure in full and gives the user only a reference.
pub fn internal(context: &str, err: impl std::fmt::Display) -> Error {
    let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    tracing::error!(reference, "{context}: {err:#}");
    Error::Logged(reference)
}

impl From<TransitionError> for Error {
    fn from(e: TransitionError) -> Self {
        match AppError::from(e) {
            AppError::Forbidden(m) => Self::Forbidden(m),
            other => Self::Conflict(other.to_string()),
        }
    }
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(fields) => Self::Invalid(fields),
            Error::NotFound(m) => Self::NotFound(m),
            Error::Forbidden(m) => Self::Forbidden(m),
            Error::Conflict(m) => Self::Conflict(m),
            Error::Unavailable(m) => Self::Unavailable(m),
            Error::Database(e) => match internal("database", e) {
                Error::Logged(reference) => Self::Internal(reference),
                _ => Self::Internal(String::new()),
            },
            Error::Logged(reference) => Self::Internal(reference),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_error_reaches_people_as_a_reference_only() {
        let e = AppError::from(Error::Database(sqlx::Error::RowNotFound));
        let AppError::Internal(reference) = &e else { panic!("{e:?}") };
        assert_eq!(reference.len(), 12);
        assert!(!e.to_string().contains("no rows"), "{e}");
    }

    #[test]
    fn a_refused_transition_keeps_its_message_and_kind() {
        assert!(matches!(Error::from(TransitionError::SelfApproval), Error::Forbidden(_)));
        assert!(matches!(Error::from(TransitionError::AlreadyApproved), Error::Conflict(_)));
    }
}
