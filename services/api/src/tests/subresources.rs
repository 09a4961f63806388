//! The server sub-resources through the router: metadata, tags and their
//! list filters, os-server-password, topology, host_status, and the
//! refusals of diagnostics the API answers alone.

use super::*;
use nova_objects::{RawObject, Service};

impl App {
    /// `method path` at microversion `v` as `token`, with an optional body.
    async fn at(
        &self,
        method: Method,
        path: &str,
        token: &str,
        v: &str,
        body: Option<Value>,
    ) -> Reply {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let mut req = App::req(method, path, Some(token), body);
        req.headers_mut().insert(
            "openstack-api-version",
            format!("compute {v}").parse().unwrap(),
        );
        self.send(req).await
    }
}

fn md_path(i: &Instance, rest: &str) -> String {
    format!("/v2.1/servers/{}/metadata{rest}", i.uuid())
}

#[tokio::test]
async fn metadata_is_merged_replaced_and_deleted_as_nova_does() {
    let a = app().await;
    let i = a.instance("m", VmState::Active, None, Some("h1")).await;
    let (demo, v) = (a.demo.clone(), "2.1");
    let r = a
        .at(
            Method::POST,
            &md_path(&i, ""),
            &demo,
            v,
            Some(json!({"metadata": {"a": "1", "b": "2"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"metadata": {"a": "1", "b": "2"}}));
    // POST merges.
    let r = a
        .at(
            Method::POST,
            &md_path(&i, ""),
            &demo,
            v,
            Some(json!({"metadata": {"b": "3", "c": "4"}})),
        )
        .await;
    assert_eq!(r.body, json!({"metadata": {"a": "1", "b": "3", "c": "4"}}));
    // PUT replaces.
    let r = a
        .at(
            Method::PUT,
            &md_path(&i, ""),
            &demo,
            v,
            Some(json!({"metadata": {"z": "9"}})),
        )
        .await;
    assert_eq!(r.body, json!({"metadata": {"z": "9"}}));
    assert_eq!(a.reload(&i).await.metadata().len(), 1);
    // One key.
    let r = a
        .at(
            Method::PUT,
            &md_path(&i, "/k"),
            &demo,
            v,
            Some(json!({"meta": {"k": "v"}})),
        )
        .await;
    assert_eq!(r.body, json!({"meta": {"k": "v"}}));
    let r = a.at(Method::GET, &md_path(&i, "/k"), &demo, v, None).await;
    assert_eq!(r.body, json!({"meta": {"k": "v"}}));
    let r = a.at(Method::GET, &md_path(&i, ""), &demo, v, None).await;
    assert_eq!(r.body, json!({"metadata": {"k": "v", "z": "9"}}));
    let r = a
        .at(Method::DELETE, &md_path(&i, "/z"), &demo, v, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = a
        .at(Method::DELETE, &md_path(&i, "/z"), &demo, v, None)
        .await;
    assert_eq!(fault(&r, "itemNotFound"), "Metadata item was not found");
    let r = a.at(Method::GET, &md_path(&i, "/z"), &demo, v, None).await;
    assert_eq!(fault(&r, "itemNotFound"), "Metadata item was not found");
    // The server view shows the metadata.
    let r = a.get(&format!("/v2.1/servers/{}", i.uuid()), &demo).await;
    assert_eq!(r.body["server"]["metadata"], json!({"k": "v"}));

    // Bad input: a body key that is not the URI's, two keys, bad key
    // characters, a value too long, a value not a string.
    let r = a
        .at(
            Method::PUT,
            &md_path(&i, "/k"),
            &demo,
            v,
            Some(json!({"meta": {"other": "v"}})),
        )
        .await;
    assert_eq!(fault(&r, "badRequest"), "Request body and URI mismatch");
    for bad in [
        json!({"meta": {"k": "v", "l": "w"}}),
        json!({"meta": {"k/": "v"}}),
        json!({"meta": {"k": "x".repeat(256)}}),
        json!({"meta": {"k": 1}}),
        json!({"meta": {}}),
    ] {
        let r = a
            .at(Method::PUT, &md_path(&i, "/k"), &demo, v, Some(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        fault(&r, "badRequest");
    }
    let r = a
        .at(
            Method::POST,
            &md_path(&i, ""),
            &demo,
            v,
            Some(json!({"metadata": {"": "v"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .at(
            Method::POST,
            &md_path(&i, ""),
            &demo,
            v,
            Some(json!({"meta": {}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Over the metadata_items quota (128): 403 with nova's message,
    // counting what the server already has.
    let many: serde_json::Map<String, Value> =
        (0..128).map(|n| (format!("key{n}"), json!("v"))).collect();
    let r = a
        .at(
            Method::POST,
            &md_path(&i, ""),
            &demo,
            v,
            Some(json!({"metadata": many})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        fault(&r, "forbidden"),
        "Maximum number of metadata items exceeds 128"
    );
    assert_eq!(a.reload(&i).await.metadata().len(), 1, "nothing written");

    // A server in a state nova refuses: 409, nothing changes.
    let b = a
        .instance("b", VmState::Building, Some(TaskState::Scheduling), None)
        .await;
    let r = a
        .at(
            Method::POST,
            &md_path(&b, ""),
            &demo,
            v,
            Some(json!({"metadata": {"a": "1"}})),
        )
        .await;
    assert_eq!(
        fault(&r, "conflictingRequest"),
        format!(
            "Cannot 'update metadata' instance {} while it is in vm_state building",
            b.uuid()
        )
    );
    let busy = a
        .instance(
            "busy",
            VmState::Active,
            Some(TaskState::PoweringOff),
            Some("h1"),
        )
        .await;
    let r = a
        .at(
            Method::PUT,
            &md_path(&busy, "/a"),
            &demo,
            v,
            Some(json!({"meta": {"a": "1"}})),
        )
        .await;
    assert_eq!(
        fault(&r, "conflictingRequest"),
        format!(
            "Cannot 'update metadata' instance {} while it is in task_state powering-off",
            busy.uuid()
        )
    );
    assert!(a.reload(&busy).await.metadata().is_empty());
    // A locked server is the admins' only.
    let mut l = a.reload(&i).await;
    l.set_locked(true);
    a.state.objects.save(&admin_ctx(), &mut l).await.unwrap();
    let r = a
        .at(Method::DELETE, &md_path(&i, "/k"), &demo, v, None)
        .await;
    assert_eq!(
        fault(&r, "conflictingRequest"),
        format!("Instance {} is locked", i.uuid())
    );
    let admin = a.admin.clone();
    let r = a
        .at(Method::DELETE, &md_path(&i, "/k"), &admin, v, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Another project's server is not found.
    let r = a.at(Method::GET, &md_path(&i, ""), &demo, v, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a
        .at(
            Method::GET,
            &format!("/v2.1/servers/{}/metadata", uuid::Uuid::new_v4()),
            &demo,
            v,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

fn tag_path(i: &Instance, rest: &str) -> String {
    format!("/v2.1/servers/{}/tags{rest}", i.uuid())
}

#[tokio::test]
async fn tags_follow_nova_and_filter_the_list_in_sql() {
    let a = app().await;
    let demo = a.demo.clone();
    let i = a.instance("t1", VmState::Active, None, Some("h1")).await;
    let j = a.instance("t2", VmState::Stopped, None, Some("h1")).await;
    let k = a.instance("t3", VmState::Active, None, Some("h1")).await;
    // Not before 2.26.
    let r = a
        .at(Method::GET, &tag_path(&i, ""), &demo, "2.25", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let v = "2.26";
    let r = a
        .at(Method::PUT, &tag_path(&i, "/blue"), &demo, v, None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(
        r.headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/v2.1/servers/{}/tags/blue", i.uuid()))
    );
    let r = a
        .at(Method::PUT, &tag_path(&i, "/blue"), &demo, v, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "already there");
    let r = a
        .at(Method::PUT, &tag_path(&i, "/red"), &demo, v, None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Any character but '/' and ',' (the location encodes it).
    let r = a
        .at(
            Method::PUT,
            &tag_path(&j, "/caf%C3%A9%20au%20lait"),
            &demo,
            v,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(
        r.headers["location"]
            .to_str()
            .unwrap()
            .ends_with("/tags/caf%C3%A9%20au%20lait")
    );
    let r = a.at(Method::GET, &tag_path(&j, ""), &demo, v, None).await;
    assert_eq!(r.body, json!({"tags": ["café au lait"]}));
    let r = a.at(Method::GET, &tag_path(&i, ""), &demo, v, None).await;
    assert_eq!(r.body, json!({"tags": ["blue", "red"]}));
    let r = a
        .at(Method::GET, &tag_path(&i, "/red"), &demo, v, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = a
        .at(Method::GET, &tag_path(&i, "/green"), &demo, v, None)
        .await;
    assert_eq!(
        fault(&r, "itemNotFound"),
        format!("Server {} has no tag 'green'", i.uuid())
    );
    // Invalid tags: a comma, a slash (encoded), too long; a body on PUT.
    for bad in ["a,b", "a%2Fb", &"x".repeat(61)] {
        let r = a
            .at(
                Method::PUT,
                &tag_path(&i, &format!("/{bad}")),
                &demo,
                v,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(fault(&r, "badRequest").starts_with("Tag '"), "{:?}", r.body);
    }
    let r = a
        .at(
            Method::PUT,
            &tag_path(&i, "/x"),
            &demo,
            v,
            Some(json!({"tag": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Replace all; nova's schema (≤ 50, each valid).
    let r = a
        .at(
            Method::PUT,
            &tag_path(&j, ""),
            &demo,
            v,
            Some(json!({"tags": ["red", "green"]})),
        )
        .await;
    assert_eq!(r.body, json!({"tags": ["green", "red"]}));
    let fifty: Vec<String> = (0..50).map(|n| format!("t{n:02}")).collect();
    let r = a
        .at(
            Method::PUT,
            &tag_path(&k, ""),
            &demo,
            v,
            Some(json!({"tags": fifty})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a
        .at(Method::PUT, &tag_path(&k, "/one-more"), &demo, v, None)
        .await;
    assert_eq!(
        fault(&r, "badRequest"),
        "The number of tags exceeded the per-server limit 50"
    );
    for bad in [
        json!({"tags": (0..51).map(|n| format!("t{n}")).collect::<Vec<_>>()}),
        json!({"tags": ["a/b"]}),
        json!({"tags": [""]}),
        json!({"tag": []}),
    ] {
        let r = a
            .at(Method::PUT, &tag_path(&k, ""), &demo, v, Some(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        crate::compute_api::tags::tags_of(&a.reload(&k).await).len(),
        50
    );
    let r = a
        .at(Method::DELETE, &tag_path(&k, ""), &demo, v, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = a.at(Method::GET, &tag_path(&k, ""), &demo, v, None).await;
    assert_eq!(r.body, json!({"tags": []}));

    // The list filters (in SQL): i = blue, red; j = green, red; k = none.
    let names = |r: &Reply| -> Vec<String> {
        let mut n: Vec<String> = r.body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    for (q, want) in [
        ("tags=red", vec!["t1", "t2"]),
        ("tags=red,blue", vec!["t1"]),
        ("tags-any=blue,green", vec!["t1", "t2"]),
        ("not-tags=red,blue", vec!["t2", "t3"]),
        ("not-tags-any=blue,green", vec!["t3"]),
        ("tags=red&not-tags-any=blue", vec!["t2"]),
        ("tags=re", vec![]),
    ] {
        let r = a
            .at(Method::GET, &format!("/v2.1/servers?{q}"), &demo, v, None)
            .await;
        assert_eq!(names(&r), want, "{q}");
        let r = a
            .at(
                Method::GET,
                &format!("/v2.1/servers/detail?{q}"),
                &demo,
                v,
                None,
            )
            .await;
        assert_eq!(names(&r), want, "detail {q}");
    }
    // Before 2.26 the filters are ignored, as nova does.
    let r = a
        .at(Method::GET, "/v2.1/servers?tags=red", &demo, "2.25", None)
        .await;
    assert_eq!(names(&r).len(), 3);
    // The server body's tags (2.26+).
    let show = format!("/v2.1/servers/{}", i.uuid());
    let r = a.at(Method::GET, &show, &demo, v, None).await;
    assert_eq!(r.body["server"]["tags"], json!(["blue", "red"]));
    let r = a.at(Method::GET, &show, &demo, "2.25", None).await;
    assert!(r.body["server"].get("tags").is_none());
    let r = a
        .at(
            Method::GET,
            "/v2.1/servers/detail?tags=green",
            &demo,
            v,
            None,
        )
        .await;
    assert_eq!(r.body["servers"][0]["tags"], json!(["green", "red"]));

    // Deleting one; 404 for a tag the server lacks; 409 in a state nova refuses.
    let r = a
        .at(Method::DELETE, &tag_path(&i, "/blue"), &demo, v, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = a
        .at(Method::DELETE, &tag_path(&i, "/blue"), &demo, v, None)
        .await;
    assert_eq!(
        fault(&r, "itemNotFound"),
        format!("Instance {} has no tag 'blue'", i.uuid())
    );
    let b = a
        .instance("b", VmState::Building, Some(TaskState::Scheduling), None)
        .await;
    for (method, rest, action) in [
        (Method::PUT, "/x", "update tag"),
        (Method::DELETE, "/x", "delete tag"),
        (Method::DELETE, "", "delete tags"),
    ] {
        let r = a.at(method, &tag_path(&b, rest), &demo, v, None).await;
        assert_eq!(
            fault(&r, "conflictingRequest"),
            format!(
                "Cannot '{action}' instance {} while it is in vm_state building",
                b.uuid()
            )
        );
    }
    let r = a
        .at(
            Method::PUT,
            &tag_path(&b, ""),
            &demo,
            v,
            Some(json!({"tags": ["x"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // nova checks the vm_state only: a task in progress does not matter.
    let busy = a
        .instance(
            "busy",
            VmState::Active,
            Some(TaskState::RebootingHard),
            Some("h1"),
        )
        .await;
    let r = a
        .at(Method::PUT, &tag_path(&busy, "/x"), &demo, v, None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn server_passwords_are_read_from_system_metadata_and_cleared() {
    let a = app().await;
    let mut i = a.instance("p", VmState::Active, None, Some("h1")).await;
    let path = format!("/v2.1/servers/{}/os-server-password", i.uuid());
    let r = a.get(&path, &a.demo).await;
    assert_eq!(r.body, json!({"password": ""}));
    let secret = "s".repeat(300);
    i.set_system_metadata(crate::compute_api::password::convert(Some(&secret)));
    a.state.objects.save(&admin_ctx(), &mut i).await.unwrap();
    let r = a.get(&path, &a.demo).await;
    assert_eq!(r.body, json!({"password": secret}));
    let r = a
        .send(App::req(
            Method::DELETE,
            &path,
            Some(&a.demo),
            Body::empty(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = a.get(&path, &a.demo).await;
    assert_eq!(r.body, json!({"password": ""}));
    let sm = a.reload(&i).await.system_metadata().clone();
    assert_eq!(sm.get("password_0"), Some(&Some(String::new())));
}

#[tokio::test]
async fn topology_comes_from_the_numa_topology_and_host_details_are_the_admins() {
    let a = app().await;
    let (demo, admin) = (a.demo.clone(), a.admin.clone());
    let plain = a.instance("plain", VmState::Active, None, Some("h1")).await;
    let path = format!("/v2.1/servers/{}/topology", plain.uuid());
    let r = a.at(Method::GET, &path, &demo, "2.77", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.at(Method::GET, &path, &demo, "2.78", None).await;
    assert_eq!(r.body, json!({"nodes": [], "pagesize_kb": null}));
    let mut numa = a.instance("numa", VmState::Active, None, Some("h1")).await;
    let cell = json!({"nova_object.name": "InstanceNUMACell", "nova_object.namespace": "nova",
        "nova_object.version": "1.6", "nova_object.data": {"id": 1, "cpuset": [0, 1],
        "pcpuset": [], "memory": 512, "pagesize": null, "cpu_pinning_raw": null}});
    numa.set_numa_topology(Some(RawObject(
        json!({"nova_object.name": "InstanceNUMATopology",
        "nova_object.namespace": "nova", "nova_object.version": "1.3",
        "nova_object.data": {"instance_uuid": numa.uuid(), "cells": [cell]}}),
    )));
    a.state.objects.save(&admin_ctx(), &mut numa).await.unwrap();
    let path = format!("/v2.1/servers/{}/topology", numa.uuid());
    let r = a.at(Method::GET, &path, &demo, "2.78", None).await;
    assert_eq!(
        r.body,
        json!({"nodes": [{"vcpu_set": [0, 1], "siblings": [], "memory_mb": 512}], "pagesize_kb": null})
    );
    let r = a.at(Method::GET, &path, &admin, "2.78", None).await;
    assert_eq!(r.body["nodes"][0]["host_node"], 1);
    assert_eq!(r.body["nodes"][0]["cpu_pinning"], json!({}));
}

#[tokio::test]
async fn host_status_tells_the_compute_services_state() {
    let a = app().await;
    let admin = a.admin.clone();
    let mut svc = Service::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_host(Some("h1".into()))
        .with_binary(Some("nova-compute".into()))
        .with_topic(Some("compute".into()))
        .with_report_count(1)
        .with_disabled(false)
        .with_forced_down(false)
        .with_last_seen_up(Some(chrono::Utc::now()))
        .with_version(66);
    a.state
        .objects
        .create(&admin_ctx(), &mut svc)
        .await
        .unwrap();
    let on_h1 = a.instance("on-h1", VmState::Active, None, Some("h1")).await;
    let on_h9 = a.instance("on-h9", VmState::Active, None, Some("h9")).await;
    let nowhere = a.instance("nowhere", VmState::Error, None, None).await;
    let status = |i: &Instance, v: &'static str| {
        let path = format!("/v2.1/servers/{}", i.uuid());
        let a = &a;
        let admin = admin.clone();
        async move {
            let r = a.at(Method::GET, &path, &admin, v, None).await;
            r.body["server"].get("host_status").cloned()
        }
    };
    assert_eq!(status(&on_h1, "2.16").await, Some(json!("UP")));
    assert_eq!(status(&on_h1, "2.15").await, None);
    assert_eq!(status(&on_h9, "2.16").await, Some(json!("")));
    assert_eq!(status(&nowhere, "2.16").await, Some(json!("")));
    // Members do not see it (nova's policy is admin-only).
    let r = a
        .at(
            Method::GET,
            &format!("/v2.1/servers/{}", on_h1.uuid()),
            &a.demo,
            "2.16",
            None,
        )
        .await;
    assert!(r.body["server"].get("host_status").is_none());
    // Disabled: MAINTENANCE; forced down: DOWN; silent: UNKNOWN.
    svc.set_disabled(true);
    a.state.objects.save(&admin_ctx(), &mut svc).await.unwrap();
    assert_eq!(status(&on_h1, "2.16").await, Some(json!("MAINTENANCE")));
    svc.set_forced_down(true);
    a.state.objects.save(&admin_ctx(), &mut svc).await.unwrap();
    assert_eq!(status(&on_h1, "2.16").await, Some(json!("DOWN")));
    svc.set_forced_down(false);
    svc.set_disabled(false);
    svc.set_last_seen_up(Some(chrono::Utc::now() - chrono::Duration::hours(1)));
    a.state.objects.save(&admin_ctx(), &mut svc).await.unwrap();
    let path = "/v2.1/servers/detail?all_tenants=1&name=^on-h1$";
    let r = a.at(Method::GET, path, &admin, "2.16", None).await;
    assert_eq!(r.body["servers"][0]["host_status"], "UNKNOWN");
}

#[tokio::test]
async fn diagnostics_are_the_admins_and_need_a_host() {
    let a = app().await;
    let i = a.instance("d", VmState::Active, None, Some("h1")).await;
    let path = format!("/v2.1/servers/{}/diagnostics", i.uuid());
    let r = a.get(&path, &a.demo).await;
    assert_eq!(
        fault(&r, "forbidden"),
        "Policy doesn't allow os_compute_api:os-server-diagnostics to be performed."
    );
    let b = a
        .instance("b", VmState::Building, Some(TaskState::Scheduling), None)
        .await;
    let r = a
        .get(&format!("/v2.1/servers/{}/diagnostics", b.uuid()), &a.admin)
        .await;
    assert_eq!(
        fault(&r, "conflictingRequest"),
        format!("Instance {} is not ready", b.uuid())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_changes_of_different_keys_and_tags_all_land() {
    let a = app().await;
    let i = a.instance("race", VmState::Active, None, Some("h1")).await;
    let demo = a.demo.clone();
    let md = (0..16).map(|n| {
        let (a, demo, path) = (&a, demo.clone(), md_path(&i, ""));
        async move {
            let body = json!({"metadata": {format!("k{n}"): "v"}});
            a.at(Method::POST, &path, &demo, "2.1", Some(body))
                .await
                .status
        }
    });
    let tags = (0..16).map(|n| {
        let (a, demo, path) = (&a, demo.clone(), tag_path(&i, &format!("/t{n:02}")));
        async move { a.at(Method::PUT, &path, &demo, "2.26", None).await.status }
    });
    let (md, tags) = tokio::join!(
        futures_util::future::join_all(md),
        futures_util::future::join_all(tags)
    );
    assert!(md.iter().all(|s| *s == StatusCode::OK), "{md:?}");
    assert!(tags.iter().all(|s| *s == StatusCode::CREATED), "{tags:?}");
    let now = a.reload(&i).await;
    assert_eq!(now.metadata().len(), 16, "{:?}", now.metadata());
    assert_eq!(crate::compute_api::tags::tags_of(&now).len(), 16);
}
