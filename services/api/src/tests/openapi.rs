//! The OpenAPI document (`openapi`): it lists exactly the routes and
//! methods the router serves, its schemas compile, and the responses the
//! API gives conform to it.

use super::*;
use crate::microversion::{self, ApiVersion};
use crate::openapi::{PUBLIC_ROUTES, document};

const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

/// Every microversion the API serves.
fn versions() -> Vec<ApiVersion> {
    (microversion::MIN.1..=microversion::MAX.1)
        .map(|m| ApiVersion(2, m))
        .collect()
}

/// (path, method) of every operation in any microversion's document.
fn documented() -> std::collections::BTreeSet<(String, String)> {
    let mut all = std::collections::BTreeSet::new();
    for v in versions() {
        let doc = document(v, "http://x", true);
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                all.insert((path.clone(), method.clone()));
            }
        }
    }
    all
}

#[test]
fn the_document_has_every_route_of_the_table_and_no_other() {
    let mut table = std::collections::BTreeSet::new();
    for r in crate::V21_ROUTES {
        for m in r.methods {
            table.insert((format!("/v2.1{}", r.path), (*m).to_owned()));
        }
    }
    for (p, m) in PUBLIC_ROUTES {
        table.insert(((*p).to_owned(), (*m).to_owned()));
    }
    let doc = documented();
    let missing: Vec<_> = table.difference(&doc).collect();
    let extra: Vec<_> = doc.difference(&table).collect();
    assert!(missing.is_empty(), "routes the document lacks: {missing:?}");
    assert!(extra.is_empty(), "operations no route serves: {extra:?}");
    assert!(doc.contains(&("/v2.1/servers/{id}/action".into(), "post".into())));
}

/// A route added to `router()` outside the table (a `.route("…"` in
/// lib.rs) must be one of the documented public routes.
#[test]
fn lib_rs_adds_no_route_outside_the_table() {
    let src = include_str!("../lib.rs");
    let router = &src[src.find("pub fn router(").unwrap()..];
    let router = &router[..router.find("\n}\n").unwrap()];
    let doc = documented();
    for lit in router.split(".route(\"").skip(1) {
        let path = &lit[..lit.find('"').unwrap()];
        let known = [path.to_owned(), format!("/v2.1{path}")]
            .iter()
            .any(|p| doc.iter().any(|(d, _)| d == p));
        assert!(
            known,
            "route {path} in lib.rs is not in the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_methods() {
    let a = app().await;
    let doc = documented();
    let paths: std::collections::BTreeSet<&String> = doc.iter().map(|(p, _)| p).collect();
    for path in paths {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for m in METHODS {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            // At the route's oldest microversion (a handler may refuse a
            // method before it, as nova's `api_version` does).
            let relative = path.strip_prefix("/v2.1").unwrap_or(path);
            let (lo, _) = crate::openapi::bounds(relative, m);
            let mut req = App::req(method, &concrete, Some(&a.admin), Body::from("{}"));
            req.headers_mut().insert(
                "openstack-api-version",
                format!("compute {lo}").parse().unwrap(),
            );
            let r = a.send(req).await;
            let served = doc.contains(&(path.clone(), m.to_owned()));
            if served {
                assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{m} {path} is served but not documented"
                );
            }
        }
    }
}

/// Compiles `schema` (its `$ref`s resolved against the document's
/// components).
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema {schema}: {e}"))
}

/// The microversions where a schema changes (nova's `schemas` and views).
const SAMPLES: [u16; 16] = [1, 2, 3, 9, 10, 16, 19, 26, 36, 43, 47, 53, 57, 63, 75, 100];

#[test]
fn every_schema_compiles() {
    for m in SAMPLES {
        let doc = document(ApiVersion(2, m), "http://x", true);
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                if let Some(b) = op.get("requestBody") {
                    validator(&doc, &b["content"]["application/json"]["schema"]);
                }
                for resp in op["responses"].as_object().unwrap().values() {
                    if let Some(c) = resp.get("content") {
                        validator(&doc, &c["application/json"]["schema"]);
                    }
                }
            }
        }
        assert!(!doc.to_string().contains("\\\\p{"), "2.{m}: \\p classes");
    }
}

