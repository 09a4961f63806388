//! Field types: how each Rust type maps to an OVO field type and encodes
//! in a primitive.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

use chrono::{NaiveDateTime, TimeZone, Utc};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::ObjectClass;

/// Timestamps: OVO `DateTime` (always UTC here).
pub type DateTime = chrono::DateTime<Utc>;

/// A value that can be an object field.
///
/// `kind` is the OVO type as written in fingerprints (`Integer`,
/// `List(String)`, `Object(Flavor)`...); nullability is the field's, not
/// the type's, except inside containers (`Dict(String?)`).
pub trait FieldValue: Sized {
    /// The OVO type name.
    fn kind() -> String;
    /// Writes the field primitive.
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
    /// Reads the field primitive.
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
    /// The object class when this is an object (or a list/option of one).
    fn child_class() -> Option<&'static ObjectClass> {
        None
    }
    /// Whether this is an object with changes (OVO's `obj_what_changed`
    /// looks into object fields, not into lists of objects).
    fn has_changes(&self) -> bool {
        false
    }
    /// Recursively forgets changes in objects held by this value.
    fn reset_changes(&mut self) {}
}

/// Which OVO type a field has: from its Rust type, or named by the
/// declaration (`#[field(kind = "UUID")]`).
#[derive(Clone, Copy)]
pub enum FieldKind {
    /// The Rust type's `FieldValue::kind`.
    Of(fn() -> String),
    /// Named in the declaration.
    Named(&'static str),
}

impl FieldKind {
    /// The type name.
    pub fn name(&self) -> String {
        match self {
            FieldKind::Of(f) => f(),
            FieldKind::Named(n) => (*n).to_owned(),
        }
    }
}

impl fmt::Debug for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Serializes a field value through [`FieldValue::encode`].
#[derive(Debug)]
pub struct Enc<'a, T>(pub &'a T);

impl<T: FieldValue> Serialize for Enc<'_, T> {
    #[inline]
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.encode(s)
    }
}

/// Deserializes a field value through [`FieldValue::decode`].
#[derive(Debug)]
pub struct Dec<T>(pub T);

impl<'de, T: FieldValue> Deserialize<'de> for Dec<T> {
    #[inline]
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::decode(d).map(Dec)
    }
}

macro_rules! scalar {
    ($t:ty, $kind:literal) => {
        impl FieldValue for $t {
            fn kind() -> String {
                $kind.to_owned()
            }
            #[inline]
            fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.serialize(s)
            }
            #[inline]
            fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t>::deserialize(d)
            }
        }
    };
}

scalar!(i64, "Integer");
scalar!(bool, "Boolean");
scalar!(String, "String");

impl FieldValue for f64 {
    fn kind() -> String {
        "Float".to_owned()
    }
    #[inline]
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(*self)
    }
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // JSON peers may send 1 for 1.0; accept any number. NaN and the
        // infinities are refused: a JSON primitive cannot carry them (they
        // would go on as null and not decode again), and no nova Float
        // (an allocation ratio, an rxtx factor) means anything with them.
        let f = f64::deserialize(d)?;
        if f.is_finite() {
            Ok(f)
        } else {
            Err(de::Error::custom(format!(
                "a Float field must be a finite number, not {f}"
            )))
        }
    }
}

