//! Security groups and rules: stored and returned as Neutron does (a
//! `default` group per project, made when the project first needs it).
//! Not enforced on the datapath.

use serde_json::{Map, Value, json};

use crate::error::{NResult, NeutronError};
use crate::service::{
    Caller, NetworkService, PORT, SECURITY_GROUP, SECURITY_GROUP_RULE, body_of, only, opt_str,
    owner_of, standard, touch,
};
use crate::store::Rows;

fn rule(
    group: &str,
    project: &str,
    direction: &str,
    ethertype: &str,
    remote_group: Option<&str>,
) -> Value {
    let mut r = standard(&uuid::Uuid::new_v4().to_string(), project, "");
    r.insert("security_group_id".into(), json!(group));
    r.insert("direction".into(), json!(direction));
    r.insert("ethertype".into(), json!(ethertype));
    r.insert("protocol".into(), Value::Null);
    r.insert("port_range_min".into(), Value::Null);
    r.insert("port_range_max".into(), Value::Null);
    r.insert("remote_ip_prefix".into(), Value::Null);
    r.insert("remote_group_id".into(), json!(remote_group));
    r.insert("remote_address_group_id".into(), Value::Null);
    r.insert("normalized_cidr".into(), Value::Null);
    r.insert(
        "belongs_to_default_sg".into(),
        json!(remote_group.is_some()),
    );
    Value::Object(r)
}

/// A group with its rules embedded, as Neutron shows it.
fn with_rules(rows: &Rows, g: &Value) -> Value {
    let mut g = g.clone();
    let id = g["id"].as_str().unwrap_or_default().to_owned();
    let rules: Vec<Value> = rows
        .get(SECURITY_GROUP_RULE)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|r| r["security_group_id"].as_str() == Some(&id))
        .cloned()
        .collect();
    g["security_group_rules"] = json!(rules);
    g
}

