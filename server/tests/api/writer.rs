//! The writer thread's group commit (`Db::run`): jobs queued behind each
//! other share one transaction and one COMMIT, yet each commits or rolls back
//! alone, and a failed COMMIT fails every job of its batch.
//!
//! The tests hold the writer turn with `Db::write` while they queue jobs, so
//! the jobs are already waiting when the writer thread gets the turn and the
//! batch they form does not depend on timing.
use app::domain::audit::AuditAction;
use futures::future::BoxFuture;
use futures::FutureExt;
use server::db::{self, Db, NewEvent};
use std::future::Future;

async fn fresh() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&dir.path().join("writer.db")).await.expect("connect");
    (dir, db)
}

fn event(actor: &str) -> NewEvent<'_> {
    NewEvent {
        at: 1,
        actor,
        action: AuditAction::SignedIn,
        request_id: None,
        repository: None,
        detail: String::new(),
        aws_request_ids: vec![],
    }
}

/// A job that writes one audit event by `actor`, then fails if asked to.
fn write_event(db: &Db, actor: String, fail: bool) -> impl Future<Output = Result<i64, sqlx::Error>> {
    let db = db.clone();
    async move {
        db.run(move |tx| {
            Box::pin(async move {
                let id = db::insert_event(tx, &event(&actor)).await?;
                if fail {
                    return Err(sqlx::Error::Protocol(format!("{actor} gives up")));
                }
                Ok(id)
            })
        })
        .await
    }
}

/// Writes a row whose (deferred) foreign key fails at COMMIT.
async fn poison_row(tx: &mut db::WriteTx) -> Result<i64, sqlx::Error> {
    let conn: &mut sqlx::SqliteConnection = tx;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS poison \
         (request_id INTEGER REFERENCES requests(id) DEFERRABLE INITIALLY DEFERRED)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO poison VALUES (424242)").execute(conn).await?;
    Ok(0)
}

async fn actors(db: &Db) -> Vec<String> {
    sqlx::query_scalar("SELECT actor FROM audit_events ORDER BY id").fetch_all(&db.pool).await.expect("actors")
}

type Write = BoxFuture<'static, Result<i64, sqlx::Error>>;

/// Runs the writes while the test holds the writer turn, so that all their
/// jobs are queued when the writer thread gets it; returns their results in order.
async fn queued(db: &Db, writes: Vec<Write>) -> Vec<Result<i64, sqlx::Error>> {
    let turn = db.write().await.expect("turn");
    let handles: Vec<_> = writes.into_iter().map(tokio::spawn).collect();
    // Each task queues its job on its first poll, then waits for the answer.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    turn.rollback().await.expect("release the turn");
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.expect("task"));
    }
    results
}

#[tokio::test]
async fn queued_writes_share_one_commit_and_each_keeps_or_loses_only_its_own_changes() {
    let (_dir, db) = fresh().await;
    let before = db.version();
    let writes = (0..10).map(|i| write_event(&db, format!("actor-{i}"), i % 3 == 1).boxed()).collect();
    let results = queued(&db, writes).await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_err(), i % 3 == 1, "job {i}: {r:?}");
    }
    assert!(results[1].as_ref().expect_err("failed").to_string().contains("actor-1 gives up"));
    // Only the jobs that succeeded left their event, in the order they were queued,
    let kept: Vec<String> = (0..10).filter(|i| i % 3 != 1).map(|i| format!("actor-{i}")).collect();
    assert_eq!(actors(&db).await, kept);
    // with ids and hashes chained as if they had been written one by one.
    let v = server::audit::verify(&db.pool).await.expect("verify");
    assert!(v.intact(), "{v:?}");
    assert_eq!(v.events, kept.len() as u64);
    // Ten jobs queued together took one commit.
    let commits = db.version() - before;
    assert_eq!(commits, 1, "{commits} commits for 10 queued jobs");
}

