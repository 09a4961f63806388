//! `os-quota-sets` and `os-quota-class-sets`: limits stored per project,
//! user and class, shown per microversion, checked against usage, and
//! enforced (key pairs here; servers in services/all's tests).

use super::*;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsRJ5XbOOx1hPN7sC4nT3T0Fm9gWl7EJAx/J2cqvT4W q";

#[tokio::test]
async fn quota_sets_are_stored_shown_checked_and_enforced() {
    let a = app().await;
    let at = |m: Method, p: &'static str, tok: &str, v: &'static str, b: Option<Value>| {
        let tok = tok.to_owned();
        let a = &a;
        async move { a.call_at(m, p, &tok, v, b).await }
    };
    // nova's defaults; 2.1 also shows the network and injected-file fields.
    let r = at(
        Method::GET,
        "/v2.1/os-quota-sets/demo",
        &a.demo,
        "2.1",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let qs = &r.body["quota_set"];
    assert_eq!(
        (qs["id"].clone(), qs["instances"].clone()),
        (json!("demo"), json!(10))
    );
    assert_eq!(
        (qs["floating_ips"].clone(), qs["injected_files"].clone()),
        (json!(-1), json!(5))
    );
    let r = at(
        Method::GET,
        "/v2.1/os-quota-sets/demo",
        &a.demo,
        "2.57",
        None,
    )
    .await;
    assert!(r.body["quota_set"].get("injected_files").is_none());
    assert!(r.body["quota_set"].get("floating_ips").is_none());
    // Another project's quotas are not a member's to read; nor to change.
    let r = at(
        Method::GET,
        "/v2.1/os-quota-sets/admin",
        &a.demo,
        "2.57",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let body = json!({"quota_set": {"key_pairs": 1}});
    let r = at(
        Method::PUT,
        "/v2.1/os-quota-sets/demo",
        &a.demo,
        "2.57",
        Some(body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // An admin sets demo's key pairs to 1: one import works, the second is over quota.
    let r = at(
        Method::PUT,
        "/v2.1/os-quota-sets/demo",
        &a.admin,
        "2.57",
        Some(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["quota_set"]["key_pairs"], 1);
    assert!(r.body["quota_set"].get("id").is_none());
    let kp = |n: &str| json!({"keypair": {"name": n, "public_key": KEY}});
    let r = at(
        Method::POST,
        "/v2.1/os-keypairs",
        &a.demo,
        "2.57",
        Some(kp("k1")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = at(
        Method::POST,
        "/v2.1/os-keypairs",
        &a.demo,
        "2.57",
        Some(kp("k2")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(
        r.body["forbidden"]["message"],
        "Quota exceeded for key_pairs: Requested 1, but already used 1 of 1 key_pairs"
    );
    // detail shows what is counted: nova leaves key pairs at 0 there,
    // server groups are the user's own with ?user_id=, else the project's.
    let r = at(
        Method::POST,
        "/v2.1/os-server-groups",
        &a.demo,
        "2.57",
        Some(json!({"server_group": {"name": "g", "policies": ["affinity"]}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = at(
        Method::GET,
        "/v2.1/os-quota-sets/demo/detail",
        &a.demo,
        "2.57",
        None,
    )
    .await;
    assert_eq!(
        r.body["quota_set"]["key_pairs"],
        json!({"limit": 1, "in_use": 0, "reserved": 0})
    );
    assert_eq!(r.body["quota_set"]["server_groups"]["in_use"], 1);
    for (user, used) in [("demo", 1), ("admin", 0)] {
        let path = format!("/v2.1/os-quota-sets/demo/detail?user_id={user}");
        let r = a.call_at(Method::GET, &path, &a.admin, "2.57", None).await;
        assert_eq!(
            r.body["quota_set"]["server_groups"]["in_use"], used,
            "{user}"
        );
    }
    // Below usage (demo's own server groups): refused unless forced.
    let zero = json!({"quota_set": {"server_groups": 0}});
    let r = at(
        Method::PUT,
        "/v2.1/os-quota-sets/demo?user_id=demo",
        &a.admin,
        "2.57",
        Some(zero),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Quota limit 0 for server_groups must be greater than or equal to already used and reserved 1."
    );
    let forced = json!({"quota_set": {"server_groups": 0, "force": true}});
    let r = at(
        Method::PUT,
        "/v2.1/os-quota-sets/demo?user_id=demo",
        &a.admin,
        "2.57",
        Some(forced),
    )
    .await;
    assert_eq!(
        (r.status, r.body["quota_set"]["server_groups"].clone()),
        (StatusCode::OK, json!(0))
    );
    // Bad values and unknown resources are 400; injected files too at 2.57.
    for bad in [
        json!({"quota_set": {"cores": -2}}),
        json!({"quota_set": {"cores": "x"}}),
        json!({"quota_set": {"bogus": 1}}),
        json!({"quota_set": {"injected_files": 1}}),
    ] {
        let r = at(
            Method::PUT,
            "/v2.1/os-quota-sets/demo",
            &a.admin,
            "2.57",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // A user's limit may not exceed the project's.
    let r = at(
        Method::PUT,
        "/v2.1/os-quota-sets/demo?user_id=demo",
        &a.admin,
        "2.57",
        Some(json!({"quota_set": {"key_pairs": 5}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // Quota classes: the default class moves every default.
    let r = at(
        Method::PUT,
        "/v2.1/os-quota-class-sets/default",
        &a.admin,
        "2.57",
        Some(json!({"quota_class_set": {"instances": 7}})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["quota_class_set"]["instances"].clone()),
        (StatusCode::OK, json!(7))
    );
    let r = at(
        Method::GET,
        "/v2.1/os-quota-sets/demo/defaults",
        &a.demo,
        "2.57",
        None,
    )
    .await;
    assert_eq!(r.body["quota_set"]["instances"], 7);
    let r = at(
        Method::GET,
        "/v2.1/os-quota-class-sets/default",
        &a.admin,
        "2.1",
        None,
    )
    .await;
    let c = &r.body["quota_class_set"];
    assert_eq!(
        (
            c["id"].clone(),
            c["instances"].clone(),
            c["fixed_ips"].clone()
        ),
        (json!("default"), json!(7), json!(-1))
    );
    assert!(
        c.get("server_groups").is_none(),
        "server groups in classes from 2.50: {c}"
    );
    let r = at(
        Method::GET,
        "/v2.1/os-quota-class-sets/default",
        &a.demo,
        "2.57",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Deleting demo's quotas returns it to the defaults.
    let r = at(
        Method::DELETE,
        "/v2.1/os-quota-sets/demo",
        &a.admin,
        "2.57",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = at(
        Method::GET,
        "/v2.1/os-quota-sets/demo",
        &a.demo,
        "2.57",
        None,
    )
    .await;
    assert_eq!(
        (
            r.body["quota_set"]["key_pairs"].clone(),
            r.body["quota_set"]["instances"].clone()
        ),
        (json!(100), json!(7))
    );
    let r = at(Method::GET, "/v2.1/limits", &a.demo, "2.57", None).await;
    assert_eq!(r.body["limits"]["absolute"]["maxTotalInstances"], 7);
}

#[tokio::test]
async fn the_noop_driver_has_no_limits_and_stored_ones_survive_a_reopen() {
    let db = std::sync::Arc::new(Database::connect(&DbConfig::memory()).await.unwrap());
    db.sync().await.unwrap();
    let store = crate::quotas::QuotaStore::open(db.clone(), crate::Quotas::default(), false)
        .await
        .unwrap();
    store.set("p1", None, "instances", 3).await.unwrap();
    store.set("p1", Some("u1"), "instances", 2).await.unwrap();
    // Opened again (the tables' migration already recorded): still there.
    let again = crate::quotas::QuotaStore::open(db.clone(), crate::Quotas::default(), false)
        .await
        .unwrap();
    assert_eq!(again.project("p1", None).await.unwrap()["instances"], 3);
    assert_eq!(
        again.project("p1", Some("u1")).await.unwrap()["instances"],
        2
    );
    assert_eq!(again.project("p2", None).await.unwrap()["instances"], 10);
    let noop = crate::quotas::QuotaStore::open(db, crate::Quotas::default(), true)
        .await
        .unwrap();
    let l = noop.project("p1", Some("u1")).await.unwrap();
    assert!(l.values().all(|v| *v == -1), "{l:?}");
    assert_eq!(l.len(), crate::quotas::RESOURCES.len());
}

#[tokio::test]
async fn server_group_quotas_hold_at_every_microversion() {
    let a = app().await;
    let r = a
        .call_at(
            Method::PUT,
            "/v2.1/os-quota-sets/demo",
            &a.admin,
            "2.57",
            Some(json!({"quota_set": {"server_groups": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Below 2.64 a group has `policies` (one of them).
    let group = |n: &str| json!({"server_group": {"name": n, "policies": ["affinity"]}});
    let r = a
        .call_at(
            Method::POST,
            "/v2.1/os-server-groups",
            &a.demo,
            "2.1",
            Some(group("g1")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["server_group"]["policies"], json!(["affinity"]));
    let r = a
        .call_at(
            Method::POST,
            "/v2.1/os-server-groups",
            &a.demo,
            "2.1",
            Some(group("g2")),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(
        r.body["forbidden"]["message"],
        "Quota exceeded, too many server groups."
    );
    let two = json!({"server_group": {"name": "g3", "policies": ["affinity", "anti-affinity"]}});
    let r = a
        .call_at(
            Method::POST,
            "/v2.1/os-server-groups",
            &a.demo,
            "2.1",
            Some(two),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}

#[tokio::test]
async fn user_limits_share_the_projects_as_nova_settles_them() {
    let a = app().await;
    let put = |path: &'static str, body: Value| {
        let a = &a;
        async move {
            a.call_at(Method::PUT, path, &a.admin, "2.57", Some(body))
                .await
        }
    };
    let instances = |n: i64| json!({"quota_set": {"instances": n}});
    // The project's 10 instances: u1 is given 6, so u2 may have at most 4.
    let r = put("/v2.1/os-quota-sets/demo?user_id=u1", instances(6)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = put("/v2.1/os-quota-sets/demo?user_id=u2", instances(5)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Quota limit 5 for instances must be less than or equal to 4."
    );
    // u1 itself may grow to what is left plus its own 6.
    let r = put("/v2.1/os-quota-sets/demo?user_id=u1", instances(10)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = put("/v2.1/os-quota-sets/demo?user_id=u1", instances(11)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // The project may not drop below what its users were given, unless forced.
    let r = put("/v2.1/os-quota-sets/demo", instances(5)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Quota limit 5 for instances must be greater than or equal to already used and reserved 10."
    );
    let forced = json!({"quota_set": {"instances": 5, "force": true}});
    let r = put("/v2.1/os-quota-sets/demo", forced).await;
    assert_eq!(
        (r.status, r.body["quota_set"]["instances"].clone()),
        (StatusCode::OK, json!(5))
    );
}
