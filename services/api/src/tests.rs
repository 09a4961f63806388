//! Router tests through `tower::ServiceExt::oneshot` (no socket): the app
//! on in-memory SQLite and a `MemoryTransport` with no conductor or
//! compute behind it, so everything here is answered by the API alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use nova_objects::db::{Database, DbConfig};
use nova_objects::{Instance, Objects};
use nova_placement::PlacementHandle;
use nova_rpc::MemoryTransport;
use nova_service::states::{TaskState, VmState};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::auth::{AuthStrategy, Identity, User};
use crate::http::admin_ctx;
use crate::{ApiConfig, ApiState, ImageStore, MAX_BODY};

mod hardening;
mod openapi;
mod policy_file;
mod quota_sets;
mod subresources;

struct App {
    router: Router,
    state: Arc<ApiState>,
    demo: String,
    admin: String,
    _images: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn app() -> App {
    app_with(nova_service::notifications::Notifier::disabled()).await
}

async fn app_with(notifier: nova_service::notifications::Notifier) -> App {
    app_with_policy(notifier, crate::policy::Policy::default()).await
}

async fn app_with_policy(
    notifier: nova_service::notifications::Notifier,
    policy: crate::policy::Policy,
) -> App {
    let db = Database::connect(&DbConfig::memory()).await.unwrap();
    db.sync().await.unwrap();
    let placement = PlacementHandle::memory();
    let dir = std::env::temp_dir().join(format!("nova-api-test-{}", uuid::Uuid::new_v4()));
    let images = ImageStore::open(&dir).unwrap();
    let users = vec![
        User::parse("admin:admin:admin:admin").unwrap(),
        User::parse("demo:demo:demo:member").unwrap(),
    ];
    let mut identity = Identity::new(users.clone(), b"secret", AuthStrategy::Keystone);
    identity.policy = policy;
    let admin = identity.issue(&users[0]).0;
    let demo = identity.issue(&users[1]).0;
    let db = Arc::new(db);
    let mut state = ApiState::new(
        ApiConfig::default(),
        Objects::from_arc(db.clone()),
        placement,
        MemoryTransport::new(),
        images,
        identity,
        None,
    );
    state.notifier = notifier;
    state.quotas = crate::quotas::QuotaStore::open(db, state.cfg.quotas.clone(), false)
        .await
        .unwrap();
    let state = Arc::new(state);
    App {
        router: crate::router(state.clone()),
        state,
        demo,
        admin,
        _images: TempDir(dir),
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl App {
    async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    fn req(method: Method, path: &str, token: Option<&str>, body: Body) -> Request<Body> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(t) = token {
            b = b.header("x-auth-token", t);
        }
        b.body(body).unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Self::req(Method::GET, path, Some(token), Body::empty()))
            .await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Self::req(
            Method::POST,
            path,
            Some(token),
            Body::from(body.to_string()),
        ))
        .await
    }

    /// `POST /servers/{id}/action` as demo.
    async fn action(&self, inst: &Instance, body: Value) -> Reply {
        let path = format!("/v2.1/servers/{}/action", inst.uuid());
        self.post(&path, &self.demo, body).await
    }

    /// An instance record of project `demo`, written straight to the
    /// database.
    async fn instance(
        &self,
        name: &str,
        vm: VmState,
        task: Option<TaskState>,
        host: Option<&str>,
    ) -> Instance {
        let mut i = Instance::new()
            .with_uuid(uuid::Uuid::new_v4().to_string())
            .with_display_name(Some(name.to_owned()))
            .with_project_id(Some("demo".to_owned()))
            .with_user_id(Some("demo".to_owned()))
            .with_vm_state(Some(vm.into()))
            .with_task_state(task.map(Into::into))
            .with_host(host.map(str::to_owned))
            .with_locked(false);
        self.state
            .objects
            .create(&admin_ctx(), &mut i)
            .await
            .unwrap();
        i
    }

    async fn reload(&self, i: &Instance) -> Instance {
        self.state
            .objects
            .get_by_uuid::<Instance>(&admin_ctx(), i.uuid())
            .await
            .unwrap()
    }
}

