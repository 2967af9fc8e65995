//! Issue 4: the authorization matrix, cross-site refusals, the approval
//! policy (two approvers, no self-approval, expiry), API tokens, security
//! headers and cookies, limits, and what the audit trail records about them.
use crate::helpers::*;
use serde_json::{json, Value};

/// Who makes a call in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Requester,
    OtherRequester,
    Admin,
    Auditor,
    /// In an approval group (`prod-approvers`, the grant rule's), not an admin.
    Approver,
    /// The requester's token, scope `submit`.
    SubmitToken,
    /// The admin's token, scope `user`.
    UserToken,
}

const EVERYONE: [Who; 8] = [
    Who::Anonymous,
    Who::Requester,
    Who::OtherRequester,
    Who::Admin,
    Who::Auditor,
    Who::Approver,
    Who::SubmitToken,
    Who::UserToken,
];

struct Cast {
    anon: User,
    rita: User,
    otto: User,
    adam: User,
    aude: User,
    pia: User,
    submit_token: String,
    user_token: String,
}

impl Cast {
    async fn new(app: &TestApp) -> Self {
        let rita = app.sign_in("rita", "requester").await;
        let adam = app.sign_in("adam", "admin").await;
        let (s, t) = create_token(&rita, "ci", "submit", 7).await;
        assert_eq!(s, 200, "{t}");
        let submit_token = t["secret"].as_str().expect("secret").to_string();
        let (s, t) = create_token(&adam, "ops", "user", 7).await;
        assert_eq!(s, 200, "{t}");
        let user_token = t["secret"].as_str().expect("secret").to_string();
        Self {
            anon: app.anonymous(),
            rita,
            otto: app.sign_in("otto", "requester").await,
            adam,
            aude: app.sign_in("aude", "auditor").await,
            pia: app.sign_in("pia", "approver").await,
            submit_token,
            user_token,
        }
    }

