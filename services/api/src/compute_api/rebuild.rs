//! Rebuilding a server (nova's `API.rebuild`): the lock and state checks
//! (ACTIVE, STOPPED or ERROR, no task), the new image (found, active,
//! fitting the flavor), the key pair (2.54), personality files (≤ 2.56,
//! nova's injected-file quotas), metadata quota, the instance's new
//! attributes and image properties (system metadata `image_*`) saved with
//! task state REBUILDING (expected none), the instance action, and the
//! cast to the conductor: with the instance's host when the image stays,
//! or through the scheduler's rebuild check (`_nova_check_type`, the host
//! forced) when it changes, the request spec then carrying the new image.

use std::collections::BTreeMap;

use nova_objects::{
    BlockDeviceMappingList, ImageMeta, KeyPair, KeyPairList, ListQuery, Lookup, RawObject,
    RequestSpec, SaveOptions,
};
use nova_service::instance_actions::names;
use nova_service::notifications::{OldStates, Source};
use nova_service::states::{TaskState, VmState};
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// nova's injected-file quotas (`[quota] injected_files`,
/// `injected_file_path_length`, `injected_file_content_bytes`).
const INJECTED_FILES: usize = 5;
const INJECTED_FILE_PATH: usize = 255;
const INJECTED_FILE_BYTES: usize = 10240;

/// What a rebuild asks for (the body, at the request's microversion).
#[derive(Debug, Default, Clone)]
pub(crate) struct RebuildRequest {
    /// `imageRef`.
    pub image_ref: String,
    /// `adminPass` (or a generated one).
    pub password: String,
    /// `name`.
    pub name: Option<String>,
    /// `description` (2.19; `Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// `metadata` (replaces the server's).
    pub metadata: Option<BTreeMap<String, String>>,
    /// `preserve_ephemeral`.
    pub preserve_ephemeral: bool,
    /// `OS-DCF:diskConfig` AUTO.
    pub auto_disk_config: Option<bool>,
    /// `accessIPv4`.
    pub access_ip_v4: Option<String>,
    /// `accessIPv6`.
    pub access_ip_v6: Option<String>,
    /// `personality` (≤ 2.56): `{path, contents}` (base64).
    pub personality: Vec<Value>,
    /// `key_name` (2.54; `Some(None)` unsets it).
    pub key_name: Option<Option<String>>,
    /// `user_data` (2.57; `Some(None)` unsets it).
    pub user_data: Option<Option<String>>,
    /// `trusted_image_certificates` (2.63; `Some(None)` unsets them).
    pub trusted_certs: Option<Option<Vec<String>>>,
    /// `hostname` (2.90).
    pub hostname: Option<String>,
}

/// Nova's `_check_injected_file_quota` (403, nova's messages).
pub(crate) fn check_personality(files: &[Value]) -> ApiResult<()> {
    if files.len() > INJECTED_FILES {
        return Err(Fault::forbidden("Personality file limit exceeded"));
    }
    for f in files {
        let path = f["path"].as_str().unwrap_or_default();
        if path.len() > INJECTED_FILE_PATH {
            return Err(Fault::forbidden(format!(
                "Personality file path exceeds maximum {INJECTED_FILE_PATH}"
            )));
        }
        let contents = f["contents"].as_str().unwrap_or_default();
        let decoded = base64_len(contents).ok_or_else(|| {
            Fault::bad_request("Personality content could not be Base64 decoded.")
        })?;
        if decoded > INJECTED_FILE_BYTES {
            return Err(Fault::forbidden(format!(
                "Personality file content exceeds maximum {INJECTED_FILE_BYTES}"
            )));
        }
    }
    Ok(())
}

/// nova's `injected_files` of a `personality`: `[path, contents]` pairs,
/// the contents still base64 (the compute decodes them); `None` for none.
pub(crate) fn injected_files(personality: &[Value]) -> Option<Vec<Value>> {
    (!personality.is_empty()).then(|| {
        personality
            .iter()
            .map(|f| json!([f["path"], f["contents"]]))
            .collect()
    })
}

/// The decoded length of base64 `s`, none when it is not base64.
fn base64_len(s: &str) -> Option<usize> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !t.len().is_multiple_of(4)
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    {
        return None;
    }
    let pad = t.chars().rev().take_while(|&c| c == '=').count();
    if pad > 2 {
        return None;
    }
    Some(t.len() / 4 * 3 - pad)
}

