//! The host-level operations of `os-hosts` and the hypervisor uptime:
//! the driver's answer, or nova's `NotImplementedError` when the driver
//! has none (the API answers 501).

use nova_rpc::RemoteError;

/// A driver failure as the error nova's manager lets through.
pub(crate) fn remote(e: nova_virt::Error) -> RemoteError {
    match e {
        nova_virt::Error::NotSupported { operation } => {
            RemoteError::new("NotImplementedError", "builtins", operation.to_string())
        }
        other => RemoteError::internal("ComputeError", other.to_string()),
    }
}
