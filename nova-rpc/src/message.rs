//! The messages that cross the wire (oslo's inner `oslo.message` dicts) and
//! their codecs: JSON in oslo's `2.0` envelope, or MessagePack.

use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

/// Prefix of context keys in a message.
const CONTEXT_PREFIX: &str = "_context_";
/// The envelope version oslo.messaging 18 writes and accepts.
pub const ENVELOPE_VERSION: &str = "2.0";
/// AMQP `content_type` of JSON messages.
pub(crate) const CONTENT_TYPE_JSON: &str = "application/json";
/// AMQP `content_type` of MessagePack messages.
pub(crate) const CONTENT_TYPE_MSGPACK: &str = "application/msgpack";

/// The body encoding a sender uses. Receivers accept both, by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// oslo.messaging's format: `{"oslo.version": "2.0", "oslo.message": "<json>"}`.
    /// The only choice when Python services are on the bus.
    #[default]
    Json,
    /// The message dict as MessagePack, no envelope: for Rust-only deployments.
    Msgpack,
}

impl Codec {
    /// The AMQP `content_type` for this codec.
    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Json => CONTENT_TYPE_JSON,
            Codec::Msgpack => CONTENT_TYPE_MSGPACK,
        }
    }

    /// The codec for a received `content_type` (absent or unknown means JSON, as kombu assumes).
    pub fn from_content_type(ct: Option<&str>) -> Codec {
        match ct {
            Some(CONTENT_TYPE_MSGPACK) => Codec::Msgpack,
            _ => Codec::Json,
        }
    }

    /// Encodes one message. JSON is enveloped unless `envelope` is false
    /// (oslo's v1 notifications).
    pub fn encode<M: serde::Serialize>(self, msg: &M, envelope: bool) -> Result<Vec<u8>, String> {
        match self {
            Codec::Json => {
                let inner = serde_json::to_string(msg).map_err(|e| e.to_string())?;
                if !envelope {
                    return Ok(inner.into_bytes());
                }
                let mut out = Vec::with_capacity(inner.len() + inner.len() / 8 + 48);
                let mut ser = serde_json::Serializer::new(&mut out);
                let mut map = ser.serialize_map(Some(2)).map_err(|e| e.to_string())?;
                map.serialize_entry("oslo.version", ENVELOPE_VERSION)
                    .map_err(|e| e.to_string())?;
                map.serialize_entry("oslo.message", &inner)
                    .map_err(|e| e.to_string())?;
                map.end().map_err(|e| e.to_string())?;
                Ok(out)
            }
            Codec::Msgpack => rmp_serde::to_vec_named(msg).map_err(|e| e.to_string()),
        }
    }

    /// Decodes a body into the message dict, unwrapping the envelope when
    /// present (a JSON body without both envelope keys is an un-enveloped
    /// `1.0` message, as oslo treats it).
    pub fn decode_map(self, body: &[u8]) -> Result<Map<String, Value>, String> {
        match self {
            Codec::Json => {
                let mut outer: Map<String, Value> =
                    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
                if !(outer.contains_key("oslo.version") && outer.contains_key("oslo.message")) {
                    return Ok(outer);
                }
                let version = outer
                    .get("oslo.version")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !envelope_compatible(version) {
                    return Err(format!(
                        "unsupported RPC envelope version {version:?}: this peer speaks {ENVELOPE_VERSION}"
                    ));
                }
                match outer.remove("oslo.message") {
                    Some(Value::String(s)) => serde_json::from_str(&s)
                        .map_err(|e| format!("invalid JSON in oslo.message: {e}")),
                    _ => Err("oslo.message is not a string".into()),
                }
            }
            Codec::Msgpack => {
                // As deep as a JSON body may nest and no deeper, so whatever
                // arrives in one codec can be sent on in the other.
                let mut de = rmp_serde::Deserializer::from_read_ref(body);
                de.set_max_depth(JSON_MAX_DEPTH);
                serde::Deserialize::deserialize(&mut de)
                    .map_err(|e| format!("invalid MessagePack body: {e}"))
            }
        }
    }
}

