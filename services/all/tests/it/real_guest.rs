//! A real guest booted through the API: nova-all with `[DEFAULT]
//! compute_driver = libvirt.LibvirtDriver` on this host's libvirtd (QEMU,
//! TCG), a qcow2 uploaded to the image API, the compute's image cache, the
//! domain named after the server's `instance_name`, the serial console
//! through `os-getConsoleOutput`, and a delete that leaves nothing behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::cluster::Cluster;

pub(crate) fn guest_dir() -> PathBuf {
    let guest = PathBuf::from(
        std::env::var("NOVA_RS_GUEST_DIR").unwrap_or_else(|_| "/var/tmp/nova-rs/guest".into()),
    );
    assert!(
        guest.join("base.qcow2").exists(),
        "{} missing: run scripts/libvirt-setup (scripts/test does) to install libvirt + QEMU and build the test guest",
        guest.join("base.qcow2").display()
    );
    assert!(
        Path::new("/run/libvirt/libvirt-sock").exists(),
        "libvirtd is not running: run scripts/libvirt-setup (it starts virtlogd and libvirtd)"
    );
    guest
}

/// A cluster whose one compute is this host's libvirt (QEMU, TCG).
pub(crate) async fn libvirt_cluster(extra: &[(&str, &str, &str)]) -> Cluster {
    let host = format!("real-guest-{}", uuid::Uuid::new_v4().simple());
    // Clusters side by side share this host's libvirtd, each with its own
    // database (so its own instance ids): a per-cluster prefix in
    // nova's `instance_name_template` keeps their domain names apart.
    let template = format!("instance-{}-%08x", &host["real-guest-".len()..][..6]);
    let mut conf: Vec<(&str, &str, &str)> = vec![
        ("DEFAULT", "compute_driver", "libvirt.LibvirtDriver"),
        ("DEFAULT", "host", host.as_str()),
        ("DEFAULT", "instance_name_template", template.as_str()),
        ("libvirt", "virt_type", "qemu"),
        ("libvirt", "connection_uri", "qemu:///system"),
    ];
    conf.extend_from_slice(extra);
    Cluster::start(1, &conf).await
}

