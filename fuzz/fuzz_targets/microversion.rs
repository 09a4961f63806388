#![no_main]
//! See `nova_fuzz::api::microversion`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_fuzz::api::microversion(data));
