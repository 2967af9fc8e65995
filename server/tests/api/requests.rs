//! Requests through the JSON API: the whole chain to AWS, and every bad input.
use super::helpers::*;
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability, Tag};
use serde_json::{json, Value};

fn actions(detail: &Value) -> Vec<String> {
    detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn an_approved_request_creates_the_repository_with_its_settings_in_aws() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let name = unique("templateistio");
    let (status, created) = alice
        .post(
            "/api/v1/requests",
            json!({
                "name": name, "tag_mutability": "MUTABLE", "scan_on_push": false,
                "keep_last_images": 10, "expire_untagged_after_days": 7,
                "team": "mesh", "cost_center": "cc-7", "justification": "Istio templates",
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = id_of(&created);
    assert_eq!(created["summary"]["status"], "pending");
    let plan: Vec<&str> =
        created["plan"]["steps"].as_array().expect("plan").iter().map(|s| s["call"].as_str().unwrap_or("")).collect();
    assert_eq!(plan, ["sts:AssumeRole", "ecr:CreateRepository", "ecr:PutLifecyclePolicy", "ecr:DescribeRepositories"]);

    let (status, approved) = bob.post(&format!("/api/v1/requests/{id}/approve"), json!({"comment": "ok"})).await;
    assert_eq!(status, 200, "{approved}");
    let done = bob.wait_settled(id).await;
    assert_eq!(done["summary"]["status"], "applied", "{done}");
    assert_eq!(done["result"]["adopted"], false);
    let full = format!("crytera/{name}");
    assert_eq!(done["result"]["repository_uri"], format!("{}.dkr.ecr.us-east-1.amazonaws.com/{full}", app.account));
    assert_eq!(actions(&done), ["request_submitted", "request_approved", "apply_started", "apply_succeeded"]);
    let succeeded = &done["timeline"][3];
    assert!(succeeded["aws_request_ids"].as_array().is_some_and(|ids| ids.len() >= 3), "{succeeded}");
    assert_eq!(succeeded["actor"], "system:worker");

    // Independently, in moto: the repository exists in the staging account with the requested settings.
    let ecr = app.ecr().await;
    let repo = ecr.describe_repositories().repository_names(&full).send().await.expect("describe");
    let repo = &repo.repositories()[0];
    assert_eq!(repo.image_tag_mutability(), Some(&ImageTagMutability::Mutable));
    assert_eq!(repo.image_scanning_configuration().map(|s| s.scan_on_push()), Some(false));
    assert_eq!(repo.registry_id(), Some(app.account.as_str()));
    let tags = ecr
        .list_tags_for_resource()
        .resource_arn(repo.repository_arn().unwrap_or_default())
        .send()
        .await
        .expect("tags");
    let mut tags: Vec<(String, String)> =
        tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("cost-center".into(), "cc-7".into()),
            ("ecr-portal:request".into(), app.marker(id, &full)),
            ("team".into(), "mesh".into())
        ]
    );
    let lp = ecr.get_lifecycle_policy().repository_name(&full).send().await.expect("lifecycle");
    let lp: Value = serde_json::from_str(lp.lifecycle_policy_text().unwrap_or("{}")).expect("json");
    assert_eq!(lp["rules"][0]["selection"]["tagStatus"], "untagged");
    assert_eq!(lp["rules"][0]["selection"]["countNumber"], 7);
    assert_eq!(lp["rules"][1]["selection"]["countNumber"], 10);

    // And the repositories page lists it, linked to the request.
    let listed = alice.repository(&full).await;
    assert_eq!(listed["request_id"], id);
}

#[tokio::test]
async fn bad_names_are_refused_with_a_reason_and_nothing_is_stored() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    for bad in ["Bad", "../escape", "a//b", "-x", "", "a..b"] {
        let (status, body) = alice.submit(bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["fields"][0]["field"], "name", "{bad}");
    }
    let (status, body) = alice.submit(&"a".repeat(250)).await;
    assert_eq!(status, 422);
    assert!(body["error"]["fields"][0]["message"].as_str().unwrap_or("").contains("256"), "{body}");
    let (_, list) = alice.get("/api/v1/requests").await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn a_missing_justification_is_refused() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let mut body = request_body(&unique("nojust"));
    body["justification"] = json!("   ");
    let (status, resp) = alice.post("/api/v1/requests", body).await;
    assert_eq!(status, 422);
    assert_eq!(resp["error"]["fields"][0]["field"], "justification");
    assert_eq!(alice.get("/api/v1/requests").await.1, json!([]));
}

