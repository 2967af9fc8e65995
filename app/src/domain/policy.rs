//! Repository policies: the one statement the portal owns, and the diff an
//! approver reads before approval.
//!
//! Rules: the portal owns exactly one statement, found by its `Sid`; every
//! other statement is kept as it is; a policy with no statements left is
//! deleted rather than written empty; the result must fit ECR's 10,240
//! character limit; computing the desired policy twice gives the same result,
//! so applying twice changes nothing. Policies are compared as parsed JSON,
//! never as text (AWS reformats what it stores).
use serde_json::{json, Value};

/// The `Sid` of the statement the portal owns.
pub const PORTAL_SID: &str = "EcrPortalProductionPull";
/// ECR's limit for a repository policy.
pub const MAX_POLICY_CHARS: usize = 10_240;
/// What production needs to pull an image.
pub const PULL_ACTIONS: [&str; 3] =
    ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"];
/// Added when configured: lets production list and describe images too.
pub const LIST_ACTIONS: [&str; 2] = ["ecr:DescribeImages", "ecr:ListImages"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the current repository policy is not valid JSON: {0}")]
    NotJson(String),
    #[error("the current repository policy has no Statement list")]
    NoStatements,
    #[error("the resulting policy would be {0} characters; ECR allows {MAX_POLICY_CHARS}")]
    TooLarge(usize),
}

/// The statement that lets `account` pull images.
pub fn grant_statement(account: &str, with_list: bool) -> Value {
    let mut actions: Vec<&str> = PULL_ACTIONS.to_vec();
    if with_list {
        actions.extend(LIST_ACTIONS);
    }
    actions.sort_unstable();
    json!({
        "Sid": PORTAL_SID,
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
        "Action": actions,
    })
}

/// Parses a policy document (`None` or empty text: no policy).
pub fn parse(text: Option<&str>) -> Result<Option<Value>, PolicyError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => serde_json::from_str(t).map(Some).map_err(|e| PolicyError::NotJson(e.to_string())),
    }
}

fn statements(policy: &Value) -> Result<Vec<Value>, PolicyError> {
    match policy.get("Statement") {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) => Ok(list.clone()),
        Some(one @ Value::Object(_)) => Ok(vec![one.clone()]),
        Some(_) => Err(PolicyError::NoStatements),
    }
}

fn is_ours(statement: &Value) -> bool {
    statement.get("Sid").and_then(Value::as_str) == Some(PORTAL_SID)
}

/// The policy after granting (`Some(account)`) or revoking (`None`) production pull access.
/// `Ok(None)` means: no policy at all (delete it).
pub fn desired(current: Option<&Value>, grant: Option<(&str, bool)>) -> Result<Option<Value>, PolicyError> {
    let mut doc = current.cloned().unwrap_or_else(|| json!({"Version": "2012-10-17"}));
    if !doc.is_object() {
        return Err(PolicyError::NoStatements);
    }
    let mut list: Vec<Value> = statements(&doc)?
        .into_iter()
        .filter(|s| !is_ours(s) && !grant.is_some_and(|(account, with_list)| only_pulls(s, account, with_list)))
        .collect();
    if let Some((account, with_list)) = grant {
        list.push(grant_statement(account, with_list));
    }
    if list.is_empty() {
        return Ok(None);
    }
    if doc.get("Version").is_none() {
        doc["Version"] = json!("2012-10-17");
    }
    doc["Statement"] = Value::Array(list);
    let size = doc.to_string().chars().count();
    if size > MAX_POLICY_CHARS {
        return Err(PolicyError::TooLarge(size));
    }
    Ok(Some(doc))
}

