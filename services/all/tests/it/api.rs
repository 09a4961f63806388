//! The API surface: versions and microversions, auth, faults, bad input
//! (nothing written), policy and project isolation, flavors, keypairs,
//! images, admin views.

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_documents_and_microversion_negotiation() {
    let c = Cluster::start(1, &[]).await;
    // No token needed for the version documents.
    for path in ["/", "/v2.1", "/v2.1/"] {
        let r = c.http.get(c.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        let v = if path == "/" {
            body["versions"][1].clone()
        } else {
            body["version"].clone()
        };
        assert_eq!(v["id"], "v2.1", "{path}: {body}");
        assert_eq!(v["min_version"], "2.1");
        assert_eq!(v["version"], "2.100");
    }
    // Both headers accepted and echoed, with Vary.
    let r = c
        .call(Method::GET, "/v2.1/flavors", "demo", "2.61", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["openstack-api-version"], "compute 2.61");
    assert_eq!(r.headers["x-openstack-nova-api-version"], "2.61");
    assert!(
        r.headers["vary"]
            .to_str()
            .unwrap()
            .contains("X-OpenStack-Nova-API-Version")
    );
    assert!(
        r.headers["x-openstack-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req-")
    );
    let tok = c.token("demo").await;
    let legacy = c
        .http
        .get(c.url("/v2.1/flavors"))
        .header("X-Auth-Token", &tok)
        .header("X-OpenStack-Nova-API-Version", "2.37")
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.headers()["x-openstack-nova-api-version"], "2.37");
    let none = c
        .http
        .get(c.url("/v2.1/flavors"))
        .header("X-Auth-Token", &tok)
        .send()
        .await
        .unwrap();
    assert_eq!(
        none.headers()["x-openstack-nova-api-version"],
        "2.1",
        "no header means 2.1"
    );
    // Out of range: 406; malformed: 400; both with fault bodies.
    for (mv, status) in [("2.101", 406), ("3.0", 406), ("two", 400)] {
        let r = c.call(Method::GET, "/v2.1/flavors", "demo", mv, None).await;
        assert_eq!(r.status, status, "{mv}: {}", r.body);
        r.fault();
        assert!(r.headers.contains_key("vary"));
    }
    let latest = c
        .call(Method::GET, "/v2.1/flavors", "demo", "latest", None)
        .await;
    assert_eq!(latest.headers["x-openstack-nova-api-version"], "2.100");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_checked_and_expire() {
    let c = Cluster::start(1, &[("identity", "token_ttl", "1")]).await;
    let r = c.http.get(c.url("/v2.1/servers")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["unauthorized"]["code"], 401);
    let r = c
        .http
        .get(c.url("/v2.1/servers"))
        .header("X-Auth-Token", "admin:admin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "noauth tokens are refused in keystone mode"
    );
    // Wrong password.
    let bad = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"name": "Default"}, "password": "nope"}}}}});
    let r = c
        .http
        .post(format!("{}/auth/tokens", c.all.api.identity_url))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // A valid token works, then expires.
    let tok = c.token("demo").await;
    let r = c
        .http
        .get(c.url("/v2.1/servers"))
        .header("X-Auth-Token", &tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = c
        .http
        .get(c.url("/v2.1/servers"))
        .header("X-Auth-Token", &tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "expired token");
    // Keystone token validation answers for a valid token with its catalog.
    let admin_body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "admin"}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let r = c
        .http
        .post(format!("{}/auth/tokens", c.all.api.identity_url))
        .json(&admin_body)
        .send()
        .await
        .unwrap();
    let t = r.headers()["x-subject-token"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    let types: Vec<&str> = body["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        ["compute", "image", "identity", "placement"]
            .iter()
            .all(|t| types.contains(t)),
        "{types:?}"
    );
    let roles: Vec<&str> = body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"admin") && roles.contains(&"member") && roles.contains(&"reader"));
    let r = c
        .http
        .get(format!("{}/auth/tokens", c.all.api.identity_url))
        .header("X-Auth-Token", &t)
        .header("X-Subject-Token", &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noauth_mode_takes_user_project_tokens() {
    let c = Cluster::start(1, &[("api", "auth_strategy", "noauth2")]).await;
    let r = c
        .http
        .get(c.url("/v2.1/os-hypervisors"))
        .header("X-Auth-Token", "admin:admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .http
        .get(c.url("/v2.1/os-hypervisors"))
        .header("X-Auth-Token", "demo:demo")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "non-admin user in noauth mode");
    let r = c
        .http
        .get(c.url("/v2.1/servers"))
        .header("X-Auth-Token", "notused")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "keystoneauth's none plugin token");
    c.stop().await;
}

