//! The tables behind the objects (nova's table names), one entry each.
//!
//! A table stores the listed fields of its object class, one column per
//! field, named as the field. Column types follow the field types:
//! integers `BIGINT`, strings `VARCHAR(255)` (or `TEXT` where listed in
//! `text`), booleans, floats `DOUBLE`, datetimes (UTC, whole seconds, as
//! nova on MySQL), and structured values (dicts, lists, nested objects) as
//! JSON text holding the field's primitive. Every table has an `id BIGINT`
//! auto-increment primary key; classes with a `deleted` field are soft
//! deleted (`deleted` = the row id, `deleted_at` set, as nova does, so
//! unique keys can include `deleted`). Fields not listed are not stored:
//! they are derived or live in another table (`Instance.info_cache`,
//! `Instance.fault`, `Instance.services`).

use crate::object::ObjectClass;
use crate::registry::registry;

/// One table.
#[derive(Debug)]
pub(crate) struct Table {
    /// SQL name.
    pub name: &'static str,
    /// Object class stored.
    pub object: &'static str,
    /// Its list class, if any (indirection's `get_by_filters`).
    pub list: Option<&'static str>,
    /// Stored fields (`id` first when the class has one).
    pub columns: &'static [&'static str],
    /// String fields that need `TEXT`.
    pub text: &'static [&'static str],
    /// Unique keys (`deleted` is appended on soft-deleted tables).
    pub unique: &'static [&'static [&'static str]],
    /// Secondary indexes.
    pub indexes: &'static [&'static [&'static str]],
}

impl Table {
    pub(crate) fn class(&self) -> &'static ObjectClass {
        // Every table names a class of this crate (tested).
        registry()
            .get(self.object)
            .unwrap_or_else(|| unreachable!("table {} names unknown class", self.name))
    }

    pub(crate) fn soft_delete(&self) -> bool {
        self.class().field("deleted").is_some()
    }

    pub(crate) fn stores(&self, field: &str) -> bool {
        self.columns.contains(&field)
    }

    /// The field that identifies rows in markers and lookups.
    pub(crate) fn marker_key(&self) -> &'static str {
        if self.stores("uuid") { "uuid" } else { "id" }
    }
}

/// Every table, in creation order.
pub(crate) static TABLES: &[&Table] = &[
    &INSTANCES,
    &INSTANCE_INFO_CACHES,
    &INSTANCE_FAULTS,
    &INSTANCE_ACTIONS,
    &INSTANCE_ACTIONS_EVENTS,
    &BLOCK_DEVICE_MAPPING,
    &MIGRATIONS,
    &COMPUTE_NODES,
    &SERVICES,
    &CONSOLE_AUTH_TOKENS,
    &FLAVORS,
    &KEY_PAIRS,
    &AGGREGATES,
    &INSTANCE_GROUPS,
    &REQUEST_SPECS,
    &BUILD_REQUESTS,
    &CELL_MAPPINGS,
    &HOST_MAPPINGS,
    &INSTANCE_MAPPINGS,
    &TASK_LOG,
    &VIRTUAL_INTERFACES,
];

/// The table storing class `objname` (or its list class).
pub(crate) fn table_for(objname: &str) -> Option<&'static Table> {
    TABLES
        .iter()
        .copied()
        .find(|t| t.object == objname || t.list == Some(objname))
}

const TIMES: [&str; 4] = ["created_at", "updated_at", "deleted_at", "deleted"];

macro_rules! cols {
    ($($c:literal),* $(,)?) => { &[$($c),*] };
}

