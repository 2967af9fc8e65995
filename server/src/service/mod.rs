//! The use cases: submit, decide, apply, read, and keep repositories in their
//! approved state. Called by the server functions (through the `Portal`
//! port), the JSON API and the worker alike.
//!
//! Rules kept here: every state change goes through the domain state machine
//! and is written together with its audit event in ONE `BEGIN IMMEDIATE`
//! transaction, with a compare-and-set on the previous state; if the audit
//! event cannot be written, the change does not happen.
mod apply;
mod audit_chain;
mod decisions;
mod drift;
mod error;
mod images;
mod import;
mod notifications;
mod people;
mod port;
mod requests;
mod views;

pub use error::{internal, Error, Result};

pub use apply::ApplyOutcome;
pub use audit_chain::read_heads;
pub use notifications::DeliveryPolicy;

use crate::aws::{Registry, RegistryError};
use crate::clock::Clock;
use crate::db::{self, Db, RequestRow};
use app::domain::approval::ApprovalPolicy;
use app::domain::name::Namespace;
use app::domain::plan::Target;
use app::domain::policy;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::Notify;

/// Facts about the deployment that pages show and plans use.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub namespace: Namespace,
    pub target: Target,
    pub staging_account: Option<String>,
    pub local_sign_in: bool,
    pub oidc_sign_in: bool,
    pub approval: ApprovalPolicy,
    /// Longest life of an API token (days).
    pub token_max_days: u32,
    /// Open requests one person may hold at once.
    pub max_open_per_user: u32,
    /// A token is refused when its owner last signed in longer ago than this (ms).
    pub token_role_max_age_ms: i64,
    /// Which images a lifecycle must not expire unless the request says so.
    pub protection: app::domain::lifecycle::Protection,
    /// `approval.break_glass`.
    pub break_glass: bool,
    /// What may be promoted to which tags.
    pub promotion: Promotion,
}

/// `portal.release_tag_patterns`, `portal.promote_refuse_critical`, `portal.promote_require_scan`.
#[derive(Debug, Clone, Default)]
pub struct Promotion {
    pub tag_patterns: Vec<String>,
    pub refuse_critical: bool,
    pub require_scan: bool,
}

pub struct PortalService {
    pub db: Db,
    pub registry: Arc<dyn Registry>,
    pub clock: Arc<dyn Clock>,
    pub deployment: Deployment,
    /// Wakes the worker when there is approved work.
    pub wake: Arc<Notify>,
    pub retry: RetryPolicy,
    /// Security events anyone can cause without signing in: per source, and in all.
    anonymous_per_source: crate::limiter::PerMinute<Option<std::net::IpAddr>>,
    anonymous_in_all: crate::limiter::PerMinute<()>,
    /// The last inventory read from ECR, and when (see `drift.rs`).
    inventory: drift::InventoryCache,
    /// `audit.head_file`: where published audit heads go (see `audit_chain.rs`).
    pub audit_head_file: Option<std::path::PathBuf>,
    /// The portal's key: signs the marker tag of the repositories it creates.
    key: crate::secret::PortalKey,
    /// The notification channels (see `notifications.rs`).
    pub notifier: Arc<crate::notify::Notifier>,
    pub delivery: DeliveryPolicy,
}

/// How temporary AWS failures are retried by the worker.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_ms: u64,
    pub max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_ms: 2_000, max_ms: 60_000 }
    }
}

impl RetryPolicy {
    /// Exponential backoff with jitter: between half and all of `base * 2^retries`, capped.
    pub fn delay_ms(&self, retries: u32) -> u64 {
        let full = self.base_ms.saturating_mul(1u64 << retries.min(20)).min(self.max_ms);
        let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * (full / 2) / 255;
        full / 2 + jitter
    }
}

/// Security events anyone can cause without signing in, recorded per source (client address) per minute at most.
pub const ANONYMOUS_EVENTS_PER_SOURCE: u32 = 30;
/// And in all, per minute (a flood from many addresses still cannot fill the trail).
pub const ANONYMOUS_EVENTS_PER_MINUTE: u32 = 600;

fn aws_unavailable(what: &str, e: RegistryError) -> Error {
    match e {
        RegistryError::Transient(m) | RegistryError::Other(m) => {
            tracing::warn!("{what}: {m}");
            Error::Unavailable(format!("could not {what} in ECR right now; nothing was changed, try again shortly"))
        }
        other => internal(what, other),
    }
}

/// Two optional policies are the same when both are absent or equal as IAM compares them.
pub(crate) fn same_policy(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => policy::same(a, b),
        _ => false,
    }
}

impl PortalService {
    pub fn new(
        db: Db,
        registry: Arc<dyn Registry>,
        clock: Arc<dyn Clock>,
        deployment: Deployment,
        key: crate::secret::PortalKey,
    ) -> Self {
        Self {
            key,
            db,
            registry,
            clock,
            deployment,
            wake: Arc::new(Notify::new()),
            retry: RetryPolicy::default(),
            inventory: Default::default(),
            anonymous_per_source: crate::limiter::PerMinute::new(ANONYMOUS_EVENTS_PER_SOURCE, 100_000),
            anonymous_in_all: crate::limiter::PerMinute::new(ANONYMOUS_EVENTS_PER_MINUTE, 1),
            audit_head_file: None,
            notifier: Arc::new(crate::notify::Notifier::none()),
            delivery: DeliveryPolicy::default(),
        }
    }

    pub fn with_notifications(mut self, notifier: crate::notify::Notifier, delivery: DeliveryPolicy) -> Self {
        self.notifier = Arc::new(notifier);
        self.delivery = delivery;
        self
    }

    pub fn with_audit_head_file(mut self, file: Option<std::path::PathBuf>) -> Self {
        self.audit_head_file = file;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    async fn load(&self, id: i64) -> Result<RequestRow, Error> {
        let mut conn = self.db.pool.acquire().await?;
        db::get_request(&mut conn, id).await?.ok_or_else(|| Error::NotFound(format!("there is no request #{id}")))
    }

    /// A request with its approvals, timeline and drift, in one read.
    async fn load_view(&self, id: i64) -> Result<db::RequestView, Error> {
        let mut conn = self.db.pool.acquire().await?;
        db::request_view(&mut conn, id).await?.ok_or_else(|| Error::NotFound(format!("there is no request #{id}")))
    }

    /// `Some(live policy)` when the repository exists in ECR, `None` when it does not.
    pub(crate) async fn existing_policy(&self, name: &str) -> Result<Option<Option<Value>>, RegistryError> {
        match self.registry.describe_settings(name).await? {
            None => Ok(None),
            Some(_) => self.live_policy(name).await.map(Some),
        }
    }

    /// The live policy of a repository, parsed.
    pub(crate) async fn live_policy(&self, name: &str) -> Result<Option<Value>, RegistryError> {
        let (text, _) = self.registry.get_policy(name).await?;
        policy::parse(text.as_deref()).map_err(|e| RegistryError::Other(e.to_string()))
    }
}