#[tokio::test]
async fn a_commit_that_fails_fails_every_job_of_its_batch_and_writes_none_of_them() {
    let (_dir, db) = fresh().await;
    write_event(&db, "before".into(), false).await.expect("first write");
    // A deferred foreign key is checked only at COMMIT: this job succeeds on
    // its own, and makes its batch's COMMIT fail.
    let poison = {
        let db = db.clone();
        async move { db.run(|tx| Box::pin(poison_row(tx))).await }
    };
    let writes =
        vec![write_event(&db, "a".into(), false).boxed(), poison.boxed(), write_event(&db, "b".into(), false).boxed()];
    for r in queued(&db, writes).await {
        let e = r.expect_err("the batch was not committed");
        assert!(e.to_string().contains("not committed"), "{e}");
    }
    assert_eq!(actors(&db).await, ["before"], "nothing of the failed batch was written");
    // The writer goes on: the next write commits, and the chain is whole.
    write_event(&db, "after".into(), false).await.expect("next write");
    assert_eq!(actors(&db).await, ["before", "after"]);
    assert!(server::audit::verify(&db.pool).await.expect("verify").intact());
}

#[tokio::test]
async fn a_batch_that_breaks_tells_the_job_it_did_not_run_why() {
    let (_dir, db) = fresh().await;
    // A job that ends its own savepoint (which jobs must never do): the
    // statement that ends it fails, and so does the batch.
    let breaks = {
        let db = db.clone();
        async move {
            db.run(|tx| {
                Box::pin(async move {
                    let conn: &mut sqlx::SqliteConnection = tx;
                    sqlx::query("RELEASE job").execute(conn).await?;
                    Ok::<_, sqlx::Error>(0)
                })
            })
            .await
        }
    };
    let writes = vec![breaks.boxed(), write_event(&db, "next".into(), false).boxed()];
    let results = queued(&db, writes).await;
    // The job queued behind it was not run, and its caller hears the cause.
    let e = results[1].as_ref().expect_err("not run").to_string();
    assert!(e.contains("not committed") && e.contains("no such savepoint"), "{e}");
    assert!(actors(&db).await.is_empty());
    write_event(&db, "after".into(), false).await.expect("the writer still runs");
    assert_eq!(actors(&db).await, ["after"]);
}

#[tokio::test]
async fn a_panicking_job_fails_alone_and_the_writer_goes_on() {
    let (_dir, db) = fresh().await;
    let panics = {
        let db = db.clone();
        async move {
            db.run(|tx| {
                Box::pin(async move {
                    let id = db::insert_event(tx, &event("panics")).await?;
                    assert!(id < 0, "a bug in a write");
                    Ok::<_, sqlx::Error>(id)
                })
            })
            .await
        }
    };
    let writes =
        vec![write_event(&db, "a".into(), false).boxed(), panics.boxed(), write_event(&db, "b".into(), false).boxed()];
    let results = queued(&db, writes).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(results[1].is_err(), "{results:?}");
    assert_eq!(actors(&db).await, ["a", "b"]);
    write_event(&db, "after".into(), false).await.expect("the writer still runs");
}

#[tokio::test]
async fn a_write_whose_caller_stops_waiting_is_still_done_whole() {
    let (_dir, db) = fresh().await;
    let turn = db.write().await.expect("turn");
    {
        let write = write_event(&db, "abandoned".into(), false);
        tokio::pin!(write);
        // Queued, then the caller goes away (a closed connection, a timeout).
        assert!(futures::poll!(&mut write).is_pending());
    }
    turn.rollback().await.expect("release the turn");
    // Jobs run in order: once this one is answered, the abandoned one was done.
    write_event(&db, "next".into(), false).await.expect("next write");
    assert_eq!(actors(&db).await, ["abandoned", "next"]);
}

