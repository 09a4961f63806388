//! nova-scheduler: serves `select_destinations` (topic `scheduler`, 4.5)
//! with nova-scheduler's filters and weighers, claiming in the SQL
//! Placement store.
//!
//! Host states come from the ComputeNode and Service tables, reloaded
//! every [`HOST_REFRESH`] by a background task (and once more, with the
//! Placement mirror, before answering NoValidHost; and before placing,
//! when Placement proposes a compute node the view does not have yet), so
//! requests never wait for a thousand nodes to load, and a compute that
//! registered a moment ago is already a candidate. Between reloads the scheduler consumes
//! what it placed from its own view, as nova's HostState does.

mod manager;
mod members;
mod move_claims;
pub mod service;

pub use manager::{HOST_REFRESH, SchedulerManager, scheduler_config, selection_object, serve};
pub use service::{run, start};
