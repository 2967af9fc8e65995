//! The request form, as typed by a person or posted by a pipeline, and the one
//! place where it becomes domain types. Every problem is reported per field so
//! the UI can show it beside the input, and nothing the user typed is lost.
use super::name::{Namespace, RepoName};
use super::settings::{
    is_kms_key_arn, Encryption, Lifecycle, RepositorySpec, Tag, TagMutability, MAX_KEEP_LAST, MAX_UNTAGGED_DAYS,
};
use serde::{Deserialize, Serialize};

pub const MAX_JUSTIFICATION: usize = 2_000;
pub const MAX_TAG_VALUE: usize = 256;

pub use super::field::FieldError;

/// A request for a new repository, as received (JSON API) or built from the form.
/// Optional settings take the portal's recommended defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RepositoryRequestInput {
    /// The part after `<namespace>/` (a full name is accepted too).
    pub name: String,
    /// `IMMUTABLE` (default) or `MUTABLE`.
    #[serde(default)]
    pub tag_mutability: Option<String>,
    /// Defaults to true.
    #[serde(default)]
    pub scan_on_push: Option<bool>,
    /// `AES256` (default) or `KMS`.
    #[serde(default)]
    pub encryption: Option<String>,
    /// Required when encryption is `KMS`.
    #[serde(default)]
    pub kms_key_arn: Option<String>,
    #[serde(default)]
    pub keep_last_images: Option<u32>,
    #[serde(default)]
    pub expire_untagged_after_days: Option<u32>,
    /// With `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION`: the tags that are the exception.
    // (The browser's form never sends these three: they come through the JSON API, and not
    // serialising them in the browser keeps their code out of the bundle.)
    #[serde(default)]
    #[cfg_attr(feature = "hydrate", serde(skip_serializing))]
    pub tag_mutability_exclusions: Option<Vec<String>>,
    /// Lifecycle rules in ECR's JSON shape, instead of the presets.
    #[serde(default)]
    #[cfg_attr(feature = "hydrate", serde(skip_serializing))]
    pub lifecycle_rules: Option<Vec<serde_json::Value>>,
    /// Free tags besides team and cost centre.
    #[serde(default)]
    #[cfg_attr(feature = "hydrate", serde(skip_serializing))]
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    pub team: String,
    pub cost_center: String,
    pub justification: String,
    /// Also let the production account pull from it (read-only). Defaults to false.
    #[serde(default)]
    pub grant_production: Option<bool>,
}

/// A request to change a repository's settings. Whatever is left out keeps its
/// approved value; encryption cannot change (ECR fixes it at creation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateRequestInput {
    pub repository: String,
    pub justification: String,
    #[serde(default)]
    pub tag_mutability: Option<String>,
    #[serde(default)]
    pub tag_mutability_exclusions: Option<Vec<String>>,
    #[serde(default)]
    pub scan_on_push: Option<bool>,
    /// A preset; 0 removes it. Setting a preset replaces rules of one's own.
    #[serde(default)]
    pub keep_last_images: Option<u32>,
    #[serde(default)]
    pub expire_untagged_after_days: Option<u32>,
    /// Rules in ECR's JSON shape; they replace the presets (`[]`: no lifecycle).
    #[serde(default)]
    pub lifecycle_rules: Option<Vec<serde_json::Value>>,
    /// The free tags, all of them (team and cost centre are kept unless given here or below).
    #[serde(default)]
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub cost_center: Option<String>,
    /// The lifecycle may expire images production pulled lately or that carry a release tag.
    #[serde(default)]
    pub expire_protected: Option<bool>,
    /// Refused with a clear message: ECR cannot change encryption.
    #[serde(default)]
    pub encryption: Option<String>,
    #[serde(default)]
    pub kms_key_arn: Option<String>,
}

/// ECR allows at most 50 tags on a repository; the portal keeps one for its marker.
pub const MAX_TAGS: usize = 49;
/// Tag keys the portal keeps for itself (`ecr-portal:`) or AWS does (`aws:`).
pub const RESERVED_TAG_PREFIXES: [&str; 2] = ["ecr-portal:", "aws:"];

/// The two tags every repository has, set through their own fields.
pub fn is_required_tag(key: &str) -> bool {
    key == "team" || key == "cost-center"
}

