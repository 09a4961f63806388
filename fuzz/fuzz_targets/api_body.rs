#![no_main]
//! See `nova_fuzz::api::body`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_fuzz::api::body(data));
