//! Integration tests through HTTP against the real application, SQLite and moto.
mod access;
mod audit;
mod crash;
mod faults;
mod helpers;
mod input;
mod leases;
mod limits;
mod notifications;
mod oidc;
mod people;
mod process;
mod proxy;
mod races;
mod requests;
mod security;
mod web;
