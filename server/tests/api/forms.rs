//! The pages' forms without JavaScript: each one that changes something is a plain HTML
//! form the server answers (a redirect to what it made; a refused request's page again with
//! what was typed and the parser's own messages; a new token's secret in the answer).
//! Results are checked through the API and in moto.
use super::helpers::*;
use app::domain::name::Namespace;
use app::domain::web_form::RepositoryForm;
use aws_sdk_ecr::types::ImageTagMutability;
use serde_json::json;

/// What a page shows under a field (its `<p data-field=…>`), as text.
fn field_error(page: &str, field: &str) -> String {
    let Some(at) = page.find(&format!("data-field=\"{field}\"")) else { return String::new() };
    let rest = &page[at..];
    let open = rest.find('>').map_or(rest.len(), |i| i + 1);
    let text = &rest[open..open + rest[open..].find("</p>").unwrap_or(0)];
    // Without Leptos's markers (`<!>`, `<!--…-->`).
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("<!") {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end =
            if rest.starts_with("<!--") { rest.find("-->").map(|e| e + 3) } else { rest.find('>').map(|e| e + 1) };
        rest = &rest[end.unwrap_or(rest.len())..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

fn no_store(r: &reqwest::Response) -> bool {
    r.headers().get("cache-control").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("no-store"))
}

#[tokio::test]
async fn a_refused_repository_request_comes_back_with_what_was_typed_and_a_good_one_opens() {
    let app = spawn_app().await;
    let nora = app.sign_in("nora", "requester").await;
    let cookie = app.session_cookie("nora", "requester").await;
    let bad = RepositoryForm {
        name: "Bad Name".into(),
        tag_mutability: "MUTABLE".into(),
        encryption: "AES256".into(),
        keep_last_images: "ten".into(),
        team: "platform".into(),
        justification: "<b>for the mesh</b>".into(),
        ..RepositoryForm::default()
    };
    let form = |f: &RepositoryForm| {
        vec![
            ("name", f.name.clone()),
            ("tag_mutability", f.tag_mutability.clone()),
            ("encryption", f.encryption.clone()),
            ("kms_key_arn", f.kms_key_arn.clone()),
            ("keep_last_images", f.keep_last_images.clone()),
            ("expire_untagged_after_days", f.expire_untagged_after_days.clone()),
            ("team", f.team.clone()),
            ("cost_center", f.cost_center.clone()),
            ("justification", f.justification.clone()),
        ]
    };
    let r = post_form(&app, &cookie, "/requests/new", &form(&bad)).await;
    assert_eq!(r.status(), 422);
    assert!(r.headers()["content-type"].to_str().unwrap_or("").starts_with("text/html"));
    assert!(no_store(&r), "what was typed is not kept in caches");
    let page = r.text().await.expect("the page");
    // The same messages the page's script shows, from the same parser, each under its field.
    let expected = bad.input(&Namespace::parse("crytera").expect("ns")).expect_err("refused");
    assert!(expected.len() >= 3, "{expected:?}");
    for e in &expected {
        let first = expected.iter().find(|x| x.field == e.field).expect("itself");
        assert_eq!(field_error(&page, &e.field), first.message, "under {}", e.field);
    }
    assert_eq!(field_error(&page, "team"), "", "a good field has no message");
    // Nothing typed is lost: the fields hold it (as text, not markup).
    assert!(
        page.contains("value=\"Bad Name\"") && page.contains("value=\"platform\"") && page.contains("value=\"ten\"")
    );
    let at = page.find("<textarea id=\"justification\"").expect("the justification field");
    let field = &page[at..at + page[at..].find("</textarea>").expect("its end")];
    assert!(field.ends_with(">&lt;b>for the mesh&lt;/b>"), "{field}");
    assert!(!page.contains("<b>for the mesh"));
    assert!(page.contains("<option value=\"MUTABLE\" selected"), "the choice is kept");
    assert_eq!(nora.get("/api/v1/requests").await.1.as_array().map(Vec::len), Some(0), "nothing was filed");

    let name = unique("nojs");
    let good = RepositoryForm {
        name: name.clone(),
        keep_last_images: "10".into(),
        cost_center: "cc-7".into(),
        justification: "for the mesh".into(),
        ..bad
    };
    let mut fields = form(&good);
    fields.push(("grant_production", "true".into()));
    let r = post_form(&app, &cookie, "/requests/new", &fields).await;
    assert_eq!(r.status(), 303);
    let at = location(&r);
    let id: i64 = at.strip_prefix("/requests/").and_then(|i| i.parse().ok()).unwrap_or_else(|| panic!("{at}"));
    let (_, d) = nora.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(d["summary"]["repository"], format!("crytera/{name}"));
    assert_eq!(d["summary"]["status"], "pending");
    // An unticked box is off, a ticked one on; the choices and numbers arrive as chosen.
    assert_eq!(d["kind"]["grant_production"], true, "{d}");
    assert_eq!(d["kind"]["spec"]["scan_on_push"], false);
    assert_eq!(d["kind"]["spec"]["tag_mutability"], "MUTABLE");
    assert!(d["kind"]["spec"]["lifecycle"].to_string().contains("10"), "{d}");
}

#[tokio::test]
async fn an_admin_approves_rejects_and_retries_with_plain_forms() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let bob_cookie = app.session_cookie("bob", "admin").await;
    let alice_cookie = app.session_cookie("alice", "requester").await;
    let ecr = app.ecr().await;

    let name = unique("approved");
    let id = id_of(&alice.submit(&name).await.1);
    // The requester's own form is refused, on a page that says why and links back.
    let r = post_form(&app, &alice_cookie, &format!("/requests/{id}/approve"), &[("comment", "mine".into())]).await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.expect("page");
    assert!(page.contains("Approval not submitted") && page.contains(&format!("href=\"/requests/{id}\"")), "{page}");

    let r =
        post_form(&app, &bob_cookie, &format!("/requests/{id}/approve"), &[("comment", "looks right".into())]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("/requests/{id}"));
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "applied", "{d}");
    let live = ecr.describe_repositories().repository_names(format!("crytera/{name}")).send().await.expect("in moto");
    assert_eq!(live.repositories().len(), 1);

    let other = id_of(&alice.submit(&unique("rejected")).await.1);
    let r = post_form(&app, &bob_cookie, &format!("/requests/{other}/reject"), &[("comment", "not now".into())]).await;
    assert_eq!(r.status(), 303);
    let (_, d) = bob.get(&format!("/api/v1/requests/{other}")).await;
    assert_eq!(d["summary"]["status"], "rejected");
    assert_eq!(d["decision_comment"], "not now");
    // A second decision is refused clearly.
    let r = post_form(&app, &bob_cookie, &format!("/requests/{other}/approve"), &[("comment", String::new())]).await;
    assert_eq!(r.status(), 409);

    // A failed apply, retried with the Retry form once the cause is gone.
    let clash = unique("clash");
    let full = format!("crytera/{clash}");
    let id = id_of(&alice.submit(&clash).await.1);
    ecr.create_repository()
        .repository_name(&full)
        .image_tag_mutability(ImageTagMutability::Mutable)
        .send()
        .await
        .expect("create");
    assert_eq!(post_form(&app, &bob_cookie, &format!("/requests/{id}/approve"), &[]).await.status(), 303);
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "failed");
    ecr.delete_repository().repository_name(&full).send().await.expect("delete");
    let r = post_form(&app, &bob_cookie, &format!("/requests/{id}/retry"), &[]).await;
    assert_eq!(r.status(), 303);
    let d = bob.wait_settled(id).await;
    assert_eq!(d["summary"]["status"], "applied", "{d}");
    assert_eq!(d["attempts"], 2);
}

