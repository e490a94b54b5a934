#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vonage_secure_callbacks_fuzz::sms(data);
});
