//! The inventory (what is really in ECR), drift (how the live state differs
//! from what was approved), adoption and accepting the live state.
use super::{aws_unavailable, Error, PortalService};
use crate::aws::{fixes, LiveRepository};
use crate::db::{self, NewEvent, RecordRow};
use app::domain::audit::AuditAction;
use app::domain::name::RepoName;
use app::domain::plan::{self, Plan, PlanStep, PolicyChange};
use app::domain::policy;
use app::domain::principal::{Capability, Principal};
use app::domain::settings::{Lifecycle, RepositorySpec, Tag};
use app::domain::time::Timestamp;
use app::views::{DriftSummary, RepositoriesPage, RepositoriesQuery, RepositoryView};
use futures::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// How many repositories are read from ECR at once for the inventory.
const CONCURRENCY: usize = 8;

/// After this long the worker reads the whole inventory from ECR again (in the background).
pub const INVENTORY_TTL_MS: i64 = 60_000;

/// Repositories re-read one by one (None: gone), with when.
type Patched = HashMap<String, (Option<LiveDetail>, i64)>;
/// When the whole inventory was read, what it holds, and single repositories re-read since.
type Snapshot = (i64, Arc<Vec<LiveDetail>>, Patched);

/// The inventory as last read from ECR: (read at, repositories, repositories
/// re-read one by one since, with when), and the lock one full read holds.
#[derive(Default)]
pub(crate) struct InventoryCache {
    pub data: std::sync::RwLock<Option<Snapshot>>,
    pub refresh: tokio::sync::Mutex<()>,
}

/// One repository as read from ECR: settings, policy, image count, last push.
pub(crate) type LiveDetail = (LiveRepository, Option<Value>, usize, Option<i64>);

impl PortalService {
    pub(crate) fn grant_target(&self) -> Option<(&str, bool)> {
        self.deployment.target.production_account.as_deref().map(|a| (a, self.deployment.target.production_can_list))
    }

    /// Whether `live` lets production pull through the portal's statement, exactly as the portal writes it.
    pub(crate) fn production_can_pull(&self, live: Option<&Value>) -> bool {
        self.grant_target().is_some_and(|(a, l)| policy::grants(live, a, l))
    }

    /// Differences between a repository's live state and its record, in words.
    pub(crate) fn drift_of(&self, record: &RecordRow, live: Option<&LiveRepository>) -> Vec<String> {
        let Some(live) = live else { return vec!["the repository no longer exists in ECR".into()] };
        let mut d = record.spec.as_ref().map(|s| live.differences(s)).unwrap_or_default();
        let statement = policy::portal_statement(live.policy.as_ref());
        match (record.production_access, self.grant_target()) {
            (true, Some((account, list))) if !policy::grants(live.policy.as_ref(), account, list) => {
                d.push(if statement.is_some() {
                    "the policy statement that lets production pull was edited outside the portal".into()
                } else {
                    "production can no longer pull: the portal's policy statement is missing".into()
                })
            }
            (false, _) if statement.is_some() => {
                d.push("the policy lets production pull, which was not approved".into())
            }
            _ => {}
        }
        for g in self.foreign_grants(live.policy.as_ref()) {
            d.push(format!("the policy statement {} {}, which the portal did not approve", g.name, g.why));
        }
        d
    }

    /// Statements of a live policy the portal did not write that let anyone in,
    /// let outsiders write, or reach the production account ([`policy::foreign_grants`]).
    /// Whether production can pull now by any statement: the portal's, or one made by hand.
    pub(crate) fn production_reaches(&self, live: Option<&Value>) -> bool {
        self.production_can_pull(live) || self.foreign_grants(live).iter().any(|g| g.reaches_production)
    }

    pub(crate) fn foreign_grants(&self, live: Option<&Value>) -> Vec<policy::ForeignGrant> {
        policy::foreign_grants(
            live,
            self.deployment.staging_account.as_deref(),
            self.deployment.target.production_account.as_deref(),
        )
    }

    /// The 409 for adopting or accepting a policy that gives production access
    /// nobody approved under the grant's rule.
    fn unapproved_production_grant(name: &RepoName, what: &str) -> Error {
        Error::Conflict(format!(
            "{name}'s live policy {what}, which the portal did not approve. Production access is decided by the \
             production grant's approval rule, so this cannot approve it: ask for production access with a grant \
             request (its approvers see the live policy), or remove the statement in ECR first"
        ))
    }

