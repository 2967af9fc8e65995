//! ecr-portal's server: configuration, startup, the service layer, the SQLite,
//! AWS and sign-in adapters, the JSON API and the apply worker.
pub mod api;
pub mod audit;
pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod db;
pub mod export;
pub mod lock;
pub mod oidc;
pub mod service;
pub mod startup;
pub mod worker;
