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
use hcl::edit::expr::{Expression as EditExpr, ObjectKey, TraversalOperator};
use hcl::edit::structure::{Block, Body};
use hcl::edit::Span;
use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::Value as Hcl;
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

/// Reads one file (see [`read_all`]).
pub fn read(file: &str, text: &str) -> Result<Found, Vec<ReadError>> {
    read_all(&[(file.to_string(), text.to_string())])
}

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
            match read_state(name, text) {
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
                sources.push(Source { name: name.clone(), text: text.to_string() });
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
        let module = read_module(sources, &bodies)?;
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

// ---------------------------------------------------------------------------
// terraform show -json

fn read_state(file: &str, text: &str) -> Result<Found, Vec<ReadError>> {
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

// ---------------------------------------------------------------------------
// HCL

/// The functions a module may call while the reader evaluates it: pure ones only.
fn functions(ctx: &mut Context) {
    fn jsonencode(args: FuncArgs) -> Result<Hcl, String> {
        serde_json::to_string(&args[0]).map(Hcl::String).map_err(|e| e.to_string())
    }
    fn merge(args: FuncArgs) -> Result<Hcl, String> {
        let mut out = hcl::Map::new();
        for a in args.into_values() {
            if let Hcl::Object(m) = a {
                out.extend(m);
            }
        }
        Ok(Hcl::Object(out))
    }
    fn concat(args: FuncArgs) -> Result<Hcl, String> {
        Ok(Hcl::Array(
            args.into_values().into_iter().flat_map(|a| if let Hcl::Array(v) = a { v } else { vec![] }).collect(),
        ))
    }
    fn lower(args: FuncArgs) -> Result<Hcl, String> {
        Ok(Hcl::String(args[0].as_str().unwrap_or_default().to_lowercase()))
    }
    fn upper(args: FuncArgs) -> Result<Hcl, String> {
        Ok(Hcl::String(args[0].as_str().unwrap_or_default().to_uppercase()))
    }
    fn same(args: FuncArgs) -> Result<Hcl, String> {
        Ok(args.into_values().remove(0))
    }
    fn toset(args: FuncArgs) -> Result<Hcl, String> {
        let mut out: Vec<Hcl> = Vec::new();
        for v in args.into_values().into_iter().flat_map(|a| if let Hcl::Array(v) = a { v } else { vec![] }) {
            if !out.contains(&v) {
                out.push(v);
            }
        }
        Ok(Hcl::Array(out))
    }
    let object = ParamType::object_of(ParamType::Any);
    let array = ParamType::array_of(ParamType::Any);
    ctx.declare_func("jsonencode", FuncDef::builder().param(ParamType::Any).build(jsonencode));
    ctx.declare_func("merge", FuncDef::builder().variadic_param(object.clone()).build(merge));
    ctx.declare_func("concat", FuncDef::builder().variadic_param(array.clone()).build(concat));
    ctx.declare_func("lower", FuncDef::builder().param(ParamType::String).build(lower));
    ctx.declare_func("upper", FuncDef::builder().param(ParamType::String).build(upper));
    ctx.declare_func("tolist", FuncDef::builder().param(array.clone()).build(same));
    ctx.declare_func("tomap", FuncDef::builder().param(object).build(same));
    ctx.declare_func("toset", FuncDef::builder().param(array).build(toset));
}

/// The names an expression can refer to while the module is read.
#[derive(Default, Clone)]
struct Scope {
    var: hcl::Map<String, Hcl>,
    local: hcl::Map<String, Hcl>,
    data: hcl::Map<String, Hcl>,
    repositories: hcl::Map<String, Hcl>,
}

impl Scope {
    fn context(&self, each: Option<&(Hcl, Hcl)>) -> Context<'static> {
        let mut ctx = Context::new();
        functions(&mut ctx);
        ctx.declare_var("var", Hcl::Object(self.var.clone()));
        ctx.declare_var("local", Hcl::Object(self.local.clone()));
        let mut data = hcl::Map::new();
        data.insert("aws_iam_policy_document".to_string(), Hcl::Object(self.data.clone()));
        ctx.declare_var("data", Hcl::Object(data));
        ctx.declare_var("aws_ecr_repository", Hcl::Object(self.repositories.clone()));
        if let Some((k, v)) = each {
            let mut e = hcl::Map::new();
            e.insert("key".to_string(), k.clone());
            e.insert("value".to_string(), v.clone());
            ctx.declare_var("each", Hcl::Object(e));
        }
        ctx
    }
}

/// One HCL file of the module.
struct Source {
    name: String,
    text: String,
}

/// Where an instance's values are written: its map entry when it has one
/// (`for_each = local.ecr_repo`), the resource block otherwise.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    line: usize,
}

