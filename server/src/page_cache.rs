//! Short-lived caches in front of SQLite and the renderer ("micro-caching").
//!
//! A rendered page costs about 1.5 ms of CPU and a session lookup a SQLite
//! read; the same person reloading a page, or a dashboard polling it, asks
//! for the same answer many times a second. An entry is used only while
//! both hold:
//! - nothing changed in this process since it was made: [`Db::version`]
//!   counts every committed write and every change of the cached inventory,
//!   and is read *before* the data, so a write that lands during a render
//!   makes that render's entry unusable;
//! - it is younger than the time to live (`server.page_cache_ms`, 1 s by
//!   default): that bounds what the version cannot see (a change made by
//!   another process on the same database, or in AWS by someone else).
//!
//! Pages are cached per session (never shared between people), only for
//! `GET` answers `200 text/html` that set no cookie; a `Cache-Control:
//! no-cache` request (a browser's hard reload) always renders. Each answer
//! gets a fresh CSP nonce: the cached HTML's nonce is swapped for a new one
//! in the body and in the `Content-Security-Policy` header.
//!
//! [`Db::version`]: crate::db::Db::version
use crate::startup::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A map whose entries are valid for one data version and a time to live,
/// bounded by a total cost (bytes for pages, a count for sessions).
pub struct Fresh<K, V> {
    ttl: Duration,
    max_cost: usize,
    inner: Mutex<Entries<K, V>>,
}

struct Entries<K, V> {
    map: HashMap<K, (u64, Instant, usize, V)>,
    cost: usize,
}

