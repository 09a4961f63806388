//! Remote consoles (nova's `get_vnc_console`, `get_spice_console`,
//! `get_serial_console`, `get_mks_console` in `compute/api.py`): a call to
//! the instance's compute, which authorizes a token and answers the URL;
//! and the console auth token lookup of `os-console-auth-tokens`.

use axum::http::StatusCode;
use nova_objects::{ConsoleAuthToken, Instance};
use nova_service::consoles;
use nova_service::states::TaskState;

use super::actions::not_ready;
use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// A console URL for `inst` (`protocol` `vnc`, `spice`, `serial`, `mks`):
/// 409 without a host or while deleting or migrating; the compute's
/// refusals as nova maps them (400 for a type that is off or wrong, 404,
/// 409 not ready, 501 for a driver without that console).
pub(crate) async fn get_console_url(
    st: &ApiState,
    ctx: &Ctx,
    inst: &Instance,
    protocol: &str,
    console_type: &str,
) -> ApiResult<String> {
    let method = format!("get_{protocol}_console");
    let host = inst.host().clone().unwrap_or_default();
    if host.is_empty() {
        return Err(not_ready(inst));
    }
    if let Some(t) = inst.task_state().as_deref()
        && (t == TaskState::Deleting.as_str() || t == TaskState::Migrating.as_str())
    {
        return Err(Fault::conflict(format!(
            "Cannot '{method}' instance {} while it is in task_state {t}",
            inst.uuid()
        )));
    }
    let rctx = ctx.rpc();
    let c = &st.rpc.compute;
    let ty = console_type.to_owned();
    let r = match protocol {
        "vnc" => c.get_vnc_console(&rctx, &host, inst, &ty).await,
        "spice" => c.get_spice_console(&rctx, &host, inst, &ty).await,
        "serial" => c.get_serial_console(&rctx, &host, inst, &ty).await,
        _ => c.get_mks_console(&rctx, &host, inst, &ty).await,
    };
    let info = r.map_err(|e| match e.remote() {
        Some(r) if r.is("builtins", "NotImplementedError") => Fault::new(
            StatusCode::NOT_IMPLEMENTED,
            "The requested functionality is not supported.",
        ),
        Some(r)
            if r.is("nova.exception", "ConsoleTypeUnavailable")
                || r.is("nova.exception", "ConsoleTypeInvalid")
                || r.is("nova.exception", "SocketPortRangeExhaustedException")
                || r.is("nova.exception", "ImageSerialPortNumberInvalid") =>
        {
            Fault::bad_request(r.message.clone())
        }
        Some(r) if r.is("nova.exception", "InstanceNotFound") => {
            Fault::not_found(r.message.clone())
        }
        Some(r) if r.is("nova.exception", "InstanceNotReady") => Fault::conflict(r.message.clone()),
        _ => Fault::internal(e),
    })?;
    info["access_url"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Fault::internal("the compute's console answer has no access_url"))
}

/// The record of a valid console token (nova's
/// `ConsoleAuthToken.validate`); 404 "Token not found" otherwise.
pub(crate) async fn token_info(st: &ApiState, token: &str) -> ApiResult<ConsoleAuthToken> {
    match consoles::validate(&st.objects, &admin_ctx(), token).await {
        Ok(Ok(rec)) => Ok(rec),
        Ok(Err(_)) => Err(Fault::not_found("Token not found")),
        Err(e) => Err(Fault::internal(e)),
    }
}
