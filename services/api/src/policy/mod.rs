//! nova's policy engine, with oslo.policy's semantics: nova 34's registered
//! defaults (`nova34.tsv`: rule names, scope types and check strings as
//! `nova.policies.list_rules()` gives them), overridden by
//! `[oslo_policy] policy_file` (YAML or JSON), with `enforce_scope`
//! (a rule whose scope types do not include the token's scope denies) and
//! `enforce_new_defaults` (when false, a rule not overridden also passes
//! on its deprecated check string). A denial is nova's 403
//! "Policy doesn't allow RULE to be performed.".

mod check;
mod file;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value, json};

pub use check::Check;

use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};

const NOVA34: &str = include_str!("nova34.tsv");

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    check: Check,
    scope_types: Vec<String>,
    deprecated: Option<Check>,
    overridden: bool,
}

/// The rules requests are authorised by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcer {
    rules: HashMap<String, Rule>,
    /// `[oslo_policy] enforce_scope` (true).
    pub enforce_scope: bool,
    /// `[oslo_policy] enforce_new_defaults` (true).
    pub enforce_new_defaults: bool,
}

static DEFAULTS: LazyLock<Arc<Enforcer>> = LazyLock::new(|| Arc::new(Enforcer::nova34()));

/// A shared [`Enforcer`]; the default is nova 34's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy(pub Arc<Enforcer>);

impl Default for Policy {
    fn default() -> Self {
        Policy(DEFAULTS.clone())
    }
}

impl std::ops::Deref for Policy {
    type Target = Enforcer;
    fn deref(&self) -> &Enforcer {
        &self.0
    }
}

/// The scope of the caller's token as oslo.policy names it.
fn token_scope(ctx: &Ctx) -> &'static str {
    if ctx.system_scope.is_some() {
        "system"
    } else if ctx.domain_id.is_some() {
        "domain"
    } else {
        "project"
    }
}

impl Enforcer {
    /// nova 34's defaults, scope and new defaults enforced.
    pub fn nova34() -> Self {
        let mut rules = HashMap::new();
        for line in NOVA34.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split('\t');
            let (Some(name), Some(scopes), Some(check)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let deprecated = f.next().filter(|d| !d.is_empty()).map(Check::parse);
            rules.insert(
                name.to_owned(),
                Rule {
                    check: Check::parse(check),
                    scope_types: scopes
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    deprecated,
                    overridden: false,
                },
            );
        }
        Enforcer {
            rules,
            enforce_scope: true,
            enforce_new_defaults: true,
        }
    }

    /// From `[oslo_policy]`: the defaults with `policy_file`'s overrides.
    /// The default file name (`policy.yaml`) may be absent; a file named
    /// explicitly must exist.
    pub fn from_conf(conf: &nova_service::Conf) -> anyhow::Result<Self> {
        let mut e = Enforcer::nova34();
        e.enforce_scope = conf.bool_or("oslo_policy", "enforce_scope", true)?;
        e.enforce_new_defaults = conf.bool_or("oslo_policy", "enforce_new_defaults", true)?;
        match conf.get("oslo_policy", "policy_file") {
            Some(f) => e.load_file(Path::new(f))?,
            None => {
                let p = Path::new("/etc/nova/policy.yaml");
                if p.exists() {
                    e.load_file(p)?;
                }
            }
        }
        Ok(e)
    }

