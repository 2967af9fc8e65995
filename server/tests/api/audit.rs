//! The audit trail you can trust: the hash chain against tampering in the
//! SQLite file, export, backup, and the SQLite settings it relies on.
use super::helpers::*;
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::str::FromStr;

/// Signs two people in and submits and rejects three requests: 8 events.
async fn with_history() -> (TestApp, User) {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    for i in 0..3 {
        let (_, r) = alice.submit(&unique(&format!("chain{i}"))).await;
        let id = r["summary"]["id"].as_i64().expect("id");
        bob.post(&format!("/api/v1/requests/{id}/reject"), json!({"comment": "no"})).await;
    }
    (app, bob)
}

/// A connection straight to the database file, as someone with access to it.
async fn raw(app: &TestApp) -> SqlitePool {
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", app.db_path.display())).expect("path");
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("open");
    // The append-only triggers stop honest mistakes, not someone who owns the file.
    sqlx::query("DROP TRIGGER audit_events_no_update").execute(&pool).await.expect("drop");
    sqlx::query("DROP TRIGGER audit_events_no_delete").execute(&pool).await.expect("drop");
    pool
}

async fn verification(user: &User) -> (u16, Value) {
    user.get("/api/v1/audit/verify").await
}

#[tokio::test]
async fn an_untouched_trail_verifies() {
    let (_app, bob) = with_history().await;
    let (status, v) = verification(&bob).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["intact"].as_bool(), v["events"].as_u64()), (Some(true), Some(8)));
    assert_eq!(v["head"].as_str().map(str::len), Some(64));
}

#[tokio::test]
async fn the_database_refuses_to_edit_or_delete_audit_events() {
    let (app, _) = with_history().await;
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", app.db_path.display())).expect("path");
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("open");
    let e = sqlx::query("UPDATE audit_events SET detail = 'x' WHERE id = 2").execute(&pool).await.expect_err("refused");
    assert!(e.to_string().contains("append-only"), "{e}");
    assert!(sqlx::query("DELETE FROM audit_events WHERE id = 2").execute(&pool).await.is_err());
}

#[tokio::test]
async fn editing_an_event_is_detected_at_that_event() {
    let (app, bob) = with_history().await;
    let db = raw(&app).await;
    sqlx::query("UPDATE audit_events SET detail = 'approved, honest' WHERE id = 5").execute(&db).await.expect("edit");
    let (status, v) = verification(&bob).await;
    assert_eq!(status, 409);
    assert_eq!(v["broken_at"], 5);
    assert!(v["reason"].as_str().unwrap_or("").contains("changed"), "{v}");
}

#[tokio::test]
async fn deleting_an_event_is_detected_at_the_next_one() {
    let (app, bob) = with_history().await;
    let db = raw(&app).await;
    sqlx::query("DELETE FROM audit_events WHERE id = 4").execute(&db).await.expect("delete");
    let (_, v) = verification(&bob).await;
    assert_eq!(v["broken_at"], 5);
    assert!(v["reason"].as_str().unwrap_or("").contains("deleted"), "{v}");
}

#[tokio::test]
async fn inserting_an_event_is_detected_at_the_inserted_one() {
    let (app, bob) = with_history().await;
    let db = raw(&app).await;
    // Make room after event 3 and slip a forged event in, reusing a neighbour's hashes.
    for id in (4..=8).rev() {
        sqlx::query("UPDATE audit_events SET id = id + 1 WHERE id = ?").bind(id).execute(&db).await.expect("shift");
    }
    sqlx::query(
        "INSERT INTO audit_events (id, at, actor, action, detail, aws_request_ids, prev_hash, hash)
         SELECT 4, at, 'local:mallory', 'request_approved', '', '[]', hash, hash FROM audit_events WHERE id = 3",
    )
    .execute(&db)
    .await
    .expect("insert");
    let (_, v) = verification(&bob).await;
    assert_eq!(v["broken_at"], 4, "{v}");
}

