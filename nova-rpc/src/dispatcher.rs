//! Endpoints and oslo's dispatch rules.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::context::RequestContext;
use crate::error::{Error, RemoteError};
use crate::message::Request;
use crate::serializer::{NoOpSerializer, Serializer};
use crate::version::Version;

/// What a method sees of the request besides its arguments.
#[derive(Debug, Clone)]
pub struct Call {
    /// The caller's context.
    pub context: RequestContext,
    /// The call-monitor timeout the caller asked for (oslo's `client_timeout`; `None` for casts).
    pub client_timeout: Option<f64>,
    /// The method name.
    pub method: String,
    /// The requested namespace.
    pub namespace: Option<String>,
    /// The requested version.
    pub version: Version,
    /// True for calls (a reply is expected), false for casts.
    pub expects_reply: bool,
    /// The exchange the message came through (`<topic>_fanout` for fanout casts).
    pub exchange: Arc<str>,
    /// Its routing key.
    pub routing_key: Arc<str>,
}

type Handler = Arc<
    dyn Fn(Call, Map<String, Value>) -> BoxFuture<'static, Result<Value, RemoteError>>
        + Send
        + Sync,
>;

/// Arguments of a method that takes none (extra keys are ignored).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct NoArgs {}

/// An RPC endpoint: a namespace, the version it implements, and its methods
/// (like an oslo endpoint object with a `target`).
///
/// Methods take the [`Call`] and their keyword arguments decoded into any
/// `Deserialize` type; arguments that do not fit become a `TypeError`, as a
/// Python endpoint would raise.
#[derive(Clone)]
pub struct Endpoint {
    namespace: Option<String>,
    accepted_namespaces: Vec<Option<String>>,
    version: Version,
    methods: HashMap<String, Handler>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut methods: Vec<_> = self.methods.keys().collect();
        methods.sort();
        f.debug_struct("Endpoint")
            .field("namespace", &self.namespace)
            .field("version", &self.version)
            .field("methods", &methods)
            .finish()
    }
}

impl Endpoint {
    /// An endpoint serving `namespace` (None = the null namespace) at `version`.
    pub fn new(namespace: Option<&str>, version: Version) -> Self {
        let namespace = namespace.map(str::to_owned);
        Endpoint {
            accepted_namespaces: vec![namespace.clone()],
            namespace,
            version,
            methods: HashMap::new(),
        }
    }

    /// Also accepts messages addressed to an older namespace name (oslo's `legacy_namespaces`).
    pub fn legacy_namespace(mut self, ns: Option<&str>) -> Self {
        self.accepted_namespaces.push(ns.map(str::to_owned));
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The implemented version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Adds a method. Names starting with `_` are private and never callable,
    /// as with oslo's default access policy.
    pub fn method<A, R, F, Fut>(mut self, name: &str, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Call, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RemoteError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let handler: Handler = Arc::new(move |call: Call, args: Map<String, Value>| {
            let method = call.method.clone();
            let args = match serde_json::from_value::<A>(Value::Object(args)) {
                Ok(a) => a,
                Err(e) => {
                    let err =
                        RemoteError::type_error(format!("{method}() got unusable arguments: {e}"));
                    return futures_util::future::ready(Err(err)).boxed();
                }
            };
            let fut = f(call, args);
            async move {
                let r = fut.await?;
                serde_json::to_value(r).map_err(|e| {
                    RemoteError::internal(
                        "SerializationError",
                        format!("{method}() returned an unserializable value: {e}"),
                    )
                })
            }
            .boxed()
        });
        self.methods.insert(name.to_owned(), handler);
        self
    }

    fn serves(&self, namespace: &Option<String>, version: &Version) -> bool {
        self.accepted_namespaces.contains(namespace) && self.version.can_serve(version)
    }
}

/// Dispatches requests to endpoints with oslo's rules: the first endpoint
/// whose namespace matches and whose version can serve the request (same
/// major, requested minor not newer) and that has the method gets it;
/// `NoSuchMethod` when some endpoint matched but none has the method;
/// `UnsupportedVersion` when no endpoint matched.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    endpoints: Arc<[Endpoint]>,
    serializer: Arc<dyn Serializer>,
}

