//! The audit trail's rows: appending to the hash chain (inside the write
//! transaction of the change it records), and the reads that browse, page
//! and export it. The chain itself (canonical form, hash, verification) is
//! `crate::audit`.
use app::views::AuditQuery;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

/// An audit event about to be written.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub action: app::domain::audit::AuditAction,
    pub request_id: Option<i64>,
    pub repository: Option<&'a str>,
    pub detail: String,
    pub aws_request_ids: Vec<String>,
}

pub use crate::audit::EventRow;

pub(crate) fn event_from_row(row: &SqliteRow) -> Result<EventRow, sqlx::Error> {
    let ids: String = row.try_get("aws_request_ids")?;
    Ok(EventRow {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        request_id: row.try_get("request_id")?,
        repository: row.try_get("repository")?,
        detail: row.try_get("detail")?,
        aws_request_ids: serde_json::from_str(&ids).unwrap_or_default(),
    })
}

/// The audit chain's last event: what the next event links to.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainHead {
    /// 0 when the trail is empty.
    pub id: i64,
    pub hash: String,
}

impl ChainHead {
    fn from_columns(id: Option<i64>, hash: Option<String>) -> Self {
        match (id, hash) {
            (Some(id), Some(hash)) => Self { id, hash },
            _ => Self { id: 0, hash: crate::audit::GENESIS.to_string() },
        }
    }
}

pub async fn chain_head(conn: &mut SqliteConnection) -> Result<ChainHead, sqlx::Error> {
    let last = sqlx::query("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1").fetch_optional(conn).await?;
    Ok(match last {
        Some(r) => ChainHead { id: r.try_get("id")?, hash: r.try_get("hash")? },
        None => ChainHead::from_columns(None, None),
    })
}

/// Appends an event to the audit chain (read its head, link to it, sign it
/// with the chain key), inside the write transaction of the change it records.
pub async fn insert_event(tx: &mut super::WriteTx, e: &NewEvent<'_>) -> Result<i64, sqlx::Error> {
    let head = chain_head(&mut *tx).await?;
    let key = tx.chain_key().clone();
    insert_event_after(&mut *tx, &key, &head, e).await
}

/// Appends an event after `head`, the chain's last event, read in the same
/// write transaction.
async fn insert_event_after(
    conn: &mut SqliteConnection,
    key: &crate::audit::ChainKey,
    head: &ChainHead,
    e: &NewEvent<'_>,
) -> Result<i64, sqlx::Error> {
    let row = EventRow {
        id: head.id + 1,
        at: e.at,
        actor: e.actor.to_string(),
        action: e.action.as_str().to_string(),
        request_id: e.request_id,
        repository: e.repository.map(str::to_string),
        detail: e.detail.clone(),
        aws_request_ids: e.aws_request_ids.clone(),
    };
    let ids = serde_json::to_string(&row.aws_request_ids).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    let hash = key.hash(&head.hash, &row);
    sqlx::query(
        "INSERT INTO audit_events (id, at, actor, action, request_id, repository, detail, aws_request_ids, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(row.id)
    .bind(row.at)
    .bind(&row.actor)
    .bind(&row.action)
    .bind(row.request_id)
    .bind(&row.repository)
    .bind(&row.detail)
    .bind(ids)
    .bind(&head.hash)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(row.id)
}

/// Audit filters already converted to SQL values.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub request_id: Option<i64>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl EventFilter {
    fn push(&self, q: &mut QueryBuilder<'_, Sqlite>) {
        if let Some(v) = &self.actor {
            q.push(" AND actor = ").push_bind(v.clone());
        }
        if let Some(v) = &self.action {
            q.push(" AND action = ").push_bind(v.clone());
        }
        if let Some(v) = &self.repository {
            q.push(" AND repository = ").push_bind(v.clone());
        }
        if let Some(v) = self.request_id {
            q.push(" AND request_id = ").push_bind(v);
        }
        if let Some(v) = self.from_ms {
            q.push(" AND at >= ").push_bind(v);
        }
        if let Some(v) = self.to_ms {
            q.push(" AND at < ").push_bind(v);
        }
    }
}

/// One page of events, newest first, by keyset on id. `before`/`after` as in [`AuditQuery`].
pub async fn events_page(
    pool: &SqlitePool,
    f: &EventFilter,
    before: Option<i64>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM audit_events WHERE 1 = 1");
    f.push(&mut q);
    let ascending = before.is_none() && after.is_some();
    if let Some(b) = before {
        q.push(" AND id < ").push_bind(b);
    } else if let Some(a) = after {
        q.push(" AND id > ").push_bind(a);
    }
    q.push(if ascending { " ORDER BY id ASC" } else { " ORDER BY id DESC" });
    q.push(" LIMIT ").push_bind(limit);
    let rows = q.build().fetch_all(pool).await?;
    let mut events = rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?;
    if ascending {
        events.reverse();
    }
    Ok(events)
}

/// Whether any event matching `f` has an id below (`older`) or above the given one.
pub async fn events_exist_beyond(
    pool: &SqlitePool,
    f: &EventFilter,
    id: i64,
    older: bool,
) -> Result<bool, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT EXISTS (SELECT 1 FROM audit_events WHERE 1 = 1");
    f.push(&mut q);
    q.push(if older { " AND id < " } else { " AND id > " }).push_bind(id);
    q.push(") AS e");
    let row = q.build().fetch_one(pool).await?;
    Ok(row.try_get::<i64, _>("e")? == 1)
}

/// Matching events with their hashes, oldest first, after the given id (for export).
pub async fn events_ascending(
    pool: &SqlitePool,
    f: &EventFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<(EventRow, String)>, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM audit_events WHERE 1 = 1");
    f.push(&mut q);
    q.push(" AND id > ").push_bind(after);
    q.push(" ORDER BY id ASC LIMIT ").push_bind(limit);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(|r| Ok((event_from_row(r)?, r.try_get("hash")?))).collect()
}

