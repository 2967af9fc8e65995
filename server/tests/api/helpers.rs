//! `spawn_app()`: the real application on port 0, a fresh SQLite file, and
//! moto as AWS, in a staging account of its own (so tests run in parallel
//! against one moto without resets). Checks against AWS go through the SDK
//! directly to moto, independently of the portal.
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::Credentials;
use serde_json::{json, Value};
use server::clock::{Clock, ManualClock};
use server::config::{Config, RawConfig};
use server::service::PortalService;
use server::startup::{Application, Overrides};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct TestApp {
    pub base: String,
    pub account: String,
    pub moto: String,
    pub service: Arc<PortalService>,
    pub db_path: std::path::PathBuf,
    /// `http://…/metrics` when `server.metrics_listen` was set.
    pub metrics: Option<String>,
    dir: Option<tempfile::TempDir>,
    stop: tokio::sync::watch::Sender<bool>,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub fn moto_endpoint() -> String {
    std::env::var("TEST_MOTO_ENDPOINT")
        .expect("set TEST_MOTO_ENDPOINT=http://127.0.0.1:PORT to a running moto_server (.ci/test does this)")
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A 12-digit account id unique to this test run and test.
fn fresh_account() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros() as u64;
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("{:012}", (now.wrapping_mul(31).wrapping_add(n * 7919)) % 900_000_000_000 + 100_000_000_000)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut RawConfig)) -> TestApp {
    spawn_app_full(tweak, None).await
}

/// The time tests start at on a manual clock: 2026-11-27 12:00 UTC.
pub const NOON_2026_11_27: i64 = 1_795_780_800_000;

pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(NOON_2026_11_27)))
}

pub async fn spawn_app_full(tweak: impl FnOnce(&mut RawConfig), clock: Option<Arc<ManualClock>>) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    start_app(dir, fresh_account(), tweak, clock).await
}

impl TestApp {
    /// Stops this portal and starts another on the same database, key and
    /// staging account, configured by `tweak` (e.g. in another sign-in mode).
    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut RawConfig)) -> TestApp {
        let _ = self.stop.send(true);
        if let Some(running) = self.running.take() {
            running.await.expect("the portal stops").expect("the portal stops cleanly");
        }
        let dir = self.dir.take().expect("the data directory");
        start_app(dir, self.account.clone(), tweak, None).await
    }
}

async fn start_app(
    dir: tempfile::TempDir,
    account: String,
    tweak: impl FnOnce(&mut RawConfig),
    clock: Option<Arc<ManualClock>>,
) -> TestApp {
    let moto = moto_endpoint();
    let db_path = dir.path().join("portal.db");
    let mut raw = RawConfig::default();
    raw.server.listen = "127.0.0.1:0".into();
    raw.database.path = db_path.display().to_string();
    raw.aws.local_endpoint = moto.clone();
    raw.aws.staging_role_arn = format!("arn:aws:iam::{account}:role/ecr-portal-apply");
    raw.aws.production_role_arn = "arn:aws:iam::222222222222:role/ecr-portal-discover".into();
    raw.worker.poll_interval_ms = 50;
    // Tests sign many people in from one address; the limit's own tests set it low again.
    raw.auth.sign_in_per_minute = 1_000;
    tweak(&mut raw);
    let config = Config::validate(raw).expect("valid test config");
    let clock = clock.map(|c| c as Arc<dyn Clock>);
    // A restart takes the database's lock right after the old portal let it go. This test binary
    // spawns processes from other tests meanwhile, and a child that is between fork and exec still
    // holds a copy of the lock file's descriptor for that instant: wait that out (never on a fresh
    // directory, whose lock nobody holds).
    let mut tries = 0;
    let app = loop {
        let overrides = Overrides { clock: clock.clone(), registry: None };
        match Application::build_with(config.clone(), overrides).await {
            Ok(app) => break app,
            Err(e) if tries < 50 && format!("{e:#}").contains("is in use by another ecr-portal process") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("application builds: {e:#}"),
        }
    };
    let base = format!("http://{}", app.addr());
    let metrics = app.metrics_addr().map(|a| format!("http://{a}/metrics"));
    let stop = app.stopper();
    let service = app.service.clone();
    let running = Some(tokio::spawn(app.run_until_stopped()));
    TestApp { base, account, moto, service, db_path, metrics, dir: Some(dir), stop, running }
}

/// One person's HTTP client with its own cookie jar.
pub struct User {
    pub http: reqwest::Client,
    pub base: String,
}

