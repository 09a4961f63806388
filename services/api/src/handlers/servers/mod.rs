//! `/servers`: list (brief and detail, nova's filters, sorting, marker and
//! limit), show, create (min/max_count, networks, key_name, user_data,
//! metadata, availability_zone, scheduler hints), update, delete, the
//! actions (`actions`), the instance actions (`os-instance-actions`), and
//! the sub-resources `metadata`, `tags` (2.26), `os-server-password`,
//! `diagnostics`, `topology` (2.78), `ips`, `os-interface`.

pub(crate) mod actions;
mod create;
pub(crate) mod extras;
pub(crate) mod instance_actions;
pub(crate) mod interfaces;
pub(crate) mod ips;
mod list;
pub(crate) mod metadata;
pub(crate) mod moves;
mod rebuilds;
mod show;
pub(crate) mod tags;

use std::sync::Arc;

use axum::extract::{Query, State};

use crate::ApiState;

pub(crate) use actions::action;
pub(crate) use create::create;
pub(crate) use instance_actions::{index as instance_actions, show as instance_action};
pub(crate) use list::{detail, list};
pub(crate) use show::{delete, show, update};

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;