#[tokio::test]
async fn a_second_open_request_for_the_same_name_is_refused() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let carol = app.sign_in("carol", "requester").await;
    let name = unique("dup");
    assert_eq!(alice.submit(&name).await.0, 201);
    let (status, body) = carol.submit(&format!("crytera/{name}")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("open request"));
    assert_eq!(alice.get("/api/v1/requests").await.1.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_name_that_already_exists_in_ecr_is_refused() {
    let app = spawn_app().await;
    let name = unique("exists");
    app.ecr().await.create_repository().repository_name(format!("crytera/{name}")).send().await.expect("create");
    let alice = app.sign_in("alice", "requester").await;
    let (status, body) = alice.submit(&name).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("already exists in ECR"));
}

#[tokio::test]
async fn unknown_request_ids_are_not_found() {
    let app = spawn_app().await;
    let bob = app.sign_in("bob", "admin").await;
    for path in ["/api/v1/requests/999", "/api/v1/requests/abc"] {
        let (status, body) = bob.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    assert_eq!(bob.post("/api/v1/requests/999/approve", json!({})).await.0, 404);
    assert_eq!(bob.post("/api/v1/requests/999/reject", json!({})).await.0, 404);
    assert_eq!(bob.get("/api/v1/nothing-here").await.0, 404);
}

#[tokio::test]
async fn approving_own_request_is_forbidden_even_for_an_admin() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "admin").await;
    let id = id_of(&alice.submit(&unique("own")).await.1);
    let (status, body) = alice.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("your own request"));
    let (_, d) = alice.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(d["summary"]["status"], "pending");
    assert_eq!(actions(&d), ["request_submitted"]);
    assert!(d["approve_blocked"].as_str().unwrap_or("").contains("own request"));
}

#[tokio::test]
async fn requesters_cannot_approve_or_reject() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let carol = app.sign_in("carol", "requester").await;
    let id = id_of(&alice.submit(&unique("nope")).await.1);
    assert_eq!(carol.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 403);
    assert_eq!(carol.post(&format!("/api/v1/requests/{id}/reject"), json!({})).await.0, 403);
    assert_eq!(alice.get(&format!("/api/v1/requests/{id}")).await.1["summary"]["status"], "pending");
}

#[tokio::test]
async fn approving_twice_is_a_conflict_and_applies_once() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let dave = app.sign_in("dave", "admin").await;
    let id = id_of(&alice.submit(&unique("twice")).await.1);
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    let (status, body) = dave.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "applied");
    assert_eq!(d["decided_by"], "local:bob");
    let approvals = actions(&d).iter().filter(|a| *a == "request_approved").count();
    assert_eq!(approvals, 1);
}

#[tokio::test]
async fn a_rejected_request_keeps_the_comment_and_cannot_be_approved() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let id = id_of(&alice.submit(&unique("rej")).await.1);
    let (status, d) =
        bob.post(&format!("/api/v1/requests/{id}/reject"), json!({"comment": "use the shared repository"})).await;
    assert_eq!(status, 200);
    assert_eq!(d["summary"]["status"], "rejected");
    assert_eq!(d["decision_comment"], "use the shared repository");
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 409);
    // A rejected request no longer blocks the name.
    assert_eq!(alice.get("/api/v1/requests?status=rejected").await.1.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_repository_that_appeared_with_the_same_settings_is_adopted() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let name = unique("adopt");
    let id = id_of(&alice.submit(&name).await.1);
    // Someone creates it by hand, with exactly the requested settings, before approval.
    app.ecr()
        .await
        .create_repository()
        .repository_name(format!("crytera/{name}"))
        .image_tag_mutability(ImageTagMutability::Immutable)
        .image_scanning_configuration(ImageScanningConfiguration::builder().scan_on_push(true).build())
        .tags(Tag::builder().key("team").value("platform").build().expect("tag"))
        .tags(Tag::builder().key("cost-center").value("cc-1234").build().expect("tag"))
        .send()
        .await
        .expect("create by hand");
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "applied", "{d}");
    assert_eq!(d["result"]["adopted"], true);
}

