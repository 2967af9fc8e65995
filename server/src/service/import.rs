//! Taking repositories over from Terraform (`ecr-portal terraform import`, the
//! import page, `POST /api/v1/terraform/import`).
//!
//! Three steps, and nothing is written unless all of them pass:
//! 1. read every file ([`crate::terraform::read`]); any error (with its file,
//!    line and key) stops the import;
//! 2. decide, per repository: outside the namespace → skipped; already in the
//!    records → nothing to do; in ECR → adopt it as it is live (the same rules
//!    as adopting in the UI: the live settings become the approved ones, and
//!    production access is never approved by an adoption — when the live
//!    policy lets production pull, a grant request is filed and its own rule
//!    decides it); not in ECR → a create request with the file's settings,
//!    checked as the form checks them;
//! 3. write it all in one transaction (records, requests, their audit events,
//!    their notifications). A dry run stops after step 2 and reports.
use super::{aws_unavailable, Error, PortalService};
use crate::db::{self, NewEvent, RecordRow};
use crate::terraform::read::{self, FoundRepository};
use app::domain::audit::AuditAction;
use app::domain::form::{is_required_tag, FieldError, RepositoryRequestInput, MAX_JUSTIFICATION};
use app::domain::name::RepoName;
use app::domain::notify::NotifyEvent;
use app::domain::policy;
use app::domain::principal::{Capability, Principal};
use app::domain::request::{Request, RequestKind, Status};
use app::views::{ImportOutcome, ImportedRepository, TerraformImportInput, TerraformImportReport};
use futures::StreamExt;

/// A repository after the records are checked: to be read from ECR (its name), or already
/// decided (outcome, detail).
type Sorted = Result<RepoName, (ImportOutcome, String)>;

/// What the import will write for one repository.
enum Step {
    Adopt { record: Box<RecordRow>, grant: Option<Request>, detail: String },
    Create { request: Request },
}

/// The file's key for a form field, for errors that name where to fix them.
fn attribute_of(field: &str) -> &str {
    match field {
        "tag_mutability" => "image_tag_mutability",
        "encryption" => "encryption_configuration.encryption_type",
        "kms_key_arn" => "encryption_configuration.kms_key",
        "grant_production" => "policy",
        "scan_on_push" => "image_scanning_configuration.scan_on_push",
        "lifecycle_rules" | "keep_last_images" | "expire_untagged_after_days" => "lifecycle_policy",
        "team" | "cost_center" | "tags" => "tags",
        other => other,
    }
}

