//! A module's HCL files, evaluated together: variables, locals, policy documents,
//! then the repositories and their policies, each with its place.
use super::{
    attach_policies, document, indexed, line_at, mentions, Found, FoundPolicy, FoundRepository, Origin, ReadError,
};
use hcl::edit::expr::{Expression as EditExpr, ObjectKey, TraversalOperator};
use hcl::edit::structure::{Block, Body};
use hcl::edit::Span;
use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::Value as Hcl;
use serde_json::Value;
use std::collections::BTreeMap;

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
pub(super) struct Source {
    pub(super) name: String,
    pub(super) text: String,
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
pub(super) fn read_module(sources: Vec<Source>, bodies: &[Body]) -> Result<Found, Vec<ReadError>> {
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