impl Dispatcher {
    /// A dispatcher over `endpoints`, tried in order.
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        Dispatcher {
            endpoints: endpoints.into(),
            serializer: Arc::new(NoOpSerializer),
        }
    }

    /// Uses `serializer` for arguments, results and the context.
    pub fn with_serializer(mut self, serializer: Arc<dyn Serializer>) -> Self {
        self.serializer = serializer;
        self
    }

    /// Runs one request; the error is what goes back in the reply's `failure`.
    pub async fn dispatch(
        &self,
        req: Request,
        exchange: Arc<str>,
        routing_key: Arc<str>,
    ) -> Result<Value, RemoteError> {
        let version_str = req.version.as_deref().unwrap_or("1.0");
        let version = match version_str.parse::<Version>() {
            Ok(v) => v,
            Err(_) => return Err(RemoteError::unsupported_version(version_str, &req.method)),
        };
        let context = self.serializer.deserialize_context(req.context);
        let mut compatible = false;
        let mut handler = None;
        for ep in self.endpoints.iter() {
            if !ep.serves(&req.namespace, &version) {
                continue;
            }
            compatible = true;
            if req.method.starts_with('_') {
                continue;
            }
            if let Some(h) = ep.methods.get(&req.method) {
                handler = Some(h.clone());
                break;
            }
        }
        let Some(handler) = handler else {
            return Err(if compatible {
                RemoteError::no_such_method(&req.method)
            } else {
                RemoteError::unsupported_version(version_str, &req.method)
            });
        };
        let mut args = Map::new();
        for (k, v) in req.args {
            args.insert(
                k,
                self.serializer
                    .deserialize_entity(&context, v)
                    .await
                    .map_err(to_remote)?,
            );
        }
        let call = Call {
            context,
            client_timeout: req.call_monitor_timeout,
            method: req.method,
            namespace: req.namespace,
            version,
            expects_reply: req.msg_id.is_some(),
            exchange,
            routing_key,
        };
        let ctx = call.context.clone();
        let result = handler(call, args).await?;
        self.serializer
            .serialize_entity(&ctx, result)
            .map_err(to_remote)
    }
}

fn to_remote(e: Error) -> RemoteError {
    match e {
        Error::Remote(r) => *r,
        other => RemoteError::internal("SerializationError", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RemoteKind;
    use serde_json::json;

    fn req(method: &str, ns: Option<&str>, version: Option<&str>, args: Value) -> Request {
        Request {
            method: method.into(),
            args: args.as_object().cloned().unwrap_or_default(),
            namespace: ns.map(Into::into),
            version: version.map(Into::into),
            msg_id: Some("m".into()),
            reply_q: Some("r".into()),
            call_monitor_timeout: None,
            unique_id: "u".into(),
            context: Default::default(),
        }
    }

    #[derive(serde::Deserialize)]
    struct AddArgs {
        a: i64,
        b: i64,
    }

    fn dispatcher() -> Dispatcher {
        let peer = Endpoint::new(Some("peer"), Version::new(1, 3))
            .method("add", |_c, a: AddArgs| async move { Ok(a.a + a.b) })
            .method("_secret", |_c, _a: NoArgs| async move { Ok("no") });
        let default = Endpoint::new(None, Version::new(1, 0))
            .method("ping", |_c, _a: NoArgs| async move { Ok("pong") });
        Dispatcher::new(vec![peer, default])
    }

    async fn run(r: Request) -> Result<Value, RemoteError> {
        dispatcher().dispatch(r, "x".into(), "t".into()).await
    }

    #[tokio::test]
    async fn oslo_rules() {
        let ok = run(req(
            "add",
            Some("peer"),
            Some("1.2"),
            json!({"a": 2, "b": 40}),
        ))
        .await;
        assert_eq!(ok.unwrap(), json!(42));
        let newer = run(req("add", Some("peer"), Some("1.4"), json!({})))
            .await
            .unwrap_err();
        assert_eq!(newer.kind(), RemoteKind::UnsupportedVersion);
        assert_eq!(
            newer.message,
            "Endpoint does not support RPC version 1.4. Attempted method: add"
        );
        let major = run(req("add", Some("peer"), Some("2.0"), json!({})))
            .await
            .unwrap_err();
        assert_eq!(major.kind(), RemoteKind::UnsupportedVersion);
        let ns = run(req("add", Some("nope"), Some("1.0"), json!({})))
            .await
            .unwrap_err();
        assert_eq!(ns.kind(), RemoteKind::UnsupportedVersion);
        let missing = run(req("nope", Some("peer"), Some("1.0"), json!({})))
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), RemoteKind::NoSuchMethod);
        let private = run(req("_secret", Some("peer"), None, json!({})))
            .await
            .unwrap_err();
        assert_eq!(private.kind(), RemoteKind::NoSuchMethod);
        assert_eq!(
            run(req("ping", None, None, json!({}))).await.unwrap(),
            json!("pong")
        );
        let bad_args = run(req("add", Some("peer"), None, json!({"a": "x", "b": 1})))
            .await
            .unwrap_err();
        assert_eq!(bad_args.kind(), RemoteKind::TypeError);
        let bad_version = run(req("add", Some("peer"), Some("one"), json!({})))
            .await
            .unwrap_err();
        assert_eq!(bad_version.kind(), RemoteKind::UnsupportedVersion);
    }
}
