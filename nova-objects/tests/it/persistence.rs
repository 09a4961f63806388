//! The persistence contract: the same cases on every database (SQLite file
//! and memory always; PostgreSQL and MariaDB with features `postgres` /
//! `mysql`, on loopback) and through the conductor (indirection over the
//! memory transport, backed by SQLite).
//!
//! PostgreSQL and MariaDB must be reachable (`NOVA_RS_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; `NOVA_RS_MYSQL_URL`,
//! default `mysql://root@127.0.0.1:3306/mysql`): each test creates its own
//! `nova_test_*` database there and drops it when it passes.

use std::sync::Arc;
use std::time::Duration;

use nova_objects::db::{Database, DbConfig};
use nova_objects::{
    Aggregate, BuildRequest, CellMapping, ComputeNode, ConductorStore, Error, EventOutcome, Flavor,
    HostMapping, Instance, InstanceAction, InstanceActionEvent, InstanceInfoCache, KeyPair,
    ListQuery, Lookup, ObjectStore, Objects, SaveOptions, Service, SortDir, VersionedObject,
    VirtualInterface, conductor_object_endpoint, registry,
};
use nova_rpc::{Dispatcher, MemoryTransport, RequestContext, RpcServer, Target};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::sample::sample_object;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    SqliteFile,
    SqliteMemory,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    MySql,
}

pub(crate) struct Harness {
    pub objects: Objects,
    pub db: Database,
    server: Option<RpcServer>,
    cleanup: Option<(Database, String)>,
    file: Option<std::path::PathBuf>,
}

impl Harness {
    pub(crate) async fn finish(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        if let Some((admin, name)) = self.cleanup.take() {
            self.db.connection().clone().close().await.ok();
            admin
                .connection()
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                .await
                .ok();
        }
        if let Some(f) = self.file.take() {
            for ext in ["", "-wal", "-shm"] {
                std::fs::remove_file(format!("{}{ext}", f.display())).ok();
            }
        }
    }
}

fn unique_name() -> String {
    format!("nova_test_{}", uuid::Uuid::new_v4().simple())
}

async fn server_db(admin_url: &str, what: &str, env: &str) -> (Database, String, String) {
    Database::create_scratch(admin_url, "nova_test")
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{what} is not reachable at {admin_url} ({e}): start it (scripts/test does) \
                 or point {env} at one"
            )
        })
}

/// A conductor serving the object API from `db` on `transport`.
async fn start_conductor(db: &Database, transport: &Arc<MemoryTransport>) -> RpcServer {
    RpcServer::start(
        transport.clone(),
        Target::topic(nova_objects::CONDUCTOR_TOPIC).with_server("conductor1"),
        Dispatcher::new(vec![conductor_object_endpoint(Arc::new(db.clone()))]),
    )
    .await
    .unwrap()
}

