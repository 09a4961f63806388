//! nova-conductor's RPC interface (`nova/conductor/rpcapi.py`).
//!
//! Topic `conductor`. Two endpoints: the object indirection API (no
//! namespace, 3.0; served by `nova_objects::conductor_object_endpoint`)
//! and the compute-task API (namespace `compute_task`, 1.26).
//!
//! compute_task version history (the methods implemented here):
//! * 1.10 — `build_instances` takes `request_spec` as a primitive.
//! * 1.15 — `build_instances` takes `host_lists` (alternates).
//! * 1.17 — `schedule_and_build_instances` takes `tags`.
//! * 1.26 — what Nova 34 serves.

use std::sync::Arc;

use nova_rpc::{RequestContext, Result, RpcClient, Target, Transport, Version};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compute::to_value;

/// The topic.
pub const TOPIC: &str = "conductor";
/// The compute-task namespace.
pub const COMPUTE_TASK_NAMESPACE: &str = "compute_task";
/// What the compute-task endpoint implements.
pub const COMPUTE_TASK_VERSION: Version = Version::new(1, 26);

/// `schedule_and_build_instances` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScheduleAndBuildInstances {
    /// BuildRequest primitives, one per instance.
    pub build_requests: Vec<Value>,
    /// RequestSpec primitives, one per instance.
    pub request_specs: Vec<Value>,
    /// Image metadata dict.
    #[serde(default)]
    pub image: Value,
    /// Admin password.
    #[serde(default)]
    pub admin_password: Option<String>,
    /// Files to inject.
    #[serde(default)]
    pub injected_files: Vec<Value>,
    /// NetworkRequestList primitive.
    #[serde(default)]
    pub requested_networks: Value,
    /// BlockDeviceMappingList primitive.
    #[serde(default)]
    pub block_device_mappings: Value,
    /// TagList primitive.
    #[serde(default)]
    pub tags: Value,
}

/// `build_instances` arguments (the reschedule path).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildInstances {
    /// Instance primitives.
    pub instances: Vec<Value>,
    /// Image metadata dict.
    #[serde(default)]
    pub image: Value,
    /// Legacy filter properties (`retry`).
    #[serde(default)]
    pub filter_properties: Value,
    /// Admin password.
    #[serde(default)]
    pub admin_password: Option<String>,
    /// Files to inject.
    #[serde(default)]
    pub injected_files: Vec<Value>,
    /// NetworkRequestList primitive.
    #[serde(default)]
    pub requested_networks: Value,
    /// Security groups.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// BDMs.
    #[serde(default)]
    pub block_device_mapping: Value,
    /// Legacy BDM format.
    #[serde(default)]
    pub legacy_bdm: bool,
    /// RequestSpec primitive.
    #[serde(default)]
    pub request_spec: Value,
    /// Per instance: the alternates still to try (Selection primitives).
    #[serde(default)]
    pub host_lists: Vec<Vec<Value>>,
}

/// The compute-task client (`ComputeTaskAPI`).
#[derive(Debug, Clone)]
pub struct ComputeTaskApi {
    client: RpcClient,
}

impl ComputeTaskApi {
    /// A client on `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        ComputeTaskApi {
            client: RpcClient::new(
                transport,
                Target::topic(TOPIC).with_namespace(COMPUTE_TASK_NAMESPACE),
            ),
        }
    }

    /// Casts `schedule_and_build_instances` (1.17).
    pub async fn schedule_and_build_instances(
        &self,
        ctx: &RequestContext,
        args: &ScheduleAndBuildInstances,
    ) -> Result<()> {
        self.client
            .prepare()
            .version(Version::new(1, 17))
            .cast(ctx, "schedule_and_build_instances", to_value(args))
            .await
    }

    /// Casts `build_instances` (1.15, with alternates).
    pub async fn build_instances(&self, ctx: &RequestContext, args: &BuildInstances) -> Result<()> {
        self.client
            .prepare()
            .version(Version::new(1, 15))
            .cast(ctx, "build_instances", to_value(args))
            .await
    }
}
