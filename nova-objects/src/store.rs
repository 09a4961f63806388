//! The object persistence API every service uses, whatever is behind it:
//! the database directly ([`crate::db::Database`], feature `db`) or the
//! conductor over RPC ([`crate::ConductorStore`], nova's indirection API for
//! services without database credentials). The choice is made once, when
//! the service builds its [`Objects`]; call sites never know which it is.
//!
//! The store speaks primitives (so the same trait crosses RPC); [`Objects`]
//! is the typed face: `create`, `save` (only the changed fields, with
//! nova's expected-state checks), `destroy` (soft delete), `get`, `list`
//! (filters, sort keys, marker and limit) and `count`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use nova_rpc::RequestContext;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::object::VersionedObject;

/// How a single object is found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lookup {
    /// By the `id` column.
    Id(i64),
    /// By `uuid`.
    Uuid(String),
    /// By any other unique field (`flavorid`, `instance_uuid`, `host`, ...).
    Field {
        /// Field name.
        name: String,
        /// Its value.
        value: Value,
    },
}

impl Lookup {
    /// By unique field `name`.
    pub fn field(name: &str, value: impl Into<Value>) -> Self {
        Lookup::Field {
            name: name.to_owned(),
            value: value.into(),
        }
    }
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookup::Id(i) => write!(f, "{i}"),
            Lookup::Uuid(u) => f.write_str(u),
            Lookup::Field { name, value } => write!(f, "{name}={value}"),
        }
    }
}

/// Which rows a read sees (nova's `context.read_deleted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadDeleted {
    /// Live rows only (the default).
    #[default]
    No,
    /// Live and soft-deleted rows (admins).
    Yes,
    /// Soft-deleted rows only (admins).
    Only,
}

impl ReadDeleted {
    /// What the request context asks for (`read_deleted` key, as nova's
    /// `RequestContext`); reading deleted rows needs an admin context.
    pub fn of(ctx: &RequestContext) -> Result<Self> {
        let rd = match ctx.get("read_deleted").and_then(Value::as_str) {
            None | Some("no") => ReadDeleted::No,
            Some("yes") => ReadDeleted::Yes,
            Some("only") => ReadDeleted::Only,
            Some(other) => {
                return Err(Error::InvalidQuery(format!(
                    "read_deleted can only be one of 'no', 'yes' or 'only', not {other:?}"
                )));
            }
        };
        if rd != ReadDeleted::No && !ctx.is_admin() {
            return Err(Error::Forbidden(
                "reading deleted records needs an admin context".into(),
            ));
        }
        Ok(rd)
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortDir {
    /// Ascending.
    Asc,
    /// Descending (nova's default for instances).
    #[default]
    Desc,
}

/// A list query, with nova's `get_by_filters` semantics.
///
/// Filters are exact matches on stored scalar fields (a list value means
/// "one of"), plus `changes-since` / `changes-before` on `updated_at`
/// (`created_at` for a row never updated) and `deleted` (true: deleted
/// rows only; admins). [`ListQuery::regex`] filters match a field against
/// a regular expression in the database (nova's `name` filter: MySQL's
/// `REGEXP`, PostgreSQL's `~`, SQLite's `REGEXP` function; NULL is matched
/// as the empty string). Pagination is nova's: rows after the row
/// whose lookup key (`uuid`, or `id`) is `marker`, in the order of the
/// sort keys (the row id breaks ties), at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Field → value (or list of values).
    #[serde(default)]
    pub filters: Map<String, Value>,
    /// Sort keys, most significant first (default: `created_at`, then `id`).
    #[serde(default)]
    pub sort_keys: Vec<String>,
    /// One direction per sort key (missing ones: the first direction, or desc).
    #[serde(default)]
    pub sort_dirs: Vec<SortDir>,
    /// Uuid (or id) of the last row of the previous page.
    #[serde(default)]
    pub marker: Option<String>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Field → regular expression its value must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub regex_filters: BTreeMap<String, String>,
}

impl ListQuery {
    /// A query with no filters.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds an exact-match filter.
    pub fn filter(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.filters.insert(field.to_owned(), value.into());
        self
    }
    /// Adds a sort key.
    pub fn sort(mut self, key: &str, dir: SortDir) -> Self {
        self.sort_keys.push(key.to_owned());
        self.sort_dirs.push(dir);
        self
    }
    /// Sets the marker.
    pub fn marker(mut self, marker: impl Into<String>) -> Self {
        self.marker = Some(marker.into());
        self
    }
    /// Sets the page size.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }
    /// Adds a regular-expression filter: `field` matches `pattern`
    /// (unanchored, as a search).
    pub fn regex(mut self, field: &str, pattern: impl Into<String>) -> Self {
        self.regex_filters.insert(field.to_owned(), pattern.into());
        self
    }
}

/// Conditions of a `save`: nova's `expected_task_state` /
/// `expected_vm_state`. The update happens only if the stored value is
/// one of the expected ones, atomically; otherwise nothing is written and
/// the save fails (`UnexpectedTaskStateError`). A structured field (a
/// dict such as `metadata`) may be expected too: its stored JSON must be
/// the expected value's, which makes a read-modify-write of it a
/// compare-and-swap (direct database stores only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SaveOptions {
    /// Field → acceptable current values (`null` included when listed).
    #[serde(default)]
    pub expected: BTreeMap<String, Vec<Value>>,
}

