//! The notifications of rebuilds, moves and shelving that come from
//! elsewhere than the compute of the instance (nova's
//! `notify_about_instance_rebuild(…, source=CONDUCTOR)`). The shelve
//! family (`instance.shelve*`, `instance.unshelve.*`) is
//! [`Notifier::instance_action`]'s.

use nova_objects::Instance;
use nova_rpc::RequestContext;
use serde_json::Value;

use super::payloads::{self, InstanceActionPayload, InstanceActionRebuildPayload};
use super::{Notifier, Source};

impl Notifier {
    /// `instance.rebuild_scheduled` (`InstanceActionRebuildPayload`, no
    /// phase) and the legacy `compute.instance.rebuild.scheduled`, as the
    /// conductor sends them once a host is known.
    pub async fn instance_rebuild_scheduled(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        source: Source,
        host: &str,
    ) {
        self.instance_usage(ctx, inst, host, "rebuild.scheduled", None, Value::Null)
            .await;
        if !self.versioned_enabled() {
            return;
        }
        let payload = InstanceActionRebuildPayload {
            action: InstanceActionPayload {
                instance: self.instance_payload(ctx, inst),
                fault: None,
            },
            trusted_image_certificates: payloads::trusted_certs(inst),
        };
        self.emit(
            ctx,
            Self::priority(None),
            format!("{}:{host}", source.as_str()),
            "instance.rebuild_scheduled",
            payload,
        )
        .await;
    }
}
