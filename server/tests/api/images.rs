//! Images and promotion against moto: list a repository's images, promote a
//! digest to a release tag (checked with the SDK), refuse what cannot be
//! promoted, list the releases, and report a release tag deleted outside.
use crate::helpers::*;
use serde_json::{json, Value};

fn promote(full: &str, digest: &str, tag: &str) -> Value {
    json!({"kind": "promote_image", "repository": full, "digest": digest, "tag": tag, "justification": "passed the staging tests"})
}

#[tokio::test]
async fn a_tested_image_is_promoted_to_a_release_tag_with_approval() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo(&alice, &bob, "images").await;
    let first = push_image(&app, &full, "build-1", 1).await;
    let second = push_image(&app, &full, "build-2", 2).await;
    assert_ne!(first, second);

    // The images, newest first, with tags and digests; nothing scanned yet.
    let (s, page) = alice.get(&format!("/api/v1/images?repository={full}")).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["total"], 2);
    assert_eq!(
        (page["images"][0]["digest"].as_str(), page["images"][1]["digest"].as_str()),
        (Some(second.as_str()), Some(first.as_str()))
    );
    assert_eq!(page["images"][1]["tags"], json!(["build-1"]));
    assert_eq!(page["images"][1]["scan"], "not scanned");
    let (_, one) = alice.get(&format!("/api/v1/images?repository={full}&limit=1&offset=1")).await;
    assert_eq!((one["images"].as_array().map(Vec::len), one["next_offset"].clone()), (Some(1), Value::Null));

    // Refused at submission, each with its field.
    let field = |v: &Value| v["error"]["fields"][0]["field"].as_str().unwrap_or("").to_string();
    let unknown = format!("sha256:{}", "0".repeat(64));
    let (s, e) = alice.post("/api/v1/requests", promote(&full, &unknown, "v1.0.0")).await;
    assert_eq!((s, field(&e)), (422, "digest".to_string()), "{e}");
    let (s, e) = alice.post("/api/v1/requests", promote(&full, &first, "latest")).await;
    assert!(s == 422 && e.to_string().contains("release tags match v*"), "{e}");
    let (s, e) = alice.post("/api/v1/requests", promote(&full, "sha256:nope", "v1.0.0")).await;
    assert_eq!((s, field(&e)), (422, "digest".to_string()), "{e}");

    // The request: the plan names the digest, its tags, the scan and production's access.
    let (s, d) = alice.post("/api/v1/requests", promote(&full, &first, "v1.0.0")).await;
    assert_eq!(s, 201, "{d}");
    let id = id_of(&d);
    let calls: Vec<&str> =
        d["plan"]["steps"].as_array().expect("steps").iter().filter_map(|s| s["call"].as_str()).collect();
    assert_eq!(calls[calls.len() - 3..], ["ecr:BatchGetImage", "ecr:PutImage", "ecr:DescribeImages"]);
    let put = plan_step(&d, "ecr:PutImage");
    assert!(put["summary"].as_str().unwrap_or("").contains("tagged build-1"), "{put}");
    let warning = d["plan"]["warning"].as_str().unwrap_or("");
    assert!(warning.contains("never scanned") && warning.contains("Production cannot pull"), "{warning}");
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    let done = bob.wait_settled(id).await;
    assert_eq!(done["summary"]["status"], "applied", "{done}");

    // In moto: the digest now carries both tags.
    let ecr = app.ecr().await;
    let by_tag = ecr
        .describe_images()
        .repository_name(&full)
        .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag("v1.0.0").build())
        .send()
        .await
        .expect("describe");
    let image = &by_tag.image_details()[0];
    assert_eq!(image.image_digest(), Some(first.as_str()));
    let mut tags = image.image_tags().to_vec();
    tags.sort();
    assert_eq!(tags, ["build-1", "v1.0.0"]);

    // The release is listed, with who asked, who approved and the pull commands; and audited with the digest.
    let (_, releases) = alice.get(&format!("/api/v1/releases?repository={full}")).await;
    let r = &releases[0];
    assert_eq!((r["tag"].as_str(), r["digest"].as_str()), (Some("v1.0.0"), Some(first.as_str())), "{releases}");
    assert_eq!((r["requested_by"].as_str(), r["approved_by"].as_str()), (Some("local:alice"), Some("local:bob")));
    assert!(r["pull_by_digest"].as_str().unwrap_or("").ends_with(&format!("/{full}@{first}")), "{r}");
    let applied = done["timeline"].as_array().and_then(|t| t.last()).cloned().expect("event");
    assert!(applied["detail"].as_str().unwrap_or("").contains(&first), "{applied}");

    // The tag is taken now (tags are immutable here): another image cannot have it, even with move.
    let mut taken = promote(&full, &second, "v1.0.0");
    taken["move"] = json!(true);
    let (s, e) = alice.post("/api/v1/requests", taken).await;
    assert!(s == 422 && e.to_string().contains("immutable"), "{e}");

    // The release tag deleted outside the portal is drift.
    ecr.batch_delete_image()
        .repository_name(&full)
        .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag("v1.0.0").build())
        .send()
        .await
        .expect("untag");
    let (_, check) = bob.post("/api/v1/repositories/check", json!({"name": full})).await;
    assert_eq!(check["drifted"], 1, "{check}");
    let row = bob.repository(&full).await;
    assert!(row["drift"].to_string().contains("release tag v1.0.0 was deleted"), "{row}");
}

