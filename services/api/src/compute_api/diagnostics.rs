//! Server diagnostics (nova's `API.get_diagnostics` and
//! `API.get_instance_diagnostics`): a call to the instance's compute.

use nova_objects::Instance;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};

/// The diagnostics of `inst`: nova's standardized document (2.48) or the
/// driver's own dict (before). 409 when the server is on no host or not
/// running; 501 when its driver has none.
pub(crate) async fn get(
    st: &ApiState,
    ctx: &Ctx,
    inst: &Instance,
    standardized: bool,
) -> ApiResult<Value> {
    let id = inst.uuid();
    let Some(host) = inst.host().as_deref().filter(|h| !h.is_empty()) else {
        return Err(Fault::conflict(format!("Instance {id} is not ready")));
    };
    let compute = &st.rpc.compute;
    let rpc = ctx.rpc();
    let r = if standardized {
        compute.get_instance_diagnostics(&rpc, host, inst).await
    } else {
        compute.get_diagnostics(&rpc, host, inst).await
    };
    match r {
        Ok(v) if standardized => Ok(view(&v)),
        Ok(v) => Ok(v),
        Err(e) => Err(match e.remote() {
            Some(r) if r.is("nova.exception", "InstanceInvalidState") => {
                let kw = |k: &str| r.kwargs.get(k).and_then(Value::as_str).map(str::to_owned);
                match (kw("attr"), kw("state")) {
                    (Some(attr), Some(state)) => Fault::conflict(format!(
                        "Cannot 'get_diagnostics' instance {id} while it is in {attr} {state}"
                    )),
                    _ => Fault::conflict(format!(
                        "Instance {id} is in an invalid state for 'get_diagnostics'"
                    )),
                }
            }
            Some(r) if r.is("builtins", "NotImplementedError") => Fault::new(
                axum::http::StatusCode::NOT_IMPLEMENTED,
                "The requested functionality is not supported.",
            ),
            Some(r) if r.is("nova.exception", "InstanceNotFound") => {
                Fault::not_found(format!("Instance {id} could not be found."))
            }
            _ => Fault::internal(e),
        }),
    }
}

/// nova's `ViewBuilder.instance_diagnostics` over a `Diagnostics`
/// primitive: every field, `null` where unset.
pub(crate) fn view(p: &Value) -> Value {
    let d = &p["nova_object.data"];
    let pick = |o: &Value, fields: &[&str]| -> Value {
        let data = &o["nova_object.data"];
        let m: Map<String, Value> = fields
            .iter()
            .map(|f| {
                (
                    (*f).to_owned(),
                    data.get(*f).cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        Value::Object(m)
    };
    let list = |key: &str, fields: &[&str]| -> Value {
        Value::Array(
            d[key]
                .as_array()
                .map(|a| a.iter().map(|o| pick(o, fields)).collect())
                .unwrap_or_default(),
        )
    };
    let mut out = Map::new();
    for f in [
        "state",
        "driver",
        "hypervisor",
        "hypervisor_os",
        "uptime",
        "config_drive",
        "num_cpus",
        "num_nics",
        "num_disks",
    ] {
        out.insert(f.into(), d.get(f).cloned().unwrap_or(Value::Null));
    }
    out.insert(
        "disk_details".into(),
        list(
            "disk_details",
            &[
                "read_bytes",
                "read_requests",
                "write_bytes",
                "write_requests",
                "errors_count",
            ],
        ),
    );
    out.insert(
        "cpu_details".into(),
        list("cpu_details", &["id", "time", "utilisation"]),
    );
    out.insert(
        "nic_details".into(),
        list(
            "nic_details",
            &[
                "mac_address",
                "rx_octets",
                "rx_errors",
                "rx_drop",
                "rx_packets",
                "rx_rate",
                "tx_octets",
                "tx_errors",
                "tx_drop",
                "tx_packets",
                "tx_rate",
            ],
        ),
    );
    out.insert(
        "memory_details".into(),
        if d["memory_details"].is_object() {
            pick(&d["memory_details"], &["maximum", "used"])
        } else {
            json!({"maximum": null, "used": null})
        },
    );
    Value::Object(out)
}
