//! Small shared components: status badges, error notices, empty states;
//! and the query-value encoding the pages' links share.
use crate::domain::request::Status;
use crate::domain::time::Timestamp;
use crate::error::AppError;
use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn StatusBadge(status: Status) -> impl IntoView {
    let icon = match status {
        Status::Pending => "●",
        Status::Approved => "✓",
        Status::Applying => "↻",
        Status::Applied => "✔",
        Status::Rejected => "✕",
        Status::Failed => "!",
        Status::NeedsReapproval => "?",
        Status::Withdrawn => "↩",
    };
    view! {
        <span class=format!("badge badge-{}", status.as_str()) data-status=status.as_str()>
            <span aria-hidden="true">{icon}</span>
            " "
            {status.as_str()}
        </span>
    }
}

/// Shows an error from the server in words; a sign-in link when that is the fix.
#[component]
pub fn ErrorNotice(error: AppError) -> impl IntoView {
    match error {
        AppError::Unauthenticated => view! {
            <div class="notice notice-info" role="status">
                <p>"You need to sign in to see this page."</p>
                <a class="button" href="/login">"Sign in"</a>
            </div>
        }
        .into_any(),
        other => {
            let fields = other.field_errors().to_vec();
            view! {
                <div class="notice notice-error" role="alert">
                    <p>{other.to_string()}</p>
                    {(!fields.is_empty()).then(|| view! {
                        <ul>
                            {fields.into_iter().map(|f| view! { <li>{f.field}": "{f.message}</li> }).collect_view()}
                        </ul>
                    })}
                </div>
            }
            .into_any()
        }
    }
}

#[component]
pub fn EmptyState(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="empty">
            <p class="empty-title">{title}</p>
            {children()}
        </div>
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="page">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. " <A href="/">"Back to the requests"</A></p>
        </section>
    }
}

/// False during server rendering and until the wasm bundle has hydrated the
/// page (for controls that only the script can work, like Copy).
pub fn use_hydrated() -> ReadSignal<bool> {
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    hydrated
}

/// Text to put inside a `<textarea>` on the server: Leptos writes a textarea's children
/// unescaped (as it must for `<script>`), so `</textarea>` in what someone typed (or put in
/// a link's query) would end the field and become markup. Only `&` and `<` matter there.
pub fn textarea_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;")
}

/// What a submitted form holds: its named fields as text (an unticked box is absent).
/// Forms that change something are plain HTML forms that the server answers without
/// JavaScript; once the wasm is there it reads the form itself (not signals) on submit,
/// so text typed before the page's script loaded counts as well.
pub fn form_values(ev: &leptos::ev::SubmitEvent) -> FormValues {
    #[allow(unused_mut)]
    let mut out = Vec::new();
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let form = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok());
        if let Some(data) = form.and_then(|f| web_sys::FormData::new_with_form(&f).ok()) {
            for entry in data.entries().into_iter().flatten() {
                let pair = js_sys::Array::from(&entry);
                if let (Some(k), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                    out.push((k, v));
                }
            }
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
    FormValues(out)
}

/// A submitted form's fields, in order (see [`form_values`]).
pub struct FormValues(Vec<(String, String)>);

impl FormValues {
    /// The field's text (the last of that name), or None when the form did not send it.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
    /// The field's text, empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default()
    }
}

/// Which submit button sent the form (its `value`), when a form has several.
pub fn submitter_value(ev: &leptos::ev::SubmitEvent) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        ev.submitter().and_then(|b| b.get_attribute("value"))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ev;
        None
    }
}

/// A moment: people read `2026-12-01 21:39:00 UTC`, machines the `datetime` (RFC 3339).
#[component]
pub fn Time(at: Timestamp) -> impl IntoView {
    view! { <time datetime=at.rfc3339().to_string()>{at.to_string()}</time> }
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" role="status">"Loading…"</p> }
}

/// What a query value keeps as it is: letters, digits, `-_.~` and the `/`
/// and `:` of repository names and user ids (readable links).
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/').remove(b':');

/// Percent-encodes a query value.
pub fn encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, QUERY_VALUE).to_string()
}

/// Goes to another page (a full page load: pages are rendered on the server).
pub fn go_to(href: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().set_href(href);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = href;
}

/// When a form's server action that files a request answers: opens the new request, or
/// shows the refusal, each field's problem under its field.
pub fn open_when_filed(
    answer: impl Fn() -> Option<Result<i64, AppError>> + 'static,
    errors: RwSignal<Vec<crate::domain::form::FieldError>>,
    refusal: RwSignal<Option<AppError>>,
) {
    Effect::new(move |_| match answer() {
        Some(Ok(id)) => go_to(&format!("/requests/{id}")),
        Some(Err(e)) => {
            errors.set(e.field_errors().to_vec());
            refusal.set(Some(e));
        }
        None => {}
    });
}

/// Loads the page again as soon as `done` turns true (an action succeeded).
pub fn reload_when(done: impl Fn() -> bool + 'static) {
    Effect::new(move |_| {
        if done() {
            reload();
        }
    });
}

/// Loads this page again from the server, to show what an action changed.
pub fn reload() {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().reload();
    }
}

/// Copies a text (a pull URI, a pull command) to the clipboard.
#[island]
pub fn CopyButton(text: String, label: String) -> impl IntoView {
    let hydrated = use_hydrated();
    view! {
        <button type="button" class="link-button copy" disabled=move || !hydrated.get() aria-label=label
            on:click=move |_| copy(&text)>"Copy"</button>
    }
}

fn copy(text: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().navigator().clipboard().write_text(text);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = text;
}
