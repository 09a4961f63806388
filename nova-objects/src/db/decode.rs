//! Rows decoded straight into objects: the object's serde reader fed the
//! row's fields as a primitive's map, without building the primitive
//! (a JSON map of every column, keyed by owned strings) and reading it
//! again; a JSON column's text is parsed straight into its field. The
//! fields are what [`row_to_primitive_at`] would put in that map, so both
//! give the same object (and the same typed error for a nested object
//! newer than this build).

use serde::de::value::MapDeserializer;
use serde::de::{IntoDeserializer, Visitor};
use serde_json::Value;

use crate::db::rows::Row;
use crate::db::sql::{Cell, parse_json, row_cells, row_to_primitive_at};
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
        let mut cells = Vec::with_capacity(t.columns.len());
        row_cells(t, row, base, |c, cell| {
            cells.push((c, cell));
            Ok(())
        })?;
        let fields = cells.iter_mut().map(|(c, cell)| {
            let f = match cell {
                Cell::Value(v) => Field::Value(std::mem::take(v)),
                Cell::Json(s) => Field::Json(s.as_str()),
            };
            (*c, f)
        });
        let class = t.class();
        let parts = [
            (NAME_KEY, Part::Text(class.name)),
            (NAMESPACE_KEY, Part::Text(NAMESPACE)),
            (VERSION_KEY, Part::Version(class.version.to_string())),
            (DATA_KEY, Part::Data(fields)),
        ];
        let decoded = T::deserialize(MapDeserializer::<_, serde_json::Error>::new(
            parts.into_iter(),
        ));
        decoded.map_err(|e| {
            // The typed error of a nested object newer than this build
            // (or of a column holding what is not JSON), as reading the
            // primitive gives it; otherwise serde's.
            let nested = cells.iter().try_for_each(|(c, cell)| match cell {
                Cell::Json(s) => crate::registry::check_versions(&parse_json(t, c, s)?),
                Cell::Value(_) => Ok(()),
            });
            nested
                .err()
                .unwrap_or_else(|| Error::InvalidPrimitive(e.to_string()))
        })
    }
}

/// A value of the primitive's outer map: a string, or the data map.
enum Part<I> {
    Text(&'static str),
    Version(String),
    Data(I),
}

impl<'de, I> IntoDeserializer<'de, serde_json::Error> for Part<I>
where
    I: Iterator<Item = (&'static str, Field<'de>)>,
{
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de, I> serde::Deserializer<'de> for Part<I>
where
    I: Iterator<Item = (&'static str, Field<'de>)>,
{
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, serde_json::Error> {
        match self {
            Part::Text(s) => v.visit_str(s),
            Part::Version(s) => v.visit_string(s),
            Part::Data(fields) => MapDeserializer::new(fields).deserialize_any(v),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A field's value: read from its column, or a JSON column's text parsed
/// as the field's type asks (no [`Value`] in between).
enum Field<'a> {
    Value(Value),
    Json(&'a str),
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for Field<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// Each of the deserializer's methods: the column's value's, or the JSON
/// text's (all of it: trailing characters are an error).
macro_rules! by_kind {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* v: V) -> Result<V::Value, serde_json::Error> {
                match self {
                    Field::Value(x) => x.$method($($arg,)* v),
                    Field::Json(s) => {
                        let mut d = serde_json::Deserializer::from_str(s);
                        let out = (&mut d).$method($($arg,)* v)?;
                        d.end()?;
                        Ok(out)
                    }
                }
            }
        )*
    };
}

impl<'de> serde::Deserializer<'de> for Field<'de> {
    type Error = serde_json::Error;

    by_kind! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }
}
