//! What a guest is told (nova's `InstanceMetadata`, `nova/api/metadata/base.py`):
//! the OpenStack tree (`openstack/<version>/meta_data.json`, `user_data`,
//! `password`, `vendor_data.json`, `network_data.json`,
//! `vendor_data2.json`) and the EC2 tree (`<version>/meta-data/…`,
//! `user-data`), for the metadata service and the config drive alike.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use nova_objects::{Instance, VersionedObject};
use serde_json::{Map, Value, json};

use crate::network;
use crate::vendordata::VendorData;

/// EC2 versions, oldest first (nova's `VERSIONS`).
pub const EC2_VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
];

/// OpenStack versions, oldest first (nova's `OPENSTACK_VERSIONS`).
pub const OPENSTACK_VERSIONS: &[&str] = &[
    FOLSOM, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, OCATA, ROCKY, VICTORIA, EPOXY,
];

const FOLSOM: &str = "2012-08-10";
const GRIZZLY: &str = "2013-04-04";
const HAVANA: &str = "2013-10-17";
const LIBERTY: &str = "2015-10-15";
const NEWTON_ONE: &str = "2016-06-30";
const NEWTON_TWO: &str = "2016-10-06";
const OCATA: &str = "2017-02-22";
const ROCKY: &str = "2018-08-27";
const VICTORIA: &str = "2020-10-14";
const EPOXY: &str = "2025-04-04";

/// `text/plain`.
pub const TEXT: &str = "text/plain; charset=UTF-8";
/// `application/json`.
pub const JSON: &str = "application/json";

/// What a metadata path resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A body and its content type.
    Data(Vec<u8>, &'static str),
    /// The password endpoint (GET reads, POST sets once).
    Password,
}

/// The path names nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound;

/// Settings that shape what is told (`[api]` options).
#[derive(Debug, Clone)]
pub struct MetadataConfig {
    /// `[api] dhcp_domain` (`novalocal`): appended to the hostname.
    pub dhcp_domain: String,
    /// `[api] config_drive_skip_versions`: EC2 versions left off config drives.
    pub config_drive_skip_versions: Vec<String>,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            dhcp_domain: "novalocal".into(),
            config_drive_skip_versions:
                "1.0 2007-01-19 2007-03-01 2007-08-29 2007-10-10 2007-12-15 2008-02-01 2008-09-01"
                    .split(' ')
                    .map(str::to_owned)
                    .collect(),
        }
    }
}

impl MetadataConfig {
    /// From nova.conf.
    pub fn from_conf(conf: &nova_service::Conf) -> Self {
        let d = Self::default();
        MetadataConfig {
            dhcp_domain: conf
                .get("api", "dhcp_domain")
                .map_or(d.dhcp_domain, str::to_owned),
            config_drive_skip_versions: conf
                .get("api", "config_drive_skip_versions")
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or(d.config_drive_skip_versions),
        }
    }
}

/// One instance's metadata, gathered once (cached by the service).
#[derive(Debug)]
pub struct InstanceMetadata {
    /// The instance uuid.
    pub uuid: String,
    /// Its project.
    pub project_id: String,
    /// The saved password (`password_0..3` of its system metadata), if any.
    pub password: Option<String>,
    /// The raw user data, if any.
    pub user_data: Option<Vec<u8>>,
    /// Its fixed IPv4 addresses (EC2 `local-ipv4`; lookups by address).
    pub fixed_ips: Vec<String>,
    hostname: String,
    name: Value,
    launch_index: Value,
    availability_zone: Value,
    meta: BTreeMap<String, String>,
    keypair: Option<(String, String, String)>,
    key_data: Option<String>,
    devices: Vec<Value>,
    dedicated_cpus: Vec<i64>,
    network_data: Value,
    floating_ips: Vec<String>,
    address: Option<String>,
    ec2_instance_id: String,
    ami_id: String,
    kernel_id: Option<String>,
    ramdisk_id: Option<String>,
    reservation_id: Value,
    security_groups: Vec<String>,
    flavor_name: Value,
    mappings: BTreeMap<String, String>,
    extra_md: Map<String, Value>,
    files: Vec<(String, Vec<u8>)>,
    vendor: VendorData,
}

fn data(v: &Value) -> &Value {
    v.get("nova_object.data").unwrap_or(v)
}

