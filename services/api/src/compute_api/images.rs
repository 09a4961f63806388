//! Server images (nova's `API.snapshot`, `API.backup` and
//! `compute_utils.create_image`): the image record created in the image
//! service (queued, private, owned by the server's project, with nova's
//! properties `image_type`, `instance_uuid`, `user_id`, `base_image_ref`
//! and the server's inherited image properties), the task state, the
//! instance action and the cast that makes the compute upload the disk.
//!
//! The compute reaches the image API as nova's does: with the caller's
//! token and the image endpoint of the service catalog, which travel in
//! the RPC context ([`image_rpc_ctx`]).

use nova_objects::{Instance, SaveOptions};
use nova_rpc::RequestContext;
use nova_service::instance_actions::names;
use nova_service::notifications::{OldStates, Source};
use nova_service::states::{TaskState, VmState};
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// nova's `[DEFAULT] non_inheritable_image_properties` default.
const NON_INHERITABLE: &[&str] = &[
    "cache_in_nova",
    "bittorrent",
    "img_signature_hash_method",
    "img_signature",
    "img_signature_key_type",
    "img_signature_certificate_uuid",
];

/// The states a snapshot, a backup or a shelve is allowed in.
pub(crate) const IMAGE_STATES: &[VmState] = &[
    VmState::Active,
    VmState::Stopped,
    VmState::Paused,
    VmState::Suspended,
];

/// The caller's RPC context with what the compute needs to reach the
/// image API: the token (`auth_token`) and the catalog's image endpoint
/// (`service_catalog`, nova's context field: Keystone's catalog when the
/// token came from there, else the built-in identity's).
pub(crate) fn image_rpc_ctx(st: &ApiState, ctx: &Ctx, token: Option<&str>) -> RequestContext {
    let mut rpc = ctx.rpc();
    if let Some(t) = token {
        rpc.set("auth_token", t);
    }
    // With Keystone, the image endpoint of the caller's token's catalog.
    if rpc.get("service_catalog").is_some() {
        return rpc;
    }
    let catalog: Vec<Value> = st
        .identity
        .catalog
        .iter()
        .filter(|e| e.service_type == "image")
        .map(|e| {
            json!({"type": e.service_type, "name": e.name, "endpoints": [
                {"region": st.identity.region, "publicURL": e.url, "url": e.url}]})
        })
        .collect();
    rpc.set("service_catalog", Value::Array(catalog));
    rpc
}

/// The image endpoint (`Location` headers: nova's `generate_image_url`).
pub(crate) fn image_url(st: &ApiState, id: &str) -> String {
    let base = st
        .identity
        .catalog
        .iter()
        .find(|e| e.service_type == "image")
        .map_or_else(|| st.cfg.public_url.clone(), |e| e.url.clone());
    format!("{}/images/{id}", base.trim_end_matches('/'))
}

/// Nova's `compute_utils.create_image`: a queued, private image of the
/// server's project named `name`, with the server's inherited image
/// properties, then `extra` (metadata, backup type), then nova's own.
pub(crate) fn create_image(
    st: &ApiState,
    ctx: &Ctx,
    inst: &Instance,
    name: &str,
    image_type: &str,
    extra: &Map<String, Value>,
) -> ApiResult<Value> {
    let mut body = Map::new();
    for (k, v) in inst.system_metadata() {
        let Some(prop) = k.strip_prefix("image_") else {
            continue;
        };
        if NON_INHERITABLE.contains(&prop) || prop == "base_image_ref" {
            continue;
        }
        let Some(v) = v else { continue };
        match prop {
            "min_ram" | "min_disk" => {
                body.insert(prop.into(), json!(v.parse::<i64>().unwrap_or(0)));
            }
            "disk_format" | "container_format" => {
                body.insert(prop.into(), json!(v));
            }
            _ => {
                body.insert(prop.into(), json!(v));
            }
        }
    }
    for (k, v) in extra {
        body.insert(k.clone(), v.clone());
    }
    body.insert("name".into(), json!(name));
    body.insert("visibility".into(), json!("private"));
    body.insert("instance_uuid".into(), json!(inst.uuid()));
    body.insert("user_id".into(), json!(ctx.user_id));
    body.insert("image_type".into(), json!(image_type));
    body.insert(
        "base_image_ref".into(),
        json!(inst.image_ref().clone().unwrap_or_default()),
    );
    let owner = Ctx {
        project_id: inst.project_id().clone().unwrap_or_default(),
        ..ctx.clone()
    };
    st.images
        .create(&owner, &body)
        .map_err(|(status, msg)| Fault::new(status, msg))
}

