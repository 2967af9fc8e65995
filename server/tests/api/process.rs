//! The real binary as an operator runs it: one process per database, and a
//! command line that explains itself.
use super::helpers::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn portal(db: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecr-portal"));
    cmd.env("ECR_PORTAL_SERVER__LISTEN", "127.0.0.1:0")
        .env("ECR_PORTAL_DATABASE__PATH", db)
        .env("ECR_PORTAL_AWS__LOCAL_ENDPOINT", moto_endpoint())
        .env("ECR_PORTAL_AWS__STAGING_ROLE_ARN", "arn:aws:iam::555555555555:role/ecr-portal-apply")
        .env("RUST_LOG", "warn");
    cmd
}

#[tokio::test]
async fn a_second_portal_on_the_same_database_exits_at_once_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("portal.db");
    let mut first = portal(&db).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start the first");
    let mut line = String::new();
    BufReader::new(first.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    let base = line.trim().rsplit(' ').next().expect("address").to_string();

    let second = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking({
            let mut cmd = portal(&db);
            move || cmd.output()
        }),
    )
    .await
    .expect("the second exits at once")
    .expect("task")
    .expect("run the second");
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&format!("the database {} is in use by another ecr-portal process", db.display())), "{err}");
    assert!(err.contains(&format!("{}.lock", db.display())), "{err}");
    assert!(second.stdout.is_empty(), "the second never says it is ready");

    let health = reqwest::get(format!("{base}/readyz")).await.expect("the first still answers");
    assert_eq!(health.status(), 200);
    let _ = first.kill();
    let _ = first.wait();
    // Once the first is gone, the database is free again.
    let mut third = portal(&db).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start the third");
    let mut line = String::new();
    BufReader::new(third.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    assert!(line.starts_with("ecr-portal is ready at http://127.0.0.1:"), "{line}");
    let _ = third.kill();
    let _ = third.wait();
}

#[test]
fn every_command_has_help_and_the_binary_tells_its_version() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_ecr-portal")).args(args).output().expect("run");
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("ecr-portal {}", env!("CARGO_PKG_VERSION")));
    for (args, says) in [
        (vec!["--help"], "check-config"),
        (vec!["serve", "--help"], "Run the portal"),
        (vec!["audit", "--help"], "verify"),
        (vec!["audit", "export", "--help"], "--repository"),
        (vec!["backup", "--help"], "<PATH>"),
        (vec!["--help"], "terraform"),
        (vec!["terraform", "--help"], "import"),
        (vec!["terraform", "export", "--help"], "--out"),
        (vec!["terraform", "import", "--help"], "--dry-run"),
        (vec!["--help"], "openapi"),
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(says), "{args:?}: {text}");
    }
    // The OpenAPI document, without any configuration (a path that cannot be a config file).
    let out = run(&["--config", "/nonexistent/ecr-portal.toml", "openapi"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the document is JSON");
    assert_eq!(doc, server::http::api::openapi());
    let out = run(&["audit", "unknown"]);
    assert_eq!(out.status.code(), Some(2), "a mistyped command is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand 'unknown'"));
}

#[test]
fn reading_commands_open_the_database_read_only_and_never_create_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("missing.db");
    let out = Command::new(env!("CARGO_BIN_EXE_ecr-portal"))
        .args(["audit", "verify"])
        .env("ECR_PORTAL_DATABASE__PATH", &db)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("there is no database at {}", db.display())));
    assert!(!db.exists(), "nothing was created");
}

/// Migration 4 rebuilds `requests` (a new status in its CHECK): an existing
/// database keeps every request, approval and audit event, and its keys hold.
#[tokio::test]
async fn the_requests_table_rebuild_keeps_an_existing_database_whole() {
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("old.db");
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .expect("options")
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.expect("pool");
    // The database as the previous release left it: migrations 1 to 3.
    let mut old = sqlx::migrate::Migrator::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations"))
        .await
        .expect("migrations");
    old.migrations = std::borrow::Cow::Owned(old.migrations.iter().filter(|m| m.version < 4).cloned().collect());
    old.run(&pool).await.expect("old migrations");
    sqlx::query(
        "INSERT INTO requests (kind, repository, payload, justification, requester, status, created_at, updated_at)
         VALUES ('create_repository', 'crytera/kept', '{}', 'j', 'local:alice', 'pending', 1, 1)",
    )
    .execute(&pool)
    .await
    .expect("request");
    sqlx::query("INSERT INTO approvals (request_id, approver, at) VALUES (1, 'local:bob', 2)")
        .execute(&pool)
        .await
        .expect("approval");
    // Then this release's migrations, as the portal runs them (foreign keys off, then checked).
    drop(pool);
    let key = server::secret::PortalKey::from_bytes([3; 32]);
    let db = server::db::Db::connect(&path, &key).await.expect("migration 4 on an existing database");
    let pool = db.pool.clone();
    let (repo, status): (String, String) =
        sqlx::query_as("SELECT repository, status FROM requests WHERE id = 1").fetch_one(&pool).await.expect("kept");
    assert_eq!((repo.as_str(), status.as_str()), ("crytera/kept", "pending"));
    let approvals: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM approvals").fetch_one(&pool).await.expect("count");
    assert_eq!(approvals, 1);
    let broken: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check").fetch_all(&pool).await.unwrap_or_default();
    assert!(broken.is_empty(), "{broken:?}");
    // The new status is allowed; an unknown one still is not; the one-open-per-repository rule still holds.
    sqlx::query("UPDATE requests SET status = 'withdrawn' WHERE id = 1").execute(&pool).await.expect("withdrawn");
    assert!(sqlx::query("UPDATE requests SET status = 'bogus' WHERE id = 1").execute(&pool).await.is_err());
    let insert =
        "INSERT INTO requests (kind, repository, payload, justification, requester, status, created_at, updated_at)
                  VALUES ('create_repository', 'crytera/twice', '{}', 'j', 'local:alice', 'pending', 1, 1)";
    sqlx::query(insert).execute(&pool).await.expect("first open request");
    assert!(sqlx::query(insert).execute(&pool).await.is_err(), "the partial unique index was made again");
}
