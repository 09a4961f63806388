//! `POST /servers/{id}/action`: the action's name is the body's one key.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::St;
use crate::auth::Ctx;
use crate::compute_api::{self, Action};
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, require_write};
use crate::schemas;

pub(crate) async fn action(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let Some((name, args)) = body
        .as_object()
        .and_then(|o| if o.len() == 1 { o.iter().next() } else { None })
    else {
        return Err(Fault::bad_request(
            "Malformed request body: an action body has exactly one key, the action name",
        ));
    };
    let action = match name.as_str() {
        "reboot" => Action::Reboot {
            hard: args["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("HARD")),
        },
        "os-stop" => Action::Stop,
        "os-start" => Action::Start,
        _ => {
            return Err(Fault::bad_request(format!(
                "There is no such action: {name}"
            )));
        }
    };
    require_write(&ctx, &format!("os_compute_api:servers:{name}"))?;
    if let Action::Reboot { .. } = action {
        schemas::check("reboot", crate::microversion::MIN, schemas::reboot, &body)?;
    }
    let inst = compute_api::get(&st, &ctx, &id).await?;
    compute_api::act(&st, &ctx, inst, action).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
