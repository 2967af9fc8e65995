//! OpenID Connect sign-in against a real provider on loopback (npm
//! oauth2-mock-server behind a strict wrapper): two users with different
//! groups, and the refusals a relying party must make.
use crate::helpers::*;
use serde_json::{json, Value};

/// Follows the sign-in up to the provider's answer; returns the callback URL
/// the provider sent the browser to (not yet visited).
async fn to_callback(app: &TestApp, b: &reqwest::Client) -> String {
    let start = b.get(format!("{}/auth/oidc/start?next=/repositories", app.base)).send().await.expect("start");
    assert_eq!(start.status(), 303);
    let authorize = location(&start);
    let at_idp = b.get(&authorize).send().await.expect("authorize");
    assert!(at_idp.status().is_redirection(), "{}", at_idp.status());
    location(&at_idp)
}

/// Visits the callback; returns where the portal sends the browser.
async fn callback(b: &reqwest::Client, url: &str) -> String {
    let r = b.get(url).send().await.expect("callback");
    assert_eq!(r.status(), 303);
    location(&r)
}

async fn me(app: &TestApp, b: &reqwest::Client) -> Value {
    b.get(format!("{}/api/v1/me", app.base)).send().await.expect("me").json().await.expect("json")
}

async fn failures(app: &TestApp) -> Vec<String> {
    let aude = app.service.clone();
    let page = app::api::Portal::audit(
        aude.as_ref(),
        &app::domain::principal::Principal::new("test", "test", app::domain::principal::Role::Auditor, vec![]),
        app::views::AuditQuery { action: Some("sign_in_failed".into()), ..Default::default() },
    )
    .await
    .expect("audit");
    page.events.into_iter().map(|e| e.detail).collect()
}

