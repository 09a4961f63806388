//! What a spawn needs beyond the instance record: the image in the image
//! cache (drivers that boot from a disk) and the config drive's files.

use nova_objects::Instance;
use nova_rpc::RequestContext;
use nova_virt::InstanceSpec;
use serde_json::Value;

use crate::ComputeManager;

impl ComputeManager {
    /// The driver's spec of `inst`: its image fetched into the image cache
    /// (checksum verified) when the driver boots from a disk.
    pub(crate) async fn prepare_spawn(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        image: &Value,
        admin_password: Option<String>,
    ) -> Result<InstanceSpec, nova_virt::Error> {
        let mut spec = self.spec_of(inst, admin_password);
        let failed = |reason: String| nova_virt::Error::Failed {
            operation: "spawn",
            uuid: inst.uuid().clone(),
            reason,
        };
        if let Some(cache) = self.inner.images.get()
            && image["id"].as_str().is_some_and(|i| !i.is_empty())
        {
            let path = cache
                .fetch(ctx, image)
                .await
                .map_err(|e| failed(format!("{e:#}")))?;
            spec.image_path = Some(path.display().to_string());
        }
        if self.config_drive_required(inst) {
            let cfg = &self.inner.cfg;
            let md = nova_metadata::instance_metadata(
                &self.inner.objects,
                inst,
                None,
                &cfg.metadata,
                &cfg.vendor,
            )
            .await
            .with_config_drive_extras(spec.admin_password.clone(), Vec::new());
            let files = md.config_drive_files(&cfg.metadata).await;
            spec.config_drive = Some(
                files
                    .into_iter()
                    .map(|(path, contents)| nova_virt::InjectedFile { path, contents })
                    .collect(),
            );
        }
        Ok(spec)
    }

    /// nova's `configdrive.required_by`: the instance asked for one
    /// (`config_drive`), `[DEFAULT] force_config_drive`, or the image's
    /// `img_config_drive=mandatory`.
    pub(crate) fn config_drive_required(&self, inst: &Instance) -> bool {
        let asked = inst
            .config_drive()
            .as_deref()
            .is_some_and(|c| !c.is_empty() && !c.eq_ignore_ascii_case("false"));
        let mandatory = inst
            .system_metadata()
            .get("image_img_config_drive")
            .cloned()
            .flatten()
            .is_some_and(|v| v == "mandatory");
        asked || mandatory || self.inner.cfg.force_config_drive
    }
}