impl SaveOptions {
    /// Nova's `save(expected_task_state=[...])`.
    pub fn expected_task_state<I, S>(states: I) -> Self
    where
        I: IntoIterator<Item = Option<S>>,
        S: Into<String>,
    {
        Self::default().expect("task_state", states)
    }
    /// Adds an expectation on `field`.
    pub fn expect<I, S>(mut self, field: &str, values: I) -> Self
    where
        I: IntoIterator<Item = Option<S>>,
        S: Into<String>,
    {
        self.expected.insert(
            field.to_owned(),
            values
                .into_iter()
                .map(|v| v.map_or(Value::Null, |s| Value::String(s.into())))
                .collect(),
        );
        self
    }
}

/// Persistence of object primitives: what the database and the conductor
/// both offer. Implemented by [`crate::db::Database`] and
/// [`crate::ConductorStore`].
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Inserts the object; returns it as stored (id, timestamps).
    async fn create(&self, ctx: &RequestContext, obj: Value) -> Result<Value>;
    /// Writes the object's changed fields (`nova_object.changes`); returns
    /// it as stored.
    async fn save(&self, ctx: &RequestContext, obj: Value, opts: &SaveOptions) -> Result<Value>;
    /// Deletes the object (soft delete where the class has `deleted`);
    /// returns it as it now is.
    async fn destroy(&self, ctx: &RequestContext, obj: Value) -> Result<Value>;
    /// One object of class `objname`.
    async fn get(&self, ctx: &RequestContext, objname: &str, by: &Lookup) -> Result<Value>;
    /// Objects of class `objname` matching a query.
    async fn list(&self, ctx: &RequestContext, objname: &str, q: &ListQuery) -> Result<Vec<Value>>;
    /// How many objects match `filters` (quota usage counting).
    async fn count(
        &self,
        ctx: &RequestContext,
        objname: &str,
        filters: &Map<String, Value>,
    ) -> Result<u64>;
    /// The instance `uuid` and its info cache (none when it has none):
    /// nova's `instance_get_by_uuid` joining `info_cache`. A database
    /// joins them in one statement and decodes its row straight into the
    /// objects; by default, two reads.
    async fn get_instance_with_info_cache(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> Result<(crate::Instance, Option<crate::InstanceInfoCache>)> {
        instance_then_info_cache(self, ctx, uuid).await
    }
    /// Nova's `InstanceActionEvent.event_start`: records the start of
    /// `event` (`compute_pause_instance`) on `host` for the action of
    /// `ctx`'s request on the instance, moving the action's
    /// `updated_at`. `NotFound`
    /// (`InstanceActionNotFound`) when the request recorded no action.
    /// By default the reads and writes of [`ObjectStore`]; the
    /// conductor's store makes it one call.
    async fn action_event_start(
        &self,
        ctx: &RequestContext,
        instance_uuid: &str,
        event: &str,
        host: Option<&str>,
    ) -> Result<()> {
        crate::objects::action_events::event_start(self, ctx, instance_uuid, event, host).await
    }
    /// Nova's `InstanceActionEvent.event_finish_with_failure`: event
    /// `event` of the request's action ends with `outcome`; a failure
    /// also marks the action's `message` `Error`. `NotFound` when there
    /// is no such action or event.
    async fn action_event_finish(
        &self,
        ctx: &RequestContext,
        instance_uuid: &str,
        event: &str,
        outcome: &crate::EventOutcome,
    ) -> Result<()> {
        crate::objects::action_events::event_finish(self, ctx, instance_uuid, event, outcome).await
    }
    /// Nova's `InstanceList.get_counts`: the instances, cores and RAM
    /// used in `project_id` and, with `user_id`, by that user in it (what
    /// a quota check compares with its limits). A database adds them up
    /// in one statement; by default the project's instances are listed.
    async fn instance_counts(
        &self,
        ctx: &RequestContext,
        project_id: &str,
        user_id: Option<&str>,
    ) -> Result<crate::InstanceCounts> {
        crate::objects::counts_by_listing(self, ctx, project_id, user_id).await
    }
}

