//! The plan: exactly which AWS calls approval will make, with their settings,
//! so an approver sees the change before it happens. The worker follows the
//! same plan, so the page cannot drift from what is applied.
use super::policy::{self, DiffLine};
use super::settings::{Encryption, RepositorySpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PlanStep {
    /// The AWS API call, e.g. `ecr:CreateRepository`.
    pub call: String,
    /// What it does, in a sentence.
    pub summary: String,
    /// Its parameters, in display order.
    pub params: Vec<(String, String)>,
    /// A JSON document sent with the call, pretty-printed.
    pub document: Option<String>,
}

/// The repository policy before and after, for the approver to compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PolicyChange {
    /// Pretty-printed; empty when there is no policy.
    pub before: String,
    pub after: String,
    pub lines: Vec<DiffLine>,
    /// Already in the desired state: applying changes nothing.
    pub unchanged: bool,
}

impl PolicyChange {
    pub fn new(before: Option<&Value>, after: Option<&Value>) -> Self {
        let unchanged = match (before, after) {
            (None, None) => true,
            (Some(a), Some(b)) => policy::same(a, b),
            _ => false,
        };
        let (before, after) = (policy::pretty(before), policy::pretty(after));
        let lines = policy::diff(&before, &after);
        Self { before, after, lines, unchanged }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Plan {
    pub steps: Vec<PlanStep>,
    pub policy: Option<PolicyChange>,
    /// Why the plan cannot be applied as it stands (e.g. the policy would be too large).
    pub blocked: Option<String>,
    /// A settings change: each setting before → after.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = true))]
    pub changes: Vec<SettingChange>,
    /// What the lifecycle would expire from the repository's images now.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = true))]
    pub preview: Option<LifecyclePreview>,
    /// What the approver must not miss (shown in red): protected images expire,
    /// production loses images.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = true))]
    pub warning: Option<String>,
}

/// One setting, before → after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SettingChange {
    pub setting: String,
    pub before: String,
    pub after: String,
    /// ECR cannot change it after creation (encryption): shown, never written.
    pub fixed: bool,
}

impl SettingChange {
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
}

/// One image the lifecycle would expire, for people to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ExpiringImage {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: crate::domain::time::Timestamp,
    /// The rule that expires it, in words.
    pub rule: String,
    /// Why it should be kept (pulled lately, a release tag), if it should.
    pub protected: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LifecyclePreview {
    pub images: usize,
    /// Newest first.
    pub expiring: Vec<ExpiringImage>,
}

impl LifecyclePreview {
    pub fn protected(&self) -> usize {
        self.expiring.iter().filter(|e| e.protected.is_some()).count()
    }
}

/// The settings of a spec in words, one row each, for before → after.
pub fn setting_rows(spec: &RepositorySpec) -> Vec<(&'static str, String, bool)> {
    let mutability = if spec.tag_mutability_exclusions.is_empty() {
        spec.tag_mutability.to_string()
    } else {
        format!("{} except {}", spec.tag_mutability, spec.tag_mutability_exclusions.join(", "))
    };
    let lifecycle = {
        let rules = spec.lifecycle.effective_rules();
        if rules.is_empty() {
            "none".to_string()
        } else {
            rules.iter().map(|r| r.describe()).collect::<Vec<_>>().join("; ")
        }
    };
    let tags = spec.tags.iter().map(|t| format!("{}={}", t.key, t.value)).collect::<Vec<_>>().join(", ");
    let encryption = match &spec.encryption {
        Encryption::Aes256 => "AES256".to_string(),
        Encryption::Kms(k) => format!("KMS, key {k}"),
    };
    vec![
        ("Image tags", mutability, false),
        ("Scan on push", spec.scan_on_push.to_string(), false),
        ("Lifecycle", lifecycle, false),
        ("Tags", tags, false),
        ("Encryption", encryption, true),
    ]
}

/// The plan for changing a repository's settings from `before` (live, or as
/// approved) to `after`, with the preview of the new lifecycle.
pub fn for_update(
    before: &RepositorySpec,
    after: &RepositorySpec,
    preview: Option<LifecyclePreview>,
    expire_protected: bool,
    target: &Target,
) -> Plan {
    let changes: Vec<SettingChange> = setting_rows(before)
        .into_iter()
        .zip(setting_rows(after))
        .map(|((setting, b, fixed), (_, a, _))| SettingChange {
            setting: setting.to_string(),
            before: b,
            after: a,
            fixed,
        })
        .collect();
    let name = after.name.to_string();
    let mut steps: Vec<PlanStep> = assume_step(target).into_iter().collect();
    let p = |k: &str, v: String| (k.to_string(), v);
    if before.tag_mutability != after.tag_mutability
        || before.tag_mutability_exclusions != after.tag_mutability_exclusions
    {
        let mut params =
            vec![p("repositoryName", name.clone()), p("imageTagMutability", after.tag_mutability.to_string())];
        if !after.tag_mutability_exclusions.is_empty() {
            params.push(p("imageTagMutabilityExclusionFilters", after.tag_mutability_exclusions.join(", ")));
        }
        steps.push(PlanStep {
            call: "ecr:PutImageTagMutability".into(),
            summary: "Set whether image tags can be overwritten".into(),
            params,
            document: None,
        });
    }
    if before.scan_on_push != after.scan_on_push {
        steps.push(step(
            "ecr:PutImageScanningConfiguration",
            format!("Turn scan on push {}", if after.scan_on_push { "on" } else { "off" }),
            vec![("repositoryName", name.clone()), ("scanOnPush", after.scan_on_push.to_string())],
            None,
        ));
    }
    if before.lifecycle.policy_json() != after.lifecycle.policy_json() {
        match after.lifecycle.policy_json() {
            Some(doc) => steps.push(step(
                "ecr:PutLifecyclePolicy",
                "Set the lifecycle policy",
                vec![("repositoryName", name.clone())],
                serde_json::to_string_pretty(&doc).ok(),
            )),
            None => steps.push(step(
                "ecr:DeleteLifecyclePolicy",
                "Remove the lifecycle policy",
                vec![("repositoryName", name.clone())],
                None,
            )),
        }
    }
    let changed: Vec<String> =
        after.tags.iter().filter(|t| !before.tags.contains(t)).map(|t| format!("{}={}", t.key, t.value)).collect();
    if !changed.is_empty() {
        steps.push(step("ecr:TagResource", "Add or change tags", vec![("tags", changed.join(", "))], None));
    }
    let removed: Vec<String> =
        before.tags.iter().filter(|t| !after.tags.iter().any(|a| a.key == t.key)).map(|t| t.key.clone()).collect();
    if !removed.is_empty() {
        steps.push(step("ecr:UntagResource", "Remove tags", vec![("tagKeys", removed.join(", "))], None));
    }
    steps.push(step(
        "ecr:DescribeRepositories",
        "Verify: read the repository back (settings, tags, lifecycle) and compare with the approved settings",
        vec![("repositoryName", name)],
        None,
    ));
    // Only a new lifecycle is judged here: an unchanged one is not this request's doing.
    let lifecycle_changes = before.lifecycle.policy_json() != after.lifecycle.policy_json();
    let protected = if lifecycle_changes { preview.as_ref().map_or(0, LifecyclePreview::protected) } else { 0 };
    let warning = (protected > 0).then(|| {
        format!(
            "This lifecycle would expire {protected} protected image(s): pulled by production lately or carrying a \
             release tag.{}",
            if expire_protected { " The requester says this is intended." } else { "" }
        )
    });
    let blocked = (protected > 0 && !expire_protected).then(|| {
        "the lifecycle would expire protected images and the request does not say so (expire_protected); ask for it \
         again with expire_protected, or change the rules"
            .to_string()
    });
    Plan { steps, changes, preview, warning, blocked, ..Plan::default() }
}

/// Where the plan runs: the role assumed in the staging account, the region,
/// and the production account that pull grants name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Target {
    pub region: String,
    pub staging_role_arn: Option<String>,
    pub production_account: Option<String>,
    /// Production may also list and describe images.
    pub production_can_list: bool,
}

