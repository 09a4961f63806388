//! nova's late server-group check (`_validate_instance_group_policy`):
//! the scheduler enforces a group's policy, but builds scheduled at the
//! same time can still break it; the compute checks again once the
//! instance is on this host, and a violation reschedules the build.

use std::collections::BTreeSet;

use nova_objects::{Instance, InstanceGroup, ListQuery, Lookup, RequestSpec};
use nova_rpc::RequestContext;
use serde_json::{Value, json};

use crate::manager::ComputeManager;

/// The `group` hint of a build (the RequestSpec's hints, else the
/// legacy filter properties').
fn group_hint(spec: Option<&RequestSpec>, filter_properties: &Value) -> Option<String> {
    if let Some(h) = spec.and_then(|s| s.scheduler_hints().as_ref())
        && let Some(g) = h.get("group").and_then(|g| g.first())
    {
        return Some(g.clone());
    }
    match filter_properties.pointer("/scheduler_hints/group") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

impl ComputeManager {
    /// `Err(reason)` when building `inst` here breaks its group's policy
    /// (nova's `GroupAffinityViolation`): anti-affinity with
    /// `max_server_per_host` (1) other members already here, or affinity
    /// with the other members on another host.
    pub(crate) async fn validate_group_policy(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        spec: Option<&RequestSpec>,
        filter_properties: &Value,
    ) -> Result<(), String> {
        let Some(hint) = group_hint(spec, filter_properties) else {
            return Ok(());
        };
        let objects = &self.inner.objects;
        // nova's `InstanceGroup.get_by_hint`: a uuid, else a name.
        let group: InstanceGroup = match objects.get_by_uuid(ctx, &hint).await {
            Ok(g) => g,
            Err(_) => match objects.get(ctx, Lookup::field("name", hint.as_str())).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::info!(group = %hint, error = %e, "server group of the build not found: not checked");
                    return Ok(());
                }
            },
        };
        let policy = group
            .policy()
            .clone()
            .or_else(|| group.policies().as_ref().and_then(|p| p.first().cloned()));
        let members: BTreeSet<String> = group.members().iter().flatten().cloned().collect();
        let me = inst.uuid();
        let load = |q: ListQuery| async move {
            objects
                .list::<Instance>(ctx, &q)
                .await
                .map_err(|e| format!("cannot check the server group policy: {e}"))
        };
        match policy.as_deref() {
            Some("anti-affinity") => {
                let here = load(ListQuery::new().filter("host", self.host())).await?;
                let others = here
                    .iter()
                    .filter(|i| i.uuid() != me && members.contains(i.uuid()))
                    .count();
                let max = group
                    .rules()
                    .get("max_server_per_host")
                    .and_then(|m| m.parse::<usize>().ok())
                    .unwrap_or(1);
                if others >= max {
                    return Err("Anti-affinity instance group policy was violated".into());
                }
            }
            Some("affinity") => {
                let others: Vec<&String> = members.iter().filter(|m| *m != me).collect();
                if others.is_empty() {
                    return Ok(());
                }
                let found = load(ListQuery::new().filter("uuid", json!(others))).await?;
                let hosts: BTreeSet<String> =
                    found.iter().filter_map(|i| i.host().clone()).collect();
                if !hosts.is_empty() && !hosts.contains(self.host()) {
                    return Err("Affinity instance group policy was violated".into());
                }
            }
            _ => {}
        }
        Ok(())
    }
}
