#![no_main]
//! See `nova_fuzz::rpc::envelope`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_fuzz::rpc::envelope(data));
