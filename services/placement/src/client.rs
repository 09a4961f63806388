//! [`HttpPlacement`]: the services' Placement over HTTP, to any Placement
//! (OpenStack's, or nova-placement-api), configured by nova's `[placement]`
//! options: Keystone password auth (`auth_url`, `username`, `password`,
//! `project_name`, `user_domain_name`, `project_domain_name`,
//! `region_name`, `valid_interfaces`; the endpoint from the token's service
//! catalog) or a fixed `endpoint_override` with a fixed token (noauth2).
//!
//! Placement's answers map onto [`PlacementError`]: 404 `NotFound`, 409
//! `placement.concurrent_update` `ConcurrentUpdate`, the other 409s by
//! code (`inventory.inuse`, `resource_provider.inuse`, …, a failed claim
//! `CapacityExceeded`), 400 `BadRequest`, a transport failure or 5xx
//! `Unavailable`. Custom resource classes and traits are created before
//! they are used, as nova's report client does.

use std::collections::{BTreeMap, BTreeSet};

use nova_scheduler::placement::{
    AllocationCandidates, AllocationRequest, Allocations, CandidatesRequest, ConsumerAllocations,
    ConsumerWrite, GroupPolicy, InventoryRecord, InventoryWrite, Name, PlacementError,
    ProviderSummary, ResourceProvider,
};
use serde_json::{Value, json};

use crate::PlacementService;
use crate::service::Custom;
use crate::session::{KeystoneSession, ServiceAuth};

type Result<T> = std::result::Result<T, PlacementError>;

/// How [`HttpPlacement`] authenticates (a [`ServiceAuth`]).
pub type PlacementAuth = ServiceAuth;

/// Placement over HTTP.
#[derive(Debug)]
pub struct HttpPlacement {
    session: KeystoneSession,
}

/// One HTTP answer.
struct Answer {
    status: u16,
    body: Value,
}

impl HttpPlacement {
    /// A client; it authenticates on first use (and again on a 401).
    pub fn new(auth: PlacementAuth) -> Self {
        HttpPlacement {
            session: KeystoneSession::new(auth, "placement"),
        }
    }

    /// From nova.conf's `[placement]` values (`get(key)`): `None` when
    /// neither `auth_url` nor `endpoint_override` is set (the embedded
    /// SQL Placement is then used).
    pub fn from_options(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        ServiceAuth::from_options(get).map(Self::new)
    }

    fn down(e: impl std::fmt::Display) -> PlacementError {
        PlacementError::Unavailable(format!("placement unreachable: {e}"))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        mv: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        for attempt in 0..2 {
            let (endpoint, token) = self.session.get(attempt > 0).await.map_err(Self::down)?;
            let mut rb = self
                .session
                .http()
                .request(method.clone(), format!("{endpoint}{path}"))
                .header("x-auth-token", token)
                .header("openstack-api-version", format!("placement {mv}"))
                .header("accept", "application/json");
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let r = rb.send().await.map_err(Self::down)?;
            let status = r.status().as_u16();
            if status == 401 && attempt == 0 && self.session.renews() {
                continue; // the token expired: once more with a new one
            }
            let bytes = r.bytes().await.map_err(Self::down)?;
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Ok(Answer { status, body });
        }
        Err(Self::down("placement keeps refusing the credentials"))
    }

    /// `GET /resource_providers/{uuid}/{part}` (inventories, traits,
    /// aggregates, usages).
    async fn provider_part(&self, uuid: &str, part: &str) -> Result<Value> {
        let path = format!("/resource_providers/{}/{part}", enc(uuid));
        self.ok(Method::GET, &path, "1.39", None).await
    }

    /// `PUT /resource_providers/{uuid}/{part}` with `body`: the provider's
    /// new generation (`generation + 1` when the answer does not say).
    async fn put_provider_part(
        &self,
        uuid: &str,
        part: &str,
        generation: u64,
        body: &Value,
    ) -> Result<u64> {
        let path = format!("/resource_providers/{}/{part}", enc(uuid));
        let v = self.ok(Method::PUT, &path, "1.39", Some(body)).await?;
        Ok(v["resource_provider_generation"]
            .as_u64()
            .unwrap_or(generation + 1))
    }

