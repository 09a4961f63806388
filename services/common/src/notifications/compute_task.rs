//! `compute_task.<method>.error` (`ComputeTaskPayload` with its
//! `RequestSpecPayload`) and the legacy `compute_task.<method>`: what
//! nova's conductor sends when a task fails (`scheduler_utils.
//! set_vm_state_and_notify` → `compute_utils.notify_about_compute_task_error`).
//!
//! Nova turns the RequestSpec into its legacy dict and back
//! (`to_legacy_request_spec_dict`, `RequestSpec.from_primitives(spec, {})`)
//! before it builds the payload, so only what that dict carries survives:
//! the image, the flavor, the instance's uuid, project, user, zone, NUMA
//! topology and PCI requests, and `num_instances`. The hosts to ignore or
//! force, the retries, the group and the requested destination are null,
//! the scheduler hints `{}` and the security groups `[]` (nova's functional
//! test replaces the sample's `["default"]` with `[]` for that reason).

use std::collections::BTreeMap;

use nova_objects::{ImageMeta, InstancePCIRequests, RequestSpec, VersionedObject};
use nova_rpc::{Priority, RequestContext};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::payloads::{ExceptionPayload, FlavorPayload, Obj, PayloadObject};
use super::{Notifier, Source};

macro_rules! payload {
    ($t:ty, $name:literal, $version:literal) => {
        impl PayloadObject for $t {
            const NAME: &'static str = $name;
            const VERSION: &'static str = $version;
        }
    };
}

/// `ComputeTaskPayload` 1.0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputeTaskPayload {
    /// The instance.
    pub instance_uuid: String,
    /// Its request spec, as nova rebuilds it from the legacy dict.
    pub request_spec: Option<Obj<RequestSpecPayload>>,
    /// The vm_state the instance was left in.
    pub state: Option<String>,
    /// The failure.
    pub reason: Obj<ExceptionPayload>,
}
payload!(ComputeTaskPayload, "ComputeTaskPayload", "1.0");

/// `RequestSpecPayload` 1.1 (its `image_meta` field nova never sets, so
/// it is never on the wire).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestSpecPayload {
    /// The instance.
    pub instance_uuid: String,
    /// Its project.
    pub project_id: Option<String>,
    /// Its user.
    pub user_id: Option<String>,
    /// The requested zone.
    pub availability_zone: Option<String>,
    /// The (new) flavor.
    pub flavor: Option<Obj<FlavorPayload>>,
    /// Always null after nova's legacy round trip.
    pub force_hosts: Option<String>,
    /// Always null after nova's legacy round trip.
    pub force_nodes: Option<String>,
    /// Always null after nova's legacy round trip.
    pub ignore_hosts: Option<Vec<String>>,
    /// Always null after nova's legacy round trip.
    pub instance_group: Option<Value>,
    /// The image.
    pub image: Option<Obj<ImageMetaPayload>>,
    /// The NUMA topology.
    pub numa_topology: Option<Obj<InstanceNUMATopologyPayload>>,
    /// The PCI requests.
    pub pci_requests: Option<Obj<InstancePCIRequestsPayload>>,
    /// How many instances.
    pub num_instances: i64,
    /// Always null after nova's legacy round trip.
    pub requested_destination: Option<Value>,
    /// Always null after nova's legacy round trip.
    pub retry: Option<Value>,
    /// `{}` after nova's legacy round trip.
    pub scheduler_hints: Option<BTreeMap<String, Vec<String>>>,
    /// `[]` after nova's legacy round trip.
    pub security_groups: Vec<String>,
}
payload!(RequestSpecPayload, "RequestSpecPayload", "1.1");

