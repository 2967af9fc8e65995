//! The OpenAPI document: served, complete, listed in the README, and true to the
//! answers. Every JSON answer the API tests get through `User::get`/`User::post`
//! is checked here against the document ([`check_answer`]): its status must be
//! one the operation lists and its body must match that status's schema
//! (JSON Schema 2020-12, with `date-time` formats checked as RFC 3339).
use crate::helpers::spawn_app;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

static DOC: LazyLock<Value> = LazyLock::new(server::http::api::openapi);

static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = LazyLock::new(Default::default);

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The documented path template a concrete path matches (the one with most literal segments).
fn template(path: &str) -> Option<&'static str> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(&'static str, usize)> = None;
    for t in DOC["paths"].as_object()?.keys() {
        let parts: Vec<&str> = t.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let matches = parts.iter().zip(&segments).all(|(p, s)| {
            if p.starts_with('{') {
                !s.is_empty()
            } else {
                literal += 1;
                p == s
            }
        });
        if matches && best.is_none_or(|(_, l)| literal > l) {
            best = Some((t.as_str(), literal));
        }
    }
    best.map(|(t, _)| t)
}

fn validator(key: String, schema: &Value) -> Arc<jsonschema::Validator> {
    let mut cache = VALIDATORS.lock().expect("the validator cache");
    cache
        .entry(key)
        .or_insert_with(|| {
            let root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": DOC["components"],
                "allOf": [schema],
            });
            Arc::new(
                jsonschema::draft202012::options()
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("the document's schema does not compile: {e}\n{schema}")),
            )
        })
        .clone()
}

fn validate(what: &str, key: String, schema: &Value, body: &Value) {
    let v = validator(key, schema);
    let errors: Vec<String> = v.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(
        errors.is_empty(),
        "{what}: the answer does not match the OpenAPI document:\n{}\n{body:#}",
        errors.join("\n")
    );
}

/// Fails when an answer of the JSON API is not what the document says: a status the
/// operation does not list, a content type or body its schema refuses, a documented
/// header missing; and when a request the portal accepted (2xx) has a body the
/// document's request schema refuses. `body` is `Null` when the answer was not JSON.
pub fn check_answer(
    method: &str,
    path: &str,
    request: Option<&Value>,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
) {
    if !path.starts_with("/api/v1/") {
        return;
    }
    let what = format!("{method} {path} → {status}");
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(t) = template(path) else {
        // Not a route: only the JSON 404 may answer.
        assert_eq!(status, 404, "{what}: the OpenAPI document has no such path, yet it answered");
        validate(&what, "ErrorBody".into(), &json!({"$ref": "#/components/schemas/ErrorBody"}), body);
        return;
    };
    let m = method.to_ascii_lowercase();
    let op = &DOC["paths"][t][&m];
    if op.is_null() {
        assert_eq!(status, 405, "{what}: {t} has no {method} in the OpenAPI document, yet it answered");
        return;
    }
    let answer = &op["responses"][status.to_string()];
    assert!(!answer.is_null(), "{what}: {method} {t} does not list {status} in the OpenAPI document");
    for (name, _) in answer["headers"].as_object().into_iter().flatten() {
        assert!(headers.contains_key(name.as_str()), "{what}: the documented header `{name}` is missing");
    }
    if let Some(schema) = answer.pointer("/content/application~1json/schema") {
        assert!(content_type.starts_with("application/json"), "{what}: documented as JSON, sent as `{content_type}`");
        assert!(!body.is_null(), "{what}: the document says JSON, the answer was not JSON");
        validate(&what, format!("{m} {t} {status}"), schema, body);
    } else if let Some(types) = answer["content"].as_object() {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        assert!(types.contains_key(essence), "{what}: sent as `{content_type}`, documented as {:?}", types.keys());
    }
    if let (Some(sent), true) = (request, (200..300).contains(&status)) {
        if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
            validate(&format!("{what} (the request it accepted)"), format!("{m} {t} request"), schema, sent);
        }
    }
}

