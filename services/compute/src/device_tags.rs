//! Device tags (nova's `VirtualInterface` records and the libvirt driver's
//! `_build_device_metadata`): a record per port of an instance, made when
//! its ports are bound at a build or an interface attach with the tag the
//! user gave (`networks[].tag`, os-interface's `tag`) and destroyed at a
//! detach (the instance's destroy takes the rest, as nova's
//! `instance_destroy`); and the instance's device metadata (a
//! `NetworkInterfaceMetadata` per tagged interface: its MAC, `[tag]` and
//! the guest's PCI address when the driver knows it), which the metadata
//! service shows the guest as `meta_data.json`'s `devices`.

use nova_objects::{Instance, ListQuery, RawObject, VirtualInterface};
use nova_rpc::RequestContext;
use nova_service::notifications::primitive;
use serde_json::{Value, json};

use crate::manager::ComputeManager;

/// nova's `InstanceDeviceMetadata` of the tagged interfaces among `vifs`
/// (`addresses`: the guest's PCI address by MAC); `None` when none is
/// tagged, as nova's `_build_device_metadata`.
pub(crate) fn device_metadata(
    vifs: &[VirtualInterface],
    addresses: &[(String, String)],
) -> Option<RawObject> {
    let devices: Vec<Value> = vifs
        .iter()
        .filter_map(|v| {
            let tag = v.tag().as_deref().filter(|t| !t.is_empty())?;
            let mac = v.address().clone()?;
            let mut data = json!({"mac": mac, "tags": [tag], "vf_trusted": false});
            if let Some((_, pci)) = addresses.iter().find(|(m, _)| m.eq_ignore_ascii_case(&mac)) {
                data["bus"] = primitive("PCIDeviceBus", "1.0", json!({ "address": pci }));
            }
            Some(primitive("NetworkInterfaceMetadata", "1.2", data))
        })
        .collect();
    (!devices.is_empty()).then(|| {
        RawObject(primitive(
            "InstanceDeviceMetadata",
            "1.0",
            json!({ "devices": devices }),
        ))
    })
}

impl ComputeManager {
    /// Records the interfaces `(port id, MAC, tag)` of instance `uuid`
    /// (nova's `_update_ports_for_instance` creating `VirtualInterface`s).
    pub(crate) async fn record_vifs(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        ports: &[(String, String, Option<String>)],
    ) -> anyhow::Result<Vec<VirtualInterface>> {
        let mut out = Vec::with_capacity(ports.len());
        for (port, mac, tag) in ports {
            let mut vif = VirtualInterface::new()
                .with_uuid(port.clone())
                .with_address(Some(mac.clone()))
                .with_instance_uuid(uuid.to_owned())
                .with_tag(tag.clone());
            self.inner.objects.create(ctx, &mut vif).await?;
            out.push(vif);
        }
        Ok(out)
    }

    /// The instance's live interface records.
    pub(crate) async fn vif_records(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> anyhow::Result<Vec<VirtualInterface>> {
        Ok(self
            .inner
            .objects
            .list(ctx, &ListQuery::new().filter("instance_uuid", uuid))
            .await?)
    }

    /// Destroys the record of port `port` of instance `uuid` (nova's
    /// `deallocate_port_for_instance`); none is not an error.
    pub(crate) async fn destroy_vif_record(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        port: &str,
    ) -> anyhow::Result<()> {
        for mut vif in self.vif_records(ctx, uuid).await? {
            if vif.uuid() == port {
                self.inner.objects.destroy(ctx, &mut vif).await?;
            }
        }
        Ok(())
    }

    /// Destroys every interface record of instance `uuid` (nova's
    /// `VirtualInterface.delete_by_instance_uuid` in
    /// `deallocate_for_instance`).
    pub(crate) async fn destroy_vif_records(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> anyhow::Result<()> {
        for mut vif in self.vif_records(ctx, uuid).await? {
            self.inner.objects.destroy(ctx, &mut vif).await?;
        }
        Ok(())
    }

    /// Sets `inst`'s device metadata from `vifs` and the guest's PCI
    /// addresses; returns whether it changed (the caller saves it).
    pub(crate) async fn set_device_metadata(
        &self,
        inst: &mut Instance,
        vifs: &[VirtualInterface],
    ) -> bool {
        let tagged = vifs
            .iter()
            .any(|v| v.tag().as_deref().is_some_and(|t| !t.is_empty()));
        let addresses = if tagged {
            match self.inner.driver.interface_addresses(inst.uuid()).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(instance = %inst.uuid(), error = %e, "no interface addresses");
                    vec![]
                }
            }
        } else {
            vec![]
        };
        let dm = device_metadata(vifs, &addresses);
        if *inst.device_metadata() == dm {
            return false;
        }
        inst.set_device_metadata(dm);
        true
    }

    /// The device metadata rebuilt from the instance's records and saved
    /// (after an attach or a detach).
    pub(crate) async fn refresh_device_metadata(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
    ) -> anyhow::Result<()> {
        let vifs = self.vif_records(ctx, inst.uuid()).await?;
        if self.set_device_metadata(inst, &vifs).await {
            self.inner.objects.save(ctx, inst).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vif(port: &str, mac: &str, tag: Option<&str>) -> VirtualInterface {
        VirtualInterface::new()
            .with_uuid(port)
            .with_address(Some(mac.into()))
            .with_instance_uuid("i")
            .with_tag(tag.map(str::to_owned))
    }

    #[test]
    fn device_metadata_has_the_tagged_interfaces_with_their_bus_when_known() {
        let vifs = [
            vif("p1", "fa:16:3e:00:00:01", Some("nic1")),
            vif("p2", "fa:16:3e:00:00:02", None),
            vif("p3", "fa:16:3e:00:00:03", Some("nic3")),
        ];
        let addr = [("FA:16:3E:00:00:01".to_owned(), "0000:00:03.0".to_owned())];
        let dm = device_metadata(&vifs, &addr).unwrap().0;
        assert_eq!(dm["nova_object.name"], "InstanceDeviceMetadata");
        let devs = dm["nova_object.data"]["devices"].as_array().unwrap();
        assert_eq!(devs.len(), 2);
        let d0 = &devs[0]["nova_object.data"];
        assert_eq!(devs[0]["nova_object.name"], "NetworkInterfaceMetadata");
        assert_eq!(d0["mac"], "fa:16:3e:00:00:01");
        assert_eq!(d0["tags"], json!(["nic1"]));
        assert_eq!(d0["bus"]["nova_object.name"], "PCIDeviceBus");
        assert_eq!(d0["bus"]["nova_object.data"]["address"], "0000:00:03.0");
        let d1 = &devs[1]["nova_object.data"];
        assert_eq!(d1["tags"], json!(["nic3"]));
        assert!(d1.get("bus").is_none());
    }

    #[test]
    fn no_tagged_interface_is_no_device_metadata() {
        let vifs = [
            vif("p", "fa:16:3e:00:00:01", None),
            vif("q", "fa:16:3e:00:00:02", Some("")),
        ];
        assert!(device_metadata(&vifs, &[]).is_none());
    }
}
