//! The image API as the compute uses it (nova's `nova.image.glance`):
//! uploading a snapshot into the image the API created, listing an
//! instance's backups, deleting images. The endpoint is `[glance]
//! api_servers`, else the `image` entry of the request's service catalog;
//! the request's own token authenticates (nova's context auth plugin),
//! with the service user's beside it when `[service_user]
//! send_service_user_token` is set (nova's `service_auth`).

use nova_rpc::RequestContext;
use serde_json::{Value, json};

use crate::manager::ComputeManager;

/// What went wrong with the image API.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImageError {
    /// No endpoint or no token to reach it.
    #[error("the image service is not reachable: {0}")]
    Unreachable(String),
    /// The image API answered with an error.
    #[error("image service: {status} {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Its body.
        body: String,
    },
}

impl ComputeManager {
    /// The image endpoint and token for `ctx`.
    fn image_endpoint(&self, ctx: &RequestContext) -> Result<(String, String), ImageError> {
        let url = self
            .inner
            .cfg
            .glance_api_servers
            .first()
            .cloned()
            .or_else(|| {
                ctx.get("service_catalog")?
                    .as_array()?
                    .iter()
                    .find(|e| e["type"] == "image")?["endpoints"]
                    .as_array()?
                    .iter()
                    .find_map(|e| {
                        e["publicURL"]
                            .as_str()
                            .or_else(|| e["url"].as_str())
                            .map(|u| u.trim_end_matches('/').to_owned())
                    })
            })
            .ok_or_else(|| {
                ImageError::Unreachable(
                    "no [glance] api_servers and no image endpoint in the service catalog".into(),
                )
            })?;
        let token = ctx
            .get("auth_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ImageError::Unreachable("the request carries no token".into()))?;
        Ok((url, token))
    }

    async fn image_request(
        &self,
        ctx: &RequestContext,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value, ImageError> {
        let (url, token) = self.image_endpoint(ctx)?;
        let mut rb = nova_service::service_auth::on_behalf_of(
            self.inner.http.request(method, format!("{url}{path}")),
            &token,
            self.inner.service_user.get().map(|s| &**s),
        )
        .await
        .map_err(|e| ImageError::Unreachable(e.to_string()))?;
        if let Some((ctype, bytes)) = body {
            rb = rb.header("Content-Type", ctype).body(bytes);
        }
        let r = rb
            .send()
            .await
            .map_err(|e| ImageError::Unreachable(e.to_string()))?;
        let status = r.status().as_u16();
        let text = r
            .text()
            .await
            .map_err(|e| ImageError::Unreachable(e.to_string()))?;
        if status >= 400 {
            return Err(ImageError::Status { status, body: text });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The image record of `image_id` (`GET /v2/images/{id}`).
    pub(crate) async fn show_image(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<Value, ImageError> {
        self.image_request(
            ctx,
            reqwest::Method::GET,
            &format!("/v2/images/{image_id}"),
            None,
        )
        .await
    }

    /// Uploads `data` (`disk_format`) into image `image_id`: its formats
    /// set, then its data (the image becomes active).
    pub(crate) async fn upload_image(
        &self,
        ctx: &RequestContext,
        image_id: &str,
        disk_format: &str,
        data: Vec<u8>,
    ) -> Result<(), ImageError> {
        let patch = json!([
            {"op": "replace", "path": "/disk_format", "value": disk_format},
            {"op": "replace", "path": "/container_format", "value": "bare"},
        ]);
        self.image_request(
            ctx,
            reqwest::Method::PATCH,
            &format!("/v2/images/{image_id}"),
            Some((
                "application/openstack-images-v2.1-json-patch",
                patch.to_string().into_bytes(),
            )),
        )
        .await?;
        self.image_request(
            ctx,
            reqwest::Method::PUT,
            &format!("/v2/images/{image_id}/file"),
            Some(("application/octet-stream", data)),
        )
        .await?;
        Ok(())
    }

    /// Deletes an image (one already gone is fine).
    pub(crate) async fn delete_image(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<(), ImageError> {
        match self
            .image_request(
                ctx,
                reqwest::Method::DELETE,
                &format!("/v2/images/{image_id}"),
                None,
            )
            .await
        {
            Err(ImageError::Status { status: 404, .. }) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// The instance's backups of `backup_type`, newest first (nova's
    /// `_rotate_backups` query: `property-image_type=backup`,
    /// `property-backup_type`, `property-instance_uuid`, sorted by
    /// `created_at` descending).
    pub(crate) async fn list_backups(
        &self,
        ctx: &RequestContext,
        instance_uuid: &str,
        backup_type: &str,
    ) -> Result<Vec<Value>, ImageError> {
        let v = self
            .image_request(
                ctx,
                reqwest::Method::GET,
                &format!(
                    "/v2/images?image_type=backup&backup_type={}&instance_uuid={instance_uuid}&sort_key=created_at&sort_dir=desc&limit=1000",
                    urlencode(backup_type)
                ),
                None,
            )
            .await?;
        Ok(v["images"].as_array().cloned().unwrap_or_default())
    }
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