/// serde_json's nesting limit for a document it reads (arrays and objects).
const JSON_MAX_DEPTH: usize = 128;

fn envelope_compatible(v: &str) -> bool {
    match v.parse::<crate::Version>() {
        Ok(v) => v.major == 2 && v.minor == 0,
        Err(_) => false,
    }
}

/// A message that could not be understood. `msg_id` and `reply_q` are
/// filled when they could be read, so a waiting caller gets a failure reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    /// What is wrong with it.
    pub reason: String,
    /// The request's `_msg_id`, when readable.
    pub msg_id: Option<String>,
    /// The request's `_reply_q`, when readable.
    pub reply_q: Option<String>,
}

impl Malformed {
    fn new(reason: impl Into<String>) -> Self {
        Malformed {
            reason: reason.into(),
            msg_id: None,
            reply_q: None,
        }
    }
}

/// An RPC request (call or cast).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Endpoint method name.
    pub method: String,
    /// Keyword arguments.
    pub args: Map<String, Value>,
    /// Endpoint namespace (absent = the null namespace).
    pub namespace: Option<String>,
    /// Requested version (absent = `1.0`).
    pub version: Option<String>,
    /// `_msg_id`: present for calls.
    pub msg_id: Option<String>,
    /// `_reply_q`: the caller's reply queue (calls).
    pub reply_q: Option<String>,
    /// `_timeout`: the call-monitor timeout in seconds (calls; may be null).
    pub call_monitor_timeout: Option<f64>,
    /// `_unique_id`: for duplicate suppression.
    pub unique_id: String,
    /// The context dict (`_context_*` keys without the prefix), shared.
    pub context: Arc<Map<String, Value>>,
}

fn json_number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        Value::from(f)
    }
}

impl serde::Serialize for Request {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("method", &self.method)?;
        m.serialize_entry("args", &self.args)?;
        if let Some(ns) = &self.namespace {
            m.serialize_entry("namespace", ns)?;
        }
        if let Some(v) = &self.version {
            m.serialize_entry("version", v)?;
        }
        if let Some(id) = &self.msg_id {
            m.serialize_entry("_msg_id", id)?;
            m.serialize_entry("_reply_q", &self.reply_q)?;
            m.serialize_entry("_timeout", &self.call_monitor_timeout.map(json_number))?;
        }
        m.serialize_entry("_unique_id", &self.unique_id)?;
        serialize_context(&mut m, &self.context)?;
        m.end()
    }
}

fn serialize_context<M: SerializeMap>(m: &mut M, ctx: &Map<String, Value>) -> Result<(), M::Error> {
    let mut key = String::with_capacity(32);
    for (k, v) in ctx {
        key.clear();
        key.push_str(CONTEXT_PREFIX);
        key.push_str(k);
        m.serialize_entry(&key, v)?;
    }
    Ok(())
}

fn take_context(map: &mut Map<String, Value>) -> Arc<Map<String, Value>> {
    let keys: Vec<String> = map
        .keys()
        .filter(|k| k.starts_with(CONTEXT_PREFIX))
        .cloned()
        .collect();
    let mut ctx = Map::new();
    for k in keys {
        if let Some(v) = map.remove(&k) {
            ctx.insert(k[CONTEXT_PREFIX.len()..].to_owned(), v);
        }
    }
    Arc::new(ctx)
}

fn opt_string(map: &mut Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{key} must be a string, got {other}")),
    }
}