/// A tag a requester sets freely: not a required one, not the portal's or AWS's own.
pub fn is_free_tag(key: &str) -> bool {
    !is_required_tag(key) && !RESERVED_TAG_PREFIXES.iter().any(|p| key.to_ascii_lowercase().starts_with(p))
}

/// Tag mutability and its exclusions, from the input over a base.
fn mutability(
    raw: Option<&str>,
    exclusions: Option<&Vec<String>>,
    base: (TagMutability, Vec<String>),
    errors: &mut Vec<FieldError>,
) -> (TagMutability, Vec<String>) {
    let m = match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => base.0,
        Some(raw) => TagMutability::parse(raw).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "tag_mutability",
                "choose IMMUTABLE, MUTABLE, IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION",
            ));
            base.0
        }),
    };
    let mut list: Vec<String> = match exclusions {
        Some(v) => v.iter().map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect(),
        None if m.has_exclusions() => base.1,
        None => Vec::new(),
    };
    list.sort();
    list.dedup();
    if m.has_exclusions() {
        if list.is_empty() {
            errors.push(FieldError::new(
                "tag_mutability_exclusions",
                format!("{m} needs at least one exclusion filter, such as latest or dev-*"),
            ));
        } else if list.len() > super::settings::MAX_EXCLUSIONS {
            errors.push(FieldError::new(
                "tag_mutability_exclusions",
                format!("ECR takes at most {} exclusion filters", super::settings::MAX_EXCLUSIONS),
            ));
        }
        for f in &list {
            if let Err(e) = super::lifecycle::check_exclusion_filter(f) {
                errors.push(FieldError::new("tag_mutability_exclusions", e));
            }
        }
    } else if !list.is_empty() {
        errors.push(FieldError::new(
            "tag_mutability_exclusions",
            format!("exclusion filters only apply to IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION, not {m}"),
        ));
    }
    (m, list)
}

/// Parses lifecycle rules (see [`super::lifecycle::parse_rules`]); a parameter so that the
/// browser's copy of the new-repository form, which never sends rules, leaves the parser out of
/// the bundle.
type RulesParser = fn(&[serde_json::Value], &str) -> Result<Vec<super::lifecycle::LifecycleRule>, Vec<FieldError>>;

/// The lifecycle from presets or rules over a base. `zero_removes`: a preset of 0 removes it (updates).
fn lifecycle(
    keep: Option<u32>,
    untagged: Option<u32>,
    rules: Option<&Vec<serde_json::Value>>,
    base: Lifecycle,
    zero_removes: bool,
    parse_rules: RulesParser,
    errors: &mut Vec<FieldError>,
) -> Lifecycle {
    if rules.is_some() && (keep.is_some() || untagged.is_some()) {
        errors.push(FieldError::new(
            "lifecycle_rules",
            "give either the presets (keep_last_images, expire_untagged_after_days) or lifecycle_rules, not both",
        ));
        return base;
    }
    if let Some(raw) = rules {
        return match parse_rules(raw, "lifecycle_rules") {
            Ok(rules) => Lifecycle { rules, ..Lifecycle::default() },
            Err(e) => {
                errors.extend(e);
                base
            }
        };
    }
    if keep.is_none() && untagged.is_none() {
        return base;
    }
    let mut l = if base.rules.is_empty() { base } else { Lifecycle::default() };
    let min = if zero_removes { 0 } else { 1 };
    if let Some(n) = keep {
        if !(min..=MAX_KEEP_LAST).contains(&n) {
            errors.push(FieldError::new(
                "keep_last_images",
                format!("keep between 1 and {MAX_KEEP_LAST} images, or leave it empty"),
            ));
        }
        l.keep_last_images = Some(n).filter(|n| *n > 0);
    }
    if let Some(d) = untagged {
        if !(min..=MAX_UNTAGGED_DAYS).contains(&d) {
            errors.push(FieldError::new(
                "expire_untagged_after_days",
                format!("choose 1 to {MAX_UNTAGGED_DAYS} days, or leave it empty"),
            ));
        }
        l.expire_untagged_after_days = Some(d).filter(|d| *d > 0);
    }
    l
}

