//! The conductor alone: a memory transport, SQLite in memory, in-memory
//! Placement, and test doubles of the scheduler and of computes
//! that implement the same `Scheduler` and `Compute` traits as the real
//! managers. No cluster.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_conductor::Conductor;
use nova_objects::db::{Database, DbConfig};
use nova_objects::{
    BlockDeviceMappingList, BuildRequest, Flavor, Instance, InstanceFault, InstanceMapping,
    ListQuery, Lookup, NetworkRequestList, ObjectStore, Objects, RequestSpec, SaveOptions,
    Selection,
};
use nova_placement::PlacementHandle;
use nova_rpc::{
    Dispatcher, MemoryConfig, MemoryTransport, RemoteError, RequestContext, RpcServer, Target,
    Transport,
};
use nova_rpcapi::compute::Compute;
use nova_rpcapi::conductor::ComputeTaskApi;
use nova_rpcapi::scheduler::{Destinations, Scheduler};
use nova_scheduler::placement::InventoryRecord;
use nova_service::cells::CELL0_UUID;
use nova_service::states::{TaskState, VmState};
use serde_json::{Value, json};

fn ctx() -> RequestContext {
    nova_service::context::admin()
}

/// A scheduler that answers what the test says, after `delay`.
#[derive(Debug, Default)]
struct TestScheduler {
    answer: Mutex<Option<Result<Vec<Vec<Selection>>, String>>>,
    delay: Mutex<Duration>,
}

impl Scheduler for TestScheduler {
    async fn select_destinations(
        &self,
        _ctx: RequestContext,
        _spec_obj: RequestSpec,
        _instance_uuids: Vec<String>,
        _return_objects: bool,
        _return_alternates: bool,
    ) -> Result<Destinations, RemoteError> {
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        match self.answer.lock().unwrap().clone() {
            Some(Ok(s)) => Ok(Destinations::Selections(s)),
            Some(Err(reason)) => Err(RemoteError::new(
                "NoValidHost",
                "nova.exception",
                format!("No valid host was found. {reason}"),
            )),
            None => Ok(Destinations::Selections(vec![])),
        }
    }
}

/// A build a compute received: host, instance, filter properties, alternates.
type Built = (String, Instance, Value, Vec<Selection>);

/// A compute that records builds.
#[derive(Debug)]
struct TestCompute {
    host: String,
    builds: Arc<Mutex<Vec<Built>>>,
}

impl Compute for TestCompute {
    async fn build_and_run_instance(
        &self,
        _ctx: RequestContext,
        instance: Instance,
        _image: Value,
        _request_spec: Option<RequestSpec>,
        filter_properties: Value,
        _admin_password: Option<String>,
        _injected_files: Option<Vec<Value>>,
        _requested_networks: Option<NetworkRequestList>,
        _security_groups: Option<Vec<String>>,
        _block_device_mapping: Option<BlockDeviceMappingList>,
        _node: Option<String>,
        _limits: Value,
        host_list: Option<Vec<Selection>>,
        _accel_uuids: Option<Vec<String>>,
    ) -> Result<(), RemoteError> {
        self.builds.lock().unwrap().push((
            self.host.clone(),
            instance,
            filter_properties,
            host_list.unwrap_or_default(),
        ));
        Ok(())
    }

