//! Notifications through real local receivers: a generic webhook (signed)
//! and a Slack-compatible one, with the outbox's retries and give-up.
use crate::helpers::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "test-webhook-secret";

#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: String,
}

/// What the receiver answers next: a status, or no answer at all.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    Status(u16),
    Never,
}

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Receiver {
    /// Starts on a free loopback port; returns its base URL.
    pub(crate) async fn start(script: &[Answer]) -> (String, Receiver) {
        let r = Receiver { script: Arc::new(Mutex::new(script.iter().copied().collect())), ..Default::default() };
        async fn take(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
            r.hits.lock().expect("hits").push(Hit { headers, body });
            let next = r.script.lock().expect("script").pop_front().unwrap_or(Answer::Status(200));
            match next {
                Answer::Status(s) => StatusCode::from_u16(s).unwrap_or(StatusCode::OK),
                Answer::Never => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    StatusCode::OK
                }
            }
        }
        let app = axum::Router::new().fallback(take).with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, r)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    /// The delivery ids received so far, in order.
    pub(crate) fn deliveries(&self) -> Vec<String> {
        self.hits().iter().map(|h| header(h, "x-ecr-portal-delivery")).collect()
    }

    /// Waits until `n` deliveries arrived (or fails after 20 s).
    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        for _ in 0..400 {
            let h = self.hits();
            if h.len() >= n {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} deliveries, got {:?}", self.hits().iter().map(|h| h.body.clone()).collect::<Vec<_>>());
    }
}

fn header(h: &Hit, name: &str) -> String {
    h.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

fn body(h: &Hit) -> Value {
    serde_json::from_str(&h.body).expect("a JSON body")
}

/// How a receiver checks a delivery (the README shows the same).
fn signed_by(h: &Hit, secret: &str) -> bool {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(h.body.as_bytes());
    let hex = header(h, "x-ecr-portal-signature-256");
    let Some(hex) = hex.strip_prefix("sha256=") else { return false };
    let Ok(sig) = hex::decode(hex) else { return false };
    mac.verify_slice(&sig).is_ok()
}

fn webhook_app(url: &str) -> impl FnOnce(&mut server::config::RawConfig) + '_ {
    move |c| {
        c.notify.webhook_url = format!("{url}/hook");
        c.notify.webhook_secret = SECRET.into();
        c.notify.retry_base_ms = 50;
        c.notify.retry_max_ms = 200;
    }
}

