//! libFuzzer entry point of the `expression` check (`promote_fuzz::expression`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| promote_fuzz::expression(data));
