//! The checks as a sequence that can be watched: the verifier reports each check to an
//! [`Observer`], and what it reports is all a diagnosis knows. The layer watches for the first
//! failure only (its refusal's facts), [`CallbackVerifier::explain`] records every step (a
//! [`Report`]), and plain verification watches nothing, at no cost. One run of the checks, three
//! views of it: they cannot disagree.
//!
//! [`CallbackVerifier::explain`]: crate::CallbackVerifier::explain

use std::fmt;

use crate::claims::VonageClaims;
use crate::diagnosis::RejectionDetails;
use crate::rejection::Rejection;

/// One check of a callback, in the order [`SecureCallbackLayer`](crate::SecureCallbackLayer)
/// runs them. The layer consults its replay store between [`PayloadHashClaim`] and
/// [`PayloadHash`] (before the body is read); a [`Report`] has no replay store and says so.
///
/// [`PayloadHashClaim`]: Check::PayloadHashClaim
/// [`PayloadHash`]: Check::PayloadHash
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// The body's size (as declared, or as received) is within the limit: `body_too_large`.
    BodySize,
    /// One `Authorization: Bearer <token>` header: `missing_token`, `malformed_token`.
    Authorization,
    /// A JWT pinned to HS256 whose claims parse: `malformed_token`, `unsupported_algorithm`,
    /// `bad_signature` (a signature of the wrong length).
    Token,
    /// Secrets are configured for its `api_key`: `unknown_api_key`.
    ApiKey,
    /// One of them verifies the HMAC: `bad_signature`.
    Signature,
    /// `iss` is the expected issuer: `bad_issuer`.
    Issuer,
    /// `iat` (and `nbf`, `exp` where present) within the maximum age and the clock skew:
    /// `token_from_future`, `stale_token`.
    Time,
    /// The token has a `payload_hash` claim: `missing_payload_hash`.
    PayloadHashClaim,
    /// It is the SHA-256 of what the request signs (the body, or a GET's query):
    /// `payload_hash_mismatch`.
    PayloadHash,
    /// SMS scheme: the parameters, from the query (GET) or the body (a form or JSON), each name
    /// once, UTF-8, scalars: `malformed_parameters`.
    Parameters,
    /// SMS scheme: a `sig` parameter: `missing_signature`.
    SigParameter,
}

impl Check {
    /// The SMS `sig` scheme's checks, in order. [`Check::Signature`] is then the `sig`, and
    /// [`Check::Time`] the `timestamp` parameter.
    pub const SMS: [Check; 6] = [
        Check::BodySize,
        Check::Parameters,
        Check::SigParameter,
        Check::ApiKey,
        Check::Signature,
        Check::Time,
    ];

    /// The JWT scheme's checks, in order.
    pub const ALL: [Check; 9] = [
        Check::BodySize,
        Check::Authorization,
        Check::Token,
        Check::ApiKey,
        Check::Signature,
        Check::Issuer,
        Check::Time,
        Check::PayloadHashClaim,
        Check::PayloadHash,
    ];

    /// A short name, as a checklist prints it: `body_size`, `authorization`, `token`, ...
    pub const fn name(self) -> &'static str {
        match self {
            Check::BodySize => "body_size",
            Check::Authorization => "authorization",
            Check::Token => "token",
            Check::ApiKey => "api_key",
            Check::Signature => "signature",
            Check::Issuer => "issuer",
            Check::Time => "time",
            Check::PayloadHashClaim => "payload_hash_claim",
            Check::PayloadHash => "payload_hash",
            Check::Parameters => "parameters",
            Check::SigParameter => "sig",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one check of a [`Report`] came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The check passed.
    Passed,
    /// The check failed with this rejection: the verdict.
    Failed(Rejection),
    /// An earlier check failed, so this one was not run (as in the layer).
    NotReached,
}

/// Every check of one callback, step by step, with the facts they saw; its verdict *is* the
/// verifier's (the same run produced both). From [`CallbackVerifier::explain`].
///
/// [`CallbackVerifier::explain`]: crate::CallbackVerifier::explain
///
/// `V` is what a verified callback yields: [`VonageClaims`] for the JWT scheme, the SMS
/// scheme's verified parameters for `sig`.
#[derive(Debug, Clone)]
pub struct Report<V = VonageClaims> {
    steps: Vec<(Check, Status)>,
    verdict: Result<V, Rejection>,
    facts: RejectionDetails,
    max_age_secs: u64,
    clock_skew_secs: u64,
}

impl<V> Report<V> {
    pub(crate) fn new(
        recorder: Recorder,
        verdict: Result<V, Rejection>,
        checks: &[Check],
        max_age_secs: u64,
        clock_skew_secs: u64,
    ) -> Self {
        let Recorder { mut steps, facts } = recorder;
        let ran: Vec<Check> = steps.iter().map(|(check, _)| *check).collect();
        let rest = checks.iter().copied().filter(|check| !ran.contains(check));
        steps.extend(rest.map(|check| (check, Status::NotReached)));
        Self {
            steps,
            verdict,
            facts,
            max_age_secs,
            clock_skew_secs,
        }
    }

