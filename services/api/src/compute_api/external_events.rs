//! `os-server-external-events` (nova's `compute/api.py`
//! `external_instance_event`): each event checked against its instance,
//! the accepted ones cast to the instance's compute, grouped by host.

use std::collections::BTreeMap;

use nova_objects::{Instance, InstanceExternalEvent};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::ApiResult;

/// One event of the request, as nova answers it.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The event (its `status` becomes `failed` when refused).
    pub(crate) event: InstanceExternalEvent,
    /// 200 accepted, 404 no such instance, 422 not on a host.
    pub(crate) code: u16,
}

/// Checks each event's instance and casts the accepted events to the
/// instances' computes.
pub(crate) async fn deliver(
    st: &ApiState,
    ctx: &Ctx,
    events: Vec<InstanceExternalEvent>,
) -> ApiResult<Vec<Outcome>> {
    let admin = nova_service::context::admin();
    let mut found: BTreeMap<String, Option<Instance>> = BTreeMap::new();
    let mut out = Vec::with_capacity(events.len());
    // host → (instances, events)
    let mut by_host: BTreeMap<String, (Vec<Instance>, Vec<InstanceExternalEvent>)> =
        BTreeMap::new();
    for mut ev in events {
        let uuid = ev.instance_uuid().clone();
        if !found.contains_key(&uuid) {
            // With its info cache, as nova's API reads it: the compute
            // updates the cache from it (`network-vif-deleted`).
            let inst = match st
                .objects
                .get_instance(&admin, &uuid, &["info_cache"])
                .await
            {
                Ok(i) => Some(i),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            };
            found.insert(uuid.clone(), inst);
        }
        let code = match &found[&uuid] {
            None => 404,
            Some(i) if i.host().is_none() => 422,
            Some(i) => {
                let host = i.host().clone().unwrap_or_default();
                let entry = by_host.entry(host).or_default();
                if !entry.0.iter().any(|x| x.uuid() == i.uuid()) {
                    entry.0.push(i.clone());
                }
                entry.1.push(ev.clone());
                200
            }
        };
        if code != 200 {
            ev.set_status("failed");
        }
        out.push(Outcome { event: ev, code });
    }
    let rpc = ctx.rpc();
    for (host, (instances, events)) in by_host {
        if let Err(e) = st
            .rpc
            .compute
            .external_instance_event(&rpc, &host, &instances, &events)
            .await
        {
            tracing::warn!(%host, error = %e, "external events not sent to the compute");
        }
    }
    Ok(out)
}
