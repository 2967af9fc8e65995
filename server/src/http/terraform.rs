//! `POST /terraform/import`: the import page's plain HTML form, answered with
//! the report (what was adopted, which requests were filed, what was skipped)
//! or with the refused-form page listing each error with its file, line and key.
use super::people::{escape, plain_page, refused};
use super::state::AppState;
use app::domain::principal::Principal;
use app::error::AppError;
use app::views::{TerraformFile, TerraformImportInput, TerraformImportReport};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    file_name: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    dry_run: Option<String>,
    #[serde(default)]
    team: String,
    #[serde(default)]
    cost_center: String,
    #[serde(default)]
    justification: String,
}

pub async fn import(
    State(state): State<AppState>,
    by: Option<Extension<Principal>>,
    Form(form): Form<ImportForm>,
) -> Response {
    let Some(Extension(by)) = by else { return Redirect::to("/login?next=/terraform/import").into_response() };
    let some = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let input = TerraformImportInput {
        files: vec![TerraformFile { name: form.file_name.trim().to_string(), text: form.text }],
        dry_run: form.dry_run.is_some(),
        team: some(form.team),
        cost_center: some(form.cost_center),
        justification: some(form.justification),
    };
    match state.service.import_terraform(&by, input).await.map_err(AppError::from) {
        Ok(report) => report_page(&report),
        Err(e) => refused("Terraform import", "/terraform/import", &e),
    }
}

fn report_page(report: &TerraformImportReport) -> Response {
    let rows: String = report
        .repositories
        .iter()
        .map(|r| {
            let requests: String =
                r.request_ids.iter().map(|id| format!(" <a href=\"/requests/{id}\">request #{id}</a>")).collect();
            format!(
                "<tr><th scope=\"row\"><code>{}</code></th><td><span class=\"badge\">{}</span>{requests}</td>\
                 <td><code>{}</code></td><td>{}</td></tr>",
                escape(&r.repository),
                escape(r.outcome.label(report.dry_run)),
                escape(&r.origin),
                escape(&r.detail)
            )
        })
        .collect();
    let notes: String = report.notes.iter().map(|n| format!("<li>{}</li>", escape(n))).collect();
    let heading = if report.dry_run { "Import: dry run (nothing was changed)" } else { "Import done" };
    let body = format!(
        "<section class=\"card\" data-testid=\"import-report\"><h1>{heading}</h1>\
         <div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Repository</th><th scope=\"col\">Outcome</th>\
         <th scope=\"col\">In the file</th><th scope=\"col\">Detail</th></tr></thead><tbody>{rows}</tbody></table></div>\
         {notes}<p><a href=\"/terraform/import\">Import another file</a> · <a href=\"/repositories\">Repositories</a> · \
         <a href=\"/queue\">Waiting for a decision</a></p></section>",
        notes = if notes.is_empty() { String::new() } else { format!("<h2>Notes</h2><ul>{notes}</ul>") },
    );
    plain_page(axum::http::StatusCode::OK, heading, "wide", &body)
}
