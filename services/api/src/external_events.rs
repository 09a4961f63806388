//! `POST /os-server-external-events` (admins and services: Neutron's
//! `network-vif-plugged` and friends): nova's schema per microversion,
//! a code per event, 207 when some were refused, 404 when none matched.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_objects::InstanceExternalEvent;
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::json_body;
use crate::microversion::ApiVersion;
use crate::{ApiState, compute_api, schemas};

/// The event names `v` accepts.
fn names(v: ApiVersion) -> Vec<&'static str> {
    let mut n = vec![
        "network-changed",
        "network-vif-plugged",
        "network-vif-unplugged",
        "network-vif-deleted",
    ];
    for (minor, name) in [
        (51, "volume-extended"),
        (76, "power-update"),
        (82, "accelerator-request-bound"),
        (93, "volume-reimaged"),
    ] {
        if v.at_least(2, minor) {
            n.push(name);
        }
    }
    n
}

pub(crate) fn schema(v: ApiVersion) -> Value {
    json!({"type": "object", "properties": {"events": {"type": "array", "minItems": 1,
        "items": {"type": "object", "properties": {
            "server_uuid": {"type": "string", "format": "uuid"},
            "name": {"type": "string", "enum": names(v)},
            "status": {"type": "string", "enum": ["failed", "completed", "in-progress"]},
            "tag": {"type": "string", "maxLength": 255}},
          "required": ["server_uuid", "name"], "additionalProperties": false}}},
      "required": ["events"], "additionalProperties": false})
}

/// `POST /os-server-external-events`.
pub(crate) async fn create(
    State(st): State<Arc<ApiState>>,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    if !(ctx.is_admin() || ctx.has("service")) {
        return Err(Fault::policy(
            "os_compute_api:os-server-external-events:create",
        ));
    }
    let body = json_body(&body)?;
    schemas::check("server_external_events", v, || schema(v), &body)?;
    let events: Vec<InstanceExternalEvent> = body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            InstanceExternalEvent::new()
                .with_instance_uuid(e["server_uuid"].as_str().unwrap_or_default().to_owned())
                .with_name(e["name"].as_str().unwrap_or_default().to_owned())
                .with_status(e["status"].as_str().unwrap_or("completed").to_owned())
                .with_tag(e["tag"].as_str().map(str::to_owned))
                .with_data(std::collections::BTreeMap::new())
        })
        .collect();
    let outcomes = compute_api::external_events::deliver(&st, &ctx, events).await?;
    if outcomes.iter().all(|o| o.code == 404) {
        return Err(Fault::not_found("No instances found for any event"));
    }
    let all_ok = outcomes.iter().all(|o| o.code == 200);
    let list: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let mut e = json!({"server_uuid": o.event.instance_uuid(), "name": o.event.name(),
                "status": o.event.status(), "code": o.code});
            if let Some(t) = o.event.tag() {
                e["tag"] = json!(t);
            }
            e
        })
        .collect();
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((status, axum::Json(json!({"events": list}))).into_response())
}