impl NetworkService {
    /// The project's `default` group (made with Neutron's four rules when
    /// missing); its id.
    pub(crate) async fn ensure_default_group(&self, project: &str) -> NResult<Option<String>> {
        if project.is_empty() {
            return Ok(None);
        }
        let mut rows = self.rows.lock().await;
        if let Some(g) = rows
            .get(SECURITY_GROUP)
            .into_iter()
            .flat_map(|m| m.values())
            .find(|g| {
                g["project_id"].as_str() == Some(project) && g["name"].as_str() == Some("default")
            })
        {
            return Ok(g["id"].as_str().map(str::to_owned));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut g = standard(&id, project, "Default security group");
        g.insert("name".into(), json!("default"));
        g.insert("stateful".into(), json!(true));
        g.insert("shared".into(), json!(false));
        g.insert("security_group_rules".into(), json!([]));
        let mut puts = vec![(SECURITY_GROUP, Value::Object(g))];
        for (dir, eth, remote) in [
            ("ingress", "IPv4", Some(id.as_str())),
            ("ingress", "IPv6", Some(id.as_str())),
            ("egress", "IPv4", None),
            ("egress", "IPv6", None),
        ] {
            puts.push((SECURITY_GROUP_RULE, rule(&id, project, dir, eth, remote)));
        }
        self.commit(&mut rows, puts, vec![]).await?;
        Ok(Some(id))
    }

    /// A group as `caller` sees it, rules embedded.
    pub async fn show_security_group(&self, caller: &Caller, id: &str) -> NResult<Value> {
        let rows = self.rows.lock().await;
        let g = Self::get_visible(&rows, caller, SECURITY_GROUP, id)?;
        Ok(with_rules(&rows, &g))
    }

    /// Groups embed their rules in lists too.
    pub async fn list_security_groups(
        &self,
        caller: &Caller,
        query: &crate::service::Query,
    ) -> Vec<Value> {
        // As Neutron: the default group of the project filtered on (one
        // project) exists once it is looked for, as the caller's does.
        let mut projects = query
            .iter()
            .filter(|(k, _)| k == "tenant_id" || k == "project_id")
            .map(|(_, v)| v.as_str());
        if let (Some(p), None) = (projects.next(), projects.next())
            && p != caller.project_id
        {
            let _ = self.ensure_default_group(p).await;
        }
        let list = self.list(caller, SECURITY_GROUP, &vec![]).await;
        let rows = self.rows.lock().await;
        let full = list.iter().map(|g| with_rules(&rows, g)).collect();
        crate::service::filter_and_select(full, query)
    }

    /// `POST /v2.0/security-groups`.
    pub async fn create_security_group(&self, caller: &Caller, body: &Value) -> NResult<Value> {
        let m = body_of(body, SECURITY_GROUP)?;
        only(
            &m,
            &["name", "description", "project_id", "tenant_id", "stateful"],
        )?;
        let project = owner_of(caller, &m)?;
        let name = opt_str(&m, "name")?.unwrap_or_default();
        if name == "default" {
            return Err(NeutronError::conflict(
                "SecurityGroupDefaultAlreadyExists",
                "Default security group already exists.",
            ));
        }
        self.ensure_default_group(&project).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let mut g = standard(
            &id,
            &project,
            &opt_str(&m, "description")?.unwrap_or_default(),
        );
        g.insert("name".into(), json!(name));
        g.insert("stateful".into(), json!(true));
        g.insert("shared".into(), json!(false));
        let g = Value::Object(g);
        let mut puts = vec![(SECURITY_GROUP, g.clone())];
        for eth in ["IPv4", "IPv6"] {
            puts.push((
                SECURITY_GROUP_RULE,
                rule(&id, &project, "egress", eth, None),
            ));
        }
        let mut rows = self.rows.lock().await;
        self.commit(&mut rows, puts, vec![]).await?;
        Ok(with_rules(&rows, &g))
    }

    /// `PUT /v2.0/security-groups/{id}`.
    pub async fn update_security_group(
        &self,
        caller: &Caller,
        id: &str,
        body: &Value,
    ) -> NResult<Value> {
        let m = body_of(body, SECURITY_GROUP)?;
        only(&m, &["name", "description", "stateful"])?;
        let mut rows = self.rows.lock().await;
        let mut g = Self::get_owned(&rows, caller, SECURITY_GROUP, id)?;
        if let Some(n) = opt_str(&m, "name")? {
            if g["name"] == json!("default") && n != "default" {
                return Err(NeutronError::conflict(
                    "SecurityGroupCannotUpdateDefault",
                    "Updating default security group not allowed.",
                ));
            }
            g["name"] = json!(n);
        }
        if let Some(d) = opt_str(&m, "description")? {
            g["description"] = json!(d);
        }
        touch(&mut g);
        self.commit(&mut rows, vec![(SECURITY_GROUP, g.clone())], vec![])
            .await?;
        Ok(with_rules(&rows, &g))
    }

    /// `DELETE /v2.0/security-groups/{id}`: 409 while a port uses it.
    pub async fn delete_security_group(&self, caller: &Caller, id: &str) -> NResult<()> {
        let mut rows = self.rows.lock().await;
        let g = Self::get_owned(&rows, caller, SECURITY_GROUP, id)?;
        if g["name"] == json!("default") && !caller.privileged() {
            return Err(NeutronError::conflict(
                "SecurityGroupCannotRemoveDefault",
                "Removing default security group not allowed.",
            ));
        }
        let in_use = rows
            .get(PORT)
            .into_iter()
            .flat_map(|m| m.values())
            .any(|p| {
                p["security_groups"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(id)))
            });
        if in_use {
            return Err(NeutronError::conflict(
                "SecurityGroupInUse",
                format!("Security Group {id} in use."),
            ));
        }
        let mut deletes = vec![(SECURITY_GROUP, id.to_owned())];
        for (rid, r) in rows.get(SECURITY_GROUP_RULE).into_iter().flatten() {
            if r["security_group_id"].as_str() == Some(id) {
                deletes.push((SECURITY_GROUP_RULE, rid.clone()));
            }
        }
        self.commit(&mut rows, vec![], deletes).await
    }

