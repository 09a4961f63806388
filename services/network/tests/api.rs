//! The network API over HTTP (tower's `oneshot`), on a SQLite store: the
//! shapes and faults clients rely on, addresses from the pool, binding,
//! security groups, floating IPs, and everything surviving a restart.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use nova_network::service::NetworkService;
use nova_network::{NoopDatapath, api, store::Store};
use serde_json::{Value, json};
use tower::ServiceExt as _;

async fn open(path: &std::path::Path) -> Arc<NetworkService> {
    let url = format!("sqlite:{}?mode=rwc", path.display());
    let db = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(url))
        .await
        .unwrap();
    let store = Store::open(&db).await.unwrap();
    NetworkService::open(store, Arc::new(NoopDatapath))
        .await
        .unwrap()
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-auth-token", token)
        .header("content-type", "application/json")
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap();
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("nova-network-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d.join("net.sqlite")
}

#[tokio::test]
async fn networks_subnets_and_ports_as_neutron_serves_them() {
    let db = tmp("ports");
    let svc = open(&db).await;
    let app = api::router(svc, api::noauth(), "http://net.test:9696");
    let (s, v) = call(&app, "GET", "/", "admin", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["versions"][0]["links"][0]["href"],
        "http://net.test:9696/v2.0/"
    );

    let (s, net) = call(
        &app,
        "POST",
        "/v2.0/networks",
        "admin",
        Some(json!({"network": {"name": "private", "shared": true}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{net}");
    let net_id = net["network"]["id"].as_str().unwrap().to_owned();
    assert_eq!(net["network"]["status"], "ACTIVE");
    assert_eq!(net["network"]["mtu"], 1500);
    let (s, sub) = call(
        &app,
        "POST",
        "/v2.0/subnets",
        "admin",
        Some(json!({"subnet": {"network_id": net_id, "cidr": "10.9.0.0/29", "ip_version": 4}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["subnet"]["gateway_ip"], "10.9.0.1");
    assert_eq!(
        sub["subnet"]["allocation_pools"],
        json!([{"start": "10.9.0.2", "end": "10.9.0.6"}])
    );
    let sub_id = sub["subnet"]["id"].as_str().unwrap().to_owned();
    // An overlapping subnet, a bad CIDR: Neutron's 400s in its format.
    let (s, e) = call(
        &app,
        "POST",
        "/v2.0/subnets",
        "admin",
        Some(json!({"subnet": {"network_id": net_id, "cidr": "10.9.0.0/24"}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["NeutronError"]["type"], "HTTPBadRequest", "{e}");
    let (s, _) = call(
        &app,
        "POST",
        "/v2.0/subnets",
        "admin",
        Some(json!({"subnet": {"network_id": net_id, "cidr": "10.9.0.0/40"}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A user's port on the shared network: an address from the pool, a
    // Neutron MAC, the project's default group, DOWN and unbound.
    let (s, p) = call(
        &app,
        "POST",
        "/v2.0/ports",
        "demo",
        Some(json!({"port": {"network_id": net_id, "name": "p1"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let p = &p["port"];
    assert_eq!(
        p["fixed_ips"],
        json!([{"subnet_id": sub_id, "ip_address": "10.9.0.2"}])
    );
    assert!(p["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    assert_eq!(p["status"], "DOWN");
    assert_eq!(p["project_id"], "demo");
    assert!(
        p.get("binding:host_id").is_none(),
        "binding is admin-only: {p}"
    );
    assert_eq!(p["security_groups"].as_array().unwrap().len(), 1);
    let port_id = p["id"].as_str().unwrap().to_owned();
    let (_, groups) = call(
        &app,
        "GET",
        "/v2.0/security-groups?name=default",
        "demo",
        None,
    )
    .await;
    assert_eq!(groups["security_groups"][0]["id"], p["security_groups"][0]);
    assert_eq!(
        groups["security_groups"][0]["security_group_rules"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // A fixed address taken twice, then the pool running out.
    let (s, e) = call(
        &app,
        "POST",
        "/v2.0/ports",
        "demo",
        Some(json!({"port": {"network_id": net_id, "fixed_ips": [{"ip_address": "10.9.0.2"}]}})),
    )
    .await;
    assert_eq!(
        (s, e["NeutronError"]["type"].clone()),
        (StatusCode::CONFLICT, json!("IpAddressAlreadyAllocated"))
    );
    for _ in 0..4 {
        let (s, _) = call(
            &app,
            "POST",
            "/v2.0/ports",
            "demo",
            Some(json!({"port": {"network_id": net_id}})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, e) = call(
        &app,
        "POST",
        "/v2.0/ports",
        "demo",
        Some(json!({"port": {"network_id": net_id}})),
    )
    .await;
    assert_eq!(
        (s, e["NeutronError"]["type"].clone()),
        (StatusCode::CONFLICT, json!("IpAddressGenerationFailure"))
    );
    // Another project sees none of demo's ports; filters and fields.
    let (_, l) = call(&app, "GET", "/v2.0/ports", "alt", None).await;
    assert_eq!(l["ports"], json!([]));
    let (s, _) = call(&app, "GET", &format!("/v2.0/ports/{port_id}"), "alt", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, l) = call(
        &app,
        "GET",
        "/v2.0/ports?fixed_ips=ip_address%3D10.9.0.2&fields=id&fields=name",
        "demo",
        None,
    )
    .await;
    assert_eq!(l["ports"], json!([{"id": port_id, "name": "p1"}]));
    let (_, l) = call(
        &app,
        "GET",
        &format!("/v2.0/ports?network_id={net_id}"),
        "demo",
        None,
    )
    .await;
    assert_eq!(l["ports"].as_array().unwrap().len(), 5);
    // A user may not bind; nova (admin) binds: bridge VIF, ACTIVE.
    let (s, _) = call(
        &app,
        "PUT",
        &format!("/v2.0/ports/{port_id}"),
        "demo",
        Some(json!({"port": {"binding:host_id": "cmp-1"}})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = call(&app, "PUT", &format!("/v2.0/ports/{port_id}"), "admin",
        Some(json!({"port": {"binding:host_id": "cmp-1", "device_id": "srv-1", "device_owner": "compute:nova"}}))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["port"]["binding:vif_type"], "bridge");
    assert_eq!(b["port"]["status"], "ACTIVE");
    assert_eq!(b["port"]["binding:vif_details"]["port_filter"], false);
    // The network is in use; the subnet too.
    let (s, e) = call(
        &app,
        "DELETE",
        &format!("/v2.0/networks/{net_id}"),
        "admin",
        None,
    )
    .await;
    assert_eq!(
        (s, e["NeutronError"]["type"].clone()),
        (StatusCode::CONFLICT, json!("NetworkInUse"))
    );

    // A restart on the same database finds everything.
    drop(app);
    let app = api::router(open(&db).await, api::noauth(), "http://net.test:9696");
    let (s, p) = call(
        &app,
        "GET",
        &format!("/v2.0/ports/{port_id}"),
        "admin",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["port"]["status"], "ACTIVE");
    assert_eq!(p["port"]["fixed_ips"][0]["ip_address"], "10.9.0.2");
    let (s, _) = call(
        &app,
        "DELETE",
        &format!("/v2.0/ports/{port_id}"),
        "demo",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The freed address is handed out again.
    let (_, p) = call(
        &app,
        "POST",
        "/v2.0/ports",
        "demo",
        Some(json!({"port": {"network_id": net_id}})),
    )
    .await;
    assert_eq!(p["port"]["fixed_ips"][0]["ip_address"], "10.9.0.2");
    let (s, _) = call(&app, "GET", "/v2.0/ports", "", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn security_group_rules_and_floating_ips() {
    let app = api::router(open(&tmp("sg")).await, api::noauth(), "http://n");
    let (s, g) = call(
        &app,
        "POST",
        "/v2.0/security-groups",
        "demo",
        Some(json!({"security_group": {"name": "web", "description": "w"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gid = g["security_group"]["id"].as_str().unwrap().to_owned();
    let rule = json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}});
    let (s, r) = call(
        &app,
        "POST",
        "/v2.0/security-group-rules",
        "demo",
        Some(rule.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["security_group_rule"]["ethertype"], "IPv4");
    let (s, e) = call(
        &app,
        "POST",
        "/v2.0/security-group-rules",
        "demo",
        Some(rule),
    )
    .await;
    assert_eq!(
        (s, e["NeutronError"]["type"].clone()),
        (StatusCode::CONFLICT, json!("SecurityGroupRuleExists"))
    );
    let (_, g) = call(
        &app,
        "GET",
        &format!("/v2.0/security-groups/{gid}"),
        "demo",
        None,
    )
    .await;
    assert_eq!(
        g["security_group"]["security_group_rules"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (s, _) = call(
        &app,
        "DELETE",
        &format!("/v2.0/security-groups/{gid}"),
        "alt",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // An external network, a user's port elsewhere, a floating IP on it.
    let (_, ext) = call(
        &app,
        "POST",
        "/v2.0/networks",
        "admin",
        Some(json!({"network": {"name": "public", "router:external": true}})),
    )
    .await;
    let ext_id = ext["network"]["id"].as_str().unwrap().to_owned();
    call(
        &app,
        "POST",
        "/v2.0/subnets",
        "admin",
        Some(json!({"subnet": {"network_id": ext_id, "cidr": "172.24.4.0/24"}})),
    )
    .await;
    let (_, net) = call(
        &app,
        "POST",
        "/v2.0/networks",
        "demo",
        Some(json!({"network": {"name": "mine"}})),
    )
    .await;
    let net_id = net["network"]["id"].as_str().unwrap().to_owned();
    call(
        &app,
        "POST",
        "/v2.0/subnets",
        "demo",
        Some(json!({"subnet": {"network_id": net_id, "cidr": "192.168.5.0/24"}})),
    )
    .await;
    let (_, p) = call(
        &app,
        "POST",
        "/v2.0/ports",
        "demo",
        Some(json!({"port": {"network_id": net_id}})),
    )
    .await;
    let pid = p["port"]["id"].as_str().unwrap().to_owned();
    let (s, f) = call(
        &app,
        "POST",
        "/v2.0/floatingips",
        "demo",
        Some(json!({"floatingip": {"floating_network_id": ext_id, "port_id": pid}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["floatingip"]["floating_ip_address"], "172.24.4.2");
    assert_eq!(f["floatingip"]["fixed_ip_address"], "192.168.5.2");
    assert_eq!(f["floatingip"]["status"], "ACTIVE");
    let (s, e) = call(
        &app,
        "POST",
        "/v2.0/floatingips",
        "demo",
        Some(json!({"floatingip": {"floating_network_id": net_id}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    // Deleting the port dissociates it.
    call(&app, "DELETE", &format!("/v2.0/ports/{pid}"), "demo", None).await;
    let (_, l) = call(&app, "GET", "/v2.0/floatingips", "demo", None).await;
    assert_eq!(l["floatingips"][0]["port_id"], Value::Null);
    assert_eq!(l["floatingips"][0]["status"], "DOWN");
}
