//! Requests, by feature: the list and the approval queue, the new-repository
//! and production access forms, and the request page with its plan and decision.
mod access;
mod decision;
mod list;
mod new;
mod page;
pub(crate) mod plan;

pub use access::AccessRequest;
pub use list::{Queue, RequestList};
pub use new::NewRequest;
pub use page::RequestPage;
