//! The server actions that rebuild, image or move a server: `rebuild`,
//! `createImage`, `createBackup`, `shelve`, `shelveOffload`, `unshelve`,
//! `evacuate` — their bodies (already checked against the action's schema
//! by the caller), policies (nova's rule names and defaults) and answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_objects::Instance;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::compute_api::{self, RebuildRequest, images, shelve};
use crate::fault::{ApiResult, Fault};
use crate::http::{require_admin, require_write, truthy};
use crate::microversion::ApiVersion;
use crate::views;

/// The actions served here.
pub(crate) const NAMES: &[&str] = &[
    "rebuild",
    "createImage",
    "createBackup",
    "shelve",
    "shelveOffload",
    "unshelve",
    "evacuate",
];

/// A JSON boolean or one of nova's boolean strings.
fn boolean(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => truthy(s).unwrap_or(false),
        _ => false,
    }
}

/// An optional string that may be null (`Some(None)`), absent (`None`).
fn nullable(args: &Value, key: &str) -> Option<Option<String>> {
    args.get(key).map(|v| v.as_str().map(str::to_owned))
}

/// One action request: microversion, name, arguments, the caller's token.
pub(crate) struct Call<'a> {
    pub(crate) v: ApiVersion,
    pub(crate) name: &'a str,
    pub(crate) args: &'a Value,
    pub(crate) token: Option<&'a str>,
}

/// The body's `metadata` object (already schema-checked).
fn metadata(args: &Value) -> Map<String, Value> {
    args["metadata"].as_object().cloned().unwrap_or_default()
}

/// The answer to `createImage` / `createBackup`: before 2.45 an empty 202
/// with the image's `Location`, from 2.45 `{"image_id"}`.
fn image_reply(st: &ApiState, v: ApiVersion, id: &str) -> Response {
    if v.at_least(2, 45) {
        (StatusCode::ACCEPTED, axum::Json(json!({ "image_id": id }))).into_response()
    } else {
        (
            StatusCode::ACCEPTED,
            [(axum::http::header::LOCATION, images::image_url(st, id))],
        )
            .into_response()
    }
}

