//! The primitive form (`nova_object.name`, `.namespace`, `.version`,
//! `.data`, `.changes`) written and read straight through serde, with no
//! intermediate tree, so JSON and MessagePack cost one pass.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::object::VersionedObject;
use crate::version::ObjVersion;

/// Key of the object name.
pub const NAME_KEY: &str = "nova_object.name";
/// Key of the namespace.
pub const NAMESPACE_KEY: &str = "nova_object.namespace";
/// Key of the version.
pub const VERSION_KEY: &str = "nova_object.version";
/// Key of the field data.
pub const DATA_KEY: &str = "nova_object.data";
/// Key of the changed-field list.
pub const CHANGES_KEY: &str = "nova_object.changes";
/// Nova's project namespace.
pub const NAMESPACE: &str = "nova";

struct Data<'a, T>(&'a T);

impl<T: VersionedObject> Serialize for Data<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let n = self.0.obj_meta().set.len();
        let mut map = s.serialize_map(Some(n))?;
        self.0.obj_encode_data(&mut map)?;
        map.end()
    }
}

struct Changes<T>(PhantomData<T>, crate::meta::FieldSet);

impl<T: VersionedObject> Serialize for Changes<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let fields = T::obj_class().fields;
        s.collect_seq(
            self.1
                .iter()
                .filter_map(|i| fields.get(i as usize).map(|f| f.name)),
        )
    }
}

/// Writes `obj` as its primitive.
pub fn serialize_object<T: VersionedObject, S: Serializer>(
    obj: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let changes = obj.obj_what_changed().intersection(obj.obj_meta().set);
    let mut map = s.serialize_map(Some(if changes.is_empty() { 4 } else { 5 }))?;
    map.serialize_entry(NAME_KEY, T::NAME)?;
    map.serialize_entry(NAMESPACE_KEY, NAMESPACE)?;
    map.serialize_entry(VERSION_KEY, &VersionStr(obj.obj_version()))?;
    map.serialize_entry(DATA_KEY, &Data(obj))?;
    if !changes.is_empty() {
        map.serialize_entry(CHANGES_KEY, &Changes::<T>(PhantomData, changes))?;
    }
    map.end()
}

struct VersionStr(ObjVersion);

impl Serialize for VersionStr {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

enum Key {
    Name,
    Namespace,
    Version,
    Data,
    Changes,
    Other,
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a primitive key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Key, E> {
        Ok(match v {
            NAME_KEY => Key::Name,
            NAMESPACE_KEY => Key::Namespace,
            VERSION_KEY => Key::Version,
            DATA_KEY => Key::Data,
            CHANGES_KEY => Key::Changes,
            _ => Key::Other,
        })
    }
}

struct FieldKeySeed<T>(PhantomData<T>);

impl<'de, T: VersionedObject> DeserializeSeed<'de> for FieldKeySeed<T> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<T: VersionedObject> Visitor<'_> for FieldKeySeed<T> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(T::obj_field_index(v))
    }
}

/// A string read without copying when the input allows it (MessagePack
/// and JSON without escapes do).
struct Text<'de>(std::borrow::Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// `nova_object.changes` read straight into a field set (names this
/// class does not have are ignored).
struct ChangesSeed<T>(PhantomData<T>);

impl<'de, T: VersionedObject> DeserializeSeed<'de> for ChangesSeed<T> {
    type Value = crate::meta::FieldSet;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: VersionedObject> Visitor<'de> for ChangesSeed<T> {
    type Value = crate::meta::FieldSet;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of field names")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(crate::meta::FieldSet::default())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut set = crate::meta::FieldSet::default();
        while let Some(i) = seq.next_element_seed(FieldKeySeed::<T>(PhantomData))? {
            if let Some(i) = i {
                set.insert(i as u32);
            }
        }
        Ok(set)
    }
}

struct DataSeed<'a, T>(&'a mut T);

