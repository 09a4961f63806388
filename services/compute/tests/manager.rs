//! The compute manager alone: a memory transport, SQLite in memory,
//! in-memory Placement, the fake driver, and a test conductor that records
//! what the compute asks of it (it implements the `ComputeTask` trait, as
//! the real conductor does). No cluster.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_compute::{ComputeConfig, ComputeManager};
use nova_objects::db::{Database, DbConfig};
use nova_objects::{
    BlockDeviceMappingList, BuildRequest, Flavor, Instance, InstanceFault, ListQuery,
    NetworkRequestList, Objects, RawObject, RequestSpec, Selection,
};
use nova_placement::PlacementHandle;
use nova_rpc::{
    Dispatcher, MemoryTransport, RemoteError, RequestContext, RpcServer, Target, Transport,
};
use nova_rpcapi::compute::ComputeApi;
use nova_rpcapi::conductor::{ComputeTask, TOPIC};
use nova_service::states::{TaskState, VmState};
use nova_virt::{ComputeDriver as _, FakeConfig, FakeDriver, Faults, PowerState};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A `build_instances` cast: instances, filter properties, host lists.
type Reschedule = (Vec<Instance>, Value, Option<Vec<Vec<Selection>>>);

/// What the compute sent back to the conductor.
#[derive(Debug, Default)]
struct Conductor {
    reschedules: Mutex<Vec<Reschedule>>,
}

