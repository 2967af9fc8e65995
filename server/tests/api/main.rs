//! Integration tests through HTTP against the real application, SQLite and moto.
mod access;
mod helpers;
mod requests;
mod web;
