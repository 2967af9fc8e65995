//! People can be cut off: an admin ends a person's sessions and API tokens at
//! once; tokens stop acting for owners who no longer sign in; credentials of
//! the local sign-in stop working once the portal runs with OpenID Connect.
use crate::helpers::*;
use serde_json::{json, Value};

async fn token(u: &User, scope: &str, days: u32) -> String {
    let (s, t) = u.post("/rpc/create_token", json!({"name": "ci", "scope": scope, "days": days})).await;
    assert_eq!(s, 200, "{t}");
    t["secret"].as_str().expect("secret").to_string()
}

async fn with_token(app: &TestApp, secret: &str, path: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}{path}", app.base))
        .bearer_auth(secret)
        .send()
        .await
        .expect("call")
        .status()
        .as_u16()
}

fn person<'a>(users: &'a Value, id: &str) -> &'a Value {
    users.as_array().expect("users").iter().find(|u| u["id"] == id).unwrap_or_else(|| panic!("{id} in {users}"))
}

#[tokio::test]
async fn an_admin_cuts_a_person_off_and_their_session_and_tokens_get_401() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let aude = app.sign_in("aude", "auditor").await;
    let secret = token(&alice, "user", 7).await;
    assert_eq!(with_token(&app, &secret, "/api/v1/requests").await, 200);

    // Who has signed in: admins and auditors see it, requesters do not.
    let (s, users) = bob.get("/api/v1/users").await;
    assert_eq!(s, 200, "{users}");
    let a = person(&users, "local:alice");
    assert_eq!(
        (a["role"].as_str(), a["sessions"].as_u64(), a["tokens"].as_u64()),
        (Some("requester"), Some(1), Some(1))
    );
    assert!(a["last_seen"].is_string());
    assert_eq!(aude.get("/api/v1/users").await.0, 200);
    assert_eq!(alice.get("/api/v1/users").await.0, 403);

    // Only admins cut people off; bad input and unknown people are refused clearly.
    assert_eq!(aude.post("/api/v1/users/revoke", json!({"user": "local:alice"})).await.0, 403);
    assert_eq!(alice.post("/api/v1/users/revoke", json!({"user": "local:bob"})).await.0, 403);
    assert_eq!(bob.post("/api/v1/users/revoke", json!({"user": "local:nobody"})).await.0, 404);
    assert_eq!(bob.post("/api/v1/users/revoke", json!({"user": "  "})).await.0, 422);
    assert_eq!(bob.post("/api/v1/users/revoke", json!({"who": "local:alice"})).await.0, 422);
    assert_eq!(alice.get("/api/v1/requests").await.0, 200, "nothing happened to alice yet");

    let (s, done) = bob.post("/api/v1/users/revoke", json!({"user": "local:alice"})).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done, json!({"user": "local:alice", "sessions_ended": 1, "tokens_revoked": 1}));
    // Her next requests get 401, by session and by token.
    assert_eq!(alice.get("/api/v1/requests").await.0, 401);
    assert_eq!(with_token(&app, &secret, "/api/v1/requests").await, 401);
    let (_, users) = bob.get("/api/v1/users").await;
    let a = person(&users, "local:alice");
    assert_eq!((a["sessions"].as_u64(), a["tokens"].as_u64()), (Some(0), Some(0)));
    // Audited, with who did it.
    let (_, audit) = aude.get("/api/v1/audit?action=user_revoked").await;
    let e = &audit["events"][0];
    assert_eq!(e["actor"], "local:bob");
    assert!(
        e["detail"].as_str().unwrap_or("").contains("local:alice: ended 1 session(s) and revoked 1 API token(s)"),
        "{e}"
    );
    // She can sign in again (the identity provider still lets her, here the local sign-in).
    let again = app.sign_in("alice", "requester").await;
    assert_eq!(again.get("/api/v1/requests").await.0, 200);
}

#[tokio::test]
async fn the_people_page_cuts_someone_off_with_a_plain_form() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let page = bob.http.get(format!("{}/users", app.base)).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("local:alice") && html.contains(r#"action="/users/revoke""#), "the form is in the page");
    // The form's POST (no JavaScript): answered with a redirect back to the page.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie = app.session_cookie("bob", "admin").await;
    let r = no_redirects
        .post(format!("{}/users/revoke", app.base))
        .header("cookie", &cookie)
        .form(&[("user", "local:alice")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/users?revoked=local%3Aalice");
    assert_eq!(alice.get("/api/v1/requests").await.0, 401);
    let r = no_redirects
        .post(format!("{}/users/revoke", app.base))
        .header("cookie", &cookie)
        .form(&[("user", "local:ghost")])
        .send()
        .await
        .expect("post");
    assert_eq!(location(&r), "/users?error=not_found");
    let done = bob.http.get(format!("{}/users?revoked=local%3Aalice", app.base)).send().await.expect("page");
    assert!(done.text().await.expect("html").contains("every session ended"));
    // An unknown error code shows nothing (no free text from the URL).
    let odd = bob.http.get(format!("{}/users?error=%3Cb%3Epwned", app.base)).send().await.expect("page");
    assert!(!odd.text().await.expect("html").contains("pwned"));
    // A requester (signed in again) is told why not.
    let alice = app.sign_in("alice", "requester").await;
    let r = alice.http.get(format!("{}/users", app.base)).send().await.expect("page");
    assert!(r.text().await.expect("html").contains("see who has signed in"));
}

#[tokio::test]
async fn a_token_acts_only_while_its_owner_keeps_signing_in() {
    let clock = manual_clock();
    let app = spawn_app_full(|_| {}, Some(clock.clone())).await;
    let alice = app.sign_in("alice", "requester").await;
    let secret = token(&alice, "submit", 60).await;
    assert_eq!(with_token(&app, &secret, "/api/v1/requests").await, 200);
    clock.advance_ms(29 * 86_400_000);
    assert_eq!(with_token(&app, &secret, "/api/v1/requests").await, 200, "within 30 days of her sign-in");
    clock.advance_ms(2 * 86_400_000);
    assert_eq!(with_token(&app, &secret, "/api/v1/requests").await, 401, "31 days after her last sign-in");
    let aude = app.sign_in("aude", "auditor").await;
    let (_, audit) = aude.get("/api/v1/audit?action=sign_in_failed").await;
    let why = audit["events"][0]["detail"].as_str().unwrap_or("").to_string();
    assert!(why.contains("has not signed in for more than 30 days"), "{why}");
    // She signs in again: the token works again.
    app.sign_in("alice", "requester").await;
    assert_eq!(with_token(&app, &secret, "/api/v1/requests").await, 200);
}

#[tokio::test]
async fn local_sign_in_credentials_stop_working_when_the_portal_runs_with_oidc() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "admin").await;
    let secret = token(&alice, "user", 7).await;
    assert_eq!(alice.get("/api/v1/requests").await.0, 200);
    let idp = MockOidc::start().await;
    let issuer = idp.issuer.clone();
    let app = app
        .restart_with(move |c| {
            c.auth.mode = server::config::AuthMode::Oidc;
            c.oidc.issuer_url = issuer;
            c.oidc.client_id = "ecr-portal".into();
            c.oidc.client_secret = "test-client-secret".into();
        })
        .await;
    let alice = User { http: alice.http, base: app.base.clone() };
    // The cookie jar still holds the session (same host, new port: cookies ignore ports).
    assert_eq!(alice.get("/api/v1/requests").await.0, 401);
    assert_eq!(with_token(&app, &secret, "/api/v1/requests").await, 401);
    let (_, me) = alice.get("/api/v1/me").await;
    assert_eq!(me["user"], Value::Null);
}