    /// The answer, or its status as a Placement error.
    async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        mv: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let a = self.call(method, path, mv, body).await?;
        if (200..300).contains(&a.status) {
            return Ok(a.body);
        }
        Err(error_of(&a))
    }

    async fn ensure_custom(&self, kind: Custom, names: impl Iterator<Item = &str>) -> Result<()> {
        for n in names.filter(|n| n.starts_with("CUSTOM_")) {
            self.add_custom_name_async(kind, n).await?;
        }
        Ok(())
    }
}

/// A Placement error answer as a [`PlacementError`].
fn error_of(a: &Answer) -> PlacementError {
    let e = &a.body["errors"][0];
    let detail = e["detail"].as_str().unwrap_or("").trim().to_owned();
    let code = e["code"].as_str().unwrap_or("");
    match (a.status, code) {
        (404, _) => PlacementError::NotFound(detail),
        (400, _) => PlacementError::BadRequest(detail),
        (409, "placement.concurrent_update") => PlacementError::ConcurrentUpdate(detail),
        (409, "placement.inventory.inuse") => PlacementError::InventoryInUse(detail),
        (409, "placement.resource_provider.inuse") => PlacementError::ProviderInUse(detail),
        (409, "placement.resource_provider.cannot_delete_parent") => {
            PlacementError::CannotDeleteParent(detail)
        }
        (409, "placement.duplicate_name") => PlacementError::Duplicate(detail),
        (409, _) if detail.contains("Unable to allocate") => {
            PlacementError::CapacityExceeded(detail)
        }
        (409, _) if detail.contains("in use") => PlacementError::InUse(detail),
        (409, _) => PlacementError::ConcurrentUpdate(detail),
        (s, _) => PlacementError::Unavailable(format!("placement answered {s}: {detail}")),
    }
}

fn provider_of(v: &Value) -> ResourceProvider {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
    ResourceProvider {
        uuid: s("uuid"),
        name: s("name"),
        generation: v["generation"].as_u64().unwrap_or(0),
        parent_provider_uuid: v["parent_provider_uuid"].as_str().map(str::to_owned),
        root_provider_uuid: v["root_provider_uuid"]
            .as_str()
            .map_or_else(|| s("uuid"), str::to_owned),
    }
}

fn inventory_of(v: &Value) -> InventoryRecord {
    let i = |k: &str, d: i64| v[k].as_i64().unwrap_or(d);
    InventoryRecord {
        total: i("total", 0),
        reserved: i("reserved", 0),
        min_unit: i("min_unit", 1),
        max_unit: i("max_unit", i64::from(i32::MAX)),
        step_size: i("step_size", 1),
        allocation_ratio: v["allocation_ratio"].as_f64().unwrap_or(1.0),
    }
}

