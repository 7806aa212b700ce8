//! Integration tests of callbox-core, one binary (`cargo test -p callbox-core --test core`).
//!
//! Every value below is copied from `shared/PROTOCOL.md`; nothing here reads files at build or test time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod any_ticket;
mod authorization;
mod jwt;
mod properties;
mod refusals;
mod signing;
mod support;
mod variants;
mod vectors;
