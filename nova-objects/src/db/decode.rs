//! Rows decoded straight into objects: the object's serde reader fed the
//! row's fields as a primitive's map, without building the primitive
//! (a JSON map of every column, keyed by owned strings) and reading it
//! again. The fields are what [`row_to_primitive_at`] would put in that
//! map, so both give the same object.

use serde::de::value::MapDeserializer;
use serde::de::{IntoDeserializer, Visitor};
use serde_json::Value;

use crate::db::rows::Row;
use crate::db::sql::{row_fields, row_to_primitive_at};
use crate::db::tables::Table;
use crate::error::{Error, Result};
use crate::object::VersionedObject;
use crate::primitive::{DATA_KEY, NAME_KEY, NAMESPACE, NAMESPACE_KEY, VERSION_KEY};

/// What a read decodes a row's object into: its primitive, or the object.
pub(crate) trait FromRow: Sized {
    /// The object whose columns start at `base` of `row`.
    fn from_row<R: Row>(t: &Table, row: &mut R, base: usize) -> Result<Self>;
}

impl FromRow for Value {
    fn from_row<R: Row>(t: &Table, row: &mut R, base: usize) -> Result<Self> {
        row_to_primitive_at(t, row, base)
    }
}

impl<T: VersionedObject> FromRow for T {
    fn from_row<R: Row>(t: &Table, row: &mut R, base: usize) -> Result<Self> {
        let mut fields = Vec::with_capacity(t.columns.len());
        row_fields(t, row, base, |c, v| {
            // A nested object newer than this build is the typed error
            // reading its primitive gives.
            if matches!(v, Value::Object(_) | Value::Array(_)) {
                crate::registry::check_versions(&v)?;
            }
            fields.push((c, v));
            Ok(())
        })?;
        let class = t.class();
        let parts = [
            (NAME_KEY, Part::Text(class.name.to_owned())),
            (NAMESPACE_KEY, Part::Text(NAMESPACE.to_owned())),
            (VERSION_KEY, Part::Text(class.version.to_string())),
            (DATA_KEY, Part::Data(fields.into_iter())),
        ];
        T::deserialize(MapDeserializer::<_, serde_json::Error>::new(
            parts.into_iter(),
        ))
        .map_err(|e| Error::InvalidPrimitive(e.to_string()))
    }
}

/// A value of the primitive's outer map: a string, or the data map.
enum Part {
    Text(String),
    Data(std::vec::IntoIter<(&'static str, Value)>),
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for Part {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for Part {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, serde_json::Error> {
        match self {
            Part::Text(s) => s.into_deserializer().deserialize_any(v),
            Part::Data(fields) => MapDeserializer::new(fields).deserialize_any(v),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
