//! One portal process per database.
//!
//! Two portals on one SQLite file would each run a worker: the second would
//! take over the first one's live apply leases at start (an apply made twice)
//! and a late policy write of one could undo the other's approved revoke. So
//! the portal holds an exclusive lock on `<database>.lock` while it runs; a
//! second one started on the same database stops at once with a message that
//! names the file. The lock is the operating system's (`flock`), so it goes
//! away with the process however it ends, and a stale lock file is harmless.
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Held for as long as the process serves the database.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the database {database} is in use by another ecr-portal process (it holds {lock}); \
         stop that one first, or give this one another `database.path`"
    )]
    InUse { database: PathBuf, lock: PathBuf },
    #[error("could not lock {lock}: {source}")]
    Io { lock: PathBuf, source: std::io::Error },
}

/// `data/ecr-portal.db` → `data/ecr-portal.db.lock`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl DatabaseLock {
    /// Takes the database's lock, or says who has it. Creates the lock file
    /// (and its directory) when missing.
    pub fn acquire(database: &Path) -> Result<Self, LockError> {
        let lock = lock_path(database);
        let io = |source| LockError::Io { lock: lock.clone(), source };
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&lock).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file, path: lock }),
            Err(TryLockError::WouldBlock) => Err(LockError::InUse { database: database.to_path_buf(), lock }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("portal.db");
        let first = DatabaseLock::acquire(&db).expect("first");
        assert_eq!(first.path, dir.path().join("portal.db.lock"));
        let err = DatabaseLock::acquire(&db).expect_err("second");
        let message = err.to_string();
        assert!(message.contains(&db.display().to_string()) && message.contains("in use"), "{message}");
        drop(first);
        DatabaseLock::acquire(&db).expect("free again");
    }
}
