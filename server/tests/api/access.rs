//! Production access against moto: the policy the portal owns, drift, and the
//! guards around them. Policies are always compared as parsed JSON.
use super::helpers::*;
use app::domain::policy;
use aws_sdk_ecr::types::ImageTagMutability;
use serde_json::{json, Value};

const PROD: &str = "222222222222";

/// The staging account's CI role may push: a statement the portal keeps and drift does not report.
fn foreign_statement(app: &TestApp) -> Value {
    json!({"Sid": "CiPush", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:role/ci", app.account)}, "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload"]})
}

async fn live_policy(app: &TestApp, full: &str) -> Option<Value> {
    match app.ecr().await.get_repository_policy().repository_name(full).send().await {
        Ok(p) => p.policy_text().map(|t| serde_json::from_str(t).expect("policy json")),
        Err(_) => None,
    }
}

async fn set_policy(app: &TestApp, full: &str, doc: &Value) {
    app.ecr()
        .await
        .set_repository_policy()
        .repository_name(full)
        .policy_text(doc.to_string())
        .send()
        .await
        .expect("set policy");
}

/// A repository made outside the portal, with a foreign statement in its policy.
async fn repo_with_foreign_policy(app: &TestApp, prefix: &str) -> (String, String) {
    let name = unique(prefix);
    let full = format!("crytera/{name}");
    app.ecr().await.create_repository().repository_name(&full).send().await.expect("create");
    set_policy(app, &full, &json!({"Version": "2012-10-17", "Statement": [foreign_statement(app)]})).await;
    (name, full)
}

async fn access(user: &User, kind: &str, name: &str, until: Option<&str>) -> (u16, Value) {
    let mut body = json!({"kind": kind, "repository": name, "justification": "EKS in production runs these images"});
    if let Some(u) = until {
        body["until"] = json!(u);
    }
    user.post("/api/v1/requests", body).await
}

fn statements(p: &Option<Value>) -> Vec<Value> {
    p.as_ref().and_then(|p| p["Statement"].as_array().cloned()).unwrap_or_default()
}

#[tokio::test]
async fn granting_keeps_foreign_statements_and_granting_twice_changes_nothing() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let (name, full) = repo_with_foreign_policy(&app, "grant").await;

    let (status, created) = access(&alice, "grant_production", &name, None).await;
    assert_eq!(status, 201, "{created}");
    let change = &created["plan"]["policy"];
    assert!(change["before"].as_str().unwrap_or("").contains("CiPush"));
    assert!(change["after"].as_str().unwrap_or("").contains(&format!("arn:aws:iam::{PROD}:root")));
    assert!(change["lines"].as_array().expect("diff").iter().any(|l| l["change"] == "Added"));
    assert!(!change["lines"]
        .as_array()
        .expect("diff")
        .iter()
        .any(|l| l["change"] == "Removed" && l["text"].as_str().unwrap_or("").contains("CiPush")));

    let id = id_of(&created);
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let live = live_policy(&app, &full).await;
    let list = statements(&live);
    assert_eq!(list.len(), 2, "{live:?}");
    assert!(policy::same(&list[0], &foreign_statement(&app)), "the foreign statement is untouched");
    assert!(policy::grants(live.as_ref(), PROD, false));

    // Again: the plan says nothing will be written, and nothing is.
    let (_, again) = access(&alice, "grant_production", &name, None).await;
    assert_eq!(again["plan"]["policy"]["unchanged"], true);
    let calls: Vec<&str> =
        again["plan"]["steps"].as_array().expect("steps").iter().map(|s| s["call"].as_str().unwrap_or("")).collect();
    assert!(!calls.contains(&"ecr:SetRepositoryPolicy"), "{calls:?}");
    let id2 = id_of(&again);
    bob.post(&format!("/api/v1/requests/{id2}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id2).await["summary"]["status"], "applied");
    assert_eq!(live_policy(&app, &full).await, live, "unchanged, to the letter");
}

#[tokio::test]
async fn revoking_removes_only_the_portals_statement() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let (name, full) = repo_with_foreign_policy(&app, "revoke").await;
    let id = id_of(&access(&alice, "grant_production", &name, None).await.1);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    bob.wait_settled(id).await;
    let (status, revoke) = access(&alice, "revoke_production", &name, None).await;
    assert_eq!(status, 201, "{revoke}");
    let id = id_of(&revoke);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let live = live_policy(&app, &full).await;
    let list = statements(&live);
    assert_eq!(list.len(), 1);
    assert!(policy::same(&list[0], &foreign_statement(&app)));
    assert!(policy::portal_statement(live.as_ref()).is_none());
}

#[tokio::test]
async fn a_new_repository_can_be_pullable_by_production_from_the_start() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let name = unique("withgrant");
    let mut body = request_body(&name);
    body["grant_production"] = json!(true);
    let (status, created) = alice.post("/api/v1/requests", body).await;
    assert_eq!(status, 201, "{created}");
    assert!(created["plan"]["policy"]["after"].as_str().unwrap_or("").contains(PROD));
    let id = id_of(&created);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let full = format!("crytera/{name}");
    assert!(policy::grants(live_policy(&app, &full).await.as_ref(), PROD, false));
    let row = alice.repository(&full).await;
    assert_eq!(row["production_access"], true);
    assert_eq!(row["managed"], true);
    assert_eq!(row["drift"], json!([]));
}

#[tokio::test]
async fn a_policy_edited_by_hand_is_reported_as_drift_and_can_be_restored() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let dave = app.sign_in("dave", "admin").await;
    let (name, full) = repo_with_foreign_policy(&app, "drift").await;
    let id = id_of(&access(&alice, "grant_production", &name, None).await.1);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    bob.wait_settled(id).await;

    // Someone removes the portal's statement by hand.
    set_policy(&app, &full, &json!({"Version": "2012-10-17", "Statement": [foreign_statement(&app)]})).await;
    assert_eq!(alice.post("/api/v1/repositories/check", json!({})).await.0, 403, "requesters cannot run checks");
    let (status, checked) = bob.post("/api/v1/repositories/check", json!({"name": full})).await;
    assert_eq!(
        (status, checked["checked"].as_u64(), checked["drifted"].as_u64()),
        (200, Some(1), Some(1)),
        "{checked}"
    );
    let row = bob.repository(&full).await;
    assert_eq!(row["production_access"], false);
    assert!(row["drift"][0].as_str().unwrap_or("").contains("production can no longer pull"), "{row}");
    let (_, audit) = bob.get(&format!("/api/v1/audit?repository={full}&action=drift_detected")).await;
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(1));
    // The request page shows it too.
    assert!(!alice.get(&format!("/api/v1/requests/{id}")).await.1["drift"].as_array().expect("drift").is_empty());

    // Re-apply the approved state through a request, approved by another admin.
    let (status, restore) = bob.post("/api/v1/repositories/restore", json!({"name": full})).await;
    assert_eq!(status, 201, "{restore}");
    let rid = id_of(&restore);
    assert!(restore["plan"]["policy"]["after"].as_str().unwrap_or("").contains(PROD));
    assert_eq!(bob.post(&format!("/api/v1/requests/{rid}/approve"), json!({})).await.0, 403, "no self-approval");
    dave.post(&format!("/api/v1/requests/{rid}/approve"), json!({})).await;
    assert_eq!(dave.wait_settled(rid).await["summary"]["status"], "applied");
    assert!(policy::grants(live_policy(&app, &full).await.as_ref(), PROD, false));
    assert_eq!(bob.post("/api/v1/repositories/check", json!({})).await.0, 200);
    let row = bob.repository(&full).await;
    assert_eq!(row["drift"], json!([]));
}