impl Request {
    /// Reads a request from its dict. Unknown keys are ignored.
    pub fn from_map(mut map: Map<String, Value>) -> Result<Request, Malformed> {
        // Read the reply address first so that any later error can be answered.
        let msg_id = map
            .remove("_msg_id")
            .and_then(|v| v.as_str().map(str::to_owned));
        let reply_q = map
            .remove("_reply_q")
            .and_then(|v| v.as_str().map(str::to_owned));
        let fail = |reason: String| Malformed {
            reason,
            msg_id: msg_id.clone(),
            reply_q: reply_q.clone(),
        };
        let method = match map.remove("method") {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(other) => {
                return Err(fail(format!(
                    "method must be a non-empty string, got {other}"
                )));
            }
            None => return Err(fail("message has no method".into())),
        };
        let args = match map.remove("args") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o,
            Some(other) => return Err(fail(format!("args must be an object, got {other}"))),
        };
        let namespace = opt_string(&mut map, "namespace").map_err(fail)?;
        let version = opt_string(&mut map, "version").map_err(fail)?;
        let call_monitor_timeout = match map.remove("_timeout") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite() && *f >= 0.0),
            Some(other) => return Err(fail(format!("_timeout must be a number, got {other}"))),
        };
        let unique_id = map
            .remove("_unique_id")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let context = take_context(&mut map);
        if !map.is_empty() {
            tracing::debug!(keys = ?map.keys().collect::<Vec<_>>(), "ignoring unknown keys in request");
        }
        Ok(Request {
            method,
            args,
            namespace,
            version,
            msg_id: msg_id.clone(),
            reply_q: reply_q.clone(),
            call_monitor_timeout,
            unique_id,
            context,
        })
    }

    /// Decodes a request body.
    pub fn decode(codec: Codec, body: &[u8], max_size: usize) -> Result<Request, Malformed> {
        let map = codec.decode_map(body).map_err(Malformed::new)?;
        let req = Request::from_map(map)?;
        if body.len() > max_size {
            return Err(Malformed {
                reason: format!(
                    "message of {} bytes exceeds the limit of {max_size} bytes",
                    body.len()
                ),
                msg_id: req.msg_id,
                reply_q: req.reply_q,
            });
        }
        Ok(req)
    }
}

/// A reply to a call: the result, a failure, or a call-monitor heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The serialized return value (`null` for failures and heartbeats).
    pub result: Value,
    /// The failure JSON string (see [`crate::RemoteError`]).
    pub failure: Option<String>,
    /// True on the final reply; false on heartbeats.
    pub ending: bool,
    /// The request's `_msg_id`.
    pub msg_id: String,
    /// A fresh `_unique_id`.
    pub unique_id: String,
}

impl Reply {
    /// True for a call-monitor heartbeat (no result, no failure, not ending).
    pub fn is_heartbeat(&self) -> bool {
        !self.ending && self.result.is_null() && self.failure.is_none()
    }

    /// Reads a reply from its dict.
    pub fn from_map(mut map: Map<String, Value>) -> Result<Reply, Malformed> {
        let msg_id = match map.remove("_msg_id") {
            Some(Value::String(s)) => s,
            _ => return Err(Malformed::new("reply has no _msg_id")),
        };
        let failure = match map.remove("failure") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => Some(other.to_string()),
        };
        Ok(Reply {
            result: map.remove("result").unwrap_or(Value::Null),
            failure,
            ending: map
                .remove("ending")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            unique_id: map
                .remove("_unique_id")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            msg_id,
        })
    }

    /// Decodes a reply body.
    pub fn decode(codec: Codec, body: &[u8]) -> Result<Reply, Malformed> {
        Reply::from_map(codec.decode_map(body).map_err(Malformed::new)?)
    }
}

impl serde::Serialize for Reply {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("result", &self.result)?;
        m.serialize_entry("failure", &self.failure)?;
        m.serialize_entry("ending", &self.ending)?;
        m.serialize_entry("_msg_id", &self.msg_id)?;
        m.serialize_entry("_unique_id", &self.unique_id)?;
        m.end()
    }
}

/// A notification (oslo's notifier message).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// uuid4 with dashes.
    pub message_id: String,
    /// e.g. `compute.host1`.
    pub publisher_id: String,
    /// e.g. `compute.instance.create.end`.
    pub event_type: String,
    /// Upper-case priority (`INFO`, `ERROR`, ...).
    pub priority: String,
    /// The payload.
    pub payload: Value,
    /// `YYYY-MM-DD HH:MM:SS.ffffff` (UTC, no zone), as oslo writes it.
    pub timestamp: String,
    /// `_unique_id`.
    pub unique_id: String,
    /// The context dict, shared.
    pub context: Arc<Map<String, Value>>,
}