impl<K: Hash + Eq, V: Clone> Fresh<K, V> {
    pub fn new(ttl: Duration, max_cost: usize) -> Self {
        Self { ttl, max_cost, inner: Mutex::new(Entries { map: HashMap::new(), cost: 0 }) }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The entry made at `version`, if it is still young enough.
    pub fn get(&self, key: &K, version: u64) -> Option<V> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (v, made, _, value) = inner.map.get(key)?;
        (*v == version && made.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Keeps `value`, read at `version`; when the cache is full it first drops
    /// what is stale, then everything.
    pub fn put(&self, key: K, version: u64, cost: usize, value: V) {
        if !self.enabled() || cost > self.max_cost {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = inner.map.remove(&key) {
            inner.cost -= old.2;
        }
        if inner.cost + cost > self.max_cost {
            let ttl = self.ttl;
            inner.map.retain(|_, (v, made, _, _)| *v == version && made.elapsed() < ttl);
            inner.cost = inner.map.values().map(|e| e.2).sum();
            if inner.cost + cost > self.max_cost {
                inner.map.clear();
                inner.cost = 0;
            }
        }
        inner.cost += cost;
        inner.map.insert(key, (version, Instant::now(), cost, value));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).map.len()
    }
}

/// Who a page is for: the session's id hash ("" when signed out). Set by
/// [`crate::auth::current_user`] for a valid session.
#[derive(Clone)]
pub struct SessionKey(pub String);

/// A rendered page and where its nonce sits in the body.
pub struct CachedPage {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    nonce: Option<(String, Vec<usize>)>,
}

pub type Pages = Fresh<(String, String), Arc<CachedPage>>;

/// The largest page kept (the repositories page is about 150 KB).
const MAX_PAGE: usize = 1 << 20;

/// Middleware on the page routes: answers from the cache, or renders and keeps the answer.
pub async fn pages(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let pages = &state.pages;
    if !pages.enabled()
        || req.method() != Method::GET
        || req.headers().contains_key(header::AUTHORIZATION)
        || asks_fresh(req.headers())
    {
        return next.run(req).await;
    }
    let who = req.extensions().get::<SessionKey>().map(|s| s.0.clone()).unwrap_or_default();
    let key = (who, req.uri().to_string());
    let version = state.service.db.version();
    if let Some(hit) = pages.get(&key, version) {
        return hit.answer("hit");
    }
    let resp = next.run(req).await;
    let cacheable = resp.status() == StatusCode::OK
        && !resp.headers().contains_key(header::SET_COOKIE)
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/html"));
    if !cacheable {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = match axum::body::to_bytes(body, MAX_PAGE).await {
        Ok(b) => b,
        Err(e) => {
            // Larger than a page should be, or the render failed half-way: say so, keep nothing.
            tracing::error!("page {} could not be read whole: {e}", key.1);
            return (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response();
        }
    };
    let nonce = parts
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .and_then(csp_nonce)
        .map(|n| (n.to_string(), find_all(&body, n.as_bytes())));
    let mut headers = parts.headers;
    headers.remove(header::CONTENT_LENGTH);
    let page = Arc::new(CachedPage { status: parts.status, headers, body, nonce });
    pages.put(key, version, page.body.len(), page.clone());
    page.answer("miss")
}

impl CachedPage {
    /// This page with a fresh nonce (the body's and the policy's).
    fn answer(&self, how: &'static str) -> Response {
        let mut headers = self.headers.clone();
        let body = match &self.nonce {
            Some((old, at)) => {
                let new = leptos::nonce::Nonce::new();
                let new: &str = &new;
                if let Some(csp) = headers.get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()) {
                    if let Ok(v) = HeaderValue::from_str(&csp.replace(old.as_str(), new)) {
                        headers.insert(header::CONTENT_SECURITY_POLICY, v);
                    }
                }
                Bytes::from(replace_at(&self.body, at, old.len(), new.as_bytes()))
            }
            None => self.body.clone(),
        };
        headers.insert("x-page-cache", HeaderValue::from_static(how));
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = headers;
        resp
    }
}

fn asks_fresh(headers: &HeaderMap) -> bool {
    [header::CACHE_CONTROL, header::PRAGMA]
        .iter()
        .flat_map(|h| headers.get_all(h))
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("no-cache"))
}

/// The nonce in a policy such as `script-src 'self' 'nonce-abc'`.
fn csp_nonce(csp: &str) -> Option<&str> {
    let start = csp.find("'nonce-")? + "'nonce-".len();
    let len = csp[start..].find('\'')?;
    (len > 0).then(|| &csp[start..start + len])
}

/// Where `needle` starts in `hay`, left to right, without overlaps.
fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut at = Vec::new();
    let mut i = 0;
    while !needle.is_empty() && i + needle.len() <= hay.len() {
        if hay[i..].starts_with(needle) {
            at.push(i);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    at
}

/// `body` with the `len` bytes at each offset replaced by `new`.
fn replace_at(body: &[u8], at: &[usize], len: usize, new: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + at.len() * new.len());
    let mut from = 0;
    for &i in at {
        out.extend_from_slice(&body[from..i]);
        out.extend_from_slice(new);
        from = i + len;
    }
    out.extend_from_slice(&body[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_for_one_version_and_its_time_to_live() {
        let c: Fresh<&str, u32> = Fresh::new(Duration::from_millis(50), 10);
        c.put("a", 7, 1, 1);
        assert_eq!(c.get(&"a", 7), Some(1));
        assert_eq!(c.get(&"a", 8), None, "a later change hides it");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&"a", 7), None, "too old");
    }

    #[test]
    fn a_full_cache_drops_stale_entries_first_and_never_grows_past_its_cost() {
        let c: Fresh<u32, u32> = Fresh::new(Duration::from_secs(60), 10);
        c.put(1, 1, 4, 1);
        c.put(2, 2, 4, 2);
        c.put(3, 2, 4, 3);
        assert_eq!(c.get(&1, 1), None, "the entry of the older version went first");
        assert_eq!(c.get(&2, 2), Some(2));
        assert_eq!(c.get(&3, 2), Some(3));
        c.put(4, 2, 4, 4);
        assert_eq!(c.len(), 1, "nothing stale left to drop: it starts over");
        c.put(5, 2, 11, 5);
        assert_eq!(c.get(&5, 2), None, "larger than the whole cache");
        let off: Fresh<u32, u32> = Fresh::new(Duration::ZERO, 10);
        off.put(1, 1, 1, 1);
        assert_eq!(off.get(&1, 1), None);
    }

    #[test]
    fn the_nonce_is_found_and_replaced_everywhere() {
        assert_eq!(csp_nonce("script-src 'self' 'nonce-AbC_1' 'wasm-unsafe-eval'"), Some("AbC_1"));
        assert_eq!(csp_nonce("default-src 'none'"), None);
        let body = b"<script nonce=\"AbC_1\"></script><p>x</p><script nonce=\"AbC_1\">";
        let at = find_all(body, b"AbC_1");
        assert_eq!(at.len(), 2);
        let out = replace_at(body, &at, 5, b"zzzzzzz");
        assert_eq!(out, b"<script nonce=\"zzzzzzz\"></script><p>x</p><script nonce=\"zzzzzzz\">".to_vec());
        assert!(asks_fresh(&HeaderMap::from_iter([(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))])));
        assert!(!asks_fresh(&HeaderMap::from_iter([(header::CACHE_CONTROL, HeaderValue::from_static("max-age=0"))])));
    }
}