/// `ami-%08x`-style EC2 id of a glance uuid: nova numbers its S3 image
/// mappings; the first 8 hex digits of the uuid stand for that number here.
fn ec2_image_id(prefix: &str, uuid: &str) -> String {
    let hex: String = uuid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    format!("{prefix}-{hex:0>8}")
}

impl InstanceMetadata {
    /// Gathers `inst`'s metadata (its info cache's `network_info` JSON,
    /// the vendor data providers); `address` is the requester's.
    pub fn new(
        inst: &Instance,
        network_info: Option<&str>,
        address: Option<String>,
        cfg: &MetadataConfig,
        vendor: VendorData,
    ) -> Self {
        let p = inst.obj_to_primitive();
        let d = data(&p);
        let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
        let sysmeta = d["system_metadata"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut pw_keys: Vec<&String> = sysmeta
            .keys()
            .filter(|k| k.starts_with("password_"))
            .collect();
        pw_keys.sort();
        let password: String = pw_keys
            .iter()
            .filter_map(|k| sysmeta[k.as_str()].as_str())
            .collect();
        let user_data =
            s("user_data").map(|u| B64.decode(u.trim()).unwrap_or_else(|_| u.into_bytes()));
        let keypair = d["keypairs"]
            .pipe(data)
            .get("objects")
            .and_then(Value::as_array)
            .and_then(|l| l.first())
            .map(data)
            .map(|k| {
                (
                    k["name"].as_str().unwrap_or_default().to_owned(),
                    k["type"].as_str().unwrap_or("ssh").to_owned(),
                    k["public_key"].as_str().unwrap_or_default().to_owned(),
                )
            });
        let hostname = s("hostname").unwrap_or_default();
        let hostname = if cfg.dhcp_domain.is_empty() {
            hostname
        } else {
            format!("{hostname}.{}", cfg.dhcp_domain)
        };
        let nw: Value = network_info
            .and_then(|n| serde_json::from_str(n).ok())
            .unwrap_or(Value::Null);
        let (fixed_ips, floating_ips) = network::ec2_ip_info(&nw);
        let root = s("root_device_name");
        let mut mappings = BTreeMap::new();
        match &root {
            Some(r) => {
                mappings.insert("ami".into(), r.trim_start_matches("/dev/").to_owned());
                mappings.insert("root".into(), r.clone());
                if let Some(e) = s("default_ephemeral_device") {
                    mappings.insert(
                        "ephemeral0".into(),
                        e.trim_start_matches("/dev/").to_owned(),
                    );
                }
                if let Some(sw) = s("default_swap_device") {
                    mappings.insert("swap".into(), sw.trim_start_matches("/dev/").to_owned());
                }
            }
            None => {
                for (k, v) in [
                    ("ami", "sda1"),
                    ("ephemeral0", "sda2"),
                    ("root", "/dev/sda1"),
                    ("swap", "sda3"),
                ] {
                    mappings.insert(k.into(), v.into());
                }
            }
        }
        let security_groups = d["security_groups"]
            .pipe(data)
            .get("objects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| data(g)["name"].as_str().map(str::to_owned))
            .collect();
        let dedicated_cpus = {
            let mut cpus: Vec<i64> = d["numa_topology"]
                .pipe(data)
                .get("cells")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|c| data(c)["pcpuset"].as_array().cloned().unwrap_or_default())
                .filter_map(|v| v.as_i64())
                .collect();
            cpus.sort_unstable();
            cpus
        };
        let devices = device_metadata(&d["device_metadata"]);
        InstanceMetadata {
            uuid: inst.uuid().clone(),
            project_id: s("project_id").unwrap_or_default(),
            password: (!password.is_empty()).then_some(password),
            user_data,
            fixed_ips,
            hostname,
            name: d["display_name"].clone(),
            launch_index: d["launch_index"].clone(),
            availability_zone: d["availability_zone"].clone(),
            meta: inst.metadata().clone(),
            keypair,
            key_data: s("key_data"),
            devices,
            dedicated_cpus,
            network_data: network::network_data(&nw),
            floating_ips,
            address,
            ec2_instance_id: format!("i-{:08x}", *inst.id()),
            ami_id: ec2_image_id("ami", &s("image_ref").unwrap_or_default()),
            kernel_id: s("kernel_id")
                .filter(|k| !k.is_empty())
                .map(|k| ec2_image_id("aki", &k)),
            ramdisk_id: s("ramdisk_id")
                .filter(|k| !k.is_empty())
                .map(|k| ec2_image_id("ari", &k)),
            reservation_id: d["reservation_id"].clone(),
            security_groups,
            flavor_name: data(&d["flavor"])["name"].clone(),
            mappings,
            extra_md: Map::new(),
            files: Vec::new(),
            vendor,
        }
    }

    /// Adds nova's config-drive extras: `admin_pass` in meta_data.json and
    /// injected files under `openstack/content/`.
    pub fn with_config_drive_extras(
        mut self,
        admin_pass: Option<String>,
        files: Vec<(String, Vec<u8>)>,
    ) -> Self {
        if let Some(p) = admin_pass {
            self.extra_md.insert("admin_pass".into(), json!(p));
        }
        self.files = files;
        self
    }

    fn os_version(v: &str) -> Option<&'static str> {
        let v = if v == "latest" { EPOXY } else { v };
        OPENSTACK_VERSIONS.iter().copied().find(|x| *x == v)
    }

