//! Input and transport rules from the security review (issue 16, item 8):
//! JSON-only API bodies, no caching of personal answers, loopback origins on
//! the portal's own port, health checks on any Host, and the checks on free
//! text, tag values and KMS keys.
use crate::helpers::*;
use serde_json::{json, Value};

#[tokio::test]
async fn json_endpoints_take_only_json_and_personal_answers_are_never_cached() {
    let app = spawn_app().await;
    let rita = app.sign_in("rita", "requester").await;
    // A text/plain body (what a cross-site form can send without a preflight) is refused.
    let r = rita
        .http
        .post(format!("{}/api/v1/requests", app.base))
        .header("content-type", "text/plain")
        .body(request_body(&unique("plain")).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 415);
    let body: Value = r.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let r = rita
        .http
        .post(format!("{}/rpc/submit_repository_request", app.base))
        .header("content-type", "text/plain")
        .body(json!({"input": request_body(&unique("plainrpc"))}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 415);
    assert_eq!(rita.get("/api/v1/requests").await.1, json!([]), "nothing was stored");
    // JSON with a charset is fine.
    let r = rita
        .http
        .post(format!("{}/api/v1/requests", app.base))
        .header("content-type", "application/json; charset=utf-8")
        .body(request_body(&unique("charset")).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);

    // Cache-Control: no-store on what a signed-in person sees; static files keep theirs.
    for path in ["/api/v1/requests", "/", "/tokens"] {
        let r = rita.http.get(format!("{}{path}", app.base)).send().await.expect("get");
        assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{path}");
    }
    let r = rita.http.post(format!("{}/rpc/get_portal_info", app.base)).send().await.expect("rpc");
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let r = app.anonymous().http.get(format!("{}/favicon.ico", app.base)).send().await.expect("static");
    assert_ne!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
}

#[tokio::test]
async fn loopback_origins_count_only_on_the_portals_own_port_and_health_checks_answer_any_host() {
    let app = spawn_app().await;
    let rita = app.sign_in("rita", "requester").await;
    let port = app.base.rsplit(':').next().expect("port").to_string();
    let post = |origin: String| {
        rita.http
            .post(format!("{}/api/v1/requests", app.base))
            .header("origin", origin)
            .json(&request_body(&unique("origin")))
            .send()
    };
    // Another program on this machine (a dev server on another port) cannot post for her.
    let other = if port == "5173" { "5174" } else { "5173" };
    assert_eq!(post(format!("http://127.0.0.1:{other}")).await.expect("post").status(), 403);
    assert_eq!(post(format!("http://localhost:{other}")).await.expect("post").status(), 403);
    assert_eq!(post(format!("http://127.0.0.1:{port}")).await.expect("post").status(), 201);
    assert_eq!(post(format!("http://localhost:{port}")).await.expect("post").status(), 201);
    // Health checks answer on any Host (probes use addresses); everything else does not.
    let any = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let r = any.get(format!("{}{path}", app.base)).header("host", "10.1.2.3:8080").send().await.expect("probe");
        assert!(r.status() == 200 || r.status() == 503, "{path}: {}", r.status());
    }
    let r = any.get(format!("{}/api/v1/me", app.base)).header("host", "10.1.2.3:8080").send().await.expect("get");
    assert_eq!(r.status(), 421);
}

#[tokio::test]
async fn free_text_tags_and_kms_keys_are_checked_as_the_review_asked() {
    let app = spawn_app().await;
    let rita = app.sign_in("rita", "requester").await;
    let adam = app.sign_in("adam", "admin").await;
    let field_of = |b: &Value| b["error"]["fields"][0]["field"].as_str().unwrap_or("").to_string();
    // A justification with an invisible direction mark (it would read differently to the approver).
    let mut body = request_body(&unique("bidi"));
    body["justification"] = json!("harmless\u{202E}gnirts lausu");
    let (s, b) = rita.post("/api/v1/requests", body).await;
    assert_eq!((s, field_of(&b)), (422, "justification".to_string()), "{b}");
    assert!(b["error"]["fields"][0]["message"].as_str().unwrap_or("").contains("U+202E"), "{b}");
    // A control character in a justification; a tab in a tag value.
    let mut body = request_body(&unique("ctl"));
    body["justification"] = json!("ring\u{7} the bell");
    assert_eq!(rita.post("/api/v1/requests", body).await.0, 422);
    let mut body = request_body(&unique("tab"));
    body["team"] = json!("plat\tform");
    let (s, b) = rita.post("/api/v1/requests", body).await;
    assert_eq!((s, field_of(&b)), (422, "team".to_string()), "{b}");
    // KMS keys: the shape, and the repositories' region.
    let kms = |key: &str| {
        let mut body = request_body(&unique("kms"));
        body["encryption"] = json!("KMS");
        body["kms_key_arn"] = json!(key);
        body
    };
    let (s, b) = rita.post("/api/v1/requests", kms("arn:aws:kms:us-east-1:111122223333:key/not-a-uuid")).await;
    assert_eq!((s, field_of(&b)), (422, "kms_key_arn".to_string()), "{b}");
    let other_region = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let (s, b) = rita.post("/api/v1/requests", kms(other_region)).await;
    assert_eq!((s, field_of(&b)), (422, "kms_key_arn".to_string()), "{b}");
    assert!(b.to_string().contains("eu-west-1"), "{b}");
    let (s, b) = rita.post("/api/v1/requests", kms("alias/team-images")).await;
    assert_eq!(s, 201, "an alias is how ECR also takes a key: {b}");
    // A decision comment and a token name follow the same rules.
    let id = b["summary"]["id"].as_i64().expect("id");
    let (s, b) = adam.post(&format!("/api/v1/requests/{id}/reject"), json!({"comment": "no\u{2066}pe"})).await;
    assert_eq!((s, field_of(&b)), (422, "comment".to_string()), "{b}");
    let (s, b) = create_token(&rita, "ci\u{202E}", "submit", 7).await;
    assert_eq!((s, b["Invalid"][0]["field"].as_str()), (422, Some("name")), "{b}");
    let (_, list) = rita.get("/api/v1/requests").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "only the valid request was stored: {list}");
}
