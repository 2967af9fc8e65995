//! Races: many admins deciding one request at the same instant.
use super::helpers::*;
use super::proxy;
use serde_json::{json, Value};

async fn actions_for(user: &User, id: i64) -> Vec<String> {
    let (_, d) = user.get(&format!("/api/v1/requests/{id}")).await;
    d["timeline"].as_array().expect("timeline").iter().map(|e| e["action"].as_str().unwrap_or("").to_string()).collect()
}

#[tokio::test]
async fn thirty_two_concurrent_approvals_make_one_transition_one_job_and_one_create() {
    let (proxy_url, counts) = proxy::start(&moto_endpoint()).await;
    let app = spawn_app_with(|c| c.aws.local_endpoint = proxy_url.clone()).await;
    let alice = app.sign_in("alice", "requester").await;
    let mut admins = Vec::new();
    for i in 0..32 {
        admins.push(app.sign_in(&format!("admin{i}"), "admin").await);
    }
    let id = alice.submit(&unique("race")).await.1["summary"]["id"].as_i64().expect("id");
    let results = futures::future::join_all(
        admins.iter().map(|a| async move { a.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0 }),
    )
    .await;
    assert_eq!(results.iter().filter(|s| **s == 200).count(), 1, "{results:?}");
    assert!(results.iter().all(|s| *s == 200 || *s == 409), "{results:?}");
    let d: Value = alice.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "applied");
    let acts = actions_for(&alice, id).await;
    assert_eq!(acts, ["request_submitted", "request_approved", "apply_started", "apply_succeeded"]);
    assert_eq!(counts.get("CreateRepository"), 1, "one create reached AWS");
}

#[tokio::test]
async fn concurrent_approvals_of_a_request_that_needs_two_count_two_approvers_once_each() {
    // Each approver's decision is first written from the request as read
    // before the writer turn; the approvers who read it before another's
    // approval landed are read again under the turn, and counted from there.
    let app = spawn_app_with(|c| {
        c.approval.create_repository_approvals = 2;
        c.worker.enabled = false;
    })
    .await;
    let alice = app.sign_in("alice", "requester").await;
    let mut admins = Vec::new();
    for i in 0..16 {
        admins.push(app.sign_in(&format!("admin{i}"), "admin").await);
    }
    let id = alice.submit(&unique("pair")).await.1["summary"]["id"].as_i64().expect("id");
    let results = futures::future::join_all(
        admins.iter().map(|a| async move { a.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await }),
    )
    .await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    let ok: Vec<&Value> = results.iter().filter(|(s, _)| *s == 200).map(|(_, d)| d).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
    let (_, d) = alice.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(d["summary"]["status"], "approved", "{d}");
    // The approval that decided it answered with what the request page now reads.
    let decided = ok.iter().find(|r| r["summary"]["status"] == "approved").expect("the deciding answer");
    assert_eq!(decided["timeline"], d["timeline"]);
    assert_eq!(decided["approvals"], d["approvals"]);
    let approvers: Vec<&str> =
        d["approvals"].as_array().expect("approvals").iter().filter_map(|a| a["approver"].as_str()).collect();
    assert_eq!(approvers.len(), 2, "{approvers:?}");
    assert_ne!(approvers[0], approvers[1]);
    let timeline: Vec<(&str, &str)> = d["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or(""), e["detail"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        timeline,
        [("request_submitted", ""), ("approval_given", "approval 1 of 2"), ("request_approved", "approval 2 of 2")],
        "each approval counted once, in order"
    );
}

