//! The public test vectors (Vonage SDK test suites and third parties), each with its verdict.

use crate::common;

use common::*;
use http::StatusCode;
use serde::Deserialize;
use vonage_secure_callbacks::dangerous::verify_signature;
use vonage_secure_callbacks::{
    CallbackVerifier, FixedClock, MemoryReplayStore, Rejection, Secret, Secrets,
    SecureCallbackLayer,
};

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    token: String,
    secret: String,
    now: u64,
    body: Option<String>,
    signature_valid: bool,
    payload_hash_valid: Option<bool>,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("../fixtures/vonage_vectors.json");
    let v: Vectors = serde_json::from_str(text).unwrap();
    assert!(v.vectors.len() >= 7);
    v.vectors
}

#[test]
fn every_signature_verdict() {
    for v in vectors() {
        let secret = Secret::new(&v.secret).unwrap();
        let got = verify_signature(&v.token, &secret);
        if v.signature_valid {
            assert_eq!(got, Ok(()), "{}", v.name);
        } else {
            assert_eq!(got, Err(Rejection::BadSignature), "{}", v.name);
        }
    }
}

/// Through the whole verifier at the vector's time: the verdict decides the rejection.
#[test]
fn every_full_verdict() {
    for v in vectors() {
        let Some(api_key) = claim_of(&v.token, "api_key") else {
            // Signature-only vectors (no Vonage claims): a callback without api_key is malformed.
            let verifier = CallbackVerifier::new(Secrets::new());
            assert_eq!(
                verifier.verify_token(&v.token, b"").unwrap_err(),
                Rejection::MalformedToken,
                "{}",
                v.name
            );
            continue;
        };
        let verifier =
            CallbackVerifier::new(Secrets::new().project(api_key, Secret::new(&v.secret).unwrap()))
                .clock(FixedClock::new(v.now));
        let body = v.body.clone().unwrap_or_default();
        let got = verifier.verify_token(&v.token, body.as_bytes());
        let expected = match (v.signature_valid, v.body.is_some(), v.payload_hash_valid) {
            (false, _, _) => Err(Rejection::BadSignature),
            // The body behind the hash is not public: the signature passes, the hash cannot.
            (true, false, _) => Err(Rejection::PayloadHashMismatch),
            (true, true, Some(false)) => Err(Rejection::PayloadHashMismatch),
            (true, true, _) => Ok(()),
        };
        assert_eq!(got.map(|_| ()), expected, "{}", v.name);
    }
}

/// The vectors with a known body, sent to a real axum server running at the vector's time.
#[tokio::test]
async fn vectors_with_bodies_through_a_real_server() {
    let mut checked = 0;
    for v in vectors() {
        let (Some(body), Some(api_key)) = (v.body.clone(), claim_of(&v.token, "api_key")) else {
            continue;
        };
        let clock = FixedClock::new(v.now);
        let layer = SecureCallbackLayer::new(
            CallbackVerifier::new(Secrets::new().project(api_key, Secret::new(&v.secret).unwrap()))
                .clock(clock.clone()),
        )
        .replay_store(MemoryReplayStore::new());
        let addr = serve_axum(echo_app(layer)).await;
        let reply = post(addr, Some(&format!("Bearer {}", v.token)), body.clone()).await;
        match (v.signature_valid, v.payload_hash_valid) {
            (true, Some(true)) => {
                assert_eq!(reply.status, StatusCode::OK, "{}: {reply:?}", v.name);
                assert_eq!(reply.json()["jti"], "c5ba8f24-1a14-4c1e-93e6-a98f1b0a0a1b");
            }
            (true, _) => assert_eq!(reply.error(), "payload_hash_mismatch", "{}", v.name),
            (false, _) => assert_eq!(reply.error(), "bad_signature", "{}", v.name),
        }
        checked += 1;
    }
    assert_eq!(checked, 3, "the three vectors with bodies");
}