#[tokio::test]
async fn reordering_events_is_detected_where_the_order_changes() {
    let (app, bob) = with_history().await;
    let db = raw(&app).await;
    sqlx::query("UPDATE audit_events SET id = 100 WHERE id = 6").execute(&db).await.expect("swap");
    sqlx::query("UPDATE audit_events SET id = 6 WHERE id = 7").execute(&db).await.expect("swap");
    sqlx::query("UPDATE audit_events SET id = 7 WHERE id = 100").execute(&db).await.expect("swap");
    let (_, v) = verification(&bob).await;
    assert_eq!(v["broken_at"], 6, "{v}");
}

#[tokio::test]
async fn the_command_line_verifies_exports_and_backs_up() {
    let (app, _) = with_history().await;
    let bin = env!("CARGO_BIN_EXE_ecr-portal");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env("ECR_PORTAL_DATABASE__PATH", &app.db_path)
            .env("RUST_LOG", "error")
            .output()
            .expect("run ecr-portal")
    };
    let out = run(&["audit", "verify"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 8 events"));

    let out = run(&["audit", "export", "--format", "csv", "--action", "request_rejected"]);
    let csv = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "id,at,actor,action,request_id,repository,detail,aws_request_ids,hash");
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[1].contains(",local:bob,request_rejected,"));

    let out = run(&["audit", "export", "--format", "ndjson"]);
    let events: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(events.len(), 8);
    assert_eq!(events[0]["id"], 1);
    assert_eq!(events[0]["action"], "signed_in");

    let copy = app.db_path.with_file_name("backup.db");
    let out = run(&["backup", copy.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("8 audit events, chain intact"));
    let again = run(&["backup", copy.to_str().expect("utf-8")]);
    assert!(!again.status.success(), "an existing file is never overwritten");

    let out = run(&["audit", "export", "--from", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from"));

    // A broken chain makes `audit verify` fail and name the event.
    let db = raw(&app).await;
    sqlx::query("UPDATE audit_events SET actor = 'local:nobody' WHERE id = 2").execute(&db).await.expect("edit");
    let out = run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("BROKEN at event 2"));
}

#[tokio::test]
async fn the_api_exports_csv_and_ndjson_with_the_history_filters() {
    let (app, bob) = with_history().await;
    let r = bob
        .http
        .get(format!("{}/api/v1/audit/export?format=csv&actor=local:alice", app.base))
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap_or("").starts_with("text/csv"));
    let body = r.text().await.expect("body");
    assert_eq!(body.lines().count(), 1 + 4, "header + alice's sign-in and 3 submissions:\n{body}");
    let r = bob
        .http
        .get(format!("{}/api/v1/audit/export?format=ndjson&action=request_submitted", app.base))
        .send()
        .await
        .expect("ndjson");
    assert_eq!(r.text().await.expect("body").lines().count(), 3);
    assert_eq!(bob.get("/api/v1/audit/export?format=xml").await.0, 400);
    assert_eq!(app.anonymous().get("/api/v1/audit/export").await.0, 401);
}

#[tokio::test]
async fn a_backup_taken_under_write_load_opens_and_verifies() {
    let (app, _) = with_history().await;
    let alice = app.sign_in("alice", "requester").await;
    let writer = tokio::spawn(async move {
        for i in 0..40 {
            alice.submit(&unique(&format!("load{i}"))).await;
        }
    });
    let copy = app.db_path.with_file_name("under-load.db");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let v = server::db::backup(&app.service.db.pool, &copy, &app.service.db.chain).await.expect("backup");
    writer.await.expect("writer");
    assert!(v.intact(), "{v:?}");
    assert!(v.events >= 8);
    let opened = SqlitePoolOptions::new()
        .connect_with(SqliteConnectOptions::from_str(&format!("sqlite://{}", copy.display())).expect("path"))
        .await
        .expect("the backup opens");
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM requests").fetch_one(&opened).await.expect("count").get("n");
    assert!(n >= 3);
}

