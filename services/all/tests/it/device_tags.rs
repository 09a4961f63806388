//! Device tags of interfaces, as nova keeps them: a `VirtualInterface`
//! record per port of a server (tag from the create body's
//! `networks[].tag`, 2.32, and from os-interface's `tag`, 2.49), shown by
//! os-interface from 2.70 and to the guest in `meta_data.json`'s
//! `devices`; the record goes at detach and at the server's delete.

use nova_objects::{ListQuery, VirtualInterface};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::interfaces::eventually;
use crate::metadata::sign;
use crate::network_boot::private_net;

const SECRET: &str = "tags-shared-with-neutron";

/// The server's live interface records.
async fn records(c: &Cluster, id: &str) -> Vec<VirtualInterface> {
    c.all
        .objects
        .list(
            &nova_service::context::admin(),
            &ListQuery::new().filter("instance_uuid", id),
        )
        .await
        .unwrap()
}

/// `meta_data.json` as the guest reads it through Neutron's signed proxy.
async fn guest_metadata(url: &str, id: &str, project: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{url}/openstack/latest/meta_data.json"))
        .header("X-Instance-ID", id)
        .header("X-Tenant-ID", project)
        .header("X-Instance-ID-Signature", sign(SECRET, id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The (mac, tags) of the guest's NIC devices, sorted by tag.
fn nics(md: &Value) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = md["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("no devices in {md}"))
        .iter()
        .filter(|d| d["type"] == "nic")
        .map(|d| (d["mac"].as_str().unwrap().to_owned(), d["tags"].clone()))
        .collect();
    out.sort_by_key(|(_, t)| t.to_string());
    out
}

async fn interfaces(c: &Cluster, id: &str, mv: &str) -> Vec<Value> {
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/os-interface"),
            "demo",
            mv,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["interfaceAttachments"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_tags_reach_os_interface_and_the_guests_device_metadata() {
    let c = Cluster::start(
        1,
        &[
            ("network", "enabled", "true"),
            ("network", "bind_port", "0"),
            ("DEFAULT", "enabled_apis", "osapi_compute,metadata"),
            ("DEFAULT", "metadata_listen_port", "0"),
            ("neutron", "service_metadata_proxy", "true"),
            ("neutron", "metadata_proxy_shared_secret", SECRET),
            ("api", "metadata_cache_expiration", "0"),
        ],
    )
    .await;
    let url = format!("http://{}", c.all.metadata.expect("the metadata API runs"));
    let net = private_net(&c).await;
    // Two ports on the network: one tagged in the create body, one not.
    let r = c
        .call(
            Method::POST,
            "/v2.1/servers",
            "demo",
            "2.32",
            Some(json!({"server": {"name": "tagged", "flavorRef": "1",
                "imageRef": nova_all::FAKE_IMAGE_ID,
                "networks": [{"uuid": net, "tag": "boot-nic"}, {"uuid": net}]}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    let project = s["tenant_id"].as_str().unwrap().to_owned();

    // os-interface: the tag from 2.70, on the tagged port only.
    let list = interfaces(&c, &id, "2.70").await;
    assert_eq!(list.len(), 2, "{list:?}");
    let tagged: Vec<&Value> = list.iter().filter(|a| a["tag"] == "boot-nic").collect();
    assert_eq!(tagged.len(), 1, "{list:?}");
    let boot_port = tagged[0]["port_id"].as_str().unwrap().to_owned();
    let boot_mac = tagged[0]["mac_addr"].as_str().unwrap().to_owned();
    assert!(list.iter().any(|a| a["tag"].is_null()), "{list:?}");
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/os-interface/{boot_port}"),
            "demo",
            "2.70",
            None,
        )
        .await;
    assert_eq!(
        r.body["interfaceAttachment"]["tag"], "boot-nic",
        "{}",
        r.body
    );
    assert!(
        interfaces(&c, &id, "2.69").await[0].get("tag").is_none(),
        "no tag before 2.70"
    );
    // The records: one per port, uuid = port id, address = MAC.
    let recs = records(&c, &id).await;
    assert_eq!(recs.len(), 2);
    let rec = recs.iter().find(|v| *v.uuid() == boot_port).unwrap();
    assert_eq!(rec.address().as_deref(), Some(boot_mac.as_str()));
    assert_eq!(rec.tag().as_deref(), Some("boot-nic"));
    // The guest sees the tagged NIC (only) in its device metadata.
    let md = guest_metadata(&url, &id, &project).await;
    assert_eq!(
        nics(&md),
        vec![(boot_mac.clone(), json!(["boot-nic"]))],
        "{md}"
    );

    // A tagged attach (2.49) joins both.
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{id}/os-interface"),
            "demo",
            "2.70",
            Some(json!({"interfaceAttachment": {"net_id": net, "tag": "hot-nic"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["interfaceAttachment"]["tag"], "hot-nic");
    let hot = r.body["interfaceAttachment"]["port_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hot_mac = r.body["interfaceAttachment"]["mac_addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = interfaces(&c, &id, "2.70").await;
    assert!(
        list.iter()
            .any(|a| a["port_id"] == hot.as_str() && a["tag"] == "hot-nic"),
        "{list:?}"
    );
    let md = guest_metadata(&url, &id, &project).await;
    assert_eq!(
        nics(&md),
        vec![
            (boot_mac.clone(), json!(["boot-nic"])),
            (hot_mac.clone(), json!(["hot-nic"]))
        ],
        "{md}"
    );

    // Detach: its record and its device go.
    let r = c
        .call(
            Method::DELETE,
            &format!("/v2.1/servers/{id}/os-interface/{hot}"),
            "demo",
            "2.70",
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually("the detached port's record is gone", || async {
        !records(&c, &id).await.iter().any(|v| *v.uuid() == hot)
    })
    .await;
    eventually("the detached NIC leaves the device metadata", || async {
        nics(&guest_metadata(&url, &id, &project).await).len() == 1
    })
    .await;
    assert_eq!(records(&c, &id).await.len(), 2);

    // Delete: every record goes with the server.
    let r = c.delete(&format!("/v2.1/servers/{id}"), "demo").await;
    assert_eq!(r.status, 204, "{}", r.body);
    c.wait_gone("demo", &id).await;
    assert!(records(&c, &id).await.is_empty());
    c.stop().await;
}
