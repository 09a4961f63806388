//! The host-level compute calls of `os-hosts` and the hypervisor uptime
//! (nova's `HostAPI`): one RPC call to the host's compute each.

use crate::ApiState;
use crate::auth::Ctx;

type Answer = Result<String, nova_rpc::Error>;

/// `set_host_enabled` on `host`'s compute.
pub(crate) async fn set_enabled(st: &ApiState, ctx: &Ctx, host: &str, enabled: bool) -> Answer {
    st.rpc
        .compute
        .set_host_enabled(&ctx.rpc(), host, &enabled)
        .await
}

/// `host_maintenance_mode` on `host`'s compute.
pub(crate) async fn maintenance(st: &ApiState, ctx: &Ctx, host: &str, mode: bool) -> Answer {
    st.rpc
        .compute
        .host_maintenance_mode(&ctx.rpc(), host, &host.to_owned(), &mode)
        .await
}

/// `host_power_action` on `host`'s compute.
pub(crate) async fn power_action(st: &ApiState, ctx: &Ctx, host: &str, action: &str) -> Answer {
    st.rpc
        .compute
        .host_power_action(&ctx.rpc(), host, &action.to_owned())
        .await
}

/// `get_host_uptime` on `host`'s compute.
pub(crate) async fn uptime(st: &ApiState, ctx: &Ctx, host: &str) -> Answer {
    st.rpc.compute.get_host_uptime(&ctx.rpc(), host).await
}
