//! `[notifications]` and `[oslo_messaging_notifications]`: nova 34's
//! notification options and their defaults.

use std::str::FromStr;

use crate::audit_period::AuditPeriod;
use crate::conf::{Conf, ConfError};

/// `[notifications] notification_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotificationFormat {
    /// Only the legacy (unversioned) notifications: nova's default.
    #[default]
    Unversioned,
    /// Only the versioned notifications.
    Versioned,
    /// Both.
    Both,
}

impl NotificationFormat {
    /// Whether versioned notifications are sent.
    pub fn versioned(self) -> bool {
        matches!(self, Self::Versioned | Self::Both)
    }

    /// Whether legacy notifications are sent.
    pub fn unversioned(self) -> bool {
        matches!(self, Self::Unversioned | Self::Both)
    }
}

impl FromStr for NotificationFormat {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "unversioned" => Ok(Self::Unversioned),
            "versioned" => Ok(Self::Versioned),
            "both" => Ok(Self::Both),
            _ => Err(()),
        }
    }
}

/// `[notifications] notify_on_state_change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    /// `vm_state`: an update when the vm state changes.
    VmState,
    /// `vm_and_task_state`: an update when the vm or the task state changes.
    VmAndTaskState,
}

/// One `[oslo_messaging_notifications] driver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `messagingv2`: enveloped messages on the notification transport.
    MessagingV2,
    /// `messaging`: the same without the envelope.
    Messaging,
    /// `log`: each notification logged (target `oslo.messaging.notification`).
    Log,
    /// `noop`: nothing.
    Noop,
}

impl FromStr for Driver {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "messagingv2" => Ok(Self::MessagingV2),
            "messaging" => Ok(Self::Messaging),
            "log" => Ok(Self::Log),
            "noop" => Ok(Self::Noop),
            _ => Err(()),
        }
    }
}

/// The notification options (defaults are nova 34's and oslo.messaging's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationConfig {
    /// `[notifications] notification_format` (default `unversioned`).
    pub format: NotificationFormat,
    /// `[notifications] versioned_notifications_topics` (default
    /// `versioned_notifications`).
    pub versioned_topics: Vec<String>,
    /// `[notifications] notify_on_state_change` (default none: no
    /// `instance.update`).
    pub notify_on_state_change: Option<StateChange>,
    /// `[notifications] bdms_in_notifications` (default false): instance
    /// payloads list the volume attachments.
    pub bdms_in_notifications: bool,
    /// `[notifications] include_share_mapping` (default false): instance
    /// payloads list the shares.
    pub include_share_mapping: bool,
    /// `[oslo_messaging_notifications] driver` (a comma-separated list here;
    /// default none, which as in oslo.messaging sends nothing).
    pub drivers: Vec<Driver>,
    /// `[oslo_messaging_notifications] transport_url` (default: the RPC
    /// `[DEFAULT] transport_url`).
    pub transport_url: Option<String>,
    /// `[oslo_messaging_notifications] topics`, the legacy notifications'
    /// topics (default `notifications`).
    pub topics: Vec<String>,
    /// `[DEFAULT] instance_usage_audit_period` (default `month`): the
    /// period the notifications' `audit_period` bounds are of.
    pub audit_period: AuditPeriod,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        NotificationConfig {
            format: NotificationFormat::default(),
            versioned_topics: vec!["versioned_notifications".to_owned()],
            notify_on_state_change: None,
            bdms_in_notifications: false,
            include_share_mapping: false,
            drivers: Vec::new(),
            transport_url: None,
            topics: vec!["notifications".to_owned()],
            audit_period: AuditPeriod::default(),
        }
    }
}

fn invalid(section: &str, key: &str, v: &str, expected: &str) -> ConfError {
    ConfError(format!(
        "invalid value '{v}' for [{section}] {key}: expected {expected}"
    ))
}

