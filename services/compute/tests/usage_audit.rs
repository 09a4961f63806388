//! The periodic instance usage audit (nova's `_instance_usage_audit`) on a
//! memory transport: the compute reaches the objects through a conductor
//! object endpoint over SQLite in memory, as in production; the test reads
//! the database directly and listens to the notifications.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use nova_compute::{ComputeConfig, ComputeManager};
use nova_objects::db::{Database, DbConfig};
use nova_objects::{ConductorStore, Flavor, Instance, Objects, TaskLog};
use nova_placement::PlacementHandle;
use nova_rpc::{
    Dispatcher, MemoryTransport, NotificationListener, Priority, RpcServer, Target, Transport,
};
use nova_service::notifications::{Driver, NotificationConfig, NotificationFormat, Notifier};
use nova_service::task_log::{
    INSTANCE_USAGE_AUDIT, task_log_begin_task, task_log_end_task, task_log_get_all,
};
use nova_virt::{FakeConfig, FakeDriver};
use serde_json::Value;

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

fn naive(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

struct Setup {
    db: Objects,
    manager: ComputeManager,
    conductor: RpcServer,
    versioned: NotificationListener,
    legacy: NotificationListener,
}

async fn setup(audit: bool) -> Setup {
    let transport: Arc<dyn Transport> = MemoryTransport::new();
    let database = Database::connect(&DbConfig::new("sqlite::memory:"))
        .await
        .unwrap();
    database.sync().await.unwrap();
    let db = Objects::new(database);
    let conductor = RpcServer::start(
        transport.clone(),
        Target::topic(nova_objects::CONDUCTOR_TOPIC).with_server("conductor-1"),
        Dispatcher::new(vec![nova_objects::conductor_object_endpoint(
            db.store().clone(),
        )]),
    )
    .await
    .unwrap();
    let listen = |topic: &'static str| {
        let t = transport.clone();
        async move {
            NotificationListener::start(t, None, &[topic], &Priority::ALL, None)
                .await
                .unwrap()
        }
    };
    let versioned = listen("versioned_notifications").await;
    let legacy = listen("notifications").await;
    let notifier = Notifier::new(
        NotificationConfig {
            format: NotificationFormat::Both,
            drivers: vec![Driver::MessagingV2],
            ..NotificationConfig::default()
        },
        Some(transport.clone()),
        None,
    );
    let mut cfg = ComputeConfig::new("host-1");
    cfg.instance_usage_audit = audit;
    let manager = ComputeManager::new(
        cfg,
        Arc::new(FakeDriver::new(FakeConfig::default())),
        Objects::new(ConductorStore::new(transport.clone())),
        PlacementHandle::memory(),
        transport,
    );
    manager.set_notifier(notifier);
    Setup {
        db,
        manager,
        conductor,
        versioned,
        legacy,
    }
}

impl Setup {
    /// An instance of `host`, launched and terminated (then deleted) when given.
    async fn instance(
        &self,
        name: &str,
        host: &str,
        launched: Option<DateTime<Utc>>,
        terminated: Option<DateTime<Utc>>,
    ) -> String {
        let ctx = nova_service::context::admin();
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
            .with_display_name(Some(name.into()))
            .with_host(Some(host.into()))
            .with_flavor(flavor)
            .with_vcpus(Some(1))
            .with_memory_mb(Some(512))
            .with_root_gb(Some(1))
            .with_vm_state(Some(
                if terminated.is_some() {
                    "deleted"
                } else {
                    "active"
                }
                .into(),
            ))
            .with_launched_at(launched)
            .with_terminated_at(terminated)
            .with_locked(false);
        self.db.create(&ctx, &mut i).await.unwrap();
        if terminated.is_some() {
            self.db.destroy(&ctx, &mut i).await.unwrap();
        }
        i.uuid().clone()
    }

    async fn logs(&self, begin: &str, end: &str) -> Vec<TaskLog> {
        task_log_get_all(
            &self.db,
            &nova_service::context::admin(),
            INSTANCE_USAGE_AUDIT,
            (naive(begin), naive(end)),
            None,
            None,
        )
        .await
        .unwrap()
    }
}

