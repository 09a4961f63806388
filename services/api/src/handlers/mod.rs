//! HTTP handlers: each parses its request, checks policy and the schema
//! of its microversion, calls the compute API layer
//! ([`crate::compute_api`]) and renders a view ([`crate::views`]).

pub(crate) mod consoles;
pub(crate) mod servers;
