//! ecr-portal's shared crate: the pure domain core, the server functions and
//! the UI. Built with `ssr` into the server and with `hydrate` into the wasm
//! bundle, so the same validation runs in the browser and on the server.
#![recursion_limit = "256"]
pub mod api;
pub mod domain;
pub mod error;
pub mod ui;
pub mod views;

pub use ui::{shell, App};

/// wasm entry point: `<HydrationScripts islands=true/>` calls it once the
/// bundle loads. Islands mode: pages are HTML from the server, and only the
/// `#[island]` components (forms, buttons, the live status) are hydrated, so
/// only their code is in the bundle.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // Panic messages in the console in development; release builds leave the formatting code out.
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
