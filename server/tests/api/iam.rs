//! The IAM policies in docs/aws-setup.md (the files in docs/iam/) hold exactly
//! the AWS actions the portal calls. moto does not enforce IAM for ECR, so the
//! portal runs behind the counting proxy through every kind of change, a drift
//! check and a restore, and the operations it called are compared with the
//! documents, both ways.
use super::helpers::*;
use super::proxy;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn document(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/iam").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every action an Allow statement of the document lists.
fn allowed(doc: &Value) -> BTreeSet<String> {
    doc["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(list) => list.iter().filter_map(|a| a.as_str().map(str::to_string)).collect(),
            _ => vec![],
        })
        .collect()
}

async fn approve_and_settle(admin: &User, id: i64) {
    let (s, d) = admin.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(admin.wait_settled(id).await["summary"]["status"], "applied");
}

async fn filed(u: &User, body: Value) -> i64 {
    let (s, d) = u.post("/api/v1/requests", body).await;
    assert_eq!(s, 201, "{d}");
    id_of(&d)
}

#[tokio::test]
async fn the_documented_policies_hold_exactly_the_actions_the_portal_calls() {
    let (url, counts) = proxy::start(&moto_endpoint()).await;
    let app = spawn_app_with(move |c| c.aws.local_endpoint = url).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let carol = app.sign_in("carol", "admin").await;

    // Create, with tags, a lifecycle and production access.
    let settings = json!({"keep_last_images": 5, "tags": {"service": "web"}, "grant_production": true});
    let full = managed_repo_with(&alice, &bob, "iam", settings).await;
    // A settings change: mutability, scanning, a tag replaced by another, the lifecycle removed.
    let update = json!({"kind": "update_repository", "repository": full, "justification": "iam",
        "tag_mutability": "MUTABLE", "scan_on_push": false, "tags": {"tier": "web"}, "lifecycle_rules": []});
    approve_and_settle(&bob, filed(&alice, update).await).await;
    // A promotion (reads the image, writes the tag) and a scan.
    let digest = push_image(&app, &full, "build-1", 7).await;
    let promote =
        json!({"kind": "promote_image", "repository": full, "digest": digest, "tag": "v1.0.0", "justification": "iam"});
    approve_and_settle(&bob, filed(&alice, promote).await).await;
    let (s, d) = bob.post("/api/v1/images/scan", json!({"repository": full, "digest": digest})).await;
    assert_eq!(s, 202, "{d}");
    let (s, _) = alice.get(&format!("/api/v1/images?repository={full}")).await;
    assert_eq!(s, 200);
    // Revoke (the portal's statement was the only one: the policy is deleted).
    let revoke = json!({"kind": "revoke_production", "repository": full, "justification": "iam"});
    let revoke_id = filed(&alice, revoke).await;
    approve_and_settle(&bob, revoke_id).await;
    // A hand edit, a drift check, a restore.
    app.ecr()
        .await
        .put_image_tag_mutability()
        .repository_name(&full)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable)
        .send()
        .await
        .expect("hand edit");
    let (s, d) = bob.post("/api/v1/repositories/check", json!({"name": full})).await;
    assert_eq!(s, 200, "{d}");
    let (s, restore) = bob.post("/api/v1/repositories/restore", json!({"name": full})).await;
    assert_eq!(s, 201, "{restore}");
    approve_and_settle(&carol, id_of(&restore)).await;
    // And the deletion.
    let delete = json!({"kind": "delete_repository", "repository": full, "justification": "iam"});
    approve_and_settle(&bob, filed(&alice, delete).await).await;

    let sts = ["AssumeRole", "GetCallerIdentity"];
    let called: BTreeSet<String> = counts
        .all()
        .keys()
        .map(|op| if sts.contains(&op.as_str()) { format!("sts:{op}") } else { format!("ecr:{op}") })
        .collect();
    let apply = allowed(&document("staging-apply-permissions.json"));
    let discover = allowed(&document("production-discover-permissions.json"));
    let trust = allowed(&document("staging-apply-trust.json"));
    // Called but not documented (AssumeRole is the trust policy's).
    let missing: Vec<&String> =
        called.iter().filter(|a| *a != "sts:AssumeRole" && !apply.contains(*a) && !discover.contains(*a)).collect();
    assert!(missing.is_empty(), "the portal called {missing:?}, which docs/iam does not allow; called: {called:?}");
    // Documented but never called.
    let unused: Vec<&String> = apply.iter().filter(|a| !called.contains(*a)).collect();
    assert!(unused.is_empty(), "docs/iam allows {unused:?}, which the portal never called; called: {called:?}");
    assert_eq!(discover, BTreeSet::from(["sts:GetCallerIdentity".to_string()]));
    // What AssumeRole was given needs the trust policy's matching actions.
    let assumed = counts.assume_roles();
    assert!(!assumed.is_empty());
    assert!(trust.contains("sts:AssumeRole"));
    if assumed.iter().any(|a| a.contains_key("SourceIdentity")) {
        assert!(trust.contains("sts:SetSourceIdentity"), "the portal sets a source identity: {trust:?}");
    }
    if assumed.iter().any(|a| a.keys().any(|k| k.starts_with("Tags."))) {
        assert!(trust.contains("sts:TagSession"), "the portal tags its sessions: {trust:?}");
    }
    // The documents in docs/aws-setup.md are these files.
    let guide = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/aws-setup.md"))
        .expect("aws-setup.md");
    for a in &apply {
        assert!(guide.contains(&format!("\"{a}\"")), "docs/aws-setup.md does not show {a}");
    }
}
