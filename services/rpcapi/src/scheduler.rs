//! nova-scheduler's RPC interface (`nova/scheduler/rpcapi.py`).
//!
//! Topic `scheduler`, no namespace. Version history (implemented parts):
//! * 4.0 — `select_destinations(spec_obj, filter_properties)`.
//! * 4.4 — `instance_uuids`.
//! * 4.5 — `return_objects`, `return_alternates`: a list of Selection
//!   lists (the chosen host first, then the alternates).

use std::sync::Arc;
use std::time::Duration;

use nova_rpc::{RequestContext, Result, RpcClient, Target, Transport, Version};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compute::to_value;

/// The topic.
pub const TOPIC: &str = "scheduler";
/// What the manager implements.
pub const SERVER_VERSION: Version = Version::new(4, 5);

/// `select_destinations` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SelectDestinations {
    /// RequestSpec primitive.
    pub spec_obj: Value,
    /// The instances to place.
    #[serde(default)]
    pub instance_uuids: Vec<String>,
    /// Return Selection objects (4.5).
    #[serde(default)]
    pub return_objects: bool,
    /// Return alternates (4.5).
    #[serde(default)]
    pub return_alternates: bool,
}

/// The client (`SchedulerAPI`).
#[derive(Debug, Clone)]
pub struct SchedulerApi {
    client: RpcClient,
}

impl SchedulerApi {
    /// A client on `transport`; calls time out after `timeout`.
    pub fn new(transport: Arc<dyn Transport>, timeout: Duration) -> Self {
        SchedulerApi {
            client: RpcClient::new(transport, Target::topic(TOPIC))
                .version(SERVER_VERSION)
                .timeout(timeout),
        }
    }

    /// Calls `select_destinations` with objects and alternates: one
    /// Selection list per instance.
    pub async fn select_destinations(
        &self,
        ctx: &RequestContext,
        spec_obj: Value,
        instance_uuids: Vec<String>,
    ) -> Result<Vec<Vec<Value>>> {
        let args = SelectDestinations {
            spec_obj,
            instance_uuids,
            return_objects: true,
            return_alternates: true,
        };
        self.client
            .call(ctx, "select_destinations", to_value(&args))
            .await
    }
}
