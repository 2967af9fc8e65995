//! The production access request: the page and its grant / revoke form island.
use super::new::Field;
use crate::api::SubmitAccessRequest;
use crate::domain::form::{AccessRequestInput, FieldError};
use crate::domain::name::Namespace;
use crate::error::AppError;
use crate::ui::common::{form_values, open_when_filed, textarea_text, use_hydrated, ErrorNotice, Loading};
use crate::ui::InfoResource;
use crate::views::Posted;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn AccessRequest() -> impl IntoView {
    let info = expect_context::<InfoResource>().0;
    // Links from the repositories page fill in the repository and the change.
    let query = use_query_map();
    // Posted without JavaScript and refused: the form again, as it was sent, with the problems.
    let posted = match use_context::<Posted>() {
        Some(Posted::Access { form, error }) => Some((form, error)),
        _ => None,
    };
    let form = move || match &posted {
        Some((form, error)) => (form.clone(), Some(error.clone())),
        None => {
            let repository = query.with(|q| q.get("repository")).unwrap_or_default();
            let action = query.with(|q| q.get("action")).filter(|a| a == "revoke").unwrap_or_else(|| "grant".into());
            (AccessRequestInput { action, repository, ..AccessRequestInput::default() }, None)
        }
    };
    view! {
        <Title text="Production access"/>
        <section class="page narrow">
            <h1>"Production access"</h1>
            <p class="lede">"Let the production account pull images from a repository (read-only), or take that away. An admin reviews the exact policy change before anything happens."</p>
            <Suspense fallback=Loading>
                {move || info.get().map(|i| match i {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(i) if i.user.is_none() => view! { <ErrorNotice error=AppError::Unauthenticated/> }.into_any(),
                    Ok(i) => {
                        let (form, error) = form();
                        view! { <AccessForm namespace=i.namespace production=i.production_account form error/> }.into_any()
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The production access form: grant or revoke, with an optional end date. A plain HTML
/// form (`POST /requests/access`) the server answers without JavaScript; with the wasm it
/// is checked on submit with the server's parser and sent through a server function.
#[island]
fn AccessForm(
    namespace: String,
    production: Option<String>,
    form: AccessRequestInput,
    error: Option<AppError>,
) -> impl IntoView {
    let action = RwSignal::new(form.action.clone());
    let errors = RwSignal::new(error.as_ref().map(|e| e.field_errors().to_vec()).unwrap_or_default());
    let server_error = RwSignal::new(error);
    let submit = ServerAction::<SubmitAccessRequest>::new();
    let hydrated = use_hydrated();
    // The change chosen before the wasm loaded decides whether the end date shows.
    let revoke_radio = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(el) = revoke_radio.get() {
            action.set(if el.checked() { "revoke" } else { "grant" }.into());
        }
    });
    open_when_filed(move || submit.value().get(), errors, server_error);
    let ns = namespace.clone();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        server_error.set(None);
        let f = form_values(&ev);
        let input = AccessRequestInput {
            action: f.text("action"),
            repository: f.text("repository"),
            until: f.get("until"),
            justification: f.text("justification"),
        }
        .from_form();
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
    let grant = form.action != "revoke";
    view! {
        <form class="card form" method="post" action="/requests/access" on:submit=on_submit novalidate data-testid="access-form">
            {move || server_error.get().map(|e| view! { <ErrorNotice error=e/> })}
            <p class="help">"Production account: " <code>{production.unwrap_or_else(|| "not configured".into())}</code></p>
            <Field id="repository" label="Repository" help="The full name, or the part after the namespace." errors=errs>
                <div class="prefixed">
                    <span class="prefix" aria-hidden="true">{format!("{namespace}/")}</span>
                    <input id="repository" name="repository" required autocomplete="off" spellcheck="false"
                        value=form.repository.clone()/>
                </div>
            </Field>
            <fieldset class="field">
                <legend>"Change"</legend>
                <label class="choice">
                    <input type="radio" name="action" value="grant" checked=grant
                        on:change=move |_| action.set("grant".into())/>
                    " Grant read-only pull"
                </label>
                <label class="choice">
                    <input type="radio" name="action" value="revoke" checked=!grant node_ref=revoke_radio
                        on:change=move |_| action.set("revoke".into())/>
                    " Revoke"
                </label>
            </fieldset>
            // Always there without the script; with it, only for a grant.
            <div hidden=move || hydrated.get() && action.get() == "revoke">
                <Field id="until" label="End date (optional, grants only)" help="Leave empty for a lasting grant. The portal revokes a temporary grant by itself the day after this date (UTC)." errors=errs>
                    <input id="until" name="until" type="date" value=form.until.clone().unwrap_or_default()/>
                </Field>
            </div>
            <Field id="justification" label="Justification" help="Which production workload pulls these images, and why?" errors=errs>
                <textarea id="justification" name="justification" rows="4" required>{textarea_text(&form.justification)}</textarea>
            </Field>
            <div class="actions">
                <button type="submit" class="button primary" disabled=move || submit.pending().get()>
                    {move || if submit.pending().get() { "Submitting…" } else { "Submit request" }}
                </button>
            </div>
        </form>
    }
}
