//! The SQLite adapter: connection settings, migrations, and the queries,
//! one module per aggregate (requests and their approvals, repositories,
//! audit events, users and sessions, API tokens, backups).
//!
//! Settings (tested in `tests/api/security.rs` and `crash.rs`): WAL journal so
//! readers never block the writer; `synchronous = FULL` because an
//! acknowledged approval or audit event must survive a power cut, and the
//! write rate here is small; a 5 s busy timeout; foreign keys on.
//!
//! Two pools: readers share up to eight connections; every write goes through
//! the one connection of the write pool, in a `BEGIN IMMEDIATE` transaction
//! ([`Db::write`]). Writers therefore queue in the pool (fairly, in order)
//! instead of failing half-way with SQLITE_BUSY on a lock upgrade, and a use
//! case's state change and its audit event commit together or not at all.
//! One process owns the file at a time (see [`crate::lock`]), so nothing
//! else writes to it.
//!
//! A query takes `&mut SqliteConnection` (a read connection or the write
//! transaction, which derefs to one) or `&SqlitePool` for plain reads.
mod audit;
mod backup;
mod outbox;
mod repositories;
mod requests;
mod sessions;
mod tokens;

pub use audit::*;
pub use backup::backup;
pub use outbox::*;
pub use repositories::*;
pub use requests::*;
pub use sessions::*;
pub use tokens::*;

use crate::audit::ChainKey;
use crate::secret::PortalKey;
use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A write transaction (`BEGIN IMMEDIATE` on the write connection), with the
/// audit chain's key so [`insert_event`] can sign the events it appends.
/// Dropping it without [`WriteTx::commit`] rolls it back.
pub struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    chain: ChainKey,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    pub(crate) fn chain_key(&self) -> &ChainKey {
        &self.chain
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

#[derive(Clone)]
pub struct Db {
    /// Connections for reads.
    pub pool: SqlitePool,
    /// The one connection writes go through ([`Db::write`]).
    write_pool: SqlitePool,
    /// Signs the audit events written through [`Db::write`].
    pub chain: ChainKey,
}

fn options(path: &Path) -> anyhow::Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .with_context(|| format!("database path {}", path.display()))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true))
}

/// Runs the migrations on one connection with foreign keys off, as SQLite
/// wants for a table rebuild (sqlx runs each migration in a transaction,
/// where the setting cannot change, and does not honour `-- no-transaction`
/// for SQLite), then checks every key and turns them back on. A migration
/// that leaves a dangling key fails the start, naming the table.
async fn migrate(pool: &SqlitePool) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await.context("opening a connection for the migrations")?;
    sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
    let ran = MIGRATOR.run(&mut *conn).await.context("running database migrations");
    let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut *conn)
        .await
        .context("checking foreign keys after the migrations")?;
    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
    ran?;
    if let Some((table,)) = broken.first() {
        anyhow::bail!("after the migrations, table {table} has rows whose foreign keys point nowhere");
    }
    Ok(())
}

impl Db {
    /// Opens (creating it if needed) and migrates the database; its audit
    /// events are signed with `key` (see [`crate::audit`]).
    pub async fn connect(path: &Path, key: &PortalKey) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating database directory {}", dir.display()))?;
        }
        let options = options(path)?.create_if_missing(true);
        // No ping before each use: a SQLite connection is a local file that
        // cannot go stale.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening SQLite database {}", path.display()))?;
        migrate(&pool).await?;
        let write_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("opening SQLite database {}", path.display()))?;
        Ok(Self { pool, write_pool, chain: ChainKey::new(key) })
    }

    /// Opens an existing database for reading only: no migrations, no writes
    /// (`audit verify`, `audit export`, which may run beside a live portal).
    pub async fn open_read_only(path: &Path) -> anyhow::Result<SqlitePool> {
        if !path.exists() {
            anyhow::bail!("there is no database at {} (config key `database.path`)", path.display());
        }
        SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options(path)?.read_only(true))
            .await
            .with_context(|| format!("opening SQLite database {} read-only", path.display()))
    }

    /// Starts a write transaction that takes SQLite's write lock at once,
    /// waiting for the write connection while another write holds it.
    pub async fn write(&self) -> Result<WriteTx, sqlx::Error> {
        Ok(WriteTx { tx: self.write_pool.begin_with("BEGIN IMMEDIATE").await?, chain: self.chain.clone() })
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

/// What the metrics report about the portal's state, read when Prometheus scrapes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Requests waiting for a decision.
    pub waiting: i64,
    /// When the oldest of them was filed (unix ms).
    pub oldest_waiting_at: Option<i64>,
    /// Repositories whose last drift check found differences.
    pub drifted: i64,
    /// Notifications not yet delivered.
    pub outbox: i64,
    /// Events in the audit trail.
    pub audit_events: i64,
}

pub async fn gauges(pool: &SqlitePool) -> Result<Gauges, sqlx::Error> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM requests WHERE status = 'pending') AS waiting, \
                (SELECT MIN(created_at) FROM requests WHERE status = 'pending') AS oldest, \
                (SELECT COUNT(*) FROM repositories WHERE drift <> '[]') AS drifted, \
                (SELECT COUNT(*) FROM outbox WHERE status = 'pending') AS outbox, \
                (SELECT COALESCE(MAX(id), 0) FROM audit_events) AS audit_events",
    )
    .fetch_one(pool)
    .await?;
    Ok(Gauges {
        waiting: row.try_get("waiting")?,
        oldest_waiting_at: row.try_get("oldest")?,
        drifted: row.try_get("drifted")?,
        outbox: row.try_get("outbox")?,
        audit_events: row.try_get("audit_events")?,
    })
}
