//! Lifecycle rules as ECR takes them, validated as ECR validates them, and the
//! portal's own preview of what they would expire (moto has no lifecycle
//! preview, and ECR's own preview cannot tell which images production runs).
//!
//! ECR's documented evaluation, which [`preview`] follows:
//! - rules run in `rulePriority` order, lowest first; a rule with tag status
//!   `any` must have the highest priority (so it runs last);
//! - a rule selects the images that meet its tagging requirement: `untagged`
//!   (no tags), `any` (all), or `tagged` with a prefix list or a pattern list,
//!   where an image is selected only when, for **every** entry of the list, one
//!   of its tags matches it;
//! - `imageCountMoreThan N` marks the selected images beyond the newest N (by
//!   push time); `sinceImagePushed N days` marks those pushed more than N days ago;
//! - an image that meets the tagging requirement of a rule cannot be expired by
//!   a rule of lower priority (it still counts in that rule's image count), and an
//!   image is expired once.
use super::field::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// ECR's limit on the lifecycle policy text.
pub const MAX_POLICY_TEXT: usize = 30_720;
pub const MAX_RULES: usize = 50;
pub const MAX_WILDCARDS: usize = 4;
pub const MAX_COUNT: u32 = 100_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TagStatus {
    Any,
    Tagged,
    Untagged,
}

impl TagStatus {
    pub fn as_aws(&self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::Tagged => "tagged",
            Self::Untagged => "untagged",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Count {
    /// Keep the newest N of the selected images.
    ImageCountMoreThan(u32),
    /// Expire the selected images pushed more than N days ago.
    SinceImagePushedDays(u32),
}

/// One valid lifecycle rule (only ever built by [`parse_rules`] or the presets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LifecycleRule {
    pub priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub tag_status: TagStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_patterns: Vec<String>,
    pub count: Count,
}

impl LifecycleRule {
    /// ECR's JSON for this rule.
    pub fn to_json(&self) -> Value {
        let mut selection = Map::new();
        selection.insert("tagStatus".into(), json!(self.tag_status.as_aws()));
        if !self.tag_prefixes.is_empty() {
            selection.insert("tagPrefixList".into(), json!(self.tag_prefixes));
        }
        if !self.tag_patterns.is_empty() {
            selection.insert("tagPatternList".into(), json!(self.tag_patterns));
        }
        match self.count {
            Count::ImageCountMoreThan(n) => {
                selection.insert("countType".into(), json!("imageCountMoreThan"));
                selection.insert("countNumber".into(), json!(n));
            }
            Count::SinceImagePushedDays(n) => {
                selection.insert("countType".into(), json!("sinceImagePushed"));
                selection.insert("countUnit".into(), json!("days"));
                selection.insert("countNumber".into(), json!(n));
            }
        }
        let mut rule = Map::new();
        rule.insert("rulePriority".into(), json!(self.priority));
        if let Some(d) = &self.description {
            rule.insert("description".into(), json!(d));
        }
        rule.insert("selection".into(), Value::Object(selection));
        rule.insert("action".into(), json!({"type": "expire"}));
        Value::Object(rule)
    }

    /// Whether an image meets this rule's tagging requirement.
    pub fn selects(&self, tags: &[String]) -> bool {
        match self.tag_status {
            TagStatus::Any => true,
            TagStatus::Untagged => tags.is_empty(),
            TagStatus::Tagged if !self.tag_prefixes.is_empty() => {
                self.tag_prefixes.iter().all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
            }
            TagStatus::Tagged => self.tag_patterns.iter().all(|p| tags.iter().any(|t| wildcard_match(p, t))),
        }
    }