/// The free tags, checked as ECR checks tags; the portal's and AWS's keys are refused.
fn free_tags(map: &std::collections::BTreeMap<String, String>, errors: &mut Vec<FieldError>) -> Vec<Tag> {
    let mut out: Vec<Tag> = Vec::new();
    for (k, v) in map {
        let key = k.trim();
        if out.iter().any(|t| t.key == key) {
            errors.push(FieldError::new("tags", format!("`{key}` is given twice")));
            continue;
        }
        if key.is_empty() || key.chars().count() > 128 {
            errors.push(FieldError::new("tags", "a tag key is 1 to 128 characters"));
            continue;
        }
        if let Some(p) = RESERVED_TAG_PREFIXES.iter().find(|p| key.to_ascii_lowercase().starts_with(**p)) {
            errors.push(FieldError::new("tags", format!("`{key}`: keys starting with {p} are reserved")));
            continue;
        }
        let before = errors.len();
        let _ = tag_value("tags", &format!("tag key `{key}`"), key, errors);
        let value = if v.trim().is_empty() {
            String::new()
        } else {
            tag_value("tags", &format!("value of tag `{key}`"), v, errors)
        };
        if errors.len() == before {
            out.push(Tag { key: key.to_string(), value });
        }
    }
    out
}

/// A parsed, valid request for a new repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewRepositoryRequest {
    pub spec: RepositorySpec,
    pub grant_production: bool,
    pub justification: String,
}

fn justification(raw: &str, errors: &mut Vec<FieldError>, empty: &str) -> String {
    match super::text::free_text(raw, MAX_JUSTIFICATION, true) {
        Ok(j) if j.is_empty() => {
            errors.push(FieldError::new("justification", empty));
            j
        }
        Ok(j) => j,
        Err(e) => {
            errors.push(FieldError::new("justification", format!("the justification: {e}")));
            raw.trim().to_string()
        }
    }
}

/// A request to promote an image (by digest) to a release tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PromoteRequestInput {
    pub repository: String,
    pub digest: String,
    pub tag: String,
    pub justification: String,
    /// The tag names another image now: move it to this one (mutable repositories only).
    #[serde(default, rename = "move")]
    pub move_tag: Option<bool>,
}

/// A request to delete a repository with its images.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeleteRequestInput {
    pub repository: String,
    pub justification: String,
}

/// A request to grant or revoke the production account's read-only pull access.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AccessRequestInput {
    /// `grant` or `revoke`.
    pub action: String,
    /// The repository (with or without the namespace prefix).
    pub repository: String,
    /// Optional last day of a temporary grant, `YYYY-MM-DD` (UTC); revoked when it has passed.
    #[serde(default)]
    pub until: Option<String>,
    pub justification: String,
}

/// A parsed, valid access request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AccessRequest {
    pub grant: bool,
    pub repository: RepoName,
    /// When the grant ends (unix ms, the start of the day after `until`).
    pub until: Option<i64>,
    pub justification: String,
}

/// Parses `YYYY-MM-DD` into unix ms at 00:00 UTC of that day. The one date
/// parser: forms, the audit filters and the command line all use it. The
/// calendar is the `time` crate's (without its format-description parser,
/// which would add to the browser bundle).
pub fn parse_date_ms(raw: &str) -> Option<i64> {
    let parts: Vec<&str> = raw.trim().split('-').collect();
    let [y, m, d] = parts.as_slice() else { return None };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 || !raw.trim().bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

impl AccessRequestInput {
    /// `now_ms` decides whether an end date is in the future.
    pub fn parse(&self, namespace: &Namespace, now_ms: i64) -> Result<AccessRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let grant = match self.action.trim() {
            "grant" => true,
            "revoke" => false,
            _ => {
                errors.push(FieldError::new("action", "choose grant or revoke"));
                true
            }
        };
        let repository = RepoName::parse(namespace, &self.repository)
            .map_err(|e| errors.push(FieldError::new("repository", e.to_string())))
            .ok();
        let until = match self.until.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(_) if !grant => {
                errors.push(FieldError::new("until", "an end date only applies to a grant"));
                None
            }
            Some(raw) => match parse_date_ms(raw) {
                None => {
                    errors.push(FieldError::new("until", format!("`{raw}` is not a date like 2026-12-31")));
                    None
                }
                Some(day) if day + 86_400_000 <= now_ms => {
                    errors.push(FieldError::new("until", "the end date has already passed"));
                    None
                }
                Some(day) => Some(day + 86_400_000),
            },
        };
        let justification = justification(&self.justification, &mut errors, "say why this is needed");
        match (repository, errors.is_empty()) {
            (Some(repository), true) => Ok(AccessRequest { grant, repository, until, justification }),
            _ => Err(errors),
        }
    }
}

