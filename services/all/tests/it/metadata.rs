//! The metadata API (`enabled_apis = osapi_compute,metadata`) as guests
//! and Neutron's metadata proxy use it: signed instance headers and their
//! refusals, the requester found by its fixed address, the OpenStack and
//! EC2 trees read by cloud-init's own readers (Debian's `cloud-init` 22.4,
//! its `cloudinit.sources.helpers.openstack` and `.ec2` modules), vendor
//! data (StaticJSON, DynamicJSON with a failing and a slow target), and
//! the password posted once.

use std::time::Duration;

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use nova_objects::{InstanceInfoCache, Objects};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;

const SECRET: &str = "s3cr3t-shared-with-neutron";
const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsRJ5XbOOx1hPN7sC4nT3T0Fm9gWl7EJAx/J2cqvT4W guest";
const USER_DATA: &str = "#!/bin/sh\necho hello from user data\n";

pub(crate) fn sign(secret: &str, id: &str) -> String {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(id.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A dynamic vendordata service: answers every POST with what it was sent.
async fn echo_vendor_service() -> String {
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(|body: axum::Json<Value>| async move {
            axum::Json(
                json!({"seen-instance": body["instance-id"], "seen-project": body["project-id"]}),
            )
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

/// A vendordata service that never answers in time.
async fn slow_vendor_service() -> String {
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "{}"
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

pub(crate) struct Guest {
    pub(crate) id: String,
    pub(crate) project: String,
}

/// Boots a server with a key pair, user data and metadata as `demo`.
pub(crate) async fn boot_guest(c: &Cluster, extra: Value) -> Guest {
    boot_guest_as(c, nova_all::FAKE_IMAGE_ID, extra).await
}

/// [`boot_guest`] from `image`.
pub(crate) async fn boot_guest_as(c: &Cluster, image: &str, extra: Value) -> Guest {
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.10",
            Some(json!({"keypair": {"name": "guest-key", "public_key": PUBLIC_KEY}})),
        )
        .await;
    assert!(r.status == 201 || r.status == 409, "{}", r.body);
    let ud = base64::engine::general_purpose::STANDARD.encode(USER_DATA);
    let mut server = json!({"name": "meta-guest", "flavorRef": "1", "imageRef": image,
        "networks": "none", "key_name": "guest-key", "user_data": ud, "metadata": {"role": "db"}});
    if let (Some(s), Some(e)) = (server.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    // `personality` is refused from 2.57 on.
    let version = if server.get("personality").is_some() {
        "2.56"
    } else {
        "2.100"
    };
    let r = c
        .call(
            Method::POST,
            "/v2.1/servers",
            "demo",
            version,
            Some(json!({ "server": server })),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    Guest {
        id,
        project: s["tenant_id"].as_str().unwrap().to_owned(),
    }
}

pub(crate) async fn metadata_cluster(extra: &[(&str, &str, &str)]) -> (Cluster, String) {
    let mut conf = vec![
        ("DEFAULT", "enabled_apis", "osapi_compute,metadata"),
        ("DEFAULT", "metadata_listen_port", "0"),
    ];
    conf.extend_from_slice(extra);
    let c = Cluster::start(1, &conf).await;
    let url = format!("http://{}", c.all.metadata.expect("the metadata API runs"));
    (c, url)
}

/// Runs cloud-init's readers (Python, from Debian's package) against
/// `url` (`headers` added to every request, as Neutron's proxy does), or
/// against a config drive directory; prints what they read as JSON.
pub(crate) fn cloud_init_read(source: &str, headers: &Value) -> Value {
    cloud_init_read_in(None, source, headers)
}

/// [`cloud_init_read`] from inside the network namespace `netns` (a
/// guest's view of the network), when given.
pub(crate) fn cloud_init_read_in(netns: Option<&str>, source: &str, headers: &Value) -> Value {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let script = r#"
import json, sys
from cloudinit import url_helper
from cloudinit.sources.helpers import openstack, ec2
source, headers = sys.argv[1], json.loads(sys.argv[2])
orig = url_helper.readurl
def readurl(url, *a, **kw):
    h = dict(kw.pop("headers", None) or {}); h.update(headers)
    return orig(url, *a, headers=h, **kw)
url_helper.readurl = readurl
def text(b):
    return b.decode() if isinstance(b, bytes) else b
if source.startswith("http"):
    res = openstack.MetadataReader(source, timeout=5, retries=0).read_v2()
    e = ec2.get_instance_metadata("2009-04-04", source, timeout=5, retries=0)
    eud = ec2.get_instance_userdata("2009-04-04", source, timeout=5, retries=0)
else:
    res = openstack.ConfigDriveReader(source).read_v2()
    e, eud = res.get("ec2-metadata"), None
print(json.dumps({"metadata": res["metadata"], "userdata": text(res.get("userdata")),
    "networkdata": res.get("networkdata"), "vendordata": res.get("vendordata"),
    "vendordata2": res.get("vendordata2"), "ec2": e, "ec2_userdata": text(eud),
    "files": {p: text(c) for p, c in (res.get("files") or {}).items()},
    "version": res.get("version")}, default=str))
"#;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns, &python]);
            c
        }
        None => std::process::Command::new(&python),
    };
    let out = cmd
        .env("PYTHONPATH", "/usr/lib/python3/dist-packages")
        .args(["-c", script, source, &headers.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (scripts/test creates the virtualenv)"));
    assert!(
        out.status.success(),
        "cloud-init's readers failed (Debian's cloud-init installed? scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What cloud-init read matches the server: uuid, key, user data, vendor data.
pub(crate) fn check_cloud_init_view(v: &Value, g: &Guest, drive: bool) {
    let md = &v["metadata"];
    assert_eq!(md["uuid"], json!(g.id), "{v}");
    assert_eq!(md["name"], "meta-guest");
    assert_eq!(md["project_id"], json!(g.project));
    assert_eq!(md["public_keys"]["guest-key"], PUBLIC_KEY);
    assert_eq!(
        md["keys"][0],
        json!({"name": "guest-key", "type": "ssh", "data": PUBLIC_KEY})
    );
    assert_eq!(md["meta"], json!({"role": "db"}));
    assert_eq!(md["launch_index"], 0);
    assert_eq!(md["hostname"], "meta-guest.novalocal");
    // cloud-init decodes the base64 random_seed into bytes (printed b'…').
    assert!(
        md["random_seed"]
            .as_str()
            .is_some_and(|s| s.starts_with("b'") || s.starts_with("b\"")),
        "{md}"
    );
    assert_eq!(md["devices"], json!([]));
    assert_eq!(v["userdata"], USER_DATA);
    assert_eq!(v["vendordata"], json!({"from": "static vendordata"}));
    assert_eq!(
        v["vendordata2"]["static"],
        json!({"from": "static vendordata"})
    );
    let ec2 = &v["ec2"];
    if drive {
        // nova's config drive drops the `0=name` listing entry.
        assert_eq!(ec2["public-keys"]["0"]["openssh-key"], PUBLIC_KEY, "{ec2}");
    } else {
        let key = &ec2["public-keys"]["guest-key"];
        assert!(key == PUBLIC_KEY || *key == json!([PUBLIC_KEY]), "{ec2}");
    }
    assert_eq!(ec2["local-hostname"], "meta-guest.novalocal");
    assert!(ec2["placement"].get("availability-zone").is_some(), "{ec2}");
    assert!(ec2["instance-id"].as_str().unwrap().starts_with("i-"));
    if !drive {
        assert_eq!(v["ec2_userdata"], USER_DATA);
    }
}

pub(crate) fn vendor_conf(dir: &std::path::Path) -> String {
    let p = dir.join("vendor_data.json");
    std::fs::write(&p, r#"{"from": "static vendordata"}"#).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_init_reads_the_metadata_service_through_the_signed_proxy_headers() {
    let dir = crate::cluster::temp_dir("vendordata");
    let vpath = vendor_conf(&dir);
    let echo = echo_vendor_service().await;
    let slow = slow_vendor_service().await;
    let targets = format!("echo@{echo}, dead@http://127.0.0.1:9/, slow@{slow}");
    let (c, url) = metadata_cluster(&[
        ("neutron", "service_metadata_proxy", "true"),
        ("neutron", "metadata_proxy_shared_secret", SECRET),
        ("api", "vendordata_providers", "StaticJSON,DynamicJSON"),
        ("api", "vendordata_jsonfile_path", &vpath),
        ("api", "vendordata_dynamic_targets", &targets),
        ("api", "vendordata_dynamic_connect_timeout", "1"),
        ("api", "vendordata_dynamic_read_timeout", "1"),
    ])
    .await;
    let g = boot_guest(&c, json!({})).await;
    let headers = json!({"X-Instance-ID": g.id, "X-Tenant-ID": g.project,
        "X-Instance-ID-Signature": sign(SECRET, &g.id), "X-Forwarded-For": "10.0.0.5"});
    let t = std::time::Instant::now();
    let v = tokio::task::spawn_blocking({
        let (url, headers) = (url.clone(), headers.clone());
        move || cloud_init_read(&url, &headers)
    })
    .await
    .unwrap();
    check_cloud_init_view(&v, &g, false);
    // DynamicJSON: the echo target saw the instance, the dead and the slow
    // ones degrade to {} (within their timeouts) instead of failing.
    let v2 = &v["vendordata2"];
    assert_eq!(
        v2["echo"],
        json!({"seen-instance": g.id, "seen-project": g.project}),
        "{v2}"
    );
    assert_eq!(v2["dead"], json!({}));
    assert_eq!(v2["slow"], json!({}));
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "timeouts bound the slow target"
    );
    assert_eq!(
        v["networkdata"],
        json!({}),
        "no network information: nova's {{}}"
    );

    let http = reqwest::Client::new();
    let get = |path: &str, h: &[(&str, String)]| {
        let mut rb = http.get(format!("{url}{path}"));
        for (k, v) in h {
            rb = rb.header(*k, v);
        }
        rb.send()
    };
    let signed = |id: &str, tenant: &str, sig: String| {
        vec![
            ("X-Instance-ID", id.to_owned()),
            ("X-Tenant-ID", tenant.to_owned()),
            ("X-Instance-ID-Signature", sig),
        ]
    };
    let ok = signed(&g.id, &g.project, sign(SECRET, &g.id));
    // Paths and formats.
    let r = get("/openstack", &ok).await.unwrap();
    assert_eq!(r.status(), 200);
    let versions = r.text().await.unwrap();
    assert!(
        versions.starts_with("2012-08-10\n") && versions.ends_with("\n2025-04-04\nlatest"),
        "{versions}"
    );
    let r = get("/openstack/latest/meta_data.json", &ok).await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let md: Value = r.json().await.unwrap();
    assert_eq!(md["dedicated_cpus"], json!([]));
    let seed = base64::engine::general_purpose::STANDARD
        .decode(md["random_seed"].as_str().unwrap())
        .unwrap();
    assert_eq!(seed.len(), 512);
    let r = get("/openstack/2012-08-10/meta_data.json", &ok)
        .await
        .unwrap();
    let old: Value = r.json().await.unwrap();
    assert!(
        old.get("random_seed").is_none() && old.get("project_id").is_none(),
        "{old}"
    );
    let listing = get("/openstack/latest", &ok)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        listing,
        "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json"
    );
    assert_eq!(
        get("/", &[])
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .lines()
            .last(),
        Some("latest")
    );
    let ec2 = get("/latest/meta-data/", &ok)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        ec2.contains("\ninstance-id\n")
            && ec2.contains("public-keys/")
            && ec2.contains("placement/"),
        "{ec2}"
    );
    assert_eq!(
        get("/latest/meta-data/public-keys/", &ok)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "0=guest-key"
    );
    assert_eq!(
        get("/2009-04-04/meta-data/public-keys/0/openssh-key", &ok)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        PUBLIC_KEY
    );
    assert_eq!(
        get("/latest/user-data", &ok)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        USER_DATA
    );
    // No fixed IP: nova's local-ipv4 is the proxied requester's address.
    assert_eq!(
        get("/latest/meta-data/local-ipv4", &ok)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "10.0.0.5"
    );
    assert_eq!(
        get("/openstack/2099-01-01/meta_data.json", &ok)
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        get("/latest/meta-data/no-such-key", &ok)
            .await
            .unwrap()
            .status(),
        404
    );

    // Refusals.
    let bad = signed(&g.id, &g.project, sign("another secret", &g.id));
    let r = get("/openstack/latest/meta_data.json", &bad).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Invalid proxy request signature.")
    );
    let other = "1b0c7e5e-0000-4000-8000-000000000000";
    let r = get(
        "/openstack/latest/meta_data.json",
        &signed(other, &g.project, sign(SECRET, other)),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404, "unknown instance");
    let r = get(
        "/openstack/latest/meta_data.json",
        &signed(&g.id, "someone-else", sign(SECRET, &g.id)),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404, "another project's instance");
    for (drop, msg) in [
        (
            "X-Instance-ID",
            "X-Instance-ID header is missing from request.",
        ),
        (
            "X-Instance-ID-Signature",
            "X-Instance-ID-Signature header is missing from request.",
        ),
        ("X-Tenant-ID", "X-Tenant-ID header is missing from request."),
    ] {
        let h: Vec<_> = ok.iter().filter(|(k, _)| *k != drop).cloned().collect();
        let r = get("/openstack/latest/meta_data.json", &h).await.unwrap();
        assert_eq!(r.status(), 400, "without {drop}");
        assert!(r.text().await.unwrap().contains(msg));
    }

    // The password: empty, posted once by the guest, then 409; the API
    // shows it to the owner.
    let pw_url = format!("{url}/openstack/latest/password");
    let post = |body: &'static str| {
        let mut rb = http.post(&pw_url).body(body);
        for (k, v) in &ok {
            rb = rb.header(*k, v);
        }
        rb.send()
    };
    assert_eq!(
        get("/openstack/latest/password", &ok)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        ""
    );
    assert_eq!(
        post("ZW5jcnlwdGVkLXBhc3N3b3Jk").await.unwrap().status(),
        200
    );
    assert_eq!(post("again").await.unwrap().status(), 409);
    assert_eq!(
        get("/openstack/latest/password", &ok)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ZW5jcnlwdGVkLXBhc3N3b3Jk"
    );
    let r = c
        .get(
            &format!("/v2.1/servers/{}/os-server-password", g.id),
            "demo",
        )
        .await;
    assert_eq!(r.body["password"], "ZW5jcnlwdGVkLXBhc3N3b3Jk", "{}", r.body);
    c.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A Neutron API answering the provider path's two queries: provider
/// `lb-1` serves the subnets of `net-1` and `net-2`; on them `10.0.0.5` is
/// `device`'s port (of `tenant`), `10.0.0.6` says another project's,
/// `10.0.0.9` has two ports. Counts the
/// port queries (the cache saves them).
async fn neutron_ports(
    device: String,
    tenant: String,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::extract::RawQuery;
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = asked.clone();
    let pairs = |q: &Option<String>| -> Vec<(String, String)> {
        q.as_deref()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                let v = v.replace("%3D", "=").replace("%3d", "=");
                (k.to_owned(), v)
            })
            .collect()
    };
    let app = axum::Router::new()
        .route(
            "/v2.0/subnets",
            axum::routing::get(
                move |h: axum::http::HeaderMap, RawQuery(q): RawQuery| async move {
                    assert_eq!(h["x-auth-token"], "neutron-admin");
                    let p = pairs(&q);
                    assert!(p.contains(&("fields".into(), "network_id".into())), "{p:?}");
                    let served = p.contains(&("advanced_service_providers".into(), "lb-1".into()));
                    let subnets = if served {
                        json!([{"network_id": "net-1"}, {"network_id": "net-2"}])
                    } else {
                        json!([])
                    };
                    axum::Json(json!({ "subnets": subnets }))
                },
            ),
        )
        .route(
            "/v2.0/ports",
            axum::routing::get(move |RawQuery(q): RawQuery| {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (device, tenant) = (device.clone(), tenant.clone());
                async move {
                let p = pairs(&q);
                let on_nets = p.contains(&("network_id".into(), "net-1".into()))
                    && p.contains(&("network_id".into(), "net-2".into()));
                let ip = p
                    .iter()
                    .find(|(k, _)| k == "fixed_ips")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let port = json!({"device_id": device, "tenant_id": tenant});
                let ports = match ip.as_str() {
                    "ip_address=10.0.0.5" if on_nets => json!([port]),
                    "ip_address=10.0.0.9" if on_nets => json!([port, port]),
                    "ip_address=10.0.0.6" if on_nets => {
                        json!([{"device_id": port["device_id"], "tenant_id": "another-project"}])
                    }
                    _ => json!([]),
                };
                axum::Json(json!({ "ports": ports }))
                }
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, asked)
}

/// The metadata provider path (`X-Metadata-Provider`, nova's requests
/// from a provider network's metadata proxy): the signed provider id and
/// the guest's address find its port in Neutron; cloud-init reads the
/// server's metadata through it; nova's refusals otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_provider_path_finds_the_guest_by_its_port() {
    const SECRET: &str = "provider-secret";
    let dir = crate::cluster::temp_dir("provider");
    let vpath = vendor_conf(&dir);
    // The guest's uuid is known only after the boot, and Neutron's answers
    // name it: the cluster's own metadata service has no Neutron; a second
    // one on the same database asks the test's Neutron.
    let (c, url_plain) = metadata_cluster(&[
        ("neutron", "service_metadata_proxy", "true"),
        ("neutron", "metadata_proxy_shared_secret", SECRET),
        ("api", "vendordata_jsonfile_path", &vpath),
    ])
    .await;
    let g = boot_guest(&c, json!({})).await;
    let (neutron, asked) = neutron_ports(g.id.clone(), g.project.clone()).await;
    let mut conf = nova_service::Conf::default();
    for (s, k, v) in [
        ("neutron", "service_metadata_proxy", "true"),
        ("neutron", "metadata_proxy_shared_secret", SECRET),
        ("neutron", "endpoint_override", neutron.as_str()),
        ("neutron", "token", "neutron-admin"),
        ("api", "vendordata_jsonfile_path", vpath.as_str()),
    ] {
        conf.set(s, k, v);
    }
    let svc = nova_metadata::MetadataService::new(
        c.all.objects.clone(),
        nova_metadata::ServiceConfig::from_conf(&conf).unwrap(),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let app = svc
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(l, app).await });

    let headers = json!({"X-Metadata-Provider": "lb-1",
        "X-Metadata-Provider-Signature": sign(SECRET, "lb-1"), "X-Forwarded-For": "10.0.0.5"});
    let v = tokio::task::spawn_blocking({
        let (url, headers) = (url.clone(), headers.clone());
        move || cloud_init_read(&url, &headers)
    })
    .await
    .unwrap();
    check_cloud_init_view(&v, &g, false);
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the provider's answer is cached ([api] metadata_cache_expiration)"
    );

    let http = reqwest::Client::new();
    let get = |u: &str, h: Vec<(&'static str, String)>| {
        let mut rb = http.get(format!("{u}/openstack/latest/meta_data.json"));
        for (k, v) in h {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    let provider = |id: &str, sig: String, ip: &str| {
        vec![
            ("X-Metadata-Provider", id.to_owned()),
            ("X-Metadata-Provider-Signature", sig),
            ("X-Forwarded-For", ip.to_owned()),
        ]
    };
    let r = get(
        &url,
        provider("lb-1", sign(SECRET, "lb-1"), "10.0.0.5, 192.0.2.1"),
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the first X-Forwarded-For address is the guest's"
    );
    let md: Value = r.json().await.unwrap();
    assert_eq!(md["uuid"], json!(g.id));
    // Refusals, with nova's statuses and explanations.
    let refused = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    };
    let (st, body) = refused(
        get(&url, provider("lb-1", sign("other", "lb-1"), "10.0.0.5"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 403);
    assert!(body.contains("Invalid proxy request signature."), "{body}");
    let (st, _) = refused(
        get(
            &url,
            vec![
                ("X-Metadata-Provider", "lb-1".into()),
                ("X-Forwarded-For", "10.0.0.5".into()),
            ],
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(st, 403, "a missing signature");
    let (st, body) = refused(
        get(
            &url,
            vec![
                ("X-Metadata-Provider", "lb-1".into()),
                ("X-Metadata-Provider-Signature", sign(SECRET, "lb-1")),
            ],
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        body.contains("X-Forwarded-For is missing from request."),
        "{body}"
    );
    let (st, body) = refused(
        get(&url, provider("lb-2", sign(SECRET, "lb-2"), "10.0.0.5"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        body.contains("Could not find any subnets for provider lb-2"),
        "{body}"
    );
    let (st, body) = refused(
        get(&url, provider("lb-1", sign(SECRET, "lb-1"), "10.0.0.9"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        body.contains("Expected a single port matching provider lb-1 and IP 10.0.0.9. Found 2."),
        "{body}"
    );
    let (st, body) = refused(
        get(&url, provider("lb-1", sign(SECRET, "lb-1"), "10.0.0.7"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 400);
    assert!(body.contains("Found 0."), "{body}");
    let (st, _) = refused(
        get(&url, provider("lb-1", sign(SECRET, "lb-1"), "10.0.0.6"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 404, "the port's tenant is not the instance's project");
    // The cluster's own metadata service has no Neutron endpoint: refused.
    let (st, _) = refused(
        get(
            &url_plain,
            provider("lb-1", sign(SECRET, "lb-1"), "10.0.0.5"),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(st, 400);
    c.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Without Neutron's proxy the requester is found by its fixed address:
/// here the instance's network information says 127.0.0.1, so requests
/// from loopback are that instance's, and its network_data.json follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_proxy_the_guest_is_found_by_its_fixed_address() {
    let dir = crate::cluster::temp_dir("vendordata");
    let vpath = vendor_conf(&dir);
    let (c, url) = metadata_cluster(&[("api", "vendordata_jsonfile_path", &vpath)]).await;
    let http = reqwest::Client::new();
    // Nobody at 127.0.0.1 yet: 404.
    let r = http
        .get(format!("{url}/openstack/latest/meta_data.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let g = boot_guest(&c, json!({})).await;
    let nw = json!([{"id": "port-1", "address": "fa:16:3e:11:22:33", "type": "ovs", "devname": "tapport-1",
        "network": {"id": "net-1", "meta": {"mtu": 1450}, "subnets": [{"cidr": "127.0.0.0/8", "version": 4,
          "gateway": {"address": "127.0.0.254"}, "dns": [{"address": "192.0.2.53"}], "routes": [], "meta": {},
          "ips": [{"address": "127.0.0.1", "floating_ips": []}]}]}}]);
    let objects: &Objects = &c.all.objects;
    let mut cache = InstanceInfoCache::new()
        .with_instance_uuid(g.id.clone())
        .with_network_info(Some(nw.to_string()))
        .with_deleted(false);
    objects
        .create(&nova_service::context::admin(), &mut cache)
        .await
        .unwrap();
    let v = tokio::task::spawn_blocking(move || cloud_init_read(&url, &json!({})))
        .await
        .unwrap();
    check_cloud_init_view(&v, &g, false);
    let nd = &v["networkdata"];
    assert_eq!(
        nd["links"][0]["ethernet_mac_address"], "fa:16:3e:11:22:33",
        "{nd}"
    );
    assert_eq!(nd["networks"][0]["ip_address"], "127.0.0.1");
    assert_eq!(nd["networks"][0]["netmask"], "255.0.0.0");
    assert_eq!(
        nd["services"],
        json!([{"type": "dns", "address": "192.0.2.53"}])
    );
    assert_eq!(v["ec2"]["local-ipv4"], "127.0.0.1");
    c.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `[DEFAULT] force_config_drive`: every server gets one, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_config_drive_shows_in_the_server() {
    let c = Cluster::start(1, &[("DEFAULT", "force_config_drive", "true")]).await;
    let id = c.boot("demo", "forced", "1").await;
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(s["config_drive"], "True", "{s}");
    c.stop().await;
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "plain", "1").await;
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(s["config_drive"], "", "{s}");
    let r = c
        .post(
            "/v2.1/servers",
            "demo",
            json!({"server": {"name": "asked", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID,
                "networks": "none", "config_drive": true}}),
        )
        .await;
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(s["config_drive"], "True", "{s}");
    c.stop().await;
}
