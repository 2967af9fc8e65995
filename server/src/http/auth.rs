//! Sign-in, sessions, API tokens and the current user.
//!
//! - Sessions live in SQLite; the cookie holds 256 random bits and the table
//!   only their SHA-256, so the database alone cannot be used to sign in.
//! - The cookie is HttpOnly and SameSite=Lax; Secure with the `__Host-` prefix
//!   when the portal is served over HTTPS; a new id is issued at every sign-in.
//! - Idle and absolute timeouts come from configuration; sign-out deletes the
//!   session on the server.
//! - `Authorization: Bearer <token>` authenticates an API token instead; every
//!   use is recorded in the audit trail, attributed to the token.
//! - Local sign-in (`POST /auth/local`) is for the default run on loopback;
//!   OpenID Connect (`/auth/oidc/start`, `/auth/oidc/callback`) for real use.
//! - State-changing requests from another site are refused (`guard.rs`).
use super::error::error_response;
use super::state::AppState;
use crate::secret::{hash, random_hex};
use crate::service::PortalService;
use app::domain::audit::AuditAction;
use app::domain::principal::{parse_local_username, Principal, Role};
use axum::extract::{Form, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolves the API token or the session cookie into a [`Principal`] in the request's extensions.
pub async fn current_user(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let svc = &state.service;
    if let Some(secret) = bearer(req.headers()).map(str::to_string) {
        let what = format!("{} {}", req.method(), req.uri().path());
        return match svc.authenticate_token(&secret).await {
            Ok(p) => {
                req.extensions_mut().insert(p.clone());
                let resp = next.run(req).await;
                let via = p.via().unwrap_or_default();
                svc.security_event(
                    &p.id,
                    AuditAction::TokenUsed,
                    format!("{via}: {what} → {}", resp.status().as_u16()),
                )
                .await;
                resp
            }
            Err(why) => {
                let ip = state.client_ip_of(req.headers(), req.extensions());
                svc.anonymous_event(ip, None, AuditAction::SignInFailed, format!("{why} ({what})")).await;
                error_response(&app::error::AppError::Unauthenticated)
            }
        };
    }
    if let Some(token) = cookie_value(req.headers(), state.cookies.session) {
        let id_hash = hash(&token);
        let now = svc.now();
        let found = svc.session(&id_hash).await;
        match found {
            Ok(Some(s)) => {
                let idle_ms = i64::try_from(state.session_idle_ms).unwrap_or(i64::MAX);
                // A session from the local sign-in is over once the portal runs with OIDC.
                let foreign = !svc.accepts_credentials_of(&s.principal.id);
                if foreign || now >= s.expires_at || now - s.last_seen >= idle_ms {
                    let _ = svc.end_session(None, Some(&id_hash)).await; // logged inside
                } else {
                    if now - s.last_seen > 60_000 {
                        svc.touch_session(&id_hash, now).await;
                    }
                    req.extensions_mut().insert(s.principal);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!("reading session: {e}"),
        }
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

/// Where to go after signing in: only a path on this site, made of plain URL
/// characters (no scheme, no `//`, no backslash, no whitespace or control
/// characters, which browsers drop and would turn `/\t/x` into `//x`).
fn safe_next(next: &str) -> String {
    let plain = next.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_.~%?=&-+:,".contains(&b));
    if plain && next.starts_with('/') && !next.starts_with("//") && !next.contains("%09") {
        next.to_string()
    } else {
        "/".into()
    }
}

/// Back to the sign-in page with a known error code (`app::views::login_error_text`).
fn login_error(code: &'static str) -> Response {
    debug_assert!(app::views::login_error_text(code).is_some(), "unknown sign-in error code {code}");
    Redirect::to(&format!("/login?error={code}")).into_response()
}

/// Creates the session (a new id every time) and returns its cookie.
async fn start_session(
    state: &AppState,
    p: &Principal,
    email: Option<&str>,
    detail: String,
) -> Result<HeaderValue, Response> {
    let svc: &PortalService = &state.service;
    let token = random_hex();
    let now = svc.now();
    let expires = now + i64::try_from(state.session_absolute_ms).unwrap_or(i64::MAX / 2);
    svc.start_session(p, email, &hash(&token), now, expires, detail).await.map_err(|e| error_response(&e.into()))?;
    Ok(state.cookies.set(state.cookies.session, &token, (expires - now) / 1000))
}

/// `POST /auth/local` (form: `username`, `role` = requester|approver|admin|auditor, optional `next`).
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
            return error_response(&app::error::AppError::Invalid(vec![app::domain::form::FieldError::new(
                "username", e,
            )]))
        }
        Err(_) => return login_error("username"),
    };
    // "approver": a requester in the approval policy's groups (other than the admin group).
    let approver = form.role.trim() == "approver";
    let Some(role) = (if approver { Some(Role::Requester) } else { Role::parse(&form.role) }) else {
        let msg = "choose the requester, approver, admin or auditor role";
        if wants_json {
            return error_response(&app::error::AppError::Invalid(vec![app::domain::form::FieldError::new(
                "role", msg,
            )]));
        }
        return login_error("role");
    };
    let groups = if approver { state.roles.local_approver_groups() } else { state.roles.local_groups(role) };
    let p = Principal::new(format!("local:{username}"), username, role, groups);
    let label = if approver { "approver".to_string() } else { role.to_string() };
    let cookie = match start_session(&state, &p, None, format!("local sign-in as {label}")).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut resp = if wants_json {
        axum::Json(serde_json::json!({"user": p})).into_response()
    } else {
        Redirect::to(&safe_next(&form.next)).into_response()
    };
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

#[derive(Deserialize)]
pub struct OidcStart {
    #[serde(default)]
    next: String,
}

/// `GET /auth/oidc/start?next=/path`: remembers state, nonce and the PKCE
/// verifier for this browser (a short-lived cookie binds them) and sends the
/// browser to the provider.
pub async fn oidc_start(State(state): State<AppState>, Query(q): Query<OidcStart>) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return (StatusCode::NOT_FOUND, "OpenID Connect sign-in is not enabled").into_response();
    };
    let started = match oidc.start().await {
        Ok(s) => s,
        Err(why) => {
            tracing::warn!("starting an OpenID Connect sign-in: {why}");
            return login_error("unavailable");
        }
    };
    let binding = random_hex();
    let login = crate::db::OidcLogin {
        state: started.state,
        nonce: started.nonce,
        pkce_verifier: started.pkce_verifier,
        next: safe_next(&q.next),
        created_at: state.service.now(),
    };
    if let Err(e) = state.service.save_oidc_login(&hash(&binding), &login).await {
        return error_response(&e.into());
    }
    let mut resp = Redirect::to(&started.authorize_url).into_response();
    resp.headers_mut().append(header::SET_COOKIE, state.cookies.set(state.cookies.login, &binding, 600));
    resp
}

#[derive(Deserialize)]
pub struct OidcCallback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/oidc/callback`: the provider sends the browser back here. The
/// pending sign-in is taken (used once), `state` compared, the code exchanged
/// with the PKCE verifier and the id_token verified; then a new session.
pub async fn oidc_callback(
    State(state): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Query(q): Query<OidcCallback>,
) -> Response {
    let ip = super::serve::client_ip(&headers, peer.map(|p| p.0 .0), state.trust_forwarded_for);
    let Some(oidc) = state.oidc.clone() else {
        return (StatusCode::NOT_FOUND, "OpenID Connect sign-in is not enabled").into_response();
    };
    let svc = &state.service;
    let clear = state.cookies.set(state.cookies.login, "", 0);
    let fail = |actor: String, why: String, shown: &'static str| {
        let clear = clear.clone();
        async move {
            svc.anonymous_event(
                ip,
                Some(&actor).filter(|a| *a != "anonymous").map(|a| a.as_str()),
                AuditAction::SignInFailed,
                why,
            )
            .await;
            let mut r = login_error(shown);
            r.headers_mut().append(header::SET_COOKIE, clear);
            r
        }
    };
    let anon = || "anonymous".to_string();
    let pending = match cookie_value(&headers, state.cookies.login) {
        None => None,
        Some(binding) => match svc.take_oidc_login(&hash(&binding)).await {
            Ok(l) => l,
            Err(e) => return error_response(&e.into()),
        },
    };
    let Some(login) = pending else {
        return fail(
            anon(),
            "OIDC callback without a sign-in in progress in this browser (replayed or expired)".into(),
            "expired",
        )
        .await;
    };
    if svc.now() - login.created_at > 600_000 {
        return fail(anon(), "OIDC sign-in took longer than 10 minutes".into(), "too_slow").await;
    }
    if let Some(err) = q.error {
        let err: String = err.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect();
        let desc = q.error_description.unwrap_or_default();
        let desc: String = desc.chars().filter(|c| !c.is_control()).take(200).collect();
        return fail(anon(), format!("the identity provider answered {err}: {desc}"), "refused").await;
    }
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return fail(anon(), "OIDC callback without code or state".into(), "incomplete").await;
    };
    // Compare hashes so the comparison time does not depend on the secret.
    if hash(&st) != hash(&login.state) {
        return fail(anon(), "OIDC callback with a wrong state".into(), "mismatch").await;
    }
    let identity = match oidc.finish(&code, &login.nonce, &login.pkce_verifier).await {
        Ok(i) => i,
        Err(why) => return fail(anon(), why, "unverified").await,
    };
    if !state.roles.may_sign_in(&identity.groups) {
        return fail(
            identity.id.clone(),
            format!("sign-in denied: not in an allowed group (has: {})", identity.groups.join(", ")),
            "not_allowed",
        )
        .await;
    }
    let role = state.roles.role_for(&identity.groups);
    let email = identity.email;
    let p = Principal::new(identity.id, identity.name, role, identity.groups);
    let detail = format!("OpenID Connect sign-in as {role} (groups: {})", p.groups.join(", "));
    let cookie = match start_session(&state, &p, email.as_deref(), detail).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut resp = Redirect::to(&login.next).into_response();
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp.headers_mut().append(header::SET_COOKIE, clear);
    resp
}

/// `POST /auth/logout`: ends the session on the server and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: Option<axum::Extension<Principal>>,
) -> Response {
    let token = cookie_value(&headers, state.cookies.session).map(|t| hash(&t));
    if let Err(e) = state.service.end_session(user.map(|axum::Extension(p)| p).as_ref(), token.as_deref()).await {
        return error_response(&e.into());
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(header::SET_COOKIE, state.cookies.set(state.cookies.session, "", 0));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::guard::{authority, is_loopback};
    use crate::http::Cookies;
    use crate::secret::new_token_secret;
    use app::domain::principal::Roles;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/requests/1"), "/requests/1");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil"), "/");
        assert_eq!(safe_next("/\t/evil.example"), "/");
        assert_eq!(safe_next("/\n/evil.example"), "/");
        assert_eq!(safe_next("/ /evil.example"), "/");
        assert_eq!(safe_next("/audit?action=signed_in&limit=50"), "/audit?action=signed_in&limit=50");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; ecr_portal_session=abc; b=2".parse().expect("header"));
        assert_eq!(cookie_value(&h, "ecr_portal_session").as_deref(), Some("abc"));
        assert_ne!(hash("abc"), "abc");
        assert_eq!(random_hex().len(), 64);
        assert!(new_token_secret().starts_with("ecrp_"));
    }

    #[test]
    fn https_cookies_are_secure_and_host_prefixed() {
        let c = Cookies::new(true);
        let v = c.set(c.session, "x", 60);
        let v = v.to_str().expect("ascii");
        assert!(v.starts_with("__Host-ecr_portal_session=x; Path=/; HttpOnly; SameSite=Lax"), "{v}");
        assert!(v.ends_with("; Secure"), "{v}");
        let plain = Cookies::new(false);
        assert!(!plain.set(plain.session, "x", 60).to_str().expect("ascii").contains("Secure"));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in ["127.0.0.1:3000", "localhost", "localhost:8080", "[::1]:3000"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["evil.example:3000", "127.0.0.1.evil.example", "localhost.evil.example:3000", "[::2]:1"] {
            assert!(!is_loopback(h), "{h}");
        }
        assert_eq!(authority("https://ecr.example.com"), "ecr.example.com");
    }

    #[test]
    fn groups_make_roles() {
        let r = Roles {
            admin_group: "ecr-admins".into(),
            auditor_group: "ecr-auditors".into(),
            approver_groups: vec!["prod-approvers".into()],
            allowed_groups: vec!["engineering".into()],
        };
        assert_eq!(r.role_for(&["engineering".into()]), Role::Requester);
        assert_eq!(r.role_for(&["ecr-auditors".into()]), Role::Auditor);
        assert_eq!(r.role_for(&["prod-approvers".into()]), Role::Requester, "an approver is not an admin");
        assert!(r.may_sign_in(&["prod-approvers".into()]), "approvers may sign in");
        assert_eq!(r.role_for(&["ecr-admins".into(), "ecr-auditors".into()]), Role::Admin);
        assert!(!r.may_sign_in(&["sales".into()]));
        assert!(r.may_sign_in(&["ecr-auditors".into()]));
    }
}
