//! ecr-portal's server: configuration, startup, the service layer, the SQLite,
//! AWS and sign-in adapters, the JSON API and the apply worker.
pub mod audit;
pub mod aws;
pub mod clock;
pub mod config;
pub mod db;
pub mod export;
pub mod http;
pub mod limiter;
pub mod lock;
pub mod metrics;
pub mod notify;
pub mod oidc;
pub mod secret;
pub mod service;
pub mod startup;
pub mod terraform;
pub mod worker;
