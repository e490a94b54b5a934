//! The checks of one signed SMS request (inbound message or delivery receipt), independent of
//! any HTTP stack.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap, Method};
use sha2::Digest;

use crate::claims::SecretUsed;
use crate::clock::{Clock, SystemClock};
use crate::diagnosis::RejectionDetails;
use crate::explain::{Check, Observer, Quiet, Recorder, Report};
use crate::rejection::Rejection;
use crate::replay::{Attempt, ReplayKey, Retention};
use crate::secrets::Secrets;
use crate::verify::{DEFAULT_BODY_LIMIT, DEFAULT_CLOCK_SKEW};

use super::params::{ParamsError, SmsParams};
use super::signature::SignatureMethod;

/// Default maximum age of an SMS request's `timestamp`: 72 hours. Vonage retries inbound
/// messages every minute for up to 24 h and delivery receipts for up to 72 h, and a retry may
/// carry the first attempt's signature: a shorter window would refuse Vonage's own retries.
pub const DEFAULT_SMS_MAX_AGE: Duration = Duration::from_secs(72 * 60 * 60);

/// Verifies Vonage's signed SMS requests (`sig`): the parameters, the signature by the
/// configured method, the account's secret, and the `timestamp`. Like
/// [`CallbackVerifier`](crate::CallbackVerifier), it does not protect against replay on its
/// own: [`SecureCallbackLayer::sms`](crate::SecureCallbackLayer::sms) adds that, keyed by the
/// `nonce` (or the `sig` where none is sent).
///
/// ```
/// use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams, SmsVerifier};
/// use vonage_secure_callbacks::{FixedClock, Secret, Secrets};
///
/// let secret = "a-signature-secret-of-32-bytes-or-more";
/// let verifier = SmsVerifier::new(
///     Secrets::new().project("a1b2c3d4", Secret::new(secret).unwrap()),
///     SignatureMethod::HmacSha256,
/// )
/// .clock(FixedClock::new(1_800_000_000));
///
/// let mut params = SmsParams::from_form(b"msisdn=447700900001&to=447700900000&text=Hi&timestamp=1800000000").unwrap();
/// let sig = SignatureMethod::HmacSha256.sign(&params, secret.as_bytes());
/// params.set("sig", sig);
/// let verified = verifier.verify_params(&params).unwrap();
/// assert_eq!(verified.params().get("text"), Some("Hi"));
/// ```
#[derive(Clone)]
pub struct SmsVerifier {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    secrets: Secrets,
    method: SignatureMethod,
    max_age: u64,
    clock_skew: u64,
    body_limit: usize,
    clock: Arc<dyn Clock>,
}

/// A request whose `sig` verified: its parameters, which secret verified it, and its replay key.
/// Placed in the request's extensions by the layer.
#[derive(Debug, Clone)]
pub struct VerifiedSms {
    params: SmsParams,
    api_key: String,
    secret: SecretUsed,
    timestamp: u64,
    replay_id: String,
}

impl VerifiedSms {
    /// Every parameter as received (`sig` included), decoded.
    pub fn params(&self) -> &SmsParams {
        &self.params
    }

    /// The account whose secret verified it: the `api-key` parameter, or the one configured.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Which of the account's secrets verified it.
    pub fn secret(&self) -> &SecretUsed {
        &self.secret
    }

    /// The `timestamp` parameter: Unix seconds when Vonage signed it.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// What identifies this request in the replay store and in logs: the `nonce`, else
    /// `sig-sha256:` and the first 32 hex digits of the SHA-256 of the `sig` (stable for a
    /// request, and never the authenticator itself, which logs must not carry).
    pub fn replay_id(&self) -> &str {
        &self.replay_id
    }
}

impl SmsVerifier {
    /// A verifier for `secrets` (the accounts' signature secrets, the same ones the JWT scheme
    /// uses) signing by `method`, with the defaults: max age 72 h, skew 5 min, body limit
    /// 1 MiB, system clock.
    pub fn new(secrets: Secrets, method: SignatureMethod) -> Self {
        Self {
            config: Arc::new(Config {
                secrets,
                method,
                max_age: DEFAULT_SMS_MAX_AGE.as_secs(),
                clock_skew: DEFAULT_CLOCK_SKEW.as_secs(),
                body_limit: DEFAULT_BODY_LIMIT,
                clock: Arc::new(SystemClock),
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// How old `timestamp` may be (default [`DEFAULT_SMS_MAX_AGE`]); a delivered request is
    /// remembered that long plus the skew.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.config_mut().max_age = max_age.as_secs();
        self
    }

    /// How far in the future `timestamp` may lie (default 5 min).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.config_mut().clock_skew = skew.as_secs();
        self
    }

    /// Largest body accepted, in bytes, inclusive (default 1 MiB).
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.config_mut().body_limit = limit;
        self
    }

    /// The source of "now" (default the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config_mut().clock = Arc::new(clock);
        self
    }