/// Checks a tag value against ECR's character set and length.
fn tag_value(field: &str, label: &str, raw: &str, errors: &mut Vec<FieldError>) -> String {
    let v = raw.trim();
    if v.is_empty() {
        errors.push(FieldError::new(field, format!("enter the {label}")));
    } else if v.chars().count() > MAX_TAG_VALUE {
        errors.push(FieldError::new(field, format!("the {label} can be at most {MAX_TAG_VALUE} characters")));
    } else if let Some(c) = v.chars().find(|c| {
        // ECR's set: letters, digits, spaces (no tabs, line breaks or other controls) and _ . : / = + - @
        let space = c.is_whitespace() && !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}');
        !(c.is_alphanumeric() || space || "_.:/=+-@".contains(*c))
    }) {
        errors.push(FieldError::new(
            field,
            format!(
                "`{}` is not allowed in a tag; use letters, digits, spaces and _ . : / = + - @",
                c.escape_default()
            ),
        ));
    }
    v.to_string()
}

impl RepositoryRequestInput {
    /// Parses the whole input, collecting every field's problem at once.
    pub fn parse(&self, namespace: &Namespace) -> Result<NewRepositoryRequest, Vec<FieldError>> {
        self.parse_with(namespace, super::lifecycle::parse_rules)
    }

    /// The same checks for the web form, which has no field for lifecycle rules
    /// (they come through the JSON API): rules given here are refused.
    pub fn check_form(&self, namespace: &Namespace) -> Result<NewRepositoryRequest, Vec<FieldError>> {
        self.parse_with(namespace, |_, field| {
            Err(vec![FieldError::new(field, "lifecycle rules are given through the JSON API")])
        })
    }

    fn parse_with(
        &self,
        namespace: &Namespace,
        parse_rules: RulesParser,
    ) -> Result<NewRepositoryRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = RepoName::parse(namespace, &self.name)
            .map_err(|e| errors.push(FieldError::new("name", e.to_string())))
            .ok();
        let (tag_mutability, tag_mutability_exclusions) = mutability(
            self.tag_mutability.as_deref(),
            self.tag_mutability_exclusions.as_ref(),
            (TagMutability::Immutable, Vec::new()),
            &mut errors,
        );
        let kms = self.kms_key_arn.as_deref().map(str::trim).unwrap_or("");
        let encryption = match self.encryption.as_deref().map(|s| s.trim().to_ascii_uppercase()).as_deref() {
            None | Some("") | Some("AES256") => {
                if !kms.is_empty() {
                    errors.push(FieldError::new(
                        "kms_key_arn",
                        "a KMS key is only used with KMS encryption; clear it or choose KMS",
                    ));
                }
                Encryption::Aes256
            }
            Some("KMS") => {
                if kms.is_empty() {
                    errors.push(FieldError::new("kms_key_arn", "enter the KMS key ARN to encrypt with"));
                } else if !is_kms_key_arn(kms) {
                    errors.push(FieldError::new(
                        "kms_key_arn",
                        "expected a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), an alias ARN (…:alias/<name>), \
                         alias/<name>, or a key id",
                    ));
                }
                Encryption::Kms(kms.to_string())
            }
            Some(_) => {
                errors.push(FieldError::new("encryption", "choose AES256 or KMS"));
                Encryption::Aes256
            }
        };
        let lifecycle = lifecycle(
            self.keep_last_images,
            self.expire_untagged_after_days,
            self.lifecycle_rules.as_ref(),
            Lifecycle::default(),
            false,
            parse_rules,
            &mut errors,
        );
        let team = tag_value("team", "team", &self.team, &mut errors);
        let cost_center = tag_value("cost_center", "cost centre", &self.cost_center, &mut errors);
        let free = self.tags.as_ref().map(|m| free_tags(m, &mut errors)).unwrap_or_default();
        let tags = all_tags(team, cost_center, free, &mut errors);
        let justification = justification(&self.justification, &mut errors, "say why this repository is needed");
        match (name, errors.is_empty()) {
            (Some(name), true) => Ok(NewRepositoryRequest {
                spec: RepositorySpec {
                    name,
                    tag_mutability,
                    tag_mutability_exclusions,
                    scan_on_push: self.scan_on_push.unwrap_or(true),
                    encryption,
                    lifecycle,
                    tags,
                },
                grant_production: self.grant_production.unwrap_or(false),
                justification,
            }),
            _ => Err(errors),
        }
    }
}