/// Every (method, path template) the document lists.
fn operations() -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in DOC["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.push((m.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_document_is_served_without_signing_in_and_is_openapi_3_1() {
    let app = spawn_app().await;
    let r = reqwest::get(format!("{}/api/v1/openapi.json", app.base)).await.expect("GET the document");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served: Value = r.json().await.expect("JSON");
    assert_eq!(served, *DOC, "the served document is the one the code builds");
    assert!(served["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", served["openapi"]);
    // The schemas are the code's own types, errors included.
    let schemas = served["components"]["schemas"].as_object().expect("schemas");
    for name in ["RequestDetail", "RepositoriesPage", "AuditPage", "ErrorBody", "SubmitBody", "Timestamp"] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
    assert_eq!(schemas["Timestamp"]["format"], "date-time");
    for (method, path) in operations() {
        let op = &served["paths"][&path][method.to_lowercase()];
        assert!(op["summary"].is_string() || op["description"].is_string(), "{method} {path}: not described");
        if path == "/api/v1/openapi.json" {
            continue;
        }
        assert!(
            op["responses"]["422"]["content"]["application/json"]["schema"].is_object(),
            "{method} {path}: error shape"
        );
    }
}

#[test]
fn no_api_route_is_registered_around_the_documented_router() {
    // `utoipa-axum` registers each API route from its handler's `#[utoipa::path]`, so
    // those cannot be missing from the document; a plain axum registration could.
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 20, "the sources were found");
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("a source file");
        for (i, line) in text.lines().enumerate() {
            let registers = [".route(\"/api", ".nest(\"/api", ".route_service(\"/api", ".nest_service(\"/api"]
                .iter()
                .any(|p| line.contains(p));
            if registers && !line.contains("\"/api/v1/{*rest}\"") {
                found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "API routes registered outside the OpenAPI router:\n{}", found.join("\n"));
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_answers_as_documented() {
    let app = spawn_app().await;
    let admin = app.sign_in("opal", "admin").await;
    let ops = operations();
    assert!(ops.len() >= 29, "{ops:?}");
    for (method, path) in ops {
        let concrete = path.replace("{id}", "1");
        let (status, body) = match method.as_str() {
            "GET" => admin.get(&concrete).await,
            "POST" => admin.post(&concrete, json!({})).await,
            other => panic!("{other} {path}: no test for that method"),
        };
        // Routed: not the catch-all's 404 nor a wrong method. (`check_answer` ran in get/post.)
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(!message.starts_with("no such API route"), "{method} {path} is documented but not routed");
        assert_ne!(status, 405, "{method} {path}");
    }
}

#[test]
fn the_readme_lists_exactly_the_documented_operations() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let mut listed = std::collections::BTreeSet::new();
    for line in readme.lines() {
        let Some(rest) = line.strip_prefix("| `") else { continue };
        let mut words = rest.split(['`', ' ', '?']);
        let (Some(method), Some(path)) = (words.next(), words.next()) else { continue };
        if path.starts_with("/api/v1/") {
            listed.insert((method.to_string(), path.to_string()));
        }
    }
    let documented: std::collections::BTreeSet<(String, String)> = operations().into_iter().collect();
    let missing: Vec<_> = documented.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&documented).collect();
    assert!(missing.is_empty(), "in the OpenAPI document but not the README's API table: {missing:?}");
    assert!(extra.is_empty(), "in the README's API table but not the OpenAPI document: {extra:?}");
}

/// A request as `GET /api/v1/requests/{id}` shows it, built from the view types.
fn sample_detail() -> Value {
    use app::domain::time::Timestamp;
    use app::views::{RequestDetail, RequestSummary};
    let ns = app::domain::name::Namespace::parse("crytera").expect("ns");
    let detail = RequestDetail {
        summary: RequestSummary {
            id: 1,
            kind: "revoke_production".into(),
            kind_label: "revoke production access".into(),
            repository: "crytera/x".into(),
            requester: "local:alice".into(),
            status: app::domain::request::Status::Pending,
            created_at: Timestamp::from_unix_ms(0),
            updated_at: Timestamp::from_unix_ms(0),
        },
        kind: app::domain::request::RequestKind::RevokeProduction {
            repository: app::domain::name::RepoName::parse(&ns, "x").expect("name"),
        },
        until: None,
        justification: "j".into(),
        decided_by: None,
        decision_comment: None,
        failure: None,
        attempts: 0,
        plan: app::domain::plan::Plan::default(),
        result: None,
        timeline: vec![],
        approve_blocked: None,
        drift: vec![],
        can_reject: false,
        can_retry: false,
        can_withdraw: true,
        break_glass: None,
        review_pending: false,
        can_break_glass: false,
        can_review: false,
        approvals: vec![],
        approvals_required: 1,
        approver_groups: vec!["ecr-admins".into()],
        expires_at: Some(Timestamp::from_unix_ms(86_400_000)),
    };
    serde_json::to_value(detail).expect("JSON")
}

