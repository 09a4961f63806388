//! Servers on the built-in network service through nova's network API
//! client: a boot gets a port bound to its host (made for it, or the one
//! the user gave), `addresses` and `/ips` show its fixed IP, the build waits
//! for `network-vif-plugged` (and fails or goes on without it, as
//! `vif_plugging_is_fatal` says), delete deletes or unbinds the port; bad
//! requested networks are nova's 400s and 409s.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;

async fn start(extra: &[(&str, &str, &str)]) -> Cluster {
    let mut conf = vec![
        ("network", "enabled", "true"),
        ("network", "bind_port", "0"),
    ];
    conf.extend_from_slice(extra);
    Cluster::start(1, &conf).await
}

/// A network service request as `user`.
pub(crate) async fn neutron(
    c: &Cluster,
    user: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let net = c.all.network.as_ref().expect("network service").url.clone();
    let tok = c.token(user).await;
    let mut rb = c
        .http
        .request(method, format!("{net}/v2.0/{path}"))
        .header("x-auth-token", tok);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(crate) async fn ports_of(c: &Cluster, server: &str) -> Vec<Value> {
    let (s, b) = neutron(
        c,
        "admin",
        Method::GET,
        &format!("ports?device_id={server}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b["ports"].as_array().cloned().unwrap_or_default()
}

pub(crate) async fn private_net(c: &Cluster) -> String {
    let (_, b) = neutron(c, "admin", Method::GET, "networks?name=private", None).await;
    b["networks"][0]["id"]
        .as_str()
        .expect("private network")
        .to_owned()
}

async fn boot_with(c: &Cluster, mv: &str, server: Value) -> super::cluster::Reply {
    c.call(
        Method::POST,
        "/v2.1/servers",
        "demo",
        mv,
        Some(json!({ "server": server })),
    )
    .await
}

fn base(name: &str) -> Value {
    json!({"name": name, "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_gets_a_bound_port_its_addresses_and_loses_the_port_at_delete() {
    let c = start(&[]).await;
    let net = private_net(&c).await;
    // 2.37 with the network named; 2.1 without `networks` (the one
    // available network).
    let mut named = base("named");
    named["networks"] = json!([{ "uuid": net }]);
    let r = boot_with(&c, "2.37", named).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let a = r.body["server"]["id"].as_str().unwrap().to_owned();
    let r = boot_with(&c, "2.1", base("default")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let b = r.body["server"]["id"].as_str().unwrap().to_owned();
    for id in [&a, &b] {
        let server = c.wait_status("demo", id, "ACTIVE").await;
        let ports = ports_of(&c, id).await;
        assert_eq!(ports.len(), 1, "{ports:?}");
        let p = &ports[0];
        assert_eq!(p["network_id"], net.as_str());
        assert_eq!(p["binding:host_id"], "fake-compute-1", "{p}");
        assert_eq!(p["device_owner"], "compute:nova", "{p}");
        assert_eq!(p["status"], "ACTIVE", "{p}");
        let ip = p["fixed_ips"][0]["ip_address"].as_str().unwrap().to_owned();
        let mac = p["mac_address"].clone();
        assert_eq!(
            server["addresses"],
            json!({"private": [{"version": 4, "addr": ip, "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": mac}]}),
            "{server}"
        );
        let r = c.get(&format!("/v2.1/servers/{id}/ips"), "demo").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body,
            json!({"addresses": {"private": [{"version": 4, "addr": ip}]}})
        );
        let r = c
            .get(&format!("/v2.1/servers/{id}/ips/private"), "demo")
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, json!({"private": [{"version": 4, "addr": ip}]}));
        let r = c
            .get(&format!("/v2.1/servers/{id}/ips/public"), "demo")
            .await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.fault().1, "Instance is not a member of specified network");
    }
    // The detail list shows them too.
    let r = c.get("/v2.1/servers/detail", "demo").await;
    for s in r.body["servers"].as_array().unwrap() {
        let ip = &s["addresses"]["private"][0]["addr"];
        assert!(ip.is_string(), "{s}");
    }
    // Two servers, two addresses.
    let ip_of = |ports: &[Value]| ports[0]["fixed_ips"][0]["ip_address"].clone();
    let (ip_a, ip_b) = (
        ip_of(&ports_of(&c, &a).await),
        ip_of(&ports_of(&c, &b).await),
    );
    assert_ne!(ip_a, ip_b);
    // nova's `ip` / `ip6` list filters: a regular expression matched from
    // the start of a fixed address.
    let listed = |q: String| {
        let c = &c;
        async move {
            let r = c.get(&format!("/v2.1/servers?{q}"), "demo").await;
            assert_eq!(r.status, 200, "{q}: {}", r.body);
            let mut ids: Vec<String> = r.body["servers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let exact = |ip: &Value| format!("ip=^{}$", ip.as_str().unwrap().replace('.', "%5C."));
    assert_eq!(listed(exact(&ip_a)).await, vec![a.clone()]);
    assert_eq!(listed(exact(&ip_b)).await, vec![b.clone()]);
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(listed("ip=10%5C.0%5C.0%5C.".into()).await, both);
    assert_eq!(listed("ip=0%5C.0%5C.".into()).await, Vec::<String>::new());
    assert_eq!(listed("ip6=10".into()).await, Vec::<String>::new());
    assert_eq!(listed("ip=10&limit=1".into()).await.len(), 1);
    let r = c.get("/v2.1/servers?ip=(", "demo").await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Delete: the ports nova made are deleted.
    for id in [&a, &b] {
        assert_eq!(
            c.delete(&format!("/v2.1/servers/{id}"), "demo")
                .await
                .status,
            204
        );
        c.wait_gone("demo", id).await;
        assert!(ports_of(&c, id).await.is_empty());
    }
    // "none": no port at all.
    let mut none = base("none");
    none["networks"] = json!("none");
    let r = boot_with(&c, "2.37", none).await;
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let server = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(server["addresses"], json!({}));
    assert!(ports_of(&c, &id).await.is_empty());
    c.stop().await;
}

/// A port deleted in the network service (not through nova): Neutron's
/// `network-vif-deleted` reaches the compute, which drops it from the
/// server's network info: `addresses` and `os-interface` no longer show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_deleted_in_the_network_service_leaves_the_server() {
    let c = start(&[]).await;
    let r = boot_with(&c, "2.1", base("gone")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let server = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(
        server["addresses"]["private"].as_array().map(Vec::len),
        Some(1)
    );
    let port = ports_of(&c, &id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, b) = neutron(&c, "admin", Method::DELETE, &format!("ports/{port}"), None).await;
    assert_eq!(s, 204, "{b}");
    let mut shown = Value::Null;
    for _ in 0..200 {
        shown = c.get(&format!("/v2.1/servers/{id}"), "demo").await.body;
        if shown["server"]["addresses"] == json!({}) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(shown["server"]["addresses"], json!({}), "{shown}");
    assert_eq!(shown["server"]["status"], "ACTIVE", "{shown}");
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-interface"), "demo")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["interfaceAttachments"], json!([]), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_port_is_bound_and_only_unbound_at_delete() {
    let c = start(&[]).await;
    let net = private_net(&c).await;
    let (s, p) = neutron(
        &c,
        "demo",
        Method::POST,
        "ports",
        Some(json!({"port": {"network_id": net, "name": "mine"}})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let port = p["port"]["id"].as_str().unwrap().to_owned();
    let mut server = base("given");
    server["networks"] = json!([{ "port": port }]);
    let r = boot_with(&c, "2.37", server.clone()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    c.wait_status("demo", &id, "ACTIVE").await;
    let (_, p) = neutron(&c, "admin", Method::GET, &format!("ports/{port}"), None).await;
    assert_eq!(p["port"]["device_id"], id.as_str(), "{p}");
    assert_eq!(p["port"]["binding:host_id"], "fake-compute-1", "{p}");
    // Now in use: another server cannot take it.
    let r = boot_with(&c, "2.37", server).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.fault().1, format!("Port {port} is still in use."));
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "demo")
            .await
            .status,
        204
    );
    c.wait_gone("demo", &id).await;
    let (s, p) = neutron(&c, "admin", Method::GET, &format!("ports/{port}"), None).await;
    assert_eq!(s, 200, "the given port survives: {p}");
    assert_eq!(p["port"]["device_id"], "", "{p}");
    assert_eq!(p["port"]["binding:host_id"], "", "{p}");
    assert_eq!(p["port"]["status"], "DOWN", "{p}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requested_networks_are_refused_as_nova_does() {
    let c = start(&[]).await;
    let net = private_net(&c).await;
    let missing = uuid::Uuid::new_v4().to_string();
    let cases = [
        (json!([{ "uuid": missing }]), 1, 400, format!("Network {missing} could not be found.")),
        (json!([{ "uuid": "not-a-uuid" }]), 1, 400,
            "Bad networks format: network uuid is not in proper format (not-a-uuid)".to_owned()),
        (json!([{ "port": missing }]), 1, 400, format!("Port id {missing} could not be found.")),
        (json!([{ "port": missing, "fixed_ip": "10.0.0.50" }]), 1, 400, format!(
            "Specified Fixed IP '10.0.0.50' cannot be used with port '{missing}': the two cannot be specified together.")),
        (json!([{ "uuid": net, "fixed_ip": "10.0.0.50" }]), 2, 400,
            "Failed to launch instances: max_count cannot be greater than 1 if an fixed_ip is specified.".to_owned()),
        (json!([{ "port": missing }]), 2, 400, "Failed to launch instances: Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports.".to_owned()),
    ];
    for (networks, count, status, message) in cases {
        let mut s = base("bad");
        s["networks"] = networks.clone();
        s["max_count"] = json!(count);
        let r = boot_with(&c, "2.37", s).await;
        assert_eq!(r.status, status, "{networks}: {}", r.body);
        assert_eq!(r.fault().1, message, "{networks}");
    }
    // Another project's port is not found.
    let (st, p) = neutron(
        &c,
        "admin",
        Method::POST,
        "ports",
        Some(json!({"port": {"network_id": net}})),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    let theirs = p["port"]["id"].as_str().unwrap().to_owned();
    let mut s = base("theirs");
    s["networks"] = json!([{ "port": theirs }]);
    let r = boot_with(&c, "2.37", s).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.fault().1, format!("Port id {theirs} could not be found."));
    // A fixed IP already taken.
    let mut s = base("ip");
    s["networks"] = json!([{ "uuid": net, "fixed_ip": "10.0.0.50" }]);
    let r = boot_with(&c, "2.37", s.clone()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let first = r.body["server"]["id"].as_str().unwrap().to_owned();
    c.wait_status("demo", &first, "ACTIVE").await;
    let r = boot_with(&c, "2.37", s).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.fault().1,
        format!("Fixed IP address 10.0.0.50 is already in use on instance {first}.")
    );
    // From 2.37 `networks` is required; two networks to choose from: 409.
    let r = boot_with(&c, "2.37", base("none-given")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let (st, _) = neutron(
        &c,
        "demo",
        Method::POST,
        "networks",
        Some(json!({"network": {"name": "mine"}})),
    )
    .await;
    assert_eq!(st, 201);
    let mut auto = base("auto");
    auto["networks"] = json!("auto");
    let r = boot_with(&c, "2.37", auto).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.fault().1,
        "Multiple possible networks found, use a Network ID to be more specific."
    );
    c.stop().await;
}

/// A port that never goes ACTIVE (administratively down): no
/// `network-vif-plugged` comes.
async fn boot_on_a_down_port(c: &Cluster) -> (String, String) {
    let net = private_net(c).await;
    let (s, p) = neutron(
        c,
        "demo",
        Method::POST,
        "ports",
        Some(json!({"port": {"network_id": net, "admin_state_up": false}})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let port = p["port"]["id"].as_str().unwrap().to_owned();
    let mut server = base("down");
    server["networks"] = json!([{ "port": port }]);
    let r = boot_with(c, "2.37", server).await;
    assert_eq!(r.status, 202, "{}", r.body);
    (r.body["server"]["id"].as_str().unwrap().to_owned(), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_plug_event_a_build_fails_when_that_is_fatal() {
    let c = start(&[("DEFAULT", "vif_plugging_timeout", "1")]).await;
    let (id, port) = boot_on_a_down_port(&c).await;
    let server = c.wait_status("demo", &id, "ERROR").await;
    assert_eq!(
        server["fault"]["message"],
        format!(
            "Build of instance {id} aborted: Failed to allocate the network(s), not rescheduling."
        ),
        "{server}"
    );
    // The given port is released again.
    let (_, p) = neutron(&c, "admin", Method::GET, &format!("ports/{port}"), None).await;
    assert_eq!(p["port"]["device_id"], "", "{p}");
    assert_eq!(p["port"]["binding:host_id"], "", "{p}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_plug_event_a_build_goes_on_when_that_is_not_fatal() {
    let c = start(&[
        ("DEFAULT", "vif_plugging_timeout", "1"),
        ("DEFAULT", "vif_plugging_is_fatal", "false"),
    ])
    .await;
    let (id, port) = boot_on_a_down_port(&c).await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let (_, p) = neutron(&c, "admin", Method::GET, &format!("ports/{port}"), None).await;
    assert_eq!(p["port"]["device_id"], id.as_str(), "{p}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescheduled_build_keeps_its_port_and_binds_it_on_the_next_host() {
    let c = Cluster::start(
        2,
        &[
            ("network", "enabled", "true"),
            ("network", "bind_port", "0"),
        ],
    )
    .await;
    c.all
        .compute("fake-compute-1")
        .unwrap()
        .fake
        .as_ref()
        .unwrap()
        .set_faults(nova_virt::Faults {
            fail_spawn_for_flavor: Some("m1.small".into()),
            ..Default::default()
        });
    let mut ids = vec![];
    for n in 0..4 {
        let mut s = base(&format!("r{n}"));
        s["flavorRef"] = json!("2");
        let r = boot_with(&c, "2.1", s).await;
        assert_eq!(r.status, 202, "{}", r.body);
        ids.push(r.body["server"]["id"].as_str().unwrap().to_owned());
    }
    let mut rescheduled = 0;
    for id in &ids {
        c.wait_status("demo", id, "ACTIVE").await;
        let ports = ports_of(&c, id).await;
        assert_eq!(ports.len(), 1, "one port, made once: {ports:?}");
        assert_eq!(
            ports[0]["binding:host_id"], "fake-compute-2",
            "{:?}",
            ports[0]
        );
        assert_eq!(ports[0]["status"], "ACTIVE");
        let r = c.get(&format!("/v2.1/servers/{id}/ips"), "demo").await;
        assert_eq!(
            r.body["addresses"]["private"][0]["addr"],
            ports[0]["fixed_ips"][0]["ip_address"]
        );
        let actions = c
            .get(&format!("/v2.1/servers/{id}/os-instance-actions"), "admin")
            .await;
        let req = actions.body["instanceActions"][0]["request_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let a = c
            .get(
                &format!("/v2.1/servers/{id}/os-instance-actions/{req}"),
                "admin",
            )
            .await;
        let events = a.body["instanceAction"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if events.iter().any(|e| e["host"] == "fake-compute-1") {
            rescheduled += 1;
        }
    }
    assert!(
        rescheduled > 0,
        "no build went through fake-compute-1 first"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_delete_releases_the_ports_too() {
    let mut c = start(&[]).await;
    let r = boot_with(&c, "2.1", base("local")).await;
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(ports_of(&c, &id).await.len(), 1);
    // The compute is gone: the API deletes the server itself.
    c.all.stop_compute("fake-compute-1").await;
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "demo")
            .await
            .status,
        204
    );
    c.wait_gone("demo", &id).await;
    assert!(ports_of(&c, &id).await.is_empty());
    c.stop().await;
}

/// `os-networks` below 2.36: nova's view of each network the caller sees
/// (`id`, `label`, the rest null; admin fields for admins), 404 from 2.36.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_network_proxy_shows_what_the_network_service_has() {
    let c = start(&[]).await;
    let id = private_net(&c).await;
    // A network of another project, not shared: the demo user sees none of it.
    let (s, b) = neutron(
        &c,
        "admin",
        Method::POST,
        "networks",
        Some(json!({"network": {"name": "admin-only", "shared": false}})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let hidden = b["network"]["id"].as_str().unwrap().to_owned();

    let r = c
        .call(Method::GET, "/v2.1/os-networks", "demo", "2.1", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let nets = r.body["networks"].as_array().unwrap();
    let private = nets.iter().find(|n| n["id"] == json!(id)).expect("private");
    assert_eq!(private["label"], "private");
    assert_eq!(private["cidr"], Value::Null);
    assert!(
        private.get("project_id").is_none(),
        "admin fields: {private}"
    );
    assert!(nets.iter().all(|n| n["id"] != json!(hidden)), "{}", r.body);

    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-networks/{hidden}"),
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["network"]["label"], "admin-only");
    assert!(r.body["network"].get("project_id").is_some(), "{}", r.body);
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-networks/{hidden}"),
            "demo",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["itemNotFound"]["message"], "Network not found");
    let r = c
        .call(Method::GET, "/v2.1/os-networks", "demo", "2.36", None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    c.stop().await;
}
