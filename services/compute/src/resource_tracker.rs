//! The resource tracker: what this host's instances use, the ComputeNode
//! record, and the Placement provider (inventories, traits) — at start,
//! on change and every `update_resources_interval`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use nova_objects::{ComputeNode, Instance, ListQuery, Service, VersionedObject};
use nova_scheduler::placement::InventoryRecord;
use nova_service::states::VmState;

use crate::manager::{ComputeManager, admin};

/// How soon a claim's usage reaches the ComputeNode record.
pub const USAGE_FLUSH: Duration = Duration::from_millis(250);

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Usage {
    pub(crate) vcpus: i64,
    pub(crate) memory_mb: i64,
    pub(crate) disk_gb: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    node: Option<ComputeNode>,
    /// Usage changed since the ComputeNode record was last written.
    dirty: bool,
    claims: HashMap<String, Usage>,
    inventory: BTreeMap<String, InventoryRecord>,
    traits: BTreeSet<String>,
    reserved_memory_mb: i64,
}

pub(crate) fn usage_of(i: &Instance) -> Usage {
    let f = i.flavor();
    let has_flavor = i.obj_attr_is_set("flavor");
    Usage {
        vcpus: i.vcpus().unwrap_or(if has_flavor { *f.vcpus() } else { 0 }),
        memory_mb: i
            .memory_mb()
            .unwrap_or(if has_flavor { *f.memory_mb() } else { 0 }),
        disk_gb: i
            .root_gb()
            .unwrap_or(if has_flavor { *f.root_gb() } else { 0 })
            + i.ephemeral_gb().unwrap_or(0),
    }
}

impl ComputeManager {
    pub(crate) async fn instances_here(&self) -> nova_objects::Result<Vec<Instance>> {
        self.inner
            .objects
            .list(&admin(), &ListQuery::new().filter("host", self.host()))
            .await
    }

