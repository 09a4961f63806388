//! Aggregate and server group notifications: nova's `AggregatePayload` 1.1
//! (`aggregate.<action>.<phase>`, with the legacy `aggregate.<action>.<phase>`
//! of `notify_about_aggregate_update`) and `ServerGroupPayload` 1.1
//! (`server_group.<action>`, legacy `servergroup.<action>`).

use std::collections::BTreeMap;

use nova_objects::{Aggregate, InstanceGroup};
use nova_rpc::{Priority, RequestContext};
use serde::Serialize;
use serde_json::Value;

use super::payloads::PayloadObject;
use super::{Notifier, Phase};

/// `AggregatePayload` 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AggregatePayload {
    /// Database id (null before the aggregate is created).
    pub id: Option<i64>,
    /// UUID.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// Hosts (null before the aggregate is created).
    pub hosts: Option<Vec<String>>,
    /// Metadata.
    pub metadata: Option<BTreeMap<String, String>>,
}

impl PayloadObject for AggregatePayload {
    const NAME: &'static str = "AggregatePayload";
    const VERSION: &'static str = "1.1";
}

impl AggregatePayload {
    /// From an aggregate (`id` and `hosts` null when it has no row yet).
    pub fn from_aggregate(a: &Aggregate) -> Self {
        let created = *a.id() != 0;
        AggregatePayload {
            id: created.then_some(*a.id()),
            uuid: a.uuid().clone(),
            name: a.name().clone(),
            hosts: if created { a.hosts().clone() } else { None },
            metadata: a.metadata().clone(),
        }
    }
}

/// `ServerGroupPayload` 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerGroupPayload {
    /// UUID.
    pub uuid: String,
    /// Name.
    pub name: Option<String>,
    /// Owner.
    pub user_id: Option<String>,
    /// Project.
    pub project_id: Option<String>,
    /// The policy as a one-item list (deprecated field).
    pub policies: Option<Vec<String>>,
    /// Member instance uuids.
    pub members: Option<Vec<String>>,
    /// Hosts of the members (null unless computed).
    pub hosts: Option<Vec<String>>,
    /// The policy.
    pub policy: Option<String>,
    /// Rules (`max_server_per_host`).
    pub rules: BTreeMap<String, String>,
}

impl PayloadObject for ServerGroupPayload {
    const NAME: &'static str = "ServerGroupPayload";
    const VERSION: &'static str = "1.1";
}

impl ServerGroupPayload {
    /// From a group.
    pub fn from_group(g: &InstanceGroup) -> Self {
        ServerGroupPayload {
            uuid: g.uuid().clone(),
            name: g.name().clone(),
            user_id: g.user_id().clone(),
            project_id: g.project_id().clone(),
            policies: g.policy().clone().map(|p| vec![p]),
            members: g.members().clone(),
            hosts: g.hosts().clone(),
            policy: g.policy().clone(),
            rules: g.rules().clone(),
        }
    }
}

/// nova's `NotificationAction` values for aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateAction {
    /// `create`
    Create,
    /// `delete`
    Delete,
    /// `update_prop` (name or zone)
    UpdateProp,
    /// `update_metadata`
    UpdateMetadata,
    /// `add_host`
    AddHost,
    /// `remove_host`
    RemoveHost,
}

impl AggregateAction {
    fn versioned(self) -> &'static str {
        match self {
            AggregateAction::Create => "create",
            AggregateAction::Delete => "delete",
            AggregateAction::UpdateProp => "update_prop",
            AggregateAction::UpdateMetadata => "update_metadata",
            AggregateAction::AddHost => "add_host",
            AggregateAction::RemoveHost => "remove_host",
        }
    }
    fn legacy(self) -> &'static str {
        match self {
            AggregateAction::Create => "create",
            AggregateAction::Delete => "delete",
            AggregateAction::UpdateProp => "updateprop",
            AggregateAction::UpdateMetadata => "updatemetadata",
            AggregateAction::AddHost => "addhost",
            AggregateAction::RemoveHost => "removehost",
        }
    }
}

impl Notifier {
    /// `aggregate.<action>.<phase>` from the API (`AggregatePayload`), and
    /// the legacy `aggregate.<action>.<phase>` published as
    /// `aggregate.<id>` with `legacy` as its payload (nova's dicts:
    /// `aggregate_id`, `name`, `host_name`, `meta_data`).
    pub async fn aggregate(
        &self,
        ctx: &RequestContext,
        aggregate: &Aggregate,
        action: AggregateAction,
        phase: Phase,
        legacy: Value,
        host: &str,
    ) {
        if self.legacy_enabled() {
            let ident = legacy
                .get("aggregate_id")
                .filter(|v| !v.is_null())
                .or_else(|| legacy.get("name"))
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                });
            if let Some(ident) = ident {
                self.emit_legacy(
                    ctx,
                    Priority::Info,
                    format!("aggregate.{ident}"),
                    &format!("aggregate.{}.{}", action.legacy(), phase.as_str()),
                    legacy,
                )
                .await;
            }
        }
        self.emit(
            ctx,
            Priority::Info,
            format!("nova-api:{host}"),
            &format!("aggregate.{}.{}", action.versioned(), phase.as_str()),
            AggregatePayload::from_aggregate(aggregate),
        )
        .await;
    }

    /// `server_group.<action>` (`create`, `delete`, `add_member`) from the
    /// API (`ServerGroupPayload`), and the legacy `servergroup.<action>`
    /// (`create`, `delete`, `addmember`) published as `servergroup.<uuid>`.
    pub async fn server_group(
        &self,
        ctx: &RequestContext,
        group: &InstanceGroup,
        action: &str,
        legacy: Value,
        host: &str,
    ) {
        if self.legacy_enabled() {
            let suffix = if action == "add_member" {
                "addmember"
            } else {
                action
            };
            self.emit_legacy(
                ctx,
                Priority::Info,
                format!("servergroup.{}", group.uuid()),
                &format!("servergroup.{suffix}"),
                legacy,
            )
            .await;
        }
        self.emit(
            ctx,
            Priority::Info,
            format!("nova-api:{host}"),
            &format!("server_group.{action}"),
            ServerGroupPayload::from_group(group),
        )
        .await;
    }
}
