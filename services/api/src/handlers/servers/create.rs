//! `POST /servers`: the body becomes a [`CreateRequest`] (schema, counts,
//! user data, networks, zone and host policy); the compute API creates.

use std::collections::BTreeMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::St;
use crate::auth::Ctx;
use crate::compute_api::{self, CreateRequest};
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, require_admin, require_write, truthy};
use crate::microversion::ApiVersion;
use crate::schemas;

/// The id at the end of a reference (`…/flavors/1` or `1`).
fn id_of_ref(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned()
}

fn parse_count(v: Option<&Value>, what: &str) -> ApiResult<Option<i64>> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().filter(|n| *n >= 1).map(Some).ok_or_else(|| {
            Fault::bad_request(format!("Invalid input for field/attribute {what}."))
        }),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| {
                Fault::bad_request(format!(
                    "Invalid input for field/attribute {what}. Value: {s}."
                ))
            }),
        Some(other) => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {what}. Value: {other}."
        ))),
    }
}

fn hints(body: &Value) -> BTreeMap<String, Vec<String>> {
    let mut hints = BTreeMap::new();
    for key in ["os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"] {
        if let Some(h) = body[key].as_object() {
            for (k, v) in h {
                let vals: Vec<String> = match v {
                    Value::Array(a) => a
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| x.to_string())
                        })
                        .collect(),
                    Value::String(s) => vec![s.clone()],
                    other => vec![other.to_string()],
                };
                hints.insert(k.clone(), vals);
            }
        }
    }
    hints
}

