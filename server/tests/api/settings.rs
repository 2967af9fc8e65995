//! Settings changes (`update_repository`): tag mutability with exclusions,
//! scanning, tags and lifecycle rules, with the plan's before → after and the
//! portal's lifecycle preview; all checked in moto with the SDK.
use crate::helpers::*;
use aws_sdk_ecr::types::ImageTagMutability;
use serde_json::{json, Value};

fn keep_newest(n: u32) -> Value {
    json!([{"rulePriority": 1, "description": "dev builds", "selection": {"tagStatus": "tagged", "tagPatternList": ["dev-*"],
        "countType": "imageCountMoreThan", "countNumber": n}, "action": {"type": "expire"}}])
}

#[tokio::test]
async fn a_settings_change_is_planned_previewed_applied_and_verified_in_ecr() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo(&alice, &bob, "settings").await;
    for (i, tag) in ["dev-1", "dev-2", "dev-3"].iter().enumerate() {
        push_image(&app, &full, tag, i as u8 + 1).await;
    }
    let (s, d) = alice
        .post(
            "/api/v1/requests",
            json!({"kind": "update_repository", "repository": full, "justification": "let CI move latest",
                "tag_mutability": "IMMUTABLE_WITH_EXCLUSION", "tag_mutability_exclusions": ["latest", "dev-*"],
                "scan_on_push": false, "tags": {"service": "checkout", "tier": "web"},
                "lifecycle_rules": keep_newest(1)}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let id = id_of(&d);
    assert_eq!(d["summary"]["kind"], "update_repository");
    // The plan: each setting before → after; encryption shown as fixed.
    let changes = d["plan"]["changes"].as_array().expect("changes").clone();
    let row = |name: &str| changes.iter().find(|c| c["setting"] == name).cloned().expect(name);
    assert_eq!(row("Image tags")["before"], "IMMUTABLE");
    assert_eq!(row("Image tags")["after"], "IMMUTABLE_WITH_EXCLUSION except dev-*, latest");
    assert_eq!(
        (row("Scan on push")["before"].as_str(), row("Scan on push")["after"].as_str()),
        (Some("true"), Some("false"))
    );
    assert!(row("Tags")["after"].as_str().unwrap_or("").contains("service=checkout"), "{changes:?}");
    assert_eq!(
        (row("Encryption")["fixed"].as_bool(), row("Encryption")["before"] == row("Encryption")["after"]),
        (Some(true), true)
    );
    let calls: Vec<&str> =
        d["plan"]["steps"].as_array().expect("steps").iter().filter_map(|s| s["call"].as_str()).collect();
    assert!(
        ["ecr:PutImageTagMutability", "ecr:PutImageScanningConfiguration", "ecr:PutLifecyclePolicy", "ecr:TagResource"]
            .iter()
            .all(|c| calls.contains(c)),
        "{calls:?}"
    );
    // The preview, from the images in moto: the two older dev builds expire, newest first.
    let preview = &d["plan"]["preview"];
    assert_eq!(preview["images"], 3, "{preview}");
    let expiring: Vec<Value> =
        preview["expiring"].as_array().expect("expiring").iter().map(|e| e["tags"].clone()).collect();
    assert_eq!(expiring, [json!(["dev-2"]), json!(["dev-1"])]);

    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    let done = bob.wait_settled(id).await;
    assert_eq!(done["summary"]["status"], "applied", "{done}");

    // In moto, read independently.
    let ecr = app.ecr().await;
    let repo = ecr.describe_repositories().repository_names(&full).send().await.expect("describe");
    let r = &repo.repositories()[0];
    assert_eq!(r.image_tag_mutability(), Some(&ImageTagMutability::ImmutableWithExclusion));
    let mut filters: Vec<&str> = r.image_tag_mutability_exclusion_filters().iter().map(|f| f.filter()).collect();
    filters.sort();
    assert_eq!(filters, ["dev-*", "latest"]);
    assert_eq!(r.image_scanning_configuration().map(|c| c.scan_on_push()), Some(false));
    let tags =
        ecr.list_tags_for_resource().resource_arn(r.repository_arn().unwrap_or_default()).send().await.expect("tags");
    let tag = |k: &str| tags.tags().iter().find(|t| t.key() == k).map(|t| t.value().to_string());
    assert_eq!(
        (tag("service").as_deref(), tag("tier").as_deref(), tag("team").as_deref()),
        (Some("checkout"), Some("web"), Some("platform"))
    );
    let lifecycle = ecr.get_lifecycle_policy().repository_name(&full).send().await.expect("lifecycle");
    let doc: Value = serde_json::from_str(lifecycle.lifecycle_policy_text().unwrap_or("{}")).expect("json");
    assert_eq!(doc["rules"][0]["selection"]["tagPatternList"], json!(["dev-*"]), "{doc}");

    // The approved state moved: no drift, and the next change starts from it (a tag removed).
    let (_, check) = bob.post("/api/v1/repositories/check", json!({"name": full})).await;
    assert_eq!(check["drifted"], 0, "{check}");
    let (s, d) = alice
        .post(
            "/api/v1/requests",
            json!({"kind": "update_repository", "repository": full, "justification": "tier is gone", "tags": {"service": "checkout"}}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let id = id_of(&d);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let tags =
        ecr.list_tags_for_resource().resource_arn(r.repository_arn().unwrap_or_default()).send().await.expect("tags");
    assert!(tags.tags().iter().all(|t| t.key() != "tier"), "{tags:?}");
    assert!(tags.tags().iter().any(|t| t.key() == "service"));
    let again = ecr.describe_repositories().repository_names(&full).send().await.expect("describe");
    assert_eq!(
        again.repositories()[0].image_tag_mutability(),
        Some(&ImageTagMutability::ImmutableWithExclusion),
        "kept"
    );
}

#[tokio::test]
async fn a_lifecycle_that_would_expire_a_release_is_refused_unless_the_request_says_so() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo(&alice, &bob, "protect").await;
    push_image(&app, &full, "v1.0.0", 1).await;
    push_image(&app, &full, "build-2", 2).await;
    let body = |extra: Value| {
        let mut b =
            json!({"kind": "update_repository", "repository": full, "justification": "tidy", "keep_last_images": 1});
        b.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
        b
    };
    let (s, e) = alice.post("/api/v1/requests", body(json!({}))).await;
    assert_eq!(s, 422, "{e}");
    let message = e["error"]["fields"][0]["message"].as_str().unwrap_or("").to_string();
    assert!(message.contains("1 protected image(s)") && message.contains("release tag v1.0.0"), "{message}");
    // Said explicitly: filed, and the approver sees the warning.
    let (s, d) = alice.post("/api/v1/requests", body(json!({"expire_protected": true}))).await;
    assert_eq!(s, 201, "{d}");
    assert!(d["plan"]["warning"].as_str().unwrap_or("").contains("1 protected image(s)"), "{d}");
    assert_eq!(d["plan"]["blocked"], Value::Null);
    assert_eq!(d["plan"]["preview"]["expiring"][0]["protected"], "release tag v1.0.0");
}

#[tokio::test]
async fn bad_settings_changes_get_clear_errors_and_store_nothing() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo(&alice, &bob, "badset").await;
    let ask = |extra: Value| {
        let mut b = json!({"kind": "update_repository", "repository": full, "justification": "x"});
        b.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
        alice.post("/api/v1/requests", b)
    };
    let field = |v: &Value| v["error"]["fields"][0]["field"].as_str().unwrap_or("").to_string();
    let (s, e) = ask(json!({"encryption": "KMS"})).await;
    assert_eq!((s, field(&e)), (422, "encryption".to_string()), "{e}");
    let (s, e) = ask(json!({"tags": {"ecr-portal:request": "1"}})).await;
    assert!(s == 422 && e.to_string().contains("reserved"), "{e}");
    let (s, e) = ask(json!({"tag_mutability": "MUTABLE_WITH_EXCLUSION"})).await;
    assert_eq!((s, field(&e)), (422, "tag_mutability_exclusions".to_string()), "{e}");
    let (s, e) = ask(json!({"tag_mutability_exclusions": ["latest"]})).await;
    assert!(s == 422 && e.to_string().contains("only apply"), "{e}");
    let (s, e) = ask(json!({"lifecycle_rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]})).await;
    assert!(s == 422 && e.to_string().contains("tagPrefixList or tagPatternList"), "{e}");
    let (s, e) = ask(json!({"scan_on_push": true})).await;
    assert!(s == 422 && e.to_string().contains("already its settings"), "{e}");
    let (s, e) = alice
        .post("/api/v1/requests", json!({"kind": "update_repository", "repository": "crytera/not-managed-here", "justification": "x", "scan_on_push": false}))
        .await;
    assert!(s == 422 && e.to_string().contains("not managed"), "{e}");
    let (_, list) = bob.get("/api/v1/requests?kind=update_repository").await;
    assert_eq!(list, json!([]), "nothing was stored");
}

#[tokio::test]
async fn the_settings_page_forms_file_requests_and_refusals_say_why() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo(&alice, &bob, "formset").await;
    let cookie = app.session_cookie("alice", "requester").await;
    let page = browser()
        .get(format!("{}/repositories/settings?name={full}", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("action=\"/repositories/update\"") && html.contains("action=\"/repositories/delete\""),
        "{html}"
    );
    // A link whose query fills the draft cannot end a textarea and inject markup.
    let payload = "</textarea><form id=injected action=https://evil.example>&amp;";
    let link = format!(
        "{}/repositories/settings?name={full}&preview=1&justification={p}&tags={p}&lifecycle={p}",
        app.base,
        p = percent_encoding::utf8_percent_encode(payload, percent_encoding::NON_ALPHANUMERIC)
    );
    let html = browser().get(link).header("cookie", &cookie).send().await.expect("page").text().await.expect("html");
    assert!(!html.contains("<form id=injected") && !html.contains("</textarea><form"), "markup from a link's query");
    assert!(
        html.contains("&lt;/textarea>&lt;form id=injected action=https://evil.example>&amp;amp;"),
        "shown as typed"
    );
    let base = |lifecycle: &str| {
        vec![
            ("repository", full.clone()),
            ("tag_mutability", "MUTABLE".to_string()),
            ("tag_mutability_exclusions", String::new()),
            ("scan_on_push", "true".to_string()),
            ("lifecycle", lifecycle.to_string()),
            ("tags", "owner=alice\n".to_string()),
            ("team", "platform".to_string()),
            ("cost_center", "cc-1234".to_string()),
            ("justification", "mutable for the nightly tag".to_string()),
        ]
    };
    let refused = post_form(&app, &cookie, "/repositories/update", &base("{not json")).await;
    assert_eq!(refused.status(), 422);
    let csp = refused.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(csp.contains("style-src 'self'") && csp.contains("default-src 'none'"), "{csp}");
    let text = refused.text().await.expect("html");
    assert!(
        text.contains("lifecycle_rules") && text.contains("not JSON") && text.contains("Back to the form"),
        "{text}"
    );
    // The form's "Preview" button: a GET back to the page, which shows what the typed
    // lifecycle would expire and fills the form in again (nothing typed is lost).
    push_image(&app, &full, "dev-1", 1).await;
    push_image(&app, &full, "dev-2", 2).await;
    let mut preview = base(&keep_newest(1).to_string());
    preview.push(("preview", "1".into()));
    let page = browser()
        .get(format!("{}/repositories/settings", app.base))
        .query(&preview)
        .header("cookie", &cookie)
        .send()
        .await
        .expect("preview");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("data-testid=\"form-preview\"") && html.contains("2 image(s) now: 1 would expire"), "{html}");
    assert!(html.contains("mutable for the nightly tag") && html.contains("owner=alice"), "the draft is kept: {html}");
    let filed = post_form(&app, &cookie, "/repositories/update", &base("")).await;
    assert_eq!(filed.status(), 303);
    let to = location(&filed);
    assert!(to.starts_with("/requests/"), "{to}");
    let id: i64 = to.trim_start_matches("/requests/").parse().expect("id");
    let (_, d) = alice.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(d["kind"]["spec"]["tag_mutability"], "MUTABLE", "{d}");
    // One open request per repository: the delete form says so.
    let delete = [("repository", full.clone()), ("justification", "gone".to_string())];
    let busy = post_form(&app, &cookie, "/repositories/delete", &delete).await;
    assert_eq!(busy.status(), 409);
    assert!(busy.text().await.expect("html").contains("already has an open request"));
}

#[tokio::test]
async fn a_new_repository_takes_the_same_settings() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let name = unique("born");
    let full = format!("crytera/{name}");
    let mut body = request_body(&name);
    body.as_object_mut().expect("object").extend(
        json!({"tag_mutability": "MUTABLE_WITH_EXCLUSION", "tag_mutability_exclusions": ["release-*"],
            "tags": {"service": "payments"}, "lifecycle_rules": keep_newest(5)})
        .as_object()
        .cloned()
        .unwrap_or_default(),
    );
    let (s, d) = alice.post("/api/v1/requests", body.clone()).await;
    assert_eq!(s, 201, "{d}");
    let id = id_of(&d);
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let ecr = app.ecr().await;
    let repo = ecr.describe_repositories().repository_names(&full).send().await.expect("describe");
    let r = &repo.repositories()[0];
    assert_eq!(r.image_tag_mutability(), Some(&ImageTagMutability::MutableWithExclusion));
    assert_eq!(
        r.image_tag_mutability_exclusion_filters().iter().map(|f| f.filter()).collect::<Vec<_>>(),
        ["release-*"]
    );
    let tags =
        ecr.list_tags_for_resource().resource_arn(r.repository_arn().unwrap_or_default()).send().await.expect("tags");
    assert!(tags.tags().iter().any(|t| t.key() == "service" && t.value() == "payments"), "{tags:?}");
    let lifecycle = ecr.get_lifecycle_policy().repository_name(&full).send().await.expect("lifecycle");
    assert!(lifecycle.lifecycle_policy_text().unwrap_or("").contains("dev-*"));
    // In sync after creation: the drift check compares the exclusions and the rules too.
    let (_, check) = bob.post("/api/v1/repositories/check", json!({"name": full})).await;
    assert_eq!(check["drifted"], 0, "{check}");
    // And the reserved keys are refused at creation as well.
    let mut bad = request_body(&unique("born-bad"));
    bad["tags"] = json!({"aws:cloudformation": "x"});
    let (s, e) = alice.post("/api/v1/requests", bad).await;
    assert!(s == 422 && e.to_string().contains("reserved"), "{e}");
}