#[tokio::test]
async fn sqlite_runs_with_wal_full_sync_a_busy_timeout_and_foreign_keys() {
    let app = spawn_app().await;
    let pool = &app.service.db.pool;
    let get = |sql: &'static str| async move { sqlx::query(sql).fetch_one(pool).await.expect(sql).get::<String, _>(0) };
    let int = |sql: &'static str| async move { sqlx::query(sql).fetch_one(pool).await.expect(sql).get::<i64, _>(0) };
    assert_eq!(get("PRAGMA journal_mode").await, "wal");
    assert_eq!(int("PRAGMA synchronous").await, 2, "FULL");
    assert_eq!(int("PRAGMA busy_timeout").await, 5000);
    assert_eq!(int("PRAGMA foreign_keys").await, 1);
}

#[tokio::test]
async fn writers_of_this_process_take_turns_in_order_and_a_dropped_turn_is_released() {
    use std::time::Duration;
    let app = spawn_app().await;
    let db = &app.service.db;
    let first = db.write().await.expect("first writer");
    // Two more writers queue up, in this order, while the first holds the turn.
    let mut second = Box::pin(db.write());
    let mut third = Box::pin(db.write());
    assert!(futures::poll!(second.as_mut()).is_pending(), "the second writer waits for the first");
    assert!(futures::poll!(third.as_mut()).is_pending(), "the third writer waits too");
    first.commit().await.expect("commit");
    // The turn goes to the second writer, not to whichever polls SQLite first:
    // the third cannot overtake it, however long it tries.
    assert!(tokio::time::timeout(Duration::from_millis(300), third.as_mut()).await.is_err(), "no overtaking");
    let second = second.await.expect("the turn passes at commit, in order");
    // Dropping a transaction (an error path) rolls it back and passes the turn on.
    drop(second);
    let third = tokio::time::timeout(Duration::from_secs(10), third).await;
    assert!(third.is_ok_and(|t| t.is_ok()), "the turn passes when a transaction is dropped");
}

#[tokio::test]
async fn when_the_audit_event_cannot_be_written_the_change_does_not_happen() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let id = alice.submit(&unique("noaudit")).await.1["summary"]["id"].as_i64().expect("id");
    // Make every further audit insert fail (a full disk or a broken table would do the same).
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", app.db_path.display())).expect("path");
    let db = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("open");
    sqlx::query(
        "CREATE TRIGGER no_more_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    .execute(&db)
    .await
    .expect("trigger");
    let (status, body) = bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(status, 500, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap_or("").contains("disk full"), "no database text leaks: {body}");
    sqlx::query("DROP TRIGGER no_more_audit").execute(&db).await.expect("drop");
    let (_, d) = bob.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(d["summary"]["status"], "pending", "the approval was rolled back with its event");
}

/// Rewrites events `from..` with plain SHA-256, as someone who can write the
/// file but does not have the audit key would after an edit.
async fn rechain_without_the_key(db: &SqlitePool, from: i64) {
    let rows = sqlx::query("SELECT * FROM audit_events WHERE id >= ? ORDER BY id")
        .bind(from)
        .fetch_all(db)
        .await
        .expect("rows");
    let mut prev: String = if from == 1 {
        server::audit::GENESIS.to_string()
    } else {
        sqlx::query_scalar("SELECT hash FROM audit_events WHERE id = ?")
            .bind(from - 1)
            .fetch_one(db)
            .await
            .expect("prev")
    };
    for row in rows {
        let ids: String = row.get("aws_request_ids");
        let e = server::audit::EventRow {
            id: row.get("id"),
            at: row.get("at"),
            actor: row.get("actor"),
            action: row.get("action"),
            request_id: row.get("request_id"),
            repository: row.get("repository"),
            detail: row.get("detail"),
            aws_request_ids: serde_json::from_str(&ids).expect("ids"),
        };
        let hash = server::audit::chain_hash(&prev, &e);
        sqlx::query("UPDATE audit_events SET prev_hash = ?, hash = ? WHERE id = ?")
            .bind(&prev)
            .bind(&hash)
            .bind(e.id)
            .execute(db)
            .await
            .expect("rechain");
        prev = hash;
    }
}

