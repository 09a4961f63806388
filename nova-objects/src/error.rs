//! The crate's error type, with oslo.versionedobjects' exception names
//! where one exists (they are what peers see in remote errors).

use crate::version::ObjVersion;

/// Errors of the object layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A version string that is not `X.Y[.Z]`.
    #[error("invalid object version {0:?}")]
    InvalidVersion(String),
    /// OVO `IncompatibleObjectVersion`: the primitive is newer than we know.
    #[error("Version {objver} of {objname} is not supported, supported version is {supported}")]
    IncompatibleObjectVersion {
        /// Object name.
        objname: String,
        /// Version of the primitive.
        objver: String,
        /// The version this build knows.
        supported: ObjVersion,
    },
    /// OVO `UnsupportedObjectError`: unknown object name or namespace.
    #[error("Unsupported object type {0}")]
    UnsupportedObject(String),
    /// OVO `InvalidTargetVersion`: backport to a version newer than the object.
    #[error("Invalid target version {target} for {objname} (current version {current})")]
    InvalidTargetVersion {
        /// Object name.
        objname: String,
        /// The requested version.
        target: ObjVersion,
        /// The object's version.
        current: ObjVersion,
    },
    /// OVO `ObjectActionError`.
    #[error("Object action {action} failed because: {reason}")]
    ObjectAction {
        /// What was attempted.
        action: String,
        /// Why it failed.
        reason: String,
    },
    /// A primitive that does not have the object shape or whose fields do
    /// not have their declared types (OVO raises `ValueError` for these).
    #[error("invalid primitive: {0}")]
    InvalidPrimitive(String),
    /// Nova's `UnexpectedTaskStateError`: `save(expected_task_state=...)`
    /// found another task state in the database.
    #[error("Conflict updating instance {instance_uuid}. Expected: {expected}. Actual: {actual}")]
    UnexpectedTaskState {
        /// The instance.
        instance_uuid: String,
        /// What the caller expected (one of).
        expected: String,
        /// What the database had.
        actual: String,
    },
    /// Nova's `*NotFound` family.
    #[error("{kind} {id} could not be found.")]
    NotFound {
        /// The object kind ("Instance", "Flavor", ...).
        kind: &'static str,
        /// The identifier that was looked up.
        id: String,
    },
    /// A uniqueness violation (nova's `*Exists` family).
    #[error("{kind} {id} already exists.")]
    Exists {
        /// The object kind.
        kind: &'static str,
        /// The identifier.
        id: String,
    },
    /// A field needed by the operation is not set.
    #[error("{objname}: field {field} is not set")]
    FieldNotSet {
        /// Object name.
        objname: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// A bad sort key, marker or filter in a list query (nova: `InvalidSortKey`, `MarkerNotFound`).
    #[error("{0}")]
    InvalidQuery(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(String),
    /// The RPC layer failed (indirection, backports).
    #[error(transparent)]
    Rpc(#[from] nova_rpc::Error),
}

impl Error {
    /// The OVO/nova exception class name, for remote errors.
    pub fn class_name(&self) -> &'static str {
        match self {
            Error::InvalidVersion(_) | Error::InvalidPrimitive(_) => "ValueError",
            Error::IncompatibleObjectVersion { .. } => "IncompatibleObjectVersion",
            Error::UnsupportedObject(_) => "UnsupportedObjectError",
            Error::InvalidTargetVersion { .. } => "InvalidTargetVersion",
            Error::ObjectAction { .. } => "ObjectActionError",
            Error::UnexpectedTaskState { .. } => "UnexpectedTaskStateError",
            Error::NotFound { kind, .. } => match *kind {
                "Instance" => "InstanceNotFound",
                "Flavor" => "FlavorNotFound",
                "ComputeNode" => "ComputeHostNotFound",
                "Service" => "ServiceNotFound",
                "KeyPair" => "KeypairNotFound",
                "Migration" => "MigrationNotFound",
                "Aggregate" => "AggregateNotFound",
                "InstanceGroup" => "InstanceGroupNotFound",
                "BuildRequest" => "BuildRequestNotFound",
                "InstanceMapping" => "InstanceMappingNotFound",
                "HostMapping" => "HostMappingNotFound",
                "CellMapping" => "CellMappingNotFound",
                _ => "NotFound",
            },
            Error::Exists { .. } => "Duplicate",
            Error::FieldNotSet { .. } => "ObjectActionError",
            Error::InvalidQuery(_) => "InvalidSortKey",
            Error::Db(_) => "DBError",
            Error::Rpc(_) => "MessagingException",
        }
    }

    /// As a remote error in oslo's failure shape (what the conductor sends).
    pub fn to_remote(&self) -> nova_rpc::RemoteError {
        if let Error::Rpc(nova_rpc::Error::Remote(r)) = self {
            return (**r).clone();
        }
        let module = match self {
            Error::UnexpectedTaskState { .. } | Error::NotFound { .. } | Error::Exists { .. } => {
                "nova.exception"
            }
            Error::InvalidVersion(_) | Error::InvalidPrimitive(_) => "builtins",
            _ => "oslo_versionedobjects.exception",
        };
        nova_rpc::RemoteError::new(self.class_name(), module, self.to_string())
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
