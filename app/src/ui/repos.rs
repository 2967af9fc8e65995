//! Repositories under the namespace, read from ECR itself.
use super::common::{EmptyState, ErrorNotice, Loading};
use crate::api::list_repositories;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

#[component]
pub fn Repositories() -> impl IntoView {
    let repos = Resource::new(|| (), |_| list_repositories());
    view! {
        <Title text="Repositories"/>
        <section class="page">
            <div class="page-head"><h1>"Repositories"</h1></div>
            <p class="lede">"Read live from ECR in the staging account."</p>
            <Transition fallback=Loading>
                {move || repos.get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <EmptyState title="No repositories under the namespace yet">
                            <p>"Approved requests create them here."</p>
                        </EmptyState>
                    }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap">
                            <table class="table" data-testid="repositories-table">
                                <thead>
                                    <tr>
                                        <th scope="col">"Name"</th>
                                        <th scope="col">"Pull URI"</th>
                                        <th scope="col">"Tags"</th>
                                        <th scope="col">"Scan"</th>
                                        <th scope="col">"Encryption"</th>
                                        <th scope="col">"Created"</th>
                                        <th scope="col">"Request"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {list.into_iter().map(|r| view! {
                                        <tr>
                                            <td><code>{r.name}</code></td>
                                            <td class="uri"><code>{r.uri}</code></td>
                                            <td>{r.tag_mutability}</td>
                                            <td>{if r.scan_on_push { "on push" } else { "off" }}</td>
                                            <td>{r.encryption}</td>
                                            <td><time>{r.created_at}</time></td>
                                            <td>{r.request_id.map(|id| view! { <A href=format!("/requests/{id}")>"#"{id}</A> })}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any(),
                })}
            </Transition>
        </section>
    }
}
