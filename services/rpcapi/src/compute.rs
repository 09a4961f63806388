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
//!   `get_vnc_console`, `get_spice_console`, `get_serial_console`,
//!   `get_mks_console`, `validate_console_port`, `set_host_enabled`,
//!   `host_maintenance_mode`, `host_power_action`, `get_host_uptime`,
//!   `attach_interface`, `detach_interface`, `inject_network_info`; each
//!   also at 5.0).
//! * 6.0 also: the move operations (`crate::compute` methods below
//!   `terminate_instance`: resize, cold and live migration), nova's names,
//!   arguments and versions; the in-flight steps (`resize_instance`,
//!   `finish_resize`, `finish_revert_resize`, `pre_live_migration`,
//!   `live_migration`, `post_live_migration_at_destination`,
//!   `rollback_live_migration_at_destination`, `validate_console_port`)
//!   go to topic [`ALT_TOPIC`] when the cap allows 6.5, else to `compute`,
//!   as nova 34's `prepare_for_alt_rpcserver`.
//! * 5.2 — `unshelve_instance` takes `request_spec`.
//! * 5.12 — `rebuild_instance` takes `accel_uuids`.
//! * 5.13 — `shelve_instance`, `shelve_offload_instance`,
//!   `unshelve_instance` take `accel_uuids`.
//! * 6.0 also: `rebuild_instance`, `snapshot_instance`, `backup_instance`,
//!   `shelve_instance`, `shelve_offload_instance`, `unshelve_instance`.
//! * 6.1 — `rebuild_instance` takes `reimage_boot_volume`.
//! * 6.2 — `rebuild_instance` takes `target_state` (evacuate to SHUTOFF).
//! * 6.5 — the server version Nova 34 runs (what our manager announces).

use nova_objects::{
    BlockDeviceMappingList, Flavor, Instance, InstanceExternalEvent, LibvirtLiveMigrateData,
    Migration, NetworkRequestList, RequestSpec, Selection,
};
use nova_rpc::{RequestContext, Version};
use serde_json::Value;

