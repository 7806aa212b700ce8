//! The server's integration tests: one binary made of modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store;
