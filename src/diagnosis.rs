//! Why a callback was refused, in facts that point to the cause: what the token claimed (read
//! without trusting it), how its time compares with ours, what the body looked like. Never a
//! secret, a token or a body. The checks write them (see `explain`); the layer adds what the
//! replay store said.

use http::{header, HeaderMap};

use crate::buffer::declared_len;
use crate::claims::{SecretUsed, VonageClaims};

/// Facts about a callback, written by the checks that ran: beside the
/// [`Rejection`](crate::Rejection) in a refusal's extensions, in the `tracing` event (feature
/// `tracing`), handed to
/// [`OnRejection::response_with_details`](crate::OnRejection::response_with_details), and in a
/// [`Report`](crate::Report).
///
/// What the token claims is read without trusting it (the signature may be why it was refused):
/// use it to find the cause, not to act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectionDetails {
    /// The token's `api_key`, when the token could be read.
    pub api_key: Option<String>,
    /// The token's `jti`, when the token could be read.
    pub jti: Option<String>,
    /// For `replayed_token`: when the earlier delivery of this `jti` was verified (Unix seconds),
    /// if the replay store keeps that. A few seconds before: a retry of a callback whose 2xx
    /// was lost; hours: someone replaying a captured callback.
    pub delivered_at: Option<u64>,
    /// How many secrets are configured for that `api_key`, all tried for `bad_signature`.
    pub secrets_tried: Option<usize>,
    /// Which of those secrets verified the token, once one did.
    pub secret: Option<SecretUsed>,
    /// The API keys that have secrets here (API keys are not secrets), for `unknown_api_key`.
    pub configured_api_keys: Vec<String>,
    /// Our clock minus the token's `iat`, in seconds: its age, negative when it comes from the
    /// future. A clock problem shows as the same offset on every callback.
    pub iat_offset_secs: Option<i64>,
    /// The token's `iss`, for `bad_issuer`.
    pub issuer: Option<String>,
    /// The token's `payload_hash` claim, for `payload_hash_mismatch` (hashes are not secrets).
    pub payload_hash: Option<String>,
    /// Lowercase hex SHA-256 of what the request signs (the body as received, or a GET's query
    /// payload), for `payload_hash_mismatch`.
    pub payload_sha256: Option<String>,
    /// SMS scheme: the names of the parameters received, sorted (never their values).
    pub sms_parameter_names: Vec<String>,
    /// SMS scheme: whether a value holds `&` or `=` (signed as `_`: a signer that forgot that
    /// is a common cause of `bad_signature`).
    pub sms_value_has_separator: Option<bool>,
    /// SMS scheme: whether the encoded parameters held `+`, which decodes to a space (a literal
    /// `+` arrives as `%2B`): a signer that encoded spaces otherwise signed other text.
    pub sms_plus_in_encoding: Option<bool>,
    /// SMS scheme: why the parameters could not be read.
    pub sms_params_error: Option<String>,
    /// SMS scheme: the signature method the verifier expects (`md5hash`, `sha256`, ...).
    pub sms_method: Option<&'static str>,
    /// Length of the body as received (or as declared by `Content-Length` before reading).
    pub body_len: Option<u64>,
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// The request's `Content-Encoding`: a proxy that compressed or decompressed the body is the
    /// usual cause of `payload_hash_mismatch`.
    pub content_encoding: Option<String>,
}

impl RejectionDetails {
    /// The facts of a verified token refused later by the replay store, with the body's length
    /// where it was read.
    pub(crate) fn from_claims(claims: &VonageClaims, now: u64, body_len: Option<usize>) -> Self {
        let mut details = Self::default();
        details.note_claims(claims, now);
        details.body_len = body_len.map(|len| len as u64);
        details
    }

    /// What the token claims, and its age on our clock.
    pub(crate) fn note_claims(&mut self, claims: &VonageClaims, now: u64) {
        let (now_wide, iat) = (i128::from(now), i128::from(claims.iat()));
        let offset = (now_wide - iat).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        self.api_key = Some(claims.api_key().to_owned());
        self.jti = Some(claims.jti().to_owned());
        self.iat_offset_secs = Some(offset as i64);
    }

    /// What the request's headers say about its body.
    pub(crate) fn note_headers(&mut self, headers: &HeaderMap) {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.content_type = text(header::CONTENT_TYPE);
        self.content_encoding = text(header::CONTENT_ENCODING);
        if self.body_len.is_none() {
            self.body_len = declared_len(headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::CallbackSigner;
    use crate::{CallbackVerifier, FixedClock, Rejection, Secret, Secrets};

    const NOW: u64 = 1_800_000_000;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        h
    }

    #[test]
    fn a_bad_signature_says_which_key_how_many_secrets_and_how_old() {
        let verifier = CallbackVerifier::new(
            Secrets::new()
                .project(
                    "k1",
                    Secret::new("a-secret-of-the-project-k1-00000000").unwrap(),
                )
                .project(
                    "k1",
                    Secret::new("a-secret-of-the-project-k1-11111111").unwrap(),
                )
                .project(
                    "k2",
                    Secret::new("a-secret-of-the-project-k2-00000000").unwrap(),
                ),
        )
        .clock(FixedClock::new(NOW));
        let forged = CallbackSigner::new("k1", "not-the-secret-not-the-secret-000");
        let token = forged.token_with(b"{}", |c| {
            c.insert("iat".into(), (NOW - 90).into());
        });
        let report = verifier.explain(&headers(&format!("Bearer {token}")), b"{}");
        assert_eq!(report.verdict().unwrap_err(), Rejection::BadSignature);
        let d = report.facts();
        assert_eq!(d.api_key.as_deref(), Some("k1"));
        assert_eq!(d.secrets_tried, Some(2));
        assert_eq!(d.iat_offset_secs, Some(90));

        let unknown = CallbackSigner::new("k9", "not-the-secret-not-the-secret-000").token(b"");
        let report = verifier.explain(&headers(&format!("Bearer {unknown}")), b"");
        assert_eq!(report.facts().configured_api_keys, ["k1", "k2"]);
        let report = verifier.explain(&headers("Bearer x"), b"");
        let d = report.facts();
        assert_eq!((&d.api_key, d.iat_offset_secs), (&None, None));
    }

    #[test]
    fn headers_add_the_bodys_encoding_and_declared_length() {
        let mut d = RejectionDetails::default();
        let mut h = headers("Bearer x");
        h.insert(header::CONTENT_LENGTH, "42".parse().unwrap());
        d.note_headers(&h);
        assert_eq!(
            (d.body_len, d.content_encoding.as_deref()),
            (Some(42), Some("gzip"))
        );
    }
}
