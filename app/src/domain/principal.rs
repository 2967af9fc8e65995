//! Who is acting, what they may do, and through what (a session or an API token).
//!
//! Authorization lives here as one pure table ([`Principal::can`]) that the
//! service consults for every use case; approval rights come from the
//! approval policy ([`super::approval`]), which uses the principal's groups.
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Anyone signed in: submits requests and follows their own. A member of
    /// an approval group also decides, and reads, the requests its rule
    /// covers, and nothing more.
    Requester,
    /// `auth.admin_group`: decides requests (as the approval policy allows),
    /// reads every request, retries, adopts, accepts and restores.
    Admin,
    /// Reads everything (every request, the audit trail), changes nothing.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Requester, Role::Admin, Role::Auditor];
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw.trim())
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Requester => "requester",
            Self::Admin => "admin",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Submit requests and read its owner's requests; nothing else.
    Submit,
    /// Everything its owner may do, except managing tokens.
    User,
}

impl TokenScope {
    pub const ALL: [TokenScope; 2] = [TokenScope::Submit, TokenScope::User];
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw.trim())
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::User => "user",
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Self::Submit => "submit requests only",
            Self::User => "act as me",
        }
    }
}

/// The API token a request was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TokenUse {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
}

/// Things a principal may do; [`Principal::can`] is the whole table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Ask for a repository, production access or its removal.
    SubmitRequest,
    /// See every request (not only one's own).
    ReadAllRequests,
    /// See one's own requests.
    ReadOwnRequests,
    /// See the repository inventory.
    ReadRepositories,
    /// Approve or reject (which kinds: the approval policy's groups decide).
    Decide,
    /// Retry failed applies; adopt, check, accept and restore repositories.
    Operate,
    /// Browse, export and verify the audit trail.
    ReadAudit,
    /// Create and revoke one's own API tokens (only from a browser session).
    ManageTokens,
    /// See who has signed in, with their sessions and tokens.
    ReadPeople,
    /// End a person's sessions and API tokens at once.
    ManagePeople,
}

/// The signed-in actor. `id` is stable and unique (`local:alice`,
/// `oidc:<sub>@<issuer host and path>`); `name` is for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Groups from the identity provider (or the local sign-in's role), for the approval policy.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Set when the request came with an API token instead of a session.
    #[serde(default)]
    pub token: Option<TokenUse>,
}