fn assume_step(target: &Target) -> Option<PlanStep> {
    target.staging_role_arn.as_ref().map(|role| {
        step(
            "sts:AssumeRole",
            "Get temporary credentials in the staging account",
            vec![("RoleArn", role.clone())],
            None,
        )
    })
}

/// The steps that write a policy change, if it changes anything.
pub fn policy_steps(repository: &str, change: &PolicyChange) -> Vec<PlanStep> {
    if change.unchanged {
        return Vec::new();
    }
    let read = step(
        "ecr:GetRepositoryPolicy",
        "Read the live policy again; stop for re-approval if it changed since this plan was approved",
        vec![("repositoryName", repository.to_string())],
        None,
    );
    let write = if change.after.is_empty() {
        step(
            "ecr:DeleteRepositoryPolicy",
            "Delete the policy (no statements would remain)",
            vec![("repositoryName", repository.to_string())],
            None,
        )
    } else {
        step(
            "ecr:SetRepositoryPolicy",
            "Write the policy shown below (statements the portal does not own are kept)",
            vec![("repositoryName", repository.to_string())],
            Some(change.after.clone()),
        )
    };
    vec![read, write]
}

/// The plan for granting or revoking production pull access, from the live policy.
pub fn for_access(repository: &str, before: Option<&Value>, grant: bool, target: &Target) -> Plan {
    let account = target.production_account.as_deref();
    let wanted = match (grant, account) {
        (true, None) => {
            return Plan {
                blocked: Some("the production account is not configured or could not be discovered".into()),
                ..Plan::default()
            }
        }
        (true, Some(_)) => Some(target.production_can_list),
        (false, _) => None,
    };
    match policy::with_production(before, account, wanted) {
        Err(e) => Plan { blocked: Some(e.to_string()), ..Plan::default() },
        Ok(after) => {
            let change = PolicyChange::new(before, after.as_ref());
            let mut steps: Vec<PlanStep> = assume_step(target).into_iter().collect();
            steps.extend(policy_steps(repository, &change));
            steps.push(step(
                "ecr:GetRepositoryPolicy",
                "Verify the live policy is the one shown",
                vec![("repositoryName", repository.to_string())],
                None,
            ));
            Plan { steps, policy: Some(change), ..Plan::default() }
        }
    }
}

