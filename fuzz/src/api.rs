//! The compute API's request parsing without HTTP: body bytes to a
//! validated request (the JSON document, nova's request schemas per
//! microversion, the flavor rules the handlers apply after them), and the
//! microversion headers.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use crate::fault::Fault;
use crate::microversion::{self, ApiVersion, MAX, MIN, Negotiated};
use crate::{flavor_rules, schemas};

/// What the handlers do with a body before touching anything (the body
/// kinds the fuzzer picks from, by the first input byte).
pub const KINDS: &[&str] = &[
    "server_create",
    "server_update",
    "server_action",
    "flavor_create",
    "flavor_update",
    "flavor_action",
    "extra_specs",
    "keypair_create",
    "service_update",
];

/// `data`: kind (byte 0, mod [`KINDS`]), microversion minor (byte 1, 2.x
/// clamped to the served range), then the body.
pub fn body(data: &[u8]) {
    let [kind, minor, body @ ..] = data else {
        return;
    };
    let v = ApiVersion(2, u16::from(*minor).clamp(MIN.1, MAX.1));
    let kind = KINDS[usize::from(*kind) % KINDS.len()];
    if let Err(f) = parse(kind, v, body) {
        // Bad input is the client's fault, never ours (a 500 here is a
        // schema that does not compile or a rule that cannot decide).
        assert_eq!(f.status, StatusCode::BAD_REQUEST, "{kind} at {v}: {f:?}");
        assert!(!f.message.is_empty());
    }
}

/// services/api/src/http.rs `json_body`.
fn json_body(body: &[u8]) -> Result<Value, Fault> {
    if body.is_empty() {
        return Err(Fault::bad_request("Malformed request body"));
    }
    serde_json::from_slice(body).map_err(|_| Fault::bad_request("Malformed request body"))
}

/// The parse steps of each handler, in its order (see the handler named
/// in each arm).
pub(crate) fn parse(kind: &str, v: ApiVersion, body: &[u8]) -> Result<(), Fault> {
    let body = json_body(body)?;
    match kind {
        // handlers/servers/create.rs
        "server_create" => {
            schemas::check("server_create", v, || schemas::server_create(v), &body)?;
        }
        // handlers/servers/show.rs `update`
        "server_update" => {
            schemas::check("server_update", v, || schemas::server_update(v), &body)?;
        }
        // handlers/servers/actions.rs: the action is the body's key.
        "server_action" => {
            let Some(name) = body.as_object().and_then(|o| o.keys().next()).cloned() else {
                return Err(Fault::bad_request("no action"));
            };
            if name == "reboot" {
                schemas::check("reboot", MIN, schemas::reboot, &body)?;
            } else if let Some(schema) = schemas::server_action(&name, v) {
                schemas::check(&format!("action:{name}"), v, || schema, &body)?;
            }
        }
        // flavors.rs `create`
        "flavor_create" => {
            schemas::check("flavor_create", v, || schemas::flavor_create(v), &body)?;
            let f = &body["flavor"];
            let name = f["name"].as_str().unwrap_or_default().to_owned();
            flavor_rules::printable_name("name", &name)?;
            let ram = flavor_rules::integer(&f["ram"], "ram", 1)?;
            let vcpus = flavor_rules::integer(&f["vcpus"], "vcpus", 1)?;
            let disk = flavor_rules::integer(&f["disk"], "disk", 0)?;
            let eph = flavor_rules::integer(&f["OS-FLV-EXT-DATA:ephemeral"], "ephemeral", 0)?;
            let swap = flavor_rules::integer(&f["swap"], "swap", 0)?;
            let rxtx = flavor_rules::rxtx_factor(&f["rxtx_factor"])?;
            flavor_rules::description(&f["description"])?;
            // What is stored fits nova's columns.
            for n in [ram, vcpus, disk, eph, swap] {
                assert!((0..=flavor_rules::MAX_INT).contains(&n), "{n} stored");
            }
            assert!(ram >= 1 && vcpus >= 1);
            assert!(rxtx.is_finite() && rxtx > 0.0);
        }
        // flavors.rs `update` (2.55)
        "flavor_update" => {
            let Some(desc) = body["flavor"].get("description") else {
                return Err(Fault::bad_request("'description' is a required property"));
            };
            flavor_rules::description(desc)?;
        }
        // flavors.rs `action` (flavor access)
        "flavor_action" => {
            let tenant = body["addTenantAccess"]["tenant"]
                .as_str()
                .or_else(|| body["removeTenantAccess"]["tenant"].as_str())
                .ok_or_else(|| Fault::bad_request("There is no such action"))?;
            flavor_rules::tenant(tenant)?;
        }
        // flavors.rs `set_extra_specs`
        "extra_specs" => {
            schemas::check("extra_specs", MIN, schemas::extra_specs, &body)?;
            for (k, val) in body["extra_specs"].as_object().into_iter().flatten() {
                let text = flavor_rules::extra_spec(v, k, val)?;
                assert!(text.chars().count() <= 255);
            }
        }
        // keypairs.rs `create`
        "keypair_create" => {
            schemas::check("keypair_create", v, || schemas::keypair_create(v), &body)?;
        }
        // admin.rs `update_service` (2.53+)
        _ => {
            schemas::check("service_update", v, schemas::service_update, &body)?;
        }
    }
    Ok(())
}

/// nova's `APIVersionRequest` pattern, `^([1-9]\d*)\.([1-9]\d*|0)$` with
/// ASCII digits (the header arrives as latin-1, so no other digit can
/// appear as one), or `latest`.
fn nova_accepts(s: &str) -> bool {
    let s = s.trim();
    if s.eq_ignore_ascii_case("latest") {
        return true;
    }
    let Some((a, b)) = s.split_once('.') else {
        return false;
    };
    let digits = |n: &str| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit());
    digits(a) && !a.starts_with('0') && digits(b) && (b == "0" || !b.starts_with('0'))
}

/// The bytes as a version string (differential against nova's pattern)
/// and as the value of both version headers.
pub fn microversion(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let got = ApiVersion::parse(s);
        assert_eq!(got.is_some(), nova_accepts(s), "{s:?} parsed as {got:?}");
        if let Some(v) = got
            && !s.trim().eq_ignore_ascii_case("latest")
            && v.0 != u16::MAX
            && v.1 != u16::MAX
        {
            assert_eq!(v.to_string(), s.trim(), "{s:?}");
        }
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    for name in ["openstack-api-version", "x-openstack-nova-api-version"] {
        let mut h = HeaderMap::new();
        h.insert(name, value.clone());
        match microversion::negotiate(&h) {
            Negotiated::Ok(v) => assert!((MIN..=MAX).contains(&v), "{v} served"),
            Negotiated::Unsupported(v) => assert!(v < MIN || v > MAX),
            Negotiated::Malformed(_) => {}
        }
    }
    // The same as a service list with ours in it.
    let mut h = HeaderMap::new();
    let mut list = b"placement 1.0, compute ".to_vec();
    list.extend_from_slice(data);
    if let Ok(v) = HeaderValue::from_bytes(&list) {
        h.insert("openstack-api-version", v);
        let _ = microversion::negotiate(&h);
    }
}
