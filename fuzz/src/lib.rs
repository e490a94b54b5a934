//! The fuzz targets' bodies, with the invariants they check, as plain functions: libFuzzer
//! calls them from `fuzz_targets/`, and the crate's test suite replays the seed corpus and any
//! saved crash through them (`tests/fuzz_regressions.rs`), so a finding stays fixed.
//!
//! Beyond "no panic": a callback reaches the inner service only when its signature verifies
//! with a configured secret and its body hashes to `payload_hash`; every other input gets one
//! of the documented rejections, with its documented status.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{Empty, Full};
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;
use vonage_secure_callbacks::dangerous::verify_signature;
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{
    CallbackVerifier, FixedClock, MemoryReplayStore, Rejection, Secret, Secrets,
    SecureCallbackLayer, VerifiedBody, VonageClaims,
};

pub const API_KEY: &str = "a1b2c3d4";
pub const SECRET: &str = "fuzzing-signature-secret-fuzzing-0001";
pub const OTHER_SECRET: &str = "fuzzing-rotated-secret-fuzzing-0002";
pub const NOW: u64 = 1_800_000_000;
pub const BODY: &[u8] = br#"{"sessionId":"1_MX4","event":"connectionCreated"}"#;
/// Small, so that the fuzzer reaches the limit often.
pub const LIMIT: usize = 1024;

fn secrets() -> Secrets {
    Secrets::new()
        .project(API_KEY, Secret::new(SECRET).unwrap())
        .project(API_KEY, Secret::new(OTHER_SECRET).unwrap())
}

fn verifier() -> CallbackVerifier {
    CallbackVerifier::new(secrets())
        .clock(FixedClock::new(NOW))
        .body_limit(LIMIT)
}

/// The token of a `Bearer` header value, as a test would read it.
fn bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

/// What a verified callback must satisfy, checked independently of the crate's own code.
fn assert_truly_valid(token: &str, body: &[u8], claims: &VonageClaims) {
    let signed = [SECRET, OTHER_SECRET]
        .iter()
        .any(|s| verify_signature(token, &Secret::new(s).unwrap()).is_ok());
    assert!(signed, "accepted a token no configured secret signed");
    assert_eq!(claims.api_key(), API_KEY);
    assert_eq!(claims.iss(), "Vonage");
    assert!(claims.iat() + 24 * 3600 >= NOW && claims.iat() <= NOW + 300);
    let expected: String = Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sent = claims.payload_hash().expect("hash checked");
    assert!(
        sent.eq_ignore_ascii_case(&expected),
        "accepted a body that does not hash"
    );
    // The claims the crate reports are the ones that were signed.
    let payload = token.split('.').nth(1).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(json["jti"].as_str(), Some(claims.jti()));
    assert_eq!(json["api_key"].as_str(), Some(claims.api_key()));
}

/// Target `authorization`: arbitrary bytes as the `Authorization` header value, fixed body.
pub fn authorization(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    let verdict = verifier().verify(&headers, BODY);
    if let Ok(claims) = &verdict {
        assert_truly_valid(
            bearer(data).expect("accepted a non-Bearer value"),
            BODY,
            claims,
        );
    }
    if let Some(token) = bearer(data) {
        // A token that does not verify under any secret is never accepted.
        let unsigned = [SECRET, OTHER_SECRET]
            .iter()
            .all(|s| verify_signature(token, &Secret::new(s).unwrap()).is_err());
        assert!(!(unsigned && verdict.is_ok()));
    }
}

/// Target `claims`: arbitrary bytes as the claims JSON of a correctly signed token, so that
/// claim decoding and the checks after the signature are explored.
pub fn claims(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let signer = CallbackSigner::new(API_KEY, SECRET);
    let token = signer.sign_json(r#"{"alg":"HS256","typ":"JWT"}"#, text);
    match verifier().verify_token(&token, BODY) {
        Ok(claims) => {
            assert_truly_valid(&token, BODY, &claims);
            let json: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(json["iat"].as_u64(), Some(claims.iat()));
            assert_eq!(claims.raw_json(), text.as_bytes());
        }
        Err(rejection) => assert!(Rejection::ALL.contains(&rejection)),
    }
}

/// What the inner service of the `service` target saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Option<(VonageClaims, Bytes)>>>);

impl Service<Request<VerifiedBody>> for Seen {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<VerifiedBody>) -> Self::Future {
        let claims = req.extensions().get::<VonageClaims>().cloned().unwrap();
        *self.0.lock().unwrap() = Some((claims, req.into_body().into_bytes()));
        std::future::ready(Ok(Response::new(Empty::new())))
    }
}

