//! Remote consoles: `POST /servers/{id}/remote-consoles` (2.6+), the
//! legacy actions `os-getVNCConsole`, `os-getSPICEConsole`,
//! `os-getSerialConsole` (2.1–2.5; `os-getRDPConsole` is refused as nova
//! 29+ refuses it), and `GET /os-console-auth-tokens/{token}` (admins;
//! 2.31+). Nova's schemas (`schemas/remote_consoles.py`), policies and
//! faults.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::compute_api;
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, require_admin, require_write};
use crate::microversion::ApiVersion;
use crate::schemas;

type St = State<std::sync::Arc<crate::ApiState>>;

const POLICY: &str = "os_compute_api:os-remote-consoles";

/// The `remote_console` body schema at `v` (2.6, 2.8 adds `mks`/`webmks`,
/// 2.99 `spice-direct`).
pub(crate) fn create_schema(v: ApiVersion) -> Value {
    let mut protocols = vec!["vnc", "spice", "serial", "rdp"];
    let mut types = vec!["novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5"];
    if v.at_least(2, 8) {
        protocols.push("mks");
        types.push("webmks");
    }
    if v.at_least(2, 99) {
        types.push("spice-direct");
    }
    json!({
        "type": "object",
        "properties": {"remote_console": {
            "type": "object",
            "properties": {
                "protocol": {"type": "string", "enum": protocols},
                "type": {"type": "string", "enum": types},
            },
            "required": ["protocol", "type"],
            "additionalProperties": false,
        }},
        "required": ["remote_console"],
        "additionalProperties": false,
    })
}

/// `POST /servers/{id}/remote-consoles`.
pub(crate) async fn create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    if !v.at_least(2, 6) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let body = json_body(&body)?;
    schemas::check("remote_consoles:create", v, || create_schema(v), &body)?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    require_write(&ctx, POLICY)?;
    let protocol = body["remote_console"]["protocol"]
        .as_str()
        .unwrap_or_default();
    let console_type = body["remote_console"]["type"].as_str().unwrap_or_default();
    if protocol == "rdp" {
        return Err(Fault::bad_request("Unavailable console type rdp."));
    }
    let url =
        compute_api::consoles::get_console_url(&st, &ctx, &inst, protocol, console_type).await?;
    Ok(axum::Json(json!({"remote_console": {
        "protocol": protocol, "type": console_type, "url": url}}))
    .into_response())
}

/// The legacy console actions (`POST /servers/{id}/action`, 2.1–2.5):
/// `None` when `name` is not one of them.
/// The protocol and console types of legacy console action `name`.
pub(crate) fn legacy_types(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match name {
        "os-getVNCConsole" => ("vnc", &["novnc", "xvpvnc"]),
        "os-getSPICEConsole" => ("spice", &["spice-html5"]),
        "os-getSerialConsole" => ("serial", &["serial"]),
        "os-getRDPConsole" => ("rdp", &["rdp-html5"]),
        _ => return None,
    })
}

/// The body of legacy console action `name` (nova's `get_vnc_console` …).
pub(crate) fn legacy_schema(name: &str) -> Option<Value> {
    let (_, types) = legacy_types(name)?;
    Some(json!({
        "type": "object",
        "properties": {name: {
            "type": "object",
            "properties": {"type": {"type": "string", "enum": types}},
            "required": ["type"],
            "additionalProperties": false,
        }},
        "required": [name],
        "additionalProperties": false,
    }))
}

pub(crate) async fn legacy_action(
    st: &crate::ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    id: &str,
    name: &str,
    body: &Value,
) -> Option<ApiResult<Response>> {
    let (protocol, _) = legacy_types(name)?;
    Some(
        async {
            if v.at_least(2, 6) {
                return Err(Fault::not_found(format!("There is no such action: {name}")));
            }
            schemas::check(
                &format!("action:{name}"),
                v,
                || legacy_schema(name).unwrap_or_default(),
                body,
            )?;
            if protocol == "rdp" {
                return Err(Fault::bad_request(
                    "RDP consoles are only available when using the Hyper-V driver, which was removed from Nova in the 29.0.0 (Caracal) release.",
                ));
            }
            require_write(ctx, POLICY)?;
            let inst = compute_api::get(st, ctx, id).await?;
            let console_type = body[name]["type"].as_str().unwrap_or_default();
            let url =
                compute_api::consoles::get_console_url(st, ctx, &inst, protocol, console_type)
                    .await?;
            Ok(
                axum::Json(json!({"console": {"type": console_type, "url": url}}))
                    .into_response(),
            )
        }
        .await,
    )
}

/// `GET /os-console-auth-tokens/{token}` (admins): the connection info of
/// a valid token; 400 before 2.31 (nova 29+: rdp-html5 only, removed).
pub(crate) async fn token_show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(token): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    if !v.at_least(2, 31) {
        return Err(Fault::bad_request(
            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        ));
    }
    if v.at_least(2, 99) {
        crate::http::refuse_unknown_params(&params, &[])?;
    }
    require_admin(&ctx, "os_compute_api:os-console-auth-tokens")?;
    if token.is_empty() {
        return Err(Fault::bad_request("token not provided"));
    }
    let rec = compute_api::consoles::token_info(&st, &token).await?;
    let mut console = json!({
        "instance_uuid": rec.instance_uuid(),
        "host": rec.host(),
        "port": rec.port(),
        "internal_access_path": rec.internal_access_path(),
    });
    if v.at_least(2, 99) && rec.console_type() == "spice-direct" {
        console["tls_port"] = json!(rec.tls_port());
    }
    Ok(axum::Json(json!({ "console": console })).into_response())
}