    /// Makes one call as `who`; returns the status.
    async fn call(&self, who: Who, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (client, token) = match who {
            Who::Anonymous => (&self.anon, None),
            Who::Requester => (&self.rita, None),
            Who::OtherRequester => (&self.otto, None),
            Who::Admin => (&self.adam, None),
            Who::Auditor => (&self.aude, None),
            Who::Approver => (&self.pia, None),
            // Token calls go through a client without cookies.
            Who::SubmitToken => (&self.anon, Some(&self.submit_token)),
            Who::UserToken => (&self.anon, Some(&self.user_token)),
        };
        let url = format!("{}{path}", client.base);
        let mut req = match method {
            "GET" => client.http.get(url),
            _ => client.http.post(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req = match body {
            Some(b) => req.json(&b),
            // Server functions without JSON input take a form body.
            None if method == "POST" => req.header("content-type", "application/x-www-form-urlencoded").body(""),
            None => req,
        };
        let r = req.send().await.expect("call");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// One row of the matrix: a route and who may use it. Everyone else must be
/// refused: 401 when anonymous, 403 otherwise.
struct Row {
    method: &'static str,
    path: String,
    body: Option<Value>,
    allowed: Vec<Who>,
}

fn row(method: &'static str, path: impl Into<String>, body: Option<Value>, allowed: &[Who]) -> Row {
    Row { method, path: path.into(), body, allowed: allowed.to_vec() }
}

#[tokio::test]
async fn every_route_allows_exactly_the_principals_it_should() {
    use Who::*;
    // Production grants are decided by `prod-approvers`, whom Pia stands for.
    let app = spawn_app_with(|c| c.approval.grant_production_groups = vec!["prod-approvers".into()]).await;
    let cast = Cast::new(&app).await;
    // Rita's own pending request (the target of the read cells).
    let (s, r) = cast.rita.submit(&unique("matrix")).await;
    assert_eq!(s, 201, "{r}");
    let id = r["summary"]["id"].as_i64().expect("id");

    let signed_in = [Requester, OtherRequester, Admin, Auditor, Approver, SubmitToken, UserToken];
    // Rita's request is a new repository, which Pia's group does not decide: she cannot read it.
    let readers_of_ritas = [Requester, Admin, Auditor, SubmitToken, UserToken];
    let commenters_on_ritas = [Requester, Admin, SubmitToken, UserToken];
    let submitters = [Requester, OtherRequester, Admin, Approver, SubmitToken, UserToken];
    let admins = [Admin, UserToken];
    let deciders = [Admin, Approver, UserToken];
    let audit_readers = [Admin, Auditor, UserToken];
    let inventory_readers = [Requester, OtherRequester, Admin, Auditor, Approver, UserToken];
    let token_managers = [Requester, OtherRequester, Admin, Auditor, Approver];
    // Bodies are chosen so that an allowed caller gets past authorization and
    // then fails (or succeeds) for another reason: invalid input, no such request.
    let bad_request = json!({"name": "", "team": "", "cost_center": "", "justification": ""});
    let bad_access = json!({"input": {"repository": "", "action": "grant", "justification": ""}});
    let bad_request_fn = json!({"input": {"name": "", "team": "", "cost_center": "", "justification": ""}});
    let missing = json!({"name": "crytera/no-such-repository"});
    let rows = vec![
        // JSON API
        row("GET", "/api/v1/me", None, &EVERYONE),
        row("GET", "/api/v1/requests", None, &signed_in),
        row("POST", "/api/v1/requests", Some(bad_request.clone()), &submitters),
        row(
            "POST",
            "/api/v1/requests",
            Some(json!({"kind": "update_repository", "repository": "", "justification": ""})),
            &submitters,
        ),
        row(
            "POST",
            "/api/v1/requests",
            Some(json!({"kind": "delete_repository", "repository": "", "justification": ""})),
            &submitters,
        ),
        row("GET", format!("/api/v1/requests/{id}"), None, &readers_of_ritas),
        row("GET", format!("/api/v1/requests/{id}/plan"), None, &readers_of_ritas),
        // Anyone who can see it comments, except auditors (an empty body: 422 past authorization).
        row("POST", format!("/api/v1/requests/{id}/comments"), Some(json!({"body": ""})), &commenters_on_ritas),
        // Submitters may try (a request that is not theirs is refused by the state machine: 403 too).
        row("POST", "/api/v1/requests/999999/withdraw", Some(json!({})), &submitters),
        row("POST", "/api/v1/requests/999999/approve", Some(json!({})), &deciders),
        row("POST", "/api/v1/requests/999999/reject", Some(json!({})), &deciders),
        row("POST", "/api/v1/requests/999999/retry", Some(json!({})), &admins),
        // Break glass is off here (409 past authorization); no such request to review (404).
        row("POST", "/api/v1/requests/999999/break-glass", Some(json!({"reason": "outage"})), &admins),
        row("POST", "/api/v1/requests/999999/review", Some(json!({"outcome": "accepted"})), &admins),
        row("GET", "/api/v1/repositories", None, &inventory_readers),
        row("GET", "/api/v1/images?repository=crytera/no-such-repository", None, &inventory_readers),
        row("GET", "/api/v1/releases?repository=crytera/no-such-repository", None, &inventory_readers),
        row("GET", "/api/v1/terraform/export", None, &inventory_readers),
        // No files: 422 past authorization.
        row("POST", "/api/v1/terraform/import", Some(json!({"files": []})), &admins),
        row("POST", "/api/v1/images/scan", Some(json!({"repository": "crytera/x", "digest": "bad"})), &admins),
        row(
            "POST",
            "/api/v1/requests",
            Some(json!({"kind": "promote_image", "repository": "", "digest": "", "tag": "", "justification": ""})),
            &submitters,
        ),
        row("POST", "/api/v1/repositories/adopt", Some(missing.clone()), &admins),
        row("POST", "/api/v1/repositories/check", Some(missing.clone()), &admins),
        row("POST", "/api/v1/repositories/accept", Some(missing.clone()), &admins),
        row("POST", "/api/v1/repositories/restore", Some(missing.clone()), &admins),
        row("GET", "/api/v1/audit", None, &audit_readers),
        row("GET", "/api/v1/audit/export?format=ndjson", None, &audit_readers),
        row("GET", "/api/v1/audit/verify", None, &audit_readers),
        row("GET", "/api/v1/users", None, &audit_readers),
        row("POST", "/api/v1/users/revoke", Some(json!({"user": "local:nobody"})), &admins),
        row("GET", "/api/v1/notifications", None, &admins),
        row("POST", "/api/v1/notifications/test", Some(json!({"channel": "none"})), &admins),
        // Server functions (what the UI calls)
        row("POST", "/rpc/get_portal_info", None, &EVERYONE),
        row("POST", "/rpc/list_requests", Some(json!({"status": null, "mine": false})), &signed_in),
        row("POST", "/rpc/get_request", Some(json!({"id": id})), &readers_of_ritas),
        row("POST", "/rpc/submit_repository_request", Some(bad_request_fn), &submitters),
        row("POST", "/rpc/submit_access_request", Some(bad_access), &submitters),
        row("POST", "/rpc/approve_request", Some(json!({"id": 999999, "comment": ""})), &deciders),
        row("POST", "/rpc/reject_request", Some(json!({"id": 999999, "comment": ""})), &deciders),
        row("POST", "/rpc/retry_request", Some(json!({"id": 999999})), &admins),
        row("POST", "/rpc/list_repositories", Some(json!({"query": {}})), &inventory_readers),
        row("POST", "/rpc/audit_history", Some(json!({"query": {}})), &audit_readers),
        row("POST", "/rpc/verify_audit", None, &audit_readers),
        row("POST", "/rpc/adopt_repository", Some(json!({"repository": "no-such-repository"})), &admins),
        row("POST", "/rpc/check_drift", Some(json!({"repository": "no-such-repository"})), &admins),
        row("POST", "/rpc/accept_drift", Some(json!({"repository": "no-such-repository"})), &admins),
        row(
            "POST",
            "/rpc/request_restore",
            Some(json!({"repository": "no-such-repository", "justification": ""})),
            &admins,
        ),
        row("POST", "/rpc/list_users", None, &audit_readers),
        row(
            "POST",
            "/rpc/list_images",
            Some(json!({"query": {"repository": "crytera/no-such-repository"}})),
            &inventory_readers,
        ),
        row(
            "POST",
            "/rpc/repository_settings",
            Some(json!({"name": "crytera/no-such-repository"})),
            &inventory_readers,
        ),
        row(
            "POST",
            "/rpc/preview_lifecycle",
            Some(json!({"name": "crytera/no-such-repository", "lifecycle": ""})),
            &inventory_readers,
        ),
        row("POST", "/rpc/outbox", None, &admins),
        row("POST", "/rpc/revoke_user", Some(json!({"user": "local:nobody"})), &admins),
        row("POST", "/rpc/list_tokens", None, &token_managers),
        row("POST", "/rpc/create_token", Some(json!({"name": "", "scope": "user", "days": 0})), &token_managers),
        row("POST", "/rpc/revoke_token", Some(json!({"id": 999999})), &token_managers),
    ];
    let mut failures = vec![];
    let mut cells = 0;
    for r in &rows {
        for who in EVERYONE {
            let (status, body) = cast.call(who, r.method, &r.path, r.body.clone()).await;
            cells += 1;
            let expect_allowed = r.allowed.contains(&who);
            let ok = if expect_allowed {
                status != 401 && status != 403 && status < 500
            } else if who == Anonymous {
                status == 401
            } else {
                status == 403
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {who:?}: {status} (expected {}) {body}",
                    r.method,
                    r.path,
                    if expect_allowed { "allowed" } else { "refused" }
                ));
            }
        }
    }
    assert_eq!(cells, rows.len() * EVERYONE.len());
    assert!(failures.is_empty(), "{} of {cells} cells wrong:\n{}", failures.len(), failures.join("\n"));

    // Refusals of signed-in principals are in the audit trail, with the token named.
    let (_, denied) = cast.adam.get("/api/v1/audit?action=access_denied&limit=200").await;
    let details: Vec<&str> =
        denied["events"].as_array().expect("events").iter().filter_map(|e| e["detail"].as_str()).collect();
    assert!(details.iter().any(|d| d.contains("through API token #1 (ci)")), "{details:?}");
    assert!(denied["events"].as_array().expect("events").iter().any(|e| e["actor"] == "local:aude"));
}

#[tokio::test]
async fn requesters_see_only_their_own_requests() {
    let app = spawn_app().await;
    let rita = app.sign_in("rita", "requester").await;
    let otto = app.sign_in("otto", "requester").await;
    let aude = app.sign_in("aude", "auditor").await;
    let (_, mine) = rita.submit(&unique("own")).await;
    let (_, theirs) = otto.submit(&unique("theirs")).await;
    let (_, list) = rita.get("/api/v1/requests").await;
    let ids: Vec<i64> = list.as_array().expect("list").iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, vec![mine["summary"]["id"].as_i64().expect("id")]);
    let (_, all) = aude.get("/api/v1/requests").await;
    assert_eq!(all.as_array().expect("list").len(), 2);
    let (s, _) = rita.get(&format!("/api/v1/requests/{}", theirs["summary"]["id"])).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn cross_site_posts_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let rita = app.sign_in("rita", "requester").await;
    let adam = app.sign_in("adam", "admin").await;
    let (_, r) = rita.submit(&unique("csrf")).await;
    let id = r["summary"]["id"].as_i64().expect("id");
    let post = |u: &User, path: &str| u.http.post(format!("{}{path}", u.base));

    // A foreign Origin on the JSON API: refused, nothing submitted.
    let r = post(&rita, "/api/v1/requests")
        .header("origin", "https://evil.example")
        .json(&request_body(&unique("evil")))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // The browser's own verdict, on a server function: the approval does not happen.
    let r = post(&adam, "/rpc/approve_request")
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"id": id, "comment": "forged"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // A forged sign-out and a forged local sign-in.
    let r = post(&adam, "/auth/logout").header("origin", "http://attacker.localhost").send().await.expect("post");
    assert_eq!(r.status(), 403);
    let r = post(&app.anonymous(), "/auth/local")
        .header("sec-fetch-site", "cross-site")
        .form(&[("username", "mallory"), ("role", "admin")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);

    let (_, list) = rita.get("/api/v1/requests").await;
    assert_eq!(list.as_array().expect("list").len(), 1, "no request was submitted cross-site");
    let (s, d) = adam.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(
        (s, d["summary"]["status"].as_str()),
        (200, Some("pending")),
        "adam is still signed in; nothing approved"
    );
    let (_, audit) = adam.get("/api/v1/audit?action=signed_in").await;
    assert!(audit["events"].as_array().expect("events").iter().all(|e| e["actor"] != "local:mallory"));
    let (_, denied) = adam.get("/api/v1/audit?action=access_denied").await;
    assert_eq!(denied["events"].as_array().expect("events").len(), 4, "{denied}");
    // Same-origin requests still work, with or without the headers browsers send.
    let r = post(&rita, "/api/v1/requests")
        .header("origin", &app.base)
        .header("sec-fetch-site", "same-origin")
        .json(&request_body(&unique("fine")))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);

    // A page on another site whose name was rebound to this server's address: refused, reads too.
    let r = rita.http.get(format!("{}/api/v1/requests", app.base)).header("host", "evil.example").send().await;
    assert_eq!(r.expect("get").status(), 421);
    let port = app.base.rsplit(':').next().expect("port");
    let r = post(&rita, "/api/v1/requests")
        .header("host", format!("evil.example:{port}"))
        .header("origin", format!("http://evil.example:{port}"))
        .json(&request_body(&unique("rebound")))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 421);
    let (_, list) = rita.get("/api/v1/requests").await;
    assert_eq!(list.as_array().expect("list").len(), 2);
}

