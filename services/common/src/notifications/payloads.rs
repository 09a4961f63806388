//! nova 34's versioned notification payloads
//! (`nova/notifications/objects/*.py`): the same object names, versions and
//! fields, serialised as oslo.versionedobjects primitives (namespace `nova`,
//! no `nova_object.changes`: nova resets them before sending).

use std::collections::BTreeMap;

use nova_objects::field::format_datetime;
use nova_objects::{DateTime, Flavor, Instance, KeyPair, Service, VersionedObject};
use nova_rpc::RequestContext;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

/// A payload class: its nova object name and version.
pub trait PayloadObject: Serialize {
    /// `nova_object.name`.
    const NAME: &'static str;
    /// `nova_object.version`.
    const VERSION: &'static str;
}

/// A payload as the primitive nova sends (`nova_object.name`,
/// `nova_object.namespace`, `nova_object.version`, `nova_object.data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Obj<T>(pub T);

impl<T: PayloadObject> Serialize for Obj<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("nova_object.name", T::NAME)?;
        m.serialize_entry("nova_object.namespace", "nova")?;
        m.serialize_entry("nova_object.version", T::VERSION)?;
        m.serialize_entry("nova_object.data", &self.0)?;
        m.end()
    }
}

macro_rules! payload {
    ($t:ty, $name:literal, $version:literal) => {
        impl PayloadObject for $t {
            const NAME: &'static str = $name;
            const VERSION: &'static str = $version;
        }
    };
}

fn time(t: &Option<DateTime>) -> Option<String> {
    t.as_ref().map(format_datetime)
}

/// nova's `InstancePowerStateField`: the power state code's name.
pub fn power_state_name(code: Option<i64>) -> Option<&'static str> {
    Some(match code? {
        0 => "pending",
        1 => "running",
        3 => "paused",
        4 => "shutdown",
        6 => "crashed",
        7 => "suspended",
        _ => return None,
    })
}

/// `ExceptionPayload` 1.1: what failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExceptionPayload {
    /// The module that raised.
    pub module_name: String,
    /// The function that raised.
    pub function_name: String,
    /// The exception's class (nova's names where there is one).
    pub exception: String,
    /// Its message.
    pub exception_message: String,
    /// Where it came from: the error and its causes, one per line.
    pub traceback: String,
    /// `repr(exc)` for legacy payloads (nova's `NovaException.__repr__`,
    /// `legacy::nova_exception_repr`); not part of the versioned payload.
    #[serde(skip)]
    pub legacy_repr: Option<String>,
}
payload!(ExceptionPayload, "ExceptionPayload", "1.1");

impl ExceptionPayload {
    /// A fault raised by `function_name` in `module_name`.
    pub fn new(
        module_name: &str,
        function_name: &str,
        exception: &str,
        message: impl Into<String>,
    ) -> Self {
        let exception_message = message.into();
        ExceptionPayload {
            module_name: module_name.to_owned(),
            function_name: function_name.to_owned(),
            exception: exception.to_owned(),
            traceback: format!("{module_name}::{function_name}: {exception}: {exception_message}"),
            exception_message,
            legacy_repr: None,
        }
    }

    /// The same fault, shown in legacy payloads as `repr` (nova's
    /// exception `repr`, see `legacy::nova_exception_repr`).
    pub fn with_legacy_repr(mut self, repr: String) -> Self {
        self.legacy_repr = Some(repr);
        self
    }

