//! The SMS `sig` vectors of Vonage's SDK test suites (`tests/fixtures/sms_signature_vectors.json`),
//! each verified through the public API at its own `timestamp`, and refused once changed.

use serde::Deserialize;
use vonage_secure_callbacks::dangerous::short_secret;
use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams, SmsVerifier};
use vonage_secure_callbacks::{FixedClock, Rejection, Secrets};

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    method: String,
    params: serde_json::Map<String, serde_json::Value>,
    secret: String,
    sig: String,
}

pub fn vectors() -> Vec<(String, SignatureMethod, SmsParams, String, String)> {
    let file: Vectors =
        serde_json::from_str(include_str!("../fixtures/sms_signature_vectors.json")).unwrap();
    file.vectors
        .into_iter()
        .map(|v| {
            let mut params = SmsParams::from_pairs(
                v.params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())),
            );
            params.set("sig", v.sig.clone());
            let method = v.method.parse().unwrap();
            (v.name, method, params, v.secret, v.sig)
        })
        .collect()
}

fn verifier(secret: &str, method: SignatureMethod, now: u64) -> SmsVerifier {
    let secrets = Secrets::new().project("vectors", short_secret(secret).unwrap());
    SmsVerifier::new(secrets, method).clock(FixedClock::new(now))
}

fn timestamp(params: &SmsParams) -> u64 {
    params.get("timestamp").unwrap().parse().unwrap()
}

#[test]
fn every_vector_verifies_at_its_timestamp_by_its_method_only() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 14);
    for (name, method, params, secret, sig) in vectors {
        let now = timestamp(&params);
        let verified = verifier(&secret, method, now).verify_params(&params);
        assert!(verified.is_ok(), "{name}: {verified:?}");
        // Recomputed here, in lower case, whatever case the SDK wrote.
        let computed = method.sign(&params, secret.as_bytes());
        assert_eq!(computed, sig.to_lowercase(), "{name}");

        // The other case verifies too; every other method does not (no downgrade by length).
        let mut other_case = params.clone();
        let flipped: String = sig
            .chars()
            .map(|c| {
                if c.is_ascii_uppercase() {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        other_case.set("sig", flipped);
        assert!(
            verifier(&secret, method, now)
                .verify_params(&other_case)
                .is_ok(),
            "{name}"
        );
        for other in SignatureMethod::ALL.into_iter().filter(|m| *m != method) {
            assert_eq!(
                verifier(&secret, other, now)
                    .verify_params(&params)
                    .unwrap_err(),
                Rejection::BadSignature,
                "{name} under {other}"
            );
        }
        // A changed value, an added and a removed parameter: refused.
        let mut tampered = params.clone();
        tampered.set("timestamp", (now + 1).to_string());
        assert_eq!(
            verifier(&secret, method, now)
                .verify_params(&tampered)
                .unwrap_err(),
            Rejection::BadSignature,
            "{name}"
        );
        let mut added = params.clone();
        added.set("extra", "1");
        assert_eq!(
            verifier(&secret, method, now)
                .verify_params(&added)
                .unwrap_err(),
            Rejection::BadSignature,
            "{name}"
        );
        let removed = SmsParams::from_pairs(params.iter().filter(|(n, _)| *n != "to" && *n != "a"));
        assert_eq!(
            verifier(&secret, method, now)
                .verify_params(&removed)
                .unwrap_err(),
            Rejection::BadSignature,
            "{name}"
        );
        // Outside the window on either side.
        let day = 24 * 3600;
        assert_eq!(
            verifier(&secret, method, now + 3 * day + 301)
                .verify_params(&params)
                .unwrap_err(),
            Rejection::StaleToken,
            "{name}"
        );
        assert!(
            verifier(&secret, method, now + 3 * day)
                .verify_params(&params)
                .is_ok(),
            "{name}"
        );
        assert_eq!(
            verifier(&secret, method, now - 301)
                .verify_params(&params)
                .unwrap_err(),
            Rejection::TokenFromFuture,
            "{name}"
        );
    }
}
