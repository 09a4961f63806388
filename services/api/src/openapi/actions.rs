//! `POST /servers/{id}/action`: one request body per action (a `oneOf` of
//! the schemas the handlers check with, `handlers::servers::actions::schema`,
//! each titled with its action and its microversion range), and the answer
//! of each action (nova 34's: 202 without a body for most, a body for
//! rescue, the console actions, evacuate before 2.14, rebuild, and
//! createImage / createBackup from 2.45; 204 for confirmResize).
//!
//! OpenAPI keys a response on its status alone, and the action route's
//! 202 has a body for some actions and none for others. A response that
//! documents `content` must come with its content type (schemathesis'
//! `content_type_conformance`), so a status documents `content` only where
//! every action answering with it at the document's microversion gives a
//! body; every status lists in `x-openstack-actions` the actions answering
//! with it, each with its body's schema (`null`: no body).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::handlers::consoles;
use crate::handlers::servers::actions::{self, ACTIONS};
use crate::microversion::{self, ApiVersion};

fn object(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required,
           "additionalProperties": false})
}

fn string() -> Value {
    json!({"type": "string"})
}

/// The server in a rebuild's answer: the show view (before 2.75 without
/// the extended attributes) with `adminPass`, and `user_data` from 2.57.
fn rebuilt(v: ApiVersion) -> Value {
    let mut s = super::responses::server(v);
    s["properties"]["adminPass"] = string();
    if v.at_least(2, 57) {
        s["properties"]["user_data"] = json!({"type": ["string", "null"]});
    }
    s
}

/// The success status of action `name` at `v` and its body (`None`: no
/// body); `passwords` is `[api] enable_instance_password`.
pub(crate) fn answer(name: &str, v: ApiVersion, passwords: bool) -> (&'static str, Option<Value>) {
    let pass = |required: bool| {
        object(
            json!({"adminPass": string()}),
            if required { &["adminPass"] } else { &[] },
        )
    };
    match name {
        "confirmResize" => ("204", None),
        "rescue" => ("200", Some(pass(passwords))),
        "os-getConsoleOutput" => (
            "200",
            Some(object(json!({"output": string()}), &["output"])),
        ),
        n if consoles::legacy_types(n).is_some() => {
            let console = object(json!({"type": string(), "url": string()}), &["type", "url"]);
            (
                "200",
                Some(object(json!({"console": console}), &["console"])),
            )
        }
        "evacuate" => ("200", (passwords && !v.at_least(2, 14)).then(|| pass(true))),
        "rebuild" => (
            "202",
            Some(object(json!({"server": rebuilt(v)}), &["server"])),
        ),
        "createImage" | "createBackup" => (
            "202",
            v.at_least(2, 45)
                .then(|| object(json!({"image_id": string()}), &["image_id"])),
        ),
        _ => ("202", None),
    }
}

/// The request body at `v`: every action served at `v`.
pub(super) fn request(v: ApiVersion) -> Value {
    let all: Vec<Value> = ACTIONS
        .iter()
        .filter(|a| a.serves(v))
        .filter_map(|a| {
            let mut s = actions::schema(a.name, v)?;
            s["title"] = json!(a.name);
            let mut range = Map::new();
            if a.min != microversion::MIN {
                range.insert("min".into(), json!(a.min.to_string()));
            }
            if a.max != microversion::MAX {
                range.insert("max".into(), json!(a.max.to_string()));
            }
            if !range.is_empty() {
                s["x-openstack-microversion"] = Value::Object(range);
            }
            Some(s)
        })
        .collect();
    json!({"oneOf": all})
}

/// The success responses at `v`, by status.
pub(super) fn responses(v: ApiVersion, passwords: bool) -> Map<String, Value> {
    let mut by_status: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for a in ACTIONS.iter().filter(|a| a.serves(v)) {
        let (code, body) = answer(a.name, v, passwords);
        by_status
            .entry(code)
            .or_default()
            .insert(a.name.to_owned(), body.unwrap_or(Value::Null));
    }
    let mut out = Map::new();
    for (code, answers) in by_status {
        let (with, without): (Vec<&String>, Vec<&String>) =
            answers.keys().partition(|k| !answers[*k].is_null());
        let names = |l: &[&String]| l.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        let mut description = String::from("success");
        if !with.is_empty() {
            description.push_str(&format!("; a JSON body: {}", names(&with)));
        }
        if !without.is_empty() {
            description.push_str(&format!("; no body: {}", names(&without)));
        }
        description.push_str(" (each action's body: x-openstack-actions)");
        let mut r = json!({"description": description});
        if without.is_empty() {
            let mut bodies: Vec<Value> = vec![];
            for b in answers.values() {
                if !bodies.contains(b) {
                    bodies.push(b.clone());
                }
            }
            r["content"] = json!({"application/json": {"schema": {"anyOf": bodies}}});
        }
        r["x-openstack-actions"] = Value::Object(answers);
        out.insert(code.to_owned(), r);
    }
    out
}
