//! A repository as it is in ECR now, how it differs from approved settings,
//! and the writes (fixes) that put it back.
use super::REQUEST_TAG;
use app::domain::settings::{Encryption, RepositorySpec, Tag, TagMutability};

/// A repository as it is in ECR now.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRepository {
    pub name: String,
    pub uri: String,
    pub arn: String,
    pub registry_id: String,
    pub created_at_ms: i64,
    pub tag_mutability: TagMutability,
    /// Sorted.
    pub tag_mutability_exclusions: Vec<String>,
    pub scan_on_push: bool,
    pub encryption: Encryption,
    /// Only filled by [`Registry::describe`] (not by listing).
    pub tags: Vec<Tag>,
    pub lifecycle_policy: Option<serde_json::Value>,
    /// Only filled by [`Registry::describe`]: the repository policy, parsed.
    pub policy: Option<serde_json::Value>,
    /// The AWS request ids of the reads that produced this view.
    pub request_ids: Vec<String>,
}

impl LiveRepository {
    /// Differences between this repository and a spec, in words (empty: same).
    /// Differences in what DescribeRepositories shows (tag mutability, scanning, encryption).
    pub fn settings_differences(&self, spec: &RepositorySpec) -> Vec<String> {
        let mut d = Vec::new();
        if self.tag_mutability != spec.tag_mutability {
            d.push(format!("image tags are {} (requested {})", self.tag_mutability, spec.tag_mutability));
        } else if self.tag_mutability_exclusions != spec.tag_mutability_exclusions {
            d.push(format!(
                "the tag mutability exclusions are [{}] (requested [{}])",
                self.tag_mutability_exclusions.join(", "),
                spec.tag_mutability_exclusions.join(", ")
            ));
        }
        if self.scan_on_push != spec.scan_on_push {
            d.push(format!("scan on push is {} (requested {})", self.scan_on_push, spec.scan_on_push));
        }
        if !spec.encryption.matches_live(&self.encryption) {
            d.push(format!("encryption is {} (requested {})", self.encryption, spec.encryption));
        }
        d
    }

    pub fn differences(&self, spec: &RepositorySpec) -> Vec<String> {
        let mut d = self.settings_differences(spec);
        // Compared as parsed JSON: AWS reformats policy text.
        if self.lifecycle_policy != spec.lifecycle.policy_json() {
            d.push(match &self.lifecycle_policy {
                None => "it has no lifecycle policy (one was requested)".into(),
                Some(_) if spec.lifecycle.is_empty() => "it has a lifecycle policy (none was requested)".into(),
                Some(_) => "its lifecycle policy differs from the requested one".into(),
            });
        }
        for want in spec.tags.iter().filter(|t| t.key != REQUEST_TAG) {
            match self.tags.iter().find(|t| t.key == want.key) {
                Some(t) if t.value == want.value => {}
                Some(t) => d.push(format!("tag {} is `{}` (requested `{}`)", want.key, t.value, want.value)),
                None => d.push(format!("tag {} is missing", want.key)),
            }
        }
        d
    }

    pub fn request_tag(&self) -> Option<&str> {
        self.tags.iter().find(|t| t.key == REQUEST_TAG).map(|t| t.value.as_str())
    }
}

/// One setting to put back to its approved value.
#[derive(Debug, Clone, PartialEq)]
pub enum Fix {
    /// The setting and its exclusion filters.
    TagMutability(TagMutability, Vec<String>),
    ScanOnPush(bool),
    Lifecycle(Option<serde_json::Value>),
    Tags(Vec<Tag>),
    /// Remove these tag keys.
    Untag(Vec<String>),
}

impl Fix {
    pub fn call(&self) -> &'static str {
        match self {
            Fix::TagMutability(..) => "ecr:PutImageTagMutability",
            Fix::ScanOnPush(_) => "ecr:PutImageScanningConfiguration",
            Fix::Lifecycle(Some(_)) => "ecr:PutLifecyclePolicy",
            Fix::Lifecycle(None) => "ecr:DeleteLifecyclePolicy",
            Fix::Tags(_) => "ecr:TagResource",
            Fix::Untag(_) => "ecr:UntagResource",
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Fix::TagMutability(m, ex) if ex.is_empty() => format!("set image tags to {m}"),
            Fix::TagMutability(m, ex) => format!("set image tags to {m}, except {}", ex.join(", ")),
            Fix::ScanOnPush(b) => format!("set scan on push to {b}"),
            Fix::Lifecycle(Some(_)) => "put the approved lifecycle policy back".into(),
            Fix::Lifecycle(None) => "delete the lifecycle policy".into(),
            Fix::Tags(t) => format!(
                "set tags {}",
                t.iter().map(|t| format!("{}={}", t.key, t.value)).collect::<Vec<_>>().join(", ")
            ),
            Fix::Untag(keys) => format!("remove tags {}", keys.join(", ")),
        }
    }
}

/// The settings that differ between `live` and `spec`, as fixes (encryption cannot be changed).
pub fn fixes(live: &LiveRepository, spec: &RepositorySpec) -> (Vec<Fix>, Vec<String>) {
    let mut fixes = Vec::new();
    let mut impossible = Vec::new();
    if live.tag_mutability != spec.tag_mutability || live.tag_mutability_exclusions != spec.tag_mutability_exclusions {
        fixes.push(Fix::TagMutability(spec.tag_mutability, spec.tag_mutability_exclusions.clone()));
    }
    if live.scan_on_push != spec.scan_on_push {
        fixes.push(Fix::ScanOnPush(spec.scan_on_push));
    }
    if live.lifecycle_policy != spec.lifecycle.policy_json() {
        fixes.push(Fix::Lifecycle(spec.lifecycle.policy_json()));
    }
    let wrong_tags: Vec<Tag> =
        spec.tags.iter().filter(|want| t_value(live, &want.key) != Some(want.value.as_str())).cloned().collect();
    if !wrong_tags.is_empty() {
        fixes.push(Fix::Tags(wrong_tags));
    }
    if !spec.encryption.matches_live(&live.encryption) {
        impossible.push(format!(
            "encryption is {} (approved {}); ECR cannot change it after creation",
            live.encryption, spec.encryption
        ));
    }
    (fixes, impossible)
}

fn t_value<'a>(live: &'a LiveRepository, key: &str) -> Option<&'a str> {
    live.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}