pub(crate) async fn harness(backend: Backend, indirect: bool) -> Harness {
    let mut cleanup = None;
    let mut file = None;
    let db = match backend {
        Backend::SqliteMemory => Database::connect(&DbConfig::memory()).await.unwrap(),
        Backend::SqliteFile => {
            let path = std::env::temp_dir().join(format!("{}.sqlite", unique_name()));
            file = Some(path.clone());
            Database::connect(&DbConfig::sqlite_file(&path))
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let url = std::env::var("NOVA_RS_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let (admin, name, url) = server_db(&url, "PostgreSQL", "NOVA_RS_PG_URL").await;
            cleanup = Some((admin, name));
            Database::connect(&DbConfig::new(url)).await.unwrap()
        }
        Backend::MySql => {
            let url = std::env::var("NOVA_RS_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into());
            let (admin, name, url) = server_db(&url, "MariaDB/MySQL", "NOVA_RS_MYSQL_URL").await;
            cleanup = Some((admin, name));
            Database::connect(&DbConfig::new(url)).await.unwrap()
        }
    };
    assert_eq!(db.sync().await.unwrap(), Database::latest_schema_version());
    let (objects, server) = if indirect {
        let transport = MemoryTransport::new();
        let server = start_conductor(&db, &transport).await;
        (Objects::new(ConductorStore::new(transport)), Some(server))
    } else {
        (Objects::new(db.clone()), None)
    };
    Harness {
        objects,
        db,
        server,
        cleanup,
        file,
    }
}

fn admin() -> RequestContext {
    RequestContext::new()
        .with_user("admin")
        .with_project("admin")
        .with_admin(true)
}

fn user(project: &str) -> RequestContext {
    RequestContext::new().with_user("u").with_project(project)
}

fn flavor(name: &str) -> Flavor {
    Flavor::new()
        .with_name(Some(name.to_owned()))
        .with_flavorid(format!("id-{name}"))
        .with_vcpus(2)
        .with_memory_mb(2048)
        .with_root_gb(20)
        .with_ephemeral_gb(0)
        .with_swap(0)
        .with_extra_specs(
            [("hw:cpu_policy".to_owned(), "dedicated".to_owned())]
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
}

fn instance(n: usize, project: &str) -> Instance {
    Instance::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_project_id(Some(project.to_owned()))
        .with_user_id(Some("u".to_owned()))
        .with_display_name(Some(format!("vm-{n:02}")))
        .with_host(Some(format!("host{}", n % 3)))
        .with_vm_state(Some("building".to_owned()))
        .with_task_state(Some("scheduling".to_owned()))
        .with_vcpus(Some(2))
        .with_memory_mb(Some(2048))
        .with_flavor(flavor("m1.small"))
        .with_metadata(
            [("role".to_owned(), format!("r{}", n % 2))]
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .with_locked(false)
}

// ---------------------------------------------------------------- cases

pub(crate) async fn sync_is_idempotent_and_versioned(h: &Harness) {
    assert_eq!(h.db.sync().await.unwrap(), 0, "second sync must be a no-op");
    assert_eq!(
        h.db.schema_version().await.unwrap(),
        Some(Database::latest_schema_version())
    );
}

pub(crate) async fn instance_round_trips(h: &Harness) {
    let ctx = admin();
    let mut inst = instance(1, "p1");
    inst.set_launched_at(Some(
        chrono::DateTime::parse_from_rfc3339("2025-03-04T05:06:07Z")
            .unwrap()
            .to_utc(),
    ));
    h.objects.create(&ctx, &mut inst).await.unwrap();
    assert!(*inst.id() > 0, "create assigns the id");
    assert!(inst.created_at().is_some(), "create stamps created_at");
    assert!(inst.obj_what_changed().is_empty());
    let got: Instance = h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap();
    assert_eq!(got.obj_to_primitive(), inst.obj_to_primitive());
    assert_eq!(got.flavor().extra_specs()["hw:cpu_policy"], "dedicated");
    let by_id: Instance = h.objects.get(&ctx, Lookup::Id(*inst.id())).await.unwrap();
    assert_eq!(by_id.uuid(), inst.uuid());
    let err = h
        .objects
        .get_by_uuid::<Instance>(&ctx, &uuid::Uuid::new_v4().to_string())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("could not be found"), "{err}");
}

/// Every stored class, filled with a sample of every field, comes back equal.
pub(crate) async fn every_stored_class_round_trips(h: &Harness) {
    let ctx = admin();
    for (table, objname) in Database::tables() {
        let class = registry().get(objname).unwrap();
        let stored = Database::stored_fields(objname);
        for seed in [3u64, 8] {
            let mut prim = sample_object(class, seed, 2).unwrap();
            let data = prim["nova_object.data"].as_object_mut().unwrap();
            data.retain(|k, _| stored.contains(&k.as_str()));
            for k in ["id", "deleted", "deleted_at", "created_at", "updated_at"] {
                data.remove(k);
            }
            // Unique keys must differ between the two seeds.
            for (k, v) in data.iter_mut() {
                let kind = class.field(k).unwrap().kind.name();
                if (kind == "String" || kind == "UUID")
                    && ["uuid", "instance_uuid", "token", "flavorid", "name", "host"]
                        .contains(&k.as_str())
                {
                    *v = json!(if k.ends_with("uuid") {
                        uuid::Uuid::new_v4().to_string()
                    } else {
                        format!("{k}-{seed}-{}", uuid::Uuid::new_v4().simple())
                    });
                }
            }
            let obj = registry().decode(prim).unwrap();
            let created = h
                .objects
                .store()
                .create(&ctx, obj.to_value())
                .await
                .unwrap_or_else(|e| panic!("{table}: create failed: {e}"));
            let sent = obj.to_value();
            let sent = sent["nova_object.data"].as_object().unwrap();
            let back = created["nova_object.data"].as_object().unwrap();
            for (k, v) in sent {
                assert_eq!(back.get(k), Some(v), "{table}.{k} (seed {seed})");
            }
            let again = registry().decode(created.clone()).unwrap().to_value();
            assert_eq!(
                again["nova_object.data"], created["nova_object.data"],
                "{table}: stored primitive decodes"
            );
            // A read gives back what the write returned (on a SQLite file
            // the reads run on connections of their own, the write's
            // `RETURNING` on the pool: both decode the same columns).
            let Some(id) = created["nova_object.data"]["id"].as_i64() else {
                continue; // a class stored without a row id
            };
            let read =
                h.db.get(&ctx, objname, &Lookup::Id(id))
                    .await
                    .unwrap_or_else(|e| panic!("{table}: get failed: {e}"));
            assert_eq!(read, created, "{table}: a read returns what was written");
            let listed =
                h.db.list(&ctx, objname, &ListQuery::new().filter("id", id))
                    .await
                    .unwrap();
            if objname == "Instance" {
                // The joined read decodes its row straight into the object.
                let uuid = created["nova_object.data"]["uuid"].as_str().unwrap();
                let joined = h
                    .objects
                    .get_instance(&ctx, uuid, &["info_cache"])
                    .await
                    .unwrap();
                let mut joined = joined.obj_to_primitive();
                let data = joined["nova_object.data"].as_object_mut().unwrap();
                assert_eq!(data.remove("info_cache"), Some(Value::Null), "no cache");
                assert_eq!(joined, created, "the joined read of every field");
            }
            assert_eq!(
                listed,
                [created],
                "{table}: a list returns what was written"
            );
        }
    }
}

pub(crate) async fn save_writes_only_changed_fields(h: &Harness) {
    let ctx = admin();
    let mut inst = instance(2, "p1");
    h.objects.create(&ctx, &mut inst).await.unwrap();
    let mut a: Instance = h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap();
    let mut b: Instance = h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap();
    a.set_display_name(Some("renamed".to_owned()));
    b.set_host(Some("elsewhere".to_owned()));
    b.flavor_mut().set_vcpus(8);
    h.objects.save(&ctx, &mut a).await.unwrap();
    h.objects.save(&ctx, &mut b).await.unwrap();
    let got: Instance = h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap();
    assert_eq!(
        got.display_name().as_deref(),
        Some("renamed"),
        "a's change kept"
    );
    assert_eq!(got.host().as_deref(), Some("elsewhere"));
    assert_eq!(
        *got.flavor().vcpus(),
        8,
        "a nested object's change is saved"
    );
    assert!(got.updated_at().is_some(), "save stamps updated_at");
    assert_eq!(
        b.display_name().as_deref(),
        Some("renamed"),
        "save refreshes the object"
    );
}

pub(crate) async fn save_checks_expected_task_state(h: &Harness) {
    let ctx = admin();
    let mut inst = instance(3, "p1");
    h.objects.create(&ctx, &mut inst).await.unwrap();
    inst.set_task_state(Some("spawning".to_owned()));
    let err = h
        .objects
        .save_with(
            &ctx,
            &mut inst,
            &SaveOptions::expected_task_state([None::<&str>]),
        )
        .await
        .unwrap_err();
    match &err {
        Error::UnexpectedTaskState {
            instance_uuid,
            actual,
            expected,
        } => {
            assert_eq!(instance_uuid, inst.uuid());
            assert_eq!(actual, "'scheduling'");
            assert_eq!(expected, "{'task_state': [None]}");
        }
        other => panic!("expected UnexpectedTaskState, got {other:?}"),
    }
    let stored: Instance = h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap();
    assert_eq!(
        stored.task_state().as_deref(),
        Some("scheduling"),
        "nothing written"
    );

    // Two writers race from the same state: exactly one wins.
    let mut a: Instance = h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap();
    let mut b = a.clone();
    a.set_task_state(Some("spawning".to_owned()));
    b.set_task_state(Some("deleting".to_owned()));
    let exp = SaveOptions::expected_task_state([Some("scheduling")]);
    let (ra, rb) = tokio::join!(
        h.objects.save_with(&ctx, &mut a, &exp),
        h.objects.save_with(&ctx, &mut b, &exp)
    );
    assert!(
        ra.is_ok() != rb.is_ok(),
        "exactly one writer wins: {ra:?} {rb:?}"
    );
    let loser = ra.err().or(rb.err()).unwrap();
    assert!(
        matches!(loser, Error::UnexpectedTaskState { .. }),
        "{loser:?}"
    );
}

pub(crate) async fn soft_delete_keeps_rows_for_admins(h: &Harness) {
    let ctx = admin();
    let mut inst = instance(4, "p1");
    h.objects.create(&ctx, &mut inst).await.unwrap();
    h.objects.destroy(&ctx, &mut inst).await.unwrap();
    assert!(*inst.deleted());
    assert!(inst.deleted_at().is_some());
    let err = h
        .objects
        .get_by_uuid::<Instance>(&ctx, inst.uuid())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let mut rd = admin();
    rd.set("read_deleted", "yes");
    let got: Instance = h.objects.get_by_uuid(&rd, inst.uuid()).await.unwrap();
    assert!(*got.deleted());
    let mut only = admin();
    only.set("read_deleted", "only");
    let gone = h
        .objects
        .list::<Instance>(&only, &ListQuery::new())
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    let deleted = h
        .objects
        .list::<Instance>(&ctx, &ListQuery::new().filter("deleted", true))
        .await
        .unwrap();
    assert_eq!(
        deleted.len(),
        1,
        "admins list deleted instances with the deleted filter"
    );
    let mut nosy = user("p1");
    nosy.set("read_deleted", "yes");
    let err = h
        .objects
        .get_by_uuid::<Instance>(&nosy, inst.uuid())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    let err = h.objects.destroy(&ctx, &mut got.clone()).await.unwrap_err();
    assert!(err.is_not_found(), "deleting twice: {err}");

    // A soft-deleted row does not block its unique key.
    let mut f = flavor("m1.reuse");
    h.objects.create(&ctx, &mut f).await.unwrap();
    let err = h
        .objects
        .create(&ctx, &mut flavor("m1.reuse"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Exists { kind: "Flavor", .. }),
        "{err:?}"
    );
    h.objects.destroy(&ctx, &mut f).await.unwrap();
    h.objects
        .create(&ctx, &mut flavor("m1.reuse"))
        .await
        .unwrap();
}

pub(crate) async fn list_filters_sorts_and_pages(h: &Harness) {
    let ctx = admin();
    let mut all = Vec::new();
    for n in 0..23 {
        let mut i = instance(n, if n % 2 == 0 { "even" } else { "odd" });
        if n % 5 == 0 {
            i.set_display_name(None);
        }
        h.objects.create(&ctx, &mut i).await.unwrap();
        all.push(i);
    }
    let even = h
        .objects
        .list::<Instance>(&ctx, &ListQuery::new().filter("project_id", "even"))
        .await
        .unwrap();
    assert_eq!(even.len(), 12);
    let hosts = h
        .objects
        .list::<Instance>(
            &ctx,
            &ListQuery::new().filter("host", json!(["host0", "host1"])),
        )
        .await
        .unwrap();
    assert_eq!(
        hosts.len(),
        all.iter()
            .filter(|i| i.host().as_deref() != Some("host2"))
            .count()
    );
    assert_eq!(
        h.objects
            .count::<Instance>(&ctx, &ListQuery::new().filter("project_id", "odd").filters)
            .await
            .unwrap(),
        11
    );

    for dir in [SortDir::Asc, SortDir::Desc] {
        // Expected order: display_name (NULLs first ascending), then id.
        let mut want: Vec<(Option<String>, i64, String)> = all
            .iter()
            .map(|i| (i.display_name().clone(), *i.id(), i.uuid().clone()))
            .collect();
        want.sort();
        if dir == SortDir::Desc {
            want.reverse();
        }
        let want: Vec<String> = want.into_iter().map(|w| w.2).collect();
        let mut got = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut q = ListQuery::new()
                .sort("display_name", dir)
                .sort("id", dir)
                .limit(4);
            q.marker = marker.clone();
            let page = h.objects.list::<Instance>(&ctx, &q).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 4);
            marker = Some(page.last().unwrap().uuid().clone());
            got.extend(page.iter().map(|i| i.uuid().clone()));
        }
        assert_eq!(got, want, "pages in {dir:?} order");
    }

    // Regular expressions run in the database (NULL names match as "").
    let names = |q: ListQuery| {
        let objects = &h.objects;
        let ctx = &ctx;
        async move {
            let mut n: Vec<Option<String>> = objects
                .list::<Instance>(ctx, &q)
                .await
                .unwrap()
                .iter()
                .map(|i| i.display_name().clone())
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(
        names(ListQuery::new().regex("display_name", "^vm-1[3-4]")).await,
        vec![Some("vm-13".to_owned()), Some("vm-14".to_owned())]
    );
    assert_eq!(
        names(ListQuery::new().regex("display_name", "^$"))
            .await
            .len(),
        5,
        "NULL matches as the empty string"
    );
    assert_eq!(
        names(
            ListQuery::new()
                .regex("display_name", "2")
                .filter("project_id", "even")
        )
        .await,
        vec![
            Some("vm-02".to_owned()),
            Some("vm-12".to_owned()),
            Some("vm-22".to_owned())
        ]
    );
    // IN filters on states, with a page size and marker.
    let mut i = all[1].clone();
    i.set_vm_state(Some("active".into()));
    i.set_task_state(Some("rebooting".into()));
    h.objects.save(&ctx, &mut i).await.unwrap();
    let q = ListQuery::new()
        .filter("vm_state", json!(["active", "stopped"]))
        .filter("task_state", json!(["rebooting", "reboot_pending"]));
    let hits = h.objects.list::<Instance>(&ctx, &q).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].uuid(), i.uuid());
    // changes-since: the row just saved, and rows never updated by their
    // creation time.
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let q = ListQuery::new().filter("changes-since", since.as_str());
    assert_eq!(
        h.objects.list::<Instance>(&ctx, &q).await.unwrap().len(),
        23
    );
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let q = ListQuery::new().filter("changes-since", later.as_str());
    assert!(
        h.objects
            .list::<Instance>(&ctx, &q)
            .await
            .unwrap()
            .is_empty()
    );

    let err = h
        .objects
        .list::<Instance>(&ctx, &ListQuery::new().sort("flavor", SortDir::Asc))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidQuery(_)), "{err:?}");
    let err = h
        .objects
        .list::<Instance>(
            &ctx,
            &ListQuery::new().marker(uuid::Uuid::new_v4().to_string()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MarkerNotFound(_)), "{err:?}");
    let err = h
        .objects
        .list::<Instance>(&ctx, &ListQuery::new().filter("no_such_field", 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no_such_field"), "{err}");
}

/// A `TagList` primitive (nova's Tag 1.1 / TagList 1.1).
fn tag_list(uuid: &str, tags: &[&str]) -> nova_objects::RawObject {
    let objects: Vec<Value> = tags
        .iter()
        .map(|t| {
            json!({"nova_object.name": "Tag", "nova_object.namespace": "nova",
                   "nova_object.version": "1.1",
                   "nova_object.data": {"resource_id": uuid, "tag": t}})
        })
        .collect();
    nova_objects::RawObject(json!({"nova_object.name": "TagList",
        "nova_object.namespace": "nova", "nova_object.version": "1.1",
        "nova_object.data": {"objects": objects}}))
}

/// nova's `tags`, `tags-any`, `not-tags`, `not-tags-any` filters, in SQL:
/// exact tags (no prefix or wildcard matches, quotes and LIKE wildcards
/// taken literally), rows without tags included by the negative ones.
pub(crate) async fn tag_filters_run_in_the_database(h: &Harness) {
    let ctx = admin();
    let sets: [&[&str]; 5] = [
        &["a", "b"],
        &["a"],
        &["b", "c_%"],
        &["x\"tag\":\"a", "ab"],
        &[],
    ];
    let mut names = Vec::new();
    for (n, tags) in sets.iter().enumerate() {
        let mut i = instance(n, "tags");
        let uuid = i.uuid().clone();
        if !tags.is_empty() {
            i.set_tags(tag_list(&uuid, tags));
        }
        h.objects.create(&ctx, &mut i).await.unwrap();
        names.push(i.display_name().clone().unwrap());
    }
    let hits = |k: &'static str, v: Value| {
        let objects = &h.objects;
        let ctx = &ctx;
        async move {
            let q = ListQuery::new().filter("project_id", "tags").filter(k, v);
            let mut n: Vec<String> = objects
                .list::<Instance>(ctx, &q)
                .await
                .unwrap()
                .iter()
                .map(|i| i.display_name().clone().unwrap())
                .collect();
            n.sort();
            n
        }
    };
    let want = |idx: &[usize]| -> Vec<String> { idx.iter().map(|&i| names[i].clone()).collect() };
    assert_eq!(hits("tags", json!(["a"])).await, want(&[0, 1]));
    assert_eq!(hits("tags", json!(["a", "b"])).await, want(&[0]));
    assert_eq!(
        hits("tags-any", json!(["a", "c_%"])).await,
        want(&[0, 1, 2])
    );
    assert_eq!(hits("tags", json!(["c__"])).await, want(&[]));
    assert_eq!(hits("tags", json!(["c_%"])).await, want(&[2]));
    assert_eq!(
        hits("not-tags", json!(["a", "b"])).await,
        want(&[1, 2, 3, 4])
    );
    assert_eq!(
        hits("not-tags-any", json!(["a", "c_%"])).await,
        want(&[3, 4])
    );
    assert_eq!(hits("tags", json!(["x\"tag\":\"a"])).await, want(&[3]));
    let err = h
        .objects
        .list::<Instance>(&ctx, &ListQuery::new().filter("tags", json!([])))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidQuery(_)), "{err:?}");
}