fn step(call: &str, summary: impl Into<String>, params: Vec<(&str, String)>, document: Option<String>) -> PlanStep {
    PlanStep {
        call: call.to_string(),
        summary: summary.into(),
        params: params.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        document,
    }
}

/// What the approver of a promotion should know of the image (times formatted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionFacts {
    pub current_tags: Vec<String>,
    pub pushed_at: Option<String>,
    /// The scan in words (None: not scanned).
    pub scan: Option<String>,
    pub critical: u32,
    /// The scan finished (not in progress or failed).
    pub scan_complete: bool,
    /// The repository's lifecycle would expire the image even with its release tag (the rule).
    pub expired_by: Option<String>,
    /// The repository's lifecycle policy is not one the portal can read as rules.
    pub lifecycle_unchecked: bool,
    pub production_can_pull: bool,
}

/// The promotion rules a deployment keeps (`portal.promote_require_scan`, `portal.promote_refuse_critical`):
/// why this image may not be promoted, if it may not.
pub fn promotion_refused(facts: &PromotionFacts, require_scan: bool, refuse_critical: bool) -> Option<String> {
    if require_scan && !facts.scan_complete {
        return Some(match &facts.scan {
            None => "the image was never scanned; scan it first (portal.promote_require_scan)".to_string(),
            Some(s) => format!("the image's scan has not finished ({s}); wait for it (portal.promote_require_scan)"),
        });
    }
    if refuse_critical && facts.critical > 0 {
        return Some(format!(
            "the image's scan found {} critical vulnerabilities (portal.promote_refuse_critical)",
            facts.critical
        ));
    }
    None
}

