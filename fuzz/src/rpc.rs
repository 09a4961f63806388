//! The RPC envelope decoder (`nova_rpc::Codec::decode_map` and the
//! request, reply and notification readers), JSON in oslo's `2.0`
//! envelope and MessagePack.

use nova_rpc::{Codec, Notification, Reply, Request};

/// The first byte picks the codec (bit 0) and the message kind (the rest,
/// mod 3: request, reply, notification); the rest is the body.
pub fn envelope(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let codec = if sel & 1 == 0 {
        Codec::Json
    } else {
        Codec::Msgpack
    };
    match (sel >> 1) % 3 {
        0 => {
            // The limit is checked after decoding (to answer the caller):
            // use a small one so that path runs too.
            if let Ok(req) = Request::decode(codec, body, 1 << 16) {
                request_round_trip(req);
            }
        }
        1 => {
            if let Ok(reply) = Reply::decode(codec, body) {
                for c in [Codec::Json, Codec::Msgpack] {
                    let bytes = c.encode(&reply, true).expect("a decoded reply encodes");
                    let again = Reply::decode(c, &bytes).expect("an encoded reply decodes");
                    assert_eq!(again, reply, "{c:?} round trip of a reply");
                }
            }
        }
        _ => {
            if let Ok(n) = Notification::decode(codec, body) {
                for (c, envelope) in [
                    (Codec::Json, true),
                    (Codec::Json, false),
                    (Codec::Msgpack, true),
                ] {
                    let bytes = c.encode(&n, envelope).expect("a notification encodes");
                    let again =
                        Notification::decode(c, &bytes).expect("an encoded notification decodes");
                    assert_eq!(again, n, "{c:?} round trip of a notification");
                }
            }
        }
    }
}

fn request_round_trip(req: Request) {
    // A cast carries no reply address or call timeout.
    let mut want = req.clone();
    if want.msg_id.is_none() {
        want.reply_q = None;
        want.call_monitor_timeout = None;
    }
    for c in [Codec::Json, Codec::Msgpack] {
        let bytes = c.encode(&req, true).expect("a decoded request encodes");
        let again = Request::decode(c, &bytes, usize::MAX).expect("an encoded request decodes");
        assert_eq!(again, want, "{c:?} round trip of a request");
    }
}
