//! Remote consoles on the compute (nova's `get_vnc_console`,
//! `get_spice_console`, `get_serial_console`, `get_mks_console`,
//! `validate_console_port`): the driver says where the console is, the
//! compute authorizes a `ConsoleAuthToken` for it (through the conductor,
//! like every object write here) and answers nova's connection-info dict.

use nova_objects::Instance;
use nova_rpc::{RemoteError, RequestContext};
use nova_service::consoles::{self, ConsoleTarget};
use nova_service::context::elevated;
use nova_service::states::VmState;
use nova_virt::Console;
use serde_json::{Value, json};

use crate::ComputeManager;

fn unavailable(console_type: &str) -> RemoteError {
    RemoteError::new(
        "ConsoleTypeUnavailable",
        "nova.exception",
        format!("Unavailable console type {console_type}."),
    )
    .with_kwarg("console_type", console_type)
}

fn invalid(console_type: &str) -> RemoteError {
    RemoteError::new(
        "ConsoleTypeInvalid",
        "nova.exception",
        format!("Invalid console type {console_type}"),
    )
    .with_kwarg("console_type", console_type)
}

/// Which console of the driver a type means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vnc,
    Spice,
    Serial,
    Mks,
}

impl ComputeManager {
    async fn driver_console(&self, inst: &Instance, kind: Kind) -> Result<Console, RemoteError> {
        let d = &self.inner.driver;
        let uuid = inst.uuid();
        let r = match kind {
            Kind::Vnc => d.get_vnc_console(uuid).await,
            Kind::Spice => d.get_spice_console(uuid).await,
            Kind::Serial => d.get_serial_console(uuid).await,
            Kind::Mks => Err(nova_virt::Error::NotSupported {
                operation: "get_mks_console",
            }),
        };
        r.map_err(|e| match e {
            nova_virt::Error::NotSupported { operation } => RemoteError::new(
                "NotImplementedError",
                "builtins",
                format!("{operation} is not implemented by this driver"),
            ),
            nova_virt::Error::InstanceNotFound(u) => {
                if inst.vm_state().as_deref() == Some(VmState::Building.as_str()) {
                    RemoteError::new(
                        "InstanceNotReady",
                        "nova.exception",
                        format!("Instance {u} is not ready"),
                    )
                    .with_kwarg("instance_id", u)
                } else {
                    RemoteError::new(
                        "InstanceNotFound",
                        "nova.exception",
                        format!("Instance {u} could not be found."),
                    )
                    .with_kwarg("instance_id", u)
                }
            }
            other => RemoteError::new(
                "ConsoleNotAvailable",
                "nova.exception",
                format!("Guest does not have a console available. ({other})"),
            ),
        })
    }

    /// One console request: checks the type against the options, asks the
    /// driver, authorizes a token, answers the connection info.
    pub(crate) async fn do_get_console(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        protocol: &str,
        console_type: &str,
    ) -> Result<Value, RemoteError> {
        let ctx = elevated(ctx);
        let o = &self.inner.cfg.consoles;
        let (kind, base) = match protocol {
            "vnc" => {
                if !o.vnc_enabled {
                    return Err(unavailable(console_type));
                }
                if console_type != "novnc" {
                    return Err(invalid(console_type));
                }
                (Kind::Vnc, o.novncproxy_base_url.clone())
            }
            "spice" => {
                if !o.spice_enabled {
                    return Err(unavailable(console_type));
                }
                match console_type {
                    "spice-html5" => (Kind::Spice, o.html5proxy_base_url.clone()),
                    "spice-direct" => (Kind::Spice, o.spice_direct_proxy_base_url.clone()),
                    _ => return Err(invalid(console_type)),
                }
            }
            "serial" => {
                if !o.serial_enabled {
                    return Err(unavailable(console_type));
                }
                (Kind::Serial, o.serial_base_url.clone())
            }
            _ => {
                if !o.mks_enabled {
                    return Err(unavailable(console_type));
                }
                if console_type != "webmks" {
                    return Err(invalid(console_type));
                }
                (Kind::Mks, o.mks_base_url.clone())
            }
        };
        let c = self.driver_console(inst, kind).await?;
        let direct = console_type == "spice-direct";
        let target = ConsoleTarget {
            console_type: console_type.to_owned(),
            host: c.host.clone(),
            port: i64::from(c.port),
            tls_port: if kind == Kind::Spice {
                c.tls_port.map(i64::from)
            } else {
                None
            },
            internal_access_path: if direct {
                None
            } else {
                c.internal_access_path.clone()
            },
            instance_uuid: inst.uuid().clone(),
            access_url_base: base,
        };
        let a = consoles::authorize(&self.inner.objects, &ctx, &target, o.token_ttl)
            .await
            .map_err(|e| RemoteError::internal("ComputeError", e.to_string()))?;
        let mut info = json!({
            "token": a.token,
            "access_url": a.access_url,
            "host": target.host,
            "port": target.port,
            "internal_access_path": target.internal_access_path,
        });
        if kind == Kind::Spice {
            info["tls_port"] = json!(target.tls_port);
        }
        Ok(info)
    }

    /// `validate_console_port`: the driver's current port of that console.
    pub(crate) async fn do_validate_console_port(
        &self,
        inst: &Instance,
        port: &str,
        console_type: &str,
    ) -> Result<bool, RemoteError> {
        let kind = match console_type {
            "spice-html5" | "spice-direct" => Kind::Spice,
            "serial" => Kind::Serial,
            "webmks" => Kind::Mks,
            _ => Kind::Vnc,
        };
        let c = self.driver_console(inst, kind).await?;
        Ok(c.port.to_string() == port)
    }
}

/// The trait methods' bodies (the `Compute` impl delegates here).
pub(crate) async fn get(
    m: &ComputeManager,
    ctx: RequestContext,
    instance: Instance,
    protocol: &str,
    console_type: String,
) -> Result<Value, RemoteError> {
    tracing::debug!(uuid = %instance.uuid(), protocol, console_type, "getting console");
    m.do_get_console(&ctx, &instance, protocol, &console_type)
        .await
}
