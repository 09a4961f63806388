//! The registry of object classes: name → class, for decoding primitives
//! whose type is only known at run time (the RPC serializer, the
//! conductor's indirection endpoints, the `object_roundtrip` tool).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::object::{Manifest, ObjectClass, VersionedObject};
use crate::primitive::{DATA_KEY, NAME_KEY, NAMESPACE, NAMESPACE_KEY, VERSION_KEY};
use crate::version::ObjVersion;

/// An object whose type is known only at run time.
pub trait AnyObject: Send + Sync + fmt::Debug {
    /// Its class.
    fn class(&self) -> &'static ObjectClass;
    /// Its primitive (JSON form).
    fn to_value(&self) -> Value;
    /// Its primitive in MessagePack.
    fn to_msgpack(&self) -> Result<Vec<u8>>;
    /// Backported primitive.
    fn to_value_at(&self, target: ObjVersion, manifest: Option<&Manifest>) -> Result<Value>;
    /// For downcasting to the concrete type.
    fn as_any(&self) -> &dyn Any;
}

impl<T: VersionedObject + fmt::Debug> AnyObject for T {
    fn class(&self) -> &'static ObjectClass {
        T::obj_class()
    }
    fn to_value(&self) -> Value {
        self.obj_to_primitive()
    }
    fn to_msgpack(&self) -> Result<Vec<u8>> {
        crate::primitive::to_msgpack(self)
    }
    fn to_value_at(&self, target: ObjVersion, manifest: Option<&Manifest>) -> Result<Value> {
        self.obj_to_primitive_at(target, manifest)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Decoder installed in each class (`ObjectClass::decode_value`).
pub fn decode_value<T: VersionedObject + fmt::Debug>(v: Value) -> Result<Box<dyn AnyObject>> {
    Ok(Box::new(crate::primitive::from_value::<T>(&v)?))
}

/// Decoder installed in each class (`ObjectClass::decode_msgpack`).
pub fn decode_msgpack<T: VersionedObject + fmt::Debug>(b: &[u8]) -> Result<Box<dyn AnyObject>> {
    Ok(Box::new(crate::primitive::from_msgpack::<T>(b)?))
}

/// Name → class.
#[derive(Debug)]
pub struct Registry {
    classes: HashMap<&'static str, &'static ObjectClass>,
}

impl Registry {
    /// The class called `name`.
    pub fn get(&self, name: &str) -> Option<&'static ObjectClass> {
        self.classes.get(name).copied()
    }

    /// All classes, sorted by name.
    pub fn classes(&self) -> Vec<&'static ObjectClass> {
        let mut v: Vec<_> = self.classes.values().copied().collect();
        v.sort_by_key(|c| c.name);
        v
    }

    /// The class of a primitive, checking name and namespace.
    pub fn class_of(&self, v: &Value) -> Result<&'static ObjectClass> {
        let name = v
            .get(NAME_KEY)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::InvalidPrimitive(format!("no {NAME_KEY} key")))?;
        match v.get(NAMESPACE_KEY).and_then(Value::as_str) {
            Some(NAMESPACE) => {}
            other => {
                return Err(Error::UnsupportedObject(format!(
                    "{name} (namespace {})",
                    other.unwrap_or("missing")
                )));
            }
        }
        self.get(name)
            .ok_or_else(|| Error::UnsupportedObject(name.to_owned()))
    }

    /// Decodes a primitive of any registered class.
    pub fn decode(&self, v: Value) -> Result<Box<dyn AnyObject>> {
        let class = self.class_of(&v)?;
        (class.decode_value)(v)
    }

    /// Decodes MessagePack holding a primitive of any registered class.
    pub fn decode_msgpack(&self, b: &[u8]) -> Result<Box<dyn AnyObject>> {
        let v: Value =
            rmp_serde::from_slice(b).map_err(|e| Error::InvalidPrimitive(e.to_string()))?;
        let class = self.class_of(&v)?;
        (class.decode_msgpack)(b)
    }

    /// The version manifest for `name` (OVO `obj_tree_get_versions`).
    pub fn manifest_for(&self, name: &str) -> Option<Manifest> {
        self.get(name).map(ObjectClass::tree_versions)
    }
}

/// The registry of every object this crate defines.
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry {
        classes: crate::objects::all_classes()
            .into_iter()
            .map(|c| (c.name, c))
            .collect(),
    })
}

/// Checks every object primitive inside `v` against the versions this
/// build knows: the first one that is newer gives
/// `IncompatibleObjectVersion` (the cue to ask the sender for a backport).
pub fn check_versions(v: &Value) -> Result<()> {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(name)), Some(Value::String(ver))) =
                (m.get(NAME_KEY), m.get(VERSION_KEY))
                && let Some(class) = registry().get(name)
            {
                let parsed: ObjVersion = ver.parse()?;
                if !parsed.readable_by(class.version) {
                    return Err(Error::IncompatibleObjectVersion {
                        objname: name.clone(),
                        objver: ver.clone(),
                        supported: class.version,
                    });
                }
                if let Some(d) = m.get(DATA_KEY) {
                    return check_versions(d);
                }
                return Ok(());
            }
            m.values().try_for_each(check_versions)
        }
        Value::Array(a) => a.iter().try_for_each(check_versions),
        _ => Ok(()),
    }
}