#[tokio::test]
async fn an_edit_rechained_with_plain_sha256_is_named_because_the_chain_is_keyed() {
    let (app, bob) = with_history().await;
    let db = raw(&app).await;
    sqlx::query("UPDATE audit_events SET actor = 'local:mallory' WHERE id = 5").execute(&db).await.expect("edit");
    rechain_without_the_key(&db, 5).await;
    let (status, v) = verification(&bob).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["broken_at"], 5, "{v}");
    // Rewriting the whole trail without the key leaves no signed event at all.
    rechain_without_the_key(&db, 1).await;
    let (status, v) = verification(&bob).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["reason"].as_str().unwrap_or("").contains("no event is signed with the audit key"), "{v}");
}

#[tokio::test]
async fn a_trail_from_before_keys_is_verified_and_sealed_at_start() {
    let (app, bob) = with_history().await;
    let db = raw(&app).await;
    // A database written by a portal without a key: every event plain SHA-256.
    rechain_without_the_key(&db, 1).await;
    let key = app.db_path.with_file_name("audit.key");
    assert_eq!(
        server::db::chain_state(&app.service.db.pool, &app.service.db.chain).await.expect("state"),
        server::db::ChainState::Unkeyed
    );
    app.service.seal_unkeyed_audit_chain(&key).await.expect("sealed");
    let (status, v) = verification(&bob).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["events"], 9, "{v}");
    let seal: (String, String) =
        sqlx::query_as("SELECT action, detail FROM audit_events WHERE id = 9").fetch_one(&db).await.expect("seal");
    assert_eq!(seal.0, "audit_chain_keyed");
    assert!(seal.1.contains("8 earlier events") && seal.1.contains("intact"), "{}", seal.1);
    // Sealing again does nothing; a portal holding another key refuses to go on.
    app.service.seal_unkeyed_audit_chain(&key).await.expect("already keyed");
    let other = server::audit::ChainKey::new(&server::secret::PortalKey::from_bytes([9; 32]));
    assert_eq!(
        server::db::chain_state(&app.service.db.pool, &other).await.expect("state"),
        server::db::ChainState::OtherKey
    );
}

#[tokio::test]
async fn verify_with_another_key_fails_and_published_heads_catch_a_cut_history() {
    let heads_dir = tempfile::tempdir().expect("dir");
    let heads = heads_dir.path().join("heads.log");
    let heads_for_app = heads.clone();
    let app = spawn_app_with(move |c| c.audit.head_file = heads_for_app.display().to_string()).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    alice.submit(&unique("heads")).await;
    app.service.publish_audit_head().await.expect("published");
    let line = std::fs::read_to_string(&heads).expect("head file");
    assert!(line.lines().last().unwrap_or("").split(' ').nth(1) == Some("3"), "{line}");
    let bin = env!("CARGO_BIN_EXE_ecr-portal");
    let run = |extra: &[(&str, String)]| {
        let mut c = std::process::Command::new(bin);
        c.args(["audit", "verify"])
            .env("ECR_PORTAL_DATABASE__PATH", &app.db_path)
            .env("ECR_PORTAL_AUDIT__HEAD_FILE", &heads)
            .env("RUST_LOG", "error");
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().expect("run ecr-portal")
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let other = heads_dir.path().join("other.key");
    std::fs::write(&other, format!("{}\n", "ab".repeat(32))).expect("other key");
    let out = run(&[("ECR_PORTAL_AUDIT__KEY_FILE", other.display().to_string())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BROKEN at event 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let missing = heads_dir.path().join("missing.key");
    let out = run(&[("ECR_PORTAL_AUDIT__KEY_FILE", missing.display().to_string())]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no audit key"));
    assert!(!missing.exists(), "reading commands never create a key");

    // Cut the last event off: the chain alone looks intact, the published head does not.
    let db = raw(&app).await;
    sqlx::query("DELETE FROM audit_events WHERE id = 3").execute(&db).await.expect("cut");
    let (status, v) = verification(&bob).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["reason"].as_str().unwrap_or("").contains("removed from its end"), "{v}");
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
}
