//! What pages and the JSON API show: plain serialisable views built by the
//! service layer. Times are [`Timestamp`]s: RFC 3339 in JSON, UTC words on pages.
//! A `#[serde(default)]` on a field that is always sent is there for reading older data;
//! `schema(required = true)` keeps it required in the OpenAPI document.
use crate::domain::plan::Plan;
use crate::domain::principal::Principal;
use crate::domain::request::{RequestKind, Status};
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RequestSummary {
    pub id: i64,
    /// `create_repository`, `update_repository`, `grant_production`, `revoke_production`,
    /// `restore_repository`, `delete_repository` or `promote_image`.
    pub kind: String,
    pub kind_label: String,
    pub repository: String,
    pub requester: String,
    pub status: Status,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApplyResult {
    pub repository_uri: String,
    pub repository_arn: String,
    /// True when the repository already existed with the requested settings.
    pub adopted: bool,
    pub aws_request_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RequestDetail {
    pub summary: RequestSummary,
    pub kind: RequestKind,
    /// When a temporary grant ends (the start of the day after its last day). `kind.until`
    /// holds the same moment in unix milliseconds.
    pub until: Option<Timestamp>,
    pub justification: String,
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
    pub failure: Option<String>,
    pub attempts: u32,
    pub plan: Plan,
    pub result: Option<ApplyResult>,
    pub timeline: Vec<AuditEventView>,
    /// Why the viewer may not approve (None: they may).
    pub approve_blocked: Option<String>,
    /// The repository's drift from its approved state, as last checked.
    pub drift: Vec<String>,
    pub can_reject: bool,
    pub can_retry: bool,
    /// The viewer asked for it and it still waits for a decision.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = true))]
    pub can_withdraw: bool,
    /// Applied by break glass: who, when and why (from the audit trail).
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = true))]
    pub break_glass: Option<String>,
    /// A break-glass apply waits for another admin's review.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = true))]
    pub review_pending: bool,
    /// The viewer may break glass on it now (it is on, they are an admin who is not the requester).
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = true))]
    pub can_break_glass: bool,
    /// The viewer may review the break glass (an admin other than the one who broke it).
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = true))]
    pub can_review: bool,
    /// Approvals given in this round, and what the approval policy needs.
    pub approvals: Vec<ApprovalView>,
    pub approvals_required: u32,
    pub approver_groups: Vec<String>,
    /// When a pending request expires without a decision.
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApprovalView {
    pub approver: String,
    pub at: Timestamp,
    pub comment: Option<String>,
}

/// A page of the requests list: newest first, `limit` (default 50, at most
/// 500) requests older than the request `before`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RequestsPage {
    #[serde(default)]
    pub before: Option<i64>,
    #[serde(default)]
    pub limit: Option<u32>,
    /// Search: part of the repository's name (any case).
    #[serde(default)]
    pub repository: Option<String>,
    /// Search: the requester's user id (`local:alice`, `oidc:…`), exactly.
    #[serde(default)]
    pub requester: Option<String>,
    /// Search: the kind (`create_repository`, `grant_production`, `revoke_production`, `restore_repository`).
    #[serde(default)]
    pub kind: Option<String>,
}

impl RequestsPage {
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The kinds a search may name.
    pub const KINDS: [&'static str; 7] = [
        "create_repository",
        "update_repository",
        "grant_production",
        "revoke_production",
        "restore_repository",
        "delete_repository",
        "promote_image",
    ];
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT).clamp(1, 500)
    }
}

/// A person who has signed in, as the users page shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: String,
    pub name: String,
    pub role: crate::domain::principal::Role,
    pub groups: Vec<String>,
    pub last_sign_in: Timestamp,
    /// The latest use of a session or API token (or the sign-in).
    pub last_seen: Timestamp,
    /// Sessions not yet expired.
    pub sessions: u32,
    /// API tokens neither revoked nor expired.
    pub tokens: u32,
}

/// What cutting a person off ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserRevoked {
    pub user: String,
    pub sessions_ended: u32,
    pub tokens_revoked: u32,
}

/// An API token as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scope: crate::domain::principal::TokenScope,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    /// "active", "expired" or "revoked".
    pub state: String,
}

/// A new token: the secret is in this answer and nowhere else, ever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    pub token: TokenView,
    pub secret: String,
}

/// What part of the inventory to show: a name search, a filter, and a page
/// (`offset`, `limit`: default 100, at most 500). Every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema, utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct RepositoriesQuery {
    /// Part of the repository name, any case.
    #[serde(default)]
    pub q: Option<String>,
    /// `all` (default), `drift`, `unmanaged` or `production`.
    #[serde(default)]
    pub show: Option<String>,
    #[serde(default)]
    pub offset: Option<u32>,
    #[serde(default)]
    pub limit: Option<u32>,
}

