//! Keeping the audit chain keyed and its head published (see `crate::audit`):
//! sealing a chain written before the key existed, and publishing the head
//! so a history cut short at its end is detected too.
use super::{internal, Error, PortalService};
use crate::audit::{PublishedHead, SEAL_ACTION};
use crate::db::{self, ChainState, NewEvent};
use app::domain::audit::AuditAction;
use app::domain::principal::SYSTEM_ACTOR;
use std::io::Write;
use std::path::Path;

impl PortalService {
    /// At start: a chain signed with this key goes on; a chain from before
    /// keys is verified (plain SHA-256) and sealed by a first keyed event; a
    /// chain signed with another key stops the start (new events would break it).
    pub async fn seal_unkeyed_audit_chain(&self, key_file: &Path) -> anyhow::Result<()> {
        match db::chain_state(&self.db.pool, &self.db.chain).await? {
            ChainState::Keyed => Ok(()),
            ChainState::OtherKey => anyhow::bail!(
                "the audit trail in this database is not signed with the key in {} (config key `audit.key_file`): \
                 restore the key file this database was written with; `ecr-portal audit verify` says where the chain breaks",
                key_file.display()
            ),
            ChainState::Unkeyed => {
                let v = db::verify_unkeyed_chain(&self.db.pool, &self.db.chain).await?;
                let detail = match (&v.broken_at, &v.reason) {
                    (None, _) => format!(
                        "the audit chain is signed with the portal's key from here on; the {} earlier events \
                         (head {}) were verified with plain SHA-256: intact",
                        v.events, v.head
                    ),
                    (Some(at), reason) => format!(
                        "the audit chain is signed with the portal's key from here on; the earlier events were \
                         verified with plain SHA-256 and are BROKEN at event {at}: {}",
                        reason.clone().unwrap_or_default()
                    ),
                };
                tracing::warn!("{detail}");
                let mut tx = self.db.write().await?;
                db::insert_event(
                    &mut tx,
                    &NewEvent {
                        at: self.now(),
                        actor: SYSTEM_ACTOR,
                        action: AuditAction::AuditChainKeyed,
                        request_id: None,
                        repository: None,
                        detail,
                        aws_request_ids: vec![],
                    },
                )
                .await?;
                tx.commit().await?;
                debug_assert_eq!(AuditAction::AuditChainKeyed.as_str(), SEAL_ACTION);
                Ok(())
            }
        }
    }

    /// Publishes the chain's head (event count and last hash) to the log and,
    /// when configured, appends it to `audit.head_file`. Returns the count.
    pub async fn publish_audit_head(&self) -> Result<u64, Error> {
        let mut conn = self.db.pool.acquire().await?;
        let head = db::chain_head(&mut conn).await?;
        drop(conn);
        let events = u64::try_from(head.id).unwrap_or(0);
        let published = PublishedHead { at_ms: self.now(), events, hash: head.hash };
        tracing::info!(events, head = %published.hash, "audit chain head");
        if let Some(path) = &self.audit_head_file {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{}", published.line()).and_then(|()| f.sync_data()))
                .map_err(|e| internal(&format!("appending the audit head to {}", path.display()), e))?;
        }
        Ok(events)
    }
}

/// The heads published to `path` (none when it does not exist yet).
pub fn read_heads(path: &Path) -> anyhow::Result<Vec<PublishedHead>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("reading the audit head file {} (config key `audit.head_file`): {e}", path.display()),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            PublishedHead::parse(l).ok_or_else(|| {
                anyhow::anyhow!(
                    "the audit head file {} has a line that is not `<unix ms> <events> <hash>` (line {})",
                    path.display(),
                    n + 1
                )
            })
        })
        .collect()
}