/// The policy with production's access as wanted. `grant`: the portal's
/// statement, in place of statements that only let production pull
/// ([`desired`]); no `grant`: production's access taken away, the portal's
/// statement and those statements both. Only the portal's statement is
/// handled when the production account is not known.
pub fn with_production(
    current: Option<&Value>,
    account: Option<&str>,
    grant: Option<bool>,
) -> Result<Option<Value>, PolicyError> {
    match (account, grant) {
        (Some(a), Some(with_list)) => desired(current, Some((a, with_list))),
        (Some(a), None) => {
            let mut doc = match current {
                Some(d) if d.is_object() => d.clone(),
                _ => return desired(current, None),
            };
            let kept: Vec<Value> = statements(&doc)?.into_iter().filter(|s| !only_pulls(s, a, true)).collect();
            doc["Statement"] = Value::Array(kept);
            desired(Some(&doc), None)
        }
        (None, _) => desired(current, None),
    }
}

/// Whether a statement lets `account` pull and does nothing else: Allow, the
/// account's root as the only principal, only actions the portal's grant has,
/// no condition or resource. A grant takes the place of such statements (the
/// read-only statement of the Terraform module the portal replaces, say), so
/// production keeps exactly one way in, the portal's.
fn only_pulls(statement: &Value, account: &str, with_list: bool) -> bool {
    let Some(fields) = statement.as_object() else { return false };
    if fields.keys().any(|k| !["Sid", "Effect", "Principal", "Action"].contains(&k.as_str())) {
        return false;
    }
    let root = format!("arn:aws:iam::{account}:root");
    let principal = statement.get("Principal").and_then(Value::as_object);
    let principals_ok = principal.is_some_and(|p| {
        p.len() == 1 && {
            let ids = values(p.get("AWS"));
            !ids.is_empty() && ids.iter().all(|id| *id == root || *id == account)
        }
    });
    let allowed = |a: &str| {
        PULL_ACTIONS
            .iter()
            .chain(if with_list { LIST_ACTIONS.iter() } else { [].iter() })
            .any(|p| p.eq_ignore_ascii_case(a))
    };
    let actions = values(statement.get("Action"));
    statement.get("Effect").and_then(Value::as_str) == Some("Allow")
        && principals_ok
        && !actions.is_empty()
        && actions.iter().all(|a| allowed(a))
}

/// The portal's statement, if the policy has one.
pub fn portal_statement(policy: Option<&Value>) -> Option<Value> {
    policy.and_then(|p| statements(p).ok()).and_then(|l| l.into_iter().find(is_ours))
}

/// Whether `policy` lets `account` pull through the portal's statement, exactly as the portal writes it.
pub fn grants(policy: Option<&Value>, account: &str, with_list: bool) -> bool {
    portal_statement(policy).is_some_and(|s| same(&s, &grant_statement(account, with_list)))
}

/// ECR actions that change a repository or its images: a statement that
/// allows one of them to someone is a way in, not a way to pull.
const WRITE_ACTIONS: [&str; 16] = [
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:BatchDeleteImage",
    "ecr:DeleteRepository",
    "ecr:DeleteRepositoryPolicy",
    "ecr:SetRepositoryPolicy",
    "ecr:PutLifecyclePolicy",
    "ecr:DeleteLifecyclePolicy",
    "ecr:PutImageTagMutability",
    "ecr:PutImageScanningConfiguration",
    "ecr:TagResource",
    "ecr:UntagResource",
    "ecr:ReplicateImage",
    "ecr:StartImageScan",
];

/// One value or a list of values, as IAM writes `Action` and `Principal` entries.
fn values(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// IAM's wildcard match (`*` any run, `?` one character), case-insensitive as IAM compares actions.
fn wildcard(pattern: &str, text: &str) -> bool {
    // Dynamic programming over (pattern, text) prefixes: linear in their product, whatever the stars.
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let mut row = vec![false; t.len() + 1];
    row[0] = true;
    for &c in p {
        let mut next = vec![false; t.len() + 1];
        if c == b'*' {
            let mut any = false;
            for j in 0..=t.len() {
                any |= row[j];
                next[j] = any;
            }
        } else {
            for j in 1..=t.len() {
                next[j] = row[j - 1] && (c == b'?' || c.eq_ignore_ascii_case(&t[j - 1]));
            }
        }
        row = next;
    }
    row[t.len()]
}

/// The principals a statement names: `"*"` for anyone, otherwise the AWS
/// principals (account ids, ARNs) and other kinds (services) as written.
fn principals(statement: &Value) -> Vec<String> {
    match statement.get("Principal") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Object(m)) => m.values().flat_map(|v| values(Some(v))).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Whether a principal entry is `account` or something in it (`123…`, `arn:aws:iam::123…:root`, a role…).
fn in_account(principal: &str, account: &str) -> bool {
    principal == account || principal.split(':').nth(4) == Some(account)
}

/// A statement of a live policy that the portal did not write and a reviewer must see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignGrant {
    /// The statement's `Sid`, or its position when it has none.
    pub name: String,
    /// What it allows, in words.
    pub why: String,
    /// It lets the production account in (by name, or as anyone).
    pub reaches_production: bool,
}