#[tokio::test]
async fn a_new_repository_with_production_access_needs_the_production_approvers() {
    let app = spawn_app_with(|c| {
        c.approval.grant_production_groups = vec!["prod-approvers".into()];
        c.approval.grant_production_approvals = 2;
    })
    .await;
    let rita = app.sign_in("rita", "requester").await;
    let mut body = request_body(&unique("with-grant"));
    body["grant_production"] = json!(true);
    let (s, r) = rita.post("/api/v1/requests", body).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!((r["approver_groups"].clone(), r["approvals_required"].clone()), (json!(["prod-approvers"]), json!(2)));
    let id = r["summary"]["id"].as_i64().expect("id");
    let adam = app.sign_in("adam", "admin").await;
    let (_, d) = adam.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(d["summary"]["status"], "pending", "one approval is not enough for production access");
}

#[tokio::test]
async fn a_flood_of_bogus_tokens_from_one_address_cannot_push_out_other_events() {
    use server::service::ANONYMOUS_EVENTS_PER_SOURCE as PER_SOURCE;
    // Behind a proxy the operator trusts, the client's address is the last X-Forwarded-For entry.
    let app = spawn_app_with(|c| c.server.trust_forwarded_for = true).await;
    let bogus = reqwest::Client::new();
    let call = |i: u32, from: &'static str| {
        bogus
            .get(format!("{}/api/v1/requests", app.base))
            .header("x-forwarded-for", format!("198.51.100.7, {from}"))
            .bearer_auth(format!("ecrp_bogus{i}"))
            .send()
    };
    for i in 0..(PER_SOURCE + 30) {
        assert_eq!(call(i, "203.0.113.9").await.expect("get").status(), 401);
    }
    // Someone else, from another address, right after the flood: still recorded.
    assert_eq!(call(9999, "192.0.2.44").await.expect("get").status(), 401);
    let aude = app.sign_in("aude", "auditor").await;
    let (_, page) = aude.get("/api/v1/audit?action=sign_in_failed&limit=200").await;
    let events = page["events"].as_array().expect("events");
    let from = |ip: &str| events.iter().filter(|e| e["detail"].as_str().unwrap_or("").contains(ip)).count();
    assert_eq!(from("[from 203.0.113.9]") as u32, PER_SOURCE, "the flood: recorded up to its source's limit");
    assert_eq!(from("[from 192.0.2.44]"), 1, "the other source's event is in the trail");
    assert_eq!(events.len() as u32, PER_SOURCE + 1);
}

