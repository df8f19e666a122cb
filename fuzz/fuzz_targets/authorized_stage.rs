//! libFuzzer entry point of the `authorized_stage` check (`promote_fuzz::authorized_stage`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| promote_fuzz::authorized_stage(data));
