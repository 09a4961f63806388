//! Per-user quotas count per user, as nova's DbQuotaDriver does: a user
//! with limits of their own is held to them by their own servers while
//! the project has room, the project's limit still holds over everyone,
//! `min_count`/`max_count` shrink to what fits, and `os-quota-sets`
//! `detail?user_id=` shows the user's own use.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Reply};

async fn put_quota(c: &Cluster, path: &str, body: Value) {
    let r = c.call(Method::PUT, path, "admin", "2.57", Some(body)).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
}

async fn boot(c: &Cluster, user: &str, name: &str, min: i64, max: i64) -> Reply {
    c.call(
        Method::POST,
        "/v2.1/servers",
        user,
        "2.57",
        Some(
            json!({"server": {"name": name, "imageRef": nova_all::FAKE_IMAGE_ID,
            "flavorRef": "1", "networks": "none", "min_count": min, "max_count": max}}),
        ),
    )
    .await
}

async fn servers_of(c: &Cluster, user: &str) -> usize {
    let r = c
        .call(Method::GET, "/v2.1/servers", user, "2.57", None)
        .await;
    r.body["servers"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_own_limit_counts_the_users_own_servers() {
    let users = "admin:admin:admin:admin, demo:demo:demo:member, \
                 demo2:demo2:demo:member";
    let c = Cluster::start(1, &[("identity", "users", users)]).await;
    // The built-in identity's project id is the project's name.
    let project = "demo";
    let user = |u: &str| format!("/v2.1/os-quota-sets/{project}?user_id={u}");
    put_quota(&c, &user("demo"), json!({"quota_set": {"instances": 1}})).await;

    // demo may have one server; the second is over demo's own limit
    // although the project (10) has room.
    let r = boot(&c, "demo", "d-1", 1, 1).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = boot(&c, "demo", "d-2", 1, 1).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.fault().1,
        "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"
    );
    // demo2 has no limit of its own: the project's applies.
    for n in ["e-1", "e-2"] {
        let r = boot(&c, "demo2", n, 1, 1).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    // With a limit of 3 of its own, 1 to 3 more servers for demo2 is 1.
    put_quota(&c, &user("demo2"), json!({"quota_set": {"instances": 3}})).await;
    let r = boot(&c, "demo2", "e-3", 1, 3).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(servers_of(&c, "demo").await, 4, "the project's servers");
    let r = boot(&c, "demo2", "e-4", 2, 3).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.fault().1,
        "Quota exceeded for instances: Requested 2-3, but already used 3 of 3 instances"
    );

    // detail: the user's own use with ?user_id=, the project's without.
    let detail = |u: Option<&str>| {
        let c = &c;
        let path = match u {
            Some(u) => format!("/v2.1/os-quota-sets/{project}/detail?user_id={u}"),
            None => format!("/v2.1/os-quota-sets/{project}/detail"),
        };
        async move {
            let r = c.call(Method::GET, &path, "admin", "2.57", None).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["quota_set"].clone()
        }
    };
    let d = detail(Some("demo")).await;
    assert_eq!(
        d["instances"],
        json!({"limit": 1, "in_use": 1, "reserved": 0})
    );
    assert_eq!(d["cores"]["in_use"], 1, "{d}");
    assert_eq!(d["ram"]["in_use"], 512, "{d}");
    let d = detail(Some("demo2")).await;
    assert_eq!(d["instances"]["in_use"], 3, "{d}");
    let d = detail(None).await;
    assert_eq!(
        d["instances"],
        json!({"limit": 10, "in_use": 4, "reserved": 0})
    );
    assert_eq!(d["ram"]["in_use"], 2048, "{d}");
    // nova does not count key pairs or group members here.
    assert_eq!(d["key_pairs"]["in_use"], 0, "{d}");

    // The project's limit holds over a user's own: the project is full at 4.
    put_quota(
        &c,
        &format!("/v2.1/os-quota-sets/{project}"),
        json!({"quota_set": {"instances": 4}}),
    )
    .await;
    // Users' own limits share the project's: with demo2's given back,
    // demo may have 2 (the 4 less demo's 1, plus demo's own 1, is 4).
    let r = c
        .call(Method::DELETE, &user("demo2"), "admin", "2.57", None)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = c
        .call(
            Method::PUT,
            &user("demo"),
            "admin",
            "2.57",
            Some(json!({"quota_set": {"instances": 5}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.fault().1,
        "Quota limit 5 for instances must be less than or equal to 4."
    );
    put_quota(&c, &user("demo"), json!({"quota_set": {"instances": 2}})).await;
    let r = boot(&c, "demo", "d-3", 1, 1).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.fault().1,
        "Quota exceeded for instances: Requested 1, but already used 4 of 4 instances"
    );
    // os-limits shows the project's limits and use, not a user's.
    let r = c
        .call(Method::GET, "/v2.1/limits", "demo", "2.57", None)
        .await;
    let abs = &r.body["limits"]["absolute"];
    assert_eq!(
        (
            abs["maxTotalInstances"].clone(),
            abs["totalInstancesUsed"].clone()
        ),
        (json!(4), json!(4))
    );
}
