//! oslo.policy's check language: `@` (always), `!` (never), `role:NAME`,
//! `rule:NAME`, generic `KEY:VALUE` checks against the caller's
//! credentials (`project_id:%(project_id)s` takes the value from the
//! target, `is_admin:True`, `system_scope:all`, dotted keys into nested
//! credentials, a literal key such as `'member':%(role)s`), combined with
//! `not`, `and`, `or` (that precedence) and parentheses. A check string
//! that does not parse denies, as oslo's does.

use serde_json::{Map, Value};

/// A parsed check string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `@` or the empty string.
    Always,
    /// `!`.
    Never,
    /// `role:NAME` (case-insensitive).
    Role(String),
    /// `rule:NAME`.
    Rule(String),
    /// `KEY:VALUE`.
    Generic(String, String),
    /// `not C`.
    Not(Box<Check>),
    /// `C and C …`.
    And(Vec<Check>),
    /// `C or C …`.
    Or(Vec<Check>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Not,
    Check(String),
}

fn tokens(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        let mut w = word;
        let opens = w.len() - w.trim_start_matches('(').len();
        out.extend(std::iter::repeat_n(Tok::Open, opens));
        w = &w[opens..];
        let trimmed = w.trim_end_matches(')');
        let closes = w.len() - trimmed.len();
        if !trimmed.is_empty() {
            out.push(match trimmed.to_ascii_lowercase().as_str() {
                "and" => Tok::And,
                "or" => Tok::Or,
                "not" => Tok::Not,
                _ => Tok::Check(trimmed.to_owned()),
            });
        }
        out.extend(std::iter::repeat_n(Tok::Close, closes));
    }
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn or(&mut self) -> Option<Check> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Some(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Check::Or(parts)
        })
    }
    fn and(&mut self) -> Option<Check> {
        let mut parts = vec![self.not()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            parts.push(self.not()?);
        }
        Some(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Check::And(parts)
        })
    }
    fn not(&mut self) -> Option<Check> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Some(Check::Not(Box::new(self.not()?)));
        }
        self.atom()
    }
    fn atom(&mut self) -> Option<Check> {
        match self.next()? {
            Tok::Open => {
                let c = self.or()?;
                (self.next()? == Tok::Close).then_some(c)
            }
            Tok::Check(c) => Some(atom(&c)),
            _ => None,
        }
    }
}

fn atom(s: &str) -> Check {
    match s {
        "@" => return Check::Always,
        "!" => return Check::Never,
        _ => {}
    }
    let Some((kind, value)) = s.split_once(':') else {
        return Check::Never;
    };
    match kind {
        "role" => Check::Role(value.to_owned()),
        "rule" => Check::Rule(value.to_owned()),
        // Remote `http:`/`https:` checks are not made here: they deny.
        "http" | "https" => Check::Never,
        _ => Check::Generic(kind.to_owned(), value.to_owned()),
    }
}

impl Check {
    /// Parses a check string (an unparsable one denies).
    pub fn parse(s: &str) -> Check {
        let toks = tokens(s);
        if toks.is_empty() {
            return Check::Always;
        }
        let mut p = Parser { toks, pos: 0 };
        match p.or() {
            Some(c) if p.pos == p.toks.len() => c,
            _ => Check::Never,
        }
    }

    /// Whether `creds` pass this check on `target`; `rule` resolves
    /// `rule:NAME` (false for unknown names).
    pub fn eval(
        &self,
        target: &Map<String, Value>,
        creds: &Map<String, Value>,
        rule: &dyn Fn(&str) -> Option<bool>,
    ) -> bool {
        match self {
            Check::Always => true,
            Check::Never => false,
            Check::Role(r) => {
                let want = substitute(r, target).map(|r| r.to_lowercase());
                let roles = creds.get("roles").and_then(Value::as_array);
                match (want, roles) {
                    (Some(w), Some(roles)) => roles
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|x| x.to_lowercase() == w),
                    _ => false,
                }
            }
            Check::Rule(n) => rule(n).unwrap_or(false),
            Check::Generic(kind, value) => generic(kind, value, target, creds),
            Check::Not(c) => !c.eval(target, creds, rule),
            Check::And(cs) => cs.iter().all(|c| c.eval(target, creds, rule)),
            Check::Or(cs) => cs.iter().any(|c| c.eval(target, creds, rule)),
        }
    }
}

