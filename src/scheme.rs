//! Which signature a layer checks: the JWT of Video, Messages, Voice and Verify callbacks, or
//! (feature `sms`) the SMS API's `sig`. One state machine serves both; the scheme decides what
//! is checked before the body is read and what after.

use http::request::Parts;

use crate::claims::VonageClaims;
use crate::diagnosis::RejectionDetails;
use crate::explain::FirstFailure;
use crate::rejection::Rejection;
use crate::replay::Attempt;
use crate::secrets::Secrets;
use crate::stopwatch::Stopwatch;
use crate::verify::CallbackVerifier;

/// The verifier of a [`SecureCallbackLayer`](crate::SecureCallbackLayer), chosen when it is
/// built: [`SecureCallbackLayer::new`](crate::SecureCallbackLayer::new) for the JWT scheme,
/// `SecureCallbackLayer::sms` for the SMS scheme.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Scheme {
    /// `Authorization: Bearer <JWT>` with a `payload_hash` of the body.
    Jwt(CallbackVerifier),
    /// A `sig` parameter over the request's parameters (feature `sms`).
    #[cfg(feature = "sms")]
    Sms(crate::sms::SmsVerifier),
}

impl Scheme {
    /// The body limit, in bytes, inclusive.
    pub fn limit(&self) -> usize {
        match self {
            Scheme::Jwt(v) => v.limit(),
            #[cfg(feature = "sms")]
            Scheme::Sms(v) => v.limit(),
        }
    }

    /// The secrets accepted.
    pub fn secrets(&self) -> &Secrets {
        match self {
            Scheme::Jwt(v) => v.secrets(),
            #[cfg(feature = "sms")]
            Scheme::Sms(v) => v.secrets(),
        }
    }

    /// "Now" on the scheme's clock, read once per callback.
    pub(crate) fn now(&self) -> u64 {
        match self {
            Scheme::Jwt(v) => v.now(),
            #[cfg(feature = "sms")]
            Scheme::Sms(v) => v.now(),
        }
    }
}

/// What the checks so far established about a request.
pub(crate) enum Known {
    /// JWT: the verified claims, and the replay attempt they make (asked before the body).
    Token {
        claims: VonageClaims,
        attempt: Attempt,
    },
    /// SMS, before the body: nothing yet (its parameters may be in it).
    #[cfg(feature = "sms")]
    SmsPending,
    /// SMS, verified.
    #[cfg(feature = "sms")]
    Sms(crate::sms::VerifiedSms),
}

impl Scheme {
    /// Everything decided before the body is read.
    pub(crate) fn check_head(
        &self,
        parts: &Parts,
        declared: Option<u64>,
        now: u64,
        obs: &mut FirstFailure,
    ) -> Result<Known, Rejection> {
        match self {
            Scheme::Jwt(v) => {
                let claims = v.check_headers(&parts.headers, declared, now, obs)?;
                let attempt = v.attempt(&claims, now);
                Ok(Known::Token { claims, attempt })
            }
            #[cfg(feature = "sms")]
            Scheme::Sms(v) => {
                v.check_size(declared, obs)?;
                Ok(Known::SmsPending)
            }
        }
    }

    /// Everything decided by the body: what is then known, and the attempt to reserve.
    pub(crate) fn check_body(
        &self,
        known: Known,
        parts: &Parts,
        body: &[u8],
        now: u64,
        obs: &mut FirstFailure,
    ) -> Result<(Known, Attempt), Rejection> {
        match (self, known) {
            (Scheme::Jwt(v), Known::Token { claims, attempt }) => {
                v.check_request(&claims, parts, body, now, obs)?;
                let reserve = attempt.clone();
                Ok((Known::Token { claims, attempt }, reserve))
            }
            #[cfg(feature = "sms")]
            (Scheme::Sms(v), Known::SmsPending) => {
                let verified = v.check_request(parts, body, now, obs)?;
                let attempt = v.attempt(&verified, now);
                Ok((Known::Sms(verified), attempt))
            }
            // A layer keeps its scheme, so what it knows always comes from that scheme.
            #[cfg(feature = "sms")]
            _ => Err(Rejection::MalformedToken),
        }
    }
}

impl Known {
    /// The replay attempt, where it is known before the body.
    pub(crate) fn early_attempt(&self) -> Option<&Attempt> {
        match self {
            Known::Token { attempt, .. } => Some(attempt),
            #[cfg(feature = "sms")]
            _ => None,
        }
    }

    /// The facts of a refusal by the body's read or the replay store.
    pub(crate) fn facts(&self, now: u64, body_len: Option<usize>) -> RejectionDetails {
        match self {
            Known::Token { claims, .. } => RejectionDetails::from_claims(claims, now, body_len),
            #[cfg(feature = "sms")]
            Known::SmsPending => RejectionDetails {
                body_len: body_len.map(|len| len as u64),
                ..RejectionDetails::default()
            },
            #[cfg(feature = "sms")]
            Known::Sms(verified) => RejectionDetails::from_sms(verified, now, body_len),
        }
    }

    /// Hands the verified facts to the inner service, and counts the callback accepted.
    pub(crate) fn accept(
        self,
        extensions: &mut http::Extensions,
        stopwatch: Stopwatch,
        secrets: &Secrets,
        body_len: usize,
    ) {
        match self {
            Known::Token { claims, .. } => {
                stopwatch.accepted(secrets, claims.api_key(), claims.secret(), body_len);
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "vonage_secure_callbacks", api_key = claims.api_key(),
                    jti = claims.jti(), secret = %claims.secret(), "callback accepted");
                extensions.insert(claims);
            }
            #[cfg(feature = "sms")]
            Known::Sms(verified) => {
                stopwatch.accepted(secrets, verified.api_key(), verified.secret(), body_len);
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "vonage_secure_callbacks", api_key = verified.api_key(),
                    nonce = verified.replay_id(), secret = %verified.secret(), "sms accepted");
                extensions.insert(verified);
            }
            #[cfg(feature = "sms")]
            Known::SmsPending => {}
        }
    }
}
