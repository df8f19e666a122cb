//! libFuzzer entry point of the `admission` check (`promote_fuzz::admission`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| promote_fuzz::admission(data));
