//! The object primitive decoder (`nova_objects::registry().decode` and
//! `decode_msgpack`: any registered class, by `nova_object.name`).

use nova_objects::{AnyObject, ObjVersion, registry};
use serde_json::Value;

/// A JSON primitive (what a Python peer sends inside an RPC message).
pub fn json(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = nova_objects::registry::check_versions(&v);
    if let Ok(obj) = registry().decode(v) {
        round_trip(obj.as_ref());
    }
}

/// A MessagePack primitive (the Rust-only codec).
pub fn msgpack(data: &[u8]) {
    if let Ok(obj) = registry().decode_msgpack(data) {
        round_trip(obj.as_ref());
    }
}

/// What we accepted, we can send on: its primitive decodes again (JSON
/// and MessagePack) to the same primitive, and it backports to every
/// older version of its class.
fn round_trip(obj: &dyn AnyObject) {
    let prim = obj.to_value();
    let again = registry()
        .decode(prim.clone())
        .unwrap_or_else(|e| panic!("our own primitive does not decode: {e}\n{prim}"));
    assert_eq!(again.to_value(), prim, "JSON round trip");
    let bytes = obj.to_msgpack().expect("a decoded object encodes");
    let again = registry()
        .decode_msgpack(&bytes)
        .unwrap_or_else(|e| panic!("our own MessagePack does not decode: {e}\n{prim}"));
    assert_eq!(again.to_value(), prim, "MessagePack round trip");
    let current = obj.class().version;
    for minor in 0..current.minor {
        let _ = obj.to_value_at(ObjVersion::new(current.major, minor), None);
    }
}
