//! Security groups and floating IPs through nova on the built-in network
//! service: `security_groups` in the create body reach the ports, the
//! server view shows the groups of its ports (none without ports),
//! `addSecurityGroup` / `removeSecurityGroup` and
//! `/servers/{id}/os-security-groups`; the legacy proxies below 2.36
//! (`os-security-groups`, `os-security-group-rules`, `os-floating-ips`,
//! `os-floating-ip-pools`, `os-tenant-networks`) and `addFloatingIp` /
//! `removeFloatingIp` with nova's shapes and faults.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Reply};

async fn start() -> Cluster {
    Cluster::start(
        1,
        &[
            ("network", "enabled", "true"),
            ("network", "bind_port", "0"),
            ("network", "external_network_name", "public"),
            ("neutron", "default_floating_pool", "public"),
        ],
    )
    .await
}

async fn at(c: &Cluster, method: Method, mv: &str, path: &str, body: Option<Value>) -> Reply {
    c.call(method, path, "demo", mv, body).await
}

async fn port_groups(c: &Cluster, server: &str) -> Vec<Value> {
    let net = c.all.network.as_ref().expect("network service").url.clone();
    let tok = c.token("admin").await;
    let r: Value = c
        .http
        .get(format!("{net}/v2.0/ports?device_id={server}"))
        .header("x-auth-token", tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["ports"][0]["security_groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn boot(c: &Cluster, server: Value) -> Reply {
    at(
        c,
        Method::POST,
        "2.1",
        "/v2.1/servers",
        Some(json!({ "server": server })),
    )
    .await
}

fn base(name: &str) -> Value {
    json!({"name": name, "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_reach_the_ports_and_the_views_tell_the_truth() {
    let c = start().await;
    // A group and a rule through the legacy proxy.
    let r = at(
        &c,
        Method::POST,
        "2.1",
        "/v2.1/os-security-groups",
        Some(json!({"security_group": {"name": "web", "description": "http"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let web = r.body["security_group"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["security_group"]["rules"], json!([]));
    assert_eq!(r.body["security_group"]["name"], "web");
    let r = at(
        &c,
        Method::POST,
        "2.1",
        "/v2.1/os-security-group-rules",
        Some(
            json!({"security_group_rule": {"parent_group_id": web, "ip_protocol": "tcp",
            "from_port": 80, "to_port": 80, "cidr": "10.1.0.0/16"}}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rule = &r.body["security_group_rule"];
    assert_eq!(rule["ip_protocol"], "tcp");
    assert_eq!(rule["from_port"], 80);
    assert_eq!(rule["ip_range"], json!({"cidr": "10.1.0.0/16"}));
    assert_eq!(rule["group"], json!({}));
    assert_eq!(rule["parent_group_id"], web.as_str());
    // The same rule again: nova's 400.
    let again = at(
        &c,
        Method::POST,
        "2.1",
        "/v2.1/os-security-group-rules",
        Some(
            json!({"security_group_rule": {"parent_group_id": web, "ip_protocol": "tcp",
            "from_port": 80, "to_port": 80, "cidr": "10.1.0.0/16"}}),
        ),
    )
    .await;
    assert_eq!(again.status, 400, "{}", again.body);
    let r = at(
        &c,
        Method::GET,
        "2.1",
        &format!("/v2.1/os-security-groups/{web}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["security_group"]["rules"].as_array().unwrap().len(),
        1
    );
    // Gone from 2.36.
    let r = at(&c, Method::GET, "2.36", "/v2.1/os-security-groups", None).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // An unknown group: nova's 400.
    let mut bad = base("bad");
    bad["security_groups"] = json!([{"name": "nope"}]);
    let r = boot(&c, bad).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.fault().1.contains("nope"), "{}", r.body);

    // A server in `web`: its port has the group, the views show it.
    let mut s = base("in-web");
    s["security_groups"] = json!([{"name": "web"}]);
    let r = boot(&c, s).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.body["server"]["security_groups"],
        json!([{"name": "web"}])
    );
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let server = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(port_groups(&c, &id).await, vec![json!(web)]);
    assert_eq!(
        server["security_groups"],
        json!([{"name": "web"}]),
        "{server}"
    );
    // A server without ports has no `security_groups` (nova leaves it out).
    let r = at(
        &c,
        Method::POST,
        "2.37",
        "/v2.1/servers",
        Some(json!({"server": {"name": "portless", "flavorRef": "1",
            "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let portless = r.body["server"]["id"].as_str().unwrap().to_owned();
    let server = c.wait_status("demo", &portless, "ACTIVE").await;
    assert!(server.get("security_groups").is_none(), "{server}");
    // The detail list: each server its own groups.
    let r = c.get("/v2.1/servers/detail", "demo").await;
    assert_eq!(r.status, 200, "{}", r.body);
    for s in r.body["servers"].as_array().unwrap() {
        if s["id"] == id.as_str() {
            assert_eq!(s["security_groups"], json!([{"name": "web"}]), "{s}");
        } else {
            assert!(s.get("security_groups").is_none(), "{s}");
        }
    }

    // add default, then remove web.
    let act = |body: Value| {
        let path = format!("/v2.1/servers/{id}/action");
        let c = &c;
        async move { at(c, Method::POST, "2.1", &path, Some(body)).await }
    };
    let r = act(json!({"addSecurityGroup": {"name": "default"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = c.get(&format!("/v2.1/servers/{id}"), "demo").await;
    assert_eq!(
        r.body["server"]["security_groups"],
        json!([{"name": "web"}, {"name": "default"}])
    );
    let r = act(json!({"removeSecurityGroup": {"name": "web"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(port_groups(&c, &id).await.len(), 1);
    let r = act(json!({"removeSecurityGroup": {"name": "web"}})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.fault().1,
        format!("Security group web not associated with the instance {id}")
    );
    let r = act(json!({"addSecurityGroup": {"name": "missing"}})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{portless}/action"),
            "demo",
            "2.1",
            Some(json!({"addSecurityGroup": {"name": "web"}})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // The server's groups, detailed (default's ingress rules).
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-security-groups"), "demo")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let groups = r.body["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{}", r.body);
    assert_eq!(groups[0]["name"], "default");
    assert!(
        groups[0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["group"]["name"] == "default"),
        "{}",
        r.body
    );
    // A group in use cannot go; a free one can, then it is 404.
    let r = at(
        &c,
        Method::POST,
        "2.1",
        "/v2.1/os-security-groups",
        Some(json!({"security_group": {"name": "tmp", "description": ""}})),
    )
    .await;
    let tmp = r.body["security_group"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v2.1/os-security-groups/{tmp}");
    assert_eq!(at(&c, Method::DELETE, "2.1", &path, None).await.status, 202);
    assert_eq!(at(&c, Method::GET, "2.1", &path, None).await.status, 404);
    // The project's default group stays (Neutron's rule for users).
    let r = at(&c, Method::GET, "2.1", "/v2.1/os-security-groups", None).await;
    let default = r.body["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "default")
        .expect("default group")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v2.1/os-security-groups/{default}");
    let r = at(&c, Method::DELETE, "2.1", &path, None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(&c, Method::GET, "2.1", "/v2.1/os-security-groups/x", None).await;
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floating_ips_through_the_legacy_proxy_and_actions() {
    let c = start().await;
    let r = at(&c, Method::GET, "2.1", "/v2.1/os-floating-ip-pools", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"floating_ip_pools": [{"name": "public"}]}));
    let r = at(&c, Method::GET, "2.1", "/v2.1/os-tenant-networks", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let nets = r.body["networks"].as_array().unwrap();
    assert!(
        nets.iter()
            .any(|n| n["label"] == "private" && n["cidr"] == "None"),
        "{}",
        r.body
    );
    let r = at(
        &c,
        Method::POST,
        "2.1",
        "/v2.1/os-floating-ips",
        Some(json!({"pool": "nowhere"})),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // The default pool ([neutron] default_floating_pool).
    let r = at(
        &c,
        Method::POST,
        "2.1",
        "/v2.1/os-floating-ips",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fip = r.body["floating_ip"].clone();
    assert_eq!(fip["pool"], "public");
    assert_eq!(fip["instance_id"], Value::Null);
    assert_eq!(fip["fixed_ip"], Value::Null);
    let address = fip["ip"].as_str().unwrap().to_owned();
    assert!(address.starts_with("172.24.4."), "{fip}");
    let fid = fip["id"].as_str().unwrap().to_owned();

    let r = boot(&c, base("fip")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let server = c.wait_status("demo", &id, "ACTIVE").await;
    let fixed = server["addresses"]["private"][0]["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let action = format!("/v2.1/servers/{id}/action");
    let r = at(
        &c,
        Method::POST,
        "2.1",
        &action,
        Some(json!({"addFloatingIp": {"address": address, "fixed_address": "10.9.9.9"}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Not an address: nova's schema refuses it.
    let r = at(
        &c,
        Method::POST,
        "2.1",
        &action,
        Some(json!({"addFloatingIp": {"address": "not-an-ip"}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.to_string().contains("Invalid input"), "{}", r.body);
    let r = at(
        &c,
        Method::POST,
        "2.44",
        &action,
        Some(json!({"addFloatingIp": {"address": address}})),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(
        &c,
        Method::POST,
        "2.1",
        &action,
        Some(json!({"addFloatingIp": {"address": address}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = at(
        &c,
        Method::GET,
        "2.1",
        &format!("/v2.1/os-floating-ips/{fid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["floating_ip"]["instance_id"], id.as_str());
    assert_eq!(r.body["floating_ip"]["fixed_ip"], fixed.as_str());
    // The server's addresses show the floating address.
    let r = c.get(&format!("/v2.1/servers/{id}"), "demo").await;
    let addrs = r.body["server"]["addresses"]["private"].as_array().unwrap();
    assert!(
        addrs
            .iter()
            .any(|a| a["addr"] == address.as_str() && a["OS-EXT-IPS:type"] == "floating"),
        "{}",
        r.body
    );
    let r = at(&c, Method::GET, "2.1", "/v2.1/os-floating-ips", None).await;
    assert_eq!(
        r.body["floating_ips"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    assert_eq!(r.body["floating_ips"][0]["instance_id"], id.as_str());

    let remove = json!({"removeFloatingIp": {"address": address}});
    let r = at(&c, Method::POST, "2.1", &action, Some(remove.clone())).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = at(&c, Method::POST, "2.1", &action, Some(remove)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.fault().1,
        format!("Floating IP {address} is not associated with instance {id}.")
    );
    let r = c.get(&format!("/v2.1/servers/{id}"), "demo").await;
    assert_eq!(
        r.body["server"]["addresses"]["private"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{}",
        r.body
    );
    let path = format!("/v2.1/os-floating-ips/{fid}");
    assert_eq!(at(&c, Method::DELETE, "2.1", &path, None).await.status, 202);
    let r = at(&c, Method::GET, "2.1", &path, None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.fault().1, format!("Floating IP not found for ID {fid}"));
    let r = at(&c, Method::GET, "2.36", "/v2.1/os-floating-ips", None).await;
    assert_eq!(r.status, 404, "{}", r.body);
}