/// Team and cost centre (required, and they win over free tags of the same key)
/// with the free tags, sorted by key.
fn all_tags(team: String, cost_center: String, free: Vec<Tag>, errors: &mut Vec<FieldError>) -> Vec<Tag> {
    let mut tags = vec![Tag { key: "cost-center".into(), value: cost_center }, Tag { key: "team".into(), value: team }];
    tags.extend(free.into_iter().filter(|t| !is_required_tag(&t.key)));
    tags.sort();
    if tags.len() > MAX_TAGS {
        errors.push(FieldError::new("tags", format!("at most {MAX_TAGS} tags, team and cost centre included")));
    }
    tags
}

/// A valid settings change: the whole new spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UpdateRequest {
    pub spec: RepositorySpec,
    pub expire_protected: bool,
    pub justification: String,
}

impl UpdateRequestInput {
    /// The new settings over `base` (the approved ones). The name is checked by the caller.
    pub fn parse(&self, base: &RepositorySpec) -> Result<UpdateRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.encryption.is_some() || self.kms_key_arn.is_some() {
            errors.push(FieldError::new(
                "encryption",
                "ECR cannot change a repository's encryption after creation; create a new repository instead",
            ));
        }
        let (tag_mutability, tag_mutability_exclusions) = mutability(
            self.tag_mutability.as_deref(),
            self.tag_mutability_exclusions.as_ref(),
            (base.tag_mutability, base.tag_mutability_exclusions.clone()),
            &mut errors,
        );
        let lifecycle = lifecycle(
            self.keep_last_images,
            self.expire_untagged_after_days,
            self.lifecycle_rules.as_ref(),
            base.lifecycle.clone(),
            true,
            super::lifecycle::parse_rules,
            &mut errors,
        );
        // The same policy in other words (rules that spell a preset) is the same lifecycle.
        let lifecycle = if lifecycle.policy_json() == base.lifecycle.policy_json() {
            base.lifecycle.clone()
        } else {
            Lifecycle::from_policy(lifecycle.policy_json().as_ref()).unwrap_or(lifecycle)
        };
        let old = |k: &str| base.tags.iter().find(|t| t.key == k).map(|t| t.value.clone()).unwrap_or_default();
        let mut map = self.tags.clone();
        let team_raw = self.team.clone().or_else(|| map.as_mut().and_then(|m| m.remove("team")));
        let cost_raw = self.cost_center.clone().or_else(|| map.as_mut().and_then(|m| m.remove("cost-center")));
        let team = match team_raw {
            Some(t) => tag_value("team", "team", &t, &mut errors),
            None => old("team"),
        };
        let cost_center = match cost_raw {
            Some(c) => tag_value("cost_center", "cost centre", &c, &mut errors),
            None => old("cost-center"),
        };
        let free = match &map {
            Some(m) => free_tags(m, &mut errors),
            None => base.tags.iter().filter(|t| !is_required_tag(&t.key)).cloned().collect(),
        };
        let tags = all_tags(team, cost_center, free, &mut errors);
        let justification = justification(&self.justification, &mut errors, "say why the settings should change");
        let spec = RepositorySpec {
            name: base.name.clone(),
            tag_mutability,
            tag_mutability_exclusions,
            scan_on_push: self.scan_on_push.unwrap_or(base.scan_on_push),
            encryption: base.encryption.clone(),
            lifecycle,
            tags,
        };
        if errors.is_empty() && spec == *base {
            errors.push(FieldError::new("repository", "these are already its settings; change at least one"));
        }
        if errors.is_empty() {
            Ok(UpdateRequest { spec, expire_protected: self.expire_protected.unwrap_or(false), justification })
        } else {
            Err(errors)
        }
    }
}