impl RepositoriesQuery {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const SHOW: [&'static str; 4] = ["all", "drift", "unmanaged", "production"];
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT).clamp(1, 500)
    }
    pub fn offset(&self) -> u32 {
        self.offset.unwrap_or(0)
    }
    /// The filter, if it is one of [`Self::SHOW`] (empty means `all`).
    pub fn show(&self) -> Option<&str> {
        match self.show.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Some("all"),
            Some(s) => Self::SHOW.iter().copied().find(|x| *x == s),
        }
    }
    /// The name search, trimmed and lowercased (None when empty).
    pub fn search(&self) -> Option<String> {
        self.q.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase)
    }
}

/// One page of the inventory, with the counts a reader needs at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RepositoriesPage {
    pub repositories: Vec<RepositoryView>,
    /// Repositories under the namespace in ECR.
    pub total: usize,
    /// Repositories that match the search and filter.
    pub matching: usize,
    /// Managed repositories whose live state differs from the approved one.
    pub drifted: usize,
    pub offset: u32,
    pub limit: u32,
    /// The offset of the next page, if there is one.
    pub next_offset: Option<u32>,
}

/// What a drift check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DriftSummary {
    /// Managed repositories compared with their approved state.
    pub checked: usize,
    /// Of those, how many differ.
    pub drifted: usize,
}

/// One image as the images page and `GET /api/v1/images` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ImageView {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: Timestamp,
    pub size_bytes: Option<i64>,
    pub media_type: Option<String>,
    pub last_pull: Option<Timestamp>,
    /// The scan in words, or "not scanned".
    pub scan: String,
    pub scanned: bool,
    pub critical: u32,
}

/// A promotion as applied: the release production pulls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReleaseView {
    pub tag: String,
    pub digest: String,
    pub request_id: i64,
    pub requested_by: String,
    pub approved_by: String,
    pub at: Timestamp,
    /// `docker pull <uri>@<digest>`, and by tag.
    pub pull_by_digest: String,
    pub pull_by_tag: String,
}

/// `GET /api/v1/images?repository=&offset=&limit=` (limit 50 by default, at most 500).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema, utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ImagesQuery {
    pub repository: String,
    #[serde(default)]
    pub offset: Option<u32>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A repository's images, newest first, a page at a time, with its releases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ImagesPage {
    pub repository: String,
    pub uri: String,
    pub images: Vec<ImageView>,
    pub total: usize,
    pub offset: u32,
    pub limit: u32,
    pub next_offset: Option<u32>,
    pub releases: Vec<ReleaseView>,
    pub production_can_pull: bool,
    pub release_tag_patterns: Vec<String>,
    /// The viewer may start scans (admins).
    pub can_scan: bool,
}

/// A repository's settings page: what is approved, and what changing or deleting it involves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RepositorySettingsView {
    pub name: String,
    /// The approved settings (None: not managed by the portal; an admin adopts it first).
    pub spec: Option<crate::domain::settings::RepositorySpec>,
    /// The approved lifecycle as ECR JSON, pretty (empty: none).
    pub lifecycle_json: String,
    /// The free tags, `key=value` one per line.
    pub free_tags: String,
    pub production_can_pull: bool,
    pub image_count: Option<usize>,
    /// Protection of images from lifecycles: the release tag patterns and the pull window.
    pub protected_tags: Vec<String>,
    pub protect_pulled_days: u32,
    /// The open request about this repository, if any (a new one waits for it).
    pub open_request: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RepositoryView {
    pub name: String,
    pub uri: String,
    pub arn: String,
    pub created_at: Timestamp,
    pub tag_mutability: String,
    pub scan_on_push: bool,
    pub encryption: String,
    /// The last request that changed it through the portal.
    pub request_id: Option<i64>,
    /// In the portal's records (created, changed or adopted through it).
    pub managed: bool,
    /// The production account can pull (the portal's statement is in the policy).
    pub production_access: bool,
    pub production_until: Option<Timestamp>,
    pub image_count: usize,
    pub last_push: Option<Timestamp>,
    /// Differences between the live state and the approved one (empty: in sync).
    pub drift: Vec<String>,
    pub drift_checked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditEventView {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub label: String,
    pub request_id: Option<i64>,
    pub repository: Option<String>,
    pub detail: String,
    pub aws_request_ids: Vec<String>,
}

/// Filters for the audit history; every field optional. Dates are `YYYY-MM-DD` (UTC, inclusive).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema, utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct AuditQuery {
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub request_id: Option<i64>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    /// Keyset cursor: events with a smaller id (older).
    #[serde(default)]
    pub before: Option<i64>,
    /// Keyset cursor: events with a larger id (newer).
    #[serde(default)]
    pub after: Option<i64>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// Newest first.
    pub events: Vec<AuditEventView>,
    /// Cursor for the next (older) page, when there is one.
    pub older: Option<i64>,
    /// Cursor for the previous (newer) page, when there is one.
    pub newer: Option<i64>,
}

