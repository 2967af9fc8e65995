//! The pure domain core: types that can only exist when valid, and the rules
//! between them. No I/O here; it compiles into the browser bundle too.
pub mod account;
pub mod approval;
pub mod audit;
pub mod field;
pub mod form;
pub mod image;
pub mod lifecycle;
pub mod name;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod principal;
pub mod request;
pub mod settings;
pub mod text;
pub mod time;
pub mod web_form;