/// [`ObjectStore::get_instance_with_info_cache`] as two reads.
pub(crate) async fn instance_then_info_cache<S: ObjectStore + ?Sized>(
    store: &S,
    ctx: &RequestContext,
    uuid: &str,
) -> Result<(crate::Instance, Option<crate::InstanceInfoCache>)> {
    let inst = store
        .get(ctx, "Instance", &Lookup::Uuid(uuid.to_owned()))
        .await?;
    let by = Lookup::field("instance_uuid", uuid);
    let cache = match store.get(ctx, "InstanceInfoCache", &by).await {
        Ok(c) => Some(crate::primitive::from_value_owned(c)?),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    Ok((crate::primitive::from_value_owned(inst)?, cache))
}

/// The typed object API over any [`ObjectStore`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # #[cfg(feature = "db")] {
/// use nova_objects::{Flavor, Objects, ListQuery, db::{Database, DbConfig}};
/// use nova_rpc::RequestContext;
///
/// let db = Database::connect(&DbConfig::memory()).await?;
/// db.sync().await?;
/// let objects = Objects::new(db);
/// let ctx = RequestContext::new().with_admin(true);
///
/// let mut flavor = Flavor::new().with_name(Some("m1.tiny".to_owned())).with_flavorid("1")
///     .with_vcpus(1).with_memory_mb(512).with_root_gb(1).with_ephemeral_gb(0).with_swap(0);
/// objects.create(&ctx, &mut flavor).await?;
/// assert!(*flavor.id() > 0);
///
/// flavor.set_vcpus(2);
/// objects.save(&ctx, &mut flavor).await?;
/// let again: Flavor = objects.get(&ctx, nova_objects::Lookup::Id(*flavor.id())).await?;
/// assert_eq!(*again.vcpus(), 2);
/// assert_eq!(objects.list::<Flavor>(&ctx, &ListQuery::new()).await?.len(), 1);
/// # }
/// # Ok::<(), nova_objects::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
}

impl Objects {
    /// Objects kept in `store`.
    pub fn new(store: impl ObjectStore + 'static) -> Self {
        Objects {
            store: Arc::new(store),
        }
    }

    /// Objects kept in a shared store.
    pub fn from_arc(store: Arc<dyn ObjectStore>) -> Self {
        Objects { store }
    }