/// Checks reply `r` of `method path` (a documented path) against the
/// document of `v`.
fn conforms(doc: &Value, path: &str, method: &str, r: &Reply) {
    let code = r.status.as_u16().to_string();
    let op = &doc["paths"][path][method];
    let responses = op["responses"].as_object().unwrap();
    let key = if responses.contains_key(&code) {
        code.clone()
    } else {
        format!("{}XX", &code[..1])
    };
    assert!(
        responses.contains_key(&key),
        "{method} {path}: status {code} not documented"
    );
    if responses[&key].get("content").is_none() {
        return;
    }
    let v = validator(
        doc,
        &responses[&key]["content"]["application/json"]["schema"],
    );
    if let Err(e) = v.validate(&r.body) {
        panic!(
            "{method} {path} ({code}): {e} at {}\n{}",
            e.instance_path(),
            r.body
        );
    }
}

#[tokio::test]
async fn responses_conform_to_the_document_of_their_microversion() {
    let a = app().await;
    for v in [
        ApiVersion(2, 1),
        ApiVersion(2, 47),
        ApiVersion(2, 74),
        microversion::MAX,
    ] {
        let doc = document(v, "http://127.0.0.1:8774", true);
        let send = |method: Method, path: String, token: String, body: Option<Value>| {
            let mut req = App::req(
                method,
                &path,
                Some(&token),
                body.map(|b| Body::from(b.to_string())).unwrap_or_default(),
            );
            req.headers_mut().insert(
                "openstack-api-version",
                format!("compute {v}").parse().unwrap(),
            );
            a.send(req)
        };
        let fid = format!("f-{}", v.1);
        let r = send(
            Method::POST,
            "/v2.1/flavors".into(),
            a.admin.clone(),
            Some(json!({"flavor": {"name": fid, "id": fid, "ram": 64, "vcpus": 1, "disk": 1}})),
        )
        .await;
        conforms(&doc, "/v2.1/flavors", "post", &r);
        let kp = format!("k{}", v.1);
        let r = send(
            Method::POST,
            "/v2.1/os-keypairs".into(),
            a.demo.clone(),
            Some(json!({"keypair": {"name": kp, "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBd4Qd6m6vn4hJgNuuJ1qy7rGCpi6KSvaRXSAvfKqBBm x"}})),
        )
        .await;
        conforms(&doc, "/v2.1/os-keypairs", "post", &r);
        let mut inst = a.instance("s1", VmState::Active, None, Some("h1")).await;
        inst = a.reload(&inst).await;
        for (path, token) in [
            ("/v2.1/flavors".to_owned(), &a.demo),
            ("/v2.1/flavors/detail".to_owned(), &a.demo),
            (format!("/v2.1/flavors/{fid}"), &a.demo),
            ("/v2.1/os-keypairs".to_owned(), &a.demo),
            (format!("/v2.1/os-keypairs/{kp}"), &a.demo),
            ("/v2.1/limits".to_owned(), &a.demo),
            ("/v2.1/servers".to_owned(), &a.demo),
            ("/v2.1/servers/detail".to_owned(), &a.demo),
            ("/v2.1/servers/detail".to_owned(), &a.admin),
            (format!("/v2.1/servers/{}", inst.uuid()), &a.demo),
            ("/v2.1/servers/nosuch".to_owned(), &a.demo),
            ("/v2.1/flavors/nosuch".to_owned(), &a.demo),
            ("/".to_owned(), &a.demo),
            ("/v2.1/".to_owned(), &a.demo),
        ] {
            let r = send(Method::GET, path.clone(), token.clone(), None).await;
            let documented = if path.ends_with("/nosuch") {
                path.replace("nosuch", "{id}")
            } else if path.contains(inst.uuid()) {
                "/v2.1/servers/{id}".to_owned()
            } else if path.contains(&format!("/{fid}")) {
                "/v2.1/flavors/{id}".to_owned()
            } else if path.contains(&format!("/{kp}")) {
                "/v2.1/os-keypairs/{name}".to_owned()
            } else {
                path.clone()
            };
            conforms(&doc, &documented, "get", &r);
        }
    }
}