impl serde::Serialize for Notification {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("message_id", &self.message_id)?;
        m.serialize_entry("publisher_id", &self.publisher_id)?;
        m.serialize_entry("event_type", &self.event_type)?;
        m.serialize_entry("priority", &self.priority)?;
        m.serialize_entry("payload", &self.payload)?;
        m.serialize_entry("timestamp", &self.timestamp)?;
        m.serialize_entry("_unique_id", &self.unique_id)?;
        serialize_context(&mut m, &self.context)?;
        m.end()
    }
}

impl Notification {
    /// Reads a notification from its dict.
    pub fn from_map(mut map: Map<String, Value>) -> Result<Notification, Malformed> {
        let mut s = |k: &str| -> Result<String, Malformed> {
            match map.remove(k) {
                Some(Value::String(s)) => Ok(s),
                None | Some(Value::Null) => Ok(String::new()),
                Some(other) => Err(Malformed::new(format!("{k} must be a string, got {other}"))),
            }
        };
        let message_id = s("message_id")?;
        let publisher_id = s("publisher_id")?;
        let event_type = s("event_type")?;
        let priority = s("priority")?;
        let timestamp = s("timestamp")?;
        let unique_id = s("_unique_id")?;
        if event_type.is_empty() || priority.is_empty() {
            return Err(Malformed::new("notification needs event_type and priority"));
        }
        let payload = map.remove("payload").unwrap_or(Value::Null);
        let context = take_context(&mut map);
        Ok(Notification {
            message_id,
            publisher_id,
            event_type,
            priority,
            payload,
            timestamp,
            unique_id,
            context,
        })
    }

    /// Decodes a notification body (enveloped or v1).
    pub fn decode(codec: Codec, body: &[u8]) -> Result<Notification, Malformed> {
        Notification::from_map(codec.decode_map(body).map_err(Malformed::new)?)
    }
}

