//! Benchmark (not a test): how long `audit verify` takes over a large trail.
//!
//!     cargo bench -p server --bench audit_verify -- 1000000
//!
//! Seeds N events (default 1,000,000) into a fresh SQLite file through the
//! portal's own insert path (hash chain included), then times a full
//! verification, three times, and prints events per second.
use app::domain::audit::AuditAction;
use server::db::{self, Db, NewEvent};
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let (key, _) = server::secret::PortalKey::load_or_create(&path.with_file_name("audit.key"))?;
    let db = Db::connect(&path, &key).await?;
    let actions = [
        AuditAction::RequestSubmitted,
        AuditAction::RequestApproved,
        AuditAction::ApplyStarted,
        AuditAction::ApplySucceeded,
    ];
    let seed = Instant::now();
    let mut written = 0u64;
    while written < n {
        let mut tx = db.write().await?;
        for _ in 0..10_000.min(n - written) {
            let i = written;
            let repo = format!("crytera/service-{}", i % 2_000);
            db::insert_event(
                &mut tx,
                &NewEvent {
                    at: 1_795_780_800_000 + i64::try_from(i)? * 1_000,
                    actor: if i % 4 == 1 { "local:bob" } else { "local:alice" },
                    action: actions[(i % 4) as usize],
                    request_id: None,
                    repository: Some(&repo),
                    detail: format!("event {i}"),
                    aws_request_ids: if i % 4 == 3 { vec![format!("req-{i:012}")] } else { vec![] },
                },
            )
            .await?;
            written += 1;
        }
        tx.commit().await?;
    }
    let seeded = seed.elapsed();
    let size = std::fs::metadata(&path)?.len();
    println!(
        "seeded {n} events in {:.1} s ({:.0} events/s), database {:.0} MB",
        seeded.as_secs_f64(),
        n as f64 / seeded.as_secs_f64(),
        size as f64 / 1e6
    );
    for run in 1..=3 {
        let t = Instant::now();
        let v = server::db::verify_chain(&db.pool, &db.chain).await?;
        let s = t.elapsed().as_secs_f64();
        assert!(v.intact() && v.events == n, "verification failed: {v:?}");
        println!("verify run {run}: {n} events in {s:.2} s ({:.0} events/s), head {}", n as f64 / s, &v.head[..16]);
    }
    Ok(())
}
