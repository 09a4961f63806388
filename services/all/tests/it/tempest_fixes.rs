//! Behaviour tempest's compute API tests found wrong on routes we serve,
//! each as nova 34 answers it: integer flavor ids, key pair bodies per
//! microversion (and x509 key pairs), the update view, trusted image
//! certificates, the network quotas below 2.36, unknown security groups,
//! access addresses and a requested admin password.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;

const CERT: &str = "-----BEGIN CERTIFICATE-----
MIICCjCCAXOgAwIBAgIUeSoLQ7Cukp3/tc1qc45gVVrg0OgwDQYJKoZIhvcNAQEL
BQAwFzEVMBMGA1UEAwwMdGVtcGVzdC10ZXN0MB4XDTI2MTIwNjA4MDIxOFoXDTM2
MTIwMzA4MDIxOFowFzEVMBMGA1UEAwwMdGVtcGVzdC10ZXN0MIGfMA0GCSqGSIb3
DQEBAQUAA4GNADCBiQKBgQC19N9bHxUAcvXQuGUPnrNQnFwNaFAc34ozVZeLrq/f
qNOIxTqOG87Ha58df8wlJ24g6UwQ10OLvslsrAbC/fzMdlEl8hzLrpvNkzBFUoq7
NHJdQZycq/lloVgRiH9f9GWG1VKE3CoCLAi4slTLD6VEV26sHrewIavxLL6PQFY3
0QIDAQABo1MwUTAdBgNVHQ4EFgQUBgUbigceCrq/+AD3qjVt+q05CLMwHwYDVR0j
BBgwFoAUBgUbigceCrq/+AD3qjVt+q05CLMwDwYDVR0TAQH/BAUwAwEB/zANBgkq
hkiG9w0BAQsFAAOBgQCTz/rq1eDBCVON49pK1JEGiPgaJWWboPLidUS3K+aFRQFL
njzJUdD20mQqGLPpSkP7+lEZh5fxTomNIVuIwVkPdXvYb2eIpGJxQOvoC0PoViFr
GgeLgfi9NxldG9z9o8EjwPQwk4Kt85hhS2qJDKbZD2H6ZKHQ8VyVlCnq9dT/Xg==
-----END CERTIFICATE-----
";
/// `openssl x509 -noout -fingerprint -sha1` of [`CERT`].
const CERT_SHA1: &str = "10:11:88:a5:cc:00:5f:23:1f:d1:0f:18:22:af:cd:1d:20:3e:0e:0a";

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flavor_ids_may_be_integers() {
    let c = Cluster::start(0, &[]).await;
    let r = c
        .call(
            Method::POST,
            "/v2.1/flavors",
            "admin",
            "2.1",
            Some(
                json!({"flavor": {"name": "int-id", "ram": 64, "vcpus": 1, "disk": 1, "id": 4242}}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["flavor"]["id"], "4242");
    let r = c.get("/v2.1/flavors/4242", "demo").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["flavor"]["name"], "int-id");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypair_bodies_are_nova_views_per_microversion() {
    let c = Cluster::start(0, &[]).await;
    let kp = |name: &str| json!({"keypair": {"name": name}});
    // 2.1: generated, 200, no type, no record columns.
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.1",
            Some(kp("k1")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        keys(&r.body["keypair"]),
        [
            "fingerprint",
            "name",
            "private_key",
            "public_key",
            "user_id"
        ]
    );
    // 2.2: type; an import has no private key.
    let pk = r.body["keypair"]["public_key"].as_str().unwrap().to_owned();
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.2",
            Some(json!({"keypair": {"name": "k2", "public_key": pk}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        keys(&r.body["keypair"]),
        ["fingerprint", "name", "public_key", "type", "user_id"]
    );
    assert_eq!(r.body["keypair"]["type"], "ssh");
    // show: the record's columns, type from 2.2.
    let r = c
        .call(Method::GET, "/v2.1/os-keypairs/k2", "demo", "2.1", None)
        .await;
    assert_eq!(
        keys(&r.body["keypair"]),
        [
            "created_at",
            "deleted",
            "deleted_at",
            "fingerprint",
            "id",
            "name",
            "public_key",
            "updated_at",
            "user_id"
        ]
    );
    assert!(r.body["keypair"]["id"].is_i64(), "{}", r.body);
    let r = c
        .call(Method::GET, "/v2.1/os-keypairs/k2", "demo", "2.2", None)
        .await;
    assert_eq!(r.body["keypair"]["type"], "ssh");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_keypairs_import_and_generate() {
    let c = Cluster::start(0, &[]).await;
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.2",
            Some(json!({"keypair": {"name": "cert", "type": "x509", "public_key": CERT}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["keypair"]["fingerprint"], CERT_SHA1);
    assert_eq!(r.body["keypair"]["type"], "x509");
    // Not a certificate: 400, nothing written.
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.2",
            Some(json!({"keypair": {"name": "bad", "type": "x509",
                "public_key": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.fault().1.contains("X509 fingerprint"), "{}", r.body);
    let r = c
        .call(Method::GET, "/v2.1/os-keypairs/bad", "demo", "2.2", None)
        .await;
    assert_eq!(r.status, 404);
    // Generated (as nova: openssl makes a client certificate for the user).
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.2",
            Some(json!({"keypair": {"name": "gen", "type": "x509"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let k = &r.body["keypair"];
    assert!(
        k["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"),
        "{k}"
    );
    assert_eq!(k["fingerprint"].as_str().unwrap().len(), 59, "{k}");
    assert!(!k["private_key"].as_str().unwrap().is_empty());
    let r = c
        .call(Method::GET, "/v2.1/os-keypairs/gen", "demo", "2.2", None)
        .await;
    assert_eq!(r.body["keypair"]["type"], "x509");
    assert_eq!(r.body["keypair"]["fingerprint"], k["fingerprint"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boots_honour_admin_pass_addresses_groups_and_trusted_certs() {
    let c = Cluster::start(1, &[]).await;
    let server = |extra: Value| {
        let mut s = json!({"name": "t", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        json!({"server": s})
    };
    // An unknown security group is refused, nothing booted.
    let r = c
        .call(
            Method::POST,
            "/v2.1/servers",
            "demo",
            "2.63",
            Some(server(
                json!({"security_groups": [{"name": "no-such-group"}]}),
            )),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.fault().1.contains("no-such-group"), "{}", r.body);
    let r = c.get("/v2.1/servers", "demo").await;
    assert_eq!(r.body["servers"], json!([]));
    // adminPass, accessIPv6 normalised, trusted certificates, default group.
    let r = c
        .call(
            Method::POST,
            "/v2.1/servers",
            "demo",
            "2.63",
            Some(server(json!({
                "adminPass": "s3cr3t-pass",
                "accessIPv6": "0000:0000:0000:0000:0000:babe:220.12.22.2",
                "security_groups": [{"name": "default"}],
                "trusted_image_certificates": ["cert-a", "cert-b"],
            }))),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["server"]["adminPass"], "s3cr3t-pass");
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    c.wait_status("demo", &id, "ACTIVE").await;
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}"),
            "demo",
            "2.63",
            None,
        )
        .await;
    let s = &r.body["server"];
    assert_eq!(s["accessIPv6"], "::babe:dc0c:1602");
    assert_eq!(s["trusted_image_certificates"], json!(["cert-a", "cert-b"]));
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}"),
            "demo",
            "2.62",
            None,
        )
        .await;
    assert!(r.body["server"].get("trusted_image_certificates").is_none());
    // Without certificates: null from 2.63 (show and detail).
    let other = c.boot("demo", "plain", "1").await;
    let r = c
        .call(Method::GET, "/v2.1/servers/detail", "demo", "2.63", None)
        .await;
    let plain = r.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == other.as_str())
        .unwrap()
        .clone();
    assert_eq!(plain["trusted_image_certificates"], Value::Null);
    assert!(
        plain
            .as_object()
            .unwrap()
            .contains_key("trusted_image_certificates")
    );
    // PUT: the update view below 2.75, the show view from 2.75; the
    // address normalised there too.
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/servers/{id}"),
            "admin",
            "2.1",
            Some(json!({"server": {"accessIPv6": "2001:2001:0000::0003"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = &r.body["server"];
    assert_eq!(s["accessIPv6"], "2001:2001::3");
    let extra: Vec<String> = keys(s)
        .into_iter()
        .filter(|k| {
            k.starts_with("OS-EXT-")
                || k.starts_with("OS-SRV-USG")
                || k.starts_with("os-extended-volumes")
                || ["key_name", "config_drive", "security_groups"].contains(&k.as_str())
        })
        .collect();
    assert!(extra.is_empty(), "update view at 2.1 has {extra:?}");
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/servers/{id}"),
            "admin",
            "2.75",
            Some(json!({"server": {"name": "renamed"}})),
        )
        .await;
    let s = &r.body["server"];
    assert_eq!(s["name"], "renamed");
    assert!(s.get("OS-EXT-STS:vm_state").is_some(), "{s}");
    assert!(s.get("OS-EXT-SRV-ATTR:host").is_some(), "{s}");
    assert_eq!(s["key_name"], Value::Null);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_sets_show_the_network_resources_below_2_36() {
    let c = Cluster::start(0, &[]).await;
    let path = "/v2.1/os-quota-sets/demo";
    let r = c.call(Method::GET, path, "demo", "2.1", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for k in [
        "fixed_ips",
        "floating_ips",
        "security_groups",
        "security_group_rules",
    ] {
        assert_eq!(r.body["quota_set"][k], -1, "{k}: {}", r.body);
    }
    let r = c
        .call(Method::GET, &format!("{path}/detail"), "demo", "2.1", None)
        .await;
    assert_eq!(
        r.body["quota_set"]["floating_ips"],
        json!({"limit": -1, "in_use": 0, "reserved": 0})
    );
    let r = c.call(Method::GET, path, "demo", "2.36", None).await;
    assert!(r.body["quota_set"].get("fixed_ips").is_none(), "{}", r.body);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flavor_filters_extra_spec_unset_and_the_v2_root() {
    let c = Cluster::start(0, &[]).await;
    let make = |name: &str, public: &str| json!({"flavor": {"name": name, "ram": 64, "vcpus": 1, "disk": 1, "os-flavor-access:is_public": public}});
    for (name, public) in [("priv", "False"), ("pub", "True")] {
        let r = c
            .call(
                Method::POST,
                "/v2.1/flavors",
                "admin",
                "2.1",
                Some(make(name, public)),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let names = |r: &crate::cluster::Reply| -> Vec<String> {
        r.body["flavors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for (v, has, lacks) in [
        ("f", "priv", "pub"),
        ("no", "priv", "pub"),
        ("t", "pub", "priv"),
        ("1", "pub", "priv"),
    ] {
        let r = c
            .call(
                Method::GET,
                &format!("/v2.1/flavors/detail?is_public={v}"),
                "admin",
                "2.1",
                None,
            )
            .await;
        let n = names(&r);
        assert!(
            n.contains(&has.to_owned()) && !n.contains(&lacks.to_owned()),
            "{v}: {n:?}"
        );
    }
    let r = c
        .call(
            Method::GET,
            "/v2.1/flavors?is_public=maybe",
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    // Users ignore the filter: the public ones.
    let r = c
        .call(
            Method::GET,
            "/v2.1/flavors?is_public=false",
            "demo",
            "2.1",
            None,
        )
        .await;
    assert!(names(&r).contains(&"pub".to_owned()));
    // Unsetting an extra spec answers 200 (nova's default).
    let r = c.get("/v2.1/flavors?is_public=none", "admin").await;
    let id = r.body["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "pub")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let specs = format!("/v2.1/flavors/{id}/os-extra_specs");
    let r = c
        .call(
            Method::POST,
            &specs,
            "admin",
            "2.1",
            Some(json!({"extra_specs": {"k": "v"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .call(Method::DELETE, &format!("{specs}/k"), "admin", "2.1", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The legacy v2 root: its own document, its self link the one listed.
    let r = c.http.get(c.url("/")).send().await.unwrap();
    let versions: Value = r.json().await.unwrap();
    let href = versions["versions"][0]["links"][0]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(href.ends_with("/v2/"), "{versions}");
    let r = c.http.get(&href).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["version"]["id"], "v2.0");
    assert_eq!(doc["version"]["links"][0]["href"], href.as_str());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_hints_at_2_100_come_from_the_request_spec_in_show_and_detail() {
    let c = Cluster::start(1, &[]).await;
    let r = c
        .post(
            "/v2.1/servers",
            "demo",
            json!({"server": {"name": "h", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"},
                   "os:scheduler_hints": {"my_hint": "x"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let hinted = r.body["server"]["id"].as_str().unwrap().to_owned();
    let plain = c.boot("demo", "p", "1").await;
    c.wait_status("demo", &hinted, "ACTIVE").await;
    let r = c.get(&format!("/v2.1/servers/{hinted}"), "demo").await;
    assert_eq!(
        r.body["server"]["scheduler_hints"],
        json!({"my_hint": ["x"]})
    );
    let r = c.get("/v2.1/servers/detail", "demo").await;
    for s in r.body["servers"].as_array().unwrap() {
        let want = if s["id"] == hinted.as_str() {
            json!({"my_hint": ["x"]})
        } else {
            assert_eq!(s["id"], plain.as_str());
            json!({})
        };
        assert_eq!(s["scheduler_hints"], want, "{s}");
    }
    let r = c
        .call(Method::GET, "/v2.1/servers/detail", "demo", "2.99", None)
        .await;
    assert!(r.body["servers"][0].get("scheduler_hints").is_none());
    c.stop().await;
}
