//! Serving HTTP with bounds: our own accept loop around hyper, because
//! `axum::serve` sets no timer (so no header-read timeout) and accepts every
//! connection it is offered.
//!
//! - A connection that has not sent a request's headers within
//!   `server.header_read_timeout_seconds` (30) is closed (slowloris).
//! - At most `server.max_connections` connections are served at once; the
//!   next ones wait in the kernel's accept queue until one ends.
//! - Every request gets the peer address (`ConnectInfo<SocketAddr>`) for the
//!   per-client limits.
//! - On shutdown it stops accepting, lets open connections finish their
//!   request (at most 30 s), and returns.
//!
//! The whole-request timeout is a tower layer (`http::router`).
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// How long open connections may take to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(30);

pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // A free slot first: at the cap, connections wait in the accept queue.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Pages are streamed in several writes; Nagle's algorithm meeting the
        // client's delayed ACK would hold the second one ~40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        let service = tower::ServiceExt::map_request(app.clone(), move |mut req: axum::extract::Request<_>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let connection = http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!("connection from {peer}: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::warn!("connections still open {} s after shutdown began; closing", DRAIN.as_secs()),
    }
}

/// The client's address for per-client limits: the peer, or, behind a proxy
/// the operator trusts (`server.trust_forwarded_for`), the last address the
/// proxy appended to `X-Forwarded-For`.
pub fn client_ip(
    headers: &axum::http::HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> Option<std::net::IpAddr> {
    if trust_forwarded_for {
        let last = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back();
        if let Some(ip) = last.and_then(|a| a.trim().parse().ok()) {
            return Some(ip);
        }
    }
    peer.map(|p| p.ip())
}