fn statement_name(s: &Value, i: usize) -> String {
    s.get("Sid").and_then(Value::as_str).map_or_else(|| format!("statement {}", i + 1), |sid| format!("`{sid}`"))
}

/// Statements other than the portal's own that let anyone in (`"Principal": "*"`),
/// allow writing (pushing, deleting, changing the policy) to principals outside
/// `own_account` (the staging account, whose people IAM governs anyway; `None`:
/// to anyone), or let the production account do anything: the portal did not
/// approve them, so drift reports them and nobody can accept them as approved.
pub fn foreign_grants(
    policy: Option<&Value>,
    own_account: Option<&str>,
    production: Option<&str>,
) -> Vec<ForeignGrant> {
    let Some(list) = policy.and_then(|p| statements(p).ok()) else { return Vec::new() };
    let mut found = Vec::new();
    for (i, s) in list.iter().enumerate() {
        if is_ours(s) || s.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let who = principals(s);
        let anyone = who.iter().any(|p| p == "*");
        let actions = values(s.get("Action"));
        let writes: Vec<&str> = if s.get("NotAction").is_some() {
            vec!["every action but those listed (NotAction)"]
        } else {
            WRITE_ACTIONS.iter().copied().filter(|w| actions.iter().any(|a| wildcard(a, w))).collect()
        };
        let outsiders = own_account.is_none_or(|own| who.iter().any(|p| !in_account(p, own)));
        let name = statement_name(s, i);
        let production = production.is_some_and(|a| who.iter().any(|p| in_account(p, a)));
        let why = if anyone {
            "lets anyone in (\"Principal\": \"*\")".to_string()
        } else if !writes.is_empty() && outsiders {
            format!("allows writing ({})", writes.join(", "))
        } else if production {
            "grants the production account access".to_string()
        } else {
            continue;
        };
        found.push(ForeignGrant { name, why, reaches_production: anyone || production });
    }
    found
}

/// Compares two JSON values as IAM does: lists of actions in any order, single values as one-item lists.
pub fn same(a: &Value, b: &Value) -> bool {
    normalise(a) == normalise(b)
}

fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), normalise(v))).collect()),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalise).collect();
            items.sort_by_key(|x| x.to_string());
            if items.len() == 1 {
                items.remove(0)
            } else {
                Value::Array(items)
            }
        }
        other => other.clone(),
    }
}