/// The result of checking the audit chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditVerification {
    pub intact: bool,
    pub events: u64,
    /// The newest event's hash (record it elsewhere to detect truncation later).
    pub head: String,
    pub broken_at: Option<i64>,
    pub reason: Option<String>,
    pub checked_at: Timestamp,
}

/// What every page needs to know about the portal and the viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PortalInfo {
    pub namespace: String,
    pub region: String,
    pub staging_account: Option<String>,
    pub production_account: Option<String>,
    pub local_sign_in: bool,
    pub oidc_sign_in: bool,
    pub user: Option<Principal>,
    /// The signed-in user is in a group the approval policy names (the queue is theirs too).
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = true))]
    pub can_decide: bool,
}

/// What `/login?error=<code>` says. The server sends only these codes (the
/// details go to the audit trail); an unknown code shows nothing.
pub fn login_error_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "expired" => "That sign-in link has expired or was already used. Sign in again.",
        "too_slow" => "The sign-in took too long. Sign in again.",
        "refused" => "The identity provider did not sign you in. Try again, or ask your administrator for access.",
        "incomplete" => "The sign-in answer was incomplete. Sign in again.",
        "mismatch" => "The sign-in answer did not match this browser. Sign in again.",
        "unverified" => "The sign-in could not be verified. Sign in again.",
        "not_allowed" => "Your account is not in a group that may use the portal. Ask your administrator for access.",
        "unavailable" => "The identity provider could not be reached. Try again in a moment.",
        "username" => {
            "Enter a user name of lowercase letters, digits and . _ - (at most 64), starting with a letter or digit."
        }
        "role" => "Choose the requester, approver, admin or auditor role.",
        _ => return None,
    })
}

/// One notification in the outbox, as the admins' notifications page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct OutboxView {
    pub id: i64,
    pub delivery: String,
    pub channel: String,
    pub event: String,
    pub request_id: Option<i64>,
    pub repository: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// When a pending one is tried next.
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// The notifications page: the configured channels and the newest notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct OutboxPage {
    pub channels: Vec<String>,
    pub pending: usize,
    pub failed: usize,
    pub notifications: Vec<OutboxView>,
}

/// A Terraform file to import: its name (for the report and the errors) and its text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TerraformFile {
    pub name: String,
    pub text: String,
}

/// `POST /api/v1/terraform/import` and the import page: the files, and what
/// to fill in for repositories to be created when a file's tags do not say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TerraformImportInput {
    pub files: Vec<TerraformFile>,
    /// Report what would happen, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub cost_center: Option<String>,
    /// For the requests the import files; a default that names the file otherwise.
    #[serde(default)]
    pub justification: Option<String>,
}

/// What the import did (or, in a dry run, would do) with one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// In ECR: taken into the portal's records as it is.
    Adopted,
    /// Not in ECR: a create request was filed.
    CreateRequested,
    /// Already in the portal's records: nothing to do.
    AlreadyManaged,
    /// Outside the namespace, or with an open request: passed over.
    Skipped,
}

impl ImportOutcome {
    pub fn label(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Self::Adopted, false) => "adopted",
            (Self::Adopted, true) => "would be adopted",
            (Self::CreateRequested, false) => "create request filed",
            (Self::CreateRequested, true) => "would get a create request",
            (Self::AlreadyManaged, _) => "already managed",
            (Self::Skipped, _) => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ImportedRepository {
    pub repository: String,
    /// `file:line key`.
    pub origin: String,
    pub outcome: ImportOutcome,
    pub detail: String,
    /// The requests filed for it (a create request, or a production grant for an adopted one).
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = true))]
    pub request_ids: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TerraformImportReport {
    pub dry_run: bool,
    pub repositories: Vec<ImportedRepository>,
    /// What the files hold that the import passed over (module calls, stray policies).
    pub notes: Vec<String>,
}

/// A form posted without JavaScript that the server answers by rendering its page again
/// (as a context for that render): what was sent and why it was refused, so nothing typed
/// is lost, or what it made (a new token's secret, shown this once).
#[derive(Debug, Clone)]
pub enum Posted {
    Repository { form: crate::domain::web_form::RepositoryForm, error: crate::error::AppError },
    Access { form: crate::domain::form::AccessRequestInput, error: crate::error::AppError },
    TokenCreated(CreatedToken),
    TokenRefused { name: String, scope: String, days: String, error: crate::error::AppError },
}

/// A fresh random key for each rendered page (the server provides it with the page's
/// context): the token form sends it back, and the server makes one token per key, so a
/// reload of the answer (which posts the form again) makes none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormKey(pub String);
