//! `nova-manage placement heal_allocations | audit | sync_aggregates`:
//! nova's records and Placement's brought back in line.

use std::collections::{BTreeMap, BTreeSet};

use nova_objects::{Aggregate, ComputeNode, Instance, ListQuery, Objects};
use nova_placement::PlacementHandle;
use nova_scheduler::placement::{Allocations, Name, PlacementError};
use nova_service::context::admin;

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Consumers or providers acted on (or, dry, to act on).
    pub count: usize,
    /// One line per action.
    pub lines: Vec<String>,
}

/// The compute-node provider of `host`/`node` (its compute node's uuid).
async fn node_uuid(objects: &Objects, host: &str, node: &str) -> anyhow::Result<Option<String>> {
    let nodes: Vec<ComputeNode> = objects
        .list(&admin(), &ListQuery::new().filter("host", host))
        .await?;
    Ok(nodes
        .iter()
        .find(|n| n.hypervisor_hostname().as_deref() == Some(node))
        .or(nodes.first())
        .map(|n| n.uuid().clone()))
}

/// `heal_allocations`: every instance on a host without allocations in
/// Placement gets its flavor's (VCPU, MEMORY_MB, DISK_GB = root +
/// ephemeral) on its compute node's provider, as its project and user.
/// `dry_run` only reports.
pub async fn heal_allocations(
    objects: &Objects,
    placement: &PlacementHandle,
    dry_run: bool,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    let instances: Vec<Instance> = objects.list(&admin(), &ListQuery::new()).await?;
    for i in instances {
        let (Some(host), Some(node)) = (i.host().clone(), i.node().clone()) else {
            continue; // not on a host: nothing to allocate
        };
        if placement
            .allocations_async(i.uuid())
            .await?
            .consumer_generation
            .is_some()
        {
            continue;
        }
        let Some(rp) = node_uuid(objects, &host, &node).await? else {
            out.lines.push(format!(
                "Instance {} is on host {host} whose compute node is unknown: skipped.",
                i.uuid()
            ));
            continue;
        };
        let mut res: BTreeMap<Name, i64> = BTreeMap::new();
        for (rc, n) in [
            ("VCPU", i.vcpus().unwrap_or(0)),
            ("MEMORY_MB", i.memory_mb().unwrap_or(0)),
            (
                "DISK_GB",
                i.root_gb().unwrap_or(0) + i.ephemeral_gb().unwrap_or(0),
            ),
        ] {
            if n > 0 {
                res.insert(Name::from(rc), n);
            }
        }
        if res.is_empty() {
            continue;
        }
        out.count += 1;
        if dry_run {
            out.lines.push(format!(
                "[dry-run] Update allocations for instance {} on resource provider {rp}: {res:?}",
                i.uuid()
            ));
            continue;
        }
        let allocs: Allocations = BTreeMap::from([(Name::from(rp.as_str()), res)]);
        placement
            .put_allocations_async(
                i.uuid(),
                &allocs,
                i.project_id().as_deref().unwrap_or(""),
                i.user_id().as_deref().unwrap_or(""),
                None,
            )
            .await?;
        out.lines.push(format!(
            "Successfully created allocations for instance {}.",
            i.uuid()
        ));
    }
    Ok(out)
}

/// `audit`: allocations whose consumer is no instance nova knows (an
/// instance deleted while Placement was down); `delete` removes them.
pub async fn audit(
    objects: &Objects,
    placement: &PlacementHandle,
    delete: bool,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    let live: BTreeSet<String> = objects
        .list::<Instance>(&admin(), &ListQuery::new())
        .await?
        .iter()
        .map(|i| i.uuid().clone())
        .collect();
    for (consumer, a) in placement.consumers_async(None, None).await? {
        if live.contains(&consumer) {
            continue;
        }
        out.count += 1;
        for (rp, res) in &a.allocations {
            out.lines.push(format!(
                "Allocations for consumer UUID {consumer} on Resource Provider {rp} can be deleted: {res:?}"
            ));
        }
        if delete {
            placement.delete_allocations_async(&consumer).await?;
            out.lines
                .push(format!("Deleted allocations for consumer UUID {consumer}"));
        }
    }
    Ok(out)
}

/// `sync_aggregates`: every compute node provider joins the Placement
/// aggregates (same uuids) of the host aggregates its host is in.
pub async fn sync_aggregates(
    objects: &Objects,
    placement: &PlacementHandle,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    let aggregates: Vec<Aggregate> = objects.list(&admin(), &ListQuery::new()).await?;
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in &aggregates {
        for host in a.hosts().clone().unwrap_or_default() {
            let nodes: Vec<ComputeNode> = objects
                .list(&admin(), &ListQuery::new().filter("host", host.as_str()))
                .await?;
            if nodes.is_empty() {
                out.lines.push(format!(
                    "Host {host} in aggregate {} has no compute node: skipped.",
                    a.uuid()
                ));
            }
            for n in nodes {
                wanted
                    .entry(n.uuid().clone())
                    .or_default()
                    .insert(a.uuid().clone());
            }
        }
    }
    for (rp, aggs) in wanted {
        loop {
            let (generation, have) = match placement.aggregates_async(&rp).await {
                Ok(x) => x,
                Err(PlacementError::NotFound(_)) => {
                    out.lines.push(format!(
                        "Resource provider {rp} is not in Placement: skipped."
                    ));
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let missing: Vec<&String> = aggs.difference(&have).collect();
            if missing.is_empty() {
                break;
            }
            let mut all = have.clone();
            all.extend(aggs.iter().cloned());
            match placement.set_aggregates_async(&rp, generation, &all).await {
                Ok(_) => {
                    out.count += 1;
                    out.lines.push(format!(
                        "Added resource provider {rp} to aggregates {missing:?}."
                    ));
                    break;
                }
                Err(PlacementError::ConcurrentUpdate(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(out)
}