    /// In words, for plans and previews.
    pub fn describe(&self) -> String {
        let which = match self.tag_status {
            TagStatus::Any => "any image".to_string(),
            TagStatus::Untagged => "untagged images".to_string(),
            TagStatus::Tagged if !self.tag_prefixes.is_empty() => {
                format!("images tagged with prefix {}", self.tag_prefixes.join(" and "))
            }
            TagStatus::Tagged => format!("images tagged {}", self.tag_patterns.join(" and ")),
        };
        match self.count {
            Count::ImageCountMoreThan(n) => format!("#{}: keep the newest {n} of {which}", self.priority),
            Count::SinceImagePushedDays(n) => format!("#{}: expire {which} pushed over {n} days ago", self.priority),
        }
    }
}

/// `*` matches any run of characters (ECR's tag patterns and exclusion filters).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// An image tag's characters, as ECR allows them (plus `*` in patterns).
fn tag_text(raw: &str, wildcards: bool) -> Result<(), String> {
    if raw.is_empty() || raw.len() > 128 {
        return Err(format!("`{raw}` must be 1 to 128 characters"));
    }
    if let Some(c) =
        raw.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c) || (wildcards && *c == '*')))
    {
        return Err(format!("`{raw}` contains `{}`; tags use letters, digits, . _ and -", c.escape_default()));
    }
    if wildcards && raw.matches('*').count() > MAX_WILDCARDS {
        return Err(format!("`{raw}` has more than {MAX_WILDCARDS} wildcards (*), ECR's limit"));
    }
    Ok(())
}

/// Checks an exclusion filter of tag immutability (`latest`, `dev-*`).
pub fn check_exclusion_filter(raw: &str) -> Result<(), String> {
    tag_text(raw, true)
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    let list = v.as_array().ok_or_else(|| format!("{what} must be a list of strings"))?;
    if list.is_empty() {
        return Err(format!("{what} is empty; leave it out instead"));
    }
    if list.len() > 100 {
        return Err(format!("{what} has more than 100 entries"));
    }
    list.iter().map(|s| s.as_str().map(str::to_string).ok_or_else(|| format!("{what} must hold strings"))).collect()
}

fn number(v: Option<&Value>, what: &str) -> Result<u32, String> {
    let n = v.and_then(Value::as_u64).ok_or_else(|| format!("{what} must be a whole number"))?;
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_COUNT).contains(n))
        .ok_or_else(|| format!("{what} must be 1 to {MAX_COUNT}"))
}

fn one_rule(v: &Value) -> Result<LifecycleRule, String> {
    let rule = v.as_object().ok_or("a rule must be an object")?;
    if let Some(k) = rule.keys().find(|k| !["rulePriority", "description", "selection", "action"].contains(&k.as_str()))
    {
        return Err(format!("unknown key `{k}`"));
    }
    let priority = number(rule.get("rulePriority"), "rulePriority")?;
    let description = match rule.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(super::text::free_text(s, 500, false).map_err(|e| format!("the description: {e}"))?)
                .filter(|s| !s.is_empty())
        }
        Some(_) => return Err("the description must be a string".into()),
    };
    match rule.get("action") {
        Some(a) if a == &json!({"type": "expire"}) => {}
        Some(_) => return Err("the portal only sets `expire` actions (`\"action\": {\"type\": \"expire\"}`)".into()),
        None => return Err("the rule needs an action, `{\"type\": \"expire\"}`".into()),
    }
    let sel = rule.get("selection").and_then(Value::as_object).ok_or("the rule needs a selection object")?;
    let known = ["tagStatus", "tagPrefixList", "tagPatternList", "countType", "countUnit", "countNumber"];
    if let Some(k) = sel.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("the portal does not set `{k}` in a selection"));
    }
    let tag_status = match sel.get("tagStatus").and_then(Value::as_str) {
        Some("any") => TagStatus::Any,
        Some("tagged") => TagStatus::Tagged,
        Some("untagged") => TagStatus::Untagged,
        _ => return Err("tagStatus must be tagged, untagged or any".into()),
    };
    let tag_prefixes = sel.get("tagPrefixList").map(|v| strings(v, "tagPrefixList")).transpose()?.unwrap_or_default();
    let tag_patterns = sel.get("tagPatternList").map(|v| strings(v, "tagPatternList")).transpose()?.unwrap_or_default();
    match tag_status {
        TagStatus::Tagged if tag_prefixes.is_empty() == tag_patterns.is_empty() => {
            return Err("a tagged rule needs either tagPrefixList or tagPatternList (one of them)".into())
        }
        TagStatus::Any | TagStatus::Untagged if !(tag_prefixes.is_empty() && tag_patterns.is_empty()) => {
            return Err(format!("a rule for {} images takes no tag lists", tag_status.as_aws()))
        }
        _ => {}
    }
    for p in &tag_prefixes {
        tag_text(p, false)?;
    }
    for p in &tag_patterns {
        tag_text(p, true)?;
    }
    let n = number(sel.get("countNumber"), "countNumber")?;
    let count = match (sel.get("countType").and_then(Value::as_str), sel.get("countUnit")) {
        (Some("imageCountMoreThan"), None) => Count::ImageCountMoreThan(n),
        (Some("imageCountMoreThan"), Some(_)) => return Err("imageCountMoreThan takes no countUnit".into()),
        (Some("sinceImagePushed"), Some(u)) if u == "days" => Count::SinceImagePushedDays(n),
        (Some("sinceImagePushed"), _) => return Err("sinceImagePushed needs `\"countUnit\": \"days\"`".into()),
        (Some(other), _) => {
            return Err(format!(
                "countType `{other}` is not one the portal sets; use imageCountMoreThan or sinceImagePushed"
            ))
        }
        (None, _) => return Err("the selection needs a countType".into()),
    };
    Ok(LifecycleRule { priority, description, tag_status, tag_prefixes, tag_patterns, count })
}