/// Python's `%(key)s` substitution from the target (`None` when a key is
/// missing: the check fails).
fn substitute(s: &str, target: &Map<String, Value>) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("%(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find(")s")?;
        let v = lookup(target, &after[..end])?;
        out.push_str(&py_str(v));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// A target key, whole or dotted into nested objects.
fn lookup<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(key) {
        return Some(v);
    }
    let mut parts = key.split('.');
    let mut cur = map.get(parts.next()?)?;
    for p in parts {
        cur = cur.get(p)?;
    }
    Some(cur)
}

/// Python's `str()` of a JSON value.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// A Python literal as the left side (`'member':%(role)s`, `True:...`).
fn literal(kind: &str) -> Option<String> {
    let k = kind.trim();
    if k.len() >= 2
        && ((k.starts_with('\'') && k.ends_with('\'')) || (k.starts_with('"') && k.ends_with('"')))
    {
        return Some(k[1..k.len() - 1].to_owned());
    }
    match k {
        "True" | "False" | "None" => Some(k.to_owned()),
        _ => k.parse::<f64>().ok().map(|_| k.to_owned()),
    }
}

fn generic(
    kind: &str,
    value: &str,
    target: &Map<String, Value>,
    creds: &Map<String, Value>,
) -> bool {
    let value = value.trim();
    // A quoted right side is a constant, not a substitution.
    let want = if value.len() >= 2
        && ((value.starts_with('\'') && value.ends_with('\''))
            || (value.starts_with('"') && value.ends_with('"')))
    {
        value[1..value.len() - 1].to_owned()
    } else {
        match substitute(value, target) {
            Some(w) => w,
            None => return false,
        }
    };
    if let Some(l) = literal(kind) {
        return l == want;
    }
    match lookup(creds, kind) {
        Some(Value::Array(items)) => items.iter().any(|i| py_str(i) == want),
        Some(v) => py_str(v) == want,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn eval(check: &str, target: Value, creds: Value) -> bool {
        let admin = Check::parse("role:admin");
        let creds = map(creds);
        let target = map(target);
        Check::parse(check).eval(&target, &creds, &|n| {
            (n == "context_is_admin").then(|| admin.eval(&target, &creds, &|_| None))
        })
    }

    #[test]
    fn oslo_semantics() {
        let member = json!({"roles": ["Member", "reader"], "project_id": "p1", "user_id": "u1",
                            "is_admin": false, "system_scope": null});
        let own = json!({"project_id": "p1", "user_id": "u1"});
        let other = json!({"project_id": "p2", "user_id": "u2"});
        assert!(eval("", own.clone(), member.clone()));
        assert!(eval("@", own.clone(), member.clone()));
        assert!(!eval("!", own.clone(), member.clone()));
        assert!(eval(
            "role:member and project_id:%(project_id)s",
            own.clone(),
            member.clone()
        ));
        assert!(!eval(
            "role:member and project_id:%(project_id)s",
            other.clone(),
            member.clone()
        ));
        assert!(eval(
            "(rule:context_is_admin) or user_id:%(user_id)s",
            own.clone(),
            member.clone()
        ));
        assert!(!eval(
            "rule:context_is_admin or user_id:%(user_id)s",
            other.clone(),
            member.clone()
        ));
        assert!(!eval("is_admin:True", own.clone(), member.clone()));
        assert!(eval(
            "is_admin:True",
            own.clone(),
            json!({"is_admin": true, "roles": []})
        ));
        assert!(eval(
            "not role:admin and (role:reader or role:x)",
            own.clone(),
            member.clone()
        ));
        assert!(!eval(
            "role:reader and not project_id:%(project_id)s",
            own.clone(),
            member.clone()
        ));
        // A key the target lacks fails the check.
        assert!(!eval("project_id:%(missing)s", own.clone(), member.clone()));
        assert!(eval("'p1':%(project_id)s", own.clone(), json!({})));
        assert!(eval(
            "system_scope:all",
            own.clone(),
            json!({"system_scope": "all"})
        ));
        assert!(!eval("rule:unknown", own.clone(), member.clone()));
        // Unparsable strings deny.
        assert_eq!(Check::parse("role:a and"), Check::Never);
        assert_eq!(Check::parse("(role:a"), Check::Never);
        assert_eq!(Check::parse("role:a or role:b and role:c"), {
            Check::Or(vec![
                Check::Role("a".into()),
                Check::And(vec![Check::Role("b".into()), Check::Role("c".into())]),
            ])
        });
    }
}