    /// The store behind.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn adopt<T: VersionedObject>(obj: &mut T, v: &Value) -> Result<()> {
        *obj = T::obj_from_primitive(v)?;
        obj.obj_reset_changes_recursive();
        Ok(())
    }

    /// Inserts `obj`; on return it holds what the store assigned (id,
    /// `created_at`) and has no changes.
    pub async fn create<T: VersionedObject>(
        &self,
        ctx: &RequestContext,
        obj: &mut T,
    ) -> Result<()> {
        let v = self.store.create(ctx, obj.obj_to_primitive()).await?;
        Self::adopt(obj, &v)
    }

    /// Writes the changed fields of `obj`.
    pub async fn save<T: VersionedObject>(&self, ctx: &RequestContext, obj: &mut T) -> Result<()> {
        self.save_with(ctx, obj, &SaveOptions::default()).await
    }

    /// Writes the changed fields of `obj` if the stored row meets `opts`.
    pub async fn save_with<T: VersionedObject>(
        &self,
        ctx: &RequestContext,
        obj: &mut T,
        opts: &SaveOptions,
    ) -> Result<()> {
        let v = self.store.save(ctx, obj.obj_to_primitive(), opts).await?;
        Self::adopt(obj, &v)
    }

    /// Deletes `obj` (soft delete where the class has `deleted`).
    pub async fn destroy<T: VersionedObject>(
        &self,
        ctx: &RequestContext,
        obj: &mut T,
    ) -> Result<()> {
        let v = self.store.destroy(ctx, obj.obj_to_primitive()).await?;
        Self::adopt(obj, &v)
    }

    /// One object.
    pub async fn get<T: VersionedObject>(&self, ctx: &RequestContext, by: Lookup) -> Result<T> {
        let v = self.store.get(ctx, T::NAME, &by).await?;
        crate::primitive::from_value_owned(v)
    }

    /// One object by uuid.
    pub async fn get_by_uuid<T: VersionedObject>(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> Result<T> {
        self.get(ctx, Lookup::Uuid(uuid.to_owned())).await
    }

    /// The instance `uuid` with nova's `expected_attrs` kept in other
    /// tables (`info_cache`, `fault`; see
    /// [`Objects::load_instance_attrs`]); the info cache comes in the same
    /// read as the instance where the store can join it.
    pub async fn get_instance(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        attrs: &[&str],
    ) -> Result<crate::Instance> {
        let mut inst = if attrs.contains(&"info_cache") {
            let (mut inst, cache) = self.store.get_instance_with_info_cache(ctx, uuid).await?;
            let before = inst.obj_meta().changed;
            inst.set_info_cache(cache);
            inst.obj_meta_mut().changed = before;
            inst
        } else {
            self.get_by_uuid(ctx, uuid).await?
        };
        let rest: Vec<&str> = attrs
            .iter()
            .copied()
            .filter(|a| *a != "info_cache")
            .collect();
        if !rest.is_empty() {
            self.load_instance_attrs(ctx, &mut inst, &rest).await?;
        }
        Ok(inst)
    }

    /// Objects matching `q`.
    pub async fn list<T: VersionedObject>(
        &self,
        ctx: &RequestContext,
        q: &ListQuery,
    ) -> Result<Vec<T>> {
        let rows = self.store.list(ctx, T::NAME, q).await?;
        rows.into_iter()
            .map(crate::primitive::from_value_owned)
            .collect()
    }

    /// Nova's `expected_attrs` of an instance kept in other tables:
    /// `fault` (its newest `InstanceFault`) and `info_cache`. Loaded
    /// attributes do not count as changes.
    pub async fn load_instance_attrs(
        &self,
        ctx: &RequestContext,
        inst: &mut crate::Instance,
        attrs: &[&str],
    ) -> Result<()> {
        let uuid = inst.uuid().clone();
        let before = inst.obj_meta().changed;
        for attr in attrs {
            match *attr {
                "fault" => {
                    let q = ListQuery::new()
                        .filter("instance_uuid", uuid.as_str())
                        .sort("created_at", SortDir::Desc)
                        .sort("id", SortDir::Desc)
                        .limit(1);
                    let fault = self
                        .list::<crate::InstanceFault>(ctx, &q)
                        .await?
                        .into_iter()
                        .next();
                    inst.set_fault(fault);
                }
                "info_cache" => {
                    let by = Lookup::field("instance_uuid", uuid.as_str());
                    match self.get::<crate::InstanceInfoCache>(ctx, by).await {
                        Ok(c) => inst.set_info_cache(Some(c)),
                        Err(e) if e.is_not_found() => inst.set_info_cache(None),
                        Err(e) => return Err(e),
                    }
                }
                other => {
                    return Err(Error::InvalidQuery(format!(
                        "{other} is not an instance attribute kept apart (fault, info_cache)"
                    )));
                }
            }
        }
        inst.obj_meta_mut().changed = before;
        Ok(())
    }

    /// The `info_cache` of every instance of `instances` (an instance
    /// without one gets none), read in one query from a database; through
    /// the conductor, whose indirection API has no list of info caches
    /// (nova has no `InstanceInfoCacheList`), one read per instance.
    /// Loaded attributes do not count as changes.
    pub async fn load_info_caches(
        &self,
        ctx: &RequestContext,
        instances: &mut [crate::Instance],
    ) -> Result<()> {
        if instances.is_empty() {
            return Ok(());
        }
        let uuids: Vec<Value> = instances
            .iter()
            .map(|i| Value::String(i.uuid().clone()))
            .collect();
        let q = ListQuery::new().filter("instance_uuid", Value::Array(uuids));
        let listed = match self.list::<crate::InstanceInfoCache>(ctx, &q).await {
            Ok(l) => l,
            Err(Error::ObjectAction { action, .. }) if action == "list" => {
                for inst in instances {
                    self.load_instance_attrs(ctx, inst, &["info_cache"]).await?;
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut caches: BTreeMap<String, crate::InstanceInfoCache> = listed
            .into_iter()
            .map(|c| (c.instance_uuid().clone(), c))
            .collect();
        for inst in instances {
            let before = inst.obj_meta().changed;
            inst.set_info_cache(caches.remove(inst.uuid()));
            inst.obj_meta_mut().changed = before;
        }
        Ok(())
    }

    /// How many objects match `filters`.
    pub async fn count<T: VersionedObject>(
        &self,
        ctx: &RequestContext,
        filters: &Map<String, Value>,
    ) -> Result<u64> {
        self.store.count(ctx, T::NAME, filters).await
    }
}
