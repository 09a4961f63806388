//! The harnesses behind the fuzz targets (`fuzz_targets/*.rs` call one
//! each), kept here so that they are plain functions a unit test can also
//! drive over the seed corpus.
//!
//! Each harness feeds untrusted bytes to the real decoder and checks what
//! must hold for any input: no panic, no hang, and what is accepted
//! round-trips (what we would send on is what we read).
//!
//! The API's body and header parsing is compiled from its own source
//! files (`#[path]` below) rather than by depending on `nova-api`, whose
//! tree (axum server, sea-orm, SQLite, reqwest, …) is ~350 crates and
//! would make the fuzz build too slow for CI; these modules only need
//! `axum`'s HTTP types, `jsonschema`, `regex` and `serde_json`.

// The modules of services/api/src this crate compiles as its own.
#[allow(dead_code, unreachable_pub, clippy::all)]
#[path = "../../services/api/src/extra_specs.rs"]
mod extra_specs;
#[allow(dead_code, unreachable_pub, clippy::all)]
#[path = "../../services/api/src/fault.rs"]
mod fault;
#[allow(dead_code, unreachable_pub, clippy::all)]
#[path = "../../services/api/src/flavor_rules.rs"]
mod flavor_rules;
#[allow(dead_code, unreachable_pub, clippy::all)]
#[path = "../../services/api/src/microversion.rs"]
mod microversion;
#[allow(dead_code, unreachable_pub, clippy::all)]
#[path = "../../services/api/src/schemas.rs"]
mod schemas;

pub mod api;
pub mod objects;
pub mod rpc;