#[tokio::test]
async fn the_document_is_served_per_microversion() {
    let a = app().await;
    let get = |uri: &str, version: Option<&str>| {
        let mut req = App::req(Method::GET, uri, None, Body::empty());
        if let Some(v) = version {
            req.headers_mut()
                .insert("openstack-api-version", v.parse().unwrap());
        }
        a.send(req)
    };
    let r = get("/v2.1/openapi.json", Some("compute 2.42")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], "3.1.0");
    assert_eq!(r.body["info"]["version"], "2.42");
    assert!(r.body["paths"]["/v2.1/os-hosts"].is_object());
    assert!(r.body["paths"]["/v2.1/servers/{id}/topology"].is_null());
    let r = get("/v2.1/openapi.json?microversion=latest", None).await;
    assert_eq!(r.body["info"]["version"], microversion::MAX.to_string());
    assert!(r.body["paths"]["/v2.1/os-hosts"].is_null());
    assert!(r.body["paths"]["/v2.1/servers/{id}/topology"]["get"].is_object());
    assert_eq!(
        r.body["paths"]["/v2.1/servers/{id}/topology"]["get"]["x-openstack-microversion"]["min"],
        "2.78"
    );
    let r = get("/v2.1/openapi.json", None).await;
    assert_eq!(r.body["info"]["version"], "2.1");
    let r = get("/v2.1/openapi.json?microversion=3.0", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    fault(&r, "badRequest");
}

/// GET routes whose success has no body (nova answers a tag's existence
/// with 204).
const BODILESS_GETS: &[&str] = &["/v2.1/servers/{id}/tags/{tag}"];

#[test]
fn every_get_route_documents_its_200_body() {
    for v in versions() {
        let doc = document(v, "http://x", true);
        for (path, item) in doc["paths"].as_object().unwrap() {
            let Some(op) = item.get("get") else { continue };
            let responses = op["responses"].as_object().unwrap();
            if BODILESS_GETS.contains(&path.as_str()) {
                assert!(responses.contains_key("204"), "{v}: GET {path}");
                assert!(!responses.contains_key("200"), "{v}: GET {path}");
                continue;
            }
            assert!(
                responses
                    .get("200")
                    .is_some_and(|r| r["content"]["application/json"]["schema"].is_object()),
                "{v}: GET {path} has no 200 body schema"
            );
        }
    }
}

/// A compute node and its nova-compute service on host `h1`.
async fn compute_host(a: &App) -> (nova_objects::ComputeNode, nova_objects::Service) {
    let ctx = crate::http::admin_ctx();
    let mut svc = nova_objects::Service::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_host(Some("h1".into()))
        .with_binary(Some("nova-compute".into()))
        .with_topic(Some("compute".into()))
        .with_report_count(1)
        .with_disabled(false)
        .with_forced_down(false)
        .with_last_seen_up(Some(chrono::Utc::now()))
        .with_version(66);
    a.state.objects.create(&ctx, &mut svc).await.unwrap();
    let mut node = nova_objects::ComputeNode::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_host(Some("h1".into()))
        .with_hypervisor_hostname(Some("h1-node".into()))
        .with_vcpus(8)
        .with_memory_mb(8192)
        .with_local_gb(100)
        .with_vcpus_used(1)
        .with_memory_mb_used(512)
        .with_local_gb_used(1)
        .with_hypervisor_type("fake".to_owned())
        .with_hypervisor_version(1)
        .with_cpu_info("{\"arch\": \"x86_64\"}".to_owned())
        .with_running_vms(Some(1))
        .with_cpu_allocation_ratio(1.0)
        .with_ram_allocation_ratio(1.0)
        .with_disk_allocation_ratio(1.0)
        .with_mapped(0);
    a.state.objects.create(&ctx, &mut node).await.unwrap();
    (node, svc)
}

