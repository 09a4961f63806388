//! Real nova 34 primitives (written by `shared/oracles/objects_samples.py`
//! through nova's own serializer) decode, re-encode equal, and backport to
//! exactly what nova's conductor produces.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use nova_objects::{
    ComputeNode, Flavor, Manifest, ObjVersion, RequestSpec, VersionedObject, registry,
};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// Primitive equality with `nova_object.changes` compared as a set, at
/// every level (nova's change lists come from Python sets).
fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    if k == "nova_object.changes"
                        && let Value::Array(a) = v
                    {
                        let set: BTreeSet<String> = a
                            .iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect();
                        return (k.clone(), Value::from(set.into_iter().collect::<Vec<_>>()));
                    }
                    (k.clone(), normalise(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

fn assert_same(ours: &Value, theirs: &Value) {
    assert_eq!(
        normalise(ours),
        normalise(theirs),
        "\nours:   {}\ntheirs: {}",
        serde_json::to_string(ours).unwrap(),
        serde_json::to_string(theirs).unwrap()
    );
}

fn roundtrip<T: VersionedObject>(file: &str) -> T {
    let prim = fixture(file)["primitive"].clone();
    let obj = T::obj_from_primitive(&prim).unwrap();
    assert_same(&obj.obj_to_primitive(), &prim);
    // Through MessagePack as well.
    let bytes = nova_objects::primitive::to_msgpack(&obj).unwrap();
    let back: T = nova_objects::primitive::from_msgpack(&bytes).unwrap();
    assert_same(&back.obj_to_primitive(), &prim);
    // And through the registry (type known only at run time).
    let dynamic = registry().decode(prim.clone()).unwrap();
    assert_same(&dynamic.to_value(), &prim);
    obj
}

fn manifest(v: &Value) -> Manifest {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().parse().unwrap()))
        .collect()
}

#[test]
fn flavor_round_trips_and_keeps_typed_values() {
    let f: Flavor = roundtrip("Flavor.json");
    assert_eq!(f.name().as_deref(), Some("m1.small"));
    assert_eq!(*f.vcpus(), 2);
    assert_eq!(f.extra_specs()["hw:cpu_policy"], "shared");
    assert_eq!(
        f.created_at().unwrap().to_rfc3339(),
        "2025-01-02T03:04:05+00:00"
    );
    assert!(f.obj_what_changed_names().contains(&"description"));
}

#[test]
fn compute_node_round_trips() {
    let cn: ComputeNode = roundtrip("ComputeNode.json");
    assert_eq!(cn.supported_hv_specs()[0].hv_type(), "kvm");
    assert!(cn.obj_what_changed().is_empty());
}

#[test]
fn request_spec_round_trips_with_its_children() {
    let spec: RequestSpec = roundtrip("RequestSpec.json");
    assert_eq!(spec.flavor().name().as_deref(), Some("m1.small"));
    let group = spec.instance_group().as_ref().unwrap();
    assert_eq!(group.policy().as_deref(), Some("anti-affinity"));
    assert_eq!(group.rules()["max_server_per_host"], "1");
    assert_eq!(
        spec.image()
            .as_ref()
            .unwrap()
            .properties()
            .hw_architecture(),
        "x86_64"
    );
}

fn check_backport<T: VersionedObject>(file: &str, target: &str) {
    let fx = fixture(file);
    let mut source =
        T::obj_from_primitive(&fixture(&format!("{}.json", T::NAME))["primitive"]).unwrap();
    if fx["primitive"].get("nova_object.changes").is_none() {
        // The oracle backported the object after `obj_reset_changes(recursive=True)`.
        source.obj_reset_changes_recursive();
    }
    let m = manifest(&fx["version_manifest"]);
    let ours = source
        .obj_to_primitive_at(target.parse().unwrap(), Some(&m))
        .unwrap();
    assert_same(&ours, &fx["primitive"]);
    // The backported primitive decodes (as an older peer would read it) and
    // re-encodes at the old version unchanged.
    let old = T::obj_from_primitive(&ours).unwrap();
    assert_eq!(old.obj_version(), target.parse::<ObjVersion>().unwrap());
    assert_same(&old.obj_to_primitive(), &ours);
}

#[test]
fn backports_match_nova() {
    check_backport::<Flavor>("Flavor_backport_1.1.json", "1.1");
    check_backport::<ComputeNode>("ComputeNode_backport_1.14.json", "1.14");
    check_backport::<RequestSpec>("RequestSpec_backport_1.11.json", "1.11");
}

