//! Why a callback was refused, in facts that point to the cause: what the token claimed (read
//! without trusting it), how its time compares with ours, what the body looked like. Never a
//! secret, a token or a body.

use http::{header, HeaderMap};

use crate::claims::VonageClaims;
use crate::rejection::Rejection;
use crate::token::{bearer_token, UnverifiedToken};
use crate::verify::CallbackVerifier;

/// Facts about a refused callback, beside the [`Rejection`] in the response's extensions, in the
/// `tracing` event (feature `tracing`), and handed to
/// [`OnRejection::response_with_details`](crate::OnRejection::response_with_details).
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
    /// The API keys that have secrets here (API keys are not secrets), for `unknown_api_key`.
    pub configured_api_keys: Vec<String>,
    /// Our clock minus the token's `iat`, in seconds: its age, negative when it comes from the
    /// future. A clock problem shows as the same offset on every callback.
    pub iat_offset_secs: Option<i64>,
    /// Length of the body as received (or as declared by `Content-Length` before reading).
    pub body_len: Option<u64>,
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// The request's `Content-Encoding`: a proxy that compressed or decompressed the body is the
    /// usual cause of `payload_hash_mismatch`.
    pub content_encoding: Option<String>,
}

impl RejectionDetails {
    /// From the headers alone: the refusal came before the token was trusted.
    pub(crate) fn from_headers(
        rejection: Rejection,
        headers: &HeaderMap,
        verifier: &CallbackVerifier,
        now: u64,
    ) -> Self {
        let claims = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| bearer_token(value).ok())
            .and_then(|token| UnverifiedToken::split(token).ok()?.claims().ok());
        let mut details = Self::from_parts(headers, claims.as_ref(), now);
        details.body_len = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let secrets = verifier.secrets();
        match rejection {
            Rejection::BadSignature => {
                details.secrets_tried = claims.map(|c| secrets.secrets_for(c.api_key()).len());
            }
            Rejection::UnknownApiKey => {
                details.configured_api_keys = secrets.api_keys().map(str::to_owned).collect();
                details.configured_api_keys.sort();
            }
            _ => {}
        }
        details
    }

    /// From a request whose token was verified, refused later (body, replay, store).
    pub(crate) fn from_verified(
        headers: &HeaderMap,
        claims: &VonageClaims,
        now: u64,
        body_len: Option<usize>,
    ) -> Self {
        let mut details = Self::from_parts(headers, Some(claims), now);
        details.body_len = body_len.map(|len| len as u64);
        details
    }

    fn from_parts(headers: &HeaderMap, claims: Option<&VonageClaims>, now: u64) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            api_key: claims.map(|c| c.api_key().to_owned()),
            jti: claims.map(|c| c.jti().to_owned()),
            iat_offset_secs: claims.map(|c| {
                let (now, iat) = (i128::from(now), i128::from(c.iat()));
                (now - iat).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
            }),
            content_type: text(header::CONTENT_TYPE),
            content_encoding: text(header::CONTENT_ENCODING),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::CallbackSigner;
    use crate::{FixedClock, Secret, Secrets};

    const NOW: u64 = 1_800_000_000;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        h.insert(header::CONTENT_LENGTH, "42".parse().unwrap());
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
        let token =
            CallbackSigner::new("k1", "not-the-secret-not-the-secret-000").token_with(b"{}", |c| {
                c.insert("iat".into(), (NOW - 90).into());
            });
        let h = headers(&format!("Bearer {token}"));
        let d = RejectionDetails::from_headers(Rejection::BadSignature, &h, &verifier, NOW);
        assert_eq!(d.api_key.as_deref(), Some("k1"));
        assert_eq!(d.secrets_tried, Some(2));
        assert_eq!(d.iat_offset_secs, Some(90));
        assert_eq!(
            (d.body_len, d.content_encoding.as_deref()),
            (Some(42), Some("gzip"))
        );

        let d = RejectionDetails::from_headers(Rejection::UnknownApiKey, &h, &verifier, NOW);
        assert_eq!(d.configured_api_keys, ["k1", "k2"]);
        let d = RejectionDetails::from_headers(
            Rejection::MalformedToken,
            &headers("Bearer x"),
            &verifier,
            NOW,
        );
        assert_eq!((d.api_key, d.iat_offset_secs), (None, None));
    }
}
