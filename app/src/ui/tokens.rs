//! API tokens for pipelines: create one (its secret is shown once), see the
//! others with their state and last use, revoke.
use super::common::{form_values, EmptyState, ErrorNotice, Loading, Time};
use crate::api::{list_tokens, CreateToken, RevokeToken};
use crate::domain::principal::TokenScope;
use crate::error::AppError;
use crate::views::{CreatedToken, TokenView};
use crate::views::{FormKey, Posted};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn TokensPage() -> impl IntoView {
    let tokens = Resource::new(|| (), |_| list_tokens());
    // Posted without JavaScript: the new token's secret (this once), or the refused form.
    let posted = use_context::<Posted>();
    view! {
        <Title text="API tokens"/>
        <section class="page">
            <div class="page-head">
                <h1>"API tokens"</h1>
            </div>
            <p class="lede">
                "Pipelines use a token as " <code>"Authorization: Bearer <token>"</code>
                " on the JSON API. Every use is recorded in the audit trail under your name and the token's number."
            </p>
            <Suspense fallback=Loading>
                {move || tokens.get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(list) => {
                        let (created, mut form) = match posted.clone() {
                            Some(Posted::TokenCreated(c)) => (Some(c), TokenForm::default()),
                            Some(Posted::TokenRefused { name, scope, days, error }) => {
                                (None, TokenForm { name, scope, days, error: Some(error), once: String::new() })
                            }
                            _ => (None, TokenForm::default()),
                        };
                        // This rendering's key, sent with the plain form (see `FormKey`).
                        form.once = use_context::<FormKey>().map(|k| k.0).unwrap_or_default();
                        view! { <Tokens list created form/> }.into_any()
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The new-token form's fields as sent (the server renders them again when it refuses them).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokenForm {
    pub name: String,
    pub scope: String,
    pub days: String,
    pub error: Option<AppError>,
    /// Sent back with the plain form (see `TokensPage`).
    pub once: String,
}

impl Default for TokenForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            scope: TokenScope::Submit.as_str().into(),
            days: "30".into(),
            error: None,
            once: String::new(),
        }
    }
}

/// The form, the new secret and the list: one island that starts from the
/// list the server rendered and keeps it current from what creating and
/// revoking answer (with the wasm the secret never goes through a page load;
/// without it, the server's answer to the plain form shows it, once).
#[island]
fn Tokens(list: Vec<TokenView>, created: Option<CreatedToken>, form: TokenForm) -> impl IntoView {
    let list = RwSignal::new(list);
    let created = RwSignal::new(created);
    view! {
        {move || created.get().map(|c| view! { <NewSecret created=c/> })}
        <CreateForm form on_created=Callback::new(move |c: CreatedToken| {
            list.update(|l| l.insert(0, c.token.clone()));
            created.set(Some(c));
        })/>
        <h2>"Your tokens"</h2>
        {move || {
            let l = list.get();
            if l.is_empty() {
                view! {
                    <EmptyState title="No API tokens yet">
                        <p>"Create one above for a CI pipeline; choose “submit requests only” unless it must do more."</p>
                    </EmptyState>
                }
                .into_any()
            } else {
                view! { <TokenTable list=l on_change=Callback::new(move |now: Vec<TokenView>| list.set(now))/> }.into_any()
            }
        }}
    }
}

#[component]
fn NewSecret(created: CreatedToken) -> impl IntoView {
    view! {
        <div class="notice notice-success" role="status" data-testid="new-token">
            <p>
                <strong>"Token #"{created.token.id}" (" {created.token.name.clone()} ") created."</strong>
                " Copy it now: it is shown only once and the portal keeps only its hash."
            </p>
            <label for="new-token-secret">"Token"</label>
            <input id="new-token-secret" class="mono" readonly value=created.secret.clone()/>
        </div>
    }
}

