//! The approval policy: who may decide which kind of request, and how many
//! distinct approvers each kind needs. Pure data, loaded from configuration.
//! (Which rule decides a request is `request.rs`: `ApprovalPolicy::rule`.)
use super::principal::{Capability, Principal};
use serde::{Deserialize, Serialize};

/// The rule for one kind of request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApprovalRule {
    /// Members of any of these groups may approve or reject.
    pub groups: Vec<String>,
    /// Distinct approvers needed (never the requester).
    pub required: u32,
}

impl ApprovalRule {
    pub fn new(groups: &[&str], required: u32) -> Self {
        Self { groups: groups.iter().map(|g| g.to_string()).collect(), required }
    }

    /// Whether `p` may approve or reject requests under this rule.
    pub fn may_decide(&self, p: &Principal) -> bool {
        p.can(Capability::Decide) && p.groups.iter().any(|g| self.groups.contains(g))
    }

    pub fn describe_groups(&self) -> String {
        self.groups.join(", ")
    }
}

/// Rules per request kind, and how long a request may wait for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApprovalPolicy {
    pub create_repository: ApprovalRule,
    pub grant_production: ApprovalRule,
    pub revoke_production: ApprovalRule,
    pub restore_repository: ApprovalRule,
    /// Promotions of images to release tags (by default the production grant's rule).
    pub promote_image: ApprovalRule,
    /// A pending request is closed as expired after this long (milliseconds).
    pub pending_expiry_ms: i64,
}

impl ApprovalPolicy {
    /// One approval from `group` for every kind.
    pub fn single(group: &str, pending_expiry_ms: i64) -> Self {
        let rule = ApprovalRule::new(&[group], 1);
        Self {
            create_repository: rule.clone(),
            grant_production: rule.clone(),
            revoke_production: rule.clone(),
            restore_repository: rule.clone(),
            promote_image: rule,
            pending_expiry_ms,
        }
    }
}

/// One approval given while the request waits (the current round only: a
/// request sent back for re-approval starts a new round).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Approval {
    pub approver: String,
    pub at: i64,
    pub comment: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::principal::{Role, TokenScope, TokenUse};

    #[test]
    fn deciding_needs_a_listed_group_and_the_decide_capability() {
        let rule = ApprovalRule::new(&["prod-approvers"], 2);
        let approver = Principal::new("oidc:x#1", "x", Role::Admin, vec!["prod-approvers".into()]);
        assert!(rule.may_decide(&approver));
        let other_admin = Principal::new("oidc:x#2", "y", Role::Admin, vec!["ecr-admins".into()]);
        assert!(!rule.may_decide(&other_admin));
        let auditor = Principal::new("oidc:x#3", "z", Role::Auditor, vec!["prod-approvers".into()]);
        assert!(!rule.may_decide(&auditor));
        let mut via_submit_token = approver.clone();
        via_submit_token.token = Some(TokenUse { id: 1, name: "ci".into(), scope: TokenScope::Submit });
        assert!(!rule.may_decide(&via_submit_token));
    }
}