    /// A fault from an error (its source chain becomes the traceback).
    pub fn from_error(
        module_name: &str,
        function_name: &str,
        exception: &str,
        err: &(dyn std::error::Error + 'static),
    ) -> Self {
        let mut p = Self::new(module_name, function_name, exception, err.to_string());
        let mut cause = err.source();
        while let Some(c) = cause {
            p.traceback.push_str(&format!("\ncaused by: {c}"));
            cause = c.source();
        }
        p
    }

    /// A driver failure, named as nova names the driver's exceptions.
    pub fn from_driver(module_name: &str, function_name: &str, err: &nova_virt::Error) -> Self {
        let class = match err {
            nova_virt::Error::NotSupported { .. } => "NotImplementedError",
            nova_virt::Error::InstanceNotFound(_) => "InstanceNotFound",
            nova_virt::Error::InstanceExists(_) => "InstanceExists",
            nova_virt::Error::InvalidState { .. } => "InstanceInvalidState",
            nova_virt::Error::Hypervisor(_) => "HypervisorUnavailable",
            _ => "NovaException",
        };
        Self::from_error(module_name, function_name, class, err)
    }
}

/// `FlavorPayload` 1.4.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlavorPayload {
    /// The flavor's API id.
    pub flavorid: Option<String>,
    /// RAM.
    pub memory_mb: Option<i64>,
    /// vCPUs.
    pub vcpus: Option<i64>,
    /// Root disk.
    pub root_gb: Option<i64>,
    /// Ephemeral disk.
    pub ephemeral_gb: Option<i64>,
    /// Name.
    pub name: String,
    /// Swap.
    pub swap: i64,
    /// RXTX factor.
    pub rxtx_factor: Option<f64>,
    /// vCPU weight.
    pub vcpu_weight: Option<i64>,
    /// Disabled.
    pub disabled: bool,
    /// Public.
    pub is_public: bool,
    /// Extra specs (null when not loaded).
    pub extra_specs: Option<BTreeMap<String, String>>,
    /// Projects with access (null when not loaded, as for an instance's flavor).
    pub projects: Option<Vec<String>>,
    /// Description.
    pub description: Option<String>,
}
payload!(FlavorPayload, "FlavorPayload", "1.4");

impl FlavorPayload {
    /// nova's `FlavorPayload(flavor)`: fields not loaded on the flavor are null.
    pub fn from_flavor(f: &Flavor) -> Self {
        let set = |k: &str| f.obj_attr_is_set(k);
        FlavorPayload {
            flavorid: set("flavorid").then(|| f.flavorid().clone()),
            memory_mb: set("memory_mb").then(|| *f.memory_mb()),
            vcpus: set("vcpus").then(|| *f.vcpus()),
            root_gb: set("root_gb").then(|| *f.root_gb()),
            ephemeral_gb: set("ephemeral_gb").then(|| *f.ephemeral_gb()),
            name: f.name().clone().unwrap_or_default(),
            swap: *f.swap(),
            rxtx_factor: if set("rxtx_factor") {
                *f.rxtx_factor()
            } else {
                None
            },
            vcpu_weight: if set("vcpu_weight") {
                *f.vcpu_weight()
            } else {
                None
            },
            disabled: *f.disabled(),
            is_public: *f.is_public(),
            extra_specs: set("extra_specs").then(|| f.extra_specs().clone()),
            projects: set("projects").then(|| f.projects().clone()),
            description: if set("description") {
                f.description().clone()
            } else {
                None
            },
        }
    }
}

/// `KeypairPayload` 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeypairPayload {
    /// Owner.
    pub user_id: Option<String>,
    /// Name.
    pub name: String,
    /// Fingerprint (null before it is computed).
    pub fingerprint: Option<String>,
    /// Public key (null before it is generated).
    pub public_key: Option<String>,
    /// `ssh` or `x509`.
    pub r#type: String,
}
payload!(KeypairPayload, "KeypairPayload", "1.0");

impl KeypairPayload {
    /// From a key pair.
    pub fn from_keypair(k: &KeyPair) -> Self {
        KeypairPayload {
            user_id: k.user_id().clone(),
            name: k.name().clone(),
            fingerprint: k.fingerprint().clone(),
            public_key: k.public_key().clone(),
            r#type: if k.r#type().is_empty() {
                "ssh".to_owned()
            } else {
                k.r#type().clone()
            },
        }
    }
}

/// `ServiceStatusPayload` 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatusPayload {
    /// Host.
    pub host: Option<String>,
    /// Binary (`nova-compute`, ...).
    pub binary: Option<String>,
    /// RPC topic.
    pub topic: Option<String>,
    /// Heartbeats so far.
    pub report_count: i64,
    /// Disabled.
    pub disabled: bool,
    /// Why.
    pub disabled_reason: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Last heartbeat.
    pub last_seen_up: Option<String>,
    /// Forced down.
    pub forced_down: bool,
    /// Service version.
    pub version: i64,
    /// UUID.
    pub uuid: String,
}
payload!(ServiceStatusPayload, "ServiceStatusPayload", "1.1");

