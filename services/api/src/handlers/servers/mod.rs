//! `/servers`: list (brief and detail, nova's filters, sorting, marker and
//! limit), show, create (min/max_count, networks, key_name, user_data,
//! metadata, availability_zone, scheduler hints), update, delete, and the
//! actions `reboot`, `os-stop`, `os-start`.

mod actions;
mod create;
mod list;
mod show;

use std::sync::Arc;

use axum::extract::{Query, State};

use crate::ApiState;

pub(crate) use actions::action;
pub(crate) use create::create;
pub(crate) use list::{detail, list};
pub(crate) use show::{delete, show, update};

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;
