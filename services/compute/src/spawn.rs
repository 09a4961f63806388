//! What a spawn needs beyond the instance record: the image in the image
//! cache (drivers that boot from a disk) and the config drive's files.

use nova_objects::Instance;
use nova_rpc::RequestContext;
use nova_virt::InstanceSpec;
use serde_json::Value;

use crate::ComputeManager;

impl ComputeManager {
    /// The driver's spec of `inst`: its image fetched into the image cache
    /// (checksum verified) when the driver boots from a disk, and its
    /// config drive (with the decoded `injected_files`) when it needs one.
    pub(crate) async fn prepare_spawn(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        image: &Value,
        admin_password: Option<String>,
        injected_files: &[Value],
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
        let files = decode_files(injected_files).map_err(failed)?;
        spec.injected_files = files
            .iter()
            .map(|(path, contents)| nova_virt::InjectedFile {
                path: path.clone(),
                contents: contents.clone(),
            })
            .collect();
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
            .with_config_drive_extras(spec.admin_password.clone(), files);
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

/// nova's `_decode_files`: `[path, contents]` pairs (nova's tuples; the
/// `{path, contents}` form is taken too) with base64 contents, decoded.
pub(crate) fn decode_files(files: &[Value]) -> Result<Vec<(String, Vec<u8>)>, String> {
    use base64::Engine as _;
    files
        .iter()
        .map(|f| {
            let (path, contents) = match f {
                Value::Array(pair) => (pair.first(), pair.get(1)),
                _ => (f.get("path"), f.get("contents")),
            };
            let path = path.and_then(Value::as_str).unwrap_or_default().to_owned();
            let text: String = contents
                .and_then(Value::as_str)
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| format!("Invalid Base 64 data for file {path}"))?;
            Ok((path, decoded))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::decode_files;
    use serde_json::json;

    #[test]
    fn injected_files_are_decoded_as_nova_does() {
        let files = decode_files(&[
            json!(["/etc/motd", "aGVsbG8="]),
            json!({"path": "/root/x", "contents": "d29y\nbGQ="}),
        ])
        .unwrap();
        assert_eq!(
            files,
            vec![
                ("/etc/motd".to_owned(), b"hello".to_vec()),
                ("/root/x".to_owned(), b"world".to_vec())
            ]
        );
        assert_eq!(
            decode_files(&[json!(["/bad", "!!"])]).unwrap_err(),
            "Invalid Base 64 data for file /bad"
        );
    }
}
