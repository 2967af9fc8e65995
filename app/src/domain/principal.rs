//! Who is acting: a signed-in person (or, later, a token acting for one) and their role.
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Anyone signed in: submits requests and reads their state.
    Requester,
    /// Approves, rejects and retries other people's requests.
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "requester" => Some(Self::Requester),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Requester => "requester",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signed-in actor. `id` is stable and unique (`local:alice`); `name` is for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub role: Role,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The actor recorded for things the portal does by itself (the apply worker).
pub const SYSTEM_ACTOR: &str = "system:worker";

/// Checks a local sign-in user name: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn parse_local_username(raw: &str) -> Result<String, String> {
    let u = raw.trim();
    if u.is_empty() {
        return Err("enter a user name".into());
    }
    if u.len() > 64 {
        return Err("a user name can be at most 64 characters".into());
    }
    if !u.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err("a user name starts with a letter or digit".into());
    }
    if let Some(c) = u.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c))) {
        return Err(format!("`{c}` is not allowed; use lowercase letters, digits and . _ -"));
    }
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_usernames_are_simple() {
        assert_eq!(parse_local_username(" alice "), Ok("alice".into()));
        assert!(parse_local_username("").is_err());
        assert!(parse_local_username("Alice").is_err());
        assert!(parse_local_username("-x").is_err());
        assert!(parse_local_username("a<b").is_err());
        assert!(parse_local_username(&"a".repeat(65)).is_err());
    }
}