pub(crate) static INSTANCES: Table = Table {
    name: "instances",
    object: "Instance",
    list: Some("InstanceList"),
    columns: cols![
        "id",
        "uuid",
        "user_id",
        "project_id",
        "image_ref",
        "kernel_id",
        "ramdisk_id",
        "hostname",
        "launch_index",
        "key_name",
        "key_data",
        "power_state",
        "vm_state",
        "task_state",
        "memory_mb",
        "vcpus",
        "root_gb",
        "ephemeral_gb",
        "ephemeral_key_uuid",
        "host",
        "node",
        "compute_id",
        "instance_type_id",
        "user_data",
        "reservation_id",
        "launched_at",
        "terminated_at",
        "availability_zone",
        "display_name",
        "display_description",
        "launched_on",
        "locked",
        "locked_by",
        "os_type",
        "architecture",
        "vm_mode",
        "root_device_name",
        "default_ephemeral_device",
        "default_swap_device",
        "config_drive",
        "access_ip_v4",
        "access_ip_v6",
        "auto_disk_config",
        "progress",
        "shutdown_terminate",
        "disable_terminate",
        "cell_name",
        "metadata",
        "system_metadata",
        "security_groups",
        "cleaned",
        "pci_devices",
        "numa_topology",
        "pci_requests",
        "device_metadata",
        "tags",
        "flavor",
        "old_flavor",
        "new_flavor",
        "vcpu_model",
        "ec2_ids",
        "migration_context",
        "keypairs",
        "trusted_certs",
        "hidden",
        "resources",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &["key_data", "user_data", "display_description"],
    unique: &[&["uuid"]],
    indexes: &[
        &["project_id"],
        &["host", "node"],
        &["task_state"],
        &["updated_at"],
        &["created_at"],
    ],
};

static INSTANCE_INFO_CACHES: Table = Table {
    name: "instance_info_caches",
    object: "InstanceInfoCache",
    list: None,
    columns: &[
        "instance_uuid",
        "network_info",
        TIMES[0],
        TIMES[1],
        TIMES[2],
        TIMES[3],
    ],
    text: &[],
    unique: &[&["instance_uuid"]],
    indexes: &[],
};

static INSTANCE_FAULTS: Table = Table {
    name: "instance_faults",
    object: "InstanceFault",
    list: Some("InstanceFaultList"),
    columns: cols![
        "id",
        "instance_uuid",
        "code",
        "message",
        "details",
        "host",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &["details"],
    unique: &[],
    indexes: &[&["instance_uuid"]],
};

static INSTANCE_ACTIONS: Table = Table {
    name: "instance_actions",
    object: "InstanceAction",
    list: Some("InstanceActionList"),
    columns: cols![
        "id",
        "action",
        "instance_uuid",
        "request_id",
        "user_id",
        "project_id",
        "start_time",
        "finish_time",
        "message",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &[],
    unique: &[],
    indexes: &[&["instance_uuid"], &["request_id"]],
};

static INSTANCE_ACTIONS_EVENTS: Table = Table {
    name: "instance_actions_events",
    object: "InstanceActionEvent",
    list: Some("InstanceActionEventList"),
    columns: cols![
        "id",
        "event",
        "action_id",
        "start_time",
        "finish_time",
        "result",
        "traceback",
        "host",
        "details",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &["traceback", "details"],
    unique: &[],
    indexes: &[&["action_id"]],
};

static BLOCK_DEVICE_MAPPING: Table = Table {
    name: "block_device_mapping",
    object: "BlockDeviceMapping",
    list: Some("BlockDeviceMappingList"),
    columns: cols![
        "id",
        "uuid",
        "instance_uuid",
        "source_type",
        "destination_type",
        "guest_format",
        "device_type",
        "disk_bus",
        "boot_index",
        "device_name",
        "delete_on_termination",
        "snapshot_id",
        "volume_id",
        "volume_size",
        "image_id",
        "no_device",
        "connection_info",
        "tag",
        "attachment_id",
        "volume_type",
        "encrypted",
        "encryption_secret_uuid",
        "encryption_format",
        "encryption_options",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &["connection_info", "encryption_options"],
    unique: &[&["uuid"]],
    indexes: &[&["instance_uuid"], &["volume_id"]],
};

static MIGRATIONS: Table = Table {
    name: "migrations",
    object: "Migration",
    list: Some("MigrationList"),
    columns: cols![
        "id",
        "uuid",
        "source_compute",
        "dest_compute",
        "source_node",
        "dest_node",
        "dest_compute_id",
        "dest_host",
        "old_instance_type_id",
        "new_instance_type_id",
        "instance_uuid",
        "status",
        "migration_type",
        "hidden",
        "memory_total",
        "memory_processed",
        "memory_remaining",
        "disk_total",
        "disk_processed",
        "disk_remaining",
        "cross_cell_move",
        "user_id",
        "project_id",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &[],
    unique: &[&["uuid"]],
    indexes: &[&["instance_uuid", "status"], &["source_compute", "status"]],
};

static COMPUTE_NODES: Table = Table {
    name: "compute_nodes",
    object: "ComputeNode",
    list: Some("ComputeNodeList"),
    columns: cols![
        "id",
        "uuid",
        "service_id",
        "host",
        "vcpus",
        "memory_mb",
        "local_gb",
        "vcpus_used",
        "memory_mb_used",
        "local_gb_used",
        "hypervisor_type",
        "hypervisor_version",
        "hypervisor_hostname",
        "free_ram_mb",
        "free_disk_gb",
        "current_workload",
        "running_vms",
        "cpu_info",
        "disk_available_least",
        "metrics",
        "stats",
        "host_ip",
        "numa_topology",
        "supported_hv_specs",
        "pci_device_pools",
        "cpu_allocation_ratio",
        "ram_allocation_ratio",
        "disk_allocation_ratio",
        "mapped",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &["cpu_info", "metrics", "numa_topology"],
    unique: &[&["uuid"], &["host", "hypervisor_hostname"]],
    indexes: &[],
};

static SERVICES: Table = Table {
    name: "services",
    object: "Service",
    list: Some("ServiceList"),
    columns: cols![
        "id",
        "uuid",
        "host",
        "binary",
        "topic",
        "report_count",
        "disabled",
        "disabled_reason",
        "availability_zone",
        "last_seen_up",
        "forced_down",
        "version",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &[],
    unique: &[&["uuid"], &["host", "binary"], &["host", "topic"]],
    indexes: &[],
};

static CONSOLE_AUTH_TOKENS: Table = Table {
    name: "console_auth_tokens",
    object: "ConsoleAuthToken",
    list: None,
    columns: cols![
        "id",
        "console_type",
        "host",
        "port",
        "tls_port",
        "internal_access_path",
        "instance_uuid",
        "access_url_base",
        "token",
        "expires",
        "created_at",
        "updated_at",
    ],
    text: &[],
    unique: &[&["token"]],
    indexes: &[&["instance_uuid"], &["expires"]],
};

static FLAVORS: Table = Table {
    name: "flavors",
    object: "Flavor",
    list: Some("FlavorList"),
    columns: cols![
        "id",
        "name",
        "memory_mb",
        "vcpus",
        "root_gb",
        "ephemeral_gb",
        "flavorid",
        "swap",
        "rxtx_factor",
        "vcpu_weight",
        "disabled",
        "is_public",
        "extra_specs",
        "projects",
        "description",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &["description"],
    unique: &[&["flavorid"], &["name"]],
    indexes: &[],
};

static KEY_PAIRS: Table = Table {
    name: "key_pairs",
    object: "KeyPair",
    list: Some("KeyPairList"),
    columns: cols![
        "id",
        "name",
        "user_id",
        "fingerprint",
        "public_key",
        "type",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &["public_key"],
    unique: &[&["user_id", "name"]],
    indexes: &[],
};

static AGGREGATES: Table = Table {
    name: "aggregates",
    object: "Aggregate",
    list: Some("AggregateList"),
    columns: cols![
        "id",
        "uuid",
        "name",
        "hosts",
        "metadata",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &[],
    unique: &[&["uuid"], &["name"]],
    indexes: &[],
};

static INSTANCE_GROUPS: Table = Table {
    name: "instance_groups",
    object: "InstanceGroup",
    list: Some("InstanceGroupList"),
    columns: cols![
        "id",
        "user_id",
        "project_id",
        "uuid",
        "name",
        "policies",
        "members",
        "hosts",
        "policy",
        "_rules",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &[],
    unique: &[&["uuid"]],
    indexes: &[&["project_id"]],
};

static REQUEST_SPECS: Table = Table {
    name: "request_specs",
    object: "RequestSpec",
    list: None,
    columns: cols![
        "id",
        "instance_uuid",
        "image",
        "numa_topology",
        "pci_requests",
        "project_id",
        "user_id",
        "availability_zone",
        "flavor",
        "num_instances",
        "ignore_hosts",
        "force_hosts",
        "force_nodes",
        "requested_destination",
        "retry",
        "limits",
        "instance_group",
        "scheduler_hints",
        "security_groups",
        "network_metadata",
        "is_bfv",
        "requested_resources",
        "request_level_params",
        "requested_networks",
    ],
    text: &[],
    unique: &[&["instance_uuid"]],
    indexes: &[],
};

static BUILD_REQUESTS: Table = Table {
    name: "build_requests",
    object: "BuildRequest",
    list: Some("BuildRequestList"),
    columns: cols![
        "id",
        "instance_uuid",
        "project_id",
        "instance",
        "block_device_mappings",
        "tags",
        "created_at",
        "updated_at",
    ],
    text: &[],
    unique: &[&["instance_uuid"]],
    indexes: &[&["project_id"]],
};

static CELL_MAPPINGS: Table = Table {
    name: "cell_mappings",
    object: "CellMapping",
    list: Some("CellMappingList"),
    columns: cols![
        "id",
        "uuid",
        "name",
        "transport_url",
        "database_connection",
        "disabled",
        "created_at",
        "updated_at",
    ],
    text: &["transport_url", "database_connection"],
    unique: &[&["uuid"]],
    indexes: &[],
};

static HOST_MAPPINGS: Table = Table {
    name: "host_mappings",
    object: "HostMapping",
    list: Some("HostMappingList"),
    columns: cols!["id", "host", "cell_mapping", "created_at", "updated_at"],
    text: &[],
    unique: &[&["host"]],
    indexes: &[],
};

static INSTANCE_MAPPINGS: Table = Table {
    name: "instance_mappings",
    object: "InstanceMapping",
    list: Some("InstanceMappingList"),
    columns: cols![
        "id",
        "instance_uuid",
        "cell_mapping",
        "project_id",
        "user_id",
        "queued_for_delete",
        "created_at",
        "updated_at",
    ],
    text: &[],
    unique: &[&["instance_uuid"]],
    indexes: &[&["project_id"]],
};

/// Nova's `task_log`: one row per (task, host, period) a periodic task ran
/// over (`instance_usage_audit`); added by migration 2.
pub(crate) static TASK_LOG: Table = Table {
    name: "task_log",
    object: "TaskLog",
    list: Some("TaskLogList"),
    columns: cols![
        "id",
        "task_name",
        "state",
        "host",
        "period_beginning",
        "period_ending",
        "message",
        "task_items",
        "errors",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &[],
    unique: &[&["task_name", "host", "period_beginning", "period_ending"]],
    indexes: &[&["period_beginning"], &["host"], &["period_ending"]],
};

/// Nova's `virtual_interfaces`: one row per port of an instance, with the
/// tag the user gave it; added by migration 3. nova's unique key is
/// (`address`, `deleted`).
pub(crate) static VIRTUAL_INTERFACES: Table = Table {
    name: "virtual_interfaces",
    object: "VirtualInterface",
    list: Some("VirtualInterfaceList"),
    columns: cols![
        "id",
        "address",
        "network_id",
        "instance_uuid",
        "uuid",
        "tag",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    ],
    text: &[],
    unique: &[&["address"]],
    indexes: &[&["instance_uuid"], &["uuid"], &["network_id"]],
};
