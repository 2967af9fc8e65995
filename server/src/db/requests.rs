//! Requests, their approvals and the apply lease.
//!
//! A request's status changes only through the domain state machine; these
//! queries store what it decided, each guarded by the status (and, for the
//! worker, the lease) the caller read, so a stale writer changes nothing.
use super::EventRow;
use app::domain::approval::Approval;
use app::domain::request::{Request, RequestKind, Status};
use app::views::ApplyResult;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

/// A request row with the columns the domain type does not carry.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub request: Request,
    pub result: Option<ApplyResult>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// The live repository policy when approved: `None` not captured, `Some(None)` no policy.
    pub approved_policy: Option<Option<serde_json::Value>>,
    /// Consecutive temporary failures (reset by a decision).
    pub retries: u32,
    /// Applied by break glass, waiting for another admin's review.
    pub review_pending: bool,
}

fn request_from_row(row: &SqliteRow) -> Result<RequestRow, sqlx::Error> {
    let payload: String = row.try_get("payload")?;
    let kind: RequestKind = serde_json::from_str(&payload).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let approved: Option<String> = row.try_get("approved_policy")?;
    let approved_policy = approved
        .map(|t| serde_json::from_str::<Option<serde_json::Value>>(&t))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let status: String = row.try_get("status")?;
    let status =
        Status::parse(&status).ok_or_else(|| sqlx::Error::Decode(format!("unknown status {status}").into()))?;
    let result: Option<String> = row.try_get("result")?;
    let result = result
        .map(|r| serde_json::from_str::<ApplyResult>(&r))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(RequestRow {
        request: Request {
            id: row.try_get("id")?,
            kind,
            justification: row.try_get("justification")?,
            requester: row.try_get("requester")?,
            status,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            decided_by: row.try_get("decided_by")?,
            decision_comment: row.try_get("decision_comment")?,
            failure: row.try_get("failure")?,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        },
        result,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        approved_policy,
        retries: u32::try_from(row.try_get::<i64, _>("retries")?).unwrap_or(0),
        review_pending: row.try_get::<i64, _>("review_pending")? != 0,
    })
}

/// Marks a request as waiting for a break-glass review, or reviewed.
pub async fn set_review_pending(conn: &mut SqliteConnection, id: i64, pending: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE requests SET review_pending = ? WHERE id = ?")
        .bind(i64::from(pending))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_request(conn: &mut SqliteConnection, r: &Request) -> Result<i64, sqlx::Error> {
    let payload = serde_json::to_string(&r.kind).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let row = sqlx::query(
        "INSERT INTO requests (kind, repository, payload, justification, requester, status, created_at, updated_at,
                               decided_by, decided_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ? IS NULL THEN NULL ELSE ? END) RETURNING id",
    )
    .bind(r.kind.as_str())
    .bind(r.kind.repository().as_str())
    .bind(payload)
    .bind(&r.justification)
    .bind(&r.requester)
    .bind(r.status.as_str())
    .bind(r.created_at)
    .bind(r.updated_at)
    .bind(r.decided_by.as_deref())
    .bind(r.decided_by.as_deref())
    .bind(r.created_at)
    .fetch_one(conn)
    .await?;
    row.try_get("id")
}

pub async fn get_request(conn: &mut SqliteConnection, id: i64) -> Result<Option<RequestRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM requests WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| request_from_row(&r))
        .transpose()
}

/// What a list is narrowed to (all optional; checked by the service).
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub status: Option<Status>,
    /// Only this requester's (one's own list, or a search by requester).
    pub requester: Option<String>,
    /// Part of the repository name, lowercase.
    pub repository: Option<String>,
    pub kind: Option<String>,
}

pub async fn list_requests(
    pool: &SqlitePool,
    filter: &RequestFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Request>, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM requests WHERE 1 = 1");
    if let Some(b) = before {
        q.push(" AND id < ").push_bind(b);
    }
    if let Some(s) = filter.status {
        q.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(r) = &filter.requester {
        q.push(" AND requester = ").push_bind(r.clone());
    }
    if let Some(k) = &filter.kind {
        q.push(" AND kind = ").push_bind(k.clone());
    }
    if let Some(part) = &filter.repository {
        // instr, not LIKE: `_` and `%` in a search are plain characters.
        q.push(" AND instr(lower(repository), ").push_bind(part.clone()).push(") > 0");
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(|r| request_from_row(r).map(|x| x.request)).collect()
}

/// The open request about a repository, if any (there is at most one).
pub async fn open_request_about(conn: &mut SqliteConnection, repository: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM requests WHERE repository = ?
         AND status IN ('pending', 'approved', 'applying', 'needs_reapproval')",
    )
    .bind(repository)
    .fetch_optional(conn)
    .await
}

/// How many requests of this requester are open (waiting for a decision or being applied).
pub async fn open_requests_of(conn: &mut SqliteConnection, requester: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM requests WHERE requester = ?
         AND status IN ('pending', 'approved', 'applying', 'needs_reapproval')",
    )
    .bind(requester)
    .fetch_one(conn)
    .await
}

