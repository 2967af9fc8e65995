//! Terraform interop, the way back out: the repositories under the namespace
//! as `.tf` in the shape of the module the portal replaces (a `locals {
//! ecr_repo = … }` map under `repo_acc1`, one `aws_ecr_repository` with
//! `for_each`, lifecycle and repository policies as they are live) plus
//! Terraform 1.5 `import` blocks, so that after `terraform apply` of the
//! imports `terraform plan` shows nothing to change. No provider block: the
//! user's configuration provides it (the README shows one).
//!
//! Written by hand rather than with an HCL crate: the output is a fixed
//! template with a few string values, and Terraform reads JSON strings (the
//! policies) as HCL strings once `${` and `%{` are escaped.
use crate::aws::{LiveRepository, Registry};
use app::domain::name::Namespace;
use app::domain::settings::{Encryption, TagMutability};

/// An HCL string literal: JSON's escapes, and template sequences escaped.
fn hcl_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()).replace("${", "$${").replace("%{", "%%{")
}

/// A repository the export can express, or why not.
fn entry(namespace: &str, live: &LiveRepository) -> Result<String, String> {
    let Some(short) = live.name.strip_prefix(&format!("{namespace}/")) else {
        return Err(format!("{} is outside the namespace", live.name));
    };
    if live.tag_mutability.has_exclusions() {
        return Err(format!(
            "{} uses {} with exclusion filters, which the AWS provider 5.x cannot express",
            live.name, live.tag_mutability
        ));
    }
    let (encryption_type, kms_key) = match &live.encryption {
        Encryption::Aes256 => ("AES256".to_string(), "null".to_string()),
        Encryption::Kms(k) => ("KMS".to_string(), hcl_string(k)),
    };
    let tags: Vec<String> =
        live.tags.iter().map(|t| format!("        {} = {}", hcl_string(&t.key), hcl_string(&t.value))).collect();
    let doc = |v: &Option<serde_json::Value>| {
        v.as_ref().map_or_else(|| "null".to_string(), |v| hcl_string(&serde_json::to_string(v).unwrap_or_default()))
    };
    Ok(format!(
        "    {key} = {{\n      acc_name             = local.repo_acc1\n      repo_name            = {key}\n      \
         image_tag_mutability = {mutability}\n      scan_on_push         = {scan}\n      encryption_type      = \
         {encryption_type}\n      kms_key              = {kms_key}\n      lifecycle_policy     = {lifecycle}\n      \
         policy               = {policy}\n      tags = {{\n{tags}\n      }}\n    }}\n",
        key = hcl_string(short),
        mutability = hcl_string(match live.tag_mutability {
            TagMutability::Mutable => "MUTABLE",
            _ => "IMMUTABLE",
        }),
        scan = live.scan_on_push,
        encryption_type = hcl_string(&encryption_type),
        lifecycle = doc(&live.lifecycle_policy),
        policy = doc(&live.policy),
        tags = tags.join("\n"),
    ))
}

/// What an export wrote, and what it left out (with the reason).
#[derive(Debug, Clone, Default)]
pub struct Export {
    pub main_tf: String,
    pub exported: Vec<String>,
    pub skipped: Vec<String>,
}