#[tokio::test]
async fn two_approvers_are_needed_and_the_requesters_own_approval_never_counts() {
    let app = spawn_app_with(|c| c.approval.create_repository_approvals = 2).await;
    // Rita is an admin too: she may decide other people's requests, never her own.
    let rita = app.sign_in("rita", "admin").await;
    let adam = app.sign_in("adam", "admin").await;
    let bea = app.sign_in("bea", "admin").await;
    let name = unique("two");
    let (_, r) = rita.submit(&name).await;
    let id = r["summary"]["id"].as_i64().expect("id");
    assert_eq!(r["approvals_required"], 2);

    let (s, own) = rita.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(s, 403, "{own}");
    let (s, d) = adam.post(&format!("/api/v1/requests/{id}/approve"), json!({"comment": "looks right"})).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["summary"]["status"], "pending", "one approval of two leaves it pending");
    assert_eq!(d["approvals"].as_array().expect("approvals").len(), 1);
    assert_eq!(d["approvals"][0]["approver"], "local:adam");
    let (s, again) = adam.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(s, 409, "the same approver twice: {again}");
    let (s, own) = rita.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(s, 403, "still not her own: {own}");
    let (_, d) = rita.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(d["summary"]["status"], "pending");
    assert!(app.ecr().await.describe_repositories().repository_names(format!("crytera/{name}")).send().await.is_err());

    let (s, d) = bea.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(s, 200, "{d}");
    let done = bea.wait_settled(id).await;
    assert_eq!(done["summary"]["status"], "applied", "{done}");
    let found = app.ecr().await.describe_repositories().repository_names(format!("crytera/{name}")).send().await;
    assert!(found.is_ok(), "created in moto after the second approval");
    let actions: Vec<&str> =
        done["timeline"].as_array().expect("timeline").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(&actions[..3], &["request_submitted", "approval_given", "request_approved"], "{actions:?}");
}

