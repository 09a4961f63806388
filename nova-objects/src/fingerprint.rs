//! Fingerprints: `"VERSION-hash"` per class, where the hash covers each
//! field's name, OVO type, nullability and the version that added it (and
//! the versions of child classes). A checked-in table of them catches a
//! schema change made without a version bump.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::object::ObjectClass;

/// FNV-1a, 64 bits: stable across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The fingerprint of one class.
pub fn fingerprint(class: &ObjectClass) -> String {
    let mut canon = String::new();
    let mut fields: Vec<_> = class.fields.iter().collect();
    fields.sort_by_key(|f| f.name);
    for f in fields {
        let _ = write!(
            canon,
            "{}:{}:{}:{};",
            f.name,
            f.kind.name(),
            f.nullable,
            f.since
        );
        if let Some(child) = (f.child)() {
            let _ = write!(canon, "child={};", child.name);
        }
        for (a, b) in f.rel {
            let _ = write!(canon, "rel={a}>{b};");
        }
    }
    format!("{}-{:016x}", class.version, fnv1a(canon.as_bytes()))
}

/// Fingerprints of every registered class.
pub fn fingerprints() -> BTreeMap<&'static str, String> {
    crate::registry::registry()
        .classes()
        .into_iter()
        .map(|c| (c.name, fingerprint(c)))
        .collect()
}
