//! Local sign-in (the default run): type a user name, pick a role. The form
//! posts to `/auth/local`, a plain HTML endpoint, so scripts can use it too.
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || query.with(|q| q.get("error"));
    let next = move || query.with(|q| q.get("next")).unwrap_or_else(|| "/".into());
    view! {
        <Title text="Sign in"/>
        <section class="page narrow">
            <h1>"Sign in"</h1>
            <p class="lede">
                "Local sign-in for this machine: choose a user name and a role. "
                "Requesters ask for repositories; admins review and approve other people's requests."
            </p>
            {move || error().map(|e| view! { <div class="notice notice-error" role="alert"><p>{e}</p></div> })}
            <form method="post" action="/auth/local" class="card form">
                <input type="hidden" name="next" prop:value=next/>
                <div class="field">
                    <label for="username">"User name"</label>
                    <input id="username" name="username" autocomplete="username" required maxlength="64"
                        pattern="[a-z0-9][a-z0-9._\\-]*" aria-describedby="username-help"/>
                    <p class="help" id="username-help">"Lowercase letters, digits and . _ -"</p>
                </div>
                <fieldset class="field">
                    <legend>"Role"</legend>
                    <label class="choice"><input type="radio" name="role" value="requester" checked/>" Requester"</label>
                    <label class="choice"><input type="radio" name="role" value="admin"/>" Admin"</label>
                </fieldset>
                <button type="submit" class="button primary">"Sign in"</button>
            </form>
        </section>
    }
}
