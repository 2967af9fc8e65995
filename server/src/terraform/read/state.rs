//! The JSON of `terraform show -json`: the ECR resources of the root module and its children.
use super::{attach_policies, document, line_at, Found, FoundPolicy, FoundRepository, Origin, ReadError};
use serde_json::Value;
use std::collections::BTreeMap;

pub(super) fn read_state(file: &str, text: &str) -> Result<Found, Vec<ReadError>> {
    let at = |line: usize, key: &str, message: String| {
        ReadError::at(Origin { file: file.into(), line, key: key.into() }, message)
    };
    let doc: Value =
        serde_json::from_str(text).map_err(|e| vec![at(e.line(), "(document)", format!("not valid JSON: {e}"))])?;
    let root = doc.pointer("/values/root_module").ok_or_else(|| {
        vec![at(
            1,
            "values.root_module",
            "not the JSON of a state from `terraform show -json` (it has no values.root_module); write it \
             with `terraform show -json > state.json`"
                .into(),
        )]
    })?;
    let mut resources = Vec::new();
    collect_resources(root, &mut resources);
    // Where an address is written in the text (a state is usually one long line).
    let line_of = |address: &str| {
        let quoted = serde_json::to_string(address).unwrap_or_default();
        text.find(&quoted).map_or(1, |i| line_at(text, i))
    };
    let mut found = Found::default();
    let mut errors = Vec::new();
    let mut policies = Vec::new();
    for r in resources {
        if r.get("mode").and_then(Value::as_str) != Some("managed") {
            continue;
        }
        let address = r.get("address").and_then(Value::as_str).unwrap_or("(resource without an address)");
        let values = r.get("values").cloned().unwrap_or(Value::Null);
        let s = |k: &str| values.get(k).and_then(Value::as_str).map(str::to_string);
        let origin = Origin { file: file.into(), line: line_of(address), key: address.into() };
        match r.get("type").and_then(Value::as_str) {
            Some("aws_ecr_repository") => {
                let Some(name) = s("name") else {
                    errors.push(ReadError::at(Origin { key: format!("{address}.name"), ..origin }, "has no name"));
                    continue;
                };
                let first = |block: &str, k: &str| values.pointer(&format!("/{block}/0/{k}")).cloned();
                // `tags_all` has the provider's default tags too; the resource's own win.
                let mut tags: BTreeMap<String, String> = BTreeMap::new();
                for k in ["tags_all", "tags"] {
                    for (k, v) in values.get(k).and_then(Value::as_object).into_iter().flatten() {
                        if let Some(v) = v.as_str() {
                            tags.insert(k.clone(), v.to_string());
                        }
                    }
                }
                found.repositories.push(FoundRepository {
                    name,
                    origin,
                    tag_mutability: s("image_tag_mutability"),
                    scan_on_push: first("image_scanning_configuration", "scan_on_push").and_then(|v| v.as_bool()),
                    encryption_type: first("encryption_configuration", "encryption_type")
                        .and_then(|v| v.as_str().map(str::to_string)),
                    kms_key: first("encryption_configuration", "kms_key")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .filter(|k| !k.is_empty()),
                    tags,
                    ..FoundRepository::default()
                });
            }
            Some(kind @ ("aws_ecr_repository_policy" | "aws_ecr_lifecycle_policy")) => {
                let lifecycle = kind == "aws_ecr_lifecycle_policy";
                let policy_origin = Origin { key: format!("{address}.policy"), ..origin.clone() };
                match (s("repository"), s("policy").map(|p| document(&p))) {
                    (Some(repository), Some(Ok(document))) => {
                        policies.push(FoundPolicy { repository, lifecycle, document, origin: policy_origin })
                    }
                    (_, Some(Err(e))) => errors.push(ReadError::at(policy_origin, e)),
                    _ => errors.push(ReadError::at(origin, "needs both repository and policy")),
                }
            }
            _ => {}
        }
    }
    attach_policies(&mut found, policies);
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

fn collect_resources<'a>(module: &'a Value, out: &mut Vec<&'a Value>) {
    if let Some(list) = module.get("resources").and_then(Value::as_array) {
        out.extend(list);
    }
    for child in module.get("child_modules").and_then(Value::as_array).into_iter().flatten() {
        collect_resources(child, out);
    }
}
