//! libvirt's domain lifecycle events, through the raw bindings (`virt`
//! 0.5 has no safe API for them). With `vcpus.rs`, the crate's only unsafe code:
//!
//! - [`start_event_loop`] registers libvirt's default event loop (once per
//!   process, before any connection is opened) and runs it on a thread;
//! - [`register`] subscribes a connection to `VIR_DOMAIN_EVENT_ID_LIFECYCLE`
//!   with a callback that reads the domain's uuid and forwards the event to
//!   the driver's sink slot. The slot is boxed and handed to libvirt as the
//!   callback's opaque pointer; libvirt frees it with [`free_slot`] when the
//!   subscription ends (connection closed), so it lives exactly as long as
//!   libvirt may call back.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use virt::connect::Connect;
use virt::sys;

use crate::driver::{EventSink, LifecycleEvent, Transition};
use crate::error::{Error, Result};

/// Where the driver's events go (set when compute registers its sink).
pub(crate) type SinkSlot = Arc<Mutex<Option<Arc<dyn EventSink>>>>;

static EVENT_LOOP: Once = Once::new();

/// Registers and runs libvirt's default event loop (idempotent). Must run
/// before the connections that should deliver events are opened.
pub(crate) fn start_event_loop() {
    EVENT_LOOP.call_once(|| {
        // SAFETY: a plain libvirt call with no arguments; `Once` makes it
        // happen at most once per process, as libvirt requires.
        if unsafe { sys::virEventRegisterDefaultImpl() } < 0 {
            tracing::warn!(
                "libvirt's default event loop could not be registered: no lifecycle events"
            );
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("libvirt-event-loop".into())
            .spawn(|| {
                loop {
                    // SAFETY: runs one iteration of the loop registered above;
                    // libvirt allows it from any one thread.
                    if unsafe { sys::virEventRunDefaultImpl() } < 0 {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            });
        if spawned.is_err() {
            tracing::warn!("cannot start the libvirt event loop thread: no lifecycle events");
        }
    });
}

fn transition(event: c_int, detail: c_int) -> Option<Transition> {
    let (event, detail) = (u32::try_from(event).ok()?, u32::try_from(detail).ok()?);
    Some(match event {
        sys::VIR_DOMAIN_EVENT_STARTED if detail == sys::VIR_DOMAIN_EVENT_STARTED_RESTORED => {
            Transition::Resumed
        }
        sys::VIR_DOMAIN_EVENT_STARTED => Transition::Started,
        sys::VIR_DOMAIN_EVENT_SUSPENDED => Transition::Paused,
        sys::VIR_DOMAIN_EVENT_RESUMED => Transition::Resumed,
        sys::VIR_DOMAIN_EVENT_STOPPED if detail == sys::VIR_DOMAIN_EVENT_STOPPED_SAVED => {
            Transition::Suspended
        }
        sys::VIR_DOMAIN_EVENT_STOPPED | sys::VIR_DOMAIN_EVENT_CRASHED => Transition::Stopped,
        sys::VIR_DOMAIN_EVENT_PMSUSPENDED => Transition::Suspended,
        _ => return None,
    })
}

/// libvirt's `virConnectDomainEventCallback` for lifecycle events.
unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    event: c_int,
    detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    let Some(t) = transition(event, detail) else {
        return 0;
    };
    let mut buf = [0 as c_char; sys::VIR_UUID_STRING_BUFLEN as usize];
    // SAFETY: `dom` is valid for the duration of the callback (libvirt's
    // contract) and `buf` has the size libvirt documents for uuid strings.
    if unsafe { sys::virDomainGetUUIDString(dom, buf.as_mut_ptr()) } < 0 {
        return 0;
    }
    // SAFETY: libvirt wrote a NUL-terminated string into `buf`.
    let uuid = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: `opaque` is the `Box<SinkSlot>` made in `register`; libvirt
    // frees it (through `free_slot`) only after the last callback.
    let slot = unsafe { &*(opaque as *const SinkSlot) };
    let sink = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(s) = sink {
        s.emit(LifecycleEvent {
            uuid,
            transition: t,
        });
    }
    0
}

/// Frees the slot handed to libvirt in `register`.
unsafe extern "C" fn free_slot(opaque: *mut c_void) {
    // SAFETY: `opaque` came from `Box::into_raw` in `register`, and libvirt
    // calls this once.
    drop(unsafe { Box::from_raw(opaque as *mut SinkSlot) });
}

/// Subscribes `conn` to lifecycle events of every domain, delivered to `slot`.
pub(crate) fn register(conn: &Connect, slot: SinkSlot) -> Result<()> {
    type LifecycleCallback = unsafe extern "C" fn(
        sys::virConnectPtr,
        sys::virDomainPtr,
        c_int,
        c_int,
        *mut c_void,
    ) -> c_int;
    let opaque = Box::into_raw(Box::new(slot)) as *mut c_void;
    // SAFETY: libvirt takes every callback as the generic type and calls it
    // with the signature of the event id (lifecycle: the one above); the
    // function-pointer cast is how the C API is meant to be used.
    let cb: sys::virConnectDomainEventGenericCallback = Some(unsafe {
        std::mem::transmute::<
            LifecycleCallback,
            unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void),
        >(on_lifecycle)
    });
    // SAFETY: `conn` is open; a null domain means every domain; libvirt
    // owns `opaque` from here and releases it with `free_slot`.
    let id = unsafe {
        sys::virConnectDomainEventRegisterAny(
            conn.as_ptr(),
            std::ptr::null_mut(),
            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
            cb,
            opaque,
            Some(free_slot),
        )
    };
    if id < 0 {
        // SAFETY: registration failed, so libvirt did not take `opaque`.
        drop(unsafe { Box::from_raw(opaque as *mut SinkSlot) });
        return Err(Error::Hypervisor(
            "cannot subscribe to libvirt lifecycle events".into(),
        ));
    }
    Ok(())
}

/// `virDomainInjectNMI` (the `virt` crate lacks it): an NMI to the guest,
/// nova's `trigger_crash_dump`.
pub(crate) fn inject_nmi(
    dom: &virt::domain::Domain,
) -> std::result::Result<(), virt::error::Error> {
    // SAFETY: `dom` owns a live domain pointer for the whole call, and
    // virDomainInjectNMI neither keeps nor frees it.
    let r = unsafe { sys::virDomainInjectNMI(dom.as_ptr(), 0) };
    if r < 0 {
        Err(virt::error::Error::last_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_events_map_to_transitions() {
        let e = |a: u32, b: u32| transition(a as c_int, b as c_int);
        assert_eq!(
            e(sys::VIR_DOMAIN_EVENT_STARTED, 0),
            Some(Transition::Started)
        );
        assert_eq!(
            e(
                sys::VIR_DOMAIN_EVENT_STARTED,
                sys::VIR_DOMAIN_EVENT_STARTED_RESTORED
            ),
            Some(Transition::Resumed)
        );
        assert_eq!(
            e(sys::VIR_DOMAIN_EVENT_SUSPENDED, 0),
            Some(Transition::Paused)
        );
        assert_eq!(
            e(sys::VIR_DOMAIN_EVENT_RESUMED, 0),
            Some(Transition::Resumed)
        );
        assert_eq!(
            e(sys::VIR_DOMAIN_EVENT_STOPPED, 0),
            Some(Transition::Stopped)
        );
        assert_eq!(
            e(
                sys::VIR_DOMAIN_EVENT_STOPPED,
                sys::VIR_DOMAIN_EVENT_STOPPED_SAVED
            ),
            Some(Transition::Suspended)
        );
        assert_eq!(
            e(sys::VIR_DOMAIN_EVENT_CRASHED, 0),
            Some(Transition::Stopped)
        );
        assert_eq!(e(0, 0), None);
    }
}
