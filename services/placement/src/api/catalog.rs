//! Resource classes (1.2) and traits (1.6): the standard ones and the
//! `CUSTOM_*` ones operators create.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use nova_scheduler::placement::{
    PlacementError, STANDARD_RESOURCE_CLASSES, is_standard_trait, standard_traits,
    valid_custom_name,
};
use serde_json::{Value, json};

use super::util::{self, Query};
use super::{
    ApiError, ApiResult, Mv, Prefix, St, Who, admin_or_service, empty, fresh_at, newest,
    newest_or_now,
};
use crate::Stamped;
use crate::service::Custom;

fn too_old(v: Mv, min: u16) -> Result<(), ApiError> {
    if v.at(min) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

fn class_json(name: &str, prefix: &str) -> Value {
    json!({"name": name, "links": [{"rel": "self", "href": format!("{prefix}/resource_classes/{name}")}]})
}

fn created(prefix: &str, path: &str) -> Response {
    located(StatusCode::CREATED, prefix, path)
}

fn located(status: StatusCode, prefix: &str, path: &str) -> Response {
    let mut r = empty(status);
    if let Ok(l) = HeaderValue::from_str(&format!("{prefix}{path}")) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r
}

async fn classes(st: &St) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = STANDARD_RESOURCE_CLASSES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    out.extend(
        st.placement
            .custom_names_async(Custom::ResourceClasses)
            .await?,
    );
    Ok(out)
}

fn custom_class(name: &str) -> Result<(), ApiError> {
    if name.chars().count() > 255 {
        return Err(util::invalid_at(format!("'{name}' is too long"), "name"));
    }
    if valid_custom_name(name) {
        Ok(())
    } else {
        Err(util::invalid_at(
            format!("'{name}' does not match '^CUSTOM\\_[A-Z0-9_]+$'"),
            "name",
        ))
    }
}

pub(crate) async fn list_classes(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Extension(prefix): Extension<Prefix>,
) -> ApiResult {
    too_old(v, 2)?;
    admin_or_service(&st.policy, &who, "placement:resource_classes:list")?;
    let all = classes(&st).await?;
    let list: Vec<Value> = all.iter().map(|n| class_json(n, &prefix.0)).collect();
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    let at = newest_or_now(&st, Stamped::Names(Custom::ResourceClasses, &names)).await?;
    Ok(fresh_at(
        Json(json!({"resource_classes": list})).into_response(),
        v,
        Some(at),
    ))
}

pub(crate) async fn create_class(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Extension(prefix): Extension<Prefix>,
    body: Bytes,
) -> ApiResult {
    too_old(v, 2)?;
    admin_or_service(&st.policy, &who, "placement:resource_classes:create")?;
    let m = util::body_object(&body)?;
    util::keys(&m, &["name"], &["name"])?;
    let name = util::string(&m, "name")?.unwrap_or_default().to_owned();
    custom_class(&name)?;
    if !st
        .placement
        .add_custom_name_async(Custom::ResourceClasses, &name)
        .await?
    {
        return Err(ApiError::conflict(format!(
            "Conflicting resource class already exists: {name}"
        ))
        .code("placement.duplicate_name"));
    }
    Ok(created(&prefix.0, &format!("/resource_classes/{name}")))
}

pub(crate) async fn get_class(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Extension(prefix): Extension<Prefix>,
    Path(name): Path<String>,
) -> ApiResult {
    too_old(v, 2)?;
    admin_or_service(&st.policy, &who, "placement:resource_classes:show")?;
    if !classes(&st).await?.contains(&name) {
        return Err(ApiError::not_found(format!(
            "No such resource class with name {name}"
        )));
    }
    let at = newest_or_now(&st, Stamped::Names(Custom::ResourceClasses, &[&name])).await?;
    Ok(fresh_at(
        Json(class_json(&name, &prefix.0)).into_response(),
        v,
        Some(at),
    ))
}

pub(crate) async fn put_class(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Extension(prefix): Extension<Prefix>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    too_old(v, 2)?;
    admin_or_service(&st.policy, &who, "placement:resource_classes:update")?;
    if v.at(7) {
        // Create or confirm.
        custom_class(&name)?;
        let added = st
            .placement
            .add_custom_name_async(Custom::ResourceClasses, &name)
            .await?;
        let status = if added {
            StatusCode::CREATED
        } else {
            StatusCode::NO_CONTENT
        };
        return Ok(located(
            status,
            &prefix.0,
            &format!("/resource_classes/{name}"),
        ));
    }
    // 1.2 - 1.6: rename a custom class.
    let m = util::body_object(&body)?;
    util::keys(&m, &["name"], &["name"])?;
    let new = util::string(&m, "name")?.unwrap_or_default().to_owned();
    custom_class(&new)?;
    if STANDARD_RESOURCE_CLASSES.contains(&name.as_str()) {
        return Err(ApiError::bad(format!(
            "Cannot update standard resource class {name}"
        )));
    }
    let all = classes(&st).await?;
    if !all.contains(&name) {
        return Err(ApiError::not_found(format!(
            "No such resource class with name {name}"
        )));
    }
    if all.contains(&new) {
        return Err(
            ApiError::conflict(format!("Resource class already exists: {new}"))
                .code("placement.duplicate_name"),
        );
    }
    // A class in use keeps its name (its rows name it).
    st.placement
        .remove_custom_name_async(Custom::ResourceClasses, &name)
        .await
        .map_err(|e| match e {
            PlacementError::InUse(_) => ApiError::conflict(format!(
                "Unable to rename resource class {name}: it is in use"
            )),
            other => other.into(),
        })?;
    st.placement
        .add_custom_name_async(Custom::ResourceClasses, &new)
        .await?;
    Ok(Json(class_json(&new, &prefix.0)).into_response())
}