fn good_me() -> Value {
    json!({"namespace": "crytera", "region": "us-east-1", "staging_account": null,
        "production_account": null, "local_sign_in": true, "oidc_sign_in": false, "user": null, "can_decide": false})
}

#[test]
fn an_answer_that_breaks_the_document_is_caught() {
    // The checker itself: a missing field, a wrong type, a time that is not RFC 3339, an unlisted status.
    let mut json_headers = reqwest::header::HeaderMap::new();
    json_headers.insert("content-type", "application/json".parse().expect("a header value"));
    let h = &json_headers;
    let detail = |v: Value| std::panic::catch_unwind(|| check_answer("GET", "/api/v1/me", None, 200, h, &v)).is_err();
    let good = good_me();
    assert!(!detail(good.clone()), "a true answer passes");
    let mut no_region = good.clone();
    no_region.as_object_mut().expect("object").remove("region");
    assert!(detail(no_region), "a missing field fails");
    let mut wrong = good;
    wrong["local_sign_in"] = json!("yes");
    assert!(detail(wrong), "a wrong type fails");
    let verification = |at: &str| {
        let v = json!({"intact": true, "events": 1, "head": "ab", "broken_at": null, "reason": null, "checked_at": at});
        std::panic::catch_unwind(|| check_answer("GET", "/api/v1/audit/verify", None, 200, h, &v)).is_err()
    };
    assert!(!verification("2026-12-01T21:39:00Z"));
    assert!(verification("2026-12-01 21:39:00 UTC"), "the old time format fails");
    assert!(std::panic::catch_unwind(|| check_answer("GET", "/api/v1/me", None, 418, h, &Value::Null)).is_err());
    assert!(std::panic::catch_unwind(|| check_answer("GET", "/api/v1/nothing-here", None, 200, h, &json!({}))).is_err());
    // JSON sent as something else; a 201 without its documented `location`.
    let text = reqwest::header::HeaderMap::new();
    assert!(std::panic::catch_unwind(|| check_answer("GET", "/api/v1/me", None, 200, &text, &good_me())).is_err());
    let created = |req: &Value| {
        let d = sample_detail();
        std::panic::catch_unwind(|| check_answer("POST", "/api/v1/requests", Some(req), 201, h, &d)).is_err()
    };
    assert!(created(&json!({"name": "x", "team": "t", "cost_center": "c", "justification": "j"})), "no location");
    let mut with_location = json_headers.clone();
    with_location.insert("location", "/api/v1/requests/1".parse().expect("a header value"));
    let accepted = |req: Value| {
        let d = sample_detail();
        let hl = &with_location;
        std::panic::catch_unwind(|| check_answer("POST", "/api/v1/requests", Some(&req), 201, hl, &d)).is_err()
    };
    // The request bodies the portal takes match the document; one it could not have taken does not.
    assert!(
        !accepted(json!({"name": "x", "team": "t", "cost_center": "c", "justification": "j"})),
        "create without kind"
    );
    assert!(!accepted(json!({"kind": "grant_production", "repository": "x", "justification": "j"})));
    assert!(accepted(
        json!({"kind": "create_repository", "name": "x", "team": "t", "cost_center": "c", "justification": "j", "colour": "red"})
    ));
    assert!(accepted(json!({"kind": "grant_production", "repository": "x"})), "no justification");
}

#[tokio::test]
async fn errors_made_before_any_handler_are_the_api_s_json_error_too() {
    let app = spawn_app().await;
    let admin = app.sign_in("opal", "admin").await;
    let (status, body) = admin.get("/api/v1/requests/1/approve").await;
    assert_eq!(status, 405);
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    // A foreign Host (DNS rebinding) is refused before anything else, in the same shape.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/me", app.base))
        .header("host", "evil.example")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 421);
    assert!(r.headers()["content-type"].to_str().unwrap_or("").starts_with("application/json"));
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "misdirected", "{body}");
    // A body over the limit, declared up front (tower-http answers before the handler).
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/requests", app.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 200_000])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "too_large", "{body}");
    // Pages keep their own answers.
    let r =
        reqwest::Client::new().get(format!("{}/requests/new", app.base)).header("host", "evil.example").send().await;
    assert!(!r.expect("GET").headers()["content-type"].to_str().unwrap_or("").starts_with("application/json"));
}