#[tokio::test]
async fn a_settings_change_by_hand_is_drift_until_the_live_state_is_accepted() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let name = unique("accept");
    let full = format!("crytera/{name}");
    let id = id_of(&alice.submit(&name).await.1);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    bob.wait_settled(id).await;
    app.ecr()
        .await
        .put_image_tag_mutability()
        .repository_name(&full)
        .image_tag_mutability(ImageTagMutability::Mutable)
        .send()
        .await
        .expect("edit by hand");
    assert_eq!(bob.post("/api/v1/repositories/check", json!({})).await.0, 200);
    let row = bob.repository(&full).await;
    assert!(row["drift"][0].as_str().unwrap_or("").contains("image tags are MUTABLE"), "{row}");
    let (_, drifted) = bob.get(&format!("/api/v1/repositories?q={full}&show=drift")).await;
    assert_eq!(drifted["repositories"][0]["name"], full.as_str(), "the drift filter finds it: {drifted}");
    assert!(drifted["drifted"].as_u64().unwrap_or(0) >= 1, "{drifted}");
    assert_eq!(alice.post("/api/v1/repositories/accept", json!({"name": full})).await.0, 403);
    let (status, accepted) = bob.post("/api/v1/repositories/accept", json!({"name": full})).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["drift"], json!([]));
    assert_eq!(bob.post("/api/v1/repositories/check", json!({})).await.0, 200);
    let row = bob.repository(&full).await;
    assert_eq!(row["drift"], json!([]), "the accepted state is the approved one now");
    let (_, drifted) = bob.get(&format!("/api/v1/repositories?q={full}&show=drift")).await;
    assert_eq!(drifted["matching"], 0, "no longer under the drift filter: {drifted}");
    let (_, audit) = bob.get(&format!("/api/v1/audit?repository={full}")).await;
    let acts: Vec<&str> =
        audit["events"].as_array().expect("events").iter().map(|e| e["action"].as_str().unwrap_or("")).collect();
    assert_eq!(acts[..2], ["drift_accepted", "drift_detected"]);
}