fn fault<'a>(r: &'a Reply, name: &str) -> &'a str {
    assert_eq!(
        r.body[name]["code"].as_u64(),
        Some(u64::from(r.status.as_u16())),
        "{:?}",
        r.body
    );
    r.body[name]["message"].as_str().unwrap()
}

#[tokio::test]
async fn version_documents_need_no_token() {
    let a = app().await;
    let r = a
        .send(App::req(Method::GET, "/", None, Body::empty()))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["versions"][1]["id"], "v2.1");
    assert_eq!(
        r.body["versions"][1]["version"],
        crate::microversion::MAX.to_string()
    );
    let r = a
        .send(App::req(Method::GET, "/v2.1/", None, Body::empty()))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"]["min_version"], "2.1");
    assert!(r.headers.contains_key("x-openstack-request-id"));
}

#[tokio::test]
async fn microversions_are_negotiated_and_echoed() {
    let a = app().await;
    let mut req = App::req(Method::GET, "/v2.1/servers", Some(&a.demo), Body::empty());
    req.headers_mut()
        .insert("openstack-api-version", "compute 2.61".parse().unwrap());
    let r = a.send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["openstack-api-version"], "compute 2.61");
    assert_eq!(r.headers["x-openstack-nova-api-version"], "2.61");

    let mut req = App::req(Method::GET, "/v2.1/servers", Some(&a.demo), Body::empty());
    req.headers_mut()
        .insert("openstack-api-version", "compute 3.0".parse().unwrap());
    let r = a.send(req).await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    assert!(fault(&r, "computeFault").contains("Version 3.0 is not supported"));

    let mut req = App::req(Method::GET, "/v2.1/servers", Some(&a.demo), Body::empty());
    req.headers_mut()
        .insert("x-openstack-nova-api-version", "two".parse().unwrap());
    let r = a.send(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(fault(&r, "badRequest").contains("is of invalid format"));
}