impl TestApp {
    pub fn anonymous(&self) -> User {
        // A bounded wait: an answer that never comes fails its test with a
        // timeout instead of holding the whole run.
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(std::time::Duration::from_secs(45))
            .build()
            .expect("client");
        User { http, base: self.base.clone() }
    }

    pub async fn sign_in(&self, username: &str, role: &str) -> User {
        let user = self.anonymous();
        let r = user
            .http
            .post(format!("{}/auth/local", self.base))
            .header("accept", "application/json")
            .form(&[("username", username), ("role", role)])
            .send()
            .await
            .expect("sign in");
        assert_eq!(r.status(), 200, "sign-in as {username}");
        user
    }

    /// Signs `username` in on a fresh client; returns the session cookie (`name=value`)
    /// for raw requests that carry it by hand.
    pub async fn session_cookie(&self, username: &str, role: &str) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/auth/local", self.base))
            .header("accept", "application/json")
            .form(&[("username", username), ("role", role)])
            .send()
            .await
            .expect("sign in");
        let set = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("a session cookie");
        set.split(';').next().expect("name=value").to_string()
    }

    /// Runs the apply worker's step once (for tests that turn the worker off).
    pub async fn apply_once(&self) -> server::service::ApplyOutcome {
        self.service.apply_next("test-worker", 60_000).await.expect("apply step")
    }

    /// The marker tag value the portal gives the repository request `id` creates,
    /// computed from the key file the portal wrote (not asked of the portal).
    pub fn marker(&self, id: i64, repository: &str) -> String {
        let key = server::secret::PortalKey::load(&self.db_path.with_file_name("audit.key")).expect("the audit key");
        key.repository_marker(id, repository)
    }

    /// An ECR client acting in this test's staging account, straight to moto.
    pub async fn ecr(&self) -> aws_sdk_ecr::Client {
        let base = moto_config(&self.moto).await;
        let creds = aws_sdk_sts::Client::new(&base)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{}:role/test-inspector", self.account))
            .role_session_name("test")
            .send()
            .await
            .expect("assume role in moto")
            .credentials
            .expect("credentials");
        let assumed = Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "test",
        );
        aws_sdk_ecr::Client::from_conf(aws_sdk_ecr::config::Builder::from(&base).credentials_provider(assumed).build())
    }
}

pub async fn moto_config(moto: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await
}

impl User {
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET");
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let body = r.json().await.unwrap_or(Value::Null);
        crate::openapi::check_answer("GET", path, None, status, &headers, &body);
        (status, body)
    }

    /// One repository's row in the inventory (found with the name search).
    pub async fn repository(&self, full: &str) -> Value {
        let (status, page) = self.get(&format!("/api/v1/repositories?q={full}")).await;
        assert_eq!(status, 200, "{page}");
        let rows = page["repositories"].as_array().expect("a page of repositories");
        rows.iter().find(|r| r["name"] == full).cloned().unwrap_or_else(|| panic!("{full} is not listed: {page}"))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{path}", self.base)).json(&body).send().await.expect("POST");
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let answer = r.json().await.unwrap_or(Value::Null);
        crate::openapi::check_answer("POST", path, Some(&body), status, &headers, &answer);
        (status, answer)
    }

    pub async fn submit(&self, name: &str) -> (u16, Value) {
        self.post("/api/v1/requests", request_body(name)).await
    }

    /// Polls until the request leaves approved/applying (or 20 s pass).
    pub async fn wait_settled(&self, id: i64) -> Value {
        for _ in 0..200 {
            let (_, d) = self.get(&format!("/api/v1/requests/{id}")).await;
            let s = d["summary"]["status"].as_str().unwrap_or("").to_string();
            if s != "approved" && s != "applying" {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("request {id} did not settle");
    }
}

/// Creates an API token through the server function the tokens page uses.
pub async fn create_token(u: &User, name: &str, scope: &str, days: u32) -> (u16, Value) {
    u.post("/rpc/create_token", json!({"name": name, "scope": scope, "days": days})).await
}

pub fn request_body(name: &str) -> Value {
    json!({
        "name": name,
        "team": "platform",
        "cost_center": "cc-1234",
        "justification": "Images for the service mesh templates",
    })
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::SeqCst) + std::process::id() as u64 * 1000)
}

/// The test OpenID Connect provider (`end2end/support/mock-oidc.mjs`, npm
/// oauth2-mock-server behind a strict wrapper) on a free loopback port.
pub struct MockOidc {
    pub issuer: String,
    _child: tokio::process::Child,
}