impl Principal {
    pub fn new(id: impl Into<String>, name: impl Into<String>, role: Role, groups: Vec<String>) -> Self {
        Self { id: id.into(), name: name.into(), role, groups, token: None }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The authorization table: role first, then the token's scope narrows it.
    pub fn can(&self, c: Capability) -> bool {
        use Capability::*;
        let by_role = match self.role {
            Role::Admin => true,
            // Deciding also needs a group the approval policy names (`ApprovalRule::may_decide`).
            Role::Requester => {
                matches!(c, SubmitRequest | ReadOwnRequests | ReadRepositories | ManageTokens | Decide)
            }
            Role::Auditor => matches!(
                c,
                ReadAllRequests | ReadOwnRequests | ReadRepositories | ReadAudit | ManageTokens | ReadPeople
            ),
        };
        let by_token = match self.token.as_ref().map(|t| t.scope) {
            None => true,
            Some(TokenScope::User) => c != ManageTokens,
            Some(TokenScope::Submit) => matches!(c, SubmitRequest | ReadOwnRequests),
        };
        by_role && by_token
    }

    /// How the audit trail names the means, when it is not a browser session.
    pub fn via(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("API token #{} ({})", t.id, t.name))
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

/// How groups become roles (OIDC) and which groups a local role stands for.
#[derive(Debug, Clone)]
pub struct Roles {
    pub admin_group: String,
    pub auditor_group: String,
    /// Every group named by the approval policy: members decide what their
    /// rule covers (not admins unless also in `admin_group`).
    pub approver_groups: Vec<String>,
    /// Empty: anyone the provider vouches for may sign in.
    pub allowed_groups: Vec<String>,
}

impl Roles {
    pub fn role_for(&self, groups: &[String]) -> Role {
        if groups.contains(&self.admin_group) {
            Role::Admin
        } else if groups.contains(&self.auditor_group) {
            Role::Auditor
        } else {
            Role::Requester
        }
    }

    pub fn may_sign_in(&self, groups: &[String]) -> bool {
        self.allowed_groups.is_empty()
            || groups.iter().any(|g| {
                self.allowed_groups.contains(g)
                    || self.approver_groups.contains(g)
                    || *g == self.admin_group
                    || *g == self.auditor_group
            })
    }

    /// The groups of a local "approver": the approval policy's groups other
    /// than the admin group (they sign in with the requester role).
    pub fn local_approver_groups(&self) -> Vec<String> {
        self.approver_groups.iter().filter(|g| **g != self.admin_group).cloned().collect()
    }

    /// The groups a local sign-in with `role` stands for.
    pub fn local_groups(&self, role: Role) -> Vec<String> {
        match role {
            Role::Requester => vec![],
            Role::Auditor => vec![self.auditor_group.clone()],
            Role::Admin => {
                let mut g = vec![self.admin_group.clone()];
                g.extend(self.approver_groups.iter().filter(|a| **a != self.admin_group).cloned());
                g
            }
        }
    }
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

    #[test]
    fn auditors_read_everything_and_change_nothing() {
        let a = Principal::new("local:a", "a", Role::Auditor, vec![]);
        assert!(a.can(Capability::ReadAudit) && a.can(Capability::ReadAllRequests));
        for c in [Capability::SubmitRequest, Capability::Decide, Capability::Operate] {
            assert!(!a.can(c), "{c:?}");
        }
    }

    #[test]
    fn a_submit_token_only_submits_and_reads_its_own() {
        let mut admin = Principal::new("local:b", "b", Role::Admin, vec![]);
        admin.token = Some(TokenUse { id: 1, name: "ci".into(), scope: TokenScope::Submit });
        assert!(admin.can(Capability::SubmitRequest) && admin.can(Capability::ReadOwnRequests));
        for c in [Capability::Decide, Capability::ReadAudit, Capability::ReadAllRequests, Capability::ManageTokens] {
            assert!(!admin.can(c), "{c:?}");
        }
        admin.token = Some(TokenUse { id: 1, name: "ci".into(), scope: TokenScope::User });
        assert!(admin.can(Capability::Decide) && !admin.can(Capability::ManageTokens));
        assert_eq!(admin.via().as_deref(), Some("API token #1 (ci)"));
    }

    #[test]
    fn requesters_submit_and_follow_their_own() {
        let r = Principal::new("local:c", "c", Role::Requester, vec![]);
        assert!(r.can(Capability::SubmitRequest) && r.can(Capability::ReadOwnRequests));
        assert!(!r.can(Capability::ReadAllRequests) && !r.can(Capability::ReadAudit) && !r.can(Capability::Operate));
    }

    #[test]
    fn an_approval_group_makes_an_approver_not_an_admin() {
        let roles = Roles {
            admin_group: "ecr-admins".into(),
            auditor_group: "ecr-auditors".into(),
            approver_groups: vec!["prod-approvers".into()],
            allowed_groups: vec![],
        };
        assert_eq!(roles.role_for(&["prod-approvers".into()]), Role::Requester);
        assert_eq!(roles.role_for(&["prod-approvers".into(), "ecr-admins".into()]), Role::Admin);
        let approver = Principal::new("oidc:p", "p", Role::Requester, vec!["prod-approvers".into()]);
        let rule = crate::domain::approval::ApprovalRule::new(&["prod-approvers"], 1);
        assert!(rule.may_decide(&approver));
        for c in [Capability::Operate, Capability::ReadAllRequests, Capability::ReadAudit] {
            assert!(!approver.can(c), "{c:?}");
        }
        let plain = Principal::new("oidc:q", "q", Role::Requester, vec![]);
        assert!(!rule.may_decide(&plain), "deciding still needs the rule's group");
    }
}
