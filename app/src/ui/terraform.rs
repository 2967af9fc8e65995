//! The import page (`/terraform/import`, admins): paste the Terraform module's
//! `.tf` (or the JSON of `terraform show -json`) and import it. A plain HTML
//! form (POST `/terraform/import`) answered with the report, so it works
//! without JavaScript and adds nothing to the browser bundle.
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn TerraformImportPage() -> impl IntoView {
    view! {
        <Title text="Import from Terraform"/>
        <section class="page narrow">
            <p><a href="/repositories">"← Repositories"</a></p>
            <h1>"Import from Terraform"</h1>
            <p class="lede">
                "Repositories the file describes that exist in ECR are adopted as they are live; the others get a \
                 create request with the file's settings. When a live policy lets production pull, a grant request \
                 asks for that to be approved under its own rule. Nothing changes unless the whole file reads \
                 cleanly; names outside the namespace are listed and skipped. The command line does the same: "
                <code>"ecr-portal terraform import main.tf"</code>"."
            </p>
            <form method="post" action="/terraform/import" class="card" data-testid="import-form">
                <div class="field">
                    <label for="tf-name">"File name"</label>
                    <input id="tf-name" name="file_name" value="main.tf" aria-describedby="tf-name-hint"/>
                    <p class="help" id="tf-name-hint">"Errors name it, with the line and the key."</p>
                </div>
                <div class="field">
                    <label for="tf-text">"The file's text"</label>
                    <textarea id="tf-text" name="text" rows="16" required spellcheck="false" class="code"
                        aria-describedby="tf-text-hint"></textarea>
                    <p class="help" id="tf-text-hint">
                        "The module's HCL (its "<code>"locals"</code>", "<code>"aws_ecr_repository"</code>" with "
                        <code>"for_each"</code>", lifecycle and repository policies), or "
                        <code>"terraform show -json"</code>"."
                    </p>
                </div>
                <fieldset class="field">
                    <legend>"For repositories to be created, when the file's tags do not say"</legend>
                    <label for="tf-team">"Team"</label>
                    <input id="tf-team" name="team"/>
                    <label for="tf-cost">"Cost center"</label>
                    <input id="tf-cost" name="cost_center"/>
                </fieldset>
                <div class="field">
                    <label for="tf-why">"Justification of the requests (optional)"</label>
                    <input id="tf-why" name="justification" placeholder="Imported from Terraform (the file and key)"/>
                </div>
                <div class="field">
                    <label><input type="checkbox" name="dry_run" value="on" checked/>" Dry run: show the report, change nothing"</label>
                </div>
                <div class="actions">
                    <button class="button primary" type="submit">"Import"</button>
                </div>
            </form>
        </section>
    }
}
