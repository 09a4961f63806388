//! The request context, carried on the wire as oslo carries it (`_context_<key>`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// A request context: who asks (user, project, roles), which request this
/// is (request id), and until when the answer is useful (deadline).
///
/// It is a JSON object underneath, so contexts built by Python services
/// (nova's `RequestContext.to_dict()` has ~25 keys) cross our services
/// unchanged; the accessors read and write the well-known keys.
///
/// ```
/// use nova_rpc::RequestContext;
/// let ctx = RequestContext::new().with_user("u-1").with_project("p-1").with_roles(["member"]);
/// assert!(ctx.request_id().unwrap().starts_with("req-"));
/// assert_eq!(ctx.roles(), vec!["member"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestContext {
    values: Arc<Map<String, Value>>,
}

/// The key the deadline travels under (ISO-8601, UTC).
pub(crate) const DEADLINE_KEY: &str = "deadline";

impl RequestContext {
    /// A fresh context with a new `req-<uuid>` request id.
    pub fn new() -> Self {
        let mut values = Map::new();
        values.insert("request_id".into(), Value::String(new_request_id()));
        RequestContext {
            values: Arc::new(values),
        }
    }

    /// An empty context (no keys at all), as oslo sends for `{}`.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A context from its dictionary form (the `_context_` prefix already stripped).
    pub fn from_map(values: Map<String, Value>) -> Self {
        RequestContext {
            values: Arc::new(values),
        }
    }

    /// A context sharing an already built dictionary (no copy).
    pub fn from_shared(values: Arc<Map<String, Value>>) -> Self {
        RequestContext { values }
    }

    /// The dictionary form, shared (cloning a context or sending it copies nothing).
    pub fn shared(&self) -> Arc<Map<String, Value>> {
        self.values.clone()
    }

    /// The dictionary form.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.values
    }

    /// The dictionary form, owned.
    pub fn into_map(self) -> Map<String, Value> {
        Arc::unwrap_or_clone(self.values)
    }

    fn str_of(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(Value::as_str)
    }

    /// Any key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// Sets any key.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        Arc::make_mut(&mut self.values).insert(key.into(), value.into());
    }

    /// `request_id`.
    pub fn request_id(&self) -> Option<&str> {
        self.str_of("request_id")
    }
    /// `global_request_id`.
    pub fn global_request_id(&self) -> Option<&str> {
        self.str_of("global_request_id")
    }
    /// `user_id` (falls back to oslo.context's `user`).
    pub fn user_id(&self) -> Option<&str> {
        self.str_of("user_id").or_else(|| self.str_of("user"))
    }
    /// `project_id` (falls back to `project` / `tenant`).
    pub fn project_id(&self) -> Option<&str> {
        self.str_of("project_id")
            .or_else(|| self.str_of("project"))
            .or_else(|| self.str_of("tenant"))
    }
    /// `roles`.
    pub fn roles(&self) -> Vec<&str> {
        match self.values.get("roles") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
    /// `is_admin` (false when absent).
    pub fn is_admin(&self) -> bool {
        self.values
            .get("is_admin")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
    /// The deadline, if the caller set one.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        self.str_of(DEADLINE_KEY)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
    }
    /// Time left until the deadline (zero when passed; `None` without a deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| (d - Utc::now()).to_std().unwrap_or(Duration::ZERO))
    }

    /// Sets `request_id`.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.set("request_id", id.into());
        self
    }
    /// Sets `user_id`.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.set("user_id", user.into());
        self
    }
    /// Sets `project_id`.
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.set("project_id", project.into());
        self
    }
    /// Sets `roles`.
    pub fn with_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let roles: Vec<Value> = roles.into_iter().map(|r| Value::String(r.into())).collect();
        self.set("roles", roles);
        self
    }
    /// Sets `is_admin`.
    pub fn with_admin(mut self, is_admin: bool) -> Self {
        self.set("is_admin", is_admin);
        self
    }
    /// Sets the deadline.
    pub fn with_deadline(mut self, deadline: DateTime<Utc>) -> Self {
        self.set(
            DEADLINE_KEY,
            deadline.to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        self
    }
    /// Sets the deadline `d` from now.
    pub fn with_timeout(self, d: Duration) -> Self {
        let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        self.with_deadline(Utc::now() + d)
    }
}

/// A new oslo-style request id: `req-<uuid4>`.
pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_keys_are_read_and_unknown_keys_kept() {
        let mut m = Map::new();
        m.insert("user".into(), "u".into());
        m.insert("project".into(), "p".into());
        m.insert("roles".into(), serde_json::json!(["reader", 3]));
        m.insert("service_catalog".into(), serde_json::json!([]));
        let ctx = RequestContext::from_map(m.clone());
        assert_eq!(ctx.user_id(), Some("u"));
        assert_eq!(ctx.project_id(), Some("p"));
        assert_eq!(ctx.roles(), vec!["reader"]);
        assert!(!ctx.is_admin());
        assert_eq!(ctx.into_map(), m);
    }

    #[test]
    fn deadline_round_trips() {
        let ctx = RequestContext::new().with_timeout(Duration::from_secs(30));
        let left = ctx.remaining().unwrap();
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
        let mut bad = RequestContext::new();
        bad.set(DEADLINE_KEY, "not a date");
        assert_eq!(bad.deadline(), None);
    }
}
