//! The production access request: the page and its grant / revoke form island.
use super::new::Field;
use crate::api::SubmitAccessRequest;
use crate::domain::form::{AccessRequestInput, FieldError};
use crate::domain::name::Namespace;
use crate::error::AppError;
use crate::ui::common::{go_to, use_hydrated, ErrorNotice, Fields, Loading};
use crate::ui::InfoResource;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn AccessRequest() -> impl IntoView {
    let info = expect_context::<InfoResource>().0;
    // Links from the repositories page fill in the repository and the change.
    let query = use_query_map();
    let repository = move || query.with(|q| q.get("repository")).unwrap_or_default();
    let action = move || query.with(|q| q.get("action")).filter(|a| a == "revoke").unwrap_or_else(|| "grant".into());
    view! {
        <Title text="Production access"/>
        <section class="page narrow">
            <h1>"Production access"</h1>
            <p class="lede">"Let the production account pull images from a repository (read-only), or take that away. An admin reviews the exact policy change before anything happens."</p>
            <Suspense fallback=Loading>
                {move || info.get().map(|i| match i {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(i) if i.user.is_none() => view! { <ErrorNotice error=AppError::Unauthenticated/> }.into_any(),
                    Ok(i) => view! {
                        <AccessForm namespace=i.namespace production=i.production_account
                            repository=repository() action=action()/>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

/// The production access form: grant or revoke, with an optional end date.
#[island]
fn AccessForm(namespace: String, production: Option<String>, repository: String, action: String) -> impl IntoView {
    let repository = RwSignal::new(repository);
    let action = RwSignal::new(action);
    let until = RwSignal::new(String::new());
    let justification = RwSignal::new(String::new());
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let server_error = RwSignal::new(None::<AppError>);
    let submit = ServerAction::<SubmitAccessRequest>::new();
    let hydrated = use_hydrated();
    Effect::new(move |_| {
        if let Some(result) = submit.value().get() {
            match result {
                Ok(id) => go_to(&format!("/requests/{id}")),
                Err(e) => {
                    errors.set(e.field_errors().to_vec());
                    server_error.set(Some(e));
                }
            }
        }
    });
    let ns = namespace.clone();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        server_error.set(None);
        let input = AccessRequestInput {
            action: action.get(),
            repository: repository.get(),
            until: (action.get() == "grant").then(|| until.get()),
            justification: justification.get(),
        };
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
    view! {
        <form class="card form" on:submit=on_submit novalidate data-testid="access-form">
            {move || server_error.get().map(|e| view! { <ErrorNotice error=e/> })}
            <Fields hydrated>
            <p class="help">"Production account: " <code>{production.unwrap_or_else(|| "not configured".into())}</code></p>
            <Field id="repository" label="Repository" help="The full name, or the part after the namespace." errors=errs>
                <div class="prefixed">
                    <span class="prefix" aria-hidden="true">{format!("{namespace}/")}</span>
                    <input id="repository" name="repository" required autocomplete="off" spellcheck="false"
                        prop:value=repository on:input=move |ev| repository.set(event_target_value(&ev))/>
                </div>
            </Field>
            <fieldset class="field">
                <legend>"Change"</legend>
                <label class="choice">
                    <input type="radio" name="action" value="grant" prop:checked=move || action.get() == "grant"
                        on:change=move |_| action.set("grant".into())/>
                    " Grant read-only pull"
                </label>
                <label class="choice">
                    <input type="radio" name="action" value="revoke" prop:checked=move || action.get() == "revoke"
                        on:change=move |_| action.set("revoke".into())/>
                    " Revoke"
                </label>
            </fieldset>
            <Show when=move || action.get() == "grant">
                <Field id="until" label="End date (optional)" help="Leave empty for a lasting grant. The portal revokes a temporary grant by itself the day after this date (UTC)." errors=errs>
                    <input id="until" name="until" type="date" prop:value=until on:input=move |ev| until.set(event_target_value(&ev))/>
                </Field>
            </Show>
            <Field id="justification" label="Justification" help="Which production workload pulls these images, and why?" errors=errs>
                <textarea id="justification" name="justification" rows="4" required
                    prop:value=justification on:input=move |ev| justification.set(event_target_value(&ev))></textarea>
            </Field>
            <div class="actions">
                <button type="submit" class="button primary" disabled=move || submit.pending().get()>
                    {move || if submit.pending().get() { "Submitting…" } else { "Submit request" }}
                </button>
            </div>
            </Fields>
        </form>
    }
}
