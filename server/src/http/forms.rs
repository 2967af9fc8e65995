//! The plain-HTML side of the pages' forms that change something (new repository,
//! production access, approve, reject, retry, adopt, accept, restore, drift check, API
//! tokens). Each is an HTML form whose island, once the wasm has loaded, sends it through
//! a server function instead; without the wasm (or before it loads) the browser posts it
//! here, and the same service decides.
//!
//! Answers: a redirect to what the change made (the new request, the repository, the
//! request page). A refused new-repository or access request renders its page again (422)
//! with what was typed and each problem beside its field, like the script shows them, so
//! nothing typed is lost; a new token's page is rendered with its secret (shown this once,
//! never in a URL). Refused buttons (approve, adopt, …) get the refused-form page, which
//! names the problem and links back.
use super::people::refused;
use super::state::AppState;
use app::api::PortalHandle;
use app::domain::form::AccessRequestInput;
use app::domain::principal::Principal;
use app::domain::web_form::RepositoryForm;
use app::error::AppError;
use app::views::{FormKey, Posted};
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use leptos::prelude::*;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// What renders a page again from a form handler: the same shell and context as the pages' routes.
#[derive(Clone)]
pub struct Pages {
    pub options: LeptosOptions,
    pub handle: PortalHandle,
    /// The token forms sent so far, by their page's [`FormKey`]: the token each made (None while
    /// it is being made). The oldest are forgotten past [`SENT_KEPT`].
    sent: Arc<Mutex<SentForms>>,
}

#[derive(Default)]
struct SentForms {
    made: HashMap<String, Option<i64>>,
    /// Oldest first.
    order: VecDeque<String>,
}

const SENT_KEPT: usize = 10_000;

/// A new page's key: 32 hex digits (a random UUID).
pub fn form_key() -> FormKey {
    FormKey(uuid::Uuid::new_v4().simple().to_string())
}

/// What a form's key says before its token is made.
enum Sent {
    /// Not a key this server hands out (or none): no guard.
    Unkeyed,
    /// First time: reserved now.
    First(String),
    /// Sent before: the token it made, if it is made yet.
    Before(Option<i64>),
}

impl Pages {
    pub fn new(options: LeptosOptions, handle: PortalHandle) -> Self {
        Self { options, handle, sent: Arc::default() }
    }

    fn reserve(&self, key: &str) -> Sent {
        if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Sent::Unkeyed;
        }
        let mut guard = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let SentForms { made, order } = &mut *guard;
        if let Some(id) = made.get(key) {
            return Sent::Before(*id);
        }
        if order.len() >= SENT_KEPT {
            if let Some(old) = order.pop_front() {
                made.remove(&old);
            }
        }
        made.insert(key.to_string(), None);
        order.push_back(key.to_string());
        Sent::First(key.to_string())
    }

    /// The token was made (`Some`), or not (`None`: the form may be sent again).
    fn settle(&self, key: &str, token: Option<i64>) {
        let mut guard = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let SentForms { made, order } = &mut *guard;
        match token {
            Some(id) => {
                made.insert(key.to_string(), Some(id));
            }
            None => {
                made.remove(key);
                order.retain(|k| k != key);
            }
        }
    }
}

impl Pages {
    /// The page at the posted path, rendered as for a GET with `posted` in its context.
    async fn render(&self, mut parts: Parts, posted: Posted, status: StatusCode) -> Response {
        parts.method = Method::GET;
        let handle = self.handle.clone();
        let options = self.options.clone();
        let render = leptos_axum::render_app_async_with_context(
            move || {
                provide_context(handle.clone());
                provide_context(posted.clone());
                provide_context(form_key());
            },
            move || app::shell(options.clone()),
        );
        let mut resp = render(Request::from_parts(parts, Body::empty())).await;
        *resp.status_mut() = status;
        resp
    }
}

fn status_of(e: &AppError) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn sign_in_first(back: &str) -> Response {
    Redirect::to(&format!("/login?next={back}")).into_response()
}

/// The signed-in user and the form, from a request whose page may be rendered again.
async fn read<T: DeserializeOwned>(req: Request) -> (Parts, Option<Principal>, Result<T, AppError>) {
    let (parts, body) = req.into_parts();
    let by = parts.extensions.get::<Principal>().cloned();
    // The body's size is bounded by the router's limit layer.
    let form = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => serde_urlencoded::from_bytes(&bytes).map_err(|e| AppError::BadRequest(format!("the form: {e}"))),
        Err(_) => Err(AppError::TooLarge("the form is larger than this portal takes".into())),
    };
    (parts, by, form)
}

/// `POST /requests/new`: files the request and opens it, or shows the form again with its problems.
pub async fn new_request(State(state): State<AppState>, Extension(pages): Extension<Pages>, req: Request) -> Response {
    let (parts, by, form) = read::<RepositoryForm>(req).await;
    let Some(by) = by else { return sign_in_first("/requests/new") };
    let form = match form {
        Ok(f) => f,
        Err(e) => return refused("Repository request", "/requests/new", &e),
    };
    let result = match form.input(&state.service.deployment.namespace) {
        Err(errors) => Err(AppError::Invalid(errors)),
        Ok(input) => state.service.submit(&by, input).await.map_err(AppError::from),
    };
    match result {
        Ok(id) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(error) => {
            let status = status_of(&error);
            pages.render(parts, Posted::Repository { form, error }, status).await
        }
    }
}

#[derive(Deserialize, Default)]
struct AccessForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    justification: String,
}