/// Every future here completes without waiting: the body is in memory, the store in memory.
fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("nothing here waits"),
    }
}

/// Target `service`: `[flags][auth len: u16 LE][auth][content-length: u32 LE][body]` through
/// the whole tower service. Flags: bit 0, send `Authorization`; bit 1, send `Content-Length`
/// (any value, even a false one); bit 2, send the request twice (replay).
///
/// Returns whether the inner service was reached.
pub fn service(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let Some((len, rest)) = rest.split_first_chunk::<2>() else {
        return false;
    };
    let auth_len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (auth, rest) = rest.split_at(auth_len);
    let Some((declared, body)) = rest.split_first_chunk::<4>() else {
        return false;
    };
    let declared = u32::from_le_bytes(*declared);

    let seen = Seen::default();
    let layer =
        SecureCallbackLayer::new(verifier()).replay_store(MemoryReplayStore::with_capacity(64));
    let mut svc = layer.layer(seen.clone());
    let rounds = if flags & 4 != 0 { 2 } else { 1 };
    let mut accepted = false;
    for _ in 0..rounds {
        let mut request = Request::post("/")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        if flags & 1 != 0 {
            let Ok(value) = HeaderValue::from_bytes(auth) else {
                return false;
            };
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
        if flags & 2 != 0 {
            request
                .headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(declared));
        }
        *seen.0.lock().unwrap() = None;
        let response = now(svc.call(request)).unwrap();
        let rejection = response.extensions().get::<Rejection>().copied();
        let reached = seen.0.lock().unwrap().take();
        match (rejection, reached) {
            (None, Some((claims, inner_body))) => {
                assert_eq!(inner_body, body, "the inner service got other bytes");
                assert!(body.len() <= LIMIT);
                let token = bearer(auth).expect("accepted without a Bearer token");
                assert_truly_valid(token, body, &claims);
                assert!(!accepted, "a replay reached the inner service");
                accepted = true;
            }
            (Some(rejection), None) => {
                assert_eq!(response.status(), rejection.status());
                if accepted {
                    assert_eq!(rejection, Rejection::ReplayedToken);
                }
            }
            (rejection, reached) => panic!(
                "inconsistent: rejection {rejection:?}, inner reached: {}",
                reached.is_some()
            ),
        }
    }
    accepted
}

/// Encodes a request in the `service` target's input format (for seeds).
pub fn service_input(flags: u8, auth: &[u8], declared: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(auth.len() as u16).to_le_bytes());
    out.extend_from_slice(auth);
    out.extend_from_slice(&declared.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The SMS scheme's parser and verifier: the first byte picks the method and the encoding, the
/// rest is a query/form or a JSON body. Nothing panics; what parses survives a form round trip
/// and verifies exactly when its `sig` is that method's signature; every refusal is a code.
pub fn sms(data: &[u8]) -> bool {
    use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams, SmsVerifier};
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    let methods = SignatureMethod::ALL;
    let method = methods[usize::from(selector) % methods.len()];
    let parsed = if selector & 0x80 != 0 {
        SmsParams::from_json(rest)
    } else {
        SmsParams::from_form(rest)
    };
    let Ok(params) = parsed else {
        return false;
    };
    let round_trip = SmsParams::from_form(params.to_form().as_bytes()).unwrap();
    assert_eq!(round_trip, params);
    let secrets = Secrets::new().project(API_KEY, Secret::new(SECRET).unwrap());
    let verifier = SmsVerifier::new(secrets, method).clock(FixedClock::new(NOW));
    match verifier.verify_params(&params) {
        Ok(verified) => {
            let expected = method.sign(
                &SmsParams::from_pairs(params.iter().filter(|(n, _)| *n != "sig")),
                SECRET.as_bytes(),
            );
            assert!(params.get("sig").unwrap().eq_ignore_ascii_case(&expected));
            assert_eq!(verified.params(), &params);
            true
        }
        Err(rejection) => {
            assert!(Rejection::ALL.contains(&rejection));
            false
        }
    }
}
