//! Aggregates, availability zones and server groups on a `Cluster`: nova's
//! aggregate rules, the Placement mirror, booting into a zone, the group
//! policies through the scheduler, the compute's late check and the quotas.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;

const MV: &str = "2.100";

async fn aggregate(c: &Cluster, name: &str, az: Option<&str>) -> i64 {
    let r = c
        .post(
            "/v2.1/os-aggregates",
            "admin",
            json!({"aggregate": {"name": name, "availability_zone": az}}),
        )
        .await;
    assert_eq!(r.status, 200, "create aggregate: {}", r.body);
    assert!(r.body["aggregate"].get("hosts").is_none(), "{}", r.body);
    r.body["aggregate"]["id"].as_i64().unwrap()
}

async fn agg_action(c: &Cluster, id: i64, body: Value) -> crate::cluster::Reply {
    c.post(&format!("/v2.1/os-aggregates/{id}/action"), "admin", body)
        .await
}

async fn boot_with(c: &Cluster, user: &str, name: &str, extra: Value, hints: Value) -> String {
    let mut server = json!({"name": name, "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"});
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            server[k] = v.clone();
        }
    }
    let r = c
        .post(
            "/v2.1/servers",
            user,
            json!({"server": server, "os:scheduler_hints": hints}),
        )
        .await;
    assert_eq!(r.status, 202, "boot {name}: {}", r.body);
    r.body["server"]["id"].as_str().unwrap().to_owned()
}

