//! The crate's error type.

/// Driver errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The driver does not support the operation (nova's `NotImplementedError`).
    #[error("{operation} is not supported by this driver")]
    NotSupported {
        /// The operation.
        operation: &'static str,
    },
    /// No such instance (nova's `InstanceNotFound`).
    #[error("Instance {0} could not be found.")]
    InstanceNotFound(String),
    /// The instance already exists (nova's `InstanceExists`).
    #[error("Instance {0} already exists.")]
    InstanceExists(String),
    /// The instance is not in a state that allows the operation
    /// (nova's `InstanceInvalidState`).
    #[error("Instance {uuid} in power state {state:?} cannot {operation}.")]
    InvalidState {
        /// The instance.
        uuid: String,
        /// Its state.
        state: crate::PowerState,
        /// The operation.
        operation: &'static str,
    },
    /// The hypervisor failed the operation.
    #[error("{operation} failed for instance {uuid}: {reason}")]
    Failed {
        /// The operation.
        operation: &'static str,
        /// The instance (empty for host operations).
        uuid: String,
        /// Why.
        reason: String,
    },
    /// The guest has no agent for the operation (nova's
    /// `InstanceAgentNotEnabled`).
    #[error("Guest agent is not enabled for the instance")]
    AgentNotEnabled(String),
    /// The hypervisor connection failed.
    #[error("hypervisor: {0}")]
    Hypervisor(String),
    /// A resize the driver refuses before changing anything (nova's
    /// `InstanceFaultRollback` around `ResizeError`): the instance stays
    /// as it was.
    #[error("Resize error: {reason}")]
    ResizeRefused {
        /// The instance.
        uuid: String,
        /// Why (`Unable to resize disk down.`).
        reason: String,
    },
}

impl Error {
    /// Whether the driver lacks the operation.
    pub fn is_not_supported(&self) -> bool {
        matches!(self, Error::NotSupported { .. })
    }
    /// Whether the instance does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::InstanceNotFound(_))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