    async fn terminate_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _bdms: Option<BlockDeviceMappingList>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn external_instance_event(
        &self,
        _ctx: RequestContext,
        _instances: Vec<Instance>,
        _events: Vec<nova_objects::InstanceExternalEvent>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    // -- Moves: this double takes none (the cluster tests drive them).
    async fn prep_resize(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _image: Value,
        _flavor: Flavor,
        _request_spec: Option<RequestSpec>,
        _filter_properties: Value,
        _node: Option<String>,
        _clean_shutdown: Option<bool>,
        _migration: nova_objects::Migration,
        _host_list: Option<Vec<Selection>>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn resize_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _migration: nova_objects::Migration,
        _image: Value,
        _flavor: Flavor,
        _clean_shutdown: Option<bool>,
        _request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn finish_resize(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _migration: nova_objects::Migration,
        _image: Value,
        _disk_info: Value,
        _request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn confirm_resize(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _migration: nova_objects::Migration,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn revert_resize(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _migration: nova_objects::Migration,
        _request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn finish_revert_resize(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _migration: nova_objects::Migration,
        _request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn check_can_live_migrate_destination(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _block_migration: Option<bool>,
        _disk_over_commit: Option<bool>,
        _migration: Option<nova_objects::Migration>,
        _limits: Value,
    ) -> Result<nova_objects::LibvirtLiveMigrateData, RemoteError> {
        Ok(Default::default())
    }
    async fn check_can_live_migrate_source(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        dest_check_data: nova_objects::LibvirtLiveMigrateData,
    ) -> Result<nova_objects::LibvirtLiveMigrateData, RemoteError> {
        Ok(dest_check_data)
    }
    async fn pre_live_migration(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _disk: Value,
        migrate_data: Option<nova_objects::LibvirtLiveMigrateData>,
    ) -> Result<nova_objects::LibvirtLiveMigrateData, RemoteError> {
        Ok(migrate_data.unwrap_or_default())
    }
    async fn live_migration(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _dest: String,
        _block_migration: Option<bool>,
        _migration: Option<nova_objects::Migration>,
        _migrate_data: Option<nova_objects::LibvirtLiveMigrateData>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn post_live_migration_at_destination(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _block_migration: Option<bool>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn rollback_live_migration_at_destination(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _destroy_disks: Option<bool>,
        _migrate_data: Option<nova_objects::LibvirtLiveMigrateData>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn live_migration_force_complete(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn live_migration_abort(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _migration_id: i64,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn reboot_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _block_device_info: Value,
        _reboot_type: String,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn stop_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _clean_shutdown: Option<bool>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn start_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn get_diagnostics(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<Value, RemoteError> {
        Err(RemoteError::new(
            "NotImplementedError",
            "builtins",
            "test compute",
        ))
    }

    async fn get_instance_diagnostics(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<Value, RemoteError> {
        Err(RemoteError::new(
            "NotImplementedError",
            "builtins",
            "test compute",
        ))
    }

    async fn pause_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn unpause_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn suspend_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn resume_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn trigger_crash_dump(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn inject_network_info(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn add_fixed_ip_to_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _network_id: String,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn remove_fixed_ip_from_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _address: String,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn attach_interface(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _network_id: Option<String>,
        _port_id: Option<String>,
        _requested_ip: Option<String>,
        _tag: Option<String>,
    ) -> Result<Value, RemoteError> {
        Err(RemoteError::internal("NotImplementedError", "test compute"))
    }

    async fn detach_interface(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _port_id: String,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn unrescue_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn soft_delete_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn restore_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn get_vnc_console(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _console_type: String,
    ) -> Result<Value, RemoteError> {
        Err(RemoteError::new(
            "NotImplementedError",
            "builtins",
            "test compute",
        ))
    }

    async fn get_spice_console(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _console_type: String,
    ) -> Result<Value, RemoteError> {
        Err(RemoteError::new(
            "NotImplementedError",
            "builtins",
            "test compute",
        ))
    }

    async fn get_serial_console(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _console_type: String,
    ) -> Result<Value, RemoteError> {
        Err(RemoteError::new(
            "NotImplementedError",
            "builtins",
            "test compute",
        ))
    }

    async fn get_mks_console(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _console_type: String,
    ) -> Result<Value, RemoteError> {
        Err(RemoteError::new(
            "NotImplementedError",
            "builtins",
            "test compute",
        ))
    }

    async fn validate_console_port(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _port: String,
        _console_type: String,
    ) -> Result<bool, RemoteError> {
        Ok(false)
    }

    async fn set_admin_password(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _new_pass: String,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn get_console_output(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _tail_length: Option<i64>,
    ) -> Result<String, RemoteError> {
        Ok(String::new())
    }

    async fn rescue_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _rescue_password: Option<String>,
        _rescue_image_ref: Option<String>,
        _clean_shutdown: Option<bool>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    /// Recorded as a build whose filter properties say `rebuild`.
    async fn rebuild_instance(
        &self,
        _ctx: RequestContext,
        instance: Instance,
        _new_pass: Option<String>,
        _injected_files: Option<Vec<Value>>,
        image_ref: Option<String>,
        _orig_image_ref: Option<String>,
        _orig_sys_metadata: Value,
        _bdms: Option<BlockDeviceMappingList>,
        recreate: bool,
        _on_shared_storage: Option<bool>,
        _preserve_ephemeral: bool,
        _migration: Option<nova_objects::Migration>,
        scheduled_node: Option<String>,
        _limits: Value,
        _request_spec: Option<RequestSpec>,
        _accel_uuids: Option<Vec<String>>,
        _reimage_boot_volume: Option<bool>,
        _target_state: Option<String>,
    ) -> Result<(), RemoteError> {
        self.builds.lock().unwrap().push((
            self.host.clone(),
            instance,
            json!({"rebuild": {"image_ref": image_ref, "recreate": recreate, "node": scheduled_node}}),
            Vec::new(),
        ));
        Ok(())
    }

    async fn snapshot_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _image_id: String,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn backup_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _image_id: String,
        _backup_type: String,
        _rotation: i64,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn shelve_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _image_id: Option<String>,
        _clean_shutdown: Option<bool>,
        _accel_uuids: Option<Vec<String>>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn shelve_offload_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _clean_shutdown: Option<bool>,
        _accel_uuids: Option<Vec<String>>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    /// Recorded as a build whose filter properties say `unshelve`.
    async fn unshelve_instance(
        &self,
        _ctx: RequestContext,
        instance: Instance,
        image: Value,
        _filter_properties: Value,
        node: Option<String>,
        _request_spec: Option<RequestSpec>,
        _accel_uuids: Option<Vec<String>>,
    ) -> Result<(), RemoteError> {
        self.builds.lock().unwrap().push((
            self.host.clone(),
            instance,
            json!({"unshelve": {"image": image, "node": node}}),
            Vec::new(),
        ));
        Ok(())
    }

    async fn set_host_enabled(
        &self,
        _ctx: RequestContext,
        enabled: bool,
    ) -> Result<String, RemoteError> {
        Ok(if enabled { "enabled" } else { "disabled" }.into())
    }

    async fn host_maintenance_mode(
        &self,
        _ctx: RequestContext,
        _host: String,
        _mode: bool,
    ) -> Result<String, RemoteError> {
        Ok("off_maintenance".into())
    }

    async fn host_power_action(
        &self,
        _ctx: RequestContext,
        action: String,
    ) -> Result<String, RemoteError> {
        Ok(action)
    }

    async fn get_host_uptime(&self, _ctx: RequestContext) -> Result<String, RemoteError> {
        Ok(String::new())
    }
}

/// The database, except that the next `failures` reads of an Instance
/// fail as a lost connection does (not as a missing row).
#[derive(Debug)]
struct FlakyStore {
    db: Arc<Database>,
    failures: AtomicUsize,
}

impl FlakyStore {
    fn fail(&self, objname: &str) -> nova_objects::Result<()> {
        let take = |n: usize| n.checked_sub(1);
        if objname == "Instance"
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, take)
                .is_ok()
        {
            return Err(nova_objects::Error::Db(
                "connection to server was lost".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for FlakyStore {
    async fn create(&self, ctx: &RequestContext, obj: Value) -> nova_objects::Result<Value> {
        self.db.create(ctx, obj).await
    }
    async fn save(
        &self,
        ctx: &RequestContext,
        obj: Value,
        opts: &SaveOptions,
    ) -> nova_objects::Result<Value> {
        self.db.save(ctx, obj, opts).await
    }
    async fn destroy(&self, ctx: &RequestContext, obj: Value) -> nova_objects::Result<Value> {
        self.db.destroy(ctx, obj).await
    }
    async fn get(
        &self,
        ctx: &RequestContext,
        objname: &str,
        by: &Lookup,
    ) -> nova_objects::Result<Value> {
        self.fail(objname)?;
        self.db.get(ctx, objname, by).await
    }
    async fn list(
        &self,
        ctx: &RequestContext,
        objname: &str,
        q: &ListQuery,
    ) -> nova_objects::Result<Vec<Value>> {
        self.db.list(ctx, objname, q).await
    }
    async fn count(
        &self,
        ctx: &RequestContext,
        objname: &str,
        filters: &serde_json::Map<String, Value>,
    ) -> nova_objects::Result<u64> {
        self.db.count(ctx, objname, filters).await
    }
}

struct World {
    /// The database (what the conductor reads through `flaky`).
    objects: Objects,
    flaky: Arc<FlakyStore>,
    placement: PlacementHandle,
    scheduler: Arc<TestScheduler>,
    builds: Arc<Mutex<Vec<Built>>>,
    api: ComputeTaskApi,
    cell1: String,
    servers: Vec<RpcServer>,
}

const HOSTS: [&str; 2] = ["host-a", "host-b"];

async fn world(max_attempts: i64) -> World {
    world_on(max_attempts, MemoryTransport::new()).await
}

/// The world on a transport of the test's (its RPC timeouts).
async fn world_on(max_attempts: i64, transport: Arc<dyn Transport>) -> World {
    let db = Arc::new(
        Database::connect(&DbConfig::new("sqlite::memory:"))
            .await
            .unwrap(),
    );
    db.sync().await.unwrap();
    let placement = PlacementHandle::memory();
    let objects = Objects::from_arc(db.clone());
    let flaky = Arc::new(FlakyStore {
        db: db.clone(),
        failures: AtomicUsize::new(0),
    });
    let cell1 = nova_service::cells::ensure_cells(&objects, "memory://", "sqlite::memory:")
        .await
        .unwrap();
    let scheduler = Arc::new(TestScheduler::default());
    let builds: Arc<Mutex<Vec<Built>>> = Arc::default();
    let mut servers = vec![
        RpcServer::start(
            transport.clone(),
            Target::topic("scheduler").with_server("s"),
            Dispatcher::new(vec![scheduler.clone().endpoint()]),
        )
        .await
        .unwrap(),
    ];
    for host in HOSTS {
        let compute = Arc::new(TestCompute {
            host: host.into(),
            builds: builds.clone(),
        });
        servers.push(
            RpcServer::start(
                transport.clone(),
                Target::topic("compute").with_server(host),
                Dispatcher::new(vec![compute.endpoint()]),
            )
            .await
            .unwrap(),
        );
    }
    let conductor = Conductor::new(
        Objects::from_arc(flaky.clone()),
        placement.clone(),
        transport.clone(),
        None,
        max_attempts,
        cell1.uuid(),
    )
    .with_db_retries(3, Duration::from_millis(10));
    servers.push(
        nova_conductor::serve(transport.clone(), &conductor, db, "conductor-1")
            .await
            .unwrap(),
    );
    World {
        objects,
        flaky,
        placement,
        scheduler,
        builds,
        api: ComputeTaskApi::new(transport),
        cell1: cell1.uuid().clone(),
        servers,
    }
}

fn flavor() -> Flavor {
    Flavor::new()
        .with_id(1)
        .with_flavorid("1".to_owned())
        .with_name(Some("m1.tiny".into()))
        .with_vcpus(1)
        .with_memory_mb(512)
        .with_root_gb(1)
        .with_ephemeral_gb(0)
}

fn selection(host: &str, rp: &str) -> Selection {
    let alloc = json!({"allocations": {rp: {"resources": {"VCPU": 1, "MEMORY_MB": 512}}}});
    Selection::new()
        .with_service_host(host.to_owned())
        .with_nodename(format!("{host}-node"))
        .with_compute_node_uuid(rp.to_owned())
        .with_cell_uuid(uuid::Uuid::new_v4().to_string())
        .with_allocation_request(Some(alloc.to_string()))
}

impl World {
    /// What the API writes for a new server: Instance, BuildRequest,
    /// InstanceMapping (no cell yet) and the RequestSpec it casts.
    async fn new_server(&self) -> (Instance, BuildRequest, RequestSpec) {
        let mut inst = Instance::new()
            .with_uuid(uuid::Uuid::new_v4().to_string())
            .with_project_id(Some("p".into()))
            .with_user_id(Some("u".into()))
            .with_display_name(Some("vm".into()))
            .with_flavor(flavor())
            .with_vm_state(Some(VmState::Building.into()))
            .with_task_state(Some(TaskState::Scheduling.into()))
            .with_locked(false);
        self.objects.create(&ctx(), &mut inst).await.unwrap();
        let mut br = BuildRequest::new()
            .with_instance_uuid(inst.uuid().clone())
            .with_project_id("p".to_owned())
            .with_instance(inst.clone());
        self.objects.create(&ctx(), &mut br).await.unwrap();
        let mut map = InstanceMapping::new()
            .with_instance_uuid(inst.uuid().clone())
            .with_project_id("p".to_owned())
            .with_cell_mapping(None)
            .with_queued_for_delete(false);
        self.objects.create(&ctx(), &mut map).await.unwrap();
        let spec = RequestSpec::new()
            .with_instance_uuid(inst.uuid().clone())
            .with_flavor(flavor())
            .with_num_instances(1)
            .with_project_id(Some("p".into()));
        (inst, br, spec)
    }

    async fn schedule(&self, br: BuildRequest, spec: RequestSpec) {
        self.api
            .schedule_and_build_instances(
                &ctx(),
                &vec![br],
                &vec![spec],
                &json!({}),
                &None,
                &None,
                &None,
                &None,
                &None,
            )
            .await
            .unwrap();
    }

    /// A provider with `vcpus` VCPUs of which `reserved` are not for guests.
    async fn provider(&self, rp: &str, vcpus: i64, reserved: i64) {
        let p = self
            .placement
            .create_provider_async(rp, rp, None)
            .await
            .unwrap();
        let inv = BTreeMap::from([
            (
                "VCPU".to_owned(),
                InventoryRecord {
                    reserved,
                    ..InventoryRecord::new(vcpus)
                },
            ),
            ("MEMORY_MB".to_owned(), InventoryRecord::new(4096)),
        ]);
        self.placement
            .set_inventories_async(rp, p.generation, &inv)
            .await
            .unwrap();
    }

    async fn mapping(&self, uuid: &str) -> Option<String> {
        let maps: Vec<InstanceMapping> = self
            .objects
            .list(&ctx(), &ListQuery::new().filter("instance_uuid", uuid))
            .await
            .unwrap();
        maps[0].cell_mapping().as_ref().map(|c| c.uuid().clone())
    }

    async fn build_requests(&self, uuid: &str) -> usize {
        let brs: Vec<BuildRequest> = self
            .objects
            .list(&ctx(), &ListQuery::new().filter("instance_uuid", uuid))
            .await
            .unwrap();
        brs.len()
    }

    async fn builds(&self, n: usize) -> Vec<Built> {
        for _ in 0..400 {
            if self.builds.lock().unwrap().len() >= n {
                return self.builds.lock().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("expected {n} builds");
    }

    async fn until(&self, uuid: &str, ok: impl Fn(&Instance) -> bool) -> Instance {
        for _ in 0..400 {
            let i: Instance = self.objects.get_by_uuid(&ctx(), uuid).await.unwrap();
            if ok(&i) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("instance {uuid} never got there");
    }

    async fn fault(&self, uuid: &str) -> String {
        let f: Vec<InstanceFault> = self
            .objects
            .list(&ctx(), &ListQuery::new().filter("instance_uuid", uuid))
            .await
            .unwrap();
        f.last()
            .and_then(|f| f.message().clone())
            .unwrap_or_default()
    }

    async fn stop(self) {
        for s in self.servers {
            s.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_build_goes_to_the_chosen_host_with_its_alternates() {
    let w = world(3).await;
    let (inst, br, spec) = w.new_server().await;
    let (a, b) = (selection("host-a", "rp-a"), selection("host-b", "rp-b"));
    *w.scheduler.answer.lock().unwrap() = Some(Ok(vec![vec![a, b.clone()]]));
    w.schedule(br, spec).await;
    let built = w.builds(1).await;
    let (host, sent, fp, alternates) = &built[0];
    assert_eq!(host, "host-a");
    assert_eq!(sent.uuid(), inst.uuid());
    assert_eq!(alternates, &vec![b]);
    assert_eq!(fp["retry"]["num_attempts"], 1);
    assert_eq!(fp["retry"]["hosts"], json!([["host-a", "host-a-node"]]));
    // Mapped to cell1, the BuildRequest gone.
    assert_eq!(w.mapping(inst.uuid()).await, Some(w.cell1.clone()));
    assert_eq!(w.build_requests(inst.uuid()).await, 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_valid_host_buries_the_instance_in_cell0_in_error() {
    let w = world(3).await;
    let (inst, br, spec) = w.new_server().await;
    *w.scheduler.answer.lock().unwrap() = Some(Err("There are not enough hosts available.".into()));
    w.schedule(br, spec).await;
    let i = w
        .until(inst.uuid(), |i| i.vm_state() == &VmState::Error)
        .await;
    assert!(i.task_state().is_none());
    assert!(
        w.fault(inst.uuid())
            .await
            .starts_with("No valid host was found."),
        "{}",
        w.fault(inst.uuid()).await
    );
    // The fault is written before the state and the mapping after it.
    for _ in 0..100 {
        if w.mapping(inst.uuid()).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(w.mapping(inst.uuid()).await.as_deref(), Some(CELL0_UUID));
    assert!(w.builds.lock().unwrap().is_empty());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reschedule_claims_the_first_alternate_that_still_fits() {
    let w = world(3).await;
    w.provider("rp-a", 1, 0).await;
    w.provider("rp-b", 1, 1).await; // full: its claim must fail
    w.provider("rp-c", 4, 0).await;
    let (inst, _, spec) = w.new_server().await;
    let alternates = vec![selection("host-b", "rp-b"), selection("host-a", "rp-c")];
    w.api
        .build_instances(
            &ctx(),
            &vec![inst.clone()],
            &json!({}),
            &json!({"retry": {"num_attempts": 1, "exc_reason": "spawn failed"}}),
            &None,
            &None,
            &None,
            &None,
            &Some(spec),
            &Some(vec![alternates.clone()]),
        )
        .await
        .unwrap();
    let built = w.builds(1).await;
    let (host, _, fp, rest) = &built[0];
    assert_eq!(host, "host-a", "rp-b is full: the next alternate is used");
    assert_eq!(fp["retry"]["num_attempts"], 2);
    assert!(rest.is_empty());
    let allocs = w.placement.allocations_async(inst.uuid()).await.unwrap();
    let providers: Vec<String> = allocs.allocations.keys().map(|k| k.to_string()).collect();
    assert_eq!(providers, vec!["rp-c".to_owned()]);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reschedule_past_max_attempts_ends_in_error() {
    let w = world(2).await;
    let (inst, _, spec) = w.new_server().await;
    w.api
        .build_instances(
            &ctx(),
            &vec![inst.clone()],
            &json!({}),
            &json!({"retry": {"num_attempts": 2, "exc_reason": "boom"}}),
            &None,
            &None,
            &None,
            &None,
            &Some(spec),
            &Some(vec![vec![selection("host-a", "rp-a")]]),
        )
        .await
        .unwrap();
    w.until(inst.uuid(), |i| i.vm_state() == &VmState::Error)
        .await;
    let fault = w.fault(inst.uuid()).await;
    assert!(
        fault.starts_with("Exceeded maximum number of retries."),
        "{fault}"
    );
    assert!(fault.ends_with("Last exception: boom"), "{fault}");
    assert!(w.builds.lock().unwrap().is_empty());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_read_error_does_not_drop_the_build() {
    let w = world(3).await;
    let (inst, br, spec) = w.new_server().await;
    *w.scheduler.answer.lock().unwrap() = Some(Ok(vec![vec![selection("host-a", "rp-a")]]));
    // Two failed reads, then the database answers again (3 tries in all).
    w.flaky.failures.store(2, Ordering::SeqCst);
    w.schedule(br, spec).await;
    let built = w.builds(1).await;
    assert_eq!(
        built[0].1.uuid(),
        inst.uuid(),
        "the build went on after the retries"
    );
    assert_eq!(w.flaky.failures.load(Ordering::SeqCst), 0);
    assert_eq!(w.mapping(inst.uuid()).await, Some(w.cell1.clone()));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_read_error_ends_the_build_in_error_not_in_build() {
    let w = world(3).await;
    let (inst, br, spec) = w.new_server().await;
    *w.scheduler.answer.lock().unwrap() = Some(Ok(vec![vec![selection("host-a", "rp-a")]]));
    // Every try fails: not a delete, so the build is not silently dropped.
    w.flaky.failures.store(3, Ordering::SeqCst);
    w.schedule(br, spec).await;
    let i = w
        .until(inst.uuid(), |i| i.vm_state() == &VmState::Error)
        .await;
    assert!(i.task_state().is_none());
    let fault = w.fault(inst.uuid()).await;
    assert!(fault.contains("connection to server was lost"), "{fault}");
    for _ in 0..100 {
        if w.build_requests(inst.uuid()).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(w.mapping(inst.uuid()).await.as_deref(), Some(CELL0_UUID));
    assert_eq!(w.build_requests(inst.uuid()).await, 0);
    // Nothing was scheduled or claimed for it.
    assert!(w.builds.lock().unwrap().is_empty());
    let allocs = w.placement.allocations_async(inst.uuid()).await.unwrap();
    assert!(allocs.allocations.is_empty());
    w.stop().await;
}

/// `rpc_response_timeout` 2 s (the heartbeats' window) and `long_rpc_timeout` `long`.
fn transport_with_long_timeout(long: Duration) -> Arc<dyn Transport> {
    Arc::new(MemoryTransport::with_config(MemoryConfig {
        response_timeout: Duration::from_secs(2),
        long_rpc_timeout: long,
        ..MemoryConfig::default()
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_slower_than_rpc_response_timeout_is_waited_for_up_to_long_rpc_timeout() {
    let w = world_on(3, transport_with_long_timeout(Duration::from_secs(30))).await;
    let (inst, br, spec) = w.new_server().await;
    *w.scheduler.answer.lock().unwrap() = Some(Ok(vec![vec![selection("host-a", "rp-a")]]));
    // Past rpc_response_timeout: the scheduler's heartbeats keep the call alive.
    *w.scheduler.delay.lock().unwrap() = Duration::from_secs(3);
    w.schedule(br, spec).await;
    for _ in 0..1000 {
        if !w.builds.lock().unwrap().is_empty() {
            break;
        }
        let i: Instance = w.objects.get_by_uuid(&ctx(), inst.uuid()).await.unwrap();
        assert_ne!(
            i.vm_state(),
            &VmState::Error,
            "{}",
            w.fault(inst.uuid()).await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let built = w.builds(1).await;
    assert_eq!(built[0].1.uuid(), inst.uuid());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_slower_than_long_rpc_timeout_times_the_build_out() {
    let w = world_on(3, transport_with_long_timeout(Duration::from_secs(3))).await;
    let (inst, br, spec) = w.new_server().await;
    *w.scheduler.answer.lock().unwrap() = Some(Ok(vec![vec![selection("host-a", "rp-a")]]));
    *w.scheduler.delay.lock().unwrap() = Duration::from_secs(6);
    w.schedule(br, spec).await;
    let mut i: Instance = w.objects.get_by_uuid(&ctx(), inst.uuid()).await.unwrap();
    for _ in 0..1000 {
        if i.vm_state() == &VmState::Error {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        i = w.objects.get_by_uuid(&ctx(), inst.uuid()).await.unwrap();
    }
    assert_eq!(i.vm_state(), &VmState::Error);
    let fault = w.fault(inst.uuid()).await;
    assert!(
        fault.starts_with("Timed out") && fault.ends_with("(after 3s)"),
        "timed out after long_rpc_timeout: {fault}"
    );
    assert!(w.builds.lock().unwrap().is_empty());
    w.stop().await;
}
