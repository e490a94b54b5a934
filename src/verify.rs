//! The checks of one callback, independent of any HTTP stack.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{header, HeaderMap, Method};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::claims::{SecretUsed, VonageClaims};
use crate::clock::{Clock, SystemClock};
use crate::query::query_payload;
use crate::rejection::Rejection;
use crate::replay::Retention;
use crate::secrets::Secrets;
use crate::token::{bearer_token, UnverifiedToken};

/// Default body limit: 1 MiB, inclusive.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default maximum age of `iat`: 24 hours, the horizon of Vonage's retries.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default tolerated clock skew for a token from the future: 5 minutes.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Default expected issuer.
pub const DEFAULT_ISSUER: &str = "Vonage";

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) secrets: Secrets,
    pub(crate) issuer: Box<str>,
    pub(crate) max_age: u64,
    pub(crate) clock_skew: u64,
    pub(crate) body_limit: usize,
    pub(crate) check_payload_hash: bool,
    pub(crate) get_query: bool,
    pub(crate) clock: Arc<dyn Clock>,
}

/// Verifies Vonage callbacks: token, signature, claims, time and payload hash. The one place
/// where what is checked is configured; [`SecureCallbackLayer::new`] takes one.
///
/// It does **not** protect against replay: a captured callback verifies again until its token
/// is stale (24 h by default). [`SecureCallbackLayer`] adds that; outside tower, after
/// `verify` succeeds, reserve the `jti` in a [`ReplayStore`](crate::replay::ReplayStore)
/// (`lookup`, `reserve`, then `settle` with the handler's outcome), as the layer does.
/// Cloning is cheap (one shared configuration).
///
/// [`SecureCallbackLayer`]: crate::SecureCallbackLayer
/// [`SecureCallbackLayer::new`]: crate::SecureCallbackLayer::new
///
/// ```
/// use vonage_secure_callbacks::{CallbackVerifier, FixedClock, Rejection, Secret, Secrets};
/// let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE1Nzc4ODcyMDAsImp0aSI6ImM1YmE4ZjI0LTFhMTQtNGMxZS05M2U2LWE5OGYxYjBhMGExYiIsImlzcyI6IlZvbmFnZSIsImFwcGxpY2F0aW9uX2lkIjoiMTExMTExMTEtMjIyMi0zMzMzLTQ0NDQtNTU1NTU1NTU1NTU1IiwiYXBpX2tleSI6ImExYjJjM2Q0IiwicGF5bG9hZF9oYXNoIjoiNjZlZWQ4OTQ5NjEzM2Q5M2IwMjJhMDhjOTM5YWNhNzgyYzVlZWE5ZGU2MGZiYTRlODkxOTk3ZGE4MDg5Y2UxMyJ9.ROdC9Mgabo1EWFSJ3ohit5yj1YV6EpZa7awRCFaRn1Y";
/// let body = br#"{"message_uuid":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","to":"447700900000","from":"Vonage","timestamp":"2020-01-01T14:00:00.000Z","status":"delivered","channel":"sms"}"#;
/// let secret = Secret::new("VonageSignatureSecretForTests1234567890").unwrap();
/// let verifier = CallbackVerifier::new(Secrets::new().project("a1b2c3d4", secret))
///     .clock(FixedClock::new(1_577_887_200));
///
/// let claims = verifier.verify_token(token, body).unwrap();
/// assert_eq!(claims.jti(), "c5ba8f24-1a14-4c1e-93e6-a98f1b0a0a1b");
/// // One byte more in the body: refused.
/// let mut tampered = body.to_vec();
/// tampered.push(b' ');
/// assert_eq!(verifier.verify_token(token, &tampered).unwrap_err(), Rejection::PayloadHashMismatch);
/// ```
#[derive(Clone)]
pub struct CallbackVerifier {
    config: Arc<Config>,
}

impl From<Secrets> for CallbackVerifier {
    /// A verifier for `secrets` with the defaults.
    fn from(secrets: Secrets) -> Self {
        Self::new(secrets)
    }
}

