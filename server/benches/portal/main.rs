//! The portal benchmark: what people and operators feel. Run it with
//! `bash .ci/bench`, which installs wrk and brotli, builds the release server
//! and site, starts moto and then runs this driver. In one run it:
//!
//! 1. seeds moto with 2,000 repositories (a fifth pullable by production) and
//!    a SQLite file with 10,000 requests and 1,000,000 audit events through the
//!    portal's own insert path (hash chain included), with skewed, realistic
//!    distributions (a few busy people and repositories, most quiet);
//! 2. starts the release binary on it (worker off), times start → ready, and
//!    reads its RSS idle;
//! 3. loads every page and its JSON twin, rendered on every request (there is
//!    no page cache): at a steady 100 requests a second (open loop), and flat
//!    out with wrk;
//! 4. times 150 approvals by 50 concurrent approvers (each first opens the
//!    request it approves, untimed, as people do; then all 50 approve at once,
//!    three times each): a ceiling, not a race;
//! 5. restarts with the worker on, behind a counting proxy in front of moto,
//!    waits for those approved requests to be applied (AWS calls counted), then
//!    times approve → applied for requests approved one at a time (the
//!    approval wakes the worker);
//! 6. runs the seed module's own Terraform workflow (`terraform plan` +
//!    `apply` of its three repositories with the production pull policy, then
//!    `terraform plan` again as the drift check) next to the portal doing the
//!    same three changes (submit, approve, applied) and its drift check of
//!    them; skipped with a message where Terraform is absent;
//! 7. measures the release hydrate bundle (raw, gzip, brotli) and a first page
//!    load as the server sends it;
//! 8. prints a table and writes it to docs/benchmarks.md with the machine and date.
//!
//! Settings (environment): BENCH_MOTO (moto URL), BENCH_BIN (the server
//! binary; default: the one `cargo bench` builds), BENCH_SITE (target/site), BENCH_OUT (docs/benchmarks.md),
//! BENCH_EVENTS, BENCH_REQUESTS, BENCH_REPOS, BENCH_SECONDS (per load run),
//! BENCH_ONLY=approvals (only step 4, printed and not written),
//! BENCH_ONLY=import (a Terraform module of BENCH_IMPORT repositories, 400 by default, half of
//! them in moto: the import's dry run timed; printed and not written),
//! BENCH_ONLY=images (a repository with BENCH_IMAGES images, 3,000 by default: its
//! images page and JSON timed; printed and not written),
//! BENCH_SERVER_LOG (the server's RUST_LOG, its log on this standard error).
mod measure;
mod report;
mod seed;
mod target;

#[allow(dead_code)]
#[path = "../../tests/api/proxy.rs"]
mod proxy;

use measure::{approve_all, approve_to_applied, bundle, first_load, seed_workflow, ApplyStats};
use report::{write_section, Report};
use seed::{count_status, env_or, repo, seed_db, seed_images, seed_moto, user};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use target::{Portal, WRK_REPORT};