#[tokio::test]
async fn a_submit_approve_apply_flow_reaches_both_webhooks_in_order_signed() {
    let (hook, webhook) = Receiver::start(&[]).await;
    let (slack_url, slack) = Receiver::start(&[]).await;
    let app = spawn_app_with(|c| {
        webhook_app(&hook)(c);
        c.notify.slack_webhook_url = format!("{slack_url}/services/T000/B000/XXXX");
    })
    .await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let mut req = request_body(&unique("notified"));
    req["justification"] = json!("<!channel> please & thanks <b>now</b>");
    let (_, created) = alice.post("/api/v1/requests", req).await;
    let id = created["summary"]["id"].as_i64().expect("id");
    bob.post(&format!("/api/v1/requests/{id}/approve"), json!({"comment": "ok"})).await;
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");

    let hits = webhook.wait_for(3).await;
    let events: Vec<String> = hits.iter().map(|h| header(h, "x-ecr-portal-event")).collect();
    assert_eq!(events, ["request.submitted", "request.approved", "request.applied"]);
    for h in &hits {
        assert!(signed_by(h, SECRET), "a valid signature on {}", h.body);
        assert!(!signed_by(h, "another secret"));
        let b = body(h);
        assert_eq!(b["event"].as_str(), Some(header(h, "x-ecr-portal-event").as_str()));
        assert_eq!(b["delivery"].as_str(), Some(header(h, "x-ecr-portal-delivery").as_str()));
        assert!(uuid::Uuid::parse_str(b["delivery"].as_str().unwrap_or("")).is_ok(), "{b}");
        assert!(time::OffsetDateTime::parse(
            b["occurred_at"].as_str().unwrap_or(""),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok());
        assert_eq!(b["request"]["id"], id);
        assert_eq!(b["link"], format!("{}/requests/{id}", app.base));
        // Nothing secret travels: not the webhook's secret, not a session id.
        assert!(!h.body.contains(SECRET) && !h.body.contains("ecr_portal_session"), "{}", h.body);
    }
    assert_eq!(body(&hits[2])["request"]["status"], "applied");

    // The Slack-compatible receiver gets the same events as text, typed text escaped.
    let texts: Vec<String> =
        slack.wait_for(3).await.iter().map(|h| body(h)["text"].as_str().unwrap_or("").to_string()).collect();
    assert!(texts[0].starts_with("*New request waiting for approval*: #"), "{texts:?}");
    assert!(texts[0].contains("&lt;!channel&gt; please &amp; thanks &lt;b&gt;now&lt;/b&gt;"), "{texts:?}");
    assert!(!texts.iter().any(|t| t.contains("<!channel>")));
    assert!(texts[2].contains(&format!("<{}/requests/{id}|Open in ecr-portal>", app.base)), "{texts:?}");

    // The request's timeline says who was notified.
    for _ in 0..100 {
        let (_, d) = alice.get(&format!("/api/v1/requests/{id}")).await;
        let sent =
            d["timeline"].as_array().expect("timeline").iter().filter(|e| e["action"] == "notification_sent").count();
        if sent == 6 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("six notification_sent events on the timeline");
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_event_once_more_under_the_same_delivery_id() {
    let (hook, webhook) = Receiver::start(&[Answer::Status(500), Answer::Status(503)]).await;
    let app = spawn_app_with(webhook_app(&hook)).await;
    let alice = app.sign_in("alice", "requester").await;
    let (_, created) = alice.submit(&unique("flaky")).await;
    let id = created["summary"]["id"].as_i64().expect("id");
    let hits = webhook.wait_for(3).await;
    let ids: Vec<String> = hits.iter().map(|h| header(h, "x-ecr-portal-delivery")).collect();
    assert!(ids.iter().all(|d| *d == ids[0]), "one delivery id across retries: {ids:?}");
    assert!(hits.iter().all(|h| h.body == hits[0].body), "the same bytes each time");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(webhook.hits().len(), 3, "accepted once, then not sent again");
    let aude = app.sign_in("aude", "auditor").await;
    let (_, audit) = aude
        .get(&format!(
            "/api/v1/audit?action=notification_sent&repository={}",
            created["summary"]["repository"].as_str().unwrap_or("")
        ))
        .await;
    let detail = audit["events"][0]["detail"].as_str().unwrap_or("").to_string();
    assert!(detail.contains("attempt 3") && detail.contains(&ids[0]), "{detail}");
    assert_eq!(audit["events"][0]["request_id"], id);
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_given_up_and_the_audit_trail_says_so() {
    let (hook, webhook) = Receiver::start(&[Answer::Never, Answer::Never, Answer::Never]).await;
    let clock = manual_clock();
    let app = spawn_app_full(
        |c| {
            webhook_app(&hook)(c);
            c.notify.timeout_ms = 200;
            c.notify.give_up_after_minutes = 10;
        },
        Some(clock.clone()),
    )
    .await;
    let alice = app.sign_in("alice", "requester").await;
    alice.submit(&unique("silent")).await;
    webhook.wait_for(1).await;
    // The first attempt runs out of time and is recorded for a retry.
    let mut recorded = false;
    for _ in 0..100 {
        let rows = server::db::list_outbox(&app.service.db.pool, None, 10).await.expect("outbox");
        if rows.first().is_some_and(|r| r.attempts == 1) {
            assert_eq!(rows[0].status, "pending");
            assert_eq!(rows[0].last_error.as_deref(), Some("the receiver did not answer in time"));
            recorded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recorded, "the first attempt was recorded");
    // Eleven minutes later (on the portal's clock), the next attempt is the last.
    clock.advance_ms(11 * 60_000);
    webhook.wait_for(2).await;
    let aude = app.sign_in("aude", "auditor").await;
    for _ in 0..100 {
        let (_, audit) = aude.get("/api/v1/audit?action=notification_failed").await;
        if let Some(e) = audit["events"].as_array().and_then(|a| a.first()) {
            let d = e["detail"].as_str().unwrap_or("");
            assert!(d.contains("gave up after 2 attempt(s)") && d.contains("did not answer in time"), "{d}");
            // And it is not tried again.
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(webhook.hits().len(), 2);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a notification_failed event");
}

#[tokio::test]
async fn without_channels_nothing_is_queued_and_bad_channel_settings_are_refused() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice", "requester").await;
    alice.submit(&unique("quiet")).await;
    let rows = server::db::list_outbox(&app.service.db.pool, None, 10).await.expect("outbox");
    assert!(rows.is_empty());
    let mut raw = server::config::RawConfig::default();
    raw.notify.webhook_url = "http://127.0.0.1:9/hook".into();
    let err = server::config::Config::validate(raw.clone()).expect_err("no secret").to_string();
    assert!(err.contains("notify.webhook_secret"), "{err}");
    raw.notify.webhook_secret = "s".into();
    raw.notify.webhook_events = vec!["request.nope".into()];
    let err = server::config::Config::validate(raw).expect_err("bad event").to_string();
    assert!(err.contains("notify.webhook_events") && err.contains("request.nope"), "{err}");
}

fn events_of(r: &Receiver, event: &str) -> Vec<Value> {
    r.hits().iter().filter(|h| header(h, "x-ecr-portal-event") == event).map(body).collect()
}

async fn settle() {
    // The sender polls every 50 ms in tests; reminders are looked for on each round after the clock moved.
    tokio::time::sleep(Duration::from_millis(600)).await;
}

/// The events of one kind once there are at least `n` (or after 15 s, however many there are):
/// a loaded machine may take longer than one `settle` to deliver what is due.
async fn at_least(r: &Receiver, event: &str, n: usize) -> Vec<Value> {
    for _ in 0..150 {
        let got = events_of(r, event);
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    events_of(r, event)
}

#[tokio::test]
async fn waiting_requests_are_reminded_once_a_period_and_ending_grants_are_announced_once() {
    let (hook, webhook) = Receiver::start(&[]).await;
    let clock = manual_clock();
    let app = spawn_app_full(webhook_app(&hook), Some(clock.clone())).await;
    let alice = app.sign_in("alice", "requester").await;
    let (_, waiting) = alice.submit(&unique("waiting")).await;
    let waiting_id = waiting["summary"]["id"].as_i64().expect("id");
    webhook.wait_for(1).await;

    clock.advance_ms(23 * 3_600_000);
    settle().await;
    assert!(events_of(&webhook, "request.reminder").is_empty(), "not yet a day");
    clock.advance_ms(2 * 3_600_000);
    let reminders = at_least(&webhook, "request.reminder", 1).await;
    assert_eq!(reminders.len(), 1, "one reminder after a day");
    assert_eq!(reminders[0]["request"]["id"], waiting_id);
    assert!(reminders[0]["detail"].as_str().unwrap_or("").contains("25 hours"), "{}", reminders[0]);
    clock.advance_ms(3_600_000);
    settle().await;
    assert_eq!(events_of(&webhook, "request.reminder").len(), 1, "at most once per period");
    clock.advance_ms(23 * 3_600_000);
    assert_eq!(at_least(&webhook, "request.reminder", 2).await.len(), 2, "and again the next day");

    // A temporary grant: announced once when it ends within a day. (Two days on, everyone signs in again.)
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let ecr = app.ecr().await;
    let name = unique("ending");
    let full = format!("crytera/{name}");
    ecr.create_repository().repository_name(&full).send().await.expect("create");
    let (s, grant) = alice
        .post(
            "/api/v1/requests",
            json!({"kind": "grant_production", "repository": full, "justification": "a load test", "until": "2026-12-02"}),
        )
        .await;
    assert_eq!(s, 201, "{grant}");
    let grant_id = grant["summary"]["id"].as_i64().expect("id");
    bob.post(&format!("/api/v1/requests/{grant_id}/approve"), json!({})).await;
    assert_eq!(bob.wait_settled(grant_id).await["summary"]["status"], "applied");
    settle().await;
    assert!(events_of(&webhook, "grant.expiring").is_empty(), "days before its end");
    // The clock is at 2026-11-29 13:00; a grant "until 2026-12-02" ends when that day does
    // (2026-12-03 00:00). Move to within a day of the end.
    clock.advance_ms(2 * 24 * 3_600_000 + 12 * 3_600_000);
    let expiring = at_least(&webhook, "grant.expiring", 1).await;
    assert_eq!(expiring.len(), 1, "{expiring:?}");
    assert_eq!(expiring[0]["request"]["id"], grant_id);
    assert!(
        expiring[0]["detail"].as_str().unwrap_or("").contains("ends on 2026-12-03 00:00:00 UTC"),
        "{}",
        expiring[0]
    );
    clock.advance_ms(2 * 3_600_000);
    settle().await;
    assert_eq!(events_of(&webhook, "grant.expiring").len(), 1, "once per grant");
}

#[tokio::test]
async fn admins_see_the_outbox_and_send_a_test_notification() {
    let (hook, webhook) = Receiver::start(&[]).await;
    let app = spawn_app_with(webhook_app(&hook)).await;
    let alice = app.sign_in("alice", "requester").await;
    let adam = app.sign_in("adam", "admin").await;
    alice.submit(&unique("outboxed")).await;
    webhook.wait_for(1).await;
    assert_eq!(alice.get("/api/v1/notifications").await.0, 403);
    assert_eq!(alice.post("/api/v1/notifications/test", json!({"channel": "webhook"})).await.0, 403);
    let (s, b) = adam.post("/api/v1/notifications/test", json!({"channel": "slack"})).await;
    assert_eq!((s, b["error"]["fields"][0]["field"].as_str()), (422, Some("channel")), "{b}");
    let (s, page) = adam.post("/api/v1/notifications/test", json!({"channel": "webhook"})).await;
    assert_eq!(s, 202, "{page}");
    let hits = webhook.wait_for(2).await;
    assert_eq!(header(&hits[1], "x-ecr-portal-event"), "test");
    assert!(signed_by(&hits[1], SECRET));
    assert!(body(&hits[1])["detail"].as_str().unwrap_or("").contains("local:adam"));
    for _ in 0..100 {
        let (_, page) = adam.get("/api/v1/notifications").await;
        assert_eq!(page["channels"], json!(["webhook"]));
        let rows = page["notifications"].as_array().expect("rows");
        if rows.len() == 2 && rows.iter().all(|r| r["status"] == "delivered") {
            assert_eq!(rows[0]["event"], "test");
            assert_eq!(rows[1]["event"], "request.submitted");
            assert_eq!(rows[1]["attempts"], 1);
            // The page shows the same, and its button is a plain form.
            let html = adam.http.get(format!("{}/notifications", app.base)).send().await.expect("page");
            let html = html.text().await.expect("html");
            assert!(html.contains(r#"action="/notifications/test""#) && html.contains("request.submitted"), "{html}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("both notifications delivered");
}

/// The tests' SMTP server (PyPI aiosmtpd, from the project's venv): every message lands as a JSON file.
struct SmtpSink {
    addr: String,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpSink {
    async fn start() -> Self {
        use tokio::io::AsyncBufReadExt;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let python =
            std::env::var("TEST_PYTHON").unwrap_or_else(|_| root.join("../.venv/bin/python").display().to_string());
        let dir = tempfile::tempdir().expect("dir");
        let mut child = tokio::process::Command::new(python)
            .arg(root.join("tests/support/smtp_sink.py"))
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python with aiosmtpd (.ci/test installs it in .venv)");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("SMTP=") {
                    return a.to_string();
                }
            }
            panic!("the SMTP server stopped before it listened");
        })
        .await
        .expect("the SMTP server starts");
        Self { addr, dir, _child: child }
    }

    /// Waits until `n` messages arrived; returns them oldest first.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..400 {
            let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
                .expect("dir")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            if names.len() >= n {
                names.sort();
                return names
                    .iter()
                    .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json"))
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} emails");
    }
}

/// A message as one reads it: header lines unfolded, quoted-printable soft breaks joined.
fn unfolded(mail: &Value) -> String {
    mail["data"].as_str().unwrap_or("").replace("\r\n", "\n").replace("\n ", " ").replace("=\n", "")
}

#[tokio::test]
async fn approvers_and_requesters_get_email_with_the_right_recipients_subject_and_link() {
    let smtp = SmtpSink::start().await;
    let idp = MockOidc::start().await;
    let addr = smtp.addr.clone();
    let app = spawn_oidc_app(&idp, move |c| {
        c.notify.smtp_url = format!("smtp://{addr}");
        c.notify.email_from = "ecr-portal <ecr-portal@crytera.example>".into();
        c.notify.group_emails = [(
            "ecr-admins".to_string(),
            vec!["platform-team@crytera.example".to_string(), "oncall@crytera.example".to_string()],
        )]
        .into_iter()
        .collect();
        c.notify.email_events = vec!["request.submitted".into(), "request.approved".into(), "request.applied".into()];
        c.notify.retry_base_ms = 50;
    })
    .await;
    let alice =
        oidc_user(&app, &idp, json!({"sub": "alice", "email": "alice@crytera.example", "groups": ["engineering"]}))
            .await;
    let bob =
        oidc_user(&app, &idp, json!({"sub": "bob", "email": "bob@crytera.example", "groups": ["ecr-admins"]})).await;
    let mut req = request_body(&unique("mailed"));
    req["justification"] = json!("<img src=x onerror=alert(1)> for the mesh");
    let (s, created) = alice.post("/api/v1/requests", req).await;
    assert_eq!(s, 201, "{created}");
    let id = created["summary"]["id"].as_i64().expect("id");
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails[0]["to"], json!(["oncall@crytera.example", "platform-team@crytera.example"]), "the approvers");
    assert_eq!(mails[0]["from"], "ecr-portal@crytera.example");
    let data = unfolded(&mails[0]);
    let data = data.as_str();
    assert!(data.contains("Subject: [ecr-portal] New request waiting for approval: #"), "{data}");
    assert!(data.contains(&format!("{}/requests/{id}", app.base)), "the link: {data}");
    assert!(data.contains("text/plain") && data.contains("text/html"), "plain text and HTML: {data}");
    let html = data.split("Content-Type: text/html").nth(1).expect("an HTML part");
    assert!(html.contains("&lt;img src=3Dx"), "typed text escaped in HTML: {html}");
    assert!(!html.contains("<img"), "{html}");

    assert_eq!(bob.post(&format!("/api/v1/requests/{id}/approve"), json!({})).await.0, 200);
    assert_eq!(bob.wait_settled(id).await["summary"]["status"], "applied");
    let mails = smtp.wait_for(3).await;
    for (mail, headline) in mails[1..].iter().zip(["Request approved", "Request applied"]) {
        assert_eq!(mail["to"], json!(["alice@crytera.example"]), "the requester, at her sign-in's address");
        let data = unfolded(mail);
        assert!(data.contains(&format!("Subject: [ecr-portal] {headline}: #{id}")), "{data}");
        assert!(data.contains("X-Ecr-Portal-Delivery: "), "{data}");
    }
    // The request's timeline says who was emailed.
    for _ in 0..100 {
        let (_, d) = alice.get(&format!("/api/v1/requests/{id}")).await;
        let told: Vec<String> = d["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .filter(|e| e["action"] == "notification_sent")
            .map(|e| e["detail"].as_str().unwrap_or("").to_string())
            .collect();
        if told.len() == 3 {
            assert!(
                told[0]
                    .starts_with("email to oncall@crytera.example, platform-team@crytera.example: request.submitted"),
                "{told:?}"
            );
            assert!(told[2].starts_with("email to alice@crytera.example: request.applied"), "{told:?}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("three notification_sent events on the timeline");
}

#[tokio::test]
async fn a_comment_is_notified_to_the_requester_and_the_approvers() {
    let (hook, webhook) = Receiver::start(&[]).await;
    let app = spawn_app_with(webhook_app(&hook)).await;
    let alice = app.sign_in("alice", "requester").await;
    let bob = app.sign_in("bob", "admin").await;
    let (_, created) = alice.submit(&unique("discussed")).await;
    let id = created["summary"]["id"].as_i64().expect("id");
    assert_eq!(
        bob.post(&format!("/api/v1/requests/{id}/comments"), json!({"body": "<b>why</b> this name?"})).await.0,
        201
    );
    webhook.wait_for(2).await;
    let c = events_of(&webhook, "request.commented");
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["request"]["id"], id);
    assert_eq!(c[0]["detail"], "local:bob: <b>why</b> this name?");
}
