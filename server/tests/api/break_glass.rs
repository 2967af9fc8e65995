//! Break glass: an admin applies a request at once without the quorum, with a
//! reason; another admin reviews it (accepted, or reverted by a new request).
use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn break_glass_is_off_unless_configured() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let (_, r) = alice.submit(&unique("glass-off")).await;
    let id = id_of(&r);
    let (s, e) = bob.post(&format!("/api/v1/requests/{id}/break-glass"), json!({"reason": "outage"})).await;
    assert_eq!(s, 409, "{e}");
    assert!(e.to_string().contains("approval.break_glass"), "{e}");
    let (_, d) = bob.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!((d["summary"]["status"].as_str(), d["can_break_glass"].as_bool()), (Some("pending"), Some(false)));
}

#[tokio::test]
async fn a_production_grant_applied_by_break_glass_is_audited_and_reverted_on_review() {
    let app = spawn_app_with(|c| {
        c.approval.break_glass = true;
        c.approval.grant_production_approvals = 2;
    })
    .await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let dave = app.sign_in("dave", "admin").await;
    let name = unique("glass");
    let full = format!("crytera/{name}");
    let (_, created) = alice.submit(&name).await;
    let cid = id_of(&created);
    bob.post(&format!("/api/v1/requests/{cid}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(cid).await["summary"]["status"], "applied");
    let (s, g) = alice
        .post(
            "/api/v1/requests",
            json!({"kind": "grant_production", "repository": full, "justification": "prod is down without it"}),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let id = id_of(&g);
    assert_eq!(g["can_break_glass"], false, "the requester cannot");
    // A requester cannot; a reason is required.
    assert_eq!(alice.post(&format!("/api/v1/requests/{id}/break-glass"), json!({"reason": "x"})).await.0, 403);
    let (s, e) = bob.post(&format!("/api/v1/requests/{id}/break-glass"), json!({"reason": "  "})).await;
    assert_eq!((s, e["error"]["fields"][0]["field"].as_str()), (422, Some("reason")), "{e}");
    let (_, before) = bob.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(before["can_break_glass"], true, "{before}");
    let (s, d) = bob
        .post(&format!("/api/v1/requests/{id}/break-glass"), json!({"reason": "INC-42: production cannot pull"}))
        .await;
    assert_eq!(s, 200, "{d}");
    let done = bob.wait_settled(id).await;
    assert_eq!(done["summary"]["status"], "applied", "one admin was enough: {done}");
    assert_eq!(done["review_pending"], true);
    assert!(done["break_glass"].as_str().unwrap_or("").contains("INC-42"), "{done}");
    // In moto: production can pull.
    let policy = app.ecr().await.get_repository_policy().repository_name(&full).send().await.expect("policy");
    assert!(policy.policy_text().unwrap_or("").contains(":root"), "{policy:?}");
    // In the audit trail, with the reason.
    let (_, audit) = bob.get(&format!("/api/v1/audit?action=break_glass&request_id={id}")).await;
    let events = audit["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(
        (events[0]["actor"].as_str(), events[0]["detail"].as_str()),
        (Some("local:bob"), Some("INC-42: production cannot pull"))
    );

    // Bob cannot review his own break glass; Dave reverts it, which files the revoke.
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/review"), json!({"outcome": "accepted"})).await.0, 403);
    let (s, e) = dave.post(&format!("/api/v1/requests/{id}/review"), json!({"outcome": "maybe"})).await;
    assert_eq!((s, e["error"]["fields"][0]["field"].as_str()), (422, Some("outcome")));
    let (s, reviewed) = dave
        .post(&format!("/api/v1/requests/{id}/review"), json!({"outcome": "revert", "comment": "not an outage"}))
        .await;
    assert_eq!(s, 200, "{reviewed}");
    assert_eq!(reviewed["review_pending"], false);
    let last = reviewed["timeline"].as_array().and_then(|t| t.last()).cloned().expect("event");
    assert_eq!(last["action"], "break_glass_reviewed");
    let detail = last["detail"].as_str().unwrap_or("");
    assert!(detail.starts_with("revert: filed request #") && detail.contains("not an outage"), "{detail}");
    let (_, list) = dave.get(&format!("/api/v1/requests?repository={name}&kind=revoke_production")).await;
    let undo = list.as_array().and_then(|l| l.first()).cloned().expect("the revoke was filed");
    assert_eq!((undo["status"].as_str(), undo["requester"].as_str()), (Some("pending"), Some("local:dave")));
    // Reviewed once only.
    assert_eq!(dave.post(&format!("/api/v1/requests/{id}/review"), json!({"outcome": "accepted"})).await.0, 409);
}

#[tokio::test]
async fn an_accepted_break_glass_review_clears_the_flag() {
    let app = spawn_app_with(|c| c.approval.break_glass = true).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let dave = app.sign_in("dave", "admin").await;
    let (_, r) = alice.submit(&unique("glass-ok")).await;
    let id = id_of(&r);
    bob.post(&format!("/api/v1/requests/{id}/break-glass"), json!({"reason": "the release train leaves now"})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    // An admin who is not the one who broke it; the requester cannot.
    assert_eq!(alice.post(&format!("/api/v1/requests/{id}/review"), json!({"outcome": "accepted"})).await.0, 403);
    let (s, d) = dave.post(&format!("/api/v1/requests/{id}/review"), json!({"outcome": "accepted"})).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!((d["review_pending"].as_bool(), d["can_review"].as_bool()), (Some(false), Some(false)));
    assert_eq!(d["timeline"].as_array().and_then(|t| t.last()).map(|e| e["detail"].clone()), Some(json!("accepted")));
}
