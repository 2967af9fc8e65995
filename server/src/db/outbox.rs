//! The notification outbox: rows written with the change they are about,
//! claimed and delivered by the sender (`service/notifications.rs`).
use app::domain::notify::{Channel, Notice};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    /// The same across retries: receivers drop duplicates by it.
    pub delivery: String,
    pub channel: Channel,
    pub notice: Notice,
    /// Email only: who gets it.
    pub recipients: Vec<String>,
    pub request_id: Option<i64>,
    pub created_at: i64,
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

fn outbox_from_row(r: &SqliteRow) -> Result<OutboxRow, sqlx::Error> {
    let channel: String = r.try_get("channel")?;
    let notice: String = r.try_get("notice")?;
    Ok(OutboxRow {
        id: r.try_get("id")?,
        delivery: r.try_get("delivery")?,
        channel: Channel::parse(&channel)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown channel {channel}").into()))?,
        notice: serde_json::from_str(&notice).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        recipients: serde_json::from_str(&r.try_get::<String, _>("recipients")?).unwrap_or_default(),
        request_id: r.try_get("request_id")?,
        created_at: r.try_get("created_at")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}

/// Adds one notification for one channel (inside the caller's transaction).
/// With `dedupe`, a notification already made under that key is not made again.
pub async fn insert_outbox(
    conn: &mut SqliteConnection,
    channel: Channel,
    notice: &Notice,
    request_id: Option<i64>,
    dedupe: Option<&str>,
    recipients: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    let text = serde_json::to_string(notice).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT OR IGNORE INTO outbox (delivery, channel, event, request_id, notice, dedupe, recipients, created_at,
                                       status, next_attempt_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(channel.as_str())
    .bind(notice.event.as_str())
    .bind(request_id)
    .bind(text)
    .bind(dedupe.map(|d| format!("{}:{d}", channel.as_str())))
    .bind(serde_json::to_string(recipients).unwrap_or_else(|_| "[]".into()))
    .bind(now)
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Claims up to `limit` due notifications until `until` (a sender that dies
/// leaves them to be claimed again then), oldest first.
pub async fn claim_due(
    conn: &mut SqliteConnection,
    now: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE outbox SET claimed_until = ?1 WHERE id IN (
             SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?2 AND claimed_until <= ?2
             ORDER BY id LIMIT ?3)
         RETURNING *",
    )
    .bind(until)
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<OutboxRow> = rows.iter().map(outbox_from_row).collect::<Result<_, _>>()?;
    out.sort_by_key(|r| r.id);
    Ok(out)
}

/// Releases every claim (at start: one process per database, so a claim left
/// behind belongs to a sender that died).
pub async fn release_outbox_claims(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET claimed_until = 0 WHERE status = 'pending' AND claimed_until > 0")
        .execute(conn)
        .await
        .map(|_| ())
}

/// Records a delivery attempt's outcome: delivered, retried at `retry_at`, or given up.
pub async fn finish_delivery(
    conn: &mut SqliteConnection,
    id: i64,
    outcome: Result<i64, (String, Option<i64>)>,
) -> Result<(), sqlx::Error> {
    match outcome {
        Ok(at) => {
            sqlx::query(
                "UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1, claimed_until = 0,
                 last_error = NULL WHERE id = ?",
            )
            .bind(at)
            .bind(id)
            .execute(conn)
            .await?;
        }
        Err((error, Some(retry_at))) => {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, claimed_until = 0, last_error = ?
                 WHERE id = ?",
            )
            .bind(retry_at)
            .bind(error)
            .bind(id)
            .execute(conn)
            .await?;
        }
        Err((error, None)) => {
            sqlx::query(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, claimed_until = 0, last_error = ?
                 WHERE id = ?",
            )
            .bind(error)
            .bind(id)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// The newest notifications (for the outbox page), optionally of one status.
pub async fn list_outbox(pool: &SqlitePool, status: Option<&str>, limit: i64) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM outbox WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2")
        .bind(status)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(outbox_from_row).collect()
}
