//! The tamper-evident audit chain.
//!
//! Each event's hash is `SHA-256(prev_hash || "\n" || canonical)`, where
//! `canonical` is the JSON array `[id, at, actor, action, request_id,
//! repository, detail, aws_request_ids]`. Ids are consecutive, so a deleted
//! row leaves a gap; an edited row no longer matches its hash; an inserted or
//! reordered row breaks the link to its neighbour. `verify` names the first
//! event where the chain breaks. (Removing events from the very end cannot be
//! told from a shorter history by the chain alone: the verification report
//! gives the head hash and count, to be recorded elsewhere, e.g. with backups.)
use crate::db::EventRow;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{Row, SqlitePool};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// Walks the chain in id order, in pages, and stops at the first break.
pub async fn verify(pool: &SqlitePool) -> Result<Verification, sqlx::Error> {
    const PAGE: i64 = 10_000;
    let mut prev_hash = GENESIS.to_string();
    let mut expected_id: i64 = 1;
    let mut count: u64 = 0;
    loop {
        let rows = sqlx::query("SELECT * FROM audit_events WHERE id >= ? ORDER BY id LIMIT ?")
            .bind(expected_id)
            .bind(PAGE)
            .fetch_all(pool)
            .await?;
        if rows.is_empty() {
            break;
        }
        let n = rows.len();
        for row in &rows {
            let e = crate::db::event_from_row(row)?;
            let stored_prev: String = row.try_get("prev_hash")?;
            let stored_hash: String = row.try_get("hash")?;
            let broken = |reason: String| Verification {
                events: count,
                head: prev_hash.clone(),
                broken_at: Some(e.id),
                reason: Some(reason),
            };
            if e.id != expected_id {
                return Ok(broken(format!(
                    "event {} follows event {}: {} event(s) before it were deleted",
                    e.id,
                    expected_id - 1,
                    e.id - expected_id
                )));
            }
            if stored_prev != prev_hash {
                return Ok(broken(format!(
                    "event {} does not link to event {} (an event was inserted, deleted or reordered here)",
                    e.id,
                    e.id - 1
                )));
            }
            if chain_hash(&prev_hash, &e) != stored_hash {
                return Ok(broken(format!(
                    "event {} was changed after it was written (its hash does not match)",
                    e.id
                )));
            }
            prev_hash = stored_hash;
            expected_id += 1;
            count += 1;
        }
        if (n as i64) < PAGE {
            break;
        }
    }
    // Rows with ids below 1 would escape the walk above; they cannot be legitimate.
    let stray: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE id < 1").fetch_one(pool).await?.try_get("n")?;
    if stray > 0 {
        return Ok(Verification {
            events: count,
            head: prev_hash,
            broken_at: Some(0),
            reason: Some(format!("{stray} event(s) with ids below 1 were inserted")),
        });
    }
    Ok(Verification { events: count, head: prev_hash, broken_at: None, reason: None })
}
