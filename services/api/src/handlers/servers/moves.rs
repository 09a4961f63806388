//! The server actions that rebuild, image or move a server: `rebuild`,
//! `createImage`, `createBackup`, `shelve`, `shelveOffload`, `unshelve`,
//! `evacuate` — their bodies (already checked against the action's schema
//! by the caller), policies (nova's rule names and defaults) and answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_objects::Instance;
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::compute_api::{self, RebuildRequest};
use crate::fault::{ApiResult, Fault};
use crate::http::{require_write, truthy};
use crate::microversion::ApiVersion;
use crate::views;

/// The actions served here.
pub(crate) const NAMES: &[&str] = &["rebuild"];

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

/// Serves action `name` of `inst`.
pub(crate) async fn handle(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    inst: Instance,
    name: &str,
    args: &Value,
    password: impl FnOnce() -> String,
) -> ApiResult<Response> {
    match name {
        "rebuild" => rebuild(st, ctx, v, inst, args, password).await,
        _ => Err(Fault::bad_request(format!(
            "There is no such action: {name}"
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
    let mut server = views::server(st, ctx, v, &inst, true);
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
