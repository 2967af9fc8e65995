//! The request page's decision column: approvals so far, progress, who
//! decided, retry; and the Approve / Reject and Retry islands.
use crate::api::{ApproveRequest, RejectRequest, RetryRequest};
use crate::domain::request::Status;
use crate::error::AppError;
use crate::ui::common::{form_values, reload, reload_when, submitter_value, ErrorNotice, Time};
use crate::views::RequestDetail;
use leptos::prelude::*;

#[component]
pub(super) fn Decision(detail: RequestDetail) -> AnyView {
    let id = detail.summary.id;
    let status = detail.summary.status;
    let decided = detail.decided_by.clone().map(|by| {
        let verb = if status == Status::Rejected { "Rejected" } else { "Approved" };
        view! {
            <section class="card">
                <h2>"Decision"</h2>
                <p>{verb}" by " <strong>{by}</strong></p>
                {detail.decision_comment.clone().filter(|c| !c.is_empty()).map(|c| view! { <p class="prose">{c}</p> })}
            </section>
        }
    });
    let pending = status.is_awaiting_decision().then(|| {
        let blocked = detail.approve_blocked.clone();
        let can_approve = blocked.is_none();
        let can_reject = detail.can_reject;
        let can_withdraw = detail.can_withdraw;
        let given = detail.approvals.len() as u32;
        let required = detail.approvals_required;
        let missing = required.saturating_sub(given);
        let groups = detail.approver_groups.join(", ");
        let approvals = detail.approvals.clone();
        let expires = detail.expires_at.clone();
        view! {
            <section class="card decision" data-testid="decision">
                <h2>"Decision"</h2>
                <div class="approvals" data-testid="approvals">
                    <p>
                        <strong>{format!("{given} of {required} approval{}", if required == 1 { "" } else { "s" })}</strong>
                        {(missing > 0).then(|| format!(
                            " · needs {missing} more from a member of {groups} (not the requester)"
                        ))}
                    </p>
                    {(!approvals.is_empty()).then(|| view! {
                        <ul class="approval-list">
                            {approvals.into_iter().map(|a| view! {
                                <li>
                                    "Approved by " <strong>{a.approver}</strong> " · " <Time at=a.at/>
                                    {a.comment.map(|c| view! { <span class="prose">" — "{c}</span> })}
                                </li>
                            }).collect_view()}
                        </ul>
                    })}
                    {expires.map(|e| view! { <p class="help">"Expires without a decision on " <Time at=e/></p> })}
                </div>
                {blocked.clone().map(|b| view! { <p class="notice notice-info" data-testid="approve-blocked">{b}</p> })}
                {(can_approve || can_reject).then(|| view! { <DecisionButtons id can_approve can_reject/> })}
                // A plain form: it works before, and without, the page's script.
                {can_withdraw.then(|| view! {
                    <form method="post" action=format!("/requests/{id}/withdraw") class="withdraw">
                        <p class="help">"No longer needed? Withdraw it; nothing is changed in AWS."</p>
                        <button type="submit" class="button">"Withdraw request"</button>
                    </form>
                })}
            </section>
        }
    });
    let retry_box = detail.can_retry.then(|| {
        view! {
            <section class="card">
                <h2>"Retry"</h2>
                <p>"Fix the cause, then apply the approved plan again."</p>
                <RetryButton id/>
            </section>
        }
    });
    let progress = status.is_in_flight().then(|| view! {
        <section class="card progress" role="status" aria-live="polite">
            <h2>"In progress"</h2>
            <p>{if status == Status::Approved { "Approved; waiting for the apply worker…" } else { "Applying the plan in AWS…" }}</p>
        </section>
    });
    view! {
        {pending}
        {progress}
        {decided}
        {retry_box}
    }
    .into_any()
}

/// The comment and the Approve / Reject buttons: a plain HTML form, each button posting to
/// its own address (`/requests/{id}/approve`, `…/reject`), answered without JavaScript.
/// With the wasm it goes through a server function and the page loads again with the decision.
#[island]
fn DecisionButtons(id: i64, can_approve: bool, can_reject: bool) -> impl IntoView {
    let approve = ServerAction::<ApproveRequest>::new();
    let reject = ServerAction::<RejectRequest>::new();
    let error = RwSignal::new(None::<AppError>);
    Effect::new(move |_| {
        for r in [approve.value().get(), reject.value().get()].into_iter().flatten() {
            match r {
                Ok(_) => reload(),
                Err(e) => error.set(Some(e)),
            }
        }
    });
    let busy = move || approve.pending().get() || reject.pending().get();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        // Which button: a browser that does not say lets the form post itself to that
        // button's own address, so a Reject can never turn into an approval.
        let which = submitter_value(&ev);
        if !matches!(which.as_deref(), Some("approve" | "reject")) {
            return;
        }
        ev.prevent_default();
        if busy() {
            return;
        }
        error.set(None);
        let comment = form_values(&ev).text("comment");
        if which.as_deref() == Some("reject") {
            reject.dispatch(RejectRequest { id, comment });
        } else {
            approve.dispatch(ApproveRequest { id, comment });
        }
    };
    view! {
        {move || error.get().map(|e| view! { <ErrorNotice error=e/> })}
        <form method="post" action=format!("/requests/{id}/approve") on:submit=on_submit>
            <div class="field">
                <label for="comment">"Comment (optional)"</label>
                <textarea id="comment" name="comment" rows="3"></textarea>
            </div>
            <div class="actions">
                {can_approve.then(|| view! {
                    <button type="submit" class="button primary" name="decision" value="approve"
                        formaction=format!("/requests/{id}/approve") disabled=busy>
                        "Approve"
                    </button>
                })}
                {can_reject.then(|| view! {
                    <button type="submit" class="button danger" name="decision" value="reject"
                        formaction=format!("/requests/{id}/reject") disabled=busy>
                        "Reject"
                    </button>
                })}
            </div>
        </form>
    }
}

/// Applies a failed request's approved plan again: a plain HTML form (`POST
/// /requests/{id}/retry`); with the wasm, a server function, then the page loads again.
#[island]
fn RetryButton(id: i64) -> impl IntoView {
    let retry = ServerAction::<RetryRequest>::new();
    reload_when(move || matches!(retry.value().get(), Some(Ok(_))));
    view! {
        {move || retry.value().get().and_then(Result::err).map(|e| view! { <ErrorNotice error=e/> })}
        <form method="post" action=format!("/requests/{id}/retry")
            on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                if !retry.pending().get_untracked() {
                    retry.dispatch(RetryRequest { id });
                }
            }>
            <button type="submit" class="button" disabled=move || retry.pending().get()>"Retry apply"</button>
        </form>
    }
}