/// Someone makes the repository between submission and approval, with the
/// requested settings, a forged marker tag and a policy that lets their own
/// account push: the apply must not take it over and add production's grant.
#[tokio::test]
async fn a_repository_made_with_a_foreign_policy_before_approval_is_sent_back_not_taken_over() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let name = unique("takeover");
    let full = format!("crytera/{name}");
    let mut body = request_body(&name);
    body["grant_production"] = json!(true);
    let (status, created) = alice.post("/api/v1/requests", body).await;
    assert_eq!(status, 201, "{created}");
    let id = id_of(&created);
    // Before approval, someone makes it, with a forged marker and a policy that lets them push.
    let ecr = app.ecr().await;
    ecr.create_repository()
        .repository_name(&full)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .image_scanning_configuration(ImageScanningConfiguration::builder().scan_on_push(true).build())
        .tags(Tag::builder().key("team").value("platform").build().expect("tag"))
        .tags(Tag::builder().key("cost-center").value("cc-1234").build().expect("tag"))
        .tags(Tag::builder().key("ecr-portal:request").value(id.to_string()).build().expect("tag"))
        .send()
        .await
        .expect("create by hand");
    let foreign = json!({"Version": "2012-10-17", "Statement": [{"Sid": "outsider-push", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
        "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"]}]});
    ecr.set_repository_policy().repository_name(&full).policy_text(foreign.to_string()).send().await.expect("policy");
    // The approver approves the plan they were shown: a new repository, no policy but production's.
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "needs_reapproval", "{d}");
    let reason = d["failure"].as_str().unwrap_or("");
    assert!(reason.contains("999999999999") && reason.contains("created outside this request"), "{reason}");
    // Nothing was written: the policy is still only the outsider's.
    let live = ecr.get_repository_policy().repository_name(&full).send().await.expect("policy");
    let live: Value = serde_json::from_str(live.policy_text().unwrap_or("{}")).expect("json");
    assert_eq!(live["Statement"].as_array().map(Vec::len), Some(1), "{live}");
    assert_eq!(live["Statement"][0]["Sid"], "outsider-push");
    // The new plan shows the repository as existing, with the outsider's statement.
    let plan = &d["plan"];
    assert!(plan["steps"].to_string().contains("already exists"), "{plan}");
    assert!(plan["policy"]["before"].as_str().unwrap_or("").contains("999999999999"), "{plan}");
    // Approved again, having seen it: adopted, the grant added, the outsider's statement kept as it is.
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "applied", "{d}");
    assert_eq!(d["result"]["adopted"], true);
    let live = ecr.get_repository_policy().repository_name(&full).send().await.expect("policy");
    let live: Value = serde_json::from_str(live.policy_text().unwrap_or("{}")).expect("json");
    assert_eq!(live["Statement"].as_array().map(Vec::len), Some(2), "{live}");
}

