//! The guard in front of every route: the `Host` must be the portal's, and
//! state-changing requests must come from its own pages (CSRF, DNS rebinding).
use super::error::error_response;
use super::state::AppState;
use app::domain::audit::AuditAction;
use app::domain::principal::Principal;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// `host[:port]` of an origin such as `https://ecr.example.com`.
pub(super) fn authority(origin: &str) -> &str {
    origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin)
}

/// Loopback names with any port: a DNS-rebinding page cannot make the
/// browser send these, so they are safe to accept next to the public name.
pub(super) fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")).unwrap_or_default(),
        None => authority.split(':').next().unwrap_or("").to_string(),
    };
    matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]")
}

/// Guards every request:
/// - the `Host` must be the public URL's or a loopback name (a page on
///   another site that rebinds its DNS name to this server is refused, reads too);
/// - state-changing requests that the browser marks as cross-site, or whose
///   `Origin` is neither the public URL nor a loopback origin, are refused.
///   GET and HEAD never change state.
pub async fn same_origin_only(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let public = authority(&state.public_url);
    let host_ok =
        req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).is_none_or(|h| h == public || is_loopback(h));
    if !host_ok {
        return (StatusCode::MISDIRECTED_REQUEST, "this host name does not serve the portal; see server.public_url")
            .into_response();
    }
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let h = req.headers();
    let cross_site =
        h.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "cross-site" || v == "same-site");
    let origin_mismatch = match h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => false,
        Some(origin) => origin != state.public_url && !is_loopback(authority(origin)),
    };
    if cross_site || origin_mismatch {
        let who = req.extensions().get::<Principal>().map(|p| p.id.clone());
        let what = format!("cross-site {} {} refused", req.method(), req.uri().path());
        state.service.anonymous_event(who.as_deref(), AuditAction::AccessDenied, what).await;
        return error_response(&app::error::AppError::Forbidden(
            "cross-site requests cannot change anything here".into(),
        ));
    }
    next.run(req).await
}
