//! `restore` checks the quotas as nova does: the restored server must fit
//! next to the project's other servers (soft-deleted ones do not count).

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_over_quota_is_refused_and_changes_nothing() {
    let c = Cluster::start(
        1,
        &[
            ("DEFAULT", "reclaim_instance_interval", "3600"),
            ("quota", "instances", "1"),
        ],
    )
    .await;
    let s1 = c.boot("demo", "q-1", "1").await;
    c.wait_status("demo", &s1, "ACTIVE").await;
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{s1}"), "demo")
            .await
            .status,
        204
    );
    c.wait_status("demo", &s1, "SOFT_DELETED").await;
    // The soft-deleted server leaves room for another.
    let s2 = c.boot("demo", "q-2", "1").await;
    c.wait_status("demo", &s2, "ACTIVE").await;
    let restore = |id: String| {
        let c = &c;
        async move {
            c.call(
                Method::POST,
                &format!("/v2.1/servers/{id}/action"),
                "demo",
                "2.1",
                Some(json!({"restore": null})),
            )
            .await
        }
    };
    let r = restore(s1.clone()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.fault().1,
        "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"
    );
    let s = c.wait_status("demo", &s1, "SOFT_DELETED").await;
    assert!(s["OS-EXT-STS:task_state"].is_null());
    // Room again: the restore goes through.
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{s2}/action"),
            "demo",
            "2.1",
            Some(json!({"forceDelete": null})),
        )
        .await;
    assert_eq!(r.status, 202);
    c.wait_gone("demo", &s2).await;
    let r = restore(s1.clone()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status("demo", &s1, "ACTIVE").await;
    c.stop().await;
}
