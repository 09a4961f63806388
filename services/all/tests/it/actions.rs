//! Server actions end to end on fake computes: each allowed and refused
//! state, the driver failing, locks, soft delete, and the instance
//! actions and events each one records (`os-instance-actions` per
//! microversion).

use std::sync::Arc;
use std::time::Duration;

use nova_objects::{InstanceFault, ListQuery};
use nova_rpc::RequestContext;
use nova_virt::{ComputeDriver as _, FakeDriver, Faults};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Reply};

fn admin() -> RequestContext {
    RequestContext::new().with_admin(true)
}

/// The fake hypervisor the server runs on.
async fn fake_of(c: &Cluster, id: &str) -> Arc<FakeDriver> {
    for comp in &c.all.computes {
        let f = comp.fake.clone().unwrap();
        if f.list_instance_uuids()
            .await
            .unwrap()
            .iter()
            .any(|u| u == id)
        {
            return f;
        }
    }
    panic!("no compute runs {id}");
}

async fn act(c: &Cluster, user: &str, mv: &str, id: &str, body: Value) -> Reply {
    c.call(
        Method::POST,
        &format!("/v2.1/servers/{id}/action"),
        user,
        mv,
        Some(body),
    )
    .await
}

async fn actions(c: &Cluster, user: &str, mv: &str, id: &str, query: &str) -> Reply {
    c.call(
        Method::GET,
        &format!("/v2.1/servers/{id}/os-instance-actions{query}"),
        user,
        mv,
        None,
    )
    .await
}

async fn action_of(c: &Cluster, user: &str, mv: &str, id: &str, req: &str) -> Reply {
    c.call(
        Method::GET,
        &format!("/v2.1/servers/{id}/os-instance-actions/{req}"),
        user,
        mv,
        None,
    )
    .await
}

