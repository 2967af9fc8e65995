//! The server under test: the release binary started on the seeded
//! database, and the loads put on it (open loop at a fixed rate, and wrk).
use crate::measure::percentiles;
use crate::{ACCOUNT, PRODUCTION};
use anyhow::{bail, Context};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub(crate) struct Portal {
    pub(crate) child: tokio::process::Child,
    pub(crate) base: String,
    pub(crate) ready_ms: f64,
    pub(crate) max_rss_kb: u64,
    pub(crate) http: reqwest::Client,
}

impl Portal {
    pub(crate) async fn start(bin: &Path, site: &Path, db: &Path, aws: &str, worker: bool) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let started = Instant::now();
        let child = tokio::process::Command::new(bin)
            .env("ECR_PORTAL_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("ECR_PORTAL_SERVER__SITE_ROOT", site)
            .env("ECR_PORTAL_DATABASE__PATH", db)
            .env("ECR_PORTAL_AWS__LOCAL_ENDPOINT", aws)
            .env("ECR_PORTAL_AWS__STAGING_ROLE_ARN", format!("arn:aws:iam::{ACCOUNT}:role/ecr-portal-apply"))
            .env("ECR_PORTAL_AWS__PRODUCTION_ACCOUNT_ID", PRODUCTION)
            .env("ECR_PORTAL_AWS__PRODUCTION_ROLE_ARN", "")
            .env("ECR_PORTAL_WORKER__ENABLED", if worker { "true" } else { "false" })
            .env("ECR_PORTAL_WORKER__POLL_INTERVAL_MS", "100")
            .env("ECR_PORTAL_WORKER__DRIFT_CHECK_SECONDS", "86400")
            // The benchmark signs in many people from one address, and one requester holds many requests.
            .env("ECR_PORTAL_AUTH__SIGN_IN_PER_MINUTE", "100000")
            .env("ECR_PORTAL_APPROVAL__MAX_OPEN_PER_USER", "100000")
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

    pub(crate) fn rss_kb(&self) -> u64 {
        let Some(pid) = self.child.id() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    }

    pub(crate) fn sample_rss(&mut self) {
        self.max_rss_kb = self.max_rss_kb.max(self.rss_kb());
    }

    /// Signs in; returns the session cookie (`name=value`).
    pub(crate) async fn sign_in(&self, user: &str, role: &str) -> anyhow::Result<String> {
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

    pub(crate) async fn get(&self, cookie: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        let r = self.http.get(format!("{}{path}", self.base)).header("cookie", cookie).send().await?;
        if !r.status().is_success() {
            bail!("GET {path}: {}", r.status());
        }
        Ok(r.bytes().await?.to_vec())
    }

    /// Requests at a fixed rate for `secs` seconds, each sent on time whether
    /// or not the ones before have been answered (open loop); latencies from
    /// send to the last byte.
    pub(crate) async fn paced(&self, path: &str, cookie: &str, rate: u32, secs: u64) -> anyhow::Result<Load> {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = vec![];
        let started = Instant::now();
        for _ in 0..rate as u64 * secs {
            tick.tick().await;
            let (http, url, cookie) = (self.http.clone(), format!("{}{path}", self.base), cookie.to_string());
            tasks.push(tokio::spawn(async move {
                let s = Instant::now();
                let r = http.get(url).header("cookie", cookie).send().await?;
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

    /// One wrk run flat out (one thread, 8 connections); RSS is sampled while it goes.
    pub(crate) async fn wrk(&mut self, script: &Path, path: &str, cookie: &str, secs: u64) -> anyhow::Result<Load> {
        let mut cmd = tokio::process::Command::new("wrk");
        cmd.args(["-t1", "-c8", &format!("-d{secs}s"), "--timeout", "5s", "-s"]).arg(script);
        cmd.args(["-H", &format!("Cookie: {cookie}")]);
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

    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

pub(crate) const WRK_REPORT: &str = r#"
done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("JSON {\"rps\": %f, \"p50\": %f, \"p99\": %f, \"requests\": %d, \"non2xx\": %d, \"errors\": %d}\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.requests, non2xx, errors))
end
"#;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Connections wrk saw fail (at most 0.1% of its requests, or the run fails).
    pub(crate) socket_errors: u64,
}