/// Nova's `utils.get_system_metadata_from_image`: the image's properties
/// and a few of its attributes as `image_*` system metadata.
pub(crate) fn image_system_metadata(img: &Value) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    const ATTRS: &[&str] = &["min_ram", "min_disk", "disk_format", "container_format"];
    const SKIP: &[&str] = &[
        "id",
        "name",
        "status",
        "visibility",
        "owner",
        "size",
        "virtual_size",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "created_at",
        "updated_at",
        "tags",
        "file",
        "self",
        "schema",
        "protected",
        "os_hidden",
        "locations",
        "direct_url",
    ];
    if let Some(o) = img.as_object() {
        for (k, v) in o {
            if SKIP.contains(&k.as_str()) || (v.is_null() && !ATTRS.contains(&k.as_str())) {
                continue;
            }
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            out.insert(format!("image_{k}"), Some(text));
        }
    }
    out
}

/// nova's `TrustedCerts` (1.0) primitive.
fn trusted_certs(ids: &[String]) -> RawObject {
    RawObject(json!({
        "nova_object.name": "TrustedCerts",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.0",
        "nova_object.data": {"ids": ids},
    }))
}

/// Nova's `API.rebuild`. 409 when locked, in another state or racing
/// another action; 400 for an unknown or inactive image, an image the
/// flavor cannot hold, an unknown key pair; 403 over a quota. Nothing is
/// written before every check passed.
pub(crate) async fn rebuild(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: nova_objects::Instance,
    r: RebuildRequest,
) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(
        &inst,
        "rebuild",
        &[VmState::Active, VmState::Stopped, VmState::Error],
        &[None],
    )?;
    let uuid = inst.uuid().clone();
    let host = inst.host().clone().filter(|h| !h.is_empty());
    let Some(host) = host else {
        return Err(Fault::conflict(format!("Instance {uuid} is not ready")));
    };
    // The key pair is the caller's (users own keys, projects own servers).
    let key: Option<Option<KeyPair>> = match &r.key_name {
        None => None,
        Some(None) => Some(None),
        Some(Some(name)) => {
            let q = ListQuery::new()
                .filter("name", name.as_str())
                .filter("user_id", ctx.user_id.as_str());
            let found: Vec<KeyPair> = st.objects.list(&admin_ctx(), &q).await?;
            match found.into_iter().next() {
                Some(k) => Some(Some(k)),
                None => return Err(Fault::bad_request("Invalid key_name provided.")),
            }
        }
    };
    let image_id = r
        .image_ref
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let img = st
        .images
        .get(&image_id)
        .filter(|i| crate::image::ImageStore::visible(ctx, i))
        .ok_or_else(|| Fault::bad_request("Cannot find image for rebuild"))?;
    if img["status"].as_str() != Some("active") {
        return Err(Fault::bad_request(format!(
            "Image {image_id} is not active."
        )));
    }
    if r.auto_disk_config == Some(true)
        && img["auto_disk_config"]
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
    {
        return Err(Fault::bad_request(format!(
            "Requested image {image_id} has automatic disk resize disabled."
        )));
    }
    let (ram, disk) = if nova_objects::VersionedObject::obj_attr_is_set(&inst, "flavor") {
        (*inst.flavor().memory_mb(), *inst.flavor().root_gb())
    } else {
        (inst.memory_mb().unwrap_or(0), inst.root_gb().unwrap_or(0))
    };
    if img["min_ram"].as_i64().unwrap_or(0) > ram {
        return Err(Fault::bad_request(
            "Flavor's memory is too small for requested image.",
        ));
    }
    if disk > 0 && img["min_disk"].as_i64().unwrap_or(0) > disk {
        return Err(Fault::bad_request(
            "Flavor's disk is too small for requested image.",
        ));
    }
    if let Some(m) = &r.metadata {
        super::metadata::check_quota(super::metadata::items_limit(st, ctx).await?, m)?;
    }
    check_personality(&r.personality)?;
    let spec: Option<RequestSpec> = match st
        .objects
        .get(&admin_ctx(), Lookup::field("instance_uuid", uuid.as_str()))
        .await
    {
        Ok(s) => Some(s),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };

    // Every check passed: the instance's new attributes.
    let old = OldStates::of(&inst);
    let orig_image_ref = inst.image_ref().clone().unwrap_or_default();
    let orig_sys_metadata = inst.system_metadata().clone();
    if let Some(k) = key {
        inst.set_key_name(k.as_ref().map(|k| k.name().clone()));
        inst.set_key_data(k.as_ref().and_then(|k| k.public_key().clone()));
        inst.set_keypairs(KeyPairList::new().with_objects(k.into_iter().collect::<Vec<_>>()));
    }
    if let Some(t) = &r.trusted_certs {
        inst.set_trusted_certs(t.as_deref().map(trusted_certs));
    }
    if let Some(h) = &r.hostname {
        inst.set_hostname(Some(h.clone()));
    }
    if let Some(n) = &r.name {
        inst.set_display_name(Some(n.clone()));
    }
    if let Some(d) = &r.description {
        inst.set_display_description(d.clone());
    }
    if let Some(m) = &r.metadata {
        inst.set_metadata(m.clone());
    }
    if let Some(a) = r.auto_disk_config {
        inst.set_auto_disk_config(a);
    }
    if let Some(a) = &r.access_ip_v4 {
        inst.set_access_ip_v4(Some(a.clone()));
    }
    if let Some(a) = &r.access_ip_v6 {
        inst.set_access_ip_v6(Some(a.clone()));
    }
    if let Some(u) = &r.user_data {
        inst.set_user_data(u.clone());
    }
    for (field, key) in [("os_type", "os_type"), ("architecture", "architecture")] {
        let v = img[key].as_str().map(str::to_owned);
        match field {
            "os_type" => inst.set_os_type(v),
            _ => inst.set_architecture(v),
        }
    }
    inst.set_image_ref(Some(image_id.clone()));
    inst.set_kernel_id(Some(img["kernel_id"].as_str().unwrap_or("").to_owned()));
    inst.set_ramdisk_id(Some(img["ramdisk_id"].as_str().unwrap_or("").to_owned()));
    inst.set_progress(Some(0));
    inst.set_task_state(Some(TaskState::Rebuilding.into()));
    // The old image's properties out, the new one's in.
    let mut sys: BTreeMap<String, Option<String>> = inst
        .system_metadata()
        .iter()
        .filter(|(k, _)| !k.starts_with("image_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    sys.extend(image_system_metadata(&img));
    sys.insert("image_base_image_ref".into(), Some(image_id.clone()));
    inst.set_system_metadata(sys);
    st.objects
        .save_with(
            &admin_ctx(),
            &mut inst,
            &SaveOptions::expected_task_state([None::<&str>]),
        )
        .await
        .map_err(|_| {
            Fault::conflict(format!(
                "Cannot 'rebuild' instance {uuid}: another action is in progress"
            ))
        })?;
    super::actions::record(st, ctx, &uuid, names::REBUILD).await?;
    let rpc = ctx.rpc();
    st.notifier
        .instance_update(&rpc, &inst, &old, Source::Compute, &st.cfg.host)
        .await;

    // A new image goes through the scheduler's rebuild check on this host.
    let mut spec = spec;
    let mut target = Some(host.clone());
    if orig_image_ref != image_id
        && let Some(s) = spec.as_mut()
    {
        s.set_image(Some(ImageMeta::from_dict(&img)));
        if let Err(e) = st.objects.save(&admin_ctx(), s).await {
            tracing::warn!(instance = %uuid, error = %e, "cannot save the request spec's new image");
        }
        let mut hints = s.scheduler_hints().clone().unwrap_or_default();
        hints.insert("_nova_check_type".into(), vec!["rebuild".into()]);
        s.set_scheduler_hints(Some(hints));
        s.set_force_hosts(Some(vec![host.clone()]));
        s.set_force_nodes(inst.node().clone().map(|n| vec![n]));
        target = None;
    }
    let orig: serde_json::Map<String, Value> = orig_sys_metadata
        .into_iter()
        .map(|(k, v)| (k, v.map_or(Value::Null, Value::String)))
        .collect();
    st.rpc
        .conductor
        .rebuild_instance(
            &rpc,
            &inst,
            &Some(r.password.clone()),
            &injected_files(&r.personality),
            &Some(image_id),
            &Some(orig_image_ref),
            &Value::Object(orig),
            &Some(BlockDeviceMappingList::new()),
            &false,
            &None,
            &r.preserve_ephemeral,
            &target,
            &spec,
            &Some(false),
            &None,
        )
        .await
        .map_err(Fault::internal)
}
