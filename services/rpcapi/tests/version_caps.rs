//! The typed clients send what nova's rpcapi sends under each
//! `[upgrade_levels]` cap: the newest version allowed, without the
//! arguments that version lacks — observed by a raw endpoint that records
//! every request's version and keyword names.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_objects::{Instance, RequestSpec};
use nova_rpc::{
    Dispatcher, Endpoint, MemoryTransport, RequestContext, RpcServer, Target, Transport, Version,
};
use nova_rpcapi::compute::{ComputeApi, VERSION_ALIASES};
use nova_rpcapi::parse_version_cap;
use nova_rpcapi::scheduler::SchedulerApi;
use serde_json::{Map, Value, json};

type Seen = Arc<Mutex<Vec<(String, Version, Vec<String>)>>>;

/// A server on `topic` (server `host`) at `version` recording `method`.
async fn recorder(
    transport: Arc<dyn Transport>,
    topic: &str,
    version: Version,
    method: &str,
    reply: Value,
) -> (RpcServer, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let ep = Endpoint::new(None, version).method(method, move |call, args: Map<String, Value>| {
        let mut keys: Vec<String> = args.keys().cloned().collect();
        keys.sort();
        s.lock()
            .unwrap()
            .push((call.method.clone(), call.version, keys));
        let reply = reply.clone();
        async move { Ok(reply) }
    });
    let server = RpcServer::start(
        transport,
        Target::topic(topic).with_server("host1"),
        Dispatcher::new(vec![ep]),
    )
    .await
    .unwrap();
    (server, seen)
}

async fn wait_for(seen: &Seen, n: usize) {
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("expected {n} requests, saw {:?}", seen.lock().unwrap());
}

#[tokio::test]
async fn build_and_run_instance_follows_nova_downgrades() {
    let transport = MemoryTransport::new();
    // A 5.x server accepts 5.0 and 5.11 (oslo: same major, minor <= served).
    let (server, seen) = recorder(
        transport.clone(),
        "compute",
        Version::new(5, 13),
        "build_and_run_instance",
        Value::Null,
    )
    .await;
    let ctx = RequestContext::new();
    let inst = Instance::new().with_uuid(uuid::Uuid::new_v4().to_string());
    let send = |cap: &str| {
        let cap = parse_version_cap(cap, VERSION_ALIASES).unwrap();
        let api = ComputeApi::new(transport.clone()).version_cap(cap);
        let inst = inst.clone();
        let ctx = ctx.clone();
        async move {
            api.build_and_run_instance(
                &ctx,
                "host1",
                &inst,
                &json!({}),
                &None,
                &json!({}),
                &None,
                &None,
                &None,
                &None,
                &None,
                &Some("node1".into()),
                &json!({}),
                &Some(vec![]),
                &Some(vec![]),
            )
            .await
        }
    };
    send("ussuri").await.unwrap(); // 5.11: accel_uuids goes
    send("train").await.unwrap(); // 5.3: 5.0 without accel_uuids
    wait_for(&seen, 2).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].1, Version::new(5, 11));
    assert!(seen[0].2.contains(&"accel_uuids".to_owned()));
    assert_eq!(seen[1].1, Version::new(5, 0));
    assert!(!seen[1].2.contains(&"accel_uuids".to_owned()));
    assert!(seen[1].2.contains(&"host_list".to_owned()));
    server.stop().await;

    // Uncapped: 6.0 with every argument nova 34 sends.
    let (server, seen) = recorder(
        transport.clone(),
        "compute",
        Version::new(6, 5),
        "build_and_run_instance",
        Value::Null,
    )
    .await;
    send("auto").await.unwrap();
    wait_for(&seen, 1).await;
    let (_, v, keys) = seen.lock().unwrap()[0].clone();
    assert_eq!(v, Version::new(6, 0));
    assert_eq!(
        keys,
        [
            "accel_uuids",
            "admin_password",
            "block_device_mapping",
            "filter_properties",
            "host_list",
            "image",
            "injected_files",
            "instance",
            "limits",
            "node",
            "request_spec",
            "requested_networks",
            "security_groups"
        ]
    );
    server.stop().await;

    // Below the oldest version nova could send: refused before sending.
    let api = ComputeApi::new(transport.clone()).version_cap(Some(Version::new(4, 22)));
    let err = api.start_instance(&ctx, "host1", &inst).await.unwrap_err();
    assert!(matches!(err, nova_rpc::Error::VersionCap { .. }), "{err}");
}

