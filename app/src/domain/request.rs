//! A request and its state machine. Nothing else writes a status.
//!
//! ```text
//! pending ──approve──▶ approved ──start_apply──▶ applying ──succeed──▶ applied
//!    │                    ▲   ▲                     │  │
//!    └─reject─▶ rejected  │   └──────retry── failed ◀┘  │ fail
//!                         └─approve── needs_reapproval ◀┘ stop_for_reapproval
//! ```
//! Rules: only the approval policy's groups decide; nobody approves their own
//! request, or approves twice; a request moves to `approved` when the rule's
//! number of distinct approvals is reached; every other move from a state is
//! an error naming the state. `needs_reapproval` is decided like `pending`:
//! the live policy changed since the plan was approved (a new round).
use super::approval::{Approval, ApprovalPolicy, ApprovalRule};
use super::name::RepoName;
use super::principal::{Capability, Principal};
use super::settings::RepositorySpec;
use serde::{Deserialize, Serialize};
use std::fmt;

pub const MAX_COMMENT: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Applying,
    Applied,
    Rejected,
    Failed,
    NeedsReapproval,
    /// Taken back by its requester before a decision.
    Withdrawn,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::Approved,
        Status::Applying,
        Status::Applied,
        Status::Rejected,
        Status::Failed,
        Status::NeedsReapproval,
        Status::Withdrawn,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Applying => "applying",
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::NeedsReapproval => "needs_reapproval",
            Self::Withdrawn => "withdrawn",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
    /// Open requests block another request for the same repository.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Pending | Self::Approved | Self::Applying | Self::NeedsReapproval)
    }
    /// Waiting for an admin's decision.
    pub fn is_awaiting_decision(&self) -> bool {
        matches!(self, Self::Pending | Self::NeedsReapproval)
    }
    /// Still moving without anyone acting: the UI keeps polling.
    pub fn is_in_flight(&self) -> bool {
        matches!(self, Self::Approved | Self::Applying)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("you cannot approve your own request; another admin has to")]
    SelfApproval,
    #[error("only admins can {} requests", verb(.0))]
    NotAdmin(&'static str),
    #[error("only members of {groups} can decide this kind of request")]
    NotApprover { groups: String },
    #[error("you have already approved this request; it needs another approver")]
    AlreadyApproved,
    #[error("this request is {from}; it cannot be {action}")]
    Invalid { from: Status, action: &'static str },
    #[error("only the person who asked can withdraw a request; an approver rejects it instead")]
    NotRequester,
    #[error("break glass is for an admin who is not the requester; ask another admin")]
    OwnBreakGlass,
}

fn verb(action: &str) -> &str {
    match action {
        "approved" => "approve",
        "rejected" => "reject",
        other => other,
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequestKind {
    /// A new repository, optionally pullable by production from the start.
    CreateRepository {
        spec: RepositorySpec,
        grant_production: bool,
    },
    /// Read-only pull access for the production account, until a date (unix ms) or for good.
    GrantProduction {
        repository: RepoName,
        until: Option<i64>,
    },
    RevokeProduction {
        repository: RepoName,
    },
    /// Put a drifted repository back to its approved settings and access.
    RestoreRepository {
        repository: RepoName,
        /// Putting it back gives production pull access it does not have now:
        /// a production grant, decided by the grant's rule.
        #[serde(default)]
        grants_production: bool,
    },
    /// Give a tested image (by digest) a release tag that production pulls.
    PromoteImage {
        repository: RepoName,
        digest: String,
        tag: String,
        /// The tag named this other image when asked, and the request says to move it.
        #[serde(default)]
        moves_from: Option<String>,
    },
    /// Change a repository's settings: tag mutability, scanning, lifecycle, tags.
    UpdateRepository {
        /// The approved settings when it was asked for.
        before: RepositorySpec,
        /// The settings wanted, all of them.
        spec: RepositorySpec,
        /// The requester says the lifecycle may expire protected images.
        #[serde(default)]
        expire_protected: bool,
    },
    /// Delete a repository and its images (ECR's force delete).
    DeleteRepository {
        repository: RepoName,
        /// Production can pull it now: deleting takes images production may run,
        /// so it is decided by the production grant's rule.
        #[serde(default)]
        production_can_pull: bool,
    },
}

impl RequestKind {
    pub fn repository(&self) -> &RepoName {
        match self {
            Self::CreateRepository { spec, .. } | Self::UpdateRepository { spec, .. } => &spec.name,
            Self::GrantProduction { repository, .. }
            | Self::RevokeProduction { repository }
            | Self::RestoreRepository { repository, .. }
            | Self::DeleteRepository { repository, .. }
            | Self::PromoteImage { repository, .. } => repository,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::CreateRepository { .. } => "create_repository",
            Self::GrantProduction { .. } => "grant_production",
            Self::RevokeProduction { .. } => "revoke_production",
            Self::RestoreRepository { .. } => "restore_repository",
            Self::DeleteRepository { .. } => "delete_repository",
            Self::UpdateRepository { .. } => "update_repository",
            Self::PromoteImage { .. } => "promote_image",
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Self::CreateRepository { .. } => "new repository",
            Self::GrantProduction { .. } => "grant production access",
            Self::RevokeProduction { .. } => "revoke production access",
            Self::RestoreRepository { .. } => "restore approved state",
            Self::DeleteRepository { .. } => "delete repository",
            Self::UpdateRepository { .. } => "change settings",
            Self::PromoteImage { .. } => "promote image",
        }
    }
    /// Whether applying it writes the repository policy.
    pub fn touches_policy(&self) -> bool {
        !matches!(
            self,
            Self::CreateRepository { grant_production: false, .. }
                | Self::DeleteRepository { .. }
                | Self::UpdateRepository { .. }
                | Self::PromoteImage { .. }
        )
    }
}

/// A request, with its decision and apply state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Request {
    pub id: i64,
    pub kind: RequestKind,
    pub justification: String,
    pub requester: String,
    pub status: Status,
    pub created_at: i64,
    pub updated_at: i64,
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
    pub failure: Option<String>,
    pub attempts: u32,
}

impl Request {
    fn moved(mut self, to: Status, at: i64) -> Self {
        self.status = to;
        self.updated_at = at;
        self
    }

    fn expect(&self, from: Status, action: &'static str) -> Result<(), TransitionError> {
        if self.status == from {
            Ok(())
        } else {
            Err(TransitionError::Invalid { from: self.status, action })
        }
    }

    /// Whether `by` may approve or reject now under `rule`, given the
    /// approvals of this round (also used by the UI to show the buttons).
    pub fn check_decision(
        &self,
        by: &Principal,
        action: &'static str,
        rule: &ApprovalRule,
        approvals: &[Approval],
    ) -> Result<(), TransitionError> {
        if !by.can(Capability::Decide) {
            return Err(TransitionError::NotAdmin(action));
        }
        if !rule.may_decide(by) {
            return Err(TransitionError::NotApprover { groups: rule.describe_groups() });
        }
        if !self.status.is_awaiting_decision() {
            return Err(TransitionError::Invalid { from: self.status, action });
        }
        if action == "approved" && by.id == self.requester {
            return Err(TransitionError::SelfApproval);
        }
        if action == "approved" && approvals.iter().any(|a| a.approver == by.id) {
            return Err(TransitionError::AlreadyApproved);
        }
        Ok(())
    }

    /// Records one approval. Returns the request, moved to `approved` only
    /// when this approval completes the rule (the approvals counted are the
    /// distinct approvers of this round, never the requester).
    pub fn approve(
        self,
        by: &Principal,
        rule: &ApprovalRule,
        approvals: &[Approval],
        comment: Option<String>,
        at: i64,
    ) -> Result<Self, TransitionError> {
        self.check_decision(by, "approved", rule, approvals)?;
        let counted = approvals.iter().filter(|a| a.approver != self.requester).count() + 1;
        if counted < rule.required as usize {
            let mut r = self;
            r.updated_at = at;
            return Ok(r);
        }
        let mut r = self.moved(Status::Approved, at);
        r.decided_by = Some(by.id.clone());
        r.decision_comment = comment;
        Ok(r)
    }

    /// The portal closes a waiting request itself (superseded by an automatic revoke).
    pub fn supersede(self, why: String, at: i64) -> Result<Self, TransitionError> {
        if !self.status.is_awaiting_decision() {
            return Err(TransitionError::Invalid { from: self.status, action: "superseded" });
        }
        let mut r = self.moved(Status::Rejected, at);
        r.decided_by = Some(super::principal::SYSTEM_ACTOR.into());
        r.decision_comment = Some(why);
        Ok(r)
    }

    /// Closes a request that waited longer than the policy allows.
    /// The requester takes the request back while it waits for a decision.
    /// Nobody else can: an approver rejects instead.
    pub fn withdraw(self, by: &Principal, at: i64) -> Result<Self, TransitionError> {
        if by.id != self.requester {
            return Err(TransitionError::NotRequester);
        }
        if !self.status.is_awaiting_decision() {
            return Err(TransitionError::Invalid { from: self.status, action: "withdrawn" });
        }
        let mut r = self.moved(Status::Withdrawn, at);
        r.decided_by = Some(by.id.clone());
        Ok(r)
    }

    /// Closes a request that waited too long for a decision (new, or sent back for re-approval).
    pub fn expire(self, at: i64, why: String) -> Result<Self, TransitionError> {
        if !self.status.is_awaiting_decision() {
            return Err(TransitionError::Invalid { from: self.status, action: "expired" });
        }
        let mut r = self.moved(Status::Rejected, at);
        r.decided_by = Some(super::principal::SYSTEM_ACTOR.into());
        r.decision_comment = Some(why);
        Ok(r)
    }

    pub fn reject(
        self,
        by: &Principal,
        rule: &ApprovalRule,
        comment: Option<String>,
        at: i64,
    ) -> Result<Self, TransitionError> {
        self.check_decision(by, "rejected", rule, &[])?;
        let mut r = self.moved(Status::Rejected, at);
        r.decided_by = Some(by.id.clone());
        r.decision_comment = comment;
        Ok(r)
    }

    pub fn start_apply(self, at: i64) -> Result<Self, TransitionError> {
        self.expect(Status::Approved, "applied")?;
        let mut r = self.moved(Status::Applying, at);
        r.attempts += 1;
        r.failure = None;
        Ok(r)
    }

    /// Takes over an apply whose worker stopped (its lease ran out). The
    /// service decides that the lease has expired; every step is idempotent.
    pub fn resume(self, at: i64) -> Result<Self, TransitionError> {
        self.expect(Status::Applying, "resumed")?;
        let mut r = self.moved(Status::Applying, at);
        r.attempts += 1;
        Ok(r)
    }

    pub fn succeed(self, at: i64) -> Result<Self, TransitionError> {
        self.expect(Status::Applying, "marked applied")?;
        Ok(self.moved(Status::Applied, at))
    }

    /// A temporary AWS failure: back to `approved`, to be claimed again later.
    pub fn defer(self, reason: String, at: i64) -> Result<Self, TransitionError> {
        self.expect(Status::Applying, "deferred")?;
        let mut r = self.moved(Status::Approved, at);
        r.failure = Some(reason);
        Ok(r)
    }

    /// The live policy changed since approval: an admin has to look again.
    pub fn stop_for_reapproval(self, reason: String, at: i64) -> Result<Self, TransitionError> {
        self.expect(Status::Applying, "sent back for re-approval")?;
        let mut r = self.moved(Status::NeedsReapproval, at);
        r.failure = Some(reason);
        Ok(r)
    }

    pub fn fail(self, reason: String, at: i64) -> Result<Self, TransitionError> {
        self.expect(Status::Applying, "marked failed")?;
        let mut r = self.moved(Status::Failed, at);
        r.failure = Some(reason);
        Ok(r)
    }

    /// An admin who is not the requester approves it alone, at once, with a
    /// reason (break glass); another admin reviews it afterwards.
    pub fn break_glass(self, by: &Principal, reason: String, at: i64) -> Result<Self, TransitionError> {
        if !by.can(Capability::Operate) {
            return Err(TransitionError::NotAdmin("break glass on"));
        }
        if by.id == self.requester {
            return Err(TransitionError::OwnBreakGlass);
        }
        if !self.status.is_awaiting_decision() {
            return Err(TransitionError::Invalid { from: self.status, action: "applied by break glass" });
        }
        let mut r = self.moved(Status::Approved, at);
        r.decided_by = Some(by.id.clone());
        r.decision_comment = Some(reason);
        Ok(r)
    }

    /// The request that undoes this one once applied (a break-glass review's
    /// `revert`); `None` when nothing can undo it.
    pub fn undo(&self) -> Option<RequestKind> {
        match &self.kind {
            RequestKind::GrantProduction { repository, .. } => {
                Some(RequestKind::RevokeProduction { repository: repository.clone() })
            }
            RequestKind::RevokeProduction { repository } => {
                Some(RequestKind::GrantProduction { repository: repository.clone(), until: None })
            }
            RequestKind::CreateRepository { spec, grant_production } => Some(RequestKind::DeleteRepository {
                repository: spec.name.clone(),
                production_can_pull: *grant_production,
            }),
            RequestKind::UpdateRepository { before, spec, .. } => Some(RequestKind::UpdateRepository {
                before: spec.clone(),
                spec: before.clone(),
                expire_protected: false,
            }),
            // Deleted images are gone; a restore put back what was approved; a release tag stays
            // (a new promotion moves it).
            RequestKind::DeleteRepository { .. }
            | RequestKind::RestoreRepository { .. }
            | RequestKind::PromoteImage { .. } => None,
        }
    }

    pub fn retry(self, by: &Principal, at: i64) -> Result<Self, TransitionError> {
        if !by.can(Capability::Operate) {
            return Err(TransitionError::NotAdmin("retry"));
        }
        self.expect(Status::Failed, "retried")?;
        Ok(self.moved(Status::Approved, at))
    }
}

impl ApprovalPolicy {
    /// The rule a request is decided by. A new repository that also grants
    /// production access is a production grant too: it takes the grant's
    /// groups and the larger number of approvers of the two rules.
    pub fn rule(&self, kind: &RequestKind) -> ApprovalRule {
        match kind {
            RequestKind::CreateRepository { grant_production: true, .. } => ApprovalRule {
                groups: self.grant_production.groups.clone(),
                required: self.grant_production.required.max(self.create_repository.required),
            },
            RequestKind::CreateRepository { .. } => self.create_repository.clone(),
            RequestKind::GrantProduction { .. } => self.grant_production.clone(),
            RequestKind::RevokeProduction { .. } => self.revoke_production.clone(),
            RequestKind::RestoreRepository { grants_production: true, .. } => ApprovalRule {
                groups: self.grant_production.groups.clone(),
                required: self.grant_production.required.max(self.restore_repository.required),
            },
            RequestKind::RestoreRepository { .. } => self.restore_repository.clone(),
            // Deleting what production pulls is decided like a production grant; otherwise like a new repository.
            RequestKind::DeleteRepository { production_can_pull: true, .. } => ApprovalRule {
                groups: self.grant_production.groups.clone(),
                required: self.grant_production.required.max(self.create_repository.required),
            },
            RequestKind::DeleteRepository { .. } => self.create_repository.clone(),
            // Settings are decided like a new repository's.
            RequestKind::UpdateRepository { .. } => self.create_repository.clone(),
            RequestKind::PromoteImage { .. } => self.promote_image.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::form::RepositoryRequestInput;
    use crate::domain::name::Namespace;
    use crate::domain::principal::Role;

    fn who(id: &str, role: Role) -> Principal {
        Principal::new(id, id, role, vec!["ecr-admins".into()])
    }

    fn one() -> ApprovalRule {
        ApprovalRule::new(&["ecr-admins"], 1)
    }

    fn approval(by: &str) -> Approval {
        Approval { approver: by.into(), at: 1, comment: None }
    }

    fn pending() -> Request {
        let input = RepositoryRequestInput {
            name: "app".into(),
            team: "t".into(),
            cost_center: "c".into(),
            justification: "j".into(),
            ..Default::default()
        };
        let spec = input.parse(&Namespace::parse("crytera").expect("ns")).expect("valid").spec;
        Request {
            id: 1,
            kind: RequestKind::CreateRepository { spec, grant_production: false },
            justification: "j".into(),
            requester: "local:alice".into(),
            status: Status::Pending,
            created_at: 0,
            updated_at: 0,
            decided_by: None,
            decision_comment: None,
            failure: None,
            attempts: 0,
        }
    }

    #[test]
    fn the_happy_path_reaches_applied() {
        let admin = who("local:bob", Role::Admin);
        let r = pending().approve(&admin, &one(), &[], Some("ok".into()), 1).expect("approve");
        assert_eq!((r.status, r.decided_by.as_deref()), (Status::Approved, Some("local:bob")));
        let r = r.start_apply(2).expect("start");
        assert_eq!((r.status, r.attempts), (Status::Applying, 1));
        assert_eq!(r.succeed(3).expect("succeed").status, Status::Applied);
    }

    #[test]
    fn approving_own_request_is_forbidden_even_for_admins() {
        let alice_admin = who("local:alice", Role::Admin);
        assert_eq!(pending().approve(&alice_admin, &one(), &[], None, 1), Err(TransitionError::SelfApproval));
        // Rejecting (withdrawing) one's own request is allowed.
        assert_eq!(pending().reject(&alice_admin, &one(), None, 1).expect("reject").status, Status::Rejected);
    }

    #[test]
    fn requesters_cannot_decide() {
        // A requester outside the rule's groups (an approver is a requester inside them).
        let carol = Principal::new("local:carol", "carol", Role::Requester, vec![]);
        assert_eq!(
            pending().approve(&carol, &one(), &[], None, 1),
            Err(TransitionError::NotApprover { groups: "ecr-admins".into() })
        );
        let auditor = Principal::new("local:aude", "aude", Role::Auditor, vec!["ecr-admins".into()]);
        assert_eq!(pending().approve(&auditor, &one(), &[], None, 1), Err(TransitionError::NotAdmin("approved")));
        let outsider = Principal::new("local:dan", "dan", Role::Admin, vec!["other".into()]);
        assert_eq!(
            pending().approve(&outsider, &one(), &[], None, 1),
            Err(TransitionError::NotApprover { groups: "ecr-admins".into() })
        );
        assert_eq!(
            pending().reject(&carol, &one(), None, 1),
            Err(TransitionError::NotApprover { groups: "ecr-admins".into() })
        );
    }

    #[test]
    fn approving_twice_is_an_invalid_transition() {
        let admin = who("local:bob", Role::Admin);
        let r = pending().approve(&admin, &one(), &[], None, 1).expect("first");
        assert_eq!(
            r.approve(&admin, &one(), &[], None, 2),
            Err(TransitionError::Invalid { from: Status::Approved, action: "approved" })
        );
    }

    #[test]
    fn failed_requests_can_be_retried_by_admins_only() {
        let admin = who("local:bob", Role::Admin);
        let failed = pending()
            .approve(&admin, &one(), &[], None, 1)
            .and_then(|r| r.start_apply(2))
            .and_then(|r| r.fail("boom".into(), 3))
            .expect("failed");
        assert_eq!(failed.failure.as_deref(), Some("boom"));
        assert!(failed.clone().retry(&who("local:carol", Role::Requester), 4).is_err());
        let again = failed.retry(&admin, 4).expect("retry");
        assert_eq!(again.status, Status::Approved);
        assert_eq!(again.start_apply(5).expect("start").failure, None);
    }

    #[test]
    fn a_temporary_failure_defers_the_apply_back_to_approved() {
        let admin = who("local:bob", Role::Admin);
        let applying =
            pending().approve(&admin, &one(), &[], None, 1).and_then(|r| r.start_apply(2)).expect("applying");
        let deferred = applying.defer("throttled".into(), 3).expect("defer");
        assert_eq!((deferred.status, deferred.failure.as_deref()), (Status::Approved, Some("throttled")));
        assert!(pending().defer("x".into(), 3).is_err());
    }

    #[test]
    fn only_applying_requests_can_be_resumed() {
        let admin = who("local:bob", Role::Admin);
        let applying =
            pending().approve(&admin, &one(), &[], None, 1).and_then(|r| r.start_apply(2)).expect("applying");
        let resumed = applying.resume(3).expect("resume");
        assert_eq!((resumed.status, resumed.attempts), (Status::Applying, 2));
        assert!(pending().resume(3).is_err());
    }

    #[test]
    fn a_request_sent_back_for_reapproval_is_decided_again() {
        let admin = who("local:bob", Role::Admin);
        let back = pending()
            .approve(&admin, &one(), &[], None, 1)
            .and_then(|r| r.start_apply(2))
            .and_then(|r| r.stop_for_reapproval("policy changed".into(), 3))
            .expect("sent back");
        assert_eq!(back.status, Status::NeedsReapproval);
        assert!(back.status.is_open());
        assert_eq!(
            back.clone().approve(&who("local:alice", Role::Admin), &one(), &[], None, 4),
            Err(TransitionError::SelfApproval)
        );
        assert_eq!(back.approve(&admin, &one(), &[], None, 4).expect("re-approved").status, Status::Approved);
    }

    #[test]
    fn terminal_states_refuse_everything() {
        let admin = who("local:bob", Role::Admin);
        let rejected = pending().reject(&admin, &one(), None, 1).expect("reject");
        assert!(rejected.clone().approve(&admin, &one(), &[], None, 2).is_err());
        assert!(rejected.clone().start_apply(2).is_err());
        assert!(rejected.clone().retry(&admin, 2).is_err());
        assert!(rejected.succeed(2).is_err());
    }

    #[test]
    fn two_approver_rule_needs_two_distinct_people_other_than_the_requester() {
        let two = ApprovalRule::new(&["ecr-admins"], 2);
        let bob = who("local:bob", Role::Admin);
        let r = pending().approve(&bob, &two, &[], None, 1).expect("first");
        assert_eq!(r.status, Status::Pending, "one approval of two leaves it pending");
        assert_eq!(
            r.clone().approve(&bob, &two, &[approval("local:bob")], None, 2),
            Err(TransitionError::AlreadyApproved)
        );
        let alice = who("local:alice", Role::Admin);
        assert_eq!(
            r.clone().approve(&alice, &two, &[approval("local:bob")], None, 2),
            Err(TransitionError::SelfApproval)
        );
        // An approval recorded for the requester (it cannot happen, but) never counts.
        let with_own = [approval("local:alice"), approval("local:bob")];
        let carl = who("local:carl", Role::Admin);
        assert_eq!(r.clone().approve(&carl, &two, &with_own, None, 2).expect("second").status, Status::Approved);
        let done = r.approve(&carl, &two, &[approval("local:bob")], None, 2).expect("second");
        assert_eq!((done.status, done.decided_by.as_deref()), (Status::Approved, Some("local:carl")));
    }

    #[test]
    fn only_pending_requests_expire() {
        let r = pending().expire(5, "waited too long".into()).expect("expired");
        assert_eq!(
            (r.status, r.decided_by.as_deref()),
            (Status::Rejected, Some(crate::domain::principal::SYSTEM_ACTOR))
        );
        assert!(r.expire(6, "again".into()).is_err());
    }

    #[test]
    fn break_glass_is_for_another_admin_and_only_while_waiting() {
        let bob = who("local:bob", Role::Admin);
        let r = pending().break_glass(&bob, "outage".into(), 5).expect("break glass");
        assert_eq!(
            (r.status, r.decided_by.as_deref(), r.decision_comment.as_deref()),
            (Status::Approved, Some("local:bob"), Some("outage"))
        );
        assert_eq!(
            pending().break_glass(&who("local:alice", Role::Admin), "x".into(), 5),
            Err(TransitionError::OwnBreakGlass)
        );
        assert_eq!(
            pending().break_glass(&who("local:carol", Role::Requester), "x".into(), 5),
            Err(TransitionError::NotAdmin("break glass on"))
        );
        assert!(r.break_glass(&bob, "again".into(), 6).is_err());
        // What a revert files: the create is undone by a delete.
        assert!(matches!(pending().undo(), Some(RequestKind::DeleteRepository { .. })));
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).expect("json"), s.as_str());
        }
        assert_eq!(Status::parse("bogus"), None);
    }

    #[test]
    fn a_new_repository_with_production_access_is_decided_as_a_production_grant() {
        let mut policy = ApprovalPolicy::single("ecr-admins", 1);
        policy.grant_production = ApprovalRule::new(&["prod-approvers"], 2);
        let spec = crate::domain::form::RepositoryRequestInput {
            name: "app".into(),
            team: "t".into(),
            cost_center: "c".into(),
            justification: "j".into(),
            ..Default::default()
        }
        .parse(&crate::domain::name::Namespace::parse("crytera").expect("ns"))
        .expect("valid")
        .spec;
        let plain = RequestKind::CreateRepository { spec: spec.clone(), grant_production: false };
        assert_eq!(policy.rule(&plain), ApprovalRule::new(&["ecr-admins"], 1));
        let with_grant = RequestKind::CreateRepository { spec, grant_production: true };
        assert_eq!(policy.rule(&with_grant), ApprovalRule::new(&["prod-approvers"], 2));
        // A restore that gives production its access back is a production grant too.
        let repository =
            crate::domain::name::RepoName::parse(&crate::domain::name::Namespace::parse("crytera").expect("ns"), "app")
                .expect("name");
        let restore = RequestKind::RestoreRepository { repository: repository.clone(), grants_production: false };
        assert_eq!(policy.rule(&restore), ApprovalRule::new(&["ecr-admins"], 1));
        let regrant = RequestKind::RestoreRepository { repository, grants_production: true };
        assert_eq!(policy.rule(&regrant), ApprovalRule::new(&["prod-approvers"], 2));
        // Old rows (before the flag) read as restores that grant nothing.
        let old: RequestKind =
            serde_json::from_str(r#"{"kind":"restore_repository","repository":"crytera/app"}"#).expect("old row");
        assert!(matches!(old, RequestKind::RestoreRepository { grants_production: false, .. }));
    }
}
