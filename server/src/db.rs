//! The SQLite adapter: connection settings, migrations and every query.
//!
//! Settings (stated here, tested in `tests/db.rs`): WAL journal so readers
//! never block the writer; `synchronous = FULL` because an acknowledged approval
//! or audit event must survive a power cut, and the write rate here is small;
//! a 5 s busy timeout; foreign keys on. Writes run in `BEGIN IMMEDIATE`
//! transactions (see [`Db::write`]) so two writers queue instead of failing
//! half-way with SQLITE_BUSY on lock upgrade, and this process lets one
//! writer at a time reach SQLite (a fair queue that wakes the next writer
//! at commit, instead of SQLite's busy handler, which polls with sleeps of
//! up to 100 ms: the benchmark's 50 concurrent approvers waited on it).
//!
//! Frequent writes (decisions, submissions, security events) go through
//! [`Db::run`] instead: a job handed to the writer thread, which runs the
//! jobs queued behind each other in one transaction, each in a savepoint of
//! its own (a failing job rolls back only its own changes), and answers them
//! all after one `COMMIT`, so one fsync covers the batch (group commit). A job
//! is answered only once its batch is durable; if the `COMMIT` fails, every
//! job of the batch gets the error and nothing of it was written. The thread
//! has a runtime of its own, so a job's statements are not queued behind the
//! web server's tasks while it holds the writer turn.
use anyhow::Context;
use app::domain::approval::Approval;
use app::domain::principal::{Principal, Role, TokenScope};
use app::domain::request::{Request, RequestKind, Status};
use app::domain::settings::RepositorySpec;
use app::views::{ApplyResult, AuditQuery};
use futures::FutureExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Clone)]
pub struct Db {
    pub pool: SqlitePool,
    /// One connection kept for write transactions, so a writer never waits
    /// for a connection behind the readers while it holds the writer turn.
    write_pool: SqlitePool,
    /// One writer at a time in this process (see the module notes).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Counts the changes this process made (each committed write, and the
    /// in-memory inventory's updates): what the short-lived caches compare.
    version: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Counts only the changes to sessions and users (sign-ins, touches,
    /// sign-outs): a cached session lookup survives the other writes.
    sessions_version: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Jobs for the writer thread ([`Db::run`]); the thread ends when the last
    /// `Db` clone is dropped.
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

/// The most jobs one transaction takes, and how long it keeps taking jobs
/// that arrive after it started (the first job of a batch waits for the
/// others before it is answered).
const BATCH_JOBS: usize = 64;
const BATCH_TIME: Duration = Duration::from_millis(5);

/// What a job left: whether its savepoint is kept, and how to answer its
/// caller once the batch's outcome is known (`Err`: the batch was not committed).
struct Outcome {
    keep: bool,
    answer: Answer,
}

type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A job for the writer thread: run on the batch's transaction (`Ok`), or
/// told why it cannot run (`Err`: its batch could not begin, or failed before
/// reaching it), so that its caller hears the cause.
type Job = Box<dyn for<'c> FnOnce(Result<&'c mut WriteTx, String>) -> futures::future::BoxFuture<'c, Outcome> + Send>;

/// The connection a write runs on: its own transaction ([`Db::write`]) or
/// the writer thread's batch ([`Db::run`]).
enum Conn {
    Tx(Transaction<'static, Sqlite>),
    Batch(sqlx::pool::PoolConnection<Sqlite>),
}

/// A write transaction that holds this process's writer turn until it is
/// committed or dropped (dropping rolls back). Used like the transaction.
pub struct WriteTx {
    conn: Conn,
    version: std::sync::Arc<std::sync::atomic::AtomicU64>,
    sessions_version: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Set by the queries that write sessions or users (they take a `WriteTx` for that).
    touches_sessions: bool,
    /// Set when a job's last statement also ended its savepoint and opened
    /// the next one (see [`WriteTx::savepoint_end`]).
    ended: bool,
    /// In a batch: the audit chain's head when this job began, if the job
    /// before it said what it left (see [`WriteTx::known_head`]).
    head_in: Option<ChainHead>,
    /// What this job left as the chain's head, if it says ([`WriteTx::left_head`]).
    head_out: Option<ChainHead>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let WriteTx { conn, version, sessions_version, touches_sessions, _turn, .. } = self;
        if let Conn::Tx(tx) = conn {
            tx.commit().await?;
        }
        // Still holding the turn: a reader that sees the new version also sees the data.
        committed(&version, &sessions_version, touches_sessions);
        Ok(())
    }

    /// Rolls back and only then passes the turn on. (Dropping also rolls back,
    /// but sqlx only queues the ROLLBACK, so the next writer may still find
    /// SQLite's lock taken and wait in its busy handler; use this on the
    /// frequent paths, such as the worker's idle poll.)
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.conn {
            Conn::Tx(tx) => tx.rollback().await,
            Conn::Batch(_) => Ok(()),
        }
    }

    /// Inside a batch ([`Db::run`]): the statements that end this job's
    /// savepoint and open the next job's, for a job to append to its last
    /// statement, saving the batch a round trip to SQLite's thread per job.
    /// Call [`WriteTx::savepoint_ended`] once that statement has run. Nothing
    /// may be written after it (it would belong to the next job's savepoint,
    /// and be rolled back with that job). The job must then succeed: if it
    /// fails after that, its changes can no longer be rolled back alone, so
    /// its whole batch is (every job of it gets the error).
    /// `None` outside a batch ([`Db::write`]), where there is no savepoint.
    pub fn savepoint_end(&self) -> Option<&'static str> {
        matches!(self.conn, Conn::Batch(_)).then_some("RELEASE job; SAVEPOINT job")
    }

    /// Records that the statements of [`WriteTx::savepoint_end`] have run.
    pub fn savepoint_ended(&mut self) {
        self.ended = matches!(self.conn, Conn::Batch(_));
    }

    /// Inside a batch: the audit chain's head as the job before this one
    /// left it, when that job said so ([`WriteTx::left_head`]) and was kept,
    /// or was rolled back and knew it; saves a decision its read of the head.
    /// `None` otherwise (the first job of a batch, after any other job that
    /// was kept, and outside a batch): read it.
    pub fn known_head(&self) -> Option<&ChainHead> {
        self.head_in.as_ref()
    }

    /// Says what this job left as the chain's head (the event it appended
    /// last), for the next job of the batch. Only a job that knows it, having
    /// appended after a head it read or was given, may say so.
    pub fn left_head(&mut self, head: ChainHead) {
        if matches!(self.conn, Conn::Batch(_)) {
            self.head_out = Some(head);
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        match &self.conn {
            Conn::Tx(tx) => tx,
            Conn::Batch(c) => c,
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.conn {
            Conn::Tx(tx) => tx,
            Conn::Batch(c) => c,
        }
    }
}

/// An audit event about to be written.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub action: app::domain::audit::AuditAction,
    pub request_id: Option<i64>,
    pub repository: Option<&'a str>,
    pub detail: String,
    pub aws_request_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub request_id: Option<i64>,
    pub repository: Option<String>,
    pub detail: String,
    pub aws_request_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub principal: Principal,
    pub last_seen: i64,
    pub expires_at: i64,
}