    /// Overrides rules with those of a policy file.
    pub fn load_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("policy file {}: {e}", path.display()))?;
        let overrides = file::parse(&text)
            .map_err(|e| anyhow::anyhow!("policy file {}: {e}", path.display()))?;
        self.set_rules(overrides);
        Ok(())
    }

    /// Overrides rules (name → check string); unknown names are added.
    pub fn set_rules(&mut self, overrides: impl IntoIterator<Item = (String, String)>) {
        for (name, check) in overrides {
            let check = Check::parse(&check);
            match self.rules.get_mut(&name) {
                Some(r) => {
                    r.check = check;
                    r.overridden = true;
                }
                None => {
                    self.rules.insert(
                        name,
                        Rule {
                            check,
                            scope_types: Vec::new(),
                            deprecated: None,
                            overridden: true,
                        },
                    );
                }
            }
        }
    }

    /// Whether `name` is a registered rule.
    pub fn has_rule(&self, name: &str) -> bool {
        self.rules.contains_key(name)
    }

    /// The rule names, sorted.
    pub fn rule_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.rules.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    fn rule_passes(
        &self,
        name: &str,
        target: &Map<String, Value>,
        creds: &Map<String, Value>,
    ) -> Option<bool> {
        self.eval_depth(name, target, creds, 0)
    }

    fn eval_depth(
        &self,
        name: &str,
        target: &Map<String, Value>,
        creds: &Map<String, Value>,
        depth: u32,
    ) -> Option<bool> {
        // A rule that refers to itself (an operator's loop) denies.
        if depth > 32 {
            return Some(false);
        }
        let r = self.rules.get(name)?;
        let sub = |n: &str| self.eval_depth(n, target, creds, depth + 1);
        let pass = r.check.eval(target, creds, &sub);
        if pass || self.enforce_new_defaults || r.overridden {
            return Some(pass);
        }
        Some(
            r.deprecated
                .as_ref()
                .is_some_and(|d| d.eval(target, creds, &sub)),
        )
    }

    /// The credentials oslo.policy sees for `ctx` (`is_admin` from
    /// `context_is_admin`, as nova's context computes it).
    pub fn credentials(&self, ctx: &Ctx) -> Map<String, Value> {
        let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        let mut c = Map::new();
        c.insert("user_id".into(), ctx.user_id.clone().into());
        c.insert("user".into(), ctx.user_id.clone().into());
        let project = if ctx.project_id.is_empty() {
            Value::Null
        } else {
            ctx.project_id.clone().into()
        };
        c.insert("project_id".into(), project);
        c.insert("tenant".into(), ctx.project_id.clone().into());
        c.insert("roles".into(), strings(&ctx.roles));
        c.insert("domain_id".into(), ctx.domain_id.clone().into());
        c.insert("system_scope".into(), ctx.system_scope.clone().into());
        c.insert("service_roles".into(), strings(&ctx.service_roles));
        c.insert("is_admin".into(), false.into());
        c.insert("is_admin_project".into(), true.into());
        let admin = self
            .rule_passes("context_is_admin", &Map::new(), &c)
            .unwrap_or(false);
        c.insert("is_admin".into(), admin.into());
        c
    }

    /// nova's `context.is_admin`: the caller passes `context_is_admin`.
    pub fn is_admin(&self, ctx: &Ctx) -> bool {
        self.credentials(ctx)
            .get("is_admin")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Whether `ctx` may do `rule` on `target` (nova's `context.can`).
    pub fn allows(&self, ctx: &Ctx, rule: &str, target: &Map<String, Value>) -> bool {
        let Some(r) = self.rules.get(rule) else {
            tracing::error!(rule, "policy rule is not registered: denied");
            return false;
        };
        if self.enforce_scope
            && !r.scope_types.is_empty()
            && !r.scope_types.iter().any(|s| s == token_scope(ctx))
        {
            return false;
        }
        let creds = self.credentials(ctx);
        self.rule_passes(rule, target, &creds).unwrap_or(false)
    }

    /// `Ok` when allowed, else nova's policy fault.
    pub fn enforce(&self, ctx: &Ctx, rule: &str, target: &Map<String, Value>) -> ApiResult<()> {
        if self.allows(ctx, rule, target) {
            Ok(())
        } else {
            Err(Fault::policy(rule))
        }
    }
}

/// nova's default target: the caller's own project and user.
pub fn own_target(ctx: &Ctx) -> Map<String, Value> {
    target(&ctx.project_id, &ctx.user_id)
}

/// A target of `project_id` and `user_id`.
pub fn target(project_id: &str, user_id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("project_id".into(), json!(project_id));
    m.insert("user_id".into(), json!(user_id));
    m
}

#[cfg(test)]
mod tests;
