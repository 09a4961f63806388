//! The Glance v2 subset clients need to boot (port 9292): version
//! discovery, image list with `name=` and `id=in:` filters, show, create,
//! update (JSON patch), delete, and upload/download of data to a local
//! store (one metadata file and one data file per image).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt as _;
use md5::Digest as _;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::auth::{Ctx, Identity};
use crate::image_rules::{self, MAX_IMAGE_BODY};

/// Fields Glance owns; everything else in an image is a custom property.
const CORE: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "owner",
    "disk_format",
    "container_format",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "min_disk",
    "min_ram",
    "protected",
    "created_at",
    "updated_at",
    "tags",
    "file",
    "self",
    "schema",
    "os_hidden",
];
const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "owner",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "file",
    "self",
    "schema",
];

/// Image metadata and data on local disk.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
    images: Arc<RwLock<BTreeMap<String, Value>>>,
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl ImageStore {
    /// The store in `dir` (created; existing images loaded).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut images = BTreeMap::new();
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Ok(text) = std::fs::read_to_string(&p)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && let Some(id) = v["id"].as_str()
            {
                images.insert(id.to_owned(), v);
            }
        }
        Ok(ImageStore {
            dir: dir.to_owned(),
            images: Arc::new(RwLock::new(images)),
        })
    }

    fn save(&self, img: &Value) -> std::io::Result<()> {
        let id = img["id"].as_str().unwrap_or_default();
        let tmp = self.dir.join(format!("{id}.json.tmp"));
        std::fs::write(&tmp, img.to_string())?;
        std::fs::rename(tmp, self.dir.join(format!("{id}.json")))
    }

    fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.data"))
    }

    /// An image by id.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.images
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Whether `ctx` may see `img`.
    pub fn visible(ctx: &Ctx, img: &Value) -> bool {
        ctx.is_admin()
            || matches!(img["visibility"].as_str(), Some("public" | "community"))
            || img["owner"].as_str() == Some(ctx.project_id.as_str())
    }

    /// Registers an image (the glance `POST /v2/images` body); returns it.
    pub fn create(
        &self,
        ctx: &Ctx,
        body: &Map<String, Value>,
    ) -> Result<Value, (StatusCode, String)> {
        let mut img = Map::new();
        let id = match body.get("id").and_then(Value::as_str) {
            Some(id) => {
                if uuid::Uuid::parse_str(id).is_err() {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!("id {id} is not a valid uuid"),
                    ));
                }
                if self.get(id).is_some() {
                    return Err((
                        StatusCode::CONFLICT,
                        format!("An image with identifier {id} already exists"),
                    ));
                }
                id.to_owned()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        for (k, v) in body {
            if READ_ONLY.contains(&k.as_str()) && k != "id" {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("Attribute '{k}' is read-only."),
                ));
            }
            img.insert(k.clone(), v.clone());
        }
        let visibility = img
            .get("visibility")
            .and_then(Value::as_str)
            .unwrap_or("shared")
            .to_owned();
        if !image_rules::VISIBILITIES.contains(&visibility.as_str()) {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("Invalid visibility value: {visibility}"),
            ));
        }
        image_rules::may_set_visibility(ctx, &visibility, None)?;
        let t = now();
        img.insert("id".into(), json!(id));
        img.insert("visibility".into(), json!(visibility));
        img.entry("name").or_insert(Value::Null);
        img.entry("disk_format").or_insert(Value::Null);
        img.entry("container_format").or_insert(Value::Null);
        img.entry("min_disk").or_insert(json!(0));
        img.entry("min_ram").or_insert(json!(0));
        img.entry("protected").or_insert(json!(false));
        img.entry("tags").or_insert(json!([]));
        img.entry("os_hidden").or_insert(json!(false));
        img.insert("status".into(), json!("queued"));
        img.insert("owner".into(), json!(ctx.project_id));
        for k in [
            "size",
            "virtual_size",
            "checksum",
            "os_hash_algo",
            "os_hash_value",
        ] {
            img.insert(k.into(), Value::Null);
        }
        img.insert("created_at".into(), json!(t));
        img.insert("updated_at".into(), json!(t));
        img.insert("file".into(), json!(format!("/v2/images/{id}/file")));
        img.insert("self".into(), json!(format!("/v2/images/{id}")));
        img.insert("schema".into(), json!("/v2/schemas/image"));
        image_rules::validate(&img)?;
        let img = Value::Object(img);
        self.save(&img)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        self.images
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, img.clone());
        Ok(img)
    }

    /// Stores `data` for an image and makes it active (what `PUT .../file`
    /// does); for tests and seeding.
    pub fn put_data(&self, id: &str, data: &[u8]) -> std::io::Result<Value> {
        std::fs::write(self.data_path(id), data)?;
        let md5 = hex::encode(md5::Md5::digest(data));
        let sha = hex::encode(sha2::Sha512::digest(data));
        self.activate(id, data.len() as u64, md5, sha)
    }

    /// Deletes an image and its data (one already gone is fine).
    pub fn delete(&self, id: &str) -> std::io::Result<()> {
        self.images
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        for p in [self.dir.join(format!("{id}.json")), self.data_path(id)] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn activate(&self, id: &str, size: u64, md5: String, sha: String) -> std::io::Result<Value> {
        let mut map = self.images.write().unwrap_or_else(|e| e.into_inner());
        let Some(img) = map.get_mut(id) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such image",
            ));
        };
        img["size"] = json!(size);
        img["virtual_size"] = json!(size);
        img["checksum"] = json!(md5);
        img["os_hash_algo"] = json!("sha512");
        img["os_hash_value"] = json!(sha);
        img["status"] = json!("active");
        img["updated_at"] = json!(now());
        let img = img.clone();
        drop(map);
        self.save(&img)?;
        Ok(img)
    }
}

