//! `sms`: one SMS request's verification (`SmsVerifier::verify_params`, each method) beside one
//! JWT callback's (`CallbackVerifier::verify_token`), measured in the same run.
//!
//! `cargo bench -p vonage-callbacks-bench --bench sms` ends with each one's median and its
//! ratio to the JWT path. The SMS request is a typical inbound message (11 parameters, about 300
//! bytes); the JWT callback carries a 256-byte body (a Video session event is about that size).

use std::hint::black_box;

use criterion::Criterion;
use vonage_callbacks_bench::*;
use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams, SmsVerifier};
use vonage_secure_callbacks::FixedClock;

const GROUP: &str = "sms";

fn inbound(method: SignatureMethod) -> SmsParams {
    let mut params = SmsParams::from_pairs([
        ("msisdn", "447700900001"),
        ("to", "447700900000"),
        ("messageId", "0A0000000123ABCD1"),
        ("text", "Hello from a phone, with a few words of text"),
        ("type", "text"),
        ("keyword", "HELLO"),
        ("message-timestamp", "2027-01-15 12:00:00"),
        ("api-key", API_KEY),
        ("nonce", "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"),
        ("timestamp", "1800000000"),
    ]);
    let sig = method.sign(&params, SECRET.as_bytes());
    params.set("sig", sig);
    params
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    let jwt = verifier();
    let body = body(256);
    let token = token(&body);
    assert!(jwt.verify_token(&token, &body).is_ok());
    group.bench_function("jwt", |b| {
        b.iter(|| jwt.verify_token(black_box(&token), black_box(&body)))
    });
    for method in SignatureMethod::ALL {
        let sms = SmsVerifier::new(secrets(), method).clock(FixedClock::new(NOW));
        let params = inbound(method);
        assert!(sms.verify_params(&params).is_ok());
        group.bench_function(method.name(), |b| {
            b.iter(|| sms.verify_params(black_box(&params)))
        });
    }
    group.finish();
}

fn report() {
    println!("\nsms: medians of this run");
    let Some(jwt) = median_ns(GROUP, "jwt", "") else {
        return;
    };
    println!("{:>8}  {:>10}  {:>8}", "path", "median", "vs jwt");
    println!("{:>8}  {:>8.0}ns  {:>8.3}", "jwt", jwt, 1.0);
    for method in SignatureMethod::ALL {
        if let Some(m) = median_ns(GROUP, method.name(), "") {
            println!("{:>8}  {:>8.0}ns  {:>8.3}", method.name(), m, m / jwt);
        }
    }
}

fn main() {
    let mut c = criterion();
    bench(&mut c);
    c.final_summary();
    report();
}
