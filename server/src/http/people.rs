//! The plain HTML forms (`POST /users/revoke`, `POST /notifications/test`,
//! `POST /requests/{id}/comments`): they work without JavaScript, and are
//! answered with a redirect back to their page saying what happened (a known
//! code, never free text).
use super::state::AppState;
use app::domain::principal::Principal;
use app::error::AppError;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

/// The known code a page shows for a refused form (its page maps it to a sentence).
fn error_code(e: &AppError) -> &'static str {
    match e {
        AppError::Forbidden(_) | AppError::Unauthenticated => "forbidden",
        AppError::NotFound(_) => "not_found",
        AppError::Invalid(_) | AppError::BadRequest(_) => "invalid",
        _ => "unavailable",
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    user: String,
}

pub async fn revoke_user(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    Form(form): Form<RevokeForm>,
) -> Response {
    let Some(Extension(by)) = by else { return Redirect::to("/login?next=/users").into_response() };
    match state.service.revoke_user(&by, form.user).await.map_err(AppError::from) {
        Ok(done) => {
            let who = percent_encoding::utf8_percent_encode(&done.user, percent_encoding::NON_ALPHANUMERIC);
            Redirect::to(&format!("/users?revoked={who}")).into_response()
        }
        Err(e) => Redirect::to(&format!("/users?error={}", error_code(&e))).into_response(),
    }
}

#[derive(Deserialize)]
pub struct TestForm {
    #[serde(default)]
    channel: String,
}

/// `POST /notifications/test` (the notifications page's form): queues a test
/// notification and goes back to the page.
pub async fn test_notification(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    Form(form): Form<TestForm>,
) -> Response {
    let Some(Extension(by)) = by else { return Redirect::to("/login?next=/notifications").into_response() };
    match state.service.send_test_notification(&by, form.channel.clone()).await.map_err(AppError::from) {
        Ok(_) => {
            let channel = app::domain::notify::Channel::parse(&form.channel).map(|c| c.as_str()).unwrap_or("");
            Redirect::to(&format!("/notifications?sent={channel}")).into_response()
        }
        Err(AppError::Forbidden(_) | AppError::Unauthenticated) => {
            Redirect::to("/notifications?error=forbidden").into_response()
        }
        Err(_) => Redirect::to("/notifications?error=channel").into_response(),
    }
}

#[derive(Deserialize)]
pub struct CommentForm {
    #[serde(default)]
    body: String,
}

/// `POST /requests/{id}/comments` (the request page's comment form): adds the
/// comment and goes back to the request's timeline.
pub async fn comment(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    Form(form): Form<CommentForm>,
) -> Response {
    let Some(Extension(by)) = by else { return Redirect::to(&format!("/login?next=/requests/{id}")).into_response() };
    match state.service.comment(&by, id, form.body).await.map_err(AppError::from) {
        Ok(_) => Redirect::to(&format!("/requests/{id}#timeline")).into_response(),
        Err(e) => Redirect::to(&format!("/requests/{id}?comment_error={}#comment", error_code(&e))).into_response(),
    }
}

#[derive(Deserialize)]
pub struct BreakGlassForm {
    #[serde(default)]
    reason: String,
}

/// `POST /requests/{id}/break-glass` (the request page's form).
pub async fn break_glass(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    Form(form): Form<BreakGlassForm>,
) -> Response {
    let Some(Extension(by)) = by else { return Redirect::to(&format!("/login?next=/requests/{id}")).into_response() };
    match state.service.break_glass(&by, id, form.reason).await.map_err(AppError::from) {
        Ok(_) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => refused("Break glass", &format!("/requests/{id}"), &e),
    }
}

#[derive(Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    comment: String,
}

/// `POST /requests/{id}/review` (the request page's form).
pub async fn review(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    Form(form): Form<ReviewForm>,
) -> Response {
    let Some(Extension(by)) = by else { return Redirect::to(&format!("/login?next=/requests/{id}")).into_response() };
    match state.service.review_break_glass(&by, id, form.outcome, form.comment).await.map_err(AppError::from) {
        Ok(_) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => refused("Review", &format!("/requests/{id}"), &e),
    }
}

/// `POST /requests/{id}/withdraw` (the request page's button): withdraws and goes back to the request.
pub async fn withdraw(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Response {
    let Some(Extension(by)) = by else { return Redirect::to(&format!("/login?next=/requests/{id}")).into_response() };
    match state.service.withdraw(&by, id).await {
        Ok(_) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => {
            tracing::info!("withdrawing request #{id}: {e}");
            Redirect::to(&format!("/requests/{id}")).into_response()
        }
    }
}

/// Escapes text for HTML.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A refused settings or delete form: every problem, in a page of its own
/// (422), with the way back. The browser's Back keeps what was typed in the
/// form, so nothing is lost.
pub(super) fn refused(what: &str, back: &str, e: &AppError) -> Response {
    let problems = match e.field_errors() {
        [] => format!("<li>{}</li>", escape(&e.to_string())),
        list => list
            .iter()
            .map(|f| format!("<li><strong>{}</strong>: {}</li>", escape(&f.field), escape(&f.message)))
            .collect(),
    };
    let status = match e {
        AppError::Invalid(_) | AppError::BadRequest(_) => axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        AppError::Forbidden(_) | AppError::Unauthenticated => axum::http::StatusCode::FORBIDDEN,
        AppError::NotFound(_) => axum::http::StatusCode::NOT_FOUND,
        other => {
            axum::http::StatusCode::from_u16(other.status()).unwrap_or(axum::http::StatusCode::SERVICE_UNAVAILABLE)
        }
    };
    let body = format!(
        "<section class=\"card notice-error\" role=\"alert\" data-testid=\"form-refused\"><h1>{what} not submitted</h1>\
         <p>Nothing was requested. Fix these and send it again:</p><ul>{problems}</ul>\
         <p><a href=\"{back}\">Back to the form</a> (your browser's Back button keeps what you typed).</p>\
         </section>",
        what = escape(what),
        back = escape(back),
    );
    plain_page(status, &format!("{what} not submitted"), "narrow", &body)
}

/// A server-rendered page outside the app (a refused form, an import's report): the portal's
/// stylesheet, a `<main class="page {width}">` holding `body` (already escaped), and its own
/// policy: no script at all.
pub(super) fn plain_page(status: axum::http::StatusCode, title: &str, width: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <link rel=\"stylesheet\" href=\"/pkg/ecr-portal.css\"></head><body><main class=\"page {width}\">{body}</main>\
         </body></html>",
        title = escape(title),
    );
    let csp = (
        axum::http::header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    (status, [csp], axum::response::Html(html)).into_response()
}

#[derive(Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    tag_mutability: String,
    #[serde(default)]
    tag_mutability_exclusions: String,
    #[serde(default)]
    scan_on_push: String,
    #[serde(default)]
    lifecycle: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    cost_center: String,
    #[serde(default)]
    expire_protected: Option<String>,
    #[serde(default)]
    justification: String,
}

