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
