//! Backports: OVO's `obj_make_compatible` / `obj_make_compatible_from_manifest`
//! applied to a primitive.
//!
//! The class's own conversions run, then fields added after the target
//! version are dropped (each field declares the version that added it), then
//! child objects are backported: to the version the manifest names when
//! one is given (children it does not name are left alone), else by the
//! field's `obj_relationships`; a child field without either is an
//! `ObjectActionError` ("No rule for ..."), as in OVO.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::object::{Manifest, ObjectClass};
use crate::primitive::{CHANGES_KEY, DATA_KEY, VERSION_KEY};
use crate::version::ObjVersion;

fn version_of(v: &Value, class: &ObjectClass) -> Result<ObjVersion> {
    match v.get(VERSION_KEY).and_then(Value::as_str) {
        Some(s) => s.parse(),
        None => Ok(class.version),
    }
}

/// Backports primitive `v` of `class` to `target` (and its children per
/// `manifest`).
pub fn backport(
    v: &mut Value,
    class: &'static ObjectClass,
    target: ObjVersion,
    manifest: Option<&Manifest>,
) -> Result<()> {
    let current = version_of(v, class)?;
    if target > current || target.major != current.major {
        return Err(Error::InvalidTargetVersion {
            objname: class.name.to_owned(),
            target,
            current,
        });
    }
    if target == current && manifest.is_none() {
        return Ok(());
    }
    let Some(Value::Object(data)) = v.get_mut(DATA_KEY) else {
        return Err(Error::InvalidPrimitive(format!(
            "{} primitive without data",
            class.name
        )));
    };
    // The class's conversions see the fields they convert before newer
    // fields are dropped (nova's obj_make_compatible pops as it converts).
    if let Some(compat) = class.compat {
        compat(data, target)?;
    }
    for f in class.fields {
        if f.since > target {
            data.remove(f.name);
        }
    }
    for f in class.fields {
        let Some(child) = (f.child)() else { continue };
        let Some(value) = data.get_mut(f.name) else {
            continue;
        };
        let child_target = if let Some(m) = manifest {
            match m.get(child.name) {
                Some(v) => *v,
                None => continue,
            }
        } else if !f.rel.is_empty() {
            match f.rel.iter().rev().find(|(mine, _)| *mine <= target) {
                Some((_, c)) => *c,
                None => {
                    data.remove(f.name);
                    continue;
                }
            }
        } else {
            return Err(Error::ObjectAction {
                action: "obj_make_compatible".to_owned(),
                reason: format!("No rule for {}", f.name),
            });
        };
        match value {
            Value::Array(items) => {
                for item in items {
                    backport_child(item, child, child_target, manifest)?;
                }
            }
            Value::Null => {}
            item => backport_child(item, child, child_target, manifest)?,
        }
    }
    if let Value::Object(top) = v {
        top.insert(VERSION_KEY.to_owned(), Value::String(target.to_string()));
        let data_keys: Vec<String> = match top.get(DATA_KEY) {
            Some(Value::Object(d)) => d.keys().cloned().collect(),
            _ => Vec::new(),
        };
        if let Some(Value::Array(changes)) = top.get_mut(CHANGES_KEY) {
            changes.retain(|c| c.as_str().is_some_and(|c| data_keys.iter().any(|k| k == c)));
            if changes.is_empty() {
                top.remove(CHANGES_KEY);
            }
        }
    }
    Ok(())
}

fn backport_child(
    item: &mut Value,
    child: &'static ObjectClass,
    target: ObjVersion,
    manifest: Option<&Manifest>,
) -> Result<()> {
    // A child already at or below the target (sent by an older peer) stays.
    if version_of(item, child)? < target {
        return Ok(());
    }
    backport(item, child, target, manifest)
}

/// OVO's `raise_on_too_new_values`: `field` holding one of `values` cannot
/// be sent to a peer at `target`.
pub fn refuse_new_values(
    data: &serde_json::Map<String, Value>,
    target: ObjVersion,
    field: &str,
    values: &[&str],
) -> Result<()> {
    if let Some(Value::String(v)) = data.get(field)
        && values.contains(&v.as_str())
    {
        return Err(Error::ObjectAction {
            action: "obj_make_compatible".to_owned(),
            reason: format!(
                "{field}={v} not supported in version ({}, {})",
                target.major, target.minor
            ),
        });
    }
    Ok(())
}