/// The `.tf` text for these repositories (each described in full: tags, lifecycle, policy).
pub fn render(namespace: &Namespace, repos: &[LiveRepository]) -> Export {
    let ns = namespace.as_str();
    let mut out = Export::default();
    let mut entries = String::new();
    let mut imports = String::new();
    for live in repos {
        match entry(ns, live) {
            Ok(e) => {
                let key = hcl_string(live.name.trim_start_matches(&format!("{ns}/")));
                entries.push_str(&e);
                let id = hcl_string(&live.name);
                imports.push_str(&format!("import {{\n  to = aws_ecr_repository.this[{key}]\n  id = {id}\n}}\n\n"));
                if live.lifecycle_policy.is_some() {
                    imports.push_str(&format!(
                        "import {{\n  to = aws_ecr_lifecycle_policy.this[{key}]\n  id = {id}\n}}\n\n"
                    ));
                }
                if live.policy.is_some() {
                    imports.push_str(&format!(
                        "import {{\n  to = aws_ecr_repository_policy.this[{key}]\n  id = {id}\n}}\n\n"
                    ));
                }
                out.exported.push(live.name.clone());
            }
            Err(why) => out.skipped.push(why),
        }
    }
    out.main_tf = format!(
        r#"# Written by `ecr-portal terraform export`: the repositories under `{ns}/` as they are live,
# in the shape of the Terraform module the portal replaced. Add your provider block (see the
# README, "Coming from Terraform"), run `terraform init`, then `terraform plan`: it shows only
# imports; after `terraform apply` it shows no changes.

locals {{
  repo_acc1 = {ns_string}
  ecr_repo = {{
{entries}  }}
}}

resource "aws_ecr_repository" "this" {{
  for_each             = local.ecr_repo
  name                 = "${{each.value.acc_name}}/${{each.value.repo_name}}"
  image_tag_mutability = each.value.image_tag_mutability
  tags                 = each.value.tags

  image_scanning_configuration {{
    scan_on_push = each.value.scan_on_push
  }}

  encryption_configuration {{
    encryption_type = each.value.encryption_type
    kms_key         = each.value.kms_key
  }}
}}

resource "aws_ecr_lifecycle_policy" "this" {{
  for_each   = {{ for k, v in local.ecr_repo : k => v if v.lifecycle_policy != null }}
  repository = aws_ecr_repository.this[each.key].name
  policy     = each.value.lifecycle_policy
}}

# The production account's read-only pull statement (Sid EcrPortalProductionPull) and every other
# statement, as they are live.
resource "aws_ecr_repository_policy" "this" {{
  for_each   = {{ for k, v in local.ecr_repo : k => v if v.policy != null }}
  repository = aws_ecr_repository.this[each.key].name
  policy     = each.value.policy
}}

{imports}"#,
        ns_string = hcl_string(ns),
    );
    out
}

/// Reads every repository under the namespace from ECR (settings, tags, lifecycle, policy) and renders it.
pub async fn export(registry: &dyn Registry, namespace: &Namespace) -> anyhow::Result<Export> {
    let mut repos = Vec::new();
    for listed in registry.list(&format!("{}/", namespace.as_str())).await? {
        if let Some(live) = registry.describe(&listed.name).await? {
            repos.push(live);
        }
    }
    Ok(render(namespace, &repos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_hcl() {
        assert_eq!(hcl_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(hcl_string("${var.x} %{if}"), r#""$${var.x} %%{if}""#);
    }

    /// What the export writes, the import reads back as the same repositories.
    #[test]
    fn the_export_reads_back() {
        use app::domain::settings::Tag;
        let live = |name: &str, lifecycle: Option<serde_json::Value>| LiveRepository {
            name: name.into(),
            uri: String::new(),
            arn: String::new(),
            registry_id: String::new(),
            created_at_ms: 0,
            tag_mutability: TagMutability::Immutable,
            tag_mutability_exclusions: vec![],
            scan_on_push: true,
            encryption: Encryption::Aes256,
            tags: vec![Tag { key: "team".into(), value: "a \"b\" ${c}".into() }],
            lifecycle_policy: lifecycle,
            policy: Some(serde_json::json!({"Version": "2012-10-17", "Statement": []})),
            request_ids: vec![],
        };
        let rules = serde_json::json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged",
            "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}}]});
        let ns = Namespace::parse("crytera").expect("namespace");
        let out = render(&ns, &[live("crytera/a", Some(rules.clone())), live("crytera/b", None)]);
        let found = crate::terraform::read::read_all(&[("main.tf".to_string(), out.main_tf.clone())])
            .expect("the export reads back");
        assert_eq!(found.repositories.len(), 2);
        let a = &found.repositories[0];
        assert_eq!(a.name, "crytera/a");
        assert_eq!((a.tag_mutability.as_deref(), a.scan_on_push), (Some("IMMUTABLE"), Some(true)));
        assert_eq!(a.tags.get("team").map(String::as_str), Some("a \"b\" ${c}"));
        assert_eq!(a.lifecycle_policy.as_ref(), Some(&rules));
        assert!(a.policy.is_some());
        assert_eq!(found.repositories[1].lifecycle_policy, None);
    }
}
