//! Who has signed in: role, groups, last seen, live sessions and API tokens;
//! admins can cut a person off (every session and token ended at once).
//! Rendered on the server only: cutting someone off is a plain HTML form
//! (POST /users/revoke, answered with a redirect back here), so it works
//! before, and without, any JavaScript.
use super::common::{EmptyState, ErrorNotice, Loading, Time};
use super::InfoResource;
use crate::api::list_users;
use crate::domain::principal::Capability;
use crate::views::UserView;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// What `/users?error=` may say: known codes only, never free text from the URL.
fn error_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "forbidden" => "Only admins can cut people off.",
        "not_found" => "Nobody with that id has signed in.",
        "invalid" => "Give the user id of the person to cut off.",
        "unavailable" => "The portal could not do that right now; nothing was changed. Try again.",
        _ => return None,
    })
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let users = Resource::new(|| (), |_| list_users());
    let info = expect_context::<InfoResource>().0;
    let query = use_query_map();
    let can_manage =
        move || info.get().and_then(Result::ok).and_then(|i| i.user).is_some_and(|u| u.can(Capability::ManagePeople));
    let done = move || query.with(|q| q.get("revoked"));
    let error = move || query.with(|q| q.get("error")).and_then(|c| error_text(&c));
    view! {
        <Title text="People"/>
        <section class="page">
            <div class="page-head">
                <h1>"People"</h1>
            </div>
            <p class="lede">
                "Everyone who has signed in, as of their last sign-in. Cutting a person off ends all their sessions "
                "and revokes all their API tokens at once; they can sign in again only if the identity provider still lets them."
            </p>
            {move || done().map(|who| view! {
                <div class="notice notice-success" role="status" data-testid="user-revoked">
                    <p>"Cut off " <code>{who}</code> ": every session ended and every API token revoked."</p>
                </div>
            })}
            {move || error().map(|text| view! { <div class="notice notice-error" role="alert"><p>{text}</p></div> })}
            <Suspense fallback=Loading>
                {move || users.get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <EmptyState title="Nobody has signed in yet"><p>"People appear here after their first sign-in."</p></EmptyState>
                    }.into_any(),
                    Ok(list) => view! { <UserTable list manage=can_manage()/> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn UserTable(list: Vec<UserView>, manage: bool) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="table" data-testid="users">
                <thead>
                    <tr>
                        <th scope="col">"Person"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"Last seen"</th>
                        <th scope="col">"Sessions"</th>
                        <th scope="col">"API tokens"</th>
                        {manage.then(|| view! { <th scope="col"><span class="visually-hidden">"Actions"</span></th> })}
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|u| {
                        let live = u.sessions + u.tokens;
                        view! {
                            <tr>
                                <td>
                                    <strong>{u.name.clone()}</strong>
                                    <br/><code class="small">{u.id.clone()}</code>
                                </td>
                                <td>
                                    {u.role.to_string()}
                                    {(!u.groups.is_empty()).then(|| view! { <br/><span class="help">{u.groups.join(", ")}</span> })}
                                </td>
                                <td><Time at=u.last_seen.clone()/><br/><span class="help">"signed in " <Time at=u.last_sign_in.clone()/></span></td>
                                <td>{u.sessions}</td>
                                <td>{u.tokens}</td>
                                {manage.then(|| view! {
                                    <td>
                                        {(live > 0).then(|| view! {
                                            <details class="confirm">
                                                <summary class="button danger small">"Cut off…"</summary>
                                                <form method="post" action="/users/revoke">
                                                    <input type="hidden" name="user" value=u.id.clone()/>
                                                    <p class="help">{format!("End {} session(s) and revoke {} API token(s) of {} now?", u.sessions, u.tokens, u.name)}</p>
                                                    <button type="submit" class="button danger small" aria-label=format!("Cut off {}", u.name)>"Cut off now"</button>
                                                </form>
                                            </details>
                                        })}
                                    </td>
                                })}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
