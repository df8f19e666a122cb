//! libFuzzer entry point of the `urls` check (`promote_fuzz::urls`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| promote_fuzz::urls(data));