#[tokio::test]
async fn a_decisions_single_read_matches_the_request_its_approvals_and_the_chain_head() {
    use app::domain::approval::Approval;
    use app::domain::request::Status;
    let (_dir, db) = fresh().await;
    let id = insert_request(&db, "crytera/one-read", Status::Pending).await;

    let read_apart = |db: Db| async move {
        let mut conn = db.pool.acquire().await.expect("connection");
        let row = db::get_request(&mut conn, id).await.expect("request").expect("exists");
        let approvals = db::approvals(&mut conn, id).await.expect("approvals");
        let head = db::chain_head(&mut conn).await.expect("head");
        let timeline = db::events_for_request(&mut conn, id).await.expect("events");
        let drift = db::get_record(&mut conn, "crytera/one-read").await.expect("record").map(|r| r.drift);
        let (one_row, one_approvals, one_head) =
            db::decision_state(&mut conn, id).await.expect("one read").expect("exists");
        assert_eq!(one_row.request, row.request);
        assert_eq!(one_approvals, approvals);
        assert_eq!(one_head, head);
        // The request page's single read agrees too.
        let view = db::request_view(&mut conn, id).await.expect("view").expect("exists");
        assert_eq!(view.row.request, row.request);
        assert_eq!(view.approvals, approvals);
        assert_eq!(view.timeline, timeline);
        assert_eq!(view.last_event(), timeline.last().map_or(0, |e| e.id));
        assert_eq!(view.drift, drift.unwrap_or_default());
        (one_approvals.len(), view.timeline.len(), view.drift.len())
    };
    // No approvals, no events yet: the chain starts at the genesis hash.
    assert_eq!(read_apart(db.clone()).await, (0, 0, 0));
    let mut conn = db.pool.acquire().await.expect("connection");
    assert_eq!(db::decision_state(&mut conn, id).await.expect("read").expect("exists").2.hash, server::audit::GENESIS);
    assert!(db::decision_state(&mut conn, id + 1).await.expect("read").is_none());
    assert!(db::request_view(&mut conn, id + 1).await.expect("read").is_none());
    drop(conn);
    // Two approvals (one without a comment, given out of name order), events
    // about it and about nothing, and a record of its repository with drift.
    let mut tx = db.write().await.expect("turn");
    for (who, at, comment) in [("local:zed", 7, None), ("local:bob", 9, Some("fine".to_string()))] {
        db::insert_approval(&mut tx, id, &Approval { approver: who.into(), at, comment }).await.expect("approval");
    }
    for request_id in [Some(id), None, Some(id)] {
        let ids = vec!["req-1".to_string()];
        db::insert_event(&mut tx, &NewEvent { request_id, aws_request_ids: ids, ..event("local:bob") })
            .await
            .expect("event");
    }
    let record = db::RecordRow {
        name: "crytera/one-read".into(),
        spec: None,
        production_access: false,
        production_until: None,
        request_id: Some(id),
        adopted_at: None,
        drift: vec!["scan on push is off".into()],
        checked_at: Some(3),
    };
    db::upsert_record(&mut tx, &record).await.expect("record");
    tx.commit().await.expect("commit");
    assert_eq!(read_apart(db.clone()).await, (2, 2, 1));
}

