//! The plan: exactly which AWS calls approval will make, with their settings,
//! so an approver sees the change before it happens. The worker follows the
//! same plan, so the page cannot drift from what is applied.
use super::settings::{Encryption, RepositorySpec};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<PlanStep>,
}

/// Where the plan runs: the role assumed in the staging account, and the region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub region: String,
    pub staging_role_arn: Option<String>,
}

fn step(call: &str, summary: impl Into<String>, params: Vec<(&str, String)>, document: Option<String>) -> PlanStep {
    PlanStep {
        call: call.to_string(),
        summary: summary.into(),
        params: params.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        document,
    }
}

/// The plan for creating one repository.
pub fn for_new_repository(spec: &RepositorySpec, target: &Target) -> Plan {
    let mut steps = Vec::new();
    if let Some(role) = &target.staging_role_arn {
        steps.push(step(
            "sts:AssumeRole",
            "Get temporary credentials in the staging account",
            vec![("RoleArn", role.clone())],
            None,
        ));
    }
    let encryption = match &spec.encryption {
        Encryption::Aes256 => "AES256".to_string(),
        Encryption::Kms(k) => format!("KMS, key {k}"),
    };
    let tags = spec
        .tags
        .iter()
        .map(|t| format!("{}={}", t.key, t.value))
        .collect::<Vec<_>>()
        .join(", ");
    steps.push(step(
        "ecr:CreateRepository",
        format!(
            "Create {} in {} (an existing repository with the same settings is adopted)",
            spec.name, target.region
        ),
        vec![
            ("repositoryName", spec.name.to_string()),
            ("imageTagMutability", spec.tag_mutability.to_string()),
            ("scanOnPush", spec.scan_on_push.to_string()),
            ("encryption", encryption),
            ("tags", tags),
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
    steps.push(step(
        "ecr:DescribeRepositories",
        "Verify the repository and its settings (also reads its lifecycle policy and tags)",
        vec![("repositoryName", spec.name.to_string())],
        None,
    ));
    Plan { steps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::form::RepositoryRequestInput;
    use crate::domain::name::Namespace;

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
        let t = Target {
            region: "us-east-1".into(),
            staging_role_arn: Some("arn:aws:iam::111111111111:role/x".into()),
        };
        let calls: Vec<String> = for_new_repository(&spec(Some(10)), &t)
            .steps
            .into_iter()
            .map(|s| s.call)
            .collect();
        assert_eq!(
            calls,
            [
                "sts:AssumeRole",
                "ecr:CreateRepository",
                "ecr:PutLifecyclePolicy",
                "ecr:DescribeRepositories"
            ]
        );
    }

    #[test]
    fn no_lifecycle_and_no_role_means_fewer_calls() {
        let t = Target {
            region: "us-east-1".into(),
            staging_role_arn: None,
        };
        let plan = for_new_repository(&spec(None), &t);
        assert_eq!(plan.steps.len(), 2);
        assert!(plan.steps[0]
            .params
            .contains(&("imageTagMutability".into(), "IMMUTABLE".into())));
    }
}
