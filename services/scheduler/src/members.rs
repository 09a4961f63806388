//! What the host view needs beyond compute nodes for one request: the
//! instances of the request's server group and of its `same_host` /
//! `different_host` hints on each host (nova's `HostState.instances`, which
//! the affinity filters and weighers read), and the zone of each chosen
//! host (nova's `Selection.availability_zone`).

use std::collections::{BTreeMap, BTreeSet};

use nova_objects::{Instance, ListQuery, Objects};
use nova_scheduler::{Request, Scheduler, Selection};
use serde_json::json;

/// Host → the instances of interest to `req` placed there.
pub(crate) async fn placed_instances(
    objects: &Objects,
    req: &Request,
) -> nova_objects::Result<BTreeMap<String, BTreeSet<String>>> {
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    if let Some(g) = &req.group {
        wanted.extend(g.members.iter().cloned());
    }
    for hint in ["same_host", "different_host"] {
        if let Some(u) = req.scheduler_hints.get(hint) {
            wanted.extend(u.iter().cloned());
        }
    }
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let ctx = nova_service::context::admin();
    let found: Vec<Instance> = objects
        .list(&ctx, &ListQuery::new().filter("uuid", json!(wanted)))
        .await?;
    for i in found {
        if let Some(h) = i.host() {
            out.entry(h.clone()).or_default().insert(i.uuid().clone());
        }
    }
    Ok(out)
}

/// Adds `placed` to the hosts' instance sets.
pub(crate) fn add_instances(s: &mut Scheduler, placed: &BTreeMap<String, BTreeSet<String>>) {
    if placed.is_empty() {
        return;
    }
    let changed: Vec<_> = s
        .hosts()
        .iter()
        .filter(|h| {
            placed
                .get(&h.host)
                .is_some_and(|u| !u.is_subset(&h.instances))
        })
        .cloned()
        .collect();
    for mut h in changed {
        if let Some(u) = placed.get(&h.host) {
            h.instances.extend(u.iter().cloned());
        }
        s.upsert_host(h);
    }
}

/// Host → its availability zone (an aggregate's, else `default_az`) for
/// every host of `chosen`.
pub(crate) fn zones(
    s: &Scheduler,
    chosen: &[Vec<Selection>],
    default_az: &str,
) -> BTreeMap<String, String> {
    let aggs = s.aggregates();
    let mut out = BTreeMap::new();
    for sel in chosen.iter().flatten() {
        if out.contains_key(&sel.host) {
            continue;
        }
        let az = s
            .host_index_by_uuid(&sel.compute_node_uuid)
            .and_then(|i| s.hosts().get(i))
            .and_then(|h| {
                h.aggregates
                    .iter()
                    .filter_map(|&a| aggs.get(a))
                    .find_map(|a| a.metadata.get("availability_zone").cloned())
            })
            .unwrap_or_else(|| default_az.to_owned());
        out.insert(sel.host.clone(), az);
    }
    out
}