#[tokio::test]
async fn a_decision_writes_its_approval_state_policy_and_event_in_one_query_or_reports_what_stopped_it() {
    use app::domain::approval::Approval;
    use app::domain::request::Status;
    let (_dir, db) = fresh().await;
    let id = insert_request(&db, "crytera/decided", Status::Pending).await;
    let failed = insert_request(&db, "crytera/twice", Status::Failed).await;
    insert_request(&db, "crytera/twice", Status::Pending).await;

    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": []});
    let approval = Approval { approver: "local:bob".into(), at: 9, comment: Some("fine".into()) };
    // `read` changes what the decision says it read (the request as read, unless it does).
    type Read = fn(&mut db::DecisionWrite);
    let as_read: Read = |_| {};
    let decide = |db: Db, id: i64, read: Read, approval: Option<Approval>, policy: Option<serde_json::Value>| async move {
        let mut tx = db.write().await.expect("turn");
        let view = db::request_view(&mut tx, id).await.expect("read").expect("exists");
        let head = db::chain_head(&mut tx).await.expect("head");
        let row = view.row.clone();
        let mut next = row.request.clone();
        next.status = Status::Approved;
        next.updated_at = 9;
        next.decided_by = Some("local:bob".into());
        let event = NewEvent { request_id: Some(id), ..event("local:bob") };
        let mut write =
            decision_write(&row, &next, view.approvals.len(), view.last_event(), approval.as_ref(), &head, &event);
        write.approved_policy = policy.as_ref().map(Some);
        read(&mut write);
        let written = db::write_decision(&mut tx, &write).await;
        // Committed whenever it answers: a decision that was not written wrote nothing.
        if written.is_ok() {
            tx.commit().await.expect("commit");
        } else {
            tx.rollback().await.expect("rollback");
        }
        written
    };

    // An event about the request, before the decision reads it.
    let mut tx = db.write().await.expect("turn");
    db::insert_event(&mut tx, &NewEvent { request_id: Some(id), ..event("local:alice") }).await.expect("event");
    tx.commit().await.expect("commit");
    // The request is not as the decision read it (its status, its last
    // update, its number of approvals, its events): none of the decision is written.
    let stale: [Read; 4] = [
        |w| w.from = Status::Approved,
        |w| w.read_updated_at -= 1,
        |w| w.read_approvals += 1,
        |w| w.read_last_event -= 1,
    ];
    for read in stale {
        let moved = decide(db.clone(), id, read, Some(approval.clone()), Some(policy.clone())).await;
        assert_eq!(moved.expect("no error"), None, "a request that is no longer as read is reported");
        // A decision without an approval or a policy (a rejection, a retry):
        // its event follows the update directly, and is not written either.
        let moved = decide(db.clone(), id, read, None, None).await;
        assert_eq!(moved.expect("no error"), None, "the same without an approval");
    }
    let mut conn = db.pool.acquire().await.expect("connection");
    let (row, approvals, head) = db::decision_state(&mut conn, id).await.expect("read").expect("exists");
    assert_eq!((row.request.status, row.approved_policy, approvals.len(), head.id), (Status::Pending, None, 0, 1));
    drop(conn);
    // The decision as read: every part of it is written, in one query, and
    // it says what it appended: its event, the chain's new head.
    let left = decide(db.clone(), id, as_read, Some(approval.clone()), Some(policy.clone())).await.expect("ok");
    let mut conn = db.pool.acquire().await.expect("connection");
    let (row, approvals, head) = db::decision_state(&mut conn, id).await.expect("read").expect("exists");
    assert_eq!(row.request.status, Status::Approved);
    assert_eq!(row.request.decided_by.as_deref(), Some("local:bob"));
    assert_eq!(row.approved_policy, Some(Some(policy.clone())));
    assert_eq!(approvals, std::slice::from_ref(&approval));
    assert_eq!(head.id, 2, "one event more");
    let left = left.expect("written");
    assert_eq!(left.head, head);
    let timeline = db::events_for_request(&mut conn, id).await.expect("events");
    assert_eq!(timeline.last(), Some(&left.event), "the event as it reads back");
    drop(conn);
    assert!(server::audit::verify(&db.pool).await.expect("verify").intact());
    // The same approver again: the approvals table says so.
    let again = decide(db.clone(), id, as_read, Some(approval.clone()), None).await;
    let e = again.expect_err("duplicate approval").to_string();
    assert!(e.contains("UNIQUE") && e.contains("approvals."), "{e}");
    // A failed request moved back to approved while another is open for its
    // repository: the open-request index says so (and names no approvals).
    let open = decide(db.clone(), failed, as_read, None, None).await;
    let e = open.expect_err("two open requests").to_string();
    assert!(e.contains("UNIQUE") && e.contains("requests.repository") && !e.contains("approvals"), "{e}");
    assert_eq!(actors(&db).await, ["local:alice", "local:bob"], "only the decision that was written left an event");
}

/// The write of a decision taking `row` (read with `approvals` approvals and
/// events up to `last_event`) to `next`, after `head`, without a policy.
fn decision_write<'a>(
    row: &'a db::RequestRow,
    next: &'a app::domain::request::Request,
    approvals: usize,
    last_event: i64,
    approval: Option<&'a app::domain::approval::Approval>,
    head: &'a db::ChainHead,
    event: &'a NewEvent<'a>,
) -> db::DecisionWrite<'a> {
    db::DecisionWrite {
        next,
        from: row.request.status,
        read_updated_at: row.request.updated_at,
        read_approvals: approvals,
        read_last_event: last_event,
        decided_at: Some(9),
        approval,
        approved_policy: None,
        head,
        event,
    }
}

/// Inserts a request for a new repository `name`, in `status`.
async fn insert_request(db: &Db, name: &str, status: app::domain::request::Status) -> i64 {
    use app::domain::request::{Request, RequestKind};
    let ns = app::domain::name::Namespace::parse("crytera").expect("namespace");
    let spec = app::domain::form::RepositoryRequestInput {
        name: name.into(),
        team: "platform".into(),
        cost_center: "cc-1234".into(),
        justification: "test".into(),
        ..Default::default()
    }
    .parse(&ns)
    .expect("valid input")
    .spec;
    let request = Request {
        id: 0,
        kind: RequestKind::CreateRepository { spec, grant_production: true },
        justification: "test".into(),
        requester: "local:alice".into(),
        status,
        created_at: 5,
        updated_at: 5,
        decided_by: None,
        decision_comment: None,
        failure: None,
        attempts: 0,
    };
    let mut tx = db.write().await.expect("turn");
    let id = db::insert_request(&mut tx, &request).await.expect("request");
    tx.commit().await.expect("commit");
    id
}