/// A request row with the columns the domain type does not carry.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub request: Request,
    pub result: Option<ApplyResult>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// The live repository policy when approved: `None` not captured, `Some(None)` no policy.
    pub approved_policy: Option<Option<serde_json::Value>>,
    /// Consecutive temporary failures (reset by a decision).
    pub retries: u32,
}

/// What the portal approved for one repository.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub name: String,
    pub spec: Option<RepositorySpec>,
    pub production_access: bool,
    pub production_until: Option<i64>,
    pub request_id: Option<i64>,
    pub adopted_at: Option<i64>,
    pub drift: Vec<String>,
    pub checked_at: Option<i64>,
}

impl Db {
    pub async fn connect(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating database directory {}", dir.display()))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .with_context(|| format!("database path {}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // No ping before each use: a SQLite connection is a local file that
        // cannot go stale, and the ping is a round trip to sqlx's connection
        // thread on every query.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening SQLite database {}", path.display()))?;
        MIGRATOR.run(&pool).await.context("running database migrations")?;
        let write_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("opening SQLite database {}", path.display()))?;
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel();
        let (ready, started) = tokio::sync::oneshot::channel();
        let db = Self {
            pool,
            write_pool,
            writer: Default::default(),
            version: Default::default(),
            sessions_version: Default::default(),
            jobs,
        };
        let writer = Writer {
            pool: db.write_pool.clone(),
            turn: db.writer.clone(),
            version: db.version.clone(),
            sessions_version: db.sessions_version.clone(),
        };
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || {
                // The thread's runtime is reported back, so that a failure
                // stops the start instead of failing every later write.
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                // A panic outside a job (a job's own panic is caught) loses
                // only the batch it was in: its callers are told, and the
                // writer goes on with the next one.
                while std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    runtime.block_on(writer.serve(&mut queue))
                }))
                .is_err()
                {
                    tracing::error!("the database writer panicked outside a job; it starts again");
                }
            })
            .context("starting the database writer thread")?;
        started
            .await
            .context("the database writer thread ended as it started")?
            .context("starting the database writer's runtime")?;
        Ok(db)
    }

    /// Runs `f` as one write on the writer thread, batched with the writes
    /// queued behind it (group commit, see the module notes). `Ok` means its
    /// changes are committed; when `f` returns `Err`, its changes are rolled
    /// back and the error is returned. If the caller stops waiting, the job
    /// still runs to the end: a write is never left half done.
    ///
    /// `f` runs on the writer thread while it holds the writer turn, inside
    /// the batch's transaction: it must only use the `WriteTx` it is given.
    /// Calling [`Db::run`] or [`Db::write`] from it would wait for that turn
    /// forever, and beginning or ending a transaction or a savepoint
    /// (`begin()`, `COMMIT`, `RELEASE`) would break its batch.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
        F: for<'c> FnOnce(&'c mut WriteTx) -> futures::future::BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        let (send, answer) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |tx| {
            Box::pin(async move {
                let tx = match tx {
                    Ok(tx) => tx,
                    Err(why) => {
                        return Outcome {
                            keep: false,
                            answer: Box::new(move |_| {
                                let _ = send.send(Err(E::from(batch_failed(why))));
                            }),
                        }
                    }
                };
                match f(tx).await {
                    Ok(value) => Outcome {
                        keep: true,
                        answer: Box::new(move |committed| {
                            let _ = send.send(committed.map(|()| value).map_err(|e| E::from(batch_failed(e))));
                        }),
                    },
                    Err(e) => Outcome {
                        keep: false,
                        answer: Box::new(move |_| {
                            let _ = send.send(Err(e));
                        }),
                    },
                }
            })
        });
        if self.jobs.send(job).is_err() {
            return Err(E::from(batch_failed("the database writer has stopped".into())));
        }
        answer.await.unwrap_or_else(|_| {
            // Only a bug gets here: the write panicked, or the writer did.
            Err(E::from(batch_failed("the database writer failed on this write (see the server log)".into())))
        })
    }

    /// Waits for this process's writer turn, then starts a write transaction
    /// that takes SQLite's write lock at once.
    pub async fn write(&self) -> Result<WriteTx, sqlx::Error> {
        let turn = self.writer.clone().lock_owned().await;
        let tx = self.write_pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            conn: Conn::Tx(tx),
            version: self.version.clone(),
            sessions_version: self.sessions_version.clone(),
            touches_sessions: false,
            ended: false,
            head_in: None,
            head_out: None,
            _turn: Some(turn),
        })
    }

    /// The number of changes this process has made so far. A value read
    /// before reading data and unchanged afterwards means nothing this
    /// process wrote can be missing from what was read.
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Like [`Db::version`], for sessions and users only.
    pub fn sessions_version(&self) -> u64 {
        self.sessions_version.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records a change made outside SQLite (the cached inventory) that pages show.
    pub fn changed(&self) {
        self.version.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs one small write (a session or token touch) on the writer thread.
    /// Best effort: a failure is logged, not returned.
    pub async fn write_quietly<F>(&self, what: &str, f: F)
    where
        F: for<'c> FnOnce(&'c mut WriteTx) -> futures::future::BoxFuture<'c, Result<(), sqlx::Error>> + Send + 'static,
    {
        if let Err(e) = self.run(f).await {
            tracing::warn!("{what}: {e}");
        }
    }

    /// Closes both pools, waiting for their connections to finish.
    pub async fn close(&self) {
        self.write_pool.close().await;
        self.pool.close().await;
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }
}

fn committed(version: &AtomicU64, sessions_version: &AtomicU64, touches_sessions: bool) {
    if touches_sessions {
        sessions_version.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    version.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

fn batch_failed(why: String) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!("the write was not committed: {why}")))
}

/// The writer thread's side of [`Db::run`].
struct Writer {
    pool: SqlitePool,
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    version: std::sync::Arc<std::sync::atomic::AtomicU64>,
    sessions_version: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    async fn serve(&self, queue: &mut tokio::sync::mpsc::UnboundedReceiver<Job>) {
        // After a panic the connection may still be inside the lost batch's
        // transaction (an error here only means there was none). Under the
        // turn, so that no `Db::write` gets the connection first.
        {
            let _turn = self.turn.clone().lock_owned().await;
            if let Ok(mut conn) = self.pool.acquire().await {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            }
        }
        while let Some(first) = queue.recv().await {
            let turn = self.turn.clone().lock_owned().await;
            let (answers, result) = match self.pool.acquire().await {
                Ok(conn) => self.batch(conn, first, queue).await,
                Err(e) => {
                    let why = format!("the database writer could not get its connection: {e}");
                    tracing::error!("{why}");
                    (vec![refuse(first, &why).await], Err(why))
                }
            };
            drop(turn);
            for answer in answers {
                answer(result.clone());
            }
        }
    }

