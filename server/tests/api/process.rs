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
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(says), "{args:?}: {text}");
    }
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
