//! The scheduler hints of instances as their request specs hold them
//! (the server view's `scheduler_hints`, 2.100; nova's
//! `_get_scheduler_hints`: `{}` when an instance has no request spec).

use std::collections::BTreeMap;

use nova_objects::{ListQuery, RequestSpec};
use serde_json::{Value, json};

use crate::ApiState;
use crate::fault::ApiResult;
use crate::http::admin_ctx;

/// Instance uuid → its hints, for `uuids` (one query).
pub(crate) async fn of(st: &ApiState, uuids: &[String]) -> ApiResult<BTreeMap<String, Value>> {
    if uuids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let specs: Vec<RequestSpec> = st
        .objects
        .list(
            &admin_ctx(),
            &ListQuery::new().filter("instance_uuid", json!(uuids)),
        )
        .await?;
    let mut out: BTreeMap<String, Value> = uuids.iter().map(|u| (u.clone(), json!({}))).collect();
    for s in specs {
        let hints = s.scheduler_hints().clone().unwrap_or_default();
        out.insert(s.instance_uuid().clone(), json!(hints));
    }
    Ok(out)
}

/// Puts each server view's hints in (by its `id`), from 2.100.
pub(crate) async fn fill(
    st: &ApiState,
    v: crate::microversion::ApiVersion,
    servers: &mut [Value],
) -> ApiResult<()> {
    if !v.at_least(2, 100) {
        return Ok(());
    }
    let uuids: Vec<String> = servers
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    let hints = of(st, &uuids).await?;
    for s in servers.iter_mut() {
        let h = s["id"]
            .as_str()
            .and_then(|id| hints.get(id).cloned())
            .unwrap_or_else(|| json!({}));
        s["scheduler_hints"] = h;
    }
    Ok(())
}