/// One instance of a resource block: its key, its `each` (key, value) and its entry.
type Instance = (String, Option<(Hcl, Hcl)>, Entry);

struct Reader {
    sources: Vec<Source>,
    /// The file whose blocks are being read.
    cur: usize,
    scope: Scope,
    /// Locals that could not be resolved, with where and why (reported when used).
    unresolved: BTreeMap<String, ReadError>,
    /// Policy documents that could not be built, likewise.
    broken_documents: BTreeMap<String, ReadError>,
    /// Each local's file and expression, to find the line of a map entry.
    local_exprs: BTreeMap<String, (usize, EditExpr)>,
    errors: Vec<ReadError>,
}

fn label(block: &Block, i: usize) -> Option<&str> {
    block.labels.get(i).map(|l| l.as_str())
}

fn key_text(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Ident(i) => Some(i.as_str().to_string()),
        ObjectKey::Expression(EditExpr::String(s)) => Some(s.as_str().to_string()),
        ObjectKey::Expression(_) => None,
    }
}

type SpanRange = Option<std::ops::Range<usize>>;

impl Reader {
    fn line_in(&self, file: usize, span: SpanRange) -> usize {
        span.map_or(1, |s| line_at(&self.sources[file].text, s.start))
    }

    fn at(&self, span: SpanRange, key: &str) -> Origin {
        Origin { file: self.sources[self.cur].name.clone(), line: self.line_in(self.cur, span), key: key.into() }
    }

    fn entry_at(&self, entry: &Entry, key: &str) -> Origin {
        Origin { file: self.sources[entry.file].name.clone(), line: entry.line, key: key.into() }
    }

    fn error(&self, span: SpanRange, key: &str, message: impl Into<String>) -> ReadError {
        ReadError::at(self.at(span, key), message)
    }

    fn source(&self, span: SpanRange) -> &str {
        span.and_then(|s| self.sources[self.cur].text.get(s)).unwrap_or_default()
    }

    fn eval(&self, expr: &EditExpr, each: Option<&(Hcl, Hcl)>) -> Result<Hcl, String> {
        let expr: hcl::Expression = expr.clone().into();
        expr.evaluate(&self.scope.context(each)).map_err(|e| e.to_string())
    }

    /// Why an expression does not evaluate, as precisely as the text allows:
    /// a local it uses that could not be resolved, a policy document that could
    /// not be built, or the innermost map entry that fails.
    fn failure(&self, expr: &EditExpr, key: &str, each: Option<&(Hcl, Hcl)>, why: String) -> ReadError {
        let text = self.source(expr.span());
        for (name, e) in &self.unresolved {
            if mentions(text, &format!("local.{name}")) {
                return e.clone();
            }
        }
        for (name, e) in &self.broken_documents {
            if mentions(text, &format!("aws_iam_policy_document.{name}")) {
                return e.clone();
            }
        }
        if let EditExpr::Object(object) = expr {
            for (k, v) in object.iter() {
                let name = key_text(k).unwrap_or_else(|| "?".into());
                let inner = if k.is_ident() { format!("{key}.{name}") } else { indexed(key, &name) };
                if let Err(why) = self.eval(v.expr(), each) {
                    return self.failure(v.expr(), &inner, each, why);
                }
            }
        }
        self.error(expr.span(), key, why)
    }

    fn variables(&mut self, body: &Body) {
        for block in body.get_blocks("variable") {
            let Some(name) = label(block, 0) else { continue };
            if let Some(default) = block.body.get_attribute("default") {
                match self.eval(&default.value, None) {
                    Ok(v) => {
                        self.scope.var.insert(name.to_string(), v);
                    }
                    Err(why) => self.errors.push(self.error(default.span(), &format!("var.{name}"), why)),
                }
            }
        }
    }

