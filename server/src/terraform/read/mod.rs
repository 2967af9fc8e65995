//! Terraform interop, the way in: the ECR repositories Terraform files
//! describe, with where each one (and each of its settings) is: file, line,
//! key. The import says what it did with each, and every error points at the
//! text to fix.
//!
//! Two inputs:
//! - **HCL** (`.tf`), parsed with `hcl-rs` (its `hcl::edit` tree keeps byte
//!   spans, hence lines; `hcl::eval` evaluates expressions). The files given
//!   together are one module, as Terraform reads a folder: `variable`
//!   defaults and `locals` from any of them are resolved (in any order,
//!   `local.*` referring to each other), then every `aws_ecr_repository`
//!   resource with its `for_each`, and the `aws_ecr_lifecycle_policy` /
//!   `aws_ecr_repository_policy` resources that name those repositories
//!   (`jsonencode(…)`, heredocs and `data "aws_iam_policy_document"` are
//!   understood). Functions beyond a few pure ones (`jsonencode`, `merge`,
//!   `concat`, `lower`, `upper`, `tolist`, `toset`, `tomap`) and `count` are
//!   refused with the place named: the state is the way to import what needs them.
//! - **The JSON of `terraform show -json`** (a state): its `aws_ecr_repository`,
//!   `aws_ecr_lifecycle_policy` and `aws_ecr_repository_policy` resources, in
//!   the root module and child modules.
//!
//! Pure: text in, repositories or errors out; no AWS, no database.
//!
//! `state.rs` reads the JSON; `hcl.rs` evaluates a module.
mod hcl;
mod state;
#[cfg(test)]
mod tests;

use ::hcl::edit::structure::Body;
use serde_json::Value;
use std::collections::BTreeMap;

/// Where something is: the file, its line (1-based) and the Terraform key
/// (`aws_ecr_repository.this["repo01"]`, `local.ecr_repo["repo02"].repo_name`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
    pub key: String,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} {}", self.file, self.line, self.key)
    }
}

/// A problem in a file, at a place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: {}: {message}", origin.file, origin.line, origin.key)]
pub struct ReadError {
    pub origin: Origin,
    pub message: String,
}

impl ReadError {
    pub fn at(origin: Origin, message: impl Into<String>) -> Self {
        Self { origin, message: message.into() }
    }
}

/// A repository as the files describe it (what they leave out is `None`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FoundRepository {
    pub name: String,
    pub origin: Origin,
    pub tag_mutability: Option<String>,
    pub scan_on_push: Option<bool>,
    pub encryption_type: Option<String>,
    pub kms_key: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The lifecycle policy document, parsed.
    pub lifecycle_policy: Option<Value>,
    /// The repository policy document, parsed.
    pub policy: Option<Value>,
    /// Where each setting is written (`image_tag_mutability`, `tags`, `lifecycle_policy`, …),
    /// for errors about one of them.
    pub places: BTreeMap<String, Origin>,
}

impl FoundRepository {
    /// Where a setting is written: its own place, or the repository's with the setting's key.
    pub fn place(&self, setting: &str) -> Origin {
        self.places
            .get(setting)
            .cloned()
            .unwrap_or_else(|| Origin { key: format!("{}.{setting}", self.origin.key), ..self.origin.clone() })
    }
}

/// What files hold: their repositories, and what the reader passed over (module calls).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub repositories: Vec<FoundRepository>,
    pub notes: Vec<String>,
}

/// The deepest nesting the reader accepts (the HCL parser recurses; deeper is not a real module).
const MAX_DEPTH: usize = 64;

/// Reads files given together: JSON (from `terraform show -json`) when one
/// starts with `{`, HCL otherwise; the HCL files are one module.
pub fn read_all(files: &[(String, String)]) -> Result<Found, Vec<ReadError>> {
    let mut found = Found::default();
    let mut errors = Vec::new();
    let mut sources = Vec::new();
    let mut bodies = Vec::new();
    for (name, text) in files {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim_start().starts_with('{') {
            match state::read_state(name, text) {
                Ok(f) => {
                    found.repositories.extend(f.repositories);
                    found.notes.extend(f.notes);
                }
                Err(e) => errors.extend(e),
            }
            continue;
        }
        if let Some(line) = too_deep(text) {
            errors.push(ReadError::at(
                Origin { file: name.clone(), line, key: "(syntax)".into() },
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
            continue;
        }
        match text.parse::<Body>() {
            Ok(body) => {
                sources.push(hcl::Source { name: name.clone(), text: text.to_string() });
                bodies.push(body);
            }
            Err(e) => errors.push(ReadError::at(
                Origin { file: name.clone(), line: e.location().line(), key: "(syntax)".into() },
                format!("not valid HCL at column {}: {}", e.location().column(), e.message()),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if !bodies.is_empty() {
        let module = hcl::read_module(sources, &bodies)?;
        found.repositories.extend(module.repositories);
        found.notes.extend(module.notes);
    }
    Ok(found)
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// The line where brackets outside strings first nest deeper than [`MAX_DEPTH`].
fn too_deep(text: &str) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, b) in text.bytes().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(line_at(text, i));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// A Terraform key for a map entry: `name["key"]`.
fn indexed(base: &str, key: &str) -> String {
    format!("{base}[{}]", serde_json::to_string(key).unwrap_or_default())
}

/// A policy attribute's text as a document.
fn document(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not a JSON policy document: {e}"))
}

/// Whether `text` refers to `reference` as a whole (`local.ecr` is not in `local.ecr_repo`).
fn mentions(text: &str, reference: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    text.match_indices(reference).any(|(i, _)| {
        let after = text[i + reference.len()..].chars().next();
        let before = text[..i].chars().next_back();
        !after.is_some_and(ident) && !before.is_some_and(|c| ident(c) || c == '.')
    })
}

/// A lifecycle or repository policy resource: the repository it names, and its document.
struct FoundPolicy {
    repository: String,
    lifecycle: bool,
    document: Value,
    origin: Origin,
}

/// Puts each lifecycle or repository policy on the repository it names.
fn attach_policies(found: &mut Found, policies: Vec<FoundPolicy>) {
    for p in policies {
        match found.repositories.iter_mut().find(|r| r.name == p.repository) {
            Some(r) if p.lifecycle => {
                r.lifecycle_policy = Some(p.document);
                r.places.insert("lifecycle_policy".into(), p.origin);
            }
            Some(r) => {
                r.policy = Some(p.document);
                r.places.insert("policy".into(), p.origin);
            }
            None => found.notes.push(format!(
                "{} is for {}, which no aws_ecr_repository in the files defines; passed over",
                p.origin, p.repository
            )),
        }
    }
}
