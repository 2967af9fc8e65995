//! The tamper-evident audit chain, pure: the canonical form of an event, the
//! chain hash, and the walk that checks a chain (fed by `db::verify_chain`).
//!
//! Each event's hash is `HMAC-SHA-256(K, prev_hash || "\n" || canonical)`,
//! where `canonical` is the JSON array `[id, at, actor, action, request_id,
//! repository, detail, aws_request_ids]` and `K` is derived from the portal's
//! key (`audit.key_file`, kept outside the database): someone who can write
//! the SQLite file but not read the key cannot recompute the chain after an
//! edit. Ids are consecutive, so a deleted row leaves a gap; an edited row no
//! longer matches its hash; an inserted or reordered row breaks the link to
//! its neighbour. The walk names the first event where the chain breaks.
//!
//! Databases written before the chain was keyed hold plain
//! `SHA-256(prev_hash || "\n" || canonical)` events. At its first start with a
//! key the portal verifies them and seals them with an `audit_chain_keyed`
//! event, the first keyed one; from there on every event must be keyed, and a
//! chain with no keyed event at all fails (it was rewritten without the key).
//!
//! Removing events from the very end cannot be told from a shorter history
//! by the chain alone: the portal publishes the head (count and hash) every
//! `audit.publish_every_events` events and at shutdown, to its log and to
//! `audit.head_file`, and `audit verify` checks the chain against those.
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

/// The chain key: an HMAC-SHA-256 under the key derived for the audit chain.
#[derive(Clone)]
pub struct ChainKey(hmac::SimpleHmac<Sha256>);

impl ChainKey {
    pub fn new(key: &crate::secret::PortalKey) -> Self {
        Self(key.hmac("audit-chain"))
    }