/// A dict field expected as it was read: a read-modify-write of it is a
/// compare-and-swap (a racing writer's save fails and retries from a
/// fresh read, so both changes survive). The conductor path refuses it.
pub(crate) async fn save_compares_and_swaps_a_dict(h: &Harness) {
    let ctx = admin();
    let mut inst = instance(1, "cas");
    h.objects.create(&ctx, &mut inst).await.unwrap();
    let read: Instance = h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap();
    let cas = |m: &Instance| {
        let mut o = SaveOptions::default();
        o.expected
            .insert("metadata".into(), vec![json!(m.metadata())]);
        o
    };
    let (mut a, mut b) = (read.clone(), read.clone());
    a.metadata_mut().insert("a".into(), "1".into());
    b.metadata_mut().insert("b".into(), "2".into());
    let ra = h.objects.save_with(&ctx, &mut a, &cas(&read)).await;
    if h.server.is_some() {
        assert!(matches!(ra, Err(Error::InvalidQuery(_))), "{ra:?}");
        return;
    }
    ra.unwrap();
    let e = h
        .objects
        .save_with(&ctx, &mut b, &cas(&read))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnexpectedTaskState { .. }), "{e:?}");
    let fresh: Instance = h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap();
    let mut b = fresh.clone();
    b.metadata_mut().insert("b".into(), "2".into());
    h.objects
        .save_with(&ctx, &mut b, &cas(&fresh))
        .await
        .unwrap();
    let stored: Instance = h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap();
    let keys: Vec<&String> = stored.metadata().keys().collect();
    assert_eq!(keys, ["a", "b", "role"]);
}