/// Free-form JSON (no OVO equivalent; used only where nova stores a blob).
impl FieldValue for Value {
    fn kind() -> String {
        "Any".to_owned()
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize(s)
    }
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` without going through a format string (the
/// common case of every primitive with timestamps); `None` for years
/// outside 0..=9999.
fn ovo_time(t: &DateTime) -> Option<[u8; 20]> {
    use chrono::{Datelike, Timelike};
    let y = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let mut b = *b"0000-00-00T00:00:00Z";
    let put = |b: &mut [u8; 20], at: usize, v: u32, n: usize| {
        let mut v = v;
        for i in (0..n).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut b, 0, y, 4);
    put(&mut b, 5, t.month(), 2);
    put(&mut b, 8, t.day(), 2);
    put(&mut b, 11, t.hour(), 2);
    put(&mut b, 14, t.minute(), 2);
    put(&mut b, 17, t.second().min(59), 2);
    Some(b)
}

/// Formats a timestamp as OVO does: seconds precision, `Z` for UTC.
pub fn format_datetime(t: &DateTime) -> String {
    match ovo_time(t) {
        Some(b) => b.iter().map(|c| *c as char).collect(),
        None => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

/// The exact OVO form `YYYY-MM-DDTHH:MM:SSZ`, parsed without chrono's
/// general parser.
fn parse_ovo_time(s: &str) -> Option<DateTime> {
    match date_time_prefix(s, b'T')? {
        (t, b"Z") => Some(Utc.from_utc_datetime(&t)),
        _ => None,
    }
}

/// The decimal number `b` spells (ASCII digits only; `None` otherwise).
pub(crate) fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit()
            .then(|| acc.checked_mul(10)?.checked_add(u32::from(c - b'0')))
            .flatten()
    })
}

/// `YYYY-MM-DD<sep>HH:MM:SS` at the start of `s` (digits where it has
/// them, a valid date and time), and the bytes after it.
pub(crate) fn date_time_prefix(s: &str, sep: u8) -> Option<(chrono::NaiveDateTime, &[u8])> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != sep
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    let date = chrono::NaiveDate::from_ymd_opt(year, digits(&b[5..7])?, digits(&b[8..10])?)?;
    let t = date.and_hms_opt(
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    )?;
    Some((t, &b[19..]))
}

/// Parses the ISO 8601 forms peers send (`Z`, `+00:00`, fractions, naive = UTC).
pub fn parse_datetime(s: &str) -> Option<DateTime> {
    if let Some(t) = parse_ovo_time(s) {
        return Some(t);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    None
}

impl FieldValue for DateTime {
    fn kind() -> String {
        "DateTime".to_owned()
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match ovo_time(self) {
            // ASCII digits and punctuation only.
            Some(b) => s.serialize_str(std::str::from_utf8(&b).unwrap_or_default()),
            None => s.collect_str(&self.format("%Y-%m-%dT%H:%M:%SZ")),
        }
    }
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DateTime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 8601 timestamp")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DateTime, E> {
                parse_datetime(v).ok_or_else(|| E::custom(format!("invalid timestamp {v:?}")))
            }
        }
        d.deserialize_str(V)
    }
}

impl<T: FieldValue> FieldValue for Option<T> {
    fn kind() -> String {
        T::kind()
    }
    #[inline]
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Some(v) => v.encode(s),
            None => s.serialize_none(),
        }
    }
    #[inline]
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<Dec<T>>::deserialize(d)?.map(|x| x.0))
    }
    fn child_class() -> Option<&'static ObjectClass> {
        T::child_class()
    }
    fn has_changes(&self) -> bool {
        self.as_ref().is_some_and(T::has_changes)
    }
    fn reset_changes(&mut self) {
        if let Some(v) = self {
            v.reset_changes()
        }
    }
}

impl<T: FieldValue> FieldValue for Vec<T> {
    fn kind() -> String {
        format!("List({})", T::kind())
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for v in self {
            seq.serialize_element(&Enc(v))?;
        }
        seq.end()
    }
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: FieldValue> Visitor<'de> for V<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(Dec(v)) = seq.next_element::<Dec<T>>()? {
                    out.push(v);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
    fn child_class() -> Option<&'static ObjectClass> {
        T::child_class()
    }
    fn reset_changes(&mut self) {
        self.iter_mut().for_each(T::reset_changes)
    }
}

impl<T: FieldValue + Ord> FieldValue for BTreeSet<T> {
    fn kind() -> String {
        format!("Set({})", T::kind())
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for v in self {
            seq.serialize_element(&Enc(v))?;
        }
        seq.end()
    }
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<T>::decode(d)?.into_iter().collect())
    }
}

impl<T: FieldValue> FieldValue for BTreeMap<String, T> {
    fn kind() -> String {
        format!("Dict({})", T::kind())
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, &Enc(v))?;
        }
        map.end()
    }
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: FieldValue> Visitor<'de> for V<T> {
            type Value = BTreeMap<String, T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dict")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, Dec(v))) = m.next_entry::<String, Dec<T>>()? {
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
    fn child_class() -> Option<&'static ObjectClass> {
        T::child_class()
    }
}

/// An object this crate does not model field by field (a NUMA topology,
/// a tag list...): its primitive is kept as received and sent back
/// unchanged, so objects holding one still round-trip exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawObject(pub Value);

impl FieldValue for RawObject {
    fn kind() -> String {
        "Object".to_owned()
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v.get(crate::primitive::NAME_KEY) {
            Some(Value::String(_)) => Ok(RawObject(v)),
            _ => Err(de::Error::custom("expected an object primitive")),
        }
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.encode(s)
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::decode(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_use_ovo_format_and_accept_common_forms() {
        let t = parse_datetime("2025-01-02T03:04:05Z").unwrap();
        assert_eq!(format_datetime(&t), "2025-01-02T03:04:05Z");
        for s in [
            "2025-01-02T03:04:05+00:00",
            "2025-01-02T03:04:05.123456Z",
            "2025-01-02T03:04:05",
            "2025-01-02 03:04:05.5",
        ] {
            let p = parse_datetime(s).unwrap();
            assert_eq!(format_datetime(&p), "2025-01-02T03:04:05Z", "{s}");
        }
        assert_eq!(
            format_datetime(&parse_datetime("2025-01-02T05:04:05+02:00").unwrap()),
            "2025-01-02T03:04:05Z"
        );
        assert!(parse_datetime("yesterday").is_none());
        assert!(parse_datetime("2025-13-02T03:04:05Z").is_none());
        assert!(parse_datetime("2025-02-30T03:04:05Z").is_none());
    }

    #[test]
    fn fast_timestamp_path_agrees_with_chrono() {
        for secs in [
            0i64,
            1,
            951_782_400,
            1_700_000_000,
            4_102_444_799,
            -62_135_596_800,
            253_402_300_799,
            253_402_300_800,
        ] {
            let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            let want = t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            assert_eq!(format_datetime(&t), want, "{secs}");
            let enc = serde_json::to_string(&Enc(&t)).unwrap();
            assert_eq!(enc, format!("\"{want}\""));
            if want.len() == 20 {
                assert_eq!(parse_datetime(&want), Some(t), "{want}");
            }
        }
    }

    #[test]
    fn kinds_follow_ovo_names() {
        assert_eq!(<Vec<String>>::kind(), "List(String)");
        assert_eq!(<BTreeMap<String, Option<String>>>::kind(), "Dict(String)");
        assert_eq!(<BTreeSet<i64>>::kind(), "Set(Integer)");
        assert_eq!(<Option<DateTime>>::kind(), "DateTime");
    }
}