#[test]
fn backport_without_manifest_needs_a_rule_for_children_like_ovo() {
    let spec = RequestSpec::obj_from_primitive(&fixture("RequestSpec.json")["primitive"]).unwrap();
    let err = spec
        .obj_to_primitive_at(ObjVersion::new(1, 11), None)
        .unwrap_err();
    assert!(err.to_string().contains("No rule for"), "{err}");
    // A leaf object needs no rule.
    let flavor = Flavor::obj_from_primitive(&fixture("Flavor.json")["primitive"]).unwrap();
    assert!(
        flavor
            .obj_to_primitive_at(ObjVersion::new(1, 0), None)
            .is_ok()
    );
    let err = flavor
        .obj_to_primitive_at(ObjVersion::new(1, 3), None)
        .unwrap_err();
    assert!(
        matches!(err, nova_objects::Error::InvalidTargetVersion { .. }),
        "{err}"
    );
}

#[test]
fn versions_match_nova_34() {
    let versions = fixture("versions.json");
    for (name, v) in versions.as_object().unwrap() {
        let class = registry()
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not registered"));
        assert_eq!(class.version.to_string(), v.as_str().unwrap(), "{name}");
    }
}

#[test]
fn newer_primitives_are_refused_with_ovo_error() {
    let mut prim = fixture("Flavor.json")["primitive"].clone();
    prim["nova_object.version"] = "1.3".into();
    let err = Flavor::obj_from_primitive(&prim).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Version 1.3 of Flavor is not supported, supported version is 1.2"
    );
    assert_eq!(err.class_name(), "IncompatibleObjectVersion");
    // A newer child inside an older-looking parent is found too.
    let mut spec = fixture("RequestSpec.json")["primitive"].clone();
    spec["nova_object.data"]["flavor"]["nova_object.version"] = "1.9".into();
    let err = RequestSpec::obj_from_primitive(&spec).unwrap_err();
    assert!(err.to_string().contains("Version 1.9 of Flavor"), "{err}");
    // Stable-branch versions (X.Y.Z) are read as X.Y.
    let mut prim = fixture("Flavor.json")["primitive"].clone();
    prim["nova_object.version"] = "1.2.1".into();
    assert!(Flavor::obj_from_primitive(&prim).is_ok());
}

#[test]
fn bad_primitives_get_clear_errors() {
    let prim = fixture("Flavor.json")["primitive"].clone();
    let mut wrong_ns = prim.clone();
    wrong_ns["nova_object.namespace"] = "cinder".into();
    let err = Flavor::obj_from_primitive(&wrong_ns).unwrap_err();
    assert!(err.to_string().contains("namespace cinder"), "{err}");
    let mut wrong_type = prim.clone();
    wrong_type["nova_object.data"]["vcpus"] = "two".into();
    let err = Flavor::obj_from_primitive(&wrong_type).unwrap_err();
    assert!(err.to_string().contains("Flavor.vcpus"), "{err}");
    let mut null_required = prim.clone();
    null_required["nova_object.data"]["memory_mb"] = Value::Null;
    assert!(Flavor::obj_from_primitive(&null_required).is_err());
    let err = RequestSpec::obj_from_primitive(&prim).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected a RequestSpec primitive, got Flavor"),
        "{err}"
    );
    let err = registry()
        .decode(serde_json::json!({"nova_object.name": "Nope",
        "nova_object.namespace": "nova", "nova_object.version": "1.0",
        "nova_object.data": {}}))
        .unwrap_err();
    assert_eq!(err.to_string(), "Unsupported object type Nope");
}

/// MessagePack carries NaN and the infinities, JSON does not: a Float that
/// is not finite is refused on decode (fuzzing found one accepted and sent
/// on as `null`, which no peer decodes again).
#[test]
fn non_finite_floats_are_refused() {
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Field {
        Float(f64),
        Json(Value),
        Data(BTreeMap<String, Field>),
    }
    let prim = fixture("ComputeNode.json")["primitive"].clone();
    let with_ratio = |ratio: f64| -> Vec<u8> {
        let fields = |v: &Value| -> BTreeMap<String, Field> {
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), Field::Json(v.clone())))
                .collect()
        };
        let mut data = fields(&prim["nova_object.data"]);
        data.insert("cpu_allocation_ratio".into(), Field::Float(ratio));
        let mut top = fields(&prim);
        top.insert("nova_object.data".into(), Field::Data(data));
        rmp_serde::to_vec_named(&top).unwrap()
    };
    assert!(registry().decode_msgpack(&with_ratio(4.0)).is_ok());
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = registry().decode_msgpack(&with_ratio(bad)).unwrap_err();
        assert!(
            err.to_string().contains("cpu_allocation_ratio") && err.to_string().contains("finite"),
            "{bad}: {err}"
        );
    }
}