    /// Runs `first` and the jobs queued behind it (those already waiting, and
    /// those arriving within [`BATCH_TIME`], up to [`BATCH_JOBS`]) in one
    /// transaction, one savepoint each, and commits it. Returns how to answer each job, and the batch's outcome.
    async fn batch(
        &self,
        conn: sqlx::pool::PoolConnection<Sqlite>,
        first: Job,
        queue: &mut tokio::sync::mpsc::UnboundedReceiver<Job>,
    ) -> (Vec<Answer>, Result<(), String>) {
        let mut tx = WriteTx {
            conn: Conn::Batch(conn),
            version: self.version.clone(),
            sessions_version: self.sessions_version.clone(),
            touches_sessions: false,
            ended: false,
            head_in: None,
            head_out: None,
            _turn: None,
        };
        let mut answers = Vec::new();
        // Statements are paired to save round trips to SQLite's thread: the
        // first savepoint with BEGIN, each job's end with the next one's
        // savepoint, and the last job's end with COMMIT.
        if let Err(e) = sqlx::raw_sql("BEGIN IMMEDIATE; SAVEPOINT job").execute(&mut *tx).await {
            tracing::error!("the database writer could not begin a transaction: {e}");
            let why = e.to_string();
            answers.push(refuse(first, &why).await);
            let _ = sqlx::query("ROLLBACK").execute(&mut *tx).await;
            return (answers, Err(why));
        }
        let started = std::time::Instant::now();
        let mut in_jobs = Duration::ZERO;
        // The jobs already queued when the batch starts all join it (up to
        // BATCH_JOBS); later ones join while it is younger than BATCH_TIME.
        let waiting = queue.len();
        let mut job = first;
        let result = loop {
            let job_started = std::time::Instant::now();
            let outcome = match std::panic::AssertUnwindSafe(job(Ok(&mut tx))).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::error!("a database write panicked; its changes are rolled back");
                    Outcome { keep: false, answer: Box::new(drop) }
                }
            };
            answers.push(outcome.answer);
            in_jobs += job_started.elapsed();
            let ended = std::mem::take(&mut tx.ended);
            // The next job knows the chain's head if this one said what it
            // left and is kept, or if it was rolled back (its events are gone
            // with it: the head is as it found it).
            let left = tx.head_out.take();
            tx.head_in = if outcome.keep { left } else { tx.head_in.take() };
            let open = answers.len() <= waiting || started.elapsed() < BATCH_TIME;
            let next = if answers.len() < BATCH_JOBS && open { queue.try_recv().ok() } else { None };
            let end = match (outcome.keep, ended, next.is_some()) {
                // The job ended its savepoint and opened the next one itself.
                (true, true, true) => Ok(None),
                (true, _, true) => Ok(Some("RELEASE job; SAVEPOINT job")),
                (true, _, false) => Ok(Some("RELEASE job; COMMIT")),
                (false, true, _) => Err("a write failed after ending its savepoint".to_string()),
                (false, false, true) => Ok(Some("ROLLBACK TO job; RELEASE job; SAVEPOINT job")),
                (false, false, false) => Ok(Some("ROLLBACK TO job; RELEASE job; COMMIT")),
            };
            let ended = match end {
                Ok(None) => Ok(()),
                Ok(Some(end)) => sqlx::raw_sql(end).execute(&mut *tx).await.map(drop).map_err(|e| e.to_string()),
                Err(why) => Err(why),
            };
            if let Err(why) = ended {
                // The batch fails; `next` is not run, and its caller hears why.
                if let Some(next) = next {
                    answers.push(refuse(next, &why).await);
                }
                break Err(why);
            }
            match next {
                Some(j) => job = j,
                None => break Ok(()),
            }
        };
        tracing::debug!(
            jobs = answers.len(),
            waiting,
            in_jobs_us = in_jobs.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "write batch"
        );
        match &result {
            Ok(()) => committed(&tx.version, &tx.sessions_version, tx.touches_sessions),
            Err(e) => {
                tracing::error!("a batch of {} database writes was not committed: {e}", answers.len());
                if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *tx).await {
                    tracing::warn!("rolling back the batch: {e}");
                }
            }
        }
        (answers, result)
    }
}

/// Tells a job's caller that it was not run, and why.
async fn refuse(job: Job, why: &str) -> Answer {
    job(Err(why.to_string())).await.answer
}

fn request_from_row(row: &SqliteRow) -> Result<RequestRow, sqlx::Error> {
    let payload: String = row.try_get("payload")?;
    let kind: RequestKind = serde_json::from_str(&payload).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let approved: Option<String> = row.try_get("approved_policy")?;
    let approved_policy = approved
        .map(|t| serde_json::from_str::<Option<serde_json::Value>>(&t))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let status: String = row.try_get("status")?;
    let status =
        Status::parse(&status).ok_or_else(|| sqlx::Error::Decode(format!("unknown status {status}").into()))?;
    let result: Option<String> = row.try_get("result")?;
    let result = result
        .map(|r| serde_json::from_str::<ApplyResult>(&r))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(RequestRow {
        request: Request {
            id: row.try_get("id")?,
            kind,
            justification: row.try_get("justification")?,
            requester: row.try_get("requester")?,
            status,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            decided_by: row.try_get("decided_by")?,
            decision_comment: row.try_get("decision_comment")?,
            failure: row.try_get("failure")?,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        },
        result,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        approved_policy,
        retries: u32::try_from(row.try_get::<i64, _>("retries")?).unwrap_or(0),
    })
}

pub(crate) fn event_from_row(row: &SqliteRow) -> Result<EventRow, sqlx::Error> {
    let ids: String = row.try_get("aws_request_ids")?;
    Ok(EventRow {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        request_id: row.try_get("request_id")?,
        repository: row.try_get("repository")?,
        detail: row.try_get("detail")?,
        aws_request_ids: serde_json::from_str(&ids).unwrap_or_default(),
    })
}

// ---- requests ----

