//! Integration tests of nova-scheduler through its public API.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "objects")]
mod from_objects;
mod golden;
mod placement;
mod with_placement;
