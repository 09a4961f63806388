//! What nova checks in flavor requests beyond their JSON schemas
//! (`nova.compute.flavors.create`, the `name` format, the flavor-access
//! and extra-spec controllers): integers within the database's range,
//! a positive finite `rxtx_factor`, printable names without surrounding
//! spaces, descriptions, tenants, and extra specs (bounded keys and
//! values; nova's registry from 2.86).

use serde_json::Value;

use crate::fault::Fault;
use crate::microversion::ApiVersion;

/// nova's `db.constants.MAX_INT`.
pub(crate) const MAX_INT: i64 = 2_147_483_647;
/// nova's `SQL_SP_FLOAT_MAX`.
const SQL_SP_FLOAT_MAX: f64 = 3.40282e38;

fn invalid(reason: impl std::fmt::Display) -> Fault {
    Fault::bad_request(format!("Invalid input received: {reason}"))
}

/// nova's `utils.validate_integer` of a flavor field (`name` as nova
/// names it), given as a number or a string: `min..=MAX_INT`; absent: 0.
pub(crate) fn integer(v: &Value, name: &str, min: i64) -> Result<i64, Fault> {
    let n = match v {
        Value::Null => return Ok(0),
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let Some(n) = n else {
        // Too large for 64 bits, fractional, or not a number at all.
        return match v {
            Value::Number(x) if x.as_f64().is_some_and(|f| f.fract() == 0.0 && f > 0.0) => {
                Err(invalid(format!("{name} must be <= {MAX_INT}")))
            }
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                Err(invalid(format!("{name} must be <= {MAX_INT}")))
            }
            _ => Err(invalid(format!("{name} must be an integer"))),
        };
    };
    if n < min {
        return Err(invalid(format!("{name} must be >= {min}")));
    }
    if n > MAX_INT {
        return Err(invalid(format!("{name} must be <= {MAX_INT}")));
    }
    Ok(n)
}

/// `rxtx_factor`: a float in (0, SQL_SP_FLOAT_MAX]; absent: 1.0.
pub(crate) fn rxtx_factor(v: &Value) -> Result<f64, Fault> {
    let f = match v {
        Value::Null => return Ok(1.0),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match f {
        Some(f) if f.is_finite() && f > 0.0 && f <= SQL_SP_FLOAT_MAX => Ok(f),
        _ => Err(invalid(format!(
            "'rxtx_factor' argument must be a float between 0 and {SQL_SP_FLOAT_MAX:e}"
        ))),
    }
}

/// nova's `name` format: printable characters, no leading or trailing
/// whitespace (so not only whitespace).
pub(crate) fn printable_name(field: &str, name: &str) -> Result<(), Fault> {
    let bad = name.chars().any(char::is_control)
        || name.starts_with(char::is_whitespace)
        || name.ends_with(char::is_whitespace)
        || name.is_empty();
    if bad {
        return Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {name:?}. {name:?} is not a 'name': \
             names can only contain printable characters, without leading or trailing whitespace"
        )));
    }
    Ok(())
}

/// A flavor description (2.55): a string (up to 65,535 characters) or null.
pub(crate) fn description(v: &Value) -> Result<Option<String>, Fault> {
    match v {
        Value::Null => Ok(None),
        Value::String(s)
            if s.chars().count() <= 65_535
                && !s
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            Ok(Some(s.clone()))
        }
        Value::String(_) => Err(Fault::bad_request(
            "Invalid input for field/attribute description. The description must be printable and at most 65535 characters",
        )),
        other => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute description. Value: {other}. {other} is not of type 'string', 'null'"
        ))),
    }
}

/// A tenant of flavor access (nova's `tenant_id`: 1 to 255 characters).
pub(crate) fn tenant(t: &str) -> Result<(), Fault> {
    let n = t.chars().count();
    if n == 0 || n > 255 || t.chars().any(char::is_control) {
        return Err(Fault::bad_request(format!(
            "Invalid input for field/attribute tenant. Value: {t:?}. The tenant must be 1 to 255 printable characters"
        )));
    }
    Ok(())
}

/// One extra spec: the key as nova's schema (`^[a-zA-Z0-9-_:. ]{1,255}$`),
/// the value a string of at most 255 characters (a number or boolean is
/// its text), and from 2.86 nova's registry. Returns the stored value.
pub(crate) fn extra_spec(v: ApiVersion, key: &str, value: &Value) -> Result<String, Fault> {
    let key_ok = (1..=255).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:. ".contains(&b));
    if !key_ok {
        return Err(Fault::bad_request(format!(
            "Invalid input for field/attribute extra_specs. Value: {key:?}. Keys must be 1 to 255 of: letters, digits, '-', '_', ':', '.', ' '"
        )));
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        other => {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {other}. {other} is not of type 'string', 'number', 'boolean'"
            )));
        }
    };
    if text.chars().count() > 255 {
        return Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {key}. The value is longer than 255 characters"
        )));
    }
    if v.at_least(2, 86) {
        crate::extra_specs::validate(key, &text).map_err(Fault::bad_request)?;
    }
    Ok(text)
}