pub(crate) async fn compute_objects_and_mappings(h: &Harness) {
    let ctx = admin();
    let mut svc = Service::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_host(Some("c1".to_owned()))
        .with_binary(Some("nova-compute".to_owned()))
        .with_topic(Some("compute".to_owned()))
        .with_report_count(0)
        .with_disabled(false)
        .with_version(66);
    h.objects.create(&ctx, &mut svc).await.unwrap();
    svc.set_report_count(1);
    h.objects.save(&ctx, &mut svc).await.unwrap();
    let got: Service = h
        .objects
        .get(&ctx, Lookup::field("host", "c1"))
        .await
        .unwrap();
    assert_eq!(*got.report_count(), 1);
    let err = h
        .objects
        .create(&ctx, &mut svc.clone().with_id(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ObjectAction { .. }),
        "creating a created object: {err:?}"
    );

    let mut cn = ComputeNode::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_host(Some("c1".to_owned()))
        .with_hypervisor_hostname(Some("c1.example".to_owned()))
        .with_vcpus(16)
        .with_memory_mb(65536)
        .with_local_gb(1000)
        .with_vcpus_used(0)
        .with_memory_mb_used(0)
        .with_local_gb_used(0)
        .with_hypervisor_type("fake")
        .with_hypervisor_version(1)
        .with_cpu_allocation_ratio(4.0)
        .with_ram_allocation_ratio(1.5)
        .with_disk_allocation_ratio(1.0)
        .with_service_id(Some(*svc.id()));
    h.objects.create(&ctx, &mut cn).await.unwrap();
    let got: ComputeNode = h.objects.get_by_uuid(&ctx, cn.uuid()).await.unwrap();
    assert_eq!(*got.ram_allocation_ratio(), 1.5);

    let mut cell = CellMapping::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_name(Some("cell1".to_owned()))
        .with_transport_url("rabbit://guest:guest@127.0.0.1:5672/")
        .with_database_connection("sqlite:///nova.db")
        .with_disabled(false);
    h.objects.create(&ctx, &mut cell).await.unwrap();
    let mut hm = HostMapping::new()
        .with_host("c1")
        .with_cell_mapping(cell.clone());
    h.objects.create(&ctx, &mut hm).await.unwrap();
    let got: HostMapping = h
        .objects
        .get(&ctx, Lookup::field("host", "c1"))
        .await
        .unwrap();
    assert_eq!(got.cell_mapping().uuid(), cell.uuid());

    let inst = instance(9, "p1");
    let mut br = BuildRequest::new()
        .with_instance_uuid(inst.uuid().clone())
        .with_project_id("p1")
        .with_instance(inst.clone());
    h.objects.create(&ctx, &mut br).await.unwrap();
    let got: BuildRequest = h
        .objects
        .get(&ctx, Lookup::field("instance_uuid", inst.uuid().as_str()))
        .await
        .unwrap();
    assert_eq!(got.instance().display_name(), inst.display_name());
    h.objects.destroy(&ctx, &mut br).await.unwrap();
    let err = h
        .objects
        .get::<BuildRequest>(&ctx, Lookup::field("instance_uuid", inst.uuid().as_str()))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "build requests are hard deleted: {err}");

    // No id field: rows are found by their unique key.
    let mut cache = InstanceInfoCache::new().with_instance_uuid(inst.uuid().clone());
    h.objects.create(&ctx, &mut cache).await.unwrap();
    cache.set_network_info(Some("[{\"id\": \"port1\"}]".to_owned()));
    h.objects.save(&ctx, &mut cache).await.unwrap();
    let got: InstanceInfoCache = h
        .objects
        .get(&ctx, Lookup::field("instance_uuid", inst.uuid().as_str()))
        .await
        .unwrap();
    assert_eq!(got.network_info().as_deref(), Some("[{\"id\": \"port1\"}]"));

    let mut kp = KeyPair::new()
        .with_name("k1")
        .with_user_id(Some("u".to_owned()))
        .with_type("ssh")
        .with_public_key(Some("ssh-ed25519 AAAA".to_owned()));
    h.objects.create(&ctx, &mut kp).await.unwrap();
    let err = h.objects.create(&ctx, &mut kp.clone().with_id(0)).await;
    assert!(err.is_err());
    let mut agg = Aggregate::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_name("az1-agg")
        .with_hosts(Some(vec!["c1".to_owned()]));
    h.objects.create(&ctx, &mut agg).await.unwrap();
    agg.hosts_mut()
        .get_or_insert_with(Vec::new)
        .push("c2".to_owned());
    h.objects.save(&ctx, &mut agg).await.unwrap();
    let got: Aggregate = h.objects.get_by_uuid(&ctx, agg.uuid()).await.unwrap();
    assert_eq!(
        got.hosts().as_deref(),
        Some(&["c1".to_owned(), "c2".to_owned()][..])
    );
}

/// Faults and the info cache live in their own tables and load on demand.
pub(crate) async fn instance_attrs_load_from_their_tables(h: &Harness) {
    use nova_objects::InstanceFault;
    let ctx = admin();
    let mut inst = instance(5, "p1");
    h.objects.create(&ctx, &mut inst).await.unwrap();
    h.objects
        .load_instance_attrs(&ctx, &mut inst, &["fault", "info_cache"])
        .await
        .unwrap();
    assert!(inst.fault().is_none() && inst.info_cache().is_none());
    let bare = h
        .objects
        .get_instance(&ctx, inst.uuid(), &["info_cache"])
        .await
        .unwrap();
    assert!(bare.info_cache().is_none(), "no cache row: none");
    assert_eq!(bare.display_name(), inst.display_name());
    for (code, msg, at) in [
        (500, "old", "2025-01-01T00:00:00Z"),
        (500, "No valid host was found.", "2025-01-02T00:00:00Z"),
    ] {
        let mut f = InstanceFault::new()
            .with_instance_uuid(inst.uuid().clone())
            .with_code(code)
            .with_message(Some(msg.to_owned()))
            .with_created_at(Some(
                chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc(),
            ));
        h.objects.create(&ctx, &mut f).await.unwrap();
    }
    let mut cache = InstanceInfoCache::new()
        .with_instance_uuid(inst.uuid().clone())
        .with_network_info(Some("[]".to_owned()));
    h.objects.create(&ctx, &mut cache).await.unwrap();
    let mut got: Instance = h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap();
    h.objects
        .load_instance_attrs(&ctx, &mut got, &["fault", "info_cache"])
        .await
        .unwrap();
    assert_eq!(
        got.fault().as_ref().unwrap().message().as_deref(),
        Some("No valid host was found."),
        "the newest fault"
    );
    assert_eq!(
        got.info_cache().as_ref().unwrap().network_info().as_deref(),
        Some("[]")
    );
    assert!(got.obj_what_changed().is_empty(), "loaded, not changed");

    // The same in one call, the info cache read with the instance.
    let joined = h
        .objects
        .get_instance(&ctx, inst.uuid(), &["info_cache", "fault"])
        .await
        .unwrap();
    assert_eq!(joined, got, "joined read == separate reads");
    assert!(joined.obj_what_changed().is_empty(), "loaded, not changed");
    // A deleted instance is not found (its cache is still there), unless
    // the context reads deleted rows.
    let mut gone = instance(7, "p1");
    h.objects.create(&ctx, &mut gone).await.unwrap();
    let mut cache = InstanceInfoCache::new()
        .with_instance_uuid(gone.uuid().clone())
        .with_network_info(Some("[{\"id\": \"p\"}]".to_owned()));
    h.objects.create(&ctx, &mut cache).await.unwrap();
    h.objects.destroy(&ctx, &mut gone).await.unwrap();
    let err = h
        .objects
        .get_instance(&ctx, gone.uuid(), &["info_cache"])
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let mut deleted_ctx = admin();
    deleted_ctx.set("read_deleted", "yes");
    let found = h
        .objects
        .get_instance(&deleted_ctx, gone.uuid(), &["info_cache"])
        .await
        .unwrap();
    assert!(*found.deleted());

    // A page of instances: their caches in one query (one read each
    // through the conductor); one without a cache gets none.
    let mut other = instance(6, "p1");
    h.objects.create(&ctx, &mut other).await.unwrap();
    let mut page: Vec<Instance> = vec![
        h.objects.get_by_uuid(&ctx, other.uuid()).await.unwrap(),
        h.objects.get_by_uuid(&ctx, inst.uuid()).await.unwrap(),
    ];
    h.objects.load_info_caches(&ctx, &mut page).await.unwrap();
    assert!(page[0].obj_attr_is_set("info_cache") && page[0].info_cache().is_none());
    assert_eq!(
        page[1]
            .info_cache()
            .as_ref()
            .unwrap()
            .network_info()
            .as_deref(),
        Some("[]")
    );
    assert!(page.iter().all(|i| i.obj_what_changed().is_empty()));
    let err = h
        .objects
        .load_instance_attrs(&ctx, &mut got, &["flavor"])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidQuery(_)), "{err:?}");

    // A nested object newer than this build stored in a JSON column: both
    // reads give the typed error reading its primitive gives.
    let newer = r#"{"nova_object.name": "Flavor", "nova_object.namespace": "nova", "nova_object.version": "9.0", "nova_object.data": {"flavorid": "f"}}"#;
    h.db.connection()
        .execute_unprepared(&format!(
            "UPDATE instances SET flavor = '{newer}' WHERE uuid = '{}'",
            inst.uuid()
        ))
        .await
        .unwrap();
    for attrs in [&["info_cache"][..], &[]] {
        let err = h
            .objects
            .get_instance(&ctx, inst.uuid(), attrs)
            .await
            .unwrap_err();
        // (Through the conductor: the remote error it carries.)
        assert_eq!(
            err.to_remote().class,
            "IncompatibleObjectVersion",
            "{attrs:?}: {err:?}"
        );
    }
}

