//! Nova's scheduler as a library: host states, nova's filters and weighers
//! with nova's semantics and math, and `select_destinations` with
//! alternates — no RPC, database or async runtime, so other orchestrators
//! can embed it.
//!
//! ```
//! use nova_scheduler::{HostState, Request, Scheduler, SchedulerConfig};
//!
//! let mut s = Scheduler::new(SchedulerConfig::default()).unwrap();
//! for (name, free) in [("cmp-1", 4096), ("cmp-2", 16384)] {
//!     let mut h = HostState::new(name);
//!     h.free_ram_mb = free;
//!     s.upsert_host(h);
//! }
//! let req = Request { instance_uuids: vec!["vm-1".into()], ..Request::default() };
//! let picks = s.select_destinations(&req).unwrap();
//! assert_eq!(picks[0][0].host, "cmp-2"); // most free RAM first
//! assert_eq!(picks[0][1].host, "cmp-1"); // the alternate
//! ```
#![deny(missing_docs)]

mod config;
mod error;
pub mod extra_specs_ops;
pub mod filters;
#[cfg(feature = "objects")]
pub mod from_objects;
mod host_state;
pub mod placement;
mod placement_scheduling;
mod request;
pub mod scenario;
mod scheduler;
pub mod weighers;

pub use config::{ALL_WEIGHERS, DEFAULT_FILTERS, SchedulerConfig};
pub use error::{Error, Result};
pub use host_state::{Aggregate, HostState, Inventory, ServiceInfo};
pub use placement_scheduling::COMPUTE_STATUS_DISABLED;
pub use request::{
    Destination, FlavorSpec, Request, ResourceRequest, STANDARD_CLASSES, ServerGroup,
};
pub use scenario::Scenario;
pub use scheduler::{Decision, FilterCount, Round, Scheduler, Selection, Weighed};
