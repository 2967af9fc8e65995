//! The audit history: filters (actor, action, repository, dates) in the URL,
//! keyset pagination (newer / older), newest first.
use super::common::{encode, use_hydrated, EmptyState, ErrorNotice, Loading, Time};
use crate::api::{audit_history, VerifyAudit};
use crate::domain::audit::AuditAction;
use crate::views::AuditQuery;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

fn query_string(q: &AuditQuery) -> String {
    let mut parts = Vec::new();
    let mut push = |k: &str, v: &Option<String>| {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", encode(v)));
        }
    };
    push("actor", &q.actor);
    push("action", &q.action);
    push("repository", &q.repository);
    push("from", &q.from);
    push("to", &q.to);
    parts.join("&")
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let q = move || {
        query.with(|m| {
            let s = |k: &str| m.get(k).filter(|v| !v.is_empty());
            AuditQuery {
                actor: s("actor"),
                action: s("action"),
                repository: s("repository"),
                request_id: None,
                from: s("from"),
                to: s("to"),
                before: s("before").and_then(|v| v.parse().ok()),
                after: s("after").and_then(|v| v.parse().ok()),
                limit: None,
            }
        })
    };
    let page = Resource::new(q, audit_history);
    let export = move |format: &str| {
        let base = query_string(&q());
        if base.is_empty() {
            format!("/api/v1/audit/export?format={format}")
        } else {
            format!("/api/v1/audit/export?format={format}&{base}")
        }
    };
    view! {
        <Title text="Audit history"/>
        <section class="page">
            <div class="page-head">
                <h1>"Audit history"</h1>
                <div class="actions">
                    <a class="button" href=move || export("csv") download>"Export CSV"</a>
                    <a class="button" href=move || export("ndjson") download>"Export NDJSON"</a>
                </div>
            </div>
            <VerifyChain/>
            <form method="get" action="/audit" class="card filters-form" aria-label="Filter the audit history">
                <div class="field">
                    <label for="f-actor">"Actor"</label>
                    <input id="f-actor" name="actor" value=move || q().actor.unwrap_or_default() prop:value=move || q().actor.unwrap_or_default()/>
                </div>
                <div class="field">
                    <label for="f-action">"Action"</label>
                    <select id="f-action" name="action" prop:value=move || q().action.unwrap_or_default()>
                        <option value="">"Any"</option>
                        {AuditAction::ALL.into_iter().map(|a| view! {
                            <option value=a.as_str() selected=move || q().action.as_deref() == Some(a.as_str())>{a.label()}</option>
                        }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="f-repository">"Repository"</label>
                    <input id="f-repository" name="repository" value=move || q().repository.unwrap_or_default() prop:value=move || q().repository.unwrap_or_default()/>
                </div>
                <div class="field">
                    <label for="f-from">"From"</label>
                    <input id="f-from" name="from" type="date" value=move || q().from.unwrap_or_default() prop:value=move || q().from.unwrap_or_default()/>
                </div>
                <div class="field">
                    <label for="f-to">"To"</label>
                    <input id="f-to" name="to" type="date" value=move || q().to.unwrap_or_default() prop:value=move || q().to.unwrap_or_default()/>
                </div>
                <div class="actions">
                    <button type="submit" class="button primary">"Filter"</button>
                    <A href="/audit">"Clear"</A>
                </div>
            </form>
            <Transition fallback=Loading>
                {move || page.get().map(|p| match p {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(p) if p.events.is_empty() => view! {
                        <EmptyState title="No events match">
                            <p>"Try fewer filters or a wider date range."</p>
                        </EmptyState>
                    }.into_any(),
                    Ok(p) => {
                        let base = query_string(&q());
                        let link = move |k: &str, v: i64| if base.is_empty() { format!("/audit?{k}={v}") } else { format!("/audit?{base}&{k}={v}") };
                        view! {
                            <div class="table-wrap">
                                <table class="table" data-testid="audit-table">
                                    <thead>
                                        <tr>
                                            <th scope="col">"When (UTC)"</th>
                                            <th scope="col">"Actor"</th>
                                            <th scope="col">"Action"</th>
                                            <th scope="col">"Repository"</th>
                                            <th scope="col">"Request"</th>
                                            <th scope="col">"Details"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {p.events.into_iter().map(|e| view! {
                                            <tr data-action=e.action.clone()>
                                                <td><Time at=e.at/></td>
                                                <td>{e.actor}</td>
                                                <td><span class="action">{e.label}</span></td>
                                                <td>{e.repository.map(|r| view! { <code>{r}</code> })}</td>
                                                <td>{e.request_id.map(|id| view! { <A href=format!("/requests/{id}")>"#"{id}</A> })}</td>
                                                <td class="detail">
                                                    {e.detail}
                                                    {e.aws_request_ids.into_iter().map(|i| view! { " " <code class="reqid">{i}</code> }).collect_view()}
                                                </td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                            <nav class="pager" aria-label="Pages">
                                {p.newer.map(|n| view! { <a href=link("after", n) rel="prev">"← Newer"</a> })}
                                {p.older.map(|o| view! { <a href=link("before", o) rel="next">"Older →"</a> })}
                            </nav>
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

/// Verifies the whole hash chain on demand and says whether it is intact.
#[island]
fn VerifyChain() -> impl IntoView {
    let verify = ServerAction::<VerifyAudit>::new();
    let hydrated = use_hydrated();
    view! {
        <div class="verify">
            <button class="button" disabled=move || !hydrated.get() || verify.pending().get()
                on:click=move |_| { verify.dispatch(VerifyAudit {}); }>
                {move || if verify.pending().get() { "Verifying…" } else { "Verify integrity" }}
            </button>
            <div aria-live="polite" data-testid="verification">
                {move || verify.value().get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(v) if v.intact => view! {
                        <p class="notice notice-ok">
                            "Intact: all " {v.events} " events chain correctly (checked " <Time at=v.checked_at/> "). Head hash "
                            <code class="reqid">{v.head}</code>
                        </p>
                    }.into_any(),
                    Ok(v) => view! {
                        <p class="notice notice-error" role="alert">
                            "Tampering detected at event " {v.broken_at.unwrap_or(0)} ": " {v.reason.unwrap_or_default()}
                        </p>
                    }.into_any(),
                })}
            </div>
        </div>
    }
}
