//! The OpenAPI document: served, complete, listed in the README, and true to the
//! answers. Every JSON answer the API tests get through `User::get`/`User::post`
//! is checked here against the document ([`check_answer`]): its status must be
//! one the operation lists and its body must match that status's schema
//! (JSON Schema 2020-12, with `date-time` formats checked as RFC 3339).
use crate::helpers::spawn_app;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

static DOC: LazyLock<Value> =
    LazyLock::new(|| serde_json::to_value(server::http::api::openapi()).expect("the document as JSON"));

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
/// operation does not list, or a body its schema refuses. `body` is `Null` when the
/// answer was not JSON.
pub fn check_answer(method: &str, path: &str, status: u16, body: &Value) {
    if !path.starts_with("/api/v1/") {
        return;
    }
    let what = format!("{method} {path} → {status}");
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
    let Some(schema) = answer.pointer("/content/application~1json/schema") else {
        return;
    };
    assert!(!body.is_null(), "{what}: the document says JSON, the answer was not JSON");
    validate(&what, format!("{m} {t} {status}"), schema, body);
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

#[test]
fn an_answer_that_breaks_the_document_is_caught() {
    // The checker itself: a missing field, a wrong type, a time that is not RFC 3339, an unlisted status.
    let detail = |v: Value| std::panic::catch_unwind(|| check_answer("GET", "/api/v1/me", 200, &v)).is_err();
    let good = json!({"namespace": "crytera", "region": "us-east-1", "staging_account": null,
        "production_account": null, "local_sign_in": true, "oidc_sign_in": false, "user": null});
    assert!(!detail(good.clone()), "a true answer passes");
    let mut no_region = good.clone();
    no_region.as_object_mut().expect("object").remove("region");
    assert!(detail(no_region), "a missing field fails");
    let mut wrong = good;
    wrong["local_sign_in"] = json!("yes");
    assert!(detail(wrong), "a wrong type fails");
    let verification = |at: &str| {
        let v = json!({"intact": true, "events": 1, "head": "ab", "broken_at": null, "reason": null, "checked_at": at});
        std::panic::catch_unwind(|| check_answer("GET", "/api/v1/audit/verify", 200, &v)).is_err()
    };
    assert!(!verification("2026-12-01T21:39:00Z"));
    assert!(verification("2026-12-01 21:39:00 UTC"), "the old time format fails");
    assert!(std::panic::catch_unwind(|| check_answer("GET", "/api/v1/me", 418, &Value::Null)).is_err());
    assert!(std::panic::catch_unwind(|| check_answer("GET", "/api/v1/nothing-here", 200, &json!({}))).is_err());
}