/// A fresh `_unique_id` / `_msg_id` (uuid4 hex).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call() -> Request {
        let mut ctx = Map::new();
        ctx.insert("user_id".into(), json!("u-1"));
        Request {
            method: "echo".into(),
            args: json!({"value": {"k": [1, "two", null]}})
                .as_object()
                .cloned()
                .unwrap(),
            namespace: Some("peer".into()),
            version: Some("1.3".into()),
            msg_id: Some("82368c732dc24840aebdacd9376328a1".into()),
            reply_q: Some("reply_f2bbf9c89f9a40fcbcab8135856b2e06".into()),
            call_monitor_timeout: None,
            unique_id: "6ab86762d4b14ca7a59217c98382b27f".into(),
            context: Arc::new(ctx),
        }
    }

    #[test]
    fn call_is_enveloped_like_oslo() {
        let body = Codec::Json.encode(&call(), true).unwrap();
        let expected = r#"{"oslo.version":"2.0","oslo.message":"{\"method\":\"echo\",\"args\":{\"value\":{\"k\":[1,\"two\",null]}},\"namespace\":\"peer\",\"version\":\"1.3\",\"_msg_id\":\"82368c732dc24840aebdacd9376328a1\",\"_reply_q\":\"reply_f2bbf9c89f9a40fcbcab8135856b2e06\",\"_timeout\":null,\"_unique_id\":\"6ab86762d4b14ca7a59217c98382b27f\",\"_context_user_id\":\"u-1\"}"}"#;
        assert_eq!(String::from_utf8(body.clone()).unwrap(), expected);
        assert_eq!(
            Request::decode(Codec::Json, &body, usize::MAX).unwrap(),
            call()
        );
    }

    #[test]
    fn decodes_the_observed_python_call() {
        let body = br#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"echo\", \"args\": {\"value\": {\"k\": [1, \"two\", null]}}, \"namespace\": \"peer\", \"version\": \"1.3\", \"_msg_id\": \"82368c732dc24840aebdacd9376328a1\", \"_reply_q\": \"reply_f2bbf9c89f9a40fcbcab8135856b2e06\", \"_timeout\": null, \"_unique_id\": \"6ab86762d4b14ca7a59217c98382b27f\", \"_context_user_id\": \"u-1\"}"}"#;
        assert_eq!(
            Request::decode(Codec::Json, body, usize::MAX).unwrap(),
            call()
        );
    }

    #[test]
    fn cast_has_no_reply_keys_and_msgpack_round_trips() {
        let mut cast = call();
        cast.msg_id = None;
        cast.reply_q = None;
        let body = String::from_utf8(Codec::Json.encode(&cast, true).unwrap()).unwrap();
        assert!(!body.contains("_msg_id") && !body.contains("_timeout"));
        let mp = Codec::Msgpack.encode(&call(), true).unwrap();
        assert_eq!(
            Request::decode(Codec::Msgpack, &mp, usize::MAX).unwrap(),
            call()
        );
    }

    /// A reply `levels` arrays deep under `result`.
    fn nested_reply(levels: usize) -> Reply {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!([v]);
        }
        Reply {
            result: v,
            failure: None,
            ending: true,
            msg_id: "m".into(),
            unique_id: "u".into(),
        }
    }

    #[test]
    fn both_codecs_read_the_same_nesting_depth() {
        // Built by hand: the encoders have no limit, the readers have one.
        for levels in [120, 125, 126, 127, 128, 130, 200] {
            let reply = nested_reply(levels);
            let json = Codec::Json.encode(&reply, true).unwrap();
            let mp = Codec::Msgpack.encode(&reply, true).unwrap();
            let (j, m) = (
                Reply::decode(Codec::Json, &json),
                Reply::decode(Codec::Msgpack, &mp),
            );
            assert_eq!(
                j.is_ok(),
                m.is_ok(),
                "{levels} levels: JSON {j:?}, MessagePack {m:?}"
            );
            if let Ok(m) = m {
                assert_eq!(m, reply);
            }
        }
        assert!(
            Reply::decode(
                Codec::Msgpack,
                &Codec::Msgpack.encode(&nested_reply(126), true).unwrap()
            )
            .is_ok()
        );
        assert!(
            Reply::decode(
                Codec::Msgpack,
                &Codec::Msgpack.encode(&nested_reply(127), true).unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn reply_has_all_five_keys() {
        let r = Reply {
            result: json!({"k": 1}),
            failure: None,
            ending: true,
            msg_id: "m".into(),
            unique_id: "u".into(),
        };
        let inner = serde_json::to_string(&r).unwrap();
        assert_eq!(
            inner,
            r#"{"result":{"k":1},"failure":null,"ending":true,"_msg_id":"m","_unique_id":"u"}"#
        );
        let back = Reply::decode(Codec::Json, &Codec::Json.encode(&r, true).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn malformed_requests_keep_the_reply_address() {
        let body = br#"{"_msg_id": "m1", "_reply_q": "reply_x", "args": {}}"#;
        let err = Request::decode(Codec::Json, body, usize::MAX).unwrap_err();
        assert_eq!(err.msg_id.as_deref(), Some("m1"));
        assert_eq!(err.reply_q.as_deref(), Some("reply_x"));
        let big = Codec::Json.encode(&call(), true).unwrap();
        let err = Request::decode(Codec::Json, &big, 10).unwrap_err();
        assert!(err.reason.contains("exceeds"), "{}", err.reason);
        assert_eq!(
            err.msg_id.as_deref(),
            Some("82368c732dc24840aebdacd9376328a1")
        );
    }

    #[test]
    fn envelope_versions_are_checked() {
        let bad = br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#;
        assert!(
            Request::decode(Codec::Json, bad, usize::MAX)
                .unwrap_err()
                .reason
                .contains("envelope")
        );
        let v1 = br#"{"method": "echo", "args": {}}"#;
        assert_eq!(
            Request::decode(Codec::Json, v1, usize::MAX).unwrap().method,
            "echo"
        );
    }
}
