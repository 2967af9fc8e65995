//! Terraform interop, the way in: the module's own example (some repositories
//! in moto, some not, one outside the namespace), a `terraform show -json`
//! state through the command line, and files with errors (nothing changes).
//! Results are checked in moto with the SDK.
use crate::helpers::*;
use serde_json::{json, Value};
use std::process::Command;

/// The module the portal replaces, with this run's names: `u` makes them unique.
fn module(u: &str) -> String {
    format!(
        r#"variable "production_account" {{
  default = "222222222222"
}}

locals {{
  repo_acc1 = "crytera"
  repo_acc2 = "elsewhere"
  ecr_repo = {{
    "repo01" = {{ acc_name = local.repo_acc1, repo_name = "{u}istio" }}
    "repo02" = {{ acc_name = local.repo_acc1, repo_name = "{u}nginxistio" }}
    "repo03" = {{ acc_name = local.repo_acc1, repo_name = "{u}fargate" }}
    "repo04" = {{ acc_name = local.repo_acc2, repo_name = "{u}other" }}
  }}
  allow_readonly = ["arn:aws:iam::${{var.production_account}}:root"]
}}

resource "aws_ecr_repository" "ecr_repo" {{
  for_each             = local.ecr_repo
  name                 = "${{each.value.acc_name}}/${{each.value.repo_name}}"
  image_tag_mutability = "MUTABLE"
  image_scanning_configuration {{
    scan_on_push = true
  }}
  tags = {{ team = "platform", "cost-center" = "cc-42" }}
}}

data "aws_iam_policy_document" "readonly" {{
  statement {{
    sid     = "ReadOnly"
    actions = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    principals {{
      type        = "AWS"
      identifiers = local.allow_readonly
    }}
  }}
}}

resource "aws_ecr_repository_policy" "readonly" {{
  for_each   = local.ecr_repo
  repository = aws_ecr_repository.ecr_repo[each.key].name
  policy     = data.aws_iam_policy_document.readonly.json
}}
"#
    )
}

/// What `terraform apply` of the module would have made: the repository and its read-only statement.
async fn made_by_terraform(app: &TestApp, full: &str) {
    let ecr = app.ecr().await;
    ecr.create_repository()
        .repository_name(full)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .image_scanning_configuration(
            aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(true).build(),
        )
        .send()
        .await
        .expect("create in moto");
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "ReadOnly", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
        "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]});
    ecr.set_repository_policy().repository_name(full).policy_text(policy.to_string()).send().await.expect("policy");
}