impl UpdateForm {
    /// The form in the JSON API's terms (the same parser decides).
    fn input(self) -> Result<app::domain::form::UpdateRequestInput, AppError> {
        use app::domain::form::FieldError;
        let mut errors = Vec::new();
        let lifecycle_rules = app::domain::lifecycle::rules_from_text(&self.lifecycle).map_err(|e| errors.push(e)).ok();
        let mut tags = std::collections::BTreeMap::new();
        for (i, line) in self.tags.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match line.split_once('=') {
                Some((k, v)) if tags.insert(k.trim().to_string(), v.trim().to_string()).is_none() => {}
                Some((k, _)) => {
                    errors.push(FieldError::new("tags", format!("line {}: `{}` is given twice", i + 1, k.trim())))
                }
                None => errors.push(FieldError::new("tags", format!("line {}: write key=value", i + 1))),
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let text = |s: String| Some(s).filter(|s| !s.trim().is_empty());
        Ok(app::domain::form::UpdateRequestInput {
            repository: self.repository,
            justification: self.justification,
            tag_mutability: text(self.tag_mutability),
            tag_mutability_exclusions: Some(
                self.tag_mutability_exclusions
                    .split(',')
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect(),
            ),
            scan_on_push: match self.scan_on_push.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            lifecycle_rules,
            tags: Some(tags),
            team: text(self.team),
            cost_center: text(self.cost_center),
            expire_protected: Some(self.expire_protected.is_some_and(|v| v == "true" || v == "on")),
            ..Default::default()
        })
    }
}

/// `POST /repositories/update` (the settings page's form): files a settings
/// change and opens its request, whose page shows the plan and the preview.
pub async fn update_repository(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    Form(form): Form<UpdateForm>,
) -> Response {
    let back = app::ui::settings_href(&form.repository);
    let Some(Extension(by)) = by else { return Redirect::to("/login?next=/repositories").into_response() };
    let input = match form.input() {
        Ok(i) => i,
        Err(e) => return refused("Settings change", &back, &e),
    };
    match state.service.submit_update(&by, input).await.map_err(AppError::from) {
        Ok(id) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => refused("Settings change", &back, &e),
    }
}

#[derive(Deserialize)]
pub struct PromoteForm {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    justification: String,
    #[serde(default, rename = "move")]
    move_tag: Option<String>,
}

/// `POST /repositories/promote` (the images page's form): files a promotion and opens its request.
pub async fn promote(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    Form(form): Form<PromoteForm>,
) -> Response {
    let back = app::ui::images_href(&form.repository);
    let Some(Extension(by)) = by else { return Redirect::to("/login?next=/repositories").into_response() };
    let input = app::domain::form::PromoteRequestInput {
        repository: form.repository,
        digest: form.digest,
        tag: form.tag,
        justification: form.justification,
        move_tag: Some(form.move_tag.is_some_and(|v| v == "true" || v == "on")),
    };
    match state.service.submit_promote(&by, input).await.map_err(AppError::from) {
        Ok(id) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => refused("Promotion", &back, &e),
    }
}

#[derive(Deserialize)]
pub struct ScanForm {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    digest: String,
}

/// `POST /repositories/scan` (the images page's button, admins): starts a scan and goes back.
pub async fn scan(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    Form(form): Form<ScanForm>,
) -> Response {
    let back = app::ui::images_href(&form.repository);
    let Some(Extension(by)) = by else { return Redirect::to("/login?next=/repositories").into_response() };
    match state.service.start_scan(&by, form.repository, form.digest).await.map_err(AppError::from) {
        Ok(()) => Redirect::to(&format!("{back}&done=scan_started")).into_response(),
        Err(e) => Redirect::to(&format!("{back}&error={}", error_code(&e))).into_response(),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    justification: String,
}

/// `POST /repositories/delete` (the settings page's form): files a deletion and opens its request.
pub async fn delete_repository(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let back = app::ui::settings_href(&form.repository);
    let Some(Extension(by)) = by else { return Redirect::to("/login?next=/repositories").into_response() };
    let input =
        app::domain::form::DeleteRequestInput { repository: form.repository, justification: form.justification };
    match state.service.submit_delete(&by, input).await.map_err(AppError::from) {
        Ok(id) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => refused("Deletion", &back, &e),
    }
}
