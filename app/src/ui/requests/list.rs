//! The requests list (status filter, mine toggle, pages) and the approval queue.
use crate::api::list_requests;
use crate::domain::request::Status;
use crate::error::AppError;
use crate::ui::common::{EmptyState, ErrorNotice, Loading, StatusBadge, Time};
use crate::ui::InfoResource;
use crate::views::{RequestSummary, RequestsPage};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

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
                                    <td><Time at=r.created_at/></td>
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
    let search = move |key: &str| query.with(|q| q.get(key)).filter(|v| !v.trim().is_empty());
    let rows = Resource::new(
        move || (status(), mine(), before(), search("repository"), search("requester"), search("kind")),
        |(s, m, b, repository, requester, kind)| {
            list_requests(s, m, RequestsPage { before: b, limit: None, repository, requester, kind })
        },
    );
    // The next (older) page starts below the last request shown, with the same search.
    let older_link = move |last: i64| {
        let mut q = vec![format!("before={last}")];
        if let Some(s) = status() {
            q.push(format!("status={s}"));
        }
        if mine() {
            q.push("mine=1".into());
        }
        for key in ["repository", "requester", "kind"] {
            if let Some(v) = search(key) {
                q.push(format!("{key}={}", crate::ui::common::encode(&v)));
            }
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
            // A plain GET form: searching works before (and without) the page's script.
            <form class="filters-form" method="get" action="/" role="search" aria-label="Search requests">
                <div class="field">
                    <label for="search-repository">"Repository contains"</label>
                    <input id="search-repository" name="repository" maxlength="256" prop:value=move || search("repository").unwrap_or_default()/>
                </div>
                <div class="field">
                    <label for="search-requester">"Requested by (user id)"</label>
                    <input id="search-requester" name="requester" maxlength="512" placeholder="local:alice" prop:value=move || search("requester").unwrap_or_default()/>
                </div>
                <div class="field">
                    <label for="search-kind">"Kind"</label>
                    <select id="search-kind" name="kind">
                        <option value="">"Any"</option>
                        {RequestsPage::KINDS.into_iter().map(|k| view! {
                            <option value=k selected=move || search("kind").as_deref() == Some(k)>{k.replace('_', " ")}</option>
                        }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="search-status">"Status"</label>
                    <select id="search-status" name="status">
                        <option value="">"Any"</option>
                        {Status::ALL.into_iter().map(|s| view! {
                            <option value=s.as_str() selected=move || status().as_deref() == Some(s.as_str())>{s.as_str()}</option>
                        }).collect_view()}
                    </select>
                </div>
                <button type="submit" class="button">"Search"</button>
            </form>
            <Transition fallback=Loading>
                {move || rows.get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(rows) if rows.is_empty() && (search("repository").is_some() || search("requester").is_some() || search("kind").is_some()) => view! {
                        <EmptyState title="No request matches">
                            <p>"Try part of the repository's name, or fewer filters."</p>
                        </EmptyState>
                    }.into_any(),
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
            let all = RequestsPage { limit: Some(500), ..Default::default() };
            let mut rows = list_requests(Some("pending".into()), false, all.clone()).await?;
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