    fn since(required: &str, version: &str) -> bool {
        let i = |v: &str| OPENSTACK_VERSIONS.iter().position(|x| *x == v);
        matches!((i(version), i(required)), (Some(a), Some(b)) if a >= b)
    }

    fn ec2_since(required: &str, version: &str) -> bool {
        let i = |v: &str| EC2_VERSIONS.iter().position(|x| *x == v);
        matches!((i(version), i(required)), (Some(a), Some(b)) if a >= b)
    }

    /// `meta_data.json` of OpenStack `version` (a fresh `random_seed`).
    pub fn meta_data_json(&self, version: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("uuid".into(), json!(self.uuid));
        if !self.meta.is_empty() {
            m.insert("meta".into(), json!(self.meta));
        }
        if !self.files.is_empty() {
            let files: Vec<Value> = self
                .files
                .iter()
                .enumerate()
                .map(|(i, (path, _))| json!({"path": path, "content_path": format!("/content/{i:04}")}))
                .collect();
            m.insert("files".into(), json!(files));
        }
        m.extend(self.extra_md.clone());
        if let Some((name, kind, key)) = &self.keypair {
            m.insert("public_keys".into(), json!({ name.clone(): key }));
            m.insert(
                "keys".into(),
                json!([{"name": name, "type": kind, "data": key}]),
            );
        }
        m.insert("hostname".into(), json!(self.hostname));
        m.insert("name".into(), self.name.clone());
        m.insert("launch_index".into(), self.launch_index.clone());
        m.insert("availability_zone".into(), self.availability_zone.clone());
        if Self::since(GRIZZLY, version) {
            let mut seed = [0u8; 512];
            rand::fill(&mut seed[..]);
            m.insert("random_seed".into(), json!(B64.encode(seed)));
        }
        if Self::since(LIBERTY, version) {
            m.insert("project_id".into(), json!(self.project_id));
        }
        if Self::since(NEWTON_ONE, version) {
            let devices: Vec<Value> = self
                .devices
                .iter()
                .filter(|d| d["type"] != "share" || Self::since(EPOXY, version))
                .map(|d| {
                    let mut d = d.clone();
                    if let Some(o) = d.as_object_mut() {
                        if !Self::since(OCATA, version) {
                            o.remove("vlan");
                        }
                        if !Self::since(ROCKY, version) {
                            o.remove("vf_trusted");
                        }
                    }
                    d
                })
                .collect();
            m.insert("devices".into(), json!(devices));
        }
        if Self::since(VICTORIA, version) {
            m.insert("dedicated_cpus".into(), json!(self.dedicated_cpus));
        }
        m
    }

