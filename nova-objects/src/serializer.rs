//! The RPC serializer: nova's `NovaObjectSerializer`.
//!
//! Objects cross RPC as primitives; typed arguments and results (de)serialize
//! through serde, so sending needs nothing more. On receipt, every object
//! primitive is checked against the versions this build knows; one that is
//! newer (`IncompatibleObjectVersion`) is sent back to the conductor with
//! our version manifest (`object_backport_versions`) and replaced by the
//! backported primitive it returns — OVO's remedy. Without a conductor the
//! error goes back to the caller.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use nova_rpc::RequestContext;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::object::Manifest;
use crate::primitive::NAME_KEY;
use crate::registry::{check_versions, registry};

/// Who can backport an object for us (the conductor).
#[async_trait::async_trait]
pub trait Backporter: Send + Sync + fmt::Debug {
    /// `object_backport_versions(objinst, object_versions)`.
    async fn backport(
        &self,
        ctx: &RequestContext,
        objinst: Value,
        versions: Manifest,
    ) -> Result<Value>;
}

/// [`nova_rpc::Serializer`] for services that pass nova objects.
#[derive(Debug, Clone, Default)]
pub struct ObjectSerializer {
    backporter: Option<Arc<dyn Backporter>>,
}

impl ObjectSerializer {
    /// A serializer that refuses objects newer than this build.
    pub fn new() -> Self {
        Self::default()
    }

    /// A serializer that asks `b` (the conductor) to backport newer objects.
    pub fn with_backporter(b: Arc<dyn Backporter>) -> Self {
        ObjectSerializer {
            backporter: Some(b),
        }
    }

    /// Checks (and if needed backports) every object primitive in `v`.
    pub async fn process(&self, ctx: &RequestContext, v: Value) -> Result<Value> {
        self.walk(ctx, v).await
    }

    fn walk<'a>(
        &'a self,
        ctx: &'a RequestContext,
        v: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value>> + Send + 'a>> {
        Box::pin(async move {
            match v {
                Value::Object(m) if m.contains_key(NAME_KEY) => {
                    let v = Value::Object(m);
                    match check_versions(&v) {
                        Ok(()) => Ok(v),
                        Err(e @ Error::IncompatibleObjectVersion { .. }) => {
                            let Some(b) = &self.backporter else {
                                return Err(e);
                            };
                            let name = v.get(NAME_KEY).and_then(Value::as_str).unwrap_or("");
                            let manifest = registry()
                                .manifest_for(name)
                                .ok_or_else(|| Error::UnsupportedObject(name.to_owned()))?;
                            tracing::debug!(object = name, "asking the conductor for a backport");
                            let back = b.backport(ctx, v, manifest).await?;
                            check_versions(&back)?;
                            Ok(back)
                        }
                        Err(e) => Err(e),
                    }
                }
                Value::Object(m) => {
                    let mut out = serde_json::Map::with_capacity(m.len());
                    for (k, x) in m {
                        out.insert(k, self.walk(ctx, x).await?);
                    }
                    Ok(Value::Object(out))
                }
                Value::Array(a) => {
                    let mut out = Vec::with_capacity(a.len());
                    for x in a {
                        out.push(self.walk(ctx, x).await?);
                    }
                    Ok(Value::Array(out))
                }
                other => Ok(other),
            }
        })
    }
}

fn has_object(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key(NAME_KEY) || m.values().any(has_object),
        Value::Array(a) => a.iter().any(has_object),
        _ => false,
    }
}

#[async_trait::async_trait]
impl nova_rpc::Serializer for ObjectSerializer {
    async fn deserialize_entity(
        &self,
        ctx: &RequestContext,
        entity: Value,
    ) -> nova_rpc::Result<Value> {
        if !has_object(&entity) {
            return Ok(entity);
        }
        self.process(ctx, entity)
            .await
            .map_err(|e| nova_rpc::Error::Remote(Box::new(e.to_remote())))
    }
}
