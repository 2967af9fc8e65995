//! Requests: the list, the admin queue, the new-repository form and the
//! request page (plan, decision, result, timeline).
use super::common::{go_to, reload, reload_when, use_hydrated, EmptyState, ErrorNotice, Fields, Loading, StatusBadge};
use super::InfoResource;
use crate::api::*;
use crate::domain::form::{parse_optional_number, AccessRequestInput, FieldError, RepositoryRequestInput};
use crate::domain::name::{Namespace, RepoName};
use crate::domain::plan::PolicyChange;
use crate::domain::policy::Change;
use crate::domain::request::{RequestKind, Status};
use crate::error::AppError;
use crate::views::{RequestDetail, RequestSummary, RequestsPage};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
fn RequestTable(rows: Vec<RequestSummary>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="table" data-testid="requests-table">
                <thead>
                    <tr>
                        <th scope="col">"#"</th>
                        <th scope="col">"Repository"</th>
                        <th scope="col">"Asks for"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Requested by"</th>
                        <th scope="col">"Submitted"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|r| {
                            view! {
                                <tr>
                                    <td>{r.id}</td>
                                    <td><A href=format!("/requests/{}", r.id)><code>{r.repository}</code></A></td>
                                    <td>{r.kind_label}</td>
                                    <td><StatusBadge status=r.status/></td>
                                    <td>{r.requester}</td>
                                    <td><time>{r.created_at}</time></td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
pub fn RequestList() -> impl IntoView {
    let query = use_query_map();
    let status = move || query.with(|q| q.get("status")).filter(|s| !s.is_empty());
    let mine = move || query.with(|q| q.get("mine")).is_some_and(|m| m == "1");
    let before = move || query.with(|q| q.get("before")).and_then(|b| b.parse::<i64>().ok());
    let rows = Resource::new(
        move || (status(), mine(), before()),
        |(s, m, b)| list_requests(s, m, RequestsPage { before: b, limit: None }),
    );
    // The next (older) page starts below the last request shown.
    let older_link = move |last: i64| {
        let mut q = vec![format!("before={last}")];
        if let Some(s) = status() {
            q.push(format!("status={s}"));
        }
        if mine() {
            q.push("mine=1".into());
        }
        format!("/?{}", q.join("&"))
    };
    let info = expect_context::<InfoResource>().0;
    // Requesters only ever see their own requests: no toggle for them.
    let sees_all = move || {
        info.get()
            .and_then(Result::ok)
            .and_then(|i| i.user)
            .is_some_and(|u| u.can(crate::domain::principal::Capability::ReadAllRequests))
    };
    let filter_link = move |s: Option<Status>| {
        let mut q = Vec::new();
        if let Some(s) = s {
            q.push(format!("status={}", s.as_str()));
        }
        if mine() {
            q.push("mine=1".into());
        }
        if q.is_empty() {
            "/".to_string()
        } else {
            format!("/?{}", q.join("&"))
        }
    };
    view! {
        <Title text="Requests"/>
        <section class="page">
            <div class="page-head">
                <h1>"Requests"</h1>
                <div class="actions">
                    <a class="button" href="/requests/access">"Production access"</a>
                    <a class="button primary" href="/requests/new">"New repository request"</a>
                </div>
            </div>
            <nav class="filters" aria-label="Filter by status">
                <a href=move || filter_link(None) aria-current=move || status().is_none().then_some("page")>"All"</a>
                {Status::ALL
                    .into_iter()
                    .map(|s| view! {
                        <a href=move || filter_link(Some(s))
                            aria-current=move || (status().as_deref() == Some(s.as_str())).then_some("page")>
                            {s.as_str()}
                        </a>
                    })
                    .collect_view()}
                <Suspense fallback=|| ()>
                    {move || sees_all().then(|| view! {
                        <a class="toggle" href=move || if mine() { "/".to_string() } else { "/?mine=1".to_string() }>
                            {move || if mine() { "Show everyone's" } else { "Only mine" }}
                        </a>
                    })}
                </Suspense>
            </nav>
            <Transition fallback=Loading>
                {move || rows.get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(rows) if rows.is_empty() => view! {
                        <EmptyState title="No requests here yet">
                            <p>"Ask for a new repository under the namespace; an admin reviews it and the portal creates it in AWS."</p>
                            <a class="button" href="/requests/new">"Request a repository"</a>
                        </EmptyState>
                    }.into_any(),
                    Ok(rows) => {
                        let full = rows.len() as u32 >= RequestsPage::DEFAULT_LIMIT;
                        let last = rows.last().map(|r| r.id).unwrap_or(0);
                        view! {
                            <RequestTable rows/>
                            <nav class="pager" aria-label="Pages">
                                {before().is_some().then(|| view! { <a href="/">"← Newest"</a> })}
                                {full.then(|| view! { <a href=older_link(last)>"Older requests →"</a> })}
                            </nav>
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
pub fn Queue() -> impl IntoView {
    let rows = Resource::new(
        || (),
        |_| async move {
            let all = RequestsPage { before: None, limit: Some(500) };
            let mut rows = list_requests(Some("pending".into()), false, all).await?;
            rows.extend(list_requests(Some("needs_reapproval".into()), false, all).await?);
            rows.sort_by_key(|r| std::cmp::Reverse(r.id));
            Ok::<_, AppError>(rows)
        },
    );
    view! {
        <Title text="Approval queue"/>
        <section class="page">
            <div class="page-head"><h1>"Approval queue"</h1></div>
            <p class="lede">"Requests waiting for a decision (new, or sent back because the live policy changed), oldest first. Open one to see its plan and decide."</p>
            <Transition fallback=Loading>
                {move || rows.get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(rows) if rows.is_empty() => view! {
                        <EmptyState title="Nothing waiting for review">
                            <p>"New requests appear here as soon as they are submitted."</p>
                        </EmptyState>
                    }.into_any(),
                    Ok(mut rows) => {
                        rows.reverse();
                        view! { <RequestTable rows/> }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

/// One labelled form field with its help text and error.
#[component]
fn Field(
    id: &'static str,
    label: &'static str,
    #[prop(optional)] help: Option<&'static str>,
    errors: Signal<Vec<FieldError>>,
    children: Children,
) -> impl IntoView {
    let error = move || errors.with(|e| e.iter().find(|f| f.field == id).map(|f| f.message.clone()));
    view! {
        <div class="field" class:has-error=move || error().is_some()>
            <label for=id>{label}</label>
            {children()}
            {help.map(|h| view! { <p class="help" id=format!("{id}-help")>{h}</p> })}
            <p class="field-error" id=format!("{id}-error") role="alert" data-field=id>{error}</p>
        </div>
    }
}

#[component]
pub fn NewRequest() -> impl IntoView {
    let info = expect_context::<InfoResource>().0;
    view! {
        <Title text="New repository request"/>
        <section class="page narrow">
            <h1>"Request a repository"</h1>
            <p class="lede">"Need production to pull from an existing repository? " <a href="/requests/access">"Ask for production access"</a></p>
            <Suspense fallback=Loading>
                {move || info.get().map(|i| match i {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(i) if i.user.is_none() => view! { <ErrorNotice error=AppError::Unauthenticated/> }.into_any(),
                    Ok(i) => match Namespace::parse(&i.namespace) {
                        Ok(ns) => view! { <NewRequestForm namespace=ns.as_str().to_string()/> }.into_any(),
                        Err(e) => view! { <ErrorNotice error=AppError::Internal(e.to_string())/> }.into_any(),
                    },
                })}
            </Suspense>
        </section>
    }
}

/// The new-repository form: checks as the user types with the server's own
/// parser, submits through a server function, then opens the new request.
#[island]
fn NewRequestForm(namespace: String) -> impl IntoView {
    let namespace = match Namespace::parse(&namespace) {
        Ok(ns) => ns,
        Err(e) => return view! { <ErrorNotice error=AppError::Internal(e.to_string())/> }.into_any(),
    };
    let name = RwSignal::new(String::new());
    let tag_mutability = RwSignal::new("IMMUTABLE".to_string());
    let scan_on_push = RwSignal::new(true);
    let grant_production = RwSignal::new(false);
    let encryption = RwSignal::new("AES256".to_string());
    let kms_key_arn = RwSignal::new(String::new());
    let keep_last = RwSignal::new(String::new());
    let untagged_days = RwSignal::new(String::new());
    let team = RwSignal::new(String::new());
    let cost_center = RwSignal::new(String::new());
    let justification = RwSignal::new(String::new());
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let server_error = RwSignal::new(None::<AppError>);
    let submit = ServerAction::<SubmitRepositoryRequest>::new();
    let hydrated = use_hydrated();

    let ns = namespace.clone();
    let name_preview = move || {
        let n = name.get();
        if n.trim().is_empty() {
            return format!("{}/…", ns.as_str());
        }
        match RepoName::parse(&ns, &n) {
            Ok(full) => full.to_string(),
            Err(_) => format!("{}/{}", ns.as_str(), n.trim()),
        }
    };
    // Live check of the name as the user types, with the server's own parser.
    let ns = namespace.clone();
    let name_error = Memo::new(move |_| {
        let n = name.get();
        if n.is_empty() {
            None
        } else {
            RepoName::parse(&ns, &n).err().map(|e| e.to_string())
        }
    });
    let ns_build = namespace.clone();

    let build = move || -> Result<RepositoryRequestInput, Vec<FieldError>> {
        let mut errs = Vec::new();
        let keep = parse_optional_number("keep_last_images", &keep_last.get()).map_err(|e| errs.push(e)).ok().flatten();
        let days = parse_optional_number("expire_untagged_after_days", &untagged_days.get())
            .map_err(|e| errs.push(e))
            .ok()
            .flatten();
        let input = RepositoryRequestInput {
            name: name.get(),
            tag_mutability: Some(tag_mutability.get()),
            scan_on_push: Some(scan_on_push.get()),
            encryption: Some(encryption.get()),
            kms_key_arn: Some(kms_key_arn.get()),
            keep_last_images: keep,
            expire_untagged_after_days: days,
            team: team.get(),
            cost_center: cost_center.get(),
            justification: justification.get(),
            grant_production: Some(grant_production.get()),
        };
        if let Err(mut more) = input.parse(&ns_build) {
            errs.append(&mut more);
        }
        if errs.is_empty() {
            Ok(input)
        } else {
            Err(errs)
        }
    };

    Effect::new(move |_| {
        if let Some(result) = submit.value().get() {
            match result {
                Ok(id) => go_to(&format!("/requests/{id}")),
                Err(e) => {
                    errors.set(e.field_errors().to_vec());
                    server_error.set(Some(e));
                }
            }
        }
    });

    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        server_error.set(None);
        match build() {
            Ok(input) => {
                errors.set(Vec::new());
                submit.dispatch(SubmitRepositoryRequest { input });
            }
            Err(errs) => errors.set(errs),
        }
    };
    let errs: Signal<Vec<FieldError>> = errors.into();
    let invalid = move |f: &'static str| move || errs.with(|e| e.iter().any(|x| x.field == f)).to_string();

    view! {
        <form class="card form" on:submit=on_submit novalidate data-testid="new-request-form">
            {move || server_error.get().map(|e| view! { <ErrorNotice error=e/> })}
            <Fields hydrated>
            <div class="field" class:has-error=move || name_error.get().is_some() || errs.with(|e| e.iter().any(|f| f.field == "name"))>
                <label for="name">"Repository name"</label>
                <div class="prefixed">
                    <span class="prefix" aria-hidden="true">{format!("{}/", namespace.as_str())}</span>
                    <input id="name" name="name" required autocomplete="off" spellcheck="false"
                        aria-describedby="name-help name-error" aria-invalid=invalid("name")
                        prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
                </div>
                <p class="help" id="name-help">"Will be created as " <code data-testid="name-preview">{name_preview}</code>". Lowercase letters, digits, and . _ - / between them."</p>
                <p class="field-error" id="name-error" role="alert" data-field="name">
                    {move || name_error.get().or_else(|| errs.with(|e| e.iter().find(|f| f.field == "name").map(|f| f.message.clone())))}
                </p>
            </div>
            <div class="grid-2">
                <Field id="tag_mutability" label="Image tags" errors=errs>
                    <select id="tag_mutability" name="tag_mutability" prop:value=tag_mutability
                        on:change=move |ev| tag_mutability.set(event_target_value(&ev))>
                        <option value="IMMUTABLE">"Immutable (recommended)"</option>
                        <option value="MUTABLE">"Mutable"</option>
                    </select>
                </Field>
                <Field id="encryption" label="Encryption" errors=errs>
                    <select id="encryption" name="encryption" prop:value=encryption
                        on:change=move |ev| encryption.set(event_target_value(&ev))>
                        <option value="AES256">"AES-256 (AWS managed)"</option>
                        <option value="KMS">"KMS key"</option>
                    </select>
                </Field>
            </div>
            <Show when=move || encryption.get() == "KMS">
                <Field id="kms_key_arn" label="KMS key ARN" errors=errs>
                    <input id="kms_key_arn" name="kms_key_arn" spellcheck="false" aria-invalid=invalid("kms_key_arn")
                        prop:value=kms_key_arn on:input=move |ev| kms_key_arn.set(event_target_value(&ev))/>
                </Field>
            </Show>
            <div class="field checkbox">
                <input type="checkbox" id="scan_on_push" name="scan_on_push" prop:checked=scan_on_push
                    on:change=move |ev| scan_on_push.set(event_target_checked(&ev))/>
                <label for="scan_on_push">"Scan images for vulnerabilities on push"</label>
            </div>
            <div class="field checkbox">
                <input type="checkbox" id="grant_production" name="grant_production" prop:checked=grant_production
                    on:change=move |ev| grant_production.set(event_target_checked(&ev))/>
                <label for="grant_production">"Also grant the production account read-only pull access"</label>
            </div>
            <fieldset class="group">
                <legend>"Lifecycle (optional)"</legend>
                <div class="grid-2">
                    <Field id="keep_last_images" label="Keep the last N images" help="Older images are expired." errors=errs>
                        <input id="keep_last_images" name="keep_last_images" inputmode="numeric" aria-invalid=invalid("keep_last_images")
                            prop:value=keep_last on:input=move |ev| keep_last.set(event_target_value(&ev))/>
                    </Field>
                    <Field id="expire_untagged_after_days" label="Expire untagged images after N days" errors=errs>
                        <input id="expire_untagged_after_days" name="expire_untagged_after_days" inputmode="numeric"
                            aria-invalid=invalid("expire_untagged_after_days")
                            prop:value=untagged_days on:input=move |ev| untagged_days.set(event_target_value(&ev))/>
                    </Field>
                </div>
            </fieldset>
            <fieldset class="group">
                <legend>"Tags"</legend>
                <div class="grid-2">
                    <Field id="team" label="Team" errors=errs>
                        <input id="team" name="team" required aria-invalid=invalid("team")
                            prop:value=team on:input=move |ev| team.set(event_target_value(&ev))/>
                    </Field>
                    <Field id="cost_center" label="Cost centre" errors=errs>
                        <input id="cost_center" name="cost_center" required aria-invalid=invalid("cost_center")
                            prop:value=cost_center on:input=move |ev| cost_center.set(event_target_value(&ev))/>
                    </Field>
                </div>
            </fieldset>
            <Field id="justification" label="Justification" help="What will this repository hold, and who pulls from it?" errors=errs>
                <textarea id="justification" name="justification" rows="4" required aria-invalid=invalid("justification")
                    prop:value=justification on:input=move |ev| justification.set(event_target_value(&ev))></textarea>
            </Field>
            <div class="actions">
                <button type="submit" class="button primary" disabled=move || submit.pending().get()>
                    {move || if submit.pending().get() { "Submitting…" } else { "Submit request" }}
                </button>
            </div>
            </Fields>
        </form>
    }
    .into_any()
}

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
        <p class="meta">"Requested by " <strong>{d.summary.requester.clone()}</strong> " on " <time>{d.summary.created_at.clone()}</time></p>
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
        RequestKind::RestoreRepository { repository } => {
            return view! {
                <section class="card">
                    <h2>"Restore"</h2>
                    <p>"Put " <code>{repository.to_string()}</code> " back to the settings and access the portal approved."</p>
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

#[component]
fn PlanView(detail: RequestDetail) -> AnyView {
    let blocked = detail.plan.blocked.clone();
    let policy = detail.plan.policy.clone();
    view! {
        <section class="card" data-testid="plan">
            <h2>"Plan"</h2>
            <p class="help">"These AWS calls run, in this order, when the request is approved."</p>
            {blocked.map(|b| view! { <p class="notice notice-error" data-testid="plan-blocked">"This plan cannot be applied: "{b}</p> })}
            {policy.map(|p| view! { <PolicyDiff change=p/> })}
            <ol class="plan">
                {detail.plan.steps.into_iter().map(|st| view! {
                    <li>
                        <p><code class="call">{st.call}</code>" " {st.summary}</p>
                        <dl class="kv small">
                            {st.params.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd><code>{v}</code></dd> }).collect_view()}
                        </dl>
                        {st.document.map(|doc| view! { <pre class="doc">{doc}</pre> })}
                    </li>
                }).collect_view()}
            </ol>
        </section>
    }
    .into_any()
}

/// The repository policy before and after, side by side, changed lines marked.
#[component]
fn PolicyDiff(change: PolicyChange) -> AnyView {
    let side = |lines: Vec<(Change, String)>, empty: &'static str| {
        if lines.is_empty() {
            view! { <p class="empty-policy">{empty}</p> }.into_any()
        } else {
            view! {
                <pre class="policy">
                    {lines.into_iter().map(|(c, t)| {
                        let (class, mark) = match c {
                            Change::Added => ("line added", "+ "),
                            Change::Removed => ("line removed", "- "),
                            Change::Same => ("line", "  "),
                        };
                        view! { <span class=class><span class="mark" aria-hidden="true">{mark}</span>{t}"\n"</span> }
                    }).collect_view()}
                </pre>
            }
            .into_any()
        }
    };
    let before: Vec<(Change, String)> =
        change.lines.iter().filter(|l| l.change != Change::Added).map(|l| (l.change, l.text.clone())).collect();
    let after: Vec<(Change, String)> =
        change.lines.iter().filter(|l| l.change != Change::Removed).map(|l| (l.change, l.text.clone())).collect();
    let added = change.lines.iter().filter(|l| l.change == Change::Added).count();
    let removed = change.lines.iter().filter(|l| l.change == Change::Removed).count();
    view! {
        <div class="policy-diff" data-testid="policy-diff">
            <h3>"Repository policy"</h3>
            <p class="help" data-testid="policy-diff-summary">
                {if change.unchanged { "Already in the desired state: nothing will be written.".to_string() } else { format!("{added} lines added, {removed} removed. Statements the portal does not own stay as they are.") }}
            </p>
            <div class="diff-columns">
                <div>
                    <h4>"Before (live)"</h4>
                    <div data-testid="policy-before">{side(before, "No policy")}</div>
                </div>
                <div>
                    <h4>"After"</h4>
                    <div data-testid="policy-after">{side(after, "No policy (it will be deleted)")}</div>
                </div>
            </div>
        </div>
    }
    .into_any()
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
                        <p class="meta"><time>{e.at}</time></p>
                        {(!e.detail.is_empty()).then(|| view! { <p class="detail">{e.detail}</p> })}
                    </li>
                }).collect_view()}
            </ol>
        </section>
    }
    .into_any()
}

#[component]
fn Decision(detail: RequestDetail) -> AnyView {
    let id = detail.summary.id;
    let status = detail.summary.status;
    let decided = detail.decided_by.clone().map(|by| {
        let verb = if status == Status::Rejected { "Rejected" } else { "Approved" };
        view! {
            <section class="card">
                <h2>"Decision"</h2>
                <p>{verb}" by " <strong>{by}</strong></p>
                {detail.decision_comment.clone().filter(|c| !c.is_empty()).map(|c| view! { <p class="prose">{c}</p> })}
            </section>
        }
    });
    let pending = status.is_awaiting_decision().then(|| {
        let blocked = detail.approve_blocked.clone();
        let can_approve = blocked.is_none();
        let can_reject = detail.can_reject;
        let given = detail.approvals.len() as u32;
        let required = detail.approvals_required;
        let missing = required.saturating_sub(given);
        let groups = detail.approver_groups.join(", ");
        let approvals = detail.approvals.clone();
        let expires = detail.expires_at.clone();
        view! {
            <section class="card decision" data-testid="decision">
                <h2>"Decision"</h2>
                <div class="approvals" data-testid="approvals">
                    <p>
                        <strong>{format!("{given} of {required} approval{}", if required == 1 { "" } else { "s" })}</strong>
                        {(missing > 0).then(|| format!(
                            " · needs {missing} more from a member of {groups} (not the requester)"
                        ))}
                    </p>
                    {(!approvals.is_empty()).then(|| view! {
                        <ul class="approval-list">
                            {approvals.into_iter().map(|a| view! {
                                <li>
                                    "Approved by " <strong>{a.approver}</strong> " · " <time>{a.at}</time>
                                    {a.comment.map(|c| view! { <span class="prose">" — "{c}</span> })}
                                </li>
                            }).collect_view()}
                        </ul>
                    })}
                    {expires.map(|e| view! { <p class="help">"Expires without a decision on " <time>{e}</time></p> })}
                </div>
                {blocked.clone().map(|b| view! { <p class="notice notice-info" data-testid="approve-blocked">{b}</p> })}
                {(can_approve || can_reject).then(|| view! { <DecisionButtons id can_approve can_reject/> })}
            </section>
        }
    });
    let retry_box = detail.can_retry.then(|| {
        view! {
            <section class="card">
                <h2>"Retry"</h2>
                <p>"Fix the cause, then apply the approved plan again."</p>
                <RetryButton id/>
            </section>
        }
    });
    let progress = status.is_in_flight().then(|| view! {
        <section class="card progress" role="status" aria-live="polite">
            <h2>"In progress"</h2>
            <p>{if status == Status::Approved { "Approved; waiting for the apply worker…" } else { "Applying the plan in AWS…" }}</p>
        </section>
    });
    view! {
        {pending}
        {progress}
        {decided}
        {retry_box}
    }
    .into_any()
}

/// The comment and the Approve / Reject buttons; the page loads again with the decision.
#[island]
fn DecisionButtons(id: i64, can_approve: bool, can_reject: bool) -> impl IntoView {
    let comment = RwSignal::new(String::new());
    let approve = ServerAction::<ApproveRequest>::new();
    let reject = ServerAction::<RejectRequest>::new();
    let error = RwSignal::new(None::<AppError>);
    Effect::new(move |_| {
        for r in [approve.value().get(), reject.value().get()].into_iter().flatten() {
            match r {
                Ok(_) => reload(),
                Err(e) => error.set(Some(e)),
            }
        }
    });
    let hydrated = use_hydrated();
    let busy = move || approve.pending().get() || reject.pending().get();
    view! {
        {move || error.get().map(|e| view! { <ErrorNotice error=e/> })}
        <Fields hydrated>
        <div class="field">
            <label for="comment">"Comment (optional)"</label>
            <textarea id="comment" rows="3" prop:value=comment on:input=move |ev| comment.set(event_target_value(&ev))></textarea>
        </div>
        <div class="actions">
            {can_approve.then(|| view! {
                <button class="button primary" disabled=busy
                    on:click=move |_| { error.set(None); approve.dispatch(ApproveRequest { id, comment: comment.get_untracked() }); }>
                    "Approve"
                </button>
            })}
            {can_reject.then(|| view! {
                <button class="button danger" disabled=busy
                    on:click=move |_| { error.set(None); reject.dispatch(RejectRequest { id, comment: comment.get_untracked() }); }>
                    "Reject"
                </button>
            })}
        </div>
        </Fields>
    }
}

/// Applies a failed request's approved plan again; the page loads again to follow it.
#[island]
fn RetryButton(id: i64) -> impl IntoView {
    let retry = ServerAction::<RetryRequest>::new();
    let hydrated = use_hydrated();
    reload_when(move || matches!(retry.value().get(), Some(Ok(_))));
    view! {
        {move || retry.value().get().and_then(Result::err).map(|e| view! { <ErrorNotice error=e/> })}
        <button class="button" disabled=move || !hydrated.get() || retry.pending().get()
            on:click=move |_| { retry.dispatch(RetryRequest { id }); }>"Retry apply"</button>
    }
}

#[component]
pub fn AccessRequest() -> impl IntoView {
    let info = expect_context::<InfoResource>().0;
    // Links from the repositories page fill in the repository and the change.
    let query = use_query_map();
    let repository = move || query.with(|q| q.get("repository")).unwrap_or_default();
    let action = move || query.with(|q| q.get("action")).filter(|a| a == "revoke").unwrap_or_else(|| "grant".into());
    view! {
        <Title text="Production access"/>
        <section class="page narrow">
            <h1>"Production access"</h1>
            <p class="lede">"Let the production account pull images from a repository (read-only), or take that away. An admin reviews the exact policy change before anything happens."</p>
            <Suspense fallback=Loading>
                {move || info.get().map(|i| match i {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(i) if i.user.is_none() => view! { <ErrorNotice error=AppError::Unauthenticated/> }.into_any(),
                    Ok(i) => view! {
                        <AccessForm namespace=i.namespace production=i.production_account
                            repository=repository() action=action()/>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

/// The production access form: grant or revoke, with an optional end date.
#[island]
fn AccessForm(namespace: String, production: Option<String>, repository: String, action: String) -> impl IntoView {
    let repository = RwSignal::new(repository);
    let action = RwSignal::new(action);
    let until = RwSignal::new(String::new());
    let justification = RwSignal::new(String::new());
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let server_error = RwSignal::new(None::<AppError>);
    let submit = ServerAction::<SubmitAccessRequest>::new();
    let hydrated = use_hydrated();
    Effect::new(move |_| {
        if let Some(result) = submit.value().get() {
            match result {
                Ok(id) => go_to(&format!("/requests/{id}")),
                Err(e) => {
                    errors.set(e.field_errors().to_vec());
                    server_error.set(Some(e));
                }
            }
        }
    });
    let ns = namespace.clone();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        server_error.set(None);
        let input = AccessRequestInput {
            action: action.get(),
            repository: repository.get(),
            until: (action.get() == "grant").then(|| until.get()),
            justification: justification.get(),
        };
        // The end date is checked against the clock on the server.
        let check = Namespace::parse(&ns).map(|n| input.parse(&n, 0));
        match check {
            Ok(Err(errs)) => errors.set(errs),
            _ => {
                errors.set(Vec::new());
                submit.dispatch(SubmitAccessRequest { input });
            }
        }
    };
    let errs: Signal<Vec<FieldError>> = errors.into();
    view! {
        <form class="card form" on:submit=on_submit novalidate data-testid="access-form">
            {move || server_error.get().map(|e| view! { <ErrorNotice error=e/> })}
            <Fields hydrated>
            <p class="help">"Production account: " <code>{production.unwrap_or_else(|| "not configured".into())}</code></p>
            <Field id="repository" label="Repository" help="The full name, or the part after the namespace." errors=errs>
                <div class="prefixed">
                    <span class="prefix" aria-hidden="true">{format!("{namespace}/")}</span>
                    <input id="repository" name="repository" required autocomplete="off" spellcheck="false"
                        prop:value=repository on:input=move |ev| repository.set(event_target_value(&ev))/>
                </div>
            </Field>
            <fieldset class="field">
                <legend>"Change"</legend>
                <label class="choice">
                    <input type="radio" name="action" value="grant" prop:checked=move || action.get() == "grant"
                        on:change=move |_| action.set("grant".into())/>
                    " Grant read-only pull"
                </label>
                <label class="choice">
                    <input type="radio" name="action" value="revoke" prop:checked=move || action.get() == "revoke"
                        on:change=move |_| action.set("revoke".into())/>
                    " Revoke"
                </label>
            </fieldset>
            <Show when=move || action.get() == "grant">
                <Field id="until" label="End date (optional)" help="Leave empty for a lasting grant. The portal revokes a temporary grant by itself the day after this date (UTC)." errors=errs>
                    <input id="until" name="until" type="date" prop:value=until on:input=move |ev| until.set(event_target_value(&ev))/>
                </Field>
            </Show>
            <Field id="justification" label="Justification" help="Which production workload pulls these images, and why?" errors=errs>
                <textarea id="justification" name="justification" rows="4" required
                    prop:value=justification on:input=move |ev| justification.set(event_target_value(&ev))></textarea>
            </Field>
            <div class="actions">
                <button type="submit" class="button primary" disabled=move || submit.pending().get()>
                    {move || if submit.pending().get() { "Submitting…" } else { "Submit request" }}
                </button>
            </div>
            </Fields>
        </form>
    }
}