/// The newest request about `repository` after request `id` that is open or
/// was approved (applied, failed or in flight), with its status: what a retry
/// of `id` would run over.
pub async fn newer_about_repository(
    conn: &mut SqliteConnection,
    repository: &str,
    id: i64,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, status FROM requests WHERE repository = ? AND id > ?
         AND status IN ('pending', 'approved', 'applying', 'needs_reapproval', 'applied', 'failed')
         ORDER BY id DESC LIMIT 1",
    )
    .bind(repository)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Writes a decision (approve, reject, retry, expire, supersede): a
/// compare-and-set on the status the request was read in, inside the
/// caller's write transaction. Returns false when the request is no longer
/// in `from`. `decided_at` is set for approvals and rejections, and kept for a retry.
pub async fn save_decision(
    conn: &mut SqliteConnection,
    r: &Request,
    from: Status,
    decided_at: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE requests SET status = ?, updated_at = ?, decided_by = ?,
             decided_at = COALESCE(?, decided_at), decision_comment = ?, retries = 0, not_before = NULL
         WHERE id = ? AND status = ?",
    )
    .bind(r.status.as_str())
    .bind(r.updated_at)
    .bind(r.decided_by.as_deref())
    .bind(decided_at)
    .bind(r.decision_comment.as_deref())
    .bind(r.id)
    .bind(from.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the live policy an approval was based on (`None`: no policy).
pub async fn set_approved_policy(
    conn: &mut SqliteConnection,
    id: i64,
    policy: Option<&serde_json::Value>,
) -> Result<(), sqlx::Error> {
    let text = serde_json::to_string(&policy).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("UPDATE requests SET approved_policy = ? WHERE id = ?").bind(text).bind(id).execute(conn).await?;
    Ok(())
}

/// Open requests waiting for a decision on a repository (pending or sent back).
pub async fn awaiting_decision(conn: &mut SqliteConnection, repository: &str) -> Result<Vec<RequestRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM requests WHERE repository = ? AND status IN ('pending', 'needs_reapproval')")
        .bind(repository)
        .fetch_all(conn)
        .await?;
    rows.iter().map(request_from_row).collect()
}

/// The oldest request that is approved, or applying under an expired lease.
pub async fn next_claimable(conn: &mut SqliteConnection, now: i64) -> Result<Option<RequestRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM requests
         WHERE (status = 'approved' AND (not_before IS NULL OR not_before <= ?))
            OR (status = 'applying' AND lease_until < ?)
         ORDER BY id LIMIT 1",
    )
    .bind(now)
    .bind(now)
    .fetch_optional(conn)
    .await?
    .map(|r| request_from_row(&r))
    .transpose()
}

