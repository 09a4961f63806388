//! What the conductor adds to a request before scheduling and to an
//! instance once placed: nova's `setup_instance_group` (the server group's
//! members and their hosts on the RequestSpec) and the instance's
//! availability zone (the chosen Selection's, or its host's).

use std::collections::BTreeSet;

use nova_objects::{
    Aggregate, Instance, InstanceGroup, ListQuery, Objects, RequestSpec, Selection,
};
use nova_rpc::RequestContext;
use serde_json::json;

/// Fills the spec's server group with its current members and the hosts
/// they are on (nova's `scheduler_utils.setup_instance_group`): the API
/// stores the group without them. A group gone meanwhile is dropped.
pub(crate) async fn setup_instance_group(
    objects: &Objects,
    ctx: &RequestContext,
    spec: &mut RequestSpec,
) -> nova_objects::Result<()> {
    let Some(stored) = spec.instance_group().clone() else {
        return Ok(());
    };
    let group: InstanceGroup = match objects.get_by_uuid(ctx, stored.uuid()).await {
        Ok(g) => g,
        Err(e) if e.is_not_found() => {
            spec.set_instance_group(None);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let members = group.members().clone().unwrap_or_default();
    let mut hosts: BTreeSet<String> = stored.hosts().iter().flatten().cloned().collect();
    hosts.extend(group_hosts(objects, ctx, &members, None).await?);
    let mut g = group;
    g.set_hosts(Some(hosts.into_iter().collect()));
    g.set_members(Some(members));
    spec.set_instance_group(Some(g));
    Ok(())
}

/// nova's `InstanceGroup.get_hosts(exclude)`: the hosts of the members'
/// live instances.
pub async fn group_hosts(
    objects: &Objects,
    ctx: &RequestContext,
    members: &[String],
    exclude: Option<&str>,
) -> nova_objects::Result<BTreeSet<String>> {
    let uuids: Vec<&String> = members
        .iter()
        .filter(|m| Some(m.as_str()) != exclude)
        .collect();
    if uuids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let found: Vec<Instance> = objects
        .list(ctx, &ListQuery::new().filter("uuid", json!(uuids)))
        .await?;
    Ok(found.iter().filter_map(|i| i.host().clone()).collect())
}

/// nova's `get_host_availability_zone`: the zone of an aggregate the host
/// is in, else `default_az`.
pub(crate) async fn host_availability_zone(
    objects: &Objects,
    ctx: &RequestContext,
    host: &str,
    default_az: &str,
) -> nova_objects::Result<String> {
    let aggs: Vec<Aggregate> = objects.list(ctx, &ListQuery::new()).await?;
    Ok(aggs
        .iter()
        .filter(|a| {
            a.hosts()
                .as_ref()
                .is_some_and(|h| h.iter().any(|x| x == host))
        })
        .find_map(|a| {
            a.metadata()
                .as_ref()
                .and_then(|m| m.get("availability_zone"))
                .cloned()
        })
        .unwrap_or_else(|| default_az.to_owned()))
}

/// Records the zone of the chosen host on the instance (the Selection's
/// when the scheduler gave one, as nova's conductor does), saving only
/// when it changes.
pub(crate) async fn set_availability_zone(
    objects: &Objects,
    ctx: &RequestContext,
    inst: &mut Instance,
    chosen: &Selection,
    default_az: &str,
) -> nova_objects::Result<()> {
    let az = match chosen.availability_zone() {
        Some(z) => z.clone(),
        None => host_availability_zone(objects, ctx, chosen.service_host(), default_az).await?,
    };
    if inst.availability_zone().as_deref() == Some(az.as_str()) {
        return Ok(());
    }
    inst.set_availability_zone(Some(az));
    objects.save(ctx, inst).await
}
