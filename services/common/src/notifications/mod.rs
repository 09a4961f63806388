//! nova's notifications: versioned (`nova/notifications/objects`) and
//! legacy (`compute.instance.*`), on a notification transport of their own
//! (`[oslo_messaging_notifications] transport_url`) or the RPC one.
//!
//! A [`Notifier`] is built once per process ([`crate::Runner::notifier`])
//! and handed to the managers and the API. Its methods build nova's payload
//! for the event and send what `[notifications] notification_format` and
//! `[oslo_messaging_notifications] driver` ask for: with nova's defaults
//! (`unversioned`, no driver) nothing is built or sent. A failed send is
//! logged and never fails the operation that notified (as nova's
//! `best_effort`).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use nova_rpc::{MemoryTransport, NotificationListener, Priority, RequestContext, Transport};
//! use nova_service::notifications::{NotificationConfig, NotificationFormat, Driver, Notifier, Phase};
//! let t: std::sync::Arc<dyn Transport> = MemoryTransport::new();
//! let cfg = NotificationConfig {
//!     format: NotificationFormat::Versioned,
//!     drivers: vec![Driver::MessagingV2],
//!     ..NotificationConfig::default()
//! };
//! let notifier = Notifier::new(cfg, Some(t.clone()), None);
//! let mut l = NotificationListener::start(t, None, &["versioned_notifications"], &[Priority::Info], None).await.unwrap();
//! let inst = nova_objects::Instance::new().with_uuid("178b0921-8f85-4257-88b6-2e743b5a975c".to_owned());
//! notifier.instance_action(&RequestContext::new(), &inst, "host1", "pause", Phase::Start, None).await;
//! let received = l.next().await.unwrap();
//! let n = &received.notification;
//! assert_eq!(n.event_type, "instance.pause.start");
//! assert_eq!(n.publisher_id, "nova-compute:host1");
//! assert_eq!(n.payload["nova_object.name"], "InstanceActionPayload");
//! # });
//! ```

mod config;
mod groups;
pub mod legacy;
mod moves;
pub mod payloads;
mod tasks;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use nova_objects::{Flavor, Instance, KeyPair, Service, VersionedObject};
use nova_rpc::{NotifyDriver, Priority, RequestContext, Transport};
use serde::Serialize;
use serde_json::{Value, json};

pub use config::{Driver, NotificationConfig, NotificationFormat, StateChange};
pub use groups::{AggregateAction, AggregatePayload, ServerGroupPayload};
pub use payloads::ExceptionPayload;
use payloads::{
    AuditPeriodPayload, FlavorPayload, InstanceActionPayload, InstanceActionRebuildPayload,
    InstanceActionRescuePayload, InstanceActionResizePrepPayload, InstanceActionSnapshotPayload,
    InstanceCreatePayload, InstancePayload, InstanceStateUpdatePayload, InstanceUpdatePayload,
    KeypairPayload, Obj, PayloadObject, ServiceStatusPayload,
};
pub use tasks::{
    ComputeTaskPayload, ImageMetaPayload, ImageMetaPropsPayload, InstanceExistsPayload,
    RequestSpecPayload, TaskSpec, primitive,
};

/// How long one send may wait for the broker before it is given up (and logged).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// nova's `NotificationPhase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `start`
    Start,
    /// `end`
    End,
    /// `error` (sent at priority ERROR with the fault)
    Error,
    /// `progress`
    Progress,
}

impl Phase {
    /// The event-type suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::End => "end",
            Phase::Error => "error",
            Phase::Progress => "progress",
        }
    }
}

/// nova's `NotificationSource`: the binary that publishes
/// (`publisher_id` is `<source>:<host>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `nova-api`
    Api,
    /// `nova-compute`
    Compute,
    /// `nova-conductor`
    Conductor,
    /// `nova-scheduler`
    Scheduler,
}

impl Source {
    /// The binary name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "nova-api",
            Source::Compute => "nova-compute",
            Source::Conductor => "nova-conductor",
            Source::Scheduler => "nova-scheduler",
        }
    }

    /// nova's `NotificationSource.get_source_by_binary`: the API's service
    /// record (`nova-osapi_compute`) publishes as `nova-api`, every other
    /// binary as itself.
    fn of_binary(binary: &str) -> &str {
        match binary {
            "nova-osapi_compute" => "nova-api",
            other => other,
        }
    }

    /// The legacy publisher's service name (`compute.<host>`, `api.<host>`).
    fn legacy(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Compute => "compute",
            Source::Conductor => "conductor",
            Source::Scheduler => "scheduler",
        }
    }
}

/// An instance's states before a change (for `instance.update`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OldStates {
    /// vm state.
    pub vm_state: Option<String>,
    /// task state.
    pub task_state: Option<String>,
    /// display name.
    pub display_name: Option<String>,
}