pub async fn insert_request(conn: &mut SqliteConnection, r: &Request) -> Result<i64, sqlx::Error> {
    let payload = serde_json::to_string(&r.kind).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let row = sqlx::query(
        "INSERT INTO requests (kind, repository, payload, justification, requester, status, created_at, updated_at,
                               decided_by, decided_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ? IS NULL THEN NULL ELSE ? END) RETURNING id",
    )
    .bind(r.kind.as_str())
    .bind(r.kind.repository().as_str())
    .bind(payload)
    .bind(&r.justification)
    .bind(&r.requester)
    .bind(r.status.as_str())
    .bind(r.created_at)
    .bind(r.updated_at)
    .bind(r.decided_by.as_deref())
    .bind(r.decided_by.as_deref())
    .bind(r.created_at)
    .fetch_one(conn)
    .await?;
    row.try_get("id")
}

pub async fn get_request(conn: &mut SqliteConnection, id: i64) -> Result<Option<RequestRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM requests WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| request_from_row(&r))
        .transpose()
}

pub async fn list_requests(
    pool: &SqlitePool,
    status: Option<Status>,
    requester: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Request>, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM requests WHERE 1 = 1");
    if let Some(b) = before {
        q.push(" AND id < ").push_bind(b);
    }
    if let Some(s) = status {
        q.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(r) = requester {
        q.push(" AND requester = ").push_bind(r.to_string());
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(|r| request_from_row(r).map(|x| x.request)).collect()
}

/// Writes a decision (approve/reject/retry) if the request is still in `from`.
/// Returns false when another writer moved it first.
/// `decided_at` is set for approvals and rejections, and kept for a retry.
pub async fn save_decision(
    conn: &mut SqliteConnection,
    r: &Request,
    from: Status,
    decided_at: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let row = bind_decision(sqlx::query(SAVE_DECISION), r, from, decided_at).fetch_optional(conn).await?;
    Ok(row.is_some())
}

/// A query with its arguments, as the shared statements below are bound.
type Query<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

macro_rules! save_decision {
    ($guard:literal) => {
        concat!(
            "UPDATE requests SET status = ?, updated_at = ?, decided_by = ?,
                decided_at = COALESCE(?, decided_at), decision_comment = ?, retries = 0, not_before = NULL
             WHERE id = ? AND status = ?",
            $guard,
            " RETURNING id"
        )
    };
}

/// A decision's update of its request; returns the id only if the request was still in `from`.
const SAVE_DECISION: &str = save_decision!("");

/// [`SAVE_DECISION`], also only if the request was last updated when it was
/// read, with as many approvals and no event after those read (see [`write_decision`]).
const SAVE_DECISION_IF_UNCHANGED: &str = save_decision!(
    " AND updated_at = ? AND (SELECT count(*) FROM approvals WHERE request_id = requests.id) = ?
      AND NOT EXISTS (SELECT 1 FROM audit_events WHERE request_id = requests.id AND id > ?)"
);

fn bind_decision<'q>(q: Query<'q>, r: &'q Request, from: Status, decided_at: Option<i64>) -> Query<'q> {
    q.bind(r.status.as_str())
        .bind(r.updated_at)
        .bind(r.decided_by.as_deref())
        .bind(decided_at)
        .bind(r.decision_comment.as_deref())
        .bind(r.id)
        .bind(from.as_str())
}

/// Open requests waiting for a decision on a repository (pending or sent back).
pub async fn awaiting_decision(conn: &mut SqliteConnection, repository: &str) -> Result<Vec<RequestRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM requests WHERE repository = ? AND status IN ('pending', 'needs_reapproval')")
        .bind(repository)
        .fetch_all(conn)
        .await?;
    rows.iter().map(request_from_row).collect()
}

/// The oldest request that is approved, or applying under an expired lease.
pub async fn next_claimable(conn: &mut SqliteConnection, now: i64) -> Result<Option<RequestRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM requests
         WHERE (status = 'approved' AND (not_before IS NULL OR not_before <= ?))
            OR (status = 'applying' AND lease_until < ?)
         ORDER BY id LIMIT 1",
    )
    .bind(now)
    .bind(now)
    .fetch_optional(conn)
    .await?
    .map(|r| request_from_row(&r))
    .transpose()
}

/// Expires every apply lease (used at start: their workers are gone).
pub async fn expire_leases(pool: &SqlitePool) -> Result<u64, sqlx::Error> {
    sqlx::query("UPDATE requests SET lease_until = 0 WHERE status = 'applying'")
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// Takes the apply lease; false if another worker got there first.
pub async fn claim(
    conn: &mut SqliteConnection,
    r: &Request,
    previous: Status,
    previous_attempts: u32,
    owner: &str,
    lease_until: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE requests SET status = ?, attempts = ?, failure = NULL, updated_at = ?, lease_owner = ?, lease_until = ?
         WHERE id = ? AND status = ? AND attempts = ?",
    )
    .bind(r.status.as_str())
    .bind(i64::from(r.attempts))
    .bind(r.updated_at)
    .bind(owner)
    .bind(lease_until)
    .bind(r.id)
    .bind(previous.as_str())
    .bind(i64::from(previous_attempts))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the outcome of an apply, only if this worker still holds the lease.
/// `retry_at` is set when a temporary failure defers the job (and counts it).
pub async fn finish_apply(
    conn: &mut SqliteConnection,
    r: &Request,
    owner: &str,
    result: Option<&ApplyResult>,
    retry_at: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let result = result.map(serde_json::to_string).transpose().map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let done = sqlx::query(
        "UPDATE requests SET status = ?, updated_at = ?, failure = ?, result = COALESCE(?, result),
             lease_owner = NULL, lease_until = NULL, not_before = ?,
             retries = CASE WHEN ? IS NULL THEN 0 ELSE retries + 1 END
         WHERE id = ? AND status = 'applying' AND lease_owner = ? AND attempts = ?",
    )
    .bind(r.status.as_str())
    .bind(r.updated_at)
    .bind(r.failure.as_deref())
    .bind(result)
    .bind(retry_at)
    .bind(retry_at)
    .bind(r.id)
    .bind(owner)
    .bind(i64::from(r.attempts))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ---- repository records ----

fn record_from_row(row: &SqliteRow) -> Result<RecordRow, sqlx::Error> {
    let spec: Option<String> = row.try_get("spec")?;
    let spec = spec
        .map(|s| serde_json::from_str::<RepositorySpec>(&s))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let drift: String = row.try_get("drift")?;
    Ok(RecordRow {
        name: row.try_get("name")?,
        spec,
        production_access: row.try_get::<i64, _>("production_access")? == 1,
        production_until: row.try_get("production_until")?,
        request_id: row.try_get("request_id")?,
        adopted_at: row.try_get("adopted_at")?,
        drift: serde_json::from_str(&drift).unwrap_or_default(),
        checked_at: row.try_get("checked_at")?,
    })
}

pub async fn get_record(conn: &mut SqliteConnection, name: &str) -> Result<Option<RecordRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM repositories WHERE name = ?")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .map(|r| record_from_row(&r))
        .transpose()
}

/// Every record's name and whether it has drifted, without decoding the
/// records (the inventory filters on these over thousands of repositories).
/// One row with two newline-separated lists (repository names cannot hold a
/// newline): sqlx hands SQLite rows over one by one, which costs more than
/// the query for thousands of rows.
pub async fn record_index(pool: &SqlitePool) -> Result<HashMap<String, bool>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT coalesce(group_concat(name, char(10)), '') AS names,
                coalesce(group_concat(CASE WHEN drift != '[]' THEN name END, char(10)), '') AS drifted
         FROM repositories",
    )
    .fetch_one(pool)
    .await?;
    let (names, drifted): (String, String) = (row.try_get("names")?, row.try_get("drifted")?);
    let mut index: HashMap<String, bool> = names.lines().map(|n| (n.to_string(), false)).collect();
    for n in drifted.lines() {
        index.insert(n.to_string(), true);
    }
    Ok(index)
}