/// The next `n` notifications (event type, publisher, payload), then none.
async fn exactly(l: &mut NotificationListener, n: usize) -> Vec<(String, String, Value)> {
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
            m.payload.clone(),
        ));
    }
    let more = tokio::time::timeout(Duration::from_millis(200), l.next()).await;
    assert!(more.is_err(), "one notification too many: {more:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_notifies_the_instances_active_here_in_the_last_period_once() {
    let mut s = setup(true).await;
    // The period before 2026-12-06 is November.
    let running = s
        .instance("running", "host-1", Some(at(2026, 10, 15)), None)
        .await;
    let gone = s
        .instance(
            "gone",
            "host-1",
            Some(at(2026, 11, 20)),
            Some(at(2026, 11, 25)),
        )
        .await;
    let _ended_before = s
        .instance(
            "ended-before",
            "host-1",
            Some(at(2026, 10, 1)),
            Some(at(2026, 10, 20)),
        )
        .await;
    let december = s
        .instance("december", "host-1", Some(at(2026, 12, 2)), None)
        .await;
    let _elsewhere = s
        .instance("elsewhere", "host-2", Some(at(2026, 10, 15)), None)
        .await;
    let _never = s.instance("never-launched", "host-1", None, None).await;

    let log = s
        .manager
        .instance_usage_audit(at(2026, 12, 6))
        .await
        .unwrap()
        .expect("November is audited");
    assert_eq!(log.task_name(), "instance_usage_audit");
    assert_eq!(log.state(), "DONE");
    assert_eq!(log.host(), "host-1");
    assert_eq!(*log.task_items(), 2);
    assert_eq!(*log.errors(), 0);
    assert!(
        log.message()
            .starts_with("Instance usage audit ran for host host-1, 2 instances in "),
        "{}",
        log.message()
    );

    let got = exactly(&mut s.versioned, 2).await;
    let uuids: BTreeSet<&str> = got
        .iter()
        .map(|(event, publisher, p)| {
            assert_eq!(event, "instance.exists");
            assert_eq!(publisher, "nova-compute:host-1");
            assert_eq!(p["nova_object.name"], "InstanceExistsPayload");
            let period = &p["nova_object.data"]["audit_period"]["nova_object.data"];
            assert_eq!(period["audit_period_beginning"], "2026-11-01T00:00:00Z");
            assert_eq!(period["audit_period_ending"], "2026-12-01T00:00:00Z");
            p["nova_object.data"]["uuid"].as_str().unwrap()
        })
        .collect();
    assert_eq!(uuids, BTreeSet::from([running.as_str(), gone.as_str()]));
    let got = exactly(&mut s.legacy, 2).await;
    for (event, publisher, p) in &got {
        assert_eq!(event, "compute.instance.exists");
        assert_eq!(publisher, "compute.host-1");
        assert_eq!(p["audit_period_beginning"], "2026-11-01 00:00:00");
        assert_eq!(p["audit_period_ending"], "2026-12-01 00:00:00");
    }

    // The same period again (later that month): nothing.
    assert!(
        s.manager
            .instance_usage_audit(at(2026, 12, 20))
            .await
            .unwrap()
            .is_none()
    );
    exactly(&mut s.versioned, 0).await;
    exactly(&mut s.legacy, 0).await;
    let logs = s.logs("2026-11-01 00:00:00", "2026-12-01 00:00:00").await;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].state(), "DONE");

    // December, audited in January: the instance launched in December
    // counts, the one gone in November does not.
    let log = s
        .manager
        .instance_usage_audit(at(2027, 1, 3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*log.task_items(), 2);
    let got = exactly(&mut s.versioned, 2).await;
    let uuids: BTreeSet<&str> = got
        .iter()
        .map(|(_, _, p)| p["nova_object.data"]["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids, BTreeSet::from([running.as_str(), december.as_str()]));
    assert_eq!(
        s.logs("2026-12-01 00:00:00", "2027-01-01 00:00:00")
            .await
            .len(),
        1
    );
    s.conductor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_begins_once_per_host_and_period_and_ends_only_if_begun() {
    let s = setup(false).await;
    let ctx = nova_service::context::admin();
    let period = (naive("2026-11-01 00:00:00"), naive("2026-12-01 00:00:00"));
    let log = task_log_begin_task(&s.db, &ctx, INSTANCE_USAGE_AUDIT, period, "h", 3, "started")
        .await
        .unwrap();
    assert_eq!(log.state(), "RUNNING");
    assert_eq!(*log.task_items(), 3);
    let again = task_log_begin_task(&s.db, &ctx, INSTANCE_USAGE_AUDIT, period, "h", 3, "x")
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("is already running on host h"),
        "{again}"
    );
    // Another host, same period: its own row.
    task_log_begin_task(&s.db, &ctx, INSTANCE_USAGE_AUDIT, period, "g", 0, "started")
        .await
        .unwrap();
    let other = (naive("2026-10-01 00:00:00"), naive("2026-11-01 00:00:00"));
    let e = task_log_end_task(&s.db, &ctx, INSTANCE_USAGE_AUDIT, other, "h", 0, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is not running on host h"), "{e}");
    let done = task_log_end_task(&s.db, &ctx, INSTANCE_USAGE_AUDIT, period, "h", 1, None)
        .await
        .unwrap();
    assert_eq!((done.state().as_str(), *done.errors()), ("DONE", 1));
    assert_eq!(done.message(), "started");
    let mut states: Vec<(String, String)> = s
        .logs("2026-11-01 00:00:00", "2026-12-01 00:00:00")
        .await
        .iter()
        .map(|l| (l.host().clone(), l.state().clone()))
        .collect();
    states.sort();
    assert_eq!(
        states,
        [("g".into(), "RUNNING".into()), ("h".into(), "DONE".into())]
    );
    s.conductor.stop().await;
}

#[test]
fn the_audit_options_are_read_and_checked() {
    let conf = nova_service::Conf::parse(
        "[DEFAULT]\ninstance_usage_audit = true\ninstance_usage_audit_period = day@6\n",
    )
    .unwrap();
    assert!(conf.unknown_options().is_empty());
    let c = ComputeConfig::from_conf(&conf).unwrap();
    assert!(c.instance_usage_audit);
    assert_eq!(c.audit_period.to_string(), "day@6");
    let bad = nova_service::Conf::parse("[DEFAULT]\ninstance_usage_audit_period = week\n").unwrap();
    let e = ComputeConfig::from_conf(&bad).unwrap_err().to_string();
    assert!(e.contains("instance_usage_audit_period"), "{e}");
    assert!(
        !ComputeConfig::from_conf(&nova_service::Conf::new())
            .unwrap()
            .instance_usage_audit
    );
}
