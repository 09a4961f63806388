//! Vendor data (nova's `vendordata_json` and `vendordata_dynamic`):
//! StaticJSON reads `[api] vendordata_jsonfile_path`; DynamicJSON POSTs the
//! instance to each `[api] vendordata_dynamic_targets` (`name@url`) and
//! keeps what answers, each target's failure or timeout giving `{}` (a
//! warning) unless `vendordata_dynamic_failure_fatal`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::model::InstanceMetadata;

/// `[api]` vendor data settings.
#[derive(Debug, Clone)]
pub struct VendorConfig {
    /// `vendordata_providers` (`StaticJSON`).
    pub providers: Vec<String>,
    /// `vendordata_jsonfile_path`.
    pub jsonfile_path: Option<String>,
    /// `vendordata_dynamic_targets` as (name, url).
    pub dynamic_targets: Vec<(String, String)>,
    /// `vendordata_dynamic_connect_timeout` (5 s).
    pub connect_timeout: Duration,
    /// `vendordata_dynamic_read_timeout` (5 s).
    pub read_timeout: Duration,
    /// `vendordata_dynamic_failure_fatal` (false).
    pub failure_fatal: bool,
    http: reqwest::Client,
}

impl Default for VendorConfig {
    fn default() -> Self {
        VendorConfig {
            providers: vec!["StaticJSON".into()],
            jsonfile_path: None,
            dynamic_targets: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            failure_fatal: false,
            http: reqwest::Client::new(),
        }
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl VendorConfig {
    /// From nova.conf (`[api]`).
    pub fn from_conf(conf: &nova_service::Conf) -> anyhow::Result<Self> {
        let d = Self::default();
        let mut targets = Vec::new();
        for t in list(&conf.str_or("api", "vendordata_dynamic_targets", "")) {
            match t.split_once('@') {
                Some((name, url)) => targets.push((name.to_owned(), url.to_owned())),
                None => tracing::warn!(target = %t, "vendordata target lacks a name: skipped"),
            }
        }
        let connect = Duration::from_secs(conf.parse_or(
            "api",
            "vendordata_dynamic_connect_timeout",
            5u64,
        )?);
        let read =
            Duration::from_secs(conf.parse_or("api", "vendordata_dynamic_read_timeout", 5u64)?);
        Ok(VendorConfig {
            providers: conf
                .get("api", "vendordata_providers")
                .map(list)
                .unwrap_or(d.providers),
            jsonfile_path: conf
                .get("api", "vendordata_jsonfile_path")
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
            dynamic_targets: targets,
            connect_timeout: connect,
            read_timeout: read,
            failure_fatal: conf.bool_or("api", "vendordata_dynamic_failure_fatal", false)?,
            http: reqwest::Client::builder()
                .connect_timeout(connect)
                .read_timeout(read)
                .user_agent("openstack-nova-vendordata")
                .build()?,
        })
    }

    /// StaticJSON's document: the file's JSON, `{}` when there is no file
    /// or it cannot be read (nova logs and serves `{}`).
    fn read_static(&self) -> Value {
        let Some(p) = &self.jsonfile_path else {
            return json!({});
        };
        match std::fs::read(p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(path = %p, error = %e, "cannot read vendordata_jsonfile_path");
                json!({})
            }
        }
    }
}

/// One instance's vendor data.
#[derive(Debug)]
pub struct VendorData {
    cfg: Arc<VendorConfig>,
    static_json: Option<Value>,
    pub(crate) dynamic_body: Value,
    dynamic: OnceCell<Result<Map<String, Value>, String>>,
}

impl VendorData {
    /// For an instance whose DynamicJSON request body is `body` (nova's
    /// `project-id`, `instance-id`, `image-id`, `user-data`, `hostname`,
    /// `metadata`, `boot-roles`).
    pub fn new(cfg: Arc<VendorConfig>, body: Value) -> Self {
        let static_json = cfg
            .providers
            .iter()
            .any(|p| p == "StaticJSON")
            .then(|| cfg.read_static());
        VendorData {
            cfg,
            static_json,
            dynamic_body: body,
            dynamic: OnceCell::new(),
        }
    }

    /// `vendor_data.json`: StaticJSON's document when it is a provider.
    pub fn static_json(&self) -> Option<&Value> {
        self.static_json.as_ref()
    }

    async fn dynamic(&self, md: &InstanceMetadata) -> Result<Map<String, Value>, String> {
        self.dynamic
            .get_or_init(|| async {
                let mut j = Map::new();
                for (name, url) in &self.cfg.dynamic_targets {
                    if j.contains_key(name) {
                        tracing::warn!(target = %name, "vendordata already has an entry of that name: skipped");
                        continue;
                    }
                    let r = async {
                        let resp = self
                            .cfg
                            .http
                            .post(url)
                            .header("Accept", "application/json")
                            .json(&md.dynamic_body())
                            .timeout(self.cfg.connect_timeout + self.cfg.read_timeout)
                            .send()
                            .await
                            .map_err(|e| e.to_string())?;
                        if !resp.status().is_success() {
                            return Err(format!("{}", resp.status()));
                        }
                        let text = resp.text().await.map_err(|e| e.to_string())?;
                        if text.is_empty() {
                            return Ok(json!({}));
                        }
                        serde_json::from_str(&text).map_err(|e| e.to_string())
                    }
                    .await;
                    match r {
                        Ok(v) => {
                            j.insert(name.clone(), v);
                        }
                        Err(e) => {
                            tracing::warn!(service = %name, %url, error = %e, instance = %md.uuid,
                                "error from dynamic vendordata service");
                            if self.cfg.failure_fatal {
                                return Err(e);
                            }
                            j.insert(name.clone(), json!({}));
                        }
                    }
                }
                Ok(j)
            })
            .await
            .clone()
    }

    /// `vendor_data2.json`: `static` (StaticJSON) and one key per dynamic
    /// target, in provider order, later duplicates dropped.
    pub async fn vendor_data2(&self, md: &InstanceMetadata) -> Result<Value, String> {
        let mut j = Map::new();
        for p in &self.cfg.providers {
            match p.as_str() {
                "StaticJSON" => {
                    j.insert(
                        "static".into(),
                        self.static_json.clone().unwrap_or(json!({})),
                    );
                }
                "DynamicJSON" => {
                    for (k, v) in self.dynamic(md).await? {
                        if j.contains_key(&k) {
                            tracing::warn!(key = %k, "removing duplicate metadata key");
                            continue;
                        }
                        j.insert(k, v);
                    }
                }
                _ => {}
            }
        }
        Ok(Value::Object(j))
    }
}