    /// Each check in order, with how it came out.
    pub fn steps(&self) -> &[(Check, Status)] {
        &self.steps
    }

    /// How `check` came out.
    pub fn status(&self, check: Check) -> Status {
        self.steps
            .iter()
            .find(|(c, _)| *c == check)
            .map_or(Status::NotReached, |(_, status)| *status)
    }

    /// The verifier's verdict: what was verified, or the first failed check's rejection.
    pub fn verdict(&self) -> Result<&V, Rejection> {
        self.verdict.as_ref().map_err(|rejection| *rejection)
    }

    /// What the checks saw, the same facts a refusal carries (more of them: every check that
    /// ran adds its own). What the token claims is read before it is trusted.
    pub fn facts(&self) -> &RejectionDetails {
        &self.facts
    }

    /// The verifier's maximum age of `iat`, in seconds.
    pub fn max_age_secs(&self) -> u64 {
        self.max_age_secs
    }

    /// The verifier's tolerated clock skew, in seconds.
    pub fn clock_skew_secs(&self) -> u64 {
        self.clock_skew_secs
    }
}

/// Watches the checks. Each check calls [`checked`](Observer::checked) with its result and a
/// closure that writes what it saw; the closure runs only for observers that keep facts.
pub(crate) trait Observer {
    fn checked(
        &mut self,
        check: Check,
        result: Result<(), Rejection>,
        facts: impl FnOnce(&mut RejectionDetails),
    ) -> Result<(), Rejection>;
}

/// Plain verification: nothing kept.
pub(crate) struct Quiet;

impl Observer for Quiet {
    #[inline]
    fn checked(
        &mut self,
        _: Check,
        result: Result<(), Rejection>,
        _: impl FnOnce(&mut RejectionDetails),
    ) -> Result<(), Rejection> {
        result
    }
}

/// The layer's view: the failed check's facts, boxed (only a refusal pays for them).
#[derive(Default)]
pub(crate) struct FirstFailure(pub(crate) Option<Box<RejectionDetails>>);

impl Observer for FirstFailure {
    #[inline]
    fn checked(
        &mut self,
        _: Check,
        result: Result<(), Rejection>,
        facts: impl FnOnce(&mut RejectionDetails),
    ) -> Result<(), Rejection> {
        if result.is_err() {
            let mut details = Box::default();
            facts(&mut details);
            self.0 = Some(details);
        }
        result
    }
}

impl FirstFailure {
    /// The facts of the failure seen (empty if none was: a caller's mistake, not a panic).
    pub(crate) fn take(&mut self) -> Box<RejectionDetails> {
        self.0.take().unwrap_or_default()
    }
}

/// [`Report`]'s view: every step and every fact.
#[derive(Default)]
pub(crate) struct Recorder {
    steps: Vec<(Check, Status)>,
    facts: RejectionDetails,
}

impl Observer for Recorder {
    fn checked(
        &mut self,
        check: Check,
        result: Result<(), Rejection>,
        facts: impl FnOnce(&mut RejectionDetails),
    ) -> Result<(), Rejection> {
        facts(&mut self.facts);
        let status = match result {
            Ok(()) => Status::Passed,
            Err(rejection) => Status::Failed(rejection),
        };
        self.steps.push((check, status));
        result
    }
}
