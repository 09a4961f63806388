#![no_main]
//! See `nova_fuzz::objects::json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_fuzz::objects::json(data));