#[tokio::test]
async fn a_repository_with_different_settings_fails_clearly_and_an_admin_can_retry() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let name = unique("clash");
    let full = format!("crytera/{name}");
    let id = id_of(&alice.submit(&name).await.1);
    let ecr = app.ecr().await;
    ecr.create_repository()
        .repository_name(&full)
        .image_tag_mutability(ImageTagMutability::Mutable)
        .send()
        .await
        .expect("create");
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "failed");
    let reason = d["failure"].as_str().unwrap_or("");
    assert!(reason.contains("different settings") && reason.contains("MUTABLE"), "{reason}");
    // Nothing was changed in AWS.
    let live = ecr.describe_repositories().repository_names(&full).send().await.expect("describe");
    assert_eq!(live.repositories()[0].image_tag_mutability(), Some(&ImageTagMutability::Mutable));
    // Requesters cannot retry; admins can, once the cause is gone.
    assert_eq!(alice.post(&format!("/api/v1/requests/{id}/retry"), json!({})).await.0, 403);
    ecr.delete_repository().repository_name(&full).send().await.expect("delete");
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/retry"), json!({})).await.0, 200);
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "applied", "{d}");
    assert_eq!(d["attempts"], 2);
    assert_eq!(
        actions(&d),
        [
            "request_submitted",
            "request_approved",
            "apply_started",
            "apply_failed",
            "apply_retried",
            "apply_started",
            "apply_succeeded"
        ]
    );
}

