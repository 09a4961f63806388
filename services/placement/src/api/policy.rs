//! Placement's policy: the default rules (admin or service; a project
//! reader for its own usages), and the operator's overrides from
//! `[oslo_policy] policy_file` (YAML or JSON, rule name → check string,
//! as oslo.policy reads them).
//!
//! Check strings as oslo.policy's: `@` (always), `!` (never), the empty
//! string (always), `role:NAME`, `rule:NAME` (another rule: an override,
//! Placement's base rules `admin_api`, `service_api`,
//! `admin_or_service_api`, `project_reader_api`, or a route rule's
//! default), `ATTR:VALUE` and `ATTR:%(KEY)s` on the caller (`user_id`,
//! `project_id`, `system_scope`, `is_admin`) against a literal or the
//! target (`project_id`, `user_id`), joined by `and`, `or`, `not` and
//! parentheses. A rule that does not parse refuses.

use std::collections::HashMap;
use std::sync::Arc;

use super::Caller;

/// Policy settings (`[oslo_policy]`).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `enforce_new_defaults`: only the new default rules (the reshaper is
    /// then the service's alone); off, the deprecated `role:admin` rules
    /// also allow (Placement's default).
    pub enforce_new_defaults: bool,
    /// The operator's rules (`policy_file`), by name.
    pub overrides: Arc<HashMap<String, String>>,
}

/// What a rule is checked against (the object's owner).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Target<'a> {
    pub(crate) project_id: Option<&'a str>,
    pub(crate) user_id: Option<&'a str>,
}

impl Policy {
    /// Reads a policy file's rules (YAML `name: check` lines or a JSON
    /// object).
    pub fn parse_rules(text: &str) -> Result<HashMap<String, String>, String> {
        let t = text.trim_start();
        if t.starts_with('{') {
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(t).map_err(|e| format!("policy file: {e}"))?;
            return v
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => Ok((k, s)),
                    other => Err(format!("policy file: rule {k} is not a string: {other}")),
                })
                .collect();
        }
        let unquote = |s: &str| {
            let s = s.trim();
            let q = s.len() >= 2
                && ((s.starts_with('"') && s.ends_with('"'))
                    || (s.starts_with('\'') && s.ends_with('\'')));
            if q {
                s[1..s.len() - 1].to_owned()
            } else {
                s.to_owned()
            }
        };
        let mut rules = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') || l == "---" {
                continue;
            }
            // The name may hold ':' (quoted or not): split at ': ' / ':"'.
            let split = l
                .find("\": ")
                .map(|i| i + 1)
                .or_else(|| l.find("': ").map(|i| i + 1))
                .or_else(|| l.rfind(": "))
                .or_else(|| l.strip_suffix(':').map(str::len));
            let Some(i) = split else {
                return Err(format!("policy file line {}: not `name: check`", n + 1));
            };
            rules.insert(unquote(&l[..i]), unquote(&l[i + 1..]));
        }
        Ok(rules)
    }

    /// Whether `who` may do `action` on `target`; `default` is the
    /// built-in rule's answer, used when no override names `action`.
    pub(crate) fn allows(
        &self,
        who: &Caller,
        action: &str,
        target: Target<'_>,
        default: bool,
    ) -> bool {
        match self.overrides.get(action) {
            Some(check) => self.eval_str(check, who, target, 0),
            None => default,
        }
    }

    fn base_rule(&self, name: &str, who: &Caller, target: Target<'_>) -> Option<bool> {
        let own = target.project_id.is_none_or(|p| p == who.project_id);
        Some(match name {
            "admin_api" => who.has("admin"),
            "service_api" => who.has("service"),
            "admin_or_service_api" => who.admin_or_service(),
            "project_reader_api" => who.has("reader") && own,
            n if n.starts_with("placement:") => who.admin_or_service(),
            _ => return None,
        })
    }

    fn eval_str(&self, check: &str, who: &Caller, target: Target<'_>, depth: u8) -> bool {
        if depth > 16 {
            return false; // a loop of rules
        }
        let tokens = tokenize(check);
        if tokens.is_empty() {
            return true;
        }
        let mut p = Parser { t: &tokens, i: 0 };
        let Some(e) = p.or() else { return false };
        if p.i != tokens.len() {
            return false;
        }
        self.eval(&e, who, target, depth)
    }

    fn eval(&self, e: &Expr, who: &Caller, target: Target<'_>, depth: u8) -> bool {
        match e {
            Expr::Or(v) => v.iter().any(|x| self.eval(x, who, target, depth)),
            Expr::And(v) => v.iter().all(|x| self.eval(x, who, target, depth)),
            Expr::Not(x) => !self.eval(x, who, target, depth),
            Expr::Check(c) => self.check(c, who, target, depth),
        }
    }

    fn check(&self, c: &str, who: &Caller, target: Target<'_>, depth: u8) -> bool {
        match c {
            "@" => return true,
            "!" => return false,
            _ => {}
        }
        let Some((kind, m)) = c.split_once(':') else {
            return false;
        };
        match kind {
            "role" => who.roles.iter().any(|r| r.eq_ignore_ascii_case(m)) && !who.system_scope,
            "rule" => match self.overrides.get(m) {
                Some(s) => self.eval_str(s, who, target, depth + 1),
                None => self.base_rule(m, who, target).unwrap_or(false),
            },
            attr => {
                let want = match m.strip_prefix("%(").and_then(|x| x.strip_suffix(")s")) {
                    Some("project_id") => target.project_id.unwrap_or(&who.project_id),
                    Some("user_id") => target.user_id.unwrap_or(&who.user_id),
                    Some(_) => return false,
                    None => m,
                };
                let have = match attr {
                    "project_id" => who.project_id.as_str(),
                    "user_id" => who.user_id.as_str(),
                    "system_scope" => {
                        if who.system_scope {
                            "all"
                        } else {
                            ""
                        }
                    }
                    "is_admin" => {
                        if who.roles.iter().any(|r| r == "admin") {
                            "True"
                        } else {
                            "False"
                        }
                    }
                    _ => return false,
                };
                !have.is_empty() && have.eq_ignore_ascii_case(want)
            }
        }
    }
}

