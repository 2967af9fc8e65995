//! People: users (as of their last sign-in), browser sessions, and OpenID
//! Connect sign-ins in progress.
use app::domain::principal::{Principal, Role};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub principal: Principal,
    pub last_seen: i64,
    pub expires_at: i64,
}

/// Records (or refreshes) a user at sign-in: sessions and tokens read role and groups from here,
/// notifications the email address (the one the sign-in carried, if any).
pub async fn upsert_user(
    conn: &mut SqliteConnection,
    p: &Principal,
    email: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, name, role, groups, last_sign_in, email) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, groups = excluded.groups,
                                        last_sign_in = excluded.last_sign_in, email = excluded.email",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(p.role.as_str())
    .bind(serde_json::to_string(&p.groups).unwrap_or_else(|_| "[]".into()))
    .bind(now)
    .bind(email)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The user a session or token belongs to: columns `user_id`, `user_name`, `role`, `groups`.
pub(super) fn principal_from_row(r: &SqliteRow) -> Result<Principal, sqlx::Error> {
    let role: String = r.try_get("role")?;
    let groups: String = r.try_get("groups")?;
    Ok(Principal::new(
        r.try_get::<String, _>("user_id")?,
        r.try_get::<String, _>("user_name")?,
        Role::parse(&role).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {role}").into()))?,
        serde_json::from_str(&groups).unwrap_or_default(),
    ))
}

pub async fn insert_session(
    conn: &mut SqliteConnection,
    id_hash: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sessions (id_hash, user_id, created_at, last_seen, expires_at) VALUES (?, ?, ?, ?, ?)")
        .bind(id_hash)
        .bind(user_id)
        .bind(now)
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn get_session(pool: &SqlitePool, id_hash: &str) -> Result<Option<SessionRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT s.user_id, u.name AS user_name, u.role, u.groups, s.last_seen, s.expires_at
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?",
    )
    .bind(id_hash)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(SessionRow {
            principal: principal_from_row(&r)?,
            last_seen: r.try_get("last_seen")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

pub async fn touch_session(conn: &mut SqliteConnection, id_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET last_seen = ? WHERE id_hash = ?")
        .bind(now)
        .bind(id_hash)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn delete_session(conn: &mut SqliteConnection, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = ?").bind(id_hash).execute(conn).await.map(|_| ())
}

#[derive(Debug, Clone)]
pub struct OidcLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next: String,
    pub created_at: i64,
}

pub async fn insert_oidc_login(
    conn: &mut SqliteConnection,
    binding_hash: &str,
    l: &OidcLogin,
) -> Result<(), sqlx::Error> {
    // Abandoned sign-ins older than an hour are swept on the way.
    sqlx::query("DELETE FROM oidc_logins WHERE created_at < ?")
        .bind(l.created_at - 3_600_000)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO oidc_logins (binding_hash, state, nonce, pkce_verifier, next, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(binding_hash)
    .bind(&l.state)
    .bind(&l.nonce)
    .bind(&l.pkce_verifier)
    .bind(&l.next)
    .bind(l.created_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Takes (reads and deletes) the sign-in bound to this browser: each is used at most once.
pub async fn take_oidc_login(
    conn: &mut SqliteConnection,
    binding_hash: &str,
) -> Result<Option<OidcLogin>, sqlx::Error> {
    let row = sqlx::query("DELETE FROM oidc_logins WHERE binding_hash = ? RETURNING *")
        .bind(binding_hash)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(OidcLogin {
            state: r.try_get("state")?,
            nonce: r.try_get("nonce")?,
            pkce_verifier: r.try_get("pkce_verifier")?,
            next: r.try_get("next")?,
            created_at: r.try_get("created_at")?,
        })
    })
    .transpose()
}

/// Everyone who has signed in, with their live sessions and tokens, newest sign-in first.
pub async fn list_users(pool: &SqlitePool, now: i64, limit: i64) -> Result<Vec<UserRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT u.id AS user_id, u.name AS user_name, u.role, u.groups, u.last_sign_in,
           (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at > ?1) AS sessions,
           (SELECT MAX(last_seen) FROM sessions s WHERE s.user_id = u.id) AS session_seen,
           (SELECT COUNT(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL
              AND t.expires_at > ?1) AS tokens,
           (SELECT MAX(last_used_at) FROM api_tokens t WHERE t.user_id = u.id) AS token_seen
         FROM users u ORDER BY u.last_sign_in DESC, u.id LIMIT ?2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let last_sign_in: i64 = r.try_get("last_sign_in")?;
            let seen = [r.try_get::<Option<i64>, _>("session_seen")?, r.try_get::<Option<i64>, _>("token_seen")?];
            Ok(UserRow {
                principal: principal_from_row(r)?,
                last_sign_in,
                last_seen: seen.into_iter().flatten().fold(last_sign_in, i64::max),
                sessions: r.try_get("sessions")?,
                tokens: r.try_get("tokens")?,
            })
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub principal: Principal,
    pub last_sign_in: i64,
    pub last_seen: i64,
    pub sessions: u32,
    pub tokens: u32,
}

/// Ends every session and revokes every live API token of a user; None when
/// there is no such user, else (sessions ended, tokens revoked).
pub async fn revoke_user(
    conn: &mut SqliteConnection,
    user_id: &str,
    now: i64,
) -> Result<Option<(u64, u64)>, sqlx::Error> {
    let known: Option<(String,)> =
        sqlx::query_as("SELECT id FROM users WHERE id = ?").bind(user_id).fetch_optional(&mut *conn).await?;
    if known.is_none() {
        return Ok(None);
    }
    let sessions = sqlx::query("DELETE FROM sessions WHERE user_id = ?").bind(user_id).execute(&mut *conn).await?;
    let tokens = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(Some((sessions.rows_affected(), tokens.rows_affected())))
}

/// The email address a user's latest sign-in carried.
pub async fn user_email(conn: &mut SqliteConnection, id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT email FROM users WHERE id = ?").bind(id).fetch_optional(conn).await?;
    Ok(row.and_then(|r| r.0))
}