    /// The names under `openstack/<version>/`.
    fn os_listing(&self, version: &str) -> Vec<&'static str> {
        let mut l = vec!["meta_data.json"];
        if self.user_data.is_some() {
            l.push("user_data");
        }
        if Self::since(GRIZZLY, version) {
            l.push("password");
        }
        if Self::since(HAVANA, version) {
            l.push("vendor_data.json");
        }
        if Self::since(LIBERTY, version) {
            l.push("network_data.json");
        }
        if Self::since(NEWTON_TWO, version) {
            l.push("vendor_data2.json");
        }
        l
    }

    /// The EC2 tree of `version` (`meta-data`, and `user-data` when set).
    pub fn ec2_metadata(&self, version: &str) -> Result<Map<String, Value>, NotFound> {
        let version = if version == "latest" {
            "2009-04-04"
        } else {
            version
        };
        if !EC2_VERSIONS.contains(&version) {
            return Err(NotFound);
        }
        let fixed = self.fixed_ips.first().cloned();
        let mut md = Map::new();
        md.insert("ami-id".into(), json!(self.ami_id));
        md.insert("ami-launch-index".into(), self.launch_index.clone());
        md.insert("ami-manifest-path".into(), json!("FIXME"));
        md.insert("instance-id".into(), json!(self.ec2_instance_id));
        md.insert("hostname".into(), json!(self.hostname));
        md.insert("local-ipv4".into(), json!(fixed.or(self.address.clone())));
        md.insert("reservation-id".into(), self.reservation_id.clone());
        md.insert("security-groups".into(), json!(self.security_groups));
        if let (Some((name, _, _)), Some(key)) = (&self.keypair, &self.key_data) {
            md.insert(
                "public-keys".into(),
                json!({"0": {"_name": format!("0={name}"), "openssh-key": key}}),
            );
        }
        if Self::ec2_since("2007-01-19", version) {
            md.insert("local-hostname".into(), json!(self.hostname));
            md.insert("public-hostname".into(), json!(self.hostname));
            md.insert(
                "public-ipv4".into(),
                json!(self.floating_ips.first().cloned().unwrap_or_default()),
            );
        }
        if Self::ec2_since("2007-08-29", version) {
            md.insert("instance-type".into(), self.flavor_name.clone());
        }
        if Self::ec2_since("2007-12-15", version) {
            md.insert("block-device-mapping".into(), json!(self.mappings));
            if let Some(k) = &self.kernel_id {
                md.insert("kernel-id".into(), json!(k));
            }
            if let Some(r) = &self.ramdisk_id {
                md.insert("ramdisk-id".into(), json!(r));
            }
        }
        if Self::ec2_since("2008-02-01", version) {
            md.insert(
                "placement".into(),
                json!({"availability-zone": self.availability_zone}),
            );
        }
        if Self::ec2_since("2008-09-01", version) {
            md.insert("instance-action".into(), json!("none"));
        }
        let mut out = Map::new();
        out.insert("meta-data".into(), Value::Object(md));
        Ok(out)
    }

    /// What `path` names (nova's `InstanceMetadata.lookup`): paths not
    /// under `/openstack` or `/ec2` are EC2 paths.
    pub async fn lookup(&self, path: &str) -> Result<Item, NotFound> {
        let norm = normpath(path);
        let mut tokens: Vec<&str> = norm.split('/').skip(1).collect();
        if tokens
            .first()
            .is_none_or(|t| *t != "ec2" && *t != "openstack")
        {
            if tokens.first().is_none_or(|t| t.is_empty()) {
                tokens = vec!["ec2"];
            } else {
                tokens.insert(0, "ec2");
            }
        }
        if tokens.len() == 1 {
            let list: Vec<&str> = if tokens[0] == "openstack" {
                let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
                OPENSTACK_VERSIONS
                    .iter()
                    .copied()
                    .filter(|v| *v <= today.as_str())
                    .chain(["latest"])
                    .collect()
            } else {
                EC2_VERSIONS.iter().copied().chain(["latest"]).collect()
            };
            return Ok(Item::Data(list.join("\n").into_bytes(), TEXT));
        }
        if tokens[0] == "openstack" {
            self.openstack_item(&tokens[1..]).await
        } else {
            let mut tree = self.ec2_metadata(tokens[1])?;
            if let Some(u) = &self.user_data {
                // Bytes, not text: kept aside and answered raw.
                if tokens.get(2) == Some(&"user-data") && tokens.len() == 3 {
                    return Ok(Item::Data(u.clone(), TEXT));
                }
                tree.insert("user-data".into(), Value::Null);
            }
            let tree = Value::Object(tree);
            let v = find_path(&tree, &tokens[2..])?;
            Ok(Item::Data(ec2_print(v).into_bytes(), TEXT))
        }
    }

    async fn openstack_item(&self, tokens: &[&str]) -> Result<Item, NotFound> {
        if tokens[0] == "content" {
            if tokens.len() != 2 {
                return Err(NotFound);
            }
            let i: usize = tokens[1].parse().map_err(|_| NotFound)?;
            return self
                .files
                .get(i)
                .filter(|_| tokens[1].len() == 4)
                .map(|(_, c)| Item::Data(c.clone(), TEXT))
                .ok_or(NotFound);
        }
        let version = Self::os_version(tokens[0]).ok_or(NotFound)?;
        if tokens.len() == 1 {
            return Ok(Item::Data(
                self.os_listing(version).join("\n").into_bytes(),
                TEXT,
            ));
        }
        let json_bytes = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
        match tokens[1..].join("/").as_str() {
            "meta_data.json" => Ok(Item::Data(
                json_bytes(&Value::Object(self.meta_data_json(version))),
                JSON,
            )),
            "user_data" => self
                .user_data
                .clone()
                .map(|u| Item::Data(u, TEXT))
                .ok_or(NotFound),
            "password" if Self::since(GRIZZLY, version) => Ok(Item::Password),
            "vendor_data.json" if Self::since(HAVANA, version) => match self.vendor.static_json() {
                Some(v) => Ok(Item::Data(json_bytes(v), JSON)),
                None => Err(NotFound),
            },
            "network_data.json" if Self::since(LIBERTY, version) => {
                Ok(Item::Data(json_bytes(&self.network_data), TEXT))
            }
            "vendor_data2.json" if Self::since(NEWTON_TWO, version) => {
                let v = self.vendor.vendor_data2(self).await.map_err(|_| NotFound)?;
                Ok(Item::Data(json_bytes(&v), JSON))
            }
            _ => Err(NotFound),
        }
    }

    /// The config drive's files (nova's `metadata_for_config_drive`):
    /// `ec2/<version>/meta-data.json` (+ `user-data`) for the EC2 versions
    /// not skipped, `openstack/<version>/…` for every OpenStack version
    /// and `latest`, and `openstack/content/NNNN`.
    pub async fn config_drive_files(&self, cfg: &MetadataConfig) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for v in EC2_VERSIONS.iter().copied().chain(["latest"]) {
            if cfg.config_drive_skip_versions.iter().any(|s| s == v) {
                continue;
            }
            let Ok(tree) = self.ec2_metadata(v) else {
                continue;
            };
            if let Some(u) = &self.user_data {
                out.push((format!("ec2/{v}/user-data"), u.clone()));
            }
            let mut md = tree.get("meta-data").cloned().unwrap_or_default();
            if let Some(k) = md
                .pointer_mut("/public-keys/0")
                .and_then(Value::as_object_mut)
            {
                k.remove("_name");
            }
            out.push((
                format!("ec2/{v}/meta-data.json"),
                serde_json::to_vec(&md).unwrap_or_default(),
            ));
        }
        for v in OPENSTACK_VERSIONS.iter().copied().chain(["latest"]) {
            let ver = Self::os_version(v).unwrap_or(EPOXY);
            let mut names = vec!["meta_data.json"];
            if self.user_data.is_some() {
                names.push("user_data");
            }
            // nova compares the directory name against the list with
            // "latest" last, so `latest` gets every file.
            let at_least = |r: &str| Self::since(r, ver);
            if at_least(HAVANA) {
                names.push("vendor_data.json");
            }
            if at_least(LIBERTY) {
                names.push("network_data.json");
            }
            if at_least(NEWTON_TWO) {
                names.push("vendor_data2.json");
            }
            for n in names {
                let item = if n == "vendor_data.json" {
                    // nova writes `{}` when StaticJSON is not a provider? It
                    // raises KeyError and skips; keep the file only when served.
                    match self.vendor.static_json() {
                        Some(j) => Item::Data(serde_json::to_vec(j).unwrap_or_default(), JSON),
                        None => continue,
                    }
                } else {
                    match Box::pin(self.lookup(&format!("openstack/{v}/{n}"))).await {
                        Ok(i) => i,
                        Err(_) => continue,
                    }
                };
                if let Item::Data(b, _) = item {
                    out.push((format!("openstack/{v}/{n}"), b));
                }
            }
        }
        for (i, (_, c)) in self.files.iter().enumerate() {
            out.push((format!("openstack/content/{i:04}"), c.clone()));
        }
        out
    }

    /// The fields nova's DynamicJSON vendor data posts.
    pub(crate) fn dynamic_body(&self) -> Value {
        self.vendor.dynamic_body.clone()
    }
}

