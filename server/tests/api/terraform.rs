//! Terraform interop, the way back out: repositories made through the portal,
//! exported as `.tf` with import blocks, planned by the real `terraform` against
//! moto (only imports), applied, then planned again (no changes).
use crate::helpers::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The terraform binary and its provider mirror, or why the test cannot run here.
fn terraform() -> Result<(PathBuf, PathBuf), String> {
    let bin = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("terraform")).find(|f| f.is_file()))
        .ok_or("terraform is not on the PATH")?;
    let mirror = std::env::var_os("TF_PROVIDER_MIRROR").map(PathBuf::from).unwrap_or_else(|| "/opt/tf-plugins".into());
    if !mirror.join("registry.terraform.io/hashicorp/aws").is_dir() {
        return Err(format!("no hashicorp/aws provider mirror under {} (set TF_PROVIDER_MIRROR)", mirror.display()));
    }
    Ok((bin, mirror))
}

fn run(bin: &Path, dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", dir.join("cli.tfrc"))
        .env("TF_IN_AUTOMATION", "1")
        .output()
        .expect("terraform runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn an_export_plans_as_imports_only_and_after_applying_them_as_no_changes() {
    let (bin, mirror) = match terraform() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    managed_repo(&alice, &bob, "tf-plain").await;
    let settings = json!({"keep_last_images": 30, "expire_untagged_after_days": 7, "grant_production": true});
    managed_repo_with(&alice, &bob, "tf-prod", settings).await;

    let ns = app::domain::name::Namespace::parse("crytera").expect("ns");
    let export = server::terraform::export(&*app.service.registry, &ns).await.expect("export");
    assert_eq!(export.exported.len(), 2, "{:?}", export.skipped);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("main.tf"), &export.main_tf).expect("main.tf");
    std::fs::write(
        dir.path().join("cli.tfrc"),
        format!("provider_installation {{\n  filesystem_mirror {{ path = \"{}\" }}\n}}\n", mirror.display()),
    )
    .expect("cli.tfrc");
    std::fs::write(
        dir.path().join("provider.tf"),
        format!(
            r#"terraform {{
  required_providers {{
    aws = {{ source = "hashicorp/aws" }}
  }}
}}

provider "aws" {{
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  assume_role {{
    role_arn = "arn:aws:iam::{account}:role/ecr-portal-apply"
  }}
  endpoints {{
    ecr = "{moto}"
    sts = "{moto}"
    iam = "{moto}"
  }}
}}
"#,
            account = app.account,
            moto = app.moto,
        ),
    )
    .expect("provider.tf");
    let (code, out) = run(&bin, dir.path(), &["init", "-input=false", "-no-color"]);
    assert_eq!(code, 0, "init: {out}");
    let (code, out) = run(&bin, dir.path(), &["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
    assert_eq!(code, 2, "the first plan has imports: {out}");
    assert!(
        out.contains("4 to import, 0 to add, 0 to change, 0 to destroy"),
        "only imports: {out}\n{}",
        export.main_tf
    );
    let (code, out) = run(&bin, dir.path(), &["apply", "-input=false", "-no-color", "-auto-approve"]);
    assert_eq!(code, 0, "apply: {out}");
    let (code, out) = run(&bin, dir.path(), &["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
    assert_eq!(code, 0, "no changes after the imports: {out}");
}

#[tokio::test]
async fn the_command_line_writes_the_export() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let full = managed_repo(&alice, &bob, "tf-cli").await;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("exported");
    let run = Command::new(env!("CARGO_BIN_EXE_ecr-portal"))
        .args(["terraform", "export", "--out"])
        .arg(&out)
        .env("ECR_PORTAL_AWS__LOCAL_ENDPOINT", &app.moto)
        .env("ECR_PORTAL_AWS__STAGING_ROLE_ARN", format!("arn:aws:iam::{}:role/ecr-portal-apply", app.account))
        .env("ECR_PORTAL_DATABASE__PATH", dir.path().join("unused.db"))
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(run.status.success(), "{said}{}", String::from_utf8_lossy(&run.stderr));
    assert!(said.contains("(1 repositories)"), "{said}");
    let tf = std::fs::read_to_string(out.join("main.tf")).expect("main.tf");
    let short = full.trim_start_matches("crytera/");
    assert!(
        tf.contains(&format!("to = aws_ecr_repository.this[\"{short}\"]")) && tf.contains(&format!("id = \"{full}\"")),
        "{tf}"
    );
    assert!(!tf.contains("provider \"aws\""), "no provider block: the user's configuration has it");
    // The same file is a download on the repositories page.
    let r = alice.http.get(format!("{}/api/v1/terraform/export", app.base)).send().await.expect("download");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or("").contains("main.tf"));
    assert_eq!(r.text().await.expect("text"), tf);
}