    /// What the inventory shows of one repository beyond its description: its policy and image stats.
    async fn live_detail(&self, r: LiveRepository) -> LiveDetail {
        let policy = self.live_policy(&r.name).await.unwrap_or(None);
        let images = self.registry.images(&r.name).await.unwrap_or_default();
        let (count, last) = (images.len(), images.iter().map(|i| i.pushed_at).max());
        (r, policy, count, last)
    }

    /// Reads the whole inventory from ECR (one reader at a time) and caches it.
    /// With 2,000 repositories that is ~4,000 ECR calls: it runs in the
    /// background (the worker starts it when the copy is older than
    /// [`INVENTORY_TTL_MS`]), on an admin's "Check drift now", and once at the
    /// first page view; pages otherwise show the cached copy.
    pub async fn refresh_inventory(&self) -> Result<Arc<Vec<LiveDetail>>, Error> {
        let _one = self.inventory.refresh.lock().await;
        let started = self.now();
        let prefix = format!("{}/", self.deployment.namespace);
        let live = self.registry.list(&prefix).await.map_err(|e| aws_unavailable("list repositories", e))?;
        let mut merged: Vec<LiveDetail> =
            futures::stream::iter(live).map(|r| self.live_detail(r)).buffered(CONCURRENCY).collect().await;
        let mut cache = self.inventory.data.write().unwrap_or_else(|p| p.into_inner());
        // A single repository refreshed meanwhile (after an apply) is newer than this read.
        let patched = cache.as_ref().map(|c| c.2.clone()).unwrap_or_default();
        for (name, detail) in patched.iter().filter(|(_, (_, at))| *at >= started).map(|(n, (d, _))| (n, d)) {
            merged.retain(|x| &x.0.name != name);
            if let Some(d) = detail {
                merged.push(d.clone());
            }
        }
        merged.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let merged = Arc::new(merged);
        *cache = Some((started, merged.clone(), Default::default()));
        Ok(merged)
    }

    /// Whether the cached inventory is older than its time to live. Nothing
    /// is read before someone first looks at the inventory.
    pub fn inventory_stale(&self) -> bool {
        let cache = self.inventory.data.read().unwrap_or_else(|p| p.into_inner());
        cache.as_ref().is_some_and(|c| self.now() - c.0 >= INVENTORY_TTL_MS)
    }

    /// Puts a repository the portal has just read back (the apply's
    /// verification) into the cached inventory, without more ECR calls.
    pub(crate) fn put_in_inventory(&self, live: &LiveRepository) {
        let stats = {
            let cache = self.inventory.data.read().unwrap_or_else(|p| p.into_inner());
            cache.as_ref().and_then(|c| c.1.iter().find(|x| x.0.name == live.name).map(|x| (x.2, x.3)))
        };
        let (count, last) = stats.unwrap_or((0, None));
        self.patch_inventory(&live.name, Some((live.clone(), live.policy.clone(), count, last)));
    }

    /// Removes a repository the portal has just deleted from the cached inventory.
    pub(crate) fn forget_in_inventory(&self, name: &str) {
        self.patch_inventory(name, None);
    }

    /// Replaces (or, with None, removes) one repository in the cached inventory.
    fn patch_inventory(&self, name: &str, detail: Option<LiveDetail>) {
        let now = self.now();
        let mut cache = self.inventory.data.write().unwrap_or_else(|p| p.into_inner());
        if let Some((_, list, patched)) = cache.as_mut() {
            // Copies the list only if a page is still reading it.
            let v = Arc::make_mut(list);
            v.retain(|x| x.0.name != name);
            if let Some(d) = &detail {
                v.push(d.clone());
                v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
            }
            patched.insert(name.to_string(), (detail, now));
        }
    }