#[tokio::test]
async fn requests_need_a_valid_token() {
    let a = app().await;
    let r = a
        .send(App::req(Method::GET, "/v2.1/servers", None, Body::empty()))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    fault(&r, "unauthorized");
    let r = a.get("/v2.1/servers", "not-a-token").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let a = app().await;
    let big = json!({"server": {"name": "x".repeat(MAX_BODY)}});
    let r = a.post("/v2.1/servers", &a.demo, big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(fault(&r, "overLimit"), "Request is too large.");
    assert_eq!(r.headers["connection"], "close");
    // Without a Content-Length too (a stream).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; MAX_BODY]), Ok(b"{}".to_vec())];
    let req = App::req(
        Method::POST,
        "/v2.1/servers",
        Some(&a.demo),
        Body::from_stream(futures_util::stream::iter(chunks)),
    );
    let r = a.send(req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn bad_input_gets_a_fault_body() {
    let a = app().await;
    let r = a
        .send(App::req(
            Method::POST,
            "/v2.1/servers",
            Some(&a.demo),
            Body::from("{not json"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(fault(&r, "badRequest"), "Malformed request body");
    assert_eq!(r.headers["content-type"], "application/json; charset=UTF-8");
    let r = a
        .post("/v2.1/servers", &a.demo, json!({"server": {"name": "x"}}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    fault(&r, "badRequest");
    let r = a.get("/v2.1/servers?sort_key=bogus", &a.demo).await;
    assert_eq!(fault(&r, "badRequest"), "Invalid sort_key bogus");
    let r = a.get("/v2.1/servers?limit=x", &a.demo).await;
    assert_eq!(fault(&r, "badRequest"), "limit param must be an integer");
    let r = a.get("/v2.1/servers?name=(", &a.demo).await;
    assert!(fault(&r, "badRequest").starts_with("Invalid regular expression for name"));
    let r = a
        .get(
            &format!("/v2.1/servers?marker={}", uuid::Uuid::new_v4()),
            &a.demo,
        )
        .await;
    assert!(fault(&r, "badRequest").contains("not found"));
    // Errors made below the handlers (axum's 405) get fault bodies too.
    let r = a
        .send(App::req(
            Method::DELETE,
            "/v2.1/servers/detail",
            Some(&a.demo),
            Body::empty(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    fault(&r, "badMethod");
    assert!(r.headers.contains_key("x-openstack-request-id"));
    let r = a.get("/v2.1/no-such-thing", &a.demo).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    fault(&r, "itemNotFound");
    // Nothing was written.
    let all: Vec<Instance> = a
        .state
        .objects
        .list(&admin_ctx(), &nova_objects::ListQuery::new())
        .await
        .unwrap();
    assert!(all.is_empty());
}

#[tokio::test]
async fn actions_in_a_forbidden_state_are_409_and_change_nothing() {
    let a = app().await;
    let stopped = a.instance("s", VmState::Stopped, None, Some("h1")).await;
    let busy = a
        .instance(
            "b",
            VmState::Active,
            Some(TaskState::PoweringOff),
            Some("h1"),
        )
        .await;
    let cases = [
        (
            &stopped,
            json!({"os-stop": null}),
            "stop",
            "vm_state stopped",
        ),
        (
            &stopped,
            json!({"reboot": {"type": "SOFT"}}),
            "reboot",
            "vm_state stopped",
        ),
        (
            &busy,
            json!({"os-stop": null}),
            "stop",
            "task_state powering-off",
        ),
        (
            &busy,
            json!({"reboot": {"type": "HARD"}}),
            "reboot",
            "task_state powering-off",
        ),
        (&busy, json!({"os-start": null}), "start", "vm_state active"),
    ];
    for (inst, body, method, state) in cases {
        let r = a.action(inst, body).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(
            fault(&r, "conflictingRequest"),
            format!(
                "Cannot '{method}' instance {} while it is in {state}",
                inst.uuid()
            )
        );
    }
    assert_eq!(a.reload(&stopped).await.task_state(), &None);
    assert_eq!(a.reload(&busy).await.task_state(), &TaskState::PoweringOff);
    // Unknown actions are 400; another project's server is 404.
    let r = a.action(&busy, json!({"os-frobnicate": null})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let mut other = Instance::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_project_id(Some("other".to_owned()))
        .with_vm_state(Some(VmState::Active.into()))
        .with_locked(false);
    a.state
        .objects
        .create(&admin_ctx(), &mut other)
        .await
        .unwrap();
    let r = a.action(&other, json!({"os-stop": null})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_server_on_no_host_is_deleted_locally() {
    let a = app().await;
    let i = a.instance("gone", VmState::Error, None, None).await;
    let r = a
        .send(App::req(
            Method::DELETE,
            &format!("/v2.1/servers/{}", i.uuid()),
            Some(&a.demo),
            Body::empty(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = a.get(&format!("/v2.1/servers/{}", i.uuid()), &a.demo).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lists_filter_sort_and_page_in_the_database() {
    let a = app().await;
    let mut made = Vec::new();
    for (name, vm, task) in [
        ("alpha", VmState::Active, None),
        ("bravo", VmState::Stopped, None),
        ("charlie", VmState::Active, Some(TaskState::RebootingHard)),
        ("delta", VmState::Active, None),
        ("echo", VmState::Error, None),
    ] {
        made.push(a.instance(name, vm, task, Some("h1")).await);
    }
    let names = |r: &Reply| -> Vec<String> {
        r.body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = a
        .get(
            "/v2.1/servers?status=ACTIVE&sort_key=display_name&sort_dir=asc",
            &a.demo,
        )
        .await;
    assert_eq!(names(&r), ["alpha", "charlie", "delta"]);
    let r = a
        .get("/v2.1/servers/detail?status=HARD_REBOOT", &a.demo)
        .await;
    assert_eq!(names(&r), ["charlie"]);
    assert_eq!(r.body["servers"][0]["status"], "HARD_REBOOT");
    let r = a.get("/v2.1/servers?status=shutoff", &a.demo).await;
    assert_eq!(names(&r), ["bravo"]);
    let r = a.get("/v2.1/servers?status=BANANA", &a.demo).await;
    assert!(names(&r).is_empty());
    let r = a
        .get(
            "/v2.1/servers?name=^[a-c]&sort_key=display_name&sort_dir=desc",
            &a.demo,
        )
        .await;
    assert_eq!(names(&r), ["charlie", "bravo", "alpha"]);
    // Default order: newest first.
    let r = a.get("/v2.1/servers", &a.demo).await;
    assert_eq!(names(&r), ["echo", "delta", "charlie", "bravo", "alpha"]);
    // Pages of two, following the next links.
    let mut got = Vec::new();
    let mut path = "/v2.1/servers?limit=2&sort_key=display_name&sort_dir=asc".to_owned();
    loop {
        let r = a.get(&path, &a.demo).await;
        assert_eq!(r.status, StatusCode::OK);
        got.extend(names(&r));
        match r.body["servers_links"][0]["href"].as_str() {
            Some(next) => {
                assert!(next.contains("limit=2&marker="), "{next}");
                let q = next.split_once('?').unwrap().1;
                path = format!("/v2.1/servers?{q}&sort_key=display_name&sort_dir=asc");
            }
            None => break,
        }
    }
    assert_eq!(got, ["alpha", "bravo", "charlie", "delta", "echo"]);
    // Another project sees none of them; all_tenants is the admins'.
    let r = a.get("/v2.1/servers?all_tenants=1", &a.demo).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = a
        .get("/v2.1/servers?all_tenants=1&project_id=demo", &a.admin)
        .await;
    assert_eq!(names(&r).len(), 5);
    let r = a.get("/v2.1/servers", &a.admin).await;
    assert!(names(&r).is_empty());
}

#[tokio::test]
async fn flavor_and_keypair_changes_are_notified_as_nova_does() {
    use nova_rpc::{NotificationListener, Priority, Transport};
    use nova_service::notifications::{Driver, NotificationConfig, NotificationFormat, Notifier};
    let t: Arc<dyn Transport> = MemoryTransport::new();
    let cfg = NotificationConfig {
        format: NotificationFormat::Both,
        drivers: vec![Driver::MessagingV2],
        ..NotificationConfig::default()
    };
    let mut versioned = NotificationListener::start(
        t.clone(),
        None,
        &["versioned_notifications"],
        &[Priority::Info],
        None,
    )
    .await
    .unwrap();
    let mut legacy =
        NotificationListener::start(t.clone(), None, &["notifications"], &[Priority::Info], None)
            .await
            .unwrap();
    let a = app_with(Notifier::new(cfg, Some(t), None)).await;
    let r = a
        .post(
            "/v2.1/flavors",
            &a.admin,
            json!({"flavor": {"name": "n.tiny", "ram": 64, "vcpus": 1, "disk": 1}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let n = versioned.next().await.unwrap();
    assert_eq!(n.notification.event_type, "flavor.create");
    assert_eq!(n.notification.publisher_id, "nova-api:localhost");
    let d = &n.notification.payload["nova_object.data"];
    assert_eq!(
        (d["name"].as_str(), d["memory_mb"].as_i64()),
        (Some("n.tiny"), Some(64))
    );
    // A refused request sends nothing: the next notification is the key pair's.
    let r = a
        .post(
            "/v2.1/flavors",
            &a.admin,
            json!({"flavor": {"name": "n.tiny", "ram": 64, "vcpus": 1, "disk": 1}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let (public, _) = crate::keypairs::generate("test");
    let r = a
        .post(
            "/v2.1/os-keypairs",
            &a.demo,
            json!({"keypair": {"name": "k1", "public_key": public}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let start = versioned.next().await.unwrap();
    assert_eq!(start.notification.event_type, "keypair.import.start");
    assert!(start.notification.payload["nova_object.data"]["fingerprint"].is_null());
    let end = versioned.next().await.unwrap();
    assert_eq!(end.notification.event_type, "keypair.import.end");
    assert_eq!(
        end.notification.payload["nova_object.data"]["fingerprint"],
        r.body["keypair"]["fingerprint"]
    );
    let l = legacy.next().await.unwrap();
    assert_eq!(l.notification.event_type, "keypair.import.start");
    assert_eq!(l.notification.publisher_id, "api.localhost");
    assert_eq!(l.notification.payload["key_name"], "k1");
}