/// Many writers at once on one database: nothing deadlocks, nothing is lost.
pub(crate) async fn concurrent_writers(h: &Harness) {
    let ctx = admin();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let objects = h.objects.clone();
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..10 {
                let mut i = instance(w * 100 + n, "busy");
                objects.create(&ctx, &mut i).await?;
                i.set_task_state(None);
                objects
                    .save_with(
                        &ctx,
                        &mut i,
                        &SaveOptions::expected_task_state([Some("scheduling")]),
                    )
                    .await?;
                let _: Vec<Instance> = objects
                    .list(
                        &ctx,
                        &ListQuery::new().filter("project_id", "busy").limit(5),
                    )
                    .await?;
            }
            Ok::<_, Error>(())
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("concurrent writers deadlocked");
    let n = h
        .objects
        .count::<Instance>(
            &ctx,
            &ListQuery::new()
                .filter("task_state", Value::Null)
                .filter("project_id", "busy")
                .filters,
        )
        .await
        .unwrap();
    assert_eq!(n, 80);
}

/// A write while another connection's transaction holds the database
/// (SQLite: the whole file, so the write waits for it; a server: another
/// row, so it does not) lands once that commits, and both writes stay.
pub(crate) async fn writes_wait_for_another_transaction(h: &Harness) {
    use sea_orm::TransactionTrait as _;
    let ctx = admin();
    let (mut a, mut b) = (instance(41, "p"), instance(42, "p"));
    h.objects.create(&ctx, &mut a).await.unwrap();
    h.objects.create(&ctx, &mut b).await.unwrap();
    let tx = h.db.connection().begin().await.unwrap();
    tx.execute_unprepared(&format!(
        "UPDATE instances SET display_name = 'held' WHERE uuid = '{}'",
        a.uuid()
    ))
    .await
    .unwrap();
    let write = {
        let (objects, ctx) = (h.objects.clone(), ctx.clone());
        tokio::spawn(async move {
            b.set_display_name(Some("waited".into()));
            objects.save(&ctx, &mut b).await.map(|()| b)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    if h.db.backend_name() == "sqlite" {
        assert!(
            !write.is_finished(),
            "a write went past another connection's transaction"
        );
    }
    tx.commit().await.unwrap();
    let b = tokio::time::timeout(Duration::from_secs(30), write)
        .await
        .expect("the write waits no longer than the transaction")
        .unwrap()
        .unwrap();
    for (uuid, name) in [(a.uuid(), "held"), (b.uuid(), "waited")] {
        let seen: Instance = h.objects.get_by_uuid(&ctx, uuid).await.unwrap();
        assert_eq!(seen.display_name().as_deref(), Some(name));
    }
}

/// Reads see every write at once, more reads than connections wait for
/// one, and a read dropped half-way leaves the store working (SQLite
/// files read on connections of their own).
pub(crate) async fn reads_see_writes_and_survive_interruption(h: &Harness) {
    let ctx = admin();
    let mut inst = instance(1, "p");
    h.objects.create(&ctx, &mut inst).await.unwrap();
    let uuid = inst.uuid().clone();
    for n in 0..5 {
        inst.set_display_name(Some(format!("name-{n}")));
        h.objects.save(&ctx, &mut inst).await.unwrap();
        let seen: Instance = h.objects.get_by_uuid(&ctx, &uuid).await.unwrap();
        assert_eq!(
            seen.display_name().as_deref(),
            Some(format!("name-{n}").as_str())
        );
    }
    // Reads abandoned before they finish.
    for _ in 0..20 {
        let read = h.objects.get_by_uuid::<Instance>(&ctx, &uuid);
        let _ = tokio::time::timeout(Duration::from_micros(1), read).await;
    }
    // More concurrent reads than any pool has connections.
    let reads = (0..40).map(|_| {
        let (objects, ctx, uuid) = (h.objects.clone(), ctx.clone(), uuid.clone());
        tokio::spawn(async move {
            let i: Instance = objects.get_by_uuid(&ctx, &uuid).await.unwrap();
            let n = objects
                .count::<Instance>(
                    &ctx,
                    &ListQuery::new().filter("uuid", uuid.as_str()).filters,
                )
                .await
                .unwrap();
            (i.display_name().clone(), n)
        })
    });
    for r in reads.collect::<Vec<_>>() {
        assert_eq!(r.await.unwrap(), (Some("name-4".to_owned()), 1));
    }
    // The show's joined read, repeated while nothing changes (a SQLite
    // file keeps what it decoded), sees every write: the store's, a raw
    // statement on another connection, its info cache's.
    let show = |attrs: &'static [&'static str]| {
        let (objects, ctx, uuid) = (h.objects.clone(), ctx.clone(), uuid.clone());
        async move { objects.get_instance(&ctx, &uuid, attrs).await }
    };
    for n in 0..3 {
        for _ in 0..3 {
            let seen = show(&["info_cache"]).await.unwrap();
            assert_eq!(
                seen,
                show(&[])
                    .await
                    .unwrap()
                    .with_info_cache(seen.info_cache().clone())
            );
        }
        inst.set_display_name(Some(format!("shown-{n}")));
        h.objects.save(&ctx, &mut inst).await.unwrap();
        let seen = show(&["info_cache"]).await.unwrap();
        assert_eq!(
            seen.display_name().as_deref(),
            Some(format!("shown-{n}").as_str())
        );
        h.db.connection()
            .execute_unprepared(&format!(
                "UPDATE instances SET display_name = 'raw-{n}' WHERE uuid = '{uuid}'"
            ))
            .await
            .unwrap();
        let seen = show(&["info_cache"]).await.unwrap();
        assert_eq!(
            seen.display_name().as_deref(),
            Some(format!("raw-{n}").as_str())
        );
        inst = h.objects.get_by_uuid(&ctx, &uuid).await.unwrap();
    }
    let mut cache = InstanceInfoCache::new()
        .with_instance_uuid(uuid.clone())
        .with_network_info(Some("[]".to_owned()));
    h.objects.create(&ctx, &mut cache).await.unwrap();
    let seen = show(&["info_cache"]).await.unwrap();
    assert_eq!(
        seen.info_cache()
            .as_ref()
            .unwrap()
            .network_info()
            .as_deref(),
        Some("[]")
    );
    h.objects.destroy(&ctx, &mut inst).await.unwrap();
    let gone = h.objects.get_by_uuid::<Instance>(&ctx, &uuid).await;
    assert!(gone.unwrap_err().is_not_found());
    let gone = show(&["info_cache"]).await;
    assert!(
        gone.unwrap_err().is_not_found(),
        "a destroyed instance is not shown"
    );
}

/// nova's `VirtualInterface` records: one per port (uuid = port id,
/// address = MAC, the device tag), `network_id` left unset as nova leaves
/// it with Neutron, listed by instance, destroyed one by one (a detach)
/// and all with their instance (nova's `instance_destroy`).
pub(crate) async fn virtual_interfaces_of_an_instance(h: &Harness) {
    let ctx = admin();
    let mut inst = instance(31, "p1");
    h.objects.create(&ctx, &mut inst).await.unwrap();
    let uuid = inst.uuid().clone();
    let mut other = instance(32, "p1");
    h.objects.create(&ctx, &mut other).await.unwrap();
    let port = |n: u8| format!("00000000-0000-4000-8000-0000000000{n:02}");
    let mut made = vec![];
    for (n, inst_uuid, tag) in [
        (1u8, &uuid, Some("nic1")),
        (2, &uuid, None),
        (3, other.uuid(), Some("x")),
    ] {
        let mut vif = VirtualInterface::new()
            .with_uuid(port(n))
            .with_address(Some(format!("fa:16:3e:00:00:{n:02x}")))
            .with_instance_uuid(inst_uuid.clone())
            .with_tag(tag.map(str::to_owned));
        h.objects.create(&ctx, &mut vif).await.unwrap();
        assert!(*vif.id() > 0);
        made.push(vif);
    }
    // A MAC is one live interface's.
    let mut twin = VirtualInterface::new()
        .with_uuid(port(9))
        .with_address(Some("fa:16:3e:00:00:01".into()))
        .with_instance_uuid(uuid.clone());
    assert!(h.objects.create(&ctx, &mut twin).await.is_err());
    let of = |u: String| ListQuery::new().filter("instance_uuid", u);
    let mine: Vec<VirtualInterface> = h.objects.list(&ctx, &of(uuid.clone())).await.unwrap();
    assert_eq!(mine.len(), 2);
    let tagged = mine.iter().find(|v| *v.uuid() == port(1)).unwrap();
    assert_eq!(tagged.tag().as_deref(), Some("nic1"));
    assert_eq!(tagged.address().as_deref(), Some("fa:16:3e:00:00:01"));
    assert!(
        !tagged.obj_attr_is_set("network_id"),
        "network_id stays unset"
    );
    let got: VirtualInterface = h.objects.get_by_uuid(&ctx, &port(2)).await.unwrap();
    assert_eq!(got.tag(), &None);
    assert_eq!(got.instance_uuid(), &uuid);
    // A detach: that record only.
    let mut one = got;
    h.objects.destroy(&ctx, &mut one).await.unwrap();
    let left: Vec<VirtualInterface> = h.objects.list(&ctx, &of(uuid.clone())).await.unwrap();
    assert_eq!(left.len(), 1);
    // The instance's destroy takes the rest, not the other instance's.
    h.objects.destroy(&ctx, &mut inst).await.unwrap();
    let left: Vec<VirtualInterface> = h.objects.list(&ctx, &of(uuid.clone())).await.unwrap();
    assert!(left.is_empty());
    let theirs: Vec<VirtualInterface> = h
        .objects
        .list(&ctx, &of(other.uuid().clone()))
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    let mut rd = admin();
    rd.set("read_deleted", "yes");
    let kept: Vec<VirtualInterface> = h.objects.list(&rd, &of(uuid)).await.unwrap();
    assert_eq!(kept.len(), 2, "soft-deleted, as nova's");
    assert!(kept.iter().all(|v| *v.deleted()));
}

/// Nova's `InstanceActionEvent.event_start` / `event_finish_with_failure`
/// (one conductor call each through the indirection): the event lands
/// on the action of the caller's request and moves its `updated_at`; a
/// failure marks the action `Error`; a service's own context (no
/// project) records on the newest action without moving it.
pub(crate) async fn action_events_follow_the_request(h: &Harness) {
    let ctx = admin();
    let uuid = "00000000-0000-4000-8000-00000000a001";
    let old: chrono::DateTime<chrono::Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut made = vec![];
    for rid in ["req-1", "req-2"] {
        let mut a = InstanceAction::new()
            .with_action(Some("pause".into()))
            .with_instance_uuid(Some(uuid.into()))
            .with_request_id(Some(rid.into()))
            .with_project_id(Some("p1".into()))
            .with_start_time(Some(old))
            .with_updated_at(Some(old));
        h.objects.create(&ctx, &mut a).await.unwrap();
        made.push(a);
    }
    let store = h.objects.store();
    let req1 = user("p1").with_request_id("req-1");
    store
        .action_event_start(&req1, uuid, "compute_pause_instance", Some("h1"))
        .await
        .unwrap();
    let events_of = |id: i64| ListQuery::new().filter("action_id", id);
    let events: Vec<InstanceActionEvent> = h
        .objects
        .list(&ctx, &events_of(*made[0].id()))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].host().as_deref(), Some("h1"));
    assert!(events[0].start_time().is_some());
    assert_eq!(events[0].result(), &None);
    let a1: InstanceAction = h
        .objects
        .get(&ctx, Lookup::Id(*made[0].id()))
        .await
        .unwrap();
    assert!(
        a1.updated_at().is_some_and(|t| t > old),
        "the event moves updated_at"
    );
    let a2: InstanceAction = h
        .objects
        .get(&ctx, Lookup::Id(*made[1].id()))
        .await
        .unwrap();
    assert_eq!(
        a2.updated_at(),
        &Some(old),
        "the other request's action stays"
    );

    let failed = EventOutcome::Error {
        details: "No valid host".into(),
        traceback: "Traceback (most recent call last):\n  0: No valid host\n".into(),
    };
    store
        .action_event_finish(&req1, uuid, "compute_pause_instance", &failed)
        .await
        .unwrap();
    let events: Vec<InstanceActionEvent> = h
        .objects
        .list(&ctx, &events_of(*made[0].id()))
        .await
        .unwrap();
    assert_eq!(events[0].result().as_deref(), Some("Error"));
    assert_eq!(events[0].details().as_deref(), Some("No valid host"));
    assert!(
        events[0]
            .traceback()
            .as_deref()
            .is_some_and(|t| t.contains("No valid host"))
    );
    assert!(events[0].finish_time().is_some());
    let a1: InstanceAction = h
        .objects
        .get(&ctx, Lookup::Id(*made[0].id()))
        .await
        .unwrap();
    assert_eq!(a1.message().as_deref(), Some("Error"));

    // No such request, no such event: nova's InstanceActionNotFound, typed
    // again on the compute's side of the indirection.
    let stranger = user("p1").with_request_id("req-9");
    let e = store
        .action_event_start(&stranger, uuid, "compute_pause_instance", Some("h1"))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = store
        .action_event_finish(
            &req1,
            uuid,
            "compute_unpause_instance",
            &EventOutcome::Success,
        )
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");

    // A service's own context: the newest action, its updated_at kept.
    let service = RequestContext::new().with_request_id("req-init");
    store
        .action_event_start(&service, uuid, "compute_init_instance", None)
        .await
        .unwrap();
    store
        .action_event_finish(
            &service,
            uuid,
            "compute_init_instance",
            &EventOutcome::Success,
        )
        .await
        .unwrap();
    let events: Vec<InstanceActionEvent> = h
        .objects
        .list(&ctx, &events_of(*made[1].id()))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].result().as_deref(), Some("Success"));
    assert_eq!(events[0].host(), &None);
    let a2: InstanceAction = h
        .objects
        .get(&ctx, Lookup::Id(*made[1].id()))
        .await
        .unwrap();
    assert_eq!(a2.updated_at(), &Some(old));
}

