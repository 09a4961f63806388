//! nova-conductor's RPC interfaces (`nova/conductor/rpcapi.py`).
//!
//! Topic `conductor`. Two endpoints: the object indirection API (no
//! namespace, 3.0; served by `nova_objects::conductor_object_endpoint`,
//! called by `nova_objects::ConductorStore`) and the compute-task API
//! (namespace `compute_task`, 1.26), defined once here: [`ComputeTask`]
//! is what the conductor implements, [`ComputeTaskApi`] its typed client.
//!
//! compute_task version history (the methods implemented here):
//! * 1.10 — `build_instances` takes `request_spec` as a primitive.
//! * 1.16 — `schedule_and_build_instances`.
//! * 1.17 — `schedule_and_build_instances` takes `tags`.
//! * 1.19 — `build_instances` takes `host_lists` (alternates); nova's
//!   client sends 1.18 without them, 1.10 without `request_spec`.
//! * 1.13 — `migrate_server` takes `request_spec`; 1.20 `host_list`
//!   (a move's alternates, for a reschedule).
//! * 1.3 — `unshelve_instance`; 1.14 with `request_spec`.
//! * 1.8 — `rebuild_instance`; 1.12 with `request_spec`; 1.24 with
//!   `reimage_boot_volume`; 1.25 with `target_state`.
//! * 1.26 — what Nova 34 serves.

use nova_objects::{
    BlockDeviceMappingList, BuildRequest, Flavor, Instance, NetworkRequestList, RawObject,
    RequestSpec, Selection,
};
use nova_rpc::{RequestContext, Version};
use serde_json::Value;

/// The topic.
pub const TOPIC: &str = "conductor";
/// The compute-task namespace.
pub const COMPUTE_TASK_NAMESPACE: &str = "compute_task";
/// What the compute-task endpoint implements.
pub const COMPUTE_TASK_VERSION: Version = Version::new(1, 26);

/// The conductor's compute-task interface.
#[nova_rpc::interface(
    topic = TOPIC,
    namespace = COMPUTE_TASK_NAMESPACE,
    version = COMPUTE_TASK_VERSION,
    client = ComputeTaskApi
)]
pub trait ComputeTask {
    /// Schedules new instances (one BuildRequest and RequestSpec each) and
    /// casts each build to its host; buries them in cell0 when no host fits.
    #[rpc(cast, version = "1.17", min = "1.16")]
    async fn schedule_and_build_instances(
        &self,
        ctx: RequestContext,
        build_requests: Vec<BuildRequest>,
        request_specs: Vec<RequestSpec>,
        #[rpc(default)] image: Value,
        #[rpc(default)] admin_password: Option<String>,
        #[rpc(default)] injected_files: Option<Vec<Value>>,
        #[rpc(default)] requested_networks: Option<NetworkRequestList>,
        #[rpc(default)] block_device_mapping: Option<BlockDeviceMappingList>,
        #[rpc(default, since = "1.17")] tags: Option<RawObject>,
    );

    /// Moves an instance: a resize or cold migration (`live` false:
    /// schedules, then `prep_resize` on the destination; with `host_list`
    /// a reschedule on those alternates), or a live migration (`live`:
    /// the destination checked, then `live_migration` on the source).
    /// Nova's API casts it (`do_cast=True`).
    #[rpc(cast, version = "1.20", min = "1.13")]
    async fn migrate_server(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default)] scheduler_hint: Value,
        live: bool,
        #[rpc(default)] rebuild: bool,
        #[rpc(default)] flavor: Option<Flavor>,
        #[rpc(default)] block_migration: Value,
        #[rpc(default)] disk_over_commit: Value,
        #[rpc(default)] reservations: Value,
        #[rpc(default)] clean_shutdown: Option<bool>,
        #[rpc(default)] request_spec: Option<RequestSpec>,
        #[rpc(default, since = "1.20")] host_list: Option<Vec<Selection>>,
    );

    /// The reschedule path: builds `instances` again on their next
    /// alternates (`host_lists`), or puts them in error.
    #[rpc(cast, version = "1.19", min = "1.10")]
    async fn build_instances(
        &self,
        ctx: RequestContext,
        instances: Vec<Instance>,
        #[rpc(default)] image: Value,
        #[rpc(default)] filter_properties: Value,
        #[rpc(default)] admin_password: Option<String>,
        #[rpc(default)] injected_files: Option<Vec<Value>>,
        #[rpc(default)] requested_networks: Option<NetworkRequestList>,
        #[rpc(default)] security_groups: Option<Vec<String>>,
        #[rpc(default, since = "1.10")] request_spec: Option<RequestSpec>,
        #[rpc(default, since = "1.19")] host_lists: Option<Vec<Vec<Selection>>>,
    );

    /// Rebuilds an instance on its host (`host` given), through the
    /// scheduler's rebuild check (`host` none: a new image), or evacuates
    /// it (`recreate`: a host chosen by the scheduler, or `host`).
    #[rpc(cast, version = "1.25", min = "1.8")]
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
        #[rpc(default)] host: Option<String>,
        #[rpc(default, since = "1.12")] request_spec: Option<RequestSpec>,
        #[rpc(default, since = "1.24")] reimage_boot_volume: Option<bool>,
        #[rpc(default, since = "1.25", needed)] target_state: Option<String>,
    );

    /// Unshelves a shelved instance: a SHELVED one is powered on where it
    /// is; an offloaded one is scheduled again (the spec's availability
    /// zone or requested destination), claimed and spawned.
    #[rpc(cast, version = "1.14", min = "1.3")]
    async fn unshelve_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        #[rpc(default, since = "1.14")] request_spec: Option<RequestSpec>,
    );
}