impl RequestSpecPayload {
    /// The payload of `spec` after nova's legacy round trip.
    pub fn from_spec(spec: &RequestSpec) -> Self {
        let uuid = spec.instance_uuid().clone();
        RequestSpecPayload {
            instance_uuid: uuid.clone(),
            project_id: spec.project_id().clone(),
            user_id: spec.user_id().clone(),
            availability_zone: spec.availability_zone().clone(),
            flavor: spec
                .obj_attr_is_set("flavor")
                .then(|| Obj(FlavorPayload::from_flavor(spec.flavor()))),
            force_hosts: None,
            force_nodes: None,
            ignore_hosts: None,
            instance_group: None,
            image: spec
                .image()
                .as_ref()
                .map(|i| Obj(ImageMetaPayload::from_image(i))),
            numa_topology: spec
                .numa_topology()
                .as_ref()
                .and_then(|t| InstanceNUMATopologyPayload::from_primitive(&t.0, &uuid))
                .map(Obj),
            pci_requests: spec
                .pci_requests()
                .as_ref()
                .map(|p| Obj(InstancePCIRequestsPayload::from_requests(p, &uuid))),
            num_instances: if spec.obj_attr_is_set("num_instances") {
                *spec.num_instances()
            } else {
                1
            },
            requested_destination: None,
            retry: None,
            scheduler_hints: Some(BTreeMap::new()),
            security_groups: Vec::new(),
        }
    }

    /// What nova's live migration passes (`{'instance_properties':
    /// {'uuid': …}}`): the uuid and nothing else.
    pub fn of_uuid(uuid: &str) -> Self {
        Self::from_spec(&RequestSpec::new().with_instance_uuid(uuid.to_owned()))
    }
}

/// `ImageMetaPayload` 1.0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageMetaPayload {
    id: Option<String>,
    name: Option<String>,
    status: Option<String>,
    visibility: Option<String>,
    protected: Option<bool>,
    checksum: Option<String>,
    owner: Option<String>,
    size: Option<i64>,
    virtual_size: Option<i64>,
    container_format: Option<String>,
    disk_format: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    tags: Option<Vec<String>>,
    direct_url: Option<String>,
    min_ram: Option<i64>,
    min_disk: Option<i64>,
    properties: Obj<ImageMetaPropsPayload>,
}
payload!(ImageMetaPayload, "ImageMetaPayload", "1.0");

impl ImageMetaPayload {
    /// nova's `ImageMetaPayload(image_meta)`: unset fields are null; the
    /// properties are those set.
    pub fn from_image(i: &ImageMeta) -> Self {
        // The primitive holds exactly the set fields, in wire form.
        let data = i.obj_to_primitive()["nova_object.data"].clone();
        let s = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_owned);
        let n = |k: &str| data.get(k).and_then(Value::as_i64);
        let props = data
            .get("properties")
            .and_then(|p| p.get("nova_object.data"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        ImageMetaPayload {
            id: s("id"),
            name: s("name"),
            status: s("status"),
            visibility: s("visibility"),
            protected: i.obj_attr_is_set("protected").then(|| *i.protected()),
            checksum: s("checksum"),
            owner: s("owner"),
            size: n("size"),
            virtual_size: n("virtual_size"),
            container_format: s("container_format"),
            disk_format: s("disk_format"),
            created_at: s("created_at"),
            updated_at: s("updated_at"),
            tags: i.obj_attr_is_set("tags").then(|| i.tags().clone()),
            direct_url: s("direct_url"),
            min_ram: n("min_ram"),
            min_disk: n("min_disk"),
            properties: Obj(ImageMetaPropsPayload::from_props(props)),
        }
    }
}

/// `ImageMetaPropsPayload` 1.20: the image properties that are set (every
/// field of `ImageMetaProps` but `hw_ephemeral_encryption_secret_uuid`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub(crate) struct ImageMetaPropsPayload(Map<String, Value>);
payload!(ImageMetaPropsPayload, "ImageMetaPropsPayload", "1.20");

impl ImageMetaPropsPayload {
    fn from_props(mut props: Map<String, Value>) -> Self {
        props.remove("hw_ephemeral_encryption_secret_uuid");
        ImageMetaPropsPayload(props)
    }
}

/// `InstancePCIRequestsPayload` 1.0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstancePCIRequestsPayload {
    instance_uuid: String,
    requests: Vec<Obj<InstancePCIRequestPayload>>,
}
payload!(
    InstancePCIRequestsPayload,
    "InstancePCIRequestsPayload",
    "1.0"
);