/// The action names of a server, newest first.
async fn action_names(c: &Cluster, id: &str) -> Vec<String> {
    let r = actions(c, "demo", "2.1", id, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the action of `req` has an event that finished.
async fn wait_event_done(c: &Cluster, id: &str, req: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = action_of(c, "admin", "2.84", id, req).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let a = r.body["instanceAction"].clone();
        if a["events"]
            .as_array()
            .is_some_and(|e| !e.is_empty() && e.iter().all(|e| !e["finish_time"].is_null()))
        {
            return a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events never finished: {a}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn request_id(r: &Reply) -> String {
    r.headers["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_suspend_and_their_instance_actions() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "p-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let fake = fake_of(&c, &id).await;

    // Refused states: nothing changes, nova's message.
    for (body, method, state) in [
        (json!({"unpause": null}), "unpause", "active"),
        (json!({"resume": null}), "resume", "active"),
        (json!({"unrescue": null}), "unrescue", "active"),
        (json!({"restore": null}), "restore", "active"),
    ] {
        let r = act(&c, "demo", "2.100", &id, body).await;
        assert_eq!(r.status, 409, "{}", r.body);
        let (name, msg) = r.fault();
        assert_eq!(name, "conflictingRequest");
        assert_eq!(
            msg,
            format!("Cannot '{method}' instance {id} while it is in vm_state {state}")
        );
    }

    let r = act(&c, "demo", "2.100", &id, json!({"pause": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let pause_req = request_id(&r);
    let s = c.wait_status("demo", &id, "PAUSED").await;
    assert_eq!(s["OS-EXT-STS:vm_state"], "paused");
    assert_eq!(s["OS-EXT-STS:power_state"], 3);
    assert_eq!(
        fake.get_info(&id).await.unwrap().state,
        nova_virt::PowerState::Paused
    );
    for body in [
        json!({"pause": null}),
        json!({"suspend": null}),
        json!({"reboot": {"type": "SOFT"}}),
        json!({"changePassword": {"adminPass": "x"}}),
    ] {
        let r = act(&c, "demo", "2.100", &id, body.clone()).await;
        assert_eq!(r.status, 409, "{body}: {}", r.body);
    }
    assert_eq!(
        act(&c, "demo", "2.100", &id, json!({"unpause": null}))
            .await
            .status,
        202
    );
    c.wait_status("demo", &id, "ACTIVE").await;

    assert_eq!(
        act(&c, "demo", "2.100", &id, json!({"suspend": null}))
            .await
            .status,
        202
    );
    let s = c.wait_status("demo", &id, "SUSPENDED").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 7);
    let r = act(&c, "demo", "2.100", &id, json!({"pause": null})).await;
    assert_eq!(r.status, 409);
    assert!(r.fault().1.contains("vm_state suspended"), "{}", r.body);
    assert_eq!(
        act(&c, "demo", "2.100", &id, json!({"resume": null}))
            .await
            .status,
        202
    );
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 1);
    assert_eq!(
        act(&c, "demo", "2.100", &id, json!({"pause": "anything"}))
            .await
            .status,
        202,
        "nova's pause body takes any value"
    );
    c.wait_status("demo", &id, "PAUSED").await;
    assert_eq!(
        act(&c, "demo", "2.100", &id, json!({"unpause": null}))
            .await
            .status,
        202
    );
    c.wait_status("demo", &id, "ACTIVE").await;
    // A reader may look but not act.
    let r = act(&c, "viewer", "2.100", &id, json!({"pause": null})).await;
    assert_eq!(r.status, 403);
    assert!(r.fault().1.contains("os_compute_api:os-pause-server:pause"));
    // Another project's server does not exist for alt_demo.
    let r = act(&c, "alt_demo", "2.100", &id, json!({"pause": null})).await;
    assert_eq!(r.status, 404);

    // The instance actions, newest first.
    assert_eq!(
        action_names(&c, &id).await,
        vec![
            "unpause", "pause", "resume", "suspend", "unpause", "pause", "create"
        ]
    );
    let r = actions(&c, "viewer", "2.1", &id, "").await;
    assert_eq!(r.status, 200, "readers list actions");
    let first = &r.body["instanceActions"][6];
    assert_eq!(first["action"], "create");
    assert_eq!(first["instance_uuid"], id.as_str());
    assert_eq!(first["project_id"], "demo");
    assert!(first.get("updated_at").is_none(), "updated_at is 2.58");
    assert!(first["request_id"].as_str().unwrap().starts_with("req-"));

    // One action: the compute's event, its fields per microversion.
    let a = wait_event_done(&c, &id, &pause_req).await;
    assert_eq!(a["action"], "pause");
    assert_eq!(a["message"], Value::Null);
    let e = &a["events"][0];
    assert_eq!(e["event"], "compute_pause_instance");
    assert_eq!(e["result"], "Success");
    assert_eq!(e["host"], c.all.computes[0].host.as_str());
    assert_eq!(e["hostId"].as_str().unwrap().len(), 56);
    assert_eq!(e["traceback"], Value::Null);
    assert_eq!(e["details"], Value::Null);
    assert!(a["updated_at"].as_str().unwrap() >= a["start_time"].as_str().unwrap());
    let r = action_of(&c, "demo", "2.50", &id, &pause_req).await;
    assert!(
        r.body["instanceAction"].get("events").is_none(),
        "{}",
        r.body
    );
    let r = action_of(&c, "demo", "2.51", &id, &pause_req).await;
    let e = &r.body["instanceAction"]["events"][0];
    assert_eq!(e["result"], "Success");
    assert!(e.get("traceback").is_none() && e.get("host").is_none());
    assert!(e.get("hostId").is_none(), "hostId is 2.62");
    let r = action_of(&c, "demo", "2.62", &id, &pause_req).await;
    let e = &r.body["instanceAction"]["events"][0];
    assert!(e["hostId"].is_string() && e.get("host").is_none());
    assert!(
        e.get("details").is_none(),
        "details are the admins' from 2.84"
    );
    let r = action_of(&c, "demo", "2.62", &id, "req-nope").await;
    assert_eq!(r.status, 404);

    // 2.58 paging: limit, marker, next link; changes-since; bad input.
    let r = actions(&c, "demo", "2.58", &id, "?limit=2").await;
    let page = r.body["instanceActions"].as_array().unwrap().clone();
    assert_eq!(page.len(), 2);
    assert!(page[0]["updated_at"].is_string());
    let next = r.body["links"][0]["href"].as_str().unwrap();
    let marker = page[1]["request_id"].as_str().unwrap();
    assert!(next.contains(&format!("marker={marker}")), "{next}");
    let r = actions(
        &c,
        "demo",
        "2.58",
        &id,
        &format!("?limit=10&marker={marker}"),
    )
    .await;
    let rest: Vec<&str> = r.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        rest,
        vec!["resume", "suspend", "unpause", "pause", "create"]
    );
    assert!(
        r.body.get("links").is_none(),
        "a short page has no next link"
    );
    assert_eq!(
        actions(&c, "demo", "2.58", &id, "?marker=req-nope")
            .await
            .status,
        400
    );
    assert_eq!(
        actions(&c, "demo", "2.58", &id, "?limit=-1").await.status,
        400
    );
    assert_eq!(
        actions(&c, "demo", "2.58", &id, "?bogus=1").await.status,
        400
    );
    assert_eq!(
        actions(&c, "demo", "2.1", &id, "?bogus=1").await.status,
        200,
        "before 2.58 the query is not checked"
    );
    let r = actions(
        &c,
        "demo",
        "2.58",
        &id,
        "?changes-since=2999-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(r.body["instanceActions"], json!([]));
    let r = actions(
        &c,
        "demo",
        "2.58",
        &id,
        "?changes-before=2000-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(r.status, 400, "changes-before is 2.66");
    let r = actions(
        &c,
        "demo",
        "2.66",
        &id,
        "?changes-before=2000-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(r.body["instanceActions"], json!([]));
    let r = actions(
        &c,
        "demo",
        "2.66",
        &id,
        "?changes-since=2030-01-01T00:00:00Z&changes-before=2020-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(r.status, 400);

    // Deleted servers' actions from 2.21.
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "demo")
            .await
            .status,
        204
    );
    c.wait_gone("demo", &id).await;
    assert_eq!(actions(&c, "demo", "2.20", &id, "").await.status, 404);
    let r = actions(&c, "demo", "2.21", &id, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["instanceActions"][0]["action"], "delete");
    let del = r.body["instanceActions"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = wait_event_done(&c, &id, &del).await;
    assert_eq!(a["events"][0]["event"], "compute_terminate_instance");
    assert_eq!(a["events"][0]["result"], "Success");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_driver_leaves_faults_and_error_events() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "f-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let fake = fake_of(&c, &id).await;
    fake.set_faults(Faults {
        fail_operations: vec!["pause".into(), "suspend".into()],
        ..Faults::default()
    });
    // pause: nova reverts the task state and records a fault; the server
    // stays active.
    let r = act(&c, "demo", "2.100", &id, json!({"pause": null})).await;
    assert_eq!(r.status, 202);
    let req = request_id(&r);
    let a = wait_event_done(&c, &id, &req).await;
    assert_eq!(a["message"], "Error");
    let e = &a["events"][0];
    assert_eq!(e["result"], "Error");
    assert!(
        e["details"]
            .as_str()
            .unwrap()
            .contains("injected failure of pause"),
        "{e}"
    );
    assert!(
        e["traceback"]
            .as_str()
            .unwrap()
            .contains("injected failure")
    );
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 1);
    let faults: Vec<InstanceFault> = c
        .all
        .objects
        .list(
            &admin(),
            &ListQuery::new().filter("instance_uuid", id.as_str()),
        )
        .await
        .unwrap();
    assert_eq!(faults.len(), 1);
    assert!(faults[0].message().as_deref().unwrap().contains("Pause"));
    // The owner sees the error, not the traceback.
    let r = action_of(&c, "demo", "2.51", &id, &req).await;
    assert_eq!(r.body["instanceAction"]["events"][0]["result"], "Error");
    assert!(
        r.body["instanceAction"]["events"][0]
            .get("traceback")
            .is_none()
    );

    // suspend: ERROR with the fault.
    let r = act(&c, "demo", "2.100", &id, json!({"suspend": null})).await;
    assert_eq!(r.status, 202);
    let s = c.wait_status("demo", &id, "ERROR").await;
    assert!(
        s["fault"]["message"].as_str().unwrap().contains("Suspend"),
        "{s}"
    );
    // From ERROR: os-resetState (admins only) back to active.
    let r = act(
        &c,
        "demo",
        "2.100",
        &id,
        json!({"os-resetState": {"state": "active"}}),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = act(
        &c,
        "admin",
        "2.100",
        &id,
        json!({"os-resetState": {"state": "bogus"}}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = act(
        &c,
        "admin",
        "2.100",
        &id,
        json!({"os-resetState": {"state": "active"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    c.wait_status("demo", &id, "ACTIVE").await;
    let r = act(
        &c,
        "admin",
        "2.100",
        &id,
        json!({"os-resetState": {"state": "error"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    c.wait_status("demo", &id, "ERROR").await;
    assert_eq!(
        &action_names(&c, &id).await[..2],
        &["resetState".to_owned(), "resetState".to_owned()]
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_hold_other_users_off() {
    let users = format!(
        "{}, demo2:demo2:demo:member",
        nova_api::serve::DEFAULT_USERS
    );
    let c = Cluster::start(1, &[("identity", "users", &users)]).await;
    let id = c.boot("demo", "l-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let show = |mv: &'static str| {
        let path = format!("/v2.1/servers/{id}");
        let c = &c;
        async move { c.call(Method::GET, &path, "demo2", mv, None).await }
    };
    let r = act(
        &c,
        "demo",
        "2.73",
        &id,
        json!({"lock": {"locked_reason": "maintenance"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = show("2.73").await.body["server"].clone();
    assert_eq!(s["locked"], true);
    assert_eq!(s["locked_reason"], "maintenance");
    let s = show("2.72").await.body["server"].clone();
    assert_eq!(s["locked"], true);
    assert!(s.get("locked_reason").is_none());
    // Locked: other non-admin users are refused (the owner too, as nova).
    let r = act(&c, "demo2", "2.100", &id, json!({"pause": null})).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.fault().1, format!("Instance {id} is locked"));
    let r = c.delete(&format!("/v2.1/servers/{id}"), "demo2").await;
    assert_eq!(r.status, 409);
    let r = act(&c, "demo", "2.100", &id, json!({"os-stop": null})).await;
    assert_eq!(r.status, 409);
    // Admins may act.
    let r = act(&c, "admin", "2.100", &id, json!({"pause": null})).await;
    assert_eq!(r.status, 202);
    c.wait_status("demo", &id, "PAUSED").await;
    // Before 2.73 the lock body is free-form (and the owner's second
    // lock changes nothing); from 2.73 it is checked.
    let r = act(
        &c,
        "demo",
        "2.72",
        &id,
        json!({"lock": {"locked_reason": "x"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = act(&c, "demo", "2.73", &id, json!({"lock": {"bogus": "x"}})).await;
    assert_eq!(r.status, 400);
    // The owner's project unlocks its own lock.
    let r = act(&c, "demo2", "2.100", &id, json!({"unlock": null})).await;
    assert_eq!(r.status, 202);
    let s = show("2.73").await.body["server"].clone();
    assert_eq!(s["locked"], false);
    assert_eq!(s["locked_reason"], Value::Null);
    // An admin's lock needs an admin to undo.
    let r = act(&c, "admin", "2.100", &id, json!({"lock": null})).await;
    assert_eq!(r.status, 202);
    let r = act(&c, "demo", "2.100", &id, json!({"unlock": null})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.fault().1.contains("unlock_override"));
    let r = act(&c, "admin", "2.100", &id, json!({"unlock": null})).await;
    assert_eq!(r.status, 202);
    let r = act(&c, "demo", "2.100", &id, json!({"unpause": null})).await;
    assert_eq!(r.status, 202);
    c.wait_status("demo", &id, "ACTIVE").await;
    // Each lock and unlock is an action with its API event.
    let r = actions(&c, "admin", "2.84", &id, "").await;
    let names: Vec<&str> = r.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "unpause", "unlock", "lock", "unlock", "pause", "lock", "create"
        ]
    );
    let req = r.body["instanceActions"][1]["request_id"].as_str().unwrap();
    let a = action_of(&c, "admin", "2.84", &id, req).await.body["instanceAction"].clone();
    assert_eq!(a["events"][0]["event"], "api_unlock");
    assert_eq!(a["events"][0]["result"], "Success");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_rescue_crash_dump_and_console() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "r-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let fake = fake_of(&c, &id).await;

    // changePassword: a call; the guest has the new password when the API answers.
    let r = act(
        &c,
        "demo",
        "2.100",
        &id,
        json!({"changePassword": {"adminPass": "s3cret"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(fake.admin_password(&id).as_deref(), Some("s3cret"));
    let r = act(&c, "demo", "2.100", &id, json!({"changePassword": {}})).await;
    assert_eq!(r.status, 400);
    c.wait_status("demo", &id, "ACTIVE").await;
    fake.set_faults(Faults {
        fail_operations: vec!["set_admin_password".into()],
        ..Faults::default()
    });
    let r = act(
        &c,
        "demo",
        "2.100",
        &id,
        json!({"changePassword": {"adminPass": "other"}}),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.fault().1.contains("error setting admin password"),
        "{}",
        r.body
    );
    fake.set_faults(Faults::default());
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);

    // Console output: the whole log, or its last lines.
    let r = act(&c, "demo", "2.100", &id, json!({"os-getConsoleOutput": {}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let all = r.body["output"].as_str().unwrap().to_owned();
    assert!(all.contains("[fake] booting r-1"), "{all}");
    let r = act(
        &c,
        "demo",
        "2.100",
        &id,
        json!({"os-getConsoleOutput": {"length": 2}}),
    )
    .await;
    let tail = r.body["output"].as_str().unwrap();
    assert_eq!(tail.split('\n').count(), 2);
    assert!(all.ends_with(tail));
    let r = act(
        &c,
        "demo",
        "2.100",
        &id,
        json!({"os-getConsoleOutput": {"length": "x"}}),
    )
    .await;
    assert_eq!(r.status, 400);

    // trigger_crash_dump: 2.17.
    let r = act(&c, "demo", "2.16", &id, json!({"trigger_crash_dump": null})).await;
    assert_eq!(r.status, 404);
    let r = act(&c, "demo", "2.17", &id, json!({"trigger_crash_dump": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let req = request_id(&r);
    let a = wait_event_done(&c, &id, &req).await;
    assert_eq!(a["events"][0]["event"], "compute_trigger_crash_dump");
    assert_eq!(a["events"][0]["result"], "Success");
    let out = fake.get_console_output(&id).await.unwrap();
    assert!(out.contains("NMI"), "{out}");

    // Rescue from the server's image; a generated password returned.
    let r = act(&c, "demo", "2.100", &id, json!({"rescue": null})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["adminPass"].as_str().unwrap().len(), 12);
    let s = c.wait_status("demo", &id, "RESCUE").await;
    assert_eq!(s["OS-EXT-STS:vm_state"], "rescued");
    assert_eq!(
        fake.rescue_image(&id).as_deref(),
        Some(nova_all::FAKE_IMAGE_ID)
    );
    for body in [json!({"rescue": null}), json!({"pause": null})] {
        assert_eq!(act(&c, "demo", "2.100", &id, body).await.status, 409);
    }
    assert_eq!(
        act(&c, "demo", "2.100", &id, json!({"unrescue": null}))
            .await
            .status,
        202
    );
    c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(fake.rescue_image(&id), None);
    // With a password and an image; an unknown image is a 400.
    let r = act(
        &c,
        "demo",
        "2.100",
        &id,
        json!({"rescue": {"adminPass": "pw", "rescue_image_ref": "6f0e3ad8-8b44-4d4f-9a2b-3c0f4d9b7e11"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = act(
        &c,
        "demo",
        "2.100",
        &id,
        json!({"rescue": {"adminPass": "pw", "rescue_image_ref": nova_all::FAKE_IMAGE_ID}}),
    )
    .await;
    assert_eq!(r.body["adminPass"], "pw");
    c.wait_status("demo", &id, "RESCUE").await;
    fake.set_faults(Faults {
        fail_operations: vec!["unrescue".into()],
        ..Faults::default()
    });
    act(&c, "demo", "2.100", &id, json!({"unrescue": null})).await;
    let s = c.wait_status("demo", &id, "ERROR").await;
    assert!(s["fault"]["message"].as_str().unwrap().contains("Unrescue"));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_delete_restore_force_delete_and_reclaim() {
    let c = Cluster::start(1, &[("DEFAULT", "reclaim_instance_interval", "2")]).await;
    let id = c.boot("demo", "s-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let fake = fake_of(&c, &id).await;
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "demo")
            .await
            .status,
        204
    );
    let s = c.wait_status("demo", &id, "SOFT_DELETED").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 4);
    assert_eq!(c.total_usage("MEMORY_MB").await, 512, "still held");
    assert_eq!(
        act(&c, "demo", "2.100", &id, json!({"pause": null}))
            .await
            .status,
        409
    );
    assert_eq!(
        act(&c, "demo", "2.100", &id, json!({"restore": null}))
            .await
            .status,
        202
    );
    c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(
        fake.get_info(&id).await.unwrap().state,
        nova_virt::PowerState::Running
    );
    // forceDelete: at once, whatever the interval.
    let id2 = c.boot("demo", "s-2", "1").await;
    c.wait_status("demo", &id2, "ACTIVE").await;
    let r = act(&c, "viewer", "2.100", &id2, json!({"forceDelete": null})).await;
    assert_eq!(r.status, 403);
    let r = act(&c, "demo", "2.100", &id2, json!({"forceDelete": null})).await;
    assert_eq!(r.status, 202);
    c.wait_gone("demo", &id2).await;
    // The periodic task reclaims a soft delete once it is old enough.
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "demo")
            .await
            .status,
        204
    );
    c.wait_status("demo", &id, "SOFT_DELETED").await;
    c.wait_gone("demo", &id).await;
    assert_eq!(c.total_usage("MEMORY_MB").await, 0);
    assert!(fake.list_instance_uuids().await.unwrap().is_empty());
    let names = {
        let r = actions(&c, "demo", "2.21", &id, "").await;
        r.body["instanceActions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["action"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names, vec!["delete", "restore", "delete", "create"]);
    let r = actions(&c, "demo", "2.21", &id2, "").await;
    assert_eq!(
        r.body["instanceActions"][0]["action"], "delete",
        "forceDelete is a delete"
    );
    c.stop().await;
}

/// The actions' versioned notifications, received from RabbitMQ by a real
/// oslo.messaging listener, each compared with nova's sample.
#[cfg(feature = "amqp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn actions_notify_as_nova_does() {
    use crate::notifications::{Listener, check_against_sample};
    use crate::vhost::Vhost;

    let amqp = std::env::var("NOVA_RS_AMQP_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into());
    let vhost = Vhost::create(
        &amqp,
        &format!("nova-rs-actions-{}", uuid::Uuid::new_v4().simple()),
    );
    let listener = tokio::task::spawn_blocking({
        let url = vhost.url.clone();
        move || Listener::start(&url, &["versioned_notifications"])
    })
    .await
    .unwrap();
    let c = Cluster::start(
        1,
        &[
            ("DEFAULT", "transport_url", "memory://"),
            ("DEFAULT", "reclaim_instance_interval", "3600"),
            ("oslo_messaging_notifications", "driver", "messagingv2"),
            ("oslo_messaging_notifications", "transport_url", &vhost.url),
            ("notifications", "notification_format", "versioned"),
        ],
    )
    .await;
    let id = c.boot("demo", "notified", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let steps: [(Value, &str); 10] = [
        (json!({"pause": null}), "PAUSED"),
        (json!({"unpause": null}), "ACTIVE"),
        (json!({"suspend": null}), "SUSPENDED"),
        (json!({"resume": null}), "ACTIVE"),
        (json!({"lock": null}), "ACTIVE"),
        (json!({"unlock": null}), "ACTIVE"),
        (json!({"trigger_crash_dump": null}), "ACTIVE"),
        (json!({"rescue": null}), "RESCUE"),
        (json!({"unrescue": null}), "ACTIVE"),
        (json!({"restore": null}), "ACTIVE"),
    ];
    for (body, status) in &steps[..9] {
        let r = act(&c, "demo", "2.100", &id, body.clone()).await;
        assert!(r.status == 202 || r.status == 200, "{body}: {}", r.body);
        c.wait_status("demo", &id, status).await;
    }
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "demo")
            .await
            .status,
        204
    );
    c.wait_status("demo", &id, "SOFT_DELETED").await;
    let (body, status) = &steps[9];
    assert_eq!(
        act(&c, "demo", "2.100", &id, body.clone()).await.status,
        202
    );
    c.wait_status("demo", &id, status).await;
    // A failing pause: compute.exception.
    fake_of(&c, &id).await.set_faults(Faults {
        fail_operations: vec!["pause".into()],
        ..Faults::default()
    });
    assert_eq!(
        act(&c, "demo", "2.100", &id, json!({"pause": null}))
            .await
            .status,
        202
    );
    let events = [
        "instance.pause.start",
        "instance.pause.end",
        "instance.unpause.start",
        "instance.unpause.end",
        "instance.suspend.start",
        "instance.suspend.end",
        "instance.resume.start",
        "instance.resume.end",
        "instance.lock",
        "instance.unlock",
        "instance.trigger_crash_dump.start",
        "instance.trigger_crash_dump.end",
        "instance.rescue.start",
        "instance.rescue.end",
        "instance.unrescue.start",
        "instance.unrescue.end",
        "instance.soft_delete.start",
        "instance.soft_delete.end",
        "instance.restore.start",
        "instance.restore.end",
        "compute.exception",
    ];
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        listener.until(&mut seen, "versioned_notifications", &events);
        seen
    })
    .await
    .unwrap();
    let mut errors = Vec::new();
    for n in &seen {
        let event = n["event_type"].as_str().unwrap_or_default();
        if event == "compute.exception" {
            // nova's one sample of it is the API's; a compute manager's
            // `wrap_exception` publishes as nova-compute (checked below).
            let mut n = n.clone();
            n["publisher_id"] = json!("nova-api:fake-mini");
            errors.extend(check_against_sample(&n));
        } else if events.contains(&event) {
            errors.extend(check_against_sample(n));
        }
    }
    assert!(
        errors.is_empty(),
        "differences from nova's samples:\n{}",
        errors.join("\n")
    );
    let find = |event: &str| {
        seen.iter()
            .find(|n| n["event_type"] == event)
            .unwrap_or_else(|| panic!("no {event}"))
    };
    let data = |event: &str| find(event)["payload"]["nova_object.data"].clone();
    assert_eq!(data("instance.pause.end")["state"], "paused");
    assert_eq!(data("instance.pause.start")["state"], "active");
    assert_eq!(data("instance.suspend.end")["state"], "suspended");
    assert_eq!(data("instance.lock")["locked"], true);
    assert_eq!(data("instance.unlock")["locked"], false);
    assert!(
        find("instance.lock")["publisher_id"]
            .as_str()
            .unwrap()
            .starts_with("nova-api:")
    );
    assert_eq!(data("instance.rescue.end")["state"], "rescued");
    assert_eq!(
        data("instance.rescue.start")["rescue_image_ref"],
        nova_all::FAKE_IMAGE_ID
    );
    assert_eq!(data("instance.soft_delete.end")["state"], "soft-delete");
    let exc = find("compute.exception");
    assert_eq!(exc["priority"], "ERROR");
    assert!(
        exc["publisher_id"]
            .as_str()
            .unwrap()
            .starts_with("nova-compute:")
    );
    assert_eq!(
        exc["payload"]["nova_object.data"]["function_name"],
        "pause_instance"
    );
    drop(seen);
    c.stop().await;
    drop(vhost);
}

/// The real `openstack` CLI doing every action against the `nova-all`
/// binary (soft deletes on: `reclaim_instance_interval`).
#[test]
fn the_openstack_cli_does_the_server_actions() {
    use crate::cli::{launch, wait_for};
    let Some((_all, cli)) = launch(1, &[("NOVA_DEFAULT_RECLAIM_INSTANCE_INTERVAL", "3600")]) else {
        return;
    };
    let image = nova_all::FAKE_IMAGE_ID;
    let status = cli.value(
        &[
            "server", "create", "--flavor", "1", "--image", image, "--nic", "none", "--wait",
            "act1",
        ],
        "status",
    );
    assert_eq!(status, "ACTIVE");
    let show = |field: &str| cli.value(&["server", "show", "act1"], field);
    cli.run(&["server", "pause", "act1"]);
    wait_for(&cli, "act1", "PAUSED");
    cli.run(&["server", "unpause", "act1"]);
    wait_for(&cli, "act1", "ACTIVE");
    cli.run(&["server", "suspend", "act1"]);
    wait_for(&cli, "act1", "SUSPENDED");
    cli.run(&["server", "resume", "act1"]);
    wait_for(&cli, "act1", "ACTIVE");
    cli.run(&[
        "--os-compute-api-version",
        "2.73",
        "server",
        "lock",
        "--reason",
        "cli maintenance",
        "act1",
    ]);
    let locked = cli.run(&[
        "--os-compute-api-version",
        "2.73",
        "server",
        "show",
        "act1",
        "-f",
        "json",
    ]);
    let locked: Value = serde_json::from_str(&locked).unwrap();
    assert_eq!(locked["locked"], true, "{locked}");
    assert_eq!(locked["locked_reason"], "cli maintenance", "{locked}");
    cli.run(&["server", "unlock", "act1"]);
    cli.run(&["server", "set", "--password", "n3w-secret", "act1"]);
    assert_eq!(show("status"), "ACTIVE");
    cli.run(&[
        "--os-compute-api-version",
        "2.17",
        "server",
        "dump",
        "create",
        "act1",
    ]);
    let log = cli.run(&["console", "log", "show", "act1"]);
    assert!(log.contains("[fake] booting act1"), "{log}");
    let tail = cli.run(&["console", "log", "show", "--lines", "3", "act1"]);
    assert!(
        !tail.contains("booting") && log.contains(tail.trim()),
        "{tail}"
    );
    cli.run(&["server", "rescue", "--image", image, "act1"]);
    wait_for(&cli, "act1", "RESCUE");
    cli.run(&["server", "unrescue", "act1"]);
    wait_for(&cli, "act1", "ACTIVE");
    cli.run(&[
        "server",
        "set",
        "--state",
        "error",
        "--auto-approve",
        "act1",
    ]);
    wait_for(&cli, "act1", "ERROR");
    cli.run(&[
        "server",
        "set",
        "--state",
        "active",
        "--auto-approve",
        "act1",
    ]);
    wait_for(&cli, "act1", "ACTIVE");
    // The instance actions, as `server event list` shows them.
    let events = cli.run(&[
        "server", "event", "list", "act1", "-f", "value", "-c", "Action",
    ]);
    let names: Vec<&str> = events.lines().collect();
    assert_eq!(
        names,
        vec![
            "resetState",
            "resetState",
            "unrescue",
            "rescue",
            "trigger_crash_dump",
            "changePassword",
            "unlock",
            "lock",
            "resume",
            "suspend",
            "unpause",
            "pause",
            "create"
        ],
        "{events}"
    );
    let req = cli.run(&[
        "server",
        "event",
        "list",
        "act1",
        "-f",
        "value",
        "-c",
        "Request ID",
    ]);
    let pause_req = req.lines().nth(11).unwrap();
    let detail = cli.run(&[
        "--os-compute-api-version",
        "2.84",
        "server",
        "event",
        "show",
        "act1",
        pause_req,
        "-f",
        "json",
    ]);
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["action"], "pause", "{detail}");
    assert_eq!(
        detail["events"][0]["event"], "compute_pause_instance",
        "{detail}"
    );
    assert_eq!(detail["events"][0]["result"], "Success", "{detail}");
    // Soft delete, restore, force delete.
    cli.run(&["server", "delete", "act1"]);
    wait_for(&cli, "act1", "SOFT_DELETED");
    cli.run(&["server", "restore", "act1"]);
    wait_for(&cli, "act1", "ACTIVE");
    cli.run(&["server", "delete", "--force", "--wait", "act1"]);
    let list = cli.run(&["server", "list"]);
    assert!(!list.contains("act1"), "{list}");
}
