//! Pages and components, by feature. Components render views and call server
//! functions; rules live in `domain` and the service.
mod audit;
mod common;
mod images;
mod login;
mod notifications;
mod repo_settings;
mod repos;
mod requests;
mod terraform;
mod tokens;
mod users;

pub use images::images_href;
pub use repo_settings::settings_href;

use crate::api::get_portal_info;
use crate::views::PortalInfo;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path,
};

/// The Content-Security-Policy of every page: scripts only from this origin
/// with this response's nonce (Leptos puts it on its hydration scripts), wasm
/// allowed to compile, nothing inline otherwise, no framing, no plugins.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The full HTML document rendered by the server; the wasm bundle hydrates `<App/>` in it.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(res)) = (use_nonce(), use_context::<leptos_axum::ResponseOptions>()) {
        if let Ok(v) = http::HeaderValue::from_str(&content_security_policy(&nonce)) {
            res.insert_header(http::header::CONTENT_SECURITY_POLICY, v);
        }
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Portal-wide facts and the signed-in user, loaded once per page.
#[derive(Clone, Copy)]
pub struct InfoResource(pub Resource<Result<PortalInfo, crate::error::AppError>>);

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let info = Resource::new(|| (), |_| get_portal_info());
    provide_context(InfoResource(info));
    view! {
        <Stylesheet id="leptos" href="/pkg/ecr-portal.css"/>
        <Link rel="icon" href="/favicon.ico"/>
        <Title formatter=|t: String| if t.is_empty() { "ecr-portal".to_string() } else { format!("{t} · ecr-portal") }/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <Header/>
            <main id="main" tabindex="-1">
                // Every page is rendered whole before it is sent (in order, not streamed out of order):
                // its content is there without JavaScript, and the wasm only enhances it.
                <Routes fallback=|| view! { <common::NotFound/> }>
                    <Route path=path!("/") view=requests::RequestList ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/login") view=login::LoginPage ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/requests/new") view=requests::NewRequest ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/requests/access") view=requests::AccessRequest ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/requests/:id") view=requests::RequestPage ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/queue") view=requests::Queue ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/repositories") view=repos::Repositories ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/repositories/images") view=images::ImagesPageView ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/repositories/settings") view=repo_settings::RepositorySettingsPage ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/terraform/import") view=terraform::TerraformImportPage ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/audit") view=audit::AuditPage ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/tokens") view=tokens::TokensPage ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/users") view=users::UsersPage ssr=leptos_router::SsrMode::Async/>
                    <Route path=path!("/notifications") view=notifications::NotificationsPage ssr=leptos_router::SsrMode::Async/>
                </Routes>
            </main>
            <Footer/>
        </Router>
    }
}

#[component]
fn Header() -> impl IntoView {
    let info = expect_context::<InfoResource>().0;
    view! {
        <header class="topbar">
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                " ecr-portal"
            </A>
            <Suspense fallback=|| ()>
                {move || {
                    info.get()
                        .and_then(Result::ok)
                        .map(|i| match i.user {
                            Some(u) => {
                                use crate::domain::principal::Capability;
                                view! {
                                    <nav aria-label="Main">
                                        <A href="/">"Requests"</A>
                                        {u.can(Capability::SubmitRequest).then(|| view! { <A href="/requests/new">"New request"</A> })}
                                        {i.can_decide.then(|| view! { <A href="/queue">"Queue"</A> })}
                                        <A href="/repositories">"Repositories"</A>
                                        {u.can(Capability::ReadAudit).then(|| view! { <A href="/audit">"Audit"</A> })}
                                        {u.can(Capability::ManageTokens).then(|| view! { <A href="/tokens">"API tokens"</A> })}
                                        {u.can(Capability::ReadPeople).then(|| view! { <A href="/users">"People"</A> })}
                                        {u.can(Capability::Operate).then(|| view! { <A href="/notifications">"Notifications"</A> })}
                                    </nav>
                                    <div class="who">
                                        <span class="user" data-testid="current-user">
                                            {u.name.clone()}
                                            <span class="role">{u.role.to_string()}</span>
                                        </span>
                                        <form method="post" action="/auth/logout">
                                            <button type="submit" class="link-button">"Sign out"</button>
                                        </form>
                                    </div>
                                }
                                    .into_any()
                            }
                            None => view! { <a class="button" href="/login">"Sign in"</a> }.into_any(),
                        })
                }}
            </Suspense>
        </header>
    }
}

#[component]
fn Footer() -> impl IntoView {
    let info = expect_context::<InfoResource>().0;
    view! {
        <footer class="footer">
            <Suspense fallback=|| ()>
                {move || {
                    info.get()
                        .and_then(Result::ok)
                        .map(|i| {
                            view! {
                                <span>"Namespace " <code>{i.namespace}"/"</code></span>
                                <span>"Region " <code>{i.region}</code></span>
                                <span>
                                    "Staging account "
                                    <code>{i.staging_account.unwrap_or_else(|| "default credentials".into())}</code>
                                </span>
                                <span>
                                    "Production account "
                                    <code data-testid="production-account">
                                        {i.production_account.unwrap_or_else(|| "not configured".into())}
                                    </code>
                                </span>
                            }
                        })
                }}
            </Suspense>
        </footer>
    }
}
