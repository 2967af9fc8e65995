//! The request page: header and live status, justification and outcome,
//! settings and timeline (the plan and the decision have files of their own).
use super::decision::Decision;
use super::plan::PlanView;
use crate::api::{get_request, request_status};
use crate::domain::request::{RequestKind, Status};
use crate::error::AppError;
use crate::ui::common::{reload, ErrorNotice, Loading, StatusBadge, Time};
use crate::views::RequestDetail;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn RequestPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id")).and_then(|s| s.parse::<i64>().ok());
    let detail = Resource::new(id, |id| async move {
        match id {
            Some(id) => get_request(id).await,
            None => Err(AppError::NotFound("there is no request with that number".into())),
        }
    });
    view! {
        <Title text=move || id().map(|i| format!("Request #{i}")).unwrap_or_default()/>
        <section class="page">
            <Suspense fallback=Loading>
                {move || detail.get().map(|d| match d {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(d) => view! { <RequestView detail=d/> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

/// Keeps the page current while the worker moves the request along: asks
/// for the status every second and loads the page again when it changes.
#[island]
fn LiveStatus(id: i64, status: Status) -> impl IntoView {
    Effect::new(move |_| {
        let handle = set_interval_with_handle(
            move || {
                leptos::task::spawn_local(async move {
                    if request_status(id).await.is_ok_and(|now| now != status) {
                        reload();
                    }
                });
            },
            std::time::Duration::from_millis(1000),
        )
        .ok();
        on_cleanup(move || {
            if let Some(h) = handle {
                h.clear();
            }
        });
    });
}

#[component]
fn RequestView(detail: RequestDetail) -> AnyView {
    let d = detail;
    let id = d.summary.id;
    let moving = d.summary.status.is_in_flight().then(|| view! { <LiveStatus id status=d.summary.status/> });
    view! {
        {moving}
        <div class="page-head">
            <div>
                <p class="eyebrow">"Request #"{id}" · "{d.summary.kind_label.clone()}</p>
                <h1><code>{d.summary.repository.clone()}</code></h1>
            </div>
            <div data-testid="request-status"><StatusBadge status=d.summary.status/></div>
        </div>
        <p class="meta">"Requested by " <strong>{d.summary.requester.clone()}</strong> " on " <Time at=d.summary.created_at.clone()/></p>
        {d.break_glass.clone().map(|b| view! {
            <div class="notice notice-error banner" role="status" data-testid="break-glass-banner">
                <p><strong>"Break glass. "</strong>{b}</p>
                <p>{if d.review_pending { "Waiting for another admin's review." } else { "Reviewed (see the timeline)." }}</p>
            </div>
        })}
        <div class="columns">
            <div class="col-main">
                {(!d.drift.is_empty()).then(|| view! {
                    <section class="card notice-warn" data-testid="request-drift">
                        <h2>"This repository has drifted from its approved state"</h2>
                        <ul>{d.drift.clone().into_iter().map(|x| view! { <li>{x}</li> }).collect_view()}</ul>
                        <p><a href="/repositories">"Review it on the repositories page"</a></p>
                    </section>
                })}
                <Outcome detail=d.clone()/>
                <Settings detail=d.clone()/>
                <PlanView detail=d.clone()/>
            </div>
            <aside class="col-side">
                <Decision detail=d.clone()/>
                <BreakGlass detail=d.clone()/>
                <Timeline detail=d/>
            </aside>
        </div>
    }
    .into_any()
}

#[component]
fn Outcome(detail: RequestDetail) -> AnyView {
    let d = detail;
    view! {
        <section class="card">
            <h2>"Justification"</h2>
            <p class="prose" data-testid="justification">{d.justification.clone()}</p>
        </section>
        {d.failure.clone().map(|f| {
            let title = match d.summary.status {
                Status::NeedsReapproval => "Stopped: needs re-approval",
                Status::Approved | Status::Applying => "Retrying after a temporary AWS error",
                _ => "Apply failed",
            };
            view! {
                <section class="card notice-error" role="alert">
                    <h2>{title}</h2>
                    <p data-testid="failure">{f}</p>
                </section>
            }
        })}
        {d.result.clone().map(|r| view! {
            <section class="card result" data-testid="result">
                <h2>{if r.adopted { "Adopted an existing repository" } else { "Created in AWS" }}</h2>
                <dl class="kv">
                    <dt>"Pull URI"</dt><dd><code data-testid="repository-uri">{r.repository_uri}</code></dd>
                    <dt>"ARN"</dt><dd><code>{r.repository_arn}</code></dd>
                    <dt>"AWS request ids"</dt>
                    <dd>{r.aws_request_ids.into_iter().map(|i| view! { <code class="reqid">{i}</code>" " }).collect_view()}</dd>
                </dl>
            </section>
        })}
    }
    .into_any()
}

#[component]
fn Settings(detail: RequestDetail) -> AnyView {
    let (s, grant) = match detail.kind {
        RequestKind::CreateRepository { spec, grant_production } => (spec, grant_production),
        RequestKind::GrantProduction { repository, .. } => {
            return view! {
                <section class="card">
                    <h2>"Production access"</h2>
                    <p>"Let the production account pull images from " <code>{repository.to_string()}</code> " (read-only)."</p>
                    <p data-testid="grant-until">{match detail.until {
                        Some(u) => format!("Temporary: revoked automatically at {u}."),
                        None => "Until revoked.".to_string(),
                    }}</p>
                </section>
            }
            .into_any()
        }
        RequestKind::RevokeProduction { repository } => {
            return view! {
                <section class="card">
                    <h2>"Production access"</h2>
                    <p>"Remove the production account's pull access to " <code>{repository.to_string()}</code> "."</p>
                </section>
            }
            .into_any()
        }
        RequestKind::RestoreRepository { repository, grants_production } => {
            return view! {
                <section class="card">
                    <h2>"Restore"</h2>
                    <p>"Put " <code>{repository.to_string()}</code> " back to the settings and access the portal approved."</p>
                    {grants_production.then(|| view! {
                        <p class="notice notice-warn">"This gives the production account its pull access back, so it is decided by the production grant's approval rule."</p>
                    })}
                </section>
            }
            .into_any()
        }
        RequestKind::PromoteImage { repository, digest, tag, moves_from } => {
            return view! {
                <section class="card">
                    <h2>"Promote an image"</h2>
                    <p>"Tag the image " <code data-testid="promote-digest">{digest}</code> " in " <code>{repository.to_string()}</code>
                        " as " <strong data-testid="promote-tag">{tag}</strong> ", a release production pulls."</p>
                    {moves_from.map(|d| view! {
                        <p class="notice notice-warn">"The tag names " <code>{d}</code> " now; it moves to this image."</p>
                    })}
                    <p class="help">"Production pulls the release only if it can pull the repository: "
                        <a href=format!("/requests/access?repository={}&action=grant", crate::ui::common::encode(repository.as_str()))>"ask for production access"</a>
                        " if the plan says it cannot."</p>
                </section>
            }
            .into_any()
        }
        RequestKind::UpdateRepository { spec, expire_protected, .. } => {
            return view! {
                <section class="card">
                    <h2>"Change settings"</h2>
                    <p>"Change the settings of " <code>{spec.name.to_string()}</code> ". The plan below shows each setting before → after, and what the new lifecycle would expire."</p>
                    {expire_protected.then(|| view! {
                        <p class="notice notice-error" data-testid="expire-protected">"The requester says the lifecycle may expire protected images (pulled by production lately, or with a release tag)."</p>
                    })}
                </section>
            }
            .into_any()
        }
        RequestKind::DeleteRepository { repository, production_can_pull } => {
            return view! {
                <section class="card">
                    <h2>"Delete"</h2>
                    <p>"Delete " <code>{repository.to_string()}</code> " and every image in it. This cannot be undone; the plan below counts the images."</p>
                    {production_can_pull.then(|| view! {
                        <p class="notice notice-error" data-testid="delete-production-warning">"Production can pull this repository: it will lose these images. Deleting it is decided by the production grant's approval rule."</p>
                    })}
                </section>
            }
            .into_any()
        }
    };
    view! {
        <section class="card">
            <h2>"Settings"</h2>
            <dl class="kv">
                <dt>"Image tags"</dt><dd>{s.tag_mutability.to_string()}</dd>
                <dt>"Scan on push"</dt><dd>{if s.scan_on_push { "yes" } else { "no" }}</dd>
                <dt>"Encryption"</dt><dd>{s.encryption.to_string()}</dd>
                <dt>"Keep last images"</dt><dd>{s.lifecycle.keep_last_images.map(|n| n.to_string()).unwrap_or_else(|| "no limit".into())}</dd>
                <dt>"Expire untagged after"</dt><dd>{s.lifecycle.expire_untagged_after_days.map(|n| format!("{n} days")).unwrap_or_else(|| "never".into())}</dd>
                <dt>"Tags"</dt>
                <dd>{s.tags.iter().map(|t| view! { <span class="chip">{t.key.clone()}"="{t.value.clone()}</span>" " }).collect_view()}</dd>
                <dt>"Production pull"</dt><dd>{if grant { "granted on creation" } else { "no" }}</dd>
            </dl>
        </section>
    }
    .into_any()
}

/// Break glass and its review: plain forms (POST, then back to this page).
#[component]
fn BreakGlass(detail: RequestDetail) -> impl IntoView {
    let id = detail.summary.id;
    let apply = detail.can_break_glass.then(|| view! {
        <section class="card">
            <details>
                <summary>"Break glass…"</summary>
                <p class="help">"Apply this now, without the approvals it needs. Use it for an outage only: it is audited with your reason and another admin reviews it afterwards."</p>
                <form class="form" method="post" action=format!("/requests/{id}/break-glass") data-testid="break-glass-form">
                    <div class="field">
                        <label for="break-glass-reason">"Why can this not wait?"</label>
                        <textarea id="break-glass-reason" name="reason" rows="2" maxlength="2000" required></textarea>
                    </div>
                    <button type="submit" class="button danger">"Apply now (break glass)"</button>
                </form>
            </details>
        </section>
    });
    let review = detail.can_review.then(|| view! {
        <section class="card">
            <h2>"Review the break glass"</h2>
            <form class="form" method="post" action=format!("/requests/{id}/review") data-testid="review-form">
                <div class="field">
                    <label for="review-comment">"Comment"</label>
                    <textarea id="review-comment" name="comment" rows="2" maxlength="2000"></textarea>
                </div>
                <div class="actions">
                    <button type="submit" class="button primary" name="outcome" value="accepted">"Accept"</button>
                    <button type="submit" class="button danger" name="outcome" value="revert">"Revert (file the undo request)"</button>
                </div>
            </form>
        </section>
    });
    view! { {apply} {review} }
}

#[component]
fn Timeline(detail: RequestDetail) -> AnyView {
    view! {
        <section class="card">
            <h2>"Timeline"</h2>
            <ol class="timeline" data-testid="timeline">
                {detail.timeline.into_iter().map(|e| view! {
                    <li data-action=e.action.clone()>
                        <p><strong>{e.label}</strong>" · "{e.actor}</p>
                        <p class="meta"><Time at=e.at/></p>
                        {(!e.detail.is_empty()).then(|| view! { <p class="detail">{e.detail}</p> })}
                    </li>
                }).collect_view()}
            </ol>
            <CommentForm id=detail.summary.id/>
        </section>
    }
    .into_any()
}

/// What `?comment_error=` may say: known codes only.
fn comment_error(code: &str) -> Option<&'static str> {
    Some(match code {
        "forbidden" => "You cannot comment on this request.",
        "invalid" => "Write a comment of at most 2,000 characters, without control characters or direction marks.",
        "not_found" => "There is no such request.",
        "unavailable" => "The comment could not be saved right now; try again.",
        _ => return None,
    })
}

/// A plain form (POST, then back to the timeline): it works before, and without, the page's script.
#[component]
fn CommentForm(id: i64) -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let error = move || query.with(|q| q.get("comment_error")).and_then(|c| comment_error(&c));
    view! {
        <form class="form comment-form" id="comment" method="post" action=format!("/requests/{id}/comments")>
            {move || error().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
            <div class="field">
                <label for="comment-body">"Add a comment"</label>
                <textarea id="comment-body" name="body" rows="3" maxlength="2000" required></textarea>
            </div>
            <button type="submit" class="button">"Comment"</button>
        </form>
    }
}
