//! Startup as a value: `Application::build(config)` wires the adapters, binds
//! the listener (port 0 works, for tests) and spawns the worker;
//! `run_until_stopped` serves until Ctrl-C/SIGTERM or the stop signal.
use crate::aws::{self, EcrRegistry, Registry};
use crate::clock::{Clock, SystemClock};
use crate::config::{AuthMode, Config};
use crate::db::Db;
use crate::service::{Deployment, PortalService};
use anyhow::Context;
use app::api::{Portal, PortalHandle};
use app::domain::plan::Target;
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
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<PortalService>,
    pub session_idle_ms: u64,
    pub session_absolute_ms: u64,
    pub cookies: crate::auth::Cookies,
    pub roles: crate::auth::Roles,
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
    /// The origin people use (`server.public_url`), accepted as `Origin`.
    pub public_url: String,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    addr: SocketAddr,
    pub service: Arc<PortalService>,
    stop: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    /// This process's claim on the database, until it stops.
    _lock: crate::lock::DatabaseLock,
}

/// Ports that tests may replace (a manual clock, a fault-injecting registry).
pub struct Overrides {
    pub clock: Option<Arc<dyn Clock>>,
    pub registry: Option<Arc<dyn Registry>>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(config, Overrides { clock: None, registry: None }).await
    }

    pub async fn build_with(config: Config, overrides: Overrides) -> anyhow::Result<Self> {
        let lock = crate::lock::DatabaseLock::acquire(&config.database_path)?;
        let db = Db::connect(&config.database_path).await?;
        let registry: Arc<dyn Registry> = match overrides.registry {
            Some(r) => r,
            None => Arc::new(EcrRegistry::new(&config).await),
        };
        let staging_account = match registry.ping().await {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!("could not reach AWS at start ({e}); the portal starts anyway and /readyz reports it");
                None
            }
        };
        let production_account = match aws::production_account(&config).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("could not discover the production account: {e:#}");
                None
            }
        };
        let service = Arc::new(
            PortalService::new(
                db,
                registry,
                overrides.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                Deployment {
                    namespace: config.namespace.clone(),
                    target: Target {
                        region: config.raw.aws.region.clone(),
                        staging_role_arn: config.staging_role.as_ref().map(|r| r.to_string()),
                        production_account,
                        production_can_list: config.raw.portal.production_can_list,
                    },
                    staging_account,
                    local_sign_in: config.raw.auth.mode == AuthMode::Local,
                    oidc_sign_in: config.raw.auth.mode == AuthMode::Oidc,
                    approval: config.approval.clone(),
                    token_max_days: u32::try_from(config.raw.auth.token_max_days).unwrap_or(u32::MAX),
                },
            )
            .with_retry(crate::service::RetryPolicy {
                max_attempts: config.raw.worker.max_attempts,
                base_ms: config.raw.worker.retry_base_ms,
                max_ms: config.raw.worker.retry_max_ms,
            }),
        );
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {} (config key `server.listen`)", config.listen))?;
        let addr = listener.local_addr()?;
        // Without a configured public URL, people reach the portal at the bound address (port 0 resolved).
        let public_url = if config.raw.server.public_url.trim().is_empty() {
            format!("http://{addr}")
        } else {
            config.public_url.clone()
        };
        let oidc = match config.raw.auth.mode {
            AuthMode::Oidc => {
                let redirect = Some(config.raw.oidc.redirect_url.trim().to_string())
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| format!("{public_url}/auth/oidc/callback"));
                Some(Arc::new(crate::oidc::Oidc::new(&config.raw.oidc, redirect)?))
            }
            AuthMode::Local => None,
        };
        let a = &config.approval;
        let mut approver_groups: Vec<String> = [
            &a.create_repository.groups,
            &a.grant_production.groups,
            &a.revoke_production.groups,
            &a.restore_repository.groups,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        approver_groups.sort();
        approver_groups.dedup();
        let state = AppState {
            service: service.clone(),
            session_idle_ms: config.raw.auth.session_idle_minutes * 60_000,
            session_absolute_ms: config.raw.auth.session_absolute_hours * 3_600_000,
            cookies: crate::auth::Cookies::new(config.https()),
            roles: crate::auth::Roles {
                admin_group: config.raw.auth.admin_group.trim().to_string(),
                auditor_group: config.raw.auth.auditor_group.trim().to_string(),
                approver_groups,
                allowed_groups: config.raw.auth.allowed_groups.clone(),
            },
            oidc,
            public_url,
        };

        let leptos_options = LeptosOptions::builder()
            .output_name("ecr-portal")
            .site_root(config.raw.server.site_root.as_str())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let routes = route_list();
        let handle = PortalHandle(service.clone() as Arc<dyn Portal>);
        let site = Router::new()
            .leptos_routes_with_context(&leptos_options, routes, move || provide_context(handle.clone()), {
                let options = leptos_options.clone();
                move || shell(options.clone())
            })
            .fallback(leptos_axum::file_and_error_handler(shell))
            .with_state(leptos_options);

        let own = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/auth/local", post(crate::auth::local_sign_in))
            .route("/auth/logout", post(crate::auth::logout))
            .route("/auth/oidc/start", get(crate::auth::oidc_start))
            .route("/auth/oidc/callback", get(crate::auth::oidc_callback))
            .merge(crate::api::routes())
            .with_state(state.clone());
        let own =
            if config.raw.server.benchmark_baseline { own.route("/__baseline/{bytes}", get(baseline)) } else { own };

        let max_body = usize::try_from(config.raw.server.max_body_bytes).unwrap_or(usize::MAX);
        let hsts = if config.https() {
            // Only when people reach the portal over HTTPS (through a TLS proxy).
            Some(HeaderValue::from_static("max-age=31536000; includeSubDomains"))
        } else {
            None
        };
        let router = own
            .merge(site)
            .layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::same_origin_only))
            .layer(axum::middleware::from_fn_with_state(state, crate::auth::current_user))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
            // Pages and JSON are compressed on the fly (fast gzip); the site's static
            // files are served precompressed (.br/.gz, made at build time) and left alone.
            .layer(
                tower_http::compression::CompressionLayer::new()
                    .no_br()
                    .no_deflate()
                    .no_zstd()
                    .quality(tower_http::CompressionLevel::Fastest),
            )
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
            .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
            // Pages set their own policy with the response's script nonce; everything else gets the strictest.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(header::STRICT_TRANSPORT_SECURITY, hsts));

        let (stop, stop_rx) = watch::channel(false);
        let worker = if config.raw.worker.enabled {
            tokio::spawn(crate::worker::run(
                service.clone(),
                crate::worker::Settings {
                    poll: Duration::from_millis(config.raw.worker.poll_interval_ms),
                    lease: Duration::from_secs(config.raw.worker.lease_seconds),
                    drift_every: Duration::from_secs(config.raw.worker.drift_check_seconds),
                },
                stop_rx,
            ))
        } else {
            tokio::spawn(async {})
        };
        Ok(Self { listener, router, addr, service, stop, worker, _lock: lock })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server and worker when sent `true`.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut stop_rx = self.stop.subscribe();
        let stop = self.stop.clone();
        let shutdown = async move {
            tokio::select! {
                _ = shutdown_signal() => { let _ = stop.send(true); }
                _ = stop_rx.wait_for(|s| *s) => {}
            }
        };
        // TCP_NODELAY: pages are streamed in several writes, and Nagle's algorithm
        // meeting the client's delayed ACK would hold the second one ~40 ms
        // (found by the benchmark: every page at exactly 44 ms).
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY: {e}");
            }
        });
        axum::serve(listener, self.router.into_make_service())
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        let _ = self.worker.await;
        Ok(())
    }
}

/// The pages' routes, listed once per process. Listing them renders the app
/// in a special mode that is process-wide while it lasts, so a page served
/// by another application in the same process at that moment (tests start
/// many) could wait forever for its data (leptos-rs/leptos#4773).
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// The benchmark's yardstick: the same server, routing and middleware, but a
/// body that costs nothing to make (`server.benchmark_baseline`).
async fn baseline(axum::extract::Path(bytes): axum::extract::Path<usize>) -> impl IntoResponse {
    static BODY: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    let body = BODY.get_or_init(|| "<p>baseline</p>\n".repeat(4 << 20 >> 4).into());
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body.slice(..bytes.min(body.len())))
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