#[tokio::test]
async fn an_edit_between_approval_and_apply_stops_the_apply_for_reapproval() {
    let app = spawn_app_with(|c| c.worker.enabled = false).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let (name, full) = repo_with_foreign_policy(&app, "race").await;
    let id = id_of(&access(&alice, "grant_production", &name, None).await.1);
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);

    // After approval, before the worker runs, someone adds a statement by hand.
    let extra = json!({"Sid": "Audit", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444444444444:root"}, "Action": "ecr:DescribeImages"});
    let edited = json!({"Version": "2012-10-17", "Statement": [foreign_statement(&app), extra]});
    set_policy(&app, &full, &edited).await;
    assert_eq!(app.apply_once().await, server::service::ApplyOutcome::NeedsReapproval(id));
    let (_, d) = bob.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(d["summary"]["status"], "needs_reapproval");
    assert!(d["failure"].as_str().unwrap_or("").contains("changed since this plan was approved"));
    assert!(policy::same(&live_policy(&app, &full).await.expect("policy"), &edited), "nothing was overwritten");
    // The new plan is computed from the live policy; approving it again applies it.
    assert!(d["plan"]["policy"]["before"].as_str().unwrap_or("").contains("444444444444"));
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    assert_eq!(app.apply_once().await, server::service::ApplyOutcome::Applied(id));
    let live = live_policy(&app, &full).await;
    assert_eq!(statements(&live).len(), 3, "both foreign statements kept, ours added");
    assert!(policy::grants(live.as_ref(), PROD, false));
}

#[tokio::test]
async fn a_temporary_grant_is_revoked_by_the_portal_after_its_end_date() {
    let clock = manual_clock();
    let app = spawn_app_full(|_| {}, Some(clock.clone())).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let (name, full) = repo_with_foreign_policy(&app, "temp").await;
    let (status, body) = access(&alice, "grant_production", &name, Some("2026-11-26")).await;
    assert_eq!((status, body["error"]["fields"][0]["field"].as_str()), (422, Some("until")), "an end date in the past");
    let (_, created) = access(&alice, "grant_production", &name, Some("2026-11-28")).await;
    let id = id_of(&created);
    assert_eq!(created["until"], "2026-11-29T00:00:00Z");
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    assert!(policy::grants(live_policy(&app, &full).await.as_ref(), PROD, false));

    // A new request waiting for a decision must not keep the ended grant alive.
    let (_, waiting) = access(&alice, "grant_production", &name, None).await;
    let waiting = id_of(&waiting);

    // Time passes (the clock is the portal's, not a sleep): the grant ends.
    clock.0.store(NOON_2026_11_27 + 36 * 3_600_000 + 1_000, std::sync::atomic::Ordering::SeqCst);
    app.service.wake.notify_one();
    // A day and a half later the old sessions have ended too (absolute timeout): sign in again.
    assert_eq!(bob.get("/api/v1/requests").await.0, 401);
    let bob = app.sign_in("bob", "admin").await;
    let mut revoke = None;
    for _ in 0..100 {
        let (_, list) = bob.get("/api/v1/requests?status=applied").await;
        revoke = list.as_array().expect("list").iter().find(|r| r["kind"] == "revoke_production").cloned();
        if revoke.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let revoke = revoke.expect("the portal revoked the grant by itself");
    assert_eq!(revoke["requester"], "system:worker");
    let live = live_policy(&app, &full).await;
    assert!(policy::portal_statement(live.as_ref()).is_none());
    assert_eq!(statements(&live).len(), 1, "the foreign statement stays");
    let (_, audit) =
        bob.get(&format!("/api/v1/audit?repository={full}&actor=system:worker&action=request_submitted")).await;
    assert!(audit["events"][0]["detail"].as_str().unwrap_or("").contains("temporary grant ended"));
    let (_, superseded) = bob.get(&format!("/api/v1/requests/{waiting}")).await;
    assert_eq!(superseded["summary"]["status"], "rejected");
    assert_eq!(superseded["decided_by"], "system:worker");
    assert!(superseded["decision_comment"].as_str().unwrap_or("").contains("superseded"));
    // The revoke is made once, not again on every round of the worker.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, all) = bob.get("/api/v1/requests").await;
    let revokes = all.as_array().expect("list").iter().filter(|r| r["kind"] == "revoke_production").count();
    assert_eq!(revokes, 1);
}

#[tokio::test]
async fn policies_are_compared_as_parsed_json_not_as_text() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let (name, full) = repo_with_foreign_policy(&app, "json").await;
    // Our exact grant, written by hand with other spacing and action order.
    let text = format!(
        "{{ \"Statement\" : [ {}, {{\"Action\":[\"ecr:GetDownloadUrlForLayer\",\"ecr:BatchGetImage\",\"ecr:BatchCheckLayerAvailability\"],\"Principal\":{{\"AWS\":\"arn:aws:iam::{PROD}:root\"}},\"Effect\":\"Allow\",\"Sid\":\"EcrPortalProductionPull\"}} ],\n  \"Version\" : \"2012-10-17\" }}",
        foreign_statement(&app)
    );
    app.ecr().await.set_repository_policy().repository_name(&full).policy_text(text).send().await.expect("set");
    let (_, created) = access(&alice, "grant_production", &name, None).await;
    assert_eq!(created["plan"]["policy"]["unchanged"], true, "{}", created["plan"]);
}

#[tokio::test]
async fn repositories_made_outside_the_portal_are_listed_and_can_be_adopted() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let (_, full) = repo_with_foreign_policy(&app, "outside").await;
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"layers":[]}"#;
    app.ecr()
        .await
        .put_image()
        .repository_name(&full)
        .image_manifest(manifest)
        .image_tag("v1")
        .send()
        .await
        .expect("push");
    let row = alice.repository(&full).await;
    assert_eq!((row["managed"].as_bool(), row["image_count"].as_u64()), (Some(false), Some(1)));
    assert!(row["last_push"].is_string());
    assert!(row["uri"].as_str().unwrap_or("").ends_with(&format!(".dkr.ecr.us-east-1.amazonaws.com/{full}")));
    assert_eq!(alice.post("/api/v1/repositories/adopt", json!({"name": full})).await.0, 403);
    let (status, adopted) = bob.post("/api/v1/repositories/adopt", json!({"name": full})).await;
    assert_eq!(status, 200, "{adopted}");
    assert_eq!(adopted["managed"], true);
    assert_eq!(bob.post("/api/v1/repositories/adopt", json!({"name": full})).await.0, 409);
    assert_eq!(bob.post("/api/v1/repositories/adopt", json!({"name": "crytera/none-such"})).await.0, 404);
}