/// The topic.
pub const TOPIC: &str = "compute";
/// The second topic every compute serves (nova 34's `RPC_TOPIC_ALT`): the
/// steps of operations already under way are sent there, and a compute
/// that is shutting down stops its `compute` server first and keeps this
/// one until the end, so those operations can finish.
pub const ALT_TOPIC: &str = "compute-alt";
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

    // -- Moves (resize, cold and live migration; `moves` in the compute crate).

    /// Resize/cold migration on the destination: claims the new flavor
    /// and casts [`Compute::resize_instance`] to the source; a failure
    /// reverts the allocations and reschedules through the conductor.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn prep_resize(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] image: Value,
        flavor: Flavor,
        #[rpc(default)] request_spec: Option<RequestSpec>,
        #[rpc(default)] filter_properties: Value,
        #[rpc(default)] node: Option<String>,
        #[rpc(default)] clean_shutdown: Option<bool>,
        migration: Migration,
        #[rpc(default)] host_list: Option<Vec<Selection>>,
    );

    /// Resize/cold migration on the source: powers the guest off, hands
    /// the instance to the destination, casts [`Compute::finish_resize`].
    #[rpc(
        cast,
        server,
        version = "6.0",
        min = "5.0",
        alt_topic = "compute-alt",
        alt_since = "6.5"
    )]
    async fn resize_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration: Migration,
        #[rpc(default)] image: Value,
        flavor: Flavor,
        #[rpc(default)] clean_shutdown: Option<bool>,
        #[rpc(default, since = "5.2")] request_spec: Option<RequestSpec>,
    );

    /// Resize/cold migration on the destination: starts the guest with the
    /// new flavor; the instance ends in `resized`.
    #[rpc(
        cast,
        server,
        version = "6.0",
        min = "5.0",
        alt_topic = "compute-alt",
        alt_since = "6.5"
    )]
    async fn finish_resize(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration: Migration,
        #[rpc(default)] image: Value,
        #[rpc(default)] disk_info: Value,
        #[rpc(default, since = "5.2")] request_spec: Option<RequestSpec>,
    );

    /// Confirms a resize on the source: the old guest and the migration's
    /// allocation go.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn confirm_resize(&self, ctx: RequestContext, instance: Instance, migration: Migration);

    /// Reverts a resize on the destination: the new guest goes, then
    /// [`Compute::finish_revert_resize`] on the source.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn revert_resize(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration: Migration,
        #[rpc(default, since = "5.2")] request_spec: Option<RequestSpec>,
    );

    /// Reverts a resize on the source: old flavor, host and allocations
    /// back, the guest started as it was.
    #[rpc(
        cast,
        server,
        version = "6.0",
        min = "5.0",
        alt_topic = "compute-alt",
        alt_since = "6.5"
    )]
    async fn finish_revert_resize(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration: Migration,
        #[rpc(default, since = "5.2")] request_spec: Option<RequestSpec>,
    );

    /// Live migration: the destination's checks; answers the migrate data.
    /// Sent with `long_rpc_timeout`, as nova does.
    #[rpc(call, server, long, version = "6.0", min = "5.0")]
    async fn check_can_live_migrate_destination(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] block_migration: Option<bool>,
        #[rpc(default)] disk_over_commit: Option<bool>,
        #[rpc(default, since = "5.3")] migration: Option<Migration>,
        #[rpc(default, since = "5.3")] limits: Value,
    ) -> LibvirtLiveMigrateData;

    /// Live migration: the source's checks of the destination's data.
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn check_can_live_migrate_source(
        &self,
        ctx: RequestContext,
        instance: Instance,
        dest_check_data: LibvirtLiveMigrateData,
    ) -> LibvirtLiveMigrateData;

    /// Live migration: the destination prepares to receive the guest
    /// (`long_rpc_timeout`).
    #[rpc(
        call,
        server,
        long,
        version = "6.0",
        min = "6.0",
        alt_topic = "compute-alt",
        alt_since = "6.5"
    )]
    async fn pre_live_migration(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] disk: Value,
        #[rpc(default)] migrate_data: Option<LibvirtLiveMigrateData>,
    ) -> LibvirtLiveMigrateData;

    /// Live migration, run on the source.
    #[rpc(
        cast,
        server,
        version = "6.0",
        min = "5.0",
        alt_topic = "compute-alt",
        alt_since = "6.5"
    )]
    async fn live_migration(
        &self,
        ctx: RequestContext,
        instance: Instance,
        dest: String,
        #[rpc(default)] block_migration: Option<bool>,
        #[rpc(default)] migration: Option<Migration>,
        #[rpc(default)] migrate_data: Option<LibvirtLiveMigrateData>,
    );

    /// Live migration: the destination takes the instance over
    /// (`long_rpc_timeout`).
    #[rpc(
        call,
        server,
        long,
        version = "6.0",
        min = "5.0",
        alt_topic = "compute-alt",
        alt_since = "6.5"
    )]
    async fn post_live_migration_at_destination(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] block_migration: Option<bool>,
    );

    /// Live migration failed: the destination drops what it prepared.
    #[rpc(
        cast,
        server,
        version = "6.0",
        min = "5.0",
        alt_topic = "compute-alt",
        alt_since = "6.5"
    )]
    async fn rollback_live_migration_at_destination(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] destroy_disks: Option<bool>,
        #[rpc(default)] migrate_data: Option<LibvirtLiveMigrateData>,
    );

    /// Completes a running live migration now (the guest paused).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn live_migration_force_complete(&self, ctx: RequestContext, instance: Instance);

    /// Aborts a live migration (running, queued or preparing).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn live_migration_abort(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration_id: i64,
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
    /// Events from other services (`os-server-external-events`: Neutron's
    /// `network-vif-plugged`, ...) for instances on this host.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn external_instance_event(
        &self,
        ctx: RequestContext,
        instances: Vec<Instance>,
        events: Vec<InstanceExternalEvent>,
    );

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

    /// Hot-plugs a network interface: the port `port_id`, or a new port on
    /// `network_id` (with `requested_ip`), bound to this host and attached
    /// by the driver; returns its network info VIF (nova's network model
    /// as a dict). `tag`: the device's tag (2.49).
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn attach_interface(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] network_id: Option<String>,
        #[rpc(default)] port_id: Option<String>,
        #[rpc(default)] requested_ip: Option<String>,
        #[rpc(default)] tag: Option<String>,
    ) -> Value;

    /// Hot-unplugs the interface of port `port_id`; the port is deleted
    /// when nova made it, else unbound.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn detach_interface(&self, ctx: RequestContext, instance: Instance, port_id: String);

    /// Adds a fixed IP from network `network_id` to the instance's port
    /// on it and refreshes its network info (nova's multinic
    /// `addFixedIp`, to 2.43).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn add_fixed_ip_to_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        network_id: String,
    );

    /// Releases the instance's fixed IP `address` from its port and
    /// refreshes its network info (`removeFixedIp`, to 2.43).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn remove_fixed_ip_from_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        address: String,
    );

    /// Refreshes the instance's network info cache from the network
    /// service and has the driver inject it into the guest (nova's
    /// `inject_network_info`; no instance action).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn inject_network_info(&self, ctx: RequestContext, instance: Instance);

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

    // Rebuild (nova's compute rpcapi name, arguments and versions).

    /// Rebuilds (`recreate` false: same host, new image) or evacuates
    /// (`recreate` true: on this host, from a failed one) an instance.
    #[rpc(cast, server, version = "6.2", min = "5.0")]
    async fn rebuild_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] new_pass: Option<String>,
        #[rpc(default)] injected_files: Option<Vec<Value>>,
        #[rpc(default)] image_ref: Option<String>,
        #[rpc(default)] orig_image_ref: Option<String>,
        #[rpc(default)] orig_sys_metadata: Value,
        #[rpc(default)] bdms: Option<BlockDeviceMappingList>,
        #[rpc(default)] recreate: bool,
        #[rpc(default)] on_shared_storage: Option<bool>,
        #[rpc(default)] preserve_ephemeral: bool,
        #[rpc(default)] migration: Option<Migration>,
        #[rpc(default)] scheduled_node: Option<String>,
        #[rpc(default)] limits: Value,
        #[rpc(default)] request_spec: Option<RequestSpec>,
        #[rpc(default, since = "5.12")] accel_uuids: Option<Vec<String>>,
        #[rpc(default, since = "6.1")] reimage_boot_volume: Option<bool>,
        #[rpc(default, since = "6.2", needed)] target_state: Option<String>,
    );

    /// Snapshots the instance's root disk into image `image_id` (which
    /// the API created, queued).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn snapshot_instance(&self, ctx: RequestContext, instance: Instance, image_id: String);

    /// A backup: a snapshot into `image_id`, then the oldest backups of
    /// `backup_type` beyond `rotation` deleted.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn backup_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        image_id: String,
        backup_type: String,
        rotation: i64,
    );

    /// Shelves: powers off, snapshots into `image_id`, SHELVED; offloaded
    /// at once when `shelved_offload_time` is 0.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn shelve_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] image_id: Option<String>,
        #[rpc(default)] clean_shutdown: Option<bool>,
        #[rpc(default, since = "5.13")] accel_uuids: Option<Vec<String>>,
    );

    /// Offloads a shelved instance: the guest destroyed, the host's
    /// allocation freed, host and node cleared (SHELVED_OFFLOADED).
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn shelve_offload_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] clean_shutdown: Option<bool>,
        #[rpc(default, since = "5.13")] accel_uuids: Option<Vec<String>>,
    );

    /// Spawns an offloaded instance here from its shelved image (then
    /// deleted); the conductor scheduled it and claimed.
    #[rpc(cast, server, version = "6.0", min = "5.0")]
    async fn unshelve_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] image: Value,
        #[rpc(default)] filter_properties: Value,
        #[rpc(default)] node: Option<String>,
        #[rpc(default, since = "5.2")] request_spec: Option<RequestSpec>,
        #[rpc(default, since = "5.13")] accel_uuids: Option<Vec<String>>,
    );
    // Remote consoles: each authorizes a `ConsoleAuthToken` on the host
    // and answers nova's connection-info dict (`token`, `access_url`,
    // `host`, `port`, `internal_access_path`[, `tls_port`]).

    /// A noVNC console (`console_type` `novnc`).
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn get_vnc_console(
        &self,
        ctx: RequestContext,
        instance: Instance,
        console_type: String,
    ) -> Value;

    /// A SPICE console (`spice-html5`, `spice-direct`).
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn get_spice_console(
        &self,
        ctx: RequestContext,
        instance: Instance,
        console_type: String,
    ) -> Value;

    /// A serial console (`serial`).
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn get_serial_console(
        &self,
        ctx: RequestContext,
        instance: Instance,
        console_type: String,
    ) -> Value;

    /// An MKS console (`webmks`; refused unless `[mks] enabled`).
    #[rpc(call, server, version = "6.0", min = "5.0")]
    async fn get_mks_console(
        &self,
        ctx: RequestContext,
        instance: Instance,
        console_type: String,
    ) -> Value;

    /// Whether the instance's console of `console_type` is still on
    /// `port` (a string, as nova's proxies send it). Sent to topic
    /// `compute-alt` from 6.5, as nova 34's client does.
    #[rpc(
        call,
        server,
        version = "6.0",
        min = "5.0",
        alt_topic = "compute-alt",
        alt_since = "6.5"
    )]
    async fn validate_console_port(
        &self,
        ctx: RequestContext,
        instance: Instance,
        port: String,
        console_type: String,
    ) -> bool;

    // The host-level calls of `os-hosts` and `os-hypervisors/{id}/uptime`.

    /// Lets the host take new instances or not; answers the driver's
    /// `"enabled"` / `"disabled"` (`long_rpc_timeout`).
    #[rpc(call, server, long, version = "6.0", min = "5.0")]
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