/// A plain HTML form (`POST /tokens`) the server answers without JavaScript; with the
/// wasm, a server function, and the secret appears above without a page load.
#[component]
fn CreateForm(form: TokenForm, on_created: Callback<CreatedToken>) -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let error = RwSignal::new(form.error.clone());
    let form_ref = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| match create.value().get() {
        Some(Ok(c)) => {
            error.set(None);
            // A fresh form: a second click must not make a second token by accident.
            if let Some(f) = form_ref.get_untracked() {
                f.reset();
            }
            on_created.run(c);
        }
        Some(Err(e)) => error.set(Some(e)),
        None => {}
    });
    let field_error = move |f: &'static str| {
        error.with(|e| {
            e.as_ref().and_then(|e| e.field_errors().iter().find(|x| x.field == f).map(|x| x.message.clone()))
        })
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let f = form_values(&ev);
        match crate::domain::web_form::parse_token_days(&f.text("days")) {
            Ok(days) => {
                create.dispatch(CreateToken { name: f.text("name"), scope: f.text("scope"), days });
            }
            Err(e) => error.set(Some(AppError::Invalid(vec![e]))),
        }
    };
    let scope = form.scope.clone();
    view! {
        <form class="card form" method="post" action="/tokens" on:submit=submit novalidate node_ref=form_ref>
            <h2>"New token"</h2>
            <input type="hidden" name="once" value=form.once.clone()/>
            {move || error.get().filter(|e| e.field_errors().is_empty()).map(|e| view! { <ErrorNotice error=e/> })}
            <div class="field" class:has-error=move || field_error("name").is_some()>
                <label for="token-name">"Name"</label>
                <input id="token-name" name="name" maxlength="64" placeholder="ci-deploy" aria-describedby="token-name-error"
                    value=form.name.clone()/>
                <p class="field-error" id="token-name-error" role="alert">{move || field_error("name")}</p>
            </div>
            <fieldset class="field">
                <legend>"What it may do"</legend>
                {TokenScope::ALL.into_iter().map(|s| view! {
                    <label class="choice">
                        <input type="radio" name="scope" value=s.as_str() checked=scope == s.as_str()/>
                        " " {s.label()}
                    </label>
                }).collect_view()}
                <p class="field-error" role="alert">{move || field_error("scope")}</p>
            </fieldset>
            <div class="field" class:has-error=move || field_error("days").is_some()>
                <label for="token-days">"Valid for (days)"</label>
                <input id="token-days" name="days" inputmode="numeric" aria-describedby="token-days-error"
                    value=form.days.clone()/>
                <p class="field-error" id="token-days-error" role="alert">{move || field_error("days")}</p>
            </div>
            <button type="submit" class="button primary" disabled=move || create.pending().get()>
                "Create token"
            </button>
        </form>
    }
}

#[component]
fn TokenTable(list: Vec<TokenView>, on_change: Callback<Vec<TokenView>>) -> impl IntoView {
    let revoke = ServerAction::<RevokeToken>::new();
    let error = RwSignal::new(None::<AppError>);
    Effect::new(move |_| match revoke.value().get() {
        Some(Ok(now)) => on_change.run(now),
        Some(Err(e)) => error.set(Some(e)),
        None => {}
    });
    view! {
        {move || error.get().map(|e| view! { <ErrorNotice error=e/> })}
        <div class="table-wrap">
            <table class="table" data-testid="tokens">
                <thead>
                    <tr>
                        <th scope="col">"#"</th>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Scope"</th>
                        <th scope="col">"State"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col">"Last used"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|t| {
                        let id = t.id;
                        let active = t.state == "active";
                        view! {
                            <tr>
                                <td>{t.id}</td>
                                <td>{t.name.clone()}</td>
                                <td>{t.scope.label()}</td>
                                <td><span class=format!("badge badge-token-{}", t.state)>{t.state.clone()}</span></td>
                                <td><Time at=t.expires_at.clone()/></td>
                                <td>{t.last_used_at.clone().map_or_else(|| "never".into_any(), |t| view! { <Time at=t/> }.into_any())}</td>
                                <td>
                                    {active.then(|| view! {
                                        <form class="inline-form" method="post" action=format!("/tokens/{id}/revoke")
                                            on:submit=move |ev: leptos::ev::SubmitEvent| {
                                                ev.prevent_default();
                                                if !revoke.pending().get_untracked() {
                                                    revoke.dispatch(RevokeToken { id });
                                                }
                                            }>
                                            <button type="submit" class="button danger small" aria-label=format!("Revoke token {}", t.name)
                                                disabled=move || revoke.pending().get()>
                                                "Revoke"
                                            </button>
                                        </form>
                                    })}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