/// `InstancePCIRequestPayload` 1.1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct InstancePCIRequestPayload {
    count: i64,
    spec: Vec<BTreeMap<String, Option<String>>>,
    alias_name: Option<String>,
    request_id: Option<String>,
    numa_policy: Option<String>,
}
payload!(
    InstancePCIRequestPayload,
    "InstancePCIRequestPayload",
    "1.1"
);

impl InstancePCIRequestsPayload {
    fn from_requests(p: &InstancePCIRequests, spec_uuid: &str) -> Self {
        let instance_uuid = if p.obj_attr_is_set("instance_uuid") {
            p.instance_uuid().clone()
        } else {
            spec_uuid.to_owned()
        };
        InstancePCIRequestsPayload {
            instance_uuid,
            requests: p
                .requests()
                .iter()
                .map(|r| {
                    Obj(InstancePCIRequestPayload {
                        count: *r.count(),
                        spec: r.spec().clone(),
                        alias_name: r.alias_name().clone(),
                        request_id: r.request_id().clone(),
                        numa_policy: r.numa_policy().clone(),
                    })
                })
                .collect(),
        }
    }
}

/// `InstanceNUMATopologyPayload` 1.0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceNUMATopologyPayload {
    instance_uuid: String,
    cells: Vec<Obj<InstanceNUMACellPayload>>,
    emulator_threads_policy: Option<String>,
}
payload!(
    InstanceNUMATopologyPayload,
    "InstanceNUMATopologyPayload",
    "1.0"
);

/// `InstanceNUMACellPayload` 1.2 (its fields from the cell's primitive;
/// `cpu_topology` as `VirtCPUTopologyPayload` 1.0).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub(crate) struct InstanceNUMACellPayload(Map<String, Value>);
payload!(InstanceNUMACellPayload, "InstanceNUMACellPayload", "1.2");