trait Pipe {
    fn pipe<'a>(&'a self, f: fn(&'a Value) -> &'a Value) -> &'a Value;
}

impl Pipe for Value {
    fn pipe<'a>(&'a self, f: fn(&'a Value) -> &'a Value) -> &'a Value {
        f(self)
    }
}

/// nova's device metadata (`InstanceDeviceMetadata` primitive) as the
/// guest sees it (`_get_device_metadata`, newest version's fields).
fn device_metadata(dm: &Value) -> Vec<Value> {
    let devices = data(dm)["devices"]
        .pipe(data)
        .get("objects")
        .or(data(dm).get("devices"));
    let Some(list) = devices.and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dev in list {
        let name = dev["nova_object.name"].as_str().unwrap_or_default();
        let d = data(dev);
        let (bus, address) = match d.get("bus") {
            Some(b) => {
                let kind = match b["nova_object.name"].as_str().unwrap_or_default() {
                    "PCIDeviceBus" => "pci",
                    "USBDeviceBus" => "usb",
                    "SCSIDeviceBus" => "scsi",
                    "IDEDeviceBus" => "ide",
                    "XenDeviceBus" => "xen",
                    _ => continue,
                };
                (
                    kind,
                    data(b).get("address").cloned().unwrap_or(json!("none")),
                )
            }
            None => ("none", json!("none")),
        };
        let mut m = Map::new();
        match name {
            "NetworkInterfaceMetadata" => {
                if let Some(v) = d.get("vlan") {
                    m.insert("vlan".into(), v.clone());
                }
                m.insert(
                    "vf_trusted".into(),
                    d.get("vf_trusted").cloned().unwrap_or(json!(false)),
                );
                m.insert("type".into(), json!("nic"));
                m.insert("mac".into(), d["mac"].clone());
                if d.get("tags").is_none()
                    && d.get("vlan").is_none()
                    && d.get("vf_trusted").is_none()
                {
                    continue;
                }
            }
            "DiskMetadata" => {
                m.insert("type".into(), json!("disk"));
                for k in ["serial", "path"] {
                    if let Some(v) = d.get(k) {
                        m.insert(k.into(), v.clone());
                    }
                }
            }
            "ShareMetadata" => {
                m.insert("type".into(), json!("share"));
                m.insert("share_id".into(), d["share_id"].clone());
                m.insert("tag".into(), d["tag"].clone());
            }
            _ => continue,
        }
        m.insert("bus".into(), json!(bus));
        m.insert("address".into(), address);
        if let Some(t) = d.get("tags") {
            m.insert("tags".into(), t.clone());
        }
        out.push(Value::Object(m));
    }
    out
}