/// The create request of a body valid at `v`.
fn parse(ctx: &Ctx, v: ApiVersion, body: &Value) -> ApiResult<CreateRequest> {
    schemas::check("server_create", v, || schemas::server_create(v), body)?;
    let s = &body["server"];
    let bdms = s["block_device_mapping_v2"].as_array();
    let image_id = s["imageRef"]
        .as_str()
        .map(|r| id_of_ref(&json!(r)))
        .filter(|r| !r.is_empty())
        .or_else(|| {
            bdms.and_then(|b| {
                b.iter()
                    .find(|m| m["source_type"] == "image" && m["destination_type"] == "local")
                    .and_then(|m| m["uuid"].as_str().map(str::to_owned))
            })
        });
    let requested_networks = nova_service::neutron::parse_requested_networks(s.get("networks"))
        .map_err(|e| Fault::bad_request(e.to_string()))?;
    if let Some(ud) = s["user_data"].as_str()
        && base64::engine::general_purpose::STANDARD
            .decode(ud.trim())
            .is_err()
    {
        return Err(Fault::bad_request("User data needs to be valid base 64."));
    }
    let min_count = parse_count(s.get("min_count"), "min_count")?.unwrap_or(1);
    let max_count = parse_count(s.get("max_count"), "max_count")?.unwrap_or(min_count);
    if min_count > max_count {
        return Err(Fault::bad_request("min_count must be <= max_count"));
    }
    // Availability zone, `az:host[:node]` for admins.
    let (mut availability_zone, mut force_host) = (None, None);
    if let Some(z) = s["availability_zone"].as_str() {
        let mut parts = z.splitn(3, ':');
        let zone = parts.next().unwrap_or("");
        if let Some(h) = parts.next().filter(|h| !h.is_empty()) {
            require_admin(ctx, "os_compute_api:servers:create:forced_host")?;
            force_host = Some(h.to_owned());
        }
        if !zone.is_empty() {
            availability_zone = Some(zone.to_owned());
        }
    }
    // 2.74: `host` / `hypervisor_hostname`, a requested destination (admins).
    let requested_host = s["host"].as_str().map(str::to_owned);
    let requested_node = s["hypervisor_hostname"].as_str().map(str::to_owned);
    if requested_host.is_some() || requested_node.is_some() {
        require_admin(ctx, "compute:servers:create:requested_destination")?;
    }
    // nova's names, once each (`default` when none); resolved in `create`.
    let mut security_groups: Vec<String> = Vec::new();
    for g in s["security_groups"].as_array().into_iter().flatten() {
        if let Some(n) = g["name"].as_str().filter(|n| !n.is_empty())
            && !security_groups.iter().any(|x| x == n)
        {
            security_groups.push(n.to_owned());
        }
    }
    if security_groups.is_empty() {
        security_groups.push("default".to_owned());
    }
    let trusted_certs = if v.at_least(2, 63) {
        s["trusted_image_certificates"]
            .as_array()
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
    } else {
        None
    };
    if trusted_certs.is_some() && image_id.is_none() {
        return Err(Fault::bad_request(
            "Image certificate validation is not supported when booting from volume",
        ));
    }
    Ok(CreateRequest {
        name: s["name"].as_str().unwrap_or_default().to_owned(),
        description: s["description"].as_str().map(str::to_owned),
        hostname: s["hostname"].as_str().map(str::to_owned),
        flavor_id: id_of_ref(&s["flavorRef"]),
        image_id,
        has_bdms: bdms.is_some_and(|b| !b.is_empty()),
        key_name: s["key_name"].as_str().map(str::to_owned),
        user_data: s["user_data"].as_str().map(str::to_owned),
        metadata: s["metadata"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        min_count,
        max_count,
        availability_zone,
        force_host,
        requested_host,
        requested_node,
        hints: hints(body),
        access_ip_v4: s["accessIPv4"].as_str().map(normalize_ip),
        access_ip_v6: s["accessIPv6"].as_str().map(normalize_ip),
        auto_disk_config: s["OS-DCF:diskConfig"].as_str() == Some("AUTO"),
        // nova's boolean parameter: true, or "true"/"1"/"yes"/"on"-like strings.
        config_drive: match &s["config_drive"] {
            Value::Bool(b) => *b,
            Value::String(t) => matches!(
                t.to_ascii_lowercase().as_str(),
                "true" | "1" | "t" | "yes" | "y" | "on"
            ),
            _ => false,
        },
        tags: s["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        admin_pass: s["adminPass"].as_str().map(str::to_owned),
        trusted_certs,
        personality: if v.at_least(2, 57) {
            Vec::new()
        } else {
            s["personality"].as_array().cloned().unwrap_or_default()
        },
        requested_networks,
        security_groups,
    })
}

/// An access address as nova stores it (its IP address fields print
/// `netaddr.IPAddress`: `0000::babe:220.12.22.2` is `::babe:dc0c:1602`);
/// text that is no address (the schema refuses it) stays as given.
pub(crate) fn normalize_ip(a: &str) -> String {
    a.parse::<std::net::IpAddr>()
        .map_or_else(|_| a.to_owned(), |ip| ip.to_string())
}

pub(crate) async fn create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    require_write(&ctx, "os_compute_api:servers:create")?;
    let body = json_body(&body)?;
    let mut req = parse(&ctx, v, &body)?;
    req.security_groups =
        crate::secgroups::resolve_requested(&st, &ctx, &req.security_groups).await?;
    let made = compute_api::create(&st, &ctx, &req).await?;
    let s = &body["server"];
    if s["return_reservation_id"].as_bool() == Some(true)
        || s["return_reservation_id"]
            .as_str()
            .is_some_and(|x| truthy(x) == Some(true))
    {
        return Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({"reservation_id": made.reservation_id})),
        )
            .into_response());
    }
    let id = &made.uuid;
    let location = format!("{}/v2.1/servers/{id}", st.cfg.public_url);
    let mut body = json!({"server": {
        "id": id,
        "links": [{"rel": "self", "href": location},
                  {"rel": "bookmark", "href": format!("{}/servers/{id}", st.cfg.public_url)}],
        "OS-DCF:diskConfig": if req.auto_disk_config { "AUTO" } else { "MANUAL" },
        "security_groups": s.get("security_groups").cloned()
            .unwrap_or_else(|| json!([{"name": "default"}])),
    }});
    if st.cfg.enable_instance_password {
        body["server"]["adminPass"] = json!(made.admin_pass);
    }
    let mut r = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(l) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    Ok(r)
}
