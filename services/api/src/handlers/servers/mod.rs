//! `/servers`: list (brief and detail, nova's filters, sorting, marker and
//! limit), show, create (min/max_count, networks, key_name, user_data,
//! metadata, availability_zone, scheduler hints), update, delete, the
//! actions (`actions`), and the instance actions (`os-instance-actions`).

mod actions;
mod create;
mod instance_actions;
mod list;
mod show;

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