impl MockOidc {
    pub async fn start() -> Self {
        use tokio::io::AsyncBufReadExt;
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../end2end/support/mock-oidc.mjs");
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the mock OIDC provider (npm ci in end2end/ first; .ci/test does it)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let issuer = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(i) = line.strip_prefix("ISSUER=") {
                    return i.to_string();
                }
            }
            panic!("the mock OIDC provider stopped before printing its issuer");
        })
        .await
        .expect("the mock OIDC provider starts");
        Self { issuer, _child: child }
    }

    /// Queues who signs in at the next authorization request.
    pub async fn next_login(&self, claims: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/__mock/next-login", self.issuer))
            .json(&claims)
            .send()
            .await
            .expect("queue a login");
        assert!(r.status().is_success());
    }
}

/// A portal that signs people in through `oidc`.
pub async fn spawn_oidc_app(oidc: &MockOidc, tweak: impl FnOnce(&mut RawConfig)) -> TestApp {
    let issuer = oidc.issuer.clone();
    spawn_app_with(move |c| {
        c.auth.mode = server::config::AuthMode::Oidc;
        c.oidc.issuer_url = issuer;
        c.oidc.client_id = "ecr-portal".into();
        c.oidc.client_secret = "test-client-secret".into();
        tweak(c);
    })
    .await
}

/// Signs someone in through the provider with these claims; returns their client.
pub async fn oidc_user(app: &TestApp, idp: &MockOidc, claims: Value) -> User {
    idp.next_login(claims).await;
    let b = browser();
    let start = b.get(format!("{}/auth/oidc/start?next=/", app.base)).send().await.expect("start");
    let at_idp = b.get(location(&start)).send().await.expect("authorize");
    let back = b.get(location(&at_idp)).send().await.expect("callback");
    assert_eq!(back.status(), 303, "signed in");
    User { http: b, base: app.base.clone() }
}

/// A browser that does not follow redirects by itself, so each hop can be checked.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(45))
        .build()
        .expect("client")
}

/// A plain HTML form posted from the portal's own pages with a session cookie (no redirects followed).
pub async fn post_form(app: &TestApp, cookie: &str, path: &str, form: &[(&str, String)]) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .header("origin", app.base.clone())
        .form(form)
        .send()
        .await
        .expect("post")
}

/// The plan's step for one AWS call (the first of that name).
pub fn plan_step(request: &Value, call: &str) -> Value {
    request["plan"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["call"] == call)
        .cloned()
        .unwrap_or_else(|| panic!("no {call} in {request}"))
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").and_then(|v| v.to_str().ok()).expect("a redirect").to_string()
}

/// A request's id in a request page answered by the API.
pub fn id_of(v: &Value) -> i64 {
    v["summary"]["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

/// A repository made through the portal (requested by `requester`, approved by `admin`, applied).
pub async fn managed_repo(requester: &User, admin: &User, prefix: &str) -> String {
    managed_repo_with(requester, admin, prefix, json!({})).await
}

/// The same, with settings added to the request (`{"tag_mutability": "MUTABLE"}`).
pub async fn managed_repo_with(requester: &User, admin: &User, prefix: &str, settings: Value) -> String {
    let name = unique(prefix);
    let mut body = request_body(&name);
    body.as_object_mut().expect("object").extend(settings.as_object().cloned().unwrap_or_default());
    let (status, created) = requester.post("/api/v1/requests", body).await;
    assert_eq!(status, 201, "{created}");
    let id = id_of(&created);
    admin.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(admin.wait_settled(id).await["summary"]["status"], "applied");
    format!("crytera/{name}")
}

/// Pushes an image with a tag straight to moto, as CI would; `n` makes the digest distinct
/// (moto derives an image's digest from its layers' digests). Returns the digest. Push times
/// are whole seconds, so it waits one out to keep the order of pushes visible.
pub async fn push_image(app: &TestApp, full: &str, tag: &str, n: u8) -> String {
    let d = format!("{n:02x}").repeat(32);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"sha256:{d}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1,"digest":"sha256:{d}"}}]}}"#
    );
    let out = app
        .ecr()
        .await
        .put_image()
        .repository_name(full)
        .image_manifest(manifest)
        .image_tag(tag)
        .send()
        .await
        .expect("push");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    out.image().and_then(|i| i.image_id()).and_then(|i| i.image_digest()).expect("digest").to_string()
}