    /// Starts a background refresh unless one is running (for the worker).
    pub fn refresh_inventory_in_background(self: &Arc<Self>) {
        if self.inventory.refresh.try_lock().is_err() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.refresh_inventory().await {
                tracing::warn!("refreshing the inventory: {e}");
            }
        });
    }

    /// Re-reads one repository into the cached inventory (after the portal changed it).
    pub async fn refresh_repository(&self, name: &str) {
        let detail = match self.registry.describe_settings(name).await {
            Ok(Some(r)) => Some(self.live_detail(r).await),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("re-reading {name} for the inventory: {e}");
                // Make the whole copy stale: the worker reads everything again soon.
                if let Some(c) = self.inventory.data.write().unwrap_or_else(|p| p.into_inner()).as_mut() {
                    c.0 = 0;
                }
                return;
            }
        };
        self.patch_inventory(name, detail);
    }

    /// The cached inventory; read from ECR only if there is none yet.
    async fn live_inventory(&self) -> Result<Arc<Vec<LiveDetail>>, Error> {
        if let Some(c) = self.inventory.data.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(c.1.clone());
        }
        let _wait = self.inventory.refresh.lock().await;
        if let Some(c) = self.inventory.data.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(c.1.clone());
        }
        drop(_wait);
        self.refresh_inventory().await
    }

    /// One repository of the cached inventory as the portal shows it.
    fn view_of(&self, (r, policy, count, last): &LiveDetail, record: Option<&RecordRow>) -> RepositoryView {
        let access = self.production_can_pull(policy.as_ref());
        RepositoryView {
            request_id: record.and_then(|x| x.request_id),
            managed: record.is_some(),
            production_access: access,
            production_until: record
                .filter(|x| x.production_access)
                .and_then(|x| x.production_until)
                .map(Timestamp::from_unix_ms),
            image_count: *count,
            last_push: last.map(Timestamp::from_unix_ms),
            drift: record.map(|x| x.drift.clone()).unwrap_or_default(),
            drift_checked_at: record.and_then(|x| x.checked_at).map(Timestamp::from_unix_ms),
            name: r.name.clone(),
            uri: r.uri.clone(),
            arn: r.arn.clone(),
            created_at: Timestamp::from_unix_ms(r.created_at_ms),
            tag_mutability: r.tag_mutability.to_string(),
            scan_on_push: r.scan_on_push,
            encryption: r.encryption.to_string(),
        }
    }

    /// One page of the inventory: searched and filtered over the whole cached
    /// copy, then only the page's rows are built (2,000 repositories make a
    /// 2.5 MB page otherwise).
    pub async fn inventory(&self, query: &RepositoriesQuery) -> Result<RepositoriesPage, Error> {
        let show = query.show().ok_or_else(|| {
            Error::Invalid(vec![app::domain::form::FieldError::new(
                "show",
                format!("show one of: {}", RepositoriesQuery::SHOW.join(", ")),
            )])
        })?;
        let search = query.search();
        let (offset, limit) = (query.offset(), query.limit());
        let details = self.live_inventory().await?;
        // Names and drift of every record; the full records only for the page.
        let index = db::record_index(&self.db.pool).await?;
        let grant = self.grant_target();
        let drifted = |name: &str| index.get(name).copied().unwrap_or(false);
        let matching: Vec<&LiveDetail> = details
            .iter()
            .filter(|d| search.as_deref().is_none_or(|q| d.0.name.to_lowercase().contains(q)))
            .filter(|d| match show {
                "drift" => drifted(&d.0.name),
                "unmanaged" => !index.contains_key(&d.0.name),
                "production" => grant.is_some_and(|(a, list)| policy::grants(d.1.as_ref(), a, list)),
                _ => true,
            })
            .collect();
        let page: Vec<&LiveDetail> = matching.iter().skip(offset as usize).take(limit as usize).copied().collect();
        let names: Vec<&str> = page.iter().map(|d| d.0.name.as_str()).filter(|n| index.contains_key(*n)).collect();
        let records = db::records_named(&self.db.pool, &names).await?;
        let repositories: Vec<RepositoryView> = page.iter().map(|d| self.view_of(d, records.get(&d.0.name))).collect();
        let end = offset as usize + repositories.len();
        Ok(RepositoriesPage {
            total: details.len(),
            drifted: details.iter().filter(|d| drifted(&d.0.name)).count(),
            next_offset: (end < matching.len()).then_some(end as u32),
            matching: matching.len(),
            repositories,
            offset,
            limit,
        })
    }

    async fn one_view(&self, name: &str) -> Result<RepositoryView, Error> {
        let details = self.live_inventory().await?;
        let detail = details
            .iter()
            .find(|d| d.0.name == name)
            .ok_or_else(|| Error::NotFound(format!("there is no repository {name} in ECR")))?;
        let mut conn = self.db.pool.acquire().await?;
        let record = db::get_record(&mut conn, name).await?;
        Ok(self.view_of(detail, record.as_ref()))
    }

    /// Compares managed repositories (all, or one) with what was approved; records
    /// the result, and audits each change of drift state.
    pub async fn run_drift_check(&self, actor: &str, only: Option<&RepoName>) -> Result<DriftSummary, Error> {
        let records = db::list_records(&self.db.pool).await?;
        let mut summary = DriftSummary { checked: 0, drifted: 0 };
        for rec in records.into_iter().filter(|r| only.is_none_or(|n| n.as_str() == r.name)) {
            let live =
                self.registry.describe(&rec.name).await.map_err(|e| aws_unavailable("read the repository", e))?;
            let mut drift = self.drift_of(&rec, live.as_ref());
            if live.is_some() {
                drift.extend(self.release_drift(&rec.name).await?);
            }
            let now = self.now();
            let mut tx = self.db.write().await?;
            // Re-read inside the transaction: a request may have just changed the record.
            let Some(mut current) = db::get_record(&mut tx, &rec.name).await? else { continue };
            if current != rec {
                continue;
            }
            let changed = current.drift != drift;
            current.drift = drift.clone();
            current.checked_at = Some(now);
            db::upsert_record(&mut tx, &current).await?;
            if changed && !drift.is_empty() {
                let notice = app::domain::notify::Notice {
                    event: app::domain::notify::NotifyEvent::DriftFound,
                    request: None,
                    repository: Some(rec.name.clone()),
                    detail: drift.join("; "),
                    link: format!("{}/repositories?show=drift", self.notifier.public_url),
                    approver_groups: Vec::new(),
                };
                self.enqueue(&mut tx, &notice, current.request_id, None).await?;
            }
            if changed {
                let (action, detail) = if drift.is_empty() {
                    (AuditAction::DriftResolved, "the live state matches the approved state again".to_string())
                } else {
                    (AuditAction::DriftDetected, drift.join("; "))
                };
                db::insert_event(
                    &mut tx,
                    &NewEvent {
                        at: now,
                        actor,
                        action,
                        request_id: current.request_id,
                        repository: Some(&rec.name),
                        detail,
                        aws_request_ids: live.map(|l| l.request_ids).unwrap_or_default(),
                    },
                )
                .await?;
            }
            tx.commit().await?;
            // Counted only when recorded (a record changed meanwhile is skipped above).
            summary.checked += 1;
            summary.drifted += usize::from(!drift.is_empty());
        }
        Ok(summary)
    }

    /// The settings as they are live, if the portal can express them.
    pub(super) fn spec_from_live(name: &RepoName, live: &LiveRepository) -> Option<RepositorySpec> {
        let lifecycle = Lifecycle::from_policy(live.lifecycle_policy.as_ref())?;
        let mut tags: Vec<Tag> =
            live.tags.iter().filter(|t| app::domain::form::is_required_tag(&t.key)).cloned().collect();
        tags.sort();
        Some(RepositorySpec {
            name: name.clone(),
            tag_mutability: live.tag_mutability,
            tag_mutability_exclusions: live.tag_mutability_exclusions.clone(),
            scan_on_push: live.scan_on_push,
            encryption: live.encryption.clone(),
            lifecycle,
            tags,
        })
    }

    /// Writes a record and its audit event, if the record is still as it was read
    /// (`expected`; `None`: it must not exist yet). Otherwise nothing is written.
    async fn write_record(
        &self,
        by: &Principal,
        rec: &RecordRow,
        expected: Option<&RecordRow>,
        action: AuditAction,
        detail: String,
    ) -> Result<(), Error> {
        let mut tx = self.db.write().await?;
        let current = db::get_record(&mut tx, &rec.name).await?;
        if current.as_ref() != expected {
            return Err(Error::Conflict(format!(
                "{} changed while you were looking at it (a request or drift check just updated it); reload and try again",
                rec.name
            )));
        }
        db::upsert_record(&mut tx, rec).await?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: self.now(),
                actor: &by.id,
                action,
                request_id: rec.request_id,
                repository: Some(&rec.name),
                detail,
                aws_request_ids: vec![],
            },
        )
        .await?;
        tx.commit().await.map_err(Error::from)
    }

    /// The record of a repository adopted as it is live: its settings approved (when the
    /// portal can express its lifecycle), production access not; statements that let
    /// outsiders write show as drift from the start.
    pub(super) fn adopted_record(&self, name: &RepoName, live: &LiveRepository) -> RecordRow {
        let now = self.now();
        let mut rec = RecordRow {
            name: name.to_string(),
            spec: Self::spec_from_live(name, live),
            production_access: false,
            production_until: None,
            request_id: None,
            adopted_at: Some(now),
            drift: Vec::new(),
            checked_at: Some(now),
        };
        rec.drift = self.drift_of(&rec, Some(live));
        rec
    }

    /// Takes a repository made outside the portal into its records, as it is.
    pub async fn adopt_repository(&self, by: &Principal, repository: &str) -> Result<RepositoryView, Error> {
        let name = RepoName::parse(&self.deployment.namespace, repository)
            .map_err(|e| Error::Invalid(vec![app::domain::form::FieldError::new("repository", e.to_string())]))?;
        let mut conn = self.db.pool.acquire().await?;
        if db::get_record(&mut conn, name.as_str()).await?.is_some() {
            return Err(Error::Conflict(format!("{name} is already in the portal's records")));
        }
        drop(conn);
        let live = self
            .registry
            .describe(name.as_str())
            .await
            .map_err(|e| aws_unavailable("read the repository", e))?
            .ok_or_else(|| Error::NotFound(format!("there is no repository {name} in ECR")))?;
        // Adopting approves nothing about production: a grant goes through its own rule.
        if policy::portal_statement(live.policy.as_ref()).is_some() {
            return Err(Self::unapproved_production_grant(&name, "lets production pull"));
        }
        if let Some(g) = self.foreign_grants(live.policy.as_ref()).into_iter().find(|g| g.reaches_production) {
            return Err(Self::unapproved_production_grant(
                &name,
                &format!("has the statement {} that {}", g.name, g.why),
            ));
        }
        let rec = self.adopted_record(&name, &live);
        let detail = match rec.spec {
            Some(_) => "adopted as it is; production access: no".to_string(),
            None => {
                "adopted; its lifecycle policy is not one of the portal's presets, so only access is managed".into()
            }
        };
        self.write_record(by, &rec, None, AuditAction::RepositoryAdopted, detail).await?;
        self.one_view(name.as_str()).await
    }

    /// Makes the live state the approved one (drift resolved by accepting it).
    pub async fn accept_live(&self, by: &Principal, repository: &str) -> Result<RepositoryView, Error> {
        let name = RepoName::parse(&self.deployment.namespace, repository)
            .map_err(|e| Error::Invalid(vec![app::domain::form::FieldError::new("repository", e.to_string())]))?;
        let mut conn = self.db.pool.acquire().await?;
        let read = db::get_record(&mut conn, name.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(format!("{name} is not in the portal's records; adopt it instead")))?;
        drop(conn);
        let mut rec = read.clone();
        let live = self
            .registry
            .describe(name.as_str())
            .await
            .map_err(|e| aws_unavailable("read the repository", e))?
            .ok_or_else(|| Error::Conflict(format!("{name} no longer exists in ECR; there is nothing to accept")))?;
        let statement = policy::portal_statement(live.policy.as_ref());
        let access = self.production_can_pull(live.policy.as_ref());
        if statement.is_some() && !access {
            return Err(Error::Conflict(
                "the portal's policy statement was edited by hand; the portal cannot adopt an edited grant. \
                 Restore it (re-apply) or revoke production access instead"
                    .into(),
            ));
        }
        if access && !read.production_access {
            return Err(Self::unapproved_production_grant(&name, "lets production pull"));
        }
        if let Some(g) = self.foreign_grants(live.policy.as_ref()).first() {
            return Err(if g.reaches_production {
                Self::unapproved_production_grant(&name, &format!("has the statement {} that {}", g.name, g.why))
            } else {
                Error::Conflict(format!(
                    "{name}'s live policy has the statement {} that {}; accepting cannot approve that. Remove it in \
                     ECR (a restore keeps statements the portal does not own), then check drift again",
                    g.name, g.why
                ))
            });
        }
        if rec.spec.is_some() {
            rec.spec = Some(Self::spec_from_live(&name, &live).ok_or_else(|| {
                Error::Conflict(
                    "the live lifecycle policy is not one of the portal's presets; restore it instead".into(),
                )
            })?);
        }
        let before = rec.drift.join("; ");
        rec.production_access = access;
        if !access {
            rec.production_until = None;
        }
        rec.drift = Vec::new();
        rec.checked_at = Some(self.now());
        self.write_record(
            by,
            &rec,
            Some(&read),
            AuditAction::DriftAccepted,
            format!("accepted the live state ({before})"),
        )
        .await?;
        self.one_view(name.as_str()).await
    }

    /// The plan of a restore request: the fixes from the live state to the record.
    pub(crate) async fn restore_plan(&self, repository: &RepoName, approved_policy: Option<Option<Value>>) -> Plan {
        let name = repository.as_str();
        let blocked = |why: String| Plan { blocked: Some(why), ..Plan::default() };
        let mut conn = match self.db.pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("restore plan: {e}");
                return blocked("could not read the portal's records; try again".into());
            }
        };
        let rec = match db::get_record(&mut conn, name).await {
            Ok(Some(r)) => r,
            Ok(None) => return blocked(format!("{name} is not in the portal's records")),
            Err(e) => {
                tracing::error!("restore plan for {name}: {e}");
                return blocked("could not read the portal's records; try again".into());
            }
        };
        drop(conn);
        let live = match self.registry.describe(name).await {
            Ok(Some(l)) => l,
            Ok(None) => return blocked(format!("{name} no longer exists in ECR")),
            Err(e) => {
                tracing::warn!("restore plan for {name}: {e}");
                return blocked(format!("could not read {name} from ECR right now; try again"));
            }
        };
        let mut steps: Vec<PlanStep> = Vec::new();
        if let Some(role) = &self.deployment.target.staging_role_arn {
            steps.push(PlanStep {
                call: "sts:AssumeRole".into(),
                summary: "Get temporary credentials in the staging account".into(),
                params: vec![("RoleArn".into(), role.clone())],
                document: None,
            });
        }
        let mut notes = Vec::new();
        if let Some(spec) = &rec.spec {
            let (todo, impossible) = fixes(&live, spec);
            notes = impossible;
            steps.extend(todo.iter().map(|f| PlanStep {
                call: f.call().into(),
                summary: format!("Put back the approved setting: {}", f.describe()),
                params: vec![("repositoryName".into(), name.to_string())],
                document: match f {
                    crate::aws::Fix::Lifecycle(Some(p)) => serde_json::to_string_pretty(p).ok(),
                    _ => None,
                },
            }));
        }
        let before = approved_policy.unwrap_or(live.policy.clone());
        let account = self.deployment.target.production_account.as_deref();
        let wanted = rec.production_access.then_some(self.deployment.target.production_can_list);
        let policy_change = match policy::with_production(before.as_ref(), account, wanted) {
            Ok(after) => {
                let change = PolicyChange::new(before.as_ref(), after.as_ref());
                steps.extend(plan::policy_steps(name, &change));
                Some(change)
            }
            Err(e) => return blocked(e.to_string()),
        };
        for n in notes {
            steps.push(PlanStep { call: "(not restorable)".into(), summary: n, params: vec![], document: None });
        }
        Plan { steps, policy: policy_change, ..Plan::default() }
    }
}
impl PortalService {
    pub async fn repositories(&self, by: &Principal, query: RepositoriesQuery) -> Result<RepositoriesPage, Error> {
        self.authorize(by, Capability::ReadRepositories, "see the repositories").await?;
        self.inventory(&query).await
    }

    pub async fn adopt(&self, by: &Principal, repository: String) -> Result<RepositoryView, Error> {
        self.authorize(by, Capability::Operate, "adopt repositories").await?;
        self.adopt_repository(by, &repository).await
    }

    pub async fn check_drift(&self, by: &Principal, repository: Option<String>) -> Result<DriftSummary, Error> {
        self.authorize(by, Capability::Operate, "run drift checks").await?;
        let only = repository
            .map(|n| {
                RepoName::parse(&self.deployment.namespace, &n).map_err(|e| Error::field("repository", e.to_string()))
            })
            .transpose()?;
        let summary = self.run_drift_check(&by.id, only.as_ref()).await?;
        // The admin asked for the live state: read it now.
        match &only {
            Some(name) => self.refresh_repository(name.as_str()).await,
            None => {
                self.refresh_inventory().await?;
            }
        }
        Ok(summary)
    }

    pub async fn accept_drift(&self, by: &Principal, repository: String) -> Result<RepositoryView, Error> {
        self.authorize(by, Capability::Operate, "accept the live state").await?;
        self.accept_live(by, &repository).await
    }
}