impl ServiceStatusPayload {
    /// From a service record.
    pub fn from_service(s: &Service) -> Self {
        ServiceStatusPayload {
            host: s.host().clone(),
            binary: s.binary().clone(),
            topic: s.topic().clone(),
            report_count: *s.report_count(),
            disabled: *s.disabled(),
            disabled_reason: s.disabled_reason().clone(),
            availability_zone: s.availability_zone().clone(),
            last_seen_up: time(s.last_seen_up()),
            forced_down: *s.forced_down(),
            version: *s.version(),
            uuid: s.uuid().clone(),
        }
    }
}

/// `IpPayload` 1.0: one fixed IP of a VIF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpPayload {
    /// The network's label.
    pub label: String,
    /// The VIF's MAC.
    pub mac: String,
    /// The VIF's meta.
    pub meta: BTreeMap<String, String>,
    /// The port.
    pub port_uuid: Option<String>,
    /// 4 or 6.
    pub version: i64,
    /// The address.
    pub address: String,
    /// The tap device.
    pub device_name: Option<String>,
}
payload!(IpPayload, "IpPayload", "1.0");

impl IpPayload {
    /// nova's `IpPayload.from_network_info` over a network_info (the
    /// info cache's JSON list of VIFs).
    pub fn from_network_info(network_info: &Value) -> Vec<Obj<IpPayload>> {
        let mut out = Vec::new();
        for vif in network_info.as_array().into_iter().flatten() {
            let s = |v: &Value| v.as_str().map(str::to_owned);
            let meta: BTreeMap<String, String> = vif["meta"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            for subnet in vif["network"]["subnets"].as_array().into_iter().flatten() {
                let version = subnet["version"].as_i64().unwrap_or(4);
                for ip in subnet["ips"].as_array().into_iter().flatten() {
                    if ip["type"].as_str().is_some_and(|t| t != "fixed") {
                        continue;
                    }
                    let Some(address) = s(&ip["address"]) else {
                        continue;
                    };
                    out.push(Obj(IpPayload {
                        label: s(&vif["network"]["label"]).unwrap_or_default(),
                        mac: s(&vif["address"]).unwrap_or_default(),
                        meta: meta.clone(),
                        port_uuid: s(&vif["id"]),
                        version: ip["version"].as_i64().unwrap_or(version),
                        address,
                        device_name: s(&vif["devname"]),
                    }));
                }
            }
        }
        out
    }
}

/// `AuditPeriodPayload` 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditPeriodPayload {
    /// Start.
    pub audit_period_beginning: String,
    /// End.
    pub audit_period_ending: String,
}
payload!(AuditPeriodPayload, "AuditPeriodPayload", "1.0");

/// `InstanceStateUpdatePayload` 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceStateUpdatePayload {
    /// vm state before.
    pub old_state: Option<String>,
    /// vm state after.
    pub state: Option<String>,
    /// task state before.
    pub old_task_state: Option<String>,
    /// task state after.
    pub new_task_state: Option<String>,
}
payload!(
    InstanceStateUpdatePayload,
    "InstanceStateUpdatePayload",
    "1.0"
);

