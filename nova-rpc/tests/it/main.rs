//! nova-rpc integration tests: one binary (link once), modules per subject.

#[cfg(feature = "amqp")]
mod amqp_wire;
mod common;
mod contract;
mod props;
