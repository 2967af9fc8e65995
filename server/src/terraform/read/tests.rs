//! The reader's unit tests: the module, split modules, errors, states.
use super::*;

/// Reads one file.
fn read(file: &str, text: &str) -> Result<Found, Vec<ReadError>> {
    read_all(&[(file.to_string(), text.to_string())])
}

/// The module the portal replaces, as teams have it.
const MODULE: &str = r#"
variable "production_account" {
  default = "222222222222"
}

locals {
  repo_acc1 = "crytera"
  ecr_repo = {
"repo01" = { acc_name = local.repo_acc1, repo_name = "templateistio" }
"repo02" = { acc_name = local.repo_acc1, repo_name = "templatenginxistio" }
"repo03" = {
  acc_name  = local.repo_acc1
  repo_name = "templatefargate"
}
  }
  allow_readonly = ["arn:aws:iam::${var.production_account}:root"]
}

resource "aws_ecr_repository" "ecr_repo" {
  for_each             = local.ecr_repo
  name                 = "${each.value.acc_name}/${each.value.repo_name}"
  image_tag_mutability = "MUTABLE"

  image_scanning_configuration {
scan_on_push = true
  }
  tags = { team = "platform", "cost-center" = "cc-1" }
}

data "aws_iam_policy_document" "readonly" {
  statement {
sid     = "ReadOnly"
actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
principals {
  type        = "AWS"
  identifiers = local.allow_readonly
}
  }
}

resource "aws_ecr_repository_policy" "readonly" {
  for_each   = local.ecr_repo
  repository = aws_ecr_repository.ecr_repo[each.key].name
  policy     = data.aws_iam_policy_document.readonly.json
}
"#;

#[test]
fn the_module_is_read_with_its_locals_and_policies() {
    let found = read("main.tf", MODULE).expect("reads");
    let names: Vec<&str> = found.repositories.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["crytera/templateistio", "crytera/templatenginxistio", "crytera/templatefargate"]);
    let r = &found.repositories[2];
    assert_eq!(r.origin.key, r#"aws_ecr_repository.ecr_repo["repo03"]"#);
    assert_eq!(r.origin.line, 11, "the map entry's line");
    assert_eq!(r.tag_mutability.as_deref(), Some("MUTABLE"));
    assert_eq!(r.scan_on_push, Some(true));
    assert_eq!(r.tags.get("team").map(String::as_str), Some("platform"));
    let policy = r.policy.as_ref().expect("policy attached");
    assert_eq!(policy["Statement"][0]["Principal"]["AWS"][0], "arn:aws:iam::222222222222:root");
    assert_eq!(policy["Statement"][0]["Effect"], "Allow");
}

