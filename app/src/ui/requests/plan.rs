//! The request's plan: the AWS calls in order, and the repository policy
//! before and after.
use crate::domain::plan::PolicyChange;
use crate::domain::policy::Change;
use crate::views::RequestDetail;
use leptos::prelude::*;

#[component]
pub(super) fn PlanView(detail: RequestDetail) -> AnyView {
    let blocked = detail.plan.blocked.clone();
    let policy = detail.plan.policy.clone();
    view! {
        <section class="card" data-testid="plan">
            <h2>"Plan"</h2>
            <p class="help">"These AWS calls run, in this order, when the request is approved."</p>
            {blocked.map(|b| view! { <p class="notice notice-error" data-testid="plan-blocked">"This plan cannot be applied: "{b}</p> })}
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
