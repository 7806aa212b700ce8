//! # callbox-server
//!
//! (overview written as modules land)

pub mod store;