/// Pretty-printed, with keys in a stable order, for showing and diffing.
pub fn pretty(policy: Option<&Value>) -> String {
    match policy {
        None => String::new(),
        Some(p) => serde_json::to_string_pretty(p).unwrap_or_default(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Change {
    Same,
    Added,
    Removed,
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DiffLine {
    pub change: Change,
    pub text: String,
}

/// A line diff (longest common subsequence); policies are small, so O(n·m) is fine.
pub fn diff(before: &str, after: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    let line = |change, text: &str| DiffLine { change, text: text.to_string() };
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(line(Change::Same, a[i]));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(line(Change::Removed, a[i]));
            i += 1;
        } else {
            out.push(line(Change::Added, b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|t| line(Change::Removed, t)));
    out.extend(b[j..].iter().map(|t| line(Change::Added, t)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foreign() -> Value {
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "CiPush", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:role/ci"}, "Action": ["ecr:PutImage"]}
        ]})
    }

    #[test]
    fn granting_keeps_foreign_statements_and_adds_ours_once() {
        let once = desired(Some(&foreign()), Some(("222222222222", false))).expect("ok").expect("policy");
        let list = once["Statement"].as_array().expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["Sid"], "CiPush");
        assert!(grants(Some(&once), "222222222222", false));
        let twice = desired(Some(&once), Some(("222222222222", false))).expect("ok").expect("policy");
        assert_eq!(once, twice, "granting twice changes nothing");
    }

    #[test]
    fn a_grant_takes_the_place_of_a_statement_that_only_lets_production_pull() {
        let module = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadOnly", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::222222222222:root"]},
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"}, "Action": "ecr:*"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"}, "Action": "ecr:BatchGetImage",
             "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"}, "Action": "ecr:BatchGetImage"}
        ]});
        let granted = desired(Some(&module), Some(("222222222222", false))).expect("ok").expect("policy");
        let list = granted["Statement"].as_array().expect("list");
        assert!(list.iter().all(|s| s["Sid"] != "ReadOnly"), "the pull-only statement is replaced: {list:?}");
        assert_eq!(list.len(), 4, "a wider, conditioned or other account's statement stays: {list:?}");
        assert!(grants(Some(&granted), "222222222222", false));
        let with_list = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "222222222222"},
            "Action": ["ecr:BatchGetImage", "ecr:ListImages"]}]});
        let narrow = desired(Some(&with_list), Some(("222222222222", false))).expect("ok").expect("policy");
        assert_eq!(narrow["Statement"].as_array().map(Vec::len), Some(2), "ListImages is more than the grant gives");
        let wide = desired(Some(&with_list), Some(("222222222222", true))).expect("ok").expect("policy");
        assert_eq!(wide["Statement"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn taking_production_away_removes_its_pull_only_statements_too() {
        let module = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadOnly", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"}, "Action": "ecr:BatchGetImage"},
            {"Sid": "CiPush", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:role/ci"}, "Action": ["ecr:PutImage"]}
        ]});
        let revoked = with_production(Some(&module), Some("222222222222"), None).expect("ok").expect("policy");
        let sids: Vec<&str> =
            revoked["Statement"].as_array().expect("list").iter().filter_map(|s| s["Sid"].as_str()).collect();
        assert_eq!(sids, ["CiPush"]);
        // Unknown production account: only the portal's own statement could be recognised.
        assert_eq!(with_production(Some(&module), None, None).expect("ok").as_ref(), Some(&module));
        let granted = with_production(Some(&module), Some("222222222222"), Some(false)).expect("ok");
        assert!(grants(granted.as_ref(), "222222222222", false));
    }

    #[test]
    fn revoking_removes_only_ours_and_deletes_an_empty_policy() {
        let granted = desired(Some(&foreign()), Some(("222222222222", false))).expect("ok");
        let revoked = desired(granted.as_ref(), None).expect("ok").expect("policy");
        assert!(same(&revoked, &foreign()));
        let only_ours = desired(None, Some(("222222222222", false))).expect("ok");
        assert_eq!(desired(only_ours.as_ref(), None), Ok(None));
    }

    #[test]
    fn a_single_statement_object_is_understood() {
        let p = json!({"Version": "2012-10-17", "Statement": {"Sid": "X", "Effect": "Allow", "Principal": "*", "Action": "ecr:ListImages"}});
        let d = desired(Some(&p), Some(("222222222222", true))).expect("ok").expect("policy");
        assert_eq!(d["Statement"].as_array().map(Vec::len), Some(2));
        assert!(grants(Some(&d), "222222222222", true));
        assert!(!grants(Some(&d), "222222222222", false), "a different action list is not our grant");
    }

    #[test]
    fn the_size_limit_is_enforced() {
        let big: Vec<Value> = (0..200)
            .map(|i| json!({"Sid": format!("S{i}"), "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": "ecr:BatchGetImage"}))
            .collect();
        let p = json!({"Version": "2012-10-17", "Statement": big});
        assert!(matches!(desired(Some(&p), Some(("222222222222", false))), Err(PolicyError::TooLarge(_))));
    }

    #[test]
    fn comparison_ignores_order_and_text_layout() {
        let a: Value = serde_json::from_str(r#"{"Action":["b","a"],"Principal":{"AWS":["x"]}}"#).expect("json");
        let b: Value =
            serde_json::from_str("{ \"Principal\" : { \"AWS\" : \"x\" }, \"Action\" : [\"a\", \"b\"] }").expect("json");
        assert!(same(&a, &b));
        assert!(parse(Some("{nope")).is_err());
        assert_eq!(parse(Some("  ")), Ok(None));
    }

    #[test]
    fn the_diff_marks_added_and_removed_lines() {
        let d = diff("a\nb\nc", "a\nc\nd");
        let marks: Vec<(Change, &str)> = d.iter().map(|l| (l.change, l.text.as_str())).collect();
        assert_eq!(marks, [(Change::Same, "a"), (Change::Removed, "b"), (Change::Same, "c"), (Change::Added, "d")]);
        assert!(diff("", "x").iter().all(|l| l.change == Change::Added));
    }

    #[test]
    fn foreign_statements_that_let_anyone_in_write_or_reach_production_are_found() {
        let ours = grant_statement("222222222222", false);
        let policy = json!({"Version": "2012-10-17", "Statement": [
            ours,
            {"Sid": "ci-push", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:role/ci"},
             "Action": ["ecr:PutImage", "ecr:UploadLayerPart"]},
            {"Sid": "outsider", "Effect": "Allow", "Principal": {"AWS": ["999999999999"]}, "Action": "ecr:Put*"},
            {"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"},
            {"Sid": "prod-extra", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:role/x"},
             "Action": "ecr:BatchGetImage"},
            {"Sid": "denied", "Effect": "Deny", "Principal": "*", "Action": "ecr:*"},
            {"Sid": "reader", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
             "Action": "ecr:BatchGetImage"},
            {"Sid": "lower", "Effect": "Allow", "Principal": {"AWS": "444444444444"}, "Action": "ECR:*"}
        ]});
        let found = foreign_grants(Some(&policy), Some("111111111111"), Some("222222222222"));
        let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["`outsider`", "statement 4", "`prod-extra`", "`lower`"], "{found:?}");
        assert!(found[0].why.contains("ecr:PutImage") && !found[0].why.contains("UploadLayerPart"));
        assert!(found[1].why.contains("anyone") && found[1].reaches_production);
        assert!(found[2].why.contains("production") && found[2].reaches_production);
        assert!(!found[0].reaches_production && !found[3].reaches_production);
        assert!(found[3].why.contains("ecr:DeleteRepository"), "ECR:* matches case-insensitively");
        // Without knowing the staging account, every write grant is reported.
        assert_eq!(foreign_grants(Some(&policy), None, None).len(), 4);
        assert!(foreign_grants(None, None, None).is_empty());
        let only_ours = desired(None, Some(("222222222222", false))).expect("desired");
        assert!(foreign_grants(only_ours.as_ref(), None, Some("222222222222")).is_empty());
    }

    #[test]
    fn iam_wildcards_match_like_iam() {
        assert!(wildcard("ecr:*", "ecr:PutImage"));
        assert!(wildcard("*", "ecr:PutImage"));
        assert!(wildcard("ecr:?utImage", "ecr:PutImage"));
        assert!(wildcard("ecr:put*", "ecr:PutImage"));
        assert!(!wildcard("ecr:Get*", "ecr:PutImage"));
        assert!(!wildcard("ecr:PutImage", "ecr:PutImageTagMutability"));
        assert!(wildcard("e*c*r*:*P*u*t*", "ecr:PutImage") && !wildcard(&"*a".repeat(500), &"a".repeat(400)));
    }
}