/// The records of these repositories (one inventory page), by name.
pub async fn records_named(pool: &SqlitePool, names: &[&str]) -> Result<HashMap<String, RecordRow>, sqlx::Error> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM repositories WHERE name IN (");
    let mut list = q.separated(", ");
    for n in names {
        list.push_bind(*n);
    }
    q.push(")");
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(|r| record_from_row(r).map(|x| (x.name.clone(), x))).collect()
}

pub async fn list_records(pool: &SqlitePool) -> Result<Vec<RecordRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM repositories ORDER BY name").fetch_all(pool).await?;
    rows.iter().map(record_from_row).collect()
}

pub async fn upsert_record(conn: &mut SqliteConnection, r: &RecordRow) -> Result<(), sqlx::Error> {
    let spec = r.spec.as_ref().map(serde_json::to_string).transpose().map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let drift = serde_json::to_string(&r.drift).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO repositories (name, spec, production_access, production_until, request_id, adopted_at, drift, checked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, production_access = excluded.production_access,
             production_until = excluded.production_until, request_id = excluded.request_id,
             adopted_at = excluded.adopted_at, drift = excluded.drift, checked_at = excluded.checked_at",
    )
    .bind(&r.name)
    .bind(spec)
    .bind(i64::from(r.production_access))
    .bind(r.production_until)
    .bind(r.request_id)
    .bind(r.adopted_at)
    .bind(drift)
    .bind(r.checked_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records whose temporary production grant has ended, that no request is
/// applying right now, and for which no revoke was made since the end (a failed
/// system revoke is retried by an admin, not re-created in a loop).
pub async fn ended_grants(conn: &mut SqliteConnection, now: i64) -> Result<Vec<RecordRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM repositories r
         WHERE production_access = 1 AND production_until IS NOT NULL AND production_until <= ?
           AND NOT EXISTS (SELECT 1 FROM requests q WHERE q.repository = r.name
                           AND q.status IN ('approved', 'applying'))
           AND NOT EXISTS (SELECT 1 FROM requests q WHERE q.repository = r.name
                           AND q.kind = 'revoke_production' AND q.created_at >= r.production_until)",
    )
    .bind(now)
    .fetch_all(conn)
    .await?;
    rows.iter().map(record_from_row).collect()
}

// ---- audit ----

/// Appends an event to the chain. Call it inside a write transaction
/// ([`Db::write`]): the previous hash and the next id are read and used under
/// the same write lock.
/// The audit chain's last event: what the next event links to.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainHead {
    /// 0 when the trail is empty.
    pub id: i64,
    pub hash: String,
}

impl ChainHead {
    fn from_columns(id: Option<i64>, hash: Option<String>) -> Self {
        match (id, hash) {
            (Some(id), Some(hash)) => Self { id, hash },
            _ => Self { id: 0, hash: crate::audit::GENESIS.to_string() },
        }
    }
}

pub async fn chain_head(conn: &mut SqliteConnection) -> Result<ChainHead, sqlx::Error> {
    let last = sqlx::query("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1").fetch_optional(conn).await?;
    Ok(match last {
        Some(r) => ChainHead { id: r.try_get("id")?, hash: r.try_get("hash")? },
        None => ChainHead::from_columns(None, None),
    })
}

/// Appends an event to the audit chain (read its head, link to it).
pub async fn insert_event(conn: &mut SqliteConnection, e: &NewEvent<'_>) -> Result<i64, sqlx::Error> {
    let head = chain_head(&mut *conn).await?;
    insert_event_after(conn, &head, e).await
}

/// Appends an event after `head`, which the caller read in this transaction
/// with nothing appended since (a decision reads it with the request, to
/// save a round trip under the writer turn).
pub async fn insert_event_after(
    conn: &mut SqliteConnection,
    head: &ChainHead,
    e: &NewEvent<'_>,
) -> Result<i64, sqlx::Error> {
    let (q, appended) = bind_event(sqlx::query(INSERT_EVENT), head, e)?;
    q.execute(conn).await?;
    Ok(appended.head.id)
}

macro_rules! insert_event {
    ($values:literal) => {
        concat!(
            "INSERT INTO audit_events (id, at, actor, action, request_id, repository, detail, aws_request_ids, prev_hash, hash) ",
            $values
        )
    };
}

const INSERT_EVENT: &str = insert_event!("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");

/// Binds the row an event becomes after `head` (its id, linked by its hash);
/// returns the query and the chain's head once it is appended.
fn bind_event<'q>(q: Query<'q>, head: &'q ChainHead, e: &NewEvent<'_>) -> Result<(Query<'q>, Appended), sqlx::Error> {
    let ids = serde_json::to_string(&e.aws_request_ids).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    let row = EventRow {
        id: head.id + 1,
        at: e.at,
        actor: e.actor.to_string(),
        action: e.action.as_str().to_string(),
        request_id: e.request_id,
        repository: e.repository.map(str::to_string),
        detail: e.detail.clone(),
        aws_request_ids: e.aws_request_ids.clone(),
    };
    let hash = crate::audit::chain_hash(&head.hash, &row);
    let q = q
        .bind(row.id)
        .bind(row.at)
        .bind(row.actor.clone())
        .bind(row.action.clone())
        .bind(row.request_id)
        .bind(row.repository.clone())
        .bind(row.detail.clone())
        .bind(ids)
        .bind(&head.hash)
        .bind(hash.clone());
    Ok((q, Appended { head: ChainHead { id: row.id, hash }, event: row }))
}

/// An event appended to the audit chain: the chain's new head, and the event as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub head: ChainHead,
    pub event: EventRow,
}

