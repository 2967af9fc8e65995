//! Images in a repository, their scans, and the rules of a promotion: giving a
//! tested image (by digest) a release tag that production pulls.
use super::field::FieldError;
use super::lifecycle::{wildcard_match, Image};
use super::settings::TagMutability;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The state of an image's vulnerability scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ScanSummary {
    /// ECR's status (`COMPLETE`, `IN_PROGRESS`, `FAILED`, …).
    pub status: String,
    /// Findings by severity (`CRITICAL`, `HIGH`, …).
    pub counts: BTreeMap<String, u32>,
}

impl ScanSummary {
    /// The scan finished (basic scanning says COMPLETE; enhanced scanning keeps an image ACTIVE).
    pub fn is_complete(&self) -> bool {
        matches!(self.status.as_str(), "COMPLETE" | "ACTIVE")
    }
    pub fn critical(&self) -> u32 {
        self.counts.get("CRITICAL").copied().unwrap_or(0)
    }
    /// In words: "COMPLETE: 1 HIGH, 2 MEDIUM", "COMPLETE: no findings".
    pub fn describe(&self) -> String {
        if self.counts.is_empty() {
            return format!("{}: no findings", self.status);
        }
        let order = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"];
        let mut parts: Vec<String> =
            order.iter().filter_map(|s| self.counts.get(*s).map(|n| format!("{n} {s}"))).collect();
        parts.extend(self.counts.iter().filter(|(s, _)| !order.contains(&s.as_str())).map(|(s, n)| format!("{n} {s}")));
        format!("{}: {}", self.status, parts.join(", "))
    }
}

/// One image as the images page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ImageInfo {
    pub image: Image,
    pub size_bytes: Option<i64>,
    pub media_type: Option<String>,
    /// None: not scanned.
    pub scan: Option<ScanSummary>,
}

/// Whether a tag is immutable in a repository with these settings.
pub fn tag_is_immutable(tag: &str, mutability: TagMutability, exclusions: &[String]) -> bool {
    let excluded = exclusions.iter().any(|f| wildcard_match(f, tag));
    match mutability {
        TagMutability::Immutable => true,
        TagMutability::Mutable => false,
        TagMutability::ImmutableWithExclusion => !excluded,
        TagMutability::MutableWithExclusion => excluded,
    }
}

/// What promoting `digest` to `tag` finds in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionCheck<'a> {
    pub tag: &'a str,
    pub digest: &'a str,
    /// The release tag patterns (`portal.release_tag_patterns`).
    pub patterns: &'a [String],
    /// The digest the tag names now, if any.
    pub tag_now: Option<&'a str>,
    pub mutability: TagMutability,
    pub exclusions: &'a [String],
    /// The request says the tag may move from another digest.
    pub move_tag: bool,
}

impl PromotionCheck<'_> {
    /// Refuses what cannot be promoted, per field; `Ok(Some(d))` when the tag moves from digest `d`.
    pub fn check(&self) -> Result<Option<String>, FieldError> {
        let tag = self.tag;
        let shape = tag.len() <= 128
            && !tag.is_empty()
            && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !shape {
            return Err(FieldError::new(
                "tag",
                "a tag is 1 to 128 letters, digits, . _ and -, starting with a letter, digit or _",
            ));
        }
        if !self.patterns.iter().any(|p| wildcard_match(p, tag)) {
            return Err(FieldError::new(
                "tag",
                format!("`{tag}` is not a release tag here; release tags match {}", self.patterns.join(" or ")),
            ));
        }
        match self.tag_now {
            None => Ok(None),
            Some(d) if d == self.digest => {
                Err(FieldError::new("tag", format!("{tag} already names this image; there is nothing to promote")))
            }
            Some(d) if tag_is_immutable(tag, self.mutability, self.exclusions) => Err(FieldError::new(
                "tag",
                format!("{tag} already names another image ({d}) and tags are immutable in this repository"),
            )),
            Some(d) if !self.move_tag => Err(FieldError::new(
                "tag",
                format!("{tag} already names another image ({d}); say \"move\": true to move it to this one"),
            )),
            Some(d) => Ok(Some(d.to_string())),
        }
    }
}

/// A digest short enough to read in a table: `sha256:` and its first 12 hex digits.
pub fn short_digest(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// Checks a digest's shape (`sha256:` and 64 lowercase hex digits).
pub fn is_digest(raw: &str) -> bool {
    raw.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<'a>(
        tag: &'a str,
        tag_now: Option<&'a str>,
        m: TagMutability,
        move_tag: bool,
    ) -> Result<Option<String>, FieldError> {
        PromotionCheck {
            tag,
            digest: "sha256:a",
            patterns: &["v*".to_string()],
            tag_now,
            mutability: m,
            exclusions: &["latest".to_string()],
            move_tag,
        }
        .check()
    }

    #[test]
    fn promotions_are_refused_for_the_documented_reasons() {
        assert_eq!(check("v1.0.0", None, TagMutability::Immutable, false), Ok(None));
        assert!(check("latest", None, TagMutability::Mutable, false)
            .expect_err("pattern")
            .message
            .contains("release tags match v*"));
        assert!(check("v1 0", None, TagMutability::Mutable, false).is_err());
        assert!(check("v1", Some("sha256:a"), TagMutability::Mutable, true)
            .expect_err("same")
            .message
            .contains("nothing"));
        assert!(check("v1", Some("sha256:b"), TagMutability::Immutable, true)
            .expect_err("immutable")
            .message
            .contains("immutable"));
        assert!(check("v1", Some("sha256:b"), TagMutability::Mutable, false)
            .expect_err("taken")
            .message
            .contains("\"move\": true"));
        assert_eq!(check("v1", Some("sha256:b"), TagMutability::Mutable, true), Ok(Some("sha256:b".into())));
        // With exclusions: immutable except `latest`; mutable except `latest`.
        assert!(check("v1", Some("sha256:b"), TagMutability::ImmutableWithExclusion, true).is_err());
        assert_eq!(
            check("v1", Some("sha256:b"), TagMutability::MutableWithExclusion, true),
            Ok(Some("sha256:b".into()))
        );
    }

    #[test]
    fn scan_summaries_read_well() {
        let s = ScanSummary {
            status: "COMPLETE".into(),
            counts: [("HIGH".to_string(), 1), ("CRITICAL".to_string(), 2)].into(),
        };
        assert_eq!(s.describe(), "COMPLETE: 2 CRITICAL, 1 HIGH");
        assert_eq!(s.critical(), 2);
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest("sha256:ABC"));
    }
}
