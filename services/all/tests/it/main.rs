//! Functional tests of the reference services: one process (`Cluster`),
//! the real `openstack` CLI against `nova-all`, and every service as its
//! own process over RabbitMQ and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod access;
mod actions;
mod api;
mod boot;
#[cfg(all(feature = "amqp", feature = "postgres"))]
mod chaos;
mod cli;
mod cluster;
mod consoles;
mod device_tags;
mod evacuate;
mod guest_network;
mod hostile;
mod interfaces;
mod keystone;
mod legacy_routes;
#[cfg(feature = "amqp")]
mod live_errors;
mod metadata;
mod metrics;
mod moves;
mod multiprocess;
mod network;
mod network_boot;
#[cfg(feature = "amqp")]
mod notifications;
#[cfg(all(feature = "amqp", feature = "postgres"))]
mod nova_clients;
mod openapi_conformance;
#[cfg(all(feature = "amqp", feature = "postgres"))]
mod own_infra;
#[cfg(feature = "libvirt")]
mod real_guest;
#[cfg(feature = "libvirt")]
mod real_interfaces;
#[cfg(feature = "libvirt")]
mod real_moves;
mod real_placement;
mod rebuild;
mod recovery;
mod restore_quota;
mod secgroups_fips;
mod service_user;
mod shelve;
mod subresources;
#[cfg(feature = "amqp")]
mod task_notifications;
mod tempest_fixes;
mod user_quotas;
#[cfg(feature = "amqp")]
mod vhost;
#[cfg(feature = "amqp")]
mod zone_notifications;
mod zones;
