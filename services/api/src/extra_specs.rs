//! Nova's flavor extra-spec validation (microversion 2.86+): the registry
//! of known extra specs — names (with parameters), value types, enums,
//! patterns and bounds — as data in `extra_specs.json`, written from
//! nova 34's registry by `scripts/extra_specs_table.py`, interpreted
//! here as nova's `validators.validate` does: a known name's value must
//! fit; an unknown name in a namespace nova owns (`hw:`, `trait:`, …) is
//! refused; anything else is free.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Row {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default, rename = "enum")]
    values: Option<Vec<String>>,
    #[serde(default)]
    min: Option<i64>,
    #[serde(default)]
    max: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct File {
    namespaces: Vec<String>,
    validators: Vec<Row>,
}

#[derive(Debug)]
struct Rule {
    name: Regex,
    row: Row,
    pattern: Option<Regex>,
}

#[derive(Debug, Default)]
struct Table {
    rules: Vec<Rule>,
    exact: HashMap<String, usize>,
    namespaces: Vec<Regex>,
}

fn whole(re: &str) -> Option<Regex> {
    Regex::new(&format!("^(?:{re})$")).ok()
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let Ok(file) = serde_json::from_str::<File>(include_str!("extra_specs.json")) else {
        tracing::error!("the extra spec table does not parse: extra specs are not validated");
        return Table::default();
    };
    let mut t = Table::default();
    for row in file.validators {
        let Some(name) = whole(&row.name) else {
            tracing::warn!(name = %row.name, "an extra spec name pattern does not compile");
            continue;
        };
        let pattern = row.pattern.as_deref().and_then(whole);
        t.exact.insert(row.name.clone(), t.rules.len());
        t.rules.push(Rule { name, row, pattern });
    }
    t.namespaces = file.namespaces.iter().filter_map(|n| whole(n)).collect();
    t
});

/// oslo's strict `bool_from_string`.
fn boolean(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "t" | "true" | "on" | "y" | "yes" | "0" | "f" | "false" | "off" | "n" | "no"
    )
}

fn check(rule: &Rule, value: &str) -> Result<(), String> {
    let r = &rule.row;
    match r.kind.as_str() {
        "int" => {
            let Ok(n) = value.trim().parse::<i64>() else {
                return Err(format!(
                    "Validation failed; '{value}' is not a valid integer value."
                ));
            };
            if let Some(max) = r.max
                && n > max
            {
                return Err(format!(
                    "Validation failed; '{value}' is greater than the max value of '{max}'."
                ));
            }
            if let Some(min) = r.min
                && n < min
            {
                return Err(format!(
                    "Validation failed; '{value}' is less than the min value of '{min}'."
                ));
            }
        }
        "bool" => {
            if !boolean(value) {
                return Err(format!(
                    "Validation failed; '{value}' is not a valid boolean-like value."
                ));
            }
        }
        _ => {
            if let Some(p) = &rule.pattern {
                if !p.is_match(value) {
                    return Err(format!(
                        "Validation failed; '{value}' is not of the format '{}'.",
                        r.pattern.as_deref().unwrap_or_default()
                    ));
                }
            } else if let Some(values) = &r.values
                && !values.iter().any(|x| x == value)
            {
                return Err(format!(
                    "Validation failed; '{value}' is not one of: {}.",
                    values.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// Nova's `validators.validate(name, value)`: `Err` is its message.
pub(crate) fn validate(name: &str, value: &str) -> Result<(), String> {
    let t = &*TABLE;
    if let Some(&i) = t.exact.get(name) {
        return check(&t.rules[i], value);
    }
    if let Some(rule) = t.rules.iter().find(|r| r.name.is_match(name)) {
        return check(rule, value);
    }
    let Some((ns, _)) = name.split_once(':') else {
        return Ok(());
    };
    if t.namespaces.iter().any(|n| n.is_match(ns)) {
        return Err(format!(
            "Validation failed; extra spec '{name}' does not appear to be a valid extra spec."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_loads_whole() {
        assert!(TABLE.rules.len() > 500, "{}", TABLE.rules.len());
        assert_eq!(TABLE.rules.len(), TABLE.exact.len());
        assert_eq!(TABLE.namespaces.len(), 12);
    }

    #[test]
    fn known_namespaces_are_checked_as_nova_checks_them() {
        for ok in [
            ("hw:cpu_policy", "dedicated"),
            ("hw:numa_nodes", "2"),
            ("hw:numa_cpus.0", "0-3"),
            ("hw:mem_encryption", "True"),
            ("trait:HW_CPU_X86_AVX2", "required"),
            ("resources:VCPU", "2"),
            ("resources1:CUSTOM_GPU", "1"),
            ("quota:cpu_quota", "10000"),
            ("custom:anything", "goes"),
            ("plain", "value"),
            ("aggregate_instance_extra_specs:ssd", "true"),
        ] {
            assert_eq!(validate(ok.0, ok.1), Ok(()), "{ok:?}");
        }
        for (k, v, why) in [
            ("hw:cpu_policy", "fast", "is not one of"),
            ("hw:numa_nodes", "two", "is not a valid integer"),
            ("hw:numa_nodes", "0", "less than the min"),
            ("hw:mem_encryption", "maybe", "boolean-like"),
            (
                "hw:no_such_thing",
                "1",
                "does not appear to be a valid extra spec",
            ),
            ("trait:HW_CPU_X86_AVX2", "preferred", "is not one of"),
        ] {
            let e = validate(k, v).unwrap_err();
            assert!(e.contains(why), "{k}={v}: {e}");
        }
    }
}
