//! libFuzzer entry point of the `json_update` check (`promote_fuzz::json_update`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| promote_fuzz::json_update(data));
