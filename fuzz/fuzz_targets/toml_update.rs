//! libFuzzer entry point of the `toml_update` check (`promote_fuzz::toml_update`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| promote_fuzz::toml_update(data));
