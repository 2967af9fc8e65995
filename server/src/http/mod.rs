//! The HTTP layer, the only one that knows HTTP: the router with its
//! middleware, the pages (Leptos, server-rendered with islands), the JSON API,
//! sign-in, and the error boundary. It calls the service layer and never the
//! database.
pub mod api;
pub mod auth;
pub mod error;
mod forms;
pub mod guard;
mod people;
pub mod serve;
mod state;
mod terraform;

pub use state::{AppState, Cookies};

use app::api::{Portal, PortalHandle};
use app::{shell, App};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::set_header::SetResponseHeaderLayer;

/// How the site is served.
pub struct Site {
    /// Where the built site (pkg/, assets) is.
    pub root: String,
    pub addr: SocketAddr,
    pub max_body_bytes: u64,
    /// People reach the portal over HTTPS (HSTS).
    pub https: bool,
    /// A request not answered within this long gets 408 (`server.request_timeout_seconds`).
    pub request_timeout: Duration,
}

/// Every route, with the middleware in front of them.
pub fn router(state: AppState, site: Site) -> Router {
    let leptos_options = LeptosOptions::builder()
        .output_name("ecr-portal")
        .site_root(site.root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(site.addr)
        .build();
    let routes = route_list();
    let handle = PortalHandle(state.service.clone() as Arc<dyn Portal>);
    let form_pages = forms::Pages::new(leptos_options.clone(), handle.clone());
    let pages = Router::new()
        .leptos_routes_with_context(
            &leptos_options,
            routes,
            move || {
                provide_context(handle.clone());
                provide_context(forms::form_key());
            },
            {
                let options = leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options);

    // Sign-in attempts are limited per client address.
    let sign_in = Router::new()
        .route("/auth/local", post(auth::local_sign_in))
        .route("/auth/oidc/start", get(auth::oidc_start))
        .route("/auth/oidc/callback", get(auth::oidc_callback))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard::limit_sign_ins));
    let own = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/auth/logout", post(auth::logout))
        .merge(sign_in)
        .route("/users/revoke", post(people::revoke_user))
        .route("/notifications/test", post(people::test_notification))
        .route("/requests/{id}/comments", post(people::comment))
        .route("/requests/{id}/withdraw", post(people::withdraw))
        .route("/repositories/update", post(people::update_repository))
        .route("/requests/{id}/break-glass", post(people::break_glass))
        .route("/requests/{id}/review", post(people::review))
        .route("/repositories/delete", post(people::delete_repository))
        .route("/repositories/promote", post(people::promote))
        .route("/repositories/scan", post(people::scan))
        .route("/terraform/import", post(terraform::import))
        // The island forms without the wasm (forms.rs).
        .route("/requests/new", post(forms::new_request))
        .route("/requests/access", post(forms::access_request))
        .route("/requests/{id}/approve", post(forms::decide))
        .route("/requests/{id}/reject", post(forms::decide))
        .route("/requests/{id}/retry", post(forms::decide))
        .route("/repositories/adopt", post(forms::repository_action))
        .route("/repositories/accept", post(forms::repository_action))
        .route("/repositories/restore", post(forms::repository_action))
        .route("/repositories/check", post(forms::repository_action))
        .route("/tokens", post(forms::create_token))
        .route("/tokens/{id}/revoke", post(forms::revoke_token))
        .layer(axum::Extension(form_pages))
        .merge(api::routes())
        .with_state(state.clone());

    let max_body = usize::try_from(site.max_body_bytes).unwrap_or(usize::MAX);
    let hsts = if site.https {
        // Only when people reach the portal over HTTPS (through a TLS proxy).
        Some(HeaderValue::from_static("max-age=31536000; includeSubDomains"))
    } else {
        None
    };
    own.merge(pages)
        // Innermost, where the route's pattern is known.
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(axum::middleware::from_fn(guard::json_content_only))
        .layer(axum::middleware::from_fn(guard::no_store_when_personal))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::same_origin_only))
        .layer(axum::middleware::from_fn_with_state(state, auth::current_user))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        // The whole request, from its first byte to the answer's headers.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, site.request_timeout))
        // The one body limit is `server.max_body_bytes` (above), not also axum's 2 MiB default.
        .layer(axum::extract::DefaultBodyLimit::disable())
        // Outside the two above: their plain-text answers become the API's JSON errors.
        .layer(axum::middleware::from_fn(guard::api_errors_as_json))
        // Pages and JSON are compressed on the fly (fast gzip); the site's static
        // files are served precompressed (.br/.gz, made at build time) and left alone.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .no_br()
                .no_deflate()
                .no_zstd()
                .quality(tower_http::CompressionLevel::Fastest),
        )
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        // Pages set their own policy with the response's script nonce; everything else gets the strictest.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::STRICT_TRANSPORT_SECURITY, hsts))
        // Every request gets an id (the caller's `x-request-id` when it is a sane one), every log
        // line of the request carries it (the span), and the answer says it.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span).on_request(()).on_response(
                tower_http::trace::DefaultOnResponse::new()
                    .level(tracing::Level::INFO)
                    .latency_unit(tower_http::LatencyUnit::Millis),
            ),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(tower_http::request_id::MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_odd_request_id))
}

/// The span every log line of a request is written in: its id, method and path (never the query).
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
}

/// A caller's `x-request-id` is kept when it looks like an id (1–128 of `[A-Za-z0-9._:-]`);
/// anything else is replaced by a fresh one, so logs never carry what a client typed.
async fn drop_odd_request_id(mut req: axum::http::Request<axum::body::Body>) -> axum::http::Request<axum::body::Body> {
    let sane = |v: &HeaderValue| {
        let b = v.as_bytes();
        (1..=128).contains(&b.len()) && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
    };
    if req.headers().get("x-request-id").is_some_and(|v| !sane(v)) {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// The pages' routes, listed once per process. Listing them renders the app
/// in a special mode that is process-wide while it lasts, so a page served
/// by another application in the same process at that moment (tests start
/// many) could wait forever for its data (leptos-rs/leptos#4773).
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// Ready when the database answers and AWS (STS, as the staging identity) does.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let db = state.service.db.ping().await.map(|_| String::new()).map_err(|e| e.to_string());
    let aws = tokio::time::timeout(Duration::from_secs(5), state.service.registry.ping())
        .await
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let status = if db.is_ok() && aws.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let show = |r: &Result<_, String>| match r {
        Ok(_) => "ok".to_string(),
        Err(e) => {
            tracing::warn!("readiness: {e}");
            "unavailable".to_string()
        }
    };
    (status, Json(serde_json::json!({"database": show(&db), "aws": show(&aws)})))
}
