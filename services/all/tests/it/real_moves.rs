//! A real guest moved through the API between nova-all's two libvirt
//! computes on this machine: the system libvirtd and a session libvirtd
//! run as `nobody` (`scripts/libvirt-setup`), set up from nova.conf alone
//! (`[libvirt] peer_host`, `peer_connection_uri`, `peer_instances_path`).
//! `os-migrateLive` (a block migration: the guest keeps running, no boot
//! on the destination), `migrate` with `revertResize` and then
//! `confirmResize`, and a running live migration aborted through
//! `DELETE /servers/{id}/migrations/{id}`. Placement's books are checked
//! after each move.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::moves::{act, assert_books, host_of};
use crate::real_guest::{Reap, boot_active, guest_dir, libvirt_cluster, upload_image, virsh};

fn peer_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("NOVA_RS_LIBVIRT_PEER_DIR")
            .unwrap_or_else(|_| "/var/tmp/nova-rs/libvirt-peer".into()),
    )
}

/// The peer daemon's URI and a fresh instances directory of its own
/// (owned by its user, removed when dropped).
struct Peer {
    uri: String,
    instances: PathBuf,
}

impl Peer {
    fn new() -> Peer {
        let peer = peer_dir();
        let socket = peer.join("run/libvirt/libvirt-sock");
        assert!(
            socket.exists(),
            "the second (session) libvirtd is missing: run scripts/libvirt-setup (scripts/test does)"
        );
        let instances = peer
            .join("instances")
            .join(format!("cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&instances).unwrap();
        let owner = std::fs::metadata(peer.join("instances")).unwrap();
        std::os::unix::fs::chown(&instances, Some(owner.uid()), Some(owner.gid())).unwrap();
        Peer {
            uri: format!("qemu:///session?socket={}", socket.display()),
            instances,
        }
    }

    fn virsh(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("virsh")
            .args(["-q", "-c", &self.uri])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.instances);
    }
}

/// Destroys and undefines the domain on the peer daemon at the end.
struct ReapPeer<'a>(&'a Peer, String);

impl Drop for ReapPeer<'_> {
    fn drop(&mut self) {
        let _ = self.0.virsh(&["destroy", &self.1]);
        let _ = self.0.virsh(&["undefine", "--managed-save", &self.1]);
    }
}

/// The cluster: this host's compute on the system libvirtd, `peer-…` on
/// the session one.
async fn two_computes(peer: &Peer, extra: &[(&str, &str, &str)]) -> Cluster {
    let host = format!("peer-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let path = peer.instances.display().to_string();
    let mut conf = vec![
        ("libvirt", "peer_host", host.as_str()),
        ("libvirt", "peer_connection_uri", peer.uri.as_str()),
        ("libvirt", "peer_instances_path", path.as_str()),
    ];
    conf.extend_from_slice(extra);
    let c = libvirt_cluster(&conf).await;
    assert_eq!(c.all.computes.len(), 2, "two libvirt computes");
    assert!(c.all.compute(&host).is_some());
    c
}

/// `running`, `paused`, `shut off` (virsh), or empty when not defined.
fn domstate(out: std::process::Output) -> String {
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    } else {
        String::new()
    }
}

async fn server(c: &Cluster, id: &str) -> Value {
    let r = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["server"].clone()
}

