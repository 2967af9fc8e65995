//! Repository settings a requester chooses, and the lifecycle policy they imply.
//!
//! Everything here is already valid: [`RepositorySpec`] is only built by
//! [`crate::domain::form::RepositoryRequestInput::parse`].
use super::lifecycle::{Count, LifecycleRule, TagStatus};
use super::name::RepoName;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagMutability {
    Mutable,
    Immutable,
    /// Immutable, except tags matching the exclusion filters.
    ImmutableWithExclusion,
    /// Mutable, except tags matching the exclusion filters (which are immutable).
    MutableWithExclusion,
}

/// ECR's limit on tag mutability exclusion filters.
pub const MAX_EXCLUSIONS: usize = 5;

impl TagMutability {
    pub const ALL: [TagMutability; 4] =
        [Self::Immutable, Self::Mutable, Self::ImmutableWithExclusion, Self::MutableWithExclusion];
    pub fn as_aws(&self) -> &'static str {
        match self {
            Self::Mutable => "MUTABLE",
            Self::Immutable => "IMMUTABLE",
            Self::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            Self::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim().to_ascii_uppercase();
        Self::ALL.into_iter().find(|m| m.as_aws() == raw)
    }
    /// Whether it takes exclusion filters (and needs at least one).
    pub fn has_exclusions(&self) -> bool {
        matches!(self, Self::ImmutableWithExclusion | Self::MutableWithExclusion)
    }
}

impl fmt::Display for TagMutability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_aws())
    }
}

/// How images are encrypted at rest. ECR fixes this at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(tag = "type", content = "kms_key")]
pub enum Encryption {
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "KMS")]
    Kms(String),
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aes256 => f.write_str("AES256"),
            Self::Kms(k) => write!(f, "KMS ({k})"),
        }
    }
}

/// AWS partitions a KMS key ARN can name.
const PARTITIONS: [&str; 8] =
    ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"];

/// A region name's shape: `us-east-1`, `us-gov-west-1`, `cn-north-1`, `eu-isoe-west-1`.
pub fn is_region(raw: &str) -> bool {
    let parts: Vec<&str> = raw.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts[0].len() == 2
        && parts.iter().take(parts.len() - 1).all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok_and(|n| n > 0)
}

/// A KMS key id: a UUID, or a multi-Region key id (`mrk-` and 32 hex digits).
fn is_key_id(raw: &str) -> bool {
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    if let Some(m) = raw.strip_prefix("mrk-") {
        return m.len() == 32 && hex(m);
    }
    let groups: Vec<&str> = raw.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| hex(g))
}

/// An alias name after `alias/`: 1–250 of `A-Za-z0-9/_-`, not AWS's own `aws/…` (ECR cannot use
/// an AWS managed key by alias other than its own default, which is AES256's job here).
fn is_alias_name(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 250
        && !raw.starts_with("aws/")
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
}

/// How a KMS key can be named to ECR, which takes "the alias, key ID, or full ARN of the KMS key".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsKeyRef<'a> {
    /// `arn:<partition>:kms:<region>:<account>:key/<id>`
    KeyArn { region: &'a str, id: &'a str },
    /// `arn:<partition>:kms:<region>:<account>:alias/<name>`
    AliasArn { region: &'a str },
    /// `<key id>` alone
    KeyId(&'a str),
    /// `alias/<name>` alone
    Alias,
}

impl<'a> KmsKeyRef<'a> {
    /// Parses a key reference, checking partition, region, account and id shapes.
    pub fn parse(raw: &'a str) -> Option<Self> {
        if let Some(name) = raw.strip_prefix("alias/") {
            return is_alias_name(name).then_some(Self::Alias);
        }
        if is_key_id(raw) {
            return Some(Self::KeyId(raw));
        }
        let parts: Vec<&str> = raw.splitn(6, ':').collect();
        let [arn, partition, kms, region, account, resource] = parts.as_slice() else { return None };
        let shape = *arn == "arn"
            && PARTITIONS.contains(partition)
            && *kms == "kms"
            && is_region(region)
            && account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit());
        if !shape {
            return None;
        }
        if let Some(id) = resource.strip_prefix("key/") {
            return is_key_id(id).then_some(Self::KeyArn { region, id });
        }
        resource.strip_prefix("alias/").filter(|n| is_alias_name(n)).map(|_| Self::AliasArn { region })
    }

    /// The region an ARN names (None for bare ids and aliases, which ECR reads in its own region).
    pub fn region(&self) -> Option<&'a str> {
        match self {
            Self::KeyArn { region, .. } | Self::AliasArn { region } => Some(region),
            _ => None,
        }
    }
}

