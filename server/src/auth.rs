//! Sign-in, sessions and the current user.
//!
//! - Sessions live in SQLite; the cookie holds 256 random bits and the table
//!   only their SHA-256, so the database alone cannot be used to sign in.
//! - The cookie is HttpOnly and SameSite=Lax; a new id is issued at every sign-in.
//! - Idle and absolute timeouts come from configuration.
//! - Local sign-in (`POST /auth/local`) is for the default run on loopback.
//! - State-changing requests from another site are refused ([`same_origin_only`]).
use crate::service::PortalService;
use crate::startup::AppState;
use app::domain::principal::{parse_local_username, Principal, Role};
use axum::extract::{Form, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "ecr_portal_session";

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn session_cookie(token: &str, max_age_s: i64) -> String {
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}")
}

/// Resolves the session cookie into a [`Principal`] in the request's extensions.
pub async fn current_user(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(token) = cookie_value(req.headers()) {
        let svc = &state.service;
        let id_hash = hash(&token);
        let now = svc.now();
        match crate::db::get_session(&svc.db.pool, &id_hash).await {
            Ok(Some(s)) => {
                let idle_ms = i64::try_from(state.session_idle_ms).unwrap_or(i64::MAX);
                if now >= s.expires_at || now - s.last_seen >= idle_ms {
                    if let Ok(mut conn) = svc.db.pool.acquire().await {
                        let _ = crate::db::delete_session(&mut conn, &id_hash).await;
                    }
                } else if let Some(role) = Role::parse(&s.role) {
                    if now - s.last_seen > 60_000 {
                        let _ = crate::db::touch_session(&svc.db.pool, &id_hash, now).await;
                    }
                    req.extensions_mut().insert(Principal { id: s.user_id, name: s.user_name, role });
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!("reading session: {e}"),
        }
    }
    next.run(req).await
}

/// Refuses state-changing requests that a browser marks as cross-site, or whose
/// `Origin` is not this server. GET and HEAD never change state.
pub async fn same_origin_only(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let h = req.headers();
    let cross_site =
        h.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "cross-site" || v == "same-site");
    let origin_mismatch = match (
        h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        h.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some("null"), _) => true,
        (Some(_), None) => true,
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, rest)| rest) != Some(host),
        _ => false,
    };
    if cross_site || origin_mismatch {
        return crate::api::error_response(&app::error::AppError::Forbidden(
            "cross-site requests cannot change anything here".into(),
        ));
    }
    next.run(req).await
}

#[derive(Deserialize)]
pub struct LocalSignIn {
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    next: String,
}

fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next.to_string()
    } else {
        "/".into()
    }
}

fn login_error(msg: &str) -> Response {
    let q: String = msg
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    Redirect::to(&format!("/login?error={q}")).into_response()
}

async fn start_session(state: &AppState, p: &Principal) -> Result<String, Response> {
    let svc: &PortalService = &state.service;
    let token = new_token();
    let now = svc.now();
    let expires = now + i64::try_from(state.session_absolute_ms).unwrap_or(i64::MAX / 2);
    let detail = format!("local sign-in as {}", p.role);
    svc.start_session(p, &hash(&token), now, expires, detail).await.map_err(|e| crate::api::error_response(&e))?;
    Ok(session_cookie(&token, (expires - now) / 1000))
}

/// `POST /auth/local` (form: `username`, `role` = requester|admin, optional `next`).
pub async fn local_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LocalSignIn>,
) -> Response {
    if !state.service.deployment.local_sign_in {
        return (StatusCode::NOT_FOUND, "local sign-in is not enabled").into_response();
    }
    let wants_json =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"));
    let username = match parse_local_username(&form.username) {
        Ok(u) => u,
        Err(e) if wants_json => {
            return crate::api::error_response(&app::error::AppError::Invalid(vec![
                app::domain::form::FieldError::new("username", e),
            ]))
        }
        Err(e) => return login_error(&e),
    };
    let Some(role) = Role::parse(&form.role) else {
        let msg = "choose the requester or admin role";
        if wants_json {
            return crate::api::error_response(&app::error::AppError::Invalid(vec![
                app::domain::form::FieldError::new("role", msg),
            ]));
        }
        return login_error(msg);
    };
    let p = Principal { id: format!("local:{username}"), name: username, role };
    let cookie = match start_session(&state, &p).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut resp = if wants_json {
        axum::Json(serde_json::json!({"user": p})).into_response()
    } else {
        Redirect::to(&safe_next(&form.next)).into_response()
    };
    if let Ok(v) = cookie.parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /auth/logout`: ends the session on the server and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: Option<axum::Extension<Principal>>,
) -> Response {
    let token = cookie_value(&headers).map(|t| hash(&t));
    if let Err(e) = state.service.end_session(user.map(|axum::Extension(p)| p).as_ref(), token.as_deref()).await {
        return crate::api::error_response(&e);
    }
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = session_cookie("", 0).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/requests/1"), "/requests/1");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil"), "/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; ecr_portal_session=abc; b=2".parse().expect("header"));
        assert_eq!(cookie_value(&h).as_deref(), Some("abc"));
        assert_ne!(hash("abc"), "abc");
        assert_eq!(new_token().len(), 64);
    }
}
