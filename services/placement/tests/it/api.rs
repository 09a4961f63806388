//! The Placement HTTP API (`nova_placement::api`) as a client sees it,
//! in memory and on SQLite: microversions, errors, auth, providers,
//! inventories, traits, allocations with consumer generations, usages,
//! candidates with a sharing provider, the reshaper.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use nova_placement::{PlacementHandle, SqlPlacement, api};
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub(super) struct Client {
    app: axum::Router,
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: axum::http::HeaderMap,
    pub(super) body: Value,
    /// The body as sent.
    pub(super) raw: axum::body::Bytes,
}

impl Client {
    pub(super) fn new(p: PlacementHandle) -> Self {
        Client {
            app: api::router(p, api::noauth2()),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        mv: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut rb = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "placement.test");
        if !mv.is_empty() {
            rb = rb.header("openstack-api-version", format!("placement {mv}"));
        }
        if let Some(t) = token {
            rb = rb.header("x-auth-token", t);
        }
        for (k, v) in extra {
            rb = rb.header(*k, *v);
        }
        let req = match body {
            Some(b) => {
                let bytes = serde_json::to_vec(&b).unwrap();
                rb.header("content-type", "application/json")
                    .header("content-length", bytes.len().to_string())
                    .body(Body::from(bytes))
                    .unwrap()
            }
            None => rb.body(Body::empty()).unwrap(),
        };
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Reply {
            status,
            headers,
            body,
            raw: bytes,
        }
    }

    pub(super) async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        mv: &str,
    ) -> Reply {
        self.call(method, path, body, mv, Some("admin"), &[]).await
    }
}

async fn sqlite() -> PlacementHandle {
    let s = SqlPlacement::open("sqlite::memory:").await.unwrap();
    s.sync().await.unwrap();
    PlacementHandle::new(s)
}

async fn both() -> Vec<Client> {
    vec![
        Client::new(PlacementHandle::memory()),
        Client::new(sqlite().await),
    ]
}

const RP: &str = "11111111-1111-1111-1111-111111111111";
const SS: &str = "22222222-2222-2222-2222-222222222222";
const AGG: &str = "33333333-3333-3333-3333-333333333333";
const C1: &str = "44444444-4444-4444-4444-444444444444";
const C2: &str = "55555555-5555-5555-5555-555555555555";
const PROJECT: &str = "66666666-6666-6666-6666-666666666666";