/// Checks a KMS key reference the way ECR takes it (see [`KmsKeyRef`]).
pub fn is_kms_key_arn(raw: &str) -> bool {
    KmsKeyRef::parse(raw).is_some()
}

impl Encryption {
    /// Whether the live encryption of a repository is what was asked for. ECR
    /// answers with the key's ARN whatever name the key was given by, so a
    /// key id matches the ARN that ends in it, and an alias (which only KMS can
    /// resolve) matches any KMS key.
    pub fn matches_live(&self, live: &Encryption) -> bool {
        match (self, live) {
            (Self::Aes256, Self::Aes256) => true,
            (Self::Kms(want), Self::Kms(have)) if want == have => true,
            (Self::Kms(want), Self::Kms(have)) => match KmsKeyRef::parse(want) {
                Some(KmsKeyRef::Alias) | Some(KmsKeyRef::AliasArn { .. }) => true,
                Some(KmsKeyRef::KeyId(id)) => have.ends_with(&format!(":key/{id}")),
                Some(KmsKeyRef::KeyArn { id, .. }) => have == id,
                None => false,
            },
            _ => false,
        }
    }
}

/// A repository's lifecycle: the two presets the portal offers (both
/// optional), or a list of rules in ECR's terms (then no preset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Lifecycle {
    /// Keep only the newest N images (any tag state).
    pub keep_last_images: Option<u32>,
    /// Expire untagged images N days after push.
    pub expire_untagged_after_days: Option<u32>,
    /// Rules of one's own, sorted by priority (see [`super::lifecycle`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<LifecycleRule>,
}

pub const MAX_KEEP_LAST: u32 = 10_000;
pub const MAX_UNTAGGED_DAYS: u32 = 3_650;

impl Lifecycle {
    pub fn is_empty(&self) -> bool {
        self.keep_last_images.is_none() && self.expire_untagged_after_days.is_none() && self.rules.is_empty()
    }

    /// The rules in effect: one's own, or the presets' (untagged expiry first,
    /// then the count of any image, which ECR wants last).
    pub fn effective_rules(&self) -> Vec<LifecycleRule> {
        if !self.rules.is_empty() {
            return self.rules.clone();
        }
        let mut rules = Vec::new();
        if let Some(days) = self.expire_untagged_after_days {
            rules.push(LifecycleRule {
                priority: 1,
                description: Some(format!("Expire untagged images after {days} days")),
                tag_status: TagStatus::Untagged,
                tag_prefixes: vec![],
                tag_patterns: vec![],
                count: Count::SinceImagePushedDays(days),
            });
        }
        if let Some(n) = self.keep_last_images {
            rules.push(LifecycleRule {
                priority: rules.len() as u32 + 1,
                description: Some(format!("Keep only the last {n} images")),
                tag_status: TagStatus::Any,
                tag_prefixes: vec![],
                tag_patterns: vec![],
                count: Count::ImageCountMoreThan(n),
            });
        }
        rules
    }

    /// The ECR lifecycle policy document, or `None` when no rule is chosen.
    pub fn policy_json(&self) -> Option<serde_json::Value> {
        let rules: Vec<serde_json::Value> = self.effective_rules().iter().map(LifecycleRule::to_json).collect();
        (!rules.is_empty()).then(|| serde_json::json!({ "rules": rules }))
    }

    /// The lifecycle a live policy expresses: a preset when it is exactly one of
    /// ours, otherwise its rules; `None` when the portal cannot express it.
    pub fn from_policy(policy: Option<&serde_json::Value>) -> Option<Self> {
        let Some(p) = policy else { return Some(Self::default()) };
        let rules = super::lifecycle::parse_rules(p.get("rules")?.as_array()?, "lifecycle").ok()?;
        let mut preset = Self::default();
        for r in &rules {
            match (r.tag_status, r.count) {
                (TagStatus::Untagged, Count::SinceImagePushedDays(d)) => preset.expire_untagged_after_days = Some(d),
                (TagStatus::Any, Count::ImageCountMoreThan(n)) => preset.keep_last_images = Some(n),
                _ => {}
            }
        }
        if preset.policy_json().as_ref() == Some(p) {
            return Some(preset);
        }
        let own = Self { rules, ..Self::default() };
        (own.policy_json().as_ref() == Some(p)).then_some(own)
    }
}

