//! Access control and hostile input through the routers: the built-in
//! identity (token lifetime, revocation, who may validate, scopes, body
//! limit) and the image API (Glance's default policy and schema).

use super::*;
use crate::ImageStore;

async fn raw(router: &Router, req: Request<Body>) -> Reply {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        headers,
        body,
    }
}

fn password_auth(user: &str, password: &str, scope: Value) -> Value {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": scope}})
}

fn demo_scope() -> Value {
    json!({"project": {"name": "demo", "domain": {"name": "Default"}}})
}

async fn tokens(a: &App, body: Value) -> Reply {
    a.send(App::req(
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Body::from(body.to_string()),
    ))
    .await
}

fn expiry(r: &Reply) -> i64 {
    chrono::DateTime::parse_from_rfc3339(r.body["token"]["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp()
}

#[tokio::test]
async fn a_token_reissued_from_a_token_keeps_its_expiry() {
    let a = app().await;
    let r = tokens(&a, password_auth("demo", "demo", demo_scope())).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let first = r.headers["x-subject-token"].to_str().unwrap().to_owned();
    let expires = expiry(&r);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = tokens(
        &a,
        json!({"auth": {"identity": {"methods": ["token"], "token": {"id": first}},
                        "scope": demo_scope()}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(expiry(&r), expires, "a re-issued token lives no longer");
    let second = r.headers["x-subject-token"].to_str().unwrap().to_owned();
    let (.., exp) = a.state.identity.validate(&second).unwrap();
    assert_eq!(exp, expires);
}

#[test]
fn a_token_of_a_removed_user_or_of_a_lost_role_is_refused() {
    let admin = User::parse("boss:pw:ops:admin").unwrap();
    let demo = User::parse("demo:pw:demo:member").unwrap();
    let before = Identity::new(
        vec![admin.clone(), demo.clone()],
        b"shared",
        AuthStrategy::Keystone,
    );
    let (t_admin, _) = before.issue(&admin);
    let (t_demo, _) = before.issue(&demo);
    assert!(before.validate(&t_admin).is_some());
    // Another API process with the same [identity] secret, after the
    // operator removed demo and made boss a member only.
    let after = Identity::new(
        vec![User::parse("boss:pw:ops:member").unwrap()],
        b"shared",
        AuthStrategy::Keystone,
    );
    assert!(after.validate(&t_demo).is_none(), "removed user");
    assert!(after.validate(&t_admin).is_none(), "lost the admin role");
    let moved = Identity::new(
        vec![User::parse("demo:pw:other:member").unwrap()],
        b"shared",
        AuthStrategy::Keystone,
    );
    assert!(
        moved.validate(&t_demo).is_none(),
        "no longer in the project"
    );
    let mut h = axum::http::HeaderMap::new();
    h.insert("x-auth-token", t_demo.parse().unwrap());
    assert!(after.authenticate(&h, "req-1").is_none());
}

#[tokio::test]
async fn only_the_owner_an_admin_or_a_service_may_validate_a_token() {
    let a = app().await;
    let check = |caller: &str, subject: &str| {
        Request::builder()
            .method(Method::GET)
            .uri("/identity/v3/auth/tokens")
            .header("x-auth-token", caller)
            .header("x-subject-token", subject)
            .body(Body::empty())
            .unwrap()
    };
    let r = a.send(check(&a.demo, &a.admin)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["error"]["code"], json!(403));
    let r = a.send(check(&a.demo, &a.demo)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["token"]["user"]["name"], json!("demo"));
    let r = a.send(check(&a.admin, &a.demo)).await;
    assert_eq!(r.status, StatusCode::OK);
    // A service user (Keystone's service role) validates others' tokens.
    let svc = User::parse("nova:pw:service:service").unwrap();
    let mut id = a.state.identity.clone();
    id.users.push(svc.clone());
    let (t_svc, _) = id.issue(&svc);
    let router = crate::auth::router(id, "http://x/identity");
    let req = Request::builder()
        .method(Method::GET)
        .uri("/v3/auth/tokens")
        .header("x-auth-token", &t_svc)
        .header("x-subject-token", &a.demo)
        .body(Body::empty())
        .unwrap();
    assert_eq!(raw(&router, req).await.status, StatusCode::OK);
    // An invalid subject is still a 404 for its caller.
    let r = a.send(check(&a.demo, "nope.nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn system_and_domain_scopes_are_refused_not_turned_into_project_tokens() {
    let a = app().await;
    for scope in [
        json!({"system": {"all": true}}),
        json!({"domain": {"name": "Default"}}),
        json!({"domain": {"id": "default"}}),
    ] {
        let r = tokens(&a, password_auth("admin", "admin", scope.clone())).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{scope}: {}", r.body);
        assert!(r.headers.get("x-subject-token").is_none());
    }
    let r = tokens(
        &a,
        password_auth("admin", "admin", json!({"project": {"name": "admin"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn identity_bodies_are_bounded_with_nova_413_fault() {
    let a = app().await;
    let big = format!(
        "{{\"auth\": {{\"pad\": \"{}\"}}}}",
        "x".repeat(MAX_BODY + 10)
    );
    let r = a
        .send(App::req(
            Method::POST,
            "/identity/v3/auth/tokens",
            None,
            Body::from(big),
        ))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(fault(&r, "overLimit"), "Request is too large.");
}

struct Images {
    router: Router,
    admin: String,
    member: String,
    reader: String,
    _dir: TempDir,
}

fn images() -> Images {
    let dir = std::env::temp_dir().join(format!("nova-img-test-{}", uuid::Uuid::new_v4()));
    let store = ImageStore::open(&dir).unwrap();
    let users = vec![
        User::parse("admin:admin:admin:admin").unwrap(),
        User::parse("demo:demo:demo:member").unwrap(),
        User::parse("viewer:viewer:demo:reader").unwrap(),
    ];
    let id = Identity::new(users.clone(), b"secret", AuthStrategy::Keystone);
    Images {
        router: crate::image::router(store, id.clone(), "http://x"),
        admin: id.issue(&users[0]).0,
        member: id.issue(&users[1]).0,
        reader: id.issue(&users[2]).0,
        _dir: TempDir(dir),
    }
}

impl Images {
    async fn call(&self, method: Method, path: &str, token: &str, body: Option<String>) -> Reply {
        let ct = if method == Method::PATCH {
            "application/openstack-images-v2.1-json-patch"
        } else if path.ends_with("/file") {
            "application/octet-stream"
        } else {
            "application/json"
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("x-auth-token", token)
            .header("content-type", ct)
            .body(body.map_or_else(Body::empty, Body::from))
            .unwrap();
        raw(&self.router, req).await
    }

    async fn create(&self, token: &str, body: Value) -> Reply {
        self.call(Method::POST, "/v2/images", token, Some(body.to_string()))
            .await
    }

    async fn patch(&self, id: &str, token: &str, ops: Value) -> Reply {
        self.call(
            Method::PATCH,
            &format!("/v2/images/{id}"),
            token,
            Some(ops.to_string()),
        )
        .await
    }

    async fn count(&self) -> usize {
        self.call(Method::GET, "/v2/images", &self.admin, None)
            .await
            .body["images"]
            .as_array()
            .unwrap()
            .len()
    }
}

#[tokio::test]
async fn a_reader_cannot_create_change_upload_or_delete_images() {
    let im = images();
    let r = im.create(&im.reader, json!({"name": "r"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(im.count().await, 0);
    let r = im
        .create(
            &im.member,
            json!({"name": "m", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    // The reader of the same project sees it, and only reads.
    let r = im
        .call(Method::GET, &format!("/v2/images/{id}"), &im.reader, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = im
        .patch(
            &id,
            &im.reader,
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = im
        .call(
            Method::PUT,
            &format!("/v2/images/{id}/file"),
            &im.reader,
            Some("data".into()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = im
        .call(
            Method::DELETE,
            &format!("/v2/images/{id}"),
            &im.reader,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = im
        .call(Method::GET, &format!("/v2/images/{id}"), &im.member, None)
        .await;
    assert_eq!(r.body["name"], json!("m"));
    assert_eq!(r.body["status"], json!("queued"));
    // The member does all of it.
    let r = im
        .call(
            Method::PUT,
            &format!("/v2/images/{id}/file"),
            &im.member,
            Some("data".into()),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = im
        .call(
            Method::DELETE,
            &format!("/v2/images/{id}"),
            &im.member,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn only_admins_publicize_or_community_share_images() {
    let im = images();
    let r = im
        .create(&im.member, json!({"name": "p", "visibility": "private"}))
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    for vis in ["public", "community"] {
        let r = im
            .patch(
                &id,
                &im.member,
                json!([{"op": "replace", "path": "/visibility", "value": vis}]),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{vis}: {}", r.body);
        let r = im
            .create(&im.member, json!({"name": "c", "visibility": vis}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{vis}");
    }
    let r = im
        .call(Method::GET, &format!("/v2/images/{id}"), &im.member, None)
        .await;
    assert_eq!(r.body["visibility"], json!("private"));
    let r = im
        .patch(
            &id,
            &im.member,
            json!([{"op": "replace", "path": "/visibility", "value": "shared"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = im
        .patch(
            &id,
            &im.admin,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["visibility"], json!("public"));
    // Once public, the owner may change other fields.
    let r = im
        .patch(
            &id,
            &im.member,
            json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn image_fields_are_validated_and_bodies_bounded() {
    let im = images();
    for bad in [
        json!({"name": 5}),
        json!({"name": "x".repeat(256)}),
        json!({"min_ram": -1}),
        json!({"min_disk": "big"}),
        json!({"protected": "yes"}),
        json!({"disk_format": "exe"}),
        json!({"tags": "a"}),
        json!({"custom": 1}),
        json!({"custom": {"deep": true}}),
        json!({"bad\u{0}key": "v"}),
        json!({"visibility": "everyone"}),
    ] {
        let r = im.create(&im.member, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    assert_eq!(im.count().await, 0, "nothing was written");
    let huge = json!({"name": "h", "blob": "x".repeat(3 << 20)});
    let r = im.create(&im.member, huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(im.count().await, 0);
    let r = im
        .create(&im.member, json!({"name": "ok", "os_distro": "debian"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = im
        .patch(
            &id,
            &im.member,
            json!([{"op": "add", "path": "/min_ram", "value": "lots"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = im
        .patch(
            &id,
            &im.member,
            json!([{"op": "add", "path": "/os_type", "value": ["linux"]}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = im
        .call(Method::GET, &format!("/v2/images/{id}"), &im.member, None)
        .await;
    assert_eq!(r.body["min_ram"], json!(0));
    assert!(r.body.get("os_type").is_none());
}

#[tokio::test]
async fn microversion_headers_are_parsed_as_nova_does() {
    let a = app().await;
    for bad in [
        "compute 2.01",
        "compute 02.1",
        "compute 2.",
        "compute .1",
        "compute 2.1.1",
    ] {
        let mut req = App::req(Method::GET, "/v2.1/flavors", Some(&a.demo), Body::empty());
        req.headers_mut()
            .insert("openstack-api-version", bad.parse().unwrap());
        let r = a.send(req).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        fault(&r, "badRequest");
    }
    // Not ASCII: refused, not ignored (it would run at 2.1).
    let mut req = App::req(Method::GET, "/v2.1/flavors", Some(&a.demo), Body::empty());
    req.headers_mut().insert(
        "openstack-api-version",
        axum::http::HeaderValue::from_bytes("compute \u{bd}.1".as_bytes()).unwrap(),
    );
    let r = a.send(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let mut req = App::req(Method::GET, "/v2.1/flavors", Some(&a.demo), Body::empty());
    req.headers_mut()
        .insert("openstack-api-version", "compute 2.99999".parse().unwrap());
    let r = a.send(req).await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.body);
    // nova has no name for 406: computeFault.
    fault(&r, "computeFault");
    let mut req = App::req(Method::GET, "/v2.1/flavors", Some(&a.demo), Body::empty());
    req.headers_mut()
        .insert("openstack-api-version", "compute 2.10".parse().unwrap());
    assert_eq!(a.send(req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_method_is_a_bad_method_fault() {
    let a = app().await;
    let r = a
        .send(App::req(
            Method::PATCH,
            "/v2.1/servers",
            Some(&a.demo),
            Body::empty(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.body);
    assert!(!fault(&r, "badMethod").is_empty());
}

#[tokio::test]
async fn a_truncated_body_is_a_bad_request_not_too_large() {
    let a = app().await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(b"{\"keypair\": {\"na".to_vec()),
        Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "client went away",
        )),
    ];
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let r = a
        .send(App::req(
            Method::POST,
            "/v2.1/os-keypairs",
            Some(&a.demo),
            body,
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    fault(&r, "badRequest");
}

impl App {
    pub(super) async fn call_at(
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

    async fn flavor_count(&self) -> usize {
        self.call_at(
            Method::GET,
            "/v2.1/flavors?is_public=None",
            &self.admin,
            "2.1",
            None,
        )
        .await
        .body["flavors"]
            .as_array()
            .unwrap()
            .len()
    }
}

fn flavor(extra: Value) -> Value {
    let mut f = json!({"name": "f", "ram": 512, "vcpus": 1, "disk": 1});
    for (k, v) in extra.as_object().unwrap() {
        f[k] = v.clone();
    }
    json!({"flavor": f})
}

#[tokio::test]
async fn bad_flavors_are_refused_and_nothing_is_written() {
    let a = app().await;
    let before = a.flavor_count().await;
    for extra in [
        json!({"ram": "lots"}),
        json!({"vcpus": "two"}),
        json!({"ram": 2_147_483_648_i64}),
        json!({"ram": "2147483648"}),
        json!({"vcpus": 1e20}),
        json!({"ram": "99999999999999999999999"}),
        json!({"disk": -1}),
        json!({"rxtx_factor": "NaN"}),
        json!({"rxtx_factor": "inf"}),
        json!({"rxtx_factor": -1.0}),
        json!({"rxtx_factor": 0}),
        json!({"name": " lead"}),
        json!({"name": "trail "}),
        json!({"name": "nul\u{0}inside"}),
        json!({"name": "bell\u{7}"}),
        json!({"name": "   "}),
        json!({"description": 1}),
    ] {
        let r = a
            .call_at(
                Method::POST,
                "/v2.1/flavors",
                &a.admin,
                "2.55",
                Some(flavor(extra.clone())),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra}: {}", r.body);
        fault(&r, "badRequest");
    }
    assert_eq!(a.flavor_count().await, before, "nothing was written");
    // Numbers as numeric strings are nova's too.
    let r = a
        .call_at(
            Method::POST,
            "/v2.1/flavors",
            &a.admin,
            "2.55",
            Some(flavor(json!({"name": "ok", "id": "ok", "ram": "2147483647", "vcpus": "2", "rxtx_factor": "1.5", "description": "d", "os-flavor-access:is_public": false}))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["flavor"]["ram"], json!(2_147_483_647_i64));
    assert_eq!(r.body["flavor"]["rxtx_factor"], json!(1.5));

    // The description is not wiped by a number.
    let r = a
        .call_at(
            Method::PUT,
            "/v2.1/flavors/ok",
            &a.admin,
            "2.55",
            Some(json!({"flavor": {"description": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = a
        .call_at(Method::GET, "/v2.1/flavors/ok", &a.admin, "2.55", None)
        .await;
    assert_eq!(r.body["flavor"]["description"], json!("d"));
    // Before 2.55 the update does not exist: 404 (as nova's dispatch), for
    // an admin and before the policy check for a member.
    for who in [&a.admin, &a.demo] {
        let r = a
            .call_at(
                Method::PUT,
                "/v2.1/flavors/ok",
                who,
                "2.54",
                Some(json!({"flavor": {"description": "x"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        assert!(r.body["itemNotFound"].is_object(), "{}", r.body);
    }

    // Flavor access tenants: 1 to 255 characters.
    for t in [String::new(), "p".repeat(300)] {
        let r = a
            .call_at(
                Method::POST,
                "/v2.1/flavors/ok/action",
                &a.admin,
                "2.55",
                Some(json!({"addTenantAccess": {"tenant": t}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }
    let r = a
        .call_at(
            Method::GET,
            "/v2.1/flavors/ok/os-flavor-access",
            &a.admin,
            "2.55",
            None,
        )
        .await;
    assert_eq!(r.body["flavor_access"], json!([]));
}

#[tokio::test]
async fn extra_specs_are_bounded_and_validated_from_2_86() {
    let a = app().await;
    let r = a
        .call_at(
            Method::POST,
            "/v2.1/flavors",
            &a.admin,
            "2.55",
            Some(flavor(json!({"name": "es", "id": "es"}))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let specs = |v: Value| Some(json!({"extra_specs": v}));
    let path = "/v2.1/flavors/es/os-extra_specs";
    // Nova's registry from 2.86.
    for bad in [
        json!({"hw:cpu_policy": "fastest"}),
        json!({"hw:numa_nodes": "zero"}),
        json!({"hw:not_a_thing": "1"}),
        json!({"trait:HW_CPU_X86_AVX2": "maybe"}),
    ] {
        let r = a
            .call_at(Method::POST, path, &a.admin, "2.86", specs(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert!(fault(&r, "badRequest").starts_with("Validation failed;"));
        // Before 2.86 nova stored them as they came.
        let r = a
            .call_at(Method::POST, path, &a.admin, "2.85", specs(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{bad}");
    }
    // Keys and values are bounded at every version, on PUT too.
    let long = "v".repeat(256);
    let r = a
        .call_at(
            Method::POST,
            path,
            &a.admin,
            "2.1",
            specs(json!({"k": long})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .call_at(
            Method::PUT,
            &format!("{path}/k"),
            &a.admin,
            "2.1",
            Some(json!({"k": long})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = a
        .call_at(
            Method::PUT,
            &format!("{path}/hw:cpu_policy"),
            &a.admin,
            "2.86",
            Some(json!({"hw:cpu_policy": "wrong"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .call_at(
            Method::PUT,
            &format!("{path}/hw:cpu_policy"),
            &a.admin,
            "2.86",
            Some(json!({"hw:cpu_policy": "dedicated"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = a.call_at(Method::GET, path, &a.admin, "2.86", None).await;
    assert_eq!(r.body["extra_specs"]["hw:cpu_policy"], json!("dedicated"));
    assert!(r.body["extra_specs"].get("k").is_none());
}

#[tokio::test]
async fn names_with_control_characters_or_only_whitespace_are_refused() {
    let a = app().await;
    let i = a.instance("named", VmState::Active, None, Some("h1")).await;
    for name in ["   ", "bad\u{0}name", "tab\u{1}x", "\u{7f}"] {
        let r = a
            .call_at(
                Method::PUT,
                &format!("/v2.1/servers/{}", i.uuid()),
                &a.demo,
                "2.1",
                Some(json!({"server": {"name": name}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name:?}: {}", r.body);
        let r = a
            .call_at(
                Method::POST,
                "/v2.1/servers",
                &a.demo,
                "2.1",
                Some(json!({"server": {"name": name, "flavorRef": "1", "imageRef": "x"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name:?}: {}", r.body);
        let r = a
            .call_at(
                Method::POST,
                "/v2.1/os-keypairs",
                &a.demo,
                "2.1",
                Some(json!({"keypair": {"name": name}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name:?}: {}", r.body);
    }
    assert_eq!(a.reload(&i).await.display_name().as_deref(), Some("named"));
    let r = a
        .call_at(Method::GET, "/v2.1/os-keypairs", &a.demo, "2.1", None)
        .await;
    assert_eq!(r.body["keypairs"], json!([]));
    // Inner spaces and any printable character stay allowed.
    let r = a
        .call_at(
            Method::PUT,
            &format!("/v2.1/servers/{}", i.uuid()),
            &a.demo,
            "2.1",
            Some(json!({"server": {"name": "a b ü"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn the_name_filter_is_bounded() {
    let a = app().await;
    a.instance("web-1", VmState::Active, None, Some("h1")).await;
    let r = a
        .call_at(
            Method::GET,
            "/v2.1/servers?name=%5Eweb",
            &a.demo,
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["servers"].as_array().unwrap().len(), 1);
    for bad in ["%5Cw%7B1000%7D%7B1000%7D", "(", &"a".repeat(2000)] {
        let r = a
            .call_at(
                Method::GET,
                &format!("/v2.1/servers?name={bad}"),
                &a.demo,
                "2.1",
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let t = std::time::Instant::now();
    let r = a
        .call_at(
            Method::GET,
            "/v2.1/servers?name=%5Cw%7B300%7D",
            &a.demo,
            "2.1",
            None,
        )
        .await;
    assert!(
        r.status == StatusCode::BAD_REQUEST || t.elapsed() < std::time::Duration::from_millis(200)
    );
}

#[tokio::test]
async fn a_long_disable_reason_is_refused() {
    let a = app().await;
    let mut svc = nova_objects::Service::new()
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
    let body = |reason: String| {
        Some(json!({"host": "h1", "binary": "nova-compute", "disabled_reason": reason}))
    };
    let path = "/v2.1/os-services/disable-log-reason";
    let r = a
        .call_at(Method::PUT, path, &a.admin, "2.1", body("r".repeat(300)))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let s = a
        .state
        .objects
        .get_by_uuid::<nova_objects::Service>(&admin_ctx(), svc.uuid())
        .await
        .unwrap();
    assert!(!*s.disabled(), "nothing was written");
    let r = a
        .call_at(
            Method::PUT,
            path,
            &a.admin,
            "2.1",
            body("maintenance".into()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A tag filter naming thousands of tags (one query condition each)
/// overflowed the stack building the query and took the process down:
/// at most nova's 50 tags per server, a 400 beyond.
#[tokio::test]
async fn a_tag_filter_of_thousands_of_tags_is_refused() {
    let a = app().await;
    for key in ["tags", "tags-any", "not-tags", "not-tags-any"] {
        for (n, want) in [
            (50, StatusCode::OK),
            (51, StatusCode::BAD_REQUEST),
            (5000, StatusCode::BAD_REQUEST),
        ] {
            let tags = vec!["t"; n].join(",");
            let mut req = App::req(
                Method::GET,
                &format!("/v2.1/servers?{key}={tags}"),
                Some(&a.admin),
                Body::empty(),
            );
            req.headers_mut()
                .insert("openstack-api-version", "compute 2.26".parse().unwrap());
            let r = a.send(req).await;
            assert_eq!(r.status, want, "{key} with {n} tags: {}", r.body);
            if want == StatusCode::BAD_REQUEST {
                assert!(
                    r.body["badRequest"]["message"]
                        .as_str()
                        .unwrap()
                        .contains(key)
                );
            }
        }
    }
}

/// The image-metadata proxy (below 2.39) takes nova's
/// `parameter_types.metadata`: keys of `[a-zA-Z0-9-_:. ]`, string values
/// of at most 255 characters; anything else is a 400 and nothing is
/// stored (a control-character key was stored).
#[tokio::test]
async fn image_metadata_through_the_proxy_is_validated() {
    let a = app().await;
    let admin = crate::auth::Ctx {
        user_id: "admin".into(),
        project_id: "admin".into(),
        roles: vec!["admin".into()],
        ..Default::default()
    };
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!("img"));
    body.insert("visibility".into(), json!("public"));
    let img = a.state.images.create(&admin, &body).unwrap();
    let id = img["id"].as_str().unwrap().to_owned();
    let send = |method: Method, path: String, body: Value| {
        let mut req = App::req(method, &path, Some(&a.admin), Body::from(body.to_string()));
        req.headers_mut()
            .insert("openstack-api-version", "compute 2.35".parse().unwrap());
        a.send(req)
    };
    let all = format!("/v2.1/images/{id}/metadata");
    for bad in [
        json!({"metadata": {"\u{0}": "x"}}),
        json!({"metadata": {"k": 1}}),
        json!({"metadata": {"k": "v".repeat(256)}}),
        json!({"metadata": {"k": "v"}, "extra": 1}),
    ] {
        for m in [Method::POST, Method::PUT] {
            let r = send(m.clone(), all.clone(), bad.clone()).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{m} {bad}: {}", r.body);
        }
    }
    let one = format!("/v2.1/images/{id}/metadata/k");
    let r = send(Method::PUT, one.clone(), json!({"meta": {"k": 1}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = send(Method::GET, all.clone(), Value::Null).await;
    assert_eq!(r.body["metadata"], json!({}), "nothing stored");
    let r = send(Method::POST, all.clone(), json!({"metadata": {"k": "v"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(Method::PUT, one, json!({"meta": {"k": "w"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["meta"], json!({"k": "w"}));
}
