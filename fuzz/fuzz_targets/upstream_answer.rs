#![no_main]
//! The proxy's hand-made upstream exchange, compiled here from the command's own source, fed
//! any bytes as an upstream's answer; its checks live beside it (`fuzz_answer`).

#[allow(dead_code)]
#[path = "../../cli/src/proxy/headers.rs"]
mod headers;

#[allow(dead_code)]
#[path = "../../cli/src/proxy/exchange.rs"]
mod exchange;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exchange::fuzz_answer(data));