    /// The configured method.
    pub fn method(&self) -> SignatureMethod {
        self.config.method
    }

    /// The secrets this verifier accepts.
    pub fn secrets(&self) -> &Secrets {
        &self.config.secrets
    }

    /// The configured body limit.
    pub fn limit(&self) -> usize {
        self.config.body_limit
    }

    pub(crate) fn now(&self) -> u64 {
        self.config.clock.now()
    }

    /// Verifies parameters already read.
    pub fn verify_params(&self, params: &SmsParams) -> Result<VerifiedSms, Rejection> {
        let obs = &mut Quiet;
        obs.checked(Check::BodySize, Ok(()), |_| {})?;
        obs.checked(Check::Parameters, Ok(()), |_| {})?;
        self.check_params(params.clone(), self.now(), obs)
    }

    /// Verifies a whole request: its method, query, headers (`Content-Type`) and exact body.
    pub fn verify(
        &self,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedSms, Rejection> {
        self.run(method, query, headers, body, self.now(), &mut Quiet)
    }

    /// Every check of [`verify`](Self::verify), step by step, with what each saw (see
    /// [`CallbackVerifier::explain`](crate::CallbackVerifier::explain)).
    pub fn explain(
        &self,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Report<VerifiedSms> {
        let mut recorder = Recorder::default();
        let verdict = self.run(method, query, headers, body, self.now(), &mut recorder);
        let c = &*self.config;
        Report::new(recorder, verdict, &Check::SMS, c.max_age, c.clock_skew)
    }

    fn run<O: Observer>(
        &self,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
        obs: &mut O,
    ) -> Result<VerifiedSms, Rejection> {
        self.check_size(Some(body.len() as u64), obs)?;
        self.check_body(method, query, headers, body, now, obs)
    }

    /// The body's size, as declared before it is read or as received.
    pub(crate) fn check_size<O: Observer>(
        &self,
        len: Option<u64>,
        obs: &mut O,
    ) -> Result<(), Rejection> {
        let limit = self.config.body_limit as u64;
        let size = match len {
            Some(len) if len > limit => Err(Rejection::BodyTooLarge),
            _ => Ok(()),
        };
        obs.checked(Check::BodySize, size, |d| d.body_len = len)
    }

    /// The layer's checks once the body is read (its size was checked before).
    pub(crate) fn check_request<O: Observer>(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        now: u64,
        obs: &mut O,
    ) -> Result<VerifiedSms, Rejection> {
        let query = parts.uri.query();
        self.check_body(&parts.method, query, &parts.headers, body, now, obs)
    }

    fn check_body<O: Observer>(
        &self,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
        obs: &mut O,
    ) -> Result<VerifiedSms, Rejection> {
        let params = read_params(method, query, headers, body);
        let check = params
            .as_ref()
            .map(|_| ())
            .map_err(|_| Rejection::MalformedParameters);
        let raw = if *method == Method::GET {
            query.unwrap_or_default().as_bytes()
        } else {
            body
        };
        obs.checked(Check::Parameters, check, |d| {
            d.sms_plus_in_encoding = Some(raw.contains(&b'+'));
            match &params {
                Ok(params) => d.note_sms_params(params),
                Err(err) => d.sms_params_error = Some(err.to_string()),
            }
        })?;
        let params = params.map_err(|_| Rejection::MalformedParameters)?;
        self.check_params(params, now, obs)
    }

    /// The checks after the parameters are read: `sig`, the account, the signature, the time.
    fn check_params<O: Observer>(
        &self,
        params: SmsParams,
        now: u64,
        obs: &mut O,
    ) -> Result<VerifiedSms, Rejection> {
        let config = &*self.config;
        let sig = params.get("sig");
        let check = sig.map(|_| ()).ok_or(Rejection::MissingSignature);
        obs.checked(Check::SigParameter, check, |d| d.note_sms_params(&params))?;
        let sig = sig.unwrap_or_default();

        // `api-key` chooses the account where it is sent; else the one configured.
        let configured: Vec<&str> = config.secrets.api_keys().collect();
        let api_key = match (params.get("api-key"), configured.as_slice()) {
            (Some(key), _) => Some(key),
            (None, [only]) => Some(*only),
            (None, _) => None,
        };
        let secrets = api_key.map_or(&[][..], |key| config.secrets.secrets_for(key));
        let check = if secrets.is_empty() {
            Err(Rejection::UnknownApiKey)
        } else {
            Ok(())
        };
        obs.checked(Check::ApiKey, check, |d| {
            d.api_key = api_key.map(str::to_owned);
            d.secrets_tried = Some(secrets.len());
            if secrets.is_empty() {
                d.configured_api_keys = configured.iter().map(|k| (*k).to_owned()).collect();
                d.configured_api_keys.sort();
            }
        })?;

        let index = secrets
            .iter()
            .position(|secret| config.method.verifies(&params, secret.bytes(), sig));
        let check = index.map(|_| ()).ok_or(Rejection::BadSignature);
        obs.checked(Check::Signature, check, |d| {
            d.sms_method = Some(config.method.name());
            d.secret = index.map(|i| SecretUsed::new(i, secrets[i].clone_label()));
        })?;
        let index = index.unwrap_or_default();

        let timestamp = params
            .get("timestamp")
            .and_then(|t| t.trim().parse::<u64>().ok());
        let check = match timestamp {
            None => Err(Rejection::MissingTimestamp),
            Some(t) if t > now.saturating_add(config.clock_skew) => Err(Rejection::TokenFromFuture),
            Some(t) if now > t.saturating_add(config.max_age) => Err(Rejection::StaleToken),
            Some(_) => Ok(()),
        };
        obs.checked(Check::Time, check, |d| {
            d.iat_offset_secs = timestamp.map(|t| offset(now, t));
        })?;
        let replay_id = match params.get("nonce") {
            Some(nonce) => nonce.to_owned(),
            None => {
                // Lower-cased first: the same sig in the other case is the same request.
                let sig = sig.to_ascii_lowercase();
                let digest: [u8; 32] = sha2::Sha256::digest(sig.as_bytes()).into();
                format!("sig-sha256:{}", &crate::hex::encode(&digest)[..32])
            }
        };
        Ok(VerifiedSms {
            replay_id,
            api_key: api_key.unwrap_or_default().to_owned(),
            secret: SecretUsed::new(index, secrets[index].clone_label()),
            timestamp: timestamp.unwrap_or_default(),
            params,
        })
    }

    /// The replay store's view of a verified request: keyed by account and `nonce` (or `sig`),
    /// kept until its `timestamp` is stale, the skew longer.
    pub(crate) fn attempt(&self, verified: &VerifiedSms, now: u64) -> Attempt {
        let c = &*self.config;
        let until = verified
            .timestamp
            .saturating_add(c.max_age)
            .saturating_add(c.clock_skew)
            .saturating_add(1);
        // Namespaced, so that an SMS nonce never meets a JWT `jti` in a shared store.
        let id = format!("sms:{}", verified.replay_id());
        Attempt::new(
            ReplayKey::new(verified.api_key(), &id),
            verified.timestamp,
            now,
            Retention::new(until, now),
        )
    }
}

/// The parameters where the request carries them: the query for GET, the body for POST (a form
/// or JSON, by `Content-Type`). Both at once is refused: which set was signed?
fn read_params(
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<SmsParams, ParamsError> {
    let query = query.filter(|q| !q.is_empty());
    if *method == Method::GET {
        if !body.is_empty() {
            return Err(ParamsError::Mixed);
        }
        return SmsParams::from_form(query.unwrap_or_default().as_bytes());
    }
    if query.is_some() {
        return Err(ParamsError::Mixed);
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
        });
    if json {
        SmsParams::from_json(body)
    } else {
        SmsParams::from_form(body)
    }
}

fn offset(now: u64, then: u64) -> i64 {
    let wide = i128::from(now) - i128::from(then);
    wide.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl RejectionDetails {
    /// The facts of a verified SMS request refused by the replay store.
    pub(crate) fn from_sms(verified: &VerifiedSms, now: u64, body_len: Option<usize>) -> Self {
        let mut details = Self {
            api_key: Some(verified.api_key.clone()),
            jti: Some(verified.replay_id().to_owned()),
            iat_offset_secs: Some(offset(now, verified.timestamp)),
            body_len: body_len.map(|len| len as u64),
            ..Self::default()
        };
        details.note_sms_params(&verified.params);
        details
    }

    /// What an SMS request's parameters say about it, never their values.
    pub(crate) fn note_sms_params(&mut self, params: &SmsParams) {
        let mut names: Vec<String> = params.iter().map(|(n, _)| n.to_owned()).collect();
        names.sort();
        self.sms_parameter_names = names;
        self.sms_value_has_separator = Some(
            params
                .iter()
                .any(|(n, v)| n != "sig" && (v.contains('&') || v.contains('='))),
        );
    }
}

impl fmt::Debug for SmsVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.config;
        f.debug_struct("SmsVerifier")
            .field("secrets", &c.secrets)
            .field("method", &c.method)
            .field("max_age", &c.max_age)
            .field("clock_skew", &c.clock_skew)
            .field("body_limit", &c.body_limit)
            .finish_non_exhaustive()
    }
}
