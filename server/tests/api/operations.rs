//! What an operator's tools read: Prometheus metrics on their own listener,
//! a request id on every answer (and in every log line of the request), and
//! JSON logs that parse.
use super::helpers::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The value of one sample (`name{labels}` exactly as rendered), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .unwrap_or(0.0)
}

/// The sum of every sample of a metric whose labels contain all of `having`.
fn total(text: &str, name: &str, having: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| having.iter().all(|h| l.contains(h)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

async fn scrape(url: &str) -> String {
    let r = reqwest::get(url).await.expect("scrape");
    assert_eq!(r.status(), 200);
    r.text().await.expect("text")
}

#[tokio::test]
async fn metrics_move_with_a_submit_approve_apply_flow_and_live_on_their_own_listener() {
    let app = spawn_app_with(|c| c.server.metrics_listen = "127.0.0.1:0".into()).await;
    let url = app.metrics.clone().expect("metrics are on");
    assert!(!url.contains(&app.base), "a listener of its own");
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    // Metrics are per process and tests share one: compare before and after.
    let before = scrape(&url).await;
    let (s, created) = alice.submit(&unique("metrics")).await;
    assert_eq!(s, 201, "{created}");
    let id = id_of(&created);
    let waiting = scrape(&url).await;
    assert!(sample(&waiting, "ecr_portal_requests_waiting") >= 1.0, "{waiting}");
    assert!(waiting.contains("ecr_portal_oldest_waiting_request_age_seconds"), "{waiting}");
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let after = scrape(&url).await;

    let moved = |name: &str, having: &[&str]| total(&after, name, having) - total(&before, name, having);
    assert!(
        moved("ecr_portal_http_requests_total", &["route=\"/api/v1/requests\"", "method=\"POST\"", "status=\"201\""])
            >= 1.0,
        "{after}"
    );
    assert!(
        moved("ecr_portal_http_request_duration_seconds_count", &["route=\"/api/v1/requests/{id}/approve\""]) >= 1.0
    );
    assert!(moved("ecr_portal_applies_total", &["outcome=\"applied\""]) >= 1.0, "{after}");
    assert!(moved("ecr_portal_apply_duration_seconds_count", &["outcome=\"applied\""]) >= 1.0);
    assert!(
        moved("ecr_portal_aws_calls_total", &["operation=\"CreateRepository\"", "error=\"none\""]) >= 1.0,
        "{after}"
    );
    assert!(total(&after, "ecr_portal_audit_events_total", &[]) >= 3.0, "{after}");
    assert!(after.contains("ecr_portal_repositories_drifted") && after.contains("ecr_portal_outbox_backlog"));
    // Every name is the portal's own.
    for line in after.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        assert!(line.starts_with("ecr_portal_"), "{line}");
    }
    // The portal's own listener does not serve them.
    let (s, _) = alice.get("/metrics").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn every_answer_carries_a_request_id_kept_from_the_caller_when_sane() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let id_of_answer = |r: &reqwest::Response| {
        r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string).unwrap_or_default()
    };
    for path in ["/healthz", "/api/v1/me", "/api/v1/requests", "/no-such-page", "/pkg/no-such-file.js", "/login"] {
        let r = http.get(format!("{}{path}", app.base)).send().await.expect("answer");
        let id = id_of_answer(&r);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path} ({}): {id:?}", r.status());
    }
    let r = http.get(format!("{}/api/v1/me", app.base)).header("x-request-id", "lb-7f3a.2").send().await.expect("me");
    assert_eq!(id_of_answer(&r), "lb-7f3a.2", "the caller's id is kept");
    let r = http
        .get(format!("{}/api/v1/me", app.base))
        .header("x-request-id", "<script>alert(1)</script>")
        .send()
        .await
        .expect("me");
    let id = id_of_answer(&r);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "an odd one is replaced: {id}");
    // A refused write too.
    let r = http.post(format!("{}/api/v1/requests", app.base)).json(&json!({})).send().await.expect("post");
    assert_eq!(r.status(), 401);
    assert!(!id_of_answer(&r).is_empty());
}

#[tokio::test]
async fn json_logs_parse_and_carry_the_request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut portal = Command::new(env!("CARGO_BIN_EXE_ecr-portal"))
        .env("ECR_PORTAL_SERVER__LISTEN", "127.0.0.1:0")
        .env("ECR_PORTAL_DATABASE__PATH", dir.path().join("portal.db"))
        .env("ECR_PORTAL_AWS__LOCAL_ENDPOINT", moto_endpoint())
        .env("ECR_PORTAL_AWS__STAGING_ROLE_ARN", "arn:aws:iam::555555555555:role/ecr-portal-apply")
        .env("ECR_PORTAL_LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let mut line = String::new();
    BufReader::new(portal.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    let base = line.trim().rsplit(' ').next().expect("address").to_string();
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/me"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 200);
    let _ = portal.kill();
    let out = portal.wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{log}");
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string()), "{log}");
    let ours: Vec<&Value> = lines.iter().filter(|l| l["span"]["request_id"] == "trace-me-42").collect();
    assert!(!ours.is_empty(), "a line of the request carries its id: {log}");
    assert_eq!(ours[0]["span"]["path"], "/api/v1/me");
    assert!(!log.contains("\u{1b}["), "no colour codes when not on a terminal");
}