/// Expires every apply lease (used at start: their workers are gone).
pub async fn expire_leases(pool: &SqlitePool) -> Result<u64, sqlx::Error> {
    sqlx::query("UPDATE requests SET lease_until = 0 WHERE status = 'applying'")
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// Takes the apply lease; false if another worker got there first.
pub async fn claim(
    conn: &mut SqliteConnection,
    r: &Request,
    previous: Status,
    previous_attempts: u32,
    owner: &str,
    lease_until: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE requests SET status = ?, attempts = ?, failure = NULL, updated_at = ?, lease_owner = ?, lease_until = ?
         WHERE id = ? AND status = ? AND attempts = ?",
    )
    .bind(r.status.as_str())
    .bind(i64::from(r.attempts))
    .bind(r.updated_at)
    .bind(owner)
    .bind(lease_until)
    .bind(r.id)
    .bind(previous.as_str())
    .bind(i64::from(previous_attempts))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends an apply lease to `until`, only if this attempt (owner and
/// attempt number) still holds it; false when another attempt took it over.
/// (A lease that ran out but was not taken over is still this attempt's.)
pub async fn renew_lease(
    conn: &mut SqliteConnection,
    id: i64,
    owner: &str,
    attempt: u32,
    until: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE requests SET lease_until = ?
         WHERE id = ? AND status = 'applying' AND lease_owner = ? AND attempts = ?",
    )
    .bind(until)
    .bind(id)
    .bind(owner)
    .bind(i64::from(attempt))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the outcome of an apply, only if this worker still holds the lease.
/// `retry_at` is set when a temporary failure defers the job (and counts it).
pub async fn finish_apply(
    conn: &mut SqliteConnection,
    r: &Request,
    owner: &str,
    result: Option<&ApplyResult>,
    retry_at: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let result = result.map(serde_json::to_string).transpose().map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let done = sqlx::query(
        "UPDATE requests SET status = ?, updated_at = ?, failure = ?, result = COALESCE(?, result),
             lease_owner = NULL, lease_until = NULL, not_before = ?,
             retries = CASE WHEN ? IS NULL THEN 0 ELSE retries + 1 END
         WHERE id = ? AND status = 'applying' AND lease_owner = ? AND attempts = ?",
    )
    .bind(r.status.as_str())
    .bind(r.updated_at)
    .bind(r.failure.as_deref())
    .bind(result)
    .bind(retry_at)
    .bind(retry_at)
    .bind(r.id)
    .bind(owner)
    .bind(i64::from(r.attempts))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn approvals(conn: &mut SqliteConnection, request_id: i64) -> Result<Vec<Approval>, sqlx::Error> {
    let rows = sqlx::query("SELECT approver, at, comment FROM approvals WHERE request_id = ? ORDER BY at, approver")
        .bind(request_id)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Approval { approver: r.try_get("approver")?, at: r.try_get("at")?, comment: r.try_get("comment")? })
        })
        .collect()
}

/// A request with everything its page shows from the database: its approvals,
/// its events (the timeline) and its repository's drift.
#[derive(Debug, Clone)]
pub struct RequestView {
    pub row: RequestRow,
    pub approvals: Vec<Approval>,
    /// Oldest first.
    pub timeline: Vec<EventRow>,
    /// The repository record's drift, as last checked (empty without a record).
    pub drift: Vec<String>,
}

/// Reads a request's [`RequestView`].
pub async fn request_view(conn: &mut SqliteConnection, id: i64) -> Result<Option<RequestView>, sqlx::Error> {
    let Some(row) = get_request(&mut *conn, id).await? else { return Ok(None) };
    let approvals = approvals(&mut *conn, id).await?;
    let timeline = super::events_for_request(&mut *conn, id).await?;
    let drift = super::get_record(&mut *conn, row.request.kind.repository().as_str())
        .await?
        .map(|r| r.drift)
        .unwrap_or_default();
    Ok(Some(RequestView { row, approvals, timeline, drift }))
}

pub async fn insert_approval(conn: &mut SqliteConnection, request_id: i64, a: &Approval) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO approvals (request_id, approver, at, comment) VALUES (?, ?, ?, ?)")
        .bind(request_id)
        .bind(&a.approver)
        .bind(a.at)
        .bind(&a.comment)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Starts a new approval round (the request was sent back for re-approval).
pub async fn clear_approvals(conn: &mut SqliteConnection, request_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM approvals WHERE request_id = ?").bind(request_id).execute(conn).await.map(|_| ())
}

/// Pending requests created before `cutoff`, oldest first.
/// Requests waiting for a decision (pending, or sent back) since before `cutoff`.
pub async fn waiting_since(conn: &mut SqliteConnection, cutoff: i64) -> Result<Vec<RequestRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM requests WHERE status IN ('pending', 'needs_reapproval') AND created_at <= ? ORDER BY id LIMIT 500",
    )
    .bind(cutoff)
    .fetch_all(conn)
    .await?;
    rows.iter().map(request_from_row).collect()
}

/// Requests waiting for a decision since before `cutoff`: pending ones since
/// they were submitted, ones sent back for re-approval since they were sent back.
pub async fn pending_before(conn: &mut SqliteConnection, cutoff: i64) -> Result<Vec<RequestRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM requests WHERE (status = 'pending' AND created_at < ?1)
            OR (status = 'needs_reapproval' AND updated_at < ?1) ORDER BY id LIMIT 500",
    )
    .bind(cutoff)
    .fetch_all(conn)
    .await?;
    rows.iter().map(request_from_row).collect()
}
