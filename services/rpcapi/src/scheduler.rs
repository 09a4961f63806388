//! nova-scheduler's RPC interface (`nova/scheduler/rpcapi.py`), defined
//! once: [`Scheduler`] is what the scheduler manager implements,
//! [`SchedulerApi`] its typed client.
//!
//! Topic `scheduler`, no namespace. Version history (implemented parts):
//! * 4.3 — `select_destinations(spec_obj, filter_properties)` with a RequestSpec.
//! * 4.4 — `instance_uuids`.
//! * 4.5 — `return_objects`, `return_alternates`: a list of Selection
//!   lists (the chosen host first, then the alternates).

use nova_objects::{RequestSpec, Selection};
use nova_rpc::{RequestContext, Version};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The topic.
pub const TOPIC: &str = "scheduler";
/// What the manager implements.
pub const SERVER_VERSION: Version = Version::new(4, 5);

/// What `select_destinations` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Destinations {
    /// `return_objects`: per instance, the chosen host's Selection first,
    /// then the alternates (only with `return_alternates`).
    Selections(Vec<Vec<Selection>>),
    /// Without `return_objects`: one host-state dict per instance
    /// (`host`, `nodename`, `limits`), nova's pre-4.5 answer.
    Legacy(Vec<Value>),
}

/// nova-scheduler's RPC interface.
#[nova_rpc::interface(topic = TOPIC, version = SERVER_VERSION, client = SchedulerApi)]
pub trait Scheduler {
    /// Chooses a host (and alternates) for each instance and claims its
    /// resources in Placement. Sent with `long_rpc_timeout` (heartbeats
    /// within `rpc_response_timeout`), as nova does.
    #[rpc(call, long, version = "4.5", min = "4.3")]
    async fn select_destinations(
        &self,
        ctx: RequestContext,
        spec_obj: RequestSpec,
        #[rpc(since = "4.4", default)] instance_uuids: Vec<String>,
        #[rpc(since = "4.5", default, needed)] return_objects: bool,
        #[rpc(since = "4.5", default, needed)] return_alternates: bool,
    ) -> Destinations;
}
