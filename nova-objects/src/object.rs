//! The versioned-object trait and the static description of each class.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeOwned, MapAccess};
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::field::FieldKind;
use crate::meta::{FieldSet, ObjectMeta};
use crate::registry::AnyObject;
use crate::version::ObjVersion;

/// Object name → version: what a peer knows (OVO's version manifest).
pub type Manifest = BTreeMap<String, ObjVersion>;

/// One field of a class.
#[derive(Debug)]
pub struct FieldInfo {
    /// Key in the primitive's data.
    pub name: &'static str,
    /// The object version that added the field.
    pub since: ObjVersion,
    /// Whether `null` is a valid value.
    pub nullable: bool,
    /// The OVO type.
    pub kind: FieldKind,
    /// The child class for object fields (and lists of objects).
    pub child: fn() -> Option<&'static ObjectClass>,
    /// OVO `obj_relationships` for this child: `(my version, child version)`, oldest first.
    pub rel: &'static [(ObjVersion, ObjVersion)],
}

/// Extra backport conversions of a class (beyond dropping fields newer
/// than the target), applied to the primitive's data. An error means the
/// value cannot be expressed at that version (OVO `ObjectActionError`).
pub type CompatFn = fn(&mut Map<String, Value>, ObjVersion) -> Result<()>;

/// Everything known about a class at run time: the registry holds one per
/// object type.
pub struct ObjectClass {
    /// `nova_object.name`.
    pub name: &'static str,
    /// The version this build implements.
    pub version: ObjVersion,
    /// Fields in declaration order.
    pub fields: &'static [FieldInfo],
    /// Conversions for older versions.
    pub compat: Option<CompatFn>,
    /// Decodes a JSON primitive into the typed object.
    pub decode_value: fn(Value) -> Result<Box<dyn AnyObject>>,
    /// Decodes a MessagePack primitive into the typed object.
    pub decode_msgpack: fn(&[u8]) -> Result<Box<dyn AnyObject>>,
}

impl fmt::Debug for ObjectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectClass({} {})", self.name, self.version)
    }
}

impl ObjectClass {
    /// The field named `key`.
    pub fn field(&self, key: &str) -> Option<&'static FieldInfo> {
        self.fields.iter().find(|f| f.name == key)
    }

    /// OVO `obj_tree_get_versions`: this class and every class reachable
    /// through its object fields, at the versions this build knows.
    pub fn tree_versions(&'static self) -> Manifest {
        let mut out = Manifest::new();
        let mut todo = vec![self];
        while let Some(c) = todo.pop() {
            if out.insert(c.name.to_owned(), c.version).is_some() {
                continue;
            }
            todo.extend(c.fields.iter().filter_map(|f| (f.child)()));
        }
        out
    }
}

/// A versioned object: implemented by `#[nova_object]`, never by hand.
pub trait VersionedObject:
    Default + serde::Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// `nova_object.name`.
    const NAME: &'static str;
    /// The version this build implements.
    const VERSION: ObjVersion;

    /// The class description.
    fn obj_class() -> &'static ObjectClass;
    /// Bookkeeping (set and changed fields).
    fn obj_meta(&self) -> &ObjectMeta;
    /// Bookkeeping, mutable.
    fn obj_meta_mut(&mut self) -> &mut ObjectMeta;
    /// Index of the field with primitive key `key`.
    fn obj_field_index(key: &str) -> Option<usize>;
    /// Object fields whose value has changes of its own.
    fn obj_child_changes(&self) -> FieldSet;
    /// OVO `obj_reset_changes(recursive=True)`.
    fn obj_reset_changes_recursive(&mut self);
    /// Writes the set fields into the primitive's data map.
    fn obj_encode_data<M: SerializeMap>(&self, map: &mut M) -> std::result::Result<(), M::Error>;
    /// Reads field `index` from the data map.
    fn obj_decode_field<'de, A: MapAccess<'de>>(
        &mut self,
        index: usize,
        map: &mut A,
    ) -> std::result::Result<(), A::Error>;

    /// The version of this instance: the class version, or the older one
    /// it was decoded at.
    fn obj_version(&self) -> ObjVersion {
        self.obj_meta().version.unwrap_or(Self::VERSION)
    }

    /// OVO `obj_attr_is_set`.
    fn obj_attr_is_set(&self, key: &str) -> bool {
        Self::obj_field_index(key).is_some_and(|i| self.obj_meta().is_set(i as u32))
    }

    /// OVO `obj_what_changed`: own changes plus object fields whose object
    /// has changes.
    fn obj_what_changed(&self) -> FieldSet {
        self.obj_meta().changed.union(self.obj_child_changes())
    }

    /// `obj_what_changed` as field names.
    fn obj_what_changed_names(&self) -> Vec<&'static str> {
        let fields = Self::obj_class().fields;
        self.obj_what_changed()
            .iter()
            .filter_map(|i| fields.get(i as usize).map(|f| f.name))
            .collect()
    }

    /// OVO `obj_reset_changes()` (this object only).
    fn obj_reset_changes(&mut self) {
        self.obj_meta_mut().clear_changes();
    }

    /// Marks field `key` changed (OVO: assigning it again).
    fn obj_mark_changed(&mut self, key: &str) -> bool {
        match Self::obj_field_index(key) {
            Some(i) if self.obj_meta().is_set(i as u32) => {
                self.obj_meta_mut().mark(i as u32);
                true
            }
            _ => false,
        }
    }

    /// The primitive at this object's version.
    fn obj_to_primitive(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// OVO `obj_to_primitive(target_version, version_manifest)`: the
    /// primitive an older peer understands.
    fn obj_to_primitive_at(
        &self,
        target: ObjVersion,
        manifest: Option<&Manifest>,
    ) -> Result<Value> {
        let mut v = self.obj_to_primitive();
        crate::compat::backport(&mut v, Self::obj_class(), target, manifest)?;
        Ok(v)
    }

    /// OVO `obj_from_primitive`.
    fn obj_from_primitive(v: &Value) -> Result<Self> {
        crate::primitive::from_value(v)
    }

    /// This class and its children at the versions we know.
    fn obj_tree_versions() -> Manifest {
        Self::obj_class().tree_versions()
    }

    /// The value of a required field, or `FieldNotSet`.
    fn obj_require(&self, key: &'static str) -> Result<()> {
        if self.obj_attr_is_set(key) {
            Ok(())
        } else {
            Err(Error::FieldNotSet {
                objname: Self::NAME,
                field: key,
            })
        }
    }
}
