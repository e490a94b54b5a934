//! The checks of one callback, independent of any HTTP stack.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::buffer::declared_len;
use crate::claims::{SecretUsed, VonageClaims};
use crate::clock::{Clock, SystemClock};
use crate::explain::{Check, Observer, Quiet, Recorder, Report};
use crate::payload::{self, query_payload};
use crate::rejection::Rejection;
use crate::replay::{Attempt, ReplayKey, Retention};
use crate::secrets::Secrets;
use crate::token::{bearer_token, UnverifiedToken};
use http::request::Parts;
use http::{header, HeaderMap, Method};

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

    /// Verifies a whole callback: the request's headers and its exact body bytes. The same
    /// checks as the layer, but for replay (see [`explain`](Self::explain) for each step).
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<VonageClaims, Rejection> {
        self.run(headers, body, self.now(), &mut Quiet)
    }

    /// Every check of [`verify`](Self::verify), step by step, with the facts each one saw: the
    /// report's verdict is `verify`'s, because it is the same run. What the `vonage-callbacks
    /// verify` command prints, and what to log when a callback puzzles you.
    ///
    /// ```
    /// use http::{header, HeaderMap};
    /// use vonage_secure_callbacks::{CallbackVerifier, Check, Rejection, Secret, Secrets, Status};
    /// let verifier = CallbackVerifier::new(Secrets::new().project(
    ///     "a1b2c3d4",
    ///     Secret::new("a-signature-secret-of-32-bytes-or-more").unwrap(),
    /// ));
    /// let mut headers = HeaderMap::new();
    /// headers.insert(header::AUTHORIZATION, "Bearer not-a-jwt".parse().unwrap());
    /// let report = verifier.explain(&headers, b"{}");
    /// assert_eq!(report.verdict().unwrap_err(), Rejection::MalformedToken);
    /// assert_eq!(report.status(Check::Authorization), Status::Passed);
    /// assert_eq!(report.status(Check::Token), Status::Failed(Rejection::MalformedToken));
    /// assert_eq!(report.status(Check::Signature), Status::NotReached);
    /// ```
    pub fn explain(&self, headers: &HeaderMap, body: &[u8]) -> Report {
        let mut recorder = Recorder::default();
        let verdict = self.run(headers, body, self.now(), &mut recorder);
        Report::new(
            recorder,
            verdict,
            &Check::ALL,
            self.config.max_age,
            self.config.clock_skew,
        )
    }

    /// Verifies a callback given the value of its `Authorization` header and its body.
    pub fn verify_authorization(
        &self,
        authorization: &str,
        body: &[u8],
    ) -> Result<VonageClaims, Rejection> {
        let (now, obs) = (self.now(), &mut Quiet);
        self.check_size(Some(body.len() as u64), obs)?;
        let value = http::HeaderValue::from_str(authorization);
        let token = value
            .as_ref()
            .map_err(|_| Rejection::MalformedToken)
            .and_then(bearer_token);
        obs.checked(Check::Authorization, token.map(|_| ()), |_| {})?;
        let claims = self.check_token(token?, now, obs)?;
        self.check_payload(&claims, body, now, obs)?;
        Ok(claims)
    }

    /// Verifies a GET webhook by its headers and its query string (without the `?`), whatever
    /// [`verify_get_query`](Self::verify_get_query) says: the query is what such a webhook signs.
    pub fn verify_query(
        &self,
        headers: &HeaderMap,
        query: &str,
    ) -> Result<VonageClaims, Rejection> {
        self.verify(headers, query_payload(query).as_bytes())
    }

    /// Verifies a bare token (no `Bearer `) and the body it signs.
    pub fn verify_token(&self, token: &str, body: &[u8]) -> Result<VonageClaims, Rejection> {
        let (now, obs) = (self.now(), &mut Quiet);
        self.check_size(Some(body.len() as u64), obs)?;
        obs.checked(Check::Authorization, Ok(()), |_| {})?;
        let claims = self.check_token(token, now, obs)?;
        self.check_payload(&claims, body, now, obs)?;
        Ok(claims)
    }

    /// "Now" on the configured clock, read once per callback.
    pub(crate) fn now(&self) -> u64 {
        self.config.clock.now()
    }

    /// The whole sequence for a complete request: the size as declared or as received, whichever
    /// is larger (what the layer sees when a body's length is known up front).
    fn run<O: Observer>(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
        obs: &mut O,
    ) -> Result<VonageClaims, Rejection> {
        let received = body.len() as u64;
        let size = declared_len(headers).map_or(received, |declared| declared.max(received));
        let claims = self.check_headers(headers, Some(size), now, obs)?;
        self.check_payload(&claims, body, now, obs)?;
        Ok(claims)
    }

    /// Everything that can be checked before the body is read: its declared size, the token, its
    /// signature, issuer and time, and that it has a `payload_hash`.
    pub(crate) fn check_headers<O: Observer>(
        &self,
        headers: &HeaderMap,
        declared: Option<u64>,
        now: u64,
        obs: &mut O,
    ) -> Result<VonageClaims, Rejection> {
        self.check_size(declared, obs)?;
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let token = match (values.next(), values.next()) {
            (None, _) => Err(Rejection::MissingToken),
            // Two Authorization headers are ambiguous: which one did the proxy look at?
            (Some(_), Some(_)) => Err(Rejection::MalformedToken),
            (Some(value), None) => bearer_token(value),
        };
        let check = token.map(|_| ());
        obs.checked(Check::Authorization, check, |_| {})?;
        self.check_token(token?, now, obs)
    }

    fn check_size<O: Observer>(&self, declared: Option<u64>, obs: &mut O) -> Result<(), Rejection> {
        let limit = self.config.body_limit as u64;
        let result = match declared {
            Some(len) if len > limit => Err(Rejection::BodyTooLarge),
            _ => Ok(()),
        };
        obs.checked(Check::BodySize, result, |d| d.body_len = declared)
    }

    fn check_token<O: Observer>(
        &self,
        token: &str,
        now: u64,
        obs: &mut O,
    ) -> Result<VonageClaims, Rejection> {
        let (mut claims, token) = self.read_token(token, now, obs)?;
        let secrets = self.check_api_key(&claims, now, obs)?;
        let used = self.check_signature(&token, secrets, &claims, now, obs)?;
        claims.set_secret(used);
        self.check_issuer(&claims, now, obs)?;
        self.check_time(&claims, now, obs)?;
        self.check_payload_hash_claim(&claims, now, obs)?;
        Ok(claims)
    }

    /// The token split and its claims read (not yet believed: nothing is verified).
    fn read_token<'t, O: Observer>(
        &self,
        token: &'t str,
        now: u64,
        obs: &mut O,
    ) -> Result<(VonageClaims, UnverifiedToken<'t>), Rejection> {
        let parsed = UnverifiedToken::split(token).and_then(|t| Ok((t.claims()?, t)));
        let check = parsed.as_ref().map(|_| ()).map_err(|rejection| *rejection);
        obs.checked(Check::Token, check, |d| {
            if let Ok((claims, _)) = &parsed {
                d.note_claims(claims, now);
            }
        })?;
        parsed
    }

    /// The secrets of the token's `api_key`: there must be some.
    fn check_api_key<O: Observer>(
        &self,
        claims: &VonageClaims,
        now: u64,
        obs: &mut O,
    ) -> Result<&[crate::Secret], Rejection> {
        let configured = &self.config.secrets;
        let secrets = configured.secrets_for(claims.api_key());
        let check = if secrets.is_empty() {
            Err(Rejection::UnknownApiKey)
        } else {
            Ok(())
        };
        obs.checked(Check::ApiKey, check, |d| {
            d.note_claims(claims, now);
            d.secrets_tried = Some(secrets.len());
            if secrets.is_empty() {
                d.configured_api_keys = configured.api_keys().map(str::to_owned).collect();
                d.configured_api_keys.sort();
            }
        })?;
        Ok(secrets)
    }

    /// Which of `secrets` signed the token.
    fn check_signature<O: Observer>(
        &self,
        token: &UnverifiedToken<'_>,
        secrets: &[crate::Secret],
        claims: &VonageClaims,
        now: u64,
        obs: &mut O,
    ) -> Result<SecretUsed, Rejection> {
        let index = secrets.iter().position(|secret| token.signed_by(secret));
        let used = index.map(|i| SecretUsed::new(i, secrets[i].clone_label()));
        let check = used.as_ref().map(|_| ()).ok_or(Rejection::BadSignature);
        obs.checked(Check::Signature, check, |d| {
            d.note_claims(claims, now);
            d.secrets_tried = Some(secrets.len());
            d.secret = used.clone();
        })?;
        used.ok_or(Rejection::BadSignature)
    }

    fn check_issuer<O: Observer>(
        &self,
        claims: &VonageClaims,
        now: u64,
        obs: &mut O,
    ) -> Result<(), Rejection> {
        let check = if claims.iss() == &*self.config.issuer {
            Ok(())
        } else {
            Err(Rejection::BadIssuer)
        };
        obs.checked(Check::Issuer, check, |d| {
            d.note_claims(claims, now);
            d.issuer = Some(claims.iss().to_owned());
        })
    }

    /// Issued neither in the future (beyond the skew) nor longer ago than the maximum age.
    fn check_time<O: Observer>(
        &self,
        claims: &VonageClaims,
        now: u64,
        obs: &mut O,
    ) -> Result<(), Rejection> {
        let config = &*self.config;
        let skew = config.clock_skew;
        let latest = now.saturating_add(skew);
        let check = if claims.iat() > latest || claims.nbf().is_some_and(|nbf| nbf > latest) {
            Err(Rejection::TokenFromFuture)
        } else if now > claims.iat().saturating_add(config.max_age)
            || claims
                .exp()
                .is_some_and(|exp| now > exp.saturating_add(skew))
        {
            Err(Rejection::StaleToken)
        } else {
            Ok(())
        };
        obs.checked(Check::Time, check, |d| d.note_claims(claims, now))
    }

    fn check_payload_hash_claim<O: Observer>(
        &self,
        claims: &VonageClaims,
        now: u64,
        obs: &mut O,
    ) -> Result<(), Rejection> {
        let check = match claims.payload_hash() {
            None if self.config.check_payload_hash => Err(Rejection::MissingPayloadHash),
            _ => Ok(()),
        };
        obs.checked(Check::PayloadHashClaim, check, |d| {
            d.note_claims(claims, now);
            d.payload_hash = claims.payload_hash().map(str::to_owned);
        })
    }

    /// Checks what the request signs: the body, or, for a GET with the query mode on, the query.
    pub(crate) fn check_request<O: Observer>(
        &self,
        claims: &VonageClaims,
        parts: &Parts,
        body: &[u8],
        now: u64,
        obs: &mut O,
    ) -> Result<(), Rejection> {
        if self.config.get_query && parts.method == Method::GET {
            // What a GET carries in a body is not signed: refuse rather than hand it on.
            if !body.is_empty() {
                let refused = Err(Rejection::PayloadHashMismatch);
                return obs.checked(Check::PayloadHash, refused, |d| {
                    d.note_claims(claims, now);
                    d.body_len = Some(body.len() as u64);
                });
            }
            let payload = query_payload(parts.uri.query().unwrap_or(""));
            return self.check_payload(claims, payload.as_bytes(), now, obs);
        }
        self.check_payload(claims, body, now, obs)
    }

    /// Compares SHA-256 of `payload` with the claims' `payload_hash`, in constant time.
    fn check_payload<O: Observer>(
        &self,
        claims: &VonageClaims,
        payload: &[u8],
        now: u64,
        obs: &mut O,
    ) -> Result<(), Rejection> {
        let (check, actual) = match claims.payload_hash() {
            Some(claimed) if self.config.check_payload_hash => {
                let (equal, actual) = payload::matches(claimed, payload);
                (
                    equal.then_some(()).ok_or(Rejection::PayloadHashMismatch),
                    Some(actual),
                )
            }
            _ => (Ok(()), None),
        };
        obs.checked(Check::PayloadHash, check, |d| {
            d.note_claims(claims, now);
            d.payload_hash = claims.payload_hash().map(str::to_owned);
            d.body_len = Some(payload.len() as u64);
            d.payload_sha256 = actual.as_ref().map(|digest| crate::hex::encode(digest));
        })
    }

    /// The replay store's view of verified `claims`: keyed by `api_key` and `jti`, kept until
    /// the token is stale.
    pub(crate) fn attempt(&self, claims: &VonageClaims, now: u64) -> Attempt {
        Attempt::new(
            ReplayKey::new(claims.api_key(), claims.jti()),
            claims.iat(),
            now,
            self.retention(claims, now),
        )
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
    fn replay_ttl_ends_when_the_token_goes_stale() {
        let (v, s) = setup();
        let c = v.verify_token(&at(&s, b"", NOW - 100), b"").unwrap();
        let expected = DEFAULT_MAX_AGE.as_secs() + DEFAULT_CLOCK_SKEW.as_secs() + 1 - 100;
        let r = v.retention(&c, NOW);
        assert_eq!(r.ttl(), Duration::from_secs(expected));
        assert_eq!(r.until(), NOW + expected);
    }
}
