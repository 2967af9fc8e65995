//! What every handler shares.
use crate::service::PortalService;
use app::domain::principal::Roles;
use axum::http::HeaderValue;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<PortalService>,
    pub session_idle_ms: u64,
    pub session_absolute_ms: u64,
    pub cookies: Cookies,
    pub roles: Roles,
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
    /// The origin people use (`server.public_url`), accepted as `Origin`.
    pub public_url: String,
    /// The port the portal listens on: a loopback `Origin` is accepted only with it.
    pub listen_port: u16,
    /// `server.trust_forwarded_for`: the client's address comes from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Sign-in attempts per client address per minute (`auth.sign_in_per_minute`).
    pub sign_ins: Arc<crate::limiter::PerMinute<Option<std::net::IpAddr>>>,
}

impl AppState {
    /// The client's address (see `serve::client_ip`).
    pub fn client_ip_of(
        &self,
        headers: &axum::http::HeaderMap,
        extensions: &axum::http::Extensions,
    ) -> Option<std::net::IpAddr> {
        let peer = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
        super::serve::client_ip(headers, peer, self.trust_forwarded_for)
    }
}

/// Cookie names and attributes, fixed at start from `server.public_url`.
#[derive(Debug, Clone)]
pub struct Cookies {
    pub session: &'static str,
    pub login: &'static str,
    pub secure: bool,
}

impl Cookies {
    pub fn new(https: bool) -> Self {
        if https {
            Self { session: "__Host-ecr_portal_session", login: "__Host-ecr_portal_login", secure: true }
        } else {
            Self { session: "ecr_portal_session", login: "ecr_portal_login", secure: false }
        }
    }

    pub(super) fn set(&self, name: &str, value: &str, max_age_s: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}");
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}
