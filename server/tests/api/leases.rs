//! Apply leases fence: an attempt whose lease ran out during a slow AWS call
//! writes nothing more once another attempt has taken the job over.
use super::helpers::*;
use super::proxy;
use serde_json::{json, Value};
use server::service::ApplyOutcome;
use std::time::Duration;

const LEASE_MS: i64 = 120_000;

#[tokio::test]
async fn an_attempt_that_lost_its_lease_during_a_slow_call_writes_nothing_more_and_the_trail_shows_both() {
    let (url, counts) = proxy::start(&moto_endpoint()).await;
    let clock = manual_clock();
    let app = spawn_app_full(
        move |c| {
            c.aws.local_endpoint = url;
            c.worker.enabled = false;
        },
        Some(clock.clone()),
    )
    .await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let name = unique("lease");
    let full = format!("crytera/{name}");
    app.ecr().await.create_repository().repository_name(&full).send().await.expect("create in moto");
    let body = json!({"kind": "grant_production", "repository": name, "justification": "EKS pulls these"});
    let (status, created) = alice.post("/api/v1/requests", body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["summary"]["id"].as_i64().expect("id");
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);

    // Attempt 1 reads the live policy (no grant yet); the answer is slow.
    let hold = counts.hold_next_answer("GetRepositoryPolicy");
    let service = app.service.clone();
    let first = tokio::spawn(async move { service.apply_next("worker-a", LEASE_MS).await });
    tokio::time::timeout(Duration::from_secs(30), hold.arrived.notified()).await.expect("attempt 1 reads the policy");

    // Its lease runs out; attempt 2 takes the job over and applies it.
    clock.advance_ms(LEASE_MS + 1_000);
    let second = app.service.apply_next("worker-b", LEASE_MS).await.expect("attempt 2");
    assert_eq!(second, ApplyOutcome::Applied(id));
    assert_eq!(counts.get("SetRepositoryPolicy"), 1);

    // Attempt 1 now gets its stale answer (no grant) and would write it again.
    hold.release.notify_one();
    let first = tokio::time::timeout(Duration::from_secs(30), first).await.expect("attempt 1 ends").expect("task");
    assert_eq!(first.expect("attempt 1"), ApplyOutcome::LostLease(id));
    assert_eq!(counts.get("SetRepositoryPolicy"), 1, "the old attempt wrote nothing after losing its lease");
    assert_eq!(counts.get("DeleteRepositoryPolicy"), 0);

    // AWS holds exactly what was approved: the portal's statement, once.
    let text = app
        .ecr()
        .await
        .get_repository_policy()
        .repository_name(&full)
        .send()
        .await
        .expect("policy")
        .policy_text()
        .expect("text")
        .to_string();
    let doc: Value = serde_json::from_str(&text).expect("json");
    let statements = doc["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 1, "{doc}");
    assert_eq!(statements[0]["Sid"], "EcrPortalProductionPull");

    // The trail shows both attempts, each with its AWS request ids.
    let page = bob.get(&format!("/api/v1/requests/{id}")).await.1;
    assert_eq!(page["summary"]["status"], "applied");
    let timeline = page["timeline"].as_array().expect("timeline");
    let of = |action: &str| timeline.iter().filter(|e| e["action"] == action).cloned().collect::<Vec<Value>>();
    assert_eq!(of("apply_started").len(), 2, "{timeline:?}");
    let lost = of("apply_lease_lost");
    assert_eq!(lost.len(), 1, "{timeline:?}");
    assert!(lost[0]["detail"]
        .as_str()
        .unwrap_or("")
        .starts_with("attempt 1: the lease was gone before SetRepositoryPolicy"));
    assert!(!lost[0]["aws_request_ids"].as_array().expect("ids").is_empty(), "attempt 1's reads are recorded");
    let done = of("apply_succeeded");
    assert_eq!(done.len(), 1);
    assert!(!done[0]["aws_request_ids"].as_array().expect("ids").is_empty());
    let v = server::db::verify_chain(&app.service.db.pool, &app.service.db.chain).await.expect("verify");
    assert!(v.intact(), "{v:?}");
}

#[tokio::test]
async fn a_running_attempt_keeps_its_lease_and_a_finished_one_releases_it() {
    let app = spawn_app_with(|c| c.worker.enabled = false).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let id = alice.submit(&unique("lease")).await.1["summary"]["id"].as_i64().expect("id");
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    assert_eq!(app.apply_once().await, ApplyOutcome::Applied(id));
    let (owner, until): (Option<String>, Option<i64>) =
        sqlx::query_as("SELECT lease_owner, lease_until FROM requests WHERE id = ?")
            .bind(id)
            .fetch_one(&app.service.db.pool)
            .await
            .expect("row");
    assert_eq!((owner, until), (None, None), "an applied request holds no lease");
}
