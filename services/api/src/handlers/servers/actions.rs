//! `POST /servers/{id}/action`: the action's name is the body's one key;
//! its schema (at the request's microversion), its policy rule (nova's
//! names and defaults), then the compute API.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_service::states::VmState;
use serde_json::{Value, json};

use super::St;
use crate::auth::Ctx;
use crate::compute_api::{self, Action, DeleteKind, FixedIpChange};
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, require_admin, require_on, require_write};
use crate::microversion::{self, ApiVersion};
use crate::schemas;

/// A server action and the microversions it exists at (nova's
/// `wsgi.Controller.api_version` bounds on the action methods; outside
/// them the action is a 404, an unknown name a 400).
pub(crate) struct ServerAction {
    pub(crate) name: &'static str,
    pub(crate) min: ApiVersion,
    pub(crate) max: ApiVersion,
}

impl ServerAction {
    pub(crate) fn serves(&self, v: ApiVersion) -> bool {
        v >= self.min && v <= self.max
    }
}

const fn always(name: &'static str) -> ServerAction {
    ServerAction {
        name,
        min: microversion::MIN,
        max: microversion::MAX,
    }
}

const fn between(name: &'static str, min: u16, max: u16) -> ServerAction {
    ServerAction {
        name,
        min: ApiVersion(2, min),
        max: ApiVersion(2, max),
    }
}

/// Every action `POST /servers/{id}/action` serves: the handler knows no
/// other, and the OpenAPI document's request bodies are these actions'
/// [`schema`]s. (`resetNetwork`, removed in nova 23, is a 410 at every
/// microversion and is not listed.)
pub(crate) const ACTIONS: &[ServerAction] = &[
    always("reboot"),
    always("os-stop"),
    always("os-start"),
    always("pause"),
    always("unpause"),
    always("suspend"),
    always("resume"),
    always("lock"),
    always("unlock"),
    always("changePassword"),
    always("os-resetState"),
    always("injectNetworkInfo"),
    always("os-getConsoleOutput"),
    always("rescue"),
    always("unrescue"),
    always("restore"),
    always("forceDelete"),
    between("trigger_crash_dump", 17, microversion::MAX.1),
    always("rebuild"),
    always("createImage"),
    always("createBackup"),
    always("shelve"),
    always("shelveOffload"),
    always("unshelve"),
    always("evacuate"),
    always("resize"),
    always("confirmResize"),
    always("revertResize"),
    always("migrate"),
    always("os-migrateLive"),
    // Replaced by `POST /servers/{id}/remote-consoles` at 2.6.
    between("os-getVNCConsole", 1, 5),
    between("os-getSPICEConsole", 1, 5),
    between("os-getSerialConsole", 1, 5),
    between("os-getRDPConsole", 1, 5),
    always("addSecurityGroup"),
    always("removeSecurityGroup"),
    // nova's floating IP and multinic actions end at 2.43.
    between("addFloatingIp", 1, 43),
    between("removeFloatingIp", 1, 43),
    between("addFixedIp", 1, 43),
    between("removeFixedIp", 1, 43),
];

/// The action named `name`, whatever the microversion.
pub(crate) fn find(name: &str) -> Option<&'static ServerAction> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// The request body of action `name` at `v`, as its handler checks it
/// (`None`: not served at `v`).
pub(crate) fn schema(name: &str, v: ApiVersion) -> Option<Value> {
    let action = find(name).filter(|a| a.serves(v))?;
    match action.name {
        "reboot" => Some(schemas::reboot()),
        n if super::moves::is_move(n) => Some(super::moves::schema(n, v)),
        n if crate::handlers::consoles::legacy_types(n).is_some() => {
            crate::handlers::consoles::legacy_schema(n)
        }
        n @ ("addSecurityGroup" | "removeSecurityGroup") => {
            Some(crate::secgroups::action_schema(n))
        }
        n @ ("addFloatingIp" | "removeFloatingIp") => {
            Some(crate::floating_ips_proxy::action_schema(n))
        }
        n => schemas::server_action(n, v),
    }
}

