//! Integration tests of nova-scheduler through its public API.
#![allow(clippy::unwrap_used)]

mod golden;
mod placement;
mod with_placement;
