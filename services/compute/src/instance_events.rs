//! nova's `InstanceEvents`: what a compute waits for from other services
//! (`network-vif-plugged-<port>`), registered before the action that
//! triggers it and completed by `external_instance_event`.

use std::collections::HashMap;
use std::sync::Mutex;

use nova_objects::{Instance, InstanceExternalEvent};
use nova_rpc::{RemoteError, RequestContext};
use tokio::sync::oneshot;

use crate::manager::ComputeManager;

/// Waiters by (instance uuid, event key).
#[derive(Debug, Default)]
pub(crate) struct InstanceEvents {
    waiters: Mutex<HashMap<(String, String), oneshot::Sender<String>>>,
}

impl InstanceEvents {
    /// Registers a wait for `key` (`name-tag`) of `instance`; the receiver
    /// gets the event's status. The build's wait for `network-vif-plugged`
    /// (`network.rs`) is its caller.
    pub(crate) fn prepare(&self, instance: &str, key: &str) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        self.lock()
            .insert((instance.to_owned(), key.to_owned()), tx);
        rx
    }

    /// Completes the wait for `key` of `instance`; false when nobody waited.
    pub(crate) fn pop(&self, instance: &str, key: &str, status: &str) -> bool {
        match self.lock().remove(&(instance.to_owned(), key.to_owned())) {
            Some(tx) => tx.send(status.to_owned()).is_ok(),
            None => false,
        }
    }

    /// Drops every wait of `instance` (its build ended or it is deleted).
    pub(crate) fn clear(&self, instance: &str) {
        self.lock().retain(|(i, _), _| i != instance);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), oneshot::Sender<String>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ComputeManager {
    /// `external_instance_event`: completes the waits; `network-vif-deleted`
    /// drops the port from the instance's network info cache;
    /// `network-changed` reads the instance's ports again from the network
    /// service into its info cache.
    pub(crate) async fn do_external_instance_event(
        &self,
        ctx: RequestContext,
        instances: Vec<Instance>,
        events: Vec<InstanceExternalEvent>,
    ) -> Result<(), RemoteError> {
        for ev in &events {
            let uuid = ev.instance_uuid();
            if !instances.iter().any(|i| i.uuid() == uuid) {
                tracing::warn!(instance = %uuid, event = %ev.name(), "event for an instance not passed along");
                continue;
            }
            match ev.name().as_str() {
                "network-vif-deleted" => {
                    if let (Some(port), Some(inst)) =
                        (ev.tag(), instances.iter().find(|i| i.uuid() == uuid))
                    {
                        self.forget_vif(&ctx, inst, port).await;
                    }
                }
                "network-changed" => {
                    // Under the instance's lock (as an attach or detach), in
                    // a task of its own: a build holding the lock may be
                    // waiting for an event behind this one.
                    let (me, ctx, uuid) = (self.clone(), ctx.clone(), uuid.clone());
                    tokio::spawn(async move {
                        let lock = me.lock_for(&uuid);
                        {
                            let _g = lock.lock().await;
                            me.refresh_network_info(&ctx, &uuid).await;
                        }
                        drop(lock);
                        me.unlock_for(&uuid);
                    });
                }
                _ => {
                    if !self.inner.events.pop(uuid, &ev.key(), ev.status()) {
                        tracing::debug!(instance = %uuid, event = %ev.key(), "no one waits for this event");
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes port `port` from `inst`'s network info cache (the one it
    /// came with, as nova's compute uses it; read when it came without).
    async fn forget_vif(&self, ctx: &RequestContext, inst: &Instance, port: &str) {
        let uuid = inst.uuid();
        let cache = match inst.info_cache() {
            Some(c) => Ok(c.clone()),
            None => {
                self.inner
                    .objects
                    .get::<nova_objects::InstanceInfoCache>(
                        ctx,
                        nova_objects::Lookup::field("instance_uuid", uuid.as_str()),
                    )
                    .await
            }
        };
        let Ok(mut cache) = cache else {
            return;
        };
        let mut nw: Vec<serde_json::Value> = cache
            .network_info()
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let before = nw.len();
        nw.retain(|v| v["id"].as_str() != Some(port));
        if nw.len() != before {
            cache.set_network_info(Some(serde_json::Value::from(nw).to_string()));
            if let Err(e) = self.inner.objects.save(ctx, &mut cache).await {
                tracing::warn!(instance = %uuid, error = %e, "info cache not saved");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_completed_once_and_cleared_with_its_instance() {
        let e = InstanceEvents::default();
        let mut rx = e.prepare("i1", "network-vif-plugged-p1");
        let other = e.prepare("i2", "network-vif-plugged-p2");
        assert!(!e.pop("i1", "network-vif-plugged-p9", "completed"));
        assert!(e.pop("i1", "network-vif-plugged-p1", "completed"));
        assert_eq!(rx.try_recv().ok().as_deref(), Some("completed"));
        assert!(!e.pop("i1", "network-vif-plugged-p1", "completed"));
        e.clear("i2");
        drop(other);
        assert!(!e.pop("i2", "network-vif-plugged-p2", "completed"));
    }
}