impl ComputeTask for Conductor {
    async fn schedule_and_build_instances(
        &self,
        _ctx: RequestContext,
        _build_requests: Vec<BuildRequest>,
        _request_specs: Vec<RequestSpec>,
        _image: Value,
        _admin_password: Option<String>,
        _injected_files: Option<Vec<Value>>,
        _requested_networks: Option<NetworkRequestList>,
        _block_device_mapping: Option<BlockDeviceMappingList>,
        _tags: Option<RawObject>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn migrate_server(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _scheduler_hint: Value,
        _live: bool,
        _rebuild: bool,
        _flavor: Option<Flavor>,
        _block_migration: Value,
        _disk_over_commit: Value,
        _reservations: Value,
        _clean_shutdown: Option<bool>,
        _request_spec: Option<RequestSpec>,
        _host_list: Option<Vec<Selection>>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn build_instances(
        &self,
        _ctx: RequestContext,
        instances: Vec<Instance>,
        _image: Value,
        filter_properties: Value,
        _admin_password: Option<String>,
        _injected_files: Option<Vec<Value>>,
        _requested_networks: Option<NetworkRequestList>,
        _security_groups: Option<Vec<String>>,
        _request_spec: Option<RequestSpec>,
        host_lists: Option<Vec<Vec<Selection>>>,
    ) -> Result<(), RemoteError> {
        self.reschedules
            .lock()
            .unwrap()
            .push((instances, filter_properties, host_lists));
        Ok(())
    }

    async fn rebuild_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _new_pass: Option<String>,
        _injected_files: Option<Vec<Value>>,
        _image_ref: Option<String>,
        _orig_image_ref: Option<String>,
        _orig_sys_metadata: Value,
        _bdms: Option<BlockDeviceMappingList>,
        _recreate: bool,
        _on_shared_storage: Option<bool>,
        _preserve_ephemeral: bool,
        _host: Option<String>,
        _request_spec: Option<RequestSpec>,
        _reimage_boot_volume: Option<bool>,
        _target_state: Option<String>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn unshelve_instance(
        &self,
        _ctx: RequestContext,
        _instance: Instance,
        _request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
}

struct Host {
    objects: Objects,
    fake: Arc<FakeDriver>,
    manager: ComputeManager,
    api: ComputeApi,
    conductor: Arc<Conductor>,
    servers: Vec<RpcServer>,
    stop: CancellationToken,
}

fn ctx() -> RequestContext {
    nova_service::context::admin()
}

async fn host() -> Host {
    host_notifying(MemoryTransport::new(), None).await
}

async fn host_notifying(
    transport: Arc<dyn Transport>,
    notifier: Option<nova_service::notifications::Notifier>,
) -> Host {
    let db = Database::connect(&DbConfig::new("sqlite::memory:"))
        .await
        .unwrap();
    db.sync().await.unwrap();
    let placement = PlacementHandle::memory();
    let objects = Objects::new(db);
    let conductor = Arc::new(Conductor::default());
    let cserver = RpcServer::start(
        transport.clone(),
        Target::topic(TOPIC).with_server("conductor-1"),
        Dispatcher::new(vec![
            conductor.clone().endpoint(),
            nova_rpcapi::base::endpoint("nova-conductor"),
        ]),
    )
    .await
    .unwrap();
    let fake = Arc::new(FakeDriver::new(FakeConfig {
        hypervisor_hostname: "node-1".into(),
        ..Default::default()
    }));
    let manager = ComputeManager::new(
        ComputeConfig::new("host-1"),
        fake.clone(),
        objects.clone(),
        placement,
        transport.clone(),
    );
    if let Some(n) = notifier {
        manager.set_notifier(n);
    }
    let stop = CancellationToken::new();
    let server = manager
        .start(transport.clone(), stop.clone())
        .await
        .unwrap();
    Host {
        objects,
        fake,
        manager,
        api: ComputeApi::new(transport),
        conductor,
        servers: vec![cserver, server.server, server.alt_server],
        stop,
    }
}

impl Host {
    async fn instance(&self) -> Instance {
        let flavor = Flavor::new()
            .with_id(1)
            .with_flavorid("1".to_owned())
            .with_name(Some("m1.tiny".into()))
            .with_vcpus(1)
            .with_memory_mb(512)
            .with_root_gb(1)
            .with_ephemeral_gb(0);
        let mut i = Instance::new()
            .with_uuid(uuid::Uuid::new_v4().to_string())
            .with_project_id(Some("p".into()))
            .with_user_id(Some("u".into()))
            .with_display_name(Some("vm".into()))
            .with_flavor(flavor)
            .with_vcpus(Some(1))
            .with_memory_mb(Some(512))
            .with_root_gb(Some(1))
            .with_vm_state(Some(VmState::Building.into()))
            .with_task_state(Some(TaskState::Scheduling.into()))
            .with_locked(false);
        self.objects.create(&ctx(), &mut i).await.unwrap();
        i
    }

    async fn build(&self, inst: &Instance, filter_properties: Value, alternates: Vec<Selection>) {
        self.api
            .build_and_run_instance(
                &ctx(),
                "host-1",
                inst,
                &json!({}),
                &None,
                &filter_properties,
                &None,
                &None,
                &None,
                &None,
                &None,
                &Some("node-1".into()),
                &json!({}),
                &Some(alternates),
                &None,
            )
            .await
            .unwrap();
    }

    /// A new instance built on this host, once ACTIVE.
    async fn active(&self) -> Instance {
        let inst = self.instance().await;
        self.build(&inst, json!({}), vec![]).await;
        self.until(inst.uuid(), |i| i.vm_state() == &VmState::Active)
            .await
    }

    /// Waits until the instance satisfies `ok`.
    async fn until(&self, uuid: &str, ok: impl Fn(&Instance) -> bool) -> Instance {
        let mut last = None;
        for _ in 0..400 {
            let i: Instance = self.objects.get_by_uuid(&ctx(), uuid).await.unwrap();
            if ok(&i) {
                return i;
            }
            last = Some(i);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("instance {uuid} never got there: {last:?}");
    }

    async fn faults(&self, uuid: &str) -> Vec<InstanceFault> {
        self.objects
            .list(&ctx(), &ListQuery::new().filter("instance_uuid", uuid))
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.stop.cancel();
        for s in self.servers {
            s.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_ends_active_and_running_on_this_host() {
    let h = host().await;
    let built = h.active().await;
    assert!(built.task_state().is_none());
    assert_eq!(
        built.power_state(),
        &Some(PowerState::Running.code() as i64)
    );
    assert_eq!(built.host().as_deref(), Some("host-1"));
    assert_eq!(built.node().as_deref(), Some("node-1"));
    assert!(built.launched_at().is_some());
    assert_eq!(
        h.fake.get_info(built.uuid()).await.unwrap().state,
        PowerState::Running
    );
    // Stop, then start: each ends its task in the state nova sets.
    h.api
        .stop_instance(&ctx(), "host-1", &built, &Some(false))
        .await
        .unwrap();
    let stopped = h
        .until(built.uuid(), |i| i.vm_state() == &VmState::Stopped)
        .await;
    assert_eq!(
        stopped.power_state(),
        &Some(PowerState::Shutdown.code() as i64)
    );
    assert_eq!(
        h.fake.get_info(built.uuid()).await.unwrap().state,
        PowerState::Shutdown
    );
    h.api
        .start_instance(&ctx(), "host-1", &stopped)
        .await
        .unwrap();
    h.until(built.uuid(), |i| i.vm_state() == &VmState::Active)
        .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_spawn_with_retries_goes_back_to_the_conductor_with_the_alternates() {
    let h = host().await;
    h.fake.set_faults(Faults {
        fail_spawn_on_call: Some(1),
        ..Default::default()
    });
    let inst = h.instance().await;
    let alternate = Selection::new()
        .with_service_host("host-2".to_owned())
        .with_nodename("node-2".to_owned())
        .with_compute_node_uuid(uuid::Uuid::new_v4().to_string())
        .with_cell_uuid(uuid::Uuid::new_v4().to_string());
    h.build(
        &inst,
        json!({"retry": {"num_attempts": 1, "hosts": [["host-1", "node-1"]]}}),
        vec![alternate.clone()],
    )
    .await;
    let mut sent = None;
    for _ in 0..400 {
        if let Some(r) = h.conductor.reschedules.lock().unwrap().pop() {
            sent = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (instances, fp, host_lists) = sent.expect("the compute asked the conductor to reschedule");
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].uuid(), inst.uuid());
    assert!(fp["retry"]["exc_reason"].as_str().is_some(), "{fp}");
    assert_eq!(host_lists.unwrap(), vec![vec![alternate]]);
    // The instance waits for the next host: scheduling, off this host, with a fault.
    let i: Instance = h.objects.get_by_uuid(&ctx(), inst.uuid()).await.unwrap();
    assert_eq!(i.vm_state(), &VmState::Building);
    assert_eq!(i.task_state(), &TaskState::Scheduling);
    assert!(i.host().is_none());
    assert_eq!(h.faults(inst.uuid()).await.len(), 1);
    assert!(
        h.fake.get_info(inst.uuid()).await.is_err(),
        "the guest is gone"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_spawn_without_retries_ends_in_error_with_a_fault() {
    let h = host().await;
    h.fake.set_faults(Faults {
        fail_spawn_on_call: Some(1),
        ..Default::default()
    });
    let inst = h.instance().await;
    h.build(&inst, json!({}), vec![]).await;
    let i = h
        .until(inst.uuid(), |i| i.vm_state() == &VmState::Error)
        .await;
    assert!(i.task_state().is_none());
    let faults = h.faults(inst.uuid()).await;
    assert_eq!(faults.len(), 1);
    assert!(
        faults[0]
            .message()
            .as_deref()
            .unwrap_or_default()
            .starts_with(&format!("Build of instance {} aborted", inst.uuid())),
        "{faults:?}"
    );
    assert!(h.conductor.reschedules.lock().unwrap().is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_of_an_instance_deleted_meanwhile_builds_nothing() {
    let h = host().await;
    let mut inst = h.instance().await;
    // The API set `deleting` after the conductor cast the build.
    inst.set_task_state(Some(TaskState::Deleting.into()));
    h.objects.save(&ctx(), &mut inst).await.unwrap();
    h.build(&inst, json!({}), vec![]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.fake.get_info(inst.uuid()).await.is_err());
    let i: Instance = h.objects.get_by_uuid(&ctx(), inst.uuid()).await.unwrap();
    assert_eq!(i.task_state(), &TaskState::Deleting);
    assert!(h.manager.node_uuid().await.is_some());
    h.stop().await;
}

/// Receives every notification of `topics` on `t`.
async fn listen(t: &Arc<dyn Transport>, topics: &[&str]) -> nova_rpc::NotificationListener {
    use nova_rpc::Priority;
    nova_rpc::NotificationListener::start(t.clone(), None, topics, &Priority::ALL, None)
        .await
        .unwrap()
}

/// The next `n` notifications' (event type, publisher, priority, payload).
async fn next(
    l: &mut nova_rpc::NotificationListener,
    n: usize,
) -> Vec<(String, String, String, Value)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = tokio::time::timeout(Duration::from_secs(10), l.next())
            .await
            .expect("a notification")
            .unwrap();
        let m = &r.notification;
        out.push((
            m.event_type.clone(),
            m.publisher_id.clone(),
            m.priority.clone(),
            m.payload.clone(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_power_actions_and_deletes_send_novas_notifications_in_order() {
    use nova_service::notifications::{
        Driver, NotificationConfig, NotificationFormat, Notifier, StateChange,
    };
    let transport: Arc<dyn Transport> = MemoryTransport::new();
    let cfg = NotificationConfig {
        format: NotificationFormat::Both,
        drivers: vec![Driver::MessagingV2],
        notify_on_state_change: Some(StateChange::VmState),
        ..NotificationConfig::default()
    };
    let mut versioned = listen(&transport, &["versioned_notifications"]).await;
    let mut legacy = listen(&transport, &["notifications"]).await;
    let notifier = Notifier::new(cfg, Some(transport.clone()), None);
    let h = host_notifying(transport, Some(notifier)).await;
    // The compute's service record is new: service.create.
    let got = next(&mut versioned, 1).await;
    assert_eq!(got[0].0, "service.create");
    assert_eq!(got[0].1, "nova-compute:host-1");
    assert_eq!(got[0].3["nova_object.name"], "ServiceStatusPayload");
    assert_eq!(got[0].3["nova_object.data"]["binary"], "nova-compute");

    let inst = h.instance().await;
    h.build(&inst, json!({}), vec![]).await;
    let got = next(&mut versioned, 2).await;
    let events: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    // building → building is no vm-state change: a plain update first.
    assert_eq!(events, ["instance.update", "instance.create.start"]);
    let start = &got[1];
    assert_eq!(start.1, "nova-compute:host-1");
    assert_eq!(start.2, "INFO");
    assert_eq!(start.3["nova_object.name"], "InstanceCreatePayload");
    assert_eq!(start.3["nova_object.version"], "1.13");
    let d = &start.3["nova_object.data"];
    assert_eq!(d["uuid"], inst.uuid().as_str());
    assert_eq!(d["state"], "building");
    assert_eq!(d["task_state"], "spawning");
    assert_eq!(d["flavor"]["nova_object.name"], "FlavorPayload");
    assert_eq!(d["flavor"]["nova_object.data"]["memory_mb"], 512);
    assert!(d["fault"].is_null());
    let got = next(&mut versioned, 2).await;
    assert_eq!(got[0].0, "instance.update");
    let su = &got[0].3["nova_object.data"]["state_update"]["nova_object.data"];
    assert_eq!(
        (su["old_state"].as_str(), su["state"].as_str()),
        (Some("building"), Some("active"))
    );
    assert_eq!(got[1].0, "instance.create.end");
    assert_eq!(got[1].3["nova_object.data"]["state"], "active");
    assert_eq!(got[1].3["nova_object.data"]["power_state"], "running");
    assert!(got[1].3["nova_object.data"]["launched_at"].is_string());
    let built: Instance = h.objects.get_by_uuid(&ctx(), inst.uuid()).await.unwrap();

    // The legacy twins, from compute.<host>.
    let got = next(&mut legacy, 4).await;
    let events: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        events,
        [
            "compute.instance.update",
            "compute.instance.create.start",
            "compute.instance.update",
            "compute.instance.create.end",
        ]
    );
    assert_eq!(got[1].1, "compute.host-1");
    assert_eq!(got[3].3["message"], "Success");
    assert_eq!(got[3].3["instance_id"], inst.uuid().as_str());
    assert_eq!(got[3].3["state"], "active");

    h.api
        .stop_instance(&ctx(), "host-1", &built, &Some(false))
        .await
        .unwrap();
    let got = next(&mut versioned, 3).await;
    let events: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        events,
        [
            "instance.power_off.start",
            "instance.update",
            "instance.power_off.end"
        ]
    );
    assert_eq!(got[2].3["nova_object.name"], "InstanceActionPayload");
    assert_eq!(got[2].3["nova_object.version"], "1.9");
    assert_eq!(got[2].3["nova_object.data"]["state"], "stopped");
    let stopped: Instance = h.objects.get_by_uuid(&ctx(), inst.uuid()).await.unwrap();
    h.api
        .start_instance(&ctx(), "host-1", &stopped)
        .await
        .unwrap();
    let got = next(&mut versioned, 3).await;
    let events: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        events,
        [
            "instance.power_on.start",
            "instance.update",
            "instance.power_on.end"
        ]
    );
    let active: Instance = h.objects.get_by_uuid(&ctx(), inst.uuid()).await.unwrap();
    h.api
        .reboot_instance(&ctx(), "host-1", &active, &Value::Null, &"SOFT".to_owned())
        .await
        .unwrap();
    let got = next(&mut versioned, 3).await;
    let events: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    // active → active: an update without a state change.
    assert_eq!(
        events,
        [
            "instance.reboot.start",
            "instance.update",
            "instance.reboot.end"
        ]
    );
    let active: Instance = h.objects.get_by_uuid(&ctx(), inst.uuid()).await.unwrap();
    h.api
        .terminate_instance(&ctx(), "host-1", &active, &None)
        .await
        .unwrap();
    let got = next(&mut versioned, 5).await;
    let events: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        events,
        [
            "instance.delete.start",
            "instance.shutdown.start",
            "instance.shutdown.end",
            "instance.update",
            "instance.delete.end"
        ]
    );
    let end = &got[4].3["nova_object.data"];
    assert_eq!(end["state"], "deleted");
    assert!(
        end["terminated_at"].is_string() && end["deleted_at"].is_string(),
        "{end}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_spawn_sends_create_error_with_the_drivers_fault() {
    use nova_service::notifications::{Driver, NotificationConfig, NotificationFormat, Notifier};
    let transport: Arc<dyn Transport> = MemoryTransport::new();
    let cfg = NotificationConfig {
        format: NotificationFormat::Versioned,
        drivers: vec![Driver::MessagingV2],
        ..NotificationConfig::default()
    };
    let mut versioned = listen(&transport, &["versioned_notifications"]).await;
    let notifier = Notifier::new(cfg, Some(transport.clone()), None);
    let h = host_notifying(transport, Some(notifier)).await;
    assert_eq!(next(&mut versioned, 1).await[0].0, "service.create");
    h.fake.set_faults(Faults {
        fail_spawn_on_call: Some(1),
        ..Default::default()
    });
    let inst = h.instance().await;
    h.build(&inst, json!({}), vec![]).await;
    let got = next(&mut versioned, 2).await;
    assert_eq!(got[0].0, "instance.create.start");
    assert_eq!(got[1].0, "instance.create.error");
    assert_eq!(got[1].2, "ERROR");
    let fault = &got[1].3["nova_object.data"]["fault"];
    assert_eq!(fault["nova_object.name"], "ExceptionPayload");
    assert_eq!(fault["nova_object.version"], "1.1");
    assert_eq!(fault["nova_object.data"]["function_name"], "spawn");
    assert!(
        fault["nova_object.data"]["exception_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{fault}"
    );
    h.until(inst.uuid(), |i| i.vm_state() == &VmState::Error)
        .await;
    h.stop().await;
}

/// A user's request context with its own request id.
fn user_ctx() -> RequestContext {
    RequestContext::new()
        .with_user("u")
        .with_project("p")
        .with_request_id(nova_rpc::new_request_id())
}

/// The events of the action `ctx`'s request recorded on `uuid`.
async fn events_of(
    h: &Host,
    uuid: &str,
    ctx: &RequestContext,
) -> Vec<nova_objects::InstanceActionEvent> {
    let actions: Vec<nova_objects::InstanceAction> = h
        .objects
        .list(
            &ctx_admin(),
            &ListQuery::new()
                .filter("instance_uuid", uuid)
                .filter("request_id", ctx.request_id().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(actions.len(), 1);
    h.objects
        .list(
            &ctx_admin(),
            &ListQuery::new().filter("action_id", *actions[0].id()),
        )
        .await
        .unwrap()
}

fn ctx_admin() -> RequestContext {
    ctx()
}

/// Sets the task state the API would and records the API's action.
async fn api_side(h: &Host, inst: &mut Instance, task: TaskState, action: &str) -> RequestContext {
    let c = user_ctx();
    inst.set_task_state(Some(task.into()));
    h.objects.save(&ctx(), inst).await.unwrap();
    nova_service::instance_actions::action_start(&h.objects, &c, inst.uuid(), action)
        .await
        .unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_record_their_events_and_failures_as_nova() {
    let h = host().await;
    let mut inst = h.active().await;
    // pause: PAUSED, the guest paused, one Success event on this host.
    let c = api_side(&h, &mut inst, TaskState::Pausing, "pause").await;
    h.api.pause_instance(&c, "host-1", &inst).await.unwrap();
    let mut inst = h
        .until(inst.uuid(), |i| i.vm_state() == &VmState::Paused)
        .await;
    assert!(inst.task_state().is_none());
    assert_eq!(inst.power_state(), &Some(PowerState::Paused.code() as i64));
    let ev = events_of(&h, inst.uuid(), &c).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].event().as_deref(), Some("compute_pause_instance"));
    assert_eq!(ev[0].result().as_deref(), Some("Success"));
    assert_eq!(ev[0].host().as_deref(), Some("host-1"));
    assert!(ev[0].finish_time().is_some());
    // unpause fails in the driver: task state reverted, fault, Error event,
    // still paused.
    h.fake.set_faults(Faults {
        fail_operations: vec!["unpause".into()],
        ..Faults::default()
    });
    let c = api_side(&h, &mut inst, TaskState::Unpausing, "unpause").await;
    h.api.unpause_instance(&c, "host-1", &inst).await.unwrap();
    let mut inst = h.until(inst.uuid(), |i| i.task_state().is_none()).await;
    assert_eq!(inst.vm_state().as_deref(), Some("paused"));
    assert_eq!(h.faults(inst.uuid()).await.len(), 1);
    let ev = events_of(&h, inst.uuid(), &c).await;
    assert_eq!(ev[0].result().as_deref(), Some("Error"));
    assert!(
        ev[0]
            .details()
            .as_deref()
            .unwrap()
            .contains("injected failure of unpause")
    );
    assert!(ev[0].traceback().is_some());
    // A restart that finds it unpausing with the guest paused redoes the unpause.
    h.fake.set_faults(Faults::default());
    inst.set_task_state(Some(TaskState::Unpausing.into()));
    h.objects.save(&ctx(), &mut inst).await.unwrap();
    h.manager.recover_instances().await;
    let mut inst = h
        .until(inst.uuid(), |i| i.vm_state() == &VmState::Active)
        .await;
    assert_eq!(
        h.fake.get_info(inst.uuid()).await.unwrap().state,
        PowerState::Running
    );
    // set_admin_password is a call: nova's exception class comes back.
    let c = api_side(&h, &mut inst, TaskState::UpdatingPassword, "changePassword").await;
    h.api
        .set_admin_password(&c, "host-1", &inst, &"pw-1".to_owned())
        .await
        .unwrap();
    assert_eq!(h.fake.admin_password(inst.uuid()).as_deref(), Some("pw-1"));
    h.fake.set_faults(Faults {
        fail_operations: vec!["set_admin_password".into()],
        ..Faults::default()
    });
    let mut inst = h.until(inst.uuid(), |i| i.task_state().is_none()).await;
    let c = api_side(&h, &mut inst, TaskState::UpdatingPassword, "changePassword").await;
    let e = h
        .api
        .set_admin_password(&c, "host-1", &inst, &"pw-2".to_owned())
        .await
        .unwrap_err();
    let r = e.remote().expect("a remote error");
    assert!(r.is("nova.exception", "InstancePasswordSetFailed"), "{r:?}");
    assert!(!r.message.contains("pw-2"), "the password never leaks");
    let inst = h.until(inst.uuid(), |i| i.task_state().is_none()).await;
    // Console output: all of it, or its tail as nova cuts it (the last
    // `length` pieces between newlines: a log ending in one gives an
    // empty last piece).
    let all = h
        .api
        .get_console_output(&user_ctx(), "host-1", &inst, &None)
        .await
        .unwrap();
    assert!(all.contains("booting") && all.contains("pause"), "{all}");
    let last = all.trim_end().lines().last().unwrap();
    let out = h
        .api
        .get_console_output(&user_ctx(), "host-1", &inst, &Some(2))
        .await
        .unwrap();
    assert_eq!(out, format!("{last}\n"));
    let none = h
        .api
        .get_console_output(&user_ctx(), "host-1", &inst, &Some(0))
        .await
        .unwrap();
    assert_eq!(none, "");
    h.stop().await;
}

/// An instance deleted on its host whose row stayed (the database away at
/// the destroy: vm_state DELETED, not deleted) goes at the next start, as
/// nova's `_complete_partial_deletion`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_completes_a_partial_deletion() {
    let h = host().await;
    let mut inst = h.active().await;
    inst.set_vm_state(Some(VmState::Deleted.into()));
    h.objects.save(&ctx(), &mut inst).await.unwrap();
    h.manager.recover_instances().await;
    let err = h
        .objects
        .get_by_uuid::<Instance>(&ctx(), inst.uuid())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}