impl PortalService {
    pub async fn import_terraform(
        &self,
        by: &Principal,
        input: TerraformImportInput,
    ) -> Result<TerraformImportReport, Error> {
        self.authorize(by, Capability::Operate, "import repositories from Terraform").await?;
        if input.files.iter().all(|f| f.text.trim().is_empty()) {
            return Err(Error::field(
                "files",
                "give a Terraform file (.tf) or the JSON of `terraform show -json`; nothing was imported",
            ));
        }
        // 1. Read (the HCL files together, as one module).
        let mut report = TerraformImportReport { dry_run: input.dry_run, ..Default::default() };
        let mut errors: Vec<FieldError> = Vec::new();
        let mut input = input;
        if let Some(j) = &input.justification {
            match app::domain::text::free_text(j, MAX_JUSTIFICATION, true) {
                Ok(j) => input.justification = Some(j).filter(|j| !j.is_empty()),
                Err(e) => errors.push(FieldError::new("justification", format!("the justification: {e}"))),
            }
        }
        let mut files = Vec::new();
        for (i, f) in input.files.iter().enumerate() {
            let name = f.name.trim();
            let name = if name.is_empty() { format!("file {}", i + 1) } else { name.to_string() };
            match app::domain::text::free_text(&name, 200, false) {
                Ok(n) => files.push((n, f.text.clone())),
                Err(e) => errors.push(FieldError::new("files", format!("file {}'s name: {e}", i + 1))),
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let found: Vec<FoundRepository> = match read::read_all(&files) {
            Ok(r) => {
                report.notes.extend(r.notes);
                r.repositories
            }
            Err(es) => return Err(Error::Invalid(es.iter().map(|e| FieldError::new("file", e.to_string())).collect())),
        };
        let mut seen = std::collections::HashMap::new();
        for r in &found {
            if let Some(first) = seen.insert(r.name.clone(), r.origin.to_string()) {
                let why = format!("{} is already defined at {first}", r.name);
                errors.push(FieldError::new("file", read::ReadError::at(r.origin.clone(), why).to_string()));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        // 2. Decide. What the records say first; then every repository left is read from ECR,
        // a few at a time (an admin importing 400 waits for the reads, not for each in turn).
        let ns = &self.deployment.namespace;
        let mut sorted: Vec<(FoundRepository, Sorted)> = Vec::new();
        let mut conn = self.db.pool.acquire().await?;
        for r in found {
            if !r.name.starts_with(&format!("{ns}/")) {
                sorted.push((r, Err((ImportOutcome::Skipped, format!("outside the namespace {ns}/")))));
                continue;
            }
            let name = match RepoName::parse_full(ns, &r.name) {
                Ok(n) => n,
                Err(e) => {
                    errors
                        .push(FieldError::new("file", read::ReadError::at(r.place("name"), e.to_string()).to_string()));
                    continue;
                }
            };
            let decided = if db::get_record(&mut conn, name.as_str()).await?.is_some() {
                Err((ImportOutcome::AlreadyManaged, "already in the portal's records".into()))
            } else if let Some(id) = db::open_request_about(&mut conn, name.as_str()).await? {
                Err((
                    ImportOutcome::Skipped,
                    format!("request #{id} about it is open; decide it first, then import again"),
                ))
            } else {
                Ok(name)
            };
            sorted.push((r, decided));
        }
        drop(conn);
        let to_read: Vec<RepoName> = sorted.iter().filter_map(|(_, d)| d.as_ref().ok().cloned()).collect();
        let reads: Vec<_> = futures::stream::iter(to_read)
            .map(|name| async move {
                let live = self.registry.describe(name.as_str()).await;
                (name, live)
            })
            .buffered(8)
            .collect()
            .await;
        let mut live_of = std::collections::HashMap::new();
        for (name, live) in reads {
            live_of.insert(name.to_string(), live.map_err(|e| aws_unavailable(&format!("read {name}"), e))?);
        }
        let mut steps: Vec<Step> = Vec::new();
        for (r, decided) in sorted {
            let line = |outcome, detail: String| ImportedRepository {
                repository: r.name.clone(),
                origin: r.origin.to_string(),
                outcome,
                detail,
                request_ids: vec![],
            };
            let name = match decided {
                Ok(name) => name,
                Err((outcome, detail)) => {
                    report.repositories.push(line(outcome, detail));
                    continue;
                }
            };
            match live_of.remove(name.as_str()).flatten() {
                Some(live) => match self.adoption(by, &input, &r, &name, &live) {
                    Ok((step, detail)) => {
                        report.repositories.push(line(ImportOutcome::Adopted, detail));
                        steps.push(step);
                    }
                    Err(why) => report.repositories.push(line(ImportOutcome::Skipped, why)),
                },
                None => match self.creation(by, &input, &r, &mut report.notes) {
                    Ok(request) => {
                        let detail = match &request.kind {
                            RequestKind::CreateRepository { grant_production: true, .. } => {
                                "not in ECR: to be created, with production pull access, once approved"
                            }
                            _ => "not in ECR: to be created once approved",
                        };
                        report.repositories.push(line(ImportOutcome::CreateRequested, detail.into()));
                        steps.push(Step::Create { request });
                    }
                    Err(es) => errors.extend(es),
                },
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        if input.dry_run || steps.is_empty() {
            return Ok(report);
        }
        // 3. Write, all or nothing.
        let mut tx = self.db.write().await?;
        let mut filed: Vec<(String, i64)> = Vec::new();
        let mut adopted = Vec::new();
        for step in steps {
            match step {
                Step::Adopt { record, grant, detail } => {
                    if db::get_record(&mut tx, &record.name).await?.is_some() {
                        return Err(Error::Conflict(format!(
                            "{} was taken into the portal while the import ran; nothing was imported, run it again",
                            record.name
                        )));
                    }
                    db::upsert_record(&mut tx, &record).await?;
                    db::insert_event(
                        &mut tx,
                        &NewEvent {
                            at: self.now(),
                            actor: &by.id,
                            action: AuditAction::RepositoryAdopted,
                            request_id: None,
                            repository: Some(&record.name),
                            detail,
                            aws_request_ids: vec![],
                        },
                    )
                    .await?;
                    if let Some(g) = grant {
                        filed.push((record.name.clone(), self.file_in(&mut tx, by, g).await?));
                    }
                    adopted.push(record.name);
                }
                Step::Create { request } => {
                    filed.push((request.kind.repository().to_string(), self.file_in(&mut tx, by, request).await?));
                }
            }
        }
        tx.commit().await?;
        for (name, id) in filed {
            if let Some(r) = report.repositories.iter_mut().find(|r| r.repository == name) {
                r.request_ids.push(id);
            }
        }
        for name in adopted {
            self.refresh_repository(&name).await;
        }
        Ok(report)
    }

    fn imported_by(&self, by: &Principal) -> String {
        match by.via() {
            Some(v) => format!("imported from Terraform, through {v}"),
            None => "imported from Terraform".into(),
        }
    }

    /// Inserts an imported request with its event and its "submitted" notification.
    async fn file_in(&self, tx: &mut db::WriteTx, by: &Principal, request: Request) -> Result<i64, Error> {
        let id = Self::insert_request_in(tx, &request, self.imported_by(by)).await?;
        let submitted = Request { id, ..request };
        let notice = self.notice(NotifyEvent::RequestSubmitted, &submitted, submitted.justification.clone());
        self.enqueue(tx, &notice, Some(id), None).await?;
        Ok(id)
    }

    /// Adopting a repository the file names and ECR has: its live state is the
    /// approved one; production access, when live, goes to a grant request.
    fn adoption(
        &self,
        by: &Principal,
        input: &TerraformImportInput,
        r: &FoundRepository,
        name: &RepoName,
        live: &crate::aws::LiveRepository,
    ) -> Result<(Step, String), String> {
        // Adoption approves nothing about production (as "Adopt" in the UI): when production can
        // pull now, a grant request asks for it, if a grant can take that access over.
        let production =
            policy::portal_statement(live.policy.as_ref()).is_some() || self.production_reaches(live.policy.as_ref());
        if production {
            let Some(target) = self.grant_target() else {
                return Err("its live policy lets production pull, and the production account is not configured, so \
                            the portal cannot take that access over; configure it, then import again"
                    .into());
            };
            let after = policy::desired(live.policy.as_ref(), Some(target)).map_err(|e| e.to_string())?;
            if let Some(g) = self.foreign_grants(after.as_ref()).into_iter().find(|g| g.reaches_production) {
                return Err(format!(
                    "its live policy has the statement {} that {}, which the portal did not approve and a grant \
                     cannot take over; remove it in ECR (or narrow it to production's pull), then import again",
                    g.name, g.why
                ));
            }
        }
        let record = self.adopted_record(name, live);
        let grant = production.then(|| {
            let why = input.justification.clone().filter(|j| !j.trim().is_empty()).unwrap_or_else(|| {
                format!(
                    "Imported from Terraform ({}): its policy lets production pull; this puts that access under \
                     the production grant's rule",
                    r.origin
                )
            });
            self.new_request(
                &by.id,
                RequestKind::GrantProduction { repository: name.clone(), until: None },
                why,
                Status::Pending,
            )
        });
        let mut detail = format!("adopted from Terraform ({}) as it is live", r.origin);
        detail.push_str(match (&grant, record.spec.is_some()) {
            (Some(_), _) => "; production can pull now, and a grant request asks to approve that",
            (None, true) if self.deployment.target.production_account.is_none() => {
                "; production access: no as far as the portal can tell (the production account is not configured)"
            }
            (None, true) => "; production access: no",
            (None, false) => "; its lifecycle policy is not one the portal can express, so only access is managed",
        });
        let mut differs = Vec::new();
        if let Some(m) = &r.tag_mutability {
            if !m.eq_ignore_ascii_case(&live.tag_mutability.to_string()) {
                differs.push(format!("tag mutability {m} in the file, {} in ECR", live.tag_mutability));
            }
        }
        if let Some(s) = r.scan_on_push.filter(|s| *s != live.scan_on_push) {
            differs.push(format!("scan on push {s} in the file, {} in ECR", live.scan_on_push));
        }
        if !differs.is_empty() {
            detail.push_str(&format!("; the portal keeps what is live ({})", differs.join(", ")));
        }
        Ok((Step::Adopt { record: Box::new(record), grant, detail: detail.clone() }, detail))
    }

    /// The create request for a repository the file names and ECR lacks, checked as the form checks it.
    fn creation(
        &self,
        by: &Principal,
        input: &TerraformImportInput,
        r: &FoundRepository,
        notes: &mut Vec<String>,
    ) -> Result<Request, Vec<FieldError>> {
        let at = |field: &str, message: &str| {
            let mut place = r.place(attribute_of(field));
            match field {
                "team" => place.key.push_str(".team"),
                "cost_center" => place.key.push_str(".cost-center"),
                _ => {}
            }
            FieldError::new("file", read::ReadError::at(place, message).to_string())
        };
        let wants_production = self.production_reaches(r.policy.as_ref());
        if wants_production && self.deployment.target.production_account.is_none() {
            notes.push(format!(
                "{}: the file lets production pull, but the production account is not configured; the create \
                 request does not ask for it",
                r.origin
            ));
        }
        let or_default = |tag: &str, default: &Option<String>| {
            r.tags.get(tag).cloned().or_else(|| default.clone()).unwrap_or_default()
        };
        let reserved = |k: &str| k.starts_with("ecr-portal:") || k.to_ascii_lowercase().starts_with("aws:");
        if r.tags.keys().any(|k| reserved(k)) {
            notes.push(format!(
                "{}: the tags ecr-portal:… and aws:… are the portal's and AWS's own; the create request leaves them out",
                r.place("tags")
            ));
        }
        let free: std::collections::BTreeMap<String, String> = r
            .tags
            .iter()
            .filter(|(k, _)| !is_required_tag(k) && !reserved(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // What of the file's policy a create request cannot carry: anything but production's pull.
        if let Some(account) = self.deployment.target.production_account.as_deref() {
            let rest = policy::with_production(r.policy.as_ref(), Some(account), None).ok().flatten();
            if rest.is_some() {
                notes.push(format!(
                    "{}: the policy has statements besides production's pull; a create request does not carry them \
                     (add them in ECR once it exists)",
                    r.place("policy")
                ));
            }
        }
        let form = RepositoryRequestInput {
            name: r.name.clone(),
            tag_mutability: r.tag_mutability.clone(),
            scan_on_push: r.scan_on_push,
            encryption: r.encryption_type.clone(),
            kms_key_arn: r.kms_key.clone(),
            keep_last_images: None,
            expire_untagged_after_days: None,
            tag_mutability_exclusions: None,
            lifecycle_rules: r
                .lifecycle_policy
                .as_ref()
                .map(|p| p.get("rules").and_then(|v| v.as_array()).cloned().unwrap_or_default()),
            tags: (!free.is_empty()).then_some(free),
            team: or_default("team", &input.team),
            cost_center: or_default("cost-center", &input.cost_center),
            justification: input
                .justification
                .clone()
                .filter(|j| !j.trim().is_empty())
                .unwrap_or_else(|| format!("Imported from Terraform ({})", r.origin)),
            grant_production: Some(wants_production && self.deployment.target.production_account.is_some()),
        };
        let parsed = form.parse(&self.deployment.namespace).map_err(|es| {
            es.iter()
                .map(|e| match e.field.as_str() {
                    "team" | "cost_center" => at(
                        &e.field,
                        &format!("{} (the file has no such tag: add it, or give a default to the import)", e.message),
                    ),
                    _ => at(&e.field, &e.message),
                })
                .collect::<Vec<_>>()
        })?;
        if let Some(why) = self.kms_key_elsewhere(&parsed.spec) {
            return Err(vec![at("kms_key_arn", &why)]);
        }
        let kind = RequestKind::CreateRepository { spec: parsed.spec, grant_production: parsed.grant_production };
        Ok(self.new_request(&by.id, kind, parsed.justification, Status::Pending))
    }
}