#[tokio::test]
async fn approval_groups_come_from_the_policy() {
    // New repositories are approved by platform-leads only (not the default ecr-admins).
    let app = spawn_app_with(|c| c.approval.create_repository_groups = vec!["platform-leads".into()]).await;
    let rita = app.sign_in("rita", "requester").await;
    let (_, r) = rita.submit(&unique("groups")).await;
    let id = r["summary"]["id"].as_i64().expect("id");
    assert_eq!(r["approver_groups"], json!(["platform-leads"]));
    // A local admin stands for every approver group of the policy.
    let adam = app.sign_in("adam", "admin").await;
    let (s, d) = adam.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(s, 200, "{d}");
}

#[tokio::test]
async fn pending_requests_expire_after_the_configured_time() {
    let clock = manual_clock();
    let app = spawn_app_full(
        |c| {
            c.approval.pending_expiry_hours = 48;
            c.worker.enabled = false;
        },
        Some(clock.clone()),
    )
    .await;
    let rita = app.sign_in("rita", "requester").await;
    let (_, r) = rita.submit(&unique("old")).await;
    let id = r["summary"]["id"].as_i64().expect("id");
    assert!(r["expires_at"].as_str().expect("expiry shown").starts_with("2026-11-29"), "{r}");
    clock.advance_ms(47 * 3_600_000);
    assert_eq!(app.service.expire_pending().await.expect("expire"), 0);
    clock.advance_ms(2 * 3_600_000);
    let rita = app.sign_in("rita", "requester").await;
    assert_eq!(app.service.expire_pending().await.expect("expire"), 1);
    let (_, d) = rita.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(d["summary"]["status"], "rejected");
    assert!(d["decision_comment"].as_str().expect("why").contains("expired"), "{d}");
    let last = d["timeline"].as_array().expect("timeline").last().cloned().expect("event");
    assert_eq!((last["action"].as_str(), last["actor"].as_str()), (Some("request_expired"), Some("system:worker")));
}

