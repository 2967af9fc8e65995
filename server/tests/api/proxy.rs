//! A small counting, fault-injecting proxy between the portal and moto. It
//! forwards every request, counts AWS operations by name (so tests count AWS
//! calls independently of the portal), records STS role session names, and can
//! answer the next N ECR calls with an error instead of forwarding them.
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::Response;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Shared {
    counts: HashMap<String, usize>,
    sessions: Vec<String>,
    /// Every AssumeRole call's parameters, decoded.
    assume_roles: Vec<HashMap<String, String>>,
    /// (remaining, HTTP status, AWS error code)
    fault: Option<(usize, u16, String)>,
    /// Unreachable: every connection is dropped without an answer.
    down: bool,
    /// The next answer to this operation is held back (see [`Counts::hold_next_answer`]).
    hold: Option<(String, Hold)>,
}

/// An answer held back by the proxy: `arrived` fires once AWS has answered
/// (and the proxy holds the answer), `release` lets it go to the portal.
#[derive(Clone, Default)]
pub struct Hold {
    pub arrived: Arc<tokio::sync::Notify>,
    pub release: Arc<tokio::sync::Notify>,
}

#[derive(Clone, Default)]
pub struct Counts(Arc<Mutex<Shared>>);

impl Counts {
    pub fn get(&self, op: &str) -> usize {
        self.0.lock().map(|m| m.counts.get(op).copied().unwrap_or(0)).unwrap_or(0)
    }
    /// Every operation seen so far, by name.
    pub fn all(&self) -> HashMap<String, usize> {
        self.0.lock().map(|m| m.counts.clone()).unwrap_or_default()
    }
    pub fn sessions(&self) -> Vec<String> {
        self.0.lock().map(|m| m.sessions.clone()).unwrap_or_default()
    }
    /// The parameters of every AssumeRole call (`RoleSessionName`, `SourceIdentity`, `Tags.member.1.Key`, …).
    pub fn assume_roles(&self) -> Vec<HashMap<String, String>> {
        self.0.lock().map(|m| m.assume_roles.clone()).unwrap_or_default()
    }
    /// The next `n` ECR calls get `status` with the AWS error `code` (e.g. 500 ServerException).
    pub fn fail_next(&self, n: usize, status: u16, code: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.fault = Some((n, status, code.to_string()));
        }
    }
    pub fn heal(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.fault = None;
            m.down = false;
        }
    }
    /// The next call of `op` goes to AWS at once, but its answer reaches the
    /// portal only after [`Hold::release`]: a slow network, as the caller sees it.
    pub fn hold_next_answer(&self, op: &str) -> Hold {
        let hold = Hold::default();
        if let Ok(mut m) = self.0.lock() {
            m.hold = Some((op.to_string(), hold.clone()));
        }
        hold
    }
    /// AWS becomes unreachable: connections are dropped without a response.
    pub fn go_down(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.down = true;
        }
    }
    fn is_down(&self) -> bool {
        self.0.lock().map(|m| m.down).unwrap_or(false)
    }
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    shared: Counts,
}

fn form_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split('&').find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

async fn forward(State(p): State<Proxy>, req: Request) -> Response {
    if p.shared.is_down() {
        // Unwinding the connection task drops the socket without an HTTP answer,
        // which the SDK sees as a network failure (the message below is expected in test output).
        panic!("test proxy: AWS is unreachable on purpose");
    }
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).map(str::to_string);
    let text = String::from_utf8_lossy(&body).to_string();
    let op = match &target {
        Some(t) => t.rsplit('.').next().unwrap_or(t).to_string(),
        None => form_value(&text, "Action").unwrap_or("unknown").to_string(),
    };
    let mut held = None;
    let injected = if let Ok(mut m) = p.shared.0.lock() {
        *m.counts.entry(op.clone()).or_default() += 1;
        if m.hold.as_ref().is_some_and(|(o, _)| *o == op) {
            held = m.hold.take().map(|(_, h)| h);
        }
        if op == "AssumeRole" {
            if let Some(s) = form_value(&text, "RoleSessionName") {
                m.sessions.push(s.to_string());
            }
            m.assume_roles.push(serde_urlencoded::from_str(&text).unwrap_or_default());
        }
        match (&target, m.fault.as_mut()) {
            (Some(_), Some((remaining, status, code))) if *remaining > 0 => {
                *remaining -= 1;
                Some((*status, code.clone()))
            }
            _ => None,
        }
    } else {
        None
    };
    if let Some((status, code)) = injected {
        let body = format!("{{\"__type\":\"{code}\",\"message\":\"injected by the test proxy\"}}");
        return Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amzn-requestid", "injected-fault")
            .body(Body::from(body))
            .unwrap_or_default();
    }
    let url = format!("{}{}", p.upstream, parts.uri.path_and_query().map(|x| x.as_str()).unwrap_or("/"));
    let mut out = p.http.request(parts.method.clone(), url).body(body.to_vec());
    for (k, v) in parts.headers.iter() {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    match out.send().await {
        Ok(r) => {
            let mut b = Response::builder().status(r.status().as_u16());
            for (k, v) in r.headers() {
                if k != "content-length" && k != "transfer-encoding" {
                    b = b.header(k, v);
                }
            }
            let bytes = r.bytes().await.unwrap_or_default();
            if let Some(h) = held {
                h.arrived.notify_one();
                h.release.notified().await;
            }
            b.body(Body::from(bytes)).unwrap_or_default()
        }
        Err(_) => Response::builder().status(502).body(Body::empty()).unwrap_or_default(),
    }
}

/// Starts the proxy on a free port; returns its URL and its counters/controls.
pub async fn start(upstream: &str) -> (String, Counts) {
    let shared = Counts::default();
    let state = Proxy { upstream: upstream.to_string(), http: reqwest::Client::new(), shared: shared.clone() };
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, shared)
}
