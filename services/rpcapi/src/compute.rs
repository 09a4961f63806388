//! nova-compute's RPC interface (`nova/compute/rpcapi.py`).
//!
//! Topic `compute`, one server per host (`compute.<host>`), no namespace.
//! The manager serves 6.x; the client sends 6.0 for the methods here,
//! capped by `[upgrade_levels] compute`.
//!
//! Version history kept here (the methods this project implements):
//! * 6.0 — Yoga: the 6.x interface (`build_and_run_instance` with
//!   `host_list`, `accel_uuids`; `terminate_instance(instance, bdms)`;
//!   `reboot_instance`, `stop_instance`, `start_instance`).
//! * 6.5 — the server version Nova 34 runs (what our manager announces).

use std::sync::Arc;

use nova_rpc::{RequestContext, Result, RpcClient, Target, Transport, Version};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The topic.
pub const TOPIC: &str = "compute";
/// What the manager implements.
pub const SERVER_VERSION: Version = Version::new(6, 5);
/// What the client sends.
pub const CLIENT_VERSION: Version = Version::new(6, 0);
/// `[upgrade_levels] compute` release names (nova's `VERSION_ALIASES`).
pub const VERSION_ALIASES: &[(&str, Version)] = &[
    ("queens", Version::new(5, 0)),
    ("rocky", Version::new(5, 0)),
    ("stein", Version::new(5, 1)),
    ("train", Version::new(5, 3)),
    ("ussuri", Version::new(5, 11)),
    ("victoria", Version::new(5, 12)),
    ("wallaby", Version::new(6, 0)),
    ("xena", Version::new(6, 0)),
    ("yoga", Version::new(6, 0)),
    ("zed", Version::new(6, 1)),
    ("antelope", Version::new(6, 2)),
    ("bobcat", Version::new(6, 2)),
    ("caracal", Version::new(6, 3)),
    ("dalmatian", Version::new(6, 3)),
    ("epoxy", Version::new(6, 4)),
    ("flamingo", Version::new(6, 4)),
    ("gazpacho", Version::new(6, 5)),
];

/// `build_and_run_instance` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildAndRunInstance {
    /// The Instance primitive.
    pub instance: Value,
    /// The image (a dict of image metadata).
    #[serde(default)]
    pub image: Value,
    /// The RequestSpec primitive.
    #[serde(default)]
    pub request_spec: Value,
    /// Legacy filter properties (`retry` with `num_attempts`, `hosts`).
    #[serde(default)]
    pub filter_properties: Value,
    /// Accelerator request uuids.
    #[serde(default)]
    pub accel_uuids: Vec<String>,
    /// Admin password.
    #[serde(default)]
    pub admin_password: Option<String>,
    /// Files to inject.
    #[serde(default)]
    pub injected_files: Vec<Value>,
    /// NetworkRequestList primitive, if any.
    #[serde(default)]
    pub requested_networks: Value,
    /// Security group names.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// BlockDeviceMappingList primitive.
    #[serde(default)]
    pub block_device_mapping: Value,
    /// The node to build on.
    #[serde(default)]
    pub node: Option<String>,
    /// SchedulerLimits as a dict.
    #[serde(default)]
    pub limits: Value,
    /// The remaining alternates (Selection primitives) for reschedules.
    #[serde(default)]
    pub host_list: Vec<Value>,
}

/// Arguments of the methods that only take the instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InstanceArg {
    /// The Instance primitive.
    pub instance: Value,
}

/// `terminate_instance` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TerminateInstance {
    /// The Instance primitive.
    pub instance: Value,
    /// BlockDeviceMappingList primitive.
    #[serde(default)]
    pub bdms: Value,
}

/// `reboot_instance` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RebootInstance {
    /// The Instance primitive.
    pub instance: Value,
    /// Block device info.
    #[serde(default)]
    pub block_device_info: Value,
    /// `SOFT` or `HARD`.
    pub reboot_type: String,
}

/// `stop_instance` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StopInstance {
    /// The Instance primitive.
    pub instance: Value,
    /// Let the guest shut down cleanly first.
    #[serde(default = "yes")]
    pub clean_shutdown: bool,
}

fn yes() -> bool {
    true
}

/// The client side (`ComputeAPI`).
#[derive(Debug, Clone)]
pub struct ComputeApi {
    client: RpcClient,
}

impl ComputeApi {
    /// A client on `transport`, sending at most `cap` (None: no cap).
    pub fn new(transport: Arc<dyn Transport>, cap: Option<Version>) -> Self {
        ComputeApi {
            client: RpcClient::new(transport, Target::topic(TOPIC))
                .version(CLIENT_VERSION)
                .version_cap(cap),
        }
    }

    fn to_host(&self, host: &str) -> RpcClient {
        self.client.prepare().server(host)
    }

    /// Casts `build_and_run_instance` to `compute.<host>`.
    pub async fn build_and_run_instance(
        &self,
        ctx: &RequestContext,
        host: &str,
        args: &BuildAndRunInstance,
    ) -> Result<()> {
        self.to_host(host)
            .cast(ctx, "build_and_run_instance", to_value(args))
            .await
    }

    /// Casts `terminate_instance`.
    pub async fn terminate_instance(
        &self,
        ctx: &RequestContext,
        host: &str,
        instance: Value,
    ) -> Result<()> {
        let args = TerminateInstance {
            instance,
            bdms: json!(null),
        };
        self.to_host(host)
            .cast(ctx, "terminate_instance", to_value(&args))
            .await
    }

    /// Casts `reboot_instance` (`SOFT` or `HARD`).
    pub async fn reboot_instance(
        &self,
        ctx: &RequestContext,
        host: &str,
        instance: Value,
        reboot_type: &str,
    ) -> Result<()> {
        let args = RebootInstance {
            instance,
            block_device_info: Value::Null,
            reboot_type: reboot_type.to_owned(),
        };
        self.to_host(host)
            .cast(ctx, "reboot_instance", to_value(&args))
            .await
    }

    /// Casts `stop_instance`.
    pub async fn stop_instance(
        &self,
        ctx: &RequestContext,
        host: &str,
        instance: Value,
    ) -> Result<()> {
        let args = StopInstance {
            instance,
            clean_shutdown: true,
        };
        self.to_host(host)
            .cast(ctx, "stop_instance", to_value(&args))
            .await
    }

    /// Casts `start_instance`.
    pub async fn start_instance(
        &self,
        ctx: &RequestContext,
        host: &str,
        instance: Value,
    ) -> Result<()> {
        self.to_host(host)
            .cast(ctx, "start_instance", to_value(&InstanceArg { instance }))
            .await
    }
}

pub(crate) fn to_value<T: Serialize>(v: &T) -> Value {
    // Argument structs hold only JSON values, strings and numbers.
    serde_json::to_value(v).unwrap_or(Value::Null)
}
