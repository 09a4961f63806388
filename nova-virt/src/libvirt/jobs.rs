//! A domain's running job (a live migration) through the raw bindings:
//! `virt` 0.5 has no safe `virDomainAbortJob`, and its
//! `virDomainMigrateStartPostCopy` is wrapped here the same way. With
//! `events.rs` and `vcpus.rs`, the crate's only unsafe code.
#![allow(unsafe_code)]

use virt::domain::Domain;
use virt::sys;

/// The last libvirt error's message (after a call that returned -1).
fn last_error() -> String {
    virt::error::Error::last_error().message().to_owned()
}

/// `virDomainAbortJob`: the domain's running job (a migration) is
/// cancelled; libvirt rolls it back (the guest keeps running here).
pub(crate) fn abort_job(dom: &Domain) -> Result<(), String> {
    // SAFETY: the domain pointer is valid while `dom` lives; the call
    // takes no other arguments and keeps no reference to it.
    let r = unsafe { sys::virDomainAbortJob(dom.as_ptr()) };
    if r < 0 { Err(last_error()) } else { Ok(()) }
}

/// `virDomainMigrateStartPostCopy`: a migration started with
/// `VIR_MIGRATE_POSTCOPY` switches to post-copy (the guest runs on the
/// destination, its remaining memory pulled from here).
pub(crate) fn start_post_copy(dom: &Domain) -> Result<(), String> {
    // SAFETY: as above; flags must be 0.
    let r = unsafe { sys::virDomainMigrateStartPostCopy(dom.as_ptr(), 0) };
    if r < 0 { Err(last_error()) } else { Ok(()) }
}