#[derive(Debug, Clone)]
struct ImgState {
    store: ImageStore,
    identity: Identity,
    base: String,
}

/// The image API router; `base` is its public URL.
pub fn router(store: ImageStore, identity: Identity, base: &str) -> Router {
    let st = ImgState {
        store,
        identity,
        base: base.trim_end_matches('/').to_owned(),
    };
    Router::new()
        .route("/", get(versions))
        .route("/versions", get(versions))
        .route("/v2/images", get(list).post(create))
        .route("/v2/images/{id}", get(show).patch(update).delete(delete))
        .route(
            "/v2/images/{id}/file",
            get(download).put(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v2/schemas/image", get(schema))
        .route("/v2/schemas/images", get(schema))
        .layer(DefaultBodyLimit::max(MAX_IMAGE_BODY))
        .with_state(st)
}

fn err(status: StatusCode, msg: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        format!("{} {title}\n\n{msg}\n\n", status.as_u16()),
    )
        .into_response()
}

fn caller(st: &ImgState, headers: &HeaderMap) -> Result<Ctx, Response> {
    st.identity
        .authenticate(headers, &format!("req-{}", uuid::Uuid::new_v4()))
        .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "This server could not verify that you are authorized to access the document you requested."))
}

async fn versions(State(st): State<ImgState>) -> Response {
    let v = |id: &str, status: &str| json!({"id": id, "status": status, "links": [{"rel": "self", "href": format!("{}/v2/", st.base)}]});
    axum::Json(json!({"versions": [v("v2.16", "CURRENT"), v("v2.15", "SUPPORTED"), v("v2.0", "SUPPORTED")]}))
        .into_response()
}

async fn schema() -> Response {
    axum::Json(json!({
        "name": "image",
        "properties": {
            "id": {"type": "string"}, "name": {"type": ["null", "string"]},
            "status": {"type": "string"}, "visibility": {"type": "string"},
            "disk_format": {"type": ["null", "string"]}, "container_format": {"type": ["null", "string"]},
            "min_disk": {"type": "integer"}, "min_ram": {"type": "integer"},
            "tags": {"type": "array"}, "protected": {"type": "boolean"}
        },
        "additionalProperties": {"type": "string"}
    }))
    .into_response()
}