/// Waits (TCG is slow: 180 s) until the server has `status` and no task.
async fn settle(c: &Cluster, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let s = server(c, id).await;
        if s["status"] == status && s["OS-EXT-STS:task_state"].is_null() {
            return s;
        }
        assert!(
            s["status"] != "ERROR",
            "server {id} in ERROR: {}",
            s["fault"]
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "server {id} never {status}: {} / {}",
            s["status"],
            s["OS-EXT-STS:task_state"]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the server's newest migration has `status`; returns it.
async fn migration(c: &Cluster, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let r = c
            .call(
                Method::GET,
                &format!("/v2.1/os-migrations?instance_uuid={id}"),
                "admin",
                "2.80",
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let newest = r.body["migrations"][0].clone();
        if newest["status"] == status || status.is_empty() {
            return newest;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "migration of {id} never {status}: {newest}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn console(c: &Cluster, id: &str) -> String {
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "admin",
            json!({"os-getConsoleOutput": {}}),
        )
        .await;
    assert_eq!(r.status, 200, "console: {}", r.body);
    r.body["output"].as_str().unwrap_or_default().to_owned()
}

/// The guest's domain state on the daemon of `host`.
fn state_on(c: &Cluster, peer: &Peer, host: &str, name: &str) -> String {
    if host == c.all.conf.host() {
        domstate(virsh(&["domstate", name]))
    } else {
        domstate(peer.virsh(&["domstate", name]))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_guest_live_migrates_and_cold_migrates_between_two_libvirt_computes() {
    let guest = guest_dir();
    let peer = Peer::new();
    let c = two_computes(&peer, &[]).await;
    let here = c.all.conf.host();
    let image = upload_image(&c, "nova-rs-guest", &guest.join("base.qcow2")).await;
    let s = boot_active(&c, &image, json!({})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let name = s["OS-EXT-SRV-ATTR:instance_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_reap, _reap_peer) = (Reap(name.clone()), ReapPeer(&peer, name.clone()));
    crate::real_guest::wait_console(&c, &id, "NOVA-RS GUEST BOOTED").await;
    let first = host_of(&s);
    let second = c
        .all
        .computes
        .iter()
        .map(|h| h.host.clone())
        .find(|h| *h != first)
        .unwrap();
    assert_eq!(state_on(&c, &peer, &first, &name), "running");

    // Live: the scheduler picks the other compute; the guest moves with
    // its disk's top layer and keeps running (no boot there).
    let r = act(
        &c,
        "admin",
        "2.25",
        &id,
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let m = migration(&c, &id, "completed").await;
    assert_eq!(m["migration_type"], "live-migration");
    let s = settle(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), second);
    assert_eq!(state_on(&c, &peer, &second, &name), "running");
    assert_eq!(
        state_on(&c, &peer, &first, &name),
        "",
        "gone from the source"
    );
    assert!(
        !console(&c, &id).await.contains("NOVA-RS GUEST BOOTED"),
        "the same guest, not a new boot"
    );
    let node = &s["OS-EXT-SRV-ATTR:hypervisor_hostname"];
    if second != here {
        assert_eq!(node, &json!(second), "the peer's node is named after it");
    }
    assert_books(&c).await;

    // Cold, reverted: it boots on the first again, then comes back.
    let r = act(&c, "admin", "2.56", &id, json!({"migrate": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = settle(&c, &id, "VERIFY_RESIZE").await;
    assert_eq!(host_of(&s), first);
    assert_eq!(state_on(&c, &peer, &first, &name), "running");
    assert_eq!(
        state_on(&c, &peer, &second, &name),
        "shut off",
        "kept for a revert"
    );
    crate::real_guest::wait_console(&c, &id, "NOVA-RS GUEST BOOTED").await;
    assert_books_moving(&c, &id).await;
    let r = act(&c, "admin", "2.56", &id, json!({"revertResize": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = settle(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), second);
    assert_eq!(state_on(&c, &peer, &second, &name), "running");
    assert_eq!(state_on(&c, &peer, &first, &name), "");
    assert_books(&c).await;

    // Cold, confirmed: nothing of it stays on the second.
    let r = act(&c, "admin", "2.56", &id, json!({"migrate": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    settle(&c, &id, "VERIFY_RESIZE").await;
    let r = act(&c, "admin", "2.56", &id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let s = settle(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), first);
    assert_eq!(state_on(&c, &peer, &first, &name), "running");
    assert_eq!(state_on(&c, &peer, &second, &name), "");
    let second_dir = if second == here {
        c.dir.join("instances").join(&id)
    } else {
        peer.instances.join(&id)
    };
    assert!(!second_dir.exists(), "{} is gone", second_dir.display());
    assert_books(&c).await;

    let r = c.delete(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.status, 204);
    c.stop().await;
}

/// During a resize the migration holds the source's allocation and the
/// instance the destination's (nova's bookkeeping).
async fn assert_books_moving(c: &Cluster, id: &str) {
    let held = c.all.placement.allocations_async(id).await.unwrap();
    assert_eq!(held.allocations.len(), 1, "{:?}", held.allocations);
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-migrations?instance_uuid={id}"),
            "admin",
            "2.80",
            None,
        )
        .await;
    let m = r.body["migrations"][0]["uuid"].as_str().unwrap().to_owned();
    let source = c.all.placement.allocations_async(&m).await.unwrap();
    assert_eq!(source.allocations.len(), 1, "{:?}", source.allocations);
    assert_ne!(
        held.allocations.keys().next(),
        source.allocations.keys().next()
    );
}

/// A live migration held to 1 MiB/s (`[libvirt] live_migration_bandwidth`)
/// is aborted while it copies: the migration `cancelled`, the server
/// ACTIVE on its host with the guest still running there (no boot),
/// nothing on the destination, the books as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_live_migration_of_a_real_guest_is_aborted() {
    interrupt_a_running_live_migration(false).await;
}

/// The same slow live migration forced to complete (2.22's
/// `force_complete`): without post-copy nova's libvirt driver pauses the
/// guest on the source so the copy converges; the migration `completed`,
/// the server ACTIVE on the destination with the same guest running there
/// (libvirt resumes it), nothing left on the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_live_migration_of_a_real_guest_is_forced_to_complete() {
    interrupt_a_running_live_migration(true).await;
}

async fn interrupt_a_running_live_migration(force_complete: bool) {
    let guest = guest_dir();
    let peer = Peer::new();
    let c = two_computes(&peer, &[("libvirt", "live_migration_bandwidth", "1")]).await;
    let image = upload_image(&c, "nova-rs-guest", &guest.join("base.qcow2")).await;
    let s = boot_active(&c, &image, json!({})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let name = s["OS-EXT-SRV-ATTR:instance_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_reap, _reap_peer) = (Reap(name.clone()), ReapPeer(&peer, name.clone()));
    crate::real_guest::wait_console(&c, &id, "NOVA-RS GUEST BOOTED").await;
    let first = host_of(&s);
    let second = c
        .all
        .computes
        .iter()
        .map(|h| h.host.clone())
        .find(|h| *h != first)
        .unwrap();
    let r = act(
        &c,
        "admin",
        "2.25",
        &id,
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let m = migration(&c, &id, "running").await;
    if force_complete {
        let r = c
            .call(
                Method::POST,
                &format!("/v2.1/servers/{id}/migrations/{}/action", m["id"]),
                "admin",
                "2.22",
                Some(json!({"force_complete": null})),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        // The source pauses while the copy finishes (unless it finished first).
        let mut states = Vec::new();
        for _ in 0..100 {
            let st = state_on(&c, &peer, &first, &name);
            let done = st != "running";
            states.push(st);
            if done {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            matches!(states.last().map(String::as_str), Some("paused" | "")),
            "the source guest was not paused: {states:?}"
        );
        migration(&c, &id, "completed").await;
        let s = settle(&c, &id, "ACTIVE").await;
        assert_eq!(host_of(&s), second);
        assert_eq!(state_on(&c, &peer, &second, &name), "running");
        assert_eq!(
            state_on(&c, &peer, &first, &name),
            "",
            "gone from the source"
        );
        assert!(
            !console(&c, &id).await.contains("NOVA-RS GUEST BOOTED"),
            "the same guest, not a new boot"
        );
        assert_books(&c).await;
        let r = c.delete(&format!("/v2.1/servers/{id}"), "admin").await;
        assert_eq!(r.status, 204);
        c.stop().await;
        return;
    }
    let r = c
        .call(
            Method::DELETE,
            &format!("/v2.1/servers/{id}/migrations/{}", m["id"]),
            "admin",
            "2.24",
            None,
        )
        .await;
    if r.status != 202 {
        let m = migration(&c, &id, "").await;
        panic!("abort refused: {} {}; the migration: {m}", r.status, r.body);
    }
    migration(&c, &id, "cancelled").await;
    let s = settle(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), first);
    assert_eq!(state_on(&c, &peer, &first, &name), "running");
    assert_eq!(state_on(&c, &peer, &second, &name), "");
    let out = console(&c, &id).await;
    assert_eq!(
        out.matches("NOVA-RS GUEST BOOTED").count(),
        1,
        "the same guest: {out}"
    );
    assert_books(&c).await;
    let r = c.delete(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.status, 204);
    c.stop().await;
}
