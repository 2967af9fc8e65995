//! What the portal approved for each repository (its record): settings,
//! production access, and the drift last found.
use app::domain::settings::RepositorySpec;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use std::collections::HashMap;

/// What the portal approved for one repository.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub name: String,
    pub spec: Option<RepositorySpec>,
    pub production_access: bool,
    pub production_until: Option<i64>,
    pub request_id: Option<i64>,
    pub adopted_at: Option<i64>,
    pub drift: Vec<String>,
    pub checked_at: Option<i64>,
}

fn record_from_row(row: &SqliteRow) -> Result<RecordRow, sqlx::Error> {
    let spec: Option<String> = row.try_get("spec")?;
    let spec = spec
        .map(|s| serde_json::from_str::<RepositorySpec>(&s))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let drift: String = row.try_get("drift")?;
    Ok(RecordRow {
        name: row.try_get("name")?,
        spec,
        production_access: row.try_get::<i64, _>("production_access")? == 1,
        production_until: row.try_get("production_until")?,
        request_id: row.try_get("request_id")?,
        adopted_at: row.try_get("adopted_at")?,
        drift: serde_json::from_str(&drift).unwrap_or_default(),
        checked_at: row.try_get("checked_at")?,
    })
}

pub async fn get_record(conn: &mut SqliteConnection, name: &str) -> Result<Option<RecordRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM repositories WHERE name = ?")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .map(|r| record_from_row(&r))
        .transpose()
}

/// Every record's name and whether it has drifted, without decoding the
/// records (the inventory filters on these over thousands of repositories).
/// One row with two newline-separated lists (repository names cannot hold a
/// newline): sqlx hands SQLite rows over one by one, which costs more than
/// the query for thousands of rows.
pub async fn record_index(pool: &SqlitePool) -> Result<HashMap<String, bool>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT coalesce(group_concat(name, char(10)), '') AS names,
                coalesce(group_concat(CASE WHEN drift != '[]' THEN name END, char(10)), '') AS drifted
         FROM repositories",
    )
    .fetch_one(pool)
    .await?;
    let (names, drifted): (String, String) = (row.try_get("names")?, row.try_get("drifted")?);
    let mut index: HashMap<String, bool> = names.lines().map(|n| (n.to_string(), false)).collect();
    for n in drifted.lines() {
        index.insert(n.to_string(), true);
    }
    Ok(index)
}

/// The records of these repositories (one inventory page), by name.
pub async fn records_named(pool: &SqlitePool, names: &[&str]) -> Result<HashMap<String, RecordRow>, sqlx::Error> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM repositories WHERE name IN (");
    let mut list = q.separated(", ");
    for n in names {
        list.push_bind(*n);
    }
    q.push(")");
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(|r| record_from_row(r).map(|x| (x.name.clone(), x))).collect()
}

pub async fn list_records(pool: &SqlitePool) -> Result<Vec<RecordRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM repositories ORDER BY name").fetch_all(pool).await?;
    rows.iter().map(record_from_row).collect()
}

pub async fn upsert_record(conn: &mut SqliteConnection, r: &RecordRow) -> Result<(), sqlx::Error> {
    let spec = r.spec.as_ref().map(serde_json::to_string).transpose().map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let drift = serde_json::to_string(&r.drift).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO repositories (name, spec, production_access, production_until, request_id, adopted_at, drift, checked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, production_access = excluded.production_access,
             production_until = excluded.production_until, request_id = excluded.request_id,
             adopted_at = excluded.adopted_at, drift = excluded.drift, checked_at = excluded.checked_at",
    )
    .bind(&r.name)
    .bind(spec)
    .bind(i64::from(r.production_access))
    .bind(r.production_until)
    .bind(r.request_id)
    .bind(r.adopted_at)
    .bind(drift)
    .bind(r.checked_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records whose temporary production grant has ended, that no request is
/// applying right now, and for which no revoke was made since the end (a failed
/// system revoke is retried by an admin, not re-created in a loop).
/// Temporary grants that end after `now` and no later than `by`.
pub async fn grants_ending(conn: &mut SqliteConnection, now: i64, by: i64) -> Result<Vec<RecordRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM repositories WHERE production_access = 1 AND production_until > ? AND production_until <= ?",
    )
    .bind(now)
    .bind(by)
    .fetch_all(conn)
    .await?;
    rows.iter().map(record_from_row).collect()
}

pub async fn ended_grants(conn: &mut SqliteConnection, now: i64) -> Result<Vec<RecordRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM repositories r
         WHERE production_access = 1 AND production_until IS NOT NULL AND production_until <= ?
           AND NOT EXISTS (SELECT 1 FROM requests q WHERE q.repository = r.name
                           AND q.status IN ('approved', 'applying'))
           AND NOT EXISTS (SELECT 1 FROM requests q WHERE q.repository = r.name
                           AND q.kind = 'revoke_production' AND q.created_at >= r.production_until)",
    )
    .bind(now)
    .fetch_all(conn)
    .await?;
    rows.iter().map(record_from_row).collect()
}

/// Moves a repository's record to `deleted_repositories` (kept, as it was),
/// out of `repositories`: a later repository of the same name starts afresh.
pub async fn archive_record(
    conn: &mut SqliteConnection,
    name: &str,
    request_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let record: Option<String> = sqlx::query_scalar(
        "SELECT json_object('spec', json(spec), 'production_access', production_access,
                            'production_until', production_until, 'request_id', request_id,
                            'adopted_at', adopted_at, 'drift', json(drift), 'checked_at', checked_at)
         FROM repositories WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO deleted_repositories (name, deleted_at, request_id, record) VALUES (?, ?, ?, ?)")
        .bind(name)
        .bind(now)
        .bind(request_id)
        .bind(record.unwrap_or_else(|| "null".into()))
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM repositories WHERE name = ?").bind(name).execute(conn).await.map(|_| ())
}

/// A promotion of an image to a release tag, as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub request_id: i64,
    pub requested_by: String,
    pub approved_by: String,
    pub at: i64,
}

pub async fn insert_release(conn: &mut SqliteConnection, r: &Release) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO releases (repository, tag, digest, request_id, requested_by, approved_by, at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.repository)
    .bind(&r.tag)
    .bind(&r.digest)
    .bind(r.request_id)
    .bind(&r.requested_by)
    .bind(&r.approved_by)
    .bind(r.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Retires a deleted repository's releases (kept, no longer listed).
pub async fn retire_releases(
    conn: &mut SqliteConnection,
    repository: &str,
    by_request: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE releases SET retired_by = ? WHERE repository = ? AND retired_by IS NULL")
        .bind(by_request)
        .bind(repository)
        .execute(conn)
        .await?;
    Ok(())
}

/// A repository's releases, newest first: for each tag, its latest promotion.
pub async fn releases(conn: &mut SqliteConnection, repository: &str) -> Result<Vec<Release>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64, String, String, i64)> = sqlx::query_as(
        "SELECT repository, tag, digest, request_id, requested_by, approved_by, at FROM releases r
         WHERE repository = ? AND retired_by IS NULL
           AND id = (SELECT MAX(id) FROM releases WHERE repository = r.repository AND tag = r.tag AND retired_by IS NULL)
         ORDER BY id DESC",
    )
    .bind(repository)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(repository, tag, digest, request_id, requested_by, approved_by, at)| Release {
            repository,
            tag,
            digest,
            request_id,
            requested_by,
            approved_by,
            at,
        })
        .collect())
}
