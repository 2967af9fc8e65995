//! The people page's form (`POST /users/revoke`): a plain HTML form, so it
//! works without JavaScript; answered with a redirect back to `/users`
//! saying what happened (a known code, never free text).
use super::state::AppState;
use app::domain::principal::Principal;
use app::error::AppError;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

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
        Err(e) => {
            let code = match e {
                AppError::Forbidden(_) | AppError::Unauthenticated => "forbidden",
                AppError::NotFound(_) => "not_found",
                AppError::Invalid(_) | AppError::BadRequest(_) => "invalid",
                _ => "unavailable",
            };
            Redirect::to(&format!("/users?error={code}")).into_response()
        }
    }
}
