//! Request bodies and query strings, checked as Placement checks them.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::ApiError;

/// The JSON object of a request body, or Placement's 400.
pub(crate) fn body_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("Malformed JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(invalid(format!("{other} is not of type 'object'"))),
    }
}

/// The JSON value of a request body.
pub(crate) fn body_value(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("Malformed JSON: {e}")))
}

/// A JSON value as Python prints it in jsonschema's messages.
pub(crate) fn py(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(py).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("'{k}': {}", py(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// A schema refusal at property `field`.
pub(crate) fn invalid_at(msg: impl std::fmt::Display, field: &str) -> ApiError {
    let mut e = invalid(msg);
    e.detail.push_str(&format!("['properties']['{field}']"));
    e
}

/// A schema refusal, worded as jsonschema's (the failed keyword named).
pub(crate) fn invalid(msg: impl std::fmt::Display) -> ApiError {
    let mut msg = msg.to_string();
    for (old, new) in [
        ("[] is too short", "[] should be non-empty"),
        (
            "{} does not have enough properties",
            "{} should be non-empty",
        ),
    ] {
        msg = msg.replace(old, new);
    }
    let keyword = [
        ("[] should be non-empty", "minItems"),
        ("{} should be non-empty", "minProperties"),
        ("is not of type", "type"),
        ("is a required property", "required"),
        ("Additional properties", "additionalProperties"),
        ("less than the minimum", "minimum"),
        ("greater than the maximum", "maximum"),
        ("is too short", "minItems"),
        ("does not have enough properties", "minProperties"),
        ("does not match any of the regexes", "additionalProperties"),
        ("does not match", "pattern"),
        ("non-unique elements", "uniqueItems"),
        ("is not a 'uuid'", "format"),
        ("is too long", "maxLength"),
        ("should be non-empty", "minLength"),
        ("is too short (string)", "minLength"),
        ("is not one of", "enum"),
    ]
    .iter()
    .find(|(k, _)| msg.contains(k))
    .map_or("type", |(_, kw)| kw);
    ApiError::bad(format!(
        "JSON does not validate: {msg}\n\nFailed validating '{keyword}' in schema"
    ))
}

/// Refuses keys outside `allowed` (`additionalProperties: false`) and
/// missing `required` ones.
pub(crate) fn keys(
    m: &Map<String, Value>,
    allowed: &[&str],
    required: &[&str],
) -> Result<(), ApiError> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(invalid(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    for r in required {
        if !m.contains_key(*r) {
            return Err(invalid(format!("'{r}' is a required property")));
        }
    }
    Ok(())
}

/// An integer field in `min..=max`.
pub(crate) fn int(
    m: &Map<String, Value>,
    k: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(v) = m.get(k) else { return Ok(None) };
    let n = match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => n.as_i64().unwrap_or(i64::MAX),
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            n.as_f64().map_or(i64::MAX, |f| f as i64)
        }
        other => {
            return Err(invalid_at(
                format!("{} is not of type 'integer'", py(other)),
                k,
            ));
        }
    };
    if n < min {
        return Err(invalid_at(
            format!("{n} is less than the minimum of {min}"),
            k,
        ));
    }
    if n > max {
        return Err(invalid_at(
            format!("{n} is greater than the maximum of {max}"),
            k,
        ));
    }
    Ok(Some(n))
}

/// A string field.
pub(crate) fn string<'a>(m: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid_at(
            format!("{} is not of type 'string'", py(other)),
            k,
        )),
    }
}

/// A string field of `min..=max` characters.
pub(crate) fn text<'a>(
    m: &'a Map<String, Value>,
    k: &str,
    min: usize,
    max: usize,
) -> Result<Option<&'a str>, ApiError> {
    let Some(s) = string(m, k)? else {
        return Ok(None);
    };
    let n = s.chars().count();
    if n < min {
        return Err(invalid_at(
            if min == 1 {
                format!("'{s}' should be non-empty")
            } else {
                format!("'{s}' is too short (string)")
            },
            k,
        ));
    }
    if n > max {
        return Err(invalid_at(format!("'{s}' is too long"), k));
    }
    Ok(Some(s))
}

/// Whether `s` is a uuid (dashed or not).
pub(crate) fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok()
}

/// A uuid in its dashed lower-case form.
pub(crate) fn norm_uuid(s: &str) -> Option<String> {
    uuid::Uuid::try_parse(s).ok().map(|u| u.to_string())
}