/// Parses and validates rules in ECR's JSON shape (the `rules` of a lifecycle
/// policy), every problem reported under `field`. Sorted by priority.
pub fn parse_rules(raw: &[Value], field: &str) -> Result<Vec<LifecycleRule>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if raw.len() > MAX_RULES {
        errors.push(FieldError::new(field, format!("at most {MAX_RULES} rules")));
        return Err(errors);
    }
    let mut rules = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        match one_rule(v) {
            Ok(r) => rules.push(r),
            Err(e) => errors.push(FieldError::new(field, format!("rule {}: {e}", i + 1))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    rules.sort_by_key(|r| r.priority);
    if let Some(w) = rules.windows(2).find(|w| w[0].priority == w[1].priority) {
        errors.push(FieldError::new(
            field,
            format!("two rules have priority {}; priorities must be unique", w[0].priority),
        ));
    }
    let last = rules.len().saturating_sub(1);
    if rules.iter().enumerate().any(|(i, r)| r.tag_status == TagStatus::Any && i != last) {
        errors.push(FieldError::new(
            field,
            "a rule for any image must have the highest rulePriority (it runs last), and there can be only one",
        ));
    }
    let text = json!({"rules": rules.iter().map(LifecycleRule::to_json).collect::<Vec<_>>()}).to_string();
    if text.len() > MAX_POLICY_TEXT {
        errors.push(FieldError::new(
            field,
            format!("the policy would be {} characters; ECR takes {MAX_POLICY_TEXT}", text.len()),
        ));
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// The rules of a lifecycle policy typed as text (the settings form): the
/// whole policy `{"rules": [...]}` or the list alone; empty text is no lifecycle.
pub fn rules_from_text(text: &str) -> Result<Vec<Value>, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let shape = || FieldError::new("lifecycle_rules", "write a lifecycle policy: {\"rules\": [...]}");
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(rules)) => Ok(rules),
        Ok(Value::Object(mut o)) => match o.remove("rules") {
            Some(Value::Array(rules)) if o.is_empty() => Ok(rules),
            _ => Err(shape()),
        },
        Ok(_) => Err(shape()),
        Err(e) => Err(FieldError::new("lifecycle_rules", format!("the lifecycle policy is not JSON: {e}"))),
    }
}

/// An image as the preview sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    /// Unix ms.
    pub pushed_at: i64,
    /// ECR's last recorded pull time (unix ms), if any.
    pub last_pull: Option<i64>,
}

/// Which images nobody should lose by accident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Protection {
    /// Pulled within this many days (0: pulls do not protect).
    pub pulled_within_days: u32,
    /// Tags that mark a release (`v*`, `release-*`).
    pub tag_patterns: Vec<String>,
}