fn resources_of(v: &Value) -> BTreeMap<Name, i64> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(rc, n)| (Name::from(rc.as_str()), n.as_i64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn names_of(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A candidates request as Placement's query string (1.39).
fn candidates_query(req: &CandidatesRequest) -> String {
    let mut q: Vec<(String, String)> = Vec::new();
    for g in &req.groups {
        let sfx = &g.suffix;
        let res: Vec<String> = g
            .resources
            .iter()
            .map(|(rc, n)| format!("{rc}:{n}"))
            .collect();
        if !res.is_empty() {
            q.push((format!("resources{sfx}"), res.join(",")));
        }
        let mut req_traits: Vec<String> = g.required_traits.iter().cloned().collect();
        req_traits.extend(g.forbidden_traits.iter().map(|t| format!("!{t}")));
        if !req_traits.is_empty() {
            q.push((format!("required{sfx}"), req_traits.join(",")));
        }
        for any in &g.any_traits {
            q.push((
                format!("required{sfx}"),
                format!("in:{}", any.iter().cloned().collect::<Vec<_>>().join(",")),
            ));
        }
        for set in &g.member_of {
            q.push((
                format!("member_of{sfx}"),
                format!("in:{}", set.iter().cloned().collect::<Vec<_>>().join(",")),
            ));
        }
        if !g.forbidden_aggregates.is_empty() {
            q.push((
                format!("member_of{sfx}"),
                format!(
                    "!in:{}",
                    g.forbidden_aggregates
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        }
        if let Some(t) = &g.in_tree {
            q.push((format!("in_tree{sfx}"), t.clone()));
        }
    }
    if req.groups.iter().filter(|g| !g.suffix.is_empty()).count() > 1 {
        let p = match req.group_policy {
            GroupPolicy::Isolate => "isolate",
            GroupPolicy::None => "none",
        };
        q.push(("group_policy".into(), p.into()));
    }
    if let Some(l) = req.limit {
        q.push(("limit".into(), l.to_string()));
    }
    let mut root: Vec<String> = req.root_required.iter().cloned().collect();
    root.extend(req.root_forbidden.iter().map(|t| format!("!{t}")));
    if !root.is_empty() {
        q.push(("root_required".into(), root.join(",")));
    }
    for s in &req.same_subtree {
        q.push((
            "same_subtree".into(),
            s.iter().cloned().collect::<Vec<_>>().join(","),
        ));
    }
    q.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

use reqwest::Method;

#[async_trait::async_trait]
impl PlacementService for HttpPlacement {
    async fn create_provider_async(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ResourceProvider> {
        let mut body = json!({"uuid": uuid, "name": name});
        if let Some(p) = parent {
            body["parent_provider_uuid"] = json!(p);
        }
        let v = self
            .ok(Method::POST, "/resource_providers", "1.39", Some(&body))
            .await?;
        Ok(provider_of(&v))
    }

    async fn get_provider_async(&self, uuid: &str) -> Result<ResourceProvider> {
        let v = self
            .ok(
                Method::GET,
                &format!("/resource_providers/{}", enc(uuid)),
                "1.39",
                None,
            )
            .await?;
        Ok(provider_of(&v))
    }

    async fn list_providers_async(
        &self,
        name: Option<&str>,
        uuid: Option<&str>,
    ) -> Result<Vec<ResourceProvider>> {
        let mut q = Vec::new();
        if let Some(n) = name {
            q.push(format!("name={}", enc(n)));
        }
        if let Some(u) = uuid {
            if uuid::Uuid::try_parse(u).is_err() {
                return Ok(Vec::new()); // Placement refuses a non-uuid filter: nothing has it
            }
            q.push(format!("uuid={}", enc(u)));
        }
        let v = self
            .ok(
                Method::GET,
                &format!("/resource_providers?{}", q.join("&")),
                "1.39",
                None,
            )
            .await?;
        let mut out: Vec<ResourceProvider> = v["resource_providers"]
            .as_array()
            .map(|a| a.iter().map(provider_of).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete_provider_async(&self, uuid: &str) -> Result<()> {
        self.ok(
            Method::DELETE,
            &format!("/resource_providers/{}", enc(uuid)),
            "1.39",
            None,
        )
        .await
        .map(|_| ())
    }

    async fn inventories_async(
        &self,
        uuid: &str,
    ) -> Result<(u64, BTreeMap<String, InventoryRecord>)> {
        let v = self.provider_part(uuid, "inventories").await?;
        let inv = v["inventories"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(rc, i)| (rc.clone(), inventory_of(i)))
                    .collect()
            })
            .unwrap_or_default();
        Ok((v["resource_provider_generation"].as_u64().unwrap_or(0), inv))
    }

    async fn set_inventories_async(
        &self,
        uuid: &str,
        generation: u64,
        inventories: &BTreeMap<String, InventoryRecord>,
    ) -> Result<u64> {
        self.ensure_custom(
            Custom::ResourceClasses,
            inventories.keys().map(String::as_str),
        )
        .await?;
        let inv: serde_json::Map<String, Value> = inventories
            .iter()
            .map(|(rc, i)| {
                (
                    rc.clone(),
                    json!({"total": i.total, "reserved": i.reserved, "min_unit": i.min_unit,
                           "max_unit": i.max_unit, "step_size": i.step_size,
                           "allocation_ratio": i.allocation_ratio}),
                )
            })
            .collect();
        let body = json!({"resource_provider_generation": generation, "inventories": inv});
        self.put_provider_part(uuid, "inventories", generation, &body)
            .await
    }

    async fn traits_async(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        let v = self.provider_part(uuid, "traits").await?;
        Ok((
            v["resource_provider_generation"].as_u64().unwrap_or(0),
            names_of(&v["traits"]),
        ))
    }

    async fn set_traits_async(
        &self,
        uuid: &str,
        generation: u64,
        traits: &BTreeSet<String>,
    ) -> Result<u64> {
        self.ensure_custom(Custom::Traits, traits.iter().map(String::as_str))
            .await?;
        let body = json!({"resource_provider_generation": generation, "traits": traits});
        self.put_provider_part(uuid, "traits", generation, &body)
            .await
    }

    async fn aggregates_async(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        let v = self.provider_part(uuid, "aggregates").await?;
        Ok((
            v["resource_provider_generation"].as_u64().unwrap_or(0),
            names_of(&v["aggregates"]),
        ))
    }

    async fn set_aggregates_async(
        &self,
        uuid: &str,
        generation: u64,
        aggregates: &BTreeSet<String>,
    ) -> Result<u64> {
        let body = json!({"resource_provider_generation": generation, "aggregates": aggregates});
        self.put_provider_part(uuid, "aggregates", generation, &body)
            .await
    }

    async fn usages_async(&self, uuid: &str) -> Result<BTreeMap<String, i64>> {
        let v = self.provider_part(uuid, "usages").await?;
        Ok(resources_of(&v["usages"])
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect())
    }

    async fn allocation_candidates_async(
        &self,
        req: &CandidatesRequest,
    ) -> Result<AllocationCandidates> {
        let v = self
            .ok(
                Method::GET,
                &format!("/allocation_candidates?{}", candidates_query(req)),
                "1.39",
                None,
            )
            .await?;
        let summaries: Vec<ProviderSummary> = v["provider_summaries"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(uuid, s)| ProviderSummary {
                        uuid: Name::from(uuid.as_str()),
                        resources: s["resources"]
                            .as_object()
                            .map(|r| {
                                r.iter()
                                    .map(|(rc, x)| {
                                        (
                                            Name::from(rc.as_str()),
                                            x["capacity"].as_i64().unwrap_or(0),
                                            x["used"].as_i64().unwrap_or(0),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        traits: names_of(&s["traits"])
                            .into_iter()
                            .map(|t| Name::from(t.as_str()))
                            .collect(),
                        parent_provider_uuid: s["parent_provider_uuid"].as_str().map(Name::from),
                        root_provider_uuid: Name::from(
                            s["root_provider_uuid"].as_str().unwrap_or(uuid),
                        ),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let root_of: BTreeMap<&str, Name> = summaries
            .iter()
            .map(|s| (&*s.uuid, s.root_provider_uuid.clone()))
            .collect();
        let mut requests = Vec::new();
        for r in v["allocation_requests"].as_array().into_iter().flatten() {
            let allocations: Allocations = r["allocations"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(rp, a)| (Name::from(rp.as_str()), resources_of(&a["resources"])))
                        .collect()
                })
                .unwrap_or_default();
            let mut mappings = Vec::new();
            for (g, rps) in r["mappings"].as_object().into_iter().flatten() {
                for rp in rps
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str())
                {
                    mappings.push((Name::from(g.as_str()), Name::from(rp)));
                }
            }
            let first = allocations
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| Name::from(""));
            let root = root_of.get(&*first).cloned().unwrap_or(first);
            requests.push(AllocationRequest {
                root_provider_uuid: root,
                allocations,
                mappings,
            });
        }
        let summaries = if req.without_summaries {
            Vec::new()
        } else {
            summaries
        };
        Ok(AllocationCandidates::from_requests(&requests, summaries))
    }

    async fn allocations_async(&self, consumer: &str) -> Result<ConsumerAllocations> {
        let v = self
            .ok(
                Method::GET,
                &format!("/allocations/{}", enc(consumer)),
                "1.39",
                None,
            )
            .await?;
        let mut out = ConsumerAllocations::default();
        for (rp, a) in v["allocations"].as_object().into_iter().flatten() {
            out.allocations
                .insert(Name::from(rp.as_str()), resources_of(&a["resources"]));
        }
        out.project_id = v["project_id"].as_str().unwrap_or("").to_owned();
        out.user_id = v["user_id"].as_str().unwrap_or("").to_owned();
        out.consumer_generation = v["consumer_generation"].as_u64();
        out.consumer_type = v["consumer_type"]
            .as_str()
            .filter(|t| *t != "unknown")
            .map(str::to_owned);
        Ok(out)
    }

    async fn put_allocations_async(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> Result<Option<u64>> {
        let allocs: serde_json::Map<String, Value> = allocations
            .iter()
            .map(|(rp, res)| (rp.to_string(), json!({"resources": res})))
            .collect();
        let body = json!({"allocations": allocs, "project_id": project_id, "user_id": user_id,
                          "consumer_generation": consumer_generation});
        // 1.36: the newest without a required consumer_type.
        self.ok(
            Method::PUT,
            &format!("/allocations/{}", enc(consumer)),
            "1.36",
            Some(&body),
        )
        .await?;
        // Placement bumps a consumer's generation by one per write (a new
        // one is created at 0 and written to 1).
        Ok((!allocations.is_empty()).then(|| consumer_generation.map_or(1, |g| g + 1)))
    }

    /// `POST /allocations`, or `POST /reshaper` when inventories change
    /// (Placement writes either in one transaction).
    async fn write_many_async(
        &self,
        inventories: &[InventoryWrite],
        consumers: &[ConsumerWrite],
    ) -> Result<Vec<Option<u64>>> {
        let allocs: serde_json::Map<String, Value> = consumers
            .iter()
            .map(|c| {
                let a: serde_json::Map<String, Value> = c
                    .allocations
                    .iter()
                    .map(|(rp, res)| (rp.to_string(), json!({"resources": res})))
                    .collect();
                (
                    c.consumer.clone(),
                    json!({"allocations": a, "project_id": c.project_id, "user_id": c.user_id,
                           "consumer_generation": c.generation}),
                )
            })
            .collect();
        if inventories.is_empty() {
            self.ok(Method::POST, "/allocations", "1.36", Some(&json!(allocs)))
                .await?;
        } else {
            for w in inventories {
                self.ensure_custom(
                    Custom::ResourceClasses,
                    w.inventories.keys().map(String::as_str),
                )
                .await?;
            }
            let invs: serde_json::Map<String, Value> = inventories
                .iter()
                .map(|w| {
                    let inv: serde_json::Map<String, Value> = w
                        .inventories
                        .iter()
                        .map(|(rc, i)| {
                            (
                                rc.clone(),
                                json!({"total": i.total, "reserved": i.reserved, "min_unit": i.min_unit,
                                       "max_unit": i.max_unit, "step_size": i.step_size,
                                       "allocation_ratio": i.allocation_ratio}),
                            )
                        })
                        .collect();
                    (
                        w.provider.clone(),
                        json!({"resource_provider_generation": w.generation, "inventories": inv}),
                    )
                })
                .collect();
            let body = json!({"inventories": invs, "allocations": allocs});
            self.ok(Method::POST, "/reshaper", "1.36", Some(&body))
                .await?;
        }
        Ok(consumers
            .iter()
            .map(|c| (!c.allocations.is_empty()).then(|| c.generation.map_or(1, |g| g + 1)))
            .collect())
    }

    async fn delete_allocations_async(&self, consumer: &str) -> Result<()> {
        match self
            .ok(
                Method::DELETE,
                &format!("/allocations/{}", enc(consumer)),
                "1.39",
                None,
            )
            .await
        {
            Ok(_) | Err(PlacementError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn update_provider_async(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
        reparent: bool,
    ) -> Result<ResourceProvider> {
        let body = json!({"name": name, "parent_provider_uuid": parent});
        let mv = if reparent { "1.37" } else { "1.36" };
        let v = self
            .ok(
                Method::PUT,
                &format!("/resource_providers/{}", enc(uuid)),
                mv,
                Some(&body),
            )
            .await?;
        Ok(provider_of(&v))
    }

    async fn provider_consumers_async(&self, uuid: &str) -> Result<Vec<String>> {
        let v = self
            .ok(
                Method::GET,
                &format!("/resource_providers/{}/allocations", enc(uuid)),
                "1.39",
                None,
            )
            .await?;
        Ok(v["allocations"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(c, _)| c.clone())
            .collect())
    }

    /// Placement has no consumer listing: every provider's allocations,
    /// then each consumer's record.
    async fn consumers_async(
        &self,
        project_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<(String, ConsumerAllocations)>> {
        let mut ids = BTreeSet::new();
        for rp in self.list_providers_async(None, None).await? {
            let v = self
                .ok(
                    Method::GET,
                    &format!("/resource_providers/{}/allocations", enc(&rp.uuid)),
                    "1.39",
                    None,
                )
                .await?;
            ids.extend(
                v["allocations"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(c, _)| c.clone()),
            );
        }
        let mut out = Vec::new();
        for c in ids {
            let a = self.allocations_async(&c).await?;
            if project_id.is_none_or(|p| p == a.project_id)
                && user_id.is_none_or(|u| u == a.user_id)
            {
                out.push((c, a));
            }
        }
        Ok(out)
    }

    /// Rewrites the consumer's allocations at 1.38 with the type (which
    /// bumps its generation: Placement has no other way to set it).
    async fn set_consumer_type_async(
        &self,
        consumer: &str,
        consumer_type: Option<&str>,
    ) -> Result<()> {
        let cur = self.allocations_async(consumer).await?;
        if cur.allocations.is_empty() {
            return Ok(());
        }
        let allocs: serde_json::Map<String, Value> = cur
            .allocations
            .iter()
            .map(|(rp, res)| (rp.to_string(), json!({"resources": res})))
            .collect();
        let body = json!({"allocations": allocs, "project_id": cur.project_id, "user_id": cur.user_id,
                          "consumer_generation": cur.consumer_generation,
                          "consumer_type": consumer_type.unwrap_or("unknown")});
        self.ok(
            Method::PUT,
            &format!("/allocations/{}", enc(consumer)),
            "1.38",
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    async fn custom_names_async(&self, kind: Custom) -> Result<BTreeSet<String>> {
        Ok(match kind {
            Custom::ResourceClasses => {
                let v = self
                    .ok(Method::GET, "/resource_classes", "1.39", None)
                    .await?;
                v["resource_classes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                    .filter(|n| n.starts_with("CUSTOM_"))
                    .map(str::to_owned)
                    .collect()
            }
            Custom::Traits => {
                let v = self
                    .ok(Method::GET, "/traits?name=startswith:CUSTOM_", "1.39", None)
                    .await?;
                names_of(&v["traits"])
            }
        })
    }

    async fn add_custom_name_async(&self, kind: Custom, name: &str) -> Result<bool> {
        let (path, mv) = match kind {
            Custom::ResourceClasses => (format!("/resource_classes/{}", enc(name)), "1.39"),
            Custom::Traits => (format!("/traits/{}", enc(name)), "1.39"),
        };
        let a = self.call(Method::PUT, &path, mv, None).await?;
        match a.status {
            201 => Ok(true),
            204 => Ok(false),
            _ => Err(error_of(&a)),
        }
    }

    async fn remove_custom_name_async(&self, kind: Custom, name: &str) -> Result<()> {
        let (path, mv) = match kind {
            Custom::ResourceClasses => (format!("/resource_classes/{}", enc(name)), "1.39"),
            Custom::Traits => (format!("/traits/{}", enc(name)), "1.39"),
        };
        match self.ok(Method::DELETE, &path, mv, None).await {
            Err(PlacementError::ConcurrentUpdate(m)) => Err(PlacementError::InUse(m)),
            other => other.map(|_| ()),
        }
    }
}
