//! The notifications of the conductor's and the scheduler's tasks and the
//! usage audit: `compute_task.<method>.error` (`ComputeTaskPayload` 1.0,
//! nova's `notify_about_compute_task_error`, with the legacy
//! `compute_task.<method>` of `set_vm_state_and_notify`),
//! `scheduler.select_destinations.start` / `.end` (`RequestSpecPayload`
//! 1.1, nova's `notify_about_scheduler_action`) and `instance.exists`
//! (`InstanceExistsPayload` 2.1, nova's `notify_usage_exists`).

use std::collections::BTreeMap;

use chrono::Utc;
use nova_objects::{ImageMeta, Instance, RequestSpec, VersionedObject};
use nova_rpc::{Priority, RequestContext};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::groups::ServerGroupPayload;
use super::payloads::{
    AuditPeriodPayload, ExceptionPayload, FlavorPayload, InstancePayload, Obj, PayloadObject,
};
use super::{Notifier, Phase, Source};

macro_rules! payload {
    ($t:ty, $name:literal, $version:literal) => {
        impl PayloadObject for $t {
            const NAME: &'static str = $name;
            const VERSION: &'static str = $version;
        }
    };
}

/// A versioned object's primitive built from its name, version and data
/// (the nested payloads nova-rs keeps as JSON, an instance's device
/// metadata).
pub fn primitive(name: &str, version: &str, data: Value) -> Value {
    json!({
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": version,
        "nova_object.data": data,
    })
}

