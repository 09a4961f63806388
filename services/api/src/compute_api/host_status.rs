//! `host_status` (2.16): nova's `API.get_instance_host_status` from the
//! instance's compute service record, loaded as nova's `services`
//! expected attribute.

use std::collections::BTreeMap;

use nova_objects::{Instance, ListQuery, Service, ServiceList, VersionedObject};

use crate::ApiState;
use crate::fault::ApiResult;
use crate::http::admin_ctx;

/// Loads the `nova-compute` service record of each instance's host (one
/// query for all of them) into its `services`.
pub(crate) async fn load_services(st: &ApiState, insts: &mut [Instance]) -> ApiResult<()> {
    let mut hosts: Vec<&str> = insts
        .iter()
        .filter_map(|i| i.host().as_deref())
        .filter(|h| !h.is_empty())
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    let mut by_host: BTreeMap<String, Service> = BTreeMap::new();
    if !hosts.is_empty() {
        let q = ListQuery::new()
            .filter("host", serde_json::json!(hosts))
            .filter("binary", "nova-compute");
        for s in st.objects.list::<Service>(&admin_ctx(), &q).await? {
            if let Some(h) = s.host().clone() {
                by_host.insert(h, s);
            }
        }
    }
    for i in insts.iter_mut() {
        let before = i.obj_meta().changed_fields();
        let found: Vec<Service> = i
            .host()
            .as_ref()
            .and_then(|h| by_host.get(h))
            .cloned()
            .into_iter()
            .collect();
        i.set_services(ServiceList::new().with_objects(found));
        // A loaded attribute is not a change to save.
        let meta = i.obj_meta_mut();
        meta.clear_changes();
        for f in before.iter() {
            meta.mark(f);
        }
    }
    Ok(())
}

/// nova's `HostStatus`: `UP`, `DOWN` (forced down), `MAINTENANCE`
/// (disabled), `UNKNOWN` (not heard from within `service_down_time`), or
/// `""` (no host, or no compute service there); `None` when the services
/// were not loaded.
pub(crate) fn host_status(st: &ApiState, i: &Instance) -> Option<&'static str> {
    if !i.obj_attr_is_set("services") {
        return None;
    }
    if i.host().as_deref().is_none_or(str::is_empty) {
        return Some("");
    }
    let Some(s) = i
        .services()
        .objects()
        .iter()
        .find(|s| s.binary().as_deref() == Some("nova-compute"))
    else {
        return Some("");
    };
    Some(if *s.forced_down() {
        "DOWN"
    } else if *s.disabled() {
        "MAINTENANCE"
    } else if nova_service::is_up(s, st.cfg.service_down_time, chrono::Utc::now()) {
        "UP"
    } else {
        "UNKNOWN"
    })
}
