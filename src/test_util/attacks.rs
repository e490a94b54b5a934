//! The requests a hostile client sends to a callback URL, each with the answer a protected
//! endpoint owes it: a suite to run against a real deployment (a server, a proxy) rather than
//! against the verifier alone.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::{json, Value};

use super::signer::{fresh_jti, CallbackSigner};
use crate::clock::{Clock, SystemClock};
use crate::payload::payload_hash;
use crate::rejection::Rejection;
use crate::verify::DEFAULT_BODY_LIMIT;

/// What a protected endpoint must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The callback is genuine: the handler runs and answers 2xx.
    Accepted,
    /// Refused with this rejection's status and `{"error":"<code>"}` body.
    Refused(Rejection),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Accepted => f.write_str("accepted (2xx)"),
            Expected::Refused(r) => write!(f, "refused {} {}", r.status().as_u16(), r.code()),
        }
    }
}

/// One request of a suite and the answer it must get.
///
/// A suite ([`jwt_attacks`], `sms_attacks`) is ordered: some attacks replay a callback that
/// an earlier one delivered. Send them in order, one at a time, to one endpoint whose window
/// has not seen them, soon after building them (their tokens are issued at build time), and
/// [`check`](Self::check) each answer.
#[derive(Clone)]
pub struct Attack {
    name: String,
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
    expected: Expected,
}

impl Attack {
    pub(super) fn new(name: impl Into<String>, method: Method, path_and_query: String) -> Self {
        Self {
            name: name.into(),
            method,
            path_and_query,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            expected: Expected::Accepted,
        }
    }

    pub(super) fn header(mut self, name: http::HeaderName, value: &str) -> Self {
        // Every value the suites build is visible ASCII.
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.append(name, value);
        }
        self
    }

    pub(super) fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds `suffix` to the request's path and query (the SMS suite's parameters).
    #[cfg(feature = "sms")]
    pub(super) fn append_to_uri(mut self, suffix: &str) -> Self {
        self.path_and_query.push_str(suffix);
        self
    }

    pub(super) fn expect(mut self, expected: Expected) -> Self {
        self.expected = expected;
        self
    }

    /// What the attack tries, in a few words.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The answer it must get.
    pub fn expected(&self) -> Expected {
        self.expected
    }

    /// The request, addressed to `origin` (`http://127.0.0.1:8080`, no trailing slash).
    pub fn request(&self, origin: &str) -> Request<Bytes> {
        let mut request = Request::new(self.body.clone());
        *request.method_mut() = self.method.clone();
        *request.headers_mut() = self.headers.clone();
        *request.uri_mut() = format!("{origin}{}", self.path_and_query)
            .parse()
            .unwrap_or_default();
        request
    }

    /// Whether `status` and `body` are the answer this attack must get; the reason when not.
    /// A refusal is judged as the default rejection response writes it.
    pub fn check(&self, status: StatusCode, body: &[u8]) -> Result<(), String> {
        let ok = match self.expected {
            Expected::Accepted => status.is_success(),
            Expected::Refused(rejection) => {
                let code = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("error")?.as_str().map(str::to_owned));
                status == rejection.status() && code.as_deref() == Some(rejection.code())
            }
        };
        if ok {
            return Ok(());
        }
        Err(format!(
            "{}: expected {}, got {} {}",
            self.name,
            self.expected,
            status.as_u16(),
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    }
}

impl fmt::Debug for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The tokens are signed with a real secret: not printed.
        f.debug_struct("Attack")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("path_and_query", &self.path_and_query)
            .field("body_len", &self.body.len())
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

/// A Video session event, as Vonage posts one.
const BODY: &[u8] = br#"{"sessionId":"2_MX40NzEyMzQ1Nn5-","projectId":"47123456","event":"connectionCreated","timestamp":1764660000000,"connection":{"id":"c0a1","createdAt":1764660000000,"data":""}}"#;

