//! Integration tests of nova-objects through its public API.
#![allow(clippy::unwrap_used)]

mod fingerprints;
mod fixtures;
mod oracle;
#[cfg(feature = "db")]
mod persistence;
mod props;
mod sample;
