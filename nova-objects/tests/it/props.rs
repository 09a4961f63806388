//! Property tests: every class round-trips (JSON and MessagePack), every
//! backport to every declared version decodes as that version, and no input
//! makes a decoder panic.

use nova_objects::{ObjVersion, registry};
use proptest::prelude::*;
use serde_json::Value;

use crate::sample::sample_object;

fn all_samples(seed: u64) -> Vec<Value> {
    registry()
        .classes()
        .into_iter()
        .filter_map(|c| sample_object(c, seed, 3))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn every_object_round_trips(seed in 0u64..10_000) {
        for prim in all_samples(seed) {
            let obj = registry().decode(prim.clone())
                .unwrap_or_else(|e| panic!("{}: {e}\n{prim}", prim["nova_object.name"]));
            prop_assert_eq!(&obj.to_value(), &prim);
            let bytes = obj.to_msgpack().unwrap();
            prop_assert_eq!(&registry().decode_msgpack(&bytes).unwrap().to_value(), &prim);
        }
    }

    #[test]
    fn every_backport_is_readable_at_its_version(seed in 0u64..10_000) {
        for prim in all_samples(seed) {
            let reg = registry();
            let class = reg.class_of(&prim).unwrap();
            let obj = reg.decode(prim.clone()).unwrap();
            for minor in 0..=class.version.minor {
                let target = ObjVersion::new(class.version.major, minor);
                let mut manifest = class.tree_versions();
                manifest.insert(class.name.to_owned(), target);
                let old = match obj.to_value_at(target, Some(&manifest)) {
                    Ok(old) => old,
                    // A value that did not exist at that version (nova refuses too).
                    Err(nova_objects::Error::ObjectAction { reason, .. })
                        if reason.contains("not supported in version")
                            || reason.contains("Unable to backport") => continue,
                    Err(e) => panic!("{} to {target}: {e}", class.name),
                };
                let tv = target.to_string();
                prop_assert_eq!(old["nova_object.version"].as_str(), Some(tv.as_str()));
                // No field newer than the target survives (keys that are not
                // fields any more, like InstanceGroup's `policies`, come from
                // the class's conversions).
                for (k, _) in old["nova_object.data"].as_object().unwrap() {
                    if let Some(f) = class.field(k) {
                        prop_assert!(f.since <= target, "{}.{k} at {target}", class.name);
                    }
                }
                let back = reg.decode(old.clone()).unwrap();
                let mut expected = old.clone();
                if let Some(Value::Object(d)) = expected.get_mut("nova_object.data") {
                    d.retain(|k, _| class.field(k).is_some());
                }
                prop_assert_eq!(back.to_value(), expected);
            }
        }
    }

    #[test]
    fn arbitrary_json_never_panics(s in ".{0,200}") {
        if let Ok(v) = serde_json::from_str::<Value>(&s) {
            let _ = registry().decode(v);
        }
    }

    #[test]
    fn arbitrary_msgpack_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = registry().decode_msgpack(&b);
        let _ = nova_objects::primitive::from_msgpack::<nova_objects::Flavor>(&b);
    }

    #[test]
    fn mutated_primitives_never_panic(seed in 0u64..1000, which in 0usize..64, junk in prop_oneof![
        Just(Value::Null), Just(Value::from(-1)), Just(Value::from("x")), Just(Value::from(1.5)),
        Just(serde_json::json!([1, "a"])), Just(serde_json::json!({"nova_object.name": "Flavor"}))]) {
        for mut prim in all_samples(seed) {
            if let Some(Value::Object(d)) = prim.get_mut("nova_object.data") {
                let keys: Vec<String> = d.keys().cloned().collect();
                if !keys.is_empty() {
                    d.insert(keys[which % keys.len()].clone(), junk.clone());
                }
            }
            let _ = registry().decode(prim);
        }
    }
}