#[derive(Debug)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Check(String),
}

fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        let mut w = word;
        while let Some(r) = w.strip_prefix('(') {
            out.push("(".to_owned());
            w = r;
        }
        let mut closing = 0;
        while let Some(r) = w.strip_suffix(')') {
            // `%(project_id)s` ends in `s`, so a `)` here closes a group.
            closing += 1;
            w = r;
        }
        if !w.is_empty() {
            out.push(w.to_owned());
        }
        out.extend(std::iter::repeat_n(")".to_owned(), closing));
    }
    out
}

struct Parser<'a> {
    t: &'a [String],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.t.get(self.i).map(String::as_str)
    }
    fn or(&mut self) -> Option<Expr> {
        let mut v = vec![self.and()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("or")) {
            self.i += 1;
            v.push(self.and()?);
        }
        Some(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::Or(v)
        })
    }
    fn and(&mut self) -> Option<Expr> {
        let mut v = vec![self.not()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("and")) {
            self.i += 1;
            v.push(self.not()?);
        }
        Some(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::And(v)
        })
    }
    fn not(&mut self) -> Option<Expr> {
        if self.peek().is_some_and(|t| t.eq_ignore_ascii_case("not")) {
            self.i += 1;
            return Some(Expr::Not(Box::new(self.not()?)));
        }
        match self.peek()? {
            "(" => {
                self.i += 1;
                let e = self.or()?;
                (self.peek()? == ")").then_some(())?;
                self.i += 1;
                Some(e)
            }
            ")" => None,
            t => {
                let e = Expr::Check(t.to_owned());
                self.i += 1;
                Some(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[&str], project: &str) -> Caller {
        Caller {
            user_id: "u".into(),
            project_id: project.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            system_scope: false,
        }
    }

    fn policy(rules: &[(&str, &str)]) -> Policy {
        Policy {
            enforce_new_defaults: false,
            overrides: Arc::new(
                rules
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
        }
    }

    #[test]
    fn check_strings_as_oslo_policy() {
        let t = Target::default();
        let p = policy(&[
            ("a", "@"),
            ("b", "!"),
            ("c", "role:member and not role:admin"),
            ("d", "(role:x or rule:a) and project_id:%(project_id)s"),
            ("e", "rule:admin_or_service_api"),
            ("f", ""),
            ("g", "role:member and ("),
        ]);
        let member = caller(&["member"], "p1");
        let admin = caller(&["admin", "member"], "p1");
        assert!(p.allows(&member, "a", t, false));
        assert!(!p.allows(&admin, "b", t, true));
        assert!(p.allows(&member, "c", t, false));
        assert!(!p.allows(&admin, "c", t, true));
        assert!(p.allows(&member, "d", t, false));
        let other = Target {
            project_id: Some("p2"),
            user_id: None,
        };
        assert!(!p.allows(&member, "d", other, true));
        assert!(!p.allows(&member, "e", t, true));
        assert!(p.allows(&admin, "e", t, false));
        assert!(p.allows(&member, "f", t, false));
        assert!(!p.allows(&admin, "g", t, true), "a broken rule refuses");
        assert!(p.allows(&member, "unlisted", t, true), "defaults stand");
    }

    #[test]
    fn policy_files_yaml_and_json() {
        let y = Policy::parse_rules(
            "# comment\n\"placement:traits:list\": \"@\"\nplacement:usages: role:reader or role:admin\n'x': ''\n",
        )
        .unwrap();
        assert_eq!(y["placement:traits:list"], "@");
        assert_eq!(y["placement:usages"], "role:reader or role:admin");
        assert_eq!(y["x"], "");
        let j = Policy::parse_rules("{\"placement:traits:list\": \"!\"}").unwrap();
        assert_eq!(j["placement:traits:list"], "!");
    }
}