    /// The keyed hash of `e` after `prev_hash`.
    pub fn hash(&self, prev_hash: &str, e: &EventRow) -> String {
        use hmac::Mac;
        let mut mac = self.0.clone();
        mac.update(prev_hash.as_bytes());
        mac.update(b"\n");
        mac.update(canonical(e).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The action of the event that seals a chain's unkeyed events.
pub const SEAL_ACTION: &str = "audit_chain_keyed";

/// The plain (unkeyed) hash of events written before the chain was keyed.
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
#[derive(Clone)]
pub struct Walk {
    key: ChainKey,
    prev_hash: String,
    expected_id: i64,
    count: u64,
    /// Whether a keyed event was seen: every later one must be keyed too.
    keyed: bool,
}

impl Walk {
    pub fn new(key: ChainKey) -> Self {
        Self { key, prev_hash: GENESIS.to_string(), expected_id: 1, count: 0, keyed: false }
    }

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
        if self.key.hash(&self.prev_hash, e) == stored_hash {
            if !self.keyed && e.id != 1 && e.action != SEAL_ACTION {
                return Err(broken(format!(
                    "event {} is the first keyed event but does not seal the unkeyed events before it",
                    e.id
                )));
            }
            self.keyed = true;
        } else if self.keyed {
            return Err(broken(format!("event {} was changed after it was written (its hash does not match)", e.id)));
        } else if chain_hash(&self.prev_hash, e) != stored_hash {
            return Err(broken(format!(
                "event {} was changed after it was written (its hash does not match), \
                 or `audit.key_file` is not the key this audit trail was written with",
                e.id
            )));
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
        if self.count > 0 && !self.keyed {
            return Verification {
                events: self.count,
                head: self.prev_hash,
                broken_at: Some(self.expected_id - 1),
                reason: Some(
                    "no event is signed with the audit key: the trail was rewritten by someone without it, \
                     `audit.key_file` is another key, or the portal has not started since the chain was keyed \
                     (start it once to seal the earlier events)"
                        .into(),
                ),
            };
        }
        Verification { events: self.count, head: self.prev_hash, broken_at: None, reason: None }
    }

    /// The verdict on a chain that may predate keys (checked before sealing it).
    pub fn finish_unkeyed(mut self, stray: i64) -> Verification {
        self.keyed = true;
        self.finish(stray)
    }
}

/// A head the portal published: the chain had `events` events and the last
/// one's hash was `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedHead {
    pub at_ms: i64,
    pub events: u64,
    pub hash: String,
}

impl PublishedHead {
    /// One line of the head file: `<unix ms> <events> <hash>`.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.at_ms, self.events, self.hash)
    }

    pub fn parse(line: &str) -> Option<Self> {
        let mut parts = line.split_whitespace();
        let at_ms = parts.next()?.parse().ok()?;
        let events = parts.next()?.parse().ok()?;
        let hash = parts.next()?.to_string();
        (hash.len() == 64 && parts.next().is_none()).then_some(Self { at_ms, events, hash })
    }
}

/// Checks an intact chain against the heads published while it grew: each
/// must still be in it (`hash_of(n)` gives event n's stored hash).
pub fn check_heads(v: Verification, heads: &[PublishedHead], hash_of: impl Fn(u64) -> Option<String>) -> Verification {
    if !v.intact() {
        return v;
    }
    for h in heads {
        let when = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(h.at_ms) * 1_000_000)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| h.at_ms.to_string());
        if h.events > v.events {
            return Verification {
                broken_at: Some(i64::try_from(v.events).unwrap_or(i64::MAX)),
                reason: Some(format!(
                    "the trail ends at event {}, but it had {} events at {when} (the published head): \
                     events were removed from its end",
                    v.events, h.events
                )),
                ..v
            };
        }
        if h.events > 0 && hash_of(h.events).as_deref() != Some(h.hash.as_str()) {
            return Verification {
                broken_at: Some(i64::try_from(h.events).unwrap_or(i64::MAX)),
                reason: Some(format!(
                    "event {} does not have the hash published for it at {when}: the trail was rewritten",
                    h.events
                )),
                ..v
            };
        }
    }
    v
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

    fn key() -> ChainKey {
        ChainKey::new(&crate::secret::PortalKey::from_bytes([7; 32]))
    }

    /// A chain of `n` events as stored: (event, prev_hash, hash).
    fn chain(n: i64) -> Vec<(EventRow, String, String)> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|id| {
                let e = event(id, "ok");
                let hash = key().hash(&prev, &e);
                let row = (e, prev.clone(), hash.clone());
                prev = hash;
                row
            })
            .collect()
    }

    fn walk(rows: &[(EventRow, String, String)]) -> Verification {
        walk_with(key(), rows)
    }

    fn walk_with(key: ChainKey, rows: &[(EventRow, String, String)]) -> Verification {
        let mut w = Walk::new(key);
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
        assert_eq!(Walk::new(key()).finish(2).broken_at, Some(0), "stray rows below id 1");
    }

    /// Rewrites rows from index `from` on with plain SHA-256, as someone without the key would.
    fn rechain_plain(rows: &mut [(EventRow, String, String)], from: usize) {
        let mut prev = if from == 0 { GENESIS.to_string() } else { rows[from - 1].2.clone() };
        for row in rows.iter_mut().skip(from) {
            row.1 = prev.clone();
            row.2 = chain_hash(&prev, &row.0);
            prev = row.2.clone();
        }
    }

    #[test]
    fn an_edit_rechained_without_the_key_is_named() {
        let mut rows = chain(5);
        rows[2].0.detail = "forged".into();
        rechain_plain(&mut rows, 2);
        let v = walk(&rows);
        assert_eq!(v.broken_at, Some(3), "{v:?}");
        let mut all = chain(5);
        all[0].0.actor = "local:mallory".into();
        rechain_plain(&mut all, 0);
        let v = walk(&all);
        assert_eq!(v.broken_at, Some(5), "{v:?}");
        assert!(v.reason.unwrap_or_default().contains("no event is signed with the audit key"));
    }

    #[test]
    fn another_key_fails() {
        let other = ChainKey::new(&crate::secret::PortalKey::from_bytes([8; 32]));
        let v = walk_with(other, &chain(3));
        assert_eq!(v.broken_at, Some(1), "{v:?}");
        assert!(v.reason.unwrap_or_default().contains("audit.key_file"));
    }

    #[test]
    fn unkeyed_events_sealed_by_a_keyed_one_verify() {
        let mut rows = chain(4);
        rechain_plain(&mut rows, 0);
        // Event 4 is the seal, keyed, linking to the plain event 3.
        rows[3].0.action = SEAL_ACTION.into();
        rows[3].2 = key().hash(&rows[3].1, &rows[3].0);
        assert!(walk(&rows).intact(), "{:?}", walk(&rows));
        // A keyed event that is not the seal cannot follow plain ones.
        rows[3].0.action = "request_approved".into();
        rows[3].2 = key().hash(&rows[3].1, &rows[3].0);
        assert_eq!(walk(&rows).broken_at, Some(4));
    }

    #[test]
    fn published_heads_catch_a_history_cut_short() {
        let rows = chain(5);
        let v = walk(&rows[..3]);
        assert!(v.intact());
        let head = PublishedHead { at_ms: 0, events: 5, hash: rows[4].2.clone() };
        assert_eq!(PublishedHead::parse(&head.line()), Some(head.clone()));
        let hash_of = |n: u64| rows.get(n as usize - 1).map(|r| r.2.clone());
        let cut = check_heads(v, std::slice::from_ref(&head), hash_of);
        assert_eq!(cut.broken_at, Some(3));
        assert!(cut.reason.unwrap_or_default().contains("removed from its end"));
        let whole = check_heads(walk(&rows), &[head], hash_of);
        assert!(whole.intact());
        let wrong = PublishedHead { at_ms: 0, events: 2, hash: rows[4].2.clone() };
        assert_eq!(check_heads(walk(&rows), &[wrong], hash_of).broken_at, Some(2));
    }
}
