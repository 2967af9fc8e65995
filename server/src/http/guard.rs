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

/// The port of an origin (`http://127.0.0.1:3000` → 3000; the scheme's default when none is given).
fn port_of(origin: &str) -> Option<u16> {
    let a = authority(origin);
    let rest = match a.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.1.strip_prefix(':').unwrap_or(""),
        None => a.split_once(':').map_or("", |(_, p)| p),
    };
    match rest {
        "" if origin.starts_with("https://") => Some(443),
        "" => Some(80),
        p => p.parse().ok(),
    }
}

/// A loopback origin on the portal's own port: another program on this
/// machine (a dev server on another port) cannot make the portal's users post.
pub(super) fn is_own_loopback_origin(origin: &str, listen_port: u16) -> bool {
    is_loopback(authority(origin)) && port_of(origin) == Some(listen_port)
}

/// Liveness and readiness answer on any `Host` (load balancers and probes use addresses).
fn is_health_check(path: &str) -> bool {
    path == "/healthz" || path == "/readyz"
}

/// Guards every request:
/// - the `Host` must be the public URL's or a loopback name (a page on
///   another site that rebinds its DNS name to this server is refused, reads too);
/// - state-changing requests that the browser marks as cross-site, or whose
///   `Origin` is neither the public URL nor a loopback origin on the portal's
///   own port, are refused. Health checks answer on any `Host`.
///   GET and HEAD never change state.
pub async fn same_origin_only(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let public = authority(&state.public_url);
    let host_ok = is_health_check(req.uri().path())
        || req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).is_none_or(|h| h == public || is_loopback(h));
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
        Some(origin) => origin != state.public_url && !is_own_loopback_origin(origin, state.listen_port),
    };
    if cross_site || origin_mismatch {
        let who = req.extensions().get::<Principal>().map(|p| p.id.clone());
        let what = format!("cross-site {} {} refused", req.method(), req.uri().path());
        let ip = state.client_ip_of(req.headers(), req.extensions());
        state.service.anonymous_event(ip, who.as_deref(), AuditAction::AccessDenied, what).await;
        return error_response(&app::error::AppError::Forbidden(
            "cross-site requests cannot change anything here".into(),
        ));
    }
    next.run(req).await
}

/// At most `auth.sign_in_per_minute` sign-in attempts (local sign-in, OIDC
/// start and callback) per client address: 429 with `Retry-After` past that.
pub async fn limit_sign_ins(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = state.client_ip_of(req.headers(), req.extensions());
    match state.sign_ins.hit(&ip, state.service.now()) {
        crate::limiter::Hit::Allowed { .. } => next.run(req).await,
        crate::limiter::Hit::Over { retry_after_ms } => {
            let what = format!("too many sign-in attempts ({} {})", req.method(), req.uri().path());
            state.service.anonymous_event(ip, None, AuditAction::SignInFailed, what).await;
            let mut resp = error_response(&app::error::AppError::TooManyRequests(format!(
                "too many sign-in attempts from your address; try again in {} s",
                (retry_after_ms + 999) / 1000
            )));
            if let Ok(v) = axum::http::HeaderValue::from_str(&((retry_after_ms + 999) / 1000).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

/// Every error under `/api/` is the API's JSON error, as its OpenAPI document says: the
/// answers made outside the handlers in plain text or with no body (a body over
/// `server.max_body_bytes` and a request over `server.request_timeout_seconds` from
/// tower-http, a wrong method from axum, a foreign `Host`) get that shape too, keeping
/// their status and headers.
pub async fn api_errors_as_json(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !api || json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("too_large", "the body is larger than this portal takes (server.max_body_bytes)")
        }
        StatusCode::REQUEST_TIMEOUT => {
            ("timeout", "the request was not answered within server.request_timeout_seconds")
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this path does not take that method; see /api/v1/openapi.json")
        }
        StatusCode::MISDIRECTED_REQUEST => {
            ("misdirected", "this host name does not serve the portal; see server.public_url")
        }
        StatusCode::BAD_REQUEST => ("bad_request", "the request is malformed"),
        StatusCode::NOT_FOUND => ("not_found", "no such API route; see /api/v1/openapi.json"),
        _ => ("error", status.canonical_reason().unwrap_or("the request failed")),
    };
    let (parts, body) = resp.into_parts();
    // A short plain-text reason (axum's rejections give one) says more than the generic sentence.
    let plain = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    let said = match plain {
        true => axum::body::to_bytes(body, 1024).await.ok().and_then(|b| String::from_utf8(b.to_vec()).ok()),
        false => None,
    };
    let said = said.as_deref().map(str::trim).filter(|m| !m.is_empty() && m.len() <= 300);
    let message = match said {
        Some(m) if matches!(code, "bad_request" | "error") => m,
        _ => message,
    };
    let mut json = super::error::json_error(status, code, message);
    // Only the headers that still hold for the new body.
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE, header::CACHE_CONTROL] {
        if let Some(v) = parts.headers.get(&name) {
            json.headers_mut().insert(name, v.clone());
        }
    }
    json
}

/// Content types the JSON API and the server functions take: JSON, and the
/// URL-encoded form a few server functions use. A `text/plain` body (what a
/// cross-site HTML form can send without a preflight) is refused with 415.
pub async fn json_content_only(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/api/");
    if req.method() == Method::POST && (api || path.starts_with("/rpc/")) {
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let ok = essence == "application/json" || (!api && essence == "application/x-www-form-urlencoded");
        if !ok {
            return error_response(&app::error::AppError::UnsupportedMediaType(if api {
                "send the body as JSON with `Content-Type: application/json`".into()
            } else {
                "send the body as JSON or a URL-encoded form".into()
            }));
        }
    }
    next.run(req).await
}

/// `Cache-Control: no-store` on everything a signed-in person is answered
/// with, and on every API, server function and sign-in answer: a shared
/// computer's browser cache or a proxy keeps no copy of requests, policies
/// or audit events. The site's static files keep their own caching.
pub async fn no_store_when_personal(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let personal = req.extensions().get::<Principal>().is_some()
        || ["/api/", "/rpc/", "/auth/", "/users", "/notifications"].iter().any(|p| path.starts_with(p));
    let stat = path.starts_with("/pkg/") || path == "/favicon.ico";
    let mut resp = next.run(req).await;
    if personal && !stat {
        resp.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_origin_counts_only_on_the_portals_own_port() {
        assert!(is_own_loopback_origin("http://127.0.0.1:3000", 3000));
        assert!(is_own_loopback_origin("http://localhost:3000", 3000));
        assert!(is_own_loopback_origin("http://[::1]:3000", 3000));
        assert!(!is_own_loopback_origin("http://127.0.0.1:5173", 3000), "another program on this machine");
        assert!(!is_own_loopback_origin("http://localhost", 3000));
        assert!(is_own_loopback_origin("http://localhost", 80));
        assert!(!is_own_loopback_origin("https://evil.example:3000", 3000));
        assert!(!is_own_loopback_origin("http://127.0.0.1:notaport", 3000));
    }
}
