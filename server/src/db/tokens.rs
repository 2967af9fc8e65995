//! API tokens: only their secret's hash is stored.
use super::sessions::principal_from_row;
use app::domain::principal::{Principal, TokenScope};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

fn token_from_row(r: &SqliteRow) -> Result<TokenRow, sqlx::Error> {
    let scope: String = r.try_get("scope")?;
    Ok(TokenRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        scope: TokenScope::parse(&scope).ok_or_else(|| sqlx::Error::Decode(format!("unknown scope {scope}").into()))?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

pub async fn insert_token(
    conn: &mut SqliteConnection,
    secret_hash: &str,
    user_id: &str,
    name: &str,
    scope: TokenScope,
    now: i64,
    expires_at: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_tokens (secret_hash, user_id, name, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
         RETURNING id",
    )
    .bind(secret_hash)
    .bind(user_id)
    .bind(name)
    .bind(scope.as_str())
    .bind(now)
    .bind(expires_at)
    .fetch_one(conn)
    .await?
    .try_get("id")
}

/// The token with this secret hash and its owner, if it exists (valid or not).
/// The token with this secret hash, its owner, and when the owner last signed in.
pub async fn token_by_hash(
    pool: &SqlitePool,
    secret_hash: &str,
) -> Result<Option<(TokenRow, Principal, i64)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT t.*, u.name AS user_name, u.role, u.groups, u.last_sign_in FROM api_tokens t
         JOIN users u ON u.id = t.user_id WHERE t.secret_hash = ?",
    )
    .bind(secret_hash)
    .fetch_optional(pool)
    .await?;
    row.map(|r| Ok((token_from_row(&r)?, principal_from_row(&r)?, r.try_get("last_sign_in")?))).transpose()
}

pub async fn tokens_of(pool: &SqlitePool, user_id: &str) -> Result<Vec<TokenRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM api_tokens WHERE user_id = ? ORDER BY id DESC")
        .bind(user_id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(token_from_row).collect()
}

/// Revokes one of the user's tokens; false when there is no such live token of theirs.
pub async fn revoke_token(conn: &mut SqliteConnection, user_id: &str, id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn touch_token(conn: &mut SqliteConnection, id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}