/// Uploads `file` to the image API as a public qcow2 image; its id.
pub(crate) async fn upload_image(c: &Cluster, name: &str, file: &Path) -> String {
    let tok = c.token("admin").await;
    let url = &c.all.api.image_url;
    let r = c
        .http
        .post(format!("{url}/v2/images"))
        .header("X-Auth-Token", &tok)
        .json(&json!({"name": name, "disk_format": "qcow2", "container_format": "bare", "visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "image create");
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .http
        .put(format!("{url}/v2/images/{id}/file"))
        .header("X-Auth-Token", &tok)
        .header("Content-Type", "application/octet-stream")
        .body(std::fs::read(file).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "image upload");
    id
}

/// Destroys and undefines a domain when the test ends (also on failure).
pub(crate) struct Reap(pub(crate) String);

impl Drop for Reap {
    fn drop(&mut self) {
        for args in [
            &["destroy", self.0.as_str()][..],
            &["undefine", "--managed-save", self.0.as_str()][..],
        ] {
            let _ = virsh(args);
        }
    }
}

pub(crate) fn virsh(args: &[&str]) -> std::process::Output {
    std::process::Command::new("virsh")
        .args(["-q", "-c", "qemu:///system"])
        .args(args)
        .output()
        .unwrap()
}

/// Polls the console log until it holds `marker` (90 s: TCG is slow).
pub(crate) async fn wait_console(c: &Cluster, id: &str, marker: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let r = c
            .post(
                &format!("/v2.1/servers/{id}/action"),
                "admin",
                json!({"os-getConsoleOutput": {}}),
            )
            .await;
        assert_eq!(r.status, 200, "console: {}", r.body);
        let out = r.body["output"].as_str().unwrap_or_default().to_owned();
        if out.contains(marker) {
            return out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {marker:?} on the console: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Boots `image` as `name`; waits for ACTIVE; returns the admin view.
pub(crate) async fn boot_active(c: &Cluster, image: &str, extra: Value) -> Value {
    let mut server =
        json!({"name": "real-guest", "flavorRef": "1", "imageRef": image, "networks": "none"});
    if let (Some(s), Some(e)) = (server.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let r = c
        .post("/v2.1/servers", "admin", json!({ "server": server }))
        .await;
    assert_eq!(r.status, 202, "boot: {}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
        let s = &r.body["server"];
        if s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"].is_null() {
            return s.clone();
        }
        assert_ne!(s["status"], "ERROR", "boot failed: {}", s["fault"]);
        assert!(tokio::time::Instant::now() < deadline, "not ACTIVE: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qcow2_from_the_image_api_boots_as_a_real_guest_and_is_deleted_without_a_trace() {
    let guest = guest_dir();
    let c = libvirt_cluster(&[]).await;
    let image = upload_image(&c, "nova-rs-guest", &guest.join("base.qcow2")).await;
    let server = boot_active(&c, &image, json!({})).await;
    let id = server["id"].as_str().unwrap().to_owned();
    let name = server["OS-EXT-SRV-ATTR:instance_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let _reap = Reap(name.clone());
    // `instance-<cluster>-%08x`: the template's id part, 8 hex digits.
    let id_part = name.rsplit('-').next().unwrap_or_default();
    assert!(
        name.starts_with("instance-")
            && id_part.len() == 8
            && id_part.chars().all(|c| c.is_ascii_hexdigit()),
        "instance_name as instance-<cluster>-%08x: {name}"
    );
    // Operators find the guest with virsh by the name the API shows.
    let uuid = virsh(&["domuuid", &name]);
    assert!(uuid.status.success(), "virsh domuuid {name}: {uuid:?}");
    assert_eq!(String::from_utf8_lossy(&uuid.stdout).trim(), id);
    // The image went through the image cache, byte for byte.
    let base = c
        .dir
        .join("instances/_base")
        .join(sha1_hex(image.as_bytes()));
    assert_eq!(
        std::fs::read(&base).expect("the image is in the cache"),
        std::fs::read(guest.join("base.qcow2")).unwrap()
    );
    let disk = c.dir.join("instances").join(&id).join("disk");
    let info = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&disk)
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["backing-filename"], json!(base.display().to_string()));
    assert_eq!(
        info["virtual-size"],
        json!(1u64 << 30),
        "flavor m1.tiny: 1 GiB root"
    );
    // The guest's serial output through the API.
    wait_console(&c, &id, "NOVA-RS GUEST BOOTED").await;
    assert!(c.total_usage("VCPU").await > 0);
    let r = c.delete(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.status, 204);
    c.wait_gone("admin", &id).await;
    assert!(!virsh(&["domuuid", &name]).status.success(), "domain left");
    assert!(!disk.exists(), "overlay left");
    assert_eq!(c.total_usage("VCPU").await, 0, "allocation left");
    assert_eq!(c.total_usage("MEMORY_MB").await, 0, "allocation left");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_image_download_fails_the_build_with_a_fault() {
    guest_dir();
    let c = libvirt_cluster(&[]).await;
    let file = c.dir.join("tiny.qcow2");
    std::fs::write(&file, b"not the bytes glance hashed").unwrap();
    let image = upload_image(&c, "corrupt", &file).await;
    // The store's copy changes behind the image API's back.
    std::fs::write(
        c.dir.join("images").join(format!("{image}.data")),
        b"flipped bits in the store!!",
    )
    .unwrap();
    let r = c
        .post(
            "/v2.1/servers",
            "admin",
            json!({"server": {"name": "corrupt", "flavorRef": "1", "imageRef": image, "networks": "none"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let s = c.wait_status("admin", &id, "ERROR").await;
    assert!(
        c.dir
            .join("instances/_base")
            .read_dir()
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "nothing cached"
    );
    assert!(s["fault"]["message"].is_string(), "a fault: {s}");
    assert_eq!(c.total_usage("VCPU").await, 0, "allocation released");
    c.stop().await;
}

fn sha1_hex(b: &[u8]) -> String {
    let out = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write as _;
            ch.stdin.take().unwrap().write_all(b)?;
            ch.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// `config_drive: true`: the libvirt driver attaches an ISO 9660 volume
/// labelled `config-2` whose files cloud-init's ConfigDriveReader reads
/// as the metadata service's: uuid, key, user data, vendor data, and the
/// `personality` files (2.56) under `openstack/content/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_drive_is_attached_and_cloud_init_reads_it() {
    let guest = guest_dir();
    let dir = crate::cluster::temp_dir("config-drive");
    let vpath = crate::metadata::vendor_conf(&dir);
    let c = libvirt_cluster(&[("api", "vendordata_jsonfile_path", &vpath)]).await;
    let image = upload_image(&c, "nova-rs-guest", &guest.join("base.qcow2")).await;
    let motd = base64::engine::general_purpose::STANDARD.encode("hello from personality\n");
    let g = crate::metadata::boot_guest_as(
        &c,
        &image,
        json!({"config_drive": true, "personality": [
            {"path": "/etc/motd", "contents": motd},
            {"path": "/root/empty", "contents": ""},
        ]}),
    )
    .await;
    let name = {
        let r = c.get(&format!("/v2.1/servers/{}", g.id), "admin").await;
        assert_eq!(r.body["server"]["config_drive"], "True");
        r.body["server"]["OS-EXT-SRV-ATTR:instance_name"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let _reap = Reap(name.clone());
    let iso = c.dir.join("instances").join(&g.id).join("disk.config");
    let xml = String::from_utf8_lossy(&virsh(&["dumpxml", &name]).stdout).into_owned();
    assert!(
        xml.contains("device='cdrom'") && xml.contains(&iso.display().to_string()),
        "the config drive is attached: {xml}"
    );
    let pvd = std::process::Command::new("isoinfo")
        .arg("-d")
        .arg("-i")
        .arg(&iso)
        .output()
        .unwrap();
    let pvd = String::from_utf8_lossy(&pvd.stdout).into_owned();
    assert!(pvd.contains("Volume id: config-2"), "{pvd}");
    // Mount-free: the ISO's files extracted with xorriso.
    let tree = dir.join("tree");
    let out = std::process::Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&iso)
        .args(["-extract", "/"])
        .arg(&tree)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree.join("openstack/latest/meta_data.json").exists());
    assert!(tree.join("ec2/2009-04-04/meta-data.json").exists());
    let source = tree.display().to_string();
    let v =
        tokio::task::spawn_blocking(move || crate::metadata::cloud_init_read(&source, &json!({})))
            .await
            .unwrap();
    crate::metadata::check_cloud_init_view(&v, &g, true);
    assert_eq!(
        v["files"],
        json!({"/etc/motd": "hello from personality\n", "/root/empty": ""}),
        "the injected files, read back by cloud-init: {v}"
    );
    assert_eq!(
        std::fs::read(tree.join("openstack/content/0000")).unwrap(),
        b"hello from personality\n"
    );
    assert_eq!(
        v["metadata"]["files"][0],
        json!({"path": "/etc/motd", "content_path": "/content/0000"})
    );
    assert!(
        v["metadata"]["admin_pass"].is_string(),
        "nova's admin_pass on the drive"
    );
    let r = c.delete(&format!("/v2.1/servers/{}", g.id), "admin").await;
    assert_eq!(r.status, 204);
    c.wait_gone("admin", &g.id).await;
    assert!(!iso.exists(), "config drive left");
    c.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The image API's record of `id` once it is `active` (60 s).
async fn image_active(c: &Cluster, id: &str) -> Value {
    let tok = c.token("admin").await;
    let url = &c.all.api.image_url;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = c
            .http
            .get(format!("{url}/v2/images/{id}"))
            .header("X-Auth-Token", &tok)
            .send()
            .await
            .unwrap();
        let img: Value = r.json().await.unwrap();
        if img["status"] == "active" {
            return img;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "snapshot never active: {img}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_a_running_guest_is_a_qcow2_that_boots_again() {
    let guest = guest_dir();
    let c = libvirt_cluster(&[]).await;
    let image = upload_image(&c, "nova-rs-guest", &guest.join("base.qcow2")).await;
    let server = boot_active(&c, &image, json!({})).await;
    let id = server["id"].as_str().unwrap().to_owned();
    let _reap = Reap(
        server["OS-EXT-SRV-ATTR:instance_name"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    wait_console(&c, &id, "NOVA-RS GUEST BOOTED").await;
    // createImage of the running guest (2.45: the image id in the body).
    let r = c
        .call(
            reqwest::Method::POST,
            &format!("/v2.1/servers/{id}/action"),
            "admin",
            "2.45",
            Some(json!({"createImage": {"name": "real-snap", "metadata": {"purpose": "test"}}})),
        )
        .await;
    assert_eq!(r.status, 202, "createImage: {}", r.body);
    let snap = r.body["image_id"].as_str().unwrap().to_owned();
    let img = image_active(&c, &snap).await;
    assert_eq!(img["disk_format"], "qcow2", "{img}");
    assert_eq!(img["image_type"], "snapshot", "{img}");
    assert_eq!(img["instance_uuid"], json!(id), "{img}");
    assert_eq!(img["base_image_ref"], json!(image), "{img}");
    assert_eq!(img["purpose"], "test", "{img}");
    // The guest runs on after the snapshot (it was paused, then resumed).
    let r = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.body["server"]["status"], "ACTIVE", "{}", r.body);
    assert_eq!(r.body["server"]["OS-EXT-STS:power_state"], 1);
    // The upload is a self-contained qcow2 (no backing file).
    let tok = c.token("admin").await;
    let data = c
        .http
        .get(format!("{}/v2/images/{snap}/file", c.all.api.image_url))
        .header("X-Auth-Token", &tok)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&data[..4], b"QFI\xfb", "a qcow2");
    let file = c.dir.join("snapshot-download.qcow2");
    std::fs::write(&file, &data).unwrap();
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&file)
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert!(info["backing-filename"].is_null(), "{info}");
    assert_eq!(info["virtual-size"], json!(1u64 << 30), "{info}");
    // A second server boots from the snapshot to the same marker.
    let copy = boot_active(&c, &snap, json!({"name": "from-snapshot"})).await;
    let copy_id = copy["id"].as_str().unwrap().to_owned();
    let _reap_copy = Reap(
        copy["OS-EXT-SRV-ATTR:instance_name"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    wait_console(&c, &copy_id, "NOVA-RS GUEST BOOTED").await;
    for s in [&id, &copy_id] {
        assert_eq!(
            c.delete(&format!("/v2.1/servers/{s}"), "admin")
                .await
                .status,
            204
        );
        c.wait_gone("admin", s).await;
    }
    c.stop().await;
}