#[tokio::test]
async fn microversions_errors_and_auth() {
    let c = Client::new(PlacementHandle::memory());
    let r = c.call("GET", "/", None, "", None, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["versions"][0]["max_version"], "1.39");
    assert_eq!(r.headers["openstack-api-version"], "placement 1.0");
    assert!(r.headers.contains_key("x-openstack-request-id"));
    let r = c.call("GET", "/", None, "latest", None, &[]).await;
    assert_eq!(r.headers["openstack-api-version"], "placement 1.39");
    assert_eq!(
        r.headers["cache-control"], "no-cache",
        "1.15's cache headers"
    );
    // Out of range: 406 naming the range; malformed: 400.
    let r = c.admin("GET", "/resource_providers", None, "1.40").await;
    assert_eq!(r.status, 406);
    assert_eq!(r.body["errors"][0]["max_version"], "1.39");
    let r = c.admin("GET", "/resource_providers", None, "1.x").await;
    assert_eq!(r.status, 400);
    // Error codes from 1.23 only.
    let r = c
        .admin("GET", &format!("/resource_providers/{RP}"), None, "1.22")
        .await;
    assert_eq!(r.status, 404);
    assert!(r.body["errors"][0].get("code").is_none());
    let r = c
        .admin("GET", &format!("/resource_providers/{RP}"), None, "1.23")
        .await;
    assert_eq!(
        r.body["errors"][0]["code"],
        "placement.resource_provider.not_found"
    );
    // 405 with Placement's Allow.
    let r = c.admin("DELETE", "/resource_providers", None, "1.0").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "GET, POST");
    // No token: 401; no admin or service role, or a system scope: 403.
    let r = c
        .call("GET", "/resource_providers", None, "1.0", None, &[])
        .await;
    assert_eq!(r.status, 401);
    let r = c
        .call(
            "GET",
            "/resource_providers",
            None,
            "1.0",
            Some("alice"),
            &[],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .call(
            "GET",
            "/resource_providers",
            None,
            "1.0",
            Some("alice"),
            &[("x-roles", "service")],
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .call(
            "GET",
            "/resource_providers",
            None,
            "1.0",
            Some("admin"),
            &[("openstack-system-scope", "all")],
        )
        .await;
    assert_eq!(r.status, 403);
    // A JSON body or 415.
    let r = c
        .call(
            "POST",
            "/resource_providers",
            None,
            "1.0",
            Some("admin"),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(r.status, 415);
}

#[tokio::test]
async fn providers_inventories_traits_and_aggregates() {
    for c in both().await {
        // 1.20: the provider comes back, with an absolute Location.
        let r = c
            .admin(
                "POST",
                "/resource_providers",
                Some(json!({"name": "cn1", "uuid": RP})),
                "1.20",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["generation"], 0);
        assert_eq!(
            r.headers["location"],
            format!("http://placement.test/resource_providers/{RP}")
        );
        let r = c
            .admin(
                "POST",
                "/resource_providers",
                Some(json!({"name": "cn1"})),
                "1.23",
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.body["errors"][0]["code"].as_str()),
            (409, Some("placement.duplicate_name"))
        );
        let child = "77777777-7777-7777-7777-777777777777";
        let r = c
            .admin(
                "POST",
                "/resource_providers",
                Some(json!({"name": "numa0", "uuid": child, "parent_provider_uuid": RP})),
                "1.14",
            )
            .await;
        assert_eq!(r.status, 201);
        let r = c
            .admin(
                "GET",
                &format!("/resource_providers?in_tree={child}"),
                None,
                "1.14",
            )
            .await;
        assert_eq!(r.body["resource_providers"].as_array().unwrap().len(), 2);
        let r = c
            .admin("DELETE", &format!("/resource_providers/{RP}"), None, "1.23")
            .await;
        assert_eq!(
            r.body["errors"][0]["code"],
            "placement.resource_provider.cannot_delete_parent"
        );
        // Rename: the generation stays.
        let r = c
            .admin(
                "PUT",
                &format!("/resource_providers/{child}"),
                Some(json!({"name": "numa-0"})),
                "1.14",
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.body["generation"].as_u64()),
            (200, Some(0)),
            "{}",
            r.body
        );
        assert_eq!(r.body["parent_provider_uuid"], RP, "the parent kept");

        // Inventories: all at once, then one class.
        let inv = json!({"resource_provider_generation": 0, "inventories": {
            "VCPU": {"total": 8, "allocation_ratio": 2.0}, "MEMORY_MB": {"total": 4096, "reserved": 512}}});
        let r = c
            .admin(
                "PUT",
                &format!("/resource_providers/{RP}/inventories"),
                Some(inv.clone()),
                "1.26",
            )
            .await;
        assert_eq!(
            (
                r.status.as_u16(),
                r.body["resource_provider_generation"].as_u64()
            ),
            (200, Some(1)),
            "{}",
            r.body
        );
        let r = c
            .admin(
                "PUT",
                &format!("/resource_providers/{RP}/inventories"),
                Some(inv),
                "1.26",
            )
            .await;
        assert_eq!(r.status, 409, "stale generation");
        let r = c
            .admin(
                "PUT",
                &format!("/resource_providers/{RP}/inventories/VCPU"),
                Some(json!({"resource_provider_generation": 1, "total": 16, "max_unit": 4})),
                "1.26",
            )
            .await;
        assert_eq!(r.body["max_unit"], 4, "{}", r.body);
        let r = c
            .admin(
                "POST",
                &format!("/resource_providers/{RP}/inventories"),
                Some(json!({"resource_class": "CUSTOM_GOLD", "total": 1})),
                "1.26",
            )
            .await;
        assert_eq!(r.status, 400, "a custom class must exist first: {}", r.body);
        let r = c
            .admin("PUT", "/resource_classes/CUSTOM_GOLD", None, "1.7")
            .await;
        assert_eq!(r.status, 201);
        let r = c
            .admin("PUT", "/resource_classes/CUSTOM_GOLD", None, "1.7")
            .await;
        assert_eq!(r.status, 204);
        let r = c
            .admin(
                "POST",
                &format!("/resource_providers/{RP}/inventories"),
                Some(json!({"resource_class": "CUSTOM_GOLD", "total": 1})),
                "1.26",
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let r = c.admin("GET", "/resource_classes", None, "1.2").await;
        let names: Vec<&str> = r.body["resource_classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"VCPU") && names.contains(&"CUSTOM_GOLD"));
        let r = c
            .admin("DELETE", "/resource_classes/CUSTOM_GOLD", None, "1.2")
            .await;
        assert_eq!(r.status, 409, "in use by an inventory");

        // Traits: standard ones exist, custom ones are created.
        let r = c
            .admin("GET", "/traits?name=startswith:HW_CPU_X86_AVX", None, "1.6")
            .await;
        assert!(
            r.body["traits"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "HW_CPU_X86_AVX2")
        );
        let g0 = c
            .admin("GET", &format!("/resource_providers/{RP}"), None, "1.6")
            .await
            .body["generation"]
            .clone();
        let r = c
            .admin(
                "PUT",
                &format!("/resource_providers/{RP}/traits"),
                Some(json!({"resource_provider_generation": g0, "traits": ["CUSTOM_FAST"]})),
                "1.6",
            )
            .await;
        assert_eq!(r.status, 400, "unknown trait: {}", r.body);
        assert_eq!(
            c.admin("PUT", "/traits/CUSTOM_FAST", None, "1.6")
                .await
                .status,
            201
        );
        let r = c
            .admin("PUT", &format!("/resource_providers/{RP}/traits"), Some(json!({"resource_provider_generation": g0, "traits": ["CUSTOM_FAST", "HW_CPU_X86_AVX2"]})), "1.6")
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            c.admin("DELETE", "/traits/CUSTOM_FAST", None, "1.6")
                .await
                .status,
            409
        );
        let r = c
            .admin(
                "GET",
                "/resource_providers?required=CUSTOM_FAST,!HW_CPU_X86_SGX",
                None,
                "1.22",
            )
            .await;
        assert_eq!(
            r.body["resource_providers"].as_array().unwrap().len(),
            1,
            "{}",
            r.body
        );

        // Aggregates with generations (1.19); the old list form before.
        let g0 = c
            .admin("GET", &format!("/resource_providers/{RP}"), None, "1.19")
            .await
            .body["generation"]
            .clone();
        let r = c
            .admin(
                "PUT",
                &format!("/resource_providers/{RP}/aggregates"),
                Some(json!({"aggregates": [AGG], "resource_provider_generation": g0})),
                "1.19",
            )
            .await;
        assert_eq!(r.body["aggregates"], json!([AGG]), "{}", r.body);
        let r = c
            .admin(
                "GET",
                &format!("/resource_providers?member_of=in:{AGG}"),
                None,
                "1.3",
            )
            .await;
        assert_eq!(r.body["resource_providers"][0]["uuid"], RP);
    }
}

/// A compute with VCPU and a sharing provider with DISK_GB in one
/// aggregate: candidates take the disk from the sharing provider.
async fn compute_and_shared_disk(c: &Client) {
    for (uuid, name) in [(RP, "cn1"), (SS, "ss")] {
        let r = c
            .admin(
                "POST",
                "/resource_providers",
                Some(json!({"name": name, "uuid": uuid})),
                "1.20",
            )
            .await;
        assert_eq!(r.status, 200);
    }
    for (uuid, inv) in [
        (RP, json!({"VCPU": {"total": 4}})),
        (SS, json!({"DISK_GB": {"total": 100}})),
    ] {
        let r = c
            .admin(
                "PUT",
                &format!("/resource_providers/{uuid}/inventories"),
                Some(json!({"resource_provider_generation": 0, "inventories": inv})),
                "1.26",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = c
            .admin(
                "PUT",
                &format!("/resource_providers/{uuid}/aggregates"),
                Some(json!({"aggregates": [AGG], "resource_provider_generation": 1})),
                "1.19",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = c
        .admin(
            "PUT",
            &format!("/resource_providers/{SS}/traits"),
            Some(
                json!({"traits": ["MISC_SHARES_VIA_AGGREGATE"], "resource_provider_generation": 2}),
            ),
            "1.6",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// JSON as Placement's `json.dumps` writes it: `", "` and `": "`
/// between items, keys sorted (serde_json's map order).
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// The candidates answer is written by hand: byte for byte what
/// serializing its own parse gives (keys sorted, Placement's separators),
/// at every shape it takes, on a request that spans two providers.
#[tokio::test]
async fn candidates_are_written_as_placement_writes_them() {
    for c in both().await {
        compute_and_shared_disk(&c).await;
        for mv in ["1.10", "1.12", "1.17", "1.27", "1.29", "1.34", "1.39"] {
            for q in ["resources=VCPU:1,DISK_GB:10", "resources=DISK_GB:10,VCPU:1"] {
                let r = c
                    .admin("GET", &format!("/allocation_candidates?{q}"), None, mv)
                    .await;
                assert_eq!(r.status, 200, "{mv}: {}", r.body);
                let mut again = Vec::new();
                let mut ser = serde_json::Serializer::with_formatter(&mut again, PythonFormatter);
                serde::Serialize::serialize(&r.body, &mut ser).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&r.raw),
                    String::from_utf8_lossy(&again),
                    "{mv} {q}"
                );
                assert_eq!(
                    r.body["allocation_requests"][0]["allocations"]
                        .as_object()
                        .map_or_else(
                            || r.body["allocation_requests"][0]["allocations"]
                                .as_array()
                                .unwrap()
                                .len(),
                            |o| o.len()
                        ),
                    2,
                    "{mv}: {}",
                    r.body
                );
            }
        }
    }
}

#[tokio::test]
async fn candidates_allocations_usages() {
    for c in both().await {
        compute_and_shared_disk(&c).await;
        let r = c
            .admin(
                "GET",
                "/allocation_candidates?resources=VCPU:1,DISK_GB:10",
                None,
                "1.34",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let reqs = r.body["allocation_requests"].as_array().unwrap();
        assert_eq!(reqs.len(), 1, "{}", r.body);
        assert_eq!(reqs[0]["allocations"][RP]["resources"]["VCPU"], 1);
        assert_eq!(reqs[0]["allocations"][SS]["resources"]["DISK_GB"], 10);
        let mapped = reqs[0]["mappings"][""].as_array().unwrap();
        assert!(
            mapped.contains(&json!(RP)) && mapped.contains(&json!(SS)),
            "{}",
            r.body
        );
        assert_eq!(
            r.body["provider_summaries"][SS]["resources"]["DISK_GB"]["capacity"],
            100
        );
        // Granular: a group per provider, isolated.
        let r = c
            .admin("GET", "/allocation_candidates?resources1=VCPU:1&resources2=DISK_GB:10&group_policy=isolate", None, "1.34")
            .await;
        assert_eq!(
            r.body["allocation_requests"][0]["mappings"]["2"],
            json!([SS]),
            "{}",
            r.body
        );
        let r = c
            .admin(
                "GET",
                "/allocation_candidates?resources1=VCPU:1&resources2=DISK_GB:10",
                None,
                "1.34",
            )
            .await;
        assert_eq!(r.status, 400, "group_policy is required with two groups");

        // Claim it (new consumer: generation null), then the generation rules.
        let alloc = reqs[0]["allocations"].clone();
        let body = |g: Value| json!({"allocations": alloc, "project_id": PROJECT, "user_id": "u", "consumer_generation": g, "consumer_type": "INSTANCE"});
        let r = c
            .admin(
                "PUT",
                &format!("/allocations/{C1}"),
                Some(body(json!(1))),
                "1.38",
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.body["errors"][0]["code"].as_str()),
            (409, Some("placement.concurrent_update"))
        );
        let r = c
            .admin(
                "PUT",
                &format!("/allocations/{C1}"),
                Some(body(Value::Null)),
                "1.38",
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        let r = c
            .admin("GET", &format!("/allocations/{C1}"), None, "1.38")
            .await;
        assert_eq!(r.body["consumer_generation"], 1);
        assert_eq!(r.body["consumer_type"], "INSTANCE");
        assert_eq!(r.body["allocations"][SS]["resources"]["DISK_GB"], 10);
        // Capacity: 4 VCPU in all.
        let too_much = json!({"allocations": {RP: {"resources": {"VCPU": 4}}}, "project_id": PROJECT, "user_id": "u", "consumer_generation": null});
        let r = c
            .admin("PUT", &format!("/allocations/{C2}"), Some(too_much), "1.28")
            .await;
        assert_eq!(r.status, 409, "{}", r.body);
        // Usages: per provider (every class of the inventory) and per project.
        let r = c
            .admin(
                "GET",
                &format!("/resource_providers/{RP}/usages"),
                None,
                "1.9",
            )
            .await;
        assert_eq!(r.body["usages"], json!({"VCPU": 1}));
        let r = c
            .admin("GET", &format!("/usages?project_id={PROJECT}"), None, "1.9")
            .await;
        assert_eq!(r.body["usages"], json!({"VCPU": 1, "DISK_GB": 10}));
        let r = c
            .admin(
                "GET",
                &format!("/usages?project_id={PROJECT}"),
                None,
                "1.38",
            )
            .await;
        assert_eq!(
            r.body["usages"]["INSTANCE"]["consumer_count"], 1,
            "{}",
            r.body
        );
        let r = c
            .admin(
                "GET",
                &format!("/resource_providers/{SS}/allocations"),
                None,
                "1.9",
            )
            .await;
        assert_eq!(r.body["allocations"][C1]["resources"]["DISK_GB"], 10);
        // A provider with allocations stays; an inventory in use stays.
        let r = c
            .admin("DELETE", &format!("/resource_providers/{SS}"), None, "1.23")
            .await;
        assert_eq!(
            r.body["errors"][0]["code"],
            "placement.resource_provider.inuse"
        );
        let r = c
            .admin(
                "DELETE",
                &format!("/resource_providers/{RP}/inventories"),
                None,
                "1.23",
            )
            .await;
        assert_eq!(r.body["errors"][0]["code"], "placement.inventory.inuse");

        // POST /allocations moves C1's disk to C2 in one request.
        let r = c
            .admin(
                "POST",
                "/allocations",
                Some(json!({
                    C1: {"allocations": {}, "project_id": PROJECT, "user_id": "u", "consumer_generation": 1},
                    C2: {"allocations": {SS: {"resources": {"DISK_GB": 10}}}, "project_id": PROJECT, "user_id": "u", "consumer_generation": null},
                })),
                "1.28",
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        let r = c
            .admin("GET", &format!("/allocations/{C1}"), None, "1.28")
            .await;
        assert_eq!(r.body, json!({"allocations": {}}));
        let r = c
            .admin("DELETE", &format!("/allocations/{C2}"), None, "1.28")
            .await;
        assert_eq!(r.status, 204);
        let r = c
            .admin("DELETE", &format!("/allocations/{C2}"), None, "1.28")
            .await;
        assert_eq!(r.status, 404);
        let r = c
            .admin(
                "GET",
                &format!("/resource_providers/{SS}/usages"),
                None,
                "1.9",
            )
            .await;
        assert_eq!(
            r.body["usages"],
            json!({"DISK_GB": 0}),
            "no leaked allocation"
        );
    }
}

#[tokio::test]
async fn reshaper_moves_inventory_and_allocations_together() {
    for c in both().await {
        let r = c
            .admin(
                "POST",
                "/resource_providers",
                Some(json!({"name": "cn", "uuid": RP})),
                "1.20",
            )
            .await;
        assert_eq!(r.status, 200);
        let r = c
            .admin(
                "POST",
                "/resource_providers",
                Some(json!({"name": "numa", "uuid": SS, "parent_provider_uuid": RP})),
                "1.20",
            )
            .await;
        assert_eq!(r.status, 200);
        let r = c
            .admin("PUT", &format!("/resource_providers/{RP}/inventories"), Some(json!({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 4}}})), "1.26")
            .await;
        assert_eq!(r.status, 200);
        let r = c
            .admin("PUT", &format!("/allocations/{C1}"), Some(json!({"allocations": {RP: {"resources": {"VCPU": 2}}}, "project_id": PROJECT, "user_id": "u", "consumer_generation": null})), "1.28")
            .await;
        assert_eq!(r.status, 204);
        let rp_gen = c
            .admin("GET", &format!("/resource_providers/{RP}"), None, "1.30")
            .await
            .body["generation"]
            .clone();
        let reshape = |g0: Value| {
            json!({
                "inventories": {
                    RP: {"resource_provider_generation": g0, "inventories": {}},
                    SS: {"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 4}}},
                },
                "allocations": {
                    C1: {"allocations": {SS: {"resources": {"VCPU": 2}}}, "project_id": PROJECT, "user_id": "u", "consumer_generation": 1},
                },
            })
        };
        let r = c
            .admin("POST", "/reshaper", Some(reshape(json!(99))), "1.30")
            .await;
        assert_eq!(r.status, 409, "stale generation: {}", r.body);
        let r = c
            .admin(
                "GET",
                &format!("/resource_providers/{RP}/usages"),
                None,
                "1.30",
            )
            .await;
        assert_eq!(r.body["usages"], json!({"VCPU": 2}), "nothing changed");
        let r = c
            .admin("POST", "/reshaper", Some(reshape(rp_gen.clone())), "1.30")
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        let r = c
            .admin(
                "GET",
                &format!("/resource_providers/{RP}/inventories"),
                None,
                "1.30",
            )
            .await;
        assert_eq!(r.body["inventories"], json!({}));
        let r = c
            .admin(
                "GET",
                &format!("/resource_providers/{SS}/usages"),
                None,
                "1.30",
            )
            .await;
        assert_eq!(r.body["usages"], json!({"VCPU": 2}));
        // Placement's bumps: the root only for its final inventories (it
        // lost its allocations, which does not bump it); the child for
        // the interim inventories, the allocations and the final ones.
        assert_eq!(r.body["resource_provider_generation"], 3);
        let r = c
            .admin("GET", &format!("/resource_providers/{RP}"), None, "1.30")
            .await;
        assert_eq!(
            r.body["generation"],
            json!(rp_gen.as_u64().unwrap() + 1),
            "{}",
            r.body
        );
    }
}

/// `PUT /resource_providers/{uuid}/aggregates` answers with the list as
/// given, in its order (as Placement echoes its request).
#[tokio::test]
async fn aggregates_answer_in_the_order_given() {
    const B: &str = "f918801a-5e54-4bee-9095-09a9d0c786b8";
    const A: &str = "a893eb5c-e2a0-4251-ab26-f71d3b0cfc0b";
    for c in both().await {
        let r = c
            .admin(
                "POST",
                "/resource_providers",
                Some(json!({"name": "cn", "uuid": RP})),
                "1.20",
            )
            .await;
        assert_eq!(r.status, 200);
        let r = c
            .admin(
                "PUT",
                &format!("/resource_providers/{RP}/aggregates"),
                Some(json!({"aggregates": [B, A], "resource_provider_generation": 0})),
                "1.19",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["aggregates"], json!([B, A]));
        let r = c
            .admin(
                "PUT",
                &format!("/resource_providers/{RP}/aggregates"),
                Some(json!([A, B])),
                "1.1",
            )
            .await;
        assert_eq!(r.body["aggregates"], json!([A, B]), "{}", r.body);
    }
}

/// A stale consumer generation is told as Placement does: the current
/// generation, then the one given.
#[tokio::test]
async fn consumer_generation_conflict_wording() {
    for c in both().await {
        c.admin(
            "POST",
            "/resource_providers",
            Some(json!({"name": "cn", "uuid": RP})),
            "1.20",
        )
        .await;
        let r = c
            .admin("PUT", &format!("/resource_providers/{RP}/inventories"), Some(json!({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 4}}})), "1.26")
            .await;
        assert_eq!(r.status, 200);
        let put = |g: Value| json!({"allocations": {RP: {"resources": {"VCPU": 1}}}, "project_id": PROJECT, "user_id": "u", "consumer_generation": g});
        let r = c
            .admin(
                "PUT",
                &format!("/allocations/{C1}"),
                Some(put(Value::Null)),
                "1.28",
            )
            .await;
        assert_eq!(r.status, 204);
        let r = c
            .admin(
                "PUT",
                &format!("/allocations/{C1}"),
                Some(put(json!(5))),
                "1.28",
            )
            .await;
        assert_eq!(r.status, 409);
        assert!(
            r.body
                .to_string()
                .contains("consumer generation conflict - expected 1 but got 5"),
            "{}",
            r.body
        );
        let r = c
            .admin(
                "POST",
                "/allocations",
                Some(json!({C1: put(Value::Null)})),
                "1.28",
            )
            .await;
        assert_eq!(r.status, 409);
        assert!(
            r.body.to_string().contains("expected 1 but got None"),
            "{}",
            r.body
        );
    }
}

/// `[cors]` as oslo.middleware: a preflight from an allowed origin gets
/// the preflight headers (and a 200 where the API has no OPTIONS); an
/// origin not allowed gets a bare 200; plain requests from an allowed
/// origin get `Access-Control-Allow-Origin`. Off, OPTIONS stays a 405.
#[tokio::test]
async fn cors_as_oslo_middleware() {
    let on = Client {
        app: api::Cors {
            allowed_origin: vec!["http://valid.example.com".into()],
            allow_headers: vec!["openstack-api-version".into()],
            ..Default::default()
        }
        .wrap(api::router(PlacementHandle::memory(), api::noauth2())),
    };
    let h = |r: &Reply, k: &str| r.headers.get(k).map(|v| v.to_str().unwrap().to_owned());
    let r = on
        .call(
            "OPTIONS",
            "/",
            None,
            "",
            Some("user"),
            &[
                ("origin", "http://valid.example.com"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "openstack-api-version"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        h(&r, "access-control-allow-origin").as_deref(),
        Some("http://valid.example.com")
    );
    assert_eq!(
        h(&r, "access-control-allow-headers").as_deref(),
        Some("openstack-api-version")
    );
    assert_eq!(
        h(&r, "access-control-allow-methods").as_deref(),
        Some("GET")
    );
    assert_eq!(
        h(&r, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(h(&r, "access-control-max-age").as_deref(), Some("3600"));
    // A header not allowed: no preflight headers.
    let r = on
        .call(
            "OPTIONS",
            "/",
            None,
            "",
            Some("user"),
            &[
                ("origin", "http://valid.example.com"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-not-allowed"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(h(&r, "access-control-allow-origin"), None);
    for origin in ["http://invalid.example.com", "http://valid.example.com"] {
        let extra = [("origin", origin), ("access-control-request-method", "GET")];
        let r = on
            .call("OPTIONS", "/", None, "", Some("user"), &extra)
            .await;
        assert_eq!(r.status, 200);
        let r = on.call("GET", "/", None, "", Some("user"), &extra).await;
        assert_eq!(r.status, 200);
        let want = (origin == "http://valid.example.com").then(|| origin.to_owned());
        assert_eq!(h(&r, "access-control-allow-origin"), want, "{origin}");
        if want.is_some() {
            assert!(h(&r, "vary").unwrap().contains("Origin"));
        }
    }
    let off = Client::new(PlacementHandle::memory());
    let r = off
        .call(
            "OPTIONS",
            "/",
            None,
            "",
            Some("user"),
            &[("origin", "http://valid.example.com")],
        )
        .await;
    assert_eq!(r.status, 405);
    let r = api::Cors::default().wrap(api::router(PlacementHandle::memory(), api::noauth2()));
    let off = Client { app: r };
    let r = off
        .call(
            "GET",
            "/",
            None,
            "",
            None,
            &[("origin", "http://valid.example.com")],
        )
        .await;
    assert_eq!(
        h(&r, "access-control-allow-origin"),
        None,
        "no origin allowed: off"
    );
}

/// Placement's schema and query wording: resource class keys outside
/// the pattern named as jsonschema's `patternProperties` does; a trait
/// both required and forbidden in `root_required` named as such.
#[tokio::test]
async fn schema_and_root_required_wording() {
    for c in both().await {
        c.admin(
            "POST",
            "/resource_providers",
            Some(json!({"name": "cn", "uuid": RP})),
            "1.20",
        )
        .await;
        let r = c
            .admin(
                "PUT",
                &format!("/allocations/{C1}"),
                Some(json!({"allocations": {RP: {"resources": {"vcpu": 1, "DISK_GB": 20, "mem": 1}}}, "project_id": PROJECT, "user_id": "u"})),
                "1.12",
            )
            .await;
        assert_eq!(r.status, 400);
        assert!(
            r.body
                .to_string()
                .contains("'mem', 'vcpu' do not match any of the regexes: '^[A-Z0-9_]+$'"),
            "{}",
            r.body
        );
        let r = c
            .admin(
                "GET",
                "/allocation_candidates?resources=VCPU:1&root_required=HW_CPU_X86_AVX2,HW_CPU_X86_SSE,!HW_CPU_X86_AVX2",
                None,
                "1.35",
            )
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["errors"][0]["code"], "placement.query.bad_value");
        assert!(
            r.body.to_string().contains(
                "Conflicting required and forbidden traits found in root_required: HW_CPU_X86_AVX2"
            ),
            "{}",
            r.body
        );
    }
}

/// Errors as webob renders them: JSON without `Accept` or with `*/*`
/// (Placement's request log), HTML when the `Accept` header prefers it,
/// plain text when it takes neither.
#[tokio::test]
async fn errors_follow_the_accept_header() {
    let c = Client::new(PlacementHandle::memory());
    let get = |accept: Option<&'static str>| {
        let extra: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let c = &c;
        async move {
            let app = c.app.clone();
            let mut rb = Request::builder()
                .method("GET")
                .uri("/bc8d9d50-7b0d-45ef-839c-e7b5e1c4e8fd")
                .header("x-auth-token", "admin");
            for (k, v) in extra {
                rb = rb.header(k, v);
            }
            let resp = app.oneshot(rb.body(Body::empty()).unwrap()).await.unwrap();
            let status = resp.status();
            let ct = resp.headers()[axum::http::header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .to_owned();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, ct, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    for accept in [None, Some("*/*"), Some("application/json")] {
        let (status, ct, body) = get(accept).await;
        assert_eq!(status, 404);
        assert_eq!(ct, "application/json", "{accept:?}");
        assert!(body.contains("\"errors\""), "{body}");
    }
    for accept in ["text/html", "text/*", "application/json;q=0.5, text/html"] {
        let (status, ct, body) = get(Some(accept)).await;
        assert_eq!(status, 404);
        assert!(ct.starts_with("text/html"), "{accept}: {ct}");
        assert!(body.contains("<h1>404 Not Found</h1>"), "{body}");
        assert!(body.contains("The resource could not be found"), "{body}");
    }
    let (_, ct, body) = get(Some("text/html;q=0.1, application/json")).await;
    assert_eq!(ct, "application/json", "{body}");
    let (_, ct, body) = get(Some("text/plain")).await;
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(
        body.starts_with("404 Not Found\n\nThe resource could not be found."),
        "{body}"
    );
}

#[tokio::test]
async fn policy_file_rules_override_the_defaults() {
    let rules = api::Policy::parse_rules(
        "\"placement:resource_providers:list\": \"@\"\n\
         \"placement:resource_providers:create\": \"role:member and not role:admin\"\n\
         \"placement:usages\": \"!\"\n",
    )
    .unwrap();
    let policy = api::Policy {
        enforce_new_defaults: false,
        overrides: std::sync::Arc::new(rules),
    };
    let c = Client {
        app: api::router_with_policy(PlacementHandle::memory(), api::noauth2(), policy),
    };
    let member = [("x-roles", "member")];
    // Opened to anyone.
    let r = c
        .call("GET", "/resource_providers", None, "1.39", Some("u:p"), &[])
        .await;
    assert_eq!(r.status, 200);
    // Members only, admins not.
    let body = Some(json!({"name": "cn1", "uuid": RP}));
    let r = c
        .call(
            "POST",
            "/resource_providers",
            body.clone(),
            "1.39",
            Some("u:p"),
            &member,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.admin("POST", "/resource_providers", body, "1.39").await;
    assert_eq!(r.status, 403);
    assert!(
        r.body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("placement:resource_providers:create")
    );
    // Closed to all, admin too; rules not named keep their default.
    let r = c.admin("GET", "/usages?project_id=p", None, "1.39").await;
    assert_eq!(r.status, 403);
    let r = c
        .call("GET", "/traits", None, "1.39", Some("u:p"), &member)
        .await;
    assert_eq!(r.status, 403);
    let r = c.admin("GET", "/traits", None, "1.39").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn created_inventory_carries_the_cache_headers() {
    let c = Client::new(PlacementHandle::memory());
    let r = c
        .admin(
            "POST",
            "/resource_providers",
            Some(json!({"name": "cn1", "uuid": RP})),
            "1.39",
        )
        .await;
    assert_eq!(r.status, 200);
    let inv = json!({"resource_class": "VCPU", "total": 8});
    let r = c
        .admin(
            "POST",
            &format!("/resource_providers/{RP}/inventories"),
            Some(inv),
            "1.15",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-cache");
    assert!(r.headers.contains_key("last-modified"));
    let inv = json!({"resource_class": "MEMORY_MB", "total": 8});
    let r = c
        .admin(
            "POST",
            &format!("/resource_providers/{RP}/inventories"),
            Some(inv),
            "1.14",
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(!r.headers.contains_key("cache-control"));
}
