//! Startup as a value: `Application::build(config)` wires the adapters, binds
//! the listener (port 0 works, for tests) and spawns the worker;
//! `run_until_stopped` serves until Ctrl-C/SIGTERM or the stop signal.
use crate::aws::{self, EcrRegistry, Registry};
use crate::clock::{Clock, SystemClock};
use crate::config::{AuthMode, Config};
use crate::db::Db;
use crate::service::{Deployment, PortalService};
use anyhow::Context;
use app::domain::plan::Target;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    pub service: Arc<PortalService>,
    stop: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    /// Publishes the audit chain's head (see `publish_heads`).
    heads: tokio::task::JoinHandle<()>,
    /// Delivers notifications (`worker::send_notifications`).
    sender: tokio::task::JoinHandle<()>,
    /// Serves `/metrics` (`server.metrics_listen`).
    metrics: tokio::task::JoinHandle<()>,
    /// Connection bounds (`http::serve`).
    limits: crate::http::serve::Limits,
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

    /// The service alone, without a listener or a worker: for commands that change
    /// state from the command line (`terraform import`). It takes the database's
    /// lock, so it refuses to run beside a running portal.
    pub async fn service_only(config: &Config) -> anyhow::Result<(crate::lock::DatabaseLock, Arc<PortalService>)> {
        let lock = crate::lock::DatabaseLock::acquire(&config.database_path)?;
        let service = Self::service(config, Overrides { clock: None, registry: None }, &config.public_url).await?;
        Ok((lock, service))
    }

    /// Wires the service: the audit key, the database, AWS, the deployment's facts.
    async fn service(config: &Config, overrides: Overrides, public_url: &str) -> anyhow::Result<Arc<PortalService>> {
        let (key, created) = crate::secret::PortalKey::load_or_create(&config.audit_key_path)?;
        if created {
            tracing::info!(
                "created the audit key {} (keep it, and back it up apart from the database)",
                config.audit_key_path.display()
            );
        }
        let db = Db::connect(&config.database_path, &key).await?;
        let registry: Arc<dyn Registry> = match overrides.registry {
            Some(r) => r,
            None => Arc::new(EcrRegistry::new(config).await),
        };
        let staging_account = match registry.ping().await {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!("could not reach AWS at start ({e}); the portal starts anyway and /readyz reports it");
                None
            }
        };
        let production_account = match aws::production_account(config).await {
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
                    max_open_per_user: config.raw.approval.max_open_per_user,
                    token_role_max_age_ms: i64::try_from(config.raw.auth.token_role_max_age_days)
                        .unwrap_or(i64::MAX / 86_400_000)
                        .saturating_mul(86_400_000),
                    protection: app::domain::lifecycle::Protection {
                        pulled_within_days: config.raw.portal.protect_pulled_days,
                        tag_patterns: config.raw.portal.protected_tags.clone(),
                    },
                    break_glass: config.raw.approval.break_glass,
                    promotion: crate::service::Promotion {
                        tag_patterns: config.raw.portal.release_tag_patterns.clone(),
                        refuse_critical: config.raw.portal.promote_refuse_critical,
                        require_scan: config.raw.portal.promote_require_scan,
                    },
                },
                key,
            )
            .with_retry(crate::service::RetryPolicy {
                max_attempts: config.raw.worker.max_attempts,
                base_ms: config.raw.worker.retry_base_ms,
                max_ms: config.raw.worker.retry_max_ms,
            })
            .with_audit_head_file(config.audit_head_file.clone())
            .with_notifications(
                crate::notify::Notifier::new(&config.raw.notify, public_url, config.raw.auth.admin_group.trim())?,
                crate::service::DeliveryPolicy {
                    retry: crate::service::RetryPolicy {
                        max_attempts: u32::MAX,
                        base_ms: config.raw.notify.retry_base_ms,
                        max_ms: config.raw.notify.retry_max_ms,
                    },
                    give_up_after_ms: i64::try_from(config.raw.notify.give_up_after_minutes)
                        .unwrap_or(i64::MAX / 60_000)
                        .saturating_mul(60_000),
                    remind_after_ms: i64::try_from(config.raw.notify.remind_after_hours)
                        .unwrap_or(i64::MAX / 3_600_000)
                        .saturating_mul(3_600_000),
                    expiry_warning_ms: i64::try_from(config.raw.notify.expiry_warning_hours)
                        .unwrap_or(i64::MAX / 3_600_000)
                        .saturating_mul(3_600_000),
                },
            ),
        );
        service.seal_unkeyed_audit_chain(&config.audit_key_path).await?;
        Ok(service)
    }

    pub async fn build_with(config: Config, overrides: Overrides) -> anyhow::Result<Self> {
        let lock = crate::lock::DatabaseLock::acquire(&config.database_path)?;
        // The recorder goes in before anything is measured (the first AWS calls are at start).
        let metrics_listener = match config.metrics_listen {
            Some(at) => {
                crate::metrics::handle();
                Some(
                    tokio::net::TcpListener::bind(at)
                        .await
                        .with_context(|| format!("binding {at} (config key `server.metrics_listen`)"))?,
                )
            }
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
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
        let service = Self::service(&config, overrides, &public_url).await?;
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
        let state = crate::http::AppState {
            service: service.clone(),
            session_idle_ms: config.raw.auth.session_idle_minutes * 60_000,
            session_absolute_ms: config.raw.auth.session_absolute_hours * 3_600_000,
            cookies: crate::http::Cookies::new(config.https()),
            listen_port: addr.port(),
            trust_forwarded_for: config.raw.server.trust_forwarded_for,
            sign_ins: Arc::new(crate::limiter::PerMinute::new(config.raw.auth.sign_in_per_minute, 100_000)),
            roles: app::domain::principal::Roles {
                admin_group: config.raw.auth.admin_group.trim().to_string(),
                auditor_group: config.raw.auth.auditor_group.trim().to_string(),
                approver_groups,
                allowed_groups: config.raw.auth.allowed_groups.clone(),
            },
            oidc,
            public_url,
        };

        let router = crate::http::router(
            state,
            crate::http::Site {
                root: config.raw.server.site_root.clone(),
                addr,
                max_body_bytes: config.raw.server.max_body_bytes,
                https: config.https(),
                request_timeout: Duration::from_secs(config.raw.server.request_timeout_seconds),
            },
        );

        let (stop, stop_rx) = watch::channel(false);
        let sender = tokio::spawn(crate::worker::send_notifications(
            service.clone(),
            Duration::from_millis(config.raw.worker.poll_interval_ms.min(1_000)),
            stop.subscribe(),
        ));
        let heads =
            tokio::spawn(publish_heads(service.clone(), config.raw.audit.publish_every_events, stop.subscribe()));
        let metrics = match metrics_listener {
            Some(l) => {
                tracing::info!("metrics at http://{}/metrics", metrics_addr.map(|a| a.to_string()).unwrap_or_default());
                tokio::spawn(crate::metrics::serve(l, service.clone(), stop.subscribe()))
            }
            None => tokio::spawn(async {}),
        };
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
        let limits = crate::http::serve::Limits {
            header_read_timeout: Duration::from_secs(config.raw.server.header_read_timeout_seconds),
            max_connections: usize::try_from(config.raw.server.max_connections).unwrap_or(usize::MAX),
        };
        Ok(Self {
            listener,
            router,
            addr,
            metrics_addr,
            service,
            stop,
            worker,
            heads,
            sender,
            metrics,
            limits,
            _lock: lock,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, when `server.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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
        crate::http::serve::serve(self.listener, self.router, self.limits, shutdown).await;
        let _ = self.stop.send(true);
        let _ = self.worker.await;
        let _ = self.heads.await;
        let _ = self.sender.await;
        let _ = self.metrics.await;
        Ok(())
    }
}

/// Publishes the audit chain's head every `every` events (looked at every
/// few seconds) and once more when the portal stops.
async fn publish_heads(service: Arc<PortalService>, every: u64, mut stop: watch::Receiver<bool>) {
    let mut last = match service.publish_audit_head().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("publishing the audit head: {e}");
            0
        }
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let head = {
            let Ok(mut conn) = service.db.pool.acquire().await else { continue };
            crate::db::chain_head(&mut conn).await.map(|h| u64::try_from(h.id).unwrap_or(0))
        };
        if matches!(head, Ok(n) if n >= last.saturating_add(every)) {
            match service.publish_audit_head().await {
                Ok(n) => last = n,
                Err(e) => tracing::warn!("publishing the audit head: {e}"),
            }
        }
    }
    if let Err(e) = service.publish_audit_head().await {
        tracing::warn!("publishing the audit head at shutdown: {e}");
    }
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
