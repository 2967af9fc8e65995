//! Audit actions: the closed list of things the trail records.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    SignedIn,
    SignedOut,
    RequestSubmitted,
    RequestApproved,
    RequestRejected,
    ApplyStarted,
    ApplySucceeded,
    ApplyFailed,
    ApplyRetried,
    ApplyNeedsReapproval,
    ApplyDeferred,
    /// An apply attempt found its lease gone (another attempt took the job over) and stopped before writing.
    ApplyLeaseLost,
    RepositoryAdopted,
    DriftDetected,
    DriftResolved,
    DriftAccepted,
    SignInFailed,
    AccessDenied,
    TokenCreated,
    TokenRevoked,
    TokenUsed,
    ApprovalGiven,
    RequestExpired,
    /// The audit chain was signed with the portal's key from this event on (earlier events sealed).
    AuditChainKeyed,
    /// An admin ended every session and API token of a person at once.
    UserRevoked,
    /// A notification was delivered (channel, event, delivery id).
    NotificationSent,
    /// A notification was given up (after `notify.give_up_after_minutes`, or refused for good).
    NotificationFailed,
    /// Someone who can see a request commented on it (the body is the detail).
    CommentAdded,
    /// The requester took the request back before a decision.
    RequestWithdrawn,
    /// An admin applied a request at once, without the quorum (the reason is the detail).
    BreakGlass,
    /// Another admin reviewed a break-glass apply: accepted, or reverted by a new request.
    BreakGlassReviewed,
    /// An admin started a vulnerability scan of an image.
    ImageScanStarted,
}

impl AuditAction {
    pub const ALL: [AuditAction; 32] = [
        AuditAction::SignedIn,
        AuditAction::SignedOut,
        AuditAction::RequestSubmitted,
        AuditAction::RequestApproved,
        AuditAction::RequestRejected,
        AuditAction::ApplyStarted,
        AuditAction::ApplySucceeded,
        AuditAction::ApplyFailed,
        AuditAction::ApplyRetried,
        AuditAction::ApplyNeedsReapproval,
        AuditAction::ApplyDeferred,
        AuditAction::ApplyLeaseLost,
        AuditAction::RepositoryAdopted,
        AuditAction::DriftDetected,
        AuditAction::DriftResolved,
        AuditAction::DriftAccepted,
        AuditAction::SignInFailed,
        AuditAction::AccessDenied,
        AuditAction::TokenCreated,
        AuditAction::TokenRevoked,
        AuditAction::TokenUsed,
        AuditAction::ApprovalGiven,
        AuditAction::RequestExpired,
        AuditAction::AuditChainKeyed,
        AuditAction::UserRevoked,
        AuditAction::NotificationSent,
        AuditAction::NotificationFailed,
        AuditAction::CommentAdded,
        AuditAction::RequestWithdrawn,
        AuditAction::BreakGlass,
        AuditAction::BreakGlassReviewed,
        AuditAction::ImageScanStarted,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SignedIn => "signed_in",
            Self::SignedOut => "signed_out",
            Self::RequestSubmitted => "request_submitted",
            Self::RequestApproved => "request_approved",
            Self::RequestRejected => "request_rejected",
            Self::ApplyStarted => "apply_started",
            Self::ApplySucceeded => "apply_succeeded",
            Self::ApplyFailed => "apply_failed",
            Self::ApplyRetried => "apply_retried",
            Self::ApplyNeedsReapproval => "apply_needs_reapproval",
            Self::ApplyDeferred => "apply_deferred",
            Self::ApplyLeaseLost => "apply_lease_lost",
            Self::RepositoryAdopted => "repository_adopted",
            Self::DriftDetected => "drift_detected",
            Self::DriftResolved => "drift_resolved",
            Self::DriftAccepted => "drift_accepted",
            Self::SignInFailed => "sign_in_failed",
            Self::AccessDenied => "access_denied",
            Self::TokenCreated => "token_created",
            Self::TokenRevoked => "token_revoked",
            Self::TokenUsed => "token_used",
            Self::ApprovalGiven => "approval_given",
            Self::RequestExpired => "request_expired",
            Self::AuditChainKeyed => "audit_chain_keyed",
            Self::UserRevoked => "user_revoked",
            Self::NotificationSent => "notification_sent",
            Self::NotificationFailed => "notification_failed",
            Self::CommentAdded => "comment_added",
            Self::RequestWithdrawn => "request_withdrawn",
            Self::BreakGlass => "break_glass",
            Self::BreakGlassReviewed => "break_glass_reviewed",
            Self::ImageScanStarted => "image_scan_started",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw)
    }
    /// A short human label for the timeline.
    pub fn label(&self) -> &'static str {
        match self {
            Self::SignedIn => "Signed in",
            Self::SignedOut => "Signed out",
            Self::RequestSubmitted => "Submitted",
            Self::RequestApproved => "Approved",
            Self::RequestRejected => "Rejected",
            Self::ApplyStarted => "Apply started",
            Self::ApplySucceeded => "Applied",
            Self::ApplyFailed => "Apply failed",
            Self::ApplyRetried => "Retry requested",
            Self::ApplyNeedsReapproval => "Sent back for re-approval",
            Self::ApplyDeferred => "Will retry (temporary AWS error)",
            Self::ApplyLeaseLost => "Attempt stopped (another took over)",
            Self::RepositoryAdopted => "Adopted into the portal",
            Self::DriftDetected => "Drift detected",
            Self::DriftResolved => "Drift resolved",
            Self::DriftAccepted => "Live state accepted",
            Self::SignInFailed => "Sign-in failed",
            Self::AccessDenied => "Access denied",
            Self::TokenCreated => "API token created",
            Self::TokenRevoked => "API token revoked",
            Self::TokenUsed => "API token used",
            Self::ApprovalGiven => "Approval recorded (more needed)",
            Self::RequestExpired => "Expired without enough approvals",
            Self::AuditChainKeyed => "Audit trail keyed",
            Self::UserRevoked => "Person cut off (sessions and tokens ended)",
            Self::NotificationSent => "Notified",
            Self::NotificationFailed => "Notification given up",
            Self::CommentAdded => "Comment",
            Self::RequestWithdrawn => "Withdrawn by the requester",
            Self::BreakGlass => "Break glass: applied without the quorum",
            Self::BreakGlassReviewed => "Break glass reviewed",
            Self::ImageScanStarted => "Image scan started",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_text() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).expect("json"), a.as_str());
        }
    }
}