#[tokio::test]
async fn two_users_sign_in_with_the_roles_their_groups_give() {
    let idp = MockOidc::start().await;
    let app = spawn_oidc_app(&idp, |_| {}).await;
    let host = idp.issuer.trim_start_matches("http://").to_string();

    idp.next_login(json!({"sub": "alice", "preferred_username": "alice", "groups": ["ecr-admins", "engineering"]}))
        .await;
    let alice = browser();
    let start = alice.get(format!("{}/auth/oidc/start?next=/repositories", app.base)).send().await.expect("start");
    let authorize = location(&start);
    for part in [
        "response_type=code",
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "nonce=",
        "client_id=ecr-portal",
    ] {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    assert!(authorize.starts_with(&idp.issuer));
    let login_cookie =
        start.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("binding cookie").to_string();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Lax"), "{login_cookie}");
    let cb = location(&alice.get(&authorize).send().await.expect("authorize"));
    assert_eq!(callback(&alice, &cb).await, "/repositories", "back where sign-in started");
    let who = me(&app, &alice).await;
    assert_eq!(who["user"]["id"], format!("oidc:alice@{host}"), "issuer + sub");
    assert_eq!(who["user"]["role"], "admin");
    assert_eq!(who["user"]["groups"], json!(["ecr-admins", "engineering"]));

    idp.next_login(json!({"sub": "bob", "name": "Bob Builder", "groups": ["engineering"]})).await;
    let bob = browser();
    let cb = to_callback(&app, &bob).await;
    callback(&bob, &cb).await;
    let who = me(&app, &bob).await;
    assert_eq!((who["user"]["role"].as_str(), who["user"]["name"].as_str()), (Some("requester"), Some("Bob Builder")));

    idp.next_login(json!({"sub": "carol", "groups": "ecr-auditors"})).await;
    let carol = browser();
    let cb = to_callback(&app, &carol).await;
    callback(&carol, &cb).await;
    assert_eq!(me(&app, &carol).await["user"]["role"], "auditor", "a single-string groups claim works too");

    // Their rights follow: bob requests, alice approves, bob cannot.
    let r = bob
        .post(format!("{}/api/v1/requests", app.base))
        .json(&request_body(&unique("sso")))
        .send()
        .await
        .expect("submit");
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.expect("json")["summary"]["id"].as_i64().expect("id");
    let approve =
        |b: &reqwest::Client| b.post(format!("{}/api/v1/requests/{id}/approve", app.base)).json(&json!({})).send();
    assert_eq!(approve(&bob).await.expect("approve").status(), 403);
    assert_eq!(approve(&alice).await.expect("approve").status(), 200);
    // Local sign-in is off in this mode.
    let local =
        browser().post(format!("{}/auth/local", app.base)).form(&[("username", "x"), ("role", "admin")]).send().await;
    assert_eq!(local.expect("local").status(), 404);
    assert!(failures(&app).await.is_empty());
}

#[tokio::test]
async fn a_wrong_state_is_refused_and_spends_the_sign_in() {
    let idp = MockOidc::start().await;
    let app = spawn_oidc_app(&idp, |_| {}).await;
    idp.next_login(json!({"sub": "alice", "groups": ["ecr-admins"]})).await;
    let b = browser();
    let cb = to_callback(&app, &b).await;
    let state = cb.split("state=").nth(1).and_then(|s| s.split('&').next()).expect("state").to_string();
    let forged = cb.replace(&format!("state={state}"), "state=forged-state");
    let to = callback(&b, &forged).await;
    assert!(to.starts_with("/login?error="), "{to}");
    assert_eq!(to, "/login?error=mismatch", "a known code, never free text");
    assert!(me(&app, &b).await["user"].is_null());
    // The pending sign-in was used up: the genuine answer no longer works either.
    assert!(callback(&b, &cb).await.starts_with("/login?error="));
    assert!(me(&app, &b).await["user"].is_null());
    let f = failures(&app).await;
    assert!(f.iter().any(|d| d.contains("wrong state")), "{f:?}");
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let idp = MockOidc::start().await;
    let app = spawn_oidc_app(&idp, |_| {}).await;
    idp.next_login(json!({"sub": "alice", "groups": ["ecr-admins"]})).await;
    let b = browser();
    let cb = to_callback(&app, &b).await;
    assert_eq!(callback(&b, &cb).await, "/repositories");
    // The same answer again (e.g. from browser history or a leaked URL).
    let attacker = browser();
    assert!(callback(&attacker, &cb).await.starts_with("/login?error="));
    // Even with a fresh sign-in of its own, an old code is refused by the provider and by us.
    idp.next_login(json!({"sub": "mallory", "groups": []})).await;
    let fresh = to_callback(&app, &attacker).await;
    let code = |u: &str| u.split("code=").nth(1).and_then(|s| s.split('&').next()).expect("code").to_string();
    let replayed = fresh.replace(&code(&fresh), &code(&cb));
    let to = callback(&attacker, &replayed).await;
    assert!(to.starts_with("/login?error="), "{to}");
    assert!(me(&app, &attacker).await["user"].is_null());
    let f = failures(&app).await;
    assert!(f.iter().any(|d| d.contains("the provider refused the code")), "{f:?}");
    assert!(f.iter().any(|d| d.contains("without a sign-in in progress")), "{f:?}");
}

/// Signs in with claims that make the id_token bad; returns the recorded failure.
async fn refused_with(claims: Value) -> String {
    refused_by(claims, |_| {}).await
}

/// The same, against a portal configured by `tweak`.
async fn refused_by(claims: Value, tweak: impl FnOnce(&mut server::config::RawConfig)) -> String {
    let idp = MockOidc::start().await;
    let app = spawn_oidc_app(&idp, tweak).await;
    idp.next_login(claims).await;
    let b = browser();
    let cb = to_callback(&app, &b).await;
    let to = callback(&b, &cb).await;
    assert!(to.starts_with("/login?error="), "{to}");
    assert_eq!(to, "/login?error=unverified");
    assert!(me(&app, &b).await["user"].is_null(), "no session");
    failures(&app).await.join("\n")
}

#[tokio::test]
async fn an_id_token_signed_with_an_algorithm_not_configured_is_refused() {
    // The provider signs with RS256; this portal accepts only ES256.
    let f =
        refused_by(json!({"sub": "eve", "groups": []}), |c| c.oidc.id_token_algorithms = vec!["ES256".into()]).await;
    assert!(f.contains("id_token was refused") && f.contains("RS256"), "{f}");
}

#[tokio::test]
async fn a_forged_id_token_is_refused() {
    let f = refused_with(json!({"sub": "eve", "groups": [], "__forge": true})).await;
    assert!(f.contains("id_token was refused") && f.to_lowercase().contains("signature"), "{f}");
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    let past = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() - 3600;
    let f = refused_with(json!({"sub": "eve", "groups": [], "exp": past})).await;
    assert!(f.contains("id_token was refused") && f.contains("xpired"), "{f}");
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() {
    let f = refused_with(json!({"sub": "eve", "groups": [], "aud": "some-other-client"})).await;
    assert!(f.contains("id_token was refused") && f.to_lowercase().contains("audience"), "{f}");
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    let f = refused_with(json!({"sub": "eve", "groups": [], "nonce": "not-the-one-we-sent"})).await;
    assert!(f.contains("id_token was refused") && f.to_lowercase().contains("nonce"), "{f}");
}

#[tokio::test]
async fn denied_and_failed_sign_ins_get_clear_pages() {
    let idp = MockOidc::start().await;
    let app = spawn_oidc_app(&idp, |c| c.auth.allowed_groups = vec!["engineering".into()]).await;
    // The provider says no.
    idp.next_login(json!({"error": "access_denied"})).await;
    let b = browser();
    let to = callback(&b, &to_callback(&app, &b).await).await;
    assert_eq!(to, "/login?error=refused");
    // Signed in at the provider, but not in a group that may use the portal.
    idp.next_login(json!({"sub": "sam", "preferred_username": "sam", "groups": ["sales"]})).await;
    let to = callback(&b, &to_callback(&app, &b).await).await;
    assert_eq!(to, "/login?error=not_allowed");
    assert!(me(&app, &b).await["user"].is_null());
    // The login page shows the message as text.
    let page = b.get(format!("{}{to}", app.base)).send().await.expect("page").text().await.expect("html");
    assert!(page.contains("not in a group that may use the portal"));
    let f = failures(&app).await;
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f.iter().any(|d| d.contains("sign-in denied")), "the details are in the audit trail: {f:?}");
    assert!(f.iter().any(|d| d.contains("access_denied")), "{f:?}");
}
