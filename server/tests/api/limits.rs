//! Bounded connections and floods: slow headers, slow bodies, the connection
//! cap, sign-in attempts per address, and open requests per person.
use crate::helpers::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (or `within` passes); returns what it sent.
async fn read_until_closed(tcp: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn a_connection_that_sends_its_headers_slowly_is_closed() {
    let app = spawn_app_with(|c| c.server.header_read_timeout_seconds = 1).await;
    let mut tcp = tokio::net::TcpStream::connect(addr(&app)).await.expect("connect");
    // Half a request line, then nothing (slowloris).
    tcp.write_all(b"GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.expect("write");
    let answer = read_until_closed(&mut tcp, Duration::from_secs(20)).await;
    let answer = answer.expect("the server closed the connection (well before 20 s)");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A prompt request on a new connection is served as always.
    assert_eq!(app.anonymous().get("/healthz").await.0, 200);
}

#[tokio::test]
async fn a_request_whose_body_never_comes_gets_408() {
    let app = spawn_app_with(|c| c.server.request_timeout_seconds = 1).await;
    let rita = app.sign_in("rita", "requester").await;
    let cookie = app.session_cookie("rita", "requester").await;
    let mut tcp = tokio::net::TcpStream::connect(addr(&app)).await.expect("connect");
    let head = format!(
        "POST /api/v1/requests HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"name\":",
        addr(&app)
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf)).await.expect("answered").expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(rita.get("/api/v1/requests").await.1, json!([]), "nothing was stored");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_ends() {
    let app = spawn_app_with(|c| c.server.max_connections = 2).await;
    let a = tokio::net::TcpStream::connect(addr(&app)).await.expect("connect");
    let _b = tokio::net::TcpStream::connect(addr(&app)).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quick = reqwest::Client::builder().timeout(Duration::from_millis(1500)).build().expect("client");
    let third = quick.get(format!("{}/healthz", app.base)).send().await;
    assert!(third.is_err(), "a third connection is not served while two are open: {third:?}");
    drop(a);
    let r =
        reqwest::Client::new().get(format!("{}/healthz", app.base)).send().await.expect("served once a slot is free");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let clock = manual_clock();
    let app = spawn_app_full(|c| c.auth.sign_in_per_minute = 3, Some(clock.clone())).await;
    let post = || async {
        reqwest::Client::new()
            .post(format!("{}/auth/local", app.base))
            .header("accept", "application/json")
            .form(&[("username", "mallory"), ("role", "admin")])
            .send()
            .await
            .expect("post")
    };
    for _ in 0..3 {
        assert_eq!(post().await.status(), 200);
    }
    let r = post().await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().expect("header").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    // Starting an OpenID Connect sign-in counts against the same budget.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("{}/auth/oidc/start", app.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 429);
    // The next minute, sign-ins work again; requests of signed-in people were never limited.
    clock.advance_ms(61_000);
    assert_eq!(post().await.status(), 200);
}

#[tokio::test]
async fn a_person_holds_at_most_the_configured_number_of_open_requests() {
    let app = spawn_app_with(|c| c.approval.max_open_per_user = 2).await;
    let rita = app.sign_in("rita", "requester").await;
    let adam = app.sign_in("adam", "admin").await;
    let (s, first) = rita.submit(&unique("open1")).await;
    assert_eq!(s, 201);
    assert_eq!(rita.submit(&unique("open2")).await.0, 201);
    let (s, b) = rita.submit(&unique("open3")).await;
    assert_eq!(s, 409, "{b}");
    assert!(b["error"]["message"].as_str().unwrap_or("").contains("2 open requests"), "{b}");
    assert_eq!(rita.get("/api/v1/requests").await.1.as_array().map(Vec::len), Some(2), "nothing stored");
    // Someone else is not held back by her count.
    assert_eq!(adam.submit(&unique("adams")).await.0, 201);
    // Once one is decided, she can submit again.
    let id = first["summary"]["id"].as_i64().expect("id");
    assert_eq!(adam.post(&format!("/api/v1/requests/{id}/reject"), json!({})).await.0, 200);
    assert_eq!(rita.submit(&unique("open4")).await.0, 201);
}