/// Nova's `InstanceList.get_counts`: live instances of the project, with
/// their vCPUs and RAM, the user's among them; soft-deleted, hidden and
/// deleted instances and other projects' do not count.
pub(crate) async fn instance_counts_leave_out_what_nova_does(h: &Harness) {
    use nova_objects::{InstanceCounts, UsageCounts};
    let ctx = admin();
    let counts = |project: &'static str, user: Option<&'static str>| {
        let store = h.objects.store().clone();
        let ctx = ctx.clone();
        async move { store.instance_counts(&ctx, project, user).await.unwrap() }
    };
    assert_eq!(
        counts("p", Some("u")).await,
        InstanceCounts {
            project: UsageCounts::default(),
            user: Some(UsageCounts::default()),
        }
    );
    let made = [
        instance(1, "p"),
        instance(2, "p")
            .with_user_id(Some("v".into()))
            .with_vcpus(Some(4))
            .with_memory_mb(Some(512)),
        instance(3, "p").with_vm_state(Some("soft-delete".into())),
        instance(4, "p").with_hidden(true),
        instance(5, "p"),
        instance(6, "q"),
        instance(7, "p").with_vcpus(None),
    ];
    for mut i in made {
        h.objects.create(&ctx, &mut i).await.unwrap();
        if i.display_name().as_deref() == Some("vm-05") {
            h.objects.destroy(&ctx, &mut i).await.unwrap();
        }
    }
    let c = counts("p", Some("u")).await;
    assert_eq!(
        c.project,
        UsageCounts {
            instances: 3,
            cores: 6,
            ram: 4608
        }
    );
    assert_eq!(
        c.user,
        Some(UsageCounts {
            instances: 2,
            cores: 2,
            ram: 4096
        })
    );
    assert_eq!(counts("p", None).await.user, None);
    assert_eq!(
        counts("p", Some("w")).await.user,
        Some(UsageCounts::default())
    );
    assert_eq!(counts("q", None).await.project.instances, 1);
    // nova's answer on the wire.
    assert_eq!(
        c.to_value(),
        json!({"project": {"instances": 3, "cores": 6, "ram": 4608},
               "user": {"instances": 2, "cores": 2, "ram": 4096}})
    );
    assert_eq!(InstanceCounts::from_value(&c.to_value()).unwrap(), c);
    // A store with only the plain operations counts the same by listing.
    let plain = PlainStore(h.db.clone());
    for (p, u) in [("p", Some("u")), ("p", None), ("q", Some("w"))] {
        let listed = nova_objects::ObjectStore::instance_counts(&plain, &ctx, p, u)
            .await
            .unwrap();
        assert_eq!(listed, counts(p, u).await, "{p} {u:?}");
    }
}

