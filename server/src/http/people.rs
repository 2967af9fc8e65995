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
