//! The OpenAPI document (`GET /v2.1/openapi.json`) against real answers of
//! nova-all with its built-in network service: the routes the API's own
//! router tests cannot reach without a network service or a compute (the
//! server's ports and addresses, its diagnostics, the instance action
//! events, the hypervisor and service views, nova's security group,
//! floating IP and network proxies) answer with a success whose body is
//! valid against the document of the request's microversion.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Reply};
use crate::network_boot::private_net;

/// Compiles `schema`, its `$ref`s resolved against the document's
/// components.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema {schema}: {e}"))
}

struct Doc<'a> {
    c: &'a Cluster,
    mv: &'a str,
    doc: Value,
}

impl Doc<'_> {
    /// Whether the document has `template` (nova's proxies end at 2.35).
    fn has(&self, template: &str) -> bool {
        self.doc["paths"][format!("/v2.1{template}")].is_object()
    }

    /// `method template` (its `{…}`s replaced by `args`) as `user`, when
    /// the document has the route: a documented 2xx whose body conforms.
    async fn check(
        &self,
        method: Method,
        template: &str,
        args: &[(&str, &str)],
        user: &str,
        body: Option<Value>,
    ) -> Option<Reply> {
        let m = method.as_str().to_lowercase();
        let template = format!("/v2.1{template}");
        let op = self.doc["paths"][&template].get(&m)?;
        let mut path = template.clone();
        for (k, v) in args {
            path = path.replace(k, v);
        }
        let r = self.c.call(method, &path, user, self.mv, body).await;
        let code = r.status.to_string();
        assert!(
            code.starts_with('2'),
            "{} {m} {path}: {code} {}",
            self.mv,
            r.body
        );
        let resp = op["responses"]
            .get(&code)
            .unwrap_or_else(|| panic!("{} {m} {path}: {code} is not documented", self.mv));
        if let Some(schema) = resp["content"]["application/json"].get("schema") {
            if let Err(e) = validator(&self.doc, schema).validate(&r.body) {
                panic!(
                    "{} {m} {path} ({code}): {e} at {}\n{}",
                    self.mv,
                    e.instance_path(),
                    r.body
                );
            }
        } else {
            assert!(
                r.body.is_null(),
                "{} {m} {path}: undocumented body",
                self.mv
            );
        }
        Some(r)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_backed_and_compute_backed_routes_answer_as_documented() {
    let c = Cluster::start(
        1,
        &[
            ("network", "enabled", "true"),
            ("network", "bind_port", "0"),
            ("network", "external_network_name", "public"),
            ("neutron", "default_floating_pool", "public"),
        ],
    )
    .await;
    let net = private_net(&c).await;
    let r = c
        .call(
            Method::POST,
            "/v2.1/servers",
            "demo",
            "2.1",
            Some(json!({"server": {"name": "doc", "flavorRef": "1",
                "imageRef": nova_all::FAKE_IMAGE_ID}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    c.wait_status("demo", &id, "ACTIVE").await;
    let mut checked = 0;
    for mv in ["2.1", "2.53", "2.100"] {
        let r = c
            .call(
                Method::GET,
                &format!("/v2.1/openapi.json?microversion={mv}"),
                "demo",
                mv,
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        let d = Doc {
            c: &c,
            mv,
            doc: r.body,
        };
        let server = [("{id}", id.as_str())];
        // The server's addresses and ports.
        let r = d
            .check(Method::GET, "/servers/{id}/ips", &server, "demo", None)
            .await
            .unwrap();
        let label = r.body["addresses"]
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .expect("an address");
        d.check(
            Method::GET,
            "/servers/{id}/ips/{network}",
            &[("{id}", &id), ("{network}", &label)],
            "demo",
            None,
        )
        .await;
        let r = d
            .check(
                Method::GET,
                "/servers/{id}/os-interface",
                &server,
                "demo",
                None,
            )
            .await
            .unwrap();
        let port = r.body["interfaceAttachments"][0]["port_id"]
            .as_str()
            .unwrap()
            .to_owned();
        d.check(
            Method::GET,
            "/servers/{id}/os-interface/{port_id}",
            &[("{id}", &id), ("{port_id}", &port)],
            "demo",
            None,
        )
        .await;
        d.check(
            Method::GET,
            "/servers/{id}/os-security-groups",
            &server,
            "demo",
            None,
        )
        .await;
        // What the compute and the services report.
        d.check(
            Method::GET,
            "/servers/{id}/diagnostics",
            &server,
            "admin",
            None,
        )
        .await;
        let r = d
            .check(
                Method::GET,
                "/servers/{id}/os-instance-actions",
                &server,
                "admin",
                None,
            )
            .await
            .unwrap();
        let req = r.body["instanceActions"][0]["request_id"]
            .as_str()
            .unwrap()
            .to_owned();
        for user in ["admin", "demo"] {
            d.check(
                Method::GET,
                "/servers/{id}/os-instance-actions/{request_id}",
                &[("{id}", &id), ("{request_id}", &req)],
                user,
                None,
            )
            .await;
        }
        let r = d
            .check(Method::GET, "/os-hypervisors/detail", &[], "admin", None)
            .await
            .unwrap();
        let node = match &r.body["hypervisors"][0]["id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let host = r.body["hypervisors"][0]["service"]["host"]
            .as_str()
            .unwrap()
            .to_owned();
        for path in ["/os-hypervisors/{id}", "/os-hypervisors/{id}/uptime"] {
            d.check(Method::GET, path, &[("{id}", &node)], "admin", None)
                .await;
        }
        for path in [
            "/os-hypervisors",
            "/os-hypervisors/statistics",
            "/os-services",
            "/os-availability-zone",
            "/os-availability-zone/detail",
            "/os-hosts",
            "/os-simple-tenant-usage",
        ] {
            d.check(Method::GET, path, &[], "admin", None).await;
        }
        d.check(
            Method::GET,
            "/os-hosts/{host}",
            &[("{host}", &host)],
            "admin",
            None,
        )
        .await;
        d.check(
            Method::GET,
            "/os-simple-tenant-usage/{project}",
            &[("{project}", "demo")],
            "demo",
            None,
        )
        .await;
        // nova's security group, floating IP and network proxies.
        if !d.has("/os-security-groups") {
            assert!(!d.has("/os-floating-ips") && !d.has("/os-networks"), "{mv}");
            checked += 1;
            continue;
        }
        let r = d
            .check(
                Method::POST,
                "/os-security-groups",
                &[],
                "demo",
                Some(json!({"security_group": {"name": format!("web-{mv}"), "description": "d"}})),
            )
            .await
            .unwrap();
        let sg = r.body["security_group"]["id"].as_str().unwrap().to_owned();
        let group = [("{id}", sg.as_str())];
        let r = d
            .check(
                Method::POST,
                "/os-security-group-rules",
                &[],
                "demo",
                Some(
                    json!({"security_group_rule": {"parent_group_id": sg, "ip_protocol": "tcp",
                    "from_port": 80, "to_port": 80, "cidr": "10.0.0.0/8"}}),
                ),
            )
            .await
            .unwrap();
        let rule = r.body["security_group_rule"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        d.check(
            Method::POST,
            "/os-security-group-rules",
            &[],
            "demo",
            Some(
                json!({"security_group_rule": {"parent_group_id": sg, "ip_protocol": "icmp",
                "from_port": -1, "to_port": -1, "group_id": sg}}),
            ),
        )
        .await;
        d.check(Method::GET, "/os-security-groups", &[], "demo", None)
            .await;
        d.check(
            Method::GET,
            "/os-security-groups/{id}",
            &group,
            "demo",
            None,
        )
        .await;
        d.check(
            Method::PUT,
            "/os-security-groups/{id}",
            &group,
            "demo",
            Some(json!({"security_group": {"name": format!("www-{mv}"), "description": "e"}})),
        )
        .await;
        d.check(
            Method::DELETE,
            "/os-security-group-rules/{id}",
            &[("{id}", &rule)],
            "demo",
            None,
        )
        .await;
        d.check(
            Method::DELETE,
            "/os-security-groups/{id}",
            &group,
            "demo",
            None,
        )
        .await;
        // Floating IPs and networks.
        d.check(Method::GET, "/os-floating-ip-pools", &[], "demo", None)
            .await;
        let r = d
            .check(
                Method::POST,
                "/os-floating-ips",
                &[],
                "demo",
                Some(json!({"pool": "public"})),
            )
            .await
            .unwrap();
        let fip = r.body["floating_ip"]["id"].as_str().unwrap().to_owned();
        let fip = [("{id}", fip.as_str())];
        d.check(Method::GET, "/os-floating-ips", &[], "demo", None)
            .await;
        d.check(Method::GET, "/os-floating-ips/{id}", &fip, "demo", None)
            .await;
        d.check(Method::DELETE, "/os-floating-ips/{id}", &fip, "demo", None)
            .await;
        let network = [("{id}", net.as_str())];
        for user in ["demo", "admin"] {
            d.check(Method::GET, "/os-tenant-networks", &[], user, None)
                .await;
            d.check(
                Method::GET,
                "/os-tenant-networks/{id}",
                &network,
                user,
                None,
            )
            .await;
        }
        d.check(Method::GET, "/os-networks", &[], "admin", None)
            .await;
        d.check(Method::GET, "/os-networks/{id}", &network, "admin", None)
            .await;
        checked += 1;
    }
    assert_eq!(checked, 3);
}

/// A server's actions at one microversion, each checked against that
/// microversion's document: the body is one of the documented request
/// bodies (the one titled with the action), and the answer has the status
/// and body the document gives that action.
struct Actions<'a> {
    c: &'a Cluster,
    mv: &'a str,
    doc: Value,
    id: String,
    done: std::collections::BTreeSet<String>,
}

impl Actions<'_> {
    fn op(&self) -> &Value {
        &self.doc["paths"]["/v2.1/servers/{id}/action"]["post"]
    }

    /// Whether the document has action `name`.
    fn has(&self, name: &str) -> bool {
        self.op()["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["title"] == name)
    }

    /// Sends `body` as admin; the reply is returned whatever it is, once
    /// the document allowed the body.
    async fn send(&self, body: &Value) -> (String, Reply) {
        let name = body.as_object().unwrap().keys().next().unwrap().clone();
        let req = &self.op()["requestBody"]["content"]["application/json"]["schema"];
        if let Err(e) = validator(&self.doc, req).validate(body) {
            panic!("{} {name}: the document refuses {body}: {e}", self.mv);
        }
        let branch = req["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["title"] == name.as_str())
            .unwrap_or_else(|| panic!("{} {name}: no request body titled so", self.mv));
        assert!(validator(&self.doc, branch).is_valid(body), "{name}");
        let path = format!("/v2.1/servers/{}/action", self.id);
        let r = self
            .c
            .call(Method::POST, &path, "admin", self.mv, Some(body.clone()))
            .await;
        (name, r)
    }

    /// Sends `body`: a success documented for its action.
    async fn run(&mut self, body: Value) -> Reply {
        let (name, r) = self.send(&body).await;
        let code = r.status.to_string();
        assert!(
            code.starts_with('2'),
            "{} {name}: {code} {}",
            self.mv,
            r.body
        );
        self.conforms(&name, &r);
        self.done.insert(name);
        r
    }

    /// `r` (a 2xx of action `name`) is what the document gives `name`.
    fn conforms(&self, name: &str, r: &Reply) {
        let code = r.status.to_string();
        let documented = &self.op()["responses"][&code];
        let answer = documented["x-openstack-actions"]
            .get(name)
            .unwrap_or_else(|| panic!("{} {name}: {code} is not its documented answer", self.mv));
        if answer.is_null() {
            assert!(
                r.body.is_null(),
                "{} {name}: an undocumented body {}",
                self.mv,
                r.body
            );
        } else if let Err(e) = validator(&self.doc, answer).validate(&r.body) {
            panic!("{} {name} ({code}): {e}\n{}", self.mv, r.body);
        }
        if let Some(s) = documented["content"]["application/json"].get("schema") {
            assert!(validator(&self.doc, s).is_valid(&r.body), "{name}");
        }
    }

    async fn wait(&self, status: &str) -> Value {
        self.c.wait_status("admin", &self.id, status).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_action_answers_as_documented() {
    let c = Cluster::start(
        2,
        &[
            ("network", "enabled", "true"),
            ("network", "bind_port", "0"),
            ("network", "external_network_name", "public"),
            ("neutron", "default_floating_pool", "public"),
            ("DEFAULT", "shelved_offload_time", "-1"),
            ("DEFAULT", "reclaim_instance_interval", "3600"),
            ("spice", "enabled", "true"),
            ("serial_console", "enabled", "true"),
        ],
    )
    .await;
    let net = private_net(&c).await;
    for mv in ["2.1", "2.100"] {
        let r = c
            .call(
                Method::POST,
                "/v2.1/servers",
                "admin",
                "2.1",
                Some(
                    json!({"server": {"name": format!("acts-{mv}"), "flavorRef": "1",
                    "imageRef": nova_all::FAKE_IMAGE_ID, "networks": [{"uuid": net}]}}),
                ),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.body["server"]["id"].as_str().unwrap().to_owned();
        c.wait_status("admin", &id, "ACTIVE").await;
        let doc = c
            .call(
                Method::GET,
                &format!("/v2.1/openapi.json?microversion={mv}"),
                "admin",
                mv,
                None,
            )
            .await
            .body;
        let mut a = Actions {
            c: &c,
            mv,
            doc,
            id: id.clone(),
            done: Default::default(),
        };
        let v = |minor: u16| a.mv.split('.').nth(1).unwrap().parse::<u16>().unwrap() >= minor;
        let (v14, v17, v25, v95) = (v(14), v(17), v(25), v(95));
        a.run(json!({"lock": null})).await;
        a.run(json!({"unlock": null})).await;
        for (act, status, back) in [
            ("pause", "PAUSED", "unpause"),
            ("suspend", "SUSPENDED", "resume"),
            ("os-stop", "SHUTOFF", "os-start"),
        ] {
            a.run(json!({act: null})).await;
            a.wait(status).await;
            a.run(json!({back: null})).await;
            a.wait("ACTIVE").await;
        }
        a.run(json!({"reboot": {"type": "SOFT"}})).await;
        a.wait("ACTIVE").await;
        a.run(json!({"os-getConsoleOutput": {"length": 5}})).await;
        a.run(json!({"changePassword": {"adminPass": "n3w-pass"}}))
            .await;
        a.run(json!({"injectNetworkInfo": null})).await;
        if v17 {
            a.run(json!({"trigger_crash_dump": null})).await;
        }
        a.run(json!({"os-resetState": {"state": "active"}})).await;
        a.run(json!({"rescue": {}})).await;
        a.wait("RESCUE").await;
        a.run(json!({"unrescue": null})).await;
        a.wait("ACTIVE").await;
        a.run(json!({"createImage": {"name": format!("snap-{mv}")}}))
            .await;
        a.wait("ACTIVE").await;
        a.run(json!({"createBackup": {"name": format!("backup-{mv}"),
            "backup_type": "daily", "rotation": 1}}))
            .await;
        a.wait("ACTIVE").await;
        a.run(json!({"rebuild": {"imageRef": nova_all::FAKE_IMAGE_ID}}))
            .await;
        a.wait("ACTIVE").await;
        a.run(json!({"addSecurityGroup": {"name": "default"}}))
            .await;
        a.run(json!({"removeSecurityGroup": {"name": "default"}}))
            .await;
        if a.has("addFloatingIp") {
            let r = c
                .call(
                    Method::POST,
                    "/v2.1/os-floating-ips",
                    "admin",
                    "2.1",
                    Some(json!({"pool": "public"})),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            let address = r.body["floating_ip"]["ip"].as_str().unwrap().to_owned();
            a.run(json!({"addFloatingIp": {"address": address}})).await;
            a.run(json!({"removeFloatingIp": {"address": address}}))
                .await;
        }
        if a.has("addFixedIp") {
            // The server's network, an address more, then that one released.
            let ports = crate::network_boot::ports_of(&c, &a.id).await;
            let net = ports[0]["network_id"].as_str().unwrap().to_owned();
            let count = |p: &[Value]| p[0]["fixed_ips"].as_array().map_or(0, Vec::len);
            let before = count(&ports);
            a.run(json!({"addFixedIp": {"networkId": net}})).await;
            let mut ports = crate::network_boot::ports_of(&c, &a.id).await;
            for _ in 0..200 {
                if count(&ports) > before {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                ports = crate::network_boot::ports_of(&c, &a.id).await;
            }
            let added = ports[0]["fixed_ips"].as_array().unwrap().last().unwrap()["ip_address"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(count(&ports) > before, "{mv}: no address added: {ports:?}");
            a.run(json!({"removeFixedIp": {"address": added}})).await;
        }
        for console in [
            "os-getVNCConsole",
            "os-getSPICEConsole",
            "os-getSerialConsole",
        ] {
            if a.has(console) {
                let ty = match console {
                    "os-getVNCConsole" => "novnc",
                    "os-getSPICEConsole" => "spice-html5",
                    _ => "serial",
                };
                let r = a.run(json!({console: {"type": ty}})).await;
                assert_eq!(r.body["console"]["type"], ty);
            }
        }
        if a.has("os-getRDPConsole") {
            let (name, r) = a
                .send(&json!({"os-getRDPConsole": {"type": "rdp-html5"}}))
                .await;
            assert_eq!(r.status, 400, "nova 34 has no RDP console: {}", r.body);
            a.done.insert(name);
        }
        // Moves between the two computes.
        a.run(json!({"resize": {"flavorRef": "2"}})).await;
        a.wait("VERIFY_RESIZE").await;
        let r = a.run(json!({"confirmResize": null})).await;
        assert_eq!(r.status, 204);
        a.wait("ACTIVE").await;
        a.run(json!({"migrate": null})).await;
        a.wait("VERIFY_RESIZE").await;
        a.run(json!({"revertResize": null})).await;
        a.wait("ACTIVE").await;
        let live = if v25 {
            json!({"os-migrateLive": {"host": null, "block_migration": "auto"}})
        } else {
            json!({"os-migrateLive": {"host": null, "block_migration": false,
                                      "disk_over_commit": false}})
        };
        a.run(live).await;
        a.wait("ACTIVE").await;
        // Shelving.
        a.run(json!({"shelve": null})).await;
        a.wait("SHELVED").await;
        a.run(json!({"shelveOffload": null})).await;
        a.wait("SHELVED_OFFLOADED").await;
        a.run(json!({"unshelve": null})).await;
        let server = a.wait("ACTIVE").await;
        // Evacuation off a compute forced down: a password before 2.14.
        let host = server["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned();
        crate::evacuate::force_down(&c, &host, true).await;
        let body = if v14 {
            json!({"evacuate": {}})
        } else {
            json!({"evacuate": {"onSharedStorage": false}})
        };
        let r = a.run(body).await;
        assert_eq!(r.body["adminPass"].is_string(), !v14, "{}", r.body);
        if v95 {
            // From 2.95 an evacuated server stays stopped.
            a.wait("SHUTOFF").await;
            a.run(json!({"os-start": null})).await;
        }
        a.wait("ACTIVE").await;
        crate::evacuate::force_down(&c, &host, false).await;
        // Soft delete: restore, then force the delete.
        let path = format!("/v2.1/servers/{id}");
        assert_eq!(c.delete(&path, "admin").await.status, 204);
        a.wait("SOFT_DELETED").await;
        a.run(json!({"restore": null})).await;
        a.wait("ACTIVE").await;
        assert_eq!(c.delete(&path, "admin").await.status, 204);
        a.wait("SOFT_DELETED").await;
        a.run(json!({"forceDelete": null})).await;
        c.wait_gone("admin", &id).await;
        // Every action of this microversion's document was sent.
        let documented: std::collections::BTreeSet<String> =
            a.op()["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["title"].as_str().unwrap().to_owned())
                .collect();
        assert_eq!(a.done, documented, "{mv}: the actions sent");
    }
}