/// `posixpath.normpath("/" + path)`.
pub fn normpath(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn find_path<'a>(mut v: &'a Value, tokens: &[&str]) -> Result<&'a Value, NotFound> {
    for t in tokens {
        v = match v {
            Value::Object(m) => m.get(*t).ok_or(NotFound)?,
            Value::Array(l) => l.iter().find(|x| x.as_str() == Some(t)).ok_or(NotFound)?,
            _ => return Err(NotFound),
        };
    }
    Ok(v)
}

/// nova's `ec2_md_print`: a dict lists its keys (`key/` for dicts, a
/// dict's `_name` instead when it has one), a list its items, one a line.
pub fn ec2_print(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().filter(|k| *k != "_name").collect();
            keys.sort();
            keys.iter()
                .map(|k| match &m[k.as_str()] {
                    Value::Object(inner) => match inner.get("_name") {
                        Some(n) => n.as_str().unwrap_or_default().to_owned(),
                        None => format!("{k}/"),
                    },
                    _ => (*k).clone(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        Value::Array(l) => l
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_as_posixpath() {
        assert_eq!(normpath(""), "/");
        assert_eq!(normpath("/latest/meta-data/"), "/latest/meta-data");
        assert_eq!(
            normpath("openstack//latest/../2012-08-10"),
            "/openstack/2012-08-10"
        );
    }

    #[test]
    fn ec2_listing_as_nova_prints_it() {
        let v = json!({"b": {"x": 1}, "a": "1", "public-keys": {"0": {"_name": "0=k", "openssh-key": "s"}}});
        assert_eq!(ec2_print(&v), "a\nb/\npublic-keys/");
        assert_eq!(ec2_print(&v["public-keys"]), "0=k");
        assert_eq!(ec2_print(&json!(["1.0", "latest"])), "1.0\nlatest");
    }
}
