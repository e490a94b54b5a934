#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vonage_secure_callbacks_fuzz::authorization(data);
});