/// A query string as ordered (key, value) pairs.
#[derive(Debug, Default)]
pub(crate) struct Query(pub(crate) Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    /// The last value of `k`.
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of `k`.
    pub(crate) fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(x, _)| x == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// Refuses keys that `ok` rejects.
    pub(crate) fn only(&self, ok: impl Fn(&str) -> bool) -> Result<(), ApiError> {
        for (k, _) in &self.0 {
            if !ok(k) {
                return Err(ApiError::bad(format!(
                    "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                )));
            }
        }
        Ok(())
    }
}

/// `resources=VCPU:1,MEMORY_MB:512`.
pub(crate) fn parse_resources(v: &str) -> Result<Vec<(String, i64)>, ApiError> {
    let form = "Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024.";
    if v.trim().is_empty() {
        return Err(ApiError::bad(format!("{form} Got: empty string.")));
    }
    let mut out: Vec<(String, i64)> = Vec::new();
    for part in v.split(',') {
        let mut it = part.split(':');
        let (Some(rc), Some(n), None) = (it.next(), it.next(), it.next()) else {
            return Err(ApiError::bad(format!("{form} Got: {part}.")));
        };
        let n: i64 = n.trim().parse().map_err(|_| {
            ApiError::bad(format!(
                "Requested resource {rc} expected positive integer amount. Got: {n}."
            ))
        })?;
        if n < 1 {
            return Err(ApiError::bad(format!(
                "Requested resource {rc} requires amount >= 1. Got: {n}."
            )));
        }
        match out.iter_mut().find(|(r, _)| r == rc) {
            Some(e) => e.1 = n,
            None => out.push((rc.to_owned(), n)),
        }
    }
    Ok(out)
}

/// Required traits of one `required` value: (each set of which one is
/// needed, forbidden). `in:A,B` (1.39) is one any-of set.
pub(crate) type TraitQuery = (Vec<BTreeSet<String>>, BTreeSet<String>);

/// Parses every `required` value (several from 1.35 / 1.39).
pub(crate) fn parse_required(values: &[&str], v: super::Mv) -> Result<TraitQuery, ApiError> {
    let mut any_of = Vec::new();
    let mut forbidden = BTreeSet::new();
    for raw in values {
        let raw = raw.trim();
        if let Some(list) = raw.strip_prefix("in:") {
            if !v.at(39) {
                return Err(ApiError::bad(format!(
                    "The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' only supported since microversion 1.39. Got: {raw}"
                )));
            }
            let set: BTreeSet<String> = list.split(',').map(|s| s.trim().to_owned()).collect();
            if set.iter().any(|t| t.is_empty() || t.starts_with('!')) {
                return Err(bad_traits(raw, v));
            }
            any_of.push(set);
            continue;
        }
        if raw.is_empty() {
            return Err(bad_traits(raw, v));
        }
        for t in raw.split(',') {
            let t = t.trim();
            if let Some(f) = t.strip_prefix('!') {
                if !v.at(22) || f.is_empty() {
                    return Err(bad_traits(raw, v));
                }
                forbidden.insert(f.to_owned());
            } else if t.is_empty() {
                return Err(bad_traits(raw, v));
            } else {
                any_of.push(BTreeSet::from([t.to_owned()]));
            }
        }
    }
    for set in &any_of {
        if set.len() == 1 && set.iter().all(|t| forbidden.contains(t)) {
            let t = set.iter().next().cloned().unwrap_or_default();
            return Err(ApiError::bad(format!(
                "Conflicting required and forbidden traits found in the following traits keys: required: ({t}, !{t})"
            )));
        }
    }
    Ok((any_of, forbidden))
}

fn bad_traits(raw: &str, v: super::Mv) -> ApiError {
    let form = if v.at(22) {
        "HW_CPU_X86_VMX,!CUSTOM_MAGIC"
    } else {
        "HW_CPU_X86_VMX,CUSTOM_MAGIC"
    };
    ApiError::bad(format!(
        "Invalid query string parameters: Expected 'required' parameter value of the form: {form}. Got: {raw}"
    ))
}

/// `member_of` values: (each set of which one is needed, forbidden).
pub(crate) fn parse_member_of(values: &[&str], v: super::Mv) -> Result<TraitQuery, ApiError> {
    if values.len() > 1 && !v.at(24) {
        return Err(ApiError::bad(
            "Multiple member_of parameters are not supported until microversion 1.24.",
        ));
    }
    let mut any_of = Vec::new();
    let mut forbidden = BTreeSet::new();
    for raw in values {
        let (neg, rest) = match raw.strip_prefix('!') {
            Some(r) if v.at(32) => (true, r),
            Some(_) => {
                return Err(ApiError::bad(
                    "Forbidden member_of parameters are not supported in the specified microversion",
                ));
            }
            None => (false, *raw),
        };
        let (is_in, list) = match rest.strip_prefix("in:") {
            Some(l) => (true, l),
            None => (false, rest),
        };
        let ids: Vec<&str> = list.split(',').collect();
        if !is_in && ids.len() > 1 {
            return Err(ApiError::bad(
                "Multiple values for 'member_of' must be prefixed with the 'in:' or '!in:' keyword using the valid microversion.",
            ));
        }
        let mut set = BTreeSet::new();
        for id in ids {
            let Some(u) = norm_uuid(id.trim()) else {
                return Err(ApiError::bad(format!(
                    "Invalid query string parameters: Expected 'member_of' parameter to contain valid UUID(s). Got: {raw}"
                )));
            };
            set.insert(u);
        }
        if neg {
            forbidden.extend(set);
        } else {
            any_of.push(set);
        }
    }
    Ok((any_of, forbidden))
}
