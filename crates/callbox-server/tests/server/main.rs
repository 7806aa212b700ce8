//! The server's integration tests: one binary made of modules, each against a real server on 127.0.0.1:0 with a
//! real SQLite file (or, for `store`, the SQLite store directly).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_api;
mod cache;
mod call_records;
mod calls;
mod calls_smoke;
mod client_api;
mod config_reference;
mod connections;
mod dashboard;
mod hostile;
mod legacy;
mod legacy_calls;
mod platform;
mod realtime;
mod scale;
mod store;
mod support;
mod tls;
