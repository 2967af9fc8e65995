//! The admins' notifications page: the configured channels with a "send a
//! test notification" button each, and the outbox (pending, delivered,
//! failed, with the last error). Rendered on the server only; the buttons are
//! plain HTML forms (POST /notifications/test, answered with a redirect back).
use super::common::{EmptyState, ErrorNotice, Loading};
use crate::api::outbox;
use crate::views::{OutboxPage, OutboxView};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// What `/notifications?error=` may say: known codes only.
fn error_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "forbidden" => "Only admins can send test notifications.",
        "channel" => "That channel is not configured.",
        _ => return None,
    })
}

#[component]
pub fn NotificationsPage() -> impl IntoView {
    let page = Resource::new(|| (), |_| outbox());
    let query = use_query_map();
    let sent = move || {
        query
            .with(|q| q.get("sent"))
            .filter(|c| app_channel(c))
            .map(|c| format!("A test notification is on its way to {c}."))
    };
    let error = move || query.with(|q| q.get("error")).and_then(|c| error_text(&c));
    view! {
        <Title text="Notifications"/>
        <section class="page">
            <div class="page-head">
                <h1>"Notifications"</h1>
            </div>
            <p class="lede">
                "Every notification is written with the change it is about and delivered by the portal, retried until "
                "it is accepted or given up. A request's timeline says who was notified."
            </p>
            {move || sent().map(|text| view! { <div class="notice notice-success" role="status" data-testid="test-sent"><p>{text}</p></div> })}
            {move || error().map(|text| view! { <div class="notice notice-error" role="alert"><p>{text}</p></div> })}
            <Suspense fallback=Loading>
                {move || page.get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(p) => view! { <Outbox page=p/> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

fn app_channel(c: &str) -> bool {
    crate::domain::notify::Channel::parse(c).is_some()
}

#[component]
fn Outbox(page: OutboxPage) -> impl IntoView {
    let OutboxPage { channels, pending, failed, notifications } = page;
    view! {
        <section class="card">
            <h2>"Channels"</h2>
            {if channels.is_empty() {
                view! { <p>"No channel is configured. Set " <code>"notify.slack_webhook_url"</code> " or " <code>"notify.webhook_url"</code> " in the configuration."</p> }.into_any()
            } else {
                view! {
                    <ul class="channel-list">
                        {channels.into_iter().map(|c| view! {
                            <li>
                                <span class="chip">{c.clone()}</span>
                                <form method="post" action="/notifications/test" class="inline-form">
                                    <input type="hidden" name="channel" value=c.clone()/>
                                    <button type="submit" class="button small" aria-label=format!("Send a test notification to {c}")>"Send a test notification"</button>
                                </form>
                            </li>
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
        <p class="summary-line" data-testid="outbox-summary">{format!("{pending} waiting to be sent, {failed} given up (of the newest 200).")}</p>
        {if notifications.is_empty() {
            view! { <EmptyState title="Nothing sent yet"><p>"Notifications appear here as requests move."</p></EmptyState> }.into_any()
        } else {
            view! { <OutboxTable rows=notifications/> }.into_any()
        }}
    }
}

#[component]
fn OutboxTable(rows: Vec<OutboxView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="table" data-testid="outbox">
                <thead>
                    <tr>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Channel"</th>
                        <th scope="col">"Request"</th>
                        <th scope="col">"State"</th>
                        <th scope="col">"Attempts"</th>
                        <th scope="col">"When"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|r| {
                        let when = match (&r.delivered_at, &r.next_attempt_at) {
                            (Some(d), _) => format!("delivered {d}"),
                            (None, Some(n)) => format!("next try {n}"),
                            _ => format!("queued {}", r.created_at),
                        };
                        view! {
                            <tr>
                                <td><code>{r.event.clone()}</code></td>
                                <td>{r.channel.clone()}</td>
                                <td>{r.request_id.map(|id| view! { <a href=format!("/requests/{id}")>{format!("#{id}")}</a> })}
                                    {r.repository.clone().map(|n| view! { " " <span class="help">{n}</span> })}</td>
                                <td>
                                    <span class=format!("badge badge-outbox-{}", r.status)>{r.status.clone()}</span>
                                    {r.last_error.clone().map(|e| view! { <br/><span class="help">{e}</span> })}
                                </td>
                                <td>{r.attempts}</td>
                                <td><time>{when}</time></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