/// The policy rule of an action (nova's `nova/policies`).
fn policy(name: &str) -> String {
    match name {
        "pause" | "unpause" => format!("os_compute_api:os-pause-server:{name}"),
        "suspend" | "resume" => format!("os_compute_api:os-suspend-server:{name}"),
        "lock" | "unlock" => format!("os_compute_api:os-lock-server:{name}"),
        "changePassword" => "os_compute_api:os-admin-password".into(),
        "os-resetState" => "os_compute_api:os-admin-actions:reset_state".into(),
        "injectNetworkInfo" => "os_compute_api:os-admin-actions:inject_network_info".into(),
        "os-getConsoleOutput" => "os_compute_api:os-console-output".into(),
        "rescue" => "os_compute_api:os-rescue".into(),
        "unrescue" => "os_compute_api:os-unrescue".into(),
        "restore" => "os_compute_api:os-deferred-delete:restore".into(),
        "forceDelete" => "os_compute_api:os-deferred-delete:force".into(),
        "os-stop" => "os_compute_api:servers:stop".into(),
        "addFixedIp" => "os_compute_api:os-multinic:add".into(),
        "removeFixedIp" => "os_compute_api:os-multinic:remove".into(),
        "os-start" => "os_compute_api:servers:start".into(),
        other => format!("os_compute_api:servers:{other}"),
    }
}

/// Nova's `utils.generate_password` alphabet (no look-alike characters).
const PASSWORD_SYMBOLS: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A random password of nova's default length (12).
fn generate_password() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let more = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .chain(more.iter())
        .take(12)
        .map(|b| PASSWORD_SYMBOLS[*b as usize % PASSWORD_SYMBOLS.len()] as char)
        .collect()
}