/// Audit filters already converted to SQL values.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub request_id: Option<i64>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl EventFilter {
    fn push(&self, q: &mut QueryBuilder<'_, Sqlite>) {
        if let Some(v) = &self.actor {
            q.push(" AND actor = ").push_bind(v.clone());
        }
        if let Some(v) = &self.action {
            q.push(" AND action = ").push_bind(v.clone());
        }
        if let Some(v) = &self.repository {
            q.push(" AND repository = ").push_bind(v.clone());
        }
        if let Some(v) = self.request_id {
            q.push(" AND request_id = ").push_bind(v);
        }
        if let Some(v) = self.from_ms {
            q.push(" AND at >= ").push_bind(v);
        }
        if let Some(v) = self.to_ms {
            q.push(" AND at < ").push_bind(v);
        }
    }
}

/// One page of events, newest first, by keyset on id. `before`/`after` as in [`AuditQuery`].
pub async fn events_page(
    pool: &SqlitePool,
    f: &EventFilter,
    before: Option<i64>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM audit_events WHERE 1 = 1");
    f.push(&mut q);
    let ascending = before.is_none() && after.is_some();
    if let Some(b) = before {
        q.push(" AND id < ").push_bind(b);
    } else if let Some(a) = after {
        q.push(" AND id > ").push_bind(a);
    }
    q.push(if ascending { " ORDER BY id ASC" } else { " ORDER BY id DESC" });
    q.push(" LIMIT ").push_bind(limit);
    let rows = q.build().fetch_all(pool).await?;
    let mut events = rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?;
    if ascending {
        events.reverse();
    }
    Ok(events)
}

/// Whether any event matching `f` has an id below (`older`) or above the given one.
pub async fn events_exist_beyond(
    pool: &SqlitePool,
    f: &EventFilter,
    id: i64,
    older: bool,
) -> Result<bool, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT EXISTS (SELECT 1 FROM audit_events WHERE 1 = 1");
    f.push(&mut q);
    q.push(if older { " AND id < " } else { " AND id > " }).push_bind(id);
    q.push(") AS e");
    let row = q.build().fetch_one(pool).await?;
    Ok(row.try_get::<i64, _>("e")? == 1)
}

/// Matching events with their hashes, oldest first, after the given id (for export).
pub async fn events_ascending(
    pool: &SqlitePool,
    f: &EventFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<(EventRow, String)>, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM audit_events WHERE 1 = 1");
    f.push(&mut q);
    q.push(" AND id > ").push_bind(after);
    q.push(" ORDER BY id ASC LIMIT ").push_bind(limit);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(|r| Ok((event_from_row(r)?, r.try_get("hash")?))).collect()
}

pub async fn events_for_request(conn: &mut SqliteConnection, request_id: i64) -> Result<Vec<EventRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM audit_events WHERE request_id = ? ORDER BY id")
        .bind(request_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// Converts an API/UI audit query's dates; `None` dates mean unbounded.
pub fn filter_from_query(q: &AuditQuery, namespace: &str) -> Result<EventFilter, app::domain::form::FieldError> {
    use app::domain::form::FieldError;
    let day = |field: &str, v: &Option<String>, next: bool| -> Result<Option<i64>, FieldError> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => {
                let fmt = time::macros::format_description!("[year]-[month]-[day]");
                let d = time::Date::parse(s, &fmt)
                    .map_err(|_| FieldError::new(field, format!("`{s}` is not a date like 2026-11-27")))?;
                let d = if next { d.next_day().unwrap_or(d) } else { d };
                Ok(Some(d.midnight().assume_utc().unix_timestamp() * 1000))
            }
        }
    };
    let clean = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let repository =
        clean(&q.repository).map(
            |r| {
                if r.starts_with(&format!("{namespace}/")) {
                    r
                } else {
                    format!("{namespace}/{r}")
                }
            },
        );
    Ok(EventFilter {
        actor: clean(&q.actor),
        action: clean(&q.action),
        repository,
        request_id: q.request_id,
        from_ms: day("from", &q.from, false)?,
        to_ms: day("to", &q.to, true)?,
    })
}

// ---- users and sessions ----

