//! Faults: AWS throttling, failing or refusing, injected by a proxy in front of moto.
use super::helpers::*;
use super::proxy;
use serde_json::{json, Value};

async fn app_behind_proxy(max_attempts: u32) -> (TestApp, proxy::Counts) {
    let (url, counts) = proxy::start(&moto_endpoint()).await;
    let app = spawn_app_with(move |c| {
        c.aws.local_endpoint = url;
        c.worker.max_attempts = max_attempts;
        c.worker.retry_base_ms = 50;
        c.worker.retry_max_ms = 200;
    })
    .await;
    (app, counts)
}

fn actions(d: &Value) -> Vec<String> {
    d["timeline"].as_array().expect("timeline").iter().map(|e| e["action"].as_str().unwrap_or("").to_string()).collect()
}

async fn submitted(app: &TestApp) -> (User, i64) {
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let id = alice.submit(&unique("fault")).await.1["summary"]["id"].as_i64().expect("id");
    // The submission's existence check went through before the faults start.
    (bob, id)
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried_until_aws_recovers() {
    let (app, counts) = app_behind_proxy(5).await;
    let (bob, id) = submitted(&app).await;
    counts.fail_next(4, 500, "ServerException");
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "applied", "{d}");
    assert!(actions(&d).iter().any(|a| a == "apply_deferred"), "{:?}", actions(&d));
    counts.fail_next(2, 400, "ThrottlingException");
    let (_, r) = bob.get("/api/v1/repositories").await;
    assert!(r["repositories"].is_array(), "throttled reads are retried by the SDK: {r}");
    // Bounded: the SDK's 3 tries per attempt times the attempts used.
    let creates = counts.get("CreateRepository");
    assert!((4..=15).contains(&creates), "{creates} CreateRepository calls");
}

#[tokio::test]
async fn a_permanent_error_fails_at_once_and_an_admin_can_retry() {
    let (app, counts) = app_behind_proxy(5).await;
    let (bob, id) = submitted(&app).await;
    counts.fail_next(1, 400, "AccessDeniedException");
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "failed");
    assert!(d["failure"].as_str().unwrap_or("").contains("denied access"), "{d}");
    assert_eq!(d["attempts"], 1);
    assert!(!actions(&d).iter().any(|a| a == "apply_deferred"));
    assert_eq!(counts.get("CreateRepository"), 1, "no retry of a permanent error");
    bob.post(&format!("/api/v1/requests/{id}/retry"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
}

#[tokio::test]
async fn the_worker_gives_up_after_the_attempt_limit_with_a_clear_reason() {
    let (app, counts) = app_behind_proxy(2).await;
    let (bob, id) = submitted(&app).await;
    counts.fail_next(1000, 503, "ServiceUnavailableException");
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "failed", "{d}");
    assert!(d["failure"].as_str().unwrap_or("").contains("gave up after 2 attempts"), "{d}");
    assert!(counts.get("CreateRepository") <= 2 * 3, "bounded: {}", counts.get("CreateRepository"));
    counts.heal();
    bob.post(&format!("/api/v1/requests/{id}/retry"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
}

#[tokio::test]
async fn the_assumed_role_session_names_the_requester_and_the_approver() {
    let (app, counts) = app_behind_proxy(5).await;
    let (bob, id) = submitted(&app).await;
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let sessions = counts.sessions();
    assert!(sessions.contains(&format!("req{id}-alice-by-bob")), "{sessions:?}");
    // The apply's AssumeRole carries the approver as source identity and the three session tags.
    let calls = counts.assume_roles();
    let apply = calls
        .iter()
        .find(|c| c.get("RoleSessionName") == Some(&format!("req{id}-alice-by-bob")))
        .expect("the apply's AssumeRole");
    assert_eq!(apply.get("SourceIdentity").map(String::as_str), Some("local-bob"), "{apply:?}");
    let tags: std::collections::BTreeMap<&str, &str> = (1..=3)
        .filter_map(|i| {
            let k = apply.get(&format!("Tags.member.{i}.Key"))?;
            let v = apply.get(&format!("Tags.member.{i}.Value"))?;
            Some((k.as_str(), v.as_str()))
        })
        .collect();
    let id_text = id.to_string();
    let expected = [("approver", "local:bob"), ("request-id", id_text.as_str()), ("requester", "local:alice")]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>();
    assert_eq!(tags, expected, "{apply:?}");
}

#[tokio::test]
async fn jobs_finish_after_aws_was_unreachable_for_a_while() {
    let (app, counts) = app_behind_proxy(6).await;
    let (bob, id) = submitted(&app).await;
    counts.go_down();
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    let mut deferred = false;
    for _ in 0..200 {
        let (_, d) = bob.get(&format!("/api/v1/requests/{id}")).await;
        if actions(&d).iter().any(|a| a == "apply_deferred") {
            deferred = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(deferred, "a network failure defers the job");
    counts.heal();
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "applied", "{d}");
    assert!(counts.get("AssumeRole") + counts.get("CreateRepository") <= 6 * 3 * 2, "bounded");
}
