//! Seeding: moto with the repositories, SQLite with a long history written
//! through the portal's own insert path (the hash chain included).
use crate::{ACCOUNT, ONE_BY_ONE, PENDING, PRODUCTION, START_MS};
use anyhow::{bail, Context};
use app::domain::audit::AuditAction;
use app::domain::form::RepositoryRequestInput;
use app::domain::name::Namespace;
use app::domain::request::{Request, RequestKind, Status};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::config::Credentials;
use futures::StreamExt;
use server::db::{self, Db, NewEvent};
use std::path::Path;

pub(crate) fn env_or(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

/// A small deterministic generator (no dependency): xorshift.
pub(crate) struct Rng(u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Skewed pick in 0..n: a few values get most of the picks (like people and repositories do).
    pub(crate) fn skewed(&mut self, n: usize) -> usize {
        ((self.unit().powi(3)) * n as f64) as usize % n
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub(crate) fn repo(i: usize) -> String {
    format!("crytera/svc-{i:04}")
}
pub(crate) fn user(i: usize) -> String {
    format!("local:user-{i:03}")
}

pub(crate) async fn staging_ecr(moto: &str) -> anyhow::Result<aws_sdk_ecr::Client> {
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

pub(crate) async fn seed_moto(moto: &str, n: usize) -> anyhow::Result<()> {
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

pub(crate) struct Seeded {
    /// Pending requests for the approval run (repositories that do not exist yet).
    pub(crate) pending: Vec<i64>,
    pub(crate) applied_request: i64,
    /// An event id near the start of the history: a deep page.
    pub(crate) deep_event: i64,
}

pub(crate) async fn seed_db(path: &Path, n_repos: usize, n_requests: usize, n_events: usize) -> anyhow::Result<Seeded> {
    // The portal started on this database later finds the key next to it.
    let (key, _) = server::secret::PortalKey::load_or_create(&path.with_file_name("audit.key"))?;
    let db = Db::connect(path, &key).await?;
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
    for i in 0..PENDING + ONE_BY_ONE {
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

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// How many of the benchmark's new repositories are applied (read-only, beside the running portal).
pub(crate) async fn count_status(path: &Path) -> anyhow::Result<usize> {
    let pool = Db::open_read_only(path).await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM requests WHERE status = 'applied' AND repository LIKE 'crytera/new-%'",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    Ok(usize::try_from(n)?)
}

/// One repository with `n` images (each its own layer, so its own digest), as CI would push them.
pub(crate) async fn seed_images(moto: &str, name: &str, n: usize) -> anyhow::Result<()> {
    let ecr = staging_ecr(moto).await?;
    match ecr.create_repository().repository_name(name).send().await {
        Ok(_) => {}
        Err(e) if format!("{e:?}").contains("RepositoryAlreadyExists") => {}
        Err(e) => bail!("creating {name}: {e:?}"),
    }
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let ecr = ecr.clone();
            async move {
                let d = format!("{i:064x}");
                let manifest = format!(
                    r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"sha256:{d}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1,"digest":"sha256:{d}"}}]}}"#
                );
                match ecr.put_image().repository_name(name).image_manifest(manifest).image_tag(format!("build-{i}")).send().await {
                    Ok(_) => Ok(()),
                    Err(e) if format!("{e:?}").contains("ImageAlreadyExists") => Ok(()),
                    Err(e) => bail!("pushing build-{i}: {e:?}"),
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}