async fn host_of(c: &Cluster, id: &str) -> String {
    c.get(&format!("/v2.1/servers/{id}"), "admin").await.body["server"]["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits for a stable status (ACTIVE or ERROR) and returns the server.
async fn settle(c: &Cluster, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = c.get(&format!("/v2.1/servers/{id}"), "admin").await.body["server"].clone();
        if matches!(s["status"].as_str(), Some("ACTIVE" | "ERROR"))
            && s["OS-EXT-STS:task_state"].is_null()
        {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server {id} did not settle: {s}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every live server has exactly one allocation, against its host's node.
async fn assert_allocations(c: &Cluster, ids: &[String]) {
    for id in ids {
        let s = c.get(&format!("/v2.1/servers/{id}"), "admin").await.body["server"].clone();
        let allocs = c
            .all
            .placement
            .allocations_async(id)
            .await
            .unwrap()
            .allocations;
        if s["status"] == "ERROR" {
            assert!(allocs.is_empty(), "server {id} in ERROR keeps allocations");
            continue;
        }
        let host = s["OS-EXT-SRV-ATTR:host"].as_str().unwrap();
        let node = c
            .all
            .compute(host)
            .unwrap()
            .manager
            .node_uuid()
            .await
            .unwrap();
        let providers: Vec<String> = allocs.keys().map(|k| k.to_string()).collect();
        assert_eq!(providers, vec![node], "server {id} allocations");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_follow_nova_rules_and_mirror_into_placement() {
    let c = Cluster::start(2, &[]).await;
    let a1 = aggregate(&c, "rack-1", Some("az1")).await;
    // Names are unique.
    let r = c
        .post(
            "/v2.1/os-aggregates",
            "admin",
            json!({"aggregate": {"name": "rack-1"}}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.fault().1, "Aggregate rack-1 already exists.");
    // Admins only.
    let r = c.get("/v2.1/os-aggregates", "demo").await;
    assert_eq!(r.status, 403);
    // A host that is no compute: 404.
    let r = agg_action(&c, a1, json!({"add_host": {"host": "nowhere"}})).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.fault().1, "Compute host nowhere could not be found.");
    let r = agg_action(&c, a1, json!({"add_host": {"host": "fake-compute-2"}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["aggregate"]["hosts"], json!(["fake-compute-2"]));
    assert_eq!(r.body["aggregate"]["availability_zone"], "az1");
    let uuid = r.body["aggregate"]["uuid"].as_str().unwrap().to_owned();
    let r = agg_action(&c, a1, json!({"add_host": {"host": "fake-compute-2"}})).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.fault().1,
        format!("Aggregate {a1} already has host fake-compute-2.")
    );
    // The compute node's provider is in the Placement aggregate.
    let node1 = c
        .all
        .compute("fake-compute-2")
        .unwrap()
        .manager
        .node_uuid()
        .await
        .unwrap();
    let (_, aggs) = c.all.placement.aggregates_async(&node1).await.unwrap();
    assert!(aggs.contains(&uuid), "{aggs:?}");
    // 2.41 hides the uuid before.
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-aggregates/{a1}"),
            "admin",
            "2.40",
            None,
        )
        .await;
    assert!(r.body["aggregate"].get("uuid").is_none());
    // A host is in one zone only.
    let a2 = aggregate(&c, "rack-2", Some("az2")).await;
    let r = agg_action(&c, a2, json!({"add_host": {"host": "fake-compute-2"}})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.fault()
            .1
            .contains("One or more hosts already in availability zone(s) [\"az1\"]"),
        "{}",
        r.body
    );
    // A zone-less aggregate takes it; its zone then cannot conflict.
    let a3 = aggregate(&c, "ssd", None).await;
    assert_eq!(
        agg_action(&c, a3, json!({"add_host": {"host": "fake-compute-2"}}))
            .await
            .status,
        200
    );
    let r = agg_action(
        &c,
        a3,
        json!({"set_metadata": {"metadata": {"availability_zone": "az3", "ssd": "true"}}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.fault().1.starts_with(&format!("Cannot update metadata of aggregate {a3}. Reason: One or more hosts already in availability zone(s)")));
    let r = agg_action(
        &c,
        a3,
        json!({"set_metadata": {"metadata": {"ssd": "true"}}}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["aggregate"]["metadata"], json!({"ssd": "true"}));
    let r = agg_action(&c, a3, json!({"set_metadata": {"metadata": {"ssd": null}}})).await;
    assert_eq!(r.body["aggregate"]["metadata"], json!({}));
    // Renamed.
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/os-aggregates/{a3}"),
            "admin",
            MV,
            Some(json!({"aggregate": {"name": "ssd-2"}})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["aggregate"]["name"], "ssd-2");
    // The zone list shows the zones with hosts.
    let r = c.get("/v2.1/os-availability-zone", "demo").await;
    let zones: BTreeSet<String> = r.body["availabilityZoneInfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zoneName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(zones, BTreeSet::from(["az1".to_owned(), "nova".to_owned()]));
    let r = c.get("/v2.1/os-availability-zone/detail", "admin").await;
    let detail = r.body["availabilityZoneInfo"].as_array().unwrap();
    let az1 = detail.iter().find(|z| z["zoneName"] == "az1").unwrap();
    assert_eq!(
        az1["hosts"]["fake-compute-2"]["nova-compute"]["available"],
        true
    );
    assert!(detail.iter().any(|z| z["zoneName"] == "internal"));

    // Booting into az1 lands on its host (the second one: with equal
    // weights the first would win), found through the Placement aggregate;
    // the server tells its zone.
    let id = boot_with(
        &c,
        "demo",
        "in-az1",
        json!({"availability_zone": "az1"}),
        json!({}),
    )
    .await;
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(s["OS-EXT-AZ:availability_zone"], "az1");
    assert_eq!(host_of(&c, &id).await, "fake-compute-2");
    // A boot with no zone gets its host's zone recorded.
    let other = boot_with(&c, "demo", "anywhere", json!({}), json!({})).await;
    let s = c.wait_status("demo", &other, "ACTIVE").await;
    let expect = if host_of(&c, &other).await == "fake-compute-2" {
        "az1"
    } else {
        "nova"
    };
    assert_eq!(s["OS-EXT-AZ:availability_zone"], expect);
    // An unknown zone: 400, nothing written.
    let r = c
        .post("/v2.1/servers", "demo", json!({"server": {"name": "x", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none", "availability_zone": "mars"}}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.fault().1,
        "The requested availability zone is not available: mars"
    );
    // Admins pick the host: zone:host.
    let pinned = boot_with(
        &c,
        "admin",
        "pinned",
        json!({"availability_zone": "nova:fake-compute-1"}),
        json!({}),
    )
    .await;
    c.wait_status("admin", &pinned, "ACTIVE").await;
    assert_eq!(host_of(&c, &pinned).await, "fake-compute-1");
    // The zone of a host with servers cannot change under them.
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/os-aggregates/{a1}"),
            "admin",
            MV,
            Some(json!({"aggregate": {"availability_zone": "elsewhere"}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.fault()
            .1
            .contains("One or more hosts contain instances in this zone")
    );
    let r = agg_action(&c, a1, json!({"remove_host": {"host": "fake-compute-2"}})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    // A non-empty aggregate is not deleted.
    let r = c
        .delete(&format!("/v2.1/os-aggregates/{a1}"), "admin")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.fault().1,
        format!("Cannot remove host from aggregate {a1}. Reason: Host aggregate is not empty.")
    );
    assert_allocations(&c, &[id.clone(), other.clone(), pinned.clone()]).await;
    for s in [&id, &other, &pinned] {
        c.delete(&format!("/v2.1/servers/{s}"), "admin").await;
        c.wait_gone("admin", s).await;
    }
    // Empty again: removed from the aggregate and from Placement's.
    let r = agg_action(&c, a1, json!({"remove_host": {"host": "fake-compute-2"}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, aggs) = c.all.placement.aggregates_async(&node1).await.unwrap();
    assert!(!aggs.contains(&uuid));
    let r = agg_action(&c, a1, json!({"remove_host": {"host": "fake-compute-2"}})).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.fault().1,
        format!("Cannot remove host fake-compute-2 in aggregate {a1}")
    );
    assert_eq!(
        c.delete(&format!("/v2.1/os-aggregates/{a1}"), "admin")
            .await
            .status,
        200
    );
    assert_eq!(
        c.get(&format!("/v2.1/os-aggregates/{a1}"), "admin")
            .await
            .status,
        404
    );
    assert_eq!(c.get("/v2.1/os-aggregates/abc", "admin").await.status, 400);
    c.stop().await;
}

async fn group(c: &Cluster, user: &str, policy: &str, rules: Value) -> String {
    let r = c
        .post(
            "/v2.1/os-server-groups",
            user,
            json!({"server_group": {"name": format!("g-{policy}"), "policy": policy, "rules": rules}}),
        )
        .await;
    assert_eq!(r.status, 200, "create group: {}", r.body);
    assert_eq!(r.body["server_group"]["policy"], policy);
    r.body["server_group"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_groups_place_members_by_their_policy() {
    let c = Cluster::start(2, &[("quota", "instances", "20")]).await;
    // Affinity: together.
    let aff = group(&c, "demo", "affinity", json!({})).await;
    // One request after the other: two requests racing for an empty
    // affinity group may each land apart and each fail the late check, in
    // nova too; members of one request are placed by one scheduling (the
    // min_count case below).
    let mut a = Vec::new();
    for n in ["aff-0", "aff-1"] {
        let id = boot_with(&c, "demo", n, json!({}), json!({"group": aff})).await;
        c.wait_status("demo", &id, "ACTIVE").await;
        a.push(id);
    }
    assert_eq!(host_of(&c, &a[0]).await, host_of(&c, &a[1]).await);
    // Anti-affinity: apart, and a third finds no host.
    let anti = group(&c, "demo", "anti-affinity", json!({})).await;
    let mut b = Vec::new();
    for n in 0..2 {
        let id = boot_with(
            &c,
            "demo",
            &format!("anti-{n}"),
            json!({}),
            json!({"group": anti}),
        )
        .await;
        c.wait_status("demo", &id, "ACTIVE").await;
        b.push(id);
    }
    assert_ne!(host_of(&c, &b[0]).await, host_of(&c, &b[1]).await);
    let third = boot_with(&c, "demo", "anti-2", json!({}), json!({"group": anti})).await;
    let s = settle(&c, &third).await;
    assert_eq!(s["status"], "ERROR", "{s}");
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .contains("No valid host was found"),
        "{s}"
    );
    // max_server_per_host 2: two per host.
    let two = group(
        &c,
        "demo",
        "anti-affinity",
        json!({"max_server_per_host": 2}),
    )
    .await;
    let mut t = Vec::new();
    for n in 0..4 {
        let id = boot_with(
            &c,
            "demo",
            &format!("two-{n}"),
            json!({}),
            json!({"group": two}),
        )
        .await;
        c.wait_status("demo", &id, "ACTIVE").await;
        t.push(id);
    }
    let mut per_host = std::collections::BTreeMap::new();
    for id in &t {
        *per_host.entry(host_of(&c, id).await).or_insert(0) += 1;
    }
    assert_eq!(per_host.values().copied().collect::<Vec<_>>(), vec![2, 2]);
    // Two members in one request (min_count 2) are spread too.
    let pair = group(&c, "demo", "anti-affinity", json!({})).await;
    let r = c
        .post(
            "/v2.1/servers",
            "demo",
            json!({"server": {"name": "pair", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID,
                              "networks": "none", "min_count": 2, "return_reservation_id": true},
                   "os:scheduler_hints": {"group": pair}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let g = c
        .get(&format!("/v2.1/os-server-groups/{pair}"), "demo")
        .await;
    let pair_ids: Vec<String> =
        serde_json::from_value(g.body["server_group"]["members"].clone()).unwrap();
    assert_eq!(pair_ids.len(), 2, "{}", g.body);
    for id in &pair_ids {
        c.wait_status("demo", id, "ACTIVE").await;
    }
    assert_ne!(
        host_of(&c, &pair_ids[0]).await,
        host_of(&c, &pair_ids[1]).await
    );
    // The list filter `reservation_id` finds exactly the request's servers.
    let rid = r.body["reservation_id"].as_str().unwrap().to_owned();
    assert!(rid.starts_with("r-"), "{}", r.body);
    let l = c
        .get(
            &format!("/v2.1/servers/detail?reservation_id={rid}"),
            "demo",
        )
        .await;
    let listed: BTreeSet<String> = l.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, pair_ids.iter().cloned().collect::<BTreeSet<_>>());
    // The group shows its live members; the server its group (2.71).
    let r = c
        .get(&format!("/v2.1/os-server-groups/{anti}"), "demo")
        .await;
    let members: BTreeSet<String> =
        serde_json::from_value(r.body["server_group"]["members"].clone()).unwrap();
    assert_eq!(
        members,
        BTreeSet::from([b[0].clone(), b[1].clone(), third.clone()])
    );
    let r = c.get(&format!("/v2.1/servers/{}", b[0]), "demo").await;
    assert_eq!(r.body["server"]["server_groups"], json!([anti]));
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{}", b[0]),
            "demo",
            "2.70",
            None,
        )
        .await;
    assert!(r.body["server"].get("server_groups").is_none());
    // 2.64 views; older ones show policies.
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-server-groups/{two}"),
            "demo",
            "2.63",
            None,
        )
        .await;
    assert_eq!(r.body["server_group"]["policies"], json!(["anti-affinity"]));
    let r = c
        .get(&format!("/v2.1/os-server-groups/{two}"), "demo")
        .await;
    assert_eq!(
        r.body["server_group"]["rules"],
        json!({"max_server_per_host": 2})
    );
    // Rules only for anti-affinity; an unknown group: 400.
    let r = c
        .post("/v2.1/os-server-groups", "demo", json!({"server_group": {"name": "x", "policy": "affinity", "rules": {"max_server_per_host": 2}}}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.fault().1, "Only anti-affinity policy supports rules.");
    let r = c
        .post("/v2.1/servers", "demo", json!({"server": {"name": "x", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"},
            "os:scheduler_hints": {"group": "00000000-0000-0000-0000-000000000000"}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Other projects do not see the groups; admins do with all_projects.
    assert_eq!(
        c.get(&format!("/v2.1/os-server-groups/{aff}"), "alt_demo")
            .await
            .status,
        403
    );
    let r = c
        .post(
            "/v2.1/servers",
            "alt_demo",
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"},
                   "os:scheduler_hints": {"group": aff}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let mine = c.get("/v2.1/os-server-groups", "admin").await;
    assert_eq!(mine.body["server_groups"], json!([]));
    let all = c
        .get(
            "/v2.1/os-server-groups?all_projects=True&limit=2&offset=1",
            "admin",
        )
        .await;
    let ids: Vec<&str> = all.body["server_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![anti.as_str(), two.as_str()]);
    let mut everything = a.clone();
    everything.extend(b.iter().cloned());
    everything.extend(t.iter().cloned());
    everything.push(third.clone());
    everything.extend(pair_ids.iter().cloned());
    assert_allocations(&c, &everything).await;
    for id in &everything {
        c.delete(&format!("/v2.1/servers/{id}"), "demo").await;
        c.wait_gone("demo", id).await;
    }
    assert_eq!(
        c.delete(&format!("/v2.1/os-server-groups/{aff}"), "demo")
            .await
            .status,
        204
    );
    assert_eq!(
        c.get(&format!("/v2.1/os-server-groups/{aff}"), "demo")
            .await
            .status,
        404
    );
    c.stop().await;
}

/// With the scheduler's anti-affinity filter off and weighers that stack,
/// the scheduler puts the second member on the first one's host; the
/// compute's late check refuses it and the conductor reschedules it to the
/// alternate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_anti_affinity_violation_is_rescheduled() {
    let c = Cluster::start(
        2,
        &[
            ("filter_scheduler", "enabled_filters", "ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAffinityFilter"),
            ("filter_scheduler", "ram_weight_multiplier", "-1.0"),
            ("filter_scheduler", "cpu_weight_multiplier", "-1.0"),
            ("filter_scheduler", "disk_weight_multiplier", "-1.0"),
            ("filter_scheduler", "io_ops_weight_multiplier", "0.0"),
        ],
    )
    .await;
    // Without a group the weighers stack: both on one host.
    let p = c.boot("demo", "plain-0", "1").await;
    c.wait_status("demo", &p, "ACTIVE").await;
    let q = c.boot("demo", "plain-1", "1").await;
    c.wait_status("demo", &q, "ACTIVE").await;
    let stacked = host_of(&c, &p).await;
    assert_eq!(host_of(&c, &q).await, stacked, "the weighers stack");
    let anti = group(&c, "demo", "anti-affinity", json!({})).await;
    let first = boot_with(&c, "demo", "m-0", json!({}), json!({"group": anti})).await;
    c.wait_status("demo", &first, "ACTIVE").await;
    assert_eq!(host_of(&c, &first).await, stacked);
    let second = boot_with(&c, "demo", "m-1", json!({}), json!({"group": anti})).await;
    c.wait_status("demo", &second, "ACTIVE").await;
    assert_ne!(
        host_of(&c, &second).await,
        stacked,
        "rescheduled away from the first member"
    );
    // The reschedule left its trace: a build on the stacked host first (a
    // rescheduled build ends its event as nova's does, without an error).
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{second}/os-instance-actions"),
            "admin",
            MV,
            None,
        )
        .await;
    let req = r.body["instanceActions"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{second}/os-instance-actions/{req}"),
            "admin",
            MV,
            None,
        )
        .await;
    let hosts: Vec<&str> = r.body["instanceAction"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "compute__do_build_and_run_instance")
        .map(|e| e["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts.len(), 2, "{}", r.body);
    assert!(hosts.contains(&stacked.as_str()), "{}", r.body);
    assert_allocations(&c, &[p, q, first, second]).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_aggregates_keep_a_project_on_its_hosts_through_placement() {
    let c = Cluster::start(
        2,
        &[("scheduler", "limit_tenants_to_placement_aggregate", "true")],
    )
    .await;
    let a = aggregate(&c, "demo-only", None).await;
    let r = agg_action(
        &c,
        a,
        json!({"set_metadata": {"metadata": {"filter_tenant_id": "demo"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        agg_action(&c, a, json!({"add_host": {"host": "fake-compute-2"}}))
            .await
            .status,
        200
    );
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = c.boot("demo", &format!("t-{n}"), "1").await;
        c.wait_status("demo", &id, "ACTIVE").await;
        assert_eq!(host_of(&c, &id).await, "fake-compute-2");
        ids.push(id);
    }
    assert_allocations(&c, &ids).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_group_quotas_are_enforced() {
    let c = Cluster::start(
        1,
        &[
            ("quota", "server_groups", "1"),
            ("quota", "server_group_members", "1"),
        ],
    )
    .await;
    let g = group(&c, "demo", "soft-anti-affinity", json!({})).await;
    let r = c
        .post(
            "/v2.1/os-server-groups",
            "demo",
            json!({"server_group": {"name": "more", "policy": "affinity"}}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.fault().1, "Quota exceeded, too many server groups.");
    let r = c.get("/v2.1/limits", "demo").await;
    assert_eq!(r.body["limits"]["absolute"]["totalServerGroupsUsed"], 1);
    let id = boot_with(&c, "demo", "one", json!({}), json!({"group": g})).await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let r = c
        .post("/v2.1/servers", "demo", json!({"server": {"name": "two", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"},
            "os:scheduler_hints": {"group": g}}))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.fault().1, "Quota exceeded, too many servers in group");
    // soft-anti-affinity places on the one host anyway.
    let r = c.get(&format!("/v2.1/os-server-groups/{g}"), "demo").await;
    assert_eq!(r.body["server_group"]["members"], json!([id]));
    c.stop().await;
}
