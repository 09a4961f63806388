#![no_main]
//! See `nova_fuzz::objects::msgpack`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_fuzz::objects::msgpack(data));
