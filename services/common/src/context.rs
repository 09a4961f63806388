//! Request contexts the services make themselves (nova's
//! `context.get_admin_context()` and `context.elevated()`).

use nova_rpc::RequestContext;

/// A fresh admin context, for work no user asked for (periodic tasks,
/// start-up, recovery).
pub fn admin() -> RequestContext {
    RequestContext::new().with_admin(true).with_roles(["admin"])
}

/// The caller's context with admin rights (its user, project and request
/// id kept), for what the service does on the caller's behalf.
pub fn elevated(ctx: &RequestContext) -> RequestContext {
    ctx.clone().with_admin(true)
}
