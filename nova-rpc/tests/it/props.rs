//! Property tests: wire types round-trip, and no input from the network panics.

use nova_rpc::{Codec, RemoteError, Reply, Request, TransportUrl, Version};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..5)
        .prop_map(|m| m.into_iter().collect())
}

prop_compose! {
    fn request()(method in "[a-z_]{1,12}", args in object(), namespace in proptest::option::of("[a-z]{1,8}"),
                 version in proptest::option::of("[0-9]\\.[0-9]{1,2}"), call in any::<bool>(),
                 cm in proptest::option::of(0u32..3600), context in object()) -> Request {
        Request {
            method, args, namespace, version,
            msg_id: call.then(nova_rpc::new_id),
            reply_q: call.then(|| format!("reply_{}", nova_rpc::new_id())),
            call_monitor_timeout: if call { cm.map(f64::from) } else { None },
            unique_id: nova_rpc::new_id(),
            context: std::sync::Arc::new(context),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn requests_round_trip_in_both_codecs(req in request()) {
        for codec in [Codec::Json, Codec::Msgpack] {
            let body = codec.encode(&req, true).unwrap();
            prop_assert_eq!(Request::decode(codec, &body, usize::MAX).unwrap(), req.clone());
        }
    }

    #[test]
    fn replies_round_trip(result in json_value(), ending in any::<bool>(), fail in proptest::option::of(".{0,20}")) {
        let failure = fail.map(|m| RemoteError::new("E", "m", m).to_failure_json());
        let r = Reply { result, failure, ending, msg_id: nova_rpc::new_id(), unique_id: nova_rpc::new_id() };
        for codec in [Codec::Json, Codec::Msgpack] {
            let body = codec.encode(&r, true).unwrap();
            prop_assert_eq!(Reply::decode(codec, &body).unwrap(), r.clone());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for codec in [Codec::Json, Codec::Msgpack] {
            let _ = Request::decode(codec, &bytes, 1 << 20);
            let _ = Reply::decode(codec, &bytes);
            let _ = nova_rpc::Notification::decode(codec, &bytes);
        }
        let s = String::from_utf8_lossy(&bytes);
        let _ = RemoteError::from_failure_json(&s);
        let _ = s.parse::<TransportUrl>();
        let _ = s.parse::<Version>();
    }

    #[test]
    fn arbitrary_json_messages_never_panic(v in json_value(), inner in json_value()) {
        // Well-formed JSON of the wrong shape, enveloped or not.
        let bodies = [
            serde_json::to_vec(&v).unwrap(),
            serde_json::to_vec(&serde_json::json!({"oslo.version": "2.0", "oslo.message": inner.to_string()})).unwrap(),
            serde_json::to_vec(&serde_json::json!({"oslo.version": "2.0", "oslo.message": inner})).unwrap(),
        ];
        for b in bodies {
            let _ = Request::decode(Codec::Json, &b, 1 << 20);
            let _ = Reply::decode(Codec::Json, &b);
            let _ = nova_rpc::Notification::decode(Codec::Json, &b);
        }
    }

    #[test]
    fn versions_display_and_parse_back(major in 0u32..1000, minor in 0u32..1000, rev in proptest::option::of(0u32..100)) {
        let v = Version { major, minor, rev };
        prop_assert_eq!(v.to_string().parse::<Version>().unwrap(), v);
        let base = Version { major, minor, rev: None };
        prop_assert!(v.can_serve(&base));
    }
}
