//! What every service of a move shares (resize, cold and live
//! migration): nova's allocation swaps between the instance and its
//! Migration record as Placement consumers, the Migration's statuses,
//! and the instance's `MigrationContext`.

use nova_objects::{Instance, Migration};
use nova_placement::PlacementHandle;
use nova_scheduler::placement::ConsumerWrite;
use serde_json::{Value, json};

/// Nova's report client `move_allocations(source, target)`: the
/// source consumer's allocations become the target's (replacing what the
/// target held, as nova overwrites them), the source's are released, in
/// one `POST /allocations`.
/// `Ok(false)`: the source held nothing (nothing moved).
pub async fn move_allocations(
    placement: &PlacementHandle,
    source: &str,
    target: &str,
) -> anyhow::Result<bool> {
    let from = placement
        .allocations_async(source)
        .await
        .map_err(|e| anyhow::anyhow!("placement: {e}"))?;
    if from.allocations.is_empty() {
        return Ok(false);
    }
    let to = placement
        .allocations_async(target)
        .await
        .map_err(|e| anyhow::anyhow!("placement: {e}"))?;
    let writes = [
        ConsumerWrite {
            consumer: source.to_owned(),
            allocations: Default::default(),
            project_id: from.project_id.clone(),
            user_id: from.user_id.clone(),
            generation: from.consumer_generation,
        },
        ConsumerWrite {
            consumer: target.to_owned(),
            allocations: from.allocations.clone(),
            project_id: from.project_id.clone(),
            user_id: from.user_id.clone(),
            generation: to.consumer_generation,
        },
    ];
    placement
        .write_many_async(&[], &writes)
        .await
        .map_err(|e| {
            anyhow::anyhow!("placement: cannot move allocations from {source} to {target}: {e}")
        })?;
    Ok(true)
}

/// Nova's `_revert_allocation`: the allocations the migration holds go
/// back to the instance (what the instance held on the destination is
/// released). `Ok(false)`: the migration held nothing.
pub async fn revert_allocation(
    placement: &PlacementHandle,
    instance_uuid: &str,
    migration_uuid: &str,
) -> anyhow::Result<bool> {
    move_allocations(placement, migration_uuid, instance_uuid).await
}

/// The migration statuses nova's API counts as a live migration in
/// progress (`/servers/{id}/migrations`).
pub const LIVE_IN_PROGRESS: &[&str] = &["queued", "preparing", "running", "post-migrating"];

/// The migration statuses of a resize or cold migration that is not
/// over (nova's `MigrationList.get_in_progress_by_instance` less the
/// finished ones a confirm or revert still needs).
pub const RESIZE_IN_PROGRESS: &[&str] = &["pre-migrating", "migrating", "post-migrating"];

/// Nova's `MigrationContext` (1.2) primitive for `instance` moving under
/// `migration` (no NUMA, PCI or resources to carry).
pub fn migration_context(instance: &Instance, migration: &Migration) -> nova_objects::RawObject {
    let data = json!({
        "instance_uuid": instance.uuid(),
        "migration_id": migration.id(),
        "new_numa_topology": null,
        "old_numa_topology": null,
        "new_pci_devices": null,
        "old_pci_devices": null,
        "new_pci_requests": null,
        "old_pci_requests": null,
        "new_resources": null,
        "old_resources": null,
    });
    let changes: Vec<Value> = data
        .as_object()
        .map(|o| o.keys().map(|k| json!(k)).collect())
        .unwrap_or_default();
    nova_objects::RawObject(json!({
        "nova_object.name": "MigrationContext",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.2",
        "nova_object.data": data,
        "nova_object.changes": changes,
    }))
}

/// A new Migration record's fields (nova's `Migration.create` fills
/// `uuid`, `user_id`, `project_id` from the context).
pub fn new_migration(
    instance: &Instance,
    migration_type: &str,
    old_flavor_id: i64,
    new_flavor_id: i64,
    user_id: Option<String>,
    project_id: Option<String>,
) -> Migration {
    Migration::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_instance_uuid(Some(instance.uuid().clone()))
        .with_source_compute(instance.host().clone())
        .with_source_node(instance.node().clone())
        .with_dest_compute(None)
        .with_dest_node(None)
        .with_dest_host(None)
        .with_old_instance_type_id(Some(old_flavor_id))
        .with_new_instance_type_id(Some(new_flavor_id))
        .with_migration_type(migration_type.to_owned())
        .with_hidden(false)
        .with_cross_cell_move(false)
        .with_user_id(user_id)
        .with_project_id(project_id)
}