/// The plan for promoting `digest` to `tag`: read the tag, read the manifest,
/// put it again under the tag, read the tag back.
pub fn for_promote(
    repository: &str,
    digest: &str,
    tag: &str,
    moves_from: Option<&str>,
    facts: Option<&PromotionFacts>,
    refused: Option<String>,
    target: &Target,
) -> Plan {
    let mut steps: Vec<PlanStep> = assume_step(target).into_iter().collect();
    let r = repository.to_string();
    steps.push(step(
        "ecr:DescribeImages",
        match moves_from {
            Some(d) => {
                format!("Read what {tag} names now: {d} as approved (stop for re-approval if it is another image)")
            }
            None => format!(
                "Read what {tag} names now: nothing as approved (stop for re-approval if it names another image)"
            ),
        },
        vec![("repositoryName", r.clone()), ("imageTag", tag.to_string())],
        None,
    ));
    steps.push(step(
        "ecr:BatchGetImage",
        "Read the image's manifest and media type by digest",
        vec![("repositoryName", r.clone()), ("imageDigest", digest.to_string())],
        None,
    ));
    let mut summary = format!("Tag the image as {tag} (the same manifest, so the same digest)");
    if let Some(f) = facts {
        let tags = if f.current_tags.is_empty() { "untagged".to_string() } else { f.current_tags.join(", ") };
        summary.push_str(&format!(
            ". It is tagged {tags} now{}; scan: {}",
            f.pushed_at.as_ref().map(|p| format!(", pushed {p}")).unwrap_or_default(),
            f.scan.clone().unwrap_or_else(|| "not scanned".into())
        ));
    }
    steps.push(step(
        "ecr:PutImage",
        summary,
        vec![("repositoryName", r.clone()), ("imageTag", tag.to_string()), ("imageDigest", digest.to_string())],
        None,
    ));
    steps.push(step(
        "ecr:DescribeImages",
        format!("Verify: {tag} names {digest}"),
        vec![("repositoryName", r), ("imageTag", tag.to_string())],
        None,
    ));
    let mut warnings = Vec::new();
    if let Some(f) = facts {
        if f.critical > 0 {
            warnings.push(format!("The image's scan found {} critical vulnerabilities.", f.critical));
        }
        if f.scan.is_none() {
            warnings.push("The image was never scanned.".to_string());
        }
        if f.lifecycle_unchecked {
            warnings.push("The repository's lifecycle policy could not be checked against this image.".to_string());
        }
        if let Some(rule) = &f.expired_by {
            warnings.push(format!(
                "The repository's lifecycle would expire this image even as a release ({rule}): ECR does not know \
                 releases, so change the lifecycle first."
            ));
        }
        if !f.production_can_pull {
            warnings.push(
                "Production cannot pull from this repository yet: the release is of no use to it until a \
                 production access request is approved."
                    .to_string(),
            );
        }
    }
    Plan { steps, warning: (!warnings.is_empty()).then(|| warnings.join(" ")), blocked: refused, ..Plan::default() }
}

/// What a repository holds, for the delete plan (times formatted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCount {
    pub count: usize,
    pub newest_push: Option<String>,
    pub last_pull: Option<String>,
}

/// The plan for deleting a repository: how many images go with it (when the
/// repository was read), and what production loses if it can pull it.
pub fn for_delete(repository: &str, images: Option<ImageCount>, production_can_pull: bool, target: &Target) -> Plan {
    let mut steps: Vec<PlanStep> = assume_step(target).into_iter().collect();
    let what = match &images {
        Some(ImageCount { count: 0, .. }) => "it holds no images".to_string(),
        Some(ImageCount { count, newest_push, last_pull }) => {
            let mut w = format!("its {count} image(s) go with it");
            if let Some(newest) = newest_push {
                w.push_str(&format!("; the newest was pushed {newest}"));
            }
            match last_pull {
                Some(p) => w.push_str(&format!("; the last pull was {p}")),
                None => w.push_str("; ECR recorded no pull"),
            }
            w
        }
        None => "with every image in it".to_string(),
    };
    let mut summary = format!("Delete {repository} ({what}); this cannot be undone");
    if production_can_pull {
        summary.push_str(". Production can pull it now and will lose these images");
    }
    let warning = production_can_pull.then(|| {
        "Production can pull from this repository now: deleting it takes every image production may be running"
            .to_string()
    });
    steps.push(step(
        "ecr:DeleteRepository",
        summary,
        vec![("repositoryName", repository.to_string()), ("force", "true".to_string())],
        None,
    ));
    steps.push(step(
        "ecr:DescribeRepositories",
        "Verify: the repository is gone",
        vec![("repositoryName", repository.to_string())],
        None,
    ));
    Plan { steps, warning, ..Plan::default() }
}