async fn live_policy(app: &TestApp, full: &str) -> Value {
    let p = app.ecr().await.get_repository_policy().repository_name(full).send().await.expect("policy");
    serde_json::from_str(p.policy_text().unwrap_or("null")).expect("json")
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .map(|r| (r["repository"].as_str().unwrap_or("").to_string(), r["outcome"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn import_body(name: &str, text: &str, dry_run: bool) -> Value {
    json!({"files": [{"name": name, "text": text}], "dry_run": dry_run})
}

async fn request_count(u: &User) -> usize {
    let (_, page) = u.get("/api/v1/requests?limit=200").await;
    page["requests"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn the_modules_example_adopts_what_exists_and_requests_the_rest() {
    let app = spawn_app().await;
    let bob = app.sign_in("bob", "admin").await;
    let carol = app.sign_in("carol", "admin").await;
    let u = unique("tfi");
    let (istio, nginx, fargate) =
        (format!("crytera/{u}istio"), format!("crytera/{u}nginxistio"), format!("crytera/{u}fargate"));
    made_by_terraform(&app, &istio).await;
    made_by_terraform(&app, &nginx).await;
    let text = module(&u);

    // A dry run reports and changes nothing.
    let before = request_count(&bob).await;
    let (s, report) = bob.post("/api/v1/terraform/import", import_body("main.tf", &text, true)).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["dry_run"], true);
    let expected = vec![
        (istio.clone(), "adopted".to_string()),
        (nginx.clone(), "adopted".to_string()),
        (fargate.clone(), "create_requested".to_string()),
        (format!("elsewhere/{u}other"), "skipped".to_string()),
    ];
    assert_eq!(outcomes(&report), expected);
    assert_eq!(report["repositories"][0]["origin"], "main.tf:9 aws_ecr_repository.ecr_repo[\"repo01\"]");
    assert_eq!(request_count(&bob).await, before, "a dry run files nothing");
    assert_eq!(bob.repository(&istio).await["managed"], false, "a dry run adopts nothing");

    // The import itself.
    let (s, report) = bob.post("/api/v1/terraform/import", import_body("main.tf", &text, false)).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(outcomes(&report), expected);
    let adopted = bob.repository(&istio).await;
    assert_eq!((adopted["managed"].clone(), adopted["production_access"].clone()), (json!(true), json!(false)));
    assert_eq!(adopted["tag_mutability"], "MUTABLE");
    // Production could pull already: the adoption does not approve that, a grant request asks.
    let grant_id = report["repositories"][0]["request_ids"][0].as_i64().expect("a grant request");
    let (_, grant) = carol.get(&format!("/api/v1/requests/{grant_id}")).await;
    assert_eq!(grant["summary"]["kind"], "grant_production", "{grant}");
    assert_eq!(grant["summary"]["requester"], "local:bob");
    let create_id = report["repositories"][2]["request_ids"][0].as_i64().expect("a create request");
    let (_, create) = carol.get(&format!("/api/v1/requests/{create_id}")).await;
    assert_eq!(create["summary"]["kind"], "create_repository", "{create}");
    assert!(report["repositories"][2]["detail"].as_str().unwrap_or("").contains("production pull"), "{report}");

    // Another admin approves both; the grant replaces the module's statement with the portal's.
    for id in [grant_id, create_id] {
        let (s, d) = carol.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
        assert_eq!(s, 200, "{d}");
        assert_eq!(carol.wait_settled(id).await["summary"]["status"], "applied");
    }
    let policy = live_policy(&app, &istio).await;
    let sids: Vec<&str> =
        policy["Statement"].as_array().expect("list").iter().filter_map(|s| s["Sid"].as_str()).collect();
    assert_eq!(sids, ["EcrPortalProductionPull"], "{policy}");
    assert!(bob.repository(&istio).await["drift"].as_array().is_some_and(Vec::is_empty));
    let made = app.ecr().await.describe_repositories().repository_names(&fargate).send().await.expect("created");
    let repo = &made.repositories()[0];
    assert_eq!(repo.image_tag_mutability().map(|m| m.as_str()), Some("MUTABLE"));
    assert_eq!(repo.image_scanning_configuration().map(|c| c.scan_on_push()), Some(true));
    assert_eq!(live_policy(&app, &fargate).await["Statement"][0]["Sid"], "EcrPortalProductionPull");

    // Importing again changes nothing: everything is in the records, except the grant's twin still open.
    let (s, again) = bob.post("/api/v1/terraform/import", import_body("main.tf", &text, false)).await;
    assert_eq!(s, 200, "{again}");
    let o = outcomes(&again);
    assert_eq!(o[0].1, "already_managed");
    assert_eq!(o[2].1, "already_managed");
    // The audit trail names the file.
    let (_, events) = bob.get(&format!("/api/v1/audit?repository={nginx}")).await;
    assert!(events.to_string().contains("adopted from Terraform (main.tf:10"), "{events}");
}

#[tokio::test]
async fn files_with_errors_change_nothing_and_name_file_line_and_key() {
    let app = spawn_app().await;
    let bob = app.sign_in("bob", "admin").await;
    let alice = app.sign_in("alice", "requester").await;
    let u = unique("tfe");
    let istio = format!("crytera/{u}istio");
    made_by_terraform(&app, &istio).await;
    let good = module(&u);
    let unresolved = good.replace(&format!("repo_name = \"{u}fargate\""), "repo_name = var.suffix");
    let bad_setting = good.replace("image_tag_mutability = \"MUTABLE\"", "image_tag_mutability = \"SOMETIMES\"");
    let before = request_count(&bob).await;
    // A good state and a bad module: nothing from either.
    let state = json!({"values": {"root_module": {"resources": [{"address": "aws_ecr_repository.s", "mode": "managed",
        "type": "aws_ecr_repository", "values": {"name": format!("crytera/{u}fromstate"), "tags": {"team": "t", "cost-center": "c"}}}]}}});
    let (s, e) = bob
        .post(
            "/api/v1/terraform/import",
            json!({"files": [{"name": "state.json", "text": state.to_string()}, {"name": "envs/prod.tf", "text": unresolved}]}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let message = e["error"]["fields"][0]["message"].as_str().unwrap_or("").to_string();
    assert!(message.starts_with("envs/prod.tf:11: local.ecr_repo[\"repo03\"].repo_name: "), "{message}");
    // A setting ECR would refuse: the repository's line and the attribute.
    let (s, e) = bob.post("/api/v1/terraform/import", import_body("main.tf", &bad_setting, false)).await;
    assert_eq!(s, 422, "{e}");
    let message = e["error"]["fields"][0]["message"].as_str().unwrap_or("").to_string();
    assert!(
        message.starts_with("main.tf:20: aws_ecr_repository.ecr_repo[\"repo02\"].image_tag_mutability: "),
        "{message}"
    );
    // Syntax.
    let (s, e) = bob.post("/api/v1/terraform/import", import_body("main.tf", "locals {\n  a = \n}\n", false)).await;
    assert_eq!(s, 422, "{e}");
    assert!(e.to_string().contains("main.tf:3: (syntax)") || e.to_string().contains("main.tf:2: (syntax)"), "{e}");
    assert_eq!(request_count(&bob).await, before, "nothing filed");
    assert_eq!(bob.repository(&istio).await["managed"], false, "nothing adopted");
    // Only admins import; nothing at all is not a file.
    let (s, _) = alice.post("/api/v1/terraform/import", import_body("main.tf", &good, true)).await;
    assert_eq!(s, 403);
    let (s, e) = bob.post("/api/v1/terraform/import", json!({"files": []})).await;
    assert_eq!(s, 422, "{e}");

    // The import page's plain form: a dry run answers with the report, errors with the refused page.
    let cookie = app.session_cookie("bob", "admin").await;
    let form = |text: String, dry: bool| {
        let mut f = vec![("file_name", "main.tf".to_string()), ("text", text)];
        if dry {
            f.push(("dry_run", "on".to_string()));
        }
        f
    };
    let r = post_form(&app, &cookie, "/terraform/import", &form(good.clone(), true)).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(html.contains("dry run") && html.contains("would be adopted") && html.contains(&istio), "{html}");
    let r = post_form(&app, &cookie, "/terraform/import", &form(bad_setting, false)).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.expect("html").contains("main.tf:20: aws_ecr_repository.ecr_repo[&quot;repo02&quot;]"));
    assert_eq!(bob.repository(&istio).await["managed"], false, "still nothing adopted");
}

#[tokio::test]
async fn a_state_from_terraform_show_json_through_the_command_line() {
    let app = spawn_app().await;
    let u = unique("tfs");
    let (kept, missing) = (format!("crytera/{u}kept"), format!("crytera/{u}missing"));
    app.ecr().await.create_repository().repository_name(&kept).send().await.expect("create");
    let resource = |name: &str| {
        json!({"address": format!("aws_ecr_repository.this[\"{name}\"]"), "mode": "managed", "type": "aws_ecr_repository",
               "values": {"name": name, "image_tag_mutability": "IMMUTABLE",
                          "image_scanning_configuration": [{"scan_on_push": true}],
                          "encryption_configuration": [{"encryption_type": "AES256", "kms_key": ""}],
                          "tags": {"team": "platform"}}})
    };
    let state = json!({"format_version": "1.0", "terraform_version": "1.11.4",
        "values": {"root_module": {"resources": [resource(&kept), resource(&missing)]}}});
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("state.json");
    std::fs::write(&file, state.to_string()).expect("state");
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ecr-portal"))
            .args(["terraform", "import"])
            .args(args)
            .arg(&file)
            .env("ECR_PORTAL_AWS__LOCAL_ENDPOINT", &app.moto)
            .env("ECR_PORTAL_AWS__STAGING_ROLE_ARN", format!("arn:aws:iam::{}:role/ecr-portal-apply", app.account))
            .env("ECR_PORTAL_DATABASE__PATH", dir.path().join("portal.db"))
            .output()
            .expect("run");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), said)
    };
    // The import goes into the portal's own database: a wrong path is refused, not created.
    let (code, said) = cli(&["--dry-run"]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("there is no database at"), "{said}");
    // Start the portal once (it creates its database), then stop it: the command line needs the lock.
    let mut portal = Command::new(env!("CARGO_BIN_EXE_ecr-portal"))
        .env("ECR_PORTAL_SERVER__LISTEN", "127.0.0.1:0")
        .env("ECR_PORTAL_AWS__LOCAL_ENDPOINT", &app.moto)
        .env("ECR_PORTAL_AWS__STAGING_ROLE_ARN", format!("arn:aws:iam::{}:role/ecr-portal-apply", app.account))
        .env("ECR_PORTAL_DATABASE__PATH", dir.path().join("portal.db"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(portal.stdout.take().expect("stdout")), &mut ready)
        .expect("ready");
    assert!(ready.contains("ready"), "{ready}");
    let (code, said) = cli(&["--dry-run"]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("is in use by another ecr-portal process") && said.contains("/terraform/import"), "{said}");
    let _ = portal.kill();
    let _ = portal.wait();
    // Without a cost center for the one to be created: refused, with its place.
    let (code, said) = cli(&["--dry-run"]);
    assert_eq!(code, 2, "{said}");
    assert!(
        said.contains(&format!("{missing}\"].tags.cost-center: ")) && said.contains("nothing was imported"),
        "{said}"
    );
    let (code, said) = cli(&["--dry-run", "--cost-center", "cc-7"]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("dry run: nothing was changed"), "{said}");
    assert!(said.contains(&kept) && said.contains("would be adopted"), "{said}");
    assert!(said.contains(&missing) && said.contains("would get a create request"), "{said}");
    let (code, said) = cli(&["--cost-center", "cc-7", "--as", "ops@crytera"]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("create request filed [request #1]"), "{said}");
    // Again: the adopted one is in the records, the other has its request open.
    let (code, said) = cli(&["--cost-center", "cc-7"]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("already managed") && said.contains("request #1 about it is open"), "{said}");
    // Nothing was created in ECR: the create request waits for an approver.
    let missing_now = app.ecr().await.describe_repositories().repository_names(&missing).send().await;
    assert!(missing_now.is_err(), "not created before approval");
}

#[tokio::test]
async fn a_repository_open_to_everyone_is_listed_and_skipped_not_adopted() {
    let app = spawn_app().await;
    let bob = app.sign_in("bob", "admin").await;
    let u = unique("tfp");
    let (open, fine) = (format!("crytera/{u}istio"), format!("crytera/{u}nginxistio"));
    made_by_terraform(&app, &open).await;
    made_by_terraform(&app, &fine).await;
    let public = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Public", "Effect": "Allow", "Principal": "*",
        "Action": ["ecr:BatchGetImage"]}]});
    let ecr = app.ecr().await;
    ecr.set_repository_policy().repository_name(&open).policy_text(public.to_string()).send().await.expect("policy");
    let (s, report) = bob.post("/api/v1/terraform/import", import_body("main.tf", &module(&u), false)).await;
    assert_eq!(s, 200, "{report}");
    let o = outcomes(&report);
    assert_eq!(o[0], (open.clone(), "skipped".to_string()));
    assert!(report["repositories"][0]["detail"].as_str().unwrap_or("").contains("lets anyone in"), "{report}");
    assert_eq!(o[1], (fine.clone(), "adopted".to_string()));
    assert_eq!(bob.repository(&open).await["managed"], false, "not adopted: the UI would refuse it too");
    assert_eq!(bob.repository(&fine).await["managed"], true);
}