impl NotificationConfig {
    /// Reads the options; an unknown value is an error naming the option.
    pub fn from_conf(conf: &Conf) -> Result<Self, ConfError> {
        let mut cfg = NotificationConfig::default();
        let n = "notifications";
        if let Some(v) = conf.get(n, "notification_format").filter(|v| !v.is_empty()) {
            cfg.format = v.parse().map_err(|()| {
                invalid(
                    n,
                    "notification_format",
                    v,
                    "unversioned, versioned or both",
                )
            })?;
        }
        if let Some(topics) = conf.list(n, "versioned_notifications_topics") {
            cfg.versioned_topics = topics;
        }
        cfg.notify_on_state_change = match conf.get(n, "notify_on_state_change") {
            None | Some("") | Some("None") => None,
            Some("vm_state") => Some(StateChange::VmState),
            Some("vm_and_task_state") => Some(StateChange::VmAndTaskState),
            Some(v) => {
                return Err(invalid(
                    n,
                    "notify_on_state_change",
                    v,
                    "vm_state or vm_and_task_state",
                ));
            }
        };
        cfg.bdms_in_notifications = conf.bool_or(n, "bdms_in_notifications", false)?;
        cfg.include_share_mapping = conf.bool_or(n, "include_share_mapping", false)?;
        // nova 34 validates but does not use it.
        if let Some(v) = conf.get(n, "default_level").filter(|v| !v.is_empty())
            && !["DEBUG", "INFO", "WARN", "ERROR", "CRITICAL"].contains(&v)
        {
            return Err(invalid(
                n,
                "default_level",
                v,
                "DEBUG, INFO, WARN, ERROR or CRITICAL",
            ));
        }
        let o = "oslo_messaging_notifications";
        if let Some(drivers) = conf.list(o, "driver") {
            cfg.drivers = drivers
                .iter()
                .map(|d| {
                    d.parse().map_err(|()| {
                        invalid(o, "driver", d, "messagingv2, messaging, log or noop")
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        cfg.transport_url = conf
            .get(o, "transport_url")
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        if let Some(topics) = conf.list(o, "topics") {
            cfg.topics = topics;
        }
        cfg.audit_period = AuditPeriod::from_conf(conf)?;
        Ok(cfg)
    }

    /// The message driver in use, if any (`messagingv2` wins over `messaging`).
    pub fn messaging(&self) -> Option<Driver> {
        if self.drivers.contains(&Driver::MessagingV2) {
            Some(Driver::MessagingV2)
        } else if self.drivers.contains(&Driver::Messaging) {
            Some(Driver::Messaging)
        } else {
            None
        }
    }

    /// Whether the `log` driver is on.
    pub fn logs(&self) -> bool {
        self.drivers.contains(&Driver::Log)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_nova_34s() {
        let c = NotificationConfig::from_conf(&Conf::new()).unwrap();
        assert_eq!(c, NotificationConfig::default());
        assert_eq!(c.format, NotificationFormat::Unversioned);
        assert_eq!(c.versioned_topics, ["versioned_notifications"]);
        assert_eq!(c.topics, ["notifications"]);
        assert!(c.drivers.is_empty() && c.messaging().is_none() && !c.logs());
        assert_eq!(c.notify_on_state_change, None);
    }

    #[test]
    fn options_parse_and_bad_values_name_the_option() {
        let mut conf = Conf::parse(
            "[notifications]\nnotification_format = both\nversioned_notifications_topics = a, b\nnotify_on_state_change = vm_and_task_state\n\
             [oslo_messaging_notifications]\ndriver = messagingv2, log\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\ntopics = legacy\n",
        )
        .unwrap();
        assert!(
            conf.unknown_options().is_empty(),
            "{:?}",
            conf.unknown_options()
        );
        let c = NotificationConfig::from_conf(&conf).unwrap();
        assert_eq!(c.format, NotificationFormat::Both);
        assert_eq!(c.versioned_topics, ["a", "b"]);
        assert_eq!(c.notify_on_state_change, Some(StateChange::VmAndTaskState));
        assert_eq!(c.messaging(), Some(Driver::MessagingV2));
        assert!(c.logs());
        assert_eq!(
            c.transport_url.as_deref(),
            Some("rabbit://guest:guest@127.0.0.1:5672/")
        );
        assert_eq!(c.topics, ["legacy"]);
        conf.set("notifications", "bdms_in_notifications", "true");
        assert!(
            NotificationConfig::from_conf(&conf)
                .unwrap()
                .bdms_in_notifications
        );
        conf.set("notifications", "default_level", "LOUD");
        let e = NotificationConfig::from_conf(&conf)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[notifications] default_level"), "{e}");
        conf.set("notifications", "default_level", "INFO");
        conf.set("notifications", "notification_format", "json");
        let e = NotificationConfig::from_conf(&conf)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[notifications] notification_format"), "{e}");
        conf.set("notifications", "notification_format", "versioned");
        conf.set("oslo_messaging_notifications", "driver", "kafka");
        let e = NotificationConfig::from_conf(&conf)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[oslo_messaging_notifications] driver"), "{e}");
        conf.set("oslo_messaging_notifications", "driver", "noop");
        conf.set("notifications", "notify_on_state_change", "always");
        let e = NotificationConfig::from_conf(&conf)
            .unwrap_err()
            .to_string();
        assert!(e.contains("notify_on_state_change"), "{e}");
    }
}
