//! nova-compute's RPC interface (`nova/compute/rpcapi.py`), defined once:
//! the [`Compute`] trait is what the compute manager implements, and
//! [`ComputeApi`] is its typed client.
//!
//! Topic `compute`, one server per host (`compute.<host>`), no namespace.
//! The manager serves 6.x; each method sends 6.0 and falls back to the
//! 5.x version nova's client would send under `[upgrade_levels] compute`.
//!
//! Version history (the methods this project implements):
//! * 5.0 — Queens … Stein: the 5.x interface.
//! * 5.11 — Victoria: `build_and_run_instance` takes `accel_uuids`.
//! * 6.0 — Wallaby: the 6.x interface (`build_and_run_instance` with
//!   `host_list`, `accel_uuids`; `terminate_instance(instance, bdms)`;
//!   `reboot_instance`, `stop_instance`, `start_instance`, `pause_instance`,
//!   `unpause_instance`, `suspend_instance`, `resume_instance`,
//!   `set_admin_password`, `trigger_crash_dump`, `get_console_output`,
//!   `rescue_instance`, `unrescue_instance`, `soft_delete_instance`,
//!   `restore_instance`, `get_diagnostics`, `get_instance_diagnostics`,
//!   `set_host_enabled`, `host_maintenance_mode`, `host_power_action`,
//!   `get_host_uptime`; each also at 5.0).
//! * 6.5 — the server version Nova 34 runs (what our manager announces).

use nova_objects::{BlockDeviceMappingList, Instance, NetworkRequestList, RequestSpec, Selection};
use nova_rpc::{RequestContext, Version};
use serde_json::Value;

/// The topic.
pub const TOPIC: &str = "compute";
/// What the manager implements.
pub const SERVER_VERSION: Version = Version::new(6, 5);
/// `[upgrade_levels] compute` release names (nova's `VERSION_ALIASES`).
pub const VERSION_ALIASES: &[(&str, Version)] = &[
    ("queens", Version::new(5, 0)),
    ("rocky", Version::new(5, 0)),
    ("stein", Version::new(5, 1)),
    ("train", Version::new(5, 3)),
    ("ussuri", Version::new(5, 11)),
    ("victoria", Version::new(5, 12)),
    ("wallaby", Version::new(6, 0)),
    ("xena", Version::new(6, 0)),
    ("yoga", Version::new(6, 0)),
    ("zed", Version::new(6, 1)),
    ("antelope", Version::new(6, 2)),
    ("bobcat", Version::new(6, 2)),
    ("caracal", Version::new(6, 3)),
    ("dalmatian", Version::new(6, 3)),
    ("epoxy", Version::new(6, 4)),
    ("flamingo", Version::new(6, 4)),
    ("gazpacho", Version::new(6, 5)),
];

/// nova-compute's RPC interface (the methods this project implements).
#[nova_rpc::interface(topic = TOPIC, version = SERVER_VERSION, client = ComputeApi)]
pub trait Compute {
    /// Builds and starts an instance the scheduler placed here; the
    /// remaining alternates in `host_list` are for a reschedule.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn build_and_run_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] image: Value,
        #[rpc(default)] request_spec: Option<RequestSpec>,
        #[rpc(default)] filter_properties: Value,
        #[rpc(default)] admin_password: Option<String>,
        #[rpc(default)] injected_files: Option<Vec<Value>>,
        #[rpc(default)] requested_networks: Option<NetworkRequestList>,
        #[rpc(default)] security_groups: Option<Vec<String>>,
        #[rpc(default)] block_device_mapping: Option<BlockDeviceMappingList>,
        #[rpc(default)] node: Option<String>,
        #[rpc(default)] limits: Value,
        #[rpc(default)] host_list: Option<Vec<Selection>>,
        #[rpc(default, since = "5.11")] accel_uuids: Option<Vec<String>>,
    );

    /// Destroys an instance and frees what it held.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn terminate_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] bdms: Option<BlockDeviceMappingList>,
    );

    /// Reboots an instance (`reboot_type` `SOFT` or `HARD`).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn reboot_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] block_device_info: Value,
        reboot_type: String,
    );

    /// Powers an instance off (`clean_shutdown`: let the guest shut down first).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn stop_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] clean_shutdown: Option<bool>,
    );

    /// Powers an instance on.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn start_instance(&self, ctx: RequestContext, instance: Instance);

    /// The instance's diagnostics in its driver's own format (a dict;
    /// the API before 2.48). Refused (`InstanceInvalidState`) unless the
    /// instance is running.
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn get_diagnostics(&self, ctx: RequestContext, instance: Instance) -> Value;

    /// The instance's standardized diagnostics: a `Diagnostics` (1.0)
    /// object primitive (the API from 2.48). Refused as
    /// [`Compute::get_diagnostics`].
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn get_instance_diagnostics(&self, ctx: RequestContext, instance: Instance) -> Value;
    /// Pauses an instance (the guest's vCPUs stop; memory stays).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn pause_instance(&self, ctx: RequestContext, instance: Instance);

    /// Unpauses a paused instance.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn unpause_instance(&self, ctx: RequestContext, instance: Instance);

    /// Suspends an instance (its memory saved to disk).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn suspend_instance(&self, ctx: RequestContext, instance: Instance);

    /// Resumes a suspended instance.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn resume_instance(&self, ctx: RequestContext, instance: Instance);

    /// Sets the guest's admin password (a call: the API answers with the
    /// outcome).
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn set_admin_password(&self, ctx: RequestContext, instance: Instance, new_pass: String);

    /// Triggers a crash dump in the guest (an NMI).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn trigger_crash_dump(&self, ctx: RequestContext, instance: Instance);

    /// The guest's console log, its last `tail_length` lines when given.
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn get_console_output(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] tail_length: Option<i64>,
    ) -> String;

    /// Boots the instance from a rescue image, its own disk attached.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn rescue_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] rescue_password: Option<String>,
        #[rpc(default)] rescue_image_ref: Option<String>,
        #[rpc(default)] clean_shutdown: Option<bool>,
    );

    /// Boots the instance from its own disk again.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn unrescue_instance(&self, ctx: RequestContext, instance: Instance);

    /// Powers a soft-deleted instance off (it stays on the host until
    /// reclaimed or restored).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn soft_delete_instance(&self, ctx: RequestContext, instance: Instance);

    /// Brings a soft-deleted instance back.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn restore_instance(&self, ctx: RequestContext, instance: Instance);

    // The host-level calls of `os-hosts` and `os-hypervisors/{id}/uptime`.

    /// Lets the host take new instances or not; answers the driver's
    /// `"enabled"` / `"disabled"`.
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn set_host_enabled(&self, ctx: RequestContext, enabled: bool) -> String;

    /// Starts or stops the host's maintenance window; answers the
    /// driver's `"on_maintenance"` / `"off_maintenance"`.
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn host_maintenance_mode(&self, ctx: RequestContext, host: String, mode: bool) -> String;

    /// Reboots, shuts down or starts up the host (`action`); answers the
    /// action done.
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn host_power_action(&self, ctx: RequestContext, action: String) -> String;

    /// The host's uptime as the driver reports it (`uptime`'s output).
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn get_host_uptime(&self, ctx: RequestContext) -> String;
}
