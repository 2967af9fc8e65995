//! The new-repository request: the page, its form island, and the labelled
//! form field it shares with the access form.
use crate::api::SubmitRepositoryRequest;
use crate::domain::form::FieldError;
use crate::domain::name::{Namespace, RepoName};
use crate::domain::web_form::RepositoryForm;
use crate::error::AppError;
use crate::ui::common::{form_values, open_when_filed, textarea_text, use_hydrated, ErrorNotice, Loading};
use crate::ui::InfoResource;
use crate::views::Posted;
use leptos::prelude::*;
use leptos_meta::Title;

/// One labelled form field with its help text and error.
#[component]
pub(super) fn Field(
    id: &'static str,
    label: &'static str,
    #[prop(optional)] help: Option<&'static str>,
    errors: Signal<Vec<FieldError>>,
    children: Children,
) -> impl IntoView {
    let error = move || errors.with(|e| e.iter().find(|f| f.field == id).map(|f| f.message.clone()));
    view! {
        <div class="field" class:has-error=move || error().is_some()>
            <label for=id>{label}</label>
            {children()}
            {help.map(|h| view! { <p class="help" id=format!("{id}-help")>{h}</p> })}
            <p class="field-error" id=format!("{id}-error") role="alert" data-field=id>{error}</p>
        </div>
    }
}

#[component]
pub fn NewRequest() -> impl IntoView {
    let info = expect_context::<InfoResource>().0;
    // Posted without JavaScript and refused: the form again, as it was sent, with the problems.
    let (form, error) = match use_context::<Posted>() {
        Some(Posted::Repository { form, error }) => (form, Some(error)),
        _ => (RepositoryForm::fresh(), None),
    };
    view! {
        <Title text="New repository request"/>
        <section class="page narrow">
            <h1>"Request a repository"</h1>
            <p class="lede">"Need production to pull from an existing repository? " <a href="/requests/access">"Ask for production access"</a></p>
            <Suspense fallback=Loading>
                {move || info.get().map(|i| match i {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(i) if i.user.is_none() => view! { <ErrorNotice error=AppError::Unauthenticated/> }.into_any(),
                    Ok(i) => match Namespace::parse(&i.namespace) {
                        Ok(ns) => view! {
                            <NewRequestForm namespace=ns.as_str().to_string() form=form.clone() error=error.clone()/>
                        }.into_any(),
                        Err(e) => view! { <ErrorNotice error=AppError::Internal(e.to_string())/> }.into_any(),
                    },
                })}
            </Suspense>
        </section>
    }
}

