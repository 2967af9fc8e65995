//! Online backups.
use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use std::path::Path;
use std::str::FromStr;

/// Writes a consistent copy of the live database to `path` (`VACUUM INTO`, which
/// reads one snapshot while writers go on), then opens the copy and verifies
/// its audit chain. Refuses to overwrite an existing file.
pub async fn backup(
    pool: &SqlitePool,
    path: &Path,
    key: &crate::audit::ChainKey,
) -> anyhow::Result<crate::audit::Verification> {
    if path.exists() {
        anyhow::bail!("{} already exists; choose a new file for the backup", path.display());
    }
    let target = path.to_str().context("the backup path must be valid UTF-8")?;
    sqlx::query("VACUUM INTO ?").bind(target).execute(pool).await.context("writing the backup (VACUUM INTO)")?;
    let copy = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::from_str(&format!("sqlite://{target}"))?.read_only(true))
        .await
        .context("opening the backup")?;
    let v = crate::db::verify_chain(&copy, key).await.context("verifying the backup")?;
    copy.close().await;
    Ok(v)
}