pub async fn events_for_request(conn: &mut SqliteConnection, request_id: i64) -> Result<Vec<EventRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM audit_events WHERE request_id = ? ORDER BY id")
        .bind(request_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// Converts an API/UI audit query's dates; `None` dates mean unbounded.
pub fn filter_from_query(q: &AuditQuery, namespace: &str) -> Result<EventFilter, app::domain::form::FieldError> {
    use app::domain::form::FieldError;
    let day = |field: &str, v: &Option<String>, next: bool| -> Result<Option<i64>, FieldError> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => app::domain::form::parse_date_ms(s)
                .map(|ms| Some(if next { ms + 86_400_000 } else { ms }))
                .ok_or_else(|| FieldError::new(field, format!("`{s}` is not a date like 2026-11-27"))),
        }
    };
    let clean = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let repository =
        clean(&q.repository).map(
            |r| {
                if r.starts_with(&format!("{namespace}/")) {
                    r
                } else {
                    format!("{namespace}/{r}")
                }
            },
        );
    Ok(EventFilter {
        actor: clean(&q.actor),
        action: clean(&q.action),
        repository,
        request_id: q.request_id,
        from_ms: day("from", &q.from, false)?,
        to_ms: day("to", &q.to, true)?,
    })
}

/// Walks the audit chain in id order, a page at a time, and stops at the
/// first break (the checks are `crate::audit::Walk`'s).
pub async fn verify_chain(
    pool: &SqlitePool,
    key: &crate::audit::ChainKey,
) -> Result<crate::audit::Verification, sqlx::Error> {
    walk_chain(pool, key, false).await
}

/// Verifies a chain written before keys (plain SHA-256), before it is sealed.
pub async fn verify_unkeyed_chain(
    pool: &SqlitePool,
    key: &crate::audit::ChainKey,
) -> Result<crate::audit::Verification, sqlx::Error> {
    walk_chain(pool, key, true).await
}

async fn walk_chain(
    pool: &SqlitePool,
    key: &crate::audit::ChainKey,
    unkeyed_ok: bool,
) -> Result<crate::audit::Verification, sqlx::Error> {
    const PAGE: i64 = 10_000;
    let mut walk = crate::audit::Walk::new(key.clone());
    loop {
        let rows = sqlx::query("SELECT * FROM audit_events WHERE id >= ? ORDER BY id LIMIT ?")
            .bind(walk.expected_id())
            .bind(PAGE)
            .fetch_all(pool)
            .await?;
        for row in &rows {
            let e = event_from_row(row)?;
            let (prev, hash): (String, String) = (row.try_get("prev_hash")?, row.try_get("hash")?);
            if let Err(broken) = walk.next(&e, &prev, &hash) {
                return Ok(broken);
            }
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    let stray: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE id < 1").fetch_one(pool).await?;
    Ok(if unkeyed_ok { walk.finish_unkeyed(stray) } else { walk.finish(stray) })
}

/// The stored hash of event `id`, if there is one.
pub async fn event_hash(pool: &SqlitePool, id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT hash FROM audit_events WHERE id = ?").bind(id).fetch_optional(pool).await
}

/// Checks the chain against the heads the portal published (see
/// [`crate::audit::check_heads`]).
pub async fn check_published_heads(
    pool: &SqlitePool,
    v: crate::audit::Verification,
    heads: &[crate::audit::PublishedHead],
) -> Result<crate::audit::Verification, sqlx::Error> {
    let mut hashes = std::collections::HashMap::new();
    for h in heads.iter().filter(|h| h.events > 0 && h.events <= v.events) {
        if let Some(hash) = event_hash(pool, i64::try_from(h.events).unwrap_or(i64::MAX)).await? {
            hashes.insert(h.events, hash);
        }
    }
    Ok(crate::audit::check_heads(v, heads, |n| hashes.get(&n).cloned()))
}

/// How the chain stands at start with this key (see [`seal_unkeyed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainState {
    /// No events yet, or the last one is signed with this key.
    Keyed,
    /// Every event predates the key: they need sealing.
    Unkeyed,
    /// The chain is keyed, but not with this key.
    OtherKey,
}

/// Looks at the chain's head (and its first event) to tell whether it is keyed with `key`.
pub async fn chain_state(pool: &SqlitePool, key: &crate::audit::ChainKey) -> Result<ChainState, sqlx::Error> {
    let Some(last) = sqlx::query("SELECT * FROM audit_events ORDER BY id DESC LIMIT 1").fetch_optional(pool).await?
    else {
        return Ok(ChainState::Keyed);
    };
    let signed = |row: &SqliteRow| -> Result<bool, sqlx::Error> {
        let prev: String = row.try_get("prev_hash")?;
        let hash: String = row.try_get("hash")?;
        Ok(key.hash(&prev, &event_from_row(row)?) == hash)
    };
    if signed(&last)? {
        return Ok(ChainState::Keyed);
    }
    let sealed: Option<i64> = sqlx::query_scalar("SELECT id FROM audit_events WHERE action = ? LIMIT 1")
        .bind(crate::audit::SEAL_ACTION)
        .fetch_optional(pool)
        .await?;
    let first = sqlx::query("SELECT * FROM audit_events ORDER BY id LIMIT 1").fetch_one(pool).await?;
    let first_plain = {
        let e = event_from_row(&first)?;
        let hash: String = first.try_get("hash")?;
        crate::audit::chain_hash(crate::audit::GENESIS, &e) == hash
    };
    Ok(if sealed.is_none() && first_plain { ChainState::Unkeyed } else { ChainState::OtherKey })
}
