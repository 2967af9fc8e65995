//! Sign-in. With OpenID Connect: one button that goes to the identity
//! provider. In the default local run: type a user name and pick a role; the
//! form posts to `/auth/local`, a plain HTML endpoint, so scripts can use it too.
//! Failed or denied sign-ins come back here with `?error=<code>`: a known
//! code, shown as its sentence (never text taken from the URL).
use super::InfoResource;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let info = expect_context::<InfoResource>().0;
    let error = move || query.with(|q| q.get("error")).and_then(|c| crate::views::login_error_text(&c));
    let next = move || query.with(|q| q.get("next")).unwrap_or_else(|| "/".into());
    let sso_href = move || {
        let n: String = next()
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'/' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        format!("/auth/oidc/start?next={n}")
    };
    view! {
        <Title text="Sign in"/>
        <section class="page narrow">
            <h1>"Sign in"</h1>
            {move || error().map(|e| view! {
                <div class="notice notice-error" role="alert" data-testid="login-error"><p>{e}</p></div>
            })}
            <Suspense fallback=|| ()>
                {move || info.get().and_then(Result::ok).map(|i| view! {
                    {i.oidc_sign_in.then(|| view! {
                        <div class="card form">
                            <p class="lede">"Sign in with your organisation account. Your groups decide what you can do here."</p>
                            <a class="button primary" href=sso_href rel="external" data-testid="sso">"Sign in with single sign-on"</a>
                        </div>
                    })}
                    {i.local_sign_in.then(|| view! { <LocalForm next=Signal::derive(next)/> })}
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn LocalForm(next: Signal<String>) -> impl IntoView {
    view! {
        <p class="lede">
            "Local sign-in for this machine: choose a user name and a role. "
            "Requesters ask for repositories; admins review and approve other people's requests; "
            "auditors read everything and change nothing."
        </p>
        <form method="post" action="/auth/local" class="card form">
            <input type="hidden" name="next" value=next/>
            <div class="field">
                <label for="username">"User name"</label>
                <input id="username" name="username" autocomplete="username" required maxlength="64"
                    pattern="[a-z0-9][a-z0-9._\\-]*" aria-describedby="username-help"/>
                <p class="help" id="username-help">"Lowercase letters, digits and . _ -"</p>
            </div>
            <fieldset class="field">
                <legend>"Role"</legend>
                <label class="choice"><input type="radio" name="role" value="requester" checked/>" Requester"</label>
                <label class="choice"><input type="radio" name="role" value="approver"/>" Approver"</label>
                <label class="choice"><input type="radio" name="role" value="admin"/>" Admin"</label>
                <label class="choice"><input type="radio" name="role" value="auditor"/>" Auditor"</label>
            </fieldset>
            <button type="submit" class="button primary">"Sign in"</button>
        </form>
    }
}
