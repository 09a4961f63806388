//! nova-compute: the compute manager over a [`ComputeDriver`](nova_virt::ComputeDriver).
//!
//! * [`manager`]: RPC (topic `compute`, server = host, 6.5; the
//!   [`nova_rpcapi::compute::Compute`] interface): `build_and_run_instance`,
//!   `terminate_instance`, `reboot_instance`, `stop_instance`,
//!   `start_instance`, `pause_instance`, `unpause_instance`,
//!   `suspend_instance`, `resume_instance`, `set_admin_password`,
//!   `trigger_crash_dump`, `get_console_output`, `rescue_instance`,
//!   `unrescue_instance`, `soft_delete_instance`, `restore_instance`,
//!   `get_diagnostics`, `get_instance_diagnostics` (`diagnostics.rs`:
//!   nova's `Diagnostics` object or the driver's dict), `attach_interface`,
//!   `detach_interface`, `add_fixed_ip_to_instance`,
//!   `remove_fixed_ip_from_instance` (`interfaces.rs`), plus the base API;
//!   each action an event of its request's instance action (the
//!   multinic changes have none, as in nova).
//! * `actions`: those actions' states and failures, and the
//!   `reclaim_instance_interval` periodic task.
//! * `rebuild`: `rebuild_instance` (rebuild on this host, or an
//!   evacuation to it).
//! * `shelve`: `snapshot_instance`, `backup_instance` (rotation),
//!   `shelve_instance`, `shelve_offload_instance`, `unshelve_instance`,
//!   the `shelved_offload_time` periodic task; `images`: the image API
//!   client they upload and delete images with.
//! * [`resource_tracker`]: the ComputeNode record and the Placement
//!   provider (inventories, traits) at start, on change and every
//!   `update_resources_interval` (60 s); claims on build, released on
//!   failure and delete.
//! * `healing`: allocations of instances deleted behind this host's back
//!   removed every `update_resources_interval`, and the
//!   `instance_build_timeout` watchdog.
//! * [`power_sync`] (`sync_power_state_interval`, 600 s) and [`recovery`]
//!   at start-up: instances left in transitional states end in a stable one.
//! * `usage_audit`: the periodic instance usage audit
//!   (`instance_usage_audit`, `instance.exists` per completed period, the
//!   task log).
//! * [`driver`]: the hypervisor `[DEFAULT] compute_driver` names.
//! * No database: objects go through the conductor ([`nova_objects::ConductorStore`]);
//!   Placement is reached through its own store (`[placement_database]`).
//!
//! Every build ends in `active`, or `error` with a fault, or is handed to
//! the conductor for a reschedule on the next alternate — with its
//! Placement allocation released first.

mod actions;
mod config;
mod consoles;
mod device_tags;
mod diagnostics;
mod driver;
mod group_policy;
mod healing;
mod host_ops;
mod image_cache;
mod images;
mod instance_events;
mod interfaces;
pub mod manager;
mod moves;
mod network;
pub mod power_sync;
mod rebuild;
pub mod recovery;
pub mod resource_tracker;
pub mod service;
mod shelve;
mod spawn;
mod usage_audit;

pub use config::ComputeConfig;
#[cfg(feature = "libvirt")]
pub use driver::libvirt_config;
pub use driver::{driver_from_conf, fake_driver, instances_path_for, peer_host};
pub use image_cache::ImageCache;
pub use manager::{ComputeManager, Started, wait_for_conductor};
pub use resource_tracker::USAGE_FLUSH;
pub use service::{ComputeService, run, start};