#[tokio::test]
async fn api_tokens_are_shown_once_scoped_attributed_revocable_and_expire() {
    let clock = manual_clock();
    let app = spawn_app_full(|_| {}, Some(clock.clone())).await;
    let rita = app.sign_in("rita", "requester").await;
    let (s, created) = create_token(&rita, "ci-deploy", "submit", 30).await;
    assert_eq!(s, 200, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("ecrp_") && secret.len() > 60);
    let (_, list) = rita.post("/rpc/list_tokens", json!({})).await;
    assert_eq!(list[0]["state"], "active");
    assert!(!list.to_string().contains(&secret), "the list never shows the secret again");

    let ci = reqwest::Client::new();
    let submit = |body: Value| ci.post(format!("{}/api/v1/requests", app.base)).bearer_auth(&secret).json(&body).send();
    let r = submit(request_body(&unique("ci"))).await.expect("submit");
    assert_eq!(r.status(), 201);
    let d: Value = r.json().await.expect("json");
    assert_eq!(d["summary"]["requester"], "local:rita", "the token acts for its owner");
    assert!(d["timeline"][0]["detail"].as_str().expect("detail").contains("through API token #1 (ci-deploy)"));

    // Every use is in the audit trail, attributed to the token; the secret is nowhere.
    let aude = app.sign_in("aude", "auditor").await;
    let (_, used) = aude.get("/api/v1/audit?action=token_used").await;
    let used = used["events"].as_array().expect("events").clone();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0]["actor"], "local:rita");
    assert!(used[0]["detail"]
        .as_str()
        .expect("detail")
        .contains("API token #1 (ci-deploy): POST /api/v1/requests → 201"));
    let export = aude.http.get(format!("{}/api/v1/audit/export?format=ndjson", app.base)).send().await.expect("export");
    let export = export.text().await.expect("text");
    assert!(!export.contains(&secret) && !export.contains(&secret[5..]), "no secret in the audit trail");
    assert!(export.contains("token_created"));

    // Revoked: refused, and the refusal is recorded.
    let (s, _) = rita.post("/rpc/revoke_token", json!({"id": 1})).await;
    assert_eq!(s, 200);
    let r = submit(request_body(&unique("ci"))).await.expect("submit");
    assert_eq!(r.status(), 401);
    let (_, failed) = aude.get("/api/v1/audit?action=sign_in_failed").await;
    assert!(failed["events"][0]["detail"].as_str().expect("detail").contains("API token #1 was revoked"));

    // Bad input gets field errors and creates nothing.
    let (s, e) = create_token(&rita, "", "everything", 400).await;
    assert_eq!(s, 422, "{e}");
    let fields: Vec<&str> =
        e["Invalid"].as_array().expect("fields").iter().filter_map(|f| f["field"].as_str()).collect();
    assert_eq!(fields, ["name", "scope", "days"]);
    let (_, list) = rita.post("/rpc/list_tokens", json!({})).await;
    assert_eq!(list.as_array().expect("tokens").len(), 1);

    // Expired: refused.
    let (_, created) = create_token(&rita, "short", "user", 1).await;
    let short = created["secret"].as_str().expect("secret").to_string();
    let me = |t: String| ci.get(format!("{}/api/v1/requests", app.base)).bearer_auth(t).send();
    assert_eq!(me(short.clone()).await.expect("get").status(), 200);
    clock.advance_ms(25 * 3_600_000);
    assert_eq!(me(short).await.expect("get").status(), 401);
    assert_eq!(me("ecrp_not-a-token".into()).await.expect("get").status(), 401);
}

