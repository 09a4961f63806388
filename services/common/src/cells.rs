//! Cells v2 bookkeeping shared by the services: cell0 (instances that
//! failed scheduling), cell1 (where computes live), and instance faults.

use nova_objects::{CellMapping, Instance, InstanceFault, ListQuery, Objects};
use nova_rpc::RequestContext;

/// cell0's fixed uuid (nova's `CellMapping.CELL0_UUID`).
pub const CELL0_UUID: &str = "00000000-0000-0000-0000-000000000000";

use crate::context::admin;

/// The cell mappings `cell0` and `cell1`, created when missing (what
/// `nova-manage cell_v2 map_cell0` / `create_cell` do). Returns cell1.
pub async fn ensure_cells(
    objects: &Objects,
    transport_url: &str,
    database: &str,
) -> nova_objects::Result<CellMapping> {
    let ctx = admin();
    let cells: Vec<CellMapping> = objects.list(&ctx, &ListQuery::new()).await?;
    if !cells.iter().any(|c| c.uuid() == CELL0_UUID) {
        let mut c0 = CellMapping::new()
            .with_uuid(CELL0_UUID.to_owned())
            .with_name(Some("cell0".into()))
            .with_transport_url("none:///")
            .with_database_connection(database.to_owned())
            .with_disabled(false);
        objects.create(&ctx, &mut c0).await?;
    }
    if let Some(c1) = cells
        .into_iter()
        .find(|c| c.name().as_deref() == Some("cell1"))
    {
        return Ok(c1);
    }
    let mut c1 = CellMapping::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_name(Some("cell1".into()))
        .with_transport_url(transport_url)
        .with_database_connection(database.to_owned())
        .with_disabled(false);
    objects.create(&ctx, &mut c1).await?;
    Ok(c1)
}

/// Records a fault on an instance (what the API shows under `fault`).
pub async fn record_fault(
    objects: &Objects,
    ctx: &RequestContext,
    instance_uuid: &str,
    code: i64,
    message: &str,
    details: Option<&str>,
    host: Option<&str>,
) -> nova_objects::Result<()> {
    let mut f = InstanceFault::new()
        .with_instance_uuid(instance_uuid.to_owned())
        .with_code(code)
        .with_message(Some(message.chars().take(255).collect()))
        .with_details(details.map(str::to_owned))
        .with_host(host.map(str::to_owned));
    objects.create(ctx, &mut f).await
}

/// Puts an instance in `error` with a fault: the end of every failed build.
pub async fn set_error(
    objects: &Objects,
    ctx: &RequestContext,
    instance: &mut Instance,
    code: i64,
    message: &str,
    host: Option<&str>,
) -> nova_objects::Result<()> {
    // The fault first: whoever sees `error` also finds why.
    record_fault(objects, ctx, instance.uuid(), code, message, None, host).await?;
    instance.set_vm_state(Some(crate::states::VmState::Error.into()));
    instance.set_task_state(None);
    objects.save(ctx, instance).await
}
