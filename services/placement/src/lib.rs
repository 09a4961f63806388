//! Placement for the services: the [`PlacementService`] trait they call
//! (through a [`PlacementHandle`]), and its implementations —
//! [`SqlPlacement`], nova-scheduler's Placement model kept in SQL
//! (SQLite, PostgreSQL, MySQL) with generation checks done atomically in
//! the database, so several schedulers and computes share it safely; and
//! [`MemoryPlacementService`], the same in memory.
//!
//! ```
//! use std::collections::BTreeMap;
//! use nova_placement::PlacementHandle;
//! use nova_scheduler::placement::InventoryRecord;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let placement = PlacementHandle::memory();
//! let rp = placement.create_provider_async("rp-1", "cmp-1", None).await.unwrap();
//! let inv = BTreeMap::from([("VCPU".to_owned(), InventoryRecord::new(8))]);
//! let generation = placement.set_inventories_async(&rp.uuid, rp.generation, &inv).await.unwrap();
//! assert_eq!(generation, 1);
//! # });
//! ```
//!
//! Files: `service.rs` (the trait and the handle), `store.rs` (the SQL
//! store's logic), `sql.rs` (its statements), `schema.rs` (its tables),
//! `mirror.rs` (the in-memory copy candidates are computed on),
//! `memory.rs` (the in-memory implementation), `error.rs` (database
//! failures as Placement errors), `times.rs` (stored times behind
//! `Last-Modified`).

pub mod api;
mod client;
mod error;
mod memory;
mod mirror;
mod schema;
mod service;
pub mod session;
mod sql;
mod store;
mod times;

pub use client::{HttpPlacement, PlacementAuth};
pub use memory::MemoryPlacementService;
pub use service::{ConsumerGeneration, Custom, PlacementHandle, PlacementService};
pub use session::{KeystoneSession, ServiceAuth, TokenIssuer};
pub use store::{ALLOCATION_CONFLICT_RETRIES, SqlPlacement};
pub use times::{Stamped, Times};
