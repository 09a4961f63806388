pub use nova_rpc as rpc;