/// A job that approves request `id` as `approver` with `write_decision`
/// (which, in a batch, also ends the job's savepoint), then fails if asked
/// to. It links its event to the chain's head as the job before it left it,
/// when known, and answers 1 if it was, else 0.
fn approve_job(db: &Db, id: i64, approver: &'static str, fail: bool) -> Write {
    let db = db.clone();
    async move {
        db.run(move |tx| {
            Box::pin(async move {
                let known = tx.known_head().cloned();
                let (row, approvals, read) = db::decision_state(tx, id).await?.expect("exists");
                if let Some(known) = &known {
                    assert_eq!(known, &read, "the head as the job before left it");
                }
                let head = known.clone().unwrap_or(read);
                let mut next = row.request.clone();
                next.status = app::domain::request::Status::Approved;
                next.decided_by = Some(approver.into());
                let approval = app::domain::approval::Approval { approver: approver.into(), at: 9, comment: None };
                let event = NewEvent { request_id: Some(id), ..event(approver) };
                let write = decision_write(&row, &next, approvals.len(), head.id, Some(&approval), &head, &event);
                let left = db::write_decision(tx, &write).await?.expect("written");
                tx.left_head(left.head);
                if fail {
                    return Err(sqlx::Error::Protocol(format!("{approver} gives up")));
                }
                Ok(i64::from(known.is_some()))
            })
        })
        .await
    }
    .boxed()
}

#[tokio::test]
async fn decisions_that_end_their_own_savepoint_batch_with_other_writes() {
    use app::domain::request::Status;
    let (_dir, db) = fresh().await;
    let one = insert_request(&db, "crytera/one", Status::Pending).await;
    let two = insert_request(&db, "crytera/two", Status::Pending).await;
    let before = db.version();
    let writes = vec![
        write_event(&db, "a".into(), false).boxed(),
        approve_job(&db, one, "local:bob", false),
        write_event(&db, "b".into(), true).boxed(),
        approve_job(&db, two, "local:carol", false),
        write_event(&db, "c".into(), false).boxed(),
    ];
    let results = queued(&db, writes).await;
    assert!(results.iter().enumerate().all(|(i, r)| r.is_ok() == (i != 2)), "{results:?}");
    assert_eq!(db.version() - before, 1, "one commit");
    assert_eq!(actors(&db).await, ["a", "local:bob", "local:carol", "c"]);
    assert!(server::audit::verify(&db.pool).await.expect("verify").intact());
    let status = |id: i64| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM requests WHERE id = ?").bind(id).fetch_one(&pool).await
        }
    };
    assert_eq!(status(one).await.expect("one"), "approved");
    assert_eq!(status(two).await.expect("two"), "approved");
}

#[tokio::test]
async fn a_decision_that_fails_after_ending_its_savepoint_fails_its_whole_batch() {
    use app::domain::request::Status;
    let (_dir, db) = fresh().await;
    let id = insert_request(&db, "crytera/one", Status::Pending).await;
    let writes = vec![
        write_event(&db, "a".into(), false).boxed(),
        approve_job(&db, id, "local:bob", true),
        write_event(&db, "c".into(), false).boxed(),
    ];
    // Its changes cannot be rolled back alone any more: none of the batch is written.
    for r in queued(&db, writes).await {
        let e = r.expect_err("the batch was rolled back").to_string();
        assert!(e.contains("not committed") || e.contains("gives up"), "{e}");
    }
    assert!(actors(&db).await.is_empty());
    let pending: String = sqlx::query_scalar("SELECT status FROM requests WHERE id = ?")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .expect("status");
    assert_eq!(pending, "pending");
    write_event(&db, "after".into(), false).await.expect("the writer goes on");
}

