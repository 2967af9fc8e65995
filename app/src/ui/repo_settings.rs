//! A repository's settings page (`/repositories/settings?name=…`): the approved
//! settings, a form to change them, and a form to delete the repository. Both
//! are plain HTML forms (POST `/repositories/update`, `/repositories/delete`)
//! answered with the new request's page, so they work without JavaScript and
//! add nothing to the browser bundle. The plan and the lifecycle preview are on
//! the request's page, where the approver sees them too.
use super::common::{encode, textarea_text, ErrorNotice, Loading};
use crate::api::{preview_lifecycle, repository_settings};
use crate::domain::plan::setting_rows;
use crate::domain::settings::TagMutability;
use crate::views::RepositorySettingsView;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// What the form held when its "Preview" button sent it here (a GET): the
/// page fills the form in again from it, so nothing typed is lost.
#[derive(Debug, Clone, Default, PartialEq)]
struct Draft(Option<std::collections::HashMap<String, String>>);

impl Draft {
    fn get(&self, key: &str) -> Option<String> {
        self.0.as_ref().and_then(|m| m.get(key).cloned())
    }
    fn or(&self, key: &str, approved: String) -> String {
        self.get(key).unwrap_or(approved)
    }
}

#[component]
pub fn RepositorySettingsPage() -> impl IntoView {
    let query = use_query_map();
    let name = move || query.with(|q| q.get("name").or_else(|| q.get("repository"))).unwrap_or_default();
    let data = Resource::new(name, repository_settings);
    let draft = move || {
        query.with(|q| {
            Draft(q.get("preview").map(|_| {
                [
                    "tag_mutability",
                    "tag_mutability_exclusions",
                    "scan_on_push",
                    "lifecycle",
                    "team",
                    "cost_center",
                    "tags",
                    "justification",
                    "expire_protected",
                ]
                .into_iter()
                .filter_map(|k| q.get(k).map(|v| (k.to_string(), v)))
                .collect()
            }))
        })
    };
    let preview = Resource::new(
        move || draft().get("lifecycle").map(|l| (name(), l)),
        |asked| async move {
            match asked {
                Some((name, lifecycle)) => Some(preview_lifecycle(name, lifecycle).await),
                None => None,
            }
        },
    );
    view! {
        <Title text="Repository settings"/>
        <section class="page narrow">
            <p><a href="/repositories">"← Repositories"</a></p>
            <Suspense fallback=Loading>
                {move || data.get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(v) => view! { <SettingsBody v draft=draft() preview=preview.get().flatten()/> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn SettingsBody(
    v: RepositorySettingsView,
    draft: Draft,
    preview: Option<Result<crate::domain::plan::LifecyclePreview, crate::error::AppError>>,
) -> impl IntoView {
    let open = v.open_request.map(|id| {
        view! {
            <div class="notice notice-info" role="status" data-testid="open-request">
                <p>"Request " <a href=format!("/requests/{id}")>{format!("#{id}")}</a> " about this repository is still open; a new request waits until it is decided."</p>
            </div>
        }
    });
    view! {
        <h1 data-testid="settings-name">{v.name.clone()}</h1>
        {open}
        {match v.spec.clone() {
            None => view! {
                <div class="notice notice-info" role="status">
                    <p>"The portal does not manage this repository yet, so its settings cannot be changed here. An admin adopts it from the repositories page first."</p>
                </div>
            }.into_any(),
            Some(spec) => view! {
                <section class="card">
                    <h2>"Approved settings"</h2>
                    <dl class="kv" data-testid="approved-settings">
                        {setting_rows(&spec).into_iter().map(|(k, val, fixed)| view! {
                            <dt>{k}</dt>
                            <dd>{val}{fixed.then_some(" (fixed at creation)")}</dd>
                        }).collect_view()}
                    </dl>
                </section>
                <UpdateForm v=v.clone() spec draft preview/>
            }.into_any(),
        }}
        <DeleteForm v/>
    }
}

#[component]
fn UpdateForm(
    v: RepositorySettingsView,
    spec: crate::domain::settings::RepositorySpec,
    draft: Draft,
    preview: Option<Result<crate::domain::plan::LifecyclePreview, crate::error::AppError>>,
) -> impl IntoView {
    let tag = |k: &str| spec.tags.iter().find(|t| t.key == k).map(|t| t.value.clone()).unwrap_or_default();
    let current = draft.get("tag_mutability").and_then(|m| TagMutability::parse(&m)).unwrap_or(spec.tag_mutability);
    let scan = draft.get("scan_on_push").map_or(spec.scan_on_push, |s| s == "true");
    let preview = preview.map(|p| match p {
        Ok(p) => view! { <div class="card inset" data-testid="form-preview"><super::requests::plan::Preview preview=p/></div> }.into_any(),
        Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
    });
    let protection = format!(
        "A lifecycle that would expire an image production pulled in the last {} days, or one tagged {}, is refused unless you tick the box below.",
        v.protect_pulled_days,
        v.protected_tags.join(" or ")
    );
    view! {
        <section class="card">
            <h2>"Change settings"</h2>
            <p class="help">"Your change becomes a request: an approver sees each setting before → after and what the lifecycle would expire, then it is applied and verified. Encryption cannot change after creation."</p>
            <form class="form" method="post" action="/repositories/update" data-testid="update-form">
                <input type="hidden" name="repository" value=v.name.clone()/>
                <div class="grid-2">
                    <div class="field">
                        <label for="tag_mutability">"Image tags"</label>
                        <select id="tag_mutability" name="tag_mutability">
                            {TagMutability::ALL.into_iter().map(|m| view! {
                                <option value=m.as_aws() selected=m == current>{m.as_aws()}</option>
                            }).collect_view()}
                        </select>
                    </div>
                    <div class="field">
                        <label for="tag_mutability_exclusions">"Exclusions"</label>
                        <input id="tag_mutability_exclusions" name="tag_mutability_exclusions" spellcheck="false"
                            value=draft.or("tag_mutability_exclusions", spec.tag_mutability_exclusions.join(", ")) aria-describedby="exclusions-help"/>
                        <p class="help" id="exclusions-help">"With the …_WITH_EXCLUSION settings: up to 5 tags that are the exception, comma-separated; * is a wildcard (latest, dev-*)."</p>
                    </div>
                </div>
                <div class="field">
                    <label for="scan_on_push">"Scan on push"</label>
                    <select id="scan_on_push" name="scan_on_push">
                        <option value="true" selected=scan>"On"</option>
                        <option value="false" selected=!scan>"Off"</option>
                    </select>
                </div>
                <div class="field">
                    <label for="lifecycle">"Lifecycle policy (ECR JSON)"</label>
                    <textarea id="lifecycle" name="lifecycle" rows="10" spellcheck="false" class="code" aria-describedby="lifecycle-help">{textarea_text(&draft.or("lifecycle", v.lifecycle_json.clone()))}</textarea>
                    <p class="help" id="lifecycle-help">"ECR's own lifecycle policy, {\"rules\": [...]}: tag status any, tagged (with tagPrefixList or tagPatternList) or untagged; imageCountMoreThan, or sinceImagePushed in days. Empty: no lifecycle. " {protection}</p>
                    <button type="submit" class="button" formmethod="get" formaction="/repositories/settings" formnovalidate
                        name="preview" value="1">"Preview what it would expire"</button>
                    {preview}
                </div>
                <div class="grid-2">
                    <div class="field">
                        <label for="team">"Team"</label>
                        <input id="team" name="team" value=draft.or("team", tag("team")) required/>
                    </div>
                    <div class="field">
                        <label for="cost_center">"Cost centre"</label>
                        <input id="cost_center" name="cost_center" value=draft.or("cost_center", tag("cost-center")) required/>
                    </div>
                </div>
                <div class="field">
                    <label for="tags">"Other tags"</label>
                    <textarea id="tags" name="tags" rows="3" spellcheck="false" aria-describedby="tags-help">{textarea_text(&draft.or("tags", v.free_tags.clone()))}</textarea>
                    <p class="help" id="tags-help">"One key=value per line. Keys starting with ecr-portal: or aws: are reserved."</p>
                </div>
                <div class="field checkbox">
                    <input type="checkbox" id="expire_protected" name="expire_protected" value="true" checked=draft.get("expire_protected").is_some()/>
                    <label for="expire_protected">"The lifecycle may expire protected images (I know production may lose them)"</label>
                </div>
                <div class="field">
                    <label for="update-justification">"Justification"</label>
                    <textarea id="update-justification" name="justification" rows="2" maxlength="2000" required>{textarea_text(&draft.get("justification").unwrap_or_default())}</textarea>
                </div>
                <button type="submit" class="button primary">"Request the change"</button>
            </form>
        </section>
    }
}

#[component]
fn DeleteForm(v: RepositorySettingsView) -> impl IntoView {
    let images = match v.image_count {
        Some(0) => "It holds no images.".to_string(),
        Some(n) => format!("Its {n} image(s) are deleted with it."),
        None => "Every image in it is deleted with it.".to_string(),
    };
    view! {
        <section class="card danger-zone">
            <h2>"Delete this repository"</h2>
            <details>
                <summary>"Delete…"</summary>
                <p>{images}" This cannot be undone; the portal keeps its record and history."</p>
                {v.production_can_pull.then(|| view! {
                    <p class="notice notice-error" role="alert" data-testid="delete-warning">"Production can pull from this repository now: it would lose these images. Deleting it is decided by the production grant's approval rule."</p>
                })}
                <form class="form" method="post" action="/repositories/delete" data-testid="delete-form">
                    <input type="hidden" name="repository" value=v.name.clone()/>
                    <div class="field">
                        <label for="delete-justification">"Why can it go?"</label>
                        <textarea id="delete-justification" name="justification" rows="2" maxlength="2000" required></textarea>
                    </div>
                    <button type="submit" class="button danger">"Request deletion"</button>
                </form>
            </details>
        </section>
    }
}

/// The settings page of a repository.
pub fn settings_href(name: &str) -> String {
    format!("/repositories/settings?name={}", encode(name))
}