#[test]
fn an_unresolvable_entry_is_named_with_its_line() {
    let text = MODULE.replace(r#"repo_name = "templatefargate""#, "repo_name = var.suffix");
    let errors = read("main.tf", &text).expect_err("var.suffix has no value");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e.origin.line, 13);
    assert_eq!(e.origin.key, r#"local.ecr_repo["repo03"].repo_name"#);
    assert!(e.to_string().starts_with(r#"main.tf:13: local.ecr_repo["repo03"].repo_name: "#), "{e}");
}

#[test]
fn syntax_errors_and_refused_constructs_name_their_place() {
    let errors = read("broken.tf", "locals {\n  a = \n}\n").expect_err("syntax");
    assert_eq!((errors[0].origin.file.as_str(), errors[0].origin.key.as_str()), ("broken.tf", "(syntax)"));
    assert!(errors[0].origin.line >= 2, "{errors:?}");
    let counted = "resource \"aws_ecr_repository\" \"r\" {\n  count = 2\n  name = \"crytera/x\"\n}\n";
    let errors = read("count.tf", counted).expect_err("count refused");
    assert_eq!(errors[0].origin.line, 2);
    assert_eq!(errors[0].origin.key, "aws_ecr_repository.r.count");
    let unknown = "resource \"aws_ecr_repository\" \"r\" {\n  name = file(\"name.txt\")\n}\n";
    let errors = read("f.tf", unknown).expect_err("file() is not evaluated");
    assert_eq!((errors[0].origin.line, errors[0].origin.key.as_str()), (2, "aws_ecr_repository.r.name"));
    let bad_policy = "resource \"aws_ecr_repository\" \"r\" {\n  name = \"crytera/x\"\n}\nresource \
                      \"aws_ecr_repository_policy\" \"p\" {\n  repository = aws_ecr_repository.r.name\n  \
                      policy = \"not json\"\n}\n";
    let errors = read("p.tf", bad_policy).expect_err("policy must be JSON");
    assert_eq!((errors[0].origin.line, errors[0].origin.key.as_str()), (6, "aws_ecr_repository_policy.p.policy"));
}

#[test]
fn a_single_resource_with_jsonencode_and_a_lifecycle() {
    let text = r#"
resource "aws_ecr_repository" "one" {
  name = "crytera/one"
  encryption_configuration {
encryption_type = "AES256"
  }
}
resource "aws_ecr_lifecycle_policy" "one" {
  repository = aws_ecr_repository.one.name
  policy = jsonencode({ rules = [{ rulePriority = 1, selection = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 7 }, action = { type = "expire" } }] })
}
module "other" {
  source = "./other"
}
"#;
    let found = read("one.tf", text).expect("reads");
    let r = &found.repositories[0];
    assert_eq!((r.name.as_str(), r.origin.line), ("crytera/one", 2));
    assert_eq!(r.encryption_type.as_deref(), Some("AES256"));
    assert_eq!(r.lifecycle_policy.as_ref().expect("attached")["rules"][0]["selection"]["countNumber"], 7);
    assert!(found.notes[0].contains("module \"other\" is not read"), "{:?}", found.notes);
}

#[test]
fn a_module_split_across_files_is_read_as_one() {
    let variables = "variable \"production_account\" {\n  default = \"222222222222\"\n}\n".to_string();
    let locals =
        MODULE[MODULE.find("locals {").expect("locals")..MODULE.find("resource").expect("resource")].to_string();
    let main = MODULE[MODULE.find("resource").expect("resource")..].to_string();
    let files =
        [("main.tf".to_string(), main), ("locals.tf".to_string(), locals), ("variables.tf".to_string(), variables)];
    let found = read_all(&files).expect("reads as one module");
    assert_eq!(found.repositories.len(), 3);
    let r = &found.repositories[0];
    assert_eq!((r.origin.file.as_str(), r.origin.line), ("locals.tf", 4), "the entry, in the file that has it");
    assert_eq!(r.place("image_tag_mutability").file, "main.tf", "a literal: where it is written");
    assert!(r.policy.is_some(), "the policy, from another resource, attached");
    let twice = [
        ("a.tf".to_string(), "locals {\n  x = 1\n}\n".to_string()),
        ("b.tf".to_string(), "locals {\n  x = 2\n}\n".to_string()),
    ];
    let errors = read_all(&twice).expect_err("a local defined twice");
    assert_eq!(errors[0].to_string(), "b.tf:2: local.x: is also defined in a.tf");
}

#[test]
fn references_are_matched_whole_and_nesting_is_bounded() {
    assert!(mentions("local.ecr", "local.ecr"));
    assert!(mentions("x = local.ecr[\"a\"]", "local.ecr"));
    assert!(!mentions("local.ecr_repo", "local.ecr"));
    assert!(!mentions("xlocal.ecr", "local.ecr"));
    let deep = format!("a = {}1{}\n", "[".repeat(200), "]".repeat(200));
    let errors = read("deep.tf", &deep).expect_err("too deep");
    assert!(errors[0].message.contains("nested more than 64 levels"), "{errors:?}");
    let quoted = format!("a = \"{}\"\n", "[".repeat(200));
    assert!(read("quoted.tf", &quoted).is_ok(), "brackets in strings do not count");
    assert!(read("bom.json", "\u{feff}{\"values\": {\"root_module\": {}}}").is_ok(), "a byte order mark is ignored");
}

#[test]
fn a_state_from_terraform_show_json() {
    let policy = r#"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"EcrPortalProductionPull\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::222222222222:root\"},\"Action\":[\"ecr:BatchGetImage\"]}]}"#;
    let text = format!(
        r#"{{"format_version":"1.0","values":{{"root_module":{{"resources":[
{{"address":"aws_ecr_repository.this[\"a\"]","mode":"managed","type":"aws_ecr_repository","values":{{"name":"crytera/a","image_tag_mutability":"IMMUTABLE","image_scanning_configuration":[{{"scan_on_push":false}}],"encryption_configuration":[{{"encryption_type":"AES256","kms_key":""}}],"tags":{{"team":"t"}}}}}},
{{"address":"aws_ecr_repository_policy.this[\"a\"]","mode":"managed","type":"aws_ecr_repository_policy","values":{{"repository":"crytera/a","policy":"{policy}"}}}}
],"child_modules":[{{"resources":[
{{"address":"module.m.aws_ecr_repository.b","mode":"managed","type":"aws_ecr_repository","values":{{"name":"crytera/b"}}}}]}}]}}}}}}"#
    );
    let found = read("state.json", &text).expect("reads");
    assert_eq!(found.repositories.len(), 2);
    let a = &found.repositories[0];
    assert_eq!((a.origin.key.as_str(), a.origin.line), (r#"aws_ecr_repository.this["a"]"#, 2));
    assert_eq!((a.scan_on_push, a.kms_key.as_deref()), (Some(false), None));
    assert_eq!(a.policy.as_ref().expect("attached")["Statement"][0]["Sid"], "EcrPortalProductionPull");
    assert_eq!(found.repositories[1].name, "crytera/b");
    let errors = read("bad.json", "{\"values\": 3,}").expect_err("not JSON");
    assert_eq!(errors[0].origin.key, "(document)");
    let errors = read("plan.json", "{\"format_version\": \"1.0\"}").expect_err("not a state");
    assert!(errors[0].message.contains("terraform show -json"));
}