/// `InstancePayload` 1.9: what every instance notification carries (its
/// subclasses flatten it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstancePayload {
    /// UUID.
    pub uuid: String,
    /// Owner.
    pub user_id: Option<String>,
    /// Project.
    pub tenant_id: Option<String>,
    /// Reservation.
    pub reservation_id: Option<String>,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// Guest host name.
    pub host_name: Option<String>,
    /// Compute host.
    pub host: Option<String>,
    /// Node.
    pub node: Option<String>,
    /// OS type.
    pub os_type: Option<String>,
    /// Architecture.
    pub architecture: Option<String>,
    /// AZ.
    pub availability_zone: Option<String>,
    /// Flavor.
    pub flavor: Obj<FlavorPayload>,
    /// Image.
    pub image_uuid: Option<String>,
    /// Key pair name.
    pub key_name: Option<String>,
    /// Kernel image.
    pub kernel_id: Option<String>,
    /// Ramdisk image.
    pub ramdisk_id: Option<String>,
    /// Times.
    pub created_at: Option<String>,
    /// Times.
    pub launched_at: Option<String>,
    /// Times.
    pub terminated_at: Option<String>,
    /// Times.
    pub deleted_at: Option<String>,
    /// Times.
    pub updated_at: Option<String>,
    /// vm state.
    pub state: Option<String>,
    /// Power state name.
    pub power_state: Option<&'static str>,
    /// Task state.
    pub task_state: Option<String>,
    /// Progress.
    pub progress: Option<i64>,
    /// Fixed IPs.
    pub ip_addresses: Vec<Obj<IpPayload>>,
    /// Volume attachments (`BlockDevicePayload`s): null unless
    /// `[notifications] bdms_in_notifications`; nova-rs attaches no volumes.
    pub block_devices: Option<Vec<Value>>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Locked.
    pub locked: bool,
    /// `AUTO` or `MANUAL`.
    pub auto_disk_config: &'static str,
    /// The request (none for periodic tasks).
    pub request_id: Option<String>,
    /// Who acted.
    pub action_initiator_user: Option<String>,
    /// Who acted.
    pub action_initiator_project: Option<String>,
    /// Why locked.
    pub locked_reason: Option<String>,
    /// Shares (`SharePayload`s): null unless `[notifications]
    /// include_share_mapping`; nova-rs attaches no shares.
    pub shares: Option<Vec<Value>>,
}

impl InstancePayload {
    /// nova's `InstancePayload(context, instance)`.
    pub fn new(ctx: &RequestContext, i: &Instance) -> Self {
        let set = |k: &str| i.obj_attr_is_set(k);
        let network_info = network_info(i);
        let flavor = if set("flavor") {
            // As nova: the instance's flavor has no projects loaded.
            let mut f = FlavorPayload::from_flavor(i.flavor());
            f.projects = None;
            f
        } else {
            FlavorPayload::from_flavor(&Flavor::new())
        };
        InstancePayload {
            uuid: i.uuid().clone(),
            user_id: i.user_id().clone(),
            tenant_id: i.project_id().clone(),
            reservation_id: i.reservation_id().clone(),
            display_name: i.display_name().clone(),
            display_description: i.display_description().clone(),
            host_name: i.hostname().clone(),
            host: i.host().clone(),
            node: i.node().clone(),
            os_type: i.os_type().clone(),
            architecture: i.architecture().clone(),
            availability_zone: i.availability_zone().clone(),
            flavor: Obj(flavor),
            image_uuid: i.image_ref().clone(),
            key_name: i.key_name().clone(),
            kernel_id: i.kernel_id().clone(),
            ramdisk_id: i.ramdisk_id().clone(),
            created_at: time(i.created_at()),
            launched_at: time(i.launched_at()),
            terminated_at: time(i.terminated_at()),
            deleted_at: time(i.deleted_at()),
            updated_at: time(i.updated_at()),
            state: i.vm_state().clone(),
            power_state: power_state_name(*i.power_state()),
            task_state: i.task_state().clone(),
            progress: *i.progress(),
            ip_addresses: IpPayload::from_network_info(&network_info),
            block_devices: None,
            metadata: i.metadata().clone(),
            locked: *i.locked(),
            auto_disk_config: if *i.auto_disk_config() {
                "AUTO"
            } else {
                "MANUAL"
            },
            request_id: (ctx.project_id().is_some() && ctx.user_id().is_some())
                .then(|| ctx.request_id().map(str::to_owned))
                .flatten(),
            action_initiator_user: ctx.user_id().map(str::to_owned),
            action_initiator_project: ctx.project_id().map(str::to_owned),
            locked_reason: i.system_metadata().get("locked_reason").cloned().flatten(),
            shares: None,
        }
    }
}

/// An instance's network_info (its info cache's list of VIFs; null when
/// it has none).
pub fn network_info(i: &Instance) -> Value {
    i.info_cache()
        .as_ref()
        .filter(|_| i.obj_attr_is_set("info_cache"))
        .and_then(|c| c.network_info().clone())
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .unwrap_or(Value::Null)
}