impl OldStates {
    /// The states `inst` has now (take it before changing them).
    pub fn of(inst: &Instance) -> Self {
        OldStates {
            vm_state: inst.vm_state().clone(),
            task_state: inst.task_state().clone(),
            display_name: inst.display_name().clone(),
        }
    }
}

/// The flavor notifications (`flavor.create`, `.update`, `.delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlavorAction {
    /// `flavor.create`
    Create,
    /// `flavor.update` (access or extra specs changed)
    Update,
    /// `flavor.delete`
    Delete,
}

/// The key pair notifications (`keypair.<action>.<phase>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeypairAction {
    /// `keypair.create.*` (generated by nova)
    Create,
    /// `keypair.import.*` (public key given)
    Import,
    /// `keypair.delete.*`
    Delete,
}

/// The service notifications (`service.create`, `.update`, `.delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAction {
    /// A new service record.
    Create,
    /// `disabled`, `disabled_reason` or `forced_down` changed.
    Update,
    /// The record was deleted.
    Delete,
}

struct Inner {
    cfg: NotificationConfig,
    /// Versioned notifications' notifier (`versioned_notifications_topics`).
    versioned: Option<nova_rpc::Notifier>,
    /// Legacy notifications' notifier (`[oslo_messaging_notifications] topics`).
    legacy: Option<nova_rpc::Notifier>,
    image_url_base: Option<String>,
}

/// What every service notifies through (cheap to clone).
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("format", &self.inner.cfg.format)
            .field("drivers", &self.inner.cfg.drivers)
            .field("versioned", &self.versioned_enabled())
            .field("legacy", &self.legacy_enabled())
            .finish()
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self::disabled()
    }
}

impl Notifier {
    /// The current audit period so far: its start and now (nova's
    /// `audit_period_bounds(current_period=True)` for
    /// `[DEFAULT] instance_usage_audit_period`).
    pub fn current_audit_period(&self) -> (chrono::DateTime<Utc>, chrono::DateTime<Utc>) {
        self.inner.cfg.audit_period.current(Utc::now())
    }

    /// Sends nothing (nova's default: no driver).
    pub fn disabled() -> Self {
        Self::new(NotificationConfig::default(), None, None)
    }