#[tokio::test]
async fn access_requests_for_missing_repositories_or_bad_input_are_refused() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let (status, body) = access(&alice, "grant_production", "does-not-exist", None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "repository");
    let (status, _) =
        alice.post("/api/v1/requests", json!({"kind": "steal", "repository": "x", "justification": "j"})).await;
    assert_eq!(status, 400);
    let (status, body) = alice.post("/api/v1/requests", json!({"kind": "grant_production", "repository": "x"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(alice.get("/api/v1/requests").await.1, json!([]));
}

#[tokio::test]
async fn the_inventory_is_searched_filtered_and_paged() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let prefix = unique("paged");
    let names: Vec<String> = (0..3).map(|i| format!("crytera/{prefix}-{i}")).collect();
    for full in &names {
        app.ecr().await.create_repository().repository_name(full).send().await.expect("create");
    }
    let page = |q: String| {
        let alice = &alice;
        async move { alice.get(&format!("/api/v1/repositories?{q}")).await }
    };
    let listed = |v: &Value| -> Vec<String> {
        v["repositories"]
            .as_array()
            .expect("rows")
            .iter()
            .filter_map(|r| r["name"].as_str().map(String::from))
            .collect()
    };

    let (status, first) = page(format!("q={prefix}&limit=2")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(listed(&first), names[..2], "sorted by name, two a page");
    assert_eq!((first["matching"].as_u64(), first["next_offset"].as_u64()), (Some(3), Some(2)));
    assert!(first["total"].as_u64().unwrap_or(0) >= 3, "{first}");
    let (_, second) = page(format!("q={prefix}&limit=2&offset=2")).await;
    assert_eq!(listed(&second), names[2..]);
    assert!(second["next_offset"].is_null(), "{second}");

    let (_, past) = page(format!("q={prefix}&offset=50")).await;
    assert_eq!((listed(&past).len(), past["matching"].as_u64()), (0, Some(3)), "past the end: empty, counts kept");
    assert!(past["next_offset"].is_null(), "{past}");

    // The search ignores case; the filters combine with it.
    let (_, upper) = page(format!("q={}", prefix.to_uppercase())).await;
    assert_eq!(listed(&upper), names);
    let (_, unmanaged) = page(format!("q={prefix}&show=unmanaged")).await;
    assert_eq!(listed(&unmanaged), names);
    for show in ["drift", "production"] {
        let (_, none) = page(format!("q={prefix}&show={show}")).await;
        assert_eq!((listed(&none).len(), none["matching"].as_u64()), (0, Some(0)), "{show}: {none}");
    }
    // Without a limit: 100 a page at most, whatever the inventory holds.
    let (_, all) = page(String::new()).await;
    assert_eq!(all["limit"], 100);
    assert!(listed(&all).len() <= 100);

    // Bad parameters are refused in words.
    let (status, bad) = page("show=everything".into()).await;
    assert_eq!(status, 422, "{bad}");
    assert!(bad.to_string().contains("show one of: all, drift, unmanaged, production"), "{bad}");
    let (status, bad) = page("offset=minus-one".into()).await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test]
async fn a_decision_answers_with_the_request_exactly_as_it_reads_afterwards() {
    // The approve and reject answers are built from what the decision's
    // transaction read and wrote, not read again: they must not differ.
    let app = spawn_app_with(|c| c.worker.enabled = false).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let (name, _) = repo_with_foreign_policy(&app, "answer").await;
    let grant = id_of(&access(&alice, "grant_production", &name, None).await.1);
    let created = id_of(&alice.submit(&unique("answer")).await.1);
    let refused = id_of(&alice.submit(&unique("answer-no")).await.1);
    for (id, verb, status) in
        [(grant, "approve", "approved"), (created, "approve", "approved"), (refused, "reject", "rejected")]
    {
        let (code, answer) = bob.post(&format!("/api/v1/requests/{id}/{verb}"), json!({"comment": "checked"})).await;
        assert_eq!(code, 200, "{answer}");
        let (_, read) = bob.get(&format!("/api/v1/requests/{id}")).await;
        assert_eq!(answer, read, "#{id} {verb}");
        assert_eq!(read["summary"]["status"], status);
        assert_eq!(read["timeline"].as_array().map(Vec::len), Some(2), "submitted and decided: {read}");
    }
}

/// A managed repository (created through the portal, without production access).

#[tokio::test]
async fn a_hand_made_production_grant_is_neither_adopted_nor_accepted() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let doc = |s: Value| json!({"Version": "2012-10-17", "Statement": [s]});

    // Unmanaged, with the portal's own statement copied by hand: adopting would approve it.
    let (_, copied) = repo_with_foreign_policy(&app, "copied").await;
    set_policy(&app, &copied, &doc(policy::grant_statement(PROD, false))).await;
    let (status, body) = bob.post("/api/v1/repositories/adopt", json!({"name": copied})).await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("grant request") && message.contains("approval rule"), "{message}");
    assert_eq!(bob.repository(&copied).await["managed"], false, "nothing was recorded");
    // Unmanaged, with a statement of its own letting production in: refused the same way.
    let (_, own) = repo_with_foreign_policy(&app, "prodstmt").await;
    let prod_read = json!({"Sid": "ProdRead", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{PROD}:role/eks-nodes")}, "Action": "ecr:BatchGetImage"});
    set_policy(&app, &own, &doc(prod_read)).await;
    let (status, body) = bob.post("/api/v1/repositories/adopt", json!({"name": own})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("`ProdRead`"), "{body}");

    // Managed without production access; someone grants it by hand.
    let full = managed_repo(&alice, &bob, "handgrant").await;
    set_policy(&app, &full, &doc(policy::grant_statement(PROD, false))).await;
    assert_eq!(bob.post("/api/v1/repositories/check", json!({"name": full})).await.0, 200);
    let drift = bob.repository(&full).await["drift"].to_string();
    assert!(drift.contains("lets production pull, which was not approved"), "{drift}");
    let (status, body) = bob.post("/api/v1/repositories/accept", json!({"name": full})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("grant request"), "{body}");
    let row = bob.repository(&full).await;
    assert_eq!(row["drift"].to_string(), drift, "the drift stays");
    // The way through: a grant request, decided by the grant's rule; nothing to write, and the drift ends.
    let (status, grant) = access(&alice, "grant_production", &full, None).await;
    assert_eq!(status, 201, "{grant}");
    assert_eq!(grant["plan"]["policy"]["unchanged"], true, "{grant}");
    let gid = id_of(&grant);
    bob.post(&format!("/api/v1/requests/{gid}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(gid).await["summary"]["status"], "applied");
    assert_eq!(bob.post("/api/v1/repositories/check", json!({"name": full})).await.0, 200);
    assert_eq!(bob.repository(&full).await["drift"], json!([]));
}

#[tokio::test]
async fn foreign_statements_that_let_outsiders_write_or_anyone_in_are_drift_that_cannot_be_accepted() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo(&alice, &bob, "outsider").await;
    let outsider = json!({"Sid": "OutsiderPush", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": ["ecr:PutImage", "ecr:BatchGetImage"]});
    let anyone = json!({"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"});
    set_policy(
        &app,
        &full,
        &json!({"Version": "2012-10-17", "Statement": [foreign_statement(&app), outsider, anyone]}),
    )
    .await;
    let (status, checked) = bob.post("/api/v1/repositories/check", json!({"name": full})).await;
    assert_eq!((status, checked["drifted"].as_u64()), (200, Some(1)), "{checked}");
    let drift: Vec<String> = serde_json::from_value(bob.repository(&full).await["drift"].clone()).expect("drift");
    assert_eq!(drift.len(), 2, "the staging account's own CI statement is not reported: {drift:?}");
    assert!(drift[0].contains("`OutsiderPush`") && drift[0].contains("ecr:PutImage"), "{drift:?}");
    assert!(drift[1].contains("statement 3") && drift[1].contains("anyone"), "{drift:?}");
    let (status, body) = bob.post("/api/v1/repositories/accept", json!({"name": full})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(bob.repository(&full).await["drift"].as_array().map(Vec::len), Some(2));
    let (_, audit) = bob.get(&format!("/api/v1/audit?repository={full}&action=drift_detected")).await;
    assert!(audit["events"][0]["detail"].as_str().unwrap_or("").contains("OutsiderPush"), "{audit}");
}

#[tokio::test]
async fn a_restore_that_gives_production_its_access_back_is_decided_by_the_grant_rule() {
    let app = spawn_app_with(|c| c.approval.grant_production_approvals = 2).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let dave = app.sign_in("dave", "admin").await;
    let erin = app.sign_in("erin", "admin").await;
    let (name, full) = repo_with_foreign_policy(&app, "regrant").await;
    let id = id_of(&access(&alice, "grant_production", &name, None).await.1);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    dave.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    // The grant is removed by hand; restoring it is a production grant.
    set_policy(&app, &full, &json!({"Version": "2012-10-17", "Statement": [foreign_statement(&app)]})).await;
    let (status, restore) = bob.post("/api/v1/repositories/restore", json!({"name": full})).await;
    assert_eq!(status, 201, "{restore}");
    assert_eq!(restore["kind"]["grants_production"], true, "{restore}");
    let rid = id_of(&restore);
    let (_, one) = dave.post(&format!("/api/v1/requests/{rid}/approve"), json!({})).await;
    assert_eq!(one["summary"]["status"], "pending", "one approval of the grant rule's two: {one}");
    erin.post(&format!("/api/v1/requests/{rid}/approve"), json!({})).await;
    assert_eq!(erin.wait_settled(rid).await["summary"]["status"], "applied");
    assert!(policy::grants(live_policy(&app, &full).await.as_ref(), PROD, false));

    // A restore that only takes settings back stays with the restore rule (one approver).
    app.ecr()
        .await
        .put_image_tag_mutability()
        .repository_name(&full)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .ok();
    let (_, restore) = bob.post("/api/v1/repositories/restore", json!({"name": full})).await;
    assert_eq!(restore["kind"]["grants_production"], false, "{restore}");
}

#[tokio::test]
async fn a_request_sent_back_for_reapproval_expires_like_a_pending_one_counted_from_being_sent_back() {
    let clock = manual_clock();
    let app = spawn_app_full(
        |c| {
            c.worker.enabled = false;
            c.approval.pending_expiry_hours = 48;
        },
        Some(clock.clone()),
    )
    .await;
    let alice = app.sign_in("alice", "requester").await;
    let (name, full) = repo_with_foreign_policy(&app, "stale").await;
    let id = id_of(&access(&alice, "grant_production", &name, None).await.1);
    // Approved a day after submission; a hand edit sends it back.
    clock.advance_ms(24 * 3_600_000);
    let bob = app.sign_in("bob", "admin").await; // a day on: a new session
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    let extra = json!({"Sid": "Audit", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444444444444:root"}, "Action": "ecr:DescribeImages"});
    set_policy(&app, &full, &json!({"Version": "2012-10-17", "Statement": [foreign_statement(&app), extra]})).await;
    assert_eq!(app.apply_once().await, server::service::ApplyOutcome::NeedsReapproval(id));
    let (_, d) = bob.get(&format!("/api/v1/requests/{id}")).await;
    assert!(d["expires_at"].as_str().unwrap_or("").starts_with("2026-11-30T12:00"), "48 h after being sent back: {d}");
    // 47 hours after being sent back (71 after submission): still waiting.
    clock.advance_ms(47 * 3_600_000);
    assert_eq!(app.service.expire_pending().await.expect("expire"), 0);
    clock.advance_ms(2 * 3_600_000);
    assert_eq!(app.service.expire_pending().await.expect("expire"), 1);
    let bob = app.sign_in("bob", "admin").await;
    let (_, d) = bob.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(d["summary"]["status"], "rejected", "{d}");
    assert_eq!(
        d["timeline"].as_array().and_then(|t| t.last()).map(|e| e["action"].clone()),
        Some(json!("request_expired"))
    );
}

#[tokio::test]
async fn a_repository_with_images_is_deleted_after_approval_and_its_record_is_kept_apart() {
    let app = spawn_app_with(|c| c.approval.grant_production_approvals = 2).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let dave = app.sign_in("dave", "admin").await;
    let full = managed_repo(&alice, &bob, "doomed").await;
    // Two images, and production can pull it.
    let ecr = app.ecr().await;
    for (tag, digit) in [("v1", '1'), ("v2", '2')] {
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"sha256:{}"}},"layers":[]}}"#,
            digit.to_string().repeat(64)
        );
        ecr.put_image().repository_name(&full).image_manifest(manifest).image_tag(tag).send().await.expect("push");
    }
    let gid = id_of(&access(&alice, "grant_production", &full, None).await.1);
    bob.post(&format!("/api/v1/requests/{gid}/approve"), json!({})).await;
    dave.post(&format!("/api/v1/requests/{gid}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(gid).await["summary"]["status"], "applied");

    // Bad input first: nothing stored.
    let (s, b) = alice
        .post(
            "/api/v1/requests",
            json!({"kind": "delete_repository", "repository": "crytera/none-such", "justification": "gone"}),
        )
        .await;
    assert_eq!((s, b["error"]["fields"][0]["field"].as_str()), (422, Some("repository")), "{b}");
    let (s, _) = alice
        .post("/api/v1/requests", json!({"kind": "delete_repository", "repository": full, "justification": " "}))
        .await;
    assert_eq!(s, 422);
    // The request: the plan counts the images and says production loses them; the grant's rule decides.
    let (s, d) = alice
        .post(
            "/api/v1/requests",
            json!({"kind": "delete_repository", "repository": full, "justification": "replaced by crytera/next"}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let id = id_of(&d);
    assert_eq!(d["kind"]["production_can_pull"], true);
    let summary = d["plan"]["steps"][1]["summary"].as_str().unwrap_or("").to_string();
    assert!(summary.contains("2 image(s)") && summary.contains("Production can pull it now"), "{summary}");
    assert_eq!(
        (d["approvals_required"].as_u64(), d["plan"]["steps"][1]["call"].as_str()),
        (Some(2), Some("ecr:DeleteRepository"))
    );
    let (_, one) = bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(one["summary"]["status"], "pending", "one of two");
    dave.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    let done = bob.wait_settled(id).await;
    assert_eq!(done["summary"]["status"], "applied", "{done}");
    // Gone from ECR (checked in moto), gone from the portal's records, kept among the deleted ones.
    let gone = ecr.describe_repositories().repository_names(&full).send().await;
    assert!(gone.is_err(), "{gone:?}");
    let (_, page) = bob.get(&format!("/api/v1/repositories?q={full}")).await;
    assert_eq!(page["repositories"], json!([]), "{page}");
    let kept: Vec<(String, String)> = sqlx::query_as("SELECT name, record FROM deleted_repositories")
        .fetch_all(&app.service.db.pool)
        .await
        .expect("deleted");
    assert_eq!(kept.len(), 1);
    assert!(kept[0].0 == full && kept[0].1.contains("\"production_access\":1"), "{kept:?}");
    // A later repository of the same name is a new one, with a record of its own.
    let name = full.trim_start_matches("crytera/").to_string();
    let (s, again) = alice.submit(&name).await;
    assert_eq!(s, 201, "{again}");
    let again_id = id_of(&again);
    bob.post(&format!("/api/v1/requests/{again_id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(again_id).await["summary"]["status"], "applied");
    let row = bob.repository(&full).await;
    assert_eq!(
        (row["managed"].as_bool(), row["production_access"].as_bool(), row["image_count"].as_u64()),
        (Some(true), Some(false), Some(0))
    );
}