#[tokio::test]
async fn approve_against_reject_has_exactly_one_winner() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let mut admins = Vec::new();
    for i in 0..32 {
        admins.push(app.sign_in(&format!("admin{i}"), "admin").await);
    }
    let id = alice.submit(&unique("tug")).await.1["summary"]["id"].as_i64().expect("id");
    let results = futures::future::join_all(admins.iter().enumerate().map(|(i, a)| async move {
        let verb = if i % 2 == 0 { "approve" } else { "reject" };
        (verb, a.post(&format!("/api/v1/requests/{id}/{verb}"), json!({})).await.0)
    }))
    .await;
    let winners: Vec<&str> = results.iter().filter(|(_, s)| *s == 200).map(|(v, _)| *v).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let d = alice.wait_settled(id).await;
    let expected = if winners[0] == "approve" { "applied" } else { "rejected" };
    assert_eq!(d["summary"]["status"], expected);
    let decisions = actions_for(&alice, id)
        .await
        .into_iter()
        .filter(|a| a == "request_approved" || a == "request_rejected")
        .count();
    assert_eq!(decisions, 1);
}

#[tokio::test]
async fn a_new_repository_costs_the_calls_its_plan_lists_and_nothing_more() {
    let (proxy_url, counts) = proxy::start(&moto_endpoint()).await;
    let app = spawn_app_with(|c| c.aws.local_endpoint = proxy_url.clone()).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let mut body = request_body(&unique("calls"));
    body["keep_last_images"] = json!(30);
    let (_, r) = alice.post("/api/v1/requests", body).await;
    let id = r["summary"]["id"].as_i64().expect("id");
    let planned: Vec<String> = r["plan"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["call"].as_str().map(|c| c.split(':').nth(1).unwrap_or(c).to_string()))
        .collect();
    assert_eq!(planned, ["AssumeRole", "CreateRepository", "PutLifecyclePolicy", "DescribeRepositories"]);
    let before = counts.all();
    let (s, _) = bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let mut made: Vec<(String, usize)> = counts
        .all()
        .into_iter()
        .map(|(op, n)| (op.clone(), n - before.get(&op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    made.sort();
    let mut expected: Vec<(String, usize)> = planned.iter().map(|c| (c.clone(), 1)).collect();
    expected.sort();
    assert_eq!(made, expected, "exactly the planned calls, once each");
}

#[tokio::test]
async fn decisions_that_wait_behind_another_write_answer_what_the_request_page_then_reads() {
    // A write transaction holds the write connection: the three decisions
    // queue behind it, then each reads and writes in its own transaction.
    let app = spawn_app_with(|c| c.worker.enabled = false).await;
    let alice = app.sign_in("alice", "requester").await;
    let (adam, bea) = (app.sign_in("adam", "admin").await, app.sign_in("bea", "admin").await);
    let mut ids = Vec::new();
    for name in ["q1", "q2", "q3"] {
        ids.push(alice.submit(&unique(name)).await.1["summary"]["id"].as_i64().expect("id"));
    }
    let turn = app.service.db.write().await.expect("turn");
    let decide = |who: &'static str, verb: &'static str, id: i64| {
        let user = if who == "adam" { &adam } else { &bea };
        async move { user.post(&format!("/api/v1/requests/{id}/{verb}"), json!({"comment": "checked"})).await }
    };
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        turn.rollback().await.expect("release the turn");
    };
    let (a, b, c, ()) = tokio::join!(
        decide("adam", "approve", ids[0]),
        decide("bea", "reject", ids[1]),
        decide("adam", "approve", ids[2]),
        release
    );
    for (id, (status, answer), want) in [(ids[0], a, "approved"), (ids[1], b, "rejected"), (ids[2], c, "approved")] {
        assert_eq!(status, 200, "{answer}");
        let (_, page) = alice.get(&format!("/api/v1/requests/{id}")).await;
        assert_eq!(page["summary"]["status"], want);
        for part in ["summary", "timeline", "approvals", "decided_by", "decision_comment"] {
            assert_eq!(answer[part], page[part], "#{id}: {part}");
        }
        assert_eq!(answer["timeline"].as_array().map(Vec::len), Some(2), "submitted, then decided: {answer}");
    }
    let v = server::db::verify_chain(&app.service.db.pool, &app.service.db.chain).await.expect("verify");
    assert!(v.intact(), "{v:?}");
}
