//! The portal benchmark (issue 6). Run it with `bash .ci/bench`, which
//! installs wrk and brotli, builds the release server and site, starts moto
//! and then runs this driver. In one run it:
//!
//! 1. seeds moto with 2,000 repositories (a fifth pullable by production) and
//!    a SQLite file with 10,000 requests and 1,000,000 audit events through the
//!    portal's own insert path (hash chain included), with skewed, realistic
//!    distributions (a few busy people and repositories, most quiet);
//! 2. starts the release binary on it (worker off), times start → ready, and
//!    reads its RSS idle;
//! 3. loads each page and its JSON twin with wrk (Debian), next to a baseline
//!    route of the same server that returns a static body of the same size;
//! 4. times 50 approvals by one approver, then 150 by 50 concurrent approvers
//!    (each first opens the request it approves first, untimed, as people read a
//!    request before approving it; then all 50 approve at once, three times each);
//! 5. restarts with the worker on, behind a counting proxy in front of moto,
//!    and times those 200 approved requests to `applied`, with AWS calls counted;
//! 6. measures the release hydrate bundle (raw, gzip, brotli) and a first page
//!    load as the server sends it;
//! 7. prints a table and writes it to docs/benchmarks.md with the machine and date.
//!
//! Settings (environment): BENCH_MOTO (moto URL), BENCH_BIN (the server
//! binary; default: the one `cargo bench` builds), BENCH_SITE (target/site), BENCH_OUT (docs/benchmarks.md),
//! BENCH_EVENTS, BENCH_REQUESTS, BENCH_REPOS, BENCH_SECONDS (per wrk run),
//! BENCH_ONLY=approvals (only step 4, printed and not written: for working on the write path),
//! BENCH_SERVER_LOG (the server's RUST_LOG, its log on this standard error; say `server::db=debug`
//! for each write batch's size and times).
use anyhow::{bail, Context};
use app::domain::audit::AuditAction;
use app::domain::form::RepositoryRequestInput;
use app::domain::name::Namespace;
use app::domain::request::{Request, RequestKind, Status};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::config::Credentials;
use futures::StreamExt;
use server::db::{self, Db, NewEvent};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/api/proxy.rs"]
mod proxy;

const ACCOUNT: &str = "555555555555";
const PRODUCTION: &str = "222222222222";
const START_MS: i64 = 1_732_000_000_000; // Nov 2024: two years of history up to now
const PENDING: usize = 200;
const APPROVERS: usize = 50;
/// The rate the audit history's latency budget is stated at.
const AUDIT_RATE: u32 = 300;
/// Of the pending requests, approved one at a time before the concurrent run
/// (the rest, 150, go to 50 approvers; all 200 are applied afterwards).
const SOLO: usize = 50;