    /// A notifier for `cfg` on `transport` (the notification transport; it
    /// may be `None` only when no messaging driver is configured).
    /// `image_url_base` is the image API's URL for the legacy `image_ref_url`.
    pub fn new(
        cfg: NotificationConfig,
        transport: Option<Arc<dyn Transport>>,
        image_url_base: Option<String>,
    ) -> Self {
        let driver = match cfg.messaging() {
            Some(Driver::Messaging) => NotifyDriver::Messaging,
            _ => NotifyDriver::MessagingV2,
        };
        let make = |topics: &[String]| {
            let t = transport.clone()?;
            cfg.messaging()?;
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            Some(nova_rpc::Notifier::new(t, "nova", &topics).driver(driver))
        };
        let versioned = if cfg.format.versioned() {
            make(&cfg.versioned_topics)
        } else {
            None
        };
        let legacy = if cfg.format.unversioned() {
            make(&cfg.topics)
        } else {
            None
        };
        Notifier {
            inner: Arc::new(Inner {
                versioned,
                legacy,
                image_url_base,
                cfg,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NotificationConfig {
        &self.inner.cfg
    }

    /// Whether versioned notifications go anywhere (nova's
    /// `if_notifications_enabled`).
    pub fn versioned_enabled(&self) -> bool {
        let c = &self.inner.cfg;
        c.format.versioned() && (self.inner.versioned.is_some() || c.logs())
    }

    /// Whether legacy notifications go anywhere.
    pub fn legacy_enabled(&self) -> bool {
        let c = &self.inner.cfg;
        c.format.unversioned() && (self.inner.legacy.is_some() || c.logs())
    }

    async fn send(
        &self,
        versioned: bool,
        ctx: &RequestContext,
        priority: Priority,
        publisher_id: String,
        event_type: &str,
        payload: Value,
    ) {
        if self.inner.cfg.logs() {
            let body = json!({
                "message_id": uuid::Uuid::new_v4().to_string(),
                "publisher_id": publisher_id,
                "event_type": event_type,
                "priority": priority.as_str().to_ascii_uppercase(),
                "payload": payload,
                "timestamp": Utc::now().naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            });
            match priority {
                Priority::Error | Priority::Critical => {
                    tracing::error!(target: "oslo.messaging.notification", event_type, "{body}")
                }
                Priority::Warn => {
                    tracing::warn!(target: "oslo.messaging.notification", event_type, "{body}")
                }
                Priority::Debug => {
                    tracing::debug!(target: "oslo.messaging.notification", event_type, "{body}")
                }
                _ => tracing::info!(target: "oslo.messaging.notification", event_type, "{body}"),
            }
        }
        let notifier = if versioned {
            &self.inner.versioned
        } else {
            &self.inner.legacy
        };
        let Some(n) = notifier else { return };
        let n = n.prepare(publisher_id);
        match tokio::time::timeout(SEND_TIMEOUT, n.notify(ctx, priority, event_type, payload)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(event_type, error = %e, "notification not sent"),
            Err(_) => {
                tracing::warn!(event_type, timeout = ?SEND_TIMEOUT, "notification not sent: the notification transport did not take it in time")
            }
        }
    }

    /// Sends a versioned notification: `event_type` from `publisher`,
    /// `payload` as its nova object. For events this type has no method for.
    pub async fn emit<P: PayloadObject>(
        &self,
        ctx: &RequestContext,
        priority: Priority,
        publisher_id: String,
        event_type: &str,
        payload: P,
    ) {
        if !self.versioned_enabled() {
            return;
        }
        match serde_json::to_value(Obj(payload)) {
            Ok(v) => {
                self.send(true, ctx, priority, publisher_id, event_type, v)
                    .await
            }
            Err(e) => tracing::warn!(event_type, error = %e, "notification payload not encodable"),
        }
    }

    /// Sends a legacy notification (`event_type` in nova's allowed list).
    pub async fn emit_legacy(
        &self,
        ctx: &RequestContext,
        priority: Priority,
        publisher_id: String,
        event_type: &str,
        payload: impl Serialize,
    ) {
        if !self.legacy_enabled() {
            return;
        }
        match serde_json::to_value(payload) {
            Ok(v) => {
                self.send(false, ctx, priority, publisher_id, event_type, v)
                    .await
            }
            Err(e) => tracing::warn!(event_type, error = %e, "notification payload not encodable"),
        }
    }

    /// `InstancePayload` with `[notifications] bdms_in_notifications` and
    /// `include_share_mapping` applied.
    fn instance_payload(&self, ctx: &RequestContext, inst: &Instance) -> InstancePayload {
        let mut p = InstancePayload::new(ctx, inst);
        self.options(&mut p);
        p
    }

    /// nova lists an instance's volume attachments and shares only when
    /// asked to; nova-rs attaches neither volumes nor shares, so asked, the
    /// lists are empty.
    fn options(&self, p: &mut InstancePayload) {
        if self.inner.cfg.bdms_in_notifications {
            p.block_devices = Some(Vec::new());
        }
        if self.inner.cfg.include_share_mapping {
            p.shares = Some(Vec::new());
        }
    }

    fn priority(fault: Option<&ExceptionPayload>) -> Priority {
        if fault.is_some() {
            Priority::Error
        } else {
            Priority::Info
        }
    }

    /// Legacy `compute.instance.<suffix>` (nova's `notify_about_instance_usage`;
    /// nova's compute manager and compute API both publish it as `compute.<host>`).
    async fn instance_usage(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        suffix: &str,
        fault: Option<&ExceptionPayload>,
        extra: Value,
    ) {
        if !self.legacy_enabled() {
            return;
        }
        let mut p = legacy::info_from_instance(inst, self.inner.image_url_base.as_deref());
        if let Value::Object(extra) = extra {
            p.extend(extra);
        }
        if let Some(f) = fault {
            legacy::add_fault(&mut p, f);
        }
        let priority = if suffix.ends_with("error") {
            Priority::Error
        } else {
            Priority::Info
        };
        self.emit_legacy(
            ctx,
            priority,
            format!("compute.{host}"),
            &format!("compute.instance.{suffix}"),
            p,
        )
        .await;
    }

    /// Legacy `compute.instance.create_ip.<phase>` /
    /// `delete_ip.<phase>` (nova's multinic; no versioned twin), the end
    /// with the instance's fixed IPs from `network_info`.
    pub async fn instance_ip(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        added: bool,
        phase: Phase,
        network_info: Option<&Value>,
    ) {
        let what = if added { "create_ip" } else { "delete_ip" };
        let extra = network_info.map_or(
            Value::Null,
            |nw| json!({"fixed_ips": legacy::fixed_ips(nw)}),
        );
        self.instance_usage(
            ctx,
            inst,
            host,
            &format!("{what}.{}", phase.as_str()),
            None,
            extra,
        )
        .await;
    }

    /// `instance.<action>.<phase>` from a compute host with
    /// `InstanceActionPayload` (and the legacy `compute.instance.<action>.<phase>`);
    /// with a `fault`, priority ERROR. What the actions call:
    /// `notifier.instance_action(&ctx, &inst, host, "pause", Phase::Start, None)`;
    /// a phase-less event (`instance.lock`) takes `None` as its phase and has
    /// no legacy twin.
    pub async fn instance_action(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        action: &str,
        phase: impl Into<Option<Phase>>,
        fault: Option<&ExceptionPayload>,
    ) {
        self.instance_action_from(ctx, inst, Source::Compute, host, action, phase, fault)
            .await;
    }

    /// [`Notifier::instance_action`] from another service (the API's local
    /// delete, lock and unlock notify as `nova-api`).
    #[allow(clippy::too_many_arguments)]
    pub async fn instance_action_from(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        source: Source,
        host: &str,
        action: &str,
        phase: impl Into<Option<Phase>>,
        fault: Option<&ExceptionPayload>,
    ) {
        let phase = phase.into();
        let event = match phase {
            Some(p) => format!("{action}.{}", p.as_str()),
            None => action.to_owned(),
        };
        if phase.is_some() {
            self.instance_usage(ctx, inst, host, &event, fault, Value::Null)
                .await;
        }
        if !self.versioned_enabled() {
            return;
        }
        let payload = InstanceActionPayload {
            instance: self.instance_payload(ctx, inst),
            fault: fault.cloned().map(Obj),
        };
        self.emit(
            ctx,
            Self::priority(fault),
            format!("{}:{host}", source.as_str()),
            &format!("instance.{event}"),
            payload,
        )
        .await;
    }

    /// `instance.create.<phase>` with `InstanceCreatePayload` (legacy:
    /// `compute.instance.create.<phase>`, with `image_name` at start and
    /// `message: Success` at the end).
    pub async fn instance_create(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        phase: Phase,
        fault: Option<&ExceptionPayload>,
        image_name: Option<&str>,
    ) {
        let extra = match phase {
            Phase::Start => json!({ "image_name": image_name }),
            Phase::End => {
                let network_info = payloads::network_info(inst);
                json!({ "message": "Success", "fixed_ips": legacy::fixed_ips(&network_info) })
            }
            _ => Value::Null,
        };
        self.instance_usage(
            ctx,
            inst,
            host,
            &format!("create.{}", phase.as_str()),
            fault,
            extra,
        )
        .await;
        if !self.versioned_enabled() {
            return;
        }
        let mut payload = InstanceCreatePayload::new(ctx, inst, fault.cloned());
        self.options(&mut payload.action.instance);
        self.emit(
            ctx,
            Self::priority(fault),
            format!("nova-compute:{host}"),
            &format!("instance.create.{}", phase.as_str()),
            payload,
        )
        .await;
    }

    /// `instance.rescue.<phase>` with `InstanceActionRescuePayload` (legacy:
    /// `compute.instance.rescue.<phase>` with `rescue_image_name`).
    #[allow(clippy::too_many_arguments)]
    pub async fn instance_rescue(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        phase: Phase,
        fault: Option<&ExceptionPayload>,
        rescue_image_ref: Option<String>,
        rescue_image_name: Option<&str>,
    ) {
        // nova's legacy rescue carries the rescue image's name ('' unknown).
        let extra = json!({ "rescue_image_name": rescue_image_name.unwrap_or_default() });
        self.instance_usage(
            ctx,
            inst,
            host,
            &format!("rescue.{}", phase.as_str()),
            fault,
            extra,
        )
        .await;
        if !self.versioned_enabled() {
            return;
        }
        let payload = InstanceActionRescuePayload {
            action: InstanceActionPayload {
                instance: self.instance_payload(ctx, inst),
                fault: fault.cloned().map(Obj),
            },
            rescue_image_ref,
        };
        self.emit(
            ctx,
            Self::priority(fault),
            format!("nova-compute:{host}"),
            &format!("instance.rescue.{}", phase.as_str()),
            payload,
        )
        .await;
    }

    /// `instance.rebuild.<phase>` with `InstanceActionRebuildPayload` (legacy:
    /// `compute.instance.rebuild.<phase>`).
    pub async fn instance_rebuild(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        phase: Phase,
        fault: Option<&ExceptionPayload>,
    ) {
        self.instance_usage(
            ctx,
            inst,
            host,
            &format!("rebuild.{}", phase.as_str()),
            fault,
            Value::Null,
        )
        .await;
        if !self.versioned_enabled() {
            return;
        }
        let payload = InstanceActionRebuildPayload {
            action: InstanceActionPayload {
                instance: self.instance_payload(ctx, inst),
                fault: fault.cloned().map(Obj),
            },
            trusted_image_certificates: payloads::trusted_certs(inst),
        };
        self.emit(
            ctx,
            Self::priority(fault),
            format!("nova-compute:{host}"),
            &format!("instance.rebuild.{}", phase.as_str()),
            payload,
        )
        .await;
    }

    /// `instance.snapshot.<phase>` with `InstanceActionSnapshotPayload`.
    pub async fn instance_snapshot(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        phase: Phase,
        snapshot_image_id: &str,
    ) {
        self.instance_usage(
            ctx,
            inst,
            host,
            &format!("snapshot.{}", phase.as_str()),
            None,
            Value::Null,
        )
        .await;
        if !self.versioned_enabled() {
            return;
        }
        let payload = InstanceActionSnapshotPayload {
            action: InstanceActionPayload {
                instance: self.instance_payload(ctx, inst),
                fault: None,
            },
            snapshot_image_id: snapshot_image_id.to_owned(),
        };
        self.emit(
            ctx,
            Priority::Info,
            format!("nova-compute:{host}"),
            &format!("instance.snapshot.{}", phase.as_str()),
            payload,
        )
        .await;
    }

    /// nova's `send_update` after a save of `inst` that may have changed its
    /// states (`old` taken before): with `notify_on_state_change` set,
    /// `instance.update` (`InstanceUpdatePayload`) and the legacy
    /// `compute.instance.update`; with the state-change fields when the vm
    /// state (or, for `vm_and_task_state`, the task state) changed.
    pub async fn instance_update(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        old: &OldStates,
        source: Source,
        host: &str,
    ) {
        let Some(mode) = self.inner.cfg.notify_on_state_change else {
            return;
        };
        if !self.versioned_enabled() && !self.legacy_enabled() {
            return;
        }
        let state_changed = old.vm_state != *inst.vm_state()
            || (mode == StateChange::VmAndTaskState && old.task_state != *inst.task_state());
        let (old_state, old_task_state) = if state_changed {
            (old.vm_state.clone(), old.task_state.clone())
        } else {
            (inst.vm_state().clone(), inst.task_state().clone())
        };
        let old_display_name = (old.display_name != *inst.display_name())
            .then(|| old.display_name.clone())
            .flatten();
        let (begin, end) = self.current_audit_period();
        if self.legacy_enabled() {
            let mut p = legacy::info_from_instance(inst, self.inner.image_url_base.as_deref());
            p.insert("old_state".into(), json!(old_state));
            p.insert("state".into(), json!(inst.vm_state()));
            p.insert("old_task_state".into(), json!(old_task_state));
            p.insert("new_task_state".into(), json!(inst.task_state()));
            p.insert(
                "audit_period_beginning".into(),
                json!(legacy::strtime(&Some(begin))),
            );
            p.insert(
                "audit_period_ending".into(),
                json!(legacy::strtime(&Some(end))),
            );
            if let Some(n) = &old_display_name {
                p.insert("old_display_name".into(), json!(n));
            }
            self.emit_legacy(
                ctx,
                Priority::Info,
                format!("{}.{host}", source.legacy()),
                "compute.instance.update",
                p,
            )
            .await;
        }
        if self.versioned_enabled() {
            let payload = InstanceUpdatePayload {
                instance: self.instance_payload(ctx, inst),
                state_update: Obj(InstanceStateUpdatePayload {
                    old_state,
                    state: inst.vm_state().clone(),
                    old_task_state,
                    new_task_state: inst.task_state().clone(),
                }),
                audit_period: Obj(AuditPeriodPayload {
                    audit_period_beginning: nova_objects::field::format_datetime(&begin),
                    audit_period_ending: nova_objects::field::format_datetime(&end),
                }),
                old_display_name,
                tags: payloads::instance_tags(inst),
            };
            self.emit(
                ctx,
                Priority::Info,
                format!("{}:{host}", source.as_str()),
                "instance.update",
                payload,
            )
            .await;
        }
    }

    /// `flavor.create` / `.update` / `.delete` from the API (`FlavorPayload`).
    pub async fn flavor(
        &self,
        ctx: &RequestContext,
        flavor: &Flavor,
        action: FlavorAction,
        host: &str,
    ) {
        if !self.versioned_enabled() {
            return;
        }
        let event = match action {
            FlavorAction::Create => "flavor.create",
            FlavorAction::Update => "flavor.update",
            FlavorAction::Delete => "flavor.delete",
        };
        self.emit(
            ctx,
            Priority::Info,
            format!("nova-api:{host}"),
            event,
            FlavorPayload::from_flavor(flavor),
        )
        .await;
    }

    /// `instance.resize_prep.<phase>` with `InstanceActionResizePrepPayload`
    /// (legacy: `compute.instance.resize.prep.<phase>`, the new flavor's
    /// name and id at the end).
    pub async fn instance_resize_prep(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        phase: Phase,
        new_flavor: &Flavor,
    ) {
        let extra = match phase {
            Phase::End => json!({
                "new_instance_type": new_flavor.name(),
                "new_instance_type_id": new_flavor.id(),
            }),
            _ => Value::Null,
        };
        self.instance_usage(
            ctx,
            inst,
            host,
            &format!("resize.prep.{}", phase.as_str()),
            None,
            extra,
        )
        .await;
        if !self.versioned_enabled() {
            return;
        }
        let mut flavor = FlavorPayload::from_flavor(new_flavor);
        flavor.projects = None;
        let payload = InstanceActionResizePrepPayload {
            action: InstanceActionPayload {
                instance: self.instance_payload(ctx, inst),
                fault: None,
            },
            new_flavor: Some(Obj(flavor)),
        };
        self.emit(
            ctx,
            Self::priority(None),
            format!("nova-compute:{host}"),
            &format!("instance.resize_prep.{}", phase.as_str()),
            payload,
        )
        .await;
    }

    /// `keypair.<action>.<phase>` from the API (`KeypairPayload`; legacy
    /// `keypair.<action>.<phase>` with the owner and the name).
    pub async fn keypair(
        &self,
        ctx: &RequestContext,
        keypair: &KeyPair,
        action: KeypairAction,
        phase: Phase,
        host: &str,
    ) {
        let action = match action {
            KeypairAction::Create => "create",
            KeypairAction::Import => "import",
            KeypairAction::Delete => "delete",
        };
        let event = format!("keypair.{action}.{}", phase.as_str());
        if self.legacy_enabled() {
            self.emit_legacy(
                ctx,
                Priority::Info,
                format!("api.{host}"),
                &event,
                legacy::keypair(ctx, keypair.name()),
            )
            .await;
        }
        self.emit(
            ctx,
            Priority::Info,
            format!("nova-api:{host}"),
            &event,
            KeypairPayload::from_keypair(keypair),
        )
        .await;
    }

    /// `service.create` / `.update` / `.delete` (`ServiceStatusPayload`),
    /// published as the service's own binary on its host.
    pub async fn service(&self, ctx: &RequestContext, service: &Service, action: ServiceAction) {
        if !self.versioned_enabled() {
            return;
        }
        let event = match action {
            ServiceAction::Create => "service.create",
            ServiceAction::Update => "service.update",
            ServiceAction::Delete => "service.delete",
        };
        let publisher = format!(
            "{}:{}",
            Source::of_binary(service.binary().as_deref().unwrap_or("nova-compute")),
            service.host().as_deref().unwrap_or_default()
        );
        self.emit(
            ctx,
            Priority::Info,
            publisher,
            event,
            ServiceStatusPayload::from_service(service),
        )
        .await;
    }

    /// `compute.exception` (`ExceptionPayload`, ERROR): an operation failed
    /// with no `*.error` notification of its own (nova's `wrap_exception`).
    pub async fn exception(
        &self,
        ctx: &RequestContext,
        source: Source,
        host: &str,
        fault: &ExceptionPayload,
    ) {
        if self.legacy_enabled() {
            self.emit_legacy(
                ctx,
                Priority::Error,
                format!("{}.{host}", source.legacy()),
                &fault.function_name,
                json!({ "exception": fault.exception_message, "args": {} }),
            )
            .await;
        }
        self.emit(
            ctx,
            Priority::Error,
            format!("{}:{host}", source.as_str()),
            "compute.exception",
            fault.clone(),
        )
        .await;
    }
}

/// Whether `service` changed in a way nova notifies (`disabled`,
/// `disabled_reason` or `forced_down` among its changed fields).
pub fn service_update_notifies(service: &Service) -> bool {
    ["disabled", "disabled_reason", "forced_down"]
        .iter()
        .any(|f| service.obj_what_changed_names().iter().any(|c| c == f))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use nova_rpc::{MemoryTransport, NotificationListener};

    fn notifier(format: NotificationFormat, t: &Arc<dyn Transport>) -> Notifier {
        let cfg = NotificationConfig {
            format,
            drivers: vec![Driver::MessagingV2],
            notify_on_state_change: Some(StateChange::VmAndTaskState),
            ..NotificationConfig::default()
        };
        Notifier::new(cfg, Some(t.clone()), Some("http://img:9292".into()))
    }

    async fn listen(t: &Arc<dyn Transport>, topic: &str) -> NotificationListener {
        NotificationListener::start(t.clone(), None, &[topic], &Priority::ALL, None)
            .await
            .unwrap()
    }

    fn instance() -> Instance {
        let flavor = Flavor::new()
            .with_flavorid("42".to_owned())
            .with_name(Some("m1.small".into()))
            .with_memory_mb(2048)
            .with_vcpus(1)
            .with_root_gb(20)
            .with_ephemeral_gb(0)
            .with_swap(0)
            .with_extra_specs(std::collections::BTreeMap::new());
        Instance::new()
            .with_id(10)
            .with_uuid("178b0921-8f85-4257-88b6-2e743b5a975c".to_owned())
            .with_user_id(Some("u".into()))
            .with_project_id(Some("p".into()))
            .with_image_ref(Some("155d900f-4e14-4e4c-a73d-069cbf4541e6".into()))
            .with_display_name(Some("vm".into()))
            .with_vm_state(Some("active".into()))
            .with_task_state(None)
            .with_power_state(Some(1))
            .with_locked(false)
            .with_auto_disk_config(false)
            .with_metadata(std::collections::BTreeMap::from([(
                "k".to_owned(),
                "v".to_owned(),
            )]))
            .with_system_metadata(std::collections::BTreeMap::from([(
                "locked_reason".to_owned(),
                Some("why".to_owned()),
            )]))
            .with_flavor(flavor)
    }

    #[tokio::test]
    async fn nothing_is_sent_or_built_with_novas_defaults() {
        let n = Notifier::disabled();
        assert!(!n.versioned_enabled() && !n.legacy_enabled());
        // The log driver alone enables them without a transport.
        let cfg = NotificationConfig {
            format: NotificationFormat::Both,
            drivers: vec![Driver::Log],
            ..NotificationConfig::default()
        };
        let n = Notifier::new(cfg, None, None);
        assert!(n.versioned_enabled() && n.legacy_enabled());
        n.instance_action(
            &RequestContext::new(),
            &instance(),
            "h",
            "pause",
            Phase::Start,
            None,
        )
        .await;
    }

    #[test]
    fn the_log_driver_logs_each_notification_as_json() {
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let cfg = NotificationConfig {
            format: NotificationFormat::Versioned,
            drivers: vec![Driver::Log],
            ..NotificationConfig::default()
        };
        let n = Notifier::new(cfg, None, None);
        tracing::subscriber::with_default(subscriber, || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(n.exception(
                    &RequestContext::new(),
                    Source::Compute,
                    "h1",
                    &ExceptionPayload::new("m", "power_off", "NovaException", "boom"),
                ))
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("ERROR"), "{out}");
        assert!(out.contains("oslo.messaging.notification"), "{out}");
        assert!(out.contains(r#""event_type":"compute.exception""#), "{out}");
        assert!(out.contains(r#""publisher_id":"nova-compute:h1""#), "{out}");
        assert!(out.contains(r#""exception_message":"boom""#), "{out}");
    }

    #[tokio::test]
    async fn the_format_picks_the_topics() {
        let t: Arc<dyn Transport> = MemoryTransport::new();
        let mut versioned = listen(&t, "versioned_notifications").await;
        let mut legacy = listen(&t, "notifications").await;
        let ctx = RequestContext::new()
            .with_user("u")
            .with_project("p")
            .with_request_id("req-1");
        notifier(NotificationFormat::Unversioned, &t)
            .instance_action(&ctx, &instance(), "h1", "reboot", Phase::End, None)
            .await;
        let l = legacy.next().await.unwrap();
        assert_eq!(l.notification.event_type, "compute.instance.reboot.end");
        assert_eq!(l.notification.publisher_id, "compute.h1");
        let p = &l.notification.payload;
        assert_eq!(p["instance_id"], "178b0921-8f85-4257-88b6-2e743b5a975c");
        assert_eq!(p["instance_type"], "m1.small");
        assert_eq!(p["memory_mb"], 2048);
        assert_eq!(p["disk_gb"], 20);
        assert_eq!(p["state_description"], "");
        assert_eq!(
            p["image_ref_url"],
            "http://img:9292/images/155d900f-4e14-4e4c-a73d-069cbf4541e6"
        );
        // Only versioned: the next on the versioned topic is this one.
        notifier(NotificationFormat::Versioned, &t)
            .instance_action(&ctx, &instance(), "h1", "lock", None, None)
            .await;
        let v = versioned.next().await.unwrap();
        assert_eq!(v.notification.event_type, "instance.lock");
        assert_eq!(v.notification.publisher_id, "nova-compute:h1");
        let d = &v.notification.payload["nova_object.data"];
        assert_eq!(d["power_state"], "running");
        assert_eq!(d["auto_disk_config"], "MANUAL");
        assert_eq!(d["locked_reason"], "why");
        assert_eq!(d["request_id"], "req-1");
        assert_eq!(d["action_initiator_user"], "u");
        assert_eq!(d["metadata"]["k"], "v");
        assert!(d["flavor"]["nova_object.data"]["projects"].is_null());
        assert!(d["block_devices"].is_null() && d["shares"].is_null());
    }

    #[tokio::test]
    async fn rescue_rebuild_and_snapshot_use_their_own_payloads() {
        let t: Arc<dyn Transport> = MemoryTransport::new();
        let mut versioned = listen(&t, "versioned_notifications").await;
        let mut legacy = listen(&t, "notifications").await;
        let n = notifier(NotificationFormat::Both, &t);
        let ctx = RequestContext::new();
        let inst = instance();
        n.instance_rescue(
            &ctx,
            &inst,
            "h",
            Phase::Start,
            None,
            Some("img-1".into()),
            Some("cirros"),
        )
        .await;
        n.instance_rebuild(&ctx, &inst, "h", Phase::End, None).await;
        n.instance_snapshot(&ctx, &inst, "h", Phase::End, "snap-1")
            .await;
        let mut got = Vec::new();
        for _ in 0..3 {
            let m = versioned.next().await.unwrap();
            got.push((
                m.notification.event_type.clone(),
                m.notification.payload["nova_object.name"].clone(),
                m.notification.payload["nova_object.version"].clone(),
            ));
        }
        assert_eq!(
            got,
            [
                (
                    "instance.rescue.start".to_owned(),
                    json!("InstanceActionRescuePayload"),
                    json!("1.4")
                ),
                (
                    "instance.rebuild.end".to_owned(),
                    json!("InstanceActionRebuildPayload"),
                    json!("1.10")
                ),
                (
                    "instance.snapshot.end".to_owned(),
                    json!("InstanceActionSnapshotPayload"),
                    json!("1.10")
                ),
            ]
        );
        let l = legacy.next().await.unwrap();
        assert_eq!(l.notification.event_type, "compute.instance.rescue.start");
        assert_eq!(l.notification.payload["rescue_image_name"], "cirros");
    }

    #[tokio::test]
    async fn instance_update_reports_state_changes_as_configured() {
        let t: Arc<dyn Transport> = MemoryTransport::new();
        let mut versioned = listen(&t, "versioned_notifications").await;
        let n = notifier(NotificationFormat::Versioned, &t);
        let ctx = RequestContext::new();
        let mut inst = instance();
        let old = OldStates::of(&inst);
        inst.set_task_state(Some("powering-off".into()));
        inst.set_display_name(Some("renamed".into()));
        n.instance_update(&ctx, &inst, &old, Source::Api, "api-host")
            .await;
        let got = versioned.next().await.unwrap();
        assert_eq!(got.notification.publisher_id, "nova-api:api-host");
        let d = &got.notification.payload["nova_object.data"];
        assert_eq!(got.notification.payload["nova_object.version"], "2.1");
        let su = &d["state_update"]["nova_object.data"];
        assert_eq!(su["old_task_state"], Value::Null);
        assert_eq!(su["new_task_state"], "powering-off");
        assert_eq!(d["old_display_name"], "vm");
        let begin = d["audit_period"]["nova_object.data"]["audit_period_beginning"]
            .as_str()
            .unwrap();
        assert!(begin.ends_with("-01T00:00:00Z"), "{begin}");
        // vm_state mode: a task change alone reports no transition.
        let cfg = NotificationConfig {
            format: NotificationFormat::Versioned,
            drivers: vec![Driver::MessagingV2],
            notify_on_state_change: Some(StateChange::VmState),
            ..NotificationConfig::default()
        };
        Notifier::new(cfg, Some(t.clone()), None)
            .instance_update(&ctx, &inst, &old, Source::Compute, "h")
            .await;
        let got = versioned.next().await.unwrap();
        let su = &got.notification.payload["nova_object.data"]["state_update"]["nova_object.data"];
        assert_eq!(su["old_task_state"], "powering-off");
    }

    #[test]
    fn fixed_ips_come_from_the_network_info_as_novas_ip_payloads() {
        let nw = json!([{
            "id": "ce531f90-199f-48c0-816c-13e38010b442",
            "address": "fa:16:3e:4c:2c:30",
            "devname": "tapce531f90-19",
            "meta": {},
            "network": {"label": "private", "subnets": [
                {"version": 4, "ips": [
                    {"address": "192.168.1.3", "type": "fixed", "version": 4,
                     "floating_ips": [{"address": "10.0.0.1", "type": "floating"}]}
                ]},
                {"version": 6, "ips": [{"address": "fd00::3", "type": "fixed", "version": 6}]}
            ]}
        }]);
        let ips = payloads::IpPayload::from_network_info(&nw);
        assert_eq!(ips.len(), 2, "fixed IPs only, of every subnet");
        let v = serde_json::to_value(&ips[0]).unwrap();
        assert_eq!(v["nova_object.name"], "IpPayload");
        assert_eq!(
            v["nova_object.data"],
            json!({"label": "private", "mac": "fa:16:3e:4c:2c:30", "meta": {},
                   "port_uuid": "ce531f90-199f-48c0-816c-13e38010b442", "version": 4,
                   "address": "192.168.1.3", "device_name": "tapce531f90-19"})
        );
        assert_eq!(ips[1].0.version, 6);
        let legacy = legacy::fixed_ips(&nw);
        assert_eq!(legacy[0]["label"], "private");
        assert_eq!(legacy[0]["vif_mac"], "fa:16:3e:4c:2c:30");
        assert_eq!(legacy.as_array().unwrap().len(), 2);
        assert!(payloads::IpPayload::from_network_info(&Value::Null).is_empty());
    }

    #[test]
    fn payload_fields_not_loaded_are_null_and_power_states_are_named() {
        let f = FlavorPayload::from_flavor(&Flavor::new().with_name(Some("x".into())));
        assert_eq!(f.flavorid, None);
        assert_eq!(f.projects, None);
        assert_eq!(f.extra_specs, None);
        assert_eq!(payloads::power_state_name(Some(4)), Some("shutdown"));
        assert_eq!(payloads::power_state_name(Some(0)), Some("pending"));
        assert_eq!(payloads::power_state_name(None), None);
        let v = serde_json::to_value(Obj(ExceptionPayload::new("m", "f", "E", "boom"))).unwrap();
        assert_eq!(v["nova_object.namespace"], "nova");
        assert_eq!(v["nova_object.data"]["exception_message"], "boom");
    }
}