impl Default for Protection {
    fn default() -> Self {
        Self { pulled_within_days: 30, tag_patterns: vec!["v*".into(), "release-*".into()] }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum Protected {
    /// Pulled at this time (unix ms), within the protection window.
    Pulled { at: i64 },
    /// Carries a release tag.
    ReleaseTag { tag: String },
}

impl Protection {
    pub fn of(&self, image: &Image, now: i64) -> Option<Protected> {
        if let Some(tag) = image.tags.iter().find(|t| self.tag_patterns.iter().any(|p| wildcard_match(p, t))) {
            return Some(Protected::ReleaseTag { tag: tag.clone() });
        }
        let window = i64::from(self.pulled_within_days) * DAY_MS;
        image
            .last_pull
            .filter(|at| self.pulled_within_days > 0 && now - at <= window)
            .map(|at| Protected::Pulled { at })
    }
}

/// One image the rules would expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Expiring {
    pub image: Image,
    /// The priority of the rule that expires it.
    pub rule: u32,
    pub protected: Option<Protected>,
}

/// What the rules would expire from `images` at `now`, newest first.
pub fn preview(rules: &[LifecycleRule], images: &[Image], now: i64, protection: &Protection) -> Vec<Expiring> {
    let mut rules: Vec<&LifecycleRule> = rules.iter().collect();
    rules.sort_by_key(|r| r.priority);
    // Newest first; ties by digest so the answer does not depend on input order.
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_by(|&a, &b| images[b].pushed_at.cmp(&images[a].pushed_at).then(images[a].digest.cmp(&images[b].digest)));
    let mut expired_by: Vec<Option<u32>> = vec![None; images.len()];
    let mut claimed = vec![false; images.len()];
    for rule in rules {
        let selected: Vec<usize> = order.iter().copied().filter(|&i| rule.selects(&images[i].tags)).collect();
        let marked: Vec<usize> = match rule.count {
            Count::ImageCountMoreThan(n) => selected.iter().copied().skip(n as usize).collect(),
            Count::SinceImagePushedDays(d) => {
                selected.iter().copied().filter(|&i| now - images[i].pushed_at > i64::from(d) * DAY_MS).collect()
            }
        };
        for i in marked {
            if expired_by[i].is_none() && !claimed[i] {
                expired_by[i] = Some(rule.priority);
            }
        }
        for i in selected {
            claimed[i] = true;
        }
    }
    order
        .into_iter()
        .filter_map(|i| {
            expired_by[i].map(|rule| Expiring {
                image: images[i].clone(),
                rule,
                protected: protection.of(&images[i], now),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn img(d: &str, tags: &[&str], days_ago: i64) -> Image {
        Image {
            digest: d.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at: NOW - days_ago * DAY_MS,
            last_pull: None,
        }
    }
    const NOW: i64 = 1_800_000_000_000;

    fn rules(v: Value) -> Vec<LifecycleRule> {
        parse_rules(v.as_array().expect("list"), "lifecycle_rules").expect("valid")
    }

    fn expired(r: &[LifecycleRule], images: &[Image]) -> Vec<String> {
        preview(r, images, NOW, &Protection { pulled_within_days: 0, tag_patterns: vec![] })
            .into_iter()
            .map(|e| e.image.digest)
            .collect()
    }

    #[test]
    fn ecr_documented_example_a_expires_only_image_a() {
        // AWS's "Filtering on multiple rules", example A: image B is marked by rule 2
        // but met rule 1's tagging requirement, so rule 2 cannot expire it.
        let images =
            [img("A", &["beta-1", "prod-1"], 10), img("B", &["beta-2", "prod-2"], 9), img("C", &["beta-3"], 8)];
        let r = rules(json!([
            {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
            {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPrefixList": ["beta"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
        ]));
        assert_eq!(expired(&r, &images), ["A"]);
    }

    #[test]
    fn ecr_documented_example_b_needs_every_prefix() {
        // Example B: one rule with two prefixes selects images that have both.
        let images = [
            img("A", &["beta-1", "prod-1"], 10),
            img("B", &["beta-2", "prod-2"], 9),
            img("C", &["beta-3", "prod-3"], 8),
        ];
        let r = rules(json!([
            {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["alpha", "beta"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
            {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPrefixList": ["beta", "prod"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
        ]));
        assert_eq!(expired(&r, &images), ["B", "A"], "newest first");
    }

    #[test]
    fn age_rules_and_patterns() {
        let images = [img("old-dev", &["dev-1"], 40), img("new-dev", &["dev-2"], 2), img("old-untagged", &[], 40)];
        let r = rules(json!([
            {"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}, "action": {"type": "expire"}},
            {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPatternList": ["dev-*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}
        ]));
        assert_eq!(expired(&r, &images), ["old-dev", "old-untagged"]);
    }

    #[test]
    fn protected_images_are_marked() {
        let mut pulled = img("pulled", &["sha-1"], 50);
        pulled.last_pull = Some(NOW - 3 * DAY_MS);
        let images = [img("release", &["v1.2.0"], 60), pulled, img("plain", &["sha-2"], 70), img("new", &["sha-3"], 1)];
        let r = rules(
            json!([{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]),
        );
        let p = preview(&r, &images, NOW, &Protection::default());
        let marks: Vec<(&str, Option<&Protected>)> =
            p.iter().map(|e| (e.image.digest.as_str(), e.protected.as_ref())).collect();
        assert_eq!(
            marks,
            [
                ("pulled", Some(&Protected::Pulled { at: NOW - 3 * DAY_MS })),
                ("release", Some(&Protected::ReleaseTag { tag: "v1.2.0".into() })),
                ("plain", None)
            ]
        );
    }

    #[test]
    fn rules_are_validated_as_ecr_validates_them() {
        let bad = |v: Value| parse_rules(v.as_array().expect("list"), "f").expect_err("invalid")[0].message.clone();
        let sel = |s: Value| json!([{"rulePriority": 1, "selection": s, "action": {"type": "expire"}}]);
        assert!(bad(sel(json!({"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1})))
            .contains("either"));
        assert!(bad(sel(json!({"tagStatus": "untagged", "tagPrefixList": ["a"], "countType": "imageCountMoreThan", "countNumber": 1}))).contains("no tag lists"));
        assert!(bad(sel(json!({"tagStatus": "tagged", "tagPatternList": ["a*b*c*d*e*f"], "countType": "imageCountMoreThan", "countNumber": 1}))).contains("wildcards"));
        assert!(bad(sel(json!({"tagStatus": "any", "countType": "sinceImagePushed", "countNumber": 1})))
            .contains("countUnit"));
        assert!(bad(sel(json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 0})))
            .contains("countNumber"));
        assert!(bad(sel(
            json!({"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 3})
        ))
        .contains("sinceImagePulled"));
        let two_any = json!([
            {"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
            {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
        ]);
        assert!(bad(two_any).contains("highest rulePriority"));
        let dup = json!([
            {"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
            {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["x"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
        ]);
        assert!(bad(dup).contains("unique"));
        assert!(bad(json!([{"rulePriority": 1, "selection": {}, "action": {"type": "transition"}}])).contains("expire"));
    }

    #[test]
    fn rules_round_trip_through_ecr_json() {
        let raw = json!([{"rulePriority": 3, "description": "dev", "selection": {"tagStatus": "tagged", "tagPatternList": ["dev-*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}}]);
        let parsed = rules(raw.clone());
        assert_eq!(Value::Array(parsed.iter().map(LifecycleRule::to_json).collect()), raw);
    }

    #[test]
    fn wildcards_match_like_ecr() {
        assert!(wildcard_match("dev-*", "dev-1"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXbYc"));
        assert!(wildcard_match("a*a", "aa"));
        assert!(!wildcard_match("a*a", "a"));
        assert!(!wildcard_match("latest", "latest2"));
        assert!(wildcard_match("*-rc*", "1.0-rc2"));
    }

    fn arb_rule() -> impl Strategy<Value = LifecycleRule> {
        let status = prop_oneof![Just(TagStatus::Tagged), Just(TagStatus::Untagged)];
        let count = prop_oneof![
            (0u32..4).prop_map(Count::ImageCountMoreThan),
            (1u32..40).prop_map(Count::SinceImagePushedDays)
        ];
        (1u32..20, status, prop::sample::subsequence(vec!["dev", "v", "rel", "sha"], 1..=2), any::<bool>(), count)
            .prop_map(|(priority, tag_status, tags, patterns, count)| {
                let tags: Vec<String> =
                    tags.into_iter().map(|t| if patterns { format!("{t}*") } else { t.to_string() }).collect();
                let tagged = tag_status == TagStatus::Tagged;
                LifecycleRule {
                    priority,
                    description: None,
                    tag_status,
                    tag_prefixes: if tagged && !patterns { tags.clone() } else { vec![] },
                    tag_patterns: if tagged && patterns { tags } else { vec![] },
                    count,
                }
            })
    }

    fn arb_images() -> impl Strategy<Value = Vec<Image>> {
        let tag = prop::sample::select(vec!["dev-1", "v1.0", "release-2", "sha-abc", "rel-9", "latest"]);
        prop::collection::vec((prop::collection::vec(tag, 0..3), 0i64..60, prop::option::of(0i64..60)), 0..12).prop_map(
            |v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, (tags, age, pull))| Image {
                        digest: format!("sha256:{i:02}"),
                        tags: tags.into_iter().map(str::to_string).collect(),
                        pushed_at: NOW - age * DAY_MS,
                        last_pull: pull.map(|p| NOW - p * DAY_MS),
                    })
                    .collect()
            },
        )
    }

    proptest! {
        /// Every expired image was selected and marked by its rule, was not
        /// selected by any earlier rule, and is expired once.
        #[test]
        fn the_preview_never_expires_more_than_the_rules_say(rules in prop::collection::vec(arb_rule(), 0..5), images in arb_images()) {
            let mut rules = rules;
            rules.sort_by_key(|r| r.priority);
            rules.dedup_by_key(|r| r.priority);
            let out = preview(&rules, &images, NOW, &Protection::default());
            let mut digests: Vec<&str> = out.iter().map(|e| e.image.digest.as_str()).collect();
            digests.sort();
            digests.dedup();
            prop_assert_eq!(digests.len(), out.len());
            for e in &out {
                let rule = rules.iter().find(|r| r.priority == e.rule).expect("its rule");
                prop_assert!(rule.selects(&e.image.tags));
                prop_assert!(!rules.iter().any(|r| r.priority < e.rule && r.selects(&e.image.tags)));
                match rule.count {
                    Count::SinceImagePushedDays(d) => prop_assert!(NOW - e.image.pushed_at > i64::from(d) * DAY_MS),
                    Count::ImageCountMoreThan(n) => {
                        let newer = images.iter().filter(|i| rule.selects(&i.tags)
                            && (i.pushed_at > e.image.pushed_at || (i.pushed_at == e.image.pushed_at && i.digest < e.image.digest))).count();
                        prop_assert!(newer >= n as usize, "kept the newest {}", n);
                    }
                }
            }
            // Newest first.
            prop_assert!(out.windows(2).all(|w| w[0].image.pushed_at >= w[1].image.pushed_at));
        }

        /// Every protected image the rules would expire is marked, so a rule set
        /// that passes the check (nothing protected expires) keeps them all.
        #[test]
        fn protected_images_are_never_expired_unmarked(rules in prop::collection::vec(arb_rule(), 0..5), images in arb_images()) {
            let protection = Protection::default();
            let out = preview(&rules, &images, NOW, &protection);
            for e in &out {
                prop_assert_eq!(&e.protected, &protection.of(&e.image, NOW));
            }
            if out.iter().all(|e| e.protected.is_none()) {
                for i in images.iter().filter(|i| protection.of(i, NOW).is_some()) {
                    prop_assert!(!out.iter().any(|e| e.image.digest == i.digest));
                }
            }
        }

        /// Adding a rule that runs later never saves an image an earlier rule expires
        /// (ECR's rule order: earlier rules win).
        #[test]
        fn later_rules_never_undo_earlier_ones(rules in prop::collection::vec(arb_rule(), 1..5), extra in arb_rule(), images in arb_images()) {
            let mut rules = rules;
            rules.sort_by_key(|r| r.priority);
            rules.dedup_by_key(|r| r.priority);
            let top = rules.last().map_or(0, |r| r.priority);
            let before: Vec<String> = preview(&rules, &images, NOW, &Protection::default()).into_iter().map(|e| e.image.digest).collect();
            rules.push(LifecycleRule { priority: top + 1, ..extra });
            let after: Vec<String> = preview(&rules, &images, NOW, &Protection::default()).into_iter().map(|e| e.image.digest).collect();
            for d in &before {
                prop_assert!(after.contains(d));
            }
        }
    }
}
