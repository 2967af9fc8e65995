//! A repository's images and releases (`/repositories/images?name=…`): each
//! image with its tags, size, last pull and scan, a "Promote…" form beside it,
//! and the releases made so far with their pull commands. The forms are plain
//! HTML (POST `/repositories/promote`, `/repositories/scan`), so they work
//! without JavaScript; only the copy buttons are islands.
use super::common::CopyButton;
use super::common::{encode, ErrorNotice, Loading, Time};
use crate::api::list_images;
use crate::domain::image::short_digest;
use crate::views::{ImageView, ImagesPage, ImagesQuery, ReleaseView};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// What `?scanned=` and `?error=` may say: known values only.
fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "scan_started" => "Scan started; the result shows here when ECR has it.",
        "forbidden" => "Only admins can start scans.",
        "unavailable" => {
            "ECR could not start the scan right now (an image is scanned at most once a day); try again later."
        }
        _ => return None,
    })
}

pub fn images_href(name: &str) -> String {
    format!("/repositories/images?name={}", encode(name))
}

#[component]
pub fn ImagesPageView() -> impl IntoView {
    let query = use_query_map();
    let q = move || {
        query.with(|q| ImagesQuery {
            repository: q.get("name").unwrap_or_default(),
            offset: q.get("offset").and_then(|o| o.parse().ok()),
            limit: None,
        })
    };
    let page = Resource::new(q, list_images);
    let said = move || query.with(|q| q.get("done").or_else(|| q.get("error"))).and_then(|c| notice(&c));
    view! {
        <Title text="Images"/>
        <section class="page">
            <p><a href="/repositories">"← Repositories"</a></p>
            {move || said().map(|t| view! { <div class="notice notice-info" role="status"><p>{t}</p></div> })}
            <Suspense fallback=Loading>
                {move || page.get().map(|r| match r {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(p) => view! { <Body p/> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Body(p: ImagesPage) -> impl IntoView {
    let grant = (!p.production_can_pull).then(|| {
        let href = format!("/requests/access?repository={}&action=grant", encode(&p.repository));
        view! {
            <div class="notice notice-warn" role="status" data-testid="not-pullable">
                <p>"Production cannot pull from this repository yet, so a release is of no use to it until it can. "
                    <a href=href>"Ask for production access"</a></p>
            </div>
        }
    });
    let first = p.offset as usize + 1;
    let last = p.offset as usize + p.images.len();
    let name = p.repository.clone();
    let previous =
        (p.offset > 0).then(|| format!("{}&offset={}", images_href(&name), p.offset.saturating_sub(p.limit)));
    let next = p.next_offset.map(|o| format!("{}&offset={o}", images_href(&name)));
    let patterns = p.release_tag_patterns.join(" or ");
    let repository = p.repository.clone();
    let can_scan = p.can_scan;
    view! {
        <div class="page-head">
            <div>
                <p class="eyebrow">"Images and releases"</p>
                <h1><code data-testid="images-name">{p.repository.clone()}</code></h1>
            </div>
        </div>
        {grant}
        <Releases list=p.releases.clone()/>
        <section class="card">
            <h2>"Images"</h2>
            {if p.images.is_empty() {
                view! { <p class="help">"No images here yet; CI pushes them."</p> }.into_any()
            } else {
                view! {
                    <p class="summary-line" data-testid="images-count">{format!("{first}–{last} of {} images, newest first", p.total)}</p>
                    <div class="table-wrap">
                        <table class="table" data-testid="images">
                            <thead><tr>
                                <th scope="col">"Image"</th><th scope="col">"Tags"</th><th scope="col">"Pushed"</th>
                                <th scope="col">"Size"</th><th scope="col">"Last pull"</th><th scope="col">"Scan"</th>
                                <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                            </tr></thead>
                            <tbody>
                                {p.images.into_iter().map(|i| view! { <ImageRow i repository=repository.clone() patterns=patterns.clone() can_scan/> }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                    <nav class="pager" aria-label="Pages of images">
                        {previous.map(|h| view! { <a href=h>"← Newer"</a> })}
                        {next.map(|h| view! { <a href=h>"Older →"</a> })}
                    </nav>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn ImageRow(i: ImageView, repository: String, patterns: String, can_scan: bool) -> impl IntoView {
    let short = short_digest(&i.digest);
    let size = match i.size_bytes {
        Some(b) if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1_000_000.0),
        Some(b) if b >= 1_000 => format!("{:.1} kB", b as f64 / 1_000.0),
        Some(b) => format!("{b} B"),
        None => "—".into(),
    };
    let digest = i.digest.clone();
    let first_tag = i.tags.first().cloned().unwrap_or_else(|| short.clone());
    let critical = i.critical > 0;
    view! {
        <tr data-digest=i.digest.clone()>
            <td><code title=i.digest.clone()>{short}</code>{i.media_type.clone().map(|m| view! { <p class="help">{m}</p> })}</td>
            <td>{if i.tags.is_empty() { view! { <span class="help">"untagged"</span> }.into_any() } else {
                i.tags.iter().map(|t| view! { <span class="chip">{t.clone()}</span>" " }).collect_view().into_any()
            }}</td>
            <td><Time at=i.pushed_at.clone()/></td>
            <td>{size}</td>
            <td>{i.last_pull.clone().map_or_else(|| "never".into_any(), |t| view! { <Time at=t/> }.into_any())}</td>
            <td class:danger=critical>{i.scan.clone()}</td>
            <td class="row-actions">
                <details class="promote">
                    <summary>"Promote…"</summary>
                    <form class="form" method="post" action="/repositories/promote" data-testid="promote-form">
                        <input type="hidden" name="repository" value=repository.clone()/>
                        <input type="hidden" name="digest" value=digest.clone()/>
                        <div class="field">
                            <label for=format!("tag-{digest}")>{format!("Release tag for {first_tag}")}</label>
                            <input id=format!("tag-{digest}") name="tag" required spellcheck="false" aria-describedby=format!("tag-help-{digest}")/>
                            <p class="help" id=format!("tag-help-{digest}")>{format!("Matching {patterns}, such as v1.2.0.")}</p>
                        </div>
                        <div class="field checkbox">
                            <input type="checkbox" id=format!("move-{digest}") name="move" value="true"/>
                            <label for=format!("move-{digest}")>"Move the tag if another image has it (mutable repositories)"</label>
                        </div>
                        <div class="field">
                            <label for=format!("why-{digest}")>"Why is it ready?"</label>
                            <textarea id=format!("why-{digest}") name="justification" rows="2" maxlength="2000" required></textarea>
                        </div>
                        <button type="submit" class="button primary">"Request the promotion"</button>
                    </form>
                </details>
                {can_scan.then(|| view! {
                    <form method="post" action="/repositories/scan">
                        <input type="hidden" name="repository" value=repository.clone()/>
                        <input type="hidden" name="digest" value=digest.clone()/>
                        <button type="submit" class="link-button">"Scan"</button>
                    </form>
                })}
            </td>
        </tr>
    }
}

#[component]
fn Releases(list: Vec<ReleaseView>) -> impl IntoView {
    view! {
        <section class="card" data-testid="releases">
            <h2>"Releases"</h2>
            {if list.is_empty() {
                view! { <p class="help">"No image has been promoted here yet."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table class="table">
                            <thead><tr>
                                <th scope="col">"Tag"</th><th scope="col">"Image"</th><th scope="col">"Requested by"</th>
                                <th scope="col">"Approved by"</th><th scope="col">"When"</th><th scope="col">"Pull"</th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|r| {
                                    let short = short_digest(&r.digest);
                                    view! {
                                        <tr data-release=r.tag.clone()>
                                            <td><a href=format!("/requests/{}", r.request_id)><code>{r.tag.clone()}</code></a></td>
                                            <td><code title=r.digest.clone()>{short}</code></td>
                                            <td>{r.requested_by.clone()}</td>
                                            <td>{r.approved_by.clone()}</td>
                                            <td><Time at=r.at.clone()/></td>
                                            <td class="uri">
                                                <code>{r.pull_by_digest.clone()}</code>
                                                <CopyButton text=r.pull_by_digest.clone() label=format!("Copy the pull command of {} by digest", r.tag)/>
                                                <br/>
                                                <code>{r.pull_by_tag.clone()}</code>
                                                <CopyButton text=r.pull_by_tag.clone() label=format!("Copy the pull command of {} by tag", r.tag)/>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}
        </section>
    }
}
