//! The benchmark's table: each budget, what was measured, met or missed.
use crate::measure::{ApplyStats, Approvals, Bundle, Latency, SeedWorkflow};
use crate::target::Load;
use crate::{APPROVERS, PAGE_RATE};
use std::path::Path;

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) notes: Vec<String>,
    pub(crate) ready_ms: Vec<f64>,
    pub(crate) rss_idle_kb: u64,
    pub(crate) rss_load_kb: u64,
    /// Each page: its size, at PAGE_RATE (open loop), flat out (wrk).
    pub(crate) pages: Vec<(String, usize, Load, Load)>,
    pub(crate) approvals: Option<Approvals>,
    pub(crate) approve_to_applied: Option<Latency>,
    pub(crate) apply: Option<ApplyStats>,
    pub(crate) seed_workflow: Option<SeedWorkflow>,
    pub(crate) bundle: Option<Bundle>,
    pub(crate) first_load: Option<Vec<(String, u64, String)>>,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

impl Report {
    pub(crate) fn note(&mut self, s: String) {
        eprintln!("{s}");
        self.notes.push(s);
    }

    pub(crate) fn render(&self, events: usize, requests: usize, repos: usize, secs: u64) -> String {
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
        s += &format!(
            "Run on {date}: {cores} cores ({cpu}), release build, moto as AWS, every page rendered on every \
             request (there is no page cache), {secs} s per load, load generator on the same machine. \
             Data: {events} audit events, {requests} requests, {repos} repositories.\n\n"
        );
        for n in &self.notes {
            s += &format!("- {n}\n");
        }
        let socket_errors: u64 = self.pages.iter().map(|p| p.3.socket_errors).sum();
        if socket_errors > 0 {
            s += &format!("- wrk saw {socket_errors} socket errors over all rows (every answer was a success)\n");
        }
        s += &format!(
            "\n| page | bytes | at {PAGE_RATE}/s: p50 ms | p99 ms | flat out: req/s | p50 ms | p99 ms |\n\
             |---|---:|---:|---:|---:|---:|---:|\n"
        );
        for (name, size, steady, flat) in &self.pages {
            s += &format!(
                "| {name} | {size} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} |\n",
                steady.p50_ms, steady.p99_ms, flat.rps, flat.p50_ms, flat.p99_ms
            );
        }
        s += "\n| budget | measured | |\n|---|---|---|\n";
        if let Some(SeedWorkflow::Measured {
            terraform: (init, plan, apply, drift),
            portal_apply_ms,
            portal_drift_ms,
        }) = &self.seed_workflow
        {
            let tf = plan + apply;
            s += &format!(
                "| the seed module's workflow: 3 repositories with the production pull policy (no budget) | \
                 Terraform plan + apply {:.1} s (init {:.1} s more); the portal, submit → approved → applied, \
                 {:.1} s: **{:.0}x faster** | |\n",
                tf / 1000.0,
                init / 1000.0,
                portal_apply_ms / 1000.0,
                tf / portal_apply_ms.max(1.0)
            );
            s += &format!(
                "| drift check of those 3 (no budget) | `terraform plan` {:.1} s; the portal's check {:.2} s: \
                 **{:.0}x faster** | |\n",
                drift / 1000.0,
                portal_drift_ms / 1000.0,
                drift / portal_drift_ms.max(1.0)
            );
        } else if let Some(SeedWorkflow::Skipped(why)) = &self.seed_workflow {
            s += &format!("| the seed module's workflow | skipped: {why} | |\n");
        }
        if let Some(l) = &self.approve_to_applied {
            s += &format!(
                "| approve → applied p50 ≤ 100 ms | {} requests approved one at a time: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
                 (AssumeRole, CreateRepository, verification read, recorded) | {} |\n",
                l.count,
                l.p50_ms,
                l.p99_ms,
                l.max_ms,
                verdict(l.p50_ms <= 100.0)
            );
        }
        if !self.pages.is_empty() {
            let (worst, name) = self
                .pages
                .iter()
                .map(|p| (p.2.p99_ms, p.0.clone()))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap_or((0.0, String::new()));
            let slowest = self.pages.iter().map(|p| p.2.rps).fold(f64::INFINITY, f64::min);
            s += &format!(
                "| every page p99 ≤ 25 ms at {PAGE_RATE} req/s | worst p99 {worst:.1} ms ({name}); every page kept up \
                 ({slowest:.0} req/s or more) | {} |\n",
                verdict(worst <= 25.0 && slowest >= f64::from(PAGE_RATE) * 0.95)
            );
        }
        if let Some(a) = &self.approvals {
            s += &format!(
                "| {APPROVERS} concurrent approvers p99 ≤ 150 ms (`synchronous = FULL`) | {} approvals in {:.1} s: \
                 p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (p50 / max of each approver's 1st, 2nd, ... approval: {}) | {} |\n",
                a.count,
                a.seconds,
                a.p50_ms,
                a.p99_ms,
                a.max_ms,
                a.rounds.iter().map(|(p50, max)| format!("{p50:.1} / {max:.1} ms")).collect::<Vec<_>>().join(", "),
                verdict(a.p99_ms <= 150.0)
            );
        }
        if let Some(b) = &self.bundle {
            let wasm = &b.files[0];
            let js = &b.files[1];
            s += &format!(
                "| release hydrate bundle ≤ 250 KB gzip | wasm {:.0} KB raw, {:.0} KB gzip, {:.0} KB brotli; JS {:.1} KB gzip | {} |\n",
                wasm.1 as f64 / 1024.0,
                wasm.2 as f64 / 1024.0,
                wasm.3 as f64 / 1024.0,
                js.2 as f64 / 1024.0,
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

pub(crate) const BEGIN: &str = "<!-- portal benchmark: begin (written by `bash .ci/bench`) -->";
pub(crate) const END: &str = "<!-- portal benchmark: end -->";

pub(crate) fn write_section(path: &Path, table: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{BEGIN}\n## The portal benchmark\n\n{table}\n{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &old[..a], &old[b + END.len()..]),
        _ => format!("{old}\n{section}\n"),
    };
    std::fs::write(path, new)?;
    Ok(())
}
