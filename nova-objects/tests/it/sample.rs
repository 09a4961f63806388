//! Sample primitives for every registered class, built from the class's
//! field table (types, nullability), with values nova's field coercion
//! accepts. Used by the property tests and the oracle comparison.

use nova_objects::{ObjectClass, registry};
use serde_json::{Map, Value, json};

/// Splits `A(B,C)` arguments at top-level commas.
fn split_args(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn inner(k: &str) -> Option<&str> {
    k.strip_suffix(')')
        .and_then(|k| k.split_once('('))
        .map(|(_, a)| a)
}

/// A value of OVO type `kind` (`seed` varies it).
pub(crate) fn sample_kind(kind: &str, seed: u64, depth: u32) -> Option<Value> {
    let (kind, nullable) = match kind.strip_suffix('?') {
        Some(k) => (k, true),
        None => (kind, false),
    };
    if nullable && seed.is_multiple_of(5) {
        return Some(Value::Null);
    }
    Some(
        if let Some(a) = kind.strip_prefix("List(").and(inner(kind)) {
            if depth == 0 && a.starts_with("Object(") {
                return Some(json!([]));
            }
            json!([
                sample_kind(a, seed + 1, depth)?,
                sample_kind(a, seed + 2, depth)?
            ])
        } else if let Some(a) = kind.strip_prefix("Set(").and(inner(kind)) {
            // One element: a set's order on the wire is arbitrary.
            json!([sample_kind(a, seed + 1, depth)?])
        } else if let Some(a) = kind.strip_prefix("Dict(").and(inner(kind)) {
            json!({ format!("k{seed}"): sample_kind(a, seed + 1, depth)? })
        } else if let Some(a) = kind.strip_prefix("Enum(").and(inner(kind)) {
            let vals = split_args(a);
            Value::from(vals[(seed as usize) % vals.len()])
        } else if let Some(name) = kind.strip_prefix("Object(").and(inner(kind)) {
            let class = registry().get(name)?;
            if depth == 0 {
                return None;
            }
            sample_object(class, seed, depth - 1)?
        } else {
            match kind {
                "Integer" | "NonNegativeInteger" => json!(seed % 1000 + 1),
                "Float" | "NonNegativeFloat" => json!((seed % 100) as f64 + 0.5),
                "Boolean" | "FlexibleBoolean" => json!(seed.is_multiple_of(2)),
                "DateTime" => json!(format!("2025-01-{:02}T03:04:05Z", seed % 28 + 1)),
                "UUID" => json!(format!(
                    "6a1f0c3e-{:04x}-4d2b-8c1a-0123456789ab",
                    seed % 0xffff
                )),
                "IPAddress" | "IPV4Address" => json!(format!("192.0.2.{}", seed % 250 + 1)),
                "IPV6Address" => json!(format!("2001:db8::{:x}", seed % 250 + 1)),
                "NetworkModel" => json!("[]"),
                "VersionPredicate" => json!(">=1.0"),
                "String" | "SensitiveString" => json!(format!("s{seed}")),
                _ => return None,
            }
        },
    )
}

/// A full primitive of `class` (every field we can build a value for).
pub(crate) fn sample_object(class: &ObjectClass, seed: u64, depth: u32) -> Option<Value> {
    let mut data = Map::new();
    for (i, f) in class.fields.iter().enumerate() {
        let kind = f.kind.name();
        let kind = if f.nullable { format!("{kind}?") } else { kind };
        if let Some(v) = sample_kind(&kind, seed.wrapping_mul(31).wrapping_add(i as u64), depth) {
            data.insert(f.name.to_owned(), v);
        }
    }
    Some(json!({
        "nova_object.name": class.name,
        "nova_object.namespace": "nova",
        "nova_object.version": class.version.to_string(),
        "nova_object.data": data,
    }))
}