#[tokio::test]
async fn a_mutable_repository_moves_a_release_tag_only_when_asked_and_scans_are_for_admins() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo_with(&alice, &bob, "moving", json!({"tag_mutability": "MUTABLE"})).await;
    let old = push_image(&app, &full, "v2.0.0", 3).await;
    let new = push_image(&app, &full, "build-4", 4).await;
    let (s, e) = alice.post("/api/v1/requests", promote(&full, &new, "v2.0.0")).await;
    assert!(s == 422 && e["error"]["fields"][0]["message"].as_str().unwrap_or("").contains("\"move\": true"), "{e}");
    let mut moving = promote(&full, &new, "v2.0.0");
    moving["move"] = json!(true);
    let (s, d) = alice.post("/api/v1/requests", moving).await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["kind"]["moves_from"], json!(old));
    let id = id_of(&d);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let ecr = app.ecr().await;
    let by_tag = ecr
        .describe_images()
        .repository_name(&full)
        .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag("v2.0.0").build())
        .send()
        .await
        .expect("describe");
    assert_eq!(by_tag.image_details()[0].image_digest(), Some(new.as_str()));

    // Scans: admins start them (audited); requesters cannot.
    let scan = json!({"repository": full, "digest": new});
    assert_eq!(alice.post("/api/v1/images/scan", scan.clone()).await.0, 403);
    let (s, b) = bob.post("/api/v1/images/scan", scan).await;
    assert_eq!(s, 202, "{b}");
    let (_, audit) = bob.get("/api/v1/audit?action=image_scan_started").await;
    assert_eq!(audit["events"][0]["detail"], json!(new), "{audit}");
}

#[tokio::test]
async fn the_images_page_promotes_with_a_plain_form_and_refusals_say_why() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo(&alice, &bob, "imgpage").await;
    let digest = push_image(&app, &full, "build-9", 9).await;
    let cookie = app.session_cookie("alice", "requester").await;
    let page = browser()
        .get(format!("{}/repositories/images?name={full}", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains(&digest) && html.contains("action=\"/repositories/promote\""), "{html}");
    assert!(html.contains("data-testid=\"not-pullable\""), "production cannot pull yet: {html}");
    assert!(!html.contains("action=\"/repositories/scan\""), "requesters do not scan");
    let form = |tag: &str| {
        vec![
            ("repository", full.clone()),
            ("digest", digest.clone()),
            ("tag", tag.to_string()),
            ("justification", "green in staging".to_string()),
        ]
    };
    let refused = post_form(&app, &cookie, "/repositories/promote", &form("nightly")).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.expect("html").contains("is not a release tag here"));
    let filed = post_form(&app, &cookie, "/repositories/promote", &form("v3.1.0")).await;
    assert_eq!(filed.status(), 303);
    let to = location(&filed);
    let (_, d) = alice.get(&format!("/api/v1{to}")).await;
    assert_eq!((d["kind"]["kind"].as_str(), d["kind"]["tag"].as_str()), (Some("promote_image"), Some("v3.1.0")), "{d}");
}