/// Records (or refreshes) a user at sign-in: sessions and tokens read role and groups from here.
pub async fn upsert_user(tx: &mut WriteTx, p: &Principal, now: i64) -> Result<(), sqlx::Error> {
    tx.touches_sessions = true;
    sqlx::query(
        "INSERT INTO users (id, name, role, groups, last_sign_in) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, groups = excluded.groups,
                                        last_sign_in = excluded.last_sign_in",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(p.role.as_str())
    .bind(serde_json::to_string(&p.groups).unwrap_or_else(|_| "[]".into()))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// The user a session or token belongs to: columns `user_id`, `user_name`, `role`, `groups`.
fn principal_from_row(r: &SqliteRow) -> Result<Principal, sqlx::Error> {
    let role: String = r.try_get("role")?;
    let groups: String = r.try_get("groups")?;
    Ok(Principal::new(
        r.try_get::<String, _>("user_id")?,
        r.try_get::<String, _>("user_name")?,
        Role::parse(&role).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {role}").into()))?,
        serde_json::from_str(&groups).unwrap_or_default(),
    ))
}

pub async fn insert_session(
    tx: &mut WriteTx,
    id_hash: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    tx.touches_sessions = true;
    sqlx::query("INSERT INTO sessions (id_hash, user_id, created_at, last_seen, expires_at) VALUES (?, ?, ?, ?, ?)")
        .bind(id_hash)
        .bind(user_id)
        .bind(now)
        .bind(now)
        .bind(expires_at)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

pub async fn get_session(pool: &SqlitePool, id_hash: &str) -> Result<Option<SessionRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT s.user_id, u.name AS user_name, u.role, u.groups, s.last_seen, s.expires_at
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?",
    )
    .bind(id_hash)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(SessionRow {
            principal: principal_from_row(&r)?,
            last_seen: r.try_get("last_seen")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

pub async fn touch_session(tx: &mut WriteTx, id_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    tx.touches_sessions = true;
    sqlx::query("UPDATE sessions SET last_seen = ? WHERE id_hash = ?")
        .bind(now)
        .bind(id_hash)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

pub async fn delete_session(tx: &mut WriteTx, id_hash: &str) -> Result<(), sqlx::Error> {
    tx.touches_sessions = true;
    sqlx::query("DELETE FROM sessions WHERE id_hash = ?").bind(id_hash).execute(&mut **tx).await.map(|_| ())
}

// ---- API tokens ----

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

fn token_from_row(r: &SqliteRow) -> Result<TokenRow, sqlx::Error> {
    let scope: String = r.try_get("scope")?;
    Ok(TokenRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        scope: TokenScope::parse(&scope).ok_or_else(|| sqlx::Error::Decode(format!("unknown scope {scope}").into()))?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

pub async fn insert_token(
    conn: &mut SqliteConnection,
    secret_hash: &str,
    user_id: &str,
    name: &str,
    scope: TokenScope,
    now: i64,
    expires_at: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_tokens (secret_hash, user_id, name, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
         RETURNING id",
    )
    .bind(secret_hash)
    .bind(user_id)
    .bind(name)
    .bind(scope.as_str())
    .bind(now)
    .bind(expires_at)
    .fetch_one(conn)
    .await?
    .try_get("id")
}

/// The token with this secret hash and its owner, if it exists (valid or not).
pub async fn token_by_hash(pool: &SqlitePool, secret_hash: &str) -> Result<Option<(TokenRow, Principal)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT t.*, u.name AS user_name, u.role, u.groups FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.secret_hash = ?",
    )
    .bind(secret_hash)
    .fetch_optional(pool)
    .await?;
    row.map(|r| Ok((token_from_row(&r)?, principal_from_row(&r)?))).transpose()
}

pub async fn tokens_of(pool: &SqlitePool, user_id: &str) -> Result<Vec<TokenRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM api_tokens WHERE user_id = ? ORDER BY id DESC")
        .bind(user_id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(token_from_row).collect()
}

/// Revokes one of the user's tokens; false when there is no such live token of theirs.
pub async fn revoke_token(conn: &mut SqliteConnection, user_id: &str, id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn touch_token(conn: &mut SqliteConnection, id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

// ---- approvals ----

pub async fn approvals(conn: &mut SqliteConnection, request_id: i64) -> Result<Vec<Approval>, sqlx::Error> {
    let rows = sqlx::query("SELECT approver, at, comment FROM approvals WHERE request_id = ? ORDER BY at, approver")
        .bind(request_id)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Approval { approver: r.try_get("approver")?, at: r.try_get("at")?, comment: r.try_get("comment")? })
        })
        .collect()
}

/// A request's approvals as one JSON column of a query on `requests r`
/// (read back by [`approvals_from`]).
macro_rules! approvals_column {
    () => {
        "(SELECT json_group_array(json_object('approver', approver, 'at', at, 'comment', comment))
            FROM approvals WHERE request_id = r.id) AS approvals_json"
    };
}

/// The approvals of [`approvals_column`], ordered like [`approvals`].
fn approvals_from(row: &SqliteRow) -> Result<Vec<Approval>, sqlx::Error> {
    let json: String = row.try_get("approvals_json")?;
    let mut approvals: Vec<Approval> = serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    approvals.sort_by(|a, b| (a.at, &a.approver).cmp(&(b.at, &b.approver)));
    Ok(approvals)
}

/// What a decision reads, in one statement: the request, its approvals
/// (ordered like [`approvals`]) and the audit chain's head (which only a
/// read under the writer turn may append after).
pub async fn decision_state(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<Option<(RequestRow, Vec<Approval>, ChainHead)>, sqlx::Error> {
    let Some(row) = sqlx::query(concat!(
        "SELECT r.*, ",
        approvals_column!(),
        ",
           (SELECT id FROM audit_events ORDER BY id DESC LIMIT 1) AS head_id,
           (SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1) AS head_hash
         FROM requests r WHERE r.id = ?"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let request = request_from_row(&row)?;
    let approvals = approvals_from(&row)?;
    let head = ChainHead::from_columns(row.try_get("head_id")?, row.try_get("head_hash")?);
    Ok(Some((request, approvals, head)))
}

/// A request with everything its page shows from the database, read in one
/// statement: its approvals, its events (the timeline) and its repository's drift.
#[derive(Debug, Clone)]
pub struct RequestView {
    pub row: RequestRow,
    pub approvals: Vec<Approval>,
    /// Oldest first.
    pub timeline: Vec<EventRow>,
    /// The repository record's drift, as last checked (empty without a record).
    pub drift: Vec<String>,
}

impl RequestView {
    /// The id of the last event about the request that was read (0: none).
    pub fn last_event(&self) -> i64 {
        self.timeline.last().map_or(0, |e| e.id)
    }
}

/// Reads a request's [`RequestView`] in one statement (one round trip to
/// SQLite's thread instead of three).
pub async fn request_view(conn: &mut SqliteConnection, id: i64) -> Result<Option<RequestView>, sqlx::Error> {
    let Some(row) = sqlx::query(concat!(
        "SELECT r.*, ",
        approvals_column!(),
        ",
           (SELECT json_group_array(json_object('id', id, 'at', at, 'actor', actor, 'action', action,
                     'request_id', request_id, 'repository', repository, 'detail', detail,
                     'aws_request_ids', aws_request_ids))
              FROM audit_events WHERE request_id = r.id) AS events_json,
           (SELECT drift FROM repositories WHERE name = r.repository) AS record_drift
         FROM requests r WHERE r.id = ?"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    let approvals = approvals_from(&row)?;
    // Events as stored: their AWS request ids are JSON text, read as
    // `event_from_row` reads them (text that is not a list of ids is none).
    #[derive(serde::Deserialize)]
    struct StoredEvent {
        id: i64,
        at: i64,
        actor: String,
        action: String,
        request_id: Option<i64>,
        repository: Option<String>,
        detail: String,
        aws_request_ids: String,
    }
    let stored: Vec<StoredEvent> = serde_json::from_str(&row.try_get::<String, _>("events_json")?).map_err(decode)?;
    let mut timeline: Vec<EventRow> = stored
        .into_iter()
        .map(|e| EventRow {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            request_id: e.request_id,
            repository: e.repository,
            detail: e.detail,
            aws_request_ids: serde_json::from_str(&e.aws_request_ids).unwrap_or_default(),
        })
        .collect();
    timeline.sort_by_key(|e| e.id);
    let drift: Option<String> = row.try_get("record_drift")?;
    let drift = drift.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or_default();
    Ok(Some(RequestView { row: request_from_row(&row)?, approvals, timeline, drift }))
}

pub async fn insert_approval(conn: &mut SqliteConnection, request_id: i64, a: &Approval) -> Result<(), sqlx::Error> {
    bind_approval(sqlx::query(INSERT_APPROVAL), request_id, a).execute(conn).await.map(|_| ())
}

const INSERT_APPROVAL: &str = "INSERT INTO approvals (request_id, approver, at, comment) VALUES (?, ?, ?, ?)";

/// The statements that follow [`SAVE_DECISION_IF_UNCHANGED`] in [`write_decision`]
/// write only if it did (`changes()`: the rows the statement before changed).
const INSERT_APPROVAL_IF_SAVED: &str =
    "INSERT INTO approvals (request_id, approver, at, comment) SELECT ?, ?, ?, ? WHERE changes() = 1";
const SET_APPROVED_POLICY_IF_SAVED: &str = "UPDATE requests SET approved_policy = ? WHERE id = ? AND changes() = 1";
const INSERT_EVENT_IF_SAVED: &str = insert_event!("SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE changes() = 1");

fn bind_approval<'q>(q: Query<'q>, request_id: i64, a: &'q Approval) -> Query<'q> {
    q.bind(request_id).bind(&a.approver).bind(a.at).bind(&a.comment)
}

/// Everything one decision writes (see [`write_decision`]).
pub struct DecisionWrite<'a> {
    /// The request as the state machine left it.
    pub next: &'a Request,
    /// The status it was read in: the update applies only if it is still
    /// there, last updated at `read_updated_at`, with `read_approvals`
    /// approvals and no event about it after `read_last_event`.
    pub from: Status,
    pub read_updated_at: i64,
    pub read_approvals: usize,
    pub read_last_event: i64,
    /// Set for approvals and rejections that move the request, kept otherwise.
    pub decided_at: Option<i64>,
    /// The approval given, if this decision is one.
    pub approval: Option<&'a Approval>,
    /// The live policy the approval was based on (`Some(None)`: no policy).
    pub approved_policy: Option<Option<&'a serde_json::Value>>,
    /// The audit chain's head, read in this transaction (or known: [`WriteTx::known_head`]).
    pub head: &'a ChainHead,
    pub event: &'a NewEvent<'a>,
}

/// Writes a decision: the request's new state, the approval, the policy it
/// was based on and its audit event, as one multi-statement query (and, in a
/// batch, the end of the job's savepoint: [`WriteTx::savepoint_end`]), so the
/// writer thread makes one round trip to SQLite's thread for all of them.
///
/// The request is updated first, only if it is still as the decision read it
/// (its status, its last update, its number of approvals and its events), and the other
/// statements write only if it was (`changes() = 1`). So it writes all or
/// nothing: `Some` (its event, and the chain's new head) when the decision is written, `None`
/// when the request changed since it was read, having written nothing (in a
/// batch, the job's savepoint is then as it began). The read may come from
/// before the writer turn: the caller then reads again under it and retries.
/// It must be its job's only write, so that `None` leaves nothing behind.
/// The columns are those [`save_decision`] and [`insert_event_after`] write.
///
/// Several statements with bound parameters in one query is a feature of
/// sqlx's SQLite driver that sqlx calls deprecated (launchbadge/sqlx#3108);
/// `tests/api/writer.rs` exercises every path here, so an upgrade that drops
/// it fails there.
pub async fn write_decision(tx: &mut WriteTx, d: &DecisionWrite<'_>) -> Result<Option<Appended>, sqlx::Error> {
    let r = d.next;
    let policy = d
        .approved_policy
        .map(|p| serde_json::to_string(&p))
        .transpose()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    // The update goes first and is the only statement that returns a row.
    let end = tx.savepoint_end();
    let statements = [
        Some(SAVE_DECISION_IF_UNCHANGED),
        d.approval.map(|_| INSERT_APPROVAL_IF_SAVED),
        policy.as_ref().map(|_| SET_APPROVED_POLICY_IF_SAVED),
        Some(INSERT_EVENT_IF_SAVED),
        end,
    ];
    let sql = statements.into_iter().flatten().collect::<Vec<_>>().join(";\n");
    let approvals = i64::try_from(d.read_approvals).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let mut q = bind_decision(sqlx::query(&sql), r, d.from, d.decided_at)
        .bind(d.read_updated_at)
        .bind(approvals)
        .bind(d.read_last_event);
    if let Some(a) = d.approval {
        q = bind_approval(q, r.id, a);
    }
    if let Some(p) = policy {
        q = q.bind(p).bind(r.id);
    }
    let (q, after) = bind_event(q, d.head, d.event)?;
    let rows = q.fetch_all(&mut **tx).await?;
    if rows.len() != 1 {
        // Nothing was written; the savepoint ended and began again with
        // nothing of this job's in it, as if the job had just begun.
        return Ok(None);
    }
    if end.is_some() {
        tx.savepoint_ended();
    }
    Ok(Some(after))
}

/// Starts a new approval round (the request was sent back for re-approval).
pub async fn clear_approvals(conn: &mut SqliteConnection, request_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM approvals WHERE request_id = ?").bind(request_id).execute(conn).await.map(|_| ())
}

/// Pending requests created before `cutoff`, oldest first.
pub async fn pending_before(conn: &mut SqliteConnection, cutoff: i64) -> Result<Vec<RequestRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM requests WHERE status = 'pending' AND created_at < ? ORDER BY id LIMIT 500")
        .bind(cutoff)
        .fetch_all(conn)
        .await?;
    rows.iter().map(request_from_row).collect()
}

// ---- OpenID Connect sign-ins in progress ----

#[derive(Debug, Clone)]
pub struct OidcLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next: String,
    pub created_at: i64,
}

pub async fn insert_oidc_login(
    conn: &mut SqliteConnection,
    binding_hash: &str,
    l: &OidcLogin,
) -> Result<(), sqlx::Error> {
    // Abandoned sign-ins older than an hour are swept on the way.
    sqlx::query("DELETE FROM oidc_logins WHERE created_at < ?")
        .bind(l.created_at - 3_600_000)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO oidc_logins (binding_hash, state, nonce, pkce_verifier, next, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(binding_hash)
    .bind(&l.state)
    .bind(&l.nonce)
    .bind(&l.pkce_verifier)
    .bind(&l.next)
    .bind(l.created_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Takes (reads and deletes) the sign-in bound to this browser: each is used at most once.
pub async fn take_oidc_login(
    conn: &mut SqliteConnection,
    binding_hash: &str,
) -> Result<Option<OidcLogin>, sqlx::Error> {
    let row = sqlx::query("DELETE FROM oidc_logins WHERE binding_hash = ? RETURNING *")
        .bind(binding_hash)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(OidcLogin {
            state: r.try_get("state")?,
            nonce: r.try_get("nonce")?,
            pkce_verifier: r.try_get("pkce_verifier")?,
            next: r.try_get("next")?,
            created_at: r.try_get("created_at")?,
        })
    })
    .transpose()
}

// ---- backup ----

/// Writes a consistent copy of the live database to `path` (`VACUUM INTO`, which
/// reads one snapshot while writers go on), then opens the copy and verifies
/// its audit chain. Refuses to overwrite an existing file.
pub async fn backup(db: &Db, path: &Path) -> anyhow::Result<crate::audit::Verification> {
    if path.exists() {
        anyhow::bail!("{} already exists; choose a new file for the backup", path.display());
    }
    let target = path.to_str().context("the backup path must be valid UTF-8")?;
    sqlx::query("VACUUM INTO ?").bind(target).execute(&db.pool).await.context("writing the backup (VACUUM INTO)")?;
    let copy = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::from_str(&format!("sqlite://{target}"))?.read_only(true))
        .await
        .context("opening the backup")?;
    let v = crate::audit::verify(&copy).await.context("verifying the backup")?;
    copy.close().await;
    Ok(v)
}
