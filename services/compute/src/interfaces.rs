//! Interface hot-plug (nova's `attach_interface` / `detach_interface`)
//! and the `network-changed` refresh of the network info cache: the port
//! taken or made through the network API client and bound to this host,
//! the driver plugging it into the guest, the info cache updated, and
//! `instance.interface_attach.start/end/error`,
//! `instance.interface_detach.start/end` around it.

use nova_objects::{Instance, InstanceInfoCache, VersionedObject};
use nova_rpc::RequestContext;
use nova_service::cells::record_fault;
use nova_service::neutron::{self, AttachRefused};
use nova_service::notifications::{ExceptionPayload, Phase, Source};
use serde_json::Value;

use crate::actions::nova_error;
use crate::manager::ComputeManager;
use crate::manager::FixedIpChange;
use crate::network::driver_vifs;

/// The fault code nova's exception class has (`Invalid`: 400, `NotFound`:
/// 404, `PortInUse`-like conflicts: 409, the rest 500).
fn code_of(class: &str) -> i64 {
    match class {
        "PortNotFound" | "NetworkNotFound" => 404,
        "FixedIpAlreadyInUse" => 500,
        "InterfaceAttachFailed" => 500,
        _ => 400,
    }
}

/// `inst` with `vifs` as its (in-memory) network info, so that the
/// notifications that follow show its addresses.
fn with_network_info(inst: &mut Instance, vifs: &[Value]) {
    let cache = InstanceInfoCache::new()
        .with_instance_uuid(inst.uuid().clone())
        .with_network_info(Some(Value::from(vifs.to_vec()).to_string()));
    inst.set_info_cache(Some(cache));
}

