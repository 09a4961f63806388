//! The build's networks (nova's `_build_networks_for_instance` and the
//! libvirt driver's `wait_for_instance_event`): ports made or taken and
//! bound to this host through the network API client, the network info
//! cache filled, `network-vif-plugged` awaited for the ports that were not
//! ACTIVE (`[DEFAULT] vif_plugging_timeout` / `vif_plugging_is_fatal`);
//! ports released at delete and unbound when the build is rescheduled.

use std::sync::Arc;

use nova_objects::{Instance, InstanceInfoCache, Lookup, NetworkRequestList, VirtualInterface};
use nova_rpc::RequestContext;
use nova_service::neutron::{self, NeutronClient, preserved_ports, vifs_of_cache};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::manager::ComputeManager;

/// nova's marker that a build's ports exist (a reschedule binds them again).
const NETWORK_ALLOCATED: &str = "network_allocated";

/// nova's reason for a build whose networks failed.
pub(crate) const NETWORK_FAILED: &str = "Failed to allocate the network(s), not rescheduling.";

/// What a build waits for once the guest is spawned.
#[derive(Debug, Default)]
pub(crate) struct PlugWaits {
    waits: Vec<(String, oneshot::Receiver<String>)>,
}

/// The driver's view of a network info VIF.
fn driver_vif(v: &Value) -> nova_virt::Vif {
    nova_virt::Vif {
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        address: v["address"].as_str().unwrap_or_default().to_owned(),
        vif_type: v["type"].as_str().unwrap_or_default().to_owned(),
        bridge: v["network"]["bridge"].as_str().map(str::to_owned),
        devname: v["devname"].as_str().map(str::to_owned),
        fixed_ips: v["network"]["subnets"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["ips"].as_array().cloned().unwrap_or_default())
            .filter_map(|ip| ip["address"].as_str().map(str::to_owned))
            .collect(),
        mtu: v["network"]["meta"]["mtu"].as_u64().map(|m| m as u32),
    }
}

/// The driver's VIFs of network info `vifs`.
pub(crate) fn driver_vifs(vifs: &[Value]) -> Vec<nova_virt::Vif> {
    vifs.iter().map(driver_vif).collect()
}

impl ComputeManager {
    /// Uses `client` as the network API (set before builds start; without
    /// one, servers get no ports).
    pub fn set_network(&self, client: Arc<NeutronClient>) {
        let _ = self.inner.network.set(client);
    }

    pub(crate) fn network(&self) -> Option<&Arc<NeutronClient>> {
        self.inner.network.get()
    }

    /// The instance's network info cache, as VIFs.
    pub(crate) async fn cached_vifs(&self, ctx: &RequestContext, uuid: &str) -> Vec<Value> {
        self.inner
            .objects
            .get::<InstanceInfoCache>(ctx, Lookup::field("instance_uuid", uuid))
            .await
            .map(|c| vifs_of_cache(c.network_info().as_deref()))
            .unwrap_or_default()
    }