impl InstanceNUMATopologyPayload {
    /// From an `InstanceNUMATopology` primitive (nova's `instance_uuid`
    /// is the spec's when the topology has none).
    fn from_primitive(p: &Value, spec_uuid: &str) -> Option<Self> {
        let data = p.get("nova_object.data")?;
        let cells = data
            .get("cells")
            .and_then(Value::as_array)
            .map(|cells| {
                cells
                    .iter()
                    .map(|c| Obj(numa_cell(&c["nova_object.data"])))
                    .collect()
            })
            .unwrap_or_default();
        Some(InstanceNUMATopologyPayload {
            instance_uuid: data
                .get("instance_uuid")
                .and_then(Value::as_str)
                .unwrap_or(spec_uuid)
                .to_owned(),
            cells,
            emulator_threads_policy: data
                .get("emulator_threads_policy")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

fn numa_cell(c: &Value) -> InstanceNUMACellPayload {
    let mut m = Map::new();
    for k in [
        "id",
        "cpuset",
        "pcpuset",
        "cpuset_reserved",
        "memory",
        "pagesize",
        "cpu_pinning_raw",
        "cpu_policy",
        "cpu_thread_policy",
    ] {
        m.insert(k.to_owned(), c.get(k).cloned().unwrap_or(Value::Null));
    }
    let topology = c
        .get("cpu_topology")
        .and_then(|t| t.get("nova_object.data"));
    m.insert(
        "cpu_topology".to_owned(),
        match topology {
            Some(t) => json!({
                "nova_object.name": "VirtCPUTopologyPayload",
                "nova_object.namespace": "nova",
                "nova_object.version": "1.0",
                "nova_object.data": {
                    "sockets": t.get("sockets").cloned().unwrap_or(json!(1)),
                    "cores": t.get("cores").cloned().unwrap_or(json!(1)),
                    "threads": t.get("threads").cloned().unwrap_or(json!(1)),
                },
            }),
            None => Value::Null,
        },
    );
    InstanceNUMACellPayload(m)
}

/// Why a task failed, for [`Notifier::compute_task_error`].
#[derive(Debug, Clone)]
pub struct TaskFailure<'a> {
    /// The conductor method that failed, e.g. `migrate_server`.
    pub method: &'a str,
    /// nova's exception class, e.g. `NoValidHost`.
    pub class: &'a str,
    /// Its message.
    pub message: &'a str,
    /// Where it was raised (`ExceptionPayload.module_name`, `function_name`).
    pub module_name: &'a str,
    /// Ditto.
    pub function_name: &'a str,
}

impl Notifier {
    /// A conductor task failed (`why.method`): the legacy `compute_task.<method>` and the
    /// versioned `compute_task.<method>.error` (ERROR), with the request
    /// spec as nova rebuilds it (`spec`; `None`: only the instance's uuid,
    /// as nova's live migration passes) and the `state` the instance was
    /// left in.
    pub async fn compute_task_error(
        &self,
        ctx: &RequestContext,
        host: &str,
        instance_uuid: &str,
        spec: Option<&RequestSpec>,
        state: Option<&str>,
        why: &TaskFailure<'_>,
    ) {
        let method = why.method;
        let spec_payload = match spec {
            Some(s) => RequestSpecPayload::from_spec(s),
            None => RequestSpecPayload::of_uuid(instance_uuid),
        };
        if self.legacy_enabled() {
            let legacy = legacy_spec(spec, instance_uuid);
            let properties = legacy["instance_properties"].clone();
            self.emit_legacy(
                ctx,
                Priority::Error,
                format!("compute_task.{host}"),
                &format!("compute_task.{method}"),
                json!({
                    "request_spec": legacy,
                    "instance_properties": properties,
                    "instance_id": instance_uuid,
                    "state": state,
                    "method": method,
                    // What oslo's JSON serializer makes of nova's exception.
                    "reason": {
                        "kwargs": { "code": 500 },
                        "message": why.message,
                        "class": why.class,
                    },
                }),
            )
            .await;
        }
        let reason =
            ExceptionPayload::new(why.module_name, why.function_name, why.class, why.message);
        self.emit(
            ctx,
            Priority::Error,
            format!("{}:{host}", Source::Conductor.as_str()),
            &format!("compute_task.{method}.error"),
            ComputeTaskPayload {
                instance_uuid: instance_uuid.to_owned(),
                request_spec: Some(Obj(spec_payload)),
                state: state.map(str::to_owned),
                reason: Obj(reason),
            },
        )
        .await;
    }
}

/// nova's `to_legacy_request_spec_dict` (the whole of it for a live
/// migration: `{'instance_properties': {'uuid': …}}`).
fn legacy_spec(spec: Option<&RequestSpec>, uuid: &str) -> Value {
    let Some(s) = spec else {
        return json!({ "instance_properties": { "uuid": uuid } });
    };
    let mut props = Map::new();
    props.insert("uuid".into(), json!(s.instance_uuid()));
    props.insert("project_id".into(), json!(s.project_id()));
    props.insert("user_id".into(), json!(s.user_id()));
    props.insert("availability_zone".into(), json!(s.availability_zone()));
    props.insert(
        "numa_topology".into(),
        s.numa_topology().as_ref().map(|t| t.0.clone()).into(),
    );
    props.insert(
        "pci_requests".into(),
        s.pci_requests()
            .as_ref()
            .map(|p| p.obj_to_primitive())
            .into(),
    );
    let f = s.flavor();
    for (k, v) in [
        ("root_gb", *f.root_gb()),
        ("ephemeral_gb", *f.ephemeral_gb()),
        ("memory_mb", *f.memory_mb()),
        ("vcpus", *f.vcpus()),
    ] {
        props.insert(k.into(), json!(v));
    }
    json!({
        "num_instances": s.num_instances(),
        "image": s.image().as_ref().map(|i| i.obj_to_primitive()["nova_object.data"].clone()).unwrap_or(json!({})),
        "instance_properties": props,
        "instance_type": f.obj_to_primitive(),
    })
}