impl CallbackVerifier {
    /// A verifier for `secrets` with the defaults: issuer `Vonage`, max age 24 h, skew 5 min,
    /// body limit 1 MiB, payload hash checked, system clock.
    pub fn new(secrets: Secrets) -> Self {
        Self {
            config: Arc::new(Config {
                secrets,
                issuer: DEFAULT_ISSUER.into(),
                max_age: DEFAULT_MAX_AGE.as_secs(),
                clock_skew: DEFAULT_CLOCK_SKEW.as_secs(),
                body_limit: DEFAULT_BODY_LIMIT,
                check_payload_hash: true,
                get_query: false,
                clock: Arc::new(SystemClock),
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The issuer `iss` must equal (default `"Vonage"`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config_mut().issuer = issuer.into().into_boxed_str();
        self
    }

    /// How old `iat` may be (default 24 h, Vonage's retry horizon); a delivered `jti` is
    /// remembered that long plus the clock skew.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.config_mut().max_age = max_age.as_secs();
        self
    }

    /// How far in the future `iat` and `nbf` may lie, and how late `exp` is still honoured
    /// (default 5 min).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.config_mut().clock_skew = skew.as_secs();
        self
    }

    /// Largest body accepted, in bytes, inclusive (default 1 MiB); larger: 413
    /// `body_too_large`, refused unread when `Content-Length` says so.
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.config_mut().body_limit = limit;
        self
    }

    /// The source of "now" for the time checks and the replay store's expiry (default the
    /// system clock; a [`FixedClock`](crate::FixedClock) in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config_mut().clock = Arc::new(clock);
        self
    }

    /// For GET requests, check `payload_hash` against the query parameters (see
    /// [`query_payload`]) instead of the empty body: Voice's `answer_url` and other GET
    /// webhooks sign those. Off by default; other methods always hash the body.
    pub fn verify_get_query(mut self) -> Self {
        self.config_mut().get_query = true;
        self
    }

    pub(crate) fn skip_payload_hash_check(mut self) -> Self {
        self.config_mut().check_payload_hash = false;
        self
    }

    /// The secrets this verifier accepts.
    pub fn secrets(&self) -> &Secrets {
        &self.config.secrets
    }

    /// The configured body limit.
    pub fn limit(&self) -> usize {
        self.config.body_limit
    }

    /// Verifies a whole callback: the request's headers and its exact body bytes.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<VonageClaims, Rejection> {
        let claims = self.verify_headers(headers, self.now())?;
        self.check_body(&claims, body)?;
        Ok(claims)
    }

    /// Verifies a callback given the value of its `Authorization` header and its body.
    pub fn verify_authorization(
        &self,
        authorization: &str,
        body: &[u8],
    ) -> Result<VonageClaims, Rejection> {
        let value =
            http::HeaderValue::from_str(authorization).map_err(|_| Rejection::MalformedToken)?;
        let claims = self.verify_claims(bearer_token(&value)?, self.now())?;
        self.check_body(&claims, body)?;
        Ok(claims)
    }

    /// Verifies a GET webhook by its headers and its query string (without the `?`), whatever
    /// [`verify_get_query`](Self::verify_get_query) says: the query is what such a webhook signs.
    pub fn verify_query(
        &self,
        headers: &HeaderMap,
        query: &str,
    ) -> Result<VonageClaims, Rejection> {
        let claims = self.verify_headers(headers, self.now())?;
        self.check_body(&claims, query_payload(query).as_bytes())?;
        Ok(claims)
    }

    /// Verifies a bare token (no `Bearer `) and the body it signs.
    pub fn verify_token(&self, token: &str, body: &[u8]) -> Result<VonageClaims, Rejection> {
        let claims = self.verify_claims(token, self.now())?;
        self.check_body(&claims, body)?;
        Ok(claims)
    }

    /// "Now" on the configured clock, read once per callback.
    pub(crate) fn now(&self) -> u64 {
        self.config.clock.now()
    }

    /// Everything that can be checked before the body is read: token, signature, issuer, time.
    pub(crate) fn verify_headers(
        &self,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<VonageClaims, Rejection> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next().ok_or(Rejection::MissingToken)?;
        // Two Authorization headers are ambiguous: which one did the proxy look at?
        if values.next().is_some() {
            return Err(Rejection::MalformedToken);
        }
        self.verify_claims(bearer_token(value)?, now)
    }

    fn verify_claims(&self, token: &str, now: u64) -> Result<VonageClaims, Rejection> {
        let config = &*self.config;
        let token = UnverifiedToken::split(token)?;
        let claims = token.claims()?;

        let secrets = config.secrets.secrets_for(claims.api_key());
        if secrets.is_empty() {
            return Err(Rejection::UnknownApiKey);
        }
        let Some(index) = secrets.iter().position(|secret| token.signed_by(secret)) else {
            return Err(Rejection::BadSignature);
        };
        let mut claims = claims;
        claims.set_secret(SecretUsed::new(index, secrets[index].label_arc()));

        if claims.iss() != &*config.issuer {
            return Err(Rejection::BadIssuer);
        }
        let skew = config.clock_skew;
        if claims.iat() > now.saturating_add(skew)
            || claims
                .nbf()
                .is_some_and(|nbf| nbf > now.saturating_add(skew))
        {
            return Err(Rejection::TokenFromFuture);
        }
        if now > claims.iat().saturating_add(config.max_age)
            || claims
                .exp()
                .is_some_and(|exp| now > exp.saturating_add(skew))
        {
            return Err(Rejection::StaleToken);
        }
        if config.check_payload_hash && claims.payload_hash().is_none() {
            return Err(Rejection::MissingPayloadHash);
        }
        Ok(claims)
    }

    /// Checks what the request signs: the body, or, for a GET with the query mode on, the query.
    pub(crate) fn check_request(
        &self,
        claims: &VonageClaims,
        parts: &Parts,
        body: &[u8],
    ) -> Result<(), Rejection> {
        if self.config.get_query && parts.method == Method::GET {
            // What a GET carries in a body is not signed: refuse rather than hand it on.
            if !body.is_empty() {
                return Err(Rejection::PayloadHashMismatch);
            }
            let payload = query_payload(parts.uri.query().unwrap_or(""));
            return self.check_body(claims, payload.as_bytes());
        }
        self.check_body(claims, body)
    }

    /// Compares SHA-256 of `body` with the claims' `payload_hash`, in constant time.
    pub(crate) fn check_body(&self, claims: &VonageClaims, body: &[u8]) -> Result<(), Rejection> {
        if !self.config.check_payload_hash {
            return Ok(());
        }
        let expected = claims.payload_hash().ok_or(Rejection::MissingPayloadHash)?;
        let expected = decode_hex_32(expected).ok_or(Rejection::PayloadHashMismatch)?;
        let actual = Sha256::digest(body);
        if bool::from(actual.as_slice().ct_eq(&expected)) {
            Ok(())
        } else {
            Err(Rejection::PayloadHashMismatch)
        }
    }

    /// How long a delivered `claims.jti` must be remembered: until its token is stale anyway.
    /// The token is accepted up to and including second `iat + max_age`, so it is kept one second
    /// past that, and the skew longer still: a clock stepped back by up to the skew cannot bring
    /// back a token whose entry is gone.
    pub(crate) fn retention(&self, claims: &VonageClaims, now: u64) -> Retention {
        let config = &*self.config;
        let until = claims
            .iat()
            .saturating_add(config.max_age)
            .saturating_add(config.clock_skew)
            .saturating_add(1);
        Retention::new(until, now)
    }
}