#[tokio::test]
async fn a_deleted_repositorys_releases_are_kept_but_not_listed_for_a_new_one_of_the_same_name() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo(&alice, &bob, "reborn").await;
    let digest = push_image(&app, &full, "build-5", 5).await;
    let (_, d) = alice.post("/api/v1/requests", promote(&full, &digest, "v5.0.0")).await;
    let id = id_of(&d);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let (_, del) = alice
        .post("/api/v1/requests", json!({"kind": "delete_repository", "repository": full, "justification": "retired"}))
        .await;
    let did = id_of(&del);
    bob.post(&format!("/api/v1/requests/{did}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(did).await["summary"]["status"], "applied");
    let (_, again) = alice.submit(full.trim_start_matches("crytera/")).await;
    let aid = id_of(&again);
    bob.post(&format!("/api/v1/requests/{aid}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(aid).await["summary"]["status"], "applied");
    let (_, releases) = alice.get(&format!("/api/v1/releases?repository={full}")).await;
    assert_eq!(releases, json!([]), "the new repository has no releases");
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM releases WHERE retired_by = ?")
        .bind(did)
        .fetch_one(&app.service.db.pool)
        .await
        .expect("count");
    assert_eq!(kept, 1, "the old release is kept as history");
}

#[tokio::test]
async fn scans_can_be_required_and_releases_are_protected_from_lifecycles() {
    let app = spawn_app_with(|c| {
        c.portal.promote_require_scan = true;
        c.portal.protected_tags = vec![];
    })
    .await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo(&alice, &bob, "scanned").await;
    let digest = push_image(&app, &full, "build-7", 7).await;
    let (s, e) = alice.post("/api/v1/requests", promote(&full, &digest, "v7.0.0")).await;
    assert!(s == 422 && e.to_string().contains("never scanned"), "{e}");
    assert_eq!(bob.post("/api/v1/images/scan", json!({"repository": full, "digest": digest})).await.0, 202);
    let (s, d) = alice.post("/api/v1/requests", promote(&full, &digest, "v7.0.0")).await;
    assert_eq!(s, 201, "scanned now: {d}");
    let put = plan_step(&d, "ecr:PutImage");
    assert!(put["summary"].as_str().unwrap_or("").contains("scan: COMPLETE"), "{put}");
    let id = id_of(&d);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    // A newer image, then a lifecycle that keeps one image: it would expire the release (no
    // pattern protects v7.0.0 here, the release itself does).
    push_image(&app, &full, "build-8", 8).await;
    let (s, e) = alice
        .post(
            "/api/v1/requests",
            json!({"kind": "update_repository", "repository": full, "justification": "tidy", "keep_last_images": 1}),
        )
        .await;
    assert!(s == 422 && e.to_string().contains("release tag v7.0.0"), "{e}");
}

#[tokio::test]
async fn a_promotion_the_current_lifecycle_would_expire_is_flagged_for_the_approver() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo_with(&alice, &bob, "expiring", json!({"keep_last_images": 1})).await;
    let old = push_image(&app, &full, "build-1", 1).await;
    push_image(&app, &full, "build-2", 2).await;
    let (s, d) = alice.post("/api/v1/requests", promote(&full, &old, "v1.0.0")).await;
    assert_eq!(s, 201, "{d}");
    let warning = d["plan"]["warning"].as_str().unwrap_or("");
    assert!(warning.contains("lifecycle would expire this image even as a release"), "{warning}");
    assert!(warning.contains("keep the newest 1"), "{warning}");
}