/// Serves action `c.name` of `inst`.
pub(crate) async fn handle(
    st: &ApiState,
    ctx: &Ctx,
    inst: Instance,
    c: Call<'_>,
    password: impl FnOnce() -> String,
) -> ApiResult<Response> {
    let (v, args) = (c.v, c.args);
    match c.name {
        "rebuild" => rebuild(st, ctx, v, inst, args, password).await,
        "createImage" => {
            require_write(ctx, "os_compute_api:servers:create_image")?;
            let name = args["name"].as_str().unwrap_or_default().trim().to_owned();
            let id = images::snapshot(st, ctx, inst, &name, &metadata(args), c.token).await?;
            Ok(image_reply(st, v, &id))
        }
        "createBackup" => {
            require_write(ctx, "os_compute_api:os-create-backup")?;
            let name = args["name"].as_str().unwrap_or_default().trim().to_owned();
            let backup_type = args["backup_type"].as_str().unwrap_or_default().to_owned();
            let rotation = match &args["rotation"] {
                Value::Number(n) => n.as_i64().unwrap_or(0),
                Value::String(s) => s.parse().unwrap_or(0),
                _ => 0,
            };
            let id = images::backup(
                st,
                ctx,
                inst,
                &name,
                &backup_type,
                rotation,
                &metadata(args),
                c.token,
            )
            .await?;
            Ok(image_reply(st, v, &id))
        }
        "shelve" => {
            require_write(ctx, "os_compute_api:os-shelve:shelve")?;
            shelve::shelve(st, ctx, inst, c.token).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "shelveOffload" => {
            require_admin(ctx, "os_compute_api:os-shelve:shelve_offload")?;
            shelve::shelve_offload(st, ctx, inst).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "unshelve" => {
            require_write(ctx, "os_compute_api:os-shelve:unshelve")?;
            let mut r = shelve::UnshelveRequest::default();
            if v.at_least(2, 77) && args.is_object() {
                if let Some(az) = args.get("availability_zone") {
                    r.az = Some(az.as_str().map(str::to_owned));
                }
                if v.at_least(2, 91) {
                    r.host = args["host"].as_str().map(str::to_owned);
                }
            }
            if r.host.is_some() {
                require_admin(ctx, "os_compute_api:os-shelve:unshelve_to_host")?;
            }
            shelve::unshelve(st, ctx, inst, r, c.token).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "evacuate" => {
            require_admin(ctx, "os_compute_api:os-evacuate")?;
            let mut r = compute_api::evacuate::EvacuateRequest {
                host: args["host"].as_str().map(str::to_owned),
                ..Default::default()
            };
            if !v.at_least(2, 14) {
                r.on_shared_storage = Some(boolean(&args["onSharedStorage"]));
            }
            if v.at_least(2, 29) && !v.at_least(2, 68) {
                r.force = boolean(&args["force"]);
            }
            if v.at_least(2, 95) {
                r.target_state = Some("stopped".into());
            }
            // Before 2.14 a password is made up when none is given.
            let pass = match args["adminPass"].as_str() {
                Some(p) => Some(p.to_owned()),
                None if !v.at_least(2, 14) => Some(password()),
                None => None,
            };
            r.password = pass.clone();
            compute_api::evacuate::evacuate(st, ctx, inst, r).await?;
            if !v.at_least(2, 14) && st.cfg.enable_instance_password {
                return Ok(
                    (StatusCode::OK, axum::Json(json!({ "adminPass": pass }))).into_response()
                );
            }
            Ok(StatusCode::OK.into_response())
        }
        other => Err(Fault::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

/// `rebuild`: 202 with the server as it is now (nova's rebuild view: the
/// full server from 2.75, before it without the extended attributes),
/// `adminPass` when `[api] enable_instance_password`, `user_data` from 2.57.
async fn rebuild(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    inst: Instance,
    args: &Value,
    password: impl FnOnce() -> String,
) -> ApiResult<Response> {
    require_write(ctx, "os_compute_api:servers:rebuild")?;
    let uuid = inst.uuid().clone();
    let mut r = RebuildRequest {
        image_ref: args["imageRef"].as_str().unwrap_or_default().to_owned(),
        password: args["adminPass"]
            .as_str()
            .map_or_else(password, str::to_owned),
        name: args["name"].as_str().map(|n| n.trim().to_owned()),
        metadata: args.get("metadata").and_then(|m| {
            m.as_object().map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
        }),
        preserve_ephemeral: boolean(&args["preserve_ephemeral"]),
        auto_disk_config: args["OS-DCF:diskConfig"].as_str().map(|d| d == "AUTO"),
        access_ip_v4: args["accessIPv4"].as_str().map(str::to_owned),
        access_ip_v6: args["accessIPv6"].as_str().map(str::to_owned),
        personality: args["personality"].as_array().cloned().unwrap_or_default(),
        ..Default::default()
    };
    if v.at_least(2, 19) {
        r.description = nullable(args, "description");
    }
    if v.at_least(2, 54) {
        r.key_name = nullable(args, "key_name");
    }
    if v.at_least(2, 57) {
        r.user_data = nullable(args, "user_data");
    }
    if v.at_least(2, 63) && args.get("trusted_image_certificates").is_some() {
        require_write(ctx, "os_compute_api:servers:rebuild:trusted_certs")?;
        r.trusted_certs = Some(args["trusted_image_certificates"].as_array().map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        }));
    }
    if v.at_least(2, 90) {
        r.hostname = args["hostname"].as_str().map(str::to_owned);
    }
    let password = r.password.clone();
    compute_api::rebuild(st, ctx, inst, r).await?;
    let mut inst = compute_api::get(st, ctx, &uuid).await?;
    let all = v.at_least(2, 75);
    if all && super::show::shows_host_status(ctx, v, true) {
        compute_api::host_status::load_services(st, std::slice::from_mut(&mut inst)).await?;
    }
    let mut server = super::show::with_hints_and_groups(
        st,
        ctx,
        v,
        &inst,
        views::server(st, ctx, v, &inst, true),
        all,
    )
    .await?;
    if let Some(o) = server.as_object_mut() {
        if !all {
            // Before 2.75 the rebuild view is the basic server.
            o.retain(|k, _| {
                !(k.starts_with("OS-EXT-") && k != "OS-EXT-SRV-ATTR:hostname"
                    || k.starts_with("OS-SRV-USG:")
                    || k.starts_with("os-extended-volumes:")
                    || k == "config_drive"
                    || k == "security_groups"
                    || k == "host_status"
                    || k == "key_name" && !v.at_least(2, 54))
            });
        }
        o.remove("OS-EXT-SRV-ATTR:user_data");
        if st.cfg.enable_instance_password {
            o.insert("adminPass".into(), json!(password));
        }
        if v.at_least(2, 57) {
            o.insert("user_data".into(), json!(inst.user_data()));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "server": server })),
    )
        .into_response())
}
