//! `JsonFilter`: the `query` hint, a JSON expression such as
//! `["and", [">=", "$free_ram_mb", 1024], ["=", "$hypervisor_type", "QEMU"]]`
//! (operators `=`, `<`, `>`, `in`, `<=`, `>=`, `not`, `or`, `and`;
//! `$name[.key...]` reads the host's attributes).

use std::cmp::Ordering;

use serde_json::Value;

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `JsonFilter`.
#[derive(Debug)]
pub struct JsonFilter;

fn lookup(path: &str, host: &HostState) -> Option<Value> {
    let mut parts = path.split('.');
    let mut v = host.attr(parts.next()?)?;
    for p in parts {
        v = v.get(p)?.clone();
    }
    (!v.is_null()).then_some(v)
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Evaluates one expression; `None` for an unknown operator.
fn eval(query: &[Value], host: &HostState) -> Option<Value> {
    let Some((cmd, rest)) = query.split_first() else {
        return Some(Value::Bool(true));
    };
    let mut args = Vec::with_capacity(rest.len());
    for a in rest {
        let cooked = match a {
            Value::Array(q) => eval(q, host)?,
            Value::String(s) if s.is_empty() => continue,
            Value::String(s) => match s.strip_prefix('$') {
                Some(path) => match lookup(path, host) {
                    Some(v) => v,
                    None => continue,
                },
                None => a.clone(),
            },
            Value::Null => continue,
            other => other.clone(),
        };
        args.push(cooked);
    }
    let all = |f: fn(Ordering) -> bool| {
        args.len() >= 2
            && args[1..]
                .iter()
                .all(|b| compare(&args[0], b).is_some_and(f))
    };
    Some(match cmd.as_str()? {
        "=" => Value::Bool(all(|o| o == Ordering::Equal)),
        "<" => Value::Bool(all(|o| o == Ordering::Less)),
        ">" => Value::Bool(all(|o| o == Ordering::Greater)),
        "<=" => Value::Bool(all(|o| o != Ordering::Greater)),
        ">=" => Value::Bool(all(|o| o != Ordering::Less)),
        "in" => Value::Bool(args.len() >= 2 && args[1..].contains(&args[0])),
        "not" => Value::Array(args.iter().map(|a| Value::Bool(!truthy(a))).collect()),
        "or" => Value::Bool(args.iter().any(truthy)),
        "and" => Value::Bool(args.iter().all(truthy)),
        _ => return None,
    })
}

impl HostFilter for JsonFilter {
    fn name(&self) -> &'static str {
        "JsonFilter"
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let Some(q) = ctx.request.hint("query").filter(|q| !q.is_empty()) else {
            return true;
        };
        let Ok(Value::Array(query)) = serde_json::from_str::<Value>(q) else {
            return false;
        };
        match eval(&query, host) {
            Some(Value::Array(a)) => a.iter().any(truthy),
            Some(v) => truthy(&v),
            None => false,
        }
    }
}
