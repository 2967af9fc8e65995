//! The server-rendered pages, sign-in and health endpoints.
use super::helpers::*;
use serde_json::json;

#[tokio::test]
async fn health_and_readiness_report_the_database_and_aws() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    let r = anon.http.get(format!("{}/healthz", app.base)).send().await.expect("healthz");
    assert_eq!(r.status(), 200);
    let (status, body) = anon.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"database": "ok", "aws": "ok"}));
}

#[tokio::test]
async fn readiness_fails_when_aws_is_unreachable() {
    let app = spawn_app_with(|c| c.aws.local_endpoint = "http://127.0.0.1:9".into()).await;
    let (status, body) = app.anonymous().get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["database"], "ok");
    assert_ne!(body["aws"], "ok");
}

#[tokio::test]
async fn pages_are_rendered_on_the_server_with_the_request() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let name = unique("ssr");
    let id = alice.submit(&name).await.1["summary"]["id"].as_i64().expect("id");
    let html =
        alice.http.get(format!("{}/requests/{id}", app.base)).send().await.expect("page").text().await.expect("html");
    assert!(html.contains(&format!("crytera/{name}")), "SSR page names the repository");
    assert!(html.contains("data-status=\"pending\""));
    assert!(html.contains("/pkg/ecr-portal.js") || html.contains("ecr-portal"), "hydration script");
    // The production account was discovered through the production role.
    assert!(html.contains("222222222222"));
}

#[tokio::test]
async fn search_forms_keep_their_values_in_the_server_rendered_page() {
    // The filter forms are plain GET forms: the page that answers must show
    // what was searched before any script runs (and a second submit keeps it).
    let app = spawn_app().await;
    let bob = app.sign_in("bob", "admin").await;
    let page = |path: String| {
        let bob = &bob;
        let url = format!("{}{path}", app.base);
        async move { bob.http.get(url).send().await.expect("page").text().await.expect("html") }
    };
    let html = page("/repositories?q=svc-zz&show=drift".into()).await;
    assert!(html.contains(r#"name="q" type="search" value="svc-zz""#), "search box keeps its text");
    assert!(html.contains(r#"<option value="drift" selected"#), "the filter stays chosen");
    assert!(!html.contains(r#"<option value="" selected"#));
    let html = page("/audit?actor=local:carol&action=request_approved".into()).await;
    assert!(html.contains(r#"value="local:carol""#), "actor filter keeps its text");
    assert!(html.contains(r#"<option value="request_approved" selected"#), "the action stays chosen");
}

#[tokio::test]
async fn local_sign_in_checks_the_user_name_and_role() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    for (u, r) in [("Alice!", "requester"), ("alice", "root"), ("", "admin")] {
        let resp = anon
            .http
            .post(format!("{}/auth/local", app.base))
            .header("accept", "application/json")
            .form(&[("username", u), ("role", r)])
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 422, "{u}/{r}");
    }
    // The browser form is redirected back with the reason.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let resp = no_redirects
        .post(format!("{}/auth/local", app.base))
        .form(&[("username", "Bad"), ("role", "admin")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 303);
    assert!(resp.headers()["location"].to_str().unwrap_or("").starts_with("/login?error="));
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    assert_eq!(alice.get("/api/v1/requests").await.0, 200);
    alice.http.post(format!("{}/auth/logout", app.base)).send().await.expect("logout");
    assert_eq!(alice.get("/api/v1/requests").await.0, 401);
    let (_, audit) = app.sign_in("bob", "admin").await.get("/api/v1/audit?actor=local:alice").await;
    let acts: Vec<&str> =
        audit["events"].as_array().expect("events").iter().map(|e| e["action"].as_str().unwrap_or("")).collect();
    assert_eq!(acts, ["signed_out", "signed_in"]);
}

#[tokio::test]
async fn every_page_is_rendered_for_its_reader_with_a_fresh_nonce_and_shows_changes_at_once() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let carol = app.sign_in("carol", "requester").await;
    let first = unique("fresh");
    assert_eq!(alice.submit(&first).await.0, 201);
    let page = |u: &User| {
        let r = u.http.get(format!("{}/", app.base));
        async move {
            let resp = r.send().await.expect("page");
            assert!(resp.headers().get("x-page-cache").is_none(), "no page cache");
            let csp = resp.headers()["content-security-policy"].to_str().expect("csp").to_string();
            let nonce = csp.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("nonce").to_string();
            (nonce, resp.text().await.expect("html"))
        }
    };
    let (n1, b1) = page(&alice).await;
    assert!(b1.contains(&format!("crytera/{first}")));
    let (n2, b2) = page(&alice).await;
    assert_ne!(n1, n2, "every answer gets its own nonce");
    assert!(b2.contains(&format!("nonce=\"{n2}\"")) && !b2.contains(&n1), "the body carries its own nonce only");
    let (_, b) = page(&carol).await;
    assert!(!b.contains(&first), "a requester sees only their own requests");
    let second = unique("fresh");
    assert_eq!(alice.submit(&second).await.0, 201);
    let (_, b) = page(&alice).await;
    assert!(b.contains(&format!("crytera/{second}")), "a change is seen at once");
    alice.http.post(format!("{}/auth/logout", app.base)).send().await.expect("logout");
    let (_, b) = page(&alice).await;
    assert!(!b.contains(&second) && !b.contains("data-testid=\"current-user\""), "signed out");
    assert!(b.contains("Sign in"), "the signed-out page asks to sign in: {b}");
}