/// The new-repository form: a plain HTML form (`POST /requests/new`) that the server
/// answers without JavaScript. With the wasm it checks the name as the user types and
/// the whole form on submit with the server's own parser, submits through a server
/// function, then opens the new request. `form` and `error`: what was sent and why it was
/// refused, when the server renders it again.
#[island]
fn NewRequestForm(namespace: String, form: RepositoryForm, error: Option<AppError>) -> impl IntoView {
    let namespace = match Namespace::parse(&namespace) {
        Ok(ns) => ns,
        Err(e) => return view! { <ErrorNotice error=AppError::Internal(e.to_string())/> }.into_any(),
    };
    // Signals only for what the script shows as the user types; the fields keep their own values.
    let name = RwSignal::new(form.name.clone());
    let encryption = RwSignal::new(form.encryption.clone());
    let errors = RwSignal::new(error.as_ref().map(|e| e.field_errors().to_vec()).unwrap_or_default());
    let server_error = RwSignal::new(error);
    let submit = ServerAction::<SubmitRepositoryRequest>::new();
    let hydrated = use_hydrated();
    // What was typed or chosen before the wasm loaded: the live checks start from it.
    let name_input = NodeRef::<leptos::html::Input>::new();
    let encryption_select = NodeRef::<leptos::html::Select>::new();
    Effect::new(move |_| {
        if let Some(el) = name_input.get() {
            name.set(el.value());
        }
        if let Some(el) = encryption_select.get() {
            encryption.set(el.value());
        }
    });

    let ns = namespace.clone();
    let name_preview = move || {
        let n = name.get();
        if n.trim().is_empty() {
            return format!("{}/…", ns.as_str());
        }
        match RepoName::parse(&ns, &n) {
            Ok(full) => full.to_string(),
            Err(_) => format!("{}/{}", ns.as_str(), n.trim()),
        }
    };
    // Live check of the name as the user types, with the server's own parser.
    let ns = namespace.clone();
    let name_error = Memo::new(move |_| {
        let n = name.get();
        if n.is_empty() {
            None
        } else {
            RepoName::parse(&ns, &n).err().map(|e| e.to_string())
        }
    });

    open_when_filed(move || submit.value().get(), errors, server_error);

    let ns_submit = namespace.clone();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        server_error.set(None);
        let f = form_values(&ev);
        // The names are the form's fields below (and what the server's handler reads).
        let form = RepositoryForm {
            name: f.text("name"),
            tag_mutability: f.text("tag_mutability"),
            encryption: f.text("encryption"),
            kms_key_arn: f.text("kms_key_arn"),
            scan_on_push: f.get("scan_on_push"),
            grant_production: f.get("grant_production"),
            keep_last_images: f.text("keep_last_images"),
            expire_untagged_after_days: f.text("expire_untagged_after_days"),
            team: f.text("team"),
            cost_center: f.text("cost_center"),
            justification: f.text("justification"),
        };
        match form.input(&ns_submit) {
            Ok(input) => {
                errors.set(Vec::new());
                submit.dispatch(SubmitRepositoryRequest { input });
            }
            Err(errs) => errors.set(errs),
        }
    };
    let errs: Signal<Vec<FieldError>> = errors.into();
    let invalid = move |f: &'static str| move || errs.with(|e| e.iter().any(|x| x.field == f)).to_string();
    let option = |value: &'static str, label: &'static str, current: &str| {
        view! { <option value=value selected=current == value>{label}</option> }
    };

    view! {
        <form class="card form" method="post" action="/requests/new" on:submit=on_submit novalidate data-testid="new-request-form"
            data-hydrated=move || hydrated.get().to_string()>
            {move || server_error.get().map(|e| view! { <ErrorNotice error=e/> })}
            <div class="field" class:has-error=move || name_error.get().is_some() || errs.with(|e| e.iter().any(|f| f.field == "name"))>
                <label for="name">"Repository name"</label>
                <div class="prefixed">
                    <span class="prefix" aria-hidden="true">{format!("{}/", namespace.as_str())}</span>
                    <input id="name" name="name" required autocomplete="off" spellcheck="false"
                        aria-describedby="name-help name-error" aria-invalid=invalid("name")
                        value=form.name.clone() node_ref=name_input on:input=move |ev| name.set(event_target_value(&ev))/>
                </div>
                <p class="help" id="name-help">"Will be created as " <code data-testid="name-preview">{name_preview}</code>". Lowercase letters, digits, and . _ - / between them."</p>
                <p class="field-error" id="name-error" role="alert" data-field="name">
                    {move || name_error.get().or_else(|| errs.with(|e| e.iter().find(|f| f.field == "name").map(|f| f.message.clone())))}
                </p>
            </div>
            <div class="grid-2">
                <Field id="tag_mutability" label="Image tags" errors=errs>
                    <select id="tag_mutability" name="tag_mutability">
                        {option("IMMUTABLE", "Immutable (recommended)", &form.tag_mutability)}
                        {option("MUTABLE", "Mutable", &form.tag_mutability)}
                    </select>
                </Field>
                <Field id="encryption" label="Encryption" errors=errs>
                    <select id="encryption" name="encryption" node_ref=encryption_select on:change=move |ev| encryption.set(event_target_value(&ev))>
                        {option("AES256", "AES-256 (AWS managed)", &form.encryption)}
                        {option("KMS", "KMS key", &form.encryption)}
                    </select>
                </Field>
            </div>
            // Always there without the script; with it, only while KMS is chosen.
            <div hidden=move || hydrated.get() && encryption.get() != "KMS">
                <Field id="kms_key_arn" label="KMS key ARN" help="Only with KMS encryption." errors=errs>
                    // Hidden means not sent: a key typed before switching back to AES-256 is left out.
                    <input id="kms_key_arn" name="kms_key_arn" spellcheck="false" aria-invalid=invalid("kms_key_arn")
                        disabled=move || hydrated.get() && encryption.get() != "KMS"
                        value=form.kms_key_arn.clone()/>
                </Field>
            </div>
            <div class="field checkbox">
                <input type="checkbox" id="scan_on_push" name="scan_on_push" value="true" checked=form.scan_on_push.is_some()/>
                <label for="scan_on_push">"Scan images for vulnerabilities on push"</label>
            </div>
            <div class="field checkbox">
                <input type="checkbox" id="grant_production" name="grant_production" value="true" checked=form.grant_production.is_some()/>
                <label for="grant_production">"Also grant the production account read-only pull access"</label>
            </div>
            <fieldset class="group">
                <legend>"Lifecycle (optional)"</legend>
                <div class="grid-2">
                    <Field id="keep_last_images" label="Keep the last N images" help="Older images are expired." errors=errs>
                        <input id="keep_last_images" name="keep_last_images" inputmode="numeric" aria-invalid=invalid("keep_last_images")
                            value=form.keep_last_images.clone()/>
                    </Field>
                    <Field id="expire_untagged_after_days" label="Expire untagged images after N days" errors=errs>
                        <input id="expire_untagged_after_days" name="expire_untagged_after_days" inputmode="numeric"
                            aria-invalid=invalid("expire_untagged_after_days") value=form.expire_untagged_after_days.clone()/>
                    </Field>
                </div>
            </fieldset>
            <fieldset class="group">
                <legend>"Tags"</legend>
                <div class="grid-2">
                    <Field id="team" label="Team" errors=errs>
                        <input id="team" name="team" required aria-invalid=invalid("team") value=form.team.clone()/>
                    </Field>
                    <Field id="cost_center" label="Cost centre" errors=errs>
                        <input id="cost_center" name="cost_center" required aria-invalid=invalid("cost_center") value=form.cost_center.clone()/>
                    </Field>
                </div>
            </fieldset>
            <Field id="justification" label="Justification" help="What will this repository hold, and who pulls from it?" errors=errs>
                <textarea id="justification" name="justification" rows="4" required aria-invalid=invalid("justification")>{textarea_text(&form.justification)}</textarea>
            </Field>
            <div class="actions">
                <button type="submit" class="button primary" disabled=move || submit.pending().get()>
                    {move || if submit.pending().get() { "Submitting…" } else { "Submit request" }}
                </button>
            </div>
        </form>
    }
    .into_any()
}