impl<'de, T: VersionedObject> DeserializeSeed<'de> for DataSeed<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: VersionedObject> Visitor<'de> for DataSeed<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the data of a {} primitive", T::NAME)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(idx) = map.next_key_seed(FieldKeySeed::<T>(PhantomData))? {
            match idx {
                // Unknown keys are ignored, as OVO does.
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(i) => {
                    let name = T::obj_class().fields.get(i).map(|f| f.name).unwrap_or("?");
                    self.0
                        .obj_decode_field(i, &mut map)
                        .map_err(|e: A::Error| {
                            de::Error::custom(format_args!("{}.{name}: {e}", T::NAME))
                        })?;
                }
            }
        }
        Ok(())
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: VersionedObject> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} object primitive", T::NAME)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<T, A::Error> {
        let mut obj = T::default();
        let mut name: Option<Text<'de>> = None;
        let mut namespace: Option<Text<'de>> = None;
        let mut version: Option<Text<'de>> = None;
        let mut changes = crate::meta::FieldSet::default();
        let mut data = false;
        while let Some(k) = map.next_key_seed(KeySeed)? {
            match k {
                Key::Name => name = Some(map.next_value()?),
                Key::Namespace => namespace = Some(map.next_value()?),
                Key::Version => version = Some(map.next_value()?),
                Key::Changes => changes = map.next_value_seed(ChangesSeed::<T>(PhantomData))?,
                Key::Data => {
                    map.next_value_seed(DataSeed(&mut obj))?;
                    data = true;
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let name = name.ok_or_else(|| de::Error::missing_field(NAME_KEY))?.0;
        if name != T::NAME {
            return Err(de::Error::custom(format_args!(
                "expected a {} primitive, got {name}",
                T::NAME
            )));
        }
        match namespace.as_ref().map(|n| &*n.0) {
            Some(NAMESPACE) => {}
            Some(other) => {
                return Err(de::Error::custom(Error::UnsupportedObject(format!(
                    "{name} (namespace {other})"
                ))));
            }
            None => return Err(de::Error::missing_field(NAMESPACE_KEY)),
        }
        let version = version
            .ok_or_else(|| de::Error::missing_field(VERSION_KEY))?
            .0;
        let v: ObjVersion = version.parse().map_err(de::Error::custom)?;
        if !v.readable_by(T::VERSION) {
            return Err(de::Error::custom(Error::IncompatibleObjectVersion {
                objname: name.into_owned(),
                objver: version.into_owned(),
                supported: T::VERSION,
            }));
        }
        if !data {
            return Err(de::Error::missing_field(DATA_KEY));
        }
        let meta = obj.obj_meta_mut();
        if v != T::VERSION {
            meta.version = Some(v);
        }
        for i in changes.iter() {
            meta.changed.insert(i);
        }
        Ok(obj)
    }
}

/// Reads `T` from its primitive.
pub fn deserialize_object<'de, T: VersionedObject, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<T, D::Error> {
    d.deserialize_map(ObjectVisitor(PhantomData))
}

/// Decodes a JSON primitive with typed errors (version and namespace
/// problems come back as their OVO errors).
pub fn from_value<T: VersionedObject>(v: &Value) -> Result<T> {
    crate::registry::check_versions(v)?;
    T::deserialize(v).map_err(|e| Error::InvalidPrimitive(e.to_string()))
}

/// [`from_value`] taking the primitive: its strings and maps move into
/// the object instead of being copied (a store's reads).
pub fn from_value_owned<T: VersionedObject>(v: Value) -> Result<T> {
    crate::registry::check_versions(&v)?;
    T::deserialize(v).map_err(|e| Error::InvalidPrimitive(e.to_string()))
}

/// Encodes an object (or anything serializable holding objects) as MessagePack.
pub fn to_msgpack<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>> {
    // Most primitives are a few KiB: start there rather than doubling up to it.
    let mut buf = Vec::with_capacity(4096);
    rmp_serde::encode::write(&mut buf, v).map_err(|e| Error::InvalidPrimitive(e.to_string()))?;
    Ok(buf)
}

/// Decodes MessagePack written by [`to_msgpack`] (or a Python peer's msgpack).
pub fn from_msgpack<T: VersionedObject>(b: &[u8]) -> Result<T> {
    rmp_serde::from_slice(b).map_err(|e| Error::InvalidPrimitive(e.to_string()))
}