#[tokio::test]
async fn pages_carry_a_nonce_based_csp_and_the_security_headers() {
    let app = spawn_app().await;
    let r = app.anonymous().http.get(format!("{}/login", app.base)).send().await.expect("page");
    let h = r.headers().clone();
    let csp = h.get("content-security-policy").expect("CSP").to_str().expect("ascii").to_string();
    let nonce = csp.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("nonce in CSP").to_string();
    assert!(nonce.len() >= 16);
    for part in ["frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "'wasm-unsafe-eval'"] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(h.get("x-content-type-options").map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
    assert_eq!(h.get("referrer-policy").map(|v| v.as_bytes()), Some(&b"same-origin"[..]));
    assert!(h.get("strict-transport-security").is_none(), "no HSTS over plain http");
    let html = r.text().await.expect("html");
    let tags: Vec<&str> = html.split("<script").skip(1).map(|t| t.split('>').next().unwrap_or("")).collect();
    assert!(!tags.is_empty());
    for t in tags {
        assert!(t.contains(&format!("nonce=\"{nonce}\"")), "a script without this response's nonce: <script{t}>");
    }
    // Another page load, another nonce.
    let again = app.anonymous().http.get(format!("{}/login", app.base)).send().await.expect("page");
    let csp2 = again.headers().get("content-security-policy").expect("CSP").to_str().expect("ascii").to_string();
    assert_ne!(csp, csp2);
    // API answers get the strictest policy.
    let r = app.anonymous().http.get(format!("{}/api/v1/me", app.base)).send().await.expect("api");
    assert_eq!(
        r.headers().get("content-security-policy").map(|v| v.as_bytes()),
        Some(&b"default-src 'none'; frame-ancestors 'none'"[..])
    );
}

#[tokio::test]
async fn over_https_cookies_are_host_prefixed_and_secure_with_hsts() {
    let app = spawn_app_with(|c| c.server.public_url = "https://ecr.example.com".into()).await;
    let r = app
        .anonymous()
        .http
        .post(format!("{}/auth/local", app.base))
        .header("accept", "application/json")
        .form(&[("username", "rita"), ("role", "requester")])
        .send()
        .await
        .expect("sign in");
    let cookie = r.headers().get("set-cookie").expect("cookie").to_str().expect("ascii").to_string();
    assert!(cookie.starts_with("__Host-ecr_portal_session="), "{cookie}");
    for part in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert!(!cookie.contains("Domain="));
    assert!(r.headers().get("strict-transport-security").is_some());
    // The public origin is accepted as same-origin.
    let value = cookie.split(';').next().expect("pair").to_string();
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/requests", app.base))
        .header("cookie", value)
        .header("origin", "https://ecr.example.com")
        .json(&request_body(&unique("https")))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn sessions_are_new_at_sign_in_and_end_on_the_server_at_sign_out() {
    let app = spawn_app().await;
    let rita = app.sign_in("rita", "requester").await;
    let cookie = |r: &reqwest::Response| {
        r.headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").to_string())
    };
    let login = || {
        reqwest::Client::new()
            .post(format!("{}/auth/local", app.base))
            .header("accept", "application/json")
            .form(&[("username", "rita"), ("role", "requester")])
            .send()
    };
    let first = cookie(&login().await.expect("sign in")).expect("cookie");
    let second = cookie(&login().await.expect("sign in")).expect("cookie");
    assert_ne!(first, second, "a new session id at every sign-in");
    let with = |c: &str| {
        reqwest::Client::new().get(format!("{}/api/v1/requests", app.base)).header("cookie", c.to_string()).send()
    };
    assert_eq!(with(&first).await.expect("get").status(), 200);
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let out = no_redirects
        .post(format!("{}/auth/logout", app.base))
        .header("cookie", first.clone())
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 303);
    assert!(cookie(&out).is_some_and(|c| c.ends_with('=')), "the cookie is cleared");
    assert_eq!(with(&first).await.expect("get").status(), 401, "the old cookie is dead on the server");
    assert_eq!(with(&second).await.expect("get").status(), 200, "other sessions live on");
    drop(rita);
}

#[tokio::test]
async fn oversized_bodies_and_fields_are_refused_clearly() {
    let app = spawn_app().await;
    let rita = app.sign_in("rita", "requester").await;
    let mut body = request_body(&unique("big"));
    body["justification"] = json!("x".repeat(100_000));
    let (s, _) = rita.post("/api/v1/requests", body).await;
    assert_eq!(s, 413);
    let mut body = request_body(&unique("long"));
    body["justification"] = json!("x".repeat(5_000));
    let (s, e) = rita.post("/api/v1/requests", body).await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"]["fields"][0]["field"], "justification");
    let (_, list) = rita.get("/api/v1/requests").await;
    assert_eq!(list.as_array().expect("list").len(), 0);
}

#[tokio::test]
async fn sessions_are_kept_alive_by_use_and_end_after_idling_and_tokens_record_their_last_use() {
    let clock = manual_clock();
    let app = spawn_app_full(|c| c.auth.session_idle_minutes = 30, Some(clock.clone())).await;
    let rita = app.sign_in("rita", "requester").await;
    let sessions = || async {
        let pool = &app.service.db.pool;
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT last_seen FROM sessions").fetch_all(pool).await.expect("read");
        rows.into_iter().map(|r| r.0).collect::<Vec<i64>>()
    };
    let started = sessions().await;
    assert_eq!(started.len(), 1);

    // Used 20 minutes later: still signed in, and the session was touched.
    clock.advance_ms(20 * 60_000);
    assert_eq!(rita.get("/api/v1/me").await.1["user"]["id"], "local:rita");
    let touched = sessions().await;
    assert_eq!(touched, vec![started[0] + 20 * 60_000], "last_seen moved with the use");

    // 20 more minutes (40 since sign-in, 20 since the last use): still alive.
    clock.advance_ms(20 * 60_000);
    assert_eq!(rita.get("/api/v1/me").await.1["user"]["id"], "local:rita");
    // Then 31 idle minutes: the session ends and its row is deleted.
    clock.advance_ms(31 * 60_000);
    assert!(rita.get("/api/v1/me").await.1["user"].is_null(), "signed out after idling");
    assert!(sessions().await.is_empty(), "the idle session was deleted");

    // A token records when it was last used (at most once a minute).
    let rita = app.sign_in("rita", "requester").await;
    let (_, created) = rita.post("/rpc/create_token", json!({"name": "ci", "scope": "user", "days": 5})).await;
    let secret = created["secret"].as_str().expect("secret").to_string();
    let (_, list) = rita.post("/rpc/list_tokens", json!({})).await;
    assert!(list[0]["last_used_at"].is_null(), "{list}");
    let used = reqwest::Client::new()
        .get(format!("{}/api/v1/requests", app.base))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("use the token");
    assert_eq!(used.status(), 200);
    let (_, list) = rita.post("/rpc/list_tokens", json!({})).await;
    assert!(list[0]["last_used_at"].is_string(), "{list}");
}

#[tokio::test]
async fn an_approver_decides_what_their_group_decides_and_nothing_more() {
    let app = spawn_app_with(|c| c.approval.grant_production_groups = vec!["prod-approvers".into()]).await;
    let rita = app.sign_in("rita", "requester").await;
    let adam = app.sign_in("adam", "admin").await;
    let pia = app.sign_in("pia", "approver").await;
    let (_, me) = pia.get("/api/v1/me").await;
    assert_eq!(
        (me["user"]["role"].as_str(), me["user"]["groups"].clone()),
        (Some("requester"), json!(["prod-approvers"]))
    );
    // A repository, created by an admin's approval; then a grant request, which Pia's group decides.
    let name = unique("approver");
    let (_, created) = rita.submit(&name).await;
    let create_id = created["summary"]["id"].as_i64().expect("id");
    assert_eq!(pia.post(&format!("/api/v1/requests/{create_id}/approve"), json!({})).await.0, 403);
    adam.post(&format!("/api/v1/requests/{create_id}/approve"), json!({})).await;
    assert_eq!(adam.wait_settled(create_id).await["summary"]["status"], "applied");
    let full = format!("crytera/{name}");
    let body = json!({"kind": "grant_production", "repository": full, "justification": "EKS pulls it"});
    let (s, grant) = rita.post("/api/v1/requests", body).await;
    assert_eq!(s, 201, "{grant}");
    let grant_id = grant["summary"]["id"].as_i64().expect("id");
    // Pia sees the grant (hers to decide), not the create request (an admin's).
    let (_, list) = pia.get("/api/v1/requests").await;
    let ids: Vec<i64> = list.as_array().expect("list").iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, [grant_id]);
    assert_eq!(pia.get(&format!("/api/v1/requests/{grant_id}")).await.0, 200);
    assert_eq!(pia.get(&format!("/api/v1/requests/{create_id}")).await.0, 403);
    // She decides it.
    let (s, d) = pia.post(&format!("/api/v1/requests/{grant_id}/approve"), json!({})).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(pia.wait_settled(grant_id).await["summary"]["status"], "applied");
    // And operates nothing: retry, adopt, check, accept and restore are the admins'.
    for (path, body) in [
        (format!("/api/v1/requests/{grant_id}/retry"), json!({})),
        ("/api/v1/repositories/adopt".to_string(), json!({"name": full})),
        ("/api/v1/repositories/check".to_string(), json!({"name": full})),
        ("/api/v1/repositories/accept".to_string(), json!({"name": full})),
        ("/api/v1/repositories/restore".to_string(), json!({"name": full})),
    ] {
        let (s, b) = pia.post(&path, body).await;
        assert_eq!(s, 403, "{path}: {b}");
    }
    assert_eq!(pia.get("/api/v1/audit").await.0, 403);
}

