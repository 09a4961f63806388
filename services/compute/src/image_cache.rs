//! The compute's image cache (nova's `_base` directory): an image is
//! downloaded once from the image API into `<instances_path>/_base/<sha1 of
//! the image id>`, its checksum verified (`os_hash_value` with
//! `os_hash_algo` sha512, else the md5 `checksum`), and instances' disks
//! are overlays on it.
//!
//! The image API is `[glance] api_servers` (the first), else the image
//! entry of the caller's service catalog, with the caller's token, both
//! carried by the request context as nova's are (`service_catalog`,
//! `auth_token`), and the service user's token beside it with `[service_user]
//! send_service_user_token`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use md5::Digest as _;
use nova_rpc::RequestContext;
use nova_service::service_auth::{ServiceUser, on_behalf_of};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

/// The image cache of one compute.
#[derive(Debug, Clone)]
pub struct ImageCache {
    dir: PathBuf,
    api_servers: Vec<String>,
    http: reqwest::Client,
    service_user: Option<Arc<ServiceUser>>,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl ImageCache {
    /// A cache in `<instances_path>/_base`, downloading from
    /// `api_servers` (or the caller's catalog when empty).
    pub fn new(instances_path: &Path, api_servers: Vec<String>) -> Self {
        ImageCache {
            dir: instances_path.join("_base"),
            api_servers,
            http: reqwest::Client::new(),
            service_user: None,
            locks: Arc::default(),
        }
    }

    /// Downloads also carry the service user's token
    /// (`[service_user] send_service_user_token`).
    #[must_use]
    pub fn with_service_user(mut self, service: Option<Arc<ServiceUser>>) -> Self {
        self.service_user = service;
        self
    }

    /// From nova.conf, for the compute on `host`: its instances path
    /// (`[DEFAULT] instances_path`, default `$state_path/instances`; nova-all's
    /// second libvirt compute's `[libvirt] peer_instances_path`) and
    /// `[glance] api_servers`.
    pub fn from_conf(conf: &nova_service::Conf, host: &str) -> anyhow::Result<Self> {
        let path = crate::driver::instances_path_for(conf, host)?;
        let servers = conf
            .get("glance", "api_servers")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Self::new(&path, servers))
    }

    /// Where the base file of `image_id` is (or will be).
    pub fn path_of(&self, image_id: &str) -> PathBuf {
        self.dir
            .join(hex::encode(<sha1::Sha1 as sha1::Digest>::digest(
                image_id.as_bytes(),
            )))
    }

    fn endpoint(&self, ctx: &RequestContext) -> anyhow::Result<String> {
        if let Some(s) = self.api_servers.first() {
            return Ok(s.clone());
        }
        ctx.get("service_catalog")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|e| e["type"] == "image")
            .and_then(|e| e["endpoints"].as_array()?.first()?["url"].as_str())
            .map(|u| u.trim_end_matches('/').to_owned())
            .context("no image API: set [glance] api_servers (the request carries no catalog)")
    }

    /// The local base file of `image` (its id, `checksum`, `os_hash_algo`,
    /// `os_hash_value`), downloaded and verified unless already cached.
    pub async fn fetch(&self, ctx: &RequestContext, image: &Value) -> anyhow::Result<PathBuf> {
        let id = image["id"].as_str().context("the image has no id")?;
        let path = self.path_of(id);
        let lock = {
            let mut l = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            l.entry(id.to_owned()).or_default().clone()
        };
        let _g = lock.lock().await;
        if tokio::fs::metadata(&path).await.is_ok() {
            return Ok(path);
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .with_context(|| format!("image cache {}", self.dir.display()))?;
        let url = format!("{}/v2/images/{id}/file", self.endpoint(ctx)?);
        let mut req = self.http.get(&url);
        if let Some(t) = ctx.get("auth_token").and_then(Value::as_str) {
            req = on_behalf_of(req, t, self.service_user.as_deref()).await?;
        }
        let mut resp = req.send().await.with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            bail!("image {id}: GET {url} answered {}", resp.status());
        }
        let tmp = path.with_extension(format!("part-{}", uuid::Uuid::new_v4().simple()));
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .with_context(|| format!("{}", tmp.display()))?;
        let (mut md5, mut sha512) = (md5::Md5::new(), sha2::Sha512::new());
        let written: anyhow::Result<()> = async {
            while let Some(chunk) = resp.chunk().await? {
                md5.update(&chunk);
                sha512.update(&chunk);
                f.write_all(&chunk).await?;
            }
            f.flush().await?;
            f.sync_all().await?;
            Ok(())
        }
        .await;
        drop(f);
        let verdict = written.and_then(|()| {
            let (md5, sha512) = (hex::encode(md5.finalize()), hex::encode(sha512.finalize()));
            verify(id, image, &md5, &sha512)
        });
        if let Err(e) = verdict {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        tokio::fs::rename(&tmp, &path).await?;
        tracing::info!(image = id, path = %path.display(), "image cached");
        Ok(path)
    }
}

/// nova's `glance._verify_checksum`: the multihash when the image has one
/// (only sha512 is computed here; another algorithm falls back to md5).
fn verify(id: &str, image: &Value, md5: &str, sha512: &str) -> anyhow::Result<()> {
    if image["os_hash_algo"] == "sha512"
        && let Some(want) = image["os_hash_value"].as_str()
    {
        if !want.eq_ignore_ascii_case(sha512) {
            bail!("image {id}: corrupt download (sha512 {sha512}, the image says {want})");
        }
        return Ok(());
    }
    if let Some(want) = image["checksum"].as_str()
        && !want.eq_ignore_ascii_case(md5)
    {
        bail!("image {id}: corrupt download (md5 {md5}, the image says {want})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checksums_are_checked() {
        let img = json!({"checksum": "ab", "os_hash_algo": "sha512", "os_hash_value": "CD"});
        assert!(verify("i", &img, "xx", "cd").is_ok());
        assert!(verify("i", &img, "ab", "ce").is_err());
        let md5_only = json!({"checksum": "ab"});
        assert!(verify("i", &md5_only, "ab", "zz").is_ok());
        assert!(verify("i", &md5_only, "ac", "zz").is_err());
    }

    #[test]
    fn base_files_are_named_by_the_sha1_of_the_image_id() {
        let c = ImageCache::new(Path::new("/x"), vec![]);
        assert_eq!(
            c.path_of("abc"),
            PathBuf::from("/x/_base/a9993e364706816aba3e25717850c26c9cd0d89d")
        );
    }
}
