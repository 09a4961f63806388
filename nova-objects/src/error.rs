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
    /// Nova's `MarkerNotFound`: the marker of a list query names no row.
    #[error("Marker {0} could not be found.")]
    MarkerNotFound(String),
    /// The request needs rights the context does not carry (nova's `Forbidden`).
    #[error("{0}")]
    Forbidden(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(String),
    /// The database cannot be reached, or dropped the connection a
    /// statement ran on (a restart, a failover, an administrator's kill):
    /// oslo.db's `DBConnectionError`. The operation may succeed once the
    /// database is back.
    #[error("database unavailable: {0}")]
    DbConnection(String),
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
                "InstanceAction" => "InstanceActionNotFound",
                "InstanceActionEvent" => "InstanceActionEventNotFound",
                _ => "NotFound",
            },
            Error::Exists { .. } => "Duplicate",
            Error::FieldNotSet { .. } => "ObjectActionError",
            Error::InvalidQuery(_) => "InvalidSortKey",
            Error::MarkerNotFound(_) => "MarkerNotFound",
            Error::Forbidden(_) => "Forbidden",
            Error::Db(_) => "DBError",
            Error::DbConnection(_) => "DBConnectionError",
            Error::Rpc(_) => "MessagingException",
        }
    }

    /// As a remote error in oslo's failure shape (what the conductor sends).
    pub fn to_remote(&self) -> nova_rpc::RemoteError {
        if let Error::Rpc(nova_rpc::Error::Remote(r)) = self {
            return (**r).clone();
        }
        let module = match self {
            Error::UnexpectedTaskState { .. }
            | Error::NotFound { .. }
            | Error::Exists { .. }
            | Error::MarkerNotFound(_)
            | Error::Forbidden(_)
            | Error::InvalidQuery(_) => "nova.exception",
            Error::InvalidVersion(_) | Error::InvalidPrimitive(_) => "builtins",
            Error::DbConnection(_) => "oslo_db.exception",
            _ => "oslo_versionedobjects.exception",
        };
        let r = nova_rpc::RemoteError::new(self.class_name(), module, self.to_string());
        match self {
            Error::UnexpectedTaskState {
                instance_uuid,
                expected,
                actual,
            } => r
                .with_kwarg("instance_uuid", instance_uuid.as_str())
                .with_kwarg("expected", expected.as_str())
                .with_kwarg("actual", actual.as_str()),
            Error::NotFound { kind, id } | Error::Exists { kind, id } => {
                r.with_kwarg("kind", *kind).with_kwarg("id", id.as_str())
            }
            Error::MarkerNotFound(m) => r.with_kwarg("marker", m.as_str()),
            Error::ObjectAction { action, reason } => r
                .with_kwarg("action", action.as_str())
                .with_kwarg("reason", reason.as_str()),
            _ => r,
        }
    }

    /// The error a remote peer (the conductor) reported, typed again where
    /// it is one of ours, so callers match on it whichever side ran the
    /// operation.
    pub fn from_remote(r: nova_rpc::RemoteError) -> Self {
        let kw = |k: &str| {
            r.kwargs
                .get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let class = r.class.trim_end_matches("_Remote");
        let kind = || kw("kind").and_then(|k| crate::registry().get(&k).map(|c| c.name));
        match class {
            "UnexpectedTaskStateError" => {
                if let (Some(instance_uuid), Some(expected), Some(actual)) =
                    (kw("instance_uuid"), kw("expected"), kw("actual"))
                {
                    return Error::UnexpectedTaskState {
                        instance_uuid,
                        expected,
                        actual,
                    };
                }
            }
            "MarkerNotFound" => {
                if let Some(m) = kw("marker") {
                    return Error::MarkerNotFound(m);
                }
            }
            "Duplicate" => {
                if let (Some(kind), Some(id)) = (kind(), kw("id")) {
                    return Error::Exists { kind, id };
                }
            }
            "Forbidden" => return Error::Forbidden(r.message.clone()),
            "DBConnectionError" => {
                let why = r.message.strip_prefix("database unavailable: ");
                return Error::DbConnection(why.unwrap_or(&r.message).to_owned());
            }
            "InvalidSortKey" => return Error::InvalidQuery(r.message.clone()),
            "ObjectActionError" => {
                if let (Some(action), Some(reason)) = (kw("action"), kw("reason")) {
                    return Error::ObjectAction { action, reason };
                }
            }
            c if c.ends_with("NotFound") => {
                if let (Some(kind), Some(id)) = (kind(), kw("id")) {
                    return Error::NotFound { kind, id };
                }
            }
            _ => {}
        }
        Error::Rpc(nova_rpc::Error::Remote(Box::new(r)))
    }

    /// Whether this is a `NotFound` (whichever side found it missing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether the database was out of reach (whichever side found it so):
    /// a caller answers "try again later", not an internal error.
    pub fn is_db_unavailable(&self) -> bool {
        matches!(self, Error::DbConnection(_))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
