//! Per-vCPU times (`virDomainGetVcpus`) through the raw bindings: `virt`
//! 0.5 has no safe API for them. With `events.rs`, the crate's only unsafe
//! code.
#![allow(unsafe_code)]

use std::ffi::c_int;

use virt::domain::Domain;
use virt::sys;

/// `(vCPU number, CPU time in ns)` of each of the domain's (at most `n`)
/// vCPUs; `None` when libvirt cannot tell (the domain is not running).
pub(crate) fn vcpu_times(dom: &Domain, n: u32) -> Option<Vec<(i64, i64)>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let empty = sys::virVcpuInfo {
        number: 0,
        state: 0,
        cpuTime: 0,
        cpu: 0,
    };
    let mut info = vec![empty; n as usize];
    // SAFETY: `info` holds `n` records and libvirt writes at most `maxinfo`
    // of them; no CPU maps are asked for (null, length 0); the domain
    // pointer is valid while `dom` lives.
    let got = unsafe {
        sys::virDomainGetVcpus(
            dom.as_ptr(),
            info.as_mut_ptr(),
            n as c_int,
            std::ptr::null_mut(),
            0,
        )
    };
    if got < 0 {
        return None;
    }
    Some(
        info[..(got as usize).min(info.len())]
            .iter()
            .map(|v| (i64::from(v.number), v.cpuTime as i64))
            .collect(),
    )
}
