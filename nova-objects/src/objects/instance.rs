//! Nova's `Instance`, `InstanceList` objects (fields, types and versions as in nova 34).

use std::collections::BTreeMap;

use crate::objects::{
    Flavor, InstanceFault, InstanceInfoCache, InstancePCIRequests, KeyPairList, SecurityGroupList,
    ServiceList,
};
use crate::{DateTime, RawObject, nova_object};

/// Nova's `Instance` object (version 2.8).
#[nova_object(name = "Instance", version = "2.8")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instance {
    id: i64,
    user_id: Option<String>,
    project_id: Option<String>,
    image_ref: Option<String>,
    kernel_id: Option<String>,
    ramdisk_id: Option<String>,
    hostname: Option<String>,
    launch_index: Option<i64>,
    key_name: Option<String>,
    key_data: Option<String>,
    power_state: Option<i64>,
    vm_state: Option<String>,
    task_state: Option<String>,
    #[field(since = "2.1")]
    services: ServiceList,
    memory_mb: Option<i64>,
    vcpus: Option<i64>,
    root_gb: Option<i64>,
    ephemeral_gb: Option<i64>,
    #[field(kind = "UUID")]
    ephemeral_key_uuid: Option<String>,
    host: Option<String>,
    node: Option<String>,
    #[field(since = "2.8")]
    compute_id: Option<i64>,
    instance_type_id: Option<i64>,
    user_data: Option<String>,
    reservation_id: Option<String>,
    launched_at: Option<DateTime>,
    terminated_at: Option<DateTime>,
    availability_zone: Option<String>,
    display_name: Option<String>,
    display_description: Option<String>,
    launched_on: Option<String>,
    locked: bool,
    locked_by: Option<String>,
    os_type: Option<String>,
    architecture: Option<String>,
    vm_mode: Option<String>,
    #[field(kind = "UUID")]
    uuid: String,
    root_device_name: Option<String>,
    default_ephemeral_device: Option<String>,
    default_swap_device: Option<String>,
    config_drive: Option<String>,
    #[field(kind = "IPV4Address")]
    access_ip_v4: Option<String>,
    #[field(kind = "IPV6Address")]
    access_ip_v6: Option<String>,
    auto_disk_config: bool,
    progress: Option<i64>,
    shutdown_terminate: bool,
    disable_terminate: bool,
    cell_name: Option<String>,
    metadata: BTreeMap<String, String>,
    #[field(kind = "Dict(String?)")]
    system_metadata: BTreeMap<String, Option<String>>,
    info_cache: Option<InstanceInfoCache>,
    security_groups: SecurityGroupList,
    fault: Option<InstanceFault>,
    cleaned: bool,
    #[field(kind = "Object(PciDeviceList)")]
    pci_devices: Option<RawObject>,
    #[field(kind = "Object(InstanceNUMATopology)")]
    numa_topology: Option<RawObject>,
    pci_requests: Option<InstancePCIRequests>,
    #[field(since = "2.3", kind = "Object(InstanceDeviceMetadata)")]
    device_metadata: Option<RawObject>,
    #[field(kind = "Object(TagList)")]
    tags: RawObject,
    flavor: Flavor,
    old_flavor: Option<Flavor>,
    new_flavor: Option<Flavor>,
    #[field(kind = "Object(VirtCPUModel)")]
    vcpu_model: Option<RawObject>,
    #[field(kind = "Object(EC2Ids)")]
    ec2_ids: RawObject,
    #[field(kind = "Object(MigrationContext)")]
    migration_context: Option<RawObject>,
    #[field(since = "2.2")]
    keypairs: KeyPairList,
    #[field(since = "2.4", kind = "Object(TrustedCerts)")]
    trusted_certs: Option<RawObject>,
    #[field(since = "2.6")]
    hidden: bool,
    #[field(since = "2.7", kind = "Object(ResourceList)")]
    resources: Option<RawObject>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `InstanceList` object (version 2.6).
#[nova_object(name = "InstanceList", version = "2.6", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceList {
    objects: Vec<Instance>,
}

/// How much of the instance quotas one scope uses: its live instances
/// and their vCPUs and RAM (MiB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    /// Instances.
    pub instances: i64,
    /// Their vCPUs (`cores`).
    pub cores: i64,
    /// Their RAM in MiB (`ram`).
    pub ram: i64,
}

impl UsageCounts {
    /// The count of quota resource `resource` (`instances`, `cores`,
    /// `ram`).
    pub fn get(&self, resource: &str) -> Option<i64> {
        match resource {
            "instances" => Some(self.instances),
            "cores" => Some(self.cores),
            "ram" => Some(self.ram),
            _ => None,
        }
    }

    fn to_value(self) -> serde_json::Value {
        serde_json::json!({"instances": self.instances, "cores": self.cores, "ram": self.ram})
    }

    fn from_value(v: &serde_json::Value) -> crate::Result<Self> {
        let n = |k: &str| {
            v.get(k).and_then(serde_json::Value::as_i64).ok_or_else(|| {
                crate::Error::InvalidPrimitive(format!("instance counts: no integer {k} in {v}"))
            })
        };
        Ok(UsageCounts {
            instances: n("instances")?,
            cores: n("cores")?,
            ram: n("ram")?,
        })
    }
}

/// Nova's `InstanceList.get_counts(project_id, user_id=None)`: what a
/// project's instances use and, when a user is named, that user's in
/// it. Deleted, soft-deleted (`vm_state` `soft-delete`) and hidden
/// instances do not count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceCounts {
    /// The project's.
    pub project: UsageCounts,
    /// The user's in the project (when one was named).
    pub user: Option<UsageCounts>,
}

impl InstanceCounts {
    /// As nova answers it: `{"project": {"instances": n, "cores": n,
    /// "ram": n}, "user": {...}}` (`user` only when one was named).
    pub fn to_value(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"project": self.project.to_value()});
        if let Some(u) = self.user {
            v["user"] = u.to_value();
        }
        v
    }

    /// Read from nova's answer.
    pub fn from_value(v: &serde_json::Value) -> crate::Result<Self> {
        let project = v.get("project").ok_or_else(|| {
            crate::Error::InvalidPrimitive(format!("instance counts without a project: {v}"))
        })?;
        Ok(InstanceCounts {
            project: UsageCounts::from_value(project)?,
            user: v.get("user").map(UsageCounts::from_value).transpose()?,
        })
    }
}

/// [`InstanceCounts`] of a store that has no query of its own: the
/// project's instances listed and added up.
pub(crate) async fn counts_by_listing<S: crate::ObjectStore + ?Sized>(
    store: &S,
    ctx: &nova_rpc::RequestContext,
    project_id: &str,
    user_id: Option<&str>,
) -> crate::Result<InstanceCounts> {
    use crate::VersionedObject as _;
    let q = crate::ListQuery::new().filter("project_id", project_id);
    let mut out = InstanceCounts {
        user: user_id.map(|_| UsageCounts::default()),
        ..InstanceCounts::default()
    };
    for v in store.list(ctx, Instance::NAME, &q).await? {
        let i: Instance = crate::primitive::from_value_owned(v)?;
        if i.vm_state().as_deref() == Some("soft-delete") || *i.hidden() {
            continue;
        }
        let add = |c: &mut UsageCounts| {
            c.instances += 1;
            c.cores += i.vcpus().unwrap_or(0);
            c.ram += i.memory_mb().unwrap_or(0);
        };
        add(&mut out.project);
        if let Some(u) = &mut out.user
            && i.user_id().as_deref() == user_id
        {
            add(u);
        }
    }
    Ok(out)
}