/// Nothing half-done: when the write fails part-way (here the last insert, refused by a trigger put
/// into the database file), the adoptions and requests written before it in the same transaction
/// are gone too, and the audit trail has none of it.
#[tokio::test]
async fn a_failure_while_writing_leaves_nothing_behind() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use std::str::FromStr;
    let app = spawn_app().await;
    let bob = app.sign_in("bob", "admin").await;
    let u = unique("tfw");
    let (istio, nginx, fargate) =
        (format!("crytera/{u}istio"), format!("crytera/{u}nginxistio"), format!("crytera/{u}fargate"));
    made_by_terraform(&app, &istio).await;
    made_by_terraform(&app, &nginx).await;
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", app.db_path.display())).expect("path");
    let raw = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("open");
    // The create request for the third repository is the transaction's last write.
    sqlx::query(&format!(
        "CREATE TRIGGER refuse_one BEFORE INSERT ON requests WHEN NEW.repository = '{fargate}' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    ))
    .execute(&raw)
    .await
    .expect("trigger");
    let events_before: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(&raw).await.expect("count");
    let requests_before = request_count(&bob).await;
    let (s, e) = bob.post("/api/v1/terraform/import", import_body("main.tf", &module(&u), false)).await;
    assert!(s >= 500, "{s} {e}");
    assert_eq!(bob.repository(&istio).await["managed"], false, "the first adoption was undone");
    assert_eq!(bob.repository(&nginx).await["managed"], false);
    assert_eq!(request_count(&bob).await, requests_before, "no grant or create request left");
    let records: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM repositories WHERE name IN (?, ?)")
        .bind(&istio)
        .bind(&nginx)
        .fetch_one(&raw)
        .await
        .expect("count");
    assert_eq!(records, 0);
    let events_after: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(&raw).await.expect("count");
    // Only the refusal's own trace may be there (an internal error is logged, not audited).
    assert_eq!(events_after, events_before, "no adoption or submission event");
    // Without the fault, the same import goes through.
    sqlx::query("DROP TRIGGER refuse_one").execute(&raw).await.expect("drop");
    let (s, report) = bob.post("/api/v1/terraform/import", import_body("main.tf", &module(&u), false)).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(bob.repository(&istio).await["managed"], true);
}
