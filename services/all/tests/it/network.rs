//! The built-in network service in a cluster and nova's
//! `os-server-external-events`: nova's per-event codes, and an event the
//! network service sends (a server's port deleted) reaching the server's
//! compute, which drops the port from the instance's network info cache.

use std::time::Duration;

use nova_objects::{InstanceInfoCache, Lookup};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;

async fn start() -> Cluster {
    Cluster::start(
        1,
        &[
            ("network", "enabled", "true"),
            ("network", "bind_port", "0"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_events_are_answered_per_event() {
    let c = start().await;
    let id = c.boot("demo", "ev", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let missing = uuid::Uuid::new_v4().to_string();
    let ev =
        |server: &str| json!({"name": "network-vif-plugged", "server_uuid": server, "tag": "p1"});
    // One known server, one unknown: 207 with a code per event.
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-server-external-events",
            "admin",
            "2.1",
            Some(json!({"events": [ev(&id), ev(&missing)]})),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["events"][0]["code"], 200, "{}", r.body);
    assert_eq!(r.body["events"][0]["status"], "completed");
    assert_eq!(r.body["events"][0]["tag"], "p1");
    assert_eq!(r.body["events"][1]["code"], 404);
    assert_eq!(r.body["events"][1]["status"], "failed");
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-server-external-events",
            "admin",
            "2.1",
            Some(json!({"events": [ev(&id)]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // None found: 404; users: 403; a name of a later microversion: 400.
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-server-external-events",
            "admin",
            "2.1",
            Some(json!({"events": [ev(&missing)]})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-server-external-events",
            "demo",
            "2.1",
            Some(json!({"events": [ev(&id)]})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let power =
        json!({"events": [{"name": "power-update", "server_uuid": id, "tag": "POWER_OFF"}]});
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-server-external-events",
            "admin",
            "2.75",
            Some(power),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_port_reaches_the_compute_through_nova_events() {
    let c = start().await;
    let net = c.all.network.as_ref().expect("network service").url.clone();
    let admin = c.token("admin").await;
    let id = c.boot("demo", "vif", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    // The default shared network nova-all made, and a port of the server.
    let r: Value = c
        .http
        .get(format!("{net}/v2.0/networks?name=private"))
        .header("x-auth-token", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let net_id = r["networks"][0]["id"]
        .as_str()
        .expect("private network")
        .to_owned();
    let r = c
        .http
        .post(format!("{net}/v2.0/ports"))
        .header("x-auth-token", &admin)
        .json(
            &json!({"port": {"network_id": net_id, "device_id": id, "device_owner": "compute:nova",
            "binding:host_id": "fake-compute-1"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let port: Value = r.json().await.unwrap();
    let port_id = port["port"]["id"].as_str().unwrap().to_owned();
    assert_eq!(port["port"]["status"], "ACTIVE", "{port}");
    assert_eq!(port["port"]["binding:vif_type"], "bridge", "{port}");
    // The instance's info cache lists it (and another port).
    let ctx = nova_service::context::admin();
    let mac = port["port"]["mac_address"].clone();
    let ip = port["port"]["fixed_ips"][0]["ip_address"].clone();
    assert_eq!(ip, "10.0.0.2", "{port}");
    let nw = json!([{"id": port_id, "address": mac, "network": {"label": "private",
        "subnets": [{"ips": [{"address": ip, "type": "fixed", "version": 4}]}]}}, {"id": "other"}]);
    let mut cache = InstanceInfoCache::new()
        .with_instance_uuid(id.clone())
        .with_network_info(Some(nw.to_string()));
    c.all.objects.create(&ctx, &mut cache).await.unwrap();
    // The server's addresses come from the cache.
    let r = c.get(&format!("/v2.1/servers/{id}"), "demo").await;
    assert_eq!(
        r.body["server"]["addresses"],
        json!({"private": [{"version": 4, "addr": ip, "OS-EXT-IPS:type": "fixed",
            "OS-EXT-IPS-MAC:mac_addr": mac}]}),
        "{}",
        r.body
    );
    // And in the detailed list.
    let r = c.get("/v2.1/servers/detail", "demo").await;
    let listed = r.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        listed["addresses"],
        json!({"private": [{"version": 4, "addr": ip, "OS-EXT-IPS:type": "fixed",
            "OS-EXT-IPS-MAC:mac_addr": mac}]})
    );
    // Deleting the port: the network service tells nova, the API casts to
    // the compute, which drops the port from the cache.
    let r = c
        .http
        .delete(format!("{net}/v2.0/ports/{port_id}"))
        .header("x-auth-token", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got: InstanceInfoCache = c
            .all
            .objects
            .get(&ctx, Lookup::field("instance_uuid", id.as_str()))
            .await
            .unwrap();
        let now: Value = serde_json::from_str(got.network_info().as_deref().unwrap()).unwrap();
        if now == json!([{"id": "other"}]) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "cache still {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.stop().await;
}