    /// `POST /v2.0/security-group-rules`.
    pub async fn create_security_group_rule(
        &self,
        caller: &Caller,
        body: &Value,
    ) -> NResult<Value> {
        let m = body_of(body, SECURITY_GROUP_RULE)?;
        only(
            &m,
            &[
                "security_group_id",
                "direction",
                "ethertype",
                "protocol",
                "port_range_min",
                "port_range_max",
                "remote_ip_prefix",
                "remote_group_id",
                "description",
                "project_id",
                "tenant_id",
            ],
        )?;
        let gid = opt_str(&m, "security_group_id")?.ok_or_else(|| {
            NeutronError::bad_request(
                "Failed to parse request. Required attribute 'security_group_id' not specified",
            )
        })?;
        let direction = opt_str(&m, "direction")?.unwrap_or_default();
        if direction != "ingress" && direction != "egress" {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for direction. Reason: '{direction}' is not in ['ingress', 'egress']."
            )));
        }
        let ethertype = opt_str(&m, "ethertype")?.unwrap_or_else(|| "IPv4".into());
        if ethertype != "IPv4" && ethertype != "IPv6" {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for ethertype. Reason: '{ethertype}' is not in ['IPv4', 'IPv6']."
            )));
        }
        let protocol = match m.get("protocol") {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(p)) => {
                let known = ["tcp", "udp", "icmp", "icmpv6", "ipv6-icmp", "any", "sctp"];
                if !known.contains(&p.as_str()) && p.parse::<u8>().is_err() {
                    return Err(NeutronError::bad_request(format!(
                        "Security group rule protocol {p} not supported."
                    )));
                }
                json!(p)
            }
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 255) => json!(n.to_string()),
            Some(v) => {
                return Err(NeutronError::bad_request(format!(
                    "Security group rule protocol {v} not supported."
                )));
            }
        };
        let port = |k: &str| -> NResult<Value> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(Value::Null),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .filter(|n| *n <= 65535)
                    .map(|n| json!(n))
                    .ok_or_else(|| {
                        NeutronError::bad_request(format!("Invalid value for port {v}"))
                    }),
            }
        };
        let (pmin, pmax) = (port("port_range_min")?, port("port_range_max")?);
        if let (Some(a), Some(b)) = (pmin.as_u64(), pmax.as_u64())
            && a > b
            && matches!(protocol.as_str(), Some("tcp" | "udp" | "sctp"))
        {
            return Err(NeutronError::bad_request(
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            ));
        }
        let prefix = opt_str(&m, "remote_ip_prefix")?;
        if let Some(p) = &prefix {
            let c = crate::ipam::Cidr::parse(p).map_err(NeutronError::bad_request)?;
            if (c.version() == 4) != (ethertype == "IPv4") {
                return Err(NeutronError::bad_request(format!(
                    "Conflicting value ethertype {ethertype} for CIDR {p}"
                )));
            }
        }
        let mut rows = self.rows.lock().await;
        let g = Self::get_owned(&rows, caller, SECURITY_GROUP, &gid)?;
        let remote_group = opt_str(&m, "remote_group_id")?;
        if let Some(rg) = &remote_group {
            Self::get_visible(&rows, caller, SECURITY_GROUP, rg)?;
        }
        let project = g["project_id"].as_str().unwrap_or_default().to_owned();
        let mut r: Map<String, Value> = rule(
            &gid,
            &project,
            &direction,
            &ethertype,
            remote_group.as_deref(),
        )
        .as_object()
        .cloned()
        .unwrap_or_default();
        r.insert("protocol".into(), protocol);
        r.insert("port_range_min".into(), pmin);
        r.insert("port_range_max".into(), pmax);
        r.insert("remote_ip_prefix".into(), json!(prefix));
        r.insert("normalized_cidr".into(), json!(prefix));
        r.insert(
            "belongs_to_default_sg".into(),
            json!(g["name"] == json!("default")),
        );
        r.insert(
            "description".into(),
            json!(opt_str(&m, "description")?.unwrap_or_default()),
        );
        let same = |x: &Value| {
            [
                "direction",
                "ethertype",
                "protocol",
                "port_range_min",
                "port_range_max",
                "remote_ip_prefix",
                "remote_group_id",
            ]
            .iter()
            .all(|k| x[*k] == r[*k])
        };
        if let Some(dup) = rows
            .get(SECURITY_GROUP_RULE)
            .into_iter()
            .flat_map(|m| m.values())
            .find(|x| x["security_group_id"].as_str() == Some(&gid) && same(x))
        {
            return Err(NeutronError::conflict(
                "SecurityGroupRuleExists",
                format!(
                    "Security group rule already exists. Rule id is {}.",
                    dup["id"].as_str().unwrap_or_default()
                ),
            ));
        }
        let r = Value::Object(r);
        self.commit(&mut rows, vec![(SECURITY_GROUP_RULE, r.clone())], vec![])
            .await?;
        Ok(r)
    }

    /// `DELETE /v2.0/security-group-rules/{id}`.
    pub async fn delete_security_group_rule(&self, caller: &Caller, id: &str) -> NResult<()> {
        let mut rows = self.rows.lock().await;
        Self::get_owned(&rows, caller, SECURITY_GROUP_RULE, id)?;
        self.commit(
            &mut rows,
            vec![],
            vec![(SECURITY_GROUP_RULE, id.to_owned())],
        )
        .await
    }
}