/// Parses an optional whole number typed in a form field.
pub fn parse_optional_number(field: &str, raw: &str) -> Result<Option<u32>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<u32>().map(Some).map_err(|_| FieldError::new(field, format!("`{raw}` is not a whole number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        Namespace::parse("crytera").expect("ns")
    }

    fn good() -> RepositoryRequestInput {
        RepositoryRequestInput {
            name: "templateistio".into(),
            team: "platform".into(),
            cost_center: "cc-1234".into(),
            justification: "Istio template images".into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_immutable_scanned_and_aes256() {
        let r = good().parse(&ns()).expect("valid");
        assert_eq!(r.spec.name.as_str(), "crytera/templateistio");
        assert_eq!(r.spec.tag_mutability, TagMutability::Immutable);
        assert!(r.spec.scan_on_push);
        assert_eq!(r.spec.encryption, Encryption::Aes256);
        assert_eq!(r.spec.tags.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["cost-center", "team"]);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let input = RepositoryRequestInput {
            name: "Bad Name".into(),
            encryption: Some("KMS".into()),
            keep_last_images: Some(0),
            team: "".into(),
            cost_center: "cc<script>".into(),
            justification: "   ".into(),
            ..Default::default()
        };
        let errs = input.parse(&ns()).expect_err("invalid");
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "kms_key_arn", "keep_last_images", "team", "cost_center", "justification"]);
    }

    #[test]
    fn kms_encryption_needs_a_key_arn() {
        let mut input = good();
        input.encryption = Some("kms".into());
        input.kms_key_arn = Some("arn:aws:kms:us-east-1:111122223333:alias/ecr".into());
        assert!(matches!(input.parse(&ns()).expect("ok").spec.encryption, Encryption::Kms(_)));
        input.encryption = None;
        assert_eq!(input.parse(&ns()).expect_err("key without KMS")[0].field, "kms_key_arn");
    }

    #[test]
    fn numbers_in_forms_are_checked() {
        assert_eq!(parse_optional_number("n", " "), Ok(None));
        assert_eq!(parse_optional_number("n", "30"), Ok(Some(30)));
        assert_eq!(parse_optional_number("n", "-1").expect_err("neg").field, "n");
    }

    #[test]
    fn access_requests_check_the_action_name_and_end_date() {
        let now = parse_date_ms("2026-11-27").expect("date") + 3_600_000;
        let ok = AccessRequestInput {
            action: "grant".into(),
            repository: "crytera/app".into(),
            until: Some("2026-11-27".into()),
            justification: "pilot".into(),
        };
        let r = ok.parse(&ns(), now).expect("valid");
        assert_eq!(r.until, parse_date_ms("2026-11-28"), "valid through the end date");
        let past = AccessRequestInput { until: Some("2026-11-26".into()), ..ok.clone() };
        assert_eq!(past.parse(&ns(), now).expect_err("past")[0].field, "until");
        let revoke_with_date = AccessRequestInput { action: "revoke".into(), ..ok.clone() };
        assert_eq!(revoke_with_date.parse(&ns(), now).expect_err("date on revoke")[0].field, "until");
        let bad = AccessRequestInput {
            action: "steal".into(),
            repository: "../x".into(),
            until: Some("2026-02-30".into()),
            justification: "".into(),
        };
        let fields: Vec<String> = bad.parse(&ns(), now).expect_err("bad").into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["action", "repository", "until", "justification"]);
    }

    #[test]
    fn dates_are_parsed_exactly() {
        assert_eq!(parse_date_ms("1970-01-01"), Some(0));
        assert_eq!(parse_date_ms("2000-03-01"), Some(951_868_800_000));
        assert!(parse_date_ms("2024-02-29").is_some());
        assert_eq!(parse_date_ms("2023-02-29"), None);
        assert_eq!(parse_date_ms("2026-13-01"), None);
        assert_eq!(parse_date_ms("26-1-1"), None);
    }

    #[test]
    fn unknown_json_fields_are_refused() {
        let r = serde_json::from_str::<RepositoryRequestInput>(
            r#"{"name":"a","team":"t","cost_center":"c","justification":"j","nmae":"typo"}"#,
        );
        assert!(r.is_err());
    }
}