async fn list(
    State(st): State<ImgState>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let ctx = match caller(&st, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut limit = usize::MAX;
    let mut marker: Option<String> = None;
    let mut filters: Vec<(String, String)> = Vec::new();
    for (k, v) in q {
        match k.as_str() {
            "limit" => match v.parse() {
                Ok(n) => limit = n,
                Err(_) => return err(StatusCode::BAD_REQUEST, "limit param must be an integer"),
            },
            "marker" => marker = Some(v),
            "sort_key" | "sort_dir" | "sort" => {}
            _ => filters.push((k, v)),
        }
    }
    let images = st
        .store
        .images
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut out: Vec<Value> = images
        .into_values()
        .filter(|img| ImageStore::visible(&ctx, img))
        .filter(|img| {
            filters.iter().all(|(k, v)| {
                let have = match &img[k.as_str()] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                match v.strip_prefix("in:") {
                    Some(list) => list.split(',').any(|x| x.trim_matches('"') == have),
                    None => *v == have,
                }
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b["created_at"]
            .as_str()
            .cmp(&a["created_at"].as_str())
            .then(a["id"].as_str().cmp(&b["id"].as_str()))
    });
    if let Some(m) = marker {
        match out
            .iter()
            .position(|i| i["id"].as_str() == Some(m.as_str()))
        {
            Some(p) => {
                out.drain(..=p);
            }
            None => {
                return err(
                    StatusCode::BAD_REQUEST,
                    &format!("marker {m} could not be found."),
                );
            }
        }
    }
    let mut body = json!({"first": "/v2/images", "schema": "/v2/schemas/images"});
    if out.len() > limit {
        out.truncate(limit);
        if let Some(last) = out.last() {
            body["next"] = json!(format!(
                "/v2/images?marker={}&limit={limit}",
                last["id"].as_str().unwrap_or("")
            ));
        }
    }
    body["images"] = Value::Array(out);
    axum::Json(body).into_response()
}

fn visible_image(st: &ImgState, ctx: &Ctx, id: &str) -> Result<Value, Response> {
    match st.store.get(id) {
        Some(img) if ImageStore::visible(ctx, &img) => Ok(img),
        _ => Err(err(
            StatusCode::NOT_FOUND,
            &format!("No image found with ID {id}"),
        )),
    }
}

async fn show(
    State(st): State<ImgState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let ctx = match caller(&st, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match visible_image(&st, &ctx, &id) {
        Ok(img) => axum::Json(img).into_response(),
        Err(r) => r,
    }
}

async fn create(State(st): State<ImgState>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = match caller(&st, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err((s, m)) = image_rules::may_write(&ctx, "add_image") {
        return err(s, &m);
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, "Body must be a JSON object.");
    };
    match st.store.create(&ctx, &body) {
        Ok(img) => (StatusCode::CREATED, axum::Json(img)).into_response(),
        Err((s, m)) => err(s, &m),
    }
}

fn owns(ctx: &Ctx, img: &Value) -> bool {
    ctx.is_admin() || img["owner"].as_str() == Some(ctx.project_id.as_str())
}

async fn update(
    State(st): State<ImgState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let ctx = match caller(&st, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut img = match visible_image(&st, &ctx, &id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if let Err((s, m)) = image_rules::may_write(&ctx, "modify_image") {
        return err(s, &m);
    }
    if !owns(&ctx, &img) {
        return err(
            StatusCode::FORBIDDEN,
            "You are not permitted to modify this image.",
        );
    }
    let was = img["visibility"].as_str().map(str::to_owned);
    let Ok(Value::Array(ops)) = serde_json::from_slice::<Value>(&body) else {
        return err(
            StatusCode::BAD_REQUEST,
            "Request body must be a JSON array of operation objects.",
        );
    };
    for op in ops {
        let path = op["path"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_owned();
        if path.is_empty() || path.contains('/') {
            return err(
                StatusCode::BAD_REQUEST,
                &format!("Invalid JSON pointer for this resource: '/{path}'"),
            );
        }
        if READ_ONLY.contains(&path.as_str()) {
            return err(
                StatusCode::FORBIDDEN,
                &format!("Attribute '{path}' is read-only."),
            );
        }
        match op["op"].as_str() {
            Some("add" | "replace") => img[path.as_str()] = op["value"].clone(),
            Some("remove") => {
                if CORE.contains(&path.as_str()) {
                    return err(
                        StatusCode::FORBIDDEN,
                        &format!("Attribute '{path}' is reserved."),
                    );
                }
                if let Some(o) = img.as_object_mut() {
                    o.remove(&path);
                }
            }
            _ => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "Unable to find `op` in JSON Schema change. It must be one of: add, remove, replace.",
                );
            }
        }
    }
    if let Some(o) = img.as_object()
        && let Err((s, m)) = image_rules::validate(o)
    {
        return err(s, &m);
    }
    if let Some(v) = img["visibility"].as_str()
        && let Err((s, m)) = image_rules::may_set_visibility(&ctx, v, was.as_deref())
    {
        return err(s, &m);
    }
    img["updated_at"] = json!(now());
    if let Err(e) = st.store.save(&img) {
        return err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    st.store
        .images
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, img.clone());
    axum::Json(img).into_response()
}

async fn delete(
    State(st): State<ImgState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let ctx = match caller(&st, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let img = match visible_image(&st, &ctx, &id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if let Err((s, m)) = image_rules::may_write(&ctx, "delete_image") {
        return err(s, &m);
    }
    if !owns(&ctx, &img) {
        return err(
            StatusCode::FORBIDDEN,
            "You are not permitted to delete this image.",
        );
    }
    if img["protected"].as_bool() == Some(true) {
        return err(
            StatusCode::FORBIDDEN,
            &format!("Image {id} is protected and cannot be deleted."),
        );
    }
    st.store
        .images
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    let _ = std::fs::remove_file(st.store.dir.join(format!("{id}.json")));
    let _ = std::fs::remove_file(st.store.data_path(&id));
    StatusCode::NO_CONTENT.into_response()
}

async fn upload(
    State(st): State<ImgState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: Body,
) -> Response {
    let ctx = match caller(&st, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let img = match visible_image(&st, &ctx, &id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if let Err((s, m)) = image_rules::may_write(&ctx, "upload_image") {
        return err(s, &m);
    }
    if !owns(&ctx, &img) {
        return err(
            StatusCode::FORBIDDEN,
            "You are not permitted to upload data for this image.",
        );
    }
    if img["status"].as_str() != Some("queued") {
        return err(
            StatusCode::CONFLICT,
            &format!(
                "Image status transition from {} to saving is not allowed",
                img["status"].as_str().unwrap_or("?")
            ),
        );
    }
    let tmp = st.store.dir.join(format!("{id}.data.part"));
    let mut file = match tokio::fs::File::create(&tmp).await {
        Ok(f) => f,
        Err(e) => return err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (mut md5, mut sha, mut size) = (md5::Md5::new(), sha2::Sha512::new(), 0u64);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return err(StatusCode::BAD_REQUEST, &format!("upload interrupted: {e}"));
            }
        };
        md5.update(&chunk);
        sha.update(&chunk);
        size += chunk.len() as u64;
        if let Err(e) = file.write_all(&chunk).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
        }
    }
    if let Err(e) = file
        .flush()
        .await
        .and(tokio::fs::rename(&tmp, st.store.data_path(&id)).await)
    {
        return err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    match st.store.activate(
        &id,
        size,
        hex::encode(md5.finalize()),
        hex::encode(sha.finalize()),
    ) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn download(
    State(st): State<ImgState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let ctx = match caller(&st, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let img = match visible_image(&st, &ctx, &id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if img["status"].as_str() != Some("active") {
        return StatusCode::NO_CONTENT.into_response();
    }
    match tokio::fs::File::open(st.store.data_path(&id)).await {
        Ok(f) => {
            let stream = tokio_util::io::ReaderStream::new(f);
            let mut r = Body::from_stream(stream).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/octet-stream"),
            );
            if let Some(c) = img["checksum"]
                .as_str()
                .and_then(|c| header::HeaderValue::from_str(c).ok())
            {
                r.headers_mut().insert("content-md5", c);
            }
            r
        }
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// What nova's image proxy (`/v2.1/images`, `images_proxy`) needs of the
/// store.
impl ImageStore {
    /// Every image (a snapshot of the store).
    pub(crate) fn all(&self) -> Vec<Value> {
        self.images
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// An image's custom properties (everything Glance does not own).
    pub(crate) fn properties(img: &Value) -> Map<String, Value> {
        img.as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| !CORE.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Replaces an image's custom properties with `props` (Glance's
    /// update with `purge_props`); returns the image.
    pub(crate) fn set_properties(
        &self,
        id: &str,
        props: &Map<String, Value>,
    ) -> std::io::Result<Value> {
        let mut map = self.images.write().unwrap_or_else(|e| e.into_inner());
        let Some(Value::Object(img)) = map.get_mut(id) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such image",
            ));
        };
        img.retain(|k, _| CORE.contains(&k.as_str()));
        for (k, v) in props {
            if !CORE.contains(&k.as_str()) {
                img.insert(k.clone(), v.clone());
            }
        }
        img.insert("updated_at".into(), json!(now()));
        let img = Value::Object(img.clone());
        drop(map);
        self.save(&img)?;
        Ok(img)
    }

    /// Removes an image and its data.
    pub(crate) fn remove(&self, id: &str) {
        self.images
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
        let _ = std::fs::remove_file(self.data_path(id));
    }
}
