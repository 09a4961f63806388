//! Nova's versioned objects in Rust: declared once with
//! [`#[nova_object]`](nova_object), they encode to and decode from the
//! oslo.versionedobjects primitive (`nova_object.name`, `.namespace`,
//! `.version`, `.data`, `.changes`) in JSON or MessagePack, track changes,
//! backport to any older version a peer names (with OVO's version
//! manifests), and carry a fingerprint so a schema change without a version
//! bump fails a test.
//!
//! ```
//! use nova_objects::{Flavor, ObjVersion, VersionedObject};
//!
//! let flavor = Flavor::new().with_id(1).with_name(Some("m1.tiny".to_owned()))
//!     .with_vcpus(1).with_memory_mb(512).with_description(Some("tiny".to_owned()));
//! let primitive = flavor.obj_to_primitive();
//! assert_eq!(primitive["nova_object.version"], "1.2");
//! assert_eq!(Flavor::obj_from_primitive(&primitive).unwrap(), flavor);
//!
//! // What a peer that knows Flavor 1.1 receives: no `description`.
//! let old = flavor.obj_to_primitive_at(ObjVersion::new(1, 1), None).unwrap();
//! assert!(old["nova_object.data"].get("description").is_none());
//! ```

extern crate self as nova_objects;

mod compat;
#[cfg(feature = "db")]
pub mod db;
mod error;
pub mod field;
mod fingerprint;
mod indirection;
mod meta;
mod object;
pub mod objects;
pub mod primitive;
pub mod registry;
mod serializer;
mod store;
mod version;

pub use compat::{backport, refuse_new_values};
pub use error::{Error, Result};
pub use field::{DateTime, FieldKind, FieldValue, RawObject};
pub use fingerprint::{fingerprint, fingerprints};
pub use indirection::{
    CONDUCTOR_API_VERSION, CONDUCTOR_TOPIC, ConductorStore, ObjectIndirection,
    ObjectIndirectionApi, conductor_object_endpoint,
};
pub use meta::{FieldSet, ObjectMeta};
pub use nova_objects_derive::nova_object;
pub use object::{CompatFn, FieldInfo, Manifest, ObjectClass, VersionedObject};
pub use objects::*;
pub use registry::{AnyObject, Registry, registry};
pub use serializer::{Backporter, ObjectSerializer};
pub use store::{ListQuery, Lookup, ObjectStore, Objects, ReadDeleted, SaveOptions, SortDir};
pub use version::ObjVersion;

#[doc(hidden)]
pub use serde as __serde;