/// `POST /requests/access`: files a production grant or revoke and opens it, or shows the form again.
pub async fn access_request(
    State(state): State<AppState>,
    Extension(pages): Extension<Pages>,
    req: Request,
) -> Response {
    let (parts, by, form) = read::<AccessForm>(req).await;
    let Some(by) = by else { return sign_in_first("/requests/access") };
    let f = match form {
        Ok(f) => f,
        Err(e) => return refused("Access request", "/requests/access", &e),
    };
    let form = AccessRequestInput {
        action: f.action,
        repository: f.repository,
        until: f.until,
        justification: f.justification,
    }
    .from_form();
    match state.service.submit_access(&by, form.clone()).await.map_err(AppError::from) {
        Ok(id) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(error) => {
            let status = status_of(&error);
            pages.render(parts, Posted::Access { form, error }, status).await
        }
    }
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    comment: String,
}

/// The last segment of the route (`…/approve` → `approve`): one handler serves a few fixed paths.
fn action_of(path: &MatchedPath) -> &str {
    path.as_str().rsplit('/').next().unwrap_or_default()
}

/// `POST /requests/{id}/approve|reject|retry` (the request page's decision buttons).
pub async fn decide(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    matched: MatchedPath,
    Path(id): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let action = action_of(&matched);
    let back = format!("/requests/{id}");
    let Some(Extension(by)) = by else { return sign_in_first(&back) };
    let s = &state.service;
    let (what, result) = match action {
        "approve" => ("Approval", s.approve(&by, id, form.comment).await),
        "reject" => ("Rejection", s.reject(&by, id, form.comment).await),
        "retry" => ("Retry", s.retry(&by, id).await),
        _ => return refused("Request action", &back, &AppError::NotFound(format!("no action `{action}`"))),
    };
    match result.map_err(AppError::from) {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(e) => refused(what, &back, &e),
    }
}

#[derive(Deserialize)]
pub struct RepositoryButton {
    #[serde(default)]
    name: String,
}

/// `POST /repositories/adopt|accept|restore|check` (the repositories page's buttons).
pub async fn repository_action(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    matched: MatchedPath,
    Form(form): Form<RepositoryButton>,
) -> Response {
    let action = action_of(&matched);
    let Some(Extension(by)) = by else { return sign_in_first("/repositories") };
    let s = &state.service;
    let name = form.name;
    let shown =
        format!("/repositories?q={}", percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC));
    let (what, result) = match action {
        "adopt" => ("Adoption", s.adopt(&by, name).await.map(|_| shown)),
        "accept" => ("Accepting the live state", s.accept_drift(&by, name).await.map(|_| shown)),
        "restore" => {
            ("Restore request", s.request_restore(&by, name, String::new()).await.map(|id| format!("/requests/{id}")))
        }
        "check" => (
            "Drift check",
            s.check_drift(&by, Some(name).filter(|n| !n.is_empty())).await.map(|_| "/repositories".to_string()),
        ),
        _ => {
            return refused("Repository action", "/repositories", &AppError::NotFound(format!("no action `{action}`")))
        }
    };
    match result.map_err(AppError::from) {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => refused(what, "/repositories", &e),
    }
}

#[derive(Deserialize, Default)]
struct TokenForm {
    /// The page's key the form was rendered with (see `FormKey`).
    #[serde(default)]
    once: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    days: String,
}

/// `POST /tokens`: makes a token and shows the tokens page with its secret, this once.
pub async fn create_token(State(state): State<AppState>, Extension(pages): Extension<Pages>, req: Request) -> Response {
    let (parts, by, form) = read::<TokenForm>(req).await;
    let Some(by) = by else { return sign_in_first("/tokens") };
    let f = match form {
        Ok(f) => f,
        Err(e) => return refused("API token", "/tokens", &e),
    };
    let result = match (pages.reserve(&f.once), app::domain::web_form::parse_token_days(&f.days)) {
        (Sent::Before(made), _) => Err(AppError::Conflict(match made {
            Some(id) => format!(
                "this form was sent already (the page was reloaded?) and made token #{id}; its secret was shown \
                 in that answer, once. If you did not copy it, revoke #{id} below and make another."
            ),
            None => "this form is being sent already; wait for its answer".to_string(),
        })),
        (sent, parsed) => {
            let made = match parsed {
                Err(e) => Err(AppError::Invalid(vec![e])),
                Ok(days) => {
                    state.service.create_token(&by, f.name.clone(), f.scope.clone(), days).await.map_err(AppError::from)
                }
            };
            if let Sent::First(key) = sent {
                pages.settle(&key, made.as_ref().ok().map(|c| c.token.id));
            }
            made
        }
    };
    match result {
        Ok(created) => pages.render(parts, Posted::TokenCreated(created), StatusCode::CREATED).await,
        Err(error) => {
            let status = status_of(&error);
            let posted = Posted::TokenRefused { name: f.name, scope: f.scope, days: f.days, error };
            pages.render(parts, posted, status).await
        }
    }
}

/// `POST /tokens/{id}/revoke` (a token's Revoke button).
pub async fn revoke_token(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    Path(id): Path<i64>,
) -> Response {
    let Some(Extension(by)) = by else { return sign_in_first("/tokens") };
    match state.service.revoke_token(&by, id).await.map_err(AppError::from) {
        Ok(_) => Redirect::to("/tokens").into_response(),
        Err(e) => refused("Revoking the token", "/tokens", &e),
    }
}