#[tokio::test]
async fn malformed_bodies_and_anonymous_calls_get_json_errors() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    let (status, body) = anon.get("/api/v1/requests").await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")));
    let alice = app.sign_in("alice", "requester").await;
    let r = alice
        .http
        .post(format!("{}/api/v1/requests", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let (status, body) = alice
        .post(
            "/api/v1/requests",
            json!({"name": "x", "team": "t", "cost_center": "c", "justification": "j", "colour": "red"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(alice.get("/api/v1/requests?status=bogus").await.0, 400);
    let big = "x".repeat(100 * 1024);
    let r = alice
        .http
        .post(format!("{}/api/v1/requests", app.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn cross_site_posts_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    for (header, value) in [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")] {
        let r = alice
            .http
            .post(format!("{}/api/v1/requests", app.base))
            .header(header, value)
            .json(&request_body(&unique("csrf")))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 403, "{header}");
    }
    assert_eq!(alice.get("/api/v1/requests").await.1, json!([]));
}

#[tokio::test]
async fn the_audit_history_filters_and_pages() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let names: Vec<String> = (0..3).map(|i| unique(&format!("audit{i}"))).collect();
    for n in &names {
        let id = id_of(&alice.submit(n).await.1);
        bob.post(&format!("/api/v1/requests/{id}/reject"), json!({})).await;
    }
    // 2 sign-ins + 3 submissions + 3 rejections.
    let (_, all) = bob.get("/api/v1/audit").await;
    assert_eq!(all["events"].as_array().map(Vec::len), Some(8));
    let (_, by_actor) = bob.get("/api/v1/audit?actor=local:bob&action=request_rejected").await;
    assert_eq!(by_actor["events"].as_array().map(Vec::len), Some(3));
    let (_, by_repo) = bob.get(&format!("/api/v1/audit?repository={}", names[1])).await;
    let acts: Vec<&str> =
        by_repo["events"].as_array().expect("events").iter().map(|e| e["action"].as_str().unwrap_or("")).collect();
    assert_eq!(acts, ["request_rejected", "request_submitted"]);

    // Keyset pages of 3, newest first, with cursors both ways.
    let (_, p1) = bob.get("/api/v1/audit?limit=3").await;
    assert_eq!(p1["newer"], Value::Null);
    let older = p1["older"].as_i64().expect("older cursor");
    let (_, p2) = bob.get(&format!("/api/v1/audit?limit=3&before={older}")).await;
    let (_, p3) = bob.get(&format!("/api/v1/audit?limit=3&before={}", p2["older"].as_i64().expect("cursor"))).await;
    assert_eq!(p3["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(p3["older"], Value::Null);
    let (_, back) = bob.get(&format!("/api/v1/audit?limit=3&after={}", p2["newer"].as_i64().expect("newer"))).await;
    assert_eq!(back["events"], p1["events"]);

    let today = time::OffsetDateTime::now_utc().date();
    let (_, dated) = bob.get(&format!("/api/v1/audit?from={today}&to={today}")).await;
    assert_eq!(dated["events"].as_array().map(Vec::len), Some(8));
    let (_, none) = bob.get("/api/v1/audit?to=2001-01-01").await;
    assert_eq!(none["events"], json!([]));
    let (status, bad) = bob.get("/api/v1/audit?from=yesterday").await;
    assert_eq!(status, 422);
    assert_eq!(bad["error"]["fields"][0]["field"], "from");
}

#[tokio::test]
async fn the_requests_list_comes_in_pages_newest_first() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let mut ids = vec![];
    for _ in 0..3 {
        ids.push(alice.submit(&unique("page")).await.1["summary"]["id"].as_i64().expect("id"));
    }
    let page =
        |v: &serde_json::Value| v.as_array().expect("list").iter().filter_map(|r| r["id"].as_i64()).collect::<Vec<_>>();
    let (_, first) = alice.get("/api/v1/requests?limit=2").await;
    assert_eq!(page(&first), [ids[2], ids[1]]);
    let (_, second) = alice.get(&format!("/api/v1/requests?limit=2&before={}", ids[1])).await;
    assert_eq!(page(&second), [ids[0]]);
    let (_, all) = alice.get("/api/v1/requests").await;
    assert_eq!(page(&all).len(), 3, "the default page holds 50");
}

#[tokio::test]
async fn the_requests_list_is_searched_by_repository_requester_and_kind() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let otto = app.sign_in("otto", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let tag = unique("srch");
    let (_, a) = alice.submit(&format!("{tag}-mesh")).await;
    let (_, o) = otto.submit(&format!("{tag}-fargate")).await;
    let ids = |v: &Value| -> Vec<i64> { v.as_array().expect("list").iter().filter_map(|r| r["id"].as_i64()).collect() };
    let a_id = id_of(&a);
    let o_id = id_of(&o);
    // Part of the name, any case; `_` and `%` are plain characters.
    let (_, found) = bob.get(&format!("/api/v1/requests?repository={}-MESH", tag.to_uppercase())).await;
    assert_eq!(ids(&found), [a_id]);
    let (_, found) = bob.get(&format!("/api/v1/requests?repository={tag}")).await;
    assert_eq!(ids(&found), [o_id, a_id]);
    assert_eq!(bob.get("/api/v1/requests?repository=%25").await.1, json!([]));
    // By requester, and by kind.
    let (_, found) = bob.get(&format!("/api/v1/requests?repository={tag}&requester=local:otto")).await;
    assert_eq!(ids(&found), [o_id]);
    let (_, found) = bob.get(&format!("/api/v1/requests?repository={tag}&kind=grant_production")).await;
    assert_eq!(found, json!([]));
    let (_, found) = bob.get(&format!("/api/v1/requests?repository={tag}&kind=create_repository&status=pending")).await;
    assert_eq!(ids(&found), [o_id, a_id]);
    let (s, b) = bob.get("/api/v1/requests?kind=delete_everything").await;
    assert_eq!((s, b["error"]["fields"][0]["field"].as_str()), (422, Some("kind")), "{b}");
    // A requester searching for someone else's requests finds none of them.
    assert_eq!(alice.get(&format!("/api/v1/requests?repository={tag}&requester=local:otto")).await.1, json!([]));
    assert_eq!(ids(&alice.get(&format!("/api/v1/requests?repository={tag}")).await.1), [a_id]);
    // The page's search is a plain GET form, and the results are in the page.
    let html = bob.http.get(format!("{}/?repository={tag}-mesh", app.base)).send().await.expect("page");
    let html = html.text().await.expect("html");
    assert!(
        html.contains(r#"role="search""#) && html.contains(&format!("{tag}-mesh")),
        "the search form and its result"
    );
}

#[tokio::test]
async fn people_who_can_see_a_request_comment_on_it_and_comments_render_as_text() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let otto = app.sign_in("otto", "requester").await;
    let aude = app.sign_in("aude", "auditor").await;
    let id = id_of(&alice.submit(&unique("talk")).await.1);
    let path = format!("/api/v1/requests/{id}/comments");
    let (s, d) = bob.post(&path, json!({"body": "Why MUTABLE? <script>window.__pwned=1</script>"})).await;
    assert_eq!(s, 201, "{d}");
    let (s, _) = alice.post(&path, json!({"body": "CI retags latest\non every build."})).await;
    assert_eq!(s, 201);
    assert_eq!(otto.post(&path, json!({"body": "hi"})).await.0, 403, "not his to see");
    assert_eq!(aude.post(&path, json!({"body": "hi"})).await.0, 403, "auditors change nothing");
    assert_eq!(bob.post(&path, json!({"body": "   "})).await.0, 422);
    assert_eq!(bob.post(&path, json!({"body": "ok\u{202E}"})).await.0, 422);
    assert_eq!(bob.post("/api/v1/requests/999999/comments", json!({"body": "x"})).await.0, 404);
    let (_, d) = alice.get(&format!("/api/v1/requests/{id}")).await;
    let comments: Vec<(String, String)> = d["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["action"] == "comment_added")
        .map(|e| (e["actor"].as_str().unwrap_or("").to_string(), e["detail"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        comments,
        [
            ("local:bob".to_string(), "Why MUTABLE? <script>window.__pwned=1</script>".to_string()),
            ("local:alice".to_string(), "CI retags latest\non every build.".to_string())
        ]
    );
    // The page shows it as text, and its comment form is a plain form.
    let html =
        alice.http.get(format!("{}/requests/{id}", app.base)).send().await.expect("page").text().await.expect("html");
    assert!(html.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;") && !html.contains("<script>window.__pwned"));
    assert!(html.contains(&format!(r#"action="/requests/{id}/comments""#)));
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie = app.session_cookie("alice", "requester").await;
    let r = no_redirects
        .post(format!("{}/requests/{id}/comments", app.base))
        .header("cookie", &cookie)
        .form(&[("body", "From the form.")])
        .send()
        .await
        .expect("post");
    assert_eq!((r.status().as_u16(), location(&r)), (303, format!("/requests/{id}#timeline")));
    let r = no_redirects
        .post(format!("{}/requests/{id}/comments", app.base))
        .header("cookie", &cookie)
        .form(&[("body", "")])
        .send()
        .await
        .expect("post");
    assert_eq!(location(&r), format!("/requests/{id}?comment_error=invalid#comment"));
}

#[tokio::test]
async fn only_the_requester_withdraws_a_request_and_only_while_it_waits() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let name = unique("takeback");
    let id = id_of(&alice.submit(&name).await.1);
    let (_, d) = alice.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(
        (d["can_withdraw"].as_bool(), bob.get(&format!("/api/v1/requests/{id}")).await.1["can_withdraw"].as_bool()),
        (Some(true), Some(false))
    );
    let (s, b) = bob.post(&format!("/api/v1/requests/{id}/withdraw"), json!({})).await;
    assert_eq!(s, 403, "an admin rejects instead: {b}");
    let (s, d) = alice.post(&format!("/api/v1/requests/{id}/withdraw"), json!({})).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["summary"]["status"], "withdrawn");
    assert_eq!(actions(&d), ["request_submitted", "request_withdrawn"]);
    assert_eq!(alice.post(&format!("/api/v1/requests/{id}/withdraw"), json!({})).await.0, 409, "once");
    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 409, "nothing left to decide");
    // The name is free again, and the list filters by the new status.
    assert_eq!(alice.submit(&name).await.0, 201);
    let (_, listed) = alice.get("/api/v1/requests?status=withdrawn").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    // An approved request cannot be withdrawn.
    let other = id_of(&alice.submit(&unique("late")).await.1);
    assert_eq!(bob.post(&format!("/api/v1/requests/{other}/approve"), json!({})).await.0, 200);
    assert_eq!(alice.post(&format!("/api/v1/requests/{other}/withdraw"), json!({})).await.0, 409);
    // The page offers a plain form to the requester only.
    let html = alice
        .http
        .get(format!("{}/requests/{}", app.base, id + 1))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains(&format!(r#"action="/requests/{}/withdraw""#, id + 1)), "the requester's form");
    let html = bob
        .http
        .get(format!("{}/requests/{}", app.base, id + 1))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(!html.contains("/withdraw"));
}