pub(crate) async fn action(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let Some((name, args)) = body
        .as_object()
        .and_then(|o| if o.len() == 1 { o.iter().next() } else { None })
    else {
        return Err(Fault::bad_request(
            "Malformed request body: an action body has exactly one key, the action name",
        ));
    };
    let name = name.as_str();
    if name == "resetNetwork" {
        // Removed in nova 23 (Wallaby): 410 at every version, whatever the
        // server.
        return Err(crate::networks_proxy::tenant_gone().await);
    }
    match find(name) {
        None => {
            return Err(Fault::bad_request(format!(
                "There is no such action: {name}"
            )));
        }
        Some(a) if !a.serves(v) => {
            return Err(Fault::not_found(format!("There is no such action: {name}")));
        }
        Some(_) => {}
    }
    if let Some(r) = crate::handlers::consoles::legacy_action(&st, &ctx, v, &id, name, &body).await
    {
        return r;
    }
    if let Some(r) = crate::secgroups::action(&st, &ctx, v, &id, name, &body).await {
        return r;
    }
    if let Some(r) = crate::floating_ips_proxy::action(&st, &ctx, v, &id, name, &body).await {
        return r;
    }
    if super::moves::is_move(name) {
        let inst = compute_api::get(&st, &ctx, &id).await?;
        return super::moves::action(&st, &ctx, v, inst, name, &body).await;
    }
    if let Some(schema) = schema(name, v) {
        schemas::check(&format!("action:{name}"), v, || schema, &body)?;
    }
    let rule = policy(name);
    let inst = compute_api::get(&st, &ctx, &id).await?;
    match name {
        "os-resetState" => {
            require_admin(&ctx, &rule)?;
            let state = match args["state"].as_str() {
                Some("error") => VmState::Error,
                _ => VmState::Active,
            };
            compute_api::reset_state(&st, &ctx, inst, state).await?;
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        "injectNetworkInfo" => {
            // nova's admin_actions: the rule on the server's project.
            let project = inst.project_id().clone().unwrap_or_default();
            let user = inst.user_id().clone().unwrap_or_default();
            require_on(&ctx, &rule, &project, &user)?;
            compute_api::inject_network_info(&st, &ctx, &inst).await?;
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        "lock" => {
            require_write(&ctx, &rule)?;
            let reason = if v.at_least(2, 73) {
                args["locked_reason"].as_str().map(str::to_owned)
            } else {
                None
            };
            compute_api::lock(&st, &ctx, inst, reason).await?;
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        "unlock" => {
            require_write(&ctx, &rule)?;
            if !compute_api::is_expected_locked_by(&ctx, &inst) {
                require_admin(&ctx, "os_compute_api:os-lock-server:unlock:unlock_override")?;
            }
            compute_api::unlock(&st, &ctx, inst).await?;
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        "os-getConsoleOutput" => {
            require_write(&ctx, &rule)?;
            let length = match &args["length"] {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse::<i64>().ok(),
                _ => None,
            };
            let output = compute_api::console_output(&st, &ctx, &inst, length).await?;
            return Ok(axum::Json(json!({"output": output})).into_response());
        }
        "forceDelete" => {
            require_write(&ctx, &rule)?;
            compute_api::delete(&st, &ctx, inst, DeleteKind::Force).await?;
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        "addFixedIp" | "removeFixedIp" => {
            // nova's multinic: the rule on the server's project.
            let project = inst.project_id().clone().unwrap_or_default();
            let user = inst.user_id().clone().unwrap_or_default();
            require_on(&ctx, &rule, &project, &user)?;
            let change = match (&args["networkId"], &args["address"]) {
                (Value::String(n), _) => FixedIpChange::Add(n.clone()),
                (Value::Number(n), _) => FixedIpChange::Add(n.to_string()),
                (_, a) => FixedIpChange::Remove(a.as_str().unwrap_or_default().to_owned()),
            };
            compute_api::change_fixed_ip(&st, &ctx, &inst, change).await?;
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        _ => {}
    }
    if super::rebuilds::NAMES.contains(&name) {
        let token = headers
            .get("x-auth-token")
            .and_then(|t| t.to_str().ok())
            .map(str::trim);
        let call = super::rebuilds::Call {
            v,
            name,
            args,
            token,
        };
        return super::rebuilds::handle(&st, &ctx, inst, call, generate_password).await;
    }
    require_write(&ctx, &rule)?;
    let mut reply = None;
    let action = match name {
        "reboot" => Action::Reboot {
            hard: args["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("HARD")),
        },
        "os-stop" => Action::Stop,
        "os-start" => Action::Start,
        "pause" => Action::Pause,
        "unpause" => Action::Unpause,
        "suspend" => Action::Suspend,
        "resume" => Action::Resume,
        "trigger_crash_dump" => Action::TriggerCrashDump,
        "unrescue" => Action::Unrescue,
        "restore" => Action::Restore,
        "changePassword" => Action::ChangePassword {
            password: args["adminPass"].as_str().unwrap_or_default().to_owned(),
        },
        "rescue" => {
            let password = args["adminPass"]
                .as_str()
                .map_or_else(generate_password, str::to_owned);
            let image_ref = args["rescue_image_ref"].as_str().map(str::to_owned);
            if let Some(image) = &image_ref
                && st.images.get(image).is_none()
            {
                return Err(Fault::bad_request(format!(
                    "Requested rescue image '{image}' is not supported"
                )));
            }
            reply = Some(if st.cfg.enable_instance_password {
                json!({"adminPass": password})
            } else {
                json!({})
            });
            Action::Rescue {
                password,
                image_ref,
            }
        }
        _ => {
            return Err(Fault::bad_request(format!(
                "There is no such action: {name}"
            )));
        }
    };
    compute_api::act(&st, &ctx, inst, action).await?;
    Ok(match reply {
        Some(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        None => StatusCode::ACCEPTED.into_response(),
    })
}
