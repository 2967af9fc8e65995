//! The inventory: every repository under the namespace, read from ECR itself,
//! with its pull URI, settings, production access, images and drift. Admins
//! adopt repositories made outside the portal, check drift, and resolve it.
//! Search, filter and page are in the URL (100 rows a page).
use super::common::{encode, go_to, reload, reload_when, CopyButton, EmptyState, ErrorNotice, Loading, Time};
use super::InfoResource;
use crate::api::{list_repositories, AcceptDrift, AdoptRepository, CheckDrift, RequestRestore};
use crate::error::AppError;
use crate::views::{RepositoriesQuery, RepositoryView};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

/// The link to another page of the same search.
fn page_href(q: &RepositoriesQuery, offset: u32) -> String {
    let mut parts = Vec::new();
    if let Some(s) = q.q.as_deref().filter(|s| !s.is_empty()) {
        parts.push(format!("q={}", encode(s)));
    }
    if let Some(s) = q.show.as_deref().filter(|s| !s.is_empty() && *s != "all") {
        parts.push(format!("show={}", encode(s)));
    }
    if offset > 0 {
        parts.push(format!("offset={offset}"));
    }
    if parts.is_empty() {
        "/repositories".into()
    } else {
        format!("/repositories?{}", parts.join("&"))
    }
}

