//! Crashes: the real binary is SIGKILLed at points of the apply path, then
//! started again on the same database. Every job must end `applied`, AWS must
//! hold exactly what was approved, and the trail must show one success.
use super::helpers::*;
use aws_sdk_ecr::types::ImageTagMutability;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Portal {
    child: Child,
    base: String,
    stderr: mpsc::Receiver<String>,
}

fn start(db: &Path, moto: &str, account: &str, crash_at: Option<&str>) -> Portal {
    start_with(db, moto, account, crash_at, &[])
}

fn start_with(db: &Path, moto: &str, account: &str, crash_at: Option<&str>, env: &[(&str, String)]) -> Portal {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecr-portal"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("ECR_PORTAL_SERVER__LISTEN", "127.0.0.1:0")
        .env("ECR_PORTAL_DATABASE__PATH", db)
        .env("ECR_PORTAL_AWS__LOCAL_ENDPOINT", moto)
        .env("ECR_PORTAL_AWS__STAGING_ROLE_ARN", format!("arn:aws:iam::{account}:role/ecr-portal-apply"))
        .env("ECR_PORTAL_WORKER__POLL_INTERVAL_MS", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match crash_at {
        Some(p) => cmd.env("PORTAL_TEST_CRASH_AT", p),
        None => cmd.env_remove("PORTAL_TEST_CRASH_AT"),
    };
    let mut child = cmd.spawn().expect("start ecr-portal");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("ready line");
    let base = first.trim().rsplit(' ').next().expect("address").to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "unexpected first line {first:?}");
    Portal { child, base, stderr: rx }
}

impl Portal {
    fn wait_for(&self, line: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(200)) {
                if l.contains(line) {
                    return;
                }
            }
        }
        panic!("the portal never printed {line:?}");
    }

    fn sigkill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    async fn user(&self, name: &str, role: &str) -> User {
        let http = reqwest::Client::builder().cookie_store(true).build().expect("client");
        let r = http
            .post(format!("{}/auth/local", self.base))
            .header("accept", "application/json")
            .form(&[("username", name), ("role", role)])
            .send()
            .await
            .expect("sign in");
        assert_eq!(r.status(), 200);
        User { http, base: self.base.clone() }
    }
}

async fn crash_and_recover(point: &str) {
    let moto = moto_endpoint();
    let probe = spawn_app().await; // only for its fresh account and an ECR client in it
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("portal.db");
    let name = unique(&format!("crash-{}", point.replace('_', "-")));
    let full = format!("crytera/{name}");

    let portal = start(&db, &moto, &probe.account, Some(point));
    let alice = portal.user("alice", "requester").await;
    let bob = portal.user("bob", "admin").await;
    let mut body = request_body(&name);
    body["tag_mutability"] = json!("MUTABLE");
    body["keep_last_images"] = json!(20);
    let (status, created) = alice.post("/api/v1/requests", body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["summary"]["id"].as_i64().expect("id");
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    portal.wait_for(&format!("CRASH POINT {point}"));
    portal.sigkill();

    let portal = start(&db, &moto, &probe.account, None);
    let bob = portal.user("bob", "admin").await;
    let d: Value = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "applied", "after a crash at {point}: {d}");
    let actions: Vec<&str> =
        d["timeline"].as_array().expect("timeline").iter().map(|e| e["action"].as_str().unwrap_or("")).collect();
    assert_eq!(actions.iter().filter(|a| **a == "apply_succeeded").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "apply_started").count(), 2, "{actions:?}");

    // AWS holds exactly what was approved.
    let ecr = probe.ecr().await;
    let repos = ecr.describe_repositories().repository_names(&full).send().await.expect("describe");
    assert_eq!(repos.repositories().len(), 1);
    assert_eq!(repos.repositories()[0].image_tag_mutability(), Some(&ImageTagMutability::Mutable));
    let lp = ecr.get_lifecycle_policy().repository_name(&full).send().await.expect("lifecycle");
    let lp: Value = serde_json::from_str(lp.lifecycle_policy_text().unwrap_or("{}")).expect("json");
    assert_eq!(lp["rules"][0]["selection"]["countNumber"], 20);
    let (_, v) = bob.get("/api/v1/audit/verify").await;
    assert_eq!(v["intact"], true);
    portal.sigkill();
}

#[tokio::test]
async fn a_crash_before_the_aws_calls_is_resumed_after_restart() {
    crash_and_recover("before_aws").await;
}

#[tokio::test]
async fn a_crash_after_creating_but_before_committing_is_resumed_and_finishes_its_own_repository() {
    crash_and_recover("after_create").await;
}

#[tokio::test]
async fn a_crash_during_verification_is_resumed_after_restart() {
    crash_and_recover("during_verify").await;
}

/// The portal is killed with a notification in its outbox, before it is sent
/// (`before_delivery`) or after it was sent and before that was recorded
/// (`after_delivery`). After the restart the receiver has it: once in the
/// first case; in the second, again under the same delivery id.
async fn notification_survives(point: &str) -> Vec<String> {
    let (url, receiver) = crate::notifications::Receiver::start(&[]).await;
    let moto = moto_endpoint();
    let probe = spawn_app().await;
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("portal.db");
    let env = [
        ("ECR_PORTAL_NOTIFY__WEBHOOK_URL", format!("{url}/hook")),
        ("ECR_PORTAL_NOTIFY__WEBHOOK_SECRET", "crash-secret".to_string()),
    ];
    let portal = start_with(&db, &moto, &probe.account, Some(point), &env);
    let alice = portal.user("alice", "requester").await;
    let (status, created) = alice.post("/api/v1/requests", request_body(&unique("crashnote"))).await;
    assert_eq!(status, 201, "{created}");
    portal.wait_for(&format!("CRASH POINT {point}"));
    portal.sigkill();
    let before = receiver.deliveries();
    let _portal = start_with(&db, &moto, &probe.account, None, &env);
    let want = before.len() + 1;
    for _ in 0..400 {
        let now = receiver.deliveries();
        if now.len() >= want {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the notification was not delivered after the restart ({point})");
}

#[tokio::test]
async fn a_notification_committed_but_not_sent_is_sent_after_a_crash() {
    let got = notification_survives("before_delivery").await;
    assert_eq!(got.len(), 1, "delivered once: {got:?}");
}

#[tokio::test]
async fn a_notification_sent_but_not_recorded_is_sent_again_under_the_same_delivery_id() {
    let got = notification_survives("after_delivery").await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], got[1], "the same delivery id, so the receiver drops the repeat");
}