/// A tag as ECR stores it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Everything needed to create one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RepositorySpec {
    pub name: RepoName,
    pub tag_mutability: TagMutability,
    /// Tags that are the exception to the tag mutability (`latest`, `dev-*`);
    /// only with the `…_WITH_EXCLUSION` settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_mutability_exclusions: Vec<String>,
    pub scan_on_push: bool,
    pub encryption: Encryption,
    pub lifecycle: Lifecycle,
    /// Sorted by key; always contains `team` and `cost-center`.
    pub tags: Vec<Tag>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_policy_orders_untagged_expiry_first() {
        let l = Lifecycle { keep_last_images: Some(30), expire_untagged_after_days: Some(7), rules: vec![] };
        let p = l.policy_json().expect("policy");
        assert_eq!(p["rules"][0]["selection"]["tagStatus"], "untagged");
        assert_eq!(p["rules"][0]["rulePriority"], 1);
        assert_eq!(p["rules"][1]["selection"]["countNumber"], 30);
        assert_eq!(p["rules"][1]["rulePriority"], 2);
        assert!(Lifecycle::default().policy_json().is_none());
        assert_eq!(Lifecycle::from_policy(Some(&p)), Some(l));
        assert_eq!(Lifecycle::from_policy(None), Some(Lifecycle::default()));
        assert_eq!(Lifecycle::from_policy(Some(&serde_json::json!({"rules": [{"selection": {}}]}))), None);
        // Any valid policy of someone else's is read as rules.
        let theirs = serde_json::json!({"rules": [{"rulePriority": 5, "selection": {"tagStatus": "tagged",
            "tagPrefixList": ["dev"], "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "expire"}}]});
        let read = Lifecycle::from_policy(Some(&theirs)).expect("rules");
        assert_eq!((read.rules.len(), read.keep_last_images), (1, None));
        assert_eq!(read.policy_json(), Some(theirs));
    }

    #[test]
    fn kms_key_arns_are_recognised() {
        assert!(is_kms_key_arn("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(is_kms_key_arn("arn:aws:kms:eu-west-1:111122223333:alias/ecr"));
        assert!(is_kms_key_arn(
            "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        ));
        assert!(is_kms_key_arn("arn:aws-cn:kms:cn-north-1:111122223333:alias/team/ecr"));
        assert!(is_kms_key_arn("alias/ecr-images"));
        assert!(is_kms_key_arn("1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(!is_kms_key_arn("arn:aws:kms:us-east-1:1111:key/x"));
        assert!(!is_kms_key_arn("arn:aws:s3:::bucket"));
        assert!(!is_kms_key_arn("arn:aws:kms:us-east-1:111122223333:key/"));
        assert!(!is_kms_key_arn("arn:aws:kms:us-east-1:111122223333:key/not-a-key-id"), "key ids are UUIDs");
        assert!(!is_kms_key_arn("arn:awz:kms:us-east-1:111122223333:alias/ecr"), "no such partition");
        assert!(!is_kms_key_arn("arn:aws:kms:US-EAST-1:111122223333:alias/ecr"), "regions are lowercase");
        assert!(!is_kms_key_arn("arn:aws:kms:useast1:111122223333:alias/ecr"));
        assert!(!is_kms_key_arn("arn:aws:kms:us-east-1:11112222333a:alias/ecr"));
        assert!(!is_kms_key_arn("alias/aws/ecr"), "AWS's own aliases");
        assert!(!is_kms_key_arn("alias/"));
        assert!(!is_kms_key_arn("alias/has space"));
        assert_eq!(
            KmsKeyRef::parse("arn:aws:kms:eu-west-1:111122223333:alias/ecr").and_then(|k| k.region()),
            Some("eu-west-1")
        );
    }

    #[test]
    fn live_kms_keys_match_the_way_ecr_reports_them() {
        let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let live = Encryption::Kms(arn.into());
        assert!(Encryption::Kms(arn.into()).matches_live(&live));
        assert!(Encryption::Kms("1234abcd-12ab-34cd-56ef-1234567890ab".into()).matches_live(&live));
        assert!(Encryption::Kms("alias/ecr".into()).matches_live(&live), "an alias names some key");
        assert!(!Encryption::Kms("00000000-12ab-34cd-56ef-1234567890ab".into()).matches_live(&live));
        assert!(!Encryption::Aes256.matches_live(&live));
        assert!(!Encryption::Kms("alias/ecr".into()).matches_live(&Encryption::Aes256));
    }
}