fn env_or(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

/// A small deterministic generator (no dependency): xorshift.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Skewed pick in 0..n: a few values get most of the picks (like people and repositories do).
    fn skewed(&mut self, n: usize) -> usize {
        ((self.unit().powi(3)) * n as f64) as usize % n
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn repo(i: usize) -> String {
    format!("crytera/svc-{i:04}")
}
fn user(i: usize) -> String {
    format!("local:user-{i:03}")
}

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

    // ---- phase A: pages and approvals (worker off) ----
    let mut portal = Portal::start(&bin, &site, &db_path, &moto, false).await?;
    report.ready_ms.push(portal.ready_ms);
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_idle_kb = portal.rss_kb();
    let admin = portal.sign_in("bench-admin", "admin").await?;
    let t = Instant::now();
    let inv = portal.get(&admin, "/api/v1/repositories").await?;
    report.note(format!(
        "inventory of {} repositories read from ECR (moto) in {:.1} s, then served from the cache",
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
        ("audit by repository, deep page (JSON)", format!("/api/v1/audit?repository={repository}&before={deep}")),
        ("request page", format!("/requests/{request}")),
        ("request page (JSON)", format!("/api/v1/requests/{request}")),
        ("repositories page", "/repositories".into()),
        ("repositories (JSON)", "/api/v1/repositories".into()),
        ("repositories, searched (10 rows)", "/repositories?q=svc-012".into()),
    ];
    let script = dir.path().join("report.lua");
    std::fs::write(&script, WRK_REPORT)?;
    for (name, path) in pages.iter().filter(|_| !only_approvals) {
        let size = portal.get(&admin, path).await?.len();
        let base = portal.wrk(&script, &format!("/__baseline/{size}"), None, false, secs).await?;
        // Pages twice: as people get them (the page cache answers a repeat
        // while nothing changed) and rendered on every request.
        let html = !name.contains("JSON");
        let runs: &[bool] = if html { &[false, true] } else { &[false] };
        for &fresh in runs {
            let page = portal.wrk(&script, path, Some(&admin), fresh, secs).await?;
            let name = if fresh { format!("{name}, rendered every time") } else { name.to_string() };
            eprintln!(
                "{name}: {size} bytes, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms; baseline {:.0} req/s",
                page.rps, page.p50_ms, page.p99_ms, base.rps
            );
            report.pages.push((name, size, page, base));
        }
        // The audit budget is a latency at a given rate: an open-loop run at
        // AUDIT_RATE, every answer rendered (wrk above runs flat out).
        if html && name.starts_with("audit") {
            let paced = portal.paced(path, &admin, AUDIT_RATE, secs).await?;
            eprintln!("{name} at {AUDIT_RATE}/s, rendered: p50 {:.2} ms, p99 {:.2} ms", paced.p50_ms, paced.p99_ms);
            report.paced.push((name.to_string(), paced));
        }
    }
    report.rss_load_kb = portal.max_rss_kb;

    // One approver first (the cost of one approval), then 50 at once.
    let (solo, rest) = ids.pending.split_at(SOLO);
    let one = approve_all(&portal, solo, 1).await?;
    eprintln!("approvals one at a time: p50 {:.1} ms, p99 {:.1} ms", one.p50_ms, one.p99_ms);
    report.solo = Some(one);
    let approvals = approve_all(&portal, rest, APPROVERS).await?;
    eprintln!("approvals: p50 {:.1} ms, p99 {:.1} ms", approvals.p50_ms, approvals.p99_ms);
    report.approvals = Some(approvals);
    report.rss_load_kb = report.rss_load_kb.max(portal.max_rss_kb);
    portal.stop().await;
    if only_approvals {
        return Ok(());
    }

    // ---- phase B: apply throughput, AWS calls counted (worker on) ----
    let (proxy_url, counts) = proxy::start(&moto).await;
    let mut portal = Portal::start(&bin, &site, &db_path, &proxy_url, true).await?;
    report.ready_ms.push(portal.ready_ms);
    let before = counts.all();
    let t = Instant::now();
    let applied = loop {
        let n = count_status(&db_path, "applied_bench").await?;
        if n >= PENDING || t.elapsed() > Duration::from_secs(600) {
            break n;
        }
        portal.sample_rss();
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let elapsed = t.elapsed().as_secs_f64();
    let after = counts.all();
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for (op, n) in after {
        let d = n - before.get(&op).copied().unwrap_or(0);
        if d > 0 {
            calls.insert(op, d);
        }
    }
    let admin = portal.sign_in("bench-admin", "admin").await?;
    let plan: serde_json::Value =
        serde_json::from_slice(&portal.get(&admin, &format!("/api/v1/requests/{}/plan", ids.pending[0])).await?)?;
    let plan_steps = plan["steps"].as_array().map(Vec::len).unwrap_or(0);
    report.apply = Some(ApplyStats { applied, seconds: elapsed, calls, plan_steps });
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

// ---------------------------------------------------------------- seeding

async fn staging_ecr(moto: &str) -> anyhow::Result<aws_sdk_ecr::Client> {
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "bench"))
        .load()
        .await;
    let c = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/bench-seeder"))
        .role_session_name("bench")
        .send()
        .await?
        .credentials
        .context("credentials")?;
    let creds =
        Credentials::new(c.access_key_id(), c.secret_access_key(), Some(c.session_token().to_string()), None, "bench");
    Ok(aws_sdk_ecr::Client::from_conf(aws_sdk_ecr::config::Builder::from(&base).credentials_provider(creds).build()))
}

async fn seed_moto(moto: &str, n: usize) -> anyhow::Result<()> {
    let ecr = staging_ecr(moto).await?;
    let grant = app::domain::policy::desired(None, Some((PRODUCTION, false)))?.context("a policy")?.to_string();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let (ecr, grant) = (ecr.clone(), grant.clone());
            async move {
                let name = repo(i);
                match ecr.create_repository().repository_name(&name).send().await {
                    Ok(_) => {}
                    Err(e) if format!("{e:?}").contains("RepositoryAlreadyExists") => {}
                    Err(e) => bail!("creating {name}: {e:?}"),
                }
                if i % 5 == 0 {
                    ecr.set_repository_policy().repository_name(&name).policy_text(grant).send().await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

struct Seeded {
    /// Pending requests for the approval run (repositories that do not exist yet).
    pending: Vec<i64>,
    applied_request: i64,
    /// An event id near the start of the history: a deep page.
    deep_event: i64,
}

async fn seed_db(path: &Path, n_repos: usize, n_requests: usize, n_events: usize) -> anyhow::Result<Seeded> {
    let db = Db::connect(path).await?;
    let ns = Namespace::parse("crytera")?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // The portal's records of the repositories it manages (all of them here).
    {
        let mut tx = db.write().await?;
        for i in 0..n_repos {
            sqlx::query("INSERT INTO repositories (name, spec, production_access, drift, checked_at) VALUES (?, NULL, ?, '[]', ?)")
                .bind(repo(i))
                .bind(i % 5 == 0)
                .bind(START_MS)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let spec = |name: &str| {
        RepositoryRequestInput {
            name: name.into(),
            team: "platform".into(),
            cost_center: "cc-1234".into(),
            justification: "benchmark".into(),
            keep_last_images: Some(30),
            ..Default::default()
        }
        .parse(&ns)
        .map(|p| p.spec)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
    };
    let span = 730 * 86_400_000i64; // two years
    let total = n_events.max(n_requests * 4);
    let step = span / total as i64;
    let mut at = START_MS;
    let mut written = 0usize;
    let mut applied_request = 1;
    let mut deep_event = 1;
    let mut tx = db.write().await?;
    let mut in_tx = 0;
    // Historic requests: each with its submission, decision and apply events;
    // between them, the day-to-day trail (sign-ins, token use, drift checks).
    let per_request_other = (total.saturating_sub(n_requests * 4)) / n_requests.max(1);
    for r in 0..n_requests {
        let requester = user(rng.skewed(300));
        let approver = format!("local:admin-{:02}", rng.below(12));
        let repo_i = rng.skewed(n_repos);
        let roll = rng.unit();
        let (status, events): (Status, &[AuditAction]) = if roll < 0.80 {
            (
                Status::Applied,
                &[
                    AuditAction::RequestSubmitted,
                    AuditAction::RequestApproved,
                    AuditAction::ApplyStarted,
                    AuditAction::ApplySucceeded,
                ],
            )
        } else if roll < 0.95 {
            (Status::Rejected, &[AuditAction::RequestSubmitted, AuditAction::RequestRejected])
        } else {
            (
                Status::Failed,
                &[
                    AuditAction::RequestSubmitted,
                    AuditAction::RequestApproved,
                    AuditAction::ApplyStarted,
                    AuditAction::ApplyFailed,
                ],
            )
        };
        let kind = if roll < 0.5 {
            RequestKind::CreateRepository { spec: spec(&repo(repo_i))?, grant_production: false }
        } else {
            RequestKind::GrantProduction {
                repository: app::domain::name::RepoName::parse(&ns, &repo(repo_i))?,
                until: None,
            }
        };
        let request = Request {
            id: 0,
            kind,
            justification: format!("Images for service {repo_i}, ticket PLAT-{r}"),
            requester: requester.clone(),
            status,
            created_at: at,
            updated_at: at + 3_600_000,
            decided_by: Some(approver.clone()),
            decision_comment: None,
            failure: (status == Status::Failed).then(|| "AccessDeniedException".to_string()),
            attempts: 1,
        };
        let id = db::insert_request(&mut tx, &request).await?;
        if status == Status::Applied {
            applied_request = id;
        }
        for (k, action) in events.iter().enumerate() {
            let actor = match k {
                0 => requester.as_str(),
                1 => approver.as_str(),
                _ => "system:worker",
            };
            let repository = repo(repo_i);
            db::insert_event(
                &mut tx,
                &NewEvent {
                    at,
                    actor,
                    action: *action,
                    request_id: Some(id),
                    repository: Some(&repository),
                    detail: String::new(),
                    aws_request_ids: if k >= 2 { vec![format!("req-{r:08}-{k}")] } else { vec![] },
                },
            )
            .await?;
            at += step;
            written += 1;
        }
        for _ in 0..per_request_other {
            let who = user(rng.skewed(300));
            let roll = rng.unit();
            let (action, repository, detail) = if roll < 0.35 {
                (AuditAction::SignedIn, None, "local sign-in as requester".to_string())
            } else if roll < 0.75 {
                (AuditAction::TokenUsed, None, "API token #7 (ci): GET /api/v1/requests → 200".to_string())
            } else if roll < 0.97 {
                (AuditAction::DriftResolved, Some(repo(rng.skewed(n_repos))), "in sync again".to_string())
            } else {
                (AuditAction::AccessDenied, None, "only admins can approve requests".to_string())
            };
            db::insert_event(
                &mut tx,
                &NewEvent {
                    at,
                    actor: &who,
                    action,
                    request_id: None,
                    repository: repository.as_deref(),
                    detail,
                    aws_request_ids: vec![],
                },
            )
            .await?;
            at += step;
            written += 1;
        }
        if written < total / 20 {
            deep_event = i64::try_from(written)?;
        }
        in_tx += 1;
        if in_tx >= 200 {
            tx.commit().await?;
            tx = db.write().await?;
            in_tx = 0;
        }
    }
    // Pending requests for the approval run: new repositories nobody has made yet.
    let mut pending = vec![];
    for i in 0..PENDING {
        let name = format!("crytera/new-{i:04}");
        let request = Request {
            id: 0,
            kind: RequestKind::CreateRepository { spec: spec(&name)?, grant_production: false },
            justification: "benchmark approval".into(),
            requester: user(100 + i % 50),
            status: Status::Pending,
            created_at: at,
            updated_at: at,
            decided_by: None,
            decision_comment: None,
            failure: None,
            attempts: 0,
        };
        let id = db::insert_request(&mut tx, &request).await?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at,
                actor: &request.requester,
                action: AuditAction::RequestSubmitted,
                request_id: Some(id),
                repository: Some(&name),
                detail: String::new(),
                aws_request_ids: vec![],
            },
        )
        .await?;
        pending.push(id);
    }
    tx.commit().await?;
    // Decided requests carry the live policy the approval saw (the portal stores it at approval).
    sqlx::query("UPDATE requests SET approved_policy = 'null' WHERE status != 'pending'").execute(&db.pool).await?;
    // The trail was written in the past; sessions and the expiry clock use now.
    sqlx::query("UPDATE requests SET created_at = ?, updated_at = ? WHERE status = 'pending'")
        .bind(now_ms())
        .bind(now_ms())
        .execute(&db.pool)
        .await?;
    db.close().await;
    Ok(Seeded { pending, applied_request, deep_event })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

async fn count_status(path: &Path, which: &str) -> anyhow::Result<usize> {
    let db = Db::connect(path).await?;
    let n: i64 = match which {
        "applied_bench" => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM requests WHERE status = 'applied' AND repository LIKE 'crytera/new-%'",
            )
            .fetch_one(&db.pool)
            .await?
        }
        _ => bail!("unknown count {which}"),
    };
    db.close().await;
    Ok(usize::try_from(n)?)
}

// ---------------------------------------------------------------- the server under test

struct Portal {
    child: tokio::process::Child,
    base: String,
    ready_ms: f64,
    max_rss_kb: u64,
    http: reqwest::Client,
}

impl Portal {
    async fn start(bin: &Path, site: &Path, db: &Path, aws: &str, worker: bool) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let started = Instant::now();
        let child = tokio::process::Command::new(bin)
            .env("ECR_PORTAL_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("ECR_PORTAL_SERVER__SITE_ROOT", site)
            .env("ECR_PORTAL_SERVER__BENCHMARK_BASELINE", "true")
            .env("ECR_PORTAL_DATABASE__PATH", db)
            .env("ECR_PORTAL_AWS__LOCAL_ENDPOINT", aws)
            .env("ECR_PORTAL_AWS__STAGING_ROLE_ARN", format!("arn:aws:iam::{ACCOUNT}:role/ecr-portal-apply"))
            .env("ECR_PORTAL_AWS__PRODUCTION_ACCOUNT_ID", PRODUCTION)
            .env("ECR_PORTAL_AWS__PRODUCTION_ROLE_ARN", "")
            .env("ECR_PORTAL_WORKER__ENABLED", if worker { "true" } else { "false" })
            .env("ECR_PORTAL_WORKER__POLL_INTERVAL_MS", "100")
            .env("ECR_PORTAL_WORKER__DRIFT_CHECK_SECONDS", "86400")
            .env("RUST_LOG", std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("BENCH_SERVER_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        loop {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the portal did not become ready in 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(Self { child, base, ready_ms, max_rss_kb: 0, http })
    }

    fn rss_kb(&self) -> u64 {
        let Some(pid) = self.child.id() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    }

    fn sample_rss(&mut self) {
        self.max_rss_kb = self.max_rss_kb.max(self.rss_kb());
    }

    /// Signs in; returns the session cookie (`name=value`).
    async fn sign_in(&self, user: &str, role: &str) -> anyhow::Result<String> {
        let r = self
            .http
            .post(format!("{}/auth/local", self.base))
            .header("accept", "application/json")
            .form(&[("username", user), ("role", role)])
            .send()
            .await?;
        let c = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).context("no session cookie")?;
        Ok(c.split(';').next().unwrap_or_default().to_string())
    }

    async fn get(&self, cookie: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        let r = self.http.get(format!("{}{path}", self.base)).header("cookie", cookie).send().await?;
        if !r.status().is_success() {
            bail!("GET {path}: {}", r.status());
        }
        Ok(r.bytes().await?.to_vec())
    }

    /// One wrk run; RSS is sampled while it goes.
    /// Requests at a fixed rate for `secs` seconds, each sent on time whether
    /// or not the ones before have been answered (open loop), with
    /// `Cache-Control: no-cache`; latencies from send to the last byte.
    async fn paced(&self, path: &str, cookie: &str, rate: u32, secs: u64) -> anyhow::Result<Load> {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = vec![];
        let started = Instant::now();
        for _ in 0..rate as u64 * secs {
            tick.tick().await;
            let (http, url, cookie) = (self.http.clone(), format!("{}{path}", self.base), cookie.to_string());
            tasks.push(tokio::spawn(async move {
                let s = Instant::now();
                let r = http.get(url).header("cookie", cookie).header("cache-control", "no-cache").send().await?;
                let ok = r.status().is_success();
                r.bytes().await?;
                if !ok {
                    bail!("non-2xx answer under paced load");
                }
                Ok::<_, anyhow::Error>(s.elapsed().as_secs_f64() * 1000.0)
            }));
        }
        let mut all = vec![];
        for t in tasks {
            all.push(t.await??);
        }
        let seconds = started.elapsed().as_secs_f64();
        let pct = percentiles(all);
        Ok(Load { rps: pct.count() as f64 / seconds, p50_ms: pct.at(0.50), p99_ms: pct.at(0.99), socket_errors: 0 })
    }

    /// `fresh` sends `Cache-Control: no-cache`, which the page cache honours:
    /// every answer is rendered.
    async fn wrk(
        &mut self,
        script: &Path,
        path: &str,
        cookie: Option<&str>,
        fresh: bool,
        secs: u64,
    ) -> anyhow::Result<Load> {
        let mut cmd = tokio::process::Command::new("wrk");
        cmd.args(["-t1", "-c8", &format!("-d{secs}s"), "--timeout", "5s", "-s"]).arg(script);
        if let Some(c) = cookie {
            cmd.args(["-H", &format!("Cookie: {c}")]);
        }
        if fresh {
            cmd.args(["-H", "Cache-Control: no-cache"]);
        }
        cmd.arg(format!("{}{path}", self.base)).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().context("running wrk (apt-get install wrk)")?;
        let wait = child.wait_with_output();
        tokio::pin!(wait);
        let output = loop {
            tokio::select! {
                o = &mut wait => break o?,
                _ = tokio::time::sleep(Duration::from_millis(200)) => self.sample_rss(),
            }
        };
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text.lines().find(|l| l.starts_with("JSON ")).with_context(|| format!("wrk said: {text}"))?;
        let v: serde_json::Value = serde_json::from_str(&line[5..])?;
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        // Every answer must be a success; a few socket errors (a connection
        // wrk saw reset, out of hundreds of thousands) are counted, not fatal.
        if f("non2xx") > 0.0 || f("errors") > f("requests") / 1000.0 {
            bail!("{path}: {} non-2xx answers and {} socket errors under load", f("non2xx"), f("errors"));
        }
        if f("errors") > 0.0 {
            eprintln!("{path}: {} socket errors in {} requests", f("errors"), f("requests"));
        }
        Ok(Load {
            rps: f("rps"),
            p50_ms: f("p50") / 1000.0,
            p99_ms: f("p99") / 1000.0,
            socket_errors: f("errors") as u64,
        })
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

const WRK_REPORT: &str = r#"
done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("JSON {\"rps\": %f, \"p50\": %f, \"p99\": %f, \"requests\": %d, \"non2xx\": %d, \"errors\": %d}\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.requests, non2xx, errors))
end
"#;

#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Connections wrk saw fail (at most 0.1% of its requests, or the run fails).
    socket_errors: u64,
}

// ---------------------------------------------------------------- approvals

struct Approvals {
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    seconds: f64,
    /// p50 and max of each approver's first, second, ... approval.
    rounds: Vec<(f64, f64)>,
}

async fn approve_all(portal: &Portal, pending: &[i64], approvers: usize) -> anyhow::Result<Approvals> {
    let mut cookies = vec![];
    for i in 0..approvers {
        cookies.push(portal.sign_in(&format!("approver-{i:02}"), "admin").await?);
    }
    let per = pending.len() / approvers;
    // Each approver opens the first request it will approve (untimed), as
    // people read a request before approving it: its connection is open when
    // the timed approvals start, all at once.
    let opened = futures::future::join_all(cookies.iter().enumerate().map(|(i, cookie)| {
        let url = format!("{}/api/v1/requests/{}", portal.base, pending[i * per]);
        portal.http.get(url).header("cookie", cookie).send()
    }))
    .await;
    for r in opened {
        let r = r?;
        if r.status() != 200 {
            bail!("opening a request before approving it: {}", r.status());
        }
    }
    let t = Instant::now();
    let tasks: Vec<_> = cookies
        .into_iter()
        .enumerate()
        .map(|(i, cookie)| {
            let ids: Vec<i64> = pending[i * per..(i + 1) * per].to_vec();
            let (http, base) = (portal.http.clone(), portal.base.clone());
            tokio::spawn(async move {
                let mut times = vec![];
                for id in ids {
                    let s = Instant::now();
                    let r = http
                        .post(format!("{base}/api/v1/requests/{id}/approve"))
                        .header("cookie", &cookie)
                        .json(&serde_json::json!({"comment": "benchmark"}))
                        .send()
                        .await?;
                    if r.status() != 200 {
                        bail!("approving #{id}: {}", r.status());
                    }
                    times.push(s.elapsed().as_secs_f64() * 1000.0);
                }
                Ok::<_, anyhow::Error>(times)
            })
        })
        .collect();
    let mut all = vec![];
    let mut rounds: Vec<Vec<f64>> = vec![vec![]; per];
    for t in tasks {
        let times = t.await??;
        for (round, ms) in times.iter().enumerate() {
            rounds[round].push(*ms);
        }
        all.extend(times);
    }
    let seconds = t.elapsed().as_secs_f64();
    let rounds: Vec<(f64, f64)> = rounds
        .into_iter()
        .map(|round| {
            let p = percentiles(round);
            (p.at(0.5), p.at(1.0))
        })
        .collect();
    for (i, (p50, max)) in rounds.iter().enumerate().filter(|_| approvers > 1) {
        eprintln!("  round {}: p50 {p50:.1} ms, max {max:.1} ms", i + 1);
    }
    let pct = percentiles(all);
    Ok(Approvals {
        count: pct.count(),
        p50_ms: pct.at(0.50),
        p99_ms: pct.at(0.99),
        max_ms: pct.at(1.0),
        seconds,
        rounds,
    })
}

/// Latencies in milliseconds, sorted, read by nearest rank.
struct Percentiles(Vec<f64>);

fn percentiles(mut all: Vec<f64>) -> Percentiles {
    all.sort_by(|a, b| a.total_cmp(b));
    Percentiles(all)
}

impl Percentiles {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn at(&self, p: f64) -> f64 {
        let n = self.0.len();
        if n == 0 {
            return 0.0;
        }
        self.0[((n as f64 * p).ceil() as usize).saturating_sub(1).min(n - 1)]
    }
}

// ---------------------------------------------------------------- apply

struct ApplyStats {
    applied: usize,
    seconds: f64,
    calls: BTreeMap<String, usize>,
    plan_steps: usize,
}

// ---------------------------------------------------------------- bundle and first load

struct Bundle {
    files: Vec<(String, u64, u64, u64)>,
}

fn compressed_len(cmd: &str, args: &[&str], file: &Path) -> anyhow::Result<u64> {
    let out =
        std::process::Command::new(cmd).args(args).arg(file).output().with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} failed on {}", file.display());
    }
    Ok(out.stdout.len() as u64)
}

fn bundle(site: &Path) -> anyhow::Result<Bundle> {
    let mut files = vec![];
    for f in ["ecr-portal.wasm", "ecr-portal.js", "ecr-portal.css"] {
        let p = site.join("pkg").join(f);
        let raw = std::fs::metadata(&p).with_context(|| format!("{} (build the site first)", p.display()))?.len();
        let gz = compressed_len("gzip", &["-9", "-c"], &p)?;
        let br = compressed_len("brotli", &["-q", "11", "-c"], &p)?;
        files.push((f.to_string(), raw, gz, br));
    }
    Ok(Bundle { files })
}

/// What a browser downloads on its first visit to the sign-in page, as sent (compressed when offered).
async fn first_load(portal: &Portal) -> anyhow::Result<Vec<(String, u64, String)>> {
    let mut out = vec![];
    for path in ["/login", "/pkg/ecr-portal.js", "/pkg/ecr-portal.wasm", "/pkg/ecr-portal.css", "/favicon.ico"] {
        let r = portal
            .http
            .get(format!("{}{path}", portal.base))
            .header("accept-encoding", "gzip, deflate, br, zstd")
            .send()
            .await?;
        let enc = r.headers().get("content-encoding").and_then(|v| v.to_str().ok()).unwrap_or("identity").to_string();
        let ok = r.status().is_success();
        let len = r.bytes().await?.len() as u64;
        if ok {
            out.push((path.to_string(), len, enc));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- report

#[derive(Default)]
struct Report {
    notes: Vec<String>,
    ready_ms: Vec<f64>,
    rss_idle_kb: u64,
    rss_load_kb: u64,
    pages: Vec<(String, usize, Load, Load)>,
    /// Audit pages at AUDIT_RATE, rendered every time.
    paced: Vec<(String, Load)>,
    approvals: Option<Approvals>,
    solo: Option<Approvals>,
    apply: Option<ApplyStats>,
    bundle: Option<Bundle>,
    first_load: Option<Vec<(String, u64, String)>>,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

impl Report {
    fn note(&mut self, s: String) {
        eprintln!("{s}");
        self.notes.push(s);
    }

    fn render(&self, events: usize, requests: usize, repos: usize, secs: u64) -> String {
        let mut s = String::new();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let date = std::process::Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        s += &format!("Run on {date}: {cores} cores ({cpu}), release build, moto as AWS, wrk -t1 -c8 -d{secs}s per row, \
                       load generator on the same machine. Data: {events} audit events, {requests} requests, {repos} repositories.\n\n");
        for n in &self.notes {
            s += &format!("- {n}\n");
        }
        // A page's baseline run is shared by its two rows: counted once.
        let socket_errors: u64 = self
            .pages
            .iter()
            .map(|p| p.2.socket_errors + if p.0.ends_with("rendered every time") { 0 } else { p.3.socket_errors })
            .sum();
        if socket_errors > 0 {
            s += &format!("- wrk saw {socket_errors} socket errors over all rows (every answer was a success)\n");
        }
        s += "\n| page | bytes | req/s | p50 ms | p99 ms | baseline req/s (same size) | ratio |\n|---|---:|---:|---:|---:|---:|---:|\n";
        for (name, size, p, b) in &self.pages {
            s += &format!(
                "| {name} | {size} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0}% |\n",
                p.rps,
                p.p50_ms,
                p.p99_ms,
                b.rps,
                100.0 * p.rps / b.rps.max(1.0)
            );
        }
        s += "\n| budget | measured | |\n|---|---|---|\n";
        let worst_paced = self.paced.iter().map(|p| p.1.p99_ms).fold(0.0, f64::max);
        let slowest_paced = self.paced.iter().map(|p| p.1.rps).fold(f64::INFINITY, f64::min);
        let paced: Vec<String> =
            self.paced.iter().map(|(n, l)| format!("{n} p50 {:.1} / p99 {:.1} ms", l.p50_ms, l.p99_ms)).collect();
        let flat_out = self
            .pages
            .iter()
            .filter(|p| p.0.starts_with("audit") && !p.0.contains("JSON"))
            .map(|p| p.2.p99_ms)
            .fold(0.0, f64::max);
        s += &format!(
            "| audit history filtered, any depth: p99 ≤ 20 ms at {AUDIT_RATE} req/s | HTML rendered every request, \
             {AUDIT_RATE} req/s open loop for {}: worst p99 {worst_paced:.1} ms ({}); flat out (wrk, above) worst p99 {flat_out:.1} ms | {} |\n",
            if self.paced.is_empty() { "no page".to_string() } else { format!("{} pages", self.paced.len()) },
            paced.join("; "),
            verdict(!self.paced.is_empty() && worst_paced <= 20.0 && slowest_paced >= AUDIT_RATE as f64 * 0.95)
        );
        let worst = |rendered: bool| {
            self.pages
                .iter()
                .filter(|p| !p.0.contains("JSON") && p.0.ends_with("rendered every time") == rendered)
                .map(|p| (p.2.rps / p.3.rps.max(1.0), p.0.clone()))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap_or((0.0, String::new()))
        };
        let ((served, served_name), (rendered, rendered_name)) = (worst(false), worst(true));
        s += &format!(
            "| server-rendered pages ≥ 25% of the baseline | as served (page cache): lowest {:.0}% ({served_name}); \
             rendered every time: lowest {:.0}% ({rendered_name}) | {} |\n",
            served * 100.0,
            rendered * 100.0,
            verdict(served >= 0.25)
        );
        if let Some(a) = &self.approvals {
            s += &format!(
                "| approval write p99 ≤ 25 ms, 50 concurrent approvers | {} approvals in {:.1} s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
                 (p50 / max of each approver's 1st, 2nd, ... approval: {}) | {} |\n",
                a.count, a.seconds, a.p50_ms, a.p99_ms, a.max_ms,
                a.rounds.iter().map(|(p50, max)| format!("{p50:.1} / {max:.1} ms")).collect::<Vec<_>>().join(", "),
                verdict(a.p99_ms <= 25.0)
            );
        }
        if let Some(o) = &self.solo {
            s += &format!(
                "| one approval at a time (no budget) | {} approvals by one approver: p50 {:.1} ms, p99 {:.1} ms; \
                 with {APPROVERS} in flight, writes queue for one writer (which commits them in batches) |  |\n",
                o.count, o.p50_ms, o.p99_ms
            );
        }
        if let Some(b) = &self.bundle {
            let wasm = &b.files[0];
            let js = &b.files[1];
            s += &format!(
                "| release hydrate bundle ≤ 250 KB gzip | wasm {:.0} KB raw, {:.0} KB gzip, {:.0} KB brotli; JS {:.1} KB gzip | {} |\n",
                wasm.1 as f64 / 1024.0, wasm.2 as f64 / 1024.0, wasm.3 as f64 / 1024.0, js.2 as f64 / 1024.0,
                verdict((wasm.2 + js.2) as f64 / 1024.0 <= 250.0)
            );
        }
        if let Some(f) = &self.first_load {
            let total: u64 = f.iter().map(|x| x.1).sum();
            let parts: Vec<String> =
                f.iter().map(|(p, n, e)| format!("{p} {:.1} KB {e}", *n as f64 / 1024.0)).collect();
            s += &format!(
                "| first page load ≤ 350 KB transferred | {:.0} KB ({}) | {} |\n",
                total as f64 / 1024.0,
                parts.join(", "),
                verdict(total as f64 / 1024.0 <= 350.0)
            );
        }
        s += &format!(
            "| RSS ≤ 40 MB idle, ≤ 150 MB under load | {:.1} MB idle, {:.1} MB peak under load | {} |\n",
            self.rss_idle_kb as f64 / 1024.0,
            self.rss_load_kb as f64 / 1024.0,
            verdict(self.rss_idle_kb <= 40 * 1024 && self.rss_load_kb <= 150 * 1024)
        );
        let ready = self.ready_ms.iter().copied().fold(0.0, f64::max);
        let all: Vec<String> = self.ready_ms.iter().map(|r| format!("{r:.0} ms")).collect();
        s += &format!(
            "| ready ≤ 500 ms after start with 1M events | {} | {} |\n",
            all.join(", "),
            verdict(ready <= 500.0)
        );
        if let Some(a) = &self.apply {
            let per: Vec<String> =
                a.calls.iter().map(|(op, n)| format!("{op} {:.2}", *n as f64 / a.applied.max(1) as f64)).collect();
            let total: usize = a.calls.values().sum();
            let per_request = total as f64 / a.applied.max(1) as f64;
            s += &format!(
                "| AWS calls per new repository ≤ plan + 1 verification read | {per_request:.2} per request ({}); the plan lists {} steps | {} |\n",
                per.join(", "),
                a.plan_steps,
                verdict(per_request <= (a.plan_steps + 1) as f64)
            );
            s += &format!(
                "| apply throughput (no budget) | {} requests applied in {:.1} s: {:.1} per second | |\n",
                a.applied,
                a.seconds,
                a.applied as f64 / a.seconds.max(0.001)
            );
        }
        s
    }
}

const BEGIN: &str = "<!-- portal benchmark: begin (written by `bash .ci/bench`) -->";
const END: &str = "<!-- portal benchmark: end -->";

fn write_section(path: &Path, table: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{BEGIN}\n## The portal benchmark (issue 6)\n\n{table}\n{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &old[..a], &old[b + END.len()..]),
        _ => format!("{old}\n{section}\n"),
    };
    std::fs::write(path, new)?;
    Ok(())
}