#[tokio::test]
async fn access_adoption_and_drift_forms_work_without_javascript() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let alice_cookie = app.session_cookie("alice", "requester").await;
    let bob_cookie = app.session_cookie("bob", "admin").await;
    let name = managed_repo(&alice, &bob, "access").await;

    // Refused: the page again, with the repository kept and the problem named.
    let form = |justification: &str| {
        vec![
            ("repository", name.clone()),
            ("action", "grant".to_string()),
            ("until", String::new()),
            ("justification", justification.to_string()),
        ]
    };
    let r = post_form(&app, &alice_cookie, "/requests/access", &form("  ")).await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.expect("page");
    assert!(page.contains(&format!("value=\"{name}\"")), "the repository is kept");
    assert!(!field_error(&page, "justification").is_empty(), "the problem is under its field");
    assert_eq!(field_error(&page, "repository"), "");
    let r = post_form(&app, &alice_cookie, "/requests/access", &form("EKS pulls these")).await;
    assert_eq!(r.status(), 303);
    let id: i64 = location(&r).trim_start_matches("/requests/").parse().expect("an id");
    let (_, d) = alice.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(d["summary"]["kind"], "grant_production");

    // A repository made outside the portal, adopted with the Adopt form.
    let outside = format!("crytera/{}", unique("outside"));
    app.ecr().await.create_repository().repository_name(&outside).send().await.expect("create in moto");
    let _ = bob.post("/api/v1/repositories/check", json!({})).await;
    let r = post_form(&app, &bob_cookie, "/repositories/adopt", &[("name", outside.clone())]).await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/repositories?q="), "{}", location(&r));
    assert_eq!(bob.repository(&outside).await["managed"], true);
    // Requesters may not adopt: the refused page.
    let r = post_form(&app, &alice_cookie, "/repositories/adopt", &[("name", outside.clone())]).await;
    assert_eq!(r.status(), 403);

    // Drift: a hand edit, seen by the Check form, accepted by the Accept form.
    app.ecr()
        .await
        .put_image_tag_mutability()
        .repository_name(&outside)
        // (moto makes repositories mutable; adopted as that.)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .expect("hand edit");
    let r = post_form(&app, &bob_cookie, "/repositories/check", &[("name", String::new())]).await;
    assert_eq!(r.status(), 303);
    assert!(!bob.repository(&outside).await["drift"].as_array().expect("drift").is_empty());
    let r = post_form(&app, &bob_cookie, "/repositories/accept", &[("name", outside.clone())]).await;
    assert_eq!(r.status(), 303);
    assert!(bob.repository(&outside).await["drift"].as_array().expect("drift").is_empty());
}