/// The server sub-resources, the admin APIs, quotas, usage, flavor access
/// and extra specs, and the image proxy: each answers with a success that
/// matches the document of its microversion (routes a microversion does
/// not have are skipped at it).
#[tokio::test]
async fn the_other_routes_answer_as_documented() {
    let a = app().await;
    let (node, svc) = compute_host(&a).await;
    let inst = a.instance("s1", VmState::Active, None, Some("h1")).await;
    let uuid = inst.uuid().clone();
    let r = a.action(&inst, json!({"lock": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    // A live migration in progress (its views: `/servers/{id}/migrations`
    // and `/os-migrations` with links).
    let mut live = nova_objects::Migration::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_instance_uuid(Some(uuid.clone()))
        .with_migration_type("live-migration".to_owned())
        .with_status(Some("running".into()))
        .with_source_compute(Some("h1".into()))
        .with_dest_compute(Some("h2".into()))
        .with_memory_total(Some(1024))
        .with_user_id(Some("demo".into()))
        .with_project_id(Some("demo".into()));
    a.state
        .objects
        .create(&crate::http::admin_ctx(), &mut live)
        .await
        .unwrap();
    let live_id = live.id().to_string();
    let admin_ctx = crate::auth::Ctx {
        user_id: "admin".into(),
        project_id: "admin".into(),
        roles: vec!["admin".into()],
        ..Default::default()
    };
    let mut img = serde_json::Map::new();
    img.insert("name".into(), json!("img"));
    img.insert("visibility".into(), json!("public"));
    img.insert("auto_disk_config".into(), json!("True"));
    let image = a.state.images.create(&admin_ctx, &img).unwrap();
    let image = image["id"].as_str().unwrap().to_owned();
    let mut checked = std::collections::BTreeSet::new();
    for v in [
        ApiVersion(2, 1),
        ApiVersion(2, 28),
        ApiVersion(2, 53),
        ApiVersion(2, 75),
        microversion::MAX,
    ] {
        let doc = document(v, "http://127.0.0.1:8774", true);
        // Sends `method template` (its `{…}`s replaced by `args`) at `v`
        // when the route exists at it: a 2xx that conforms.
        let call = async |method: Method,
                          template: &str,
                          args: &[(&str, &str)],
                          token: &str,
                          body: Option<Value>|
               -> Option<Reply> {
            let m = method.as_str().to_lowercase();
            let template = format!("/v2.1{template}");
            doc["paths"][&template].get(&m)?;
            let mut path = template.clone();
            for (k, val) in args {
                path = path.replace(k, val);
            }
            let mut req = App::req(
                method,
                &path,
                Some(token),
                body.map(|b| Body::from(b.to_string())).unwrap_or_default(),
            );
            req.headers_mut().insert(
                "openstack-api-version",
                format!("compute {v}").parse().unwrap(),
            );
            let r = a.send(req).await;
            assert!(
                r.status.is_success(),
                "{v}: {m} {path}: {} {}",
                r.status,
                r.body
            );
            conforms(&doc, &template, &m, &r);
            Some(r)
        };
        let (admin, demo) = (a.admin.as_str(), a.demo.as_str());
        let id = [("{id}", uuid.as_str())];
        let r = call(
            Method::GET,
            "/servers/{id}/os-instance-actions",
            &id,
            demo,
            None,
        )
        .await
        .unwrap();
        let rid = r.body["instanceActions"][0]["request_id"]
            .as_str()
            .unwrap()
            .to_owned();
        for token in [admin, demo] {
            call(
                Method::GET,
                "/servers/{id}/os-instance-actions/{request_id}",
                &[("{id}", &uuid), ("{request_id}", &rid)],
                token,
                None,
            )
            .await;
        }
        for path in [
            "/servers/{id}/os-server-password",
            "/servers/{id}/ips",
            "/servers/{id}/topology",
        ] {
            call(Method::GET, path, &id, admin, None).await;
        }
        if let Some(r) = call(Method::GET, "/servers/{id}/migrations", &id, admin, None).await {
            assert_eq!(r.body["migrations"][0]["id"], live.id().to_owned());
        }
        call(
            Method::GET,
            "/servers/{id}/migrations/{migration_id}",
            &[("{id}", &uuid), ("{migration_id}", &live_id)],
            admin,
            None,
        )
        .await;
        let r = call(Method::GET, "/os-migrations", &[], admin, None)
            .await
            .unwrap();
        assert_eq!(r.body["migrations"].as_array().unwrap().len(), 1);
        // Admin APIs.
        let node_id = if v.at_least(2, 53) {
            node.uuid().clone()
        } else {
            node.id().to_string()
        };
        for path in [
            "/os-hypervisors",
            "/os-hypervisors/detail",
            "/os-hypervisors/statistics",
            "/os-services",
            "/os-availability-zone",
            "/os-availability-zone/detail",
            "/os-simple-tenant-usage",
            "/os-instance_usage_audit_log",
            "/extensions",
            "/os-hosts",
        ] {
            call(Method::GET, path, &[], admin, None).await;
        }
        for (template, key, arg) in [
            ("/os-hypervisors/{id}", "{id}", node_id.as_str()),
            ("/os-hypervisors/{id}/search", "{id}", "h1"),
            ("/os-hypervisors/{id}/servers", "{id}", "h1"),
            ("/os-hosts/{host}", "{host}", "h1"),
            ("/extensions/{alias}", "{alias}", "os-hypervisors"),
            ("/os-simple-tenant-usage/{project}", "{project}", "demo"),
        ] {
            call(Method::GET, template, &[(key, arg)], admin, None).await;
        }
        let (svc_id, svc_body) = if v.at_least(2, 53) {
            (svc.uuid().clone(), json!({"status": "enabled"}))
        } else {
            (
                "enable".to_owned(),
                json!({"host": "h1", "binary": "nova-compute"}),
            )
        };
        call(
            Method::PUT,
            "/os-services/{id}",
            &[("{id}", &svc_id)],
            admin,
            Some(svc_body),
        )
        .await;
        // Aggregates.
        let r = call(
            Method::POST,
            "/os-aggregates",
            &[],
            admin,
            Some(json!({"aggregate": {"name": format!("agg-{}", v.1)}})),
        )
        .await
        .unwrap();
        let agg = r.body["aggregate"]["id"].to_string();
        let agg = [("{id}", agg.as_str())];
        for body in [
            json!({"set_metadata": {"metadata": {"k": "v"}}}),
            json!({"add_host": {"host": "h1"}}),
        ] {
            call(
                Method::POST,
                "/os-aggregates/{id}/action",
                &agg,
                admin,
                Some(body),
            )
            .await;
        }
        call(Method::GET, "/os-aggregates/{id}", &agg, admin, None).await;
        call(Method::GET, "/os-aggregates", &[], admin, None).await;
        // Server groups.
        let group = if v.at_least(2, 64) {
            json!({"server_group": {"name": "g", "policy": "affinity"}})
        } else {
            json!({"server_group": {"name": "g", "policies": ["affinity"]}})
        };
        let r = call(Method::POST, "/os-server-groups", &[], demo, Some(group))
            .await
            .unwrap();
        let gid = r.body["server_group"]["id"].as_str().unwrap().to_owned();
        call(
            Method::GET,
            "/os-server-groups/{id}",
            &[("{id}", &gid)],
            demo,
            None,
        )
        .await;
        call(Method::GET, "/os-server-groups", &[], demo, None).await;
        // Quotas.
        let project = [("{project}", "demo")];
        for path in [
            "/os-quota-sets/{project}",
            "/os-quota-sets/{project}/detail",
            "/os-quota-sets/{project}/defaults",
        ] {
            call(Method::GET, path, &project, admin, None).await;
        }
        call(
            Method::PUT,
            "/os-quota-sets/{project}",
            &project,
            admin,
            Some(json!({"quota_set": {"instances": 20}})),
        )
        .await;
        let class = [("{class}", "default")];
        call(
            Method::GET,
            "/os-quota-class-sets/{class}",
            &class,
            admin,
            None,
        )
        .await;
        call(
            Method::PUT,
            "/os-quota-class-sets/{class}",
            &class,
            admin,
            Some(json!({"quota_class_set": {"cores": 30}})),
        )
        .await;
        // A private flavor's access and extra specs.
        let fid = format!("p-{}", v.1);
        let r = a
            .post(
                "/v2.1/flavors",
                admin,
                json!({"flavor": {"name": fid, "id": fid, "ram": 64, "vcpus": 1, "disk": 1,
                                  "os-flavor-access:is_public": false}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let f = [("{id}", fid.as_str())];
        call(
            Method::POST,
            "/flavors/{id}/action",
            &f,
            admin,
            Some(json!({"addTenantAccess": {"tenant": "demo"}})),
        )
        .await;
        call(
            Method::GET,
            "/flavors/{id}/os-flavor-access",
            &f,
            admin,
            None,
        )
        .await;
        call(
            Method::POST,
            "/flavors/{id}/os-extra_specs",
            &f,
            admin,
            Some(json!({"extra_specs": {"hw:numa_nodes": "1"}})),
        )
        .await;
        call(Method::GET, "/flavors/{id}/os-extra_specs", &f, admin, None).await;
        let spec = [("{id}", fid.as_str()), ("{key}", "hw:numa_nodes")];
        call(
            Method::GET,
            "/flavors/{id}/os-extra_specs/{key}",
            &spec,
            admin,
            None,
        )
        .await;
        call(
            Method::PUT,
            "/flavors/{id}/os-extra_specs/{key}",
            &spec,
            admin,
            Some(json!({"hw:numa_nodes": "1"})),
        )
        .await;
        // The image proxy (to 2.35).
        for path in ["/images", "/images/detail"] {
            call(Method::GET, path, &[], demo, None).await;
        }
        call(Method::GET, "/images/{id}", &[("{id}", &image)], demo, None).await;
        checked.insert(v);
    }
    assert_eq!(checked.len(), 5);
}

/// The action route's request body and answers at `v`: one request body
/// per action the handler serves at `v` (titled with its name), each
/// action's answer under exactly one status, and `content` only on a
/// status whose every action answers with a body.
#[test]
fn the_action_route_documents_each_action_where_it_is_served() {
    use crate::handlers::servers::actions::{ACTIONS, schema};
    use std::collections::BTreeSet;
    for passwords in [true, false] {
        for v in versions() {
            let doc = document(v, "http://x", passwords);
            let op = &doc["paths"]["/v2.1/servers/{id}/action"]["post"];
            let branches = op["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
                .as_array()
                .unwrap();
            let titled: BTreeSet<&str> = branches
                .iter()
                .map(|b| b["title"].as_str().unwrap())
                .collect();
            let served: BTreeSet<&str> = ACTIONS
                .iter()
                .filter(|a| a.serves(v))
                .map(|a| a.name)
                .collect();
            assert_eq!(titled, served, "{v}: the request bodies");
            assert_eq!(branches.len(), served.len(), "{v}");
            let mut answered = BTreeSet::new();
            for (code, r) in op["responses"].as_object().unwrap() {
                if code == "4XX" {
                    continue;
                }
                let acts = r["x-openstack-actions"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{v}: {code} names no action"));
                let bodiless = acts.values().any(Value::is_null);
                assert_eq!(r.get("content").is_none(), bodiless, "{v} {code}");
                for (name, body) in acts {
                    assert!(answered.insert(name.clone()), "{v}: {name} twice");
                    if !body.is_null() {
                        validator(&doc, body);
                    }
                }
            }
            let answered: BTreeSet<&str> = answered.iter().map(String::as_str).collect();
            assert_eq!(answered, served, "{v}: the answers");
            let answer =
                |code: &str, name: &str| op["responses"][code]["x-openstack-actions"][name].clone();
            assert!(answer("204", "confirmResize").is_null(), "{v}");
            assert_eq!(
                answer("202", "createImage").is_object(),
                v.at_least(2, 45),
                "{v}"
            );
            assert_eq!(
                answer("200", "evacuate").is_object(),
                passwords && !v.at_least(2, 14),
                "{v}"
            );
            assert!(answer("202", "rebuild")["properties"]["server"].is_object());
            assert_eq!(
                op["responses"]["200"].get("content").is_some(),
                passwords && !v.at_least(2, 14),
                "{v}: evacuate answers 200 without a body"
            );
            assert!(op["responses"]["202"].get("content").is_none(), "{v}");
        }
    }
    // Outside its microversions an action has no schema (it is a 404).
    for a in ACTIONS {
        for v in versions() {
            assert_eq!(
                schema(a.name, v).is_some(),
                a.serves(v),
                "{} at {v}",
                a.name
            );
        }
    }
    assert!(schema("resetNetwork", microversion::MIN).is_none());
}

/// A body of each server action that the document allows at `v`; an
/// action without one here fails the test below.
fn action_example(name: &str, v: ApiVersion) -> Value {
    let inner = match name {
        "reboot" => json!({"type": "HARD"}),
        "changePassword" | "rescue" => json!({"adminPass": "s3cret"}),
        "os-resetState" => json!({"state": "error"}),
        "os-getConsoleOutput" => json!({"length": 10}),
        "rebuild" => json!({"imageRef": "70a599e0-31e7-49b7-b260-868f441e862b", "name": "r"}),
        "createImage" => json!({"name": "snap", "metadata": {"k": "v"}}),
        "createBackup" => json!({"name": "b", "backup_type": "daily", "rotation": 1}),
        "unshelve" if v.at_least(2, 91) => json!({"availability_zone": null}),
        "unshelve" if v.at_least(2, 77) => json!({"availability_zone": "nova"}),
        "evacuate" if v.at_least(2, 14) => json!({"host": "h2"}),
        "evacuate" => json!({"host": "h2", "onSharedStorage": false}),
        "resize" => json!({"flavorRef": "1"}),
        "migrate" if v.at_least(2, 56) => json!({"host": "h2"}),
        "os-migrateLive" if v.at_least(2, 25) => json!({"host": null, "block_migration": "auto"}),
        "os-migrateLive" => {
            json!({"host": null, "block_migration": false, "disk_over_commit": false})
        }
        "lock" if v.at_least(2, 73) => json!({"locked_reason": "audit"}),
        "os-getVNCConsole" => json!({"type": "novnc"}),
        "os-getSPICEConsole" => json!({"type": "spice-html5"}),
        "os-getSerialConsole" => json!({"type": "serial"}),
        "os-getRDPConsole" => json!({"type": "rdp-html5"}),
        "addSecurityGroup" | "removeSecurityGroup" => json!({"name": "default"}),
        "addFloatingIp" | "removeFloatingIp" => json!({"address": "172.24.4.10"}),
        "addFixedIp" => json!({"networkId": "3cb9bc59-5699-4588-a4b1-b87f96708bc6"}),
        "removeFixedIp" => json!({"address": "10.0.0.4"}),
        "pause" | "unpause" | "suspend" | "resume" | "lock" | "unlock" | "unrescue" | "restore"
        | "forceDelete" | "injectNetworkInfo" | "os-stop" | "os-start" | "shelve"
        | "shelveOffload" | "unshelve" | "confirmResize" | "revertResize" | "migrate"
        | "trigger_crash_dump" => Value::Null,
        other => panic!("no example body for action {other}"),
    };
    json!({ name: inner })
}

/// Each action's example passes the document and the handler's schema
/// (the handler does not answer it with nova's "Invalid input"), and the
/// example with an unknown member, where the document refuses it, is the
/// handler's 400 too; a success is the action's documented answer.
#[tokio::test]
async fn action_bodies_the_document_allows_are_the_ones_the_handlers_take() {
    use crate::handlers::servers::actions::ACTIONS;
    let a = app().await;
    let mut checked = 0;
    for m in [1, 14, 17, 25, 44, 45, 56, 73, 77, 91, microversion::MAX.1] {
        let v = ApiVersion(2, m);
        let doc = document(v, "http://x", true);
        let op = &doc["paths"]["/v2.1/servers/{id}/action"]["post"];
        let whole = validator(
            &doc,
            &op["requestBody"]["content"]["application/json"]["schema"],
        );
        for act in ACTIONS.iter().filter(|x| x.serves(v)) {
            let name = act.name;
            // Busy and on no host: the actions stop at their state checks.
            let inst = a
                .instance(name, VmState::Active, Some(TaskState::Rebooting), None)
                .await;
            let path = format!("/v2.1/servers/{}/action", inst.uuid());
            let send = |body: Value| {
                let mut req = App::req(
                    Method::POST,
                    &path,
                    Some(&a.admin),
                    Body::from(body.to_string()),
                );
                req.headers_mut().insert(
                    "openstack-api-version",
                    format!("compute {v}").parse().unwrap(),
                );
                tokio::time::timeout(std::time::Duration::from_secs(30), a.send(req))
            };
            let body = action_example(name, v);
            if let Err(e) = whole.validate(&body) {
                panic!("{v} {name}: the document refuses {body}: {e}");
            }
            let r = send(body.clone()).await.expect("an answer");
            let refused = |r: &Reply| {
                r.status == StatusCode::BAD_REQUEST
                    && r.body["badRequest"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("Invalid input"))
            };
            assert!(
                !refused(&r),
                "{v} {name}: the handler refuses {body}: {}",
                r.body
            );
            if r.status == StatusCode::SERVICE_UNAVAILABLE {
                // This app has no network service.
                assert!(
                    name.contains("SecurityGroup") || name.contains("FloatingIp"),
                    "{v} {name}"
                );
            } else {
                conforms(&doc, "/v2.1/servers/{id}/action", "post", &r);
            }
            if r.status.is_success() {
                let code = r.status.as_u16().to_string();
                let answer = &op["responses"][&code]["x-openstack-actions"][name];
                if answer.is_null() {
                    assert!(r.body.is_null(), "{v} {name}: {}", r.body);
                } else {
                    assert!(
                        validator(&doc, answer).is_valid(&r.body),
                        "{v} {name}: {}",
                        r.body
                    );
                }
            }
            // The body names one action and nothing else.
            let mut two = body.clone();
            two["bogus"] = json!(1);
            assert!(
                !whole.is_valid(&two),
                "{v} {name}: the document takes {two}"
            );
            if body[name].is_object() {
                let mut bad = body.clone();
                bad[name]["bogus"] = json!(1);
                if !whole.is_valid(&bad) {
                    let r = send(bad).await.expect("an answer");
                    assert!(
                        refused(&r),
                        "{v} {name}: the handler takes a body the document refuses: {} {}",
                        r.status,
                        r.body
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "{checked}");
}

/// The query parameters of os-migrations, os-instance-actions,
/// os-simple-tenant-usage and os-hypervisors: documented at the
/// microversions their handlers read them, and the handlers read no other.
#[tokio::test]
async fn the_query_parameters_the_handlers_read_are_the_documented_ones() {
    let names = |m: u16, path: &str| -> Vec<String> {
        let doc = document(ApiVersion(2, m), "http://x", true);
        doc["paths"][format!("/v2.1{path}")]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(1, "/os-migrations"),
        [
            "instance_uuid",
            "status",
            "migration_type",
            "source_compute",
            "host",
            "hidden"
        ]
    );
    let at_80 = names(80, "/os-migrations");
    for n in [
        "limit",
        "marker",
        "changes-since",
        "changes-before",
        "user_id",
        "project_id",
    ] {
        assert!(at_80.iter().any(|a| a == n), "{n}: {at_80:?}");
    }
    assert!(!names(79, "/os-migrations").iter().any(|n| n == "user_id"));
    assert!(names(57, "/servers/{id}/os-instance-actions").is_empty());
    assert_eq!(
        names(66, "/servers/{id}/os-instance-actions"),
        ["limit", "marker", "changes-since", "changes-before"]
    );
    assert_eq!(
        names(39, "/os-simple-tenant-usage"),
        ["start", "end", "detailed"]
    );
    assert_eq!(
        names(40, "/os-simple-tenant-usage/{project}"),
        ["start", "end", "limit", "marker"]
    );
    assert!(names(32, "/os-hypervisors").is_empty());
    assert_eq!(names(52, "/os-hypervisors"), ["limit", "marker"]);
    assert_eq!(
        names(53, "/os-hypervisors/detail"),
        [
            "limit",
            "marker",
            "hypervisor_hostname_pattern",
            "with_servers"
        ]
    );
    assert!(names(52, "/os-hypervisors/{id}").is_empty());
    assert_eq!(names(53, "/os-hypervisors/{id}"), ["with_servers"]);
    // The handlers.
    let a = app().await;
    compute_host(&a).await;
    let get = |path: String, m: u16| {
        let mut req = App::req(Method::GET, &path, Some(&a.admin), Body::empty());
        req.headers_mut().insert(
            "openstack-api-version",
            format!("compute 2.{m}").parse().unwrap(),
        );
        a.send(req)
    };
    let pattern = "/v2.1/os-hypervisors?hypervisor_hostname_pattern=nosuch";
    let r = get(pattern.into(), 53).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = get(pattern.into(), 52).await;
    assert_eq!(
        r.body["hypervisors"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    let inst = a.instance("s1", VmState::Active, None, Some("h1")).await;
    let r = a.action(&inst, json!({"lock": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let actions = format!(
        "/v2.1/servers/{}/os-instance-actions?changes-before=2100-01-01T00:00:00Z",
        inst.uuid()
    );
    assert_eq!(
        get(actions.clone(), 58).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = get(actions, 66).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["instanceActions"].as_array().unwrap().len(), 1);
}
