//! Server tags (nova's `server_tags` controller and `TagList`): at most
//! [`MAX_TAG_COUNT`] per server, each 1..=60 characters without `/` or
//! `,`; changed only while the server is active, paused, suspended or
//! stopped (409 otherwise). They are kept on the instance's row as nova's
//! `TagList` primitive, which the list filters (`tags`, `tags-any`,
//! `not-tags`, `not-tags-any`) search in SQL.

use nova_objects::{Instance, RawObject};
use nova_service::notifications::Source;
use nova_service::states::VmState;
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};

/// nova's `instance.MAX_TAG_COUNT`.
pub(crate) const MAX_TAG_COUNT: usize = 50;
/// nova's `tag.MAX_TAG_LENGTH`.
pub(crate) const MAX_TAG_LENGTH: usize = 60;

/// nova's `parameter_types.tag`.
pub(crate) fn tag_schema() -> Value {
    json!({"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": MAX_TAG_LENGTH})
}

/// The server's tags, sorted (nova reads them in the tags table's key
/// order).
pub(crate) fn tags_of(inst: &Instance) -> Vec<String> {
    let mut tags = nova_service::notifications::payloads::instance_tags(inst);
    tags.sort();
    tags.dedup();
    tags
}

/// nova's `TagList` (1.1) of `tags` on server `uuid`.
pub(crate) fn tag_list(uuid: &str, tags: &[String]) -> RawObject {
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    let objects: Vec<Value> = tags
        .iter()
        .map(|t| {
            json!({"nova_object.name": "Tag", "nova_object.namespace": "nova",
                   "nova_object.version": "1.1",
                   "nova_object.data": {"resource_id": uuid, "tag": t}})
        })
        .collect();
    RawObject(
        json!({"nova_object.name": "TagList", "nova_object.namespace": "nova",
        "nova_object.version": "1.1", "nova_object.data": {"objects": objects}}),
    )
}

/// nova's `_check_instance_in_valid_state` for tag changes (the vm_state
/// only; any task state).
pub(crate) fn check_state(inst: &Instance, action: &str) -> ApiResult<()> {
    const STATES: &[VmState] = &[
        VmState::Active,
        VmState::Paused,
        VmState::Suspended,
        VmState::Stopped,
    ];
    let vm = inst.vm_state().as_deref();
    if vm
        .and_then(|s| s.parse::<VmState>().ok())
        .is_some_and(|s| STATES.contains(&s))
    {
        return Ok(());
    }
    Err(Fault::conflict(format!(
        "Cannot '{action}' instance {} while it is in vm_state {}",
        inst.uuid(),
        vm.unwrap_or_default()
    )))
}

/// Whether `tag` is a valid tag; nova's 400 otherwise.
pub(crate) fn check_tag(tag: &str) -> ApiResult<()> {
    let err = if tag.is_empty() {
        Some(format!("'{tag}' is too short"))
    } else if tag.chars().count() > MAX_TAG_LENGTH {
        Some(format!("'{tag}' is too long"))
    } else if tag.contains(['/', ',']) {
        Some(format!("'{tag}' does not match '^[^,/]*$'"))
    } else {
        None
    };
    match err {
        Some(err) => Err(Fault::bad_request(format!(
            "Tag '{tag}' is invalid. It must be a non empty string without characters '/' and ','. Validation error message: {err}"
        ))),
        None => Ok(()),
    }
}

/// Replaces the server's tags (`action`: nova's name for the state
/// error); returns them.
pub(crate) async fn replace(
    st: &ApiState,
    ctx: &Ctx,
    inst: Instance,
    tags: &[String],
    action: &str,
) -> ApiResult<Vec<String>> {
    super::metadata::modify(st, ctx, inst, "tags", Source::Api, |inst| {
        check_state(inst, action)?;
        inst.set_tags(tag_list(inst.uuid(), tags));
        Ok((tags_of(inst), true))
    })
    .await
}

/// Adds `tag` (nova's `update`): false when the server already had it.
pub(crate) async fn add(st: &ApiState, ctx: &Ctx, inst: Instance, tag: &str) -> ApiResult<bool> {
    super::metadata::modify(st, ctx, inst, "tags", Source::Api, |inst| {
        check_state(inst, "update tag")?;
        check_tag(tag)?;
        let mut now = tags_of(inst);
        if now.len() >= MAX_TAG_COUNT {
            return Err(Fault::bad_request(format!(
                "The number of tags exceeded the per-server limit {MAX_TAG_COUNT}"
            )));
        }
        if now.iter().any(|t| t == tag) {
            return Ok((false, false));
        }
        now.push(tag.to_owned());
        inst.set_tags(tag_list(inst.uuid(), &now));
        Ok((true, true))
    })
    .await
}

/// Removes `tag` (404 when the server lacks it).
pub(crate) async fn remove(st: &ApiState, ctx: &Ctx, inst: Instance, tag: &str) -> ApiResult<()> {
    super::metadata::modify(st, ctx, inst, "tags", Source::Api, |inst| {
        check_state(inst, "delete tag")?;
        let mut now = tags_of(inst);
        let Some(at) = now.iter().position(|t| t == tag) else {
            return Err(Fault::not_found(format!(
                "Instance {} has no tag '{tag}'",
                inst.uuid()
            )));
        };
        now.remove(at);
        inst.set_tags(tag_list(inst.uuid(), &now));
        Ok(((), true))
    })
    .await
}
