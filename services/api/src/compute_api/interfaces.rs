//! Interface attach and detach (nova's `API.attach_interface` and
//! `API.detach_interface`): the lock and the states nova allows (`active`,
//! `paused`, `stopped`, no task), the instance action recorded, then a call
//! (attach) or a cast (detach) to the instance's compute; the compute's
//! refusals become nova's 400/404/409/500.

use nova_objects::Instance;
use nova_service::instance_actions::names;
use nova_service::states::VmState;
use serde_json::Value;

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};

/// The states nova attaches and detaches interfaces in.
const VM_STATES: &[VmState] = &[VmState::Active, VmState::Paused, VmState::Stopped];

/// What to attach: the port, or a new port on the network (with its
/// address), or (neither) a new port on the one network the project has.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttachRequest {
    /// `net_id`.
    pub(crate) network_id: Option<String>,
    /// `port_id`.
    pub(crate) port_id: Option<String>,
    /// `fixed_ips[0].ip_address`.
    pub(crate) ip: Option<String>,
    /// `tag` (2.49).
    pub(crate) tag: Option<String>,
}

fn checks(ctx: &Ctx, inst: &Instance, action: &str) -> ApiResult<String> {
    super::check_instance_lock(ctx, inst)?;
    super::check_instance_state(inst, action, VM_STATES, &[None])?;
    inst.host()
        .clone()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| super::actions::not_ready(inst))
}

/// The API's answer to a refusal of the compute (nova's
/// `InterfaceAttachmentController.create`).
fn attach_fault(e: nova_rpc::Error) -> Fault {
    const BAD: &[&str] = &[
        "InterfaceAttachFailedNoNetwork",
        "NetworkAmbiguous",
        "NoMoreFixedIps",
        "PortNotUsable",
        "AttachInterfaceNotSupported",
        "SecurityGroupCannotBeApplied",
        "NetworkInterfaceTaggedAttachNotSupported",
        "InvalidInput",
    ];
    const CONFLICT: &[&str] = &["InstanceIsLocked", "FixedIpAlreadyInUse", "PortInUse"];
    const MISSING: &[&str] = &["PortNotFound", "NetworkNotFound", "InstanceNotFound"];
    let Some(r) = e.remote() else {
        return Fault::internal(e);
    };
    let is = |set: &[&str]| set.iter().any(|c| r.is("nova.exception", c));
    if is(BAD) {
        Fault::bad_request(r.message.clone())
    } else if is(CONFLICT) {
        Fault::conflict(r.message.clone())
    } else if is(MISSING) {
        Fault::not_found(r.message.clone())
    } else if is(&["PortLimitExceeded"]) {
        Fault::forbidden(r.message.clone())
    } else if is(&["InterfaceAttachFailed"]) {
        Fault::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            r.message.clone(),
        )
    } else {
        Fault::internal(r.message.clone())
    }
}

/// Attaches an interface to `inst`; returns the port's id.
pub(crate) async fn attach(
    st: &ApiState,
    ctx: &Ctx,
    inst: &Instance,
    req: AttachRequest,
) -> ApiResult<String> {
    let host = checks(ctx, inst, "attach_interface")?;
    super::actions::record(st, ctx, inst.uuid(), names::ATTACH_INTERFACE).await?;
    if let Some(port) = &req.port_id
        && let Some(client) = st.network()
    {
        // nova reads the port first (with an admin context).
        if let Err(e) = client.show("port", port).await {
            return Err(if e.is_not_found() {
                Fault::not_found(format!("Port id {port} could not be found."))
            } else {
                Fault::internal(e)
            });
        }
    }
    let vif: Value = st
        .rpc
        .compute
        .attach_interface(
            &ctx.rpc(),
            &host,
            inst,
            &req.network_id,
            &req.port_id,
            &req.ip,
            &req.tag,
        )
        .await
        .map_err(attach_fault)?;
    vif["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Fault::not_found(format!("Instance {} could not be found.", inst.uuid())))
}

/// Detaches the interface of port `port_id` from `inst` (the compute
/// does it after the answer).
pub(crate) async fn detach(
    st: &ApiState,
    ctx: &Ctx,
    inst: &Instance,
    port_id: &str,
) -> ApiResult<()> {
    let host = checks(ctx, inst, "detach_interface")?;
    super::actions::record(st, ctx, inst.uuid(), names::DETACH_INTERFACE).await?;
    st.rpc
        .compute
        .detach_interface(&ctx.rpc(), &host, inst, &port_id.to_owned())
        .await
        .map_err(Fault::internal)
}

/// nova's deprecated multinic actions (to 2.43): a fixed IP more or less.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FixedIpChange {
    /// `addFixedIp`: one more fixed IP, from network `networkId`.
    Add(String),
    /// `removeFixedIp`: the fixed IP `address` released.
    Remove(String),
}

/// nova's `API.add_fixed_ip` / `remove_fixed_ip`: only the lock is
/// checked (any state; no instance action), then a cast to the instance's
/// compute, which changes the port and refreshes the info cache (what it
/// cannot do is an instance fault: nova answers before it tries).
pub(crate) async fn change_fixed_ip(
    st: &ApiState,
    ctx: &Ctx,
    inst: &Instance,
    change: FixedIpChange,
) -> ApiResult<()> {
    super::check_instance_lock(ctx, inst)?;
    let host = inst
        .host()
        .clone()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| super::actions::not_ready(inst))?;
    let compute = &st.rpc.compute;
    match change {
        FixedIpChange::Add(net) => {
            compute
                .add_fixed_ip_to_instance(&ctx.rpc(), &host, inst, &net)
                .await
        }
        FixedIpChange::Remove(address) => {
            compute
                .remove_fixed_ip_from_instance(&ctx.rpc(), &host, inst, &address)
                .await
        }
    }
    .map_err(Fault::internal)
}