    /// Writes the instance's network info cache.
    pub(crate) async fn save_network_info(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        vifs: &[Value],
    ) -> anyhow::Result<()> {
        let text = Value::from(vifs.to_vec()).to_string();
        let objects = &self.inner.objects;
        match objects
            .get::<InstanceInfoCache>(ctx, Lookup::field("instance_uuid", uuid))
            .await
        {
            Ok(mut c) => {
                c.set_network_info(Some(text));
                objects.save(ctx, &mut c).await?;
            }
            Err(e) if e.is_not_found() => {
                let mut c = InstanceInfoCache::new()
                    .with_instance_uuid(uuid.to_owned())
                    .with_network_info(Some(text));
                objects.create(ctx, &mut c).await?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Writes the network info cache of an instance whose build made its
    /// ports: its first cache, in one write (nova's API makes the empty one
    /// with the instance; nova-rs's does not), or over one an earlier
    /// attempt left.
    async fn create_network_info(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        vifs: &[Value],
    ) -> anyhow::Result<()> {
        let mut c = InstanceInfoCache::new()
            .with_instance_uuid(uuid.to_owned())
            .with_network_info(Some(Value::from(vifs.to_vec()).to_string()));
        match self.inner.objects.create(ctx, &mut c).await {
            Ok(()) => Ok(()),
            Err(nova_objects::Error::Exists { .. }) => {
                self.save_network_info(ctx, uuid, vifs).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// nova's `_build_networks_for_instance`: the instance's ports bound to
    /// this host (made now, or, after a reschedule, the ones it has), the
    /// info cache written, a `VirtualInterface` record made per new port
    /// (with its requested tag); returns the network info, the plug events
    /// to wait for (registered before the binding that causes them) and
    /// the records.
    pub(crate) async fn build_networks(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        requested: Option<&NetworkRequestList>,
        security_groups: &[String],
    ) -> anyhow::Result<(Vec<Value>, PlugWaits, Vec<VirtualInterface>)> {
        let Some(client) = self.network().cloned() else {
            return Ok((vec![], PlugWaits::default(), vec![]));
        };
        let uuid = inst.uuid().clone();
        let already = inst
            .system_metadata()
            .get(NETWORK_ALLOCATED)
            .and_then(|v| v.as_deref())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let preserved = if already {
            preserved_ports(&self.cached_vifs(ctx, &uuid).await)
        } else {
            vec![]
        };
        let alloc = client
            .prepare_ports(inst, requested, already, &preserved, security_groups)
            .await?;
        if alloc.ports.is_empty() {
            return Ok((vec![], PlugWaits::default(), vec![]));
        }
        let mut waits = PlugWaits::default();
        if !self.inner.cfg.vif_plugging_timeout.is_zero() {
            for port in alloc.to_wait_for() {
                let rx = self
                    .inner
                    .events
                    .prepare(&uuid, &format!("network-vif-plugged-{port}"));
                waits.waits.push((port, rx));
            }
        }
        let bound = client.bind_ports(inst, self.host(), &alloc).await;
        let vifs = match bound {
            Ok(v) => v,
            Err(e) => {
                self.inner.events.clear(&uuid);
                let given: Vec<String> = alloc
                    .ports
                    .iter()
                    .filter(|(_, g)| *g)
                    .filter_map(|(p, _)| p["id"].as_str().map(str::to_owned))
                    .collect();
                if let Err(e) = neutron::deallocate_for_instance(&client, &uuid, &given).await {
                    tracing::warn!(instance = %uuid, error = %e, "ports not released");
                }
                return Err(e.into());
            }
        };
        if already {
            self.save_network_info(ctx, &uuid, &vifs).await?;
        } else {
            self.create_network_info(ctx, &uuid, &vifs).await?;
        }
        let records = if already {
            // Recorded by the host that made the ports.
            self.vif_records(ctx, &uuid).await?
        } else {
            let ports: Vec<(String, String, Option<String>)> = alloc
                .ports
                .iter()
                .zip(alloc.tags.iter().chain(std::iter::repeat(&None)))
                .map(|((p, _), tag)| {
                    let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
                    (s("id"), s("mac_address"), tag.clone())
                })
                .collect();
            let records = self.record_vifs(ctx, &uuid, &ports).await?;
            inst.system_metadata_mut()
                .insert(NETWORK_ALLOCATED.into(), Some("True".into()));
            self.inner.objects.save(ctx, inst).await?;
            records
        };
        Ok((vifs, waits, records))
    }

    /// Waits for `waits` (nova's `wait_for_instance_event` with
    /// `vif_plugging_timeout`): a timeout or a `failed` event is an error
    /// when `vif_plugging_is_fatal`, else a warning.
    pub(crate) async fn wait_for_plugs(&self, uuid: &str, waits: PlugWaits) -> anyhow::Result<()> {
        if waits.waits.is_empty() {
            return Ok(());
        }
        let cfg = &self.inner.cfg;
        let deadline = tokio::time::Instant::now() + cfg.vif_plugging_timeout;
        let mut problem = None;
        for (port, rx) in waits.waits {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(status)) if status == "completed" => {}
                Ok(Ok(status)) => {
                    problem = Some(format!("network-vif-plugged-{port}: {status}"));
                    break;
                }
                Ok(Err(_)) => {
                    problem = Some(format!("network-vif-plugged-{port}: wait dropped"));
                    break;
                }
                Err(_) => {
                    problem = Some(format!(
                        "timeout waiting for network-vif-plugged-{port} ({} s)",
                        cfg.vif_plugging_timeout.as_secs()
                    ));
                    break;
                }
            }
        }
        self.inner.events.clear(uuid);
        match problem {
            None => Ok(()),
            Some(p) if cfg.vif_plugging_is_fatal => {
                tracing::warn!(instance = %uuid, problem = %p, "VIF plugging failed");
                anyhow::bail!("Virtual Interface creation failed")
            }
            Some(p) => {
                tracing::warn!(instance = %uuid, problem = %p, "VIF plugging not confirmed; going on (vif_plugging_is_fatal = false)");
                Ok(())
            }
        }
    }

    /// nova's `_try_deallocate_network` / `_cleanup_allocated_networks`:
    /// the ports nova made deleted, the given ones unbound and freed.
    pub(crate) async fn deallocate_networks(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> anyhow::Result<()> {
        let Some(client) = self.network().cloned() else {
            return Ok(());
        };
        let preserved = preserved_ports(&self.cached_vifs(ctx, uuid).await);
        neutron::deallocate_for_instance(&client, uuid, &preserved).await?;
        Ok(())
    }

    /// A build that failed for good: its ports released and their records
    /// destroyed (the instance stays, in ERROR).
    pub(crate) async fn deallocate_failed_build(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> anyhow::Result<()> {
        self.deallocate_networks(ctx, uuid).await?;
        if self.network().is_some() {
            self.destroy_vif_records(ctx, uuid).await?;
        }
        Ok(())
    }

    /// A rescheduled build: its ports unbound from this host (the next
    /// host binds them).
    pub(crate) async fn unbind_networks(&self, uuid: &str) {
        if let Some(client) = self.network().cloned()
            && let Err(e) = neutron::unbind_ports(&client, uuid).await
        {
            tracing::warn!(instance = %uuid, error = %e, "ports not unbound");
        }
    }
}
