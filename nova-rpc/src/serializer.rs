//! The serializer hook: how a higher layer (nova-objects) turns its
//! entities and contexts into wire values and back.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::context::RequestContext;
use crate::error::Result;

/// oslo.messaging's `Serializer`: called for every argument and result, and
/// for the context, on both sides of a call.
///
/// The defaults pass values through unchanged (oslo's `NoOpSerializer`).
#[async_trait::async_trait]
pub trait Serializer: Send + Sync + std::fmt::Debug + 'static {
    /// Turns an outgoing entity (argument or result) into its wire form.
    fn serialize_entity(&self, _ctx: &RequestContext, entity: Value) -> Result<Value> {
        Ok(entity)
    }
    /// Turns an incoming wire value into the entity the receiver expects.
    ///
    /// Asynchronous because it may ask a peer for help (nova-objects asks
    /// the conductor to backport objects newer than it knows).
    async fn deserialize_entity(&self, _ctx: &RequestContext, entity: Value) -> Result<Value> {
        Ok(entity)
    }
    /// The context's dictionary form (sent as `_context_*` keys).
    fn serialize_context(&self, ctx: &RequestContext) -> Arc<Map<String, Value>> {
        ctx.shared()
    }
    /// Rebuilds a context from its dictionary form.
    fn deserialize_context(&self, ctx: Arc<Map<String, Value>>) -> RequestContext {
        RequestContext::from_shared(ctx)
    }
}

/// Passes everything through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOpSerializer;

#[async_trait::async_trait]
impl Serializer for NoOpSerializer {}
