//! Nova's object indirection API: services without database credentials
//! (compute) reach the objects through the conductor, over RPC.
//!
//! - [`conductor_object_endpoint`] is the conductor's side: the base
//!   `conductor` API (version 3.0, no namespace) methods
//!   `object_class_action_versions`, `object_action` and
//!   `object_backport_versions`, served from any [`ObjectStore`].
//! - [`ConductorStore`] is the other side: an [`ObjectStore`] whose every
//!   operation is one of those calls, so `Objects::new(ConductorStore)`
//!   and `Objects::new(Database)` offer the same API and the choice is
//!   made once at start-up.
//!
//! Class actions follow nova's names: `get_by_id`, `get_by_uuid`,
//! `get_by_<unique field>` (`get_by_instance_uuid`, `get_by_host`, ...),
//! and on list classes `get_by_filters` / `get_all`; `count` is ours
//! (quota usage). Object actions are `create`, `save` (kwargs
//! `expected_task_state`, `expected_vm_state`) and `destroy`; they
//! answer nova's `(updates, result)` pair. Results newer than the caller's
//! `object_versions` are backported to them, as nova's conductor does.

use std::sync::Arc;

use nova_rpc::{Endpoint, RemoteError, RequestContext, RpcClient, Target, Transport, Version};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::object::{Manifest, VersionedObject};
use crate::primitive::{CHANGES_KEY, DATA_KEY, NAME_KEY, NAMESPACE, NAMESPACE_KEY, VERSION_KEY};
use crate::registry::registry;
use crate::serializer::Backporter;
use crate::store::{ListQuery, Lookup, ObjectStore, SaveOptions, SortDir};
use crate::version::ObjVersion;

/// The conductor's topic.
pub const CONDUCTOR_TOPIC: &str = "conductor";
/// The version of the base conductor API these methods belong to.
pub const CONDUCTOR_API_VERSION: Version = Version::new(3, 0);

/// The conductor's object indirection API (base `conductor` API 3.0):
/// served by [`conductor_object_endpoint`] from a store, called by
/// [`ConductorStore`]. Objects travel as primitives of any class.
#[nova_rpc::interface(
    topic = CONDUCTOR_TOPIC,
    version = CONDUCTOR_API_VERSION,
    client = ObjectIndirectionApi
)]
pub trait ObjectIndirection {
    /// Runs the class method `objmethod` of `objname` and answers its
    /// result backported to the caller's `object_versions`.
    #[rpc(call, version = "3.0")]
    async fn object_class_action_versions(
        &self,
        ctx: RequestContext,
        objname: String,
        objmethod: String,
        #[rpc(default)] object_versions: Map<String, Value>,
        #[rpc(default)] args: Vec<Value>,
        #[rpc(default)] kwargs: Map<String, Value>,
    ) -> Value;

    /// Runs `objmethod` (`create`, `save`, `destroy`) on `objinst` and
    /// answers nova's `(updates, result)` pair.
    #[rpc(call, version = "3.0")]
    async fn object_action(
        &self,
        ctx: RequestContext,
        objinst: Value,
        objmethod: String,
        #[rpc(default)] args: Vec<Value>,
        #[rpc(default)] kwargs: Map<String, Value>,
    ) -> Value;

    /// `objinst` as a caller with `object_versions` can read it.
    #[rpc(call, version = "3.0")]
    async fn object_backport_versions(
        &self,
        ctx: RequestContext,
        objinst: Value,
        object_versions: Map<String, Value>,
    ) -> Value;
}

struct ClassAction {
    objname: String,
    objmethod: String,
    object_versions: Map<String, Value>,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
}

struct ObjectAction {
    objinst: Value,
    objmethod: String,
    kwargs: Map<String, Value>,
}