/// Decodes 64 hex digits of either case. The hash is public (it is in the token), so a
/// data-dependent early exit here leaks nothing.
fn decode_hex_32(hex: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

impl fmt::Debug for CallbackVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.config;
        f.debug_struct("CallbackVerifier")
            .field("secrets", &c.secrets)
            .field("issuer", &c.issuer)
            .field("max_age", &c.max_age)
            .field("clock_skew", &c.clock_skew)
            .field("body_limit", &c.body_limit)
            .field("check_payload_hash", &c.check_payload_hash)
            .field("get_query", &c.get_query)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::CallbackSigner;
    use crate::{FixedClock, Secret};
    use serde_json::json;

    const SECRET: &str = "unit-test-secret-unit-test-secret-0001";
    const NOW: u64 = 1_700_000_000;

    fn setup() -> (CallbackVerifier, CallbackSigner) {
        let v = CallbackVerifier::new(Secrets::new().project("k1", Secret::new(SECRET).unwrap()))
            .clock(FixedClock::new(NOW));
        (v, CallbackSigner::new("k1", SECRET))
    }

    fn at(signer: &CallbackSigner, body: &[u8], iat: u64) -> String {
        signer.token_with(body, |c| {
            c.insert("iat".into(), json!(iat));
        })
    }

    #[test]
    fn accepts_a_fresh_callback() {
        let (v, s) = setup();
        let c = v.verify_token(&at(&s, b"{}", NOW), b"{}").unwrap();
        assert_eq!(c.api_key(), "k1");
    }

    #[test]
    fn time_window_edges() {
        let (v, s) = setup();
        let day = DEFAULT_MAX_AGE.as_secs();
        let skew = DEFAULT_CLOCK_SKEW.as_secs();
        assert!(v.verify_token(&at(&s, b"", NOW - day), b"").is_ok());
        assert_eq!(
            v.verify_token(&at(&s, b"", NOW - day - 1), b"")
                .unwrap_err(),
            Rejection::StaleToken
        );
        assert!(v.verify_token(&at(&s, b"", NOW + skew), b"").is_ok());
        assert_eq!(
            v.verify_token(&at(&s, b"", NOW + skew + 1), b"")
                .unwrap_err(),
            Rejection::TokenFromFuture
        );
    }

    #[test]
    fn exp_and_nbf_are_honoured() {
        let (v, s) = setup();
        let skew = DEFAULT_CLOCK_SKEW.as_secs();
        let with = |k: &str, t: u64| {
            s.token_with(b"", |c| {
                c.insert("iat".into(), json!(NOW));
                c.insert(k.into(), json!(t));
            })
        };
        assert!(v.verify_token(&with("exp", NOW - skew), b"").is_ok());
        assert_eq!(
            v.verify_token(&with("exp", NOW - skew - 1), b"")
                .unwrap_err(),
            Rejection::StaleToken
        );
        assert_eq!(
            v.verify_token(&with("nbf", NOW + skew + 1), b"")
                .unwrap_err(),
            Rejection::TokenFromFuture
        );
    }

    #[test]
    fn issuer_and_hash_claims() {
        let (v, s) = setup();
        let bad_iss = s.token_with(b"", |c| {
            c.insert("iat".into(), json!(NOW));
            c.insert("iss".into(), json!("Nexmo"));
        });
        assert_eq!(
            v.verify_token(&bad_iss, b"").unwrap_err(),
            Rejection::BadIssuer
        );
        assert!(v
            .clone()
            .issuer("Nexmo")
            .verify_token(&bad_iss, b"")
            .is_ok());

        let no_hash = s.token_with(b"", |c| {
            c.insert("iat".into(), json!(NOW));
            c.remove("payload_hash");
        });
        assert_eq!(
            v.verify_token(&no_hash, b"").unwrap_err(),
            Rejection::MissingPayloadHash
        );
        assert!(v
            .clone()
            .skip_payload_hash_check()
            .verify_token(&no_hash, b"x")
            .is_ok());

        let upper = s.token_with(b"abc", |c| {
            c.insert("iat".into(), json!(NOW));
            let h = c["payload_hash"].as_str().unwrap().to_uppercase();
            c.insert("payload_hash".into(), json!(h));
        });
        assert!(v.verify_token(&upper, b"abc").is_ok());
        assert_eq!(
            v.verify_token(&upper, b"abd").unwrap_err(),
            Rejection::PayloadHashMismatch
        );
    }

    #[test]
    fn keys_and_rotation() {
        let (v, s) = setup();
        let other = CallbackSigner::new("k2", SECRET);
        assert_eq!(
            v.verify_token(&at(&other, b"", NOW), b"").unwrap_err(),
            Rejection::UnknownApiKey
        );
        let rotated = CallbackSigner::new("k1", "the-next-secret-the-next-secret-0002");
        assert_eq!(
            v.verify_token(&at(&rotated, b"", NOW), b"").unwrap_err(),
            Rejection::BadSignature
        );
        let both = CallbackVerifier::new(
            Secrets::new()
                .project("k1", Secret::new(SECRET).unwrap())
                .project(
                    "k1",
                    Secret::new("the-next-secret-the-next-secret-0002").unwrap(),
                ),
        )
        .clock(FixedClock::new(NOW));
        assert!(both.verify_token(&at(&rotated, b"", NOW), b"").is_ok());
        assert!(both.verify_token(&at(&s, b"", NOW), b"").is_ok());
    }

    #[test]
    fn authorization_headers() {
        let (v, s) = setup();
        let mut h = HeaderMap::new();
        assert_eq!(v.verify(&h, b"").unwrap_err(), Rejection::MissingToken);
        let auth = format!("Bearer {}", at(&s, b"", NOW));
        h.append(header::AUTHORIZATION, auth.parse().unwrap());
        assert!(v.verify(&h, b"").is_ok());
        h.append(header::AUTHORIZATION, auth.parse().unwrap());
        assert_eq!(v.verify(&h, b"").unwrap_err(), Rejection::MalformedToken);
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex_32(&"0f".repeat(32)), Some([15; 32]));
        assert_eq!(decode_hex_32(&"0F".repeat(32)), Some([15; 32]));
        assert_eq!(decode_hex_32(&"0g".repeat(32)), None);
        assert_eq!(decode_hex_32(&"0f".repeat(31)), None);
        assert_eq!(decode_hex_32("é"), None);
    }

    #[test]
    fn replay_ttl_ends_when_the_token_goes_stale() {
        let (v, s) = setup();
        let c = v.verify_token(&at(&s, b"", NOW - 100), b"").unwrap();
        let expected = DEFAULT_MAX_AGE.as_secs() + DEFAULT_CLOCK_SKEW.as_secs() + 1 - 100;
        let r = v.retention(&c, NOW);
        assert_eq!(r.ttl(), Duration::from_secs(expected));
        assert_eq!(r.until(), NOW + expected);
    }
}
