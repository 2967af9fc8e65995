//! The new-repository request: the page, its form island, and the labelled
//! form field it shares with the access form.
use crate::api::SubmitRepositoryRequest;
use crate::domain::form::{parse_optional_number, FieldError, RepositoryRequestInput};
use crate::domain::name::{Namespace, RepoName};
use crate::error::AppError;
use crate::ui::common::{go_to, use_hydrated, ErrorNotice, Fields, Loading};
use crate::ui::InfoResource;
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
                        Ok(ns) => view! { <NewRequestForm namespace=ns.as_str().to_string()/> }.into_any(),
                        Err(e) => view! { <ErrorNotice error=AppError::Internal(e.to_string())/> }.into_any(),
                    },
                })}
            </Suspense>
        </section>
    }
}

/// The new-repository form: checks as the user types with the server's own
/// parser, submits through a server function, then opens the new request.
#[island]
fn NewRequestForm(namespace: String) -> impl IntoView {
    let namespace = match Namespace::parse(&namespace) {
        Ok(ns) => ns,
        Err(e) => return view! { <ErrorNotice error=AppError::Internal(e.to_string())/> }.into_any(),
    };
    let name = RwSignal::new(String::new());
    let tag_mutability = RwSignal::new("IMMUTABLE".to_string());
    let scan_on_push = RwSignal::new(true);
    let grant_production = RwSignal::new(false);
    let encryption = RwSignal::new("AES256".to_string());
    let kms_key_arn = RwSignal::new(String::new());
    let keep_last = RwSignal::new(String::new());
    let untagged_days = RwSignal::new(String::new());
    let team = RwSignal::new(String::new());
    let cost_center = RwSignal::new(String::new());
    let justification = RwSignal::new(String::new());
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let server_error = RwSignal::new(None::<AppError>);
    let submit = ServerAction::<SubmitRepositoryRequest>::new();
    let hydrated = use_hydrated();

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
    let ns_build = namespace.clone();

    let build = move || -> Result<RepositoryRequestInput, Vec<FieldError>> {
        let mut errs = Vec::new();
        let keep = parse_optional_number("keep_last_images", &keep_last.get()).map_err(|e| errs.push(e)).ok().flatten();
        let days = parse_optional_number("expire_untagged_after_days", &untagged_days.get())
            .map_err(|e| errs.push(e))
            .ok()
            .flatten();
        let input = RepositoryRequestInput {
            name: name.get(),
            tag_mutability: Some(tag_mutability.get()),
            scan_on_push: Some(scan_on_push.get()),
            encryption: Some(encryption.get()),
            kms_key_arn: Some(kms_key_arn.get()),
            keep_last_images: keep,
            expire_untagged_after_days: days,
            // Exclusions, rules of one's own and free tags: through the JSON API (see the docs).
            tag_mutability_exclusions: None,
            lifecycle_rules: None,
            tags: None,
            team: team.get(),
            cost_center: cost_center.get(),
            justification: justification.get(),
            grant_production: Some(grant_production.get()),
        };
        if let Err(mut more) = input.check_form(&ns_build) {
            errs.append(&mut more);
        }
        if errs.is_empty() {
            Ok(input)
        } else {
            Err(errs)
        }
    };

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

    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        server_error.set(None);
        match build() {
            Ok(input) => {
                errors.set(Vec::new());
                submit.dispatch(SubmitRepositoryRequest { input });
            }
            Err(errs) => errors.set(errs),
        }
    };
    let errs: Signal<Vec<FieldError>> = errors.into();
    let invalid = move |f: &'static str| move || errs.with(|e| e.iter().any(|x| x.field == f)).to_string();

    view! {
        <form class="card form" on:submit=on_submit novalidate data-testid="new-request-form">
            {move || server_error.get().map(|e| view! { <ErrorNotice error=e/> })}
            <Fields hydrated>
            <div class="field" class:has-error=move || name_error.get().is_some() || errs.with(|e| e.iter().any(|f| f.field == "name"))>
                <label for="name">"Repository name"</label>
                <div class="prefixed">
                    <span class="prefix" aria-hidden="true">{format!("{}/", namespace.as_str())}</span>
                    <input id="name" name="name" required autocomplete="off" spellcheck="false"
                        aria-describedby="name-help name-error" aria-invalid=invalid("name")
                        prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
                </div>
                <p class="help" id="name-help">"Will be created as " <code data-testid="name-preview">{name_preview}</code>". Lowercase letters, digits, and . _ - / between them."</p>
                <p class="field-error" id="name-error" role="alert" data-field="name">
                    {move || name_error.get().or_else(|| errs.with(|e| e.iter().find(|f| f.field == "name").map(|f| f.message.clone())))}
                </p>
            </div>
            <div class="grid-2">
                <Field id="tag_mutability" label="Image tags" errors=errs>
                    <select id="tag_mutability" name="tag_mutability" prop:value=tag_mutability
                        on:change=move |ev| tag_mutability.set(event_target_value(&ev))>
                        <option value="IMMUTABLE">"Immutable (recommended)"</option>
                        <option value="MUTABLE">"Mutable"</option>
                    </select>
                </Field>
                <Field id="encryption" label="Encryption" errors=errs>
                    <select id="encryption" name="encryption" prop:value=encryption
                        on:change=move |ev| encryption.set(event_target_value(&ev))>
                        <option value="AES256">"AES-256 (AWS managed)"</option>
                        <option value="KMS">"KMS key"</option>
                    </select>
                </Field>
            </div>
            <Show when=move || encryption.get() == "KMS">
                <Field id="kms_key_arn" label="KMS key ARN" errors=errs>
                    <input id="kms_key_arn" name="kms_key_arn" spellcheck="false" aria-invalid=invalid("kms_key_arn")
                        prop:value=kms_key_arn on:input=move |ev| kms_key_arn.set(event_target_value(&ev))/>
                </Field>
            </Show>
            <div class="field checkbox">
                <input type="checkbox" id="scan_on_push" name="scan_on_push" prop:checked=scan_on_push
                    on:change=move |ev| scan_on_push.set(event_target_checked(&ev))/>
                <label for="scan_on_push">"Scan images for vulnerabilities on push"</label>
            </div>
            <div class="field checkbox">
                <input type="checkbox" id="grant_production" name="grant_production" prop:checked=grant_production
                    on:change=move |ev| grant_production.set(event_target_checked(&ev))/>
                <label for="grant_production">"Also grant the production account read-only pull access"</label>
            </div>
            <fieldset class="group">
                <legend>"Lifecycle (optional)"</legend>
                <div class="grid-2">
                    <Field id="keep_last_images" label="Keep the last N images" help="Older images are expired." errors=errs>
                        <input id="keep_last_images" name="keep_last_images" inputmode="numeric" aria-invalid=invalid("keep_last_images")
                            prop:value=keep_last on:input=move |ev| keep_last.set(event_target_value(&ev))/>
                    </Field>
                    <Field id="expire_untagged_after_days" label="Expire untagged images after N days" errors=errs>
                        <input id="expire_untagged_after_days" name="expire_untagged_after_days" inputmode="numeric"
                            aria-invalid=invalid("expire_untagged_after_days")
                            prop:value=untagged_days on:input=move |ev| untagged_days.set(event_target_value(&ev))/>
                    </Field>
                </div>
            </fieldset>
            <fieldset class="group">
                <legend>"Tags"</legend>
                <div class="grid-2">
                    <Field id="team" label="Team" errors=errs>
                        <input id="team" name="team" required aria-invalid=invalid("team")
                            prop:value=team on:input=move |ev| team.set(event_target_value(&ev))/>
                    </Field>
                    <Field id="cost_center" label="Cost centre" errors=errs>
                        <input id="cost_center" name="cost_center" required aria-invalid=invalid("cost_center")
                            prop:value=cost_center on:input=move |ev| cost_center.set(event_target_value(&ev))/>
                    </Field>
                </div>
            </fieldset>
            <Field id="justification" label="Justification" help="What will this repository hold, and who pulls from it?" errors=errs>
                <textarea id="justification" name="justification" rows="4" required aria-invalid=invalid("justification")
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
    .into_any()
}
