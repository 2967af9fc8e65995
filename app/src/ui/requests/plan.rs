//! The request's plan: the AWS calls in order, and the repository policy
//! before and after.
use crate::domain::plan::{LifecyclePreview, PolicyChange, SettingChange};
use crate::domain::policy::Change;
use crate::ui::common::Time;
use crate::views::RequestDetail;
use leptos::prelude::*;

#[component]
pub(super) fn PlanView(detail: RequestDetail) -> AnyView {
    let blocked = detail.plan.blocked.clone();
    let policy = detail.plan.policy.clone();
    let warning = detail.plan.warning.clone();
    let changes = detail.plan.changes.clone();
    let preview = detail.plan.preview.clone();
    view! {
        <section class="card" data-testid="plan">
            <h2>"Plan"</h2>
            <p class="help">"These AWS calls run, in this order, when the request is approved."</p>
            {blocked.map(|b| view! { <p class="notice notice-error" data-testid="plan-blocked">"This plan cannot be applied: "{b}</p> })}
            {warning.map(|w| view! { <p class="notice notice-error" role="alert" data-testid="plan-warning">{w}</p> })}
            {(!changes.is_empty()).then(|| view! { <Changes changes/> })}
            {preview.map(|p| view! { <Preview preview=p/> })}
            {policy.map(|p| view! { <PolicyDiff change=p/> })}
            <ol class="plan">
                {detail.plan.steps.into_iter().map(|st| view! {
                    <li>
                        <p><code class="call">{st.call}</code>" " {st.summary}</p>
                        <dl class="kv small">
                            {st.params.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd><code>{v}</code></dd> }).collect_view()}
                        </dl>
                        {st.document.map(|doc| view! { <pre class="doc">{doc}</pre> })}
                    </li>
                }).collect_view()}
            </ol>
        </section>
    }
    .into_any()
}

/// Each setting before → after; what ECR cannot change is said so.
#[component]
fn Changes(changes: Vec<SettingChange>) -> impl IntoView {
    view! {
        <div class="table-wrap">
        <table class="table changes" data-testid="setting-changes">
            <caption>"Settings, before → after"</caption>
            <thead><tr><th scope="col">"Setting"</th><th scope="col">"Before"</th><th scope="col">"After"</th></tr></thead>
            <tbody>
                {changes.into_iter().map(|c| {
                    let changed = c.changed();
                    let after = if c.fixed { format!("{} (ECR cannot change it after creation)", c.after) } else { c.after.clone() };
                    view! {
                        <tr class:changed=changed data-setting=c.setting.clone() data-changed=changed.to_string()>
                            <th scope="row">{c.setting.clone()}</th>
                            <td><span class:removed=changed>{c.before}</span></td>
                            <td>{if changed { view! { <strong class="added">{after}</strong> }.into_any() } else { view! { <span class="meta">"unchanged"</span> }.into_any() }}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        </div>
    }
}

/// The lifecycle's preview: the images it would expire, newest first.
#[component]
pub(crate) fn Preview(preview: LifecyclePreview) -> impl IntoView {
    let n = preview.expiring.len();
    view! {
        <div class="preview" data-testid="lifecycle-preview">
            <h3>"Lifecycle preview"</h3>
            <p class="help" data-testid="lifecycle-preview-summary">
                {format!("Computed by the portal from the repository's {} image(s) now: {n} would expire.", preview.images)}
            </p>
            {(n > 0).then(|| view! {
                <div class="table-wrap">
                <table class="table">
                    <thead><tr><th scope="col">"Image"</th><th scope="col">"Tags"</th><th scope="col">"Pushed"</th><th scope="col">"Rule"</th><th scope="col">"Protected"</th></tr></thead>
                    <tbody>
                        {preview.expiring.into_iter().map(|e| {
                            let short = crate::domain::image::short_digest(&e.digest);
                            let is_protected = e.protected.is_some();
                            let digest = e.digest.clone();
                            view! {
                                <tr class:protected=is_protected data-digest=digest>
                                    <td><code title=e.digest>{short}</code></td>
                                    <td>{if e.tags.is_empty() { "untagged".to_string() } else { e.tags.join(", ") }}</td>
                                    <td><Time at=e.pushed_at/></td>
                                    <td>{e.rule}</td>
                                    <td>{e.protected.map(|p| view! { <strong class="danger">{p}</strong> })}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
                </div>
            })}
        </div>
    }
}

/// The repository policy before and after, side by side, changed lines marked.
#[component]
fn PolicyDiff(change: PolicyChange) -> AnyView {
    let side = |lines: Vec<(Change, String)>, empty: &'static str| {
        if lines.is_empty() {
            view! { <p class="empty-policy">{empty}</p> }.into_any()
        } else {
            view! {
                <pre class="policy">
                    {lines.into_iter().map(|(c, t)| {
                        let (class, mark) = match c {
                            Change::Added => ("line added", "+ "),
                            Change::Removed => ("line removed", "- "),
                            Change::Same => ("line", "  "),
                        };
                        view! { <span class=class><span class="mark" aria-hidden="true">{mark}</span>{t}"\n"</span> }
                    }).collect_view()}
                </pre>
            }
            .into_any()
        }
    };
    let before: Vec<(Change, String)> =
        change.lines.iter().filter(|l| l.change != Change::Added).map(|l| (l.change, l.text.clone())).collect();
    let after: Vec<(Change, String)> =
        change.lines.iter().filter(|l| l.change != Change::Removed).map(|l| (l.change, l.text.clone())).collect();
    let added = change.lines.iter().filter(|l| l.change == Change::Added).count();
    let removed = change.lines.iter().filter(|l| l.change == Change::Removed).count();
    view! {
        <div class="policy-diff" data-testid="policy-diff">
            <h3>"Repository policy"</h3>
            <p class="help" data-testid="policy-diff-summary">
                {if change.unchanged { "Already in the desired state: nothing will be written.".to_string() } else { format!("{added} lines added, {removed} removed. Statements the portal does not own stay as they are.") }}
            </p>
            <div class="diff-columns">
                <div>
                    <h4>"Before (live)"</h4>
                    <div data-testid="policy-before">{side(before, "No policy")}</div>
                </div>
                <div>
                    <h4>"After"</h4>
                    <div data-testid="policy-after">{side(after, "No policy (it will be deleted)")}</div>
                </div>
            </div>
        </div>
    }
    .into_any()
}
