//! Functional tests of the reference services: one process (`Cluster`),
//! the real `openstack` CLI against `nova-all`, and every service as its
//! own process over RabbitMQ and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod actions;
mod api;
mod boot;
mod cli;
mod cluster;
mod consoles;
mod multiprocess;
#[cfg(feature = "amqp")]
mod notifications;
#[cfg(all(feature = "amqp", feature = "postgres"))]
mod nova_clients;
mod real_placement;
mod subresources;
#[cfg(feature = "amqp")]
mod vhost;