/// The plan for creating one repository. `existing` is `Some(live policy)`
/// when a repository of that name is already in ECR (made by someone else):
/// the plan then adopts it, and shows the policy it has, which the approvers
/// take on with it.
pub fn for_new_repository(
    spec: &RepositorySpec,
    grant_production: bool,
    existing: Option<Option<&Value>>,
    target: &Target,
) -> Plan {
    let mut steps: Vec<PlanStep> = assume_step(target).into_iter().collect();
    let encryption = match &spec.encryption {
        Encryption::Aes256 => "AES256".to_string(),
        Encryption::Kms(k) => format!("KMS, key {k}"),
    };
    let tags = spec.tags.iter().map(|t| format!("{}={}", t.key, t.value)).collect::<Vec<_>>().join(", ");
    let summary = match existing {
        None => format!(
            "Create {} in {} (an existing repository with the same settings is adopted)",
            spec.name, target.region
        ),
        Some(_) => format!(
            "{} already exists in {}, made outside the portal: adopt it if its settings match these (otherwise \
             stop), keeping its policy, shown below",
            spec.name, target.region
        ),
    };
    steps.push(step(
        "ecr:CreateRepository",
        summary,
        vec![
            ("repositoryName", spec.name.to_string()),
            ("imageTagMutability", spec.tag_mutability.to_string()),
            ("imageTagMutabilityExclusionFilters", spec.tag_mutability_exclusions.join(", ")),
            ("scanOnPush", spec.scan_on_push.to_string()),
            ("encryption", encryption),
            ("tags", format!("{tags}, ecr-portal:request=<this request's number>.<the portal's signature>")),
        ],
        None,
    ));
    if let Some(policy) = spec.lifecycle.policy_json() {
        steps.push(step(
            "ecr:PutLifecyclePolicy",
            "Set the lifecycle policy",
            vec![("repositoryName", spec.name.to_string())],
            serde_json::to_string_pretty(&policy).ok(),
        ));
    }
    let live = existing.flatten();
    let mut policy_change = None;
    let mut blocked = None;
    if grant_production {
        match &target.production_account {
            Some(account) => match policy::desired(live, Some((account, target.production_can_list))) {
                Ok(after) => {
                    let change = PolicyChange::new(live, after.as_ref());
                    steps.extend(policy_steps(spec.name.as_str(), &change));
                    policy_change = Some(change);
                }
                Err(e) => blocked = Some(e.to_string()),
            },
            None => blocked = Some("the production account is not configured or could not be discovered".into()),
        }
    } else if live.is_some() {
        // Nothing is written, but the approvers see what they adopt.
        policy_change = Some(PolicyChange::new(live, live));
    }
    steps.push(step(
        "ecr:DescribeRepositories",
        "Verify: read the repository back and compare its settings (writes are confirmed by their answers)",
        vec![("repositoryName", spec.name.to_string())],
        None,
    ));
    Plan { steps, policy: policy_change, blocked, ..Plan::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::form::RepositoryRequestInput;
    use crate::domain::name::Namespace;

    fn target(role: Option<&str>) -> Target {
        Target {
            region: "us-east-1".into(),
            staging_role_arn: role.map(str::to_string),
            production_account: Some("222222222222".into()),
            production_can_list: false,
        }
    }

    #[test]
    fn an_access_plan_shows_the_policy_diff_and_is_empty_when_nothing_changes() {
        let plan = for_access("crytera/app", None, true, &target(None));
        let change = plan.policy.expect("policy change");
        assert!(change.before.is_empty() && change.after.contains("arn:aws:iam::222222222222:root"));
        assert!(change.lines.iter().all(|l| l.change == crate::domain::policy::Change::Added));
        let granted: Value = serde_json::from_str(&change.after).expect("json");
        let again = for_access("crytera/app", Some(&granted), true, &target(None));
        assert!(again.policy.expect("change").unchanged);
        assert_eq!(again.steps.iter().map(|s| s.call.as_str()).collect::<Vec<_>>(), ["ecr:GetRepositoryPolicy"]);
        let revoke = for_access("crytera/app", Some(&granted), false, &target(None));
        assert!(revoke.steps.iter().any(|s| s.call == "ecr:DeleteRepositoryPolicy"));
        let mut no_prod = target(None);
        no_prod.production_account = None;
        assert!(for_access("crytera/app", None, true, &no_prod).blocked.is_some());
    }

    fn spec(keep: Option<u32>) -> RepositorySpec {
        RepositoryRequestInput {
            name: "app".into(),
            team: "t".into(),
            cost_center: "c".into(),
            justification: "j".into(),
            keep_last_images: keep,
            ..Default::default()
        }
        .parse(&Namespace::parse("crytera").expect("ns"))
        .expect("valid")
        .spec
    }

    #[test]
    fn the_plan_lists_every_call_in_order() {
        let t = target(Some("arn:aws:iam::111111111111:role/x"));
        let calls: Vec<String> =
            for_new_repository(&spec(Some(10)), false, None, &t).steps.into_iter().map(|s| s.call).collect();
        assert_eq!(
            calls,
            ["sts:AssumeRole", "ecr:CreateRepository", "ecr:PutLifecyclePolicy", "ecr:DescribeRepositories"]
        );
        let with_grant: Vec<String> =
            for_new_repository(&spec(None), true, None, &t).steps.into_iter().map(|s| s.call).collect();
        assert_eq!(
            with_grant,
            [
                "sts:AssumeRole",
                "ecr:CreateRepository",
                "ecr:GetRepositoryPolicy",
                "ecr:SetRepositoryPolicy",
                "ecr:DescribeRepositories"
            ]
        );
    }

    #[test]
    fn no_lifecycle_and_no_role_means_fewer_calls() {
        let plan = for_new_repository(&spec(None), false, None, &target(None));
        assert_eq!(plan.steps.len(), 2);
        assert!(plan.steps[0].params.contains(&("imageTagMutability".into(), "IMMUTABLE".into())));
    }

    #[test]
    fn adopting_an_existing_repository_shows_its_live_policy() {
        let foreign = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "theirs", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "ecr:PutImage"}]});
        let plan = for_new_repository(&spec(None), false, Some(Some(&foreign)), &target(None));
        assert!(plan.steps[0].summary.contains("already exists"), "{:?}", plan.steps[0]);
        let change = plan.policy.expect("the live policy is shown");
        assert!(change.unchanged && change.before.contains("999999999999"));
        let granting = for_new_repository(&spec(None), true, Some(Some(&foreign)), &target(None));
        let change = granting.policy.expect("policy change");
        assert!(change.before.contains("999999999999") && change.after.contains("999999999999"));
        assert!(change.after.contains("222222222222") && !change.unchanged);
        assert!(for_new_repository(&spec(None), false, Some(None), &target(None)).policy.is_none());
    }

    #[test]
    fn a_settings_change_is_blocked_by_protected_images_only_when_it_changes_the_lifecycle() {
        let before = spec(Some(1));
        let protected = LifecyclePreview {
            images: 2,
            expiring: vec![ExpiringImage {
                digest: "sha256:a".into(),
                tags: vec!["v1".into()],
                pushed_at: crate::domain::time::Timestamp::from_unix_ms(0),
                rule: "#1".into(),
                protected: Some("release tag v1".into()),
            }],
        };
        // The same lifecycle, another scan setting: the preview is shown, nothing is blocked.
        let mut after = before.clone();
        after.scan_on_push = !before.scan_on_push;
        let plan = for_update(&before, &after, Some(protected.clone()), false, &target(None));
        assert_eq!((plan.blocked, plan.warning), (None, None));
        assert!(plan.changes.iter().any(|c| c.setting == "Scan on push" && c.changed()));
        // A new lifecycle that expires a protected image: blocked unless the request says so.
        let keep_one_less = spec(Some(2));
        let blocked = for_update(&keep_one_less, &before, Some(protected.clone()), false, &target(None));
        assert!(blocked.blocked.is_some() && blocked.warning.is_some());
        let said = for_update(&keep_one_less, &before, Some(protected), true, &target(None));
        assert!(said.blocked.is_none() && said.warning.is_some_and(|w| w.contains("intended")));
    }

    #[test]
    fn a_delete_plan_counts_the_images_and_warns_about_production() {
        let held = ImageCount {
            count: 3,
            newest_push: Some("2026-12-01 10:00:00 UTC".into()),
            last_pull: Some("2026-12-02 08:00:00 UTC".into()),
        };
        let plan = for_delete("crytera/app", Some(held), true, &target(None));
        let calls: Vec<&str> = plan.steps.iter().map(|s| s.call.as_str()).collect();
        assert_eq!(calls, ["ecr:DeleteRepository", "ecr:DescribeRepositories"]);
        assert!(plan.steps[0].summary.contains("3 image(s)") && plan.steps[0].summary.contains("Production can pull"));
        assert!(plan.steps[0].summary.contains("the last pull was 2026-12-02"));
        assert!(plan.warning.is_some_and(|w| w.contains("Production can pull")));
        assert!(plan.steps[0].params.contains(&("force".into(), "true".into())));
        let empty = ImageCount { count: 0, newest_push: None, last_pull: None };
        let quiet = for_delete("crytera/app", Some(empty), false, &target(None));
        assert!(quiet.steps[0].summary.contains("no images") && !quiet.steps[0].summary.contains("Production"));
        assert!(quiet.warning.is_none());
    }
}