async fn nothing_written(c: &Cluster) {
    let ctx = nova_rpc::RequestContext::new().with_admin(true);
    let n: Vec<nova_objects::Instance> = c
        .all
        .objects
        .list(&ctx, &nova_objects::ListQuery::new())
        .await
        .unwrap();
    assert!(
        n.is_empty(),
        "no instance may be written by a refused request: {}",
        n.len()
    );
    let b: Vec<nova_objects::BuildRequest> = c
        .all
        .objects
        .list(&ctx, &nova_objects::ListQuery::new())
        .await
        .unwrap();
    assert!(b.is_empty());
    assert_eq!(c.total_usage("MEMORY_MB").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_fault_and_writes_nothing() {
    let c = Cluster::start(1, &[]).await;
    let img = nova_all::FAKE_IMAGE_ID;
    let cases = [
        (
            json!({"server": {"name": "x", "imageRef": img, "networks": "none"}}),
            400,
            "flavorRef",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": img}}),
            400,
            "networks",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": img, "networks": "none", "bogus": 1}}),
            400,
            "bogus",
        ),
        (
            json!({"server": {"name": "", "flavorRef": "1", "imageRef": img, "networks": "none"}}),
            400,
            "name",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "999", "imageRef": img, "networks": "none"}}),
            400,
            "Flavor 999 could not be found",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": "7c4b8e5e-0000-4000-8000-000000000000", "networks": "none"}}),
            400,
            "Image 7c4b8e5e-0000-4000-8000-000000000000 could not be found",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": img, "networks": "none", "key_name": "nokey"}}),
            400,
            "Invalid key_name",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": img, "networks": "none", "user_data": "not base64!"}}),
            400,
            "base 64",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": img, "networks": "none", "min_count": 3, "max_count": 2}}),
            400,
            "min_count",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": img, "networks": "none", "availability_zone": "mars"}}),
            400,
            "availability zone",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": img, "networks": [{"uuid": "d34f3c6c-39f2-4bd6-9d35-4a29b1a4e5b2"}]}}),
            400,
            "Network",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": img, "networks": "none", "min_count": 11, "max_count": 11}}),
            403,
            "Quota exceeded for instances",
        ),
    ];
    for (body, status, text) in cases {
        let r = c.post("/v2.1/servers", "demo", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        let (name, msg) = r.fault();
        assert_eq!(
            name,
            if status == 400 {
                "badRequest"
            } else {
                "forbidden"
            }
        );
        assert!(msg.contains(text), "{body}: {msg}");
    }
    // Malformed JSON.
    let tok = c.token("demo").await;
    let r = c
        .http
        .post(c.url("/v2.1/servers"))
        .header("X-Auth-Token", &tok)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Oversized body: 413 overLimit.
    let big = json!({"server": {"name": "x", "flavorRef": "1", "imageRef": img, "networks": "none", "metadata": {"k": "v".repeat(120 * 1024)}}});
    let r = c.post("/v2.1/servers", "demo", big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.fault().0, "overLimit");
    // The unread body ends the connection: the client must not send the next request on it.
    assert_eq!(r.headers["connection"], "close");
    // Unknown action, unknown server.
    let r = c.get("/v2.1/servers/not-a-uuid", "demo").await;
    assert_eq!(
        r.status, 404,
        "names are 404, not 400 (clients look names up this way)"
    );
    assert_eq!(r.fault().0, "itemNotFound");
    let r = c.get("/v2.1/flavors/m1.tiny", "demo").await;
    assert_eq!(r.status, 404);
    nothing_written(&c).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_are_isolated_and_policy_holds() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "mine", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    // Another project: 404, not listed, cannot delete or act.
    let r = c.get(&format!("/v2.1/servers/{id}"), "alt_demo").await;
    assert_eq!(r.status, 404);
    let r = c.get("/v2.1/servers/detail", "alt_demo").await;
    assert_eq!(r.body["servers"].as_array().unwrap().len(), 0);
    let r = c.delete(&format!("/v2.1/servers/{id}"), "alt_demo").await;
    assert_eq!(r.status, 404);
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "alt_demo",
            json!({"os-stop": null}),
        )
        .await;
    assert_eq!(r.status, 404);
    // all_tenants is admin-only; admin sees it.
    let r = c.get("/v2.1/servers/detail?all_tenants=1", "demo").await;
    assert_eq!(r.status, 403);
    let r = c.get("/v2.1/servers/detail?all_tenants=1", "admin").await;
    assert_eq!(r.body["servers"].as_array().unwrap().len(), 1);
    assert!(
        r.body["servers"][0]["OS-EXT-SRV-ATTR:host"].is_string(),
        "admins see the host"
    );
    let r = c.get(&format!("/v2.1/servers/{id}"), "demo").await;
    assert!(
        r.body["server"].get("OS-EXT-SRV-ATTR:host").is_none(),
        "members do not"
    );
    // A reader of the project can look but not change.
    let r = c.get(&format!("/v2.1/servers/{id}"), "viewer").await;
    assert_eq!(r.status, 200);
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "viewer",
            json!({"reboot": {"type": "SOFT"}}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.fault().0, "forbidden");
    // Admin-only APIs are 403 for members.
    for path in [
        "/v2.1/os-hypervisors",
        "/v2.1/os-services",
        "/v2.1/os-availability-zone/detail",
    ] {
        let r = c.get(path, "demo").await;
        assert_eq!(r.status, 403, "{path}");
    }
    let r = c
        .post(
            "/v2.1/flavors",
            "demo",
            json!({"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 1}}),
        )
        .await;
    assert_eq!(r.status, 403);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flavors_keypairs_and_admin_views() {
    let c = Cluster::start(2, &[]).await;
    // Flavors: create (admin), list by is_public, extra specs, access.
    let r = c.call(Method::POST, "/v2.1/flavors", "admin", "2.61", Some(json!({"flavor": {"name": "lab.flavor", "ram": 256, "vcpus": 1, "disk": 1, "id": null, "swap": 0, "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": true}}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fid = r.body["flavor"]["id"].as_str().unwrap().to_owned();
    let r = c
        .call(
            Method::POST,
            "/v2.1/flavors",
            "admin",
            "2.61",
            Some(json!({"flavor": {"name": "lab.flavor", "ram": 256, "vcpus": 1, "disk": 1}})),
        )
        .await;
    assert_eq!(r.status, 409, "duplicate name");
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/flavors/{fid}/os-extra_specs"),
            "admin",
            "2.61",
            Some(json!({"extra_specs": {"hw:cpu_policy": "shared"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .call(
            Method::GET,
            "/v2.1/flavors/detail?is_public=None",
            "admin",
            "2.61",
            None,
        )
        .await;
    let names: Vec<&str> = r.body["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"m1.tiny") && names.contains(&"lab.flavor"),
        "{names:?}"
    );
    let lab = r.body["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "lab.flavor")
        .unwrap();
    assert_eq!(lab["extra_specs"]["hw:cpu_policy"], "shared");
    let r = c
        .call(Method::GET, "/v2.1/flavors?limit=2", "demo", "2.61", None)
        .await;
    assert_eq!(r.body["flavors"].as_array().unwrap().len(), 2);
    assert!(
        r.body["flavors_links"][0]["href"]
            .as_str()
            .unwrap()
            .contains("marker=")
    );
    let r = c
        .call(
            Method::DELETE,
            &format!("/v2.1/flavors/{fid}"),
            "admin",
            "2.61",
            None,
        )
        .await;
    assert_eq!(r.status, 202);
    // Keypairs: import (fingerprint), generate before 2.92, not after.
    let pk =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsRJ5XbOOx1hPN7sC4nT3T0Fm9gWl7EJAx/J2cqvT4W test";
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.10",
            Some(json!({"keypair": {"name": "k1", "public_key": pk}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["keypair"]["fingerprint"]
            .as_str()
            .unwrap()
            .split(':')
            .count(),
        16
    );
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.10",
            Some(json!({"keypair": {"name": "k1", "public_key": pk}})),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.10",
            Some(json!({"keypair": {"name": "k2", "public_key": "garbage"}})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.1",
            Some(json!({"keypair": {"name": "gen"}})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body["keypair"]["private_key"]
            .as_str()
            .unwrap()
            .contains("OPENSSH PRIVATE KEY")
    );
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.92",
            Some(json!({"keypair": {"name": "gen2"}})),
        )
        .await;
    assert_eq!(r.status, 400, "generation is gone at 2.92");
    let r = c
        .call(Method::GET, "/v2.1/os-keypairs", "demo", "2.10", None)
        .await;
    assert_eq!(r.body["keypairs"].as_array().unwrap().len(), 2);
    let r = c
        .call(Method::GET, "/v2.1/os-keypairs", "alt_demo", "2.10", None)
        .await;
    assert_eq!(
        r.body["keypairs"].as_array().unwrap().len(),
        0,
        "keypairs are per user"
    );
    // A server with the key.
    let r = c.post("/v2.1/servers", "demo", json!({"server": {"name": "k", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "auto", "key_name": "k1"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(s["key_name"], "k1");
    let r = c
        .call(Method::DELETE, "/v2.1/os-keypairs/k1", "demo", "2.10", None)
        .await;
    assert_eq!(r.status, 204);
    // Hypervisors, services, zones, limits.
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-hypervisors/detail",
            "admin",
            "2.88",
            None,
        )
        .await;
    let hv = r.body["hypervisors"].as_array().unwrap();
    assert_eq!(hv.len(), 2);
    assert!(
        hv.iter().all(|h| h["state"] == "up"
            && h["status"] == "enabled"
            && h["hypervisor_type"] == "fake"),
        "{hv:?}"
    );
    // The compute writes its usage record within nova_compute::USAGE_FLUSH.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = c
            .call(
                Method::GET,
                "/v2.1/os-hypervisors/detail",
                "admin",
                "2.1",
                None,
            )
            .await;
        let used: i64 = r.body["hypervisors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["running_vms"].as_i64().unwrap())
            .sum();
        if used == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "running_vms is {used}, not 1"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = c
        .call(Method::GET, "/v2.1/os-services", "admin", "2.69", None)
        .await;
    let svcs = r.body["services"].as_array().unwrap();
    let binaries: Vec<&str> = svcs.iter().map(|s| s["binary"].as_str().unwrap()).collect();
    for b in ["nova-compute", "nova-conductor", "nova-scheduler"] {
        assert!(binaries.contains(&b), "{binaries:?}");
    }
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-availability-zone",
            "demo",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.body["availabilityZoneInfo"][0]["zoneName"], "nova");
    assert_eq!(
        r.body["availabilityZoneInfo"][0]["zoneState"]["available"],
        true
    );
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-availability-zone/detail",
            "admin",
            "2.1",
            None,
        )
        .await;
    let zones: Vec<&str> = r.body["availabilityZoneInfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zoneName"].as_str().unwrap())
        .collect();
    assert_eq!(zones, vec!["internal", "nova"]);
    let r = c
        .call(
            Method::GET,
            "/v2.1/limits?reserved=False",
            "demo",
            "2.1",
            None,
        )
        .await;
    let abs = &r.body["limits"]["absolute"];
    assert_eq!(abs["maxTotalInstances"], 10);
    assert_eq!(abs["totalInstancesUsed"], 1);
    assert_eq!(abs["totalRAMUsed"], 512);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_service_subset() {
    let c = Cluster::start(1, &[]).await;
    let base = c.all.api.image_url.clone();
    let tok = c.token("demo").await;
    let r = c.http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c.http.post(format!("{base}/v2/images")).header("X-Auth-Token", &tok).json(&json!({"name": "mine", "disk_format": "raw", "container_format": "bare", "hw_disk_bus": "virtio"})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let img: serde_json::Value = r.json().await.unwrap();
    let id = img["id"].as_str().unwrap().to_owned();
    assert_eq!(img["status"], "queued");
    let r = c
        .http
        .put(format!("{base}/v2/images/{id}/file"))
        .header("X-Auth-Token", &tok)
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = c
        .http
        .get(format!("{base}/v2/images?name=mine"))
        .header("X-Auth-Token", &tok)
        .send()
        .await
        .unwrap();
    let list: serde_json::Value = r.json().await.unwrap();
    assert_eq!(list["images"].as_array().unwrap().len(), 1);
    assert_eq!(list["images"][0]["status"], "active");
    assert_eq!(list["images"][0]["size"], 4096);
    let r = c
        .http
        .get(format!(
            "{base}/v2/images?id=in:{id},{}",
            nova_all::FAKE_IMAGE_ID
        ))
        .header("X-Auth-Token", &tok)
        .send()
        .await
        .unwrap();
    let list: serde_json::Value = r.json().await.unwrap();
    assert_eq!(list["images"].as_array().unwrap().len(), 2);
    let data = c
        .http
        .get(format!("{base}/v2/images/{id}/file"))
        .header("X-Auth-Token", &tok)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(data.len(), 4096);
    // Private to the project.
    let alt = c.token("alt_demo").await;
    let r = c
        .http
        .get(format!("{base}/v2/images/{id}"))
        .header("X-Auth-Token", &alt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = c
        .http
        .get(format!("{base}/v2/images/not-an-id"))
        .header("X-Auth-Token", &tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // The compute API boots from it.
    let r = c
        .post(
            "/v2.1/servers",
            "demo",
            json!({"server": {"name": "i", "flavorRef": "1", "imageRef": id, "networks": "none"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = c
        .http
        .delete(format!("{base}/v2/images/{id}"))
        .header("X-Auth-Token", &tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    c.stop().await;
}

/// A Placement request to the catalog's placement URL.
async fn placement(
    c: &Cluster,
    path: &str,
    user: Option<&str>,
    mv: &str,
) -> (u16, serde_json::Value, String) {
    let mut rb = c
        .http
        .get(format!("{}/placement{path}", c.all.api.compute_url))
        .header("OpenStack-API-Version", format!("placement {mv}"));
    if let Some(u) = user {
        rb = rb.header("X-Auth-Token", c.token(u).await);
    }
    let r = rb.send().await.unwrap();
    let version = r
        .headers()
        .get("openstack-api-version")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), r.json().await.unwrap(), version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_api_shows_providers_usages_and_allocations() {
    let c = Cluster::start(2, &[]).await;
    let admin = Some("admin");
    // The version document, with and without the trailing slash, needs no token.
    for root in ["", "/"] {
        let (st, body, v) = placement(&c, root, None, "1.0").await;
        assert_eq!((st, v.as_str()), (200, "placement 1.0"), "{root:?}");
        assert_eq!(body["versions"][0]["max_version"], "1.39");
    }
    let (st, body, _) = placement(&c, "/resource_providers", admin, "1.14").await;
    assert_eq!(st, 200, "{body}");
    let rps = body["resource_providers"].as_array().unwrap();
    let names: Vec<&str> = rps.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fake-compute-1", "fake-compute-2"]);
    assert_eq!(rps[0]["root_provider_uuid"], rps[0]["uuid"]);
    // Members are refused in Placement's error shape; versions outside 1.0-1.39 are 406.
    let (st, body, _) = placement(&c, "/resource_providers", Some("demo"), "1.14").await;
    assert_eq!(
        (st, body["errors"][0]["status"].as_u64()),
        (403, Some(403)),
        "{body}"
    );
    let (st, _, _) = placement(&c, "/resource_providers", admin, "1.99").await;
    assert_eq!(st, 406);
    let (st, body, _) = placement(&c, "/resource_providers?member_of=x", admin, "1.14").await;
    assert_eq!(st, 400, "{body}");
    let (st, _, _) = placement(&c, "/resource_providers?name=fake-compute-2", admin, "1.14").await;
    assert_eq!(st, 200);

    let id = c.boot("demo", "p-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let s = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
    let host = s.body["server"]["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, body, _) = placement(&c, &format!("/allocations/{id}"), admin, "1.28").await;
    assert_eq!(st, 200, "{body}");
    let allocs = body["allocations"].as_object().unwrap();
    assert_eq!(allocs.len(), 1, "{body}");
    let (rp, a) = allocs.iter().next().unwrap();
    let rp_path = format!("/resource_providers/{rp}");
    assert_eq!(a["resources"]["MEMORY_MB"], 512, "{body}");
    assert!(body["consumer_generation"].is_u64(), "{body}");
    let (st, prov, _) = placement(&c, &rp_path, admin, "1.14").await;
    assert_eq!(st, 200);
    assert_eq!(
        prov["name"],
        host.as_str(),
        "the allocation is on the server's host"
    );
    let (_, u, _) = placement(&c, &format!("{rp_path}/usages"), admin, "1.9").await;
    assert_eq!(u["usages"]["MEMORY_MB"], 512, "{u}");
    let (_, inv, _) = placement(&c, &format!("{rp_path}/inventories"), admin, "1.9").await;
    assert!(
        inv["inventories"]["VCPU"]["total"].as_i64().unwrap() > 0,
        "{inv}"
    );
    assert_eq!(inv["resource_provider_generation"], prov["generation"]);
    let (st, t, _) = placement(&c, &format!("{rp_path}/traits"), admin, "1.9").await;
    assert_eq!(st, 200);
    let (_, stored) = c.all.placement.traits_async(rp).await.unwrap();
    assert_eq!(
        t["traits"],
        json!(stored),
        "the driver's traits as reported"
    );

    let r = c.delete(&format!("/v2.1/servers/{id}"), "demo").await;
    assert_eq!(r.status, 204);
    c.wait_gone("demo", &id).await;
    let (_, body, _) = placement(&c, &format!("/allocations/{id}"), admin, "1.28").await;
    assert_eq!(body, json!({"allocations": {}}));
    let (st, body, _) = placement(&c, "/resource_providers/no-such", admin, "1.14").await;
    assert_eq!((st, body["errors"][0]["status"].as_u64()), (404, Some(404)));
    c.stop().await;
}

/// `GET /os-hypervisors[/detail]` pages by `limit` / `marker` from 2.33
/// (the node `id`, its uuid from 2.53), filters by
/// `hypervisor_hostname_pattern` and lists each node's servers with
/// `with_servers` from 2.53, as nova 34's hypervisors controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hypervisors_page_filter_and_list_their_servers() {
    let c = Cluster::start(3, &[]).await;
    let id = c.boot("demo", "hv", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let server = c.get(&format!("/v2.1/servers/{id}"), "admin").await.body["server"].clone();
    let host = server["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned();
    let get = |path: String, v: &'static str| {
        let c = &c;
        async move { c.call(Method::GET, &path, "admin", v, None).await }
    };
    let ids = |r: &crate::cluster::Reply| -> Vec<String> {
        r.body["hypervisors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].to_string().trim_matches('"').to_owned())
            .collect()
    };
    // Paging by the integer id at 2.33: two pages, a link on the full one.
    let all = get("/v2.1/os-hypervisors".into(), "2.33").await;
    assert_eq!(all.status, 200, "{}", all.body);
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 3);
    let first = get("/v2.1/os-hypervisors?limit=2".into(), "2.33").await;
    assert_eq!(ids(&first), all_ids[..2]);
    let next = first.body["hypervisors_links"][0]["href"].as_str().unwrap();
    assert!(
        next.ends_with(&format!(
            "/v2.1/os-hypervisors?limit=2&marker={}",
            all_ids[1]
        )),
        "{next}"
    );
    let rest = get(
        format!("/v2.1/os-hypervisors?limit=2&marker={}", all_ids[1]),
        "2.33",
    )
    .await;
    assert_eq!(ids(&rest), all_ids[2..]);
    assert!(
        rest.body.get("hypervisors_links").is_none(),
        "{}",
        rest.body
    );
    let r = get("/v2.1/os-hypervisors?marker=999999".into(), "2.33").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.fault().1, "marker [999999] not found");
    // Before 2.53 other parameters are ignored; from 2.53 refused.
    let r = get("/v2.1/os-hypervisors/detail?foo=1".into(), "2.33").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = get("/v2.1/os-hypervisors/detail?foo=1".into(), "2.53").await;
    assert_eq!(r.status, 400, "{}", r.body);
    // From 2.53 the marker is the uuid the list shows.
    let detail = get("/v2.1/os-hypervisors/detail?limit=1".into(), "2.53").await;
    let uuid = ids(&detail)[0].clone();
    assert!(uuid::Uuid::parse_str(&uuid).is_ok(), "{uuid}");
    let next = detail.body["hypervisors_links"][0]["href"]
        .as_str()
        .unwrap();
    assert!(
        next.ends_with(&format!(
            "/v2.1/os-hypervisors/detail?limit=1&marker={uuid}"
        )),
        "{next}"
    );
    let r = get(format!("/v2.1/os-hypervisors/detail?marker={uuid}"), "2.53").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r).len(), 2);
    assert!(!ids(&r).contains(&uuid));
    // The hostname pattern: a substring match, no paging with it, 404
    // when nothing matches.
    let all53 = get("/v2.1/os-hypervisors".into(), "2.53").await;
    let names: Vec<String> = all53.body["hypervisors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hypervisor_hostname"].as_str().unwrap().to_owned())
        .collect();
    let r = get(
        format!(
            "/v2.1/os-hypervisors?hypervisor_hostname_pattern={}",
            names[2]
        ),
        "2.53",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["hypervisors"][0]["hypervisor_hostname"],
        names[2].as_str()
    );
    let r = get(
        format!(
            "/v2.1/os-hypervisors?hypervisor_hostname_pattern={}&limit=1",
            names[2]
        ),
        "2.53",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = get(
        "/v2.1/os-hypervisors?hypervisor_hostname_pattern=no-such-node".into(),
        "2.53",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.fault().1,
        "No hypervisor matching 'no-such-node' could be found."
    );
    // with_servers: the server on its host; the others list none (an
    // empty list from 2.75).
    for v in ["2.53", "2.75"] {
        let r = get("/v2.1/os-hypervisors?with_servers=true".into(), v).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let hv = r.body["hypervisors"].as_array().unwrap();
        let detail = get("/v2.1/os-hypervisors/detail".into(), v).await;
        for (h, d) in hv
            .iter()
            .zip(detail.body["hypervisors"].as_array().unwrap())
        {
            if d["service"]["host"] == host.as_str() {
                assert_eq!(h["servers"][0]["uuid"], id.as_str(), "{h}");
                assert!(
                    h["servers"][0]["name"]
                        .as_str()
                        .unwrap()
                        .starts_with("instance-")
                );
            } else if v == "2.75" {
                assert_eq!(h["servers"], json!([]), "{h}");
            } else {
                assert!(h.get("servers").is_none(), "{h}");
            }
        }
        let r = get("/v2.1/os-hypervisors?with_servers=maybe".into(), v).await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    // The show takes with_servers too; at 2.88 its detail has the uptime
    // from the compute (the fake driver reports none in its stats, so a
    // list, which makes no call per node, shows null as nova's would).
    let on_host = get("/v2.1/os-hypervisors/detail".into(), "2.88").await;
    let node = on_host.body["hypervisors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["service"]["host"] == host.as_str())
        .unwrap()
        .clone();
    assert!(node["uptime"].is_null(), "{node}");
    let r = get(
        format!(
            "/v2.1/os-hypervisors/{}?with_servers=1",
            node["id"].as_str().unwrap()
        ),
        "2.88",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["hypervisor"]["servers"][0]["uuid"], id.as_str());
    assert!(
        r.body["hypervisor"]["uptime"]
            .as_str()
            .is_some_and(|u| u.contains("load average")),
        "{}",
        r.body
    );
    c.stop().await;
}