impl ComputeManager {
    /// nova's `_attach_interface`: refused (nothing changes) when the
    /// driver cannot hot-plug (or tag) interfaces or the network service
    /// refuses the port; else the port bound here and attached by the
    /// driver (a driver failure releases the port again:
    /// `interface_attach.error`, `InterfaceAttachFailed`). Returns the VIF.
    pub(crate) async fn do_attach_interface(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        network_id: Option<String>,
        port_id: Option<String>,
        requested_ip: Option<String>,
        tag: Option<String>,
    ) -> anyhow::Result<Value> {
        let uuid = inst.uuid().clone();
        let caps = self.inner.driver.capabilities();
        let fail = |class: &'static str, message: String| {
            let me = self.clone();
            let ctx = ctx.clone();
            let uuid = uuid.clone();
            async move {
                let _ = record_fault(
                    &me.inner.objects,
                    &ctx,
                    &uuid,
                    code_of(class),
                    &message,
                    None,
                    Some(me.host()),
                )
                .await;
                nova_error(class, message)
            }
        };
        if !caps.supports_attach_interface {
            return Err(fail(
                "AttachInterfaceNotSupported",
                format!("Attaching interfaces is not supported for instance {uuid}."),
            )
            .await);
        }
        if tag.is_some() && !caps.supports_tagged_attach_interface {
            return Err(fail(
                "NetworkInterfaceTaggedAttachNotSupported",
                "Tagged network interface attachment is not supported for this server instance."
                    .into(),
            )
            .await);
        }
        self.notify_action(ctx, &inst, "interface_attach", Phase::Start, None)
            .await;
        let Some(client) = self.network().cloned() else {
            return Err(fail(
                "InterfaceAttachFailedNoNetwork",
                format!(
                    "No specific network was requested and none are available for project '{}'.",
                    inst.project_id().as_deref().unwrap_or_default()
                ),
            )
            .await);
        };
        let vif = match client
            .allocate_port(
                &inst,
                network_id.as_deref(),
                port_id.as_deref(),
                requested_ip.as_deref(),
                self.host(),
            )
            .await
        {
            Ok(v) => v,
            Err(AttachRefused { class, message }) => return Err(fail(class, message).await),
        };
        let port = vif["id"].as_str().unwrap_or_default().to_owned();
        let given = vif["preserve_on_delete"] == true;
        let plugged = driver_vifs(std::slice::from_ref(&vif));
        if let Err(e) = self.inner.driver.attach_interface(&uuid, &plugged[0]).await {
            tracing::warn!(instance = %uuid, port = %port, error = %e,
                "attach interface failed, try to deallocate port");
            if let Err(e) = neutron::release_port(&client, &port, given).await {
                tracing::warn!(instance = %uuid, port = %port, error = %e, "port not released");
            }
            let fault = ExceptionPayload::from_driver(module_path!(), "_attach_interface", &e);
            self.notify_action(ctx, &inst, "interface_attach", Phase::Error, Some(&fault))
                .await;
            return Err(fail(
                "InterfaceAttachFailed",
                format!("Failed to attach network adapter device to {uuid}"),
            )
            .await);
        }
        let mac = vif["address"].as_str().unwrap_or_default().to_owned();
        // The port's record, with its tag (the API's 2.70 `tag`).
        self.record_vifs(ctx, &uuid, &[(port.clone(), mac, tag)])
            .await?;
        let mut vifs = self.cached_vifs(ctx, &uuid).await;
        vifs.retain(|v| v["id"] != vif["id"]);
        vifs.push(vif.clone());
        self.save_network_info(ctx, &uuid, &vifs).await?;
        self.refresh_device_metadata(ctx, &mut inst).await?;
        with_network_info(&mut inst, &vifs);
        self.notify_action(ctx, &inst, "interface_attach", Phase::End, None)
            .await;
        Ok(vif)
    }

    /// nova's `_detach_interface`: the port must be in the instance's
    /// (refreshed) network info (`PortNotFound`); the driver unplugs it
    /// (a failure: `InterfaceDetachFailed`, the port kept), then the port
    /// is deleted when nova made it, else unbound, and leaves the cache.
    pub(crate) async fn do_detach_interface(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        port_id: String,
    ) -> anyhow::Result<()> {
        let uuid = inst.uuid().clone();
        let mut vifs = self.refresh_network_info(ctx, &uuid).await;
        let Some(condemned) = vifs.iter().find(|v| v["id"] == port_id.as_str()).cloned() else {
            let msg = format!("Port {port_id} is not attached");
            let _ = record_fault(
                &self.inner.objects,
                ctx,
                &uuid,
                404,
                &msg,
                None,
                Some(self.host()),
            )
            .await;
            return Err(nova_error("PortNotFound", msg));
        };
        with_network_info(&mut inst, &vifs);
        self.notify_action(ctx, &inst, "interface_detach", Phase::Start, None)
            .await;
        let unplug = driver_vifs(std::slice::from_ref(&condemned));
        if let Err(e) = self.inner.driver.detach_interface(&uuid, &unplug[0]).await {
            tracing::warn!(instance = %uuid, port = %port_id, error = %e, "Detach interface failed");
            let msg = format!("Failed to detach network adapter device from {uuid}");
            let _ = record_fault(
                &self.inner.objects,
                ctx,
                &uuid,
                400,
                &msg,
                None,
                Some(self.host()),
            )
            .await;
            return Err(nova_error("InterfaceDetachFailed", msg));
        }
        if let Some(client) = self.network().cloned() {
            let keep = condemned["preserve_on_delete"] == true;
            neutron::release_port(&client, &port_id, keep).await?;
        }
        self.destroy_vif_record(ctx, &uuid, &port_id).await?;
        vifs.retain(|v| v["id"] != port_id.as_str());
        self.save_network_info(ctx, &uuid, &vifs).await?;
        self.refresh_device_metadata(ctx, &mut inst).await?;
        with_network_info(&mut inst, &vifs);
        self.notify_action(ctx, &inst, "interface_detach", Phase::End, None)
            .await;
        Ok(())
    }

    /// nova's `inject_network_info` (a cast, no instance action): the
    /// instance's network info read again from the network service into
    /// its info cache, then handed to the driver to inject into the guest
    /// (nova's libvirt driver, as ours, does nothing with it; the fake
    /// driver records it). Under the instance's lock, as an attach or a
    /// detach; a driver failure is recorded as the instance's fault
    /// (nova's `wrap_instance_fault`).
    pub(crate) async fn do_inject_network_info(
        &self,
        ctx: &RequestContext,
        inst: Instance,
    ) -> Result<(), nova_rpc::RemoteError> {
        let uuid = inst.uuid().clone();
        let lock = self.lock_for(&uuid);
        let r = {
            let _g = lock.lock().await;
            let vifs = self.refresh_network_info(ctx, &uuid).await;
            tracing::debug!(instance = %uuid, vifs = vifs.len(), "Inject network info");
            self.inner
                .driver
                .inject_network_info(&uuid, &driver_vifs(&vifs))
                .await
        };
        drop(lock);
        self.unlock_for(&uuid);
        if let Err(e) = r {
            tracing::warn!(instance = %uuid, error = %e, "network info not injected");
            let msg = e.to_string();
            let _ = record_fault(
                &self.inner.objects,
                ctx,
                &uuid,
                500,
                &msg,
                None,
                Some(self.host()),
            )
            .await;
            return Err(nova_rpc::RemoteError::internal(
                "InjectNetworkInfoFailed",
                msg,
            ));
        }
        Ok(())
    }

    /// nova's multinic `add_fixed_ip_to_instance` /
    /// `remove_fixed_ip_from_instance`: legacy
    /// `compute.instance.create_ip.*` / `delete_ip.*` around the port's
    /// change, the info cache refreshed and injected into the guest,
    /// `updated_at` moved. The API answered before this ran, so a refusal
    /// (`NetworkNotFoundForInstance`, `FixedIpNotFoundForInstance`) is the
    /// instance's fault and `compute.exception` (nova's
    /// `wrap_instance_fault`, `wrap_exception`); no instance action.
    pub(crate) async fn do_change_fixed_ip(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        change: FixedIpChange,
    ) -> Result<(), nova_rpc::RemoteError> {
        // The caller's copy: only what this host changes is saved.
        inst.obj_reset_changes_recursive();
        let uuid = inst.uuid().clone();
        let (added, function) = match &change {
            FixedIpChange::Add(_) => (true, "add_fixed_ip_to_instance"),
            FixedIpChange::Remove(_) => (false, "remove_fixed_ip_from_instance"),
        };
        let notifier = self.notifier();
        let lock = self.lock_for(&uuid);
        let r = async {
            let _g = lock.lock().await;
            notifier
                .instance_ip(ctx, &inst, self.host(), added, Phase::Start, None)
                .await;
            let Some(client) = self.network().cloned() else {
                return Err(AttachRefused {
                    class: "NetworkNotFoundForInstance",
                    message: format!("Network could not be found for instance {uuid}."),
                });
            };
            match &change {
                FixedIpChange::Add(net) => client.add_fixed_ip(&inst, net).await?,
                FixedIpChange::Remove(address) => client.remove_fixed_ip(&inst, address).await?,
            }
            let vifs = self.refresh_network_info(ctx, &uuid).await;
            if let Err(e) = self
                .inner
                .driver
                .inject_network_info(&uuid, &driver_vifs(&vifs))
                .await
            {
                tracing::warn!(instance = %uuid, error = %e, "network info not injected");
            }
            inst.set_updated_at(Some(chrono::Utc::now()));
            if let Err(e) = self.inner.objects.save(ctx, &mut inst).await {
                tracing::warn!(instance = %uuid, error = %e, "updated_at not saved");
            }
            with_network_info(&mut inst, &vifs);
            let nw = Value::from(vifs);
            notifier
                .instance_ip(ctx, &inst, self.host(), added, Phase::End, Some(&nw))
                .await;
            Ok(())
        }
        .await;
        drop(lock);
        self.unlock_for(&uuid);
        let Err(AttachRefused { class, message }) = r else {
            return Ok(());
        };
        tracing::warn!(instance = %uuid, class, error = %message, "{function} failed");
        let code = if class.ends_with("NotFoundForInstance") {
            404
        } else {
            500
        };
        let _ = record_fault(
            &self.inner.objects,
            ctx,
            &uuid,
            code,
            &message,
            None,
            Some(self.host()),
        )
        .await;
        let fault = ExceptionPayload::new(module_path!(), function, class, message.clone());
        notifier
            .exception(ctx, Source::Compute, self.host(), &fault)
            .await;
        Err(nova_rpc::RemoteError::new(class, "nova.exception", message))
    }

    /// The instance's network info read again from the network service
    /// and written to its info cache (nova's `get_instance_nw_info` with a
    /// refresh: `network-changed`, a detach); the cache as it was when the
    /// network service cannot be asked.
    pub(crate) async fn refresh_network_info(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> Vec<Value> {
        let cached = self.cached_vifs(ctx, uuid).await;
        let Some(client) = self.network().cloned() else {
            return cached;
        };
        match client.instance_network_info(uuid, &cached).await {
            Ok(vifs) => {
                if vifs != cached
                    && let Err(e) = self.save_network_info(ctx, uuid, &vifs).await
                {
                    tracing::warn!(instance = %uuid, error = %e, "info cache not saved");
                }
                vifs
            }
            Err(e) => {
                tracing::warn!(instance = %uuid, error = %e, "network info not refreshed");
                cached
            }
        }
    }
}