    /// The resource tracker's full pass: usage from the instances on this
    /// host, the ComputeNode record, and the Placement provider.
    pub async fn update_available_resource(&self) -> anyhow::Result<()> {
        let me = &self.inner;
        let res = me.driver.host_resources().await?;
        let instances = self.instances_here().await?;
        let moving = self.migration_usage().await?;
        let mut t = me.tracker.lock().await;
        t.claims = instances
            .iter()
            .filter(|i| i.vm_state() != &VmState::Error || i.launched_at().is_some())
            .map(|i| (i.uuid().clone(), usage_of(i)))
            .chain(moving)
            .collect();
        t.reserved_memory_mb = res.inventories.get("MEMORY_MB").map_or(0, |i| i.reserved);
        let ctx = admin();
        let node = match t.node.take() {
            Some(n) => n,
            None => {
                let found: Vec<ComputeNode> = me
                    .objects
                    .list(
                        &ctx,
                        &ListQuery::new()
                            .filter("host", self.host())
                            .filter("hypervisor_hostname", res.hypervisor_hostname.clone()),
                    )
                    .await?;
                match found.into_iter().next() {
                    Some(n) => n,
                    None => {
                        let service_id = me
                            .service
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .as_ref()
                            .map(|s| *s.id());
                        let mut n = ComputeNode::new()
                            .with_uuid(uuid::Uuid::new_v4().to_string())
                            .with_host(Some(self.host().to_owned()))
                            .with_service_id(service_id)
                            .with_hypervisor_hostname(Some(res.hypervisor_hostname.clone()))
                            .with_vcpus(res.vcpus)
                            .with_memory_mb(res.memory_mb)
                            .with_local_gb(res.local_gb)
                            .with_vcpus_used(0)
                            .with_memory_mb_used(0)
                            .with_local_gb_used(0)
                            .with_hypervisor_type(res.hypervisor_type.clone())
                            .with_hypervisor_version(res.hypervisor_version)
                            .with_cpu_info(res.cpu_info.to_string())
                            // What the image properties filter matches
                            // (nova's `supported_hv_specs` from the driver's
                            // `supported_instances`).
                            .with_supported_hv_specs(
                                res.supported_instances
                                    .iter()
                                    .map(|[arch, hv, mode]| {
                                        nova_objects::HVSpec::new()
                                            .with_arch(arch.clone())
                                            .with_hv_type(hv.clone())
                                            .with_vm_mode(mode.clone())
                                    })
                                    .collect::<Vec<_>>(),
                            )
                            .with_running_vms(Some(0))
                            .with_current_workload(Some(0))
                            .with_host_ip(Some("127.0.0.1".to_owned()))
                            .with_mapped(0);
                        for (rc, set) in [
                            (
                                "VCPU",
                                ComputeNode::set_cpu_allocation_ratio as fn(&mut ComputeNode, f64),
                            ),
                            ("MEMORY_MB", ComputeNode::set_ram_allocation_ratio),
                            ("DISK_GB", ComputeNode::set_disk_allocation_ratio),
                        ] {
                            set(
                                &mut n,
                                res.inventories.get(rc).map_or(1.0, |i| i.allocation_ratio),
                            );
                        }
                        me.objects.create(&ctx, &mut n).await?;
                        n
                    }
                }
            }
        };
        t.node = Some(node);
        // Placement: the provider, its inventories and traits.
        let uuid = t
            .node
            .as_ref()
            .map(|n| n.uuid().clone())
            .unwrap_or_default();
        let rp = match me.placement.get_provider_async(&uuid).await {
            Ok(rp) => rp,
            Err(_) => me
                .placement
                .create_provider_async(&uuid, &res.hypervisor_hostname, None)
                .await
                .map_err(|e| anyhow::anyhow!("placement: {e}"))?,
        };
        let inventory: BTreeMap<String, InventoryRecord> = res
            .inventories
            .iter()
            .map(|(rc, i)| {
                (
                    rc.clone(),
                    InventoryRecord {
                        total: i.total,
                        reserved: i.reserved,
                        min_unit: 1,
                        max_unit: i.max_unit.max(1),
                        step_size: 1,
                        allocation_ratio: i.allocation_ratio,
                    },
                )
            })
            .collect();
        let mut generation = rp.generation;
        if t.inventory != inventory {
            let (g, current) = me
                .placement
                .inventories_async(&uuid)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            generation = g;
            if current != inventory {
                generation = me
                    .placement
                    .set_inventories_async(&uuid, generation, &inventory)
                    .await
                    .map_err(|e| anyhow::anyhow!("placement inventory: {e}"))?;
            }
            t.inventory = inventory;
        }
        // The service record as operators last left it (os-services
        // enable/disable): a disabled compute is hidden from Placement.
        let sid = me
            .service
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.uuid().clone());
        let disabled = match sid {
            Some(u) => match me.objects.get_by_uuid::<Service>(&ctx, &u).await {
                Ok(s) => *s.disabled(),
                Err(_) => false,
            },
            None => false,
        };
        let mut traits: BTreeSet<String> = res.traits.iter().cloned().collect();
        if disabled {
            traits.insert("COMPUTE_STATUS_DISABLED".into());
        }
        if t.traits != traits {
            let (g, current) = me
                .placement
                .traits_async(&uuid)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if current != traits {
                me.placement
                    .set_traits_async(&uuid, g.max(generation), &traits)
                    .await
                    .or_else(|_| {
                        // Someone moved the generation: retried next period.
                        Ok::<u64, anyhow::Error>(0)
                    })?;
            }
            t.traits = traits;
        }
        self.write_usage(&mut t).await;
        drop(t);
        let tracked: BTreeSet<String> = instances.iter().map(|i| i.uuid().clone()).collect();
        self.remove_deleted_instances_allocations(&uuid, &tracked)
            .await;
        Ok(())
    }

    async fn write_usage(&self, t: &mut Tracker) {
        t.dirty = false;
        let total = t.claims.values().fold(Usage::default(), |a, u| Usage {
            vcpus: a.vcpus + u.vcpus,
            memory_mb: a.memory_mb + u.memory_mb,
            disk_gb: a.disk_gb + u.disk_gb,
        });
        let running = t.claims.len() as i64;
        let reserved = t.reserved_memory_mb;
        let Some(n) = t.node.as_mut() else { return };
        let mem_used = total.memory_mb + reserved;
        n.set_vcpus_used(total.vcpus);
        n.set_memory_mb_used(mem_used);
        n.set_local_gb_used(total.disk_gb);
        n.set_free_ram_mb(Some(*n.memory_mb() - mem_used));
        n.set_free_disk_gb(Some(*n.local_gb() - total.disk_gb));
        n.set_running_vms(Some(running));
        n.set_stats(Some(BTreeMap::from([(
            "num_instances".to_owned(),
            Some(running.to_string()),
        )])));
        if !n.obj_what_changed().is_empty()
            && let Err(e) = self.inner.objects.save(&admin(), n).await
        {
            tracing::warn!(error = %e, "cannot save the compute node usage");
        }
    }

    pub(crate) async fn claim(&self, inst: &Instance) {
        let mut t = self.inner.tracker.lock().await;
        t.claims.insert(inst.uuid().clone(), usage_of(inst));
        self.mark_dirty(&mut t);
    }

    pub(crate) async fn drop_claim(&self, uuid: &str) {
        let mut t = self.inner.tracker.lock().await;
        if t.claims.remove(uuid).is_some() {
            self.mark_dirty(&mut t);
        }
    }

    /// Claims are counted at once; the ComputeNode record follows within
    /// [`USAGE_FLUSH`] (one write for a burst of builds and deletes —
    /// Placement, not this record, is what admits claims; the scheduler
    /// reads the record at most once a second).
    fn mark_dirty(&self, t: &mut Tracker) {
        if t.dirty {
            return;
        }
        t.dirty = true;
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(USAGE_FLUSH).await;
            let mut t = me.inner.tracker.lock().await;
            if t.dirty {
                me.write_usage(&mut t).await;
            }
        });
    }

    /// The compute node's uuid (the Placement provider), once started.
    pub async fn node_uuid(&self) -> Option<String> {
        self.inner
            .tracker
            .lock()
            .await
            .node
            .as_ref()
            .map(|n| n.uuid().clone())
    }
}