/// A store offering only the required operations (the defaults of the
/// others run over them), on a database.
#[derive(Debug)]
struct PlainStore(Database);

#[async_trait::async_trait]
impl nova_objects::ObjectStore for PlainStore {
    async fn create(&self, ctx: &RequestContext, obj: Value) -> nova_objects::Result<Value> {
        self.0.create(ctx, obj).await
    }
    async fn save(
        &self,
        ctx: &RequestContext,
        obj: Value,
        opts: &SaveOptions,
    ) -> nova_objects::Result<Value> {
        self.0.save(ctx, obj, opts).await
    }
    async fn destroy(&self, ctx: &RequestContext, obj: Value) -> nova_objects::Result<Value> {
        self.0.destroy(ctx, obj).await
    }
    async fn get(
        &self,
        ctx: &RequestContext,
        objname: &str,
        by: &Lookup,
    ) -> nova_objects::Result<Value> {
        self.0.get(ctx, objname, by).await
    }
    async fn list(
        &self,
        ctx: &RequestContext,
        objname: &str,
        q: &ListQuery,
    ) -> nova_objects::Result<Vec<Value>> {
        self.0.list(ctx, objname, q).await
    }
    async fn count(
        &self,
        ctx: &RequestContext,
        objname: &str,
        filters: &serde_json::Map<String, Value>,
    ) -> nova_objects::Result<u64> {
        self.0.count(ctx, objname, filters).await
    }
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        macro_rules! on_backend {
            ($modname:ident, $backend:expr, $indirect:expr) => {
                mod $modname {
                    $(
                        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                        async fn $case() {
                            let h = super::harness($backend, $indirect).await;
                            super::$case(&h).await;
                            h.finish().await;
                        }
                    )*
                }
            };
        }
        on_backend!(sqlite, super::Backend::SqliteFile, false);
        on_backend!(sqlite_memory, super::Backend::SqliteMemory, false);
        on_backend!(indirection, super::Backend::SqliteFile, true);
        #[cfg(feature = "postgres")]
        on_backend!(postgres, super::Backend::Postgres, false);
        #[cfg(feature = "mysql")]
        on_backend!(mariadb, super::Backend::MySql, false);
    };
}

contract!(
    sync_is_idempotent_and_versioned,
    instance_round_trips,
    every_stored_class_round_trips,
    save_writes_only_changed_fields,
    save_checks_expected_task_state,
    save_compares_and_swaps_a_dict,
    soft_delete_keeps_rows_for_admins,
    list_filters_sorts_and_pages,
    tag_filters_run_in_the_database,
    compute_objects_and_mappings,
    instance_attrs_load_from_their_tables,
    concurrent_writers,
    writes_wait_for_another_transaction,
    reads_see_writes_and_survive_interruption,
    virtual_interfaces_of_an_instance,
    action_events_follow_the_request,
    instance_counts_leave_out_what_nova_does,
);

/// A SQLite file's WAL stays short under a stream of writes (the
/// store's write connection has the log checkpointed past 1,000 pages,
/// itself when the pool's checkpoints do not keep up): 6,000 commits of at
/// least a page each would leave it above 24 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_stays_short_under_writes() {
    let h = harness(Backend::SqliteFile, false).await;
    let ctx = admin();
    let mut inst = instance(1, "p");
    h.objects.create(&ctx, &mut inst).await.unwrap();
    for n in 0..6000 {
        inst.set_display_name(Some(format!("vm-{n}")));
        h.objects.save(&ctx, &mut inst).await.unwrap();
    }
    let wal = h
        .file
        .as_ref()
        .map(|f| format!("{}-wal", f.display()))
        .unwrap();
    let size = std::fs::metadata(&wal).unwrap().len();
    assert!(size < 20 << 20, "{wal}: {size} bytes");
    h.finish().await;
}