/// The tags of an instance (its `TagList`, when loaded).
pub fn instance_tags(i: &Instance) -> Vec<String> {
    if !i.obj_attr_is_set("tags") {
        return Vec::new();
    }
    i.tags().0["nova_object.data"]["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["nova_object.data"]["tag"].as_str().map(str::to_owned))
        .collect()
}

/// `InstanceActionPayload` 1.9: an action's start, end or error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceActionPayload {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstancePayload,
    /// What failed (`*.error`).
    pub fault: Option<Obj<ExceptionPayload>>,
}
payload!(InstanceActionPayload, "InstanceActionPayload", "1.9");

/// `InstanceCreatePayload` 1.13: `instance.create.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceCreatePayload {
    /// The action part.
    #[serde(flatten)]
    pub action: InstanceActionPayload,
    /// Its key pairs.
    pub keypairs: Vec<Obj<KeypairPayload>>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Trusted image certificates.
    pub trusted_image_certificates: Option<Vec<String>>,
    /// The hypervisor's name for it (`instance-%08x`).
    pub instance_name: Option<String>,
}
payload!(InstanceCreatePayload, "InstanceCreatePayload", "1.13");

/// The trusted certificate ids of an instance.
pub fn trusted_certs(i: &Instance) -> Option<Vec<String>> {
    if !i.obj_attr_is_set("trusted_certs") {
        return None;
    }
    let ids = i.trusted_certs().as_ref()?.0["nova_object.data"]["ids"].as_array()?;
    let ids: Vec<String> = ids
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    (!ids.is_empty()).then_some(ids)
}

impl InstanceCreatePayload {
    /// nova's `InstanceCreatePayload`.
    pub fn new(ctx: &RequestContext, i: &Instance, fault: Option<ExceptionPayload>) -> Self {
        InstanceCreatePayload {
            action: InstanceActionPayload {
                instance: InstancePayload::new(ctx, i),
                fault: fault.map(Obj),
            },
            keypairs: if i.obj_attr_is_set("keypairs") {
                i.keypairs()
                    .objects()
                    .iter()
                    .map(|k| Obj(KeypairPayload::from_keypair(k)))
                    .collect()
            } else {
                Vec::new()
            },
            tags: instance_tags(i),
            trusted_image_certificates: trusted_certs(i),
            instance_name: i
                .obj_attr_is_set("id")
                .then(|| format!("instance-{:08x}", i.id())),
        }
    }
}

/// `InstanceUpdatePayload` 2.1: `instance.update`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceUpdatePayload {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstancePayload,
    /// The state change.
    pub state_update: Obj<InstanceStateUpdatePayload>,
    /// The current audit period.
    pub audit_period: Obj<AuditPeriodPayload>,
    /// The name before a rename.
    pub old_display_name: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}
payload!(InstanceUpdatePayload, "InstanceUpdatePayload", "2.1");

/// `InstanceActionRescuePayload` 1.4: `instance.rescue.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceActionRescuePayload {
    /// The action part.
    #[serde(flatten)]
    pub action: InstanceActionPayload,
    /// The rescue image.
    pub rescue_image_ref: Option<String>,
}
payload!(
    InstanceActionRescuePayload,
    "InstanceActionRescuePayload",
    "1.4"
);

/// `InstanceActionRebuildPayload` 1.10: `instance.rebuild.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceActionRebuildPayload {
    /// The action part.
    #[serde(flatten)]
    pub action: InstanceActionPayload,
    /// Trusted image certificates.
    pub trusted_image_certificates: Option<Vec<String>>,
}
payload!(
    InstanceActionRebuildPayload,
    "InstanceActionRebuildPayload",
    "1.10"
);

/// `InstanceActionSnapshotPayload` 1.10: `instance.snapshot.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceActionSnapshotPayload {
    /// The action part.
    #[serde(flatten)]
    pub action: InstanceActionPayload,
    /// The snapshot image.
    pub snapshot_image_id: String,
}
payload!(
    InstanceActionSnapshotPayload,
    "InstanceActionSnapshotPayload",
    "1.10"
);

/// `InstanceActionResizePrepPayload` 1.4: `instance.resize_prep.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceActionResizePrepPayload {
    /// The action part.
    #[serde(flatten)]
    pub action: InstanceActionPayload,
    /// The flavor the instance is resized to.
    pub new_flavor: Option<Obj<FlavorPayload>>,
}
payload!(
    InstanceActionResizePrepPayload,
    "InstanceActionResizePrepPayload",
    "1.4"
);
