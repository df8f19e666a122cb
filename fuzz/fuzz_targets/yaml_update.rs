//! libFuzzer entry point of the `yaml_update` check (`promote_fuzz::yaml_update`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| promote_fuzz::yaml_update(data));