    /// Resolves the locals of every file, in whatever order they refer to each other.
    fn locals(&mut self, bodies: &[Body]) {
        let mut pending: Vec<(usize, String, EditExpr)> = Vec::new();
        for (file, body) in bodies.iter().enumerate() {
            for a in body.get_blocks("locals").flat_map(|b| b.body.attributes()) {
                let name = a.key.as_str().to_string();
                if let Some((first, _)) = self.local_exprs.get(&name) {
                    let first = self.sources[*first].name.clone();
                    self.cur = file;
                    self.errors.push(self.error(
                        a.span(),
                        &format!("local.{name}"),
                        format!("is also defined in {first}"),
                    ));
                    continue;
                }
                self.local_exprs.insert(name.clone(), (file, a.value.clone()));
                pending.push((file, name, a.value.clone()));
            }
        }
        loop {
            let before = pending.len();
            pending.retain(|(_, name, expr)| match self.eval(expr, None) {
                Ok(v) => {
                    self.scope.local.insert(name.clone(), v);
                    false
                }
                Err(_) => true,
            });
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        for (file, name, expr) in pending {
            self.cur = file;
            let why = self.eval(&expr, None).err().unwrap_or_default();
            let e = self.failure(&expr, &format!("local.{name}"), None, why);
            self.unresolved.insert(name, e);
        }
    }

    /// `data "aws_iam_policy_document"` blocks, as the JSON the data source would give.
    fn policy_documents(&mut self, body: &Body) {
        for block in body.get_blocks("data") {
            if label(block, 0) != Some("aws_iam_policy_document") {
                continue;
            }
            let Some(name) = label(block, 1) else { continue };
            let key = format!("data.aws_iam_policy_document.{name}");
            match self.policy_document(block, &key) {
                Ok(doc) => {
                    let mut v = hcl::Map::new();
                    v.insert("json".to_string(), Hcl::String(doc.to_string()));
                    self.scope.data.insert(name.to_string(), Hcl::Object(v));
                }
                Err(e) => {
                    self.broken_documents.insert(name.to_string(), e);
                }
            }
        }
    }

    fn policy_document(&self, block: &Block, key: &str) -> Result<Value, ReadError> {
        let json = |e: &EditExpr, k: &str| -> Result<Value, ReadError> {
            let v = self.eval(e, None).map_err(|why| self.failure(e, k, None, why))?;
            serde_json::to_value(&v).map_err(|why| self.error(e.span(), k, why.to_string()))
        };
        let mut statements = Vec::new();
        for (i, st) in block.body.get_blocks("statement").enumerate() {
            let k = format!("{key}.statement[{i}]");
            if st.body.get_blocks("dynamic").next().is_some() {
                return Err(self.error(st.span(), &k, "dynamic blocks are not read; import the state instead"));
            }
            let mut s = serde_json::Map::new();
            let attr = |name: &str| st.body.get_attribute(name);
            if let Some(a) = attr("sid") {
                s.insert("Sid".into(), json(&a.value, &format!("{k}.sid"))?);
            }
            let effect = match attr("effect") {
                Some(a) => json(&a.value, &format!("{k}.effect"))?,
                None => Value::String("Allow".into()),
            };
            s.insert("Effect".into(), effect);
            for (hcl_name, iam) in [
                ("actions", "Action"),
                ("not_actions", "NotAction"),
                ("resources", "Resource"),
                ("not_resources", "NotResource"),
            ] {
                if let Some(a) = attr(hcl_name) {
                    s.insert(iam.into(), json(&a.value, &format!("{k}.{hcl_name}"))?);
                }
            }
            for (hcl_name, iam) in [("principals", "Principal"), ("not_principals", "NotPrincipal")] {
                let mut principals = serde_json::Map::new();
                for p in st.body.get_blocks(hcl_name) {
                    let pk = format!("{k}.{hcl_name}");
                    let kind = p.body.get_attribute("type").ok_or_else(|| self.error(p.span(), &pk, "needs type"))?;
                    let ids = p
                        .body
                        .get_attribute("identifiers")
                        .ok_or_else(|| self.error(p.span(), &pk, "needs identifiers"))?;
                    let kind = json(&kind.value, &pk)?;
                    principals.insert(kind.as_str().unwrap_or_default().to_string(), json(&ids.value, &pk)?);
                }
                if !principals.is_empty() {
                    s.insert(iam.into(), Value::Object(principals));
                }
            }
            let mut conditions = serde_json::Map::new();
            for c in st.body.get_blocks("condition") {
                let ck = format!("{k}.condition");
                let get = |n: &str| {
                    c.body
                        .get_attribute(n)
                        .ok_or_else(|| self.error(c.span(), &ck, format!("needs {n}")))
                        .and_then(|a| json(&a.value, &ck))
                };
                let (test, variable, values) = (get("test")?, get("variable")?, get("values")?);
                let entry = conditions
                    .entry(test.as_str().unwrap_or_default().to_string())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                entry[variable.as_str().unwrap_or_default()] = values;
            }
            if !conditions.is_empty() {
                s.insert("Condition".into(), Value::Object(conditions));
            }
            statements.push(Value::Object(s));
        }
        Ok(serde_json::json!({"Version": "2012-10-17", "Statement": statements}))
    }

    /// The instances of a resource block: one without `for_each`, one per entry with it.
    fn instances(&mut self, block: &Block, address: &str) -> Option<Vec<Instance>> {
        if let Some(count) = block.body.get_attribute("count") {
            self.errors.push(self.error(
                count.span(),
                &format!("{address}.count"),
                "count is not read; use for_each, or import the state (`terraform show -json`)",
            ));
            return None;
        }
        let here = Entry { file: self.cur, line: self.line_in(self.cur, block.span()) };
        let Some(for_each) = block.body.get_attribute("for_each") else {
            return Some(vec![(address.to_string(), None, here)]);
        };
        let value = match self.eval(&for_each.value, None) {
            Ok(v) => v,
            Err(why) => {
                let e = self.failure(&for_each.value, &format!("{address}.for_each"), None, why);
                self.errors.push(e);
                return None;
            }
        };
        let entries: Vec<(String, Hcl)> = match value {
            Hcl::Object(m) => m.into_iter().collect(),
            Hcl::Array(items) => items
                .into_iter()
                .map(|v| (v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()), v))
                .collect(),
            other => {
                self.errors.push(self.error(
                    for_each.span(),
                    &format!("{address}.for_each"),
                    format!("for_each must be a map or a set of strings, not {other}"),
                ));
                return None;
            }
        };
        // `for_each = local.NAME` with NAME a map written out: each entry has its own line.
        let local_map = match &for_each.value {
            EditExpr::Traversal(t) => match (&t.expr, t.operators.as_slice()) {
                (EditExpr::Variable(v), [op]) if v.as_str() == "local" => match op.value() {
                    TraversalOperator::GetAttr(name) => self.local_exprs.get(name.as_str()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        let entry_lines: BTreeMap<String, Entry> = match local_map {
            Some((file, EditExpr::Object(o))) => o
                .iter()
                .filter_map(|(k, _)| Some((key_text(k)?, Entry { file: *file, line: self.line_in(*file, k.span()) })))
                .collect(),
            _ => BTreeMap::new(),
        };
        Some(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let entry = entry_lines.get(&k).cloned().unwrap_or_else(|| here.clone());
                    (indexed(address, &k), Some((Hcl::String(k), v)), entry)
                })
                .collect(),
        )
    }

    /// An attribute of an instance, evaluated, with where it is written: the map entry
    /// when its value comes from `each`, the attribute's own line otherwise.
    fn attribute(
        &mut self,
        body: &Body,
        name: &str,
        key: &str,
        each: Option<&(Hcl, Hcl)>,
        entry: &Entry,
    ) -> Option<(Hcl, Origin)> {
        let a = body.get_attribute(name)?;
        let full = format!("{key}.{name}");
        let place = if mentions(self.source(a.value.span()), "each.value") {
            self.entry_at(entry, &full)
        } else {
            self.at(a.span(), &full)
        };
        match self.eval(&a.value, each) {
            Ok(Hcl::Null) => None,
            Ok(v) => Some((v, place)),
            Err(why) => {
                let mut e = self.failure(&a.value, &full, each, why);
                if e.origin.key == full {
                    e.origin = place;
                }
                self.errors.push(e);
                None
            }
        }
    }

    fn string(&mut self, v: Option<(Hcl, Origin)>) -> Option<(String, Origin)> {
        match v? {
            (Hcl::String(s), place) => Some((s, place)),
            (other, place) => {
                self.errors.push(ReadError::at(place, format!("must be a string, not {other}")));
                None
            }
        }
    }

    fn repositories(&mut self, body: &Body) -> Vec<FoundRepository> {
        let mut found = Vec::new();
        for block in body.get_blocks("resource") {
            if label(block, 0) != Some("aws_ecr_repository") {
                continue;
            }
            let Some(rname) = label(block, 1) else { continue };
            let address = format!("aws_ecr_repository.{rname}");
            let Some(instances) = self.instances(block, &address) else { continue };
            let mut values = hcl::Map::new();
            for (key, each, entry) in instances {
                let each = each.as_ref();
                let name = self.attribute(&block.body, "name", &key, each, &entry);
                let Some((name, _)) = self.string(name) else {
                    if block.body.get_attribute("name").is_none() {
                        self.errors.push(self.error(block.span(), &key, "has no name"));
                    }
                    continue;
                };
                let mut repo = FoundRepository { origin: self.entry_at(&entry, &key), ..FoundRepository::default() };
                let place = |repo: &mut FoundRepository, setting: &str, origin: Origin| {
                    repo.places.insert(setting.to_string(), origin);
                };
                let mutability = self.attribute(&block.body, "image_tag_mutability", &key, each, &entry);
                if let Some((m, at)) = self.string(mutability) {
                    repo.tag_mutability = Some(m);
                    place(&mut repo, "image_tag_mutability", at);
                }
                for nested in block.body.get_blocks("image_scanning_configuration") {
                    let k = format!("{key}.image_scanning_configuration");
                    match self.attribute(&nested.body, "scan_on_push", &k, each, &entry) {
                        Some((Hcl::Bool(b), at)) => {
                            repo.scan_on_push = Some(b);
                            place(&mut repo, "image_scanning_configuration.scan_on_push", at);
                        }
                        Some((other, at)) => {
                            self.errors.push(ReadError::at(at, format!("must be true or false, not {other}")))
                        }
                        None => {}
                    }
                }
                for nested in block.body.get_blocks("encryption_configuration") {
                    let k = format!("{key}.encryption_configuration");
                    let t = self.attribute(&nested.body, "encryption_type", &k, each, &entry);
                    if let Some((t, at)) = self.string(t) {
                        repo.encryption_type = Some(t);
                        place(&mut repo, "encryption_configuration.encryption_type", at);
                    }
                    let kms = self.attribute(&nested.body, "kms_key", &k, each, &entry);
                    if let Some((kms, at)) = self.string(kms) {
                        repo.kms_key = Some(kms);
                        place(&mut repo, "encryption_configuration.kms_key", at);
                    }
                }
                match self.attribute(&block.body, "tags", &key, each, &entry) {
                    Some((Hcl::Object(m), at)) => {
                        for (k, v) in m {
                            match v {
                                Hcl::String(s) => {
                                    repo.tags.insert(k, s);
                                }
                                Hcl::Null => {}
                                other => {
                                    repo.tags.insert(k, other.to_string());
                                }
                            }
                        }
                        place(&mut repo, "tags", at);
                    }
                    Some((other, at)) => self.errors.push(ReadError::at(at, format!("must be a map, not {other}"))),
                    None => {}
                }
                let mut instance = hcl::Map::new();
                instance.insert("name".to_string(), Hcl::String(name.clone()));
                instance.insert("id".to_string(), Hcl::String(name.clone()));
                match each {
                    Some((Hcl::String(k), _)) => {
                        values.insert(k.clone(), Hcl::Object(instance));
                    }
                    _ => values = instance,
                }
                repo.name = name;
                found.push(repo);
            }
            self.scope.repositories.insert(rname.to_string(), Hcl::Object(values));
        }
        found
    }

    /// `aws_ecr_lifecycle_policy` and `aws_ecr_repository_policy` resources.
    fn policies(&mut self, body: &Body) -> Vec<FoundPolicy> {
        let mut out = Vec::new();
        for block in body.get_blocks("resource") {
            let lifecycle = match label(block, 0) {
                Some("aws_ecr_lifecycle_policy") => true,
                Some("aws_ecr_repository_policy") => false,
                _ => continue,
            };
            let Some(rname) = label(block, 1) else { continue };
            let address = format!("{}.{rname}", label(block, 0).unwrap_or_default());
            let Some(instances) = self.instances(block, &address) else { continue };
            for (key, each, entry) in instances {
                let each = each.as_ref();
                let repository = self.attribute(&block.body, "repository", &key, each, &entry);
                let repository = self.string(repository);
                let policy = self.attribute(&block.body, "policy", &key, each, &entry);
                let policy = self.string(policy);
                match (repository, policy) {
                    (Some((repository, _)), Some((text, at))) => {
                        // The policy's place is the resource's own attribute, whatever feeds it.
                        let origin = block
                            .body
                            .get_attribute("policy")
                            .map_or(at, |a| self.at(a.span(), &format!("{key}.policy")));
                        match document(&text) {
                            Ok(document) => out.push(FoundPolicy { repository, lifecycle, document, origin }),
                            Err(why) => self.errors.push(ReadError::at(origin, why)),
                        }
                    }
                    (None, _) if block.body.get_attribute("repository").is_none() => {
                        self.errors.push(self.error(block.span(), &key, "has no repository"))
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// Reads the HCL files of one module together.
fn read_module(sources: Vec<Source>, bodies: &[Body]) -> Result<Found, Vec<ReadError>> {
    let mut reader = Reader {
        sources,
        cur: 0,
        scope: Scope::default(),
        unresolved: BTreeMap::new(),
        broken_documents: BTreeMap::new(),
        local_exprs: BTreeMap::new(),
        errors: Vec::new(),
    };
    for (i, body) in bodies.iter().enumerate() {
        reader.cur = i;
        reader.variables(body);
    }
    reader.locals(bodies);
    for (i, body) in bodies.iter().enumerate() {
        reader.cur = i;
        reader.policy_documents(body);
    }
    let mut found = Found::default();
    for (i, body) in bodies.iter().enumerate() {
        reader.cur = i;
        found.repositories.extend(reader.repositories(body));
    }
    let mut policies = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        reader.cur = i;
        policies.extend(reader.policies(body));
        for block in body.get_blocks("module") {
            found.notes.push(format!(
                "{}:{} module {:?} is not read: import the module's own files, or the state (`terraform show -json`)",
                reader.sources[i].name,
                reader.line_in(i, block.span()),
                label(block, 0).unwrap_or_default()
            ));
        }
    }
    attach_policies(&mut found, policies);
    if reader.errors.is_empty() {
        Ok(found)
    } else {
        // A local that fails is reported once, however many resources use it.
        let mut errors = reader.errors;
        let mut seen = std::collections::HashSet::new();
        errors.retain(|e| seen.insert(e.to_string()));
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module the portal replaces, as teams have it.
    const MODULE: &str = r#"
variable "production_account" {
  default = "222222222222"
}

locals {
  repo_acc1 = "crytera"
  ecr_repo = {
    "repo01" = { acc_name = local.repo_acc1, repo_name = "templateistio" }
    "repo02" = { acc_name = local.repo_acc1, repo_name = "templatenginxistio" }
    "repo03" = {
      acc_name  = local.repo_acc1
      repo_name = "templatefargate"
    }
  }
  allow_readonly = ["arn:aws:iam::${var.production_account}:root"]
}

resource "aws_ecr_repository" "ecr_repo" {
  for_each             = local.ecr_repo
  name                 = "${each.value.acc_name}/${each.value.repo_name}"
  image_tag_mutability = "MUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }
  tags = { team = "platform", "cost-center" = "cc-1" }
}

data "aws_iam_policy_document" "readonly" {
  statement {
    sid     = "ReadOnly"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    principals {
      type        = "AWS"
      identifiers = local.allow_readonly
    }
  }
}

resource "aws_ecr_repository_policy" "readonly" {
  for_each   = local.ecr_repo
  repository = aws_ecr_repository.ecr_repo[each.key].name
  policy     = data.aws_iam_policy_document.readonly.json
}
"#;

    #[test]
    fn the_module_is_read_with_its_locals_and_policies() {
        let found = read("main.tf", MODULE).expect("reads");
        let names: Vec<&str> = found.repositories.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["crytera/templateistio", "crytera/templatenginxistio", "crytera/templatefargate"]);
        let r = &found.repositories[2];
        assert_eq!(r.origin.key, r#"aws_ecr_repository.ecr_repo["repo03"]"#);
        assert_eq!(r.origin.line, 11, "the map entry's line");
        assert_eq!(r.tag_mutability.as_deref(), Some("MUTABLE"));
        assert_eq!(r.scan_on_push, Some(true));
        assert_eq!(r.tags.get("team").map(String::as_str), Some("platform"));
        let policy = r.policy.as_ref().expect("policy attached");
        assert_eq!(policy["Statement"][0]["Principal"]["AWS"][0], "arn:aws:iam::222222222222:root");
        assert_eq!(policy["Statement"][0]["Effect"], "Allow");
    }

    #[test]
    fn an_unresolvable_entry_is_named_with_its_line() {
        let text = MODULE.replace(r#"repo_name = "templatefargate""#, "repo_name = var.suffix");
        let errors = read("main.tf", &text).expect_err("var.suffix has no value");
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!(e.origin.line, 13);
        assert_eq!(e.origin.key, r#"local.ecr_repo["repo03"].repo_name"#);
        assert!(e.to_string().starts_with(r#"main.tf:13: local.ecr_repo["repo03"].repo_name: "#), "{e}");
    }

    #[test]
    fn syntax_errors_and_refused_constructs_name_their_place() {
        let errors = read("broken.tf", "locals {\n  a = \n}\n").expect_err("syntax");
        assert_eq!((errors[0].origin.file.as_str(), errors[0].origin.key.as_str()), ("broken.tf", "(syntax)"));
        assert!(errors[0].origin.line >= 2, "{errors:?}");
        let counted = "resource \"aws_ecr_repository\" \"r\" {\n  count = 2\n  name = \"crytera/x\"\n}\n";
        let errors = read("count.tf", counted).expect_err("count refused");
        assert_eq!(errors[0].origin.line, 2);
        assert_eq!(errors[0].origin.key, "aws_ecr_repository.r.count");
        let unknown = "resource \"aws_ecr_repository\" \"r\" {\n  name = file(\"name.txt\")\n}\n";
        let errors = read("f.tf", unknown).expect_err("file() is not evaluated");
        assert_eq!((errors[0].origin.line, errors[0].origin.key.as_str()), (2, "aws_ecr_repository.r.name"));
        let bad_policy = "resource \"aws_ecr_repository\" \"r\" {\n  name = \"crytera/x\"\n}\nresource \
                          \"aws_ecr_repository_policy\" \"p\" {\n  repository = aws_ecr_repository.r.name\n  \
                          policy = \"not json\"\n}\n";
        let errors = read("p.tf", bad_policy).expect_err("policy must be JSON");
        assert_eq!((errors[0].origin.line, errors[0].origin.key.as_str()), (6, "aws_ecr_repository_policy.p.policy"));
    }

    #[test]
    fn a_single_resource_with_jsonencode_and_a_lifecycle() {
        let text = r#"
resource "aws_ecr_repository" "one" {
  name = "crytera/one"
  encryption_configuration {
    encryption_type = "AES256"
  }
}
resource "aws_ecr_lifecycle_policy" "one" {
  repository = aws_ecr_repository.one.name
  policy = jsonencode({ rules = [{ rulePriority = 1, selection = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 7 }, action = { type = "expire" } }] })
}
module "other" {
  source = "./other"
}
"#;
        let found = read("one.tf", text).expect("reads");
        let r = &found.repositories[0];
        assert_eq!((r.name.as_str(), r.origin.line), ("crytera/one", 2));
        assert_eq!(r.encryption_type.as_deref(), Some("AES256"));
        assert_eq!(r.lifecycle_policy.as_ref().expect("attached")["rules"][0]["selection"]["countNumber"], 7);
        assert!(found.notes[0].contains("module \"other\" is not read"), "{:?}", found.notes);
    }

    #[test]
    fn a_module_split_across_files_is_read_as_one() {
        let variables = "variable \"production_account\" {\n  default = \"222222222222\"\n}\n".to_string();
        let locals =
            MODULE[MODULE.find("locals {").expect("locals")..MODULE.find("resource").expect("resource")].to_string();
        let main = MODULE[MODULE.find("resource").expect("resource")..].to_string();
        let files =
            [("main.tf".to_string(), main), ("locals.tf".to_string(), locals), ("variables.tf".to_string(), variables)];
        let found = read_all(&files).expect("reads as one module");
        assert_eq!(found.repositories.len(), 3);
        let r = &found.repositories[0];
        assert_eq!((r.origin.file.as_str(), r.origin.line), ("locals.tf", 4), "the entry, in the file that has it");
        assert_eq!(r.place("image_tag_mutability").file, "main.tf", "a literal: where it is written");
        assert!(r.policy.is_some(), "the policy, from another resource, attached");
        let twice = [
            ("a.tf".to_string(), "locals {\n  x = 1\n}\n".to_string()),
            ("b.tf".to_string(), "locals {\n  x = 2\n}\n".to_string()),
        ];
        let errors = read_all(&twice).expect_err("a local defined twice");
        assert_eq!(errors[0].to_string(), "b.tf:2: local.x: is also defined in a.tf");
    }

    #[test]
    fn references_are_matched_whole_and_nesting_is_bounded() {
        assert!(mentions("local.ecr", "local.ecr"));
        assert!(mentions("x = local.ecr[\"a\"]", "local.ecr"));
        assert!(!mentions("local.ecr_repo", "local.ecr"));
        assert!(!mentions("xlocal.ecr", "local.ecr"));
        let deep = format!("a = {}1{}\n", "[".repeat(200), "]".repeat(200));
        let errors = read("deep.tf", &deep).expect_err("too deep");
        assert!(errors[0].message.contains("nested more than 64 levels"), "{errors:?}");
        let quoted = format!("a = \"{}\"\n", "[".repeat(200));
        assert!(read("quoted.tf", &quoted).is_ok(), "brackets in strings do not count");
        assert!(
            read("bom.json", "\u{feff}{\"values\": {\"root_module\": {}}}").is_ok(),
            "a byte order mark is ignored"
        );
    }

    #[test]
    fn a_state_from_terraform_show_json() {
        let policy = r#"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"EcrPortalProductionPull\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::222222222222:root\"},\"Action\":[\"ecr:BatchGetImage\"]}]}"#;
        let text = format!(
            r#"{{"format_version":"1.0","values":{{"root_module":{{"resources":[
{{"address":"aws_ecr_repository.this[\"a\"]","mode":"managed","type":"aws_ecr_repository","values":{{"name":"crytera/a","image_tag_mutability":"IMMUTABLE","image_scanning_configuration":[{{"scan_on_push":false}}],"encryption_configuration":[{{"encryption_type":"AES256","kms_key":""}}],"tags":{{"team":"t"}}}}}},
{{"address":"aws_ecr_repository_policy.this[\"a\"]","mode":"managed","type":"aws_ecr_repository_policy","values":{{"repository":"crytera/a","policy":"{policy}"}}}}
],"child_modules":[{{"resources":[
{{"address":"module.m.aws_ecr_repository.b","mode":"managed","type":"aws_ecr_repository","values":{{"name":"crytera/b"}}}}]}}]}}}}}}"#
        );
        let found = read("state.json", &text).expect("reads");
        assert_eq!(found.repositories.len(), 2);
        let a = &found.repositories[0];
        assert_eq!((a.origin.key.as_str(), a.origin.line), (r#"aws_ecr_repository.this["a"]"#, 2));
        assert_eq!((a.scan_on_push, a.kms_key.as_deref()), (Some(false), None));
        assert_eq!(a.policy.as_ref().expect("attached")["Statement"][0]["Sid"], "EcrPortalProductionPull");
        assert_eq!(found.repositories[1].name, "crytera/b");
        let errors = read("bad.json", "{\"values\": 3,}").expect_err("not JSON");
        assert_eq!(errors[0].origin.key, "(document)");
        let errors = read("plan.json", "{\"format_version\": \"1.0\"}").expect_err("not a state");
        assert!(errors[0].message.contains("terraform show -json"));
    }
}