#[tokio::test]
async fn a_batch_passes_the_chain_head_on_from_a_decision_until_a_kept_job_does_not_say() {
    use app::domain::request::Status;
    let (_dir, db) = fresh().await;
    let ids = [
        insert_request(&db, "crytera/h1", Status::Pending).await,
        insert_request(&db, "crytera/h2", Status::Pending).await,
        insert_request(&db, "crytera/h3", Status::Pending).await,
        insert_request(&db, "crytera/h4", Status::Pending).await,
    ];
    let writes = vec![
        approve_job(&db, ids[0], "local:bob", false),
        approve_job(&db, ids[1], "local:bob", false),
        // A job that does not say what it left (its event moves the head).
        write_event(&db, "a".into(), false).boxed(),
        approve_job(&db, ids[2], "local:bob", false),
        // A job rolled back: its event is gone with it, and the head is as it found it.
        write_event(&db, "b".into(), true).boxed(),
        approve_job(&db, ids[3], "local:bob", false),
    ];
    let results: Vec<Option<i64>> = queued(&db, writes).await.into_iter().map(Result::ok).collect();
    // Decisions answer 1 when the head was known (equal to the one read,
    // asserted in the job), 0 when it was not; the event job answers its event's id.
    assert_eq!(results, [Some(0), Some(1), Some(3), Some(0), None, Some(1)], "event a is #3");
    assert_eq!(actors(&db).await, ["local:bob", "local:bob", "a", "local:bob", "local:bob"]);
    assert!(server::audit::verify(&db.pool).await.expect("verify").intact());
    // A new batch starts without it (a `Db::write` may have appended in between).
    let mut tx = db.write().await.expect("turn");
    db::insert_event(&mut tx, &event("between")).await.expect("event");
    tx.commit().await.expect("commit");
    let id = insert_request(&db, "crytera/h5", Status::Pending).await;
    assert_eq!(approve_job(&db, id, "local:bob", false).await.expect("approved"), 0);
    assert!(server::audit::verify(&db.pool).await.expect("verify").intact());
}

/// A decision job whose first read is out of date (it says one approval more
/// than there is, as when another approver got in first): nothing is written
/// and its savepoint is as it began, so it may read again and write (or fail
/// alone, as a refused decision does).
fn stale_then(db: &Db, id: i64, approver: &'static str, then_fail: bool) -> Write {
    let db = db.clone();
    async move {
        db.run(move |tx| {
            Box::pin(async move {
                let approval = app::domain::approval::Approval { approver: approver.into(), at: 9, comment: None };
                let event = NewEvent { request_id: Some(id), ..event(approver) };
                for stale in [true, false] {
                    let (row, approvals, head) = db::decision_state(tx, id).await?.expect("exists");
                    let mut next = row.request.clone();
                    next.status = app::domain::request::Status::Approved;
                    let mut write =
                        decision_write(&row, &next, approvals.len(), head.id, Some(&approval), &head, &event);
                    write.read_approvals += usize::from(stale);
                    let written = db::write_decision(tx, &write).await?;
                    assert_eq!(written.is_none(), stale);
                    if stale && then_fail {
                        return Err(sqlx::Error::Protocol(format!("{approver} is refused")));
                    }
                }
                Ok(id)
            })
        })
        .await
    }
    .boxed()
}

#[tokio::test]
async fn a_decision_read_out_of_date_writes_nothing_and_its_job_reads_again_or_fails_alone() {
    use app::domain::request::Status;
    let (_dir, db) = fresh().await;
    let one = insert_request(&db, "crytera/s1", Status::Pending).await;
    let two = insert_request(&db, "crytera/s2", Status::Pending).await;
    let before = db.version();
    let writes = vec![
        write_event(&db, "a".into(), false).boxed(),
        stale_then(&db, one, "local:bob", true),
        stale_then(&db, two, "local:carol", false),
        write_event(&db, "c".into(), false).boxed(),
    ];
    let results = queued(&db, writes).await;
    assert!(results[1].as_ref().is_err_and(|e| e.to_string().contains("refused")), "{results:?}");
    assert!([0, 2, 3].iter().all(|&i| results[i].is_ok()), "{results:?}");
    assert_eq!(db.version() - before, 1, "one commit");
    assert_eq!(actors(&db).await, ["a", "local:carol", "c"]);
    assert!(server::audit::verify(&db.pool).await.expect("verify").intact());
    let status = |id: i64| {
        sqlx::query_scalar::<_, String>("SELECT status FROM requests WHERE id = ?").bind(id).fetch_one(&db.pool)
    };
    assert_eq!(status(one).await.expect("one"), "pending");
    assert_eq!(status(two).await.expect("two"), "approved");
    let approvals: i64 = sqlx::query_scalar("SELECT count(*) FROM approvals").fetch_one(&db.pool).await.expect("n");
    assert_eq!(approvals, 1, "only carol's");
}