#[tokio::test]
async fn select_destinations_refuses_a_cap_that_loses_selection_objects() {
    let transport = MemoryTransport::new();
    let (server, seen) = recorder(
        transport.clone(),
        "scheduler",
        Version::new(4, 5),
        "select_destinations",
        json!([]),
    )
    .await;
    let ctx = RequestContext::new();
    let spec = RequestSpec::new().with_instance_uuid(uuid::Uuid::new_v4().to_string());
    let uuids = vec![spec.instance_uuid().clone()];
    let api = SchedulerApi::new(transport.clone());
    api.select_destinations(&ctx, &spec, &uuids, &true, &true)
        .await
        .unwrap();
    assert_eq!(
        seen.lock().unwrap()[0].2,
        [
            "instance_uuids",
            "return_alternates",
            "return_objects",
            "spec_obj"
        ]
    );
    assert_eq!(seen.lock().unwrap()[0].1, Version::new(4, 5));
    // Capped at 4.4, nova raises rather than lose the Selection objects it asked for…
    let capped = SchedulerApi::new(transport.clone()).version_cap(Some(Version::new(4, 4)));
    let err = capped
        .select_destinations(&ctx, &spec, &uuids, &true, &true)
        .await
        .unwrap_err();
    assert!(matches!(err, nova_rpc::Error::VersionCap { .. }), "{err}");
    // …and sends 4.4 without them when it did not ask for them.
    capped
        .select_destinations(&ctx, &spec, &uuids, &false, &false)
        .await
        .unwrap();
    let (_, v, keys) = seen.lock().unwrap()[1].clone();
    assert_eq!(v, Version::new(4, 4));
    assert_eq!(keys, ["instance_uuids", "spec_obj"]);
    server.stop().await;
}

#[tokio::test]
async fn in_flight_steps_go_to_compute_alt_from_6_5() {
    let transport = MemoryTransport::new();
    let (main, on_main) = recorder(
        transport.clone(),
        "compute",
        Version::new(6, 5),
        "validate_console_port",
        json!(true),
    )
    .await;
    let (alt, on_alt) = recorder(
        transport.clone(),
        "compute-alt",
        Version::new(6, 5),
        "validate_console_port",
        json!(true),
    )
    .await;
    let ctx = RequestContext::new();
    let inst = Instance::new().with_uuid(uuid::Uuid::new_v4().to_string());
    let validate = |cap: &str| {
        let cap = parse_version_cap(cap, VERSION_ALIASES).unwrap();
        let api = ComputeApi::new(transport.clone()).version_cap(cap);
        let (inst, ctx) = (inst.clone(), ctx.clone());
        async move {
            api.validate_console_port(&ctx, "host1", &inst, &"5900".into(), &"novnc".into())
                .await
        }
    };
    // Uncapped and gazpacho (6.5): the alternative server answers.
    assert!(validate("auto").await.unwrap());
    assert!(validate("gazpacho").await.unwrap());
    assert_eq!(on_alt.lock().unwrap().len(), 2);
    assert!(on_main.lock().unwrap().is_empty());
    // A 6.4 deployment has no `compute-alt` server: the main topic.
    assert!(validate("flamingo").await.unwrap());
    assert_eq!(on_main.lock().unwrap().len(), 1);
    assert_eq!(on_alt.lock().unwrap().len(), 2);
    main.stop().await;
    // New work (not an in-flight step) always goes to `compute`.
    let (start, started) = recorder(
        transport.clone(),
        "compute",
        Version::new(6, 5),
        "start_instance",
        Value::Null,
    )
    .await;
    ComputeApi::new(transport.clone())
        .start_instance(&ctx, "host1", &inst)
        .await
        .unwrap();
    wait_for(&started, 1).await;
    for s in [alt, start] {
        s.stop().await;
    }
}
