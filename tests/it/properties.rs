//! Properties of verification over generated callbacks (proptest).

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tower::{Layer, ServiceExt};
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{
    CallbackVerifier, FixedClock, MemoryReplayStore, Rejection, Secret, Secrets,
    SecureCallbackLayer, VerifiedBody, DEFAULT_CLOCK_SKEW, DEFAULT_MAX_AGE,
};

const API_KEY: &str = "a1b2c3d4";
const SECRET: &str = "property-test-secret-property-test-01";
const NOW: u64 = 1_800_000_000;

fn verifier() -> CallbackVerifier {
    CallbackVerifier::new(Secrets::new().project(API_KEY, Secret::new(SECRET).unwrap()))
        .clock(FixedClock::new(NOW))
}

fn sign(body: &[u8]) -> String {
    CallbackSigner::new(API_KEY, SECRET).token_with(body, |c| {
        c.insert("iat".into(), NOW.into());
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_byte_change_to_the_token_is_rejected(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        position in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        let token = sign(&body);
        let v = verifier();
        prop_assert!(v.verify_token(&token, &body).is_ok());
        let mut bytes = token.clone().into_bytes();
        let i = position.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        // Not UTF-8 any more: it could not even be a header value's text.
        if let Ok(changed) = String::from_utf8(bytes) {
            prop_assert!(v.verify_token(&changed, &body).is_err(), "accepted {changed}");
        }
    }

    #[test]
    fn any_single_byte_change_insertion_or_deletion_in_the_body_is_rejected(
        body in proptest::collection::vec(any::<u8>(), 1..2048),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        edit in 0..3u8,
    ) {
        let token = sign(&body);
        let v = verifier();
        prop_assert!(v.verify_token(&token, &body).is_ok());
        let mut changed = body.clone();
        let i = position.index(body.len());
        match edit {
            0 => {
                prop_assume!(changed[i] != byte);
                changed[i] = byte;
            }
            1 => changed.insert(i, byte),
            _ => {
                changed.remove(i);
            }
        }
        prop_assert_eq!(
            v.verify_token(&token, &changed).unwrap_err().code(),
            "payload_hash_mismatch"
        );
    }

    #[test]
    fn re_serialised_json_is_rejected(
        fields in proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{0,16}", 2..8),
        pretty in any::<bool>(),
    ) {
        // The body as sent, with keys in one order and no spaces...
        let sent: String = {
            let parts: Vec<String> = fields
                .iter()
                .rev()
                .map(|(k, v)| format!("{}:{}", json!(k), json!(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        };
        let token = sign(sent.as_bytes());
        let v = verifier();
        prop_assert!(v.verify_token(&token, sent.as_bytes()).is_ok());
        // ...and the same JSON value serialised again (sorted keys, maybe pretty).
        let value: serde_json::Value = serde_json::from_str(&sent).unwrap();
        let again = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        };
        prop_assume!(again != sent);
        prop_assert_eq!(
            v.verify_token(&token, again.as_bytes()).unwrap_err().code(),
            "payload_hash_mismatch"
        );
    }

    #[test]
    fn the_signers_output_always_verifies(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        api_key in "[a-zA-Z0-9]{1,16}",
        secret in "[ -~]{32,80}",
    ) {
        let signer = CallbackSigner::new(api_key.clone(), &secret);
        let v = CallbackVerifier::new(
            Secrets::new().project(api_key.clone(), Secret::new(&secret).unwrap()),
        );
        let claims = v.verify_authorization(&signer.authorization(&body), &body).unwrap();
        prop_assert_eq!(claims.api_key(), api_key.as_str());
    }
}

/// One change to an otherwise valid callback, or none.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    TokenByte(prop::sample::Index, u8),
    BodyByte(prop::sample::Index, u8),
    IatAged(u64),
    IatAhead(u64),
    ExpPassed(u64),
    NbfAhead(u64),
    Issuer(String),
    NoPayloadHash,
    UpperCaseHash,
    EmptyJti,
    NoJti,
    UnknownApiKey,
    OtherSecret,
    Algorithm(&'static str),
    NoAuthorization,
    TwoAuthorizations,
    Scheme(&'static str),
    DeclaredTooLarge,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let day = DEFAULT_MAX_AGE.as_secs();
    let skew = DEFAULT_CLOCK_SKEW.as_secs();
    prop_oneof![
        Just(Mutation::None),
        (
            any::<prop::sample::Index>(),
            prop::sample::select(b"AZaz09-_.=".to_vec())
        )
            .prop_map(|(i, b)| Mutation::TokenByte(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::BodyByte(i, b)),
        // Around the edges of the window, both sides of each.
        (day - 2..day + 3).prop_map(Mutation::IatAged),
        (skew - 2..skew + 3).prop_map(Mutation::IatAhead),
        (skew - 2..skew + 3).prop_map(Mutation::ExpPassed),
        (skew - 2..skew + 3).prop_map(Mutation::NbfAhead),
        "(Vonage|vonage|Nexmo|)".prop_map(Mutation::Issuer),
        Just(Mutation::NoPayloadHash),
        Just(Mutation::UpperCaseHash),
        Just(Mutation::EmptyJti),
        Just(Mutation::NoJti),
        Just(Mutation::UnknownApiKey),
        Just(Mutation::OtherSecret),
        prop::sample::select(vec!["HS512", "none", "RS256"]).prop_map(Mutation::Algorithm),
        Just(Mutation::NoAuthorization),
        Just(Mutation::TwoAuthorizations),
        prop::sample::select(vec!["Basic", "bearer", "BEARER"]).prop_map(Mutation::Scheme),
        Just(Mutation::DeclaredTooLarge),
    ]
}

/// The request's headers and body after `mutation`.
fn mutated(body: &[u8], mutation: &Mutation) -> (HeaderMap, Vec<u8>) {
    let mut body = body.to_vec();
    let edit_claims = |edit: &dyn Fn(&mut Map<String, Value>)| {
        CallbackSigner::new(API_KEY, SECRET).token_with(&body, |c| {
            c.insert("iat".into(), NOW.into());
            edit(c);
        })
    };
    let mut token = match mutation {
        Mutation::IatAged(age) => edit_claims(&|c| {
            c.insert("iat".into(), json!(NOW - age));
        }),
        Mutation::IatAhead(ahead) => edit_claims(&|c| {
            c.insert("iat".into(), json!(NOW + ahead));
        }),
        Mutation::ExpPassed(past) => edit_claims(&|c| {
            c.insert("exp".into(), json!(NOW - past));
        }),
        Mutation::NbfAhead(ahead) => edit_claims(&|c| {
            c.insert("nbf".into(), json!(NOW + ahead));
        }),
        Mutation::Issuer(iss) => edit_claims(&|c| {
            c.insert("iss".into(), json!(iss));
        }),
        Mutation::NoPayloadHash => edit_claims(&|c| {
            c.remove("payload_hash");
        }),
        Mutation::UpperCaseHash => edit_claims(&|c| {
            let upper = c["payload_hash"].as_str().unwrap().to_uppercase();
            c.insert("payload_hash".into(), json!(upper));
        }),
        Mutation::EmptyJti => edit_claims(&|c| {
            c.insert("jti".into(), json!(""));
        }),
        Mutation::NoJti => edit_claims(&|c| {
            c.remove("jti");
        }),
        Mutation::UnknownApiKey => edit_claims(&|c| {
            c.insert("api_key".into(), json!("not-configured"));
        }),
        Mutation::OtherSecret => CallbackSigner::new(
            API_KEY,
            "another-secret-another-secret-00001",
        )
        .token_with(&body, |c| {
            c.insert("iat".into(), NOW.into());
        }),
        Mutation::Algorithm(alg) => {
            let signer = CallbackSigner::new(API_KEY, SECRET);
            let claims = Value::Object(signer.claims(&body, NOW)).to_string();
            signer.sign_json(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#), claims)
        }
        _ => sign(&body),
    };
    match mutation {
        Mutation::TokenByte(i, b) => {
            let mut bytes = token.into_bytes();
            let i = i.index(bytes.len());
            bytes[i] = *b;
            token = String::from_utf8(bytes).unwrap();
        }
        Mutation::BodyByte(i, b) if !body.is_empty() => {
            let i = i.index(body.len());
            body[i] = *b;
        }
        _ => {}
    }
    let mut headers = HeaderMap::new();
    let scheme = match mutation {
        Mutation::Scheme(scheme) => scheme,
        _ => "Bearer",
    };
    let value = format!("{scheme} {token}").parse().unwrap();
    match mutation {
        Mutation::NoAuthorization => {}
        Mutation::TwoAuthorizations => {
            headers.append(header::AUTHORIZATION, value);
            headers.append(
                header::AUTHORIZATION,
                format!("Bearer {}", sign(&body)).parse().unwrap(),
            );
        }
        _ => {
            headers.append(header::AUTHORIZATION, value);
        }
    }
    let declared = match mutation {
        Mutation::DeclaredTooLarge => LIMIT + 1,
        _ => body.len(),
    };
    headers.insert(header::CONTENT_LENGTH, declared.into());
    (headers, body)
}

/// Small, so that generated bodies cross it.
const LIMIT: usize = 1536;

/// What the layer answers for the request: `Ok` when the inner service ran, else its
/// rejection (from the response's extensions).
fn through_the_layer(
    verifier: &CallbackVerifier,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<(), Rejection> {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
    }
    let inner = tower::service_fn(|_: Request<VerifiedBody>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    // A store of its own: each case's `jti` is new to it.
    let service = SecureCallbackLayer::new(verifier.clone())
        .replay_store(MemoryReplayStore::new())
        .layer(inner);
    let mut request = Request::post("/vonage/callback")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    *request.headers_mut() = headers;
    let response = RUNTIME
        .with(|rt| rt.block_on(service.oneshot(request)))
        .unwrap();
    match response.extensions().get::<Rejection>() {
        Some(rejection) => Err(*rejection),
        None => {
            assert_eq!(response.status(), StatusCode::OK);
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The layer and [`CallbackVerifier::explain`] reach the same verdict, with the same code,
    /// on valid callbacks and on each single mutation of one: the report is a view of the
    /// checks the layer runs, not a copy of them.
    #[test]
    fn the_layer_and_the_report_agree(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        mutation in mutation(),
    ) {
        let verifier = verifier().body_limit(LIMIT);
        let (headers, body) = mutated(&body, &mutation);
        let report = verifier.explain(&headers, &body);
        let by_layer = through_the_layer(&verifier, headers.clone(), body.clone());
        let by_report = report.verdict().map(|_| ());
        prop_assert_eq!(by_layer, by_report, "{:?}", mutation);
        prop_assert_eq!(verifier.verify(&headers, &body).map(|_| ()), by_report);
        if matches!(mutation, Mutation::None | Mutation::UpperCaseHash | Mutation::EmptyJti)
            && body.len() <= LIMIT
        {
            prop_assert_eq!(by_report, Ok(()), "{:?}", mutation);
        }
    }
}

mod sms {
    use proptest::prelude::*;
    use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams, SmsVerifier};
    use vonage_secure_callbacks::{FixedClock, Rejection, Secret, Secrets};

    const SECRET: &str = "property-test-sms-secret-property-0001";
    const NOW: u64 = 1_800_000_000;

    fn verifier(method: SignatureMethod) -> SmsVerifier {
        let secrets = Secrets::new().project("k", Secret::new(SECRET).unwrap());
        SmsVerifier::new(secrets, method).clock(FixedClock::new(NOW))
    }

    fn method() -> impl Strategy<Value = SignatureMethod> {
        prop::sample::select(SignatureMethod::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any parameters, signed by any method, verify by that method (in a form, as JSON and
        /// as given); any change of one character of a value is refused, but for `&`, `=` and
        /// `_`, which the scheme signs alike (a weakness of Vonage's scheme, not of this crate).
        #[test]
        fn signed_parameters_verify_and_any_single_change_is_refused(
            fields in proptest::collection::btree_map("[a-zA-Z][a-zA-Z0-9_-]{0,11}", "\\PC{0,24}", 1..10),
            method in method(),
            which in any::<prop::sample::Index>(),
            position in any::<prop::sample::Index>(),
            replacement in prop::sample::select(b"aZ09 +%/.-~\xc3".to_vec()),
        ) {
            let mut params = SmsParams::from_pairs(
                fields.iter().filter(|(n, _)| !matches!(n.as_str(), "sig" | "timestamp" | "api-key")),
            );
            params.set("timestamp", NOW.to_string());
            let sig = method.sign(&params, SECRET.as_bytes());
            params.set("sig", sig);
            let v = verifier(method);
            prop_assert!(v.verify_params(&params).is_ok());
            let round_trip = SmsParams::from_form(params.to_form().as_bytes()).unwrap();
            prop_assert!(v.verify_params(&round_trip).is_ok());

            let names: Vec<String> = params
                .iter()
                .filter(|(n, _)| *n != "sig" && *n != "timestamp")
                .map(|(n, _)| n.to_owned())
                .collect();
            prop_assume!(!names.is_empty());
            let name = &names[which.index(names.len())];
            let value = params.get(name).unwrap().to_owned();
            let mut bytes = value.clone().into_bytes();
            let changed = if bytes.is_empty() {
                char::from(replacement).to_string()
            } else {
                let i = position.index(bytes.len());
                bytes[i] = replacement;
                String::from_utf8_lossy(&bytes).into_owned()
            };
            let masked = |s: &str| s.replace(['&', '='], "_");
            prop_assume!(masked(&changed) != masked(&value));
            let mut tampered = params.clone();
            tampered.set(name.clone(), changed);
            prop_assert_eq!(v.verify_params(&tampered).unwrap_err(), Rejection::BadSignature);
        }
    }
}
