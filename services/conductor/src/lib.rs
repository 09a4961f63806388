//! nova-conductor.
//!
//! * `schedule_and_build_instances` (compute_task 1.17): asks the
//!   scheduler for hosts with alternates; on NoValidHost buries every
//!   instance in cell0 in `error` with a fault; otherwise maps each
//!   instance to cell1, drops its BuildRequest and casts
//!   `build_and_run_instance` to the chosen compute with the alternates.
//! * `build_instances` (the reschedule path): counts the attempt; past
//!   `[scheduler] max_attempts` the instance goes to `error`
//!   ("Exceeded maximum number of retries"); otherwise claims the next
//!   alternate's allocation in Placement (skipping those that no longer
//!   fit) and casts the build there; with none left, `error`
//!   ("Exhausted all hosts available for retrying build failures").
//! * The object indirection API (3.0) for computes, which have no
//!   database credentials.

mod groups;
mod manager;
pub mod service;

pub use groups::group_hosts;
pub use manager::{Conductor, parse_allocation_request, serve};
pub use service::{run, start};