/// The JWT suite for an endpoint at `path` that trusts `signer`'s project and secret and runs
/// the layer's defaults (24 h age, 5 min skew, 1 MiB body): forged and re-signed tokens,
/// algorithm confusion, malformed headers, each claim wrong in turn, every signature character
/// and every body byte changed, an oversized body, replays; and the genuine variants the
/// layer must still accept (scheme in any case, upper-case hash, extra claims).
///
/// ```
/// use vonage_secure_callbacks::test_util::{jwt_attacks, CallbackSigner, Expected};
///
/// let signer = CallbackSigner::new("a1b2c3d", "a-signature-secret-of-32-bytes-or-more");
/// let suite = jwt_attacks(&signer, "/vonage/events");
/// assert!(suite.len() > 100);
/// assert!(suite.iter().any(|a| a.expected() == Expected::Accepted));
/// ```
pub fn jwt_attacks(signer: &CallbackSigner, path: &str) -> Vec<Attack> {
    let now = SystemClock.now();
    let post = |name: &str, authorization: Option<String>, body: &[u8]| {
        let attack = Attack::new(name, Method::POST, path.to_owned())
            .header(CONTENT_TYPE, "application/json")
            .body(Bytes::copy_from_slice(body));
        match authorization {
            Some(value) => attack.header(AUTHORIZATION, &value),
            None => attack,
        }
    };
    let bearer = |token: String| Some(format!("Bearer {token}"));
    let with = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        bearer(signer.token_with(BODY, |c| edit(c)))
    };
    let refused = Expected::Refused;
    let mut suite = Vec::new();

    // The header and its scheme.
    suite.push(post("no Authorization", None, BODY).expect(refused(Rejection::MissingToken)));
    let token = signer.token(BODY);
    for (name, value) in [
        ("Basic credentials", "Basic dXNlcjpwYXNz".to_owned()),
        ("scheme Token", format!("Token {token}")),
        ("Bearer without a token", "Bearer".to_owned()),
        ("not a JWT", "Bearer not-a-jwt".to_owned()),
        ("two segments", "Bearer eyJhbGciOiJIUzI1NiJ9.e30".to_owned()),
        (
            "a token of 16 KiB",
            format!("Bearer {}", "A".repeat(16 * 1024)),
        ),
    ] {
        suite.push(post(name, Some(value), BODY).expect(refused(Rejection::MalformedToken)));
    }
    suite.push(
        post(
            "two Authorization headers",
            bearer(signer.token(BODY)),
            BODY,
        )
        .header(AUTHORIZATION, &format!("Bearer {}", signer.token(BODY)))
        .expect(refused(Rejection::MalformedToken)),
    );

    // The JOSE header: algorithm confusion and what RFC 7515 forbids.
    let claims_b64 = token.split('.').nth(1).unwrap_or_default().to_owned();
    let signature_b64 = token.rsplit('.').next().unwrap_or_default().to_owned();
    for alg in ["none", "HS384", "HS512", "RS256", "ES256", "PS256", "hs256"] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let signature = if alg == "none" { "" } else { &signature_b64 };
        suite.push(
            post(
                &format!("algorithm {alg}"),
                bearer(format!("{header}.{claims_b64}.{signature}")),
                BODY,
            )
            .expect(refused(Rejection::UnsupportedAlgorithm)),
        );
    }
    for (name, header) in [
        ("header without alg", r#"{"typ":"JWT"}"#),
        (
            "header naming a critical extension",
            r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
        ),
        ("header that is not JSON", "HS256"),
    ] {
        let claims = signer.claims(BODY, now);
        suite.push(
            post(
                name,
                bearer(signer.sign_json(header, Value::Object(claims).to_string())),
                BODY,
            )
            .expect(refused(Rejection::MalformedToken)),
        );
    }

    // The signature.
    let other = CallbackSigner::new(
        signer.api_key.clone(),
        "an-attacker-secret-that-is-long-enough",
    );
    suite.push(
        post(
            "signed with another secret",
            bearer(other.token(BODY)),
            BODY,
        )
        .expect(refused(Rejection::BadSignature)),
    );
    let (signing_input, _) = token.rsplit_once('.').unwrap_or_default();
    for (name, signature) in [
        ("empty signature", String::new()),
        ("signature cut to 30 bytes", signature_b64[..40].to_owned()),
    ] {
        suite.push(
            post(name, bearer(format!("{signing_input}.{signature}")), BODY)
                .expect(refused(Rejection::BadSignature)),
        );
    }
    suite.push(
        post("signature too long", bearer(format!("{token}AAAA")), BODY)
            .expect(refused(Rejection::MalformedToken)),
    );
    // Every character but the last (whose low bits carry no signature byte).
    for i in 0..signature_b64.len().saturating_sub(1) {
        let mut forged = signature_b64.clone().into_bytes();
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap_or_default();
        suite.push(
            post(
                &format!("signature character {i} changed"),
                bearer(format!("{signing_input}.{forged}")),
                BODY,
            )
            .expect(refused(Rejection::BadSignature)),
        );
    }

    // Claims changed under the original signature.
    let header_b64 = token.split('.').next().unwrap_or_default();
    let original = signer.claims(BODY, now);
    let evil = br#"{"event":"archiveStatus","status":"uploaded","url":"https://evil.example"}"#;
    let edits: [(&str, &str, Value); 3] = [
        (
            "payload_hash of another body, signature kept",
            "payload_hash",
            json!(payload_hash(evil)),
        ),
        ("iat moved, signature kept", "iat", json!(now + 1)),
        ("jti changed, signature kept", "jti", json!(fresh_jti())),
    ];
    for (name, claim, value) in edits {
        let mut claims = original.clone();
        let signed = signer.sign_json(
            super::VONAGE_HEADER,
            Value::Object(claims.clone()).to_string(),
        );
        let kept_signature = signed.rsplit('.').next().unwrap_or_default().to_owned();
        claims.insert(claim.into(), value);
        let claims_b64 = URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string());
        let body: &[u8] = if claim == "payload_hash" { evil } else { BODY };
        suite.push(
            post(
                name,
                bearer(format!("{header_b64}.{claims_b64}.{kept_signature}")),
                body,
            )
            .expect(refused(Rejection::BadSignature)),
        );
    }

    // Each claim wrong in turn, correctly signed (`None`: the claim removed).
    let day = 24 * 60 * 60;
    let claim_cases: [(&str, &str, Option<Value>, Rejection); 16] = [
        (
            "issuer Nexmo",
            "iss",
            Some(json!("Nexmo")),
            Rejection::BadIssuer,
        ),
        (
            "issuer vonage",
            "iss",
            Some(json!("vonage")),
            Rejection::BadIssuer,
        ),
        (
            "unknown api_key",
            "api_key",
            Some(json!("someone-else")),
            Rejection::UnknownApiKey,
        ),
        (
            "iat a day and a second ago",
            "iat",
            Some(json!(now - day - 1)),
            Rejection::StaleToken,
        ),
        (
            "iat a year ago",
            "iat",
            Some(json!(now - 365 * day)),
            Rejection::StaleToken,
        ),
        (
            "iat an hour ahead",
            "iat",
            Some(json!(now + 3600)),
            Rejection::TokenFromFuture,
        ),
        (
            "exp an hour ago",
            "exp",
            Some(json!(now - 3600)),
            Rejection::StaleToken,
        ),
        (
            "nbf an hour ahead",
            "nbf",
            Some(json!(now + 3600)),
            Rejection::TokenFromFuture,
        ),
        (
            "no payload_hash",
            "payload_hash",
            None,
            Rejection::MissingPayloadHash,
        ),
        (
            "payload_hash of another body",
            "payload_hash",
            Some(json!(payload_hash(evil))),
            Rejection::PayloadHashMismatch,
        ),
        (
            "payload_hash not hex",
            "payload_hash",
            Some(json!("z".repeat(64))),
            Rejection::PayloadHashMismatch,
        ),
        (
            "payload_hash too short",
            "payload_hash",
            Some(json!("ab".repeat(16))),
            Rejection::PayloadHashMismatch,
        ),
        ("no iat", "iat", None, Rejection::MalformedToken),
        (
            "iat a string",
            "iat",
            Some(json!(now.to_string())),
            Rejection::MalformedToken,
        ),
        ("no jti", "jti", None, Rejection::MalformedToken),
        ("no api_key", "api_key", None, Rejection::MalformedToken),
    ];
    for (name, claim, value, rejection) in claim_cases {
        let authorization = with(&|c| match &value {
            Some(value) => {
                c.insert(claim.into(), value.clone());
            }
            None => {
                c.remove(claim);
            }
        });
        suite.push(post(name, authorization, BODY).expect(refused(rejection)));
    }
    let claims = signer.claims(BODY, now);
    suite.push(
        post(
            "claims that are not an object",
            bearer(signer.sign_json(super::VONAGE_HEADER, "[1,2]")),
            BODY,
        )
        .expect(refused(Rejection::MalformedToken)),
    );
    let mut twice = Value::Object(claims).to_string();
    twice.insert_str(1, &format!(r#""iat":{},"#, now - 365 * day));
    suite.push(
        post(
            "iat given twice",
            bearer(signer.sign_json(super::VONAGE_HEADER, twice)),
            BODY,
        )
        .expect(refused(Rejection::MalformedToken)),
    );

    // The body: every byte changed, cut, grown, re-serialised.
    for i in 0..BODY.len() {
        let mut tampered = BODY.to_vec();
        tampered[i] ^= 0x01;
        suite.push(
            post(
                &format!("body byte {i} changed"),
                bearer(signer.token(BODY)),
                &tampered,
            )
            .expect(refused(Rejection::PayloadHashMismatch)),
        );
    }
    let pretty = serde_json::from_slice::<Value>(BODY)
        .map(|v| serde_json::to_vec_pretty(&v).unwrap_or_default())
        .unwrap_or_default();
    for (name, body) in [
        ("body cut by one byte", BODY[..BODY.len() - 1].to_vec()),
        ("body with a byte added", [BODY, b" "].concat()),
        ("empty body", Vec::new()),
        ("body re-serialised", pretty),
    ] {
        suite.push(
            post(name, bearer(signer.token(BODY)), &body)
                .expect(refused(Rejection::PayloadHashMismatch)),
        );
    }
    let big = vec![b' '; DEFAULT_BODY_LIMIT + 1];
    suite.push(
        post("body one byte over 1 MiB", bearer(signer.token(&big)), &big)
            .expect(refused(Rejection::BodyTooLarge)),
    );

    // Genuine callbacks the layer must not refuse.
    let upper = payload_hash(BODY).to_ascii_uppercase();
    suite.push(post("genuine", bearer(signer.token(BODY)), BODY));
    suite.push(post(
        "scheme in lower case",
        Some(format!("bearer {}", signer.token(BODY))),
        BODY,
    ));
    // RFC 6750 §2.1: `"Bearer" 1*SP b64token`.
    suite.push(post(
        "two spaces after the scheme",
        Some(format!("Bearer  {}", signer.token(BODY))),
        BODY,
    ));
    suite.push(post(
        "upper-case payload_hash",
        with(&|c| {
            c.insert("payload_hash".into(), json!(upper));
        }),
        BODY,
    ));
    suite.push(post(
        "extra claims",
        with(&|c| {
            c.insert(
                "application_id".into(),
                json!("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"),
            );
            c.insert("x".into(), json!({"y": [1, 2]}));
        }),
        BODY,
    ));
    suite.push(post(
        "iat four minutes ahead",
        with(&move |c| {
            c.insert("iat".into(), json!(now + 240));
        }),
        BODY,
    ));
    suite.push(post(
        "iat 23 hours ago",
        with(&move |c| {
            c.insert("iat".into(), json!(now - 23 * 3600));
        }),
        BODY,
    ));
    let exact = vec![b' '; DEFAULT_BODY_LIMIT];
    suite.push(post(
        "body of exactly 1 MiB",
        bearer(signer.token(&exact)),
        &exact,
    ));

    // Replays of a delivered callback, as captured and altered.
    let captured = signer.token(BODY);
    suite.push(post("delivered once", bearer(captured.clone()), BODY));
    for (name, authorization, body) in [
        ("replayed as captured", format!("Bearer {captured}"), BODY),
        (
            "replayed with the scheme in lower case",
            format!("bearer {captured}"),
            BODY,
        ),
        (
            "replayed with another body",
            format!("Bearer {captured}"),
            &evil[..],
        ),
    ] {
        suite.push(post(name, Some(authorization), body).expect(refused(Rejection::ReplayedToken)));
    }
    suite
}
