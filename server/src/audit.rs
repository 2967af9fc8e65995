//! The tamper-evident audit chain, pure: the canonical form of an event, the
//! chain hash, and the walk that checks a chain (fed by `db::verify_chain`).
//!
//! Each event's hash is `SHA-256(prev_hash || "\n" || canonical)`, where
//! `canonical` is the JSON array `[id, at, actor, action, request_id,
//! repository, detail, aws_request_ids]`. Ids are consecutive, so a deleted
//! row leaves a gap; an edited row no longer matches its hash; an inserted or
//! reordered row breaks the link to its neighbour. The walk names the first
//! event where the chain breaks. (Removing events from the very end cannot be
//! told from a shorter history by the chain alone: the verification report
//! gives the head hash and count, to be recorded elsewhere, e.g. with backups.)
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit event as stored (without its hashes).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub request_id: Option<i64>,
    pub repository: Option<String>,
    pub detail: String,
    pub aws_request_ids: Vec<String>,
}

/// The canonical encoding of an event's content (everything but the hashes).
pub fn canonical(e: &EventRow) -> String {
    serde_json::json!([e.id, e.at, e.actor, e.action, e.request_id, e.repository, e.detail, e.aws_request_ids])
        .to_string()
}

pub fn chain_hash(prev_hash: &str, e: &EventRow) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical(e).as_bytes());
    hex::encode(h.finalize())
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub events: u64,
    /// The last event's hash: record it elsewhere to detect truncation later.
    pub head: String,
    /// The first event where the chain breaks, and why.
    pub broken_at: Option<i64>,
    pub reason: Option<String>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.broken_at.is_none()
    }
}

/// Checks a chain event by event, in id order.
#[derive(Debug, Clone)]
pub struct Walk {
    prev_hash: String,
    expected_id: i64,
    count: u64,
}

impl Default for Walk {
    fn default() -> Self {
        Self { prev_hash: GENESIS.to_string(), expected_id: 1, count: 0 }
    }
}

impl Walk {
    /// The next event with the hashes stored beside it; `Err` names the break.
    pub fn next(&mut self, e: &EventRow, stored_prev: &str, stored_hash: &str) -> Result<(), Verification> {
        let broken = |reason: String| Verification {
            events: self.count,
            head: self.prev_hash.clone(),
            broken_at: Some(e.id),
            reason: Some(reason),
        };
        if e.id != self.expected_id {
            return Err(broken(format!(
                "event {} follows event {}: {} event(s) before it were deleted",
                e.id,
                self.expected_id - 1,
                e.id - self.expected_id
            )));
        }
        if stored_prev != self.prev_hash {
            return Err(broken(format!(
                "event {} does not link to event {} (an event was inserted, deleted or reordered here)",
                e.id,
                e.id - 1
            )));
        }
        if chain_hash(&self.prev_hash, e) != stored_hash {
            return Err(broken(format!("event {} was changed after it was written (its hash does not match)", e.id)));
        }
        self.prev_hash = stored_hash.to_string();
        self.expected_id += 1;
        self.count += 1;
        Ok(())
    }

    /// The id the next event must have.
    pub fn expected_id(&self) -> i64 {
        self.expected_id
    }

    /// The verdict once every event was walked; `stray` counts rows with ids
    /// below 1, which the walk in id order cannot reach and which cannot be legitimate.
    pub fn finish(self, stray: i64) -> Verification {
        if stray > 0 {
            return Verification {
                events: self.count,
                head: self.prev_hash,
                broken_at: Some(0),
                reason: Some(format!("{stray} event(s) with ids below 1 were inserted")),
            };
        }
        Verification { events: self.count, head: self.prev_hash, broken_at: None, reason: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, detail: &str) -> EventRow {
        EventRow {
            id,
            at: 1_000 + id,
            actor: "local:alice".into(),
            action: "request_submitted".into(),
            request_id: Some(1),
            repository: Some("crytera/app".into()),
            detail: detail.into(),
            aws_request_ids: vec![],
        }
    }

    /// A chain of `n` events as stored: (event, prev_hash, hash).
    fn chain(n: i64) -> Vec<(EventRow, String, String)> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|id| {
                let e = event(id, "ok");
                let hash = chain_hash(&prev, &e);
                let row = (e, prev.clone(), hash.clone());
                prev = hash;
                row
            })
            .collect()
    }

    fn walk(rows: &[(EventRow, String, String)]) -> Verification {
        let mut w = Walk::default();
        for (e, p, h) in rows {
            if let Err(v) = w.next(e, p, h) {
                return v;
            }
        }
        w.finish(0)
    }

    #[test]
    fn an_intact_chain_reports_its_count_and_head() {
        let rows = chain(3);
        let v = walk(&rows);
        assert!(v.intact());
        assert_eq!((v.events, v.head.as_str()), (3, rows[2].2.as_str()));
    }

    #[test]
    fn an_edited_a_deleted_and_a_relinked_event_are_each_named() {
        let mut edited = chain(3);
        edited[1].0.detail = "changed".into();
        assert_eq!(walk(&edited).broken_at, Some(2));
        let mut gap = chain(3);
        gap.remove(1);
        let v = walk(&gap);
        assert_eq!(v.broken_at, Some(3));
        assert!(v.reason.unwrap_or_default().contains("1 event(s) before it were deleted"));
        let mut relinked = chain(3);
        relinked[2].1 = GENESIS.into();
        assert_eq!(walk(&relinked).broken_at, Some(3));
        assert_eq!(Walk::default().finish(2).broken_at, Some(0), "stray rows below id 1");
    }
}
