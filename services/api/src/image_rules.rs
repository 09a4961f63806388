//! The image API's rules: Glance's default policy (readers read, members
//! and admins write, only admins publicize or community-share) and
//! Glance's image schema (the types and bounds of core fields and of
//! custom properties), applied to create bodies and JSON-patch results.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::auth::Ctx;

/// The largest create or update body (oslo.middleware's
/// `max_request_body_size`, as the compute API); uploads are not bounded.
pub(crate) const MAX_IMAGE_BODY: usize = 114_688;

/// Glance's `image_property_quota`: custom properties per image.
const PROPERTY_QUOTA: usize = 128;
/// Glance's `image_tag_quota`.
const TAG_QUOTA: usize = 128;

const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];
/// Visibilities.
pub(crate) const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];

type Refusal = (StatusCode, String);

/// Glance's 403 for a policy `action` the caller may not do.
fn forbidden(action: &str) -> Refusal {
    (
        StatusCode::FORBIDDEN,
        format!("You are not authorized to complete {action} action."),
    )
}

/// `add_image`, `modify_image`, `delete_image`, `upload_image`: a member
/// or an admin (a reader only reads).
pub(crate) fn may_write(ctx: &Ctx, action: &str) -> Result<(), Refusal> {
    if ctx.can_write() {
        Ok(())
    } else {
        Err(forbidden(action))
    }
}

/// Making an image `public` (`publicize_image`) or `community`
/// (`communitize_image`) is for admins; `was` is its visibility before.
pub(crate) fn may_set_visibility(
    ctx: &Ctx,
    visibility: &str,
    was: Option<&str>,
) -> Result<(), Refusal> {
    if was == Some(visibility) || ctx.is_admin() {
        return Ok(());
    }
    match visibility {
        "public" => Err(forbidden("publicize_image")),
        "community" => Err(forbidden("communitize_image")),
        _ => Ok(()),
    }
}

fn schema_error(detail: impl std::fmt::Display) -> Refusal {
    (
        StatusCode::BAD_REQUEST,
        format!("Provided object does not match schema 'image': {detail}"),
    )
}

fn string_or_null(k: &str, v: &Value, max: usize) -> Result<(), Refusal> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) if s.chars().count() <= max => Ok(()),
        Value::String(_) => Err(schema_error(format!(
            "'{k}' is longer than {max} characters"
        ))),
        other => Err(schema_error(format!(
            "{other} is not of type 'null', 'string' ({k})"
        ))),
    }
}

fn one_of(k: &str, v: &Value, allowed: &[&str], nullable: bool) -> Result<(), Refusal> {
    match v {
        Value::Null if nullable => Ok(()),
        Value::String(s) if allowed.contains(&s.as_str()) => Ok(()),
        other => Err(schema_error(format!(
            "{other} is not one of {allowed:?} ({k})"
        ))),
    }
}

/// Checks an image's fields (after a create's defaults or a patch) as
/// Glance's schema does.
pub(crate) fn validate(img: &Map<String, Value>) -> Result<(), Refusal> {
    let mut custom = 0usize;
    for (k, v) in img {
        match k.as_str() {
            "name" => string_or_null(k, v, 255)?,
            "visibility" => one_of(k, v, VISIBILITIES, false)?,
            "disk_format" => one_of(k, v, DISK_FORMATS, true)?,
            "container_format" => one_of(k, v, CONTAINER_FORMATS, true)?,
            "protected" | "os_hidden" => {
                if !v.is_boolean() {
                    return Err(schema_error(format!("{v} is not of type 'boolean' ({k})")));
                }
            }
            "min_disk" | "min_ram" => {
                if !v
                    .as_i64()
                    .is_some_and(|n| (0..=i64::from(i32::MAX)).contains(&n))
                {
                    return Err(schema_error(format!(
                        "{v} is not an integer from 0 to 2147483647 ({k})"
                    )));
                }
            }
            "tags" => {
                let Some(tags) = v.as_array() else {
                    return Err(schema_error(format!("{v} is not of type 'array' (tags)")));
                };
                if tags.len() > TAG_QUOTA {
                    return Err((
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("Maximum number of tags exceeded: {TAG_QUOTA}"),
                    ));
                }
                for t in tags {
                    match t.as_str() {
                        Some(s) if !s.is_empty() && s.chars().count() <= 255 => {}
                        _ => return Err(schema_error(format!("{t} is not a valid tag"))),
                    }
                }
            }
            // Set by the store, checked where they are written.
            "id" | "status" | "owner" | "size" | "virtual_size" | "checksum" | "os_hash_algo"
            | "os_hash_value" | "created_at" | "updated_at" | "file" | "self" | "schema" => {}
            _ => {
                custom += 1;
                if k.is_empty() || k.chars().count() > 255 || k.chars().any(char::is_control) {
                    return Err(schema_error(format!(
                        "property name {k:?} must be 1 to 255 printable characters"
                    )));
                }
                match v {
                    Value::String(s) if s.chars().count() <= 65_535 => {}
                    Value::String(_) => {
                        return Err(schema_error(format!(
                            "property {k} is longer than 65535 characters"
                        )));
                    }
                    other => {
                        return Err(schema_error(format!(
                            "{other} is not of type 'string' ({k})"
                        )));
                    }
                }
            }
        }
    }
    if custom > PROPERTY_QUOTA {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Maximum number of image properties exceeded: {PROPERTY_QUOTA}"),
        ));
    }
    Ok(())
}