pub(crate) async fn delete_class(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(name): Path<String>,
) -> ApiResult {
    too_old(v, 2)?;
    admin_or_service(&st.policy, &who, "placement:resource_classes:delete")?;
    if STANDARD_RESOURCE_CLASSES.contains(&name.as_str()) {
        return Err(ApiError::bad(format!(
            "Error in delete resource class: Cannot delete standard resource class {name}."
        )));
    }
    match st
        .placement
        .remove_custom_name_async(Custom::ResourceClasses, &name)
        .await
    {
        Ok(()) => Ok(empty(StatusCode::NO_CONTENT)),
        Err(PlacementError::InUse(_)) => Err(ApiError::conflict(format!(
            "Error in delete resource class: Cannot delete resource class {name}. Class is in use in inventory."
        ))),
        Err(PlacementError::NotFound(_)) => Err(ApiError::not_found(format!(
            "No such resource class with name {name}"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn list_traits(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    too_old(v, 6)?;
    admin_or_service(&st.policy, &who, "placement:traits:list")?;
    let q = Query::parse(raw.as_deref());
    q.only(|k| k == "name" || k == "associated")?;
    let mut all: BTreeSet<String> = standard_traits().map(str::to_owned).collect();
    all.extend(st.placement.custom_names_async(Custom::Traits).await?);
    if let Some(n) = q.get("name") {
        if let Some(list) = n.strip_prefix("in:") {
            let want: BTreeSet<&str> = list.split(',').map(str::trim).collect();
            all.retain(|t| want.contains(t.as_str()));
        } else if let Some(p) = n.strip_prefix("startswith:") {
            all.retain(|t| t.starts_with(p));
        } else {
            return Err(ApiError::bad(format!(
                "Badly formatted name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"{n}\""
            )));
        }
    }
    if let Some(a) = q.get("associated") {
        let want = match a.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ApiError::bad(
                    "The query parameter \"associated\" only accepts \"true\" or \"false\"",
                ));
            }
        };
        let mut used = BTreeSet::new();
        for rp in st.placement.list_providers_async(None, None).await? {
            used.extend(st.placement.traits_async(&rp.uuid).await?.1);
        }
        all.retain(|t| used.contains(t) == want);
    }
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    let at = newest_or_now(&st, Stamped::Names(Custom::Traits, &names)).await?;
    Ok(fresh_at(
        Json(json!({"traits": all})).into_response(),
        v,
        Some(at),
    ))
}

async fn trait_exists(st: &St, name: &str) -> Result<bool, ApiError> {
    Ok(is_standard_trait(name)
        || st
            .placement
            .custom_names_async(Custom::Traits)
            .await?
            .contains(name))
}

pub(crate) async fn get_trait(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(name): Path<String>,
) -> ApiResult {
    too_old(v, 6)?;
    admin_or_service(&st.policy, &who, "placement:traits:show")?;
    if trait_exists(&st, &name).await? {
        // Placement's `trait.created_at`.
        let at = newest(&st, Stamped::Names(Custom::Traits, &[&name])).await?;
        Ok(fresh_at(empty(StatusCode::NO_CONTENT), v, at))
    } else {
        Err(ApiError::not_found(format!("No such trait(s): {name}")))
    }
}

pub(crate) async fn put_trait(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Extension(prefix): Extension<Prefix>,
    Path(name): Path<String>,
) -> ApiResult {
    too_old(v, 6)?;
    admin_or_service(&st.policy, &who, "placement:traits:update")?;
    if !valid_custom_name(&name) {
        return Err(ApiError::bad(
            "The trait is invalid. A valid trait must be no longer than 255 characters, start with the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", \"0\"-\"9\" and \"_\"",
        ));
    }
    let added = st
        .placement
        .add_custom_name_async(Custom::Traits, &name)
        .await?;
    // A new trait: now; one already there: its stored `created_at`.
    let (status, at) = if added {
        (StatusCode::CREATED, Some(chrono::Utc::now()))
    } else {
        (
            StatusCode::NO_CONTENT,
            newest(&st, Stamped::Names(Custom::Traits, &[&name])).await?,
        )
    };
    let r = located(status, &prefix.0, &format!("/traits/{name}"));
    Ok(fresh_at(r, v, at))
}

pub(crate) async fn delete_trait(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(name): Path<String>,
) -> ApiResult {
    too_old(v, 6)?;
    admin_or_service(&st.policy, &who, "placement:traits:delete")?;
    if is_standard_trait(&name) {
        return Err(ApiError::bad(format!(
            "Cannot delete standard trait {name}."
        )));
    }
    match st
        .placement
        .remove_custom_name_async(Custom::Traits, &name)
        .await
    {
        Ok(()) => Ok(empty(StatusCode::NO_CONTENT)),
        Err(PlacementError::InUse(_)) => Err(ApiError::conflict(format!(
            "The trait {name} is in use by a resource provider."
        ))),
        Err(PlacementError::NotFound(_)) => {
            Err(ApiError::not_found(format!("No such trait(s): {name}")))
        }
        Err(e) => Err(e.into()),
    }
}
