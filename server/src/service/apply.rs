//! Applying approved requests: claim with a lease, run the plan's AWS calls,
//! verify, and record the outcome only if the lease is still ours.
//!
//! Every step is idempotent, so a worker that dies anywhere can be resumed:
//! the repository carries the tag `ecr-portal:request=<id>`, so a resumed
//! attempt recognises its own half-finished repository and completes it, while
//! a repository made by someone else is adopted only if it already matches.
use super::{db_err, PortalService};
use crate::aws::{RegistryError, REQUEST_TAG};
use crate::db::{self, NewEvent};
use app::domain::audit::AuditAction;
use app::domain::principal::SYSTEM_ACTOR;
use app::domain::request::{Request, Status};
use app::error::AppError;
use app::views::ApplyResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Nothing to do.
    Idle,
    Applied(i64),
    Failed(i64, String),
    /// Another worker took the job over (our lease ran out); our result was dropped.
    LostLease(i64),
}

struct Failure {
    reason: String,
    request_ids: Vec<String>,
}

fn aws_reason(step: &str, e: RegistryError) -> String {
    match e {
        RegistryError::Denied(m) => format!("{step}: AWS denied access ({m}); check the staging role's permissions"),
        RegistryError::Invalid(m) => format!("{step}: AWS refused the settings: {m}"),
        RegistryError::Transient(m) => format!("{step}: AWS did not answer after retries ({m}); retry when it is back"),
        other => format!("{step}: {other}"),
    }
}

impl PortalService {
    /// Claims and applies the oldest approved request. Returns what happened.
    pub async fn apply_next(&self, owner: &str, lease_ms: i64) -> Result<ApplyOutcome, AppError> {
        let now = self.now();
        let mut tx = self.db.write().await.map_err(db_err)?;
        let Some(row) = db::next_claimable(&mut tx, now).await.map_err(db_err)? else {
            return Ok(ApplyOutcome::Idle);
        };
        let previous = row.request.status;
        let previous_attempts = row.request.attempts;
        let resumed = previous == Status::Applying;
        let started = if resumed {
            row.request.resume(now)
        } else {
            row.request.start_apply(now)
        }?;
        if !db::claim(&mut tx, &started, previous, previous_attempts, owner, now + lease_ms)
            .await
            .map_err(db_err)?
        {
            return Ok(ApplyOutcome::Idle);
        }
        let detail = if resumed {
            format!("attempt {} (resuming an interrupted attempt)", started.attempts)
        } else {
            format!("attempt {}", started.attempts)
        };
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: SYSTEM_ACTOR,
                action: AuditAction::ApplyStarted,
                request_id: Some(started.id),
                repository: Some(started.spec.name.as_str()),
                detail,
                aws_request_ids: vec![],
            },
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;

        let outcome = self.execute(&started).await;

        let now = self.now();
        let id = started.id;
        let name = started.spec.name.to_string();
        let (finished, result, action, detail, ids) = match outcome {
            Ok(res) => {
                let detail = if res.adopted {
                    format!("adopted the existing repository {}", res.repository_uri)
                } else {
                    format!("created {}", res.repository_uri)
                };
                let ids = res.aws_request_ids.clone();
                (
                    started.succeed(now)?,
                    Some(res),
                    AuditAction::ApplySucceeded,
                    detail,
                    ids,
                )
            }
            Err(f) => {
                let r = started.fail(f.reason.clone(), now)?;
                (r, None, AuditAction::ApplyFailed, f.reason, f.request_ids)
            }
        };
        let mut tx = self.db.write().await.map_err(db_err)?;
        if !db::finish_apply(&mut tx, &finished, owner, result.as_ref())
            .await
            .map_err(db_err)?
        {
            tracing::warn!(
                request = id,
                "lease lost before the result was recorded; another worker owns it now"
            );
            return Ok(ApplyOutcome::LostLease(id));
        }
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: SYSTEM_ACTOR,
                action,
                request_id: Some(id),
                repository: Some(&name),
                detail: detail.clone(),
                aws_request_ids: ids,
            },
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(match finished.status {
            Status::Applied => ApplyOutcome::Applied(id),
            _ => ApplyOutcome::Failed(id, detail),
        })
    }

    /// Runs the plan against the registry. Idempotent (see the module header).
    async fn execute(&self, r: &Request) -> Result<ApplyResult, Failure> {
        let spec = &r.spec;
        let name = spec.name.as_str();
        let mut ids: Vec<String> = Vec::new();
        let fail = |reason: String, ids: &Vec<String>| Failure {
            reason,
            request_ids: ids.clone(),
        };
        let lifecycle = spec.lifecycle.policy_json();

        let (uri, arn, adopted) = match self.registry.create(spec, r.id).await {
            Ok(created) => {
                ids.push(created.request_id);
                if let Some(policy) = &lifecycle {
                    let id = self
                        .registry
                        .put_lifecycle_policy(name, policy)
                        .await
                        .map_err(|e| fail(aws_reason("PutLifecyclePolicy", e), &ids))?;
                    ids.push(id);
                }
                (created.uri, created.arn, false)
            }
            Err(RegistryError::AlreadyExists) => {
                let live = self
                    .registry
                    .describe(name)
                    .await
                    .map_err(|e| fail(aws_reason("DescribeRepositories", e), &ids))?
                    .ok_or_else(|| {
                        fail(
                            format!("{name} was reported as existing but could not be read; retry"),
                            &ids,
                        )
                    })?;
                ids.extend(live.request_ids.iter().cloned());
                let ours = live.request_tag() == Some(r.id.to_string().as_str());
                if ours {
                    // An earlier attempt of this request created it: finish the job.
                    if lifecycle.is_some() && live.lifecycle_policy != lifecycle {
                        if let Some(policy) = &lifecycle {
                            let id = self
                                .registry
                                .put_lifecycle_policy(name, policy)
                                .await
                                .map_err(|e| fail(aws_reason("PutLifecyclePolicy", e), &ids))?;
                            ids.push(id);
                        }
                    }
                    (live.uri, live.arn, false)
                } else {
                    let diffs = live.differences(spec);
                    if !diffs.is_empty() {
                        return Err(fail(
                            format!(
                                "{name} already exists in ECR with different settings: {}. Nothing was changed.",
                                diffs.join("; ")
                            ),
                            &ids,
                        ));
                    }
                    if let Some(other) = live.request_tag() {
                        tracing::info!(request = r.id, "adopting {name}, created by portal request {other}");
                    }
                    (live.uri, live.arn, true)
                }
            }
            Err(e) => return Err(fail(aws_reason("CreateRepository", e), &ids)),
        };

        // Verify: read it back and compare with what was approved.
        let live = self
            .registry
            .describe(name)
            .await
            .map_err(|e| fail(aws_reason("verifying (DescribeRepositories)", e), &ids))?
            .ok_or_else(|| {
                fail(
                    format!("verification failed: {name} is not in ECR after creation"),
                    &ids,
                )
            })?;
        ids.extend(live.request_ids.iter().cloned());
        let diffs = live.differences(spec);
        if !diffs.is_empty() {
            return Err(fail(format!("verification failed: {}", diffs.join("; ")), &ids));
        }
        if !adopted && live.request_tag().is_none() {
            tracing::warn!(request = r.id, "{name} lacks its {REQUEST_TAG} tag");
        }
        Ok(ApplyResult {
            repository_uri: uri,
            repository_arn: arn,
            adopted,
            aws_request_ids: ids,
        })
    }
}
