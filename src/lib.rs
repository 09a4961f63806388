//! nova-rs: OpenStack Nova's compute control plane in Rust. This umbrella
//! crate re-exports the library crates; examples and benches live beside it.

pub use nova_objects as objects;
pub use nova_rpc as rpc;
pub use nova_scheduler as scheduler;
pub use nova_virt as virt;