#[tokio::test]
async fn a_failed_apply_is_not_retried_over_a_newer_decision() {
    let app = spawn_app_with(|c| c.worker.enabled = false).await;
    let rita = app.sign_in("rita", "requester").await;
    let adam = app.sign_in("adam", "admin").await;
    let name = unique("stale");
    let full = format!("crytera/{name}");
    let ecr = app.ecr().await;
    ecr.create_repository().repository_name(&full).send().await.expect("create");
    let body = |kind: &str| json!({"kind": kind, "repository": full, "justification": "EKS pulls it"});
    // A grant that fails: the repository is gone by the time it is applied.
    let (_, grant) = rita.post("/api/v1/requests", body("grant_production")).await;
    let grant_id = grant["summary"]["id"].as_i64().expect("id");
    assert_eq!(adam.post(&format!("/api/v1/requests/{grant_id}/approve"), json!({})).await.0, 200);
    ecr.delete_repository().repository_name(&full).send().await.expect("delete");
    assert!(matches!(app.apply_once().await, server::service::ApplyOutcome::Failed(id, _) if id == grant_id));
    // The repository is back, and a revoke is decided and applied after the failed grant.
    ecr.create_repository().repository_name(&full).send().await.expect("create again");
    let (s, revoke) = rita.post("/api/v1/requests", body("revoke_production")).await;
    assert_eq!(s, 201, "{revoke}");
    let revoke_id = revoke["summary"]["id"].as_i64().expect("id");
    assert_eq!(adam.post(&format!("/api/v1/requests/{revoke_id}/approve"), json!({})).await.0, 200);
    assert_eq!(app.apply_once().await, server::service::ApplyOutcome::Applied(revoke_id));
    // Retrying the old grant would undo the revoke: refused, and nothing moves.
    let (s, b) = adam.post(&format!("/api/v1/requests/{grant_id}/retry"), json!({})).await;
    assert_eq!(s, 409, "{b}");
    assert!(b["error"]["message"].as_str().unwrap_or("").contains(&format!("#{revoke_id}")), "{b}");
    assert_eq!(adam.get(&format!("/api/v1/requests/{grant_id}")).await.1["summary"]["status"], "failed");
    assert_eq!(app.apply_once().await, server::service::ApplyOutcome::Idle);
    let policy = ecr.get_repository_policy().repository_name(&full).send().await;
    assert!(policy.is_err(), "production was not granted: {policy:?}");
}
