//! What the benchmark times besides page loads: approvals, approve →
//! applied, the seed module's Terraform workflow next to the portal, the
//! bundle and a first page load.
use crate::target::Portal;
use crate::ACCOUNT;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) struct Approvals {
    pub(crate) count: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) seconds: f64,
    /// p50 and max of each approver's first, second, ... approval.
    pub(crate) rounds: Vec<(f64, f64)>,
}

pub(crate) async fn approve_all(portal: &Portal, pending: &[i64], approvers: usize) -> anyhow::Result<Approvals> {
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
pub(crate) struct Percentiles(pub(crate) Vec<f64>);

pub(crate) fn percentiles(mut all: Vec<f64>) -> Percentiles {
    all.sort_by(|a, b| a.total_cmp(b));
    Percentiles(all)
}

impl Percentiles {
    pub(crate) fn count(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn at(&self, p: f64) -> f64 {
        let n = self.0.len();
        if n == 0 {
            return 0.0;
        }
        self.0[((n as f64 * p).ceil() as usize).saturating_sub(1).min(n - 1)]
    }
}

pub(crate) struct ApplyStats {
    pub(crate) applied: usize,
    pub(crate) seconds: f64,
    pub(crate) calls: BTreeMap<String, usize>,
    pub(crate) plan_steps: usize,
}

pub(crate) struct Bundle {
    pub(crate) files: Vec<(String, u64, u64, u64)>,
}

pub(crate) fn compressed_len(cmd: &str, args: &[&str], file: &Path) -> anyhow::Result<u64> {
    let out =
        std::process::Command::new(cmd).args(args).arg(file).output().with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} failed on {}", file.display());
    }
    Ok(out.stdout.len() as u64)
}

pub(crate) fn bundle(site: &Path) -> anyhow::Result<Bundle> {
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
pub(crate) async fn first_load(portal: &Portal) -> anyhow::Result<Vec<(String, u64, String)>> {
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

/// Latencies of one kind of action.
pub(crate) struct Latency {
    pub(crate) count: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

impl Latency {
    fn of(all: Vec<f64>) -> Self {
        let p = percentiles(all);
        Self { count: p.count(), p50_ms: p.at(0.5), p99_ms: p.at(0.99), max_ms: p.at(1.0) }
    }
}

/// Waits (polling the request's JSON every 2 ms) until request `id` is applied.
async fn until_applied(portal: &Portal, cookie: &str, id: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page: serde_json::Value =
            serde_json::from_slice(&portal.get(cookie, &format!("/api/v1/requests/{id}")).await?)?;
        match page["summary"]["status"].as_str() {
            Some("applied") => return Ok(()),
            Some("failed") | Some("needs_reapproval") => bail!("request #{id} did not apply: {}", page["failure"]),
            _ if Instant::now() > deadline => bail!("request #{id} was not applied within 60 s"),
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// Approves each request alone and times it from the click to `applied`:
/// the approval wakes the worker, which assumes the role, creates the
/// repository, verifies it and records the result.
pub(crate) async fn approve_to_applied(portal: &Portal, admin: &str, ids: &[i64]) -> anyhow::Result<Latency> {
    let mut all = vec![];
    for id in ids {
        let t = Instant::now();
        let r = portal
            .http
            .post(format!("{}/api/v1/requests/{id}/approve", portal.base))
            .header("cookie", admin)
            .json(&serde_json::json!({"comment": "benchmark"}))
            .send()
            .await?;
        if r.status() != 200 {
            bail!("approving #{id}: {}", r.status());
        }
        until_applied(portal, admin, *id).await?;
        all.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Latency::of(all))
}

/// The seed module's workflow both ways: Terraform, and the portal.
pub(crate) enum SeedWorkflow {
    Skipped(String),
    Measured {
        /// `terraform init`, `plan`, `apply`, and `plan` again (the drift check), ms.
        terraform: (f64, f64, f64, f64),
        /// Submit → all three applied (three requests, each approved at once), ms.
        portal_apply_ms: f64,
        /// The portal's drift check of the three repositories, ms.
        portal_drift_ms: f64,
    },
}

/// Runs `benches/terraform/run.sh` (the seed module: three repositories with
/// the production pull policy) and then makes the same three repositories
/// through the portal, and checks both for drift.
pub(crate) async fn seed_workflow(portal: &Portal, moto: &str) -> anyhow::Result<SeedWorkflow> {
    let stamp = crate::seed::now_ms() % 100_000_000;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/terraform/run.sh");
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .args([moto, ACCOUNT, &format!("tf{stamp}")])
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    if !out.status.success() {
        bail!("the Terraform workflow failed: {line}");
    }
    let tf: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("run.sh said {line:?}"))?;
    if let Some(why) = tf["skipped"].as_str() {
        eprintln!("Terraform workflow skipped: {why}");
        return Ok(SeedWorkflow::Skipped(why.to_string()));
    }
    if tf["drift_exit"].as_i64() != Some(0) || tf["repositories"].as_i64() != Some(3) {
        bail!("the Terraform workflow did not end clean: {line}");
    }
    let ms = |k: &str| tf[k].as_f64().unwrap_or(0.0);
    let terraform = (ms("init_ms"), ms("plan_ms"), ms("apply_ms"), ms("drift_plan_ms"));

    let requester = portal.sign_in("bench-requester", "requester").await?;
    let admin = portal.sign_in("bench-seed-admin", "admin").await?;
    let names: Vec<String> = ["istio", "nginxistio", "fargate"].iter().map(|s| format!("pt{stamp}{s}")).collect();
    let t = Instant::now();
    let mut ids = vec![];
    for name in &names {
        let r = portal
            .http
            .post(format!("{}/api/v1/requests", portal.base))
            .header("cookie", &requester)
            .json(&serde_json::json!({
                "name": name, "team": "platform", "cost_center": "cc-1234", "tag_mutability": "MUTABLE",
                "grant_production": true, "justification": "the seed module's templates",
            }))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("submitting {name}: {} {}", r.status(), r.text().await.unwrap_or_default());
        }
        let v: serde_json::Value = r.json().await?;
        let id = v["summary"]["id"].as_i64().context("request id")?;
        let r = portal
            .http
            .post(format!("{}/api/v1/requests/{id}/approve", portal.base))
            .header("cookie", &admin)
            .json(&serde_json::json!({}))
            .send()
            .await?;
        if r.status() != 200 {
            bail!("approving #{id}: {}", r.status());
        }
        ids.push(id);
    }
    for id in &ids {
        until_applied(portal, &admin, *id).await?;
    }
    let portal_apply_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    for name in &names {
        let r = portal
            .http
            .post(format!("{}/api/v1/repositories/check", portal.base))
            .header("cookie", &admin)
            .json(&serde_json::json!({"name": format!("crytera/{name}")}))
            .send()
            .await?;
        let v: serde_json::Value = r.json().await?;
        if v["drifted"].as_u64() != Some(0) {
            bail!("the portal found drift on {name}: {v}");
        }
    }
    let portal_drift_ms = t.elapsed().as_secs_f64() * 1000.0;
    Ok(SeedWorkflow::Measured { terraform, portal_apply_ms, portal_drift_ms })
}
