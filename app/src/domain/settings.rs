//! Repository settings a requester chooses, and the lifecycle policy they imply.
//!
//! Everything here is already valid: [`RepositorySpec`] is only built by
//! [`crate::domain::form::RepositoryRequestInput::parse`].
use super::name::RepoName;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagMutability {
    Mutable,
    Immutable,
}

impl TagMutability {
    pub fn as_aws(&self) -> &'static str {
        match self {
            Self::Mutable => "MUTABLE",
            Self::Immutable => "IMMUTABLE",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_uppercase().as_str() {
            "MUTABLE" => Some(Self::Mutable),
            "IMMUTABLE" => Some(Self::Immutable),
            _ => None,
        }
    }
}

impl fmt::Display for TagMutability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_aws())
    }
}

/// How images are encrypted at rest. ECR fixes this at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Checks `arn:aws:kms:<region>:<12 digits>:key/<id>` or `…:alias/<name>`.
pub fn is_kms_key_arn(raw: &str) -> bool {
    let parts: Vec<&str> = raw.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "kms"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && (parts[5].strip_prefix("key/").is_some_and(|k| !k.is_empty())
            || parts[5].strip_prefix("alias/").is_some_and(|k| !k.is_empty()))
}

/// The two lifecycle presets the portal offers; both optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Keep only the newest N images (any tag state).
    pub keep_last_images: Option<u32>,
    /// Expire untagged images N days after push.
    pub expire_untagged_after_days: Option<u32>,
}

pub const MAX_KEEP_LAST: u32 = 10_000;
pub const MAX_UNTAGGED_DAYS: u32 = 3_650;

impl Lifecycle {
    pub fn is_empty(&self) -> bool {
        self.keep_last_images.is_none() && self.expire_untagged_after_days.is_none()
    }

    /// The ECR lifecycle policy document, or `None` when no rule is chosen.
    /// Untagged expiry gets the higher priority (lower number) so it runs first.
    pub fn policy_json(&self) -> Option<serde_json::Value> {
        let mut rules = Vec::new();
        let mut priority = 1;
        if let Some(days) = self.expire_untagged_after_days {
            rules.push(serde_json::json!({
                "rulePriority": priority,
                "description": format!("Expire untagged images after {days} days"),
                "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": days},
                "action": {"type": "expire"}
            }));
            priority += 1;
        }
        if let Some(n) = self.keep_last_images {
            rules.push(serde_json::json!({
                "rulePriority": priority,
                "description": format!("Keep only the last {n} images"),
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": n},
                "action": {"type": "expire"}
            }));
        }
        (!rules.is_empty()).then(|| serde_json::json!({ "rules": rules }))
    }

    /// The preset a live lifecycle policy was made from, if it is exactly one of ours.
    pub fn from_policy(policy: Option<&serde_json::Value>) -> Option<Self> {
        let Some(p) = policy else { return Some(Self::default()) };
        let mut l = Self::default();
        for rule in p.get("rules")?.as_array()? {
            let sel = rule.get("selection")?;
            let n = u32::try_from(sel.get("countNumber")?.as_u64()?).ok()?;
            match (sel.get("tagStatus")?.as_str()?, sel.get("countType")?.as_str()?) {
                ("untagged", "sinceImagePushed") => l.expire_untagged_after_days = Some(n),
                ("any", "imageCountMoreThan") => l.keep_last_images = Some(n),
                _ => return None,
            }
        }
        (l.policy_json().as_ref() == Some(p)).then_some(l)
    }
}

/// A tag as ECR stores it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Everything needed to create one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositorySpec {
    pub name: RepoName,
    pub tag_mutability: TagMutability,
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
        let l = Lifecycle { keep_last_images: Some(30), expire_untagged_after_days: Some(7) };
        let p = l.policy_json().expect("policy");
        assert_eq!(p["rules"][0]["selection"]["tagStatus"], "untagged");
        assert_eq!(p["rules"][0]["rulePriority"], 1);
        assert_eq!(p["rules"][1]["selection"]["countNumber"], 30);
        assert_eq!(p["rules"][1]["rulePriority"], 2);
        assert!(Lifecycle::default().policy_json().is_none());
        assert_eq!(Lifecycle::from_policy(Some(&p)), Some(l));
        assert_eq!(Lifecycle::from_policy(None), Some(Lifecycle::default()));
        assert_eq!(Lifecycle::from_policy(Some(&serde_json::json!({"rules": [{"selection": {}}]}))), None);
    }

    #[test]
    fn kms_key_arns_are_recognised() {
        assert!(is_kms_key_arn("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(is_kms_key_arn("arn:aws:kms:eu-west-1:111122223333:alias/ecr"));
        assert!(!is_kms_key_arn("arn:aws:kms:us-east-1:1111:key/x"));
        assert!(!is_kms_key_arn("arn:aws:s3:::bucket"));
        assert!(!is_kms_key_arn("arn:aws:kms:us-east-1:111122223333:key/"));
    }
}