pub(crate) const ACCOUNT: &str = "555555555555";
pub(crate) const PRODUCTION: &str = "222222222222";
pub(crate) const START_MS: i64 = 1_732_000_000_000; // Nov 2024: two years of history up to now
/// Requests seeded pending: approved by the concurrent approvers, then applied.
pub(crate) const PENDING: usize = 150;
/// More pending requests, approved one at a time for approve → applied.
pub(crate) const ONE_BY_ONE: usize = 30;
pub(crate) const APPROVERS: usize = 50;
/// The steady rate every page's latency budget is stated at.
pub(crate) const PAGE_RATE: u32 = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let moto = env_or("BENCH_MOTO", "http://127.0.0.1:5055");
    let bin = PathBuf::from(env_or("BENCH_BIN", env!("CARGO_BIN_EXE_ecr-portal")));
    let site = PathBuf::from(env_or("BENCH_SITE", "target/site"));
    let out = PathBuf::from(env_or("BENCH_OUT", "docs/benchmarks.md"));
    let n_events: usize = env_or("BENCH_EVENTS", "1000000").parse()?;
    let n_requests: usize = env_or("BENCH_REQUESTS", "10000").parse()?;
    let n_repos: usize = env_or("BENCH_REPOS", "2000").parse()?;
    let secs: u64 = env_or("BENCH_SECONDS", "10").parse()?;
    let only_approvals = env_or("BENCH_ONLY", "") == "approvals";
    let mut report = Report::default();

    let dir = tempfile::tempdir()?;
    let db_path = dir.path().join("bench.db");
    if env_or("BENCH_ONLY", "") == "images" {
        let n: usize = env_or("BENCH_IMAGES", "3000").parse()?;
        let name = "crytera/bench-images";
        let t = Instant::now();
        seed_images(&moto, name, n).await?;
        eprintln!("pushed {n} images to {name} in {:.1} s", t.elapsed().as_secs_f64());
        let portal = Portal::start(&bin, &site, &db_path, &moto, false).await?;
        let admin = portal.sign_in("bench-admin", "admin").await?;
        for path in [format!("/api/v1/images?repository={name}"), format!("/repositories/images?name={name}")] {
            let mut times = Vec::new();
            for _ in 0..20 {
                let t = Instant::now();
                portal.get(&admin, &path).await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let p = measure::percentiles(times);
            eprintln!("GET {path} with {n} images: p50 {:.0} ms, p95 {:.0} ms (20 runs)", p.at(0.5), p.at(0.95));
        }
        portal.stop().await;
        return Ok(());
    }
    if env_or("BENCH_ONLY", "") == "import" {
        return import_bench(&bin, &site, &db_path, &moto).await;
    }
    let t = Instant::now();
    seed_moto(&moto, n_repos).await?;
    report.note(format!("seeded moto with {n_repos} repositories in {:.1} s", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let ids = seed_db(&db_path, n_repos, n_requests, n_events).await?;
    report.note(format!(
        "seeded SQLite with {n_requests} requests and {n_events} audit events in {:.1} s ({:.0} MB)",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&db_path)?.len() as f64 / 1e6
    ));
    let (concurrent, one_by_one) = ids.pending.split_at(PENDING);

    // ---- phase A: pages and concurrent approvals (worker off) ----
    let mut portal = Portal::start(&bin, &site, &db_path, &moto, false).await?;
    report.ready_ms.push(portal.ready_ms);
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_idle_kb = portal.rss_kb();
    let admin = portal.sign_in("bench-admin", "admin").await?;
    let t = Instant::now();
    let inv = portal.get(&admin, "/api/v1/repositories").await?;
    report.note(format!(
        "inventory of {} repositories read from ECR (moto) in {:.1} s, then served from the inventory cache",
        serde_json::from_slice::<serde_json::Value>(&inv)?["total"].as_u64().unwrap_or(0),
        t.elapsed().as_secs_f64()
    ));
    let (actor, repository) = (user(0), repo(1));
    let deep = ids.deep_event;
    let request = ids.applied_request;
    let pages: Vec<(&str, String)> = vec![
        ("requests list", "/".into()),
        ("requests list (JSON)", "/api/v1/requests".into()),
        ("audit by repository", format!("/audit?repository={repository}")),
        ("audit by repository (JSON)", format!("/api/v1/audit?repository={repository}")),
        ("audit by actor", format!("/audit?actor={actor}")),
        ("audit by actor (JSON)", format!("/api/v1/audit?actor={actor}")),
        ("audit by actor, deep page", format!("/audit?actor={actor}&before={deep}")),
        ("audit by actor, deep page (JSON)", format!("/api/v1/audit?actor={actor}&before={deep}")),
        ("request page", format!("/requests/{request}")),
        ("request page (JSON)", format!("/api/v1/requests/{request}")),
        ("repositories page", "/repositories".into()),
        ("repositories (JSON)", "/api/v1/repositories".into()),
        ("repositories, searched (10 rows)", "/repositories?q=svc-012".into()),
        ("new request form", "/requests/new".into()),
        ("tokens page", "/tokens".into()),
    ];
    let script = dir.path().join("report.lua");
    std::fs::write(&script, WRK_REPORT)?;
    for (name, path) in pages.iter().filter(|_| !only_approvals) {
        let size = portal.get(&admin, path).await?.len();
        let steady = portal.paced(path, &admin, PAGE_RATE, secs).await?;
        let flat = portal.wrk(&script, path, &admin, secs).await?;
        eprintln!(
            "{name}: {size} bytes; at {PAGE_RATE}/s p50 {:.2} ms, p99 {:.2} ms; flat out {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            steady.p50_ms, steady.p99_ms, flat.rps, flat.p50_ms, flat.p99_ms
        );
        report.pages.push((name.to_string(), size, steady, flat));
    }
    report.rss_load_kb = portal.max_rss_kb;
    let approvals = approve_all(&portal, concurrent, APPROVERS).await?;
    eprintln!("approvals: p50 {:.1} ms, p99 {:.1} ms", approvals.p50_ms, approvals.p99_ms);
    report.approvals = Some(approvals);
    report.rss_load_kb = report.rss_load_kb.max(portal.max_rss_kb);
    portal.stop().await;
    if only_approvals {
        return Ok(());
    }

    // ---- phase B: applies, AWS calls counted, approve → applied (worker on) ----
    let (proxy_url, counts) = proxy::start(&moto).await;
    let mut portal = Portal::start(&bin, &site, &db_path, &proxy_url, true).await?;
    report.ready_ms.push(portal.ready_ms);
    let before = counts.all();
    let t = Instant::now();
    let applied = loop {
        let n = count_status(&db_path).await?;
        if n >= PENDING || t.elapsed() > Duration::from_secs(600) {
            break n;
        }
        portal.sample_rss();
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let elapsed = t.elapsed().as_secs_f64();
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for (op, n) in counts.all() {
        let d = n - before.get(&op).copied().unwrap_or(0);
        if d > 0 {
            calls.insert(op, d);
        }
    }
    let admin = portal.sign_in("bench-admin", "admin").await?;
    let plan: serde_json::Value =
        serde_json::from_slice(&portal.get(&admin, &format!("/api/v1/requests/{}/plan", one_by_one[0])).await?)?;
    let plan_steps = plan["steps"].as_array().map(Vec::len).unwrap_or(0);
    report.apply = Some(ApplyStats { applied, seconds: elapsed, calls, plan_steps });
    let latency = approve_to_applied(&portal, &admin, one_by_one).await?;
    eprintln!("approve → applied: p50 {:.1} ms, p99 {:.1} ms", latency.p50_ms, latency.p99_ms);
    report.approve_to_applied = Some(latency);
    report.seed_workflow = Some(seed_workflow(&portal, &moto).await?);
    report.rss_load_kb = report.rss_load_kb.max(portal.max_rss_kb);
    portal.stop().await;

    report.bundle = Some(bundle(&site)?);
    // A first page load as the server sends it, with a browser's Accept-Encoding.
    let portal = Portal::start(&bin, &site, &db_path, &moto, false).await?;
    report.first_load = Some(first_load(&portal).await?);
    drop(portal);

    let table = report.render(n_events, n_requests, n_repos, secs);
    println!("{table}");
    write_section(&out, &table)?;
    println!("written to {}", out.display());
    Ok(())
}

/// An admin's dry run of a Terraform module: every repository read, half found in ECR.
async fn import_bench(bin: &Path, site: &Path, db_path: &Path, moto: &str) -> anyhow::Result<()> {
    let n: usize = env_or("BENCH_IMPORT", "400").parse()?;
    seed_moto(moto, n / 2).await?;
    let entries: String = (0..n)
        .map(|i| {
            let short = repo(i).trim_start_matches("crytera/").to_string();
            format!("    \"r{i}\" = {{ acc_name = local.repo_acc1, repo_name = \"{short}\" }}\n")
        })
        .collect();
    let module = format!(
        "locals {{\n  repo_acc1 = \"crytera\"\n  ecr_repo = {{\n{entries}  }}\n}}\n\nresource \"aws_ecr_repository\" \"r\" {{\n  \
         for_each = local.ecr_repo\n  name = \"${{each.value.acc_name}}/${{each.value.repo_name}}\"\n  \
         tags = {{ team = \"platform\", \"cost-center\" = \"cc-1\" }}\n}}\n"
    );
    eprintln!("a module of {n} repositories: {} KB", module.len() / 1024);
    let portal = Portal::start(bin, site, db_path, moto, false).await?;
    let admin = portal.sign_in("bench-admin", "admin").await?;
    let body = serde_json::json!({"files": [{"name": "main.tf", "text": module}], "dry_run": true});
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = portal
            .http
            .post(format!("{}/api/v1/terraform/import", portal.base))
            .header("cookie", &admin)
            .header("origin", &portal.base)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        anyhow::ensure!(status.is_success(), "import: {status} {text}");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let p = measure::percentiles(times);
    eprintln!("dry run of {n} repositories: p50 {:.0} ms, p95 {:.0} ms (5 runs)", p.at(0.5), p.at(0.95));
    portal.stop().await;
    Ok(())
}