/// An older caller (Instance 2.7) gets what it can read from the
/// conductor; bad input gets nova's exception classes, and the conductor
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conductor_backports_for_older_callers_and_refuses_bad_input() {
    let db = Database::connect(&DbConfig::memory()).await.unwrap();
    db.sync().await.unwrap();
    let transport = MemoryTransport::new();
    let server = start_conductor(&db, &transport).await;
    let ctx = admin();
    let mut inst = instance(1, "p").with_compute_id(Some(7));
    Objects::new(db.clone())
        .create(&ctx, &mut inst)
        .await
        .unwrap();

    let client = nova_rpc::RpcClient::new(transport, Target::topic("conductor"))
        .version(nova_objects::CONDUCTOR_API_VERSION);
    let mut versions = serde_json::Map::new();
    for (k, v) in Instance::obj_tree_versions() {
        versions.insert(k, json!(v.to_string()));
    }
    versions.insert("Instance".into(), json!("2.7"));
    let old = client
        .call_value(
            &ctx,
            "object_class_action_versions",
            json!({"objname": "Instance", "objmethod": "get_by_uuid",
                   "object_versions": versions, "args": [inst.uuid()], "kwargs": {}}),
        )
        .await
        .unwrap();
    assert_eq!(old["nova_object.version"], "2.7");
    assert!(
        old["nova_object.data"].get("compute_id").is_none(),
        "2.8's field dropped"
    );
    assert_eq!(old["nova_object.data"]["uuid"], json!(inst.uuid()));

    let err = client
        .call_value(
            &ctx,
            "object_action",
            json!({"objinst": {"nova_object.name": "Instance"}, "objmethod": "save", "args": [], "kwargs": {}}),
        )
        .await
        .unwrap_err();
    let r = err.remote().expect("a remote error");
    assert_eq!(r.class, "UnsupportedObjectError", "{r:?}");
    let err = client
        .call_value(
            &ctx,
            "object_action",
            json!({"objinst": {"nova_object.name": "Instance", "nova_object.namespace": "nova",
                               "nova_object.version": "2.8", "nova_object.data": {"vcpus": "many"}},
                   "objmethod": "save", "args": [], "kwargs": {}}),
        )
        .await
        .unwrap_err();
    let r = err.remote().expect("a remote error");
    assert_eq!(r.class, "ValueError", "{r:?}");
    assert!(r.message.contains("vcpus"), "{r:?}");
    let err = client
        .call_value(
            &ctx,
            "object_class_action_versions",
            json!({"objname": "Instance", "objmethod": "drop_all_tables",
                   "object_versions": versions, "args": [], "kwargs": {}}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.remote().unwrap().class, "ObjectActionError");
    let err = client
        .call_value(
            &ctx,
            "object_class_action_versions",
            json!({"objname": "Instance", "objmethod": "get_by_uuid",
                   "object_versions": versions, "args": ["nope"], "kwargs": {}}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.remote().unwrap().class, "InstanceNotFound");
    // nova's EventReporter, as its compute sends it: `event_start` and
    // `event_finish_with_failure` (exc_val / exc_tb made strings by
    // serialize_args, want_result False): nothing answered, the event
    // recorded; no action for the request is InstanceActionNotFound.
    let mut action = nova_objects::InstanceAction::new()
        .with_action(Some("reboot".into()))
        .with_instance_uuid(Some(inst.uuid().clone()))
        .with_request_id(Some("req-wire".into()))
        .with_project_id(Some("p".into()));
    Objects::new(db.clone())
        .create(&ctx, &mut action)
        .await
        .unwrap();
    let req = RequestContext::new()
        .with_project("p")
        .with_request_id("req-wire");
    let ev = |method: &str, kwargs: Value| {
        json!({"objname": "InstanceActionEvent", "objmethod": method,
               "object_versions": {"InstanceActionEvent": "1.4"},
               "args": [inst.uuid(), "compute_reboot_instance"], "kwargs": kwargs})
    };
    let started = client
        .call_value(
            &req,
            "object_class_action_versions",
            ev("event_start", json!({"want_result": false, "host": "c1"})),
        )
        .await
        .unwrap();
    assert_eq!(started, Value::Null);
    let finished = client
        .call_value(
            &req,
            "object_class_action_versions",
            ev(
                "event_finish_with_failure",
                json!({"exc_val": "boom",
                "exc_tb": "Traceback (most recent call last):\n", "want_result": false}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(finished, Value::Null);
    let events: Vec<nova_objects::InstanceActionEvent> = Objects::new(db.clone())
        .list(&ctx, &ListQuery::new().filter("action_id", *action.id()))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].result().as_deref(), Some("Error"));
    assert_eq!(events[0].details().as_deref(), Some("boom"));
    assert_eq!(events[0].host().as_deref(), Some("c1"));
    let other = RequestContext::new()
        .with_project("p")
        .with_request_id("req-none");
    let err = client
        .call_value(
            &other,
            "object_class_action_versions",
            ev("event_start", json!({"want_result": false, "host": "c1"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.remote().unwrap().class, "InstanceActionNotFound");
    // Still serving.
    let again = client
        .call_value(
            &ctx,
            "object_backport_versions",
            json!({"objinst": old, "object_versions": {"Instance": "2.6"}}),
        )
        .await
        .unwrap();
    assert_eq!(again["nova_object.version"], "2.6");
    server.stop().await;
}

/// Waits until a session of `db` waits for a lock (`terminate`: and ends
/// it, as an administrator's `pg_terminate_backend` or a restart would);
/// panics after 10 s. Asked outside a transaction: inside one,
/// `pg_stat_activity` keeps the picture of its first read.
#[cfg(feature = "postgres")]
async fn end_the_waiting_session(db: &Database, terminate: bool, why: &str) {
    let what = if terminate {
        "pg_terminate_backend(pid)"
    } else {
        "pid"
    };
    let sql = format!(
        "SELECT {what} FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = db
            .connection()
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql.clone(),
            ))
            .await
            .unwrap();
        if !rows.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no session waits for the lock: {why}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// PostgreSQL ends the session a statement runs on (a restart, a
/// failover, an administrator's kill): a read runs again on another
/// connection and answers; a write is not run twice (it may have
/// committed) and fails as oslo.db's `DBConnectionError`, which the
/// conductor sends as such and callers tell from other database errors.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_under_a_statement_reads_again_and_fails_writes_as_unavailable() {
    use sea_orm::TransactionTrait;
    let h = harness(Backend::Postgres, false).await;
    let ctx = admin();
    let mut inst = instance(1, "p");
    h.objects.create(&ctx, &mut inst).await.unwrap();
    let uuid = inst.uuid().clone();
    let lock = "LOCK TABLE instances IN ACCESS EXCLUSIVE MODE";

    // A read blocked behind a lock loses its session, then reads again.
    let tx = h.db.connection().begin().await.unwrap();
    tx.execute_unprepared(lock).await.unwrap();
    let read = tokio::spawn({
        let (objects, ctx, uuid) = (h.objects.clone(), ctx.clone(), uuid.clone());
        async move { objects.get_by_uuid::<Instance>(&ctx, &uuid).await }
    });
    end_the_waiting_session(&h.db, true, "the read").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    if read.is_finished() {
        panic!("the read ended: {:?}", read.await.unwrap().map(|_| ()));
    }
    end_the_waiting_session(&h.db, false, "the read's second try").await;
    tx.commit().await.unwrap();
    let got = read.await.unwrap().unwrap();
    assert_eq!(got.uuid(), &uuid);

    // A write loses its session: unavailable, and nothing written.
    let tx = h.db.connection().begin().await.unwrap();
    tx.execute_unprepared(lock).await.unwrap();
    let write = tokio::spawn({
        let (objects, ctx, mut inst) = (h.objects.clone(), ctx.clone(), inst.clone());
        async move {
            inst.set_display_name(Some("renamed".into()));
            objects.save(&ctx, &mut inst).await
        }
    });
    end_the_waiting_session(&h.db, true, "the write").await;
    let e = write.await.unwrap().unwrap_err();
    assert!(e.is_db_unavailable(), "{e:?}");
    assert_eq!(e.class_name(), "DBConnectionError");
    assert!(e.to_string().contains("terminating connection"), "{e}");
    tx.commit().await.unwrap();
    let seen: Instance = h.objects.get_by_uuid(&ctx, &uuid).await.unwrap();
    assert_eq!(seen.display_name().as_deref(), Some("vm-01"));

    // Over RPC it keeps its class, and the caller sees the same error.
    let remote = e.to_remote();
    assert_eq!(
        (remote.class.as_str(), remote.module.as_str()),
        ("DBConnectionError", "oslo_db.exception")
    );
    let back = Error::from_remote(remote);
    assert!(back.is_db_unavailable());
    assert_eq!(back.to_string(), e.to_string());
    h.finish().await;
}
