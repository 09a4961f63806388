//! `os-interface` on the fake driver with nova-all's built-in network
//! service: attach by network (with a fixed IP and a tag) and by port,
//! list and show, detach (the port nova made deleted, the user's port
//! unbound), nova's 400/404/409s, the instance actions, `network-changed`
//! refreshing the info cache, and the versioned notifications compared
//! with nova's samples.

use std::time::Duration;

use nova_virt::Faults;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Reply};
use crate::network_boot::{neutron, ports_of, private_net};

async fn start(computes: usize) -> Cluster {
    Cluster::start(
        computes,
        &[
            ("network", "enabled", "true"),
            ("network", "bind_port", "0"),
        ],
    )
    .await
}

/// Boots a server on the one network (a port made for it); its id.
async fn boot(c: &Cluster, name: &str) -> String {
    let r = c
        .call(
            Method::POST,
            "/v2.1/servers",
            "demo",
            "2.1",
            Some(json!({"server": {"name": name, "flavorRef": "1",
                "imageRef": nova_all::FAKE_IMAGE_ID}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.body["server"]["id"].as_str().unwrap().to_owned()
}

/// Boots a server on the one network and waits until it is ACTIVE; its
/// id and its host's fake driver.
async fn active<'a>(c: &'a Cluster, name: &str) -> (String, &'a nova_virt::FakeDriver) {
    let id = boot(c, name).await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let host =
        c.get(&format!("/v2.1/servers/{id}"), "admin").await.body["server"]["OS-EXT-SRV-ATTR:host"]
            .as_str()
            .unwrap()
            .to_owned();
    (id, crate::moves::fake(c, &host))
}

/// Server action `body` on `server` as `user` at microversion `mv`.
async fn act(c: &Cluster, user: &str, mv: &str, server: &str, body: Value) -> Reply {
    c.call(
        Method::POST,
        &format!("/v2.1/servers/{server}/action"),
        user,
        mv,
        Some(body),
    )
    .await
}

async fn attach(c: &Cluster, user: &str, mv: &str, id: &str, body: Value) -> Reply {
    c.call(
        Method::POST,
        &format!("/v2.1/servers/{id}/os-interface"),
        user,
        mv,
        Some(body),
    )
    .await
}

async fn detach(c: &Cluster, id: &str, port: &str) -> Reply {
    c.call(
        Method::DELETE,
        &format!("/v2.1/servers/{id}/os-interface/{port}"),
        "demo",
        "2.1",
        None,
    )
    .await
}

/// The server's fixed addresses as `addresses` shows them.
async fn addresses(c: &Cluster, id: &str) -> Vec<String> {
    let r = c.get(&format!("/v2.1/servers/{id}"), "demo").await;
    let mut out: Vec<String> = r.body["server"]["addresses"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|l| l.as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["addr"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

/// Polls `f` until it holds (20 s).
pub(crate) async fn eventually<F, Fut>(what: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server's instance actions, newest first.
async fn action_names(c: &Cluster, id: &str) -> Vec<String> {
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-instance-actions"), "admin")
        .await;
    r.body["instanceActions"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .filter_map(|a| a["action"].as_str().map(str::to_owned))
        .collect()
}

/// The events of the server's last instance action named `action`.
pub(crate) async fn action_events(c: &Cluster, id: &str, action: &str) -> Vec<Value> {
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-instance-actions"), "admin")
        .await;
    let req = r.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == action)
        .unwrap_or_else(|| panic!("no {action} in {}", r.body))["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .get(
            &format!("/v2.1/servers/{id}/os-instance-actions/{req}"),
            "admin",
        )
        .await;
    r.body["instanceAction"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_attach_by_network_and_port_list_show_and_detach() {
    let c = start(1).await;
    let net = private_net(&c).await;
    let id = boot(&c, "nics").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let fake = crate::moves::fake(&c, "fake-compute-1");
    assert_eq!(fake.nics(&id).unwrap().len(), 1);
    // The boot's port.
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-interface"), "demo")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body["interfaceAttachments"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{}", r.body);
    let first = list[0].clone();
    assert_eq!(first["net_id"], net.as_str());
    assert_eq!(first["port_state"], "ACTIVE");
    assert_eq!(first["tag"], Value::Null, "2.100 shows the tag");
    let first_ip = first["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(first["fixed_ips"][0]["subnet_id"].is_string(), "{first}");
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/os-interface"),
            "demo",
            "2.69",
            None,
        )
        .await;
    assert!(
        r.body["interfaceAttachments"][0].get("tag").is_none(),
        "no tag before 2.70: {}",
        r.body
    );

    // By network, with a fixed IP and a tag (2.49; shown from 2.70).
    let r = attach(
        &c,
        "demo",
        "2.70",
        &id,
        json!({"interfaceAttachment": {"net_id": net,
            "fixed_ips": [{"ip_address": "10.0.0.50"}], "tag": "data"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let made = r.body["interfaceAttachment"].clone();
    assert_eq!(made["net_id"], net.as_str());
    assert_eq!(made["fixed_ips"][0]["ip_address"], "10.0.0.50");
    assert_eq!(made["tag"], "data");
    let made_id = made["port_id"].as_str().unwrap().to_owned();
    assert_eq!(fake.nics(&id).unwrap().len(), 2);
    assert!(
        fake.nics(&id)
            .unwrap()
            .contains(&made["mac_addr"].as_str().unwrap().to_owned())
    );
    let mut want = vec![first_ip.clone(), "10.0.0.50".to_owned()];
    want.sort();
    assert_eq!(addresses(&c, &id).await, want);
    let (_, p) = neutron(&c, "admin", Method::GET, &format!("ports/{made_id}"), None).await;
    assert_eq!(p["port"]["device_id"], id.as_str(), "{p}");
    assert_eq!(p["port"]["binding:host_id"], "fake-compute-1", "{p}");
    assert_eq!(p["port"]["device_owner"], "compute:nova", "{p}");
    let ev = action_events(&c, &id, "attach_interface").await;
    assert_eq!(ev[0]["event"], "compute_attach_interface", "{ev:?}");
    assert_eq!(ev[0]["result"], "Success", "{ev:?}");

    // By port: the user's own port.
    let (s, p) = neutron(
        &c,
        "demo",
        Method::POST,
        "ports",
        Some(json!({"port": {"network_id": net, "name": "mine"}})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let mine = p["port"]["id"].as_str().unwrap().to_owned();
    let r = attach(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"interfaceAttachment": {"port_id": mine}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["interfaceAttachment"]["port_id"], mine.as_str());
    assert!(r.body["interfaceAttachment"].get("tag").is_none());
    assert_eq!(fake.nics(&id).unwrap().len(), 3);

    // List and show.
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-interface"), "demo")
        .await;
    let list = r.body["interfaceAttachments"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{}", r.body);
    let tagged: Vec<&Value> = list.iter().filter(|a| a["tag"] == "data").collect();
    assert_eq!(tagged.len(), 1, "{}", r.body);
    assert_eq!(tagged[0]["port_id"], made_id.as_str());
    let r = c
        .get(
            &format!("/v2.1/servers/{id}/os-interface/{made_id}"),
            "demo",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["interfaceAttachment"]["tag"], "data");
    assert_eq!(r.body["interfaceAttachment"]["port_state"], "ACTIVE");
    let missing = uuid::Uuid::new_v4().to_string();
    let r = c
        .get(
            &format!("/v2.1/servers/{id}/os-interface/{missing}"),
            "demo",
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.fault().1,
        format!("Port id {missing} could not be found.")
    );
    let (_, p) = neutron(
        &c,
        "demo",
        Method::POST,
        "ports",
        Some(json!({"port": {"network_id": net, "name": "loose"}})),
    )
    .await;
    let loose = p["port"]["id"].as_str().unwrap().to_owned();
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-interface/{loose}"), "demo")
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.fault().1,
        format!("Instance {id} does not have a port with id {loose}")
    );

    // Detach the port nova made: deleted; the user's: unbound, kept.
    let r = detach(&c, &id, &made_id).await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually("the made port deleted", || async {
        neutron(&c, "admin", Method::GET, &format!("ports/{made_id}"), None)
            .await
            .0
            == 404
    })
    .await;
    let r = detach(&c, &id, &mine).await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually("the given port unbound", || async {
        let (_, p) = neutron(&c, "admin", Method::GET, &format!("ports/{mine}"), None).await;
        p["port"]["device_id"] == ""
    })
    .await;
    let (_, p) = neutron(&c, "admin", Method::GET, &format!("ports/{mine}"), None).await;
    assert_eq!(p["port"]["binding:host_id"], "", "{p}");
    assert_eq!(fake.nics(&id).unwrap().len(), 1);
    // The compute updates the info cache once the port is released.
    eventually("the detached addresses leave the server", || async {
        addresses(&c, &id).await == vec![first_ip.clone()]
    })
    .await;
    assert_eq!(ports_of(&c, &id).await.len(), 1);
    let ev = action_events(&c, &id, "detach_interface").await;
    assert_eq!(ev[0]["event"], "compute_detach_interface", "{ev:?}");
    assert_eq!(ev[0]["result"], "Success", "{ev:?}");
    // A port the server does not have: accepted, the compute's event fails.
    let r = detach(&c, &id, &loose).await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually("the detach event fails", || async {
        let ev = action_events(&c, &id, "detach_interface").await;
        ev.iter().any(|e| e["result"] == "Error")
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_attach_refusals_are_novas() {
    let c = start(1).await;
    let net = private_net(&c).await;
    let id = boot(&c, "refusals").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let first = ports_of(&c, &id).await[0].clone();
    let first_ip = first["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let fault = |r: &Reply| r.fault().1;
    let a = |body: Value| attach(&c, "demo", "2.1", &id, body);
    let r = a(json!({"interfaceAttachment": {"net_id": net,
        "port_id": first["id"]}}))
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(fault(&r), "Must not input both network_id and port_id");
    let r = a(json!({"interfaceAttachment": {"fixed_ips": [{"ip_address": "10.0.0.9"}]}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(fault(&r), "Must input network_id when request IP address");
    let r = a(json!({"interfaceAttachment": {"net_id": "not-a-uuid"}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // `tag` only from 2.49.
    let r = a(json!({"interfaceAttachment": {"net_id": net, "tag": "t"}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let nowhere = uuid::Uuid::new_v4().to_string();
    let r = a(json!({"interfaceAttachment": {"net_id": nowhere}})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(fault(&r), format!("Network {nowhere} could not be found."));
    let r = a(json!({"interfaceAttachment": {"port_id": nowhere}})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(fault(&r), format!("Port id {nowhere} could not be found."));
    let r = a(json!({"interfaceAttachment": {"port_id": first["id"]}})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        fault(&r),
        format!("Port {} is still in use.", first["id"].as_str().unwrap())
    );
    let r = a(json!({"interfaceAttachment": {"net_id": net,
        "fixed_ips": [{"ip_address": first_ip}]}}))
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        fault(&r),
        format!("Fixed IP address {first_ip} is already in use on instance {id}.")
    );
    // Another project's port is not usable.
    let (s, p) = neutron(
        &c,
        "admin",
        Method::POST,
        "ports",
        Some(json!({"port": {"network_id": net, "name": "admins"}})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let admins = p["port"]["id"].as_str().unwrap().to_owned();
    let r = a(json!({"interfaceAttachment": {"port_id": admins}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        fault(&r),
        format!("Port {admins} not usable for instance {id}.")
    );
    // Nothing changed on the server.
    assert_eq!(ports_of(&c, &id).await.len(), 1);
    assert_eq!(
        crate::moves::fake(&c, "fake-compute-1")
            .nics(&id)
            .unwrap()
            .len(),
        1
    );
    // A driver failure: the port made for it is deleted again, 500.
    let fake = crate::moves::fake(&c, "fake-compute-1");
    fake.set_faults(Faults {
        fail_operations: vec!["attach_interface".into()],
        ..Faults::default()
    });
    let r = a(json!({"interfaceAttachment": {"net_id": net}})).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(
        fault(&r),
        format!("Failed to attach network adapter device to {id}")
    );
    fake.set_faults(Faults::default());
    assert_eq!(ports_of(&c, &id).await.len(), 1);
    // A locked server (the owner): 409; an admin may.
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "demo",
            json!({"lock": null}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = a(json!({"interfaceAttachment": {"net_id": net}})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(fault(&r), format!("Instance {id} is locked"));
    let r = detach(&c, &id, first["id"].as_str().unwrap()).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "demo",
            json!({"unlock": null}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    // Suspended: not a state nova attaches in.
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "demo",
            json!({"suspend": null}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status("demo", &id, "SUSPENDED").await;
    let r = a(json!({"interfaceAttachment": {"net_id": net}})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        fault(&r),
        format!("Cannot 'attach_interface' instance {id} while it is in vm_state suspended")
    );
    // Policy: another project's user does not see the server.
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-interface"), "alt_demo")
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_changed_refreshes_the_info_cache_from_the_network_service() {
    let c = start(1).await;
    let net = private_net(&c).await;
    let id = boot(&c, "changed").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let before = addresses(&c, &id).await;
    assert_eq!(before.len(), 1);
    // A port bound to the server behind nova's back.
    let (s, p) = neutron(
        &c,
        "admin",
        Method::POST,
        "ports",
        Some(
            json!({"port": {"network_id": net, "device_id": id, "device_owner": "compute:nova",
            "fixed_ips": [{"ip_address": "10.0.0.77"}]}}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(addresses(&c, &id).await, before, "not known yet");
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-server-external-events",
            "admin",
            "2.1",
            Some(
                json!({"events": [{"name": "network-changed", "server_uuid": id,
                "tag": p["port"]["id"]}]}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut want = before.clone();
    want.push("10.0.0.77".into());
    want.sort();
    eventually("the cache refreshed", || async {
        addresses(&c, &id).await == want
    })
    .await;
    c.stop().await;
}

/// `injectNetworkInfo` (admin only, 202, no instance action): the compute
/// reads the server's ports again into its info cache and hands them to
/// the driver (the fake driver records them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inject_network_info_refreshes_the_cache_and_reaches_the_driver() {
    let c = start(1).await;
    let net = private_net(&c).await;
    let (id, fake) = active(&c, "inject").await;
    assert_eq!(fake.injected_network_info(&id), None);
    let before = addresses(&c, &id).await;
    assert_eq!(before.len(), 1);
    // A port bound to the server behind nova's back: only a refresh shows it.
    let (s, p) = neutron(
        &c,
        "admin",
        Method::POST,
        "ports",
        Some(
            json!({"port": {"network_id": net, "device_id": id, "device_owner": "compute:nova",
            "fixed_ips": [{"ip_address": "10.0.0.78"}]}}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let extra = p["port"]["id"].as_str().unwrap().to_owned();
    // nova's policy: admins only.
    let r = act(&c, "demo", "2.1", &id, json!({"injectNetworkInfo": null})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = act(
        &c,
        "admin",
        "2.1",
        &uuid::Uuid::new_v4().to_string(),
        json!({"injectNetworkInfo": null}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = act(
        &c,
        "admin",
        "2.1",
        &id,
        json!({"injectNetworkInfo": null, "x": 1}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(addresses(&c, &id).await, before, "nothing refreshed yet");
    assert_eq!(fake.injected_network_info(&id), None);
    let r = act(&c, "admin", "2.1", &id, json!({"injectNetworkInfo": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.body.is_null() || r.body == json!(""), "{}", r.body);
    let mut want = before.clone();
    want.push("10.0.0.78".into());
    want.sort();
    eventually("the cache refreshed", || async {
        addresses(&c, &id).await == want
    })
    .await;
    eventually("the driver got the network info", || async {
        fake.injected_network_info(&id)
            .is_some_and(|v| v.iter().any(|vif| vif.id == extra))
    })
    .await;
    let injected = fake.injected_network_info(&id).unwrap();
    let ports = ports_of(&c, &id).await;
    assert_eq!(injected.len(), 2, "{injected:?}");
    for vif in &injected {
        let port = ports
            .iter()
            .find(|p| p["id"] == vif.id.as_str())
            .unwrap_or_else(|| panic!("{vif:?} not among {ports:?}"));
        assert_eq!(port["mac_address"], vif.address.as_str());
    }
    // resetNetwork, its sibling, is gone (nova 23).
    let r = act(&c, "admin", "2.1", &id, json!({"resetNetwork": null})).await;
    assert_eq!(r.status, 410, "{}", r.body);
    // As nova: no instance action for it.
    assert_eq!(action_names(&c, &id).await, ["create"]);
    // A driver failure is recorded as the server's fault; it stays ACTIVE.
    fake.set_faults(Faults {
        fail_operations: vec!["inject_network_info".into()],
        ..Faults::default()
    });
    let r = act(&c, "admin", "2.1", &id, json!({"injectNetworkInfo": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually("the fault recorded", || async {
        crate::moves::faults_of(&c, &id)
            .await
            .iter()
            .any(|f| f.contains("injected failure of inject_network_info"))
    })
    .await;
    let r = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.body["server"]["status"], "ACTIVE", "{}", r.body);
    c.stop().await;
}

/// nova's multinic actions (to 2.43): `addFixedIp` puts one more address
/// from the network on the server's port there, `removeFixedIp` releases
/// one; the compute refreshes the info cache (what `addresses` shows) and
/// hands the network info to the driver. What the compute cannot do is
/// the server's fault (the API answered 202 before it tried); no instance
/// action; a locked server is refused, and 2.44 has no such actions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multinic_adds_and_removes_fixed_ips_before_2_44() {
    let c = start(1).await;
    let net = private_net(&c).await;
    let (id, fake) = active(&c, "multinic").await;
    let before = addresses(&c, &id).await;
    assert_eq!(before.len(), 1);
    let add = json!({"addFixedIp": {"networkId": net}});
    for (mv, body, status) in [
        ("2.44", add.clone(), 404),
        ("2.1", json!({"addFixedIp": {}}), 400),
        (
            "2.1",
            json!({"addFixedIp": {"networkId": net, "x": 1}}),
            400,
        ),
        (
            "2.1",
            json!({"removeFixedIp": {"address": "not-an-ip"}}),
            400,
        ),
        (
            "2.44",
            json!({"removeFixedIp": {"address": "10.0.0.9"}}),
            404,
        ),
    ] {
        let r = act(&c, "demo", mv, &id, body.clone()).await;
        assert_eq!(r.status, status, "{mv} {body}: {}", r.body);
    }
    let r = act(
        &c,
        "demo",
        "2.1",
        &uuid::Uuid::new_v4().to_string(),
        add.clone(),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Locked by its owner: refused to the owner, allowed to an admin.
    let r = act(&c, "demo", "2.1", &id, json!({"lock": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = act(&c, "demo", "2.1", &id, add.clone()).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = act(&c, "demo", "2.1", &id, json!({"unlock": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(addresses(&c, &id).await, before, "nothing changed yet");

    let r = act(&c, "demo", "2.43", &id, add.clone()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.body.is_null() || r.body == json!(""), "{}", r.body);
    eventually("a second address shown", || async {
        addresses(&c, &id).await.len() == 2
    })
    .await;
    let ports = ports_of(&c, &id).await;
    assert_eq!(ports.len(), 1, "the same port: {ports:?}");
    let on_port: Vec<&str> = ports[0]["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|ip| ip["ip_address"].as_str())
        .collect();
    assert_eq!(on_port.len(), 2, "{ports:?}");
    assert!(on_port.contains(&before[0].as_str()), "{ports:?}");
    let added = on_port
        .iter()
        .find(|a| **a != before[0])
        .unwrap()
        .to_string();
    let mut want = vec![before[0].clone(), added.clone()];
    want.sort();
    assert_eq!(addresses(&c, &id).await, want);
    eventually("the driver got both addresses", || async {
        fake.injected_network_info(&id)
            .is_some_and(|vifs| vifs.iter().any(|v| v.fixed_ips.contains(&added)))
    })
    .await;

    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"removeFixedIp": {"address": added}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually("back to the first address", || async {
        addresses(&c, &id).await == before
    })
    .await;
    assert_eq!(
        ports_of(&c, &id).await[0]["fixed_ips"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // What the compute cannot do: the server's fault, the server as it was.
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"removeFixedIp": {"address": "10.0.0.250"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let other = uuid::Uuid::new_v4().to_string();
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"addFixedIp": {"networkId": other}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let gone = format!("Instance {id} does not have fixed IP '10.0.0.250'.");
    let no_net = format!("Network could not be found for instance {id}.");
    eventually("both refusals recorded", || async {
        let f = crate::moves::faults_of(&c, &id).await;
        f.contains(&gone) && f.contains(&no_net)
    })
    .await;
    assert_eq!(addresses(&c, &id).await, before);
    let r = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.body["server"]["status"], "ACTIVE", "{}", r.body);
    // As nova: no instance action for them.
    assert_eq!(action_names(&c, &id).await, ["unlock", "lock", "create"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interface_notifications_match_novas_samples() {
    let (_vhost, listener, c) = crate::notifications::notifying_cluster(
        "nova-rs-iface",
        1,
        &[
            ("network", "enabled", "true"),
            ("network", "bind_port", "0"),
        ],
    )
    .await;
    let net = private_net(&c).await;
    let id = boot(&c, "notify").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let r = attach(
        &c,
        "demo",
        "2.49",
        &id,
        json!({"interfaceAttachment": {"net_id": net, "tag": "n"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let port = r.body["interfaceAttachment"]["port_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(detach(&c, &id, &port).await.status, 202);
    eventually("detached", || async { addresses(&c, &id).await.len() == 1 }).await;
    let fake = crate::moves::fake(&c, "fake-compute-1");
    fake.set_faults(Faults {
        fail_operations: vec!["attach_interface".into()],
        ..Faults::default()
    });
    let r = attach(&c, "demo", "2.1", &id, json!({"interfaceAttachment": {}})).await;
    assert_eq!(r.status, 500, "{}", r.body);
    let events = [
        "instance.interface_attach.start",
        "instance.interface_attach.end",
        "instance.interface_detach.start",
        "instance.interface_detach.end",
        "instance.interface_attach.error",
    ];
    let mut seen = vec![];
    tokio::task::block_in_place(|| listener.until(&mut seen, "versioned_notifications", &events));
    let mut errors = vec![];
    for n in seen
        .iter()
        .filter(|n| n["topic"] == "versioned_notifications")
    {
        let ev = n["event_type"].as_str().unwrap_or_default();
        if !events.contains(&ev) {
            continue;
        }
        errors.extend(crate::notifications::check_against_sample(n));
        let data = &n["payload"]["nova_object.data"];
        assert_eq!(data["uuid"], id.as_str(), "{n}");
        let ips = data["ip_addresses"].as_array().unwrap().len();
        // Two interfaces between the attach and the detach, else one.
        let want = match ev {
            "instance.interface_attach.end" | "instance.interface_detach.start" => 2,
            _ => 1,
        };
        assert_eq!(ips, want, "{ev}: {n}");
        if ev == "instance.interface_attach.error" {
            assert_eq!(
                data["fault"]["nova_object.data"]["function_name"],
                "_attach_interface"
            );
        }
    }
    assert!(errors.is_empty(), "{errors:#?}");
    c.stop().await;
}
/// Attach and detach across 1,000 fake computes: servers booted at once
/// (a port each from the built-in network service) land on computes of
/// their own; an interface attached to every one concurrently is bound to
/// its server's host with the server as its device, shown in the info
/// cache (`addresses`) and plugged into that host's fake guest; detached,
/// the port nova made is gone and the cache and guest are as before.
/// nova's heartbeat defaults (`report_interval` 10 s, `service_down_time`
/// 60 s), not the cluster's 1 s / 4 s: 1,000 computes reporting every
/// second make the busy debug build look some of them down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interface_attach_and_detach_at_scale_on_1000_fake_computes() {
    let t = std::time::Instant::now();
    let c = Cluster::start(
        1000,
        &[
            ("network", "enabled", "true"),
            ("network", "bind_port", "0"),
            ("DEFAULT", "report_interval", "10"),
            ("DEFAULT", "service_down_time", "60"),
        ],
    )
    .await;
    let started = t.elapsed();
    let net = private_net(&c).await;
    let servers = 20usize;
    let r = c
        .call(
            Method::PUT,
            "/v2.1/os-quota-sets/demo",
            "admin",
            "2.1",
            Some(json!({"quota_set": {"instances": servers, "cores": servers,
                "ram": 512 * servers}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = std::time::Instant::now();
    let ids = futures_util::future::join_all((0..servers).map(|k| {
        let c = &c;
        async move { boot(c, &format!("scale-{k}")).await }
    }))
    .await;
    let mut hosts = std::collections::BTreeMap::new();
    for id in &ids {
        let s = c.wait_status("admin", id, "ACTIVE").await;
        let host = s["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or_default();
        hosts.insert(id.clone(), host.to_owned());
    }
    let boot_s = t.elapsed().as_secs_f64();
    let distinct: std::collections::BTreeSet<&String> = hosts.values().collect();
    assert!(
        distinct.len() > servers / 2,
        "servers spread over the computes: {hosts:?}"
    );
    let mut booted_addrs = std::collections::BTreeMap::new();
    for id in &ids {
        let ports = ports_of(&c, id).await;
        assert_eq!(ports.len(), 1, "{ports:?}");
        assert_eq!(ports[0]["binding:host_id"], hosts[id].as_str());
        let addrs = addresses(&c, id).await;
        assert_eq!(addrs.len(), 1, "{addrs:?}");
        booted_addrs.insert(id.clone(), addrs);
    }
    let t = std::time::Instant::now();
    let attached = futures_util::future::join_all(ids.iter().map(|id| {
        let (c, net) = (&c, net.clone());
        async move {
            let r = attach(
                c,
                "demo",
                "2.1",
                id,
                json!({"interfaceAttachment": {"net_id": net}}),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.body);
            let a = &r.body["interfaceAttachment"];
            let ip = a["fixed_ips"][0]["ip_address"].as_str().unwrap().to_owned();
            (a["port_id"].as_str().unwrap().to_owned(), ip)
        }
    }))
    .await;
    let attach_s = t.elapsed().as_secs_f64();
    for (id, (port, ip)) in ids.iter().zip(&attached) {
        let host = hosts[id].as_str();
        let (s, p) = neutron(&c, "admin", Method::GET, &format!("ports/{port}"), None).await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(p["port"]["binding:host_id"], host, "{p}");
        assert_eq!(p["port"]["device_id"], id.as_str(), "{p}");
        assert_eq!(p["port"]["device_owner"], "compute:nova", "{p}");
        let mut want = booted_addrs[id].clone();
        want.push(ip.clone());
        want.sort();
        assert_eq!(addresses(&c, id).await, want, "the info cache of {id}");
        let nics = crate::moves::fake(&c, host).nics(id).unwrap();
        assert_eq!(nics.len(), 2, "{nics:?}");
        assert!(nics.contains(&p["port"]["mac_address"].as_str().unwrap().to_owned()));
    }
    let t = std::time::Instant::now();
    for (id, (port, _)) in ids.iter().zip(&attached) {
        assert_eq!(detach(&c, id, port).await.status, 202);
    }
    for (id, (port, _)) in ids.iter().zip(&attached) {
        eventually("detached", || async {
            addresses(&c, id).await == booted_addrs[id]
        })
        .await;
        let (s, p) = neutron(&c, "admin", Method::GET, &format!("ports/{port}"), None).await;
        assert_eq!(s, 404, "the port nova made is deleted: {p}");
        assert_eq!(ports_of(&c, id).await.len(), 1);
        let nics = crate::moves::fake(&c, &hosts[id]).nics(id).unwrap();
        assert_eq!(nics.len(), 1, "{nics:?}");
    }
    let detach_s = t.elapsed().as_secs_f64();
    println!(
        "1,000 fake computes started in {:.1} s; {servers} servers booted in {boot_s:.2} s \
         on {} hosts; {servers} concurrent attaches in {attach_s:.2} s; \
         {servers} detaches done in {detach_s:.2} s",
        started.as_secs_f64(),
        distinct.len(),
    );
    c.stop().await;
}