/// Deletes an image the operation created before it failed.
fn drop_image(st: &ApiState, id: &str) {
    if let Err(e) = st.images.delete(id) {
        tracing::warn!(image = id, error = %e, "cannot delete the image");
    }
}

/// Nova's `check_img_metadata_properties_quota` (403 over
/// `metadata_items`).
pub(crate) async fn check_metadata(
    st: &ApiState,
    ctx: &Ctx,
    metadata: &Map<String, Value>,
) -> ApiResult<()> {
    let allowed = super::metadata::items_limit(st, ctx).await?;
    if allowed >= 0 && metadata.len() as i64 > allowed {
        return Err(Fault::forbidden(format!(
            "Quota exceeded for metadata_items: Requested {}, but already used 0 of {allowed} metadata_items",
            metadata.len()
        )));
    }
    Ok(())
}

/// Sets `task` on `inst` (expected none); the image is deleted when
/// another action won.
async fn set_task(
    st: &ApiState,
    ctx: &RequestContext,
    inst: &mut Instance,
    task: TaskState,
    image_id: &str,
    action: &str,
) -> ApiResult<()> {
    let old = OldStates::of(inst);
    inst.set_task_state(Some(task.into()));
    let uuid = inst.uuid().clone();
    if st
        .objects
        .save_with(
            &admin_ctx(),
            inst,
            &SaveOptions::expected_task_state([None::<&str>]),
        )
        .await
        .is_err()
    {
        drop_image(st, image_id);
        return Err(Fault::conflict(format!(
            "Cannot '{action}' instance {uuid}: another action is in progress"
        )));
    }
    st.notifier
        .instance_update(ctx, inst, &old, Source::Compute, &st.cfg.host)
        .await;
    Ok(())
}

/// `createImage` (nova's `API.snapshot`): the image id.
pub(crate) async fn snapshot(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    name: &str,
    metadata: &Map<String, Value>,
    token: Option<&str>,
) -> ApiResult<String> {
    super::check_instance_state(&inst, "createImage", IMAGE_STATES, &[None])?;
    let host = inst.host().clone().filter(|h| !h.is_empty());
    let Some(host) = host else {
        return Err(Fault::conflict(format!(
            "Instance {} is not ready",
            inst.uuid()
        )));
    };
    check_metadata(st, ctx, metadata).await?;
    let img = create_image(st, ctx, &inst, name, "snapshot", metadata)?;
    let id = img["id"].as_str().unwrap_or_default().to_owned();
    let rpc = image_rpc_ctx(st, ctx, token);
    set_task(
        st,
        &rpc,
        &mut inst,
        TaskState::ImageSnapshotPending,
        &id,
        "createImage",
    )
    .await?;
    super::actions::record(st, ctx, inst.uuid(), names::CREATE_IMAGE).await?;
    st.rpc
        .compute
        .snapshot_instance(&rpc, &host, &inst, &id)
        .await
        .map_err(Fault::internal)?;
    Ok(id)
}

/// `createBackup` (nova's `API.backup`): the image id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn backup(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    name: &str,
    backup_type: &str,
    rotation: i64,
    metadata: &Map<String, Value>,
    token: Option<&str>,
) -> ApiResult<String> {
    super::check_instance_state(&inst, "createBackup", IMAGE_STATES, &[None])?;
    let host = inst.host().clone().filter(|h| !h.is_empty());
    let Some(host) = host else {
        return Err(Fault::conflict(format!(
            "Instance {} is not ready",
            inst.uuid()
        )));
    };
    check_metadata(st, ctx, metadata).await?;
    let mut extra = metadata.clone();
    extra.insert("backup_type".into(), json!(backup_type));
    let img = create_image(st, ctx, &inst, name, "backup", &extra)?;
    let id = img["id"].as_str().unwrap_or_default().to_owned();
    let rpc = image_rpc_ctx(st, ctx, token);
    set_task(
        st,
        &rpc,
        &mut inst,
        TaskState::ImageBackup,
        &id,
        "createBackup",
    )
    .await?;
    super::actions::record(st, ctx, inst.uuid(), names::BACKUP).await?;
    st.rpc
        .compute
        .backup_instance(&rpc, &host, &inst, &id, &backup_type.to_owned(), &rotation)
        .await
        .map_err(Fault::internal)?;
    Ok(id)
}