#[tokio::test]
async fn a_token_made_without_javascript_shows_its_secret_once_and_is_revoked_by_its_form() {
    let app = spawn_app().await;
    let cookie = app.session_cookie("piper", "requester").await;
    let form = |days: &str| vec![("name", "ci-deploy".to_string()), ("scope", "submit".into()), ("days", days.into())];
    let r = post_form(&app, &cookie, "/tokens", &form("a month")).await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.expect("page");
    assert!(page.contains("enter a whole number of days") && page.contains("value=\"a month\""), "{page}");
    assert!(page.contains("value=\"ci-deploy\""), "the name is kept");

    let r = post_form(&app, &cookie, "/tokens", &form("30")).await;
    assert_eq!(r.status(), 201);
    let page = r.text().await.expect("page");
    let at = page.find("value=\"ecrp_").expect("the secret is in the answer") + "value=\"".len();
    let secret = &page[at..at + "ecrp_".len() + 64];
    let bearer = reqwest::Client::new();
    let me = |s: &str| bearer.get(format!("{}/api/v1/me", app.base)).bearer_auth(s.to_string()).send();
    let who: serde_json::Value = me(secret).await.expect("me").json().await.expect("json");
    assert_eq!(who["user"]["id"], "local:piper");
    // Shown once: the tokens page does not have it.
    let later = browser().get(format!("{}/tokens", app.base)).header("cookie", &cookie).send().await.expect("page");
    assert!(!later.text().await.expect("page").contains(secret));

    // Its Revoke form, on the same page.
    let at = page.find("action=\"/tokens/").expect("a revoke form") + "action=\"/tokens/".len();
    let id: i64 = page[at..].split('/').next().and_then(|i| i.parse().ok()).expect("the token's id");
    let r = post_form(&app, &cookie, &format!("/tokens/{id}/revoke"), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(me(secret).await.expect("me").status(), 401);
}

#[tokio::test]
async fn a_token_form_sent_twice_makes_one_token_and_a_cross_site_one_makes_none() {
    let app = spawn_app().await;
    let cookie = app.session_cookie("piper", "requester").await;
    let page = browser().get(format!("{}/tokens", app.base)).header("cookie", &cookie).send().await.expect("page");
    let page = page.text().await.expect("page");
    let at = page.find("name=\"once\" value=\"").expect("the form's nonce") + "name=\"once\" value=\"".len();
    let once = page[at..].split('"').next().expect("its value").to_string();
    assert_eq!(once.len(), 32, "{once}");
    assert!(!page.contains(&format!("nonce=\"{once}\"")), "not the page's script nonce");
    let form = vec![
        ("once", once.clone()),
        ("name", "ci".to_string()),
        ("scope", "submit".to_string()),
        ("days", "30".to_string()),
    ];
    // Refused (not a number of days): nothing made, so the same form may be sent again, fixed.
    let mut bad = form.clone();
    bad[3].1 = "soon".into();
    assert_eq!(post_form(&app, &cookie, "/tokens", &bad).await.status(), 422);
    let first = post_form(&app, &cookie, "/tokens", &form).await;
    assert_eq!(first.status(), 201);
    assert!(no_store(&first), "the secret's page is not cached");
    // A reload of that answer posts the same form again: refused, nothing made.
    let again = post_form(&app, &cookie, "/tokens", &form).await;
    assert_eq!(again.status(), 409);
    let again = again.text().await.expect("page");
    assert!(!again.contains("value=\"ecrp_"));
    assert!(again.contains("made token #1"), "it names the token the form made");
    // A key this server never hands out is no key (no guard, no memory held for it).
    let mut odd = form.clone();
    odd[0].1 = "x".repeat(5000);
    odd[1].1 = "ci-2".into();
    assert_eq!(post_form(&app, &cookie, "/tokens", &odd).await.status(), 201);
    // From another site: refused before anything is made.
    let cross = browser()
        .post(format!("{}/tokens", app.base))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("name", "evil"), ("scope", "act_as_me"), ("days", "30")])
        .send()
        .await
        .expect("post");
    assert_eq!(cross.status(), 403);
    let list = browser().get(format!("{}/tokens", app.base)).header("cookie", &cookie).send().await.expect("page");
    let list = list.text().await.expect("page");
    assert_eq!(list.matches("action=\"/tokens/").count(), 2, "two tokens, one Revoke form each");
}
