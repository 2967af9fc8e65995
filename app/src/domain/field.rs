//! One problem with one input field: what every parser of people's input reports, so a
//! form can show it beside the field and the JSON API can name it.
use serde::{Deserialize, Serialize};

/// One problem with one field, e.g. `{field: "name", message: "use lowercase letters only"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_string(), message: message.into() }
    }
}