fn manifest_of(m: &Map<String, Value>) -> Result<Manifest> {
    m.iter()
        .map(|(k, v)| {
            let s = v
                .as_str()
                .ok_or_else(|| Error::InvalidPrimitive(format!("object_versions[{k}]: {v}")))?;
            Ok((k.clone(), s.parse::<ObjVersion>()?))
        })
        .collect()
}

fn manifest_json(m: &Manifest) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
        .collect()
}

/// The primitive `v` as the caller with `manifest` can read it.
fn for_caller(v: Value, manifest: &Manifest) -> Result<Value> {
    let obj = registry().decode(v)?;
    let name = obj.class().name;
    match manifest.get(name) {
        Some(t) if *t < obj.class().version => obj.to_value_at(*t, Some(manifest)),
        _ => Ok(obj.to_value()),
    }
}

fn arg<'a>(a: &'a ClassAction, i: usize, key: &str) -> Result<&'a Value> {
    a.args
        .get(i)
        .or_else(|| a.kwargs.get(key))
        .ok_or_else(|| Error::InvalidQuery(format!("{}() needs {key}", a.objmethod)))
}

fn list_query(kw: &Map<String, Value>) -> Result<ListQuery> {
    let mut q = ListQuery {
        filters: match kw.get("filters") {
            Some(Value::Object(f)) => f.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(other) => return Err(Error::InvalidQuery(format!("filters: {other}"))),
        },
        ..ListQuery::default()
    };
    let strs = |k: &str| -> Vec<String> {
        match kw.get(k) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    q.sort_keys = strs("sort_keys");
    if q.sort_keys.is_empty() {
        q.sort_keys = strs("sort_key");
    }
    let mut dirs = strs("sort_dirs");
    if dirs.is_empty() {
        dirs = strs("sort_dir");
    }
    q.sort_dirs = dirs
        .iter()
        .map(|d| match d.as_str() {
            "asc" => Ok(SortDir::Asc),
            "desc" => Ok(SortDir::Desc),
            other => Err(Error::InvalidQuery(format!(
                "sort direction must be asc or desc, not {other:?}"
            ))),
        })
        .collect::<Result<_>>()?;
    q.marker = match kw.get("marker") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    q.limit = kw.get("limit").and_then(Value::as_u64);
    if let Some(Value::Object(r)) = kw.get("regex_filters") {
        for (k, v) in r {
            let pattern = v
                .as_str()
                .ok_or_else(|| Error::InvalidQuery(format!("regex_filters: {k}: {v}")))?;
            q.regex_filters.insert(k.clone(), pattern.to_owned());
        }
    }
    Ok(q)
}

fn expected(kw: &Map<String, Value>) -> SaveOptions {
    let mut opts = SaveOptions::default();
    for (k, field) in [
        ("expected_task_state", "task_state"),
        ("expected_vm_state", "vm_state"),
    ] {
        match kw.get(k) {
            None => {}
            Some(Value::Array(a)) => {
                opts.expected.insert(field.into(), a.clone());
            }
            Some(v) => {
                opts.expected.insert(field.into(), vec![v.clone()]);
            }
        }
    }
    opts
}

async fn class_action(
    store: &dyn ObjectStore,
    ctx: &RequestContext,
    a: ClassAction,
) -> Result<Value> {
    let manifest = manifest_of(&a.object_versions)?;
    if a.objname == crate::InstanceActionEvent::NAME {
        return action_event(store, ctx, &a).await;
    }
    if a.objname == crate::InstanceList::NAME && a.objmethod == "get_counts" {
        return instance_counts(store, ctx, &a).await;
    }
    let class = registry()
        .get(&a.objname)
        .ok_or_else(|| Error::UnsupportedObject(a.objname.clone()))?;
    // A list class: its elements are what the store keeps.
    let element = class
        .field("objects")
        .and_then(|f| (f.child)())
        .filter(|_| class.fields.len() == 1);
    if let Some(elem) = element {
        let q = match a.objmethod.as_str() {
            "get_all" => ListQuery::default(),
            "get_by_filters" => list_query(&a.kwargs)?,
            "count" => {
                let q = list_query(&a.kwargs)?;
                return Ok(json!(store.count(ctx, elem.name, &q.filters).await?));
            }
            other => return Err(unknown_method(&a.objname, other)),
        };
        let rows = store.list(ctx, elem.name, &q).await?;
        let list = json!({
            NAME_KEY: class.name,
            NAMESPACE_KEY: NAMESPACE,
            VERSION_KEY: class.version.to_string(),
            DATA_KEY: {"objects": rows},
        });
        return for_caller(list, &manifest);
    }
    let by = match a.objmethod.as_str() {
        "get_by_id" => Lookup::Id(
            arg(&a, 0, "id")?
                .as_i64()
                .ok_or_else(|| Error::InvalidQuery("id must be an integer".into()))?,
        ),
        "get_by_uuid" => Lookup::Uuid(
            arg(&a, 0, "uuid")?
                .as_str()
                .ok_or_else(|| Error::InvalidQuery("uuid must be a string".into()))?
                .to_owned(),
        ),
        m if m.starts_with("get_by_") => {
            let field = match &m["get_by_".len()..] {
                "flavor_id" => "flavorid",
                f => f,
            };
            if class.field(field).is_none() {
                return Err(unknown_method(&a.objname, m));
            }
            Lookup::Field {
                name: field.to_owned(),
                value: arg(&a, 0, field)?.clone(),
            }
        }
        other => return Err(unknown_method(&a.objname, other)),
    };
    let v = store.get(ctx, class.name, &by).await?;
    for_caller(v, &manifest)
}

/// `InstanceActionEvent`'s remotable class methods (nova 34's
/// `event_start(instance_uuid, event_name, want_result=True, host=None)`,
/// `event_finish(instance_uuid, event_name, want_result=True)` and
/// `event_finish_with_failure(instance_uuid, event_name, exc_val=None,
/// exc_tb=None, want_result=None)`, the exception and traceback as the
/// strings nova's `serialize_args` makes of them). They answer nothing
/// (nova's `want_result=False`, all its services send).
async fn action_event(
    store: &dyn ObjectStore,
    ctx: &RequestContext,
    a: &ClassAction,
) -> Result<Value> {
    let text = |i: usize, key: &str| -> Result<String> {
        arg(a, i, key)?.as_str().map(str::to_owned).ok_or_else(|| {
            Error::InvalidQuery(format!("{}(): {key} must be a string", a.objmethod))
        })
    };
    let uuid = text(0, "instance_uuid")?;
    let event = text(1, "event_name")?;
    let opt = |key: &str, i: usize| -> Option<String> {
        a.args
            .get(i)
            .or_else(|| a.kwargs.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match a.objmethod.as_str() {
        "event_start" => {
            let host = opt("host", 3);
            store
                .action_event_start(ctx, &uuid, &event, host.as_deref())
                .await?;
        }
        "event_finish" => {
            store
                .action_event_finish(ctx, &uuid, &event, &crate::EventOutcome::Success)
                .await?;
        }
        "event_finish_with_failure" => {
            let outcome = match opt("exc_tb", 3) {
                None => crate::EventOutcome::Success,
                Some(traceback) => crate::EventOutcome::Error {
                    details: opt("exc_val", 2).unwrap_or_default(),
                    traceback,
                },
            };
            store
                .action_event_finish(ctx, &uuid, &event, &outcome)
                .await?;
        }
        other => return Err(unknown_method(&a.objname, other)),
    }
    Ok(Value::Null)
}

/// `InstanceList.get_counts(project_id, user_id=None)`: a plain dict
/// (nova's shape), not an object.
async fn instance_counts(
    store: &dyn ObjectStore,
    ctx: &RequestContext,
    a: &ClassAction,
) -> Result<Value> {
    let project = arg(a, 0, "project_id")?
        .as_str()
        .ok_or_else(|| Error::InvalidQuery("get_counts(): project_id must be a string".into()))?
        .to_owned();
    let user = match a.args.get(1).or_else(|| a.kwargs.get("user_id")) {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => Some(u.clone()),
        Some(other) => {
            return Err(Error::InvalidQuery(format!(
                "get_counts(): user_id must be a string, not {other}"
            )));
        }
    };
    let counts = store
        .instance_counts(ctx, &project, user.as_deref())
        .await?;
    Ok(counts.to_value())
}

fn unknown_method(objname: &str, method: &str) -> Error {
    Error::ObjectAction {
        action: method.to_owned(),
        reason: format!("{objname} has no remotable method {method}"),
    }
}

async fn object_action(
    store: &dyn ObjectStore,
    ctx: &RequestContext,
    a: ObjectAction,
) -> Result<Value> {
    // Decoding checks the primitive from the network before it goes anywhere.
    let obj = registry().decode(a.objinst)?;
    let v = obj.to_value();
    // The caller's version of the class: the answer is backported to it.
    let sent_version = v[VERSION_KEY]
        .as_str()
        .and_then(|s| s.parse::<ObjVersion>().ok())
        .map_or(obj.class().version, |s| s.min(obj.class().version));
    let out = match a.objmethod.as_str() {
        "create" => store.create(ctx, v).await?,
        "save" => store.save(ctx, v, &expected(&a.kwargs)).await?,
        "destroy" => store.destroy(ctx, v).await?,
        other => return Err(unknown_method(obj.class().name, other)),
    };
    let back = registry().decode(out)?;
    let prim = if sent_version < back.class().version {
        back.to_value_at(sent_version, None)?
    } else {
        back.to_value()
    };
    let mut updates = match prim.get(DATA_KEY) {
        Some(Value::Object(d)) => d.clone(),
        _ => Map::new(),
    };
    updates.insert("obj_what_changed".into(), json!([]));
    Ok(json!([updates, null]))
}

fn remote(e: Error) -> RemoteError {
    e.to_remote()
}

/// A failed call as the store error it carries (nova's exception classes
/// become the same typed errors on both sides).
fn from_rpc(e: nova_rpc::Error) -> Error {
    match e {
        nova_rpc::Error::Remote(r) => Error::from_remote(*r),
        e => Error::Rpc(e),
    }
}

/// The indirection API over a store.
struct StoreIndirection(Arc<dyn ObjectStore>);

impl ObjectIndirection for StoreIndirection {
    async fn object_class_action_versions(
        &self,
        ctx: RequestContext,
        objname: String,
        objmethod: String,
        object_versions: Map<String, Value>,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        let a = ClassAction {
            objname,
            objmethod,
            object_versions,
            args,
            kwargs,
        };
        class_action(&*self.0, &ctx, a).await.map_err(remote)
    }

    async fn object_action(
        &self,
        ctx: RequestContext,
        objinst: Value,
        objmethod: String,
        _args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        let a = ObjectAction {
            objinst,
            objmethod,
            kwargs,
        };
        object_action(&*self.0, &ctx, a).await.map_err(remote)
    }

    async fn object_backport_versions(
        &self,
        _ctx: RequestContext,
        objinst: Value,
        object_versions: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        let manifest = manifest_of(&object_versions).map_err(remote)?;
        let obj = registry().decode(objinst).map_err(remote)?;
        let target = manifest
            .get(obj.class().name)
            .copied()
            .unwrap_or(obj.class().version);
        obj.to_value_at(target, Some(&manifest)).map_err(remote)
    }
}

/// The conductor's object endpoint (base `conductor` API 3.0), served from
/// `store` (the conductor's [`crate::db::Database`]).
pub fn conductor_object_endpoint(store: Arc<dyn ObjectStore>) -> Endpoint {
    Arc::new(StoreIndirection(store)).endpoint()
}

/// The objects, through the conductor: an [`ObjectStore`] (and a
/// [`Backporter`]) for services without database access.
#[derive(Debug, Clone)]
pub struct ConductorStore {
    api: ObjectIndirectionApi,
}

impl ConductorStore {
    /// Talks to the conductors on `transport` (topic `conductor`).
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self::with_client(RpcClient::new(transport, Target::topic(CONDUCTOR_TOPIC)))
    }

    /// Uses `client` (its target should be the conductor topic).
    pub fn with_client(client: RpcClient) -> Self {
        ConductorStore {
            api: ObjectIndirectionApi::from_client(client),
        }
    }

    async fn class_action(
        &self,
        ctx: &RequestContext,
        objname: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Value,
    ) -> Result<Value> {
        let versions = registry()
            .manifest_for(objname)
            .ok_or_else(|| Error::UnsupportedObject(objname.to_owned()))?;
        let kwargs = match kwargs {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        self.api
            .object_class_action_versions(
                ctx,
                &objname.to_owned(),
                &method.to_owned(),
                &manifest_json(&versions),
                &args,
                &kwargs,
            )
            .await
            .map_err(from_rpc)
    }

    async fn object_action(
        &self,
        ctx: &RequestContext,
        obj: Value,
        method: &str,
        kwargs: Value,
    ) -> Result<Value> {
        let kwargs = match kwargs {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let reply = self
            .api
            .object_action(ctx, &obj, &method.to_owned(), &Vec::new(), &kwargs)
            .await
            .map_err(from_rpc)?;
        let Some(Value::Object(mut updates)) = reply.get(0).cloned() else {
            return Err(Error::InvalidPrimitive(format!(
                "object_action answered {reply}, not (updates, result)"
            )));
        };
        updates.remove("obj_what_changed");
        let mut out = obj;
        if let Value::Object(m) = &mut out {
            m.insert(DATA_KEY.into(), Value::Object(updates));
            m.remove(CHANGES_KEY);
        }
        Ok(out)
    }

    /// `InstanceActionEvent.<method>(instance_uuid, event_name, **kwargs)`
    /// on the conductor (it answers nothing: `want_result` False).
    async fn event_call(
        &self,
        ctx: &RequestContext,
        method: &str,
        instance_uuid: &str,
        event: &str,
        kwargs: Value,
    ) -> Result<()> {
        let args = vec![json!(instance_uuid), json!(event)];
        let name = crate::InstanceActionEvent::NAME;
        self.class_action(ctx, name, method, args, kwargs).await?;
        Ok(())
    }

    /// Nova's `serialize_args` form of an outcome: `exc_val` (the
    /// message) and `exc_tb` (the trace), absent on success.
    fn failure_kwargs(outcome: &crate::EventOutcome) -> Value {
        match outcome {
            crate::EventOutcome::Success => json!({"want_result": false}),
            crate::EventOutcome::Error { details, traceback } => {
                json!({"exc_val": details, "exc_tb": traceback, "want_result": false})
            }
        }
    }

    fn list_class(objname: &str) -> Result<&'static str> {
        let list = format!("{objname}List");
        registry()
            .get(&list)
            .map(|c| c.name)
            .ok_or_else(|| Error::ObjectAction {
                action: "list".into(),
                reason: format!("{objname} has no list class"),
            })
    }
}

fn elements(list: Value) -> Result<Vec<Value>> {
    match list.get(DATA_KEY).and_then(|d| d.get("objects")) {
        Some(Value::Array(a)) => Ok(a.clone()),
        _ => Err(Error::InvalidPrimitive(format!(
            "expected a list object, got {list}"
        ))),
    }
}

#[async_trait::async_trait]
impl ObjectStore for ConductorStore {
    async fn create(&self, ctx: &RequestContext, obj: Value) -> Result<Value> {
        self.object_action(ctx, obj, "create", json!({})).await
    }

    async fn save(&self, ctx: &RequestContext, obj: Value, opts: &SaveOptions) -> Result<Value> {
        let mut kw = Map::new();
        for (field, values) in &opts.expected {
            match field.as_str() {
                "task_state" => kw.insert("expected_task_state".into(), values.clone().into()),
                "vm_state" => kw.insert("expected_vm_state".into(), values.clone().into()),
                other => {
                    return Err(Error::InvalidQuery(format!(
                        "the conductor checks expected task_state and vm_state, not {other}"
                    )));
                }
            };
        }
        self.object_action(ctx, obj, "save", Value::Object(kw))
            .await
    }

    async fn destroy(&self, ctx: &RequestContext, obj: Value) -> Result<Value> {
        self.object_action(ctx, obj, "destroy", json!({})).await
    }

    async fn get(&self, ctx: &RequestContext, objname: &str, by: &Lookup) -> Result<Value> {
        let (method, value) = match by {
            Lookup::Id(i) => ("get_by_id".to_owned(), json!(i)),
            Lookup::Uuid(u) => ("get_by_uuid".to_owned(), json!(u)),
            Lookup::Field { name, value } => (format!("get_by_{name}"), value.clone()),
        };
        self.class_action(ctx, objname, &method, vec![value], json!({}))
            .await
    }

    async fn list(&self, ctx: &RequestContext, objname: &str, q: &ListQuery) -> Result<Vec<Value>> {
        let list = Self::list_class(objname)?;
        let mut kwargs = json!({
            "filters": q.filters,
            "sort_keys": q.sort_keys,
            "sort_dirs": q.sort_dirs,
            "limit": q.limit,
            "marker": q.marker,
        });
        // Ours: nova's conductors do not know it, so it is sent only when
        // there is one.
        if !q.regex_filters.is_empty() {
            kwargs["regex_filters"] = json!(q.regex_filters);
        }
        elements(
            self.class_action(ctx, list, "get_by_filters", vec![], kwargs)
                .await?,
        )
    }

    async fn count(
        &self,
        ctx: &RequestContext,
        objname: &str,
        filters: &Map<String, Value>,
    ) -> Result<u64> {
        let list = Self::list_class(objname)?;
        let n = self
            .class_action(ctx, list, "count", vec![], json!({"filters": filters}))
            .await?;
        n.as_u64()
            .ok_or_else(|| Error::InvalidPrimitive(format!("count answered {n}")))
    }

    async fn instance_counts(
        &self,
        ctx: &RequestContext,
        project_id: &str,
        user_id: Option<&str>,
    ) -> Result<crate::InstanceCounts> {
        let args = vec![json!(project_id)];
        let kwargs = json!({"user_id": user_id});
        let v = self
            .class_action(ctx, crate::InstanceList::NAME, "get_counts", args, kwargs)
            .await?;
        crate::InstanceCounts::from_value(&v)
    }

    async fn action_event_start(
        &self,
        ctx: &RequestContext,
        instance_uuid: &str,
        event: &str,
        host: Option<&str>,
    ) -> Result<()> {
        let kwargs = json!({"want_result": false, "host": host});
        self.event_call(ctx, "event_start", instance_uuid, event, kwargs)
            .await
    }

    async fn action_event_finish(
        &self,
        ctx: &RequestContext,
        instance_uuid: &str,
        event: &str,
        outcome: &crate::EventOutcome,
    ) -> Result<()> {
        let kwargs = Self::failure_kwargs(outcome);
        self.event_call(
            ctx,
            "event_finish_with_failure",
            instance_uuid,
            event,
            kwargs,
        )
        .await
    }
}

#[async_trait::async_trait]
impl Backporter for ConductorStore {
    async fn backport(
        &self,
        ctx: &RequestContext,
        objinst: Value,
        versions: Manifest,
    ) -> Result<Value> {
        self.api
            .object_backport_versions(ctx, &objinst, &manifest_json(&versions))
            .await
            .map_err(from_rpc)
    }
}