/// The fields an object has set, as its primitive's data.
fn set_fields(o: &impl VersionedObject) -> Map<String, Value> {
    match o.obj_to_primitive() {
        Value::Object(mut m) => match m.remove("nova_object.data") {
            Some(Value::Object(d)) => d,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

/// `ImageMetaPropsPayload` 1.20: only the properties the image sets (nova's
/// `populate_schema(set_none=False)`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageMetaPropsPayload(pub Map<String, Value>);
payload!(ImageMetaPropsPayload, "ImageMetaPropsPayload", "1.20");

/// `ImageMetaPayload` 1.0: an image's metadata, every field (null when the
/// image does not say).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageMetaPayload(pub Map<String, Value>);
payload!(ImageMetaPayload, "ImageMetaPayload", "1.0");

/// The fields of `ImageMetaPayload`, properties aside.
const IMAGE_FIELDS: [&str; 17] = [
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "checksum",
    "owner",
    "size",
    "virtual_size",
    "container_format",
    "disk_format",
    "created_at",
    "updated_at",
    "tags",
    "direct_url",
    "min_ram",
    "min_disk",
];

impl ImageMetaPayload {
    /// nova's `ImageMetaPayload(image_meta)`.
    pub fn from_image(image: &ImageMeta) -> Self {
        let mut set = set_fields(image);
        let mut data: Map<String, Value> = IMAGE_FIELDS
            .iter()
            .map(|k| ((*k).to_owned(), set.remove(*k).unwrap_or(Value::Null)))
            .collect();
        let props = if image.obj_attr_is_set("properties") {
            set_fields(image.properties())
        } else {
            Map::new()
        };
        data.insert(
            "properties".into(),
            serde_json::to_value(Obj(ImageMetaPropsPayload(props))).unwrap_or(Value::Null),
        );
        ImageMetaPayload(data)
    }
}

/// `RequestSpecPayload` 1.1: what a scheduling request asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestSpecPayload {
    /// The (first) instance.
    pub instance_uuid: String,
    /// Project.
    pub project_id: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// Requested zone.
    pub availability_zone: Option<String>,
    /// Flavor.
    pub flavor: Option<Obj<FlavorPayload>>,
    /// The first forced host.
    pub force_hosts: Option<String>,
    /// The first forced node.
    pub force_nodes: Option<String>,
    /// Hosts to avoid.
    pub ignore_hosts: Option<Vec<String>>,
    /// Server group.
    pub instance_group: Option<Obj<ServerGroupPayload>>,
    /// Image.
    pub image: Option<Obj<ImageMetaPayload>>,
    /// `InstanceNUMATopologyPayload`.
    pub numa_topology: Option<Value>,
    /// `InstancePCIRequestsPayload`.
    pub pci_requests: Option<Value>,
    /// How many instances.
    pub num_instances: i64,
    /// `DestinationPayload`.
    pub requested_destination: Option<Value>,
    /// `SchedulerRetriesPayload`.
    pub retry: Option<Value>,
    /// Hints.
    pub scheduler_hints: Option<BTreeMap<String, Vec<String>>>,
    /// Security group identifiers (uuid, else name).
    pub security_groups: Vec<String>,
}
payload!(RequestSpecPayload, "RequestSpecPayload", "1.1");

fn numa_topology(raw: &Value, instance_uuid: &str) -> Value {
    let data = &raw["nova_object.data"];
    let cells: Vec<Value> = data["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let c = &c["nova_object.data"];
            let topology = match &c["cpu_topology"] {
                Value::Null => Value::Null,
                t => {
                    let t = &t["nova_object.data"];
                    primitive(
                        "VirtCPUTopologyPayload",
                        "1.0",
                        json!({"sockets": t["sockets"], "cores": t["cores"], "threads": t["threads"]}),
                    )
                }
            };
            primitive(
                "InstanceNUMACellPayload",
                "1.2",
                json!({
                    "id": c["id"],
                    "cpuset": c.get("cpuset").cloned().unwrap_or(json!([])),
                    "pcpuset": c.get("pcpuset").cloned().unwrap_or(json!([])),
                    "cpuset_reserved": c["cpuset_reserved"],
                    "memory": c["memory"],
                    "pagesize": c["pagesize"],
                    "cpu_topology": topology,
                    "cpu_pinning_raw": c["cpu_pinning_raw"],
                    "cpu_policy": c["cpu_policy"],
                    "cpu_thread_policy": c["cpu_thread_policy"],
                }),
            )
        })
        .collect();
    let uuid = data["instance_uuid"].as_str().unwrap_or(instance_uuid);
    primitive(
        "InstanceNUMATopologyPayload",
        "1.0",
        json!({
            "instance_uuid": uuid,
            "cells": cells,
            "emulator_threads_policy": data["emulator_threads_policy"],
        }),
    )
}

impl RequestSpecPayload {
    /// nova's `RequestSpecPayload(request_spec)`.
    pub fn from_spec(spec: &RequestSpec) -> Self {
        let set = |k: &str| spec.obj_attr_is_set(k);
        let uuid = spec.instance_uuid().clone();
        let pci_requests = spec.pci_requests().as_ref().filter(|_| set("pci_requests"));
        let pci_requests = pci_requests.map(|p| {
            let requests: Vec<Value> = p
                .requests()
                .iter()
                .map(|r| {
                    let d = set_fields(r);
                    primitive(
                        "InstancePCIRequestPayload",
                        "1.1",
                        json!({
                            "count": d.get("count").cloned().unwrap_or(json!(0)),
                            "spec": d.get("spec").cloned().unwrap_or(json!([])),
                            "alias_name": d.get("alias_name").cloned().unwrap_or(Value::Null),
                            "request_id": d.get("request_id").cloned().unwrap_or(Value::Null),
                            "numa_policy": d.get("numa_policy").cloned().unwrap_or(Value::Null),
                        }),
                    )
                })
                .collect();
            let instance_uuid = if p.obj_attr_is_set("instance_uuid") {
                p.instance_uuid().clone()
            } else {
                uuid.clone()
            };
            primitive(
                "InstancePCIRequestsPayload",
                "1.0",
                json!({"instance_uuid": instance_uuid, "requests": requests}),
            )
        });
        let requested_destination = spec
            .requested_destination()
            .as_ref()
            .filter(|_| set("requested_destination"))
            .map(|d| {
                let cell = d
                    .cell()
                    .as_ref()
                    .filter(|_| d.obj_attr_is_set("cell"))
                    .map(|c| {
                        primitive(
                            "CellMappingPayload",
                            "2.0",
                            json!({"uuid": c.uuid(), "name": c.name(), "disabled": c.disabled()}),
                        )
                    });
                primitive(
                    "DestinationPayload",
                    "1.0",
                    json!({
                        "host": d.host(),
                        "node": d.node(),
                        "cell": cell,
                        "aggregates": d.aggregates().as_ref().filter(|_| d.obj_attr_is_set("aggregates")),
                    }),
                )
            });
        let retry = spec.retry().as_ref().filter(|_| set("retry")).map(|r| {
            let hosts: Vec<Option<String>> = r
                .hosts()
                .objects()
                .iter()
                .map(|n| n.hypervisor_hostname().clone())
                .collect();
            primitive(
                "SchedulerRetriesPayload",
                "1.0",
                json!({"num_attempts": r.num_attempts(), "hosts": hosts}),
            )
        });
        let first = |v: &Option<Vec<String>>| v.as_ref().and_then(|v| v.first().cloned());
        RequestSpecPayload {
            project_id: spec.project_id().clone(),
            user_id: spec.user_id().clone().filter(|_| set("user_id")),
            availability_zone: spec.availability_zone().clone(),
            flavor: set("flavor").then(|| Obj(FlavorPayload::from_flavor(spec.flavor()))),
            force_hosts: first(spec.force_hosts()),
            force_nodes: first(spec.force_nodes()),
            ignore_hosts: spec.ignore_hosts().clone(),
            instance_group: spec
                .instance_group()
                .as_ref()
                .filter(|_| set("instance_group"))
                .map(|g| Obj(ServerGroupPayload::from_group(g))),
            image: spec
                .image()
                .as_ref()
                .filter(|_| set("image"))
                .map(|i| Obj(ImageMetaPayload::from_image(i))),
            numa_topology: spec
                .numa_topology()
                .as_ref()
                .filter(|_| set("numa_topology"))
                .map(|t| numa_topology(&t.0, &uuid)),
            pci_requests,
            num_instances: if set("num_instances") {
                *spec.num_instances()
            } else {
                1
            },
            requested_destination,
            retry,
            scheduler_hints: spec.scheduler_hints().clone(),
            security_groups: if set("security_groups") {
                spec.security_groups()
                    .objects()
                    .iter()
                    .map(|g| {
                        if g.obj_attr_is_set("uuid") && !g.uuid().is_empty() {
                            g.uuid().clone()
                        } else {
                            g.name().clone()
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            },
            instance_uuid: uuid,
        }
    }
}

/// `ComputeTaskPayload` 1.0: a conductor task that failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputeTaskPayload {
    /// The instance.
    pub instance_uuid: String,
    /// Its request (none for old instances).
    pub request_spec: Option<Obj<RequestSpecPayload>>,
    /// The vm state the instance was left in.
    pub state: Option<String>,
    /// What failed.
    pub reason: Obj<ExceptionPayload>,
}
payload!(ComputeTaskPayload, "ComputeTaskPayload", "1.0");

/// `InstanceExistsPayload` 2.1: an instance's usage in an audit period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceExistsPayload {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstancePayload,
    /// The audit period.
    pub audit_period: Obj<AuditPeriodPayload>,
}
payload!(InstanceExistsPayload, "InstanceExistsPayload", "2.1");

/// nova's `RequestSpec.to_legacy_request_spec_dict()` (what the legacy
/// notifications carry): the image, the flavor as `instance_type`, the
/// instance's properties and the counts.
fn legacy_request_spec(spec: &RequestSpec) -> Value {
    let set = |k: &str| spec.obj_attr_is_set(k);
    let image = spec
        .image()
        .as_ref()
        .filter(|_| set("image"))
        .map(|i| Value::Object(set_fields(i)))
        .unwrap_or_else(|| json!({}));
    json!({
        "image": image,
        "instance_type": if set("flavor") { Value::Object(set_fields(spec.flavor())) } else { Value::Null },
        "instance_properties": {
            "uuid": spec.instance_uuid(),
            "project_id": spec.project_id(),
            "user_id": spec.user_id(),
            "availability_zone": spec.availability_zone(),
        },
        "num_instances": spec.num_instances(),
        "instance_uuids": [spec.instance_uuid()],
    })
}

/// The request spec a failed task reports: none, the task's object, or
/// the legacy dict nova builds itself (a live migration's
/// `{'instance_properties': {'uuid': …}}`, which the versioned payload
/// hydrates as `RequestSpec.from_primitives(ctx, dict, {})` does).
#[derive(Debug, Clone, Copy)]
pub enum TaskSpec<'a> {
    /// No request spec (`{}` in the legacy payload, none in the versioned).
    None,
    /// The task's `RequestSpec` (`to_legacy_request_spec_dict()`).
    Object(&'a RequestSpec),
    /// nova's own legacy dict of an instance's uuid alone (live migration).
    InstanceUuid(&'a str),
}

impl<'a> From<Option<&'a RequestSpec>> for TaskSpec<'a> {
    fn from(s: Option<&'a RequestSpec>) -> Self {
        s.map_or(TaskSpec::None, TaskSpec::Object)
    }
}

impl TaskSpec<'_> {
    /// The legacy payload's `request_spec`.
    fn legacy(&self) -> Value {
        match self {
            TaskSpec::None => json!({}),
            TaskSpec::Object(s) => legacy_request_spec(s),
            TaskSpec::InstanceUuid(u) => json!({"instance_properties": {"uuid": u}}),
        }
    }

    /// The versioned payload's `RequestSpecPayload`.
    fn versioned(&self) -> Option<RequestSpecPayload> {
        match self {
            TaskSpec::None => None,
            TaskSpec::Object(s) => Some(RequestSpecPayload::from_spec(s)),
            TaskSpec::InstanceUuid(u) => {
                // `from_primitives`: the uuid, one instance, no hints;
                // project, user and zone read from the dict (absent: None).
                let mut s = RequestSpec::new().with_instance_uuid((*u).to_owned());
                s.set_num_instances(1);
                s.set_project_id(None);
                s.set_user_id(None);
                s.set_availability_zone(None);
                s.set_ignore_hosts(None);
                s.set_force_hosts(None);
                s.set_force_nodes(None);
                s.set_scheduler_hints(Some(BTreeMap::new()));
                s.set_requested_destination(None);
                Some(RequestSpecPayload::from_spec(&s))
            }
        }
    }
}

impl Notifier {
    /// `compute_task.<method>.error` (ERROR, `ComputeTaskPayload`) and the
    /// legacy `compute_task.<method>` from the conductor of `host`, after a
    /// task left instance `instance_uuid` in `state` (nova's
    /// `set_vm_state_and_notify(…, 'compute_task', method, …)`).
    #[allow(clippy::too_many_arguments)]
    pub async fn compute_task_error(
        &self,
        ctx: &RequestContext,
        host: &str,
        method: &str,
        instance_uuid: &str,
        spec: TaskSpec<'_>,
        state: &str,
        reason: ExceptionPayload,
    ) {
        if self.legacy_enabled() {
            let legacy = spec.legacy();
            let p = json!({
                "request_spec": legacy,
                "instance_properties": legacy.get("instance_properties").cloned().unwrap_or_else(|| json!({})),
                "instance_id": instance_uuid,
                "state": state,
                "method": method,
                // oslo's serializer sends `repr(exc)`; without one, its message.
                "reason": reason.legacy_repr.as_deref().unwrap_or(&reason.exception_message),
            });
            self.emit_legacy(
                ctx,
                Priority::Error,
                format!("compute_task.{host}"),
                &format!("compute_task.{method}"),
                p,
            )
            .await;
        }
        let payload = ComputeTaskPayload {
            instance_uuid: instance_uuid.to_owned(),
            request_spec: spec.versioned().map(Obj),
            state: Some(state.to_owned()),
            reason: Obj(reason),
        };
        self.emit(
            ctx,
            Priority::Error,
            format!("{}:{host}", Source::Conductor.as_str()),
            &format!("compute_task.{method}.error"),
            payload,
        )
        .await;
    }

    /// `scheduler.select_destinations.start` / `.end` (`RequestSpecPayload`)
    /// and their legacy twins from the scheduler of `host`.
    pub async fn select_destinations(
        &self,
        ctx: &RequestContext,
        host: &str,
        spec: &RequestSpec,
        phase: Phase,
    ) {
        let event = format!("scheduler.select_destinations.{}", phase.as_str());
        if self.legacy_enabled() {
            self.emit_legacy(
                ctx,
                Priority::Info,
                format!("scheduler.{host}"),
                &event,
                json!({"request_spec": legacy_request_spec(spec)}),
            )
            .await;
        }
        if !self.versioned_enabled() {
            return;
        }
        self.emit(
            ctx,
            Priority::Info,
            format!("{}:{host}", Source::Scheduler.as_str()),
            &event,
            RequestSpecPayload::from_spec(spec),
        )
        .await;
    }

    /// `instance.exists` (`InstanceExistsPayload`) and the legacy
    /// `compute.instance.exists` from compute `host`, for the current
    /// audit period (nova's `notify_usage_exists(…, current_period=True)`,
    /// sent before a rebuild, a resize, a shelve offload, ... changes what
    /// the instance uses).
    pub async fn instance_exists(&self, ctx: &RequestContext, inst: &Instance, host: &str) {
        let period = self.current_audit_period();
        self.instance_exists_in(ctx, inst, host, period).await;
    }

    /// `instance.exists` and `compute.instance.exists` for the audit
    /// period `[begin, end)` (nova's `notify_usage_exists`; the usage
    /// audit sends it for the last completed period).
    pub async fn instance_exists_in(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        (begin, end): (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
    ) {
        if !self.versioned_enabled() && !self.legacy_enabled() {
            return;
        }
        // nova's legacy audit bounds are `str(datetime)`.
        let text = |t: chrono::DateTime<Utc>| crate::audit_period::py_str(&t.naive_utc());
        self.instance_usage(
            ctx,
            inst,
            host,
            "exists",
            None,
            json!({
                "audit_period_beginning": text(begin),
                "audit_period_ending": text(end),
            }),
        )
        .await;
        if !self.versioned_enabled() {
            return;
        }
        let payload = InstanceExistsPayload {
            instance: self.instance_payload(ctx, inst),
            audit_period: Obj(AuditPeriodPayload {
                audit_period_beginning: nova_objects::field::format_datetime(&begin),
                audit_period_ending: nova_objects::field::format_datetime(&end),
            }),
        };
        self.emit(
            ctx,
            Priority::Info,
            format!("{}:{host}", Source::Compute.as_str()),
            "instance.exists",
            payload,
        )
        .await;
    }
}
