//! nova-rpc integration tests: one binary (link once), modules per subject.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "amqp")]
mod amqp_wire;
mod common;
mod contract;
mod props;