#[component]
pub fn Repositories() -> impl IntoView {
    let query = use_query_map();
    let q = move || {
        query.with(|m| {
            let s = |k: &str| m.get(k).filter(|v| !v.is_empty());
            RepositoriesQuery {
                q: s("q"),
                show: s("show"),
                offset: s("offset").and_then(|v| v.parse().ok()),
                limit: None,
            }
        })
    };
    let repos = Resource::new(q, list_repositories);
    let info = expect_context::<InfoResource>().0;
    let is_admin = move || info.get().and_then(Result::ok).and_then(|i| i.user).is_some_and(|u| u.is_admin());
    let row = move |r: RepositoryView| {
        let name = r.name.clone();
        let n4 = name.clone();
        let n5 = name.clone();
        let drifted = !r.drift.is_empty();
        let uri = r.uri.clone();
        view! {
            <tr data-repository=name.clone() class:drifted=drifted>
                <td>
                    <code>{name.clone()}</code>
                    {(!r.managed).then(|| view! { <span class="chip muted">"not in the portal"</span> })}
                    {r.request_id.map(|id| view! { <A href=format!("/requests/{id}") attr:class="small-link">"request #"{id}</A> })}
                </td>
                <td class="uri">
                    <code>{uri.clone()}</code>
                    <CopyButton text=uri label=format!("Copy the pull URI of {name}")/>
                </td>
                <td class="settings">
                    {r.tag_mutability.clone()} <br/>
                    {if r.scan_on_push { "scan on push" } else { "no scan" }} <br/>
                    {r.encryption.clone()}
                    <p><a class="small-link" href=super::repo_settings::settings_href(&name) data-testid="settings-link">"Settings · delete"</a></p>
                    <p><a class="small-link" href=super::images::images_href(&name) data-testid="images-link">"Images · releases"</a></p>
                </td>
                <td data-testid="production-access">
                    {if r.production_access {
                        view! { <span class="badge badge-applied">"pullable"</span> }.into_any()
                    } else {
                        view! { <span class="badge badge-rejected">"no access"</span> }.into_any()
                    }}
                    {r.production_until.clone().map(|u| view! { <p class="help">"until "<Time at=u/></p> })}
                    <p><a class="small-link" href=format!("/requests/access?repository={}&action={}", n4, if r.production_access { "revoke" } else { "grant" })>
                        {if r.production_access { "Request revoke" } else { "Request access" }}
                    </a></p>
                </td>
                <td>{r.image_count} <br/> <span class="help">{r.last_push.clone().map(|l| format!("last push {l}")).unwrap_or_else(|| "no images yet".into())}</span></td>
                <td data-testid="drift">
                    {if drifted {
                        view! {
                            <span class="badge badge-failed">"drift"</span>
                            <ul class="drift-list">{r.drift.clone().into_iter().map(|d| view! { <li>{d}</li> }).collect_view()}</ul>
                        }.into_any()
                    } else if r.managed {
                        view! { <span class="badge badge-applied">"in sync"</span> }.into_any()
                    } else {
                        view! { <span class="help">"—"</span> }.into_any()
                    }}
                    {r.drift_checked_at.clone().map(|c| view! { <p class="help">"checked "<Time at=c/></p> })}
                </td>
                <td class="row-actions">
                    <Show when=is_admin>
                        <RepoActions name=n5.clone() managed=r.managed drifted/>
                    </Show>
                </td>
            </tr>
        }
    };
    view! {
        <Title text="Repositories"/>
        <section class="page wide">
            <div class="page-head">
                <h1>"Repositories"</h1>
                <Suspense>
                    <Show when=is_admin>
                        <CheckDriftButton/>
                    </Show>
                </Suspense>
            </div>
            <p class="lede">"Read from ECR in the staging account (refreshed every minute), including repositories created outside the portal. "
                <a href="/api/v1/terraform/export" download="main.tf" data-testid="terraform-export">"Download as Terraform"</a>
                " (the module's shape, with import blocks)."
                <Show when=is_admin>" "<a href="/terraform/import" data-testid="terraform-import">"Import from Terraform"</a></Show>
            </p>
            <form method="get" action="/repositories" class="card filters-form" aria-label="Search the repositories">
                <div class="field">
                    <label for="r-q">"Name contains"</label>
                    <input id="r-q" name="q" type="search" value=move || q().q.unwrap_or_default() prop:value=move || q().q.unwrap_or_default()/>
                </div>
                <div class="field">
                    <label for="r-show">"Show"</label>
                    <select id="r-show" name="show" prop:value=move || q().show.unwrap_or_default()>
                        {[("", "All repositories"), ("drift", "Drifted"), ("unmanaged", "Not in the portal"), ("production", "Pullable by production")]
                            .into_iter()
                            .map(|(v, label)| view! {
                                <option value=v selected=move || q().show.unwrap_or_default() == v>{label}</option>
                            })
                            .collect_view()}
                    </select>
                </div>
                <div class="actions">
                    <button class="button primary" type="submit">"Search"</button>
                    <A href="/repositories">"Clear"</A>
                </div>
            </form>
            <Transition fallback=Loading>
                {move || repos.get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(page) if page.total == 0 => view! {
                        <EmptyState title="No repositories under the namespace yet">
                            <p>"Approved requests create them here."</p>
                        </EmptyState>
                    }.into_any(),
                    Ok(page) if page.matching == 0 => view! {
                        <EmptyState title="No repository matches">
                            <p>{format!("None of the {} repositories matches this search.", page.total)}" "<a href="/repositories">"Show all"</a></p>
                        </EmptyState>
                    }.into_any(),
                    Ok(page) if page.repositories.is_empty() => view! {
                        <EmptyState title="This page is past the end">
                            <p>{format!("{} repositories match; this page starts after the last one.", page.matching)}" "
                                <a href=page_href(&q(), 0)>"First page"</a></p>
                        </EmptyState>
                    }.into_any(),
                    Ok(page) => {
                        let current = q();
                        let first = page.offset as usize + 1;
                        let last = page.offset as usize + page.repositories.len();
                        let previous = (page.offset > 0).then(|| page_href(&current, page.offset.saturating_sub(page.limit)));
                        let next = page.next_offset.map(|o| page_href(&current, o));
                        view! {
                            <p class="summary-line" data-testid="repositories-count">
                                {format!("{first}–{last} of {} ", page.matching)}
                                {if page.matching == page.total { "repositories".to_string() } else { format!("matching (of {})", page.total) }}
                                {(page.drifted > 0).then(|| view! {
                                    " · " <a href="/repositories?show=drift" class="badge badge-failed">{format!("{} drifted", page.drifted)}</a>
                                })}
                            </p>
                            <div class="table-wrap">
                                <table class="table" data-testid="repositories-table">
                                    <thead>
                                        <tr>
                                            <th scope="col">"Name"</th>
                                            <th scope="col">"Pull URI"</th>
                                            <th scope="col">"Settings"</th>
                                            <th scope="col">"Production"</th>
                                            <th scope="col">"Images"</th>
                                            <th scope="col">"Drift"</th>
                                            <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                        </tr>
                                    </thead>
                                    <tbody>{page.repositories.into_iter().map(row).collect_view()}</tbody>
                                </table>
                            </div>
                            <nav class="pager" aria-label="Pages of repositories">
                                {previous.map(|h| view! { <A href=h>"← Previous"</A> })}
                                {next.map(|h| view! { <A href=h>"Next →"</A> })}
                            </nav>
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

/// Adopt, accept the live state, request a restore: plain HTML forms (`POST
/// /repositories/{adopt,accept,restore}`) answered without JavaScript; with the wasm, server
/// functions, then the page loads again (or the restore request opens).
#[island]
fn RepoActions(name: String, managed: bool, drifted: bool) -> impl IntoView {
    let adopt = ServerAction::<AdoptRepository>::new();
    let accept = ServerAction::<AcceptDrift>::new();
    let restore = ServerAction::<RequestRestore>::new();
    let error = RwSignal::new(None::<AppError>);
    Effect::new(move |_| {
        for r in [adopt.value().get(), accept.value().get()].into_iter().flatten() {
            match r {
                Ok(()) => reload(),
                Err(e) => error.set(Some(e)),
            }
        }
    });
    Effect::new(move |_| match restore.value().get() {
        Some(Ok(id)) => go_to(&format!("/requests/{id}")),
        Some(Err(e)) => error.set(Some(e)),
        None => {}
    });
    let busy = move || adopt.pending().get() || accept.pending().get() || restore.pending().get();
    let action = move |ev: leptos::ev::SubmitEvent, what: &'static str, repository: String| {
        ev.prevent_default();
        if busy() {
            return;
        }
        error.set(None);
        match what {
            "adopt" => {
                adopt.dispatch(AdoptRepository { repository });
            }
            "accept" => {
                accept.dispatch(AcceptDrift { repository });
            }
            _ => {
                restore.dispatch(RequestRestore { repository, justification: String::new() });
            }
        }
    };
    let form = move |what: &'static str, label: &'static str, class: &'static str| {
        let repository = name.clone();
        view! {
            <form class="inline-form" method="post" action=format!("/repositories/{what}")
                on:submit=move |ev| action(ev, what, repository.clone())>
                <input type="hidden" name="name" value=name.clone()/>
                <button type="submit" class=class disabled=busy>{label}</button>
            </form>
        }
    };
    view! {
        {move || error.get().map(|e| view! { <ErrorNotice error=e/> })}
        {(!managed).then(|| form("adopt", "Adopt", "button small"))}
        {drifted.then(|| view! {
            {form("accept", "Accept live state", "button small")}
            {form("restore", "Request restore", "button small primary")}
        })}
    }
}

/// Checks every managed repository for drift now: a plain HTML form (`POST
/// /repositories/check`); with the wasm, a server function, then the page loads again.
#[island]
fn CheckDriftButton() -> impl IntoView {
    let check = ServerAction::<CheckDrift>::new();
    reload_when(move || matches!(check.value().get(), Some(Ok(_))));
    view! {
        <form class="inline-form" method="post" action="/repositories/check"
            on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                if !check.pending().get_untracked() {
                    check.dispatch(CheckDrift { repository: None });
                }
            }>
            <button type="submit" class="button" disabled=move || check.pending().get()>
                {move || if check.pending().get() { "Checking…" } else { "Check drift now" }}
            </button>
        </form>
        {move || check.value().get().and_then(Result::err).map(|e| view! { <ErrorNotice error=e/> })}
    }
}
