//! What every nova-rs service binary shares.
//!
//! * [`Runner`]: one service process around its manager — config,
//!   logging, transport, database, Placement, the service record and its
//!   heartbeats, RPC servers, HTTP servers, periodic tasks, and a graceful
//!   drain on SIGTERM/SIGINT. A binary's `main` is its [`ConfigArgs`] and
//!   one call into its crate's `run(runner)`.
//! * [`Conf`]: the operator's `nova.conf` (INI, oslo.config option names),
//!   with `NOVA_<SECTION>_<KEY>` environment overrides; unknown options
//!   warn, invalid values stop start-up with a message naming the option.
//! * [`init_tracing`], [`shutdown_token`] (SIGINT/SIGTERM → graceful stop),
//!   [`connect_transport`] (`memory://` or `rabbit://`), [`open_database`].
//! * [`heartbeat`]: the service group record (`report_interval`,
//!   `service_down_time`), and [`periodic`] tasks.
//! * [`states`]: vm, task and power states and the API status table.
//! * [`authtoken`]: keystonemiddleware's `auth_token` (a real Keystone
//!   validates tokens, `[keystone_authtoken]`).
//! * [`service_auth`]: `[service_user]`, the service token sent beside a
//!   user's on calls made on the user's behalf ([`Runner::service_user`]).
//! * [`instance_actions`]: instance actions and their events.
//! * [`metrics`]: Prometheus metrics (`[metrics]`), `/metrics`.
//! * [`notifications`]: nova's versioned and legacy notifications
//!   ([`notifications::Notifier`], built once by [`Runner::notifier`]).
//! * [`testing`]: a service binary run by a test as a process.

pub mod audit_period;
pub mod authtoken;
pub mod cells;
mod conf;
pub mod consoles;
pub mod context;
pub mod instance_actions;
pub mod instance_name;
pub mod metrics;
pub mod moves;
pub mod neutron;
pub mod notifications;
mod runner;
mod service;
pub mod service_auth;
pub mod states;
pub mod task_log;
pub mod testing;

pub use conf::{Conf, ConfError, KNOWN_OPTIONS};
pub use runner::{
    connect_transport, connect_transport_url, ensure_sqlite_dir, heartbeat, init_tracing, is_up,
    open_database, periodic, register_service, shutdown_token,
};
pub use service::{ConfigArgs, HTTP_DRAIN_TIMEOUT, Runner, compute_version_cap};
